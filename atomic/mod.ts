/**
 * Crash-safe building blocks: atomic file replacement, cross-process file
 * locks, and locked read-modify-write of JSON files.
 *
 * - {@linkcode atomicWrite} / {@linkcode atomicWriteSync}: replace a file
 *   all or nothing (temporary file, fsync, rename, directory fsync).
 * - {@linkcode atomicWriteJson} / {@linkcode atomicWriteJsonSync}: the same
 *   for a JSON value, refusing values JSON would mangle.
 * - {@linkcode withAtomicFile}: build a file piece by piece; it replaces the
 *   target only if your callback succeeds.
 * - {@linkcode lockFile} / {@linkcode withFileLock}: kernel file locks that
 *   die with their holder, with timeouts, shared and exclusive modes.
 * - {@linkcode atomicUpdateJson}: lock, read, update, write, unlock.
 *
 * @example Keep a counter that many processes increment
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicUpdateJson } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/counter.json`;
 * await Promise.all(
 *   Array.from({ length: 5 }, () =>
 *     atomicUpdateJson(path, (n) => n + 1, { defaultData: 0 })),
 * );
 * assert.ok(JSON.parse(await Deno.readTextFile(path)) === 5);
 * ```
 *
 * @module
 */

export {
  type AtomicFileWriter,
  atomicWrite,
  atomicWriteJson,
  type AtomicWriteJsonOptions,
  atomicWriteJsonSync,
  type AtomicWriteOptions,
  atomicWriteSync,
  withAtomicFile,
} from "./write.ts";
export { type FileLock, type FileLockOptions, lockFile, withFileLock } from "./lock.ts";
export { atomicUpdateJson, type AtomicUpdateJsonOptions } from "./update.ts";
export {
  AtomicStoreError,
  AtomicWriteError,
  CorruptFileError,
  FileLockError,
  FileLockTimeoutError,
} from "../_internal/errors.ts";
