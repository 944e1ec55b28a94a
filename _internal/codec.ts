/**
 * The one place that decides how values become bytes: JSON (the default),
 * YAML (`npm:yaml`), MessagePack (`npm:@msgpack/msgpack`) and user codecs.
 *
 * Encoders refuse values they cannot store faithfully with a `TypeError`
 * naming where in the value the problem is, before any file is touched.
 * Decoders throw whatever the parser throws; callers turn that into a
 * `CorruptFileError` naming the file.
 *
 * With `tagged: true`, each format also stores `Map`, `Set`, `Date` and
 * typed arrays so that they read back as themselves: YAML with the tags
 * `!!set`, `!!omap`, `!!timestamp`, `!!binary` and `!<TypedArrayName>`,
 * MessagePack with extension types, and JSON in the tagged form described at
 * {@linkcode toTaggedJson}.
 *
 * @module
 */

import * as YAML from "yaml";
import * as MessagePack from "@msgpack/msgpack";
import { describeValue, renderPath, setOwn } from "./describe.ts";

/**
 * A way to turn values into bytes and back. `encode` may return text (which
 * is written as UTF-8) or bytes.
 */
export interface Codec<T = unknown> {
  /** Short name used in error messages, such as `"json"`. */
  readonly name?: string;
  /** Turns a value into the file's contents. */
  encode(value: T): string | Uint8Array;
  /** Turns the file's contents back into a value. */
  decode(data: Uint8Array): T;
}

/** The built-in formats. */
export type FormatName = "json" | "yaml" | "msgpack";

/** A JSON replacer or reviver, as taken by `JSON.stringify` and `JSON.parse`. */
export type JsonTransform = (this: unknown, key: string, value: unknown) => unknown;

/** Options of the JSON format. */
export interface JsonOptions {
  /** Spaces of indentation; `0` writes compact JSON. Default 2. */
  indent?: number;
  /** Passed to `JSON.stringify`. */
  replacer?: JsonTransform;
  /** Passed to `JSON.parse`. */
  reviver?: JsonTransform;
  /**
   * Write `Map`, `Set`, `Date` and typed arrays in the tagged form of
   * {@linkcode toTaggedJson}, and read that form back. The replacer sees the
   * tagged form; the reviver runs before the tags are read. Default `false`.
   */
  tagged?: boolean;
}

/**
 * Options of the YAML format. Each object is handed as it is to `npm:yaml`
 * (`stringify` to `YAML.stringify`, `parse` to `YAML.parse`), so every
 * option of that library works; the common ones are typed here.
 */
export interface YamlOptions {
  /** Options for `YAML.stringify`. */
  stringify?: {
    /** Spaces per indentation level. Default 2. */
    indent?: number;
    /** Longest line before folding long strings; `0` never folds. Default 80. */
    lineWidth?: number;
    /** Write the keys of each mapping in sorted order. Default `false`. */
    sortMapEntries?: boolean;
    /** Write an object met twice as an anchor and aliases. Default `true`. */
    aliasDuplicateObjects?: boolean;
    /** The YAML version to write. Default `"1.2"`. */
    version?: "1.1" | "1.2" | "next";
    /** Any other option of `YAML.stringify`. */
    [option: string]: unknown;
  };
  /** Options for `YAML.parse`. */
  parse?: {
    /** Treat duplicate keys in a mapping as an error. Default `true`. */
    uniqueKeys?: boolean;
    /** The most alias expansions allowed, against "billion laughs" files. Default 100. */
    maxAliasCount?: number;
    /** The YAML version to read. Default `"1.2"`. */
    version?: "1.1" | "1.2" | "next";
    /** Any other option of `YAML.parse`. */
    [option: string]: unknown;
  };
  /**
   * Tag `Set` (`!!set`), `Map` (`!!omap`), `Date` (`!!timestamp`),
   * `Uint8Array` (`!!binary`) and other typed arrays (`!<Float64Array>` and so
   * on, base64 of the little-endian bytes), so that they read back as
   * themselves. Default `false`.
   */
  tagged?: boolean;
}

/**
 * Options of the MessagePack format, handed as they are to
 * `npm:@msgpack/msgpack`'s `encode` and `decode`; the common ones are typed
 * here.
 */
