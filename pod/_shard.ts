/**
 * The shard file format of a pod: naming, encoding, decoding, gzip.
 *
 * A shard file holds a header and one record per key, `[key, seq, value]`.
 * JSON shards put one record per line, so they read well and diff well:
 *
 * ```text
 * [{"pod":1,"n":2,"seq":[0,1]},
 * ["alpha",0,{"n":1}],
 * ["beta",1,[1,2,3]]]
 * ```
 *
 * The header says how many records follow (`n`), the lowest and highest
 * sequence numbers among them (`seq`) and, optionally, summaries of the
 * values (`summary`, by name; a tracker keeps its counts there). It comes
 * first and is small, so a pod can open by reading the first few kilobytes
 * of each file ({@linkcode readShardHeader}) and the records later. Files
 * without `n` and `seq` (written before they existed) are read whole.
 *
 * MessagePack shards hold the same array as one MessagePack value. With
 * `gzip`, the file is that content compressed, and its name ends in `.gz`.
 *
 * @module
 */

import { constants as zlib, gunzipSync, gzipSync } from "node:zlib";
import { decodeMulti } from "@msgpack/msgpack";
import {
  type Codec,
  isPlainData as isPlain,
  jsonCodec,
  msgpackCodec,
  toBytes,
} from "../_internal/codec.ts";
import { CorruptFileError } from "../_internal/errors.ts";
import { fs } from "../_internal/fs.ts";

/** The formats a pod can store its shards in. */
export type PodFormat = "json" | "msgpack";

/** The version of the shard layout this module writes and reads. */
export const SHARD_VERSION = 1;

/** Names of shard files: `shard-000042.json`, `shard-000042.msgpack.gz`, … */
export const SHARD_FILE = /^shard-(\d{6,})\.(json|msgpack)(\.gz)?$/;

/** Leftovers of an interrupted atomic write of a shard (temporary files, rollback links). */
export const SHARD_LEFTOVER = /^\.shard-\d{6,}\.(json|msgpack)(\.gz)?\.[0-9a-z]+\.(tmp|old)$/;

/** How a pod's shards are stored. */
export interface ShardFormat {
  readonly format: PodFormat;
  readonly gzip: boolean;
  readonly codec: Codec<unknown>;
}

/** One key as stored: the key, its sequence number (its place in the order) and its value. */
export type ShardRecord = readonly [key: string, seq: number, value: unknown];

/** What a shard file says about itself before its records. */
export interface ShardHeader {
  /** The number of records; absent in files written before it existed. */
  readonly n?: number;
  /** The lowest and highest sequence numbers of the records; absent likewise. */
  readonly seq?: readonly [number, number];
  /** Summaries of the values, by the name of what made them. */
  readonly summary?: Readonly<Record<string, unknown>>;
}

/** A decoded shard file. */
export interface DecodedShard {
  readonly header: ShardHeader;
  readonly records: ShardRecord[];
  /** Whether the records are in sequence order, as this module writes them. */
  readonly sorted: boolean;
}

const compactJson = jsonCodec<unknown>({ indent: 0 });
const msgpack = msgpackCodec<unknown>();

/** The format description for `format` and `gzip`. */
export function shardFormat(format: PodFormat, gzip: boolean): ShardFormat {
  return { format, gzip, codec: format === "json" ? compactJson : msgpack };
}

/** The file name of shard `index`. */
export function shardFileName(index: number, format: ShardFormat): string {
  return `shard-${String(index).padStart(6, "0")}.${format.format}${format.gzip ? ".gz" : ""}`;
}

function describeKey(key: string): string {
  return JSON.stringify(key);
}

/**
 * Throws a `TypeError` naming `key` when `value` cannot be stored in
 * `format` faithfully.
 */
export function checkValue(format: ShardFormat, key: string, value: unknown): void {
  if (isPlain(value)) return;
  try {
    format.codec.encode(value);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new TypeError(`cannot store the value of key ${describeKey(key)}: ${error.message}`, {
      cause: error,
    });
  }
}

function headerObject(header: ShardHeader): Record<string, unknown> {
  const object: Record<string, unknown> = { pod: SHARD_VERSION, n: header.n, seq: header.seq };
  if (header.summary !== undefined) object.summary = header.summary;
  return object;
}

