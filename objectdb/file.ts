/**
 * Files stored in an object database: {@linkcode PersistentFile} wraps bytes
 * to store, and becomes a {@linkcode PersistentStream} once committed.
 *
 * @module
 */

import { CorruptFileError } from "../_internal/errors.ts";
import { type FileHandle, fs } from "../_internal/fs.ts";
import { crc32c } from "./_crc32c.ts";
import { type FileSource, fileStates, type StreamInfo, streamInfos } from "./_core.ts";
import { HEADER_SIZE } from "./_log.ts";

/**
 * What a {@linkcode PersistentFile} can read: bytes, a byte stream, or an
 * open file (anything with a `read(buffer)` method like `Deno.FsFile`, read
 * from its current position to its end).
 */
export type PersistentFileSource = FileSource;

/**
 * Bytes to store in a persistent object's attribute, read once from a
 * source when the transaction commits; large sources are copied in chunks,
 * never held whole in memory.
 *
 * After the commit, the very same object (`===` still holds) has become a
 * {@linkcode PersistentStream} over the stored bytes. A stream or reader
 * source is single-use: if the commit fails after reading it, the file
 * cannot be committed again. Closing an open file source stays the
 * caller's job.
 *
 * @example Store a file's contents
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, PersistentFile, PersistentStream, transaction } from "@x/atomic-store/objectdb";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/report.txt`, "quarterly numbers");
 * await using db = await Database.open(`${dir}/files.db`);
 * await transaction.run(async () => {
 *   const root = new Persistent() as Persistent & { report?: PersistentFile | PersistentStream };
 *   db.elect(root);
 *   checkout(root);
 *   using source = await Deno.open(`${dir}/report.txt`);
 *   root.report = new PersistentFile(source);
 *   await transaction.commit();
 *   assert.ok(root.report instanceof PersistentStream);
 * });
 * ```
 */
export class PersistentFile {
  /** Wraps `source`; nothing is read until a commit stores the file. */
  constructor(source: PersistentFileSource) {
    const ok = source instanceof Uint8Array || source instanceof ReadableStream ||
      (typeof source === "object" && source !== null &&
        typeof (source as { read?: unknown }).read === "function");
    if (!ok) {
      throw new TypeError(
        "PersistentFile takes a Uint8Array, a ReadableStream<Uint8Array> or an open file",
      );
    }
    fileStates.set(this, { source, consumed: false });
  }
}

interface OpenState {
  handle: FileHandle | undefined;
  position: number;
  /** Serialises reads on the shared handle. */
  busy: Promise<unknown>;
}

const openStates = new WeakMap<object, OpenState>();
const chunkStarts = new WeakMap<StreamInfo, number[]>();

function infoOf(stream: object): StreamInfo {
  const info = streamInfos.get(stream);
  if (!info) throw new TypeError("not a PersistentStream");
  return info;
}

function startsOf(info: StreamInfo): number[] {
  let starts = chunkStarts.get(info);
  if (!starts) {
    starts = [];
    let at = 0;
    for (const length of info.lengths) {
      starts.push(at);
      at += length;
    }
    chunkStarts.set(info, starts);
  }
  return starts;
}

async function readFully(handle: FileHandle, position: number, into: Uint8Array): Promise<void> {
  await handle.seek(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < into.length) {
    const n = await handle.read(into.subarray(filled));
    if (n === null || n === 0) {
      throw new CorruptFileError(handle.path, "objectdb", {
        offset: position + filled,
        detail: "a stored file ends early",
      });
    }
    filled += n;
  }
}

/** Reads chunk `index` of `info` whole, checking its record checksum. */
async function readChunk(handle: FileHandle, info: StreamInfo, index: number): Promise<Uint8Array> {
  const length = info.lengths[index];
  const buffer = new Uint8Array(length + 4);
  await readFully(handle, info.offsets[index], buffer);
  const data = buffer.subarray(0, length);
  const stored = new DataView(buffer.buffer).getUint32(length, true);
  if (crc32c(data) !== stored) {
    throw new CorruptFileError(info.path, "objectdb", {
      offset: info.offsets[index] - HEADER_SIZE,
      detail: "record checksum mismatch in a stored file",
    });
  }
  return data;
}