export interface MsgpackOptions {
  /** Options for `encode`. */
  encode?: {
    /** Store BigInts as 64-bit integers (otherwise they are refused). Default `false`. */
    useBigInt64?: boolean;
    /** Write object keys sorted, for byte-for-byte comparable files. Default `false`. */
    sortKeys?: boolean;
    /** Leave out properties whose value is `undefined`, as JSON does. Default `false`. */
    ignoreUndefined?: boolean;
    /** Deepest nesting allowed. Default 100. */
    maxDepth?: number;
    /** Any other option of `encode`. */
    [option: string]: unknown;
  };
  /** Options for `decode`. */
  decode?: {
    /** Read 64-bit integers as BigInts. Default `false`. */
    useBigInt64?: boolean;
    /** Longest string allowed, in bytes. */
    maxStrLength?: number;
    /** Any other option of `decode`. */
    [option: string]: unknown;
  };
  /**
   * Store `Set` (extension type 1), `Map` (type 2) and typed arrays other than
   * `Uint8Array` (type 3) so that they read back as themselves. Default
   * `false`, which refuses Maps and Sets.
   */
  tagged?: boolean;
}

type YamlStringifyOptions =
  & YAML.DocumentOptions
  & YAML.SchemaOptions
  & YAML.CreateNodeOptions
  & YAML.ToStringOptions;
type YamlParseOptions =
  & YAML.ParseOptions
  & YAML.DocumentOptions
  & YAML.SchemaOptions
  & YAML.ToJSOptions;

/** Format options, one entry per built-in format. */
export interface FormatOptions {
  json?: JsonOptions;
  yaml?: YamlOptions;
  msgpack?: MsgpackOptions;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Encodes a codec's output as the bytes to write. */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? utf8.encode(data) : data;
}

/** Decodes UTF-8 strictly: invalid sequences are an error, not U+FFFD. */
export function decodeUtf8(data: Uint8Array): string {
  return strictUtf8.decode(data);
}

function unencodable(
  format: string,
  path: readonly (string | number)[],
  value: unknown,
): TypeError {
  return new TypeError(
    `cannot encode ${describeValue(value)} at ${
      renderPath(path)
    } as ${format}: it would not read back as written`,
  );
}

/** Finds the path from `root` to `target` (an object inside it), for error messages. */
function pathTo(root: unknown, target: unknown): (string | number)[] {
  const seen = new Set<unknown>();
  const search = (node: unknown, path: (string | number)[]): (string | number)[] | undefined => {
    if (node === target) return path;
    if (node === null || typeof node !== "object" || seen.has(node)) return undefined;
    seen.add(node);
    const entries: [string | number, unknown][] = Array.isArray(node)
      ? node.map((item, index) => [index, item])
      : Object.entries(node);
    for (const [key, child] of entries) {
      const found = search(child, [...path, key]);
      if (found) return found;
    }
    return undefined;
  };
  return search(root, []) ?? [];
}

// Containers that JSON.stringify and msgpack silently turn into `{}`.
const LOSSY_CONTAINERS = [Map, Set, WeakMap, WeakSet, WeakRef, Promise, RegExp, ArrayBuffer];

function isLossyContainer(value: object): boolean {
  return LOSSY_CONTAINERS.some((type) => value instanceof type) || ArrayBuffer.isView(value);
}

/** True for an object whose prototype is `Object.prototype` or `null`. */
export function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * True when `value` is made only of strings, finite numbers, booleans,
 * `null`, dense arrays and plain objects, nested at most 64 deep: data
 * every format stores as it is, so encoders can skip their detailed check.
 * A `false` means "look closer", not "refused".
 */