/** The first line of a JSON shard. */
export function jsonHeaderLine(header: ShardHeader): string {
  return `[${JSON.stringify(headerObject(header))}`;
}

/**
 * One record of a JSON shard, as its line. `checked` says that the value is
 * already known to be storable, which skips its check; a value that cannot
 * be stored is a `TypeError` naming its key.
 */
export function jsonRecordLine(key: string, seq: number, value: unknown, checked: boolean): string {
  if (checked || isPlain(value)) return JSON.stringify([key, seq, value]);
  const format = shardFormat("json", false);
  checkValue(format, key, value);
  return compactJson.encode([key, seq, value]) as string;
}

/** A JSON shard from its lines (the header line first). */
export function joinJsonShard(lines: readonly string[]): Uint8Array {
  return toBytes(`${lines.join(",\n")}]\n`);
}

/**
 * Encodes the records of one shard (uncompressed). A value that cannot be
 * stored is a `TypeError` naming its key.
 */
export function encodeShard(
  format: ShardFormat,
  header: ShardHeader,
  records: readonly ShardRecord[],
): Uint8Array {
  if (format.format === "json") {
    const lines = [jsonHeaderLine(header)];
    for (const [key, seq, value] of records) lines.push(jsonRecordLine(key, seq, value, false));
    return joinJsonShard(lines);
  }
  try {
    return toBytes(format.codec.encode([headerObject(header), ...records]));
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    for (const record of records) checkValue(format, record[0], record[2]);
    throw error;
  }
}

/** Compresses encoded shard contents when the format asks for gzip. */
export function compressShard(format: ShardFormat, data: Uint8Array): Uint8Array {
  if (!format.gzip) return data;
  const zipped = gzipSync(data);
  return new Uint8Array(zipped.buffer, zipped.byteOffset, zipped.byteLength);
}

/** Decompresses a gzip shard file. */
export function decompressShard(data: Uint8Array): Uint8Array {
  const unzipped = gunzipSync(data);
  return new Uint8Array(unzipped.buffer, unzipped.byteOffset, unzipped.byteLength);
}

/** Checks a decoded header; a {@linkcode CorruptFileError} naming `path` if it is wrong. */
function checkHeader(path: string, format: ShardFormat, header: unknown): ShardHeader {
  const corrupt = (detail: string) => new CorruptFileError(path, format.format, { detail });
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw corrupt("not a pod shard (no header)");
  }
  const { pod, n, seq, summary } = header as Record<string, unknown>;
  if (typeof pod !== "number") throw corrupt("not a pod shard (no header)");
  if (pod !== SHARD_VERSION) {
    throw corrupt(`written in pod layout ${pod}; this version reads ${SHARD_VERSION}`);
  }
  if (n !== undefined && !(Number.isSafeInteger(n) && (n as number) >= 0)) {
    throw corrupt(`its header has n = ${JSON.stringify(n)}, not a record count`);
  }
  if (
    seq !== undefined &&
    !(Array.isArray(seq) && seq.length === 2 && Number.isSafeInteger(seq[0]) &&
      Number.isSafeInteger(seq[1]) && 0 <= seq[0] && seq[0] <= seq[1])
  ) {
    throw corrupt(`its header has seq = ${JSON.stringify(seq)}, not [lowest, highest]`);
  }
  if (
    summary !== undefined &&
    (summary === null || typeof summary !== "object" || Array.isArray(summary))
  ) {
    throw corrupt("its header has a summary that is not an object");
  }
  return header as ShardHeader;
}

/** Whether a header can stand in for its file until the records are needed. */
export function isCompleteHeader(
  header: ShardHeader,
): header is ShardHeader & { n: number; seq: readonly [number, number] } {
  return header.n !== undefined && header.n > 0 && header.seq !== undefined;
}

/**
 * Decodes a shard file's bytes, checking its structure. Anything wrong is a
 * {@linkcode CorruptFileError} naming `path`.
 */
