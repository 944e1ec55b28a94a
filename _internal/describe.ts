/**
 * Words for values and places in values, shared by every error message
 * that points inside a value: `a function (save) at $.hooks[2]`.
 *
 * @module
 */

/** A step on the way into a value: an object key, an array index or a Map key. */
export type PathKey = string | number | boolean | bigint | null | undefined;

/** Renders a path like `$.users[3].name` (or `$["odd key"]`, `$[10n]`). */
export function renderPath(path: readonly PathKey[]): string {
  let out = "$";
  for (const part of path) {
    out += typeof part === "number"
      ? `[${part}]`
      : typeof part === "string" && /^[A-Za-z_$][\w$]*$/.test(part)
      ? `.${part}`
      : `[${typeof part === "bigint" ? `${part}n` : JSON.stringify(part) ?? String(part)}]`;
  }
  return out;
}

/** Names a value for a message: `a function (save)`, `a BigInt (3n)`, `NaN`, `a Map`. */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "function":
      return `a function (${value.name || "anonymous"})`;
    case "symbol":
      return `a symbol (${String(value)})`;
    case "bigint":
      return `a BigInt (${value}n)`;
    case "number":
      return String(value);
    case "undefined":
      return "undefined";
    case "string":
      return "a string";
    case "boolean":
      return String(value);
  }
  if (value === null) return "null";
  const name = (value as object).constructor?.name;
  return name ? `a ${name}` : "an object";
}

/**
 * Sets an own, enumerable property, also for the key `__proto__` (where a
 * plain assignment would change the prototype instead).
 */
export function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(object, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  } else {
    object[key] = value;
  }
}