export function isPlainData(value: unknown, depth = 0): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth > 64) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !isPlainData(value[i], depth + 1)) return false;
        }
        return true;
      }
      if (!isPlainObject(value)) return false;
      for (const key in value) {
        if (!isPlainData((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The JSON format. Rejects cycles, BigInts, functions, symbols, NaN, ±Infinity and `undefined` where JSON would drop or change them, and Maps, Sets and typed arrays, which JSON writes as `{}`. */
export function jsonCodec<T = unknown>(options: JsonOptions = {}): Codec<T> {
  const indent = options.indent ?? 2;
  const { replacer, reviver, tagged = false } = options;
  return {
    name: "json",
    encode(input: T): string {
      const value = tagged ? toTaggedJson(input) : input;
      // JSON.stringify calls the replacer for the top-level value first.
      let first = true;
      const check = function (this: unknown, key: string, raw: unknown): unknown {
        const value = replacer ? replacer.call(this, key, raw) : raw;
        const atTop = first;
        first = false;
        const bad = typeof value === "function" || typeof value === "symbol" ||
          (typeof value === "number" && !Number.isFinite(value)) ||
          (value === undefined && (Array.isArray(this) || atTop)) ||
          (value !== null && typeof value === "object" &&
            typeof (value as { toJSON?: unknown }).toJSON !== "function" &&
            isLossyContainer(value));
        if (bad) {
          const holderPath = atTop ? [] : pathTo(valueRoot, this);
          throw unencodable(
            "JSON",
            atTop ? [] : [...holderPath, Array.isArray(this) ? Number(key) : key],
            value,
          );
        }
        return value;
      };
      const valueRoot: unknown = value;
      let text: string | undefined;
      try {
        if (replacer) {
          text = JSON.stringify(value, check, indent > 0 ? indent : undefined);
        } else {
          // Without a replacer, a separate check and a plain stringify are
          // about twice as fast as a checking replacer.
          const problem = findJsonProblem(value);
          if (problem) {
            throw problem.cycle
              ? new TypeError(`cannot encode a cycle at ${renderPath(problem.path)} as JSON`)
              : unencodable("JSON", problem.path, problem.value);
          }
          text = JSON.stringify(value, null, indent > 0 ? indent : undefined);
        }
      } catch (error) {
        if (error instanceof TypeError && !/^cannot encode/.test(error.message)) {
          throw new TypeError(`cannot encode value as JSON: ${error.message}`, { cause: error });
        }
        throw error;
      }
      if (text === undefined) throw unencodable("JSON", [], value);
      return indent > 0 ? `${text}\n` : text;
    },
    decode(data: Uint8Array): T {
      const value = JSON.parse(decodeUtf8(data), reviver);
      return tagged ? fromTaggedJson(value) as T : value;
    },
  };
}

interface JsonProblem {
  path: (string | number)[];
  value: unknown;
  cycle?: boolean;
}

/**
 * Finds the first value JSON.stringify would drop, change or fail on,
 * following its rules: `toJSON` first, `undefined` dropped silently only as
 * an object property.
 */
function findJsonProblem(root: unknown): JsonProblem | undefined {
  const ancestors = new Set<object>();
  const path: (string | number)[] = [];
  let found: JsonProblem | undefined;
  const visit = (raw: unknown, key: string, inArray: boolean, atTop: boolean): boolean => {
    let value = raw;
    if (
      value !== null && typeof value === "object" &&
      typeof (value as { toJSON?: unknown }).toJSON === "function"
    ) {
      value = (value as { toJSON(key: string): unknown }).toJSON(key);
    }
    switch (typeof value) {
      case "string":
      case "boolean":
        return true;
      case "number":
        if (Number.isFinite(value)) return true;
        break;
      case "undefined":
        if (!inArray && !atTop) return true;
        break;
      case "object": {
        if (value === null) return true;
        if (ancestors.has(value)) {
          found = { path: [...path], value, cycle: true };
          return false;
        }
        const isArray = Array.isArray(value);
        const proto = Object.getPrototypeOf(value);
        if (!isArray && proto !== Object.prototype && proto !== null && isLossyContainer(value)) {
          break;
        }
        ancestors.add(value);
        if (isArray) {
          const list = value as unknown[];
          for (let index = 0; index < list.length; index++) {
            path.push(index);
            if (!visit(list[index], String(index), true, false)) return false;
            path.pop();
          }
        } else {
          const record = value as Record<string, unknown>;
          for (const name of Object.keys(record)) {
            path.push(name);
            if (!visit(record[name], name, false, false)) return false;
            path.pop();
          }
        }
        ancestors.delete(value);
        return true;
      }
    }
    found = { path: [...path], value };
    return false;
  };
  visit(root, "", false, true);
  return found;
}

interface WalkRules {
  format: string;
  cycles: boolean;
  bigint: boolean;
  mapsAndSets: boolean;
}

/** Checks a value against what a non-JSON format can store, before encoding. */
function assertEncodable(root: unknown, rules: WalkRules): void {
  const ancestors = new Set<object>();
  const visit = (value: unknown, path: (string | number)[]): void => {
    switch (typeof value) {
      case "function":
      case "symbol":
        throw unencodable(rules.format, path, value);
      case "bigint":
        if (!rules.bigint) throw unencodable(rules.format, path, value);
        return;
      case "object":
        break;
      default:
        return;
    }
    if (value === null || value instanceof Date || ArrayBuffer.isView(value)) return;
    if (ancestors.has(value)) {
      if (rules.cycles) return;
      throw new TypeError(`cannot encode a cycle at ${renderPath(path)} as ${rules.format}`);
    }
    const isCollection = value instanceof Map || value instanceof Set;
    if ((isCollection && !rules.mapsAndSets) || (!isCollection && isLossyContainer(value))) {
      throw unencodable(rules.format, path, value);
    }
    ancestors.add(value);
    if (value instanceof Map) {
      for (const [key, item] of value) {
        visit(key, [...path, "<key>"]);
        visit(item, [...path, String(key)]);
      }
    } else if (value instanceof Set) {
      let index = 0;
      for (const item of value) visit(item, [...path, index++]);
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, [...path, index]));
    } else {
      for (const key of Object.keys(value)) {
        visit((value as Record<string, unknown>)[key], [...path, key]);
      }
    }
    ancestors.delete(value);
  };
  if (root === undefined) throw unencodable(rules.format, [], root);
  visit(root, []);
}

/** The YAML format. Repeated and cyclic objects become anchors and aliases. */
export function yamlCodec<T = unknown>(options: YamlOptions = {}): Codec<T> {
  // The public option types list the common options and pass the rest through.
  const stringify = options.stringify as YamlStringifyOptions | undefined;
  const parse = options.parse as YamlParseOptions | undefined;
  const stringifyOptions = options.tagged ? withYamlTags(stringify) : stringify;
  const parseOptions = options.tagged ? withYamlTags(parse) : parse;
  return {
    name: "yaml",
    encode(value: T): string {
      if (!isPlainData(value)) {
        assertEncodable(value, { format: "YAML", cycles: true, bigint: true, mapsAndSets: true });
      }
      return YAML.stringify(value, stringifyOptions);
    },
    decode(data: Uint8Array): T {
      const text = decodeUtf8(data);
      // yaml.parse reports problems as warnings for some inputs; treat an
      // empty document as corrupt rather than as `null`.
      if (text.trim() === "") throw new SyntaxError("empty YAML document");
      return YAML.parse(text, parseOptions);
    },
  };
}

/** The MessagePack format. Dates use the timestamp extension. */
export function msgpackCodec<T = unknown>(options: MsgpackOptions = {}): Codec<T> {
  const tagged = options.tagged === true;
  const encodeOptions = tagged
    ? { ...options.encode, extensionCodec: msgpackTags }
    : options.encode;
  const decodeOptions = tagged
    ? { ...options.decode, extensionCodec: msgpackTags }
    : options.decode;
  return {
    name: "msgpack",
    encode(value: T): Uint8Array {
      if (!isPlainData(value)) {
        assertEncodable(value, {
          format: "MessagePack",
          cycles: false,
          bigint: options.encode?.useBigInt64 === true,
          mapsAndSets: tagged,
        });
      }
      return MessagePack.encode(value, encodeOptions);
    },
    decode(data: Uint8Array): T {
      return MessagePack.decode(data, decodeOptions) as T;
    },
  };
}

/** Picks a format from a file name: `.yaml`/`.yml`, `.msgpack`/`.mpk`, otherwise JSON. */
export function formatFromPath(path: string): FormatName {
  const lower = path.toLowerCase();
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  if (lower.endsWith(".msgpack") || lower.endsWith(".mpk")) return "msgpack";
  return "json";
}

/** The codec for a built-in format name or a user codec, checked for shape. */
export function resolveCodec<T>(
  format: FormatName | Codec<T>,
  options: FormatOptions = {},
): Codec<T> & { readonly name: string } {
  switch (format) {
    case "json":
      return jsonCodec<T>(options.json) as Codec<T> & { name: string };
    case "yaml":
      return yamlCodec<T>(options.yaml) as Codec<T> & { name: string };
    case "msgpack":
      return msgpackCodec<T>(options.msgpack) as Codec<T> & { name: string };
  }
  if (
    format === null || typeof format !== "object" || typeof format.encode !== "function" ||
    typeof format.decode !== "function"
  ) {
    throw new TypeError(
      `format must be "json", "yaml", "msgpack" or an object with encode() and decode(); got ${
        typeof format === "string" ? JSON.stringify(format) : describeValue(format)
      }`,
    );
  }
  const custom = format;
  const name = custom.name ?? "custom";
  return {
    name,
    encode(value: T) {
      const data = custom.encode(value);
      if (typeof data !== "string" && !(data instanceof Uint8Array)) {
        throw new TypeError(
          `the ${name} codec's encode() returned ${
            describeValue(data)
          }, not a string or Uint8Array`,
        );
      }
      return data;
    },
    decode: (data: Uint8Array) => custom.decode(data),
  };
}

// ---------------------------------------------------------------------------
// Tagged values: Map, Set, Date and typed arrays in every format.

type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

type TypedArrayConstructor = new (buffer: ArrayBuffer) => TypedArray;

/** The typed array classes that the tagged forms know, by name (in a fixed order: MessagePack stores the index). */
const TYPED_ARRAYS: [string, TypedArrayConstructor][] = [
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "Float32Array",
  "Float64Array",
  "BigInt64Array",
  "BigUint64Array",
  "Float16Array",
].flatMap((name) => {
  const type = (globalThis as Record<string, unknown>)[name];
  return typeof type === "function" ? [[name, type as TypedArrayConstructor]] : [];
});

/**
 * The name of the standard typed array class of `value` (`"Float64Array"`),
 * or `undefined` when it is not a typed array (a `DataView`, say). A
 * subclass such as Node's `Buffer` counts as its standard base class.
 */
export function typedArrayName(value: unknown): string | undefined {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined;
  for (const [name, type] of TYPED_ARRAYS) if (value instanceof type) return name;
  return undefined;
}

/** A copy of `bytes` (little-endian, as the platform stores them) as a typed array called `name`. */
export function typedArrayFromBytes(name: string, bytes: Uint8Array): ArrayBufferView {
  const entry = TYPED_ARRAYS.find(([known]) => known === name);
  if (!entry) throw new TypeError(`unknown typed array type "${name}"`);
  const type = entry[1] as unknown as { BYTES_PER_ELEMENT: number } & TypedArrayConstructor;
  if (bytes.byteLength % type.BYTES_PER_ELEMENT !== 0) {
    throw new TypeError(`${bytes.byteLength} bytes do not make a whole ${name}`);
  }
  return new type(bytes.slice().buffer);
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let offset = 0; offset < bytes.length; offset += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(offset, offset + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text.replace(/\s+/g, ""));
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** The keys that mark a tagged value in the JSON form. */
const JSON_TAGS = new Set(["$map", "$set", "$date", "$bytes", "$typed"]);

/** How an object key is written in the tagged JSON form: keys starting with `$` get one more. */
export function escapeTaggedKey(key: string): string {
  return key.charCodeAt(0) === 36 /* $ */ ? `$${key}` : key;
}

/** The object key that a key of the tagged JSON form stands for. */
export function unescapeTaggedKey(key: string): string {
  return key.startsWith("$$") ? key.slice(1) : key;
}

/**
 * Turns a value into its tagged JSON form: plain JSON data that
 * `JSON.stringify` writes faithfully and {@linkcode fromTaggedJson} turns back.
 *
 * - `Map` → `{ "$map": [[key, value], …] }` (entries in order)
 * - `Set` → `{ "$set": [member, …] }`
 * - `Date` → `{ "$date": "2024-05-01T12:00:00.000Z" }` (`null` for an invalid date)
 * - `Uint8Array` → `{ "$bytes": "<base64>" }`
 * - other typed arrays → `{ "$typed": "Float64Array:<base64 of the little-endian bytes>" }`
 * - an object key that starts with `$` gets one more `$` (`"$ref"` → `"$$ref"`),
 *   so that no plain object reads back as a tag.
 *
 * Anything else (functions, class instances, `undefined`) is left for
 * `JSON.stringify` and the JSON codec's checks; a cycle is a `TypeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toTaggedJson } from "@x/atomic-store/reactive";
 *
 * const json = JSON.stringify(toTaggedJson({ tags: new Set(["a"]), $ref: 1 }));
 * assert.ok(json === '{"tags":{"$set":["a"]},"$$ref":1}');
 * ```
 */
export function toTaggedJson(value: unknown): unknown {
  const ancestors = new Set<object>();
  const path: (string | number)[] = [];
  const visit = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return value;
    if (value instanceof Date) {
      return { $date: Number.isNaN(value.getTime()) ? null : value.toISOString() };
    }
    if (ArrayBuffer.isView(value)) {
      const name = typedArrayName(value);
      if (name === "Uint8Array") return { $bytes: toBase64(bytesOf(value)) };
      if (name !== undefined) return { $typed: `${name}:${toBase64(bytesOf(value))}` };
      return value;
    }
    const isArray = Array.isArray(value);
    const isCollection = value instanceof Map || value instanceof Set;
    if (!isArray && !isCollection && !isPlainObject(value)) return value;
    if (ancestors.has(value)) {
      throw new TypeError(`cannot encode a cycle at ${renderPath(path)} as JSON`);
    }
    ancestors.add(value);
    let out: unknown;
    if (isArray) {
      out = value.map((item, index) => {
        path.push(index);
        const result = visit(item);
        path.pop();
        return result;
      });
    } else if (value instanceof Map) {
      let index = 0;
      const entries: unknown[] = [];
      for (const [key, item] of value) {
        path.push(index++);
        entries.push([visit(key), visit(item)]);
        path.pop();
      }
      out = { $map: entries };
    } else if (value instanceof Set) {
      let index = 0;
      const members: unknown[] = [];
      for (const item of value) {
        path.push(index++);
        members.push(visit(item));
        path.pop();
      }
      out = { $set: members };
    } else {
      const object: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        path.push(key);
        setOwn(object, escapeTaggedKey(key), visit((value as Record<string, unknown>)[key]));
        path.pop();
      }
      out = object;
    }
    ancestors.delete(value);
    return out;
  };
  return visit(value);
}

function malformed(tag: string, detail: string): SyntaxError {
  return new SyntaxError(`malformed ${tag} tag: ${detail}`);
}

/**
 * Turns the tagged JSON form of {@linkcode toTaggedJson} back into values.
 * The input is not modified. A malformed tag (`{ "$map": 5 }`) is a
 * `SyntaxError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromTaggedJson } from "@x/atomic-store/reactive";
 *
 * const value = fromTaggedJson(JSON.parse('{"byId": {"$map": [[1, "one"]]}}')) as {
 *   byId: Map<number, string>;
 * };
 * assert.ok(value.byId.get(1) === "one");
 * ```
 */
export function fromTaggedJson(json: unknown): unknown {
  const visit = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return value;
    if (Array.isArray(value)) return value.map(visit);
    const keys = Object.keys(value);
    const record = value as Record<string, unknown>;
    if (keys.length === 1 && JSON_TAGS.has(keys[0])) {
      const tag = keys[0];
      const body = record[tag];
      switch (tag) {
        case "$map": {
          if (!Array.isArray(body)) throw malformed(tag, "not an array of entries");
          const map = new Map();
          for (const entry of body) {
            if (!Array.isArray(entry) || entry.length !== 2) {
              throw malformed(tag, "an entry is not a [key, value] pair");
            }
            map.set(visit(entry[0]), visit(entry[1]));
          }
          return map;
        }
        case "$set":
          if (!Array.isArray(body)) throw malformed(tag, "not an array of members");
          return new Set(body.map(visit));
        case "$date": {
          if (body !== null && typeof body !== "string") throw malformed(tag, "not a string");
          const date = new Date(body === null ? NaN : body);
          if (body !== null && Number.isNaN(date.getTime())) {
            throw malformed(tag, `${JSON.stringify(body)} is not a date`);
          }
          return date;
        }
        case "$bytes":
          if (typeof body !== "string") throw malformed(tag, "not a base64 string");
          try {
            return fromBase64(body);
          } catch (cause) {
            throw new SyntaxError(`malformed $bytes tag: not base64`, { cause });
          }
        case "$typed": {
          const match = typeof body === "string" ? /^(\w+):(.*)$/s.exec(body) : null;
          if (!match) throw malformed(tag, 'not "<TypeName>:<base64>"');
          try {
            return typedArrayFromBytes(match[1], fromBase64(match[2]));
          } catch (cause) {
            throw new SyntaxError(`malformed $typed tag: ${(cause as Error).message}`, { cause });
          }
        }
      }
    }
    const object: Record<string, unknown> = {};
    for (const key of keys) setOwn(object, unescapeTaggedKey(key), visit(record[key]));
    return object;
  };
  return visit(json);
}

