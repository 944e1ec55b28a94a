/**
 * Values inside persistent objects: deep copies for checkouts, deep freezing
 * of shared state, and the mapping to and from a tree that the MessagePack
 * codec of `_internal/codec.ts` stores faithfully.
 *
 * Storable values: `null`, `undefined`, booleans, numbers (`-0`, `NaN` and
 * infinities included), strings, BigInts, `Date`s, `Uint8Array`s, arrays,
 * plain objects, `Map`s, `Set`s, persistent objects (stored as references,
 * never copied) and stored files. Shared and cyclic references between
 * plain values survive; holes in arrays come back as `undefined`, and
 * null-prototype objects as ordinary ones. Anything else (functions,
 * symbols, class instances, other typed arrays) is refused with a
 * `TypeError` naming where it is.
 *
 * In the tree, a plain object is a MessagePack map, an array an array, bytes
 * a bin; everything else is a map whose first key is `"\0"`, holding a tag:
 * `r` reference (`v`: oid), `s` stored file, `u` undefined, `z` -0, `n`
 * BigInt, `d` Date, `m` Map, `e` Set, `o` a plain object with awkward keys
 * (`"\0"` or `"__proto__"`), `p` a value seen before in the same state (`v`:
 * its index in order of first appearance).
 *
 * @module
 */

import { isFileLike, isPersistent } from "./_core.ts";
import { isPlainObject } from "../_internal/codec.ts";
import { describeValue, renderPath } from "../_internal/describe.ts";

const TAG = "\0";

/** How references to other objects and files are written. */
export interface WireEncoder {
  /** The oid to store for a reference to `object`. */
  ref(object: object): number;
  /** The tree to store for a file or stream. */
  file(value: object): unknown;
}

/** How references are read back. */
export interface WireDecoder {
  /** The object with this oid. */
  object(oid: number): object;
  /** The stream for a stored file. */
  file(tree: unknown): object;
}

class PathError extends TypeError {
  readonly path: (string | number)[] = [];
  readonly detail: string;
  constructor(detail: string) {
    super(detail);
    this.detail = detail;
  }
}

/**
 * Runs `fn` and turns a failure deep inside a value into a `TypeError` that
 * names the place, such as `$.items[2].when`.
 */
export function withPath<T>(root: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof PathError) {
      throw new TypeError(
        `cannot store ${error.detail} at ${renderPath([root, ...error.path]).replace(/^\$\./, "")}`,
      );
    }
    throw error;
  }
}

function at<T>(key: string | number, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof PathError) error.path.unshift(key);
    throw error;
  }
}

/** Maps one value of a persistent object's state to a codec-safe tree. */
export class WireWriter {
  #encoder: WireEncoder;
  #seen = new Map<object, number>();

  constructor(encoder: WireEncoder) {
    this.#encoder = encoder;
  }

  write(value: unknown): unknown {
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        return value === 0 && 1 / value < 0 ? { [TAG]: "z" } : value;
      case "undefined":
        return { [TAG]: "u" };
      case "bigint":
        return { [TAG]: "n", v: value.toString() };
      case "function":
      case "symbol":
        throw new PathError(describeValue(value));
    }
    if (value === null) return null;
    const object = value as object;
    if (isPersistent(object)) return { [TAG]: "r", v: this.#encoder.ref(object) };
    if (isFileLike(object)) return { [TAG]: "s", v: this.#encoder.file(object) };
    const index = this.#seen.get(object);
    if (index !== undefined) return { [TAG]: "p", v: index };
    this.#seen.set(object, this.#seen.size);
    if (Array.isArray(object)) {
      const out = new Array(object.length);
      let i = 0;
      try {
        for (; i < object.length; i++) out[i] = this.write(object[i]);
      } catch (error) {
        if (error instanceof PathError) error.path.unshift(i);
        throw error;
      }
      return out;
    }
    if (object instanceof Uint8Array) {
      if (object.constructor !== Uint8Array) throw new PathError(describeValue(object));
      return object;
    }
    if (object instanceof Date) return { [TAG]: "d", v: object.getTime() };
    if (object instanceof Map) {
      const flat: unknown[] = [];
      let i = 0;
      for (const [key, item] of object) {
        flat.push(at("<key>", () => this.write(key)), at(i++, () => this.write(item)));
      }
      return { [TAG]: "m", v: flat };
    }
    if (object instanceof Set) {
      const items: unknown[] = [];
      let i = 0;
      for (const item of object) items.push(at(i++, () => this.write(item)));
      return { [TAG]: "e", v: items };
    }
    if (!isPlainObject(object)) throw new PathError(describeValue(object));
    const keys = Object.keys(object);
    const record = object as Record<string, unknown>;
    if (keys.includes(TAG) || keys.includes("__proto__")) {
      const flat: unknown[] = [];
      for (const key of keys) flat.push(key, at(key, () => this.write(record[key])));
      return { [TAG]: "o", v: flat };
    }
    const out: Record<string, unknown> = {};
    let key = "";
    try {
      for (key of keys) out[key] = this.write(record[key]);
    } catch (error) {
      if (error instanceof PathError) error.path.unshift(key);
      throw error;
    }
    return out;
  }
}

/** Maps a tree written by {@linkcode WireWriter} back to values. */
export class WireReader {
  #decoder: WireDecoder;
  #seen: unknown[] = [];

  constructor(decoder: WireDecoder) {
    this.#decoder = decoder;
  }

