/**
 * The shard file format of a pod: naming, encoding, decoding, gzip.
 *
 * A shard file holds a header and one record per key, `[key, seq, value]`.
 * JSON shards put one record per line, so they read well and diff well:
 *
 * ```text
 * [{"pod":1},
 * ["alpha",0,{"n":1}],
 * ["beta",1,[1,2,3]]]
 * ```
 *
 * MessagePack shards hold the same array as one MessagePack value. With
 * `gzip`, the file is that content compressed, and its name ends in `.gz`.
 *
 * @module
 */

import { gunzipSync, gzipSync } from "node:zlib";
import {
  type Codec,
  isPlainData as isPlain,
  jsonCodec,
  msgpackCodec,
  toBytes,
} from "../_internal/codec.ts";
import { CorruptFileError } from "../_internal/errors.ts";

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

/** The first line of a JSON shard. */
export const JSON_HEADER_LINE = `[{"pod":${SHARD_VERSION}}`;

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
export function encodeShard(format: ShardFormat, records: readonly ShardRecord[]): Uint8Array {
  if (format.format === "json") {
    const lines = [JSON_HEADER_LINE];
    for (const [key, seq, value] of records) lines.push(jsonRecordLine(key, seq, value, false));
    return joinJsonShard(lines);
  }
  try {
    return toBytes(format.codec.encode([{ pod: SHARD_VERSION }, ...records]));
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

/**
 * Decodes a shard file's bytes, checking its structure. Anything wrong is a
 * {@linkcode CorruptFileError} naming `path`.
 */
export function decodeShard(path: string, format: ShardFormat, bytes: Uint8Array): ShardRecord[] {
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
  const header = value[0] as { pod?: unknown } | null;
  if (header === null || typeof header !== "object" || typeof header.pod !== "number") {
    throw corrupt("not a pod shard (no header)");
  }
  if (header.pod !== SHARD_VERSION) {
    throw corrupt(`written in pod layout ${header.pod}; this version reads ${SHARD_VERSION}`);
  }
  const records: ShardRecord[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < value.length; i++) {
    const record = value[i];
    if (
      !Array.isArray(record) || record.length !== 3 || typeof record[0] !== "string" ||
      !Number.isSafeInteger(record[1]) || record[1] < 0
    ) {
      throw corrupt(`record ${i} is not [key, sequence number, value]`);
    }
    if (seen.has(record[0])) throw corrupt(`key ${describeKey(record[0])} appears twice`);
    seen.add(record[0]);
    records.push(record as unknown as ShardRecord);
  }
  return records;
}