// YAML: the YAML 1.1 collection and timestamp tags, and byte tags of our own
// (the library's `!!binary` reads as a Node Buffer and writes a view's whole
// underlying buffer).

const yamlBinary: YAML.ScalarTag = {
  identify: (value) => typedArrayName(value) === "Uint8Array",
  default: false,
  tag: "tag:yaml.org,2002:binary",
  resolve: (source) => fromBase64(source),
  stringify: (item) => toBase64(bytesOf(item.value as Uint8Array)),
};

const yamlTypedArrays: YAML.ScalarTag[] = TYPED_ARRAYS
  .filter(([name]) => name !== "Uint8Array")
  .map(([name]) => ({
    identify: (value: unknown) => typedArrayName(value) === name,
    default: false,
    tag: `!${name}`,
    resolve: (source: string) => typedArrayFromBytes(name, fromBase64(source)),
    stringify: (item: YAML.Scalar) => toBase64(bytesOf(item.value as ArrayBufferView)),
  }));

function withYamlTags<T extends { customTags?: YAML.SchemaOptions["customTags"] }>(
  options: T | undefined,
): T {
  const tags: YAML.Tags = ["set", "omap", "timestamp", yamlBinary, ...yamlTypedArrays];
  const custom = options?.customTags;
  return {
    ...options,
    customTags: typeof custom === "function"
      ? (defaults: YAML.Tags) => custom([...tags, ...defaults])
      : [...tags, ...(custom ?? [])],
  } as T;
}

