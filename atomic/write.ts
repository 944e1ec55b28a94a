import { basename, dirname, join, resolve } from "node:path";
import { AtomicStoreError, AtomicWriteError } from "../_internal/errors.ts";
import {
  type FileHandle,
  type FileInfo,
  fs,
  isAlreadyExists,
  isNotFound,
} from "../_internal/fs.ts";
import * as io from "../_internal/io.ts";
import { type Io, runAsync, runSync } from "../_internal/io.ts";
import { jsonCodec, toBytes } from "../_internal/codec.ts";

/** Options of {@linkcode atomicWrite} and its relatives. */
export interface AtomicWriteOptions {
  /** Create missing parent directories. Default `true`. */
  ensureDir?: boolean;
  /**
   * Permission bits for a file that does not exist yet (the process umask
   * applies). An existing target always keeps its own mode. Default `0o666`.
   */
  mode?: number;
  /**
   * Flush the file before the rename and the directory after it, so the new
   * contents survive a power cut. Turning this off keeps the all-or-nothing
   * replacement but not the durability. Default `true`.
   */
  fsync?: boolean;
}

/** How a write commits; `dirSync: false` leaves the directory fsync to the caller. */
interface CommitOptions extends AtomicWriteOptions {
  dirSync?: boolean;
}

/** Options of {@linkcode atomicWriteJson} and {@linkcode atomicWriteJsonSync}. */
export interface AtomicWriteJsonOptions extends AtomicWriteOptions {
  /** Spaces of indentation; `0` writes compact JSON. Default 2. */
  indent?: number;
}

/** Where a write goes, worked out before anything is created. */
export interface WriteTarget {
  /** The path as the caller gave it, for messages. */
  readonly path: string;
  /** The file that is replaced: absolute, with symbolic links resolved. */
  readonly file: string;
  readonly dir: string;
  /** The target's metadata, or `undefined` when it does not exist yet. */
  readonly existing: FileInfo | undefined;
}

function fail(path: string, step: string, cause: unknown): AtomicStoreError {
  return cause instanceof AtomicStoreError ? cause : new AtomicWriteError(path, step, { cause });
}

/**
 * Resolves `path` to the file to replace and checks that it can be a file:
 * a directory or a device in the way is an error before anything is touched.
 * A symbolic link is followed, so the link survives and its target is
 * replaced.
 */
export function* inspectTarget(path: string): Io<WriteTarget> {
  let file = resolve(path);
  let existing: FileInfo | undefined;
  try {
    existing = yield* io.lstat(file);
    if (existing.isSymlink) {
      try {
        file = yield* io.realPath(file);
        existing = yield* io.stat(file);
      } catch (error) {
        // A dangling link: the file it names is created.
        if (!isNotFound(error)) throw error;
        file = resolve(dirname(file), yield* io.readLink(file));
        existing = undefined;
      }
    }
  } catch (error) {
    if (!isNotFound(error)) throw fail(path, "prepare", error);
  }
  if (existing && !existing.isFile) {
    const what = existing.isDirectory ? "a directory" : "not a regular file";
    throw new AtomicWriteError(path, "prepare", { detail: `"${file}" is ${what}` });
  }
  return { path, file, dir: dirname(file), existing };
}

function tempName(target: WriteTarget, suffix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return join(
    target.dir,
    `.${basename(target.file)}.${random[0].toString(36)}${random[1].toString(36)}${suffix}`,
  );
}

/** An open temporary file next to its target. */
export interface TempFile {
  readonly target: WriteTarget;
  readonly name: string;
  readonly handle: FileHandle;
}

/** Creates a fresh temporary file beside the target (and the directory, if asked). */
export function* openTemp(target: WriteTarget, options: AtomicWriteOptions): Io<TempFile> {
  if (!target.existing && (options.ensureDir ?? true)) {
    try {
      yield* io.mkdir(target.dir, { recursive: true });
    } catch (error) {
      throw fail(target.path, "prepare", error);
    }
  }
  for (let attempt = 0;; attempt++) {
    const name = tempName(target, ".tmp");
    try {
      const handle = yield* io.open(name, {
        write: true,
        createNew: true,
        mode: target.existing ? 0o600 : options.mode ?? 0o666,
      });
      return { target, name, handle };
    } catch (error) {
      if (!isAlreadyExists(error) || attempt >= 8) throw fail(target.path, "open", error);
    }
  }
}

/** Closes and removes a temporary file, keeping the first error. */
export function* discardTemp(temp: TempFile): Io<void> {
  try {
    yield* io.close(temp.handle);
  } catch { /* already closed, or closing failed: removal below still applies */ }
  try {
    yield* io.remove(temp.name);
  } catch { /* gone already, or unremovable: the original error matters more */ }
}

/**
 * Makes a fully written temporary file the target: fsync, close, rename,
 * fsync the directory. On failure the temporary file is removed and the
 * target is as before; when only the directory fsync fails, the previous
 * contents are put back from a hard link taken before the rename.
 */
