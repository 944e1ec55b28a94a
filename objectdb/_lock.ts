/**
 * Reader/writer locking of a database log, across processes and within one.
 *
 * Across processes: a kernel flock on the log file itself, taken on the
 * holder's own open handle (shared for reading, exclusive for appending),
 * polled with short, jittered, growing pauses. Within a process, handles of
 * the same file exclude each other in the kernel too, but polling for them
 * would be slow; so callers first queue on an in-process gate per file
 * (first come, first served, shared holders together), and only the one at
 * the front polls the kernel.
 *
 * @module
 */

import { FileLockError, FileLockTimeoutError } from "../_internal/errors.ts";
import type { FileHandle } from "../_internal/fs.ts";

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

class Gate {
  shared = 0;
  exclusive = false;
  queue: Waiter[] = [];

  canGrant(exclusive: boolean): boolean {
    return !this.exclusive && (!exclusive || this.shared === 0);
  }

  take(exclusive: boolean): void {
    if (exclusive) this.exclusive = true;
    else this.shared++;
  }

  drop(exclusive: boolean): void {
    if (exclusive) this.exclusive = false;
    else this.shared--;
    while (this.queue.length > 0 && this.canGrant(this.queue[0].exclusive)) {
      const next = this.queue.shift()!;
      this.take(next.exclusive);
      next.grant();
    }
  }

  get idle(): boolean {
    return !this.exclusive && this.shared === 0 && this.queue.length === 0;
  }
}

const gates = new Map<string, Gate>();

function wait(gate: Gate, exclusive: boolean, deadline: number): Promise<boolean> {
  if (gate.queue.length === 0 && gate.canGrant(exclusive)) {
    gate.take(exclusive);
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const waiter: Waiter = {
      exclusive,
      grant: () => {
        clearTimeout(timer);
        resolve(true);
      },
    };
    const timer = setTimeout(() => {
      gate.queue.splice(gate.queue.indexOf(waiter), 1);
      resolve(false);
    }, Math.max(0, deadline - Date.now()));
    gate.queue.push(waiter);
  });
}

function release(key: string, gate: Gate, exclusive: boolean): void {
  gate.drop(exclusive);
  if (gate.idle) gates.delete(key);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Locks the file `key` (its real path) through `handle`, waiting at most
 * `timeout` ms. Returns the function that unlocks it.
 */
export async function lockLog(
  key: string,
  handle: FileHandle,
  exclusive: boolean,
  timeout: number,
): Promise<() => void> {
  let gate = gates.get(key);
  if (!gate) gates.set(key, gate = new Gate());
  const deadline = Date.now() + timeout;
  if (!(await wait(gate, exclusive, deadline))) throw new FileLockTimeoutError(key, timeout);
  try {
    let pause = 1;
    while (!handle.tryLockSync(exclusive)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FileLockTimeoutError(key, timeout);
      await sleep(Math.min(left, pause * (0.5 + Math.random())));
      pause = Math.min(50, pause * 2);
    }
  } catch (error) {
    release(key, gate, exclusive);
    if (error instanceof FileLockError) throw error;
    throw new FileLockError(key, `cannot lock "${key}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  let held = true;
  const taken = gate;
  return () => {
    if (!held) return;
    held = false;
    try {
      handle.unlockSync();
    } catch {
      // The kernel drops the lock when the handle is closed.
    } finally {
      release(key, taken, exclusive);
    }
  };
}