// MessagePack: Set, Map and non-byte typed arrays as extension types; Date
// and Uint8Array are native.

const msgpackTags: MessagePack.ExtensionCodec = new MessagePack.ExtensionCodec();
msgpackTags.register({
  type: 1,
  encode: (value) =>
    value instanceof Set ? MessagePack.encode([...value], { extensionCodec: msgpackTags }) : null,
  decode: (data) => new Set(MessagePack.decode(data, { extensionCodec: msgpackTags }) as unknown[]),
});
msgpackTags.register({
  type: 2,
  encode: (value) =>
    value instanceof Map ? MessagePack.encode([...value], { extensionCodec: msgpackTags }) : null,
  decode: (data) =>
    new Map(MessagePack.decode(data, { extensionCodec: msgpackTags }) as [unknown, unknown][]),
});
msgpackTags.register({
  type: 3,
  encode: (value) => {
    const name = typedArrayName(value);
    if (name === undefined || name === "Uint8Array") return null;
    const bytes = bytesOf(value as ArrayBufferView);
    const out = new Uint8Array(bytes.byteLength + 1);
    out[0] = TYPED_ARRAYS.findIndex(([known]) => known === name);
    out.set(bytes, 1);
    return out;
  },
  decode: (data) => {
    const entry = TYPED_ARRAYS[data[0]];
    if (!entry) throw new TypeError(`unknown typed array type number ${data[0]}`);
    return typedArrayFromBytes(entry[0], data.subarray(1));
  },
});