export function* commitTemp(temp: TempFile, options: CommitOptions): Io<void> {
  const { target } = temp;
  const durable = options.fsync ?? true;
  const dirSync = durable && (options.dirSync ?? true);
  let step = "fsync";
  let backup: string | undefined;
  try {
    if (durable) yield* io.sync(temp.handle);
    step = "close";
    yield* io.close(temp.handle);
    if (target.existing?.mode != null) {
      step = "chmod";
      yield* io.chmod(temp.name, target.existing.mode & 0o7777);
    }
    if (dirSync && target.existing) {
      backup = tempName(target, ".old");
      try {
        yield* io.link(target.file, backup);
      } catch {
        backup = undefined; // no hard links here: the rollback is lost, not the write
      }
    }
    step = "rename";
    yield* io.rename(temp.name, target.file);
  } catch (error) {
    yield* discardTemp(temp);
    if (backup) yield* removeQuietly(backup);
    throw fail(target.path, step, error);
  }
  if (!dirSync) return;
  try {
    yield* io.syncDir(target.dir);
  } catch (error) {
    try {
      if (backup) yield* io.rename(backup, target.file);
      else if (!target.existing) yield* io.remove(target.file);
    } catch (restoreError) {
      throw new AtomicWriteError(target.path, "dirFsync", {
        cause: error,
        detail: `${(error as Error).message}, and restoring the previous contents failed too (${
          (restoreError as Error).message
        })`,
      });
    }
    throw fail(target.path, "dirFsync", error);
  }
  // Removing the backup frees the previous version's blocks, work the bare
  // rename would have done; for a small file it is quicker done directly
  // than through a round trip to an I/O thread.
  if (backup) yield* removeQuietly(backup, (target.existing?.size ?? 0) <= SMALL_FILE);
}

const SMALL_FILE = 1 << 20;

function* removeQuietly(path: string, small = false): Io<void> {
  try {
    yield* small ? io.removeSmall(path) : io.remove(path);
  } catch { /* a leftover link only costs the old version's disk space */ }
}

function* writeBytes(path: string, data: Uint8Array, options: CommitOptions): Io<void> {
  yield* writeBytesTo(yield* inspectTarget(path), data, options);
}

function* writeBytesTo(target: WriteTarget, data: Uint8Array, options: CommitOptions): Io<void> {
  const path = target.path;
  const temp = yield* openTemp(target, options);
  try {
    yield* io.write(temp.handle, data);
  } catch (error) {
    yield* discardTemp(temp);
    throw fail(path, "write", error);
  }
  yield* commitTemp(temp, options);
}

function checkData(data: unknown): void {
  if (
    typeof data !== "string" && !(data instanceof Uint8Array) && !(data instanceof ReadableStream)
  ) {
    throw new TypeError(
      `atomicWrite data must be a string, a Uint8Array or a ReadableStream<Uint8Array>, not ${typeof data}`,
    );
  }
}

/**
 * Replaces the file at `path` with `data`, all or nothing.
 *
 * The data goes to a fresh temporary file in the same directory, which is
 * flushed to disk (fsync), renamed over the target, and the directory is
 * flushed too. A reader, or a crash at any instant, sees either the old
 * contents or the new ones, never a mix. On any failure the temporary file
 * is removed, the target is unchanged and an {@linkcode AtomicWriteError}
 * says which step failed.
 *
 * A symbolic link at `path` is kept and the file it points to is replaced.
 * An existing target keeps its permission bits.
 *
 * @example Write text
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWrite } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/notes/today.txt`;
 * await atomicWrite(path, "buy milk\n"); // creates notes/ as needed
 * assert.ok(await Deno.readTextFile(path) === "buy milk\n");
 * ```
 *
 * @example Stream a large file
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWrite } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/copy.bin`;
 * const source = ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * await atomicWrite(path, source);
 * assert.ok((await Deno.readFile(path)).length === 3);
 * ```
 */
export async function atomicWrite(
  path: string,
  data: string | Uint8Array | ReadableStream<Uint8Array>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  checkData(data);
  if (!(data instanceof ReadableStream)) return runAsync(writeBytes(path, toBytes(data), options));
  const target = await runAsync(inspectTarget(path));
  const temp = await runAsync(openTemp(target, options));
  try {
    await temp.handle.writeStream(data);
  } catch (error) {
    await runAsync(discardTemp(temp));
    throw fail(path, "write", error);
  }
  await runAsync(commitTemp(temp, options));
}

/**
 * {@linkcode atomicWrite} of bytes for one of many files that a module
 * keeps in a directory of its own, written together: the file is flushed
 * and renamed over its target, all or nothing, but the directory is not
 * flushed. The caller flushes it once (`fs.syncDir`) after the batch, and
 * only then may call the writes durable; until then a crash may leave any
 * target with its old contents, each whole.
 *
 * The target is taken as a plain file of the caller's: it is not looked
 * at first (no symbolic link is followed, an existing file's mode is not
 * kept), which spares a metadata call that contends with the other writes
 * of the batch. Not part of the public API.
 */
export function atomicWriteInBatch(
  path: string,
  data: Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const file = resolve(path);
  const target: WriteTarget = { path, file, dir: dirname(file), existing: undefined };
  return runAsync(writeBytesTo(target, data, { ...options, ensureDir: false, dirSync: false }));
}

