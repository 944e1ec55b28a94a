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
  /**
   * A metadata call that takes microseconds (stat, chmod, link…): made
   * synchronously even by {@linkcode runAsync}, because a round trip to
   * Deno's I/O threads costs more than the call itself.
   */
  readonly quick?: boolean;
}

/** A generator-based I/O algorithm returning `T`. */
export type Io<T> = Generator<Call, T, unknown>;

type Callable = Record<string, (...args: unknown[]) => unknown>;

/** Runs `io` with synchronous filesystem calls. */
export function runSync<T>(io: Io<T>): T {
  let step = io.next();
  while (!step.done) {
    const { self, name, args } = step.value;
    let result: unknown;
    try {
      result = ((self ?? fs) as unknown as Callable)[`${name}Sync`](...args);
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
    const { self, name, args, quick } = step.value;
    let result: unknown;
    try {
      const target = (self ?? fs) as unknown as Callable;
      result = quick ? target[`${name}Sync`](...args) : await target[name](...args);
    } catch (error) {
      step = io.throw(error);
      continue;
    }
    step = io.next(result);
  }
  return step.value;
}

// Typed wrappers: `const info = yield* lstat(path)`.

function* call<T>(name: string, args: unknown[], self?: FileHandle): Io<T> {
  return (yield { self, name, args }) as T;
}

function* quick<T>(name: string, args: unknown[]): Io<T> {
  return (yield { name, args, quick: true }) as T;
}

export const open = (path: string, options: OpenOptions): Io<FileHandle> =>
  call("open", [path, options]);
export const readFile = (path: string): Io<Uint8Array> => call("readFile", [path]);
export const stat = (path: string): Io<FileInfo> => quick("stat", [path]);
export const lstat = (path: string): Io<FileInfo> => quick("lstat", [path]);
export const realPath = (path: string): Io<string> => quick("realPath", [path]);
export const readLink = (path: string): Io<string> => quick("readLink", [path]);
export const rename = (from: string, to: string): Io<void> => call("rename", [from, to]);
export const remove = (path: string): Io<void> => call("remove", [path]);
/** `remove` made synchronously, for a file known to be small (see {@linkcode Call.quick}). */
export const removeSmall = (path: string): Io<void> => quick("remove", [path]);
export const link = (existing: string, newPath: string): Io<void> =>
  quick("link", [existing, newPath]);
export const chmod = (path: string, mode: number): Io<void> => quick("chmod", [path, mode]);
export const mkdir = (path: string, options: { recursive?: boolean }): Io<void> =>
  call("mkdir", [path, options]);
export const syncDir = (path: string): Io<void> => call("syncDir", [path]);
export const write = (file: FileHandle, data: Uint8Array): Io<void> => call("write", [data], file);
export const sync = (file: FileHandle): Io<void> => call("sync", [], file);
export const close = (file: FileHandle): Io<void> => call("close", [], file);
