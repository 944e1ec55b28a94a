/**
 * The on-disk format of an object database: one append-only log.
 *
 * ```text
 * file    := FILE_MAGIC (16 bytes: "ATOMIC-OBJECTDB" 0x01) record*
 * record  := header body trailer
 * header  := magic u32 "ODBR" | kind u8 | 3 zero bytes | body length u32 | CRC-32C of the
 *            previous 12 bytes u32                                       (16 bytes)
 * trailer := CRC-32C of the body u32 | commit marker u32 "CMT!"          (8 bytes)
 * ```
 *
 * All integers are little-endian. Kinds: 1, a committed transaction (the
 * body is MessagePack, see `_engine.ts`); 2, a failed transaction (empty
 * body; it only counts); 3, a chunk of a stored file (raw bytes, at most
 * {@linkcode BLOB_CHUNK_SIZE}), referenced by the transaction that follows it.
 *
 * Writers append whole records, then fdatasync. Reading stops at the first
 * record that is not complete: if everything from there to the end of the
 * file looks like an interrupted append (a partial header, a record that
 * runs past the end, a zero-filled tail), it is a torn tail, which the next
 * writer truncates; anything else (a bad header checksum, a bad body
 * checksum under an intact commit marker, a zeroed header followed by data)
 * is damage, reported with its offset and never truncated. The header has
 * its own checksum so that a damaged length field cannot pass for a torn
 * tail and silently drop the records after it.
 *
 * @module
 */

import { crc32c } from "./_crc32c.ts";

/** The first 16 bytes of every database file. */
export const FILE_MAGIC: Uint8Array = new TextEncoder().encode("ATOMIC-OBJECTDB\x01");
/** Size of {@linkcode FILE_MAGIC}. */
export const FILE_HEADER_SIZE = 16;
/** Size of a record header. */
export const HEADER_SIZE = 16;
/** Size of a record trailer. */
export const TRAILER_SIZE = 8;
/** Bytes a record adds to its body. */
export const RECORD_OVERHEAD: number = HEADER_SIZE + TRAILER_SIZE;

/** A committed transaction. */
export const KIND_COMMIT = 1;
/** A transaction that failed with a conflict: recorded, without contents. */
export const KIND_FAILED = 2;
/** A chunk of a stored file. */
export const KIND_BLOB = 3;

/** Files are stored in records of at most this many bytes. */
export const BLOB_CHUNK_SIZE: number = 1 << 20;
/** The largest body a record can have (the length field is 32 bits). */
export const MAX_BODY_SIZE = 0xffff_ffff - RECORD_OVERHEAD;

const RECORD_MAGIC = 0x5242_444f; // "ODBR"
const COMMIT_MARKER = 0x2154_4d43; // "CMT!"

/** Frames `body` as a record of `kind`. */
export function encodeRecord(kind: number, body: Uint8Array): Uint8Array {
  if (body.length > MAX_BODY_SIZE) {
    throw new RangeError(`a record body of ${body.length} bytes is too large for the log`);
  }
  const out = new Uint8Array(RECORD_OVERHEAD + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, RECORD_MAGIC, true);
  out[4] = kind;
  view.setUint32(8, body.length, true);
  view.setUint32(12, crc32c(out.subarray(0, 12)), true);
  out.set(body, HEADER_SIZE);
  view.setUint32(HEADER_SIZE + body.length, crc32c(body), true);
  view.setUint32(HEADER_SIZE + body.length + 4, COMMIT_MARKER, true);
  return out;
}

/** What the first bytes of a file say about it. */
export type FileHeaderState = "valid" | "torn" | "foreign";

/**
 * Checks the file header. A file shorter than the header whose bytes are a
 * prefix of it (or zeros) was torn while being created.
 */
export function checkFileHeader(bytes: Uint8Array): FileHeaderState {
  const n = Math.min(bytes.length, FILE_HEADER_SIZE);
  let prefix = true;
  let zeros = true;
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== FILE_MAGIC[i]) prefix = false;
    if (bytes[i] !== 0) zeros = false;
  }
  if (bytes.length >= FILE_HEADER_SIZE) return prefix ? "valid" : "foreign";
  return prefix || zeros ? "torn" : "foreign";
}

