/**
 * Error classes shared by every module. The public modules re-export them.
 *
 * @module
 */

/**
 * Base class of every error atomic-store raises on purpose, so that callers
 * can tell them apart from bugs and platform errors.
 *
 * @example Catch any atomic-store failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { AtomicStoreError, atomicUpdateJson } from "@x/atomic-store/atomic";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/broken.json`, "{ not json");
 * try {
 *   await atomicUpdateJson(`${dir}/broken.json`, (n: number | undefined) => (n ?? 0) + 1);
 * } catch (error) {
 *   assert.ok(error instanceof AtomicStoreError);
 * }
 * ```
 */
export class AtomicStoreError extends Error {
  /** The file the error is about. */
  readonly path: string;

  /** Creates an error about `path`. */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.path = path;
  }
}

/**
 * A file exists but its contents cannot be decoded. The file is left exactly
 * as it was: nothing in atomic-store overwrites a file it could not read.
 *
 * @example
 * ```ts
 * import { atomicUpdateJson, CorruptFileError } from "@x/atomic-store/atomic";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/state.json`, "{ half a file");
 * try {
 *   await atomicUpdateJson(`${dir}/state.json`, () => ({}));
 * } catch (error) {
 *   if (!(error instanceof CorruptFileError)) throw error;
 *   console.log(error.path, error.format); // ".../state.json json"
 * }
 * ```
 */
export class CorruptFileError extends AtomicStoreError {
  /** The format the file was read as, such as `"json"`. */
  readonly format: string;
  /** Byte offset of the damage, where known. */
  readonly offset: number | undefined;

  /** Creates an error for `path`, which does not decode as `format`. */
  constructor(
    path: string,
    format: string,
    options?: ErrorOptions & { offset?: number; detail?: string },
  ) {
    const at = options?.offset === undefined ? "" : ` at byte ${options.offset}`;
    const why = options?.detail ??
      (options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? ""));
    super(
      path,
      `corrupt ${format} file "${path}"${at}${why ? `: ${why}` : ""}; it was left untouched`,
      options,
    );
    this.format = format;
    this.offset = options?.offset;
  }
}

/**
 * An atomic write failed. The target file is unchanged, and the temporary
 * file has been removed; {@linkcode AtomicWriteError.step} says which step
 * failed and `cause` holds the platform error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWrite, AtomicWriteError } from "@x/atomic-store/atomic";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/taken`);
 * try {
 *   await atomicWrite(`${dir}/taken`, "a directory is in the way");
 * } catch (error) {
 *   assert.ok(error instanceof AtomicWriteError);
 * }
 * ```
 */
export class AtomicWriteError extends AtomicStoreError {
  /** The step that failed: `"prepare"`, `"open"`, `"write"`, `"fsync"`, `"rename"` or `"dirFsync"`. */
  readonly step: string;

  /** Creates an error for a write of `path` that failed at `step`. */
  constructor(path: string, step: string, options?: ErrorOptions & { detail?: string }) {
    const why = options?.detail ??
      (options?.cause instanceof Error ? options.cause.message : String(options?.cause));
    super(
      path,
      `atomic write of "${path}" failed at ${step}: ${why}; the target is unchanged`,
      options,
    );
    this.step = step;
  }
}

/**
 * A file lock could not be taken or released.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileLockError, lockFile } from "@x/atomic-store/atomic";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   await lockFile(dir); // a directory cannot be a lock file
 * } catch (error) {
 *   assert.ok(error instanceof FileLockError);
 * }
 * ```
 */
export class FileLockError extends AtomicStoreError {}

/**
 * Waiting for a file lock took longer than the timeout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileLockTimeoutError, lockFile } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/job.lock`;
 * await using _held = await lockFile(path);
 * try {
 *   await lockFile(path, { timeout: 50 });
 * } catch (error) {
 *   assert.ok(error instanceof FileLockTimeoutError && error.timeout === 50);
 * }
 * ```
 */
export class FileLockTimeoutError extends FileLockError {
  /** How long the caller waited, in milliseconds. */
  readonly timeout: number;

  /** Creates an error for a lock on `path` not taken within `timeout` ms. */
  constructor(path: string, timeout: number) {
    super(path, `timed out after ${timeout} ms waiting for the lock on "${path}"`);
    this.timeout = timeout;
  }
}