/**
 * The synchronous form of {@linkcode atomicWrite}, for strings and bytes.
 *
 * @example
 * ```ts
 * import { atomicWriteSync } from "@x/atomic-store/atomic";
 *
 * const path = `${Deno.makeTempDirSync()}/pid`;
 * atomicWriteSync(path, `${Deno.pid}\n`);
 * ```
 */
export function atomicWriteSync(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): void {
  checkData(data);
  if (data instanceof ReadableStream) {
    throw new TypeError("atomicWriteSync cannot take a stream; use atomicWrite");
  }
  runSync(writeBytes(path, toBytes(data), options));
}

/**
 * Writes `data` as pretty-printed JSON with a trailing newline, atomically.
 *
 * A value JSON cannot represent faithfully (a cycle, a BigInt, a function,
 * `NaN`, a `Map`…) is a `TypeError` naming where it is, thrown before any
 * file is touched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWriteJson } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/config.json`;
 * await atomicWriteJson(path, { setting: "value", nested: { count: 42 } });
 * assert.ok(JSON.parse(await Deno.readTextFile(path)).nested.count === 42);
 * ```
 */
export function atomicWriteJson(
  path: string,
  data: unknown,
  options: AtomicWriteJsonOptions = {},
): Promise<void> {
  let text: string;
  try {
    text = jsonCodec({ indent: options.indent }).encode(data) as string;
  } catch (error) {
    return Promise.reject(error);
  }
  return atomicWrite(path, text, options);
}

/**
 * The synchronous form of {@linkcode atomicWriteJson}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWriteJsonSync } from "@x/atomic-store/atomic";
 *
 * const path = `${Deno.makeTempDirSync()}/state.json`;
 * atomicWriteJsonSync(path, [1, 2, 3], { indent: 0 });
 * assert.ok(Deno.readTextFileSync(path) === "[1,2,3]");
 * ```
 */
export function atomicWriteJsonSync(
  path: string,
  data: unknown,
  options: AtomicWriteJsonOptions = {},
): void {
  const text = jsonCodec({ indent: options.indent }).encode(data) as string;
  atomicWriteSync(path, text, options);
}

/** What {@linkcode withAtomicFile} hands its callback. */
export interface AtomicFileWriter {
  /** Appends a chunk (text is written as UTF-8). */
  write(chunk: string | Uint8Array): Promise<void>;
  /**
   * The same file as a stream, for `pipeTo`. Closing it does not commit:
   * the target is replaced when the callback resolves.
   */
  readonly writable: WritableStream<Uint8Array>;
}

/**
 * Builds a file piece by piece and replaces the target only if `fn`
 * resolves. If `fn` throws (or any write fails), the temporary file is
 * discarded, the target is unchanged and the error propagates.
 *
 * @example Write lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { withAtomicFile } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/output.txt`;
 * await withAtomicFile(path, async (file) => {
 *   for (const line of ["Line 1", "Line 2", "Line 3"]) await file.write(`${line}\n`);
 * });
 * assert.ok((await Deno.readTextFile(path)).endsWith("Line 3\n"));
 * ```
 *
 * @example Pipe a stream
 * ```ts
 * import assert from "node:assert/strict";
 * import { withAtomicFile } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/copy.txt`;
 * await withAtomicFile(path, (file) =>
 *   ReadableStream.from(["a", "b"]).pipeThrough(new TextEncoderStream()).pipeTo(file.writable));
 * assert.ok(await Deno.readTextFile(path) === "ab");
 * ```
 */
export async function withAtomicFile<T>(
  path: string,
  fn: (writer: AtomicFileWriter) => T | Promise<T>,
  options: AtomicWriteOptions = {},
): Promise<T> {
  const target = await runAsync(inspectTarget(path));
  const temp = await runAsync(openTemp(target, options));
  let queue: Promise<void> = Promise.resolve();
  let writeError: AtomicStoreError | undefined;
  let open = true;
  const write = (chunk: string | Uint8Array): Promise<void> => {
    if (!open) {
      return Promise.reject(new TypeError(`the atomic file for "${path}" is already finished`));
    }
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError(`chunks must be strings or Uint8Arrays, not ${typeof chunk}`),
      );
    }
    const bytes = toBytes(chunk);
    queue = queue.then(async () => {
      if (writeError) throw writeError;
      try {
        await temp.handle.write(bytes);
      } catch (error) {
        writeError = fail(path, "write", error);
        throw writeError;
      }
    });
    return queue;
  };
  const writable = new WritableStream<Uint8Array>({ write: (chunk) => write(chunk) });
  let result: T;
  try {
    result = await fn({ write, writable });
    open = false;
    await queue;
  } catch (error) {
    open = false;
    await queue.catch(() => {});
    await runAsync(discardTemp(temp));
    throw error;
  }
  await runAsync(commitTemp(temp, options));
  return result;
}

/** Reads a file, or returns `undefined` when it does not exist. */
export async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await fs.readFile(path);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