  read(tree: unknown): unknown {
    if (typeof tree !== "object" || tree === null) return tree;
    if (Array.isArray(tree)) {
      const out = new Array(tree.length);
      this.#seen.push(out);
      for (let i = 0; i < tree.length; i++) out[i] = this.read(tree[i]);
      return out;
    }
    if (tree instanceof Uint8Array) {
      const copy = tree.slice();
      this.#seen.push(copy);
      return copy;
    }
    const record = tree as Record<string, unknown>;
    const tag = record[TAG];
    if (tag === undefined) {
      const out: Record<string, unknown> = {};
      this.#seen.push(out);
      for (const key in record) out[key] = this.read(record[key]);
      return out;
    }
    const v = record.v;
    switch (tag) {
      case "r":
        return this.#decoder.object(v as number);
      case "s":
        return this.#decoder.file(v);
      case "u":
        return undefined;
      case "z":
        return -0;
      case "n":
        return BigInt(v as string);
      case "p": {
        if (typeof v !== "number" || v >= this.#seen.length) {
          throw new Error(`bad back-reference ${v}`);
        }
        return this.#seen[v];
      }
      case "d": {
        const date = new Date(v as number);
        this.#seen.push(date);
        return date;
      }
      case "m": {
        const map = new Map();
        this.#seen.push(map);
        const flat = v as unknown[];
        for (let i = 0; i < flat.length; i += 2) {
          map.set(this.read(flat[i]), this.read(flat[i + 1]));
        }
        return map;
      }
      case "e": {
        const set = new Set();
        this.#seen.push(set);
        for (const item of v as unknown[]) set.add(this.read(item));
        return set;
      }
      case "o": {
        const out: Record<string, unknown> = {};
        this.#seen.push(out);
        const flat = v as unknown[];
        for (let i = 0; i < flat.length; i += 2) {
          Object.defineProperty(out, flat[i] as string, {
            value: this.read(flat[i + 1]),
            writable: true,
            enumerable: true,
            configurable: true,
          });
        }
        return out;
      }
    }
    throw new Error(`unknown value tag ${JSON.stringify(tag)}`);
  }
}

/**
 * A deep copy of `value`. Persistent objects and files are kept as they are
 * (identity matters for them); shared and cyclic references are preserved.
 */
export function deepCopy(value: unknown, seen: Map<object, unknown> = new Map()): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (isPersistent(value) || isFileLike(value)) return value;
  const known = seen.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    seen.set(value, out);
    for (let i = 0; i < value.length; i++) out[i] = deepCopy(value[i], seen);
    return out;
  }
  if (value instanceof Uint8Array) {
    const out = value.slice();
    seen.set(value, out);
    return out;
  }
  if (value instanceof Date) {
    const out = new Date(value.getTime());
    seen.set(value, out);
    return out;
  }
  if (value instanceof Map) {
    const out = new Map();
    seen.set(value, out);
    for (const [key, item] of value) out.set(deepCopy(key, seen), deepCopy(item, seen));
    return out;
  }
  if (value instanceof Set) {
    const out = new Set();
    seen.set(value, out);
    for (const item of value) out.add(deepCopy(item, seen));
    return out;
  }
  if (!isPlainObject(value)) return value; // refused when committed
  const out: Record<string, unknown> = Object.create(Object.getPrototypeOf(value));
  seen.set(value, out);
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, {
      value: deepCopy((value as Record<string, unknown>)[key], seen),
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return out;
}

/** Whether a copy of `value` is needed before handing it to a transaction that may change it. */
export function isMutable(value: unknown): boolean {
  return typeof value === "object" && value !== null && !isPersistent(value) &&
    !isFileLike(value);
}

/**
 * Freezes arrays and plain objects inside `value`, so that shared state
 * cannot be changed in place by mistake. (Maps, Sets, Dates and byte arrays
 * cannot be frozen; their contents are.)
 */
export function deepFreeze(value: unknown): void {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return;
  if (isPersistent(value) || isFileLike(value)) return;
  if (value instanceof Map) {
    for (const [key, item] of value) {
      deepFreeze(key);
      deepFreeze(item);
    }
    return;
  }
  if (value instanceof Set) {
    for (const item of value) deepFreeze(item);
    return;
  }
  if (ArrayBuffer.isView(value) || value instanceof Date) return;
  if (!Array.isArray(value) && !isPlainObject(value)) return;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
}

/** Calls `visit` for every persistent object referenced (directly or nested) by `value`. */
export function forEachReference(
  value: unknown,
  visit: (object: object) => void,
  seen: Set<object> = new Set(),
): void {
  if (typeof value !== "object" || value === null) return;
  if (isPersistent(value)) {
    visit(value);
    return;
  }
  if (isFileLike(value) || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Map) {
    for (const [key, item] of value) {
      forEachReference(key, visit, seen);
      forEachReference(item, visit, seen);
    }
  } else if (value instanceof Set || Array.isArray(value)) {
    for (const item of value) forEachReference(item, visit, seen);
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      forEachReference((value as Record<string, unknown>)[key], visit, seen);
    }
  }
}

/** Calls `visit` for every stored-file value inside `value`. */
export function forEachFile(
  value: unknown,
  visit: (file: object) => void,
  seen: Set<object> = new Set(),
): void {
  if (typeof value !== "object" || value === null || isPersistent(value)) return;
  if (isFileLike(value)) {
    visit(value);
    return;
  }
  if (seen.has(value)) return;
  seen.add(value);
  if (value instanceof Map) {
    for (const [key, item] of value) {
      forEachFile(key, visit, seen);
      forEachFile(item, visit, seen);
    }
  } else if (value instanceof Set || Array.isArray(value)) {
    for (const item of value) forEachFile(item, visit, seen);
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      forEachFile((value as Record<string, unknown>)[key], visit, seen);
    }
  }
}