export function decodeShard(path: string, format: ShardFormat, bytes: Uint8Array): DecodedShard {
  let raw = bytes;
  if (format.gzip) {
    try {
      raw = decompressShard(bytes);
    } catch (cause) {
      throw new CorruptFileError(path, `gzip ${format.format}`, { cause });
    }
  }
  let value: unknown;
  try {
    value = format.codec.decode(raw);
  } catch (cause) {
    throw new CorruptFileError(path, format.format, { cause });
  }
  const corrupt = (detail: string) => new CorruptFileError(path, format.format, { detail });
  if (!Array.isArray(value) || value.length === 0) {
    throw corrupt("not a pod shard (expected an array starting with a header)");
  }
  const header = checkHeader(path, format, value[0]);
  const records = value as unknown as ShardRecord[];
  records.shift();
  let sorted = true;
  let low = Infinity;
  let high = -1;
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    const seq = record[1];
    if (
      !Array.isArray(record) || record.length !== 3 || typeof record[0] !== "string" ||
      !Number.isSafeInteger(seq) || seq < 0
    ) {
      throw corrupt(`record ${i + 1} is not [key, sequence number, value]`);
    }
    if (seq <= high) sorted = false;
    else high = seq;
    if (seq < low) low = seq;
  }
  // Keys that appear twice are found when the records are installed.
  if (header.n !== undefined && header.n !== records.length) {
    throw corrupt(`its header announces ${header.n} records, but it holds ${records.length}`);
  }
  if (
    header.seq !== undefined && records.length > 0 &&
    (header.seq[0] !== low || header.seq[1] !== high)
  ) {
    throw corrupt(
      `its header gives sequence numbers ${header.seq[0]} to ${
        header.seq[1]
      }, but its records have ${low} to ${high}`,
    );
  }
  return { header, records, sorted };
}

/** How much of a shard file {@linkcode readShardHeader} reads first. */
const HEADER_PREFIX = 4096;

/** The header at the start of `bytes` (uncompressed), or `undefined` if it does not fit. */
function headerFromPrefix(format: ShardFormat, bytes: Uint8Array): unknown {
  if (format.format === "json") {
    const text = new TextDecoder().decode(bytes);
    const end = text.indexOf("\n");
    if (end < 0) return undefined;
    // `[{"pod":1,…},` or, for a shard without records, `[{"pod":1,…}]`.
    return JSON.parse(text.slice(1, end - 1));
  }
  const kind = bytes[0];
  const skip = kind >= 0x90 && kind <= 0x9f ? 1 : kind === 0xdc ? 3 : kind === 0xdd ? 5 : -1;
  if (skip < 0) throw new TypeError("not a MessagePack array");
  try {
    for (const value of decodeMulti(bytes.subarray(skip))) return value;
  } catch (error) {
    if (error instanceof RangeError) return undefined; // cut short
    throw error;
  }
  return undefined;
}

/**
 * Reads the header of the shard file at `path` from its first few
 * kilobytes. When the header does not fit there (or looks unusual), the
 * whole file is decoded, and its records come back too. A damaged file is
 * a {@linkcode CorruptFileError} naming `path`.
 */
export function readShardHeader(
  path: string,
  format: ShardFormat,
): { header: ShardHeader } | DecodedShard {
  const file = fs.openSync(path, { read: true });
  let prefix: Uint8Array;
  let whole = false;
  try {
    const buffer = new Uint8Array(HEADER_PREFIX);
    let filled = 0;
    for (;;) {
      const read = file.readSync(buffer.subarray(filled));
      if (read === null || read === 0) {
        whole = true;
        break;
      }
      filled += read;
      if (filled === buffer.length) break;
    }
    prefix = buffer.subarray(0, filled);
  } finally {
    file.closeSync();
  }
  let header: unknown;
  try {
    const raw = format.gzip
      ? new Uint8Array(gunzipSync(prefix, { finishFlush: zlib.Z_SYNC_FLUSH }))
      : prefix;
    header = headerFromPrefix(format, raw);
  } catch {
    header = undefined; // unusual or damaged: decoding the whole file says which
  }
  if (header === undefined) {
    return decodeShard(path, format, whole ? prefix : fs.readFileSync(path));
  }
  return { header: checkHeader(path, format, header) };
}
