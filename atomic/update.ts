import { CorruptFileError } from "../_internal/errors.ts";
import { jsonCodec } from "../_internal/codec.ts";
import { runAsync } from "../_internal/io.ts";
import { type FileLockOptions, withFileLock } from "./lock.ts";
import { atomicWrite, type AtomicWriteJsonOptions, inspectTarget, readIfExists } from "./write.ts";
import { fs } from "../_internal/fs.ts";
import { dirname, resolve } from "node:path";

/** Options of {@linkcode atomicUpdateJson}. */
export interface AtomicUpdateJsonOptions<T>
  extends AtomicWriteJsonOptions, Omit<FileLockOptions, "exclusive"> {
  /** The value `update` receives when the file does not exist (deep-copied). */
  defaultData?: T;
}

/**
 * Read-modify-write of a JSON file, safe across processes.
 *
 * Takes the exclusive lock on `path + ".lock"`, reads the current value
 * (or a copy of `defaultData`, or `undefined`, when the file is missing),
 * calls `update` (which may be async and may mutate and return its
 * argument), writes the result atomically, releases the lock and returns
 * the value written. Concurrent updaters, in this process or others, run
 * one at a time, so none loses another's change.
 *
 * A file that does not parse raises {@linkcode CorruptFileError} and is
 * left untouched; so does a thrown `update`. A result JSON cannot store is
 * a `TypeError`, also before anything is written.
 *
 * @example Count runs across processes
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicUpdateJson } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/counter.json`;
 * const next = await atomicUpdateJson(path, (data) => {
 *   data.counter += 1;
 *   return data;
 * }, { defaultData: { counter: 0 } });
 * assert.ok(next.counter === 1);
 * ```
 */
export async function atomicUpdateJson<T>(
  path: string,
  update: (current: T) => T | Promise<T>,
  options: AtomicUpdateJsonOptions<T> & { defaultData: T },
): Promise<T>;
/**
 * Read-modify-write of a JSON file, safe across processes; without
 * `defaultData`, `update` receives `undefined` when the file is missing.
 *
 * @example
 * ```ts
 * import { atomicUpdateJson } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/results.json`;
 * await atomicUpdateJson<number[]>(path, (results) => [...(results ?? []), 42]);
 * ```
 */
export async function atomicUpdateJson<T>(
  path: string,
  update: (current: T | undefined) => T | Promise<T>,
  options?: AtomicUpdateJsonOptions<T>,
): Promise<T>;
export async function atomicUpdateJson<T>(
  path: string,
  update: (current: T | undefined) => T | Promise<T>,
  options: AtomicUpdateJsonOptions<T> = {},
): Promise<T> {
  const codec = jsonCodec<T>({ indent: options.indent });
  // A directory in the way is an error before the lock file is created.
  await runAsync(inspectTarget(path));
  if (options.ensureDir ?? true) await fs.mkdir(dirname(resolve(path)), { recursive: true });
  const { timeout, pollInterval, signal } = options;
  return await withFileLock(`${path}.lock`, async () => {
    const bytes = await readIfExists(path);
    let current: T | undefined;
    if (bytes === undefined) {
      current = options.defaultData === undefined
        ? undefined
        : structuredClone(options.defaultData);
    } else {
      try {
        current = codec.decode(bytes);
      } catch (cause) {
        throw new CorruptFileError(path, "json", { cause });
      }
    }
    const next = await update(current);
    await atomicWrite(path, codec.encode(next), options);
    return next;
  }, { timeout, pollInterval, signal });
}
