/**
 * The one place that decides how values become bytes: JSON (the default),
 * YAML (`npm:yaml`), MessagePack (`npm:@msgpack/msgpack`) and user codecs.
 *
 * Encoders refuse values they cannot store faithfully with a `TypeError`
 * naming where in the value the problem is, before any file is touched.
 * Decoders throw whatever the parser throws; callers turn that into a
 * `CorruptFileError` naming the file.
 *
 * @module
 */

import * as YAML from "yaml";
import * as MessagePack from "@msgpack/msgpack";

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
}

/** Options of the YAML format, handed to `npm:yaml`. */
export interface YamlOptions {
  /** Options for `YAML.stringify`. */
  stringify?:
    & YAML.DocumentOptions
    & YAML.SchemaOptions
    & YAML.CreateNodeOptions
    & YAML.ToStringOptions;
  /** Options for `YAML.parse`. */
  parse?: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions & YAML.ToJSOptions;
}

/** Options of the MessagePack format, handed to `npm:@msgpack/msgpack`. */
export interface MsgpackOptions {
  /** Options for `encode`. */
  encode?: MessagePack.EncoderOptions;
  /** Options for `decode`. */
  decode?: MessagePack.DecoderOptions;
}

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

/** Renders a value path like `$.users[3].name`. */
function renderPath(path: readonly (string | number)[]): string {
  let out = "$";
  for (const part of path) {
    out += typeof part === "number"
      ? `[${part}]`
      : /^[A-Za-z_$][\w$]*$/.test(part)
      ? `.${part}`
      : `[${JSON.stringify(part)}]`;
  }
  return out;
}

function kindOf(value: unknown): string {
  if (typeof value === "function") return `a function (${value.name || "anonymous"})`;
  if (typeof value === "symbol") return `a symbol (${String(value)})`;
  if (typeof value === "bigint") return `a BigInt (${value}n)`;
  if (typeof value === "number") return String(value);
  if (value === undefined) return "undefined";
  const name = (value as object).constructor?.name;
  return name ? `a ${name}` : "an object";
}

function unencodable(
  format: string,
  path: readonly (string | number)[],
  value: unknown,
): TypeError {
  return new TypeError(
    `cannot encode ${kindOf(value)} at ${
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

/** The JSON format. Rejects cycles, BigInts, functions, symbols, NaN, ±Infinity and `undefined` where JSON would drop or change them, and Maps, Sets and typed arrays, which JSON writes as `{}`. */
export function jsonCodec<T = unknown>(options: JsonOptions = {}): Codec<T> {
  const indent = options.indent ?? 2;
  const { replacer, reviver } = options;
  return {
    name: "json",
    encode(value: T): string {
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
        text = JSON.stringify(value, check, indent > 0 ? indent : undefined);
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
      return JSON.parse(decodeUtf8(data), reviver);
    },
  };
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
  return {
    name: "yaml",
    encode(value: T): string {
      assertEncodable(value, { format: "YAML", cycles: true, bigint: true, mapsAndSets: true });
      return YAML.stringify(value, options.stringify);
    },
    decode(data: Uint8Array): T {
      const text = decodeUtf8(data);
      // yaml.parse reports problems as warnings for some inputs; treat an
      // empty document as corrupt rather than as `null`.
      if (text.trim() === "") throw new SyntaxError("empty YAML document");
      return YAML.parse(text, options.parse);
    },
  };
}

/** The MessagePack format. Dates use the timestamp extension. */
export function msgpackCodec<T = unknown>(options: MsgpackOptions = {}): Codec<T> {
  return {
    name: "msgpack",
    encode(value: T): Uint8Array {
      assertEncodable(value, {
        format: "MessagePack",
        cycles: false,
        bigint: options.encode?.useBigInt64 === true,
        mapsAndSets: false,
      });
      return MessagePack.encode(value, options.encode);
    },
    decode(data: Uint8Array): T {
      return MessagePack.decode(data, options.decode) as T;
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
        typeof format === "string" ? JSON.stringify(format) : kindOf(format)
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
          `the ${name} codec's encode() returned ${kindOf(data)}, not a string or Uint8Array`,
        );
      }
      return data;
    },
    decode: (data: Uint8Array) => custom.decode(data),
  };
}