/**
 * A file stored in a database: what a {@linkcode PersistentFile} attribute
 * holds once committed (and what loading gives). It is immutable.
 *
 * There are two independent ways to read it. The file-like API
 * ({@linkcode PersistentStream.open}, {@linkcode PersistentStream.read},
 * {@linkcode PersistentStream.seek}, {@linkcode PersistentStream.tell},
 * {@linkcode PersistentStream.close}) keeps one position and one open handle
 * on the stream object, shared by whoever uses it. Async iteration opens its
 * own handle, yields the bytes in chunks, and closes it when the loop ends;
 * it does not touch the position nor {@linkcode PersistentStream.closed}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, PersistentFile, type PersistentStream, transaction } from "@x/atomic-store/objectdb";
 *
 * await using db = await Database.open(`${await Deno.makeTempDir()}/stream.db`);
 * const root = new Persistent() as Persistent & { data?: PersistentFile | PersistentStream };
 * db.elect(root);
 * checkout(root);
 * root.data = new PersistentFile(new TextEncoder().encode("abcdef"));
 * await transaction.commit();
 *
 * const stream = root.data as PersistentStream;
 * await stream.open();
 * stream.seek(2);
 * assert.ok(new TextDecoder().decode(await stream.read(3)) === "cde");
 * assert.ok(stream.tell() === 5);
 * await stream.close();
 *
 * let text = "";
 * for await (const chunk of stream) text += new TextDecoder().decode(chunk);
 * assert.ok(text === "abcdef" && stream.closed);
 * ```
 */
export class PersistentStream implements AsyncIterable<Uint8Array> {
  private constructor() {
    throw new TypeError("PersistentStream objects are made by the database");
  }

  /** The number of bytes stored. */
  get size(): number {
    return infoOf(this).size;
  }

  /** Whether the file-like API is closed (it starts closed). */
  get closed(): boolean {
    return openStates.get(this)?.handle === undefined;
  }

  /** Opens the file-like API at position 0. Opening an open stream rewinds it. */
  async open(): Promise<void> {
    const info = infoOf(this);
    const state = openStates.get(this);
    if (state?.handle) {
      state.position = 0;
      return;
    }
    const handle = await fs.open(info.path, { read: true });
    openStates.set(this, { handle, position: 0, busy: Promise.resolve() });
  }

  /**
   * Reads up to `size` bytes (all the rest without `size`) from the
   * position, and moves past them. At the end it returns an empty array.
   *
   * @throws {TypeError} when the stream is not open.
   */
  read(size?: number): Promise<Uint8Array> {
    const info = infoOf(this);
    const state = openStates.get(this);
    if (!state?.handle) {
      return Promise.reject(new TypeError("the stream is closed; call open() first"));
    }
    if (size !== undefined && !(size >= 0)) {
      return Promise.reject(new RangeError(`size must be a non-negative number, got ${size}`));
    }
    const handle = state.handle;
    const job = state.busy.then(async () => {
      const start = state.position;
      const length = Math.max(0, Math.min(size ?? Infinity, info.size - start));
      const out = new Uint8Array(length);
      const starts = startsOf(info);
      let index = chunkIndex(starts, start);
      let filled = 0;
      while (filled < length) {
        const within = start + filled - starts[index];
        const n = Math.min(info.lengths[index] - within, length - filled);
        await readFully(handle, info.offsets[index] + within, out.subarray(filled, filled + n));
        filled += n;
        index++;
      }
      state.position = start + length;
      return out;
    });
    state.busy = job.catch(() => {});
    return job;
  }

  /** Moves the position to `offset` bytes from the start; returns it. */
  seek(offset: number): number {
    const state = openStates.get(this);
    if (!state?.handle) throw new TypeError("the stream is closed; call open() first");
    if (!(offset >= 0) || !Number.isInteger(offset)) {
      throw new RangeError(`offset must be a non-negative integer, got ${offset}`);
    }
    state.position = offset;
    return offset;
  }

  /** The position, in bytes from the start. */
  tell(): number {
    const state = openStates.get(this);
    if (!state?.handle) throw new TypeError("the stream is closed; call open() first");
    return state.position;
  }

  /** Closes the file-like API. Closing a closed stream does nothing. */
  async close(): Promise<void> {
    const state = openStates.get(this);
    if (!state?.handle) return;
    const handle = state.handle;
    state.handle = undefined;
    await state.busy;
    await handle.close();
  }

  /** A `ReadableStream` of the bytes, with its own handle, like iteration. */
  readable(): ReadableStream<Uint8Array> {
    return ReadableStream.from(this);
  }

  /** Yields the bytes in chunks, reading with a handle of its own. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const info = infoOf(this);
    if (info.offsets.length === 0) return;
    const handle = await fs.open(info.path, { read: true });
    try {
      for (let index = 0; index < info.offsets.length; index++) {
        yield await readChunk(handle, info, index);
      }
    } finally {
      await handle.close();
    }
  }
}

function chunkIndex(starts: number[], position: number): number {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (starts[middle] <= position) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** Turns a committed `PersistentFile` (or a fresh object) into a stream over `info`. */
export function becomeStream(object: object, info: StreamInfo): object {
  Object.setPrototypeOf(object, PersistentStream.prototype);
  fileStates.delete(object);
  streamInfos.set(object, info);
  return object;
}

/** A new stream object over `info`. */
export function newStream(info: StreamInfo): object {
  return becomeStream({}, info);
}
