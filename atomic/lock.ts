import { resolve } from "node:path";
import { FileLockError, FileLockTimeoutError } from "../_internal/errors.ts";
import { type FileHandle, fs } from "../_internal/fs.ts";

/** Options of {@linkcode lockFile} and {@linkcode withFileLock}. */
export interface FileLockOptions {
  /** How long to wait for the lock, in milliseconds. Default 30000. */
  timeout?: number;
  /**
   * The longest pause between two attempts, in milliseconds. Waiting starts
   * with short pauses that double up to this bound. Default 100.
   */
  pollInterval?: number;
  /** `false` takes a shared lock, which other shared holders may hold too. Default `true`. */
  exclusive?: boolean;
  /** Stops waiting when aborted; the rejection is the signal's reason. */
  signal?: AbortSignal;
}

/** A held lock. Release it exactly once, or let `await using` do it. */
export interface FileLock extends AsyncDisposable {
  /** The lock file's absolute path. */
  readonly path: string;
  /** Whether this is an exclusive (write) lock. */
  readonly exclusive: boolean;
  /** Whether {@linkcode FileLock.release} has run. */
  readonly released: boolean;
  /** Releases the lock; later calls do nothing. */
  release(): Promise<void>;
}

// Kernel locks (flock) exclude other processes, and other file descriptors
// of this process, but polling for them is slow. Callers inside one process
// therefore queue here first, in arrival order, and poll only against
// other processes.
interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

class LocalLock {
  sharedHolders = 0;
  exclusiveHeld = false;
  queue: Waiter[] = [];

  canGrant(exclusive: boolean): boolean {
    if (this.exclusiveHeld) return false;
    return exclusive ? this.sharedHolders === 0 : true;
  }

  take(exclusive: boolean): void {
    if (exclusive) this.exclusiveHeld = true;
    else this.sharedHolders++;
  }

  drop(exclusive: boolean): void {
    if (exclusive) this.exclusiveHeld = false;
    else this.sharedHolders--;
    while (this.queue.length > 0 && this.canGrant(this.queue[0].exclusive)) {
      const next = this.queue.shift()!;
      this.take(next.exclusive);
      next.grant();
    }
  }
}

const localLocks = new Map<string, LocalLock>();

function localLockFor(path: string): LocalLock {
  let lock = localLocks.get(path);
  if (!lock) {
    lock = new LocalLock();
    localLocks.set(path, lock);
  }
  return lock;
}

function dropLocal(path: string, lock: LocalLock, exclusive: boolean): void {
  lock.drop(exclusive);
  if (!lock.exclusiveHeld && lock.sharedHolders === 0 && lock.queue.length === 0) {
    localLocks.delete(path);
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Waits for this process's turn; false on timeout. */
function waitLocal(
  lock: LocalLock,
  exclusive: boolean,
  deadline: number,
  signal?: AbortSignal,
): Promise<boolean> {
  if (lock.queue.length === 0 && lock.canGrant(exclusive)) {
    lock.take(exclusive);
    return Promise.resolve(true);
  }
  return new Promise((resolve, reject) => {
    const waiter: Waiter = {
      exclusive,
      grant: () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      },
    };
    const leave = () => {
      lock.queue.splice(lock.queue.indexOf(waiter), 1);
      signal?.removeEventListener("abort", onAbort);
    };
    const timer = setTimeout(() => {
      leave();
      resolve(false);
    }, Math.max(0, deadline - Date.now()));
    const onAbort = () => {
      clearTimeout(timer);
      leave();
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    lock.queue.push(waiter);
  });
}

async function openLockFile(path: string): Promise<FileHandle> {
  try {
    return await fs.open(path, { read: true, write: true, create: true, mode: 0o666 });
  } catch (error) {
    const reason = error instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : (error as Error).message;
    throw new FileLockError(path, `cannot open lock file "${path}": ${reason}`, { cause: error });
  }
}

/**
 * Takes an advisory lock on the file at `path` (created if missing, and
 * never deleted, since deleting a lock file lets two holders lock two
 * different files).
 *
 * The lock is a kernel lock (flock), so it excludes other processes and is
 * released by the kernel if the holder dies, even by SIGKILL. It also
 * excludes other callers in this process: they queue in arrival order.
 * Locks are advisory: they only exclude code that takes them too.
 *
 * @throws {FileLockTimeoutError} when the lock is not free within `timeout`.
 * @throws {FileLockError} when the lock file cannot be opened.
 *
 * @example Hold a lock while working
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockFile } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/job.lock`;
 * {
 *   await using lock = await lockFile(path, { timeout: 5000 });
 *   assert.ok(!lock.released);
 *   // ... only one holder at a time gets here ...
 * } // released here
 * ```
 *
 * @example Shared locks for readers
 * ```ts
 * import { lockFile } from "@x/atomic-store/atomic";
 *
 * const path = `${await Deno.makeTempDir()}/data.lock`;
 * const a = await lockFile(path, { exclusive: false });
 * const b = await lockFile(path, { exclusive: false }); // both hold it
 * await a.release();
 * await b.release();
 * ```
 */
export async function lockFile(path: string, options: FileLockOptions = {}): Promise<FileLock> {
  const timeout = options.timeout ?? 30_000;
  const maxPause = Math.max(1, options.pollInterval ?? 100);
  const exclusive = options.exclusive ?? true;
  const { signal } = options;
  if (!(timeout >= 0)) {
    throw new RangeError(`timeout must be a non-negative number of ms, got ${timeout}`);
  }
  signal?.throwIfAborted();

  const absolute = resolve(path);
  const deadline = Date.now() + timeout;
  const local = localLockFor(absolute);
  if (!(await waitLocal(local, exclusive, deadline, signal))) {
    throw new FileLockTimeoutError(absolute, timeout);
  }

  let handle: FileHandle | undefined;
  try {
    handle = await openLockFile(absolute);
    let pause = 1;
    while (!(await handle.tryLock(exclusive))) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FileLockTimeoutError(absolute, timeout);
      // Jitter keeps many waiting processes from retrying in lockstep.
      await delay(Math.min(left, pause * (0.5 + Math.random())), signal);
      pause = Math.min(maxPause, pause * 2);
    }
  } catch (error) {
    if (handle) await handle.close().catch(() => {});
    dropLocal(absolute, local, exclusive);
    if (error instanceof FileLockError || error === signal?.reason) throw error;
    throw new FileLockError(absolute, `cannot lock "${absolute}": ${(error as Error).message}`, {
      cause: error,
    });
  }

  const held = handle;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      // Closing the descriptor releases the kernel lock even if unlock fails.
      await held.unlock().catch(() => {});
      await held.close();
    } finally {
      dropLocal(absolute, local, exclusive);
    }
  };
  return {
    path: absolute,
    exclusive,
    get released() {
      return released;
    },
    release,
    [Symbol.asyncDispose]: release,
  };
}

/**
 * Runs `fn` while holding the lock on `path`, and releases it afterwards,
 * whether `fn` resolves or throws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withFileLock } from "@x/atomic-store/atomic";
 *
 * const dir = await Deno.makeTempDir();
 * const total = await withFileLock(`${dir}/counter.lock`, async () => {
 *   const path = `${dir}/counter.txt`;
 *   const count = Number(await Deno.readTextFile(path).catch(() => "0")) + 1;
 *   await Deno.writeTextFile(path, String(count));
 *   return count;
 * });
 * assert.ok(total === 1);
 * ```
 */
export async function withFileLock<T>(
  path: string,
  fn: () => T | Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const lock = await lockFile(path, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
