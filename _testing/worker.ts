/**
 * Helpers for tests that run Workers.
 *
 * @module
 */

/** Starts a module Worker from a script URL (relative URLs resolve against `base`). */
export function startWorker(script: string, base: string): Worker {
  return new Worker(new URL(script, base).href, { type: "module" });
}

/** Posts `message` and waits for the Worker's next reply; a Worker error rejects. */
export function ask<T>(worker: Worker, message: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
    worker.postMessage(message);
  });
}
