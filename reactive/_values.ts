/**
 * What a tracked structure may hold, and how values are copied into it.
 *
 * Every value that enters a tracked structure (the initial value, a loaded
 * file, an assignment, a pushed element, a patch) is checked and deep-copied
 * by {@linkcode importValue}. The copy makes the structure a tree that only
 * the tracker can reach: nobody else holds a reference into it, and no
 * object sits in two places. The check refuses what the chosen format could
 * not store, before anything changes.
 *
 * @module
 */

import { typedArrayFromBytes, typedArrayName } from "../_internal/codec.ts";
import { describeValue, type PathKey, renderPath, setOwn } from "../_internal/describe.ts";

/** One step of a path: an object key, an array index, or a `Map` key. */
export type { PathKey };

/** What a format can store, beyond plain objects, arrays, Maps, Sets, Dates and typed arrays. */
export interface ValuePolicy {
  /** Name for messages: `"YAML"`, `"JSON"`, `"MessagePack"`, `"memory"`. */
  readonly format: string;
  /** `NaN` and `±Infinity`. */
  readonly nonFinite: boolean;
  /** `undefined` as a value. */
  readonly undefinedValues: boolean;
  /** BigInts. */
  readonly bigint: boolean;
  /** Keep `-0`; when `false` it is stored as `0`. */
  readonly negativeZero: boolean;
  /** Strings with lone surrogates (which UTF-8 cannot carry). */
  readonly looseStrings: boolean;
  /** `Date` objects whose time is `NaN`. */
  readonly invalidDates: boolean;
}

/** `persist: false` and custom backends: anything `structuredClone` keeps. */
export const MEMORY_POLICY: ValuePolicy = {
  format: "memory",
  nonFinite: true,
  undefinedValues: true,
  bigint: true,
  negativeZero: true,
  looseStrings: true,
  invalidDates: true,
};

/** JSON in the tagged form (also the `"pod"` key files). */
export const JSON_POLICY: ValuePolicy = {
  format: "JSON",
  nonFinite: false,
  undefinedValues: false,
  bigint: false,
  negativeZero: false,
  looseStrings: true,
  invalidDates: true,
};

/** YAML with tags. */
export const YAML_POLICY: ValuePolicy = {
  format: "YAML",
  nonFinite: true,
  undefinedValues: false,
  bigint: false,
  negativeZero: true,
  looseStrings: false,
  invalidDates: false,
};

/** MessagePack with extension types. */
export const MSGPACK_POLICY: ValuePolicy = {
  format: "MessagePack",
  nonFinite: true,
  undefinedValues: false,
  bigint: false,
  negativeZero: false,
  looseStrings: false,
  invalidDates: false,
};

/** Something that can hand out the plain data behind a tracked proxy. */
export interface TrackedHandle {
  /** The live raw container, fully loaded. Callers must copy before keeping it. */
  rawForRead(): object;
}

/** Tracked proxies, mapped to their handles; filled by the tracker. */
export const handles: WeakMap<object, TrackedHandle> = new WeakMap();

function describe(value: unknown): string {
  // The only strings refused are those no format can hold.
  return typeof value === "string" ? "a string with a lone surrogate" : describeValue(value);
}

function refuse(
  policy: ValuePolicy,
  where: () => readonly PathKey[],
  inner: readonly PathKey[],
  value: unknown,
  why = "",
): TypeError {
  const at = renderPath([...where(), ...inner]);
  const format = policy.format === "memory" ? "a tracked structure" : policy.format;
  return new TypeError(`cannot store ${describe(value)} at ${at} in ${format}${why}`);
}

/**
 * Checks a primitive against the policy; returns the value to store (`-0`
 * may become `0`). Objects are not handled here.
 */
export function checkPrimitive(
  value: unknown,
  policy: ValuePolicy,
  where: () => readonly PathKey[],
  inner: readonly PathKey[] = [],
): unknown {
  switch (typeof value) {
    case "string":
      if (!policy.looseStrings && !value.isWellFormed()) throw refuse(policy, where, inner, value);
      return value;
    case "number":
      if (!Number.isFinite(value)) {
        if (!policy.nonFinite) throw refuse(policy, where, inner, value);
        return value;
      }
      return value === 0 && !policy.negativeZero ? 0 : value;
    case "boolean":
      return value;
    case "undefined":
      if (!policy.undefinedValues) {
        throw refuse(policy, where, inner, value, " (delete the key instead)");
      }
      return value;
    case "bigint":
      if (!policy.bigint) throw refuse(policy, where, inner, value);
      return value;
    default:
      if (value === null) return null;
      throw refuse(policy, where, inner, value);
  }
}

/** True for values a `Map` key or `Set` member may be: primitives other than symbols. */
function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function" &&
    typeof value !== "symbol");
}

/** True for the objects a tracked structure treats as containers. */
export function isContainer(value: unknown): value is object {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value) || value instanceof Map || value instanceof Set) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True for the objects stored as values: `Date` and typed arrays. */
export function isValueObject(value: object): boolean {
  return value instanceof Date || ArrayBuffer.isView(value);
}

