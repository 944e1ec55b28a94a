/**
 * Write an I/O algorithm once, run it sync or async.
 *
 * An algorithm is a generator that yields {@linkcode Call}s instead of
 * calling the filesystem. {@linkcode runSync} answers each call with the
 * `…Sync` method of the seam, {@linkcode runAsync} with the async one, and a
 * failing call is thrown back into the generator at the `yield`, so ordinary
 * `try`/`catch`/`finally` blocks inside the algorithm handle errors for both.
 *
 * @module
 */

import { type FileHandle, type FileInfo, fs, type OpenOptions } from "./fs.ts";

/** One filesystem call: a method name of the seam (or of a handle), and its arguments. */
export interface Call {
  readonly self?: FileHandle;
  readonly name: string;
  readonly args: readonly unknown[];
}

/** Independent algorithms to run together; see {@linkcode settle}. */
export interface Together {
  readonly together: readonly Io<unknown>[];
}

/** What an algorithm can yield. */
export type Step = Call | Together;

/** A generator-based I/O algorithm returning `T`. */
export type Io<T> = Generator<Step, T, unknown>;

/** How one algorithm run by {@linkcode settle} ended. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

type Callable = Record<string, (...args: unknown[]) => unknown>;

/** Runs `io` with synchronous filesystem calls. */
export function runSync<T>(io: Io<T>): T {
  let step = io.next();
  while (!step.done) {
    const request = step.value;
    let result: unknown;
    try {
      if ("together" in request) {
        result = request.together.map((part): Outcome => {
          try {
            return { ok: true, value: runSync(part) };
          } catch (error) {
            return { ok: false, error };
          }
        });
      } else {
        const { self, name, args } = request;
        result = ((self ?? fs) as unknown as Callable)[`${name}Sync`](...args);
      }
    } catch (error) {
      step = io.throw(error);
      continue;
    }
    step = io.next(result);
  }
  return step.value;
}

/** Runs `io` with asynchronous filesystem calls. */
export async function runAsync<T>(io: Io<T>): Promise<T> {
  let step = io.next();
  while (!step.done) {
    const request = step.value;
    let result: unknown;
    try {
      if ("together" in request) {
        result = await Promise.all(request.together.map((part) =>
          runAsync(part).then(
            (value): Outcome => ({ ok: true, value }),
            (error): Outcome => ({ ok: false, error }),
          )
        ));
      } else {
        const { self, name, args } = request;
        result = await ((self ?? fs) as unknown as Callable)[name](...args);
      }
    } catch (error) {
      step = io.throw(error);
      continue;
    }
    step = io.next(result);
  }
  return step.value;
}

/**
 * Runs independent algorithms together: concurrently under `runAsync`, so
 * that their round trips to the I/O threads overlap, and one after another
 * under `runSync`. Every one runs to its end; each outcome is returned, not
 * thrown, so that the caller decides which failure to report.
 */
export function* settle(parts: readonly Io<unknown>[]): Io<Outcome[]> {
  return (yield { together: parts }) as Outcome[];
}

// Typed wrappers: `const info = yield* lstat(path)`.

function* call<T>(name: string, args: unknown[], self?: FileHandle): Io<T> {
  return (yield { self, name, args }) as T;
}

export const open = (path: string, options: OpenOptions): Io<FileHandle> =>
  call("open", [path, options]);
export const readFile = (path: string): Io<Uint8Array> => call("readFile", [path]);
export const stat = (path: string): Io<FileInfo> => call("stat", [path]);
export const lstat = (path: string): Io<FileInfo> => call("lstat", [path]);
export const realPath = (path: string): Io<string> => call("realPath", [path]);
export const readLink = (path: string): Io<string> => call("readLink", [path]);
export const rename = (from: string, to: string): Io<void> => call("rename", [from, to]);
export const remove = (path: string): Io<void> => call("remove", [path]);
export const link = (existing: string, newPath: string): Io<void> =>
  call("link", [existing, newPath]);
export const chmod = (path: string, mode: number): Io<void> => call("chmod", [path, mode]);
export const mkdir = (path: string, options: { recursive?: boolean }): Io<void> =>
  call("mkdir", [path, options]);
export const syncDir = (path: string): Io<void> => call("syncDir", [path]);
export const write = (file: FileHandle, data: Uint8Array): Io<void> => call("write", [data], file);
export const sync = (file: FileHandle): Io<void> => call("sync", [], file);
export const close = (file: FileHandle): Io<void> => call("close", [], file);