/** A complete, checksum-verified record. `body` is only valid until the scan moves on. */
export interface LogRecord {
  offset: number;
  kind: number;
  body: Uint8Array;
  end: number;
}

/** How a scan ended. */
export type ScanEnd =
  | { type: "end"; offset: number }
  | { type: "torn"; offset: number; detail: string }
  | { type: "corrupt"; offset: number; detail: string };

/** Reads into `buffer` from `position`; returns the bytes read (0 at the end of the file). */
export type ReadAt = (buffer: Uint8Array, position: number) => number;

const WINDOW_SIZE = 1 << 20;

/** Buffered positional reads over a byte range. */
class Window {
  #readAt: ReadAt;
  #buffer = new Uint8Array(0);
  #start = 0;
  #length = 0;

  constructor(readAt: ReadAt) {
    this.#readAt = readAt;
  }

  /** Exactly `length` bytes at `position`, or fewer at the end of the file. */
  get(position: number, length: number): Uint8Array {
    const from = position - this.#start;
    if (from >= 0 && from + length <= this.#length) {
      return this.#buffer.subarray(from, from + length);
    }
    const size = Math.max(length, WINDOW_SIZE);
    if (this.#buffer.length < size) this.#buffer = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const n = this.#readAt(this.#buffer.subarray(filled, size), position + filled);
      if (n <= 0) break;
      filled += n;
    }
    this.#start = position;
    this.#length = filled;
    return this.#buffer.subarray(0, Math.min(length, filled));
  }
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Reads the records in `[from, to)`, verifying each, and returns how the
 * scan ended. Records are yielded as they are read; a consumer may stop
 * early.
 */
export function* scanLog(readAt: ReadAt, from: number, to: number): Generator<LogRecord, ScanEnd> {
  const window = new Window(readAt);
  const restIsZero = (start: number): boolean => {
    for (let at = start; at < to; at += WINDOW_SIZE) {
      const chunk = window.get(at, Math.min(WINDOW_SIZE, to - at));
      if (chunk.length < Math.min(WINDOW_SIZE, to - at) || !isZero(chunk)) return false;
    }
    return true;
  };
  let p = from;
  while (p < to) {
    if (to - p < HEADER_SIZE) {
      return { type: "torn", offset: p, detail: "incomplete record header" };
    }
    const header = window.get(p, HEADER_SIZE);
    if (header.length < HEADER_SIZE) {
      return { type: "torn", offset: p, detail: "the file ended while being read" };
    }
    const view = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
    if (isZero(header)) {
      return restIsZero(p)
        ? { type: "torn", offset: p, detail: "zero-filled tail" }
        : { type: "corrupt", offset: p, detail: "zeroed record header followed by data" };
    }
    if (
      view.getUint32(0, true) !== RECORD_MAGIC ||
      view.getUint32(12, true) !== crc32c(header.subarray(0, 12))
    ) {
      return { type: "corrupt", offset: p, detail: "bad record header" };
    }
    const kind = header[4];
    if (kind < KIND_COMMIT || kind > KIND_BLOB || header[5] | header[6] | header[7]) {
      return { type: "corrupt", offset: p, detail: `unknown record kind ${kind}` };
    }
    const length = view.getUint32(8, true);
    const end = p + RECORD_OVERHEAD + length;
    if (end > to) {
      return { type: "torn", offset: p, detail: "the last record ends past the end of the file" };
    }
    const rest = window.get(p + HEADER_SIZE, length + TRAILER_SIZE);
    if (rest.length < length + TRAILER_SIZE) {
      return { type: "torn", offset: p, detail: "the file ended while being read" };
    }
    const body = rest.subarray(0, length);
    const trailer = new DataView(rest.buffer, rest.byteOffset + length, TRAILER_SIZE);
    if (trailer.getUint32(4, true) !== COMMIT_MARKER) {
      const unfinished = isZero(rest.subarray(length)) && end === to;
      return unfinished
        ? { type: "torn", offset: p, detail: "the last record has no commit marker" }
        : { type: "corrupt", offset: p, detail: "missing commit marker" };
    }
    if (trailer.getUint32(0, true) !== crc32c(body)) {
      return { type: "corrupt", offset: p, detail: "record checksum mismatch" };
    }
    yield { offset: p, kind, body, end };
    p = end;
  }
  return { type: "end", offset: p };
}