/** Sets an own data property, also for the key `"__proto__"`. */
export { renderPath, setOwn };

/**
 * Checks `value` against `policy` and returns a deep copy that a tracked
 * structure may hold: plain objects (own enumerable string keys), arrays
 * without holes, `Map`s with primitive keys, `Set`s of primitives, `Date`s
 * and typed arrays, and primitives the format stores. Tracked proxies are
 * copied from their data. Anything else (functions, symbols, class
 * instances, cycles) is a `TypeError` naming where it is; `where` gives the
 * location of `value` itself, for that message.
 */
export function importValue(
  value: unknown,
  policy: ValuePolicy,
  where: () => readonly PathKey[],
): unknown {
  if (typeof value !== "object" || value === null) return checkPrimitive(value, policy, where);
  const ancestors = new Set<object>();
  const path: PathKey[] = [];
  const visit = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) {
      return checkPrimitive(value, policy, where, path);
    }
    const handle = handles.get(value);
    if (handle !== undefined) value = handle.rawForRead();
    const object = value as object;
    if (object instanceof Date) {
      if (!policy.invalidDates && Number.isNaN(object.getTime())) {
        throw refuse(policy, where, path, object, " (an invalid date)");
      }
      return new Date(object.getTime());
    }
    if (ArrayBuffer.isView(object)) {
      const name = typedArrayName(object);
      if (name === undefined) throw refuse(policy, where, path, object);
      return typedArrayFromBytes(
        name,
        new Uint8Array(object.buffer, object.byteOffset, object.byteLength),
      );
    }
    if (ancestors.has(object)) throw refuse(policy, where, path, object, " (a cycle)");
    ancestors.add(object);
    let out: unknown;
    if (Array.isArray(object)) {
      if (Object.getPrototypeOf(object) !== Array.prototype) {
        throw refuse(policy, where, path, object, " (only plain arrays are tracked)");
      }
      const copy = new Array(object.length);
      for (let index = 0; index < object.length; index++) {
        path.push(index);
        if (!(index in object)) throw refuse(policy, where, path, undefined, " (a hole)");
        copy[index] = visit(object[index]);
        path.pop();
      }
      out = copy;
    } else if (object instanceof Map) {
      if (Object.getPrototypeOf(object) !== Map.prototype) {
        throw refuse(policy, where, path, object, " (only plain Maps are tracked)");
      }
      const copy = new Map();
      for (const [key, item] of object) {
        path.push(key);
        if (!isPrimitive(key)) throw refuse(policy, where, path, key, " (as a Map key)");
        const storedKey = checkPrimitive(key, policy, where, path);
        copy.set(storedKey, visit(item));
        path.pop();
      }
      out = copy;
    } else if (object instanceof Set) {
      if (Object.getPrototypeOf(object) !== Set.prototype) {
        throw refuse(policy, where, path, object, " (only plain Sets are tracked)");
      }
      const copy = new Set();
      let index = 0;
      for (const item of object) {
        path.push(index++);
        if (!isPrimitive(item)) throw refuse(policy, where, path, item, " (as a Set member)");
        copy.add(checkPrimitive(item, policy, where, path));
        path.pop();
      }
      out = copy;
    } else {
      const proto = Object.getPrototypeOf(object);
      if (proto !== Object.prototype && proto !== null) {
        throw refuse(
          policy,
          where,
          path,
          object,
          " (class instances are not tracked: store their data as a plain object)",
        );
      }
      const symbols = Object.getOwnPropertySymbols(object).filter((symbol) =>
        Object.prototype.propertyIsEnumerable.call(object, symbol)
      );
      if (symbols.length > 0) {
        path.push(String(symbols[0]));
        throw refuse(policy, where, path, symbols[0], " (as a key)");
      }
      const copy: Record<string, unknown> = {};
      for (const key of Object.keys(object)) {
        path.push(key);
        setOwn(copy, key, visit((object as Record<string, unknown>)[key]));
        path.pop();
      }
      out = copy;
    }
    ancestors.delete(object);
    return out;
  };
  return visit(value);
}

/** Checks a `Map` key or `Set` member (a primitive) and returns the value to store. */
export function importMember(
  value: unknown,
  policy: ValuePolicy,
  where: () => readonly PathKey[],
  role: string,
): unknown {
  if (!isPrimitive(value)) {
    const handle = typeof value === "object" && value !== null ? handles.get(value) : undefined;
    throw new TypeError(
      `cannot use ${handle ? "a tracked object" : describe(value)} as a ${role} at ${
        renderPath(where())
      }: ${role}s must be primitives (strings, numbers, booleans, null), which keep their identity when copied and reloaded`,
    );
  }
  return checkPrimitive(value, policy, where);
}

/** A deep copy of raw tracked data (plain objects, arrays, Maps, Sets, Dates, typed arrays). */
export function copyRaw<T>(value: T): T {
  return typeof value === "object" && value !== null ? structuredClone(value) : value;
}
