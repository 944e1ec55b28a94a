/**
 * The driver of `run`, shared by `ProgressTracker` and
 * `SharedProgressTracker`: keeps up to `concurrency` tasks in flight,
 * stops cleanly on an abort signal or SIGINT, draws the progress line,
 * and sums up. Claiming tasks and recording outcomes is the backend's
 * business (a `RunCursor`, directly or across the shared channel).
 *
 * @module
 */

import { fs } from "../_internal/fs.ts";
import { deferSignal } from "../pod/_exit.ts";
import { messageOf, type Outcome } from "./_state.ts";

/**
 * Options of `run`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type RunOptions } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir(), { init: { a: {}, b: {} } });
 * const controller = new AbortController();
 * const options: RunOptions = { concurrency: 1, signal: controller.signal, progress: false };
 * const summary = await tracker.run(() => controller.abort(), options);
 * assert.deepEqual([summary.done, summary.interrupted, summary.remaining], [1, true, 1]);
 * ```
 */
export interface RunOptions {
  /** How many tasks may be in flight at once. Default 1. */
  concurrency?: number;
  /**
   * Stops the run when aborted: no new task starts, the tasks in flight
   * finish and are recorded, the tracker syncs, and the summary says
   * `interrupted: true`.
   */
  signal?: AbortSignal;
  /** Try aborted tasks too (if they have tries left). Default `false`. */
  allowAborted?: boolean;
  /**
   * Stop the same way on the first SIGINT (Ctrl-C), in the main thread.
   * While the run is going, that first SIGINT does not make open pods
   * sync and exit (see `openPod`'s `handleSignals`); a second one does, at
   * once, without waiting for the tasks in flight (with no pod handling
   * signals, it ends the process the default way). Default `true`.
   */
  sigint?: boolean;
  /**
   * Draw a progress line on stderr: done/total, rate, ETA, failures,
   * redrawn at most 10 times a second. Default: only when stderr is a
   * terminal. Without a terminal, `true` prints a line every second.
   */
  progress?: boolean;
}

/**
 * What a run did.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type RunSummary } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir(), { maxTries: 1 });
 * tracker.addMany(["ok", "broken"]);
 * const summary: RunSummary = await tracker.run((key) => {
 *   if (key === "broken") throw new Error("no luck");
 * });
 * assert.deepEqual(
 *   [summary.done, summary.failed, summary.skipped, summary.remaining],
 *   [1, 1, 0, 0], // "broken" used its only try
 * );
 * ```
 */
export interface RunSummary {
  /** Tasks this run tried that succeeded, now marked done. */
  done: number;
  /** Tasks this run tried whose function gave up on them with `abort`: not done, and passed over from now on. */
  aborted: number;
  /** Tasks this run tried that failed (their `_error` says why); a later run retries them while they have tries left. */
  failed: number;
  /** Undone tasks this run passed over because they were aborted or out of tries. */
  skipped: number;
  /** Tasks still to try when the run ended: failed ones with tries left, and any not reached. */
  remaining: number;
  /** Whether the run stopped early, on its signal or on SIGINT. */
  interrupted: boolean;
  /** How long the run took, in milliseconds. */
  elapsed: number;
}

/** Counters, for the progress line. */
export interface RunCounts {
  size: number;
  done: number;
  aborted: number;
}

/** What the driver needs from a tracker. */
export interface RunBackend<E> {
  /** Claims the next task to try (its tries go up by one), or `undefined` for none now. */
  claim(): [string, E] | undefined;
  /** Records the outcome of a claimed task; may turn a success into a failure. */
  finish(key: string, ok: boolean, result: unknown, message: string | undefined): Outcome;
  counts(): RunCounts;
  /** Tasks passed over, and tasks still to try. */
  end(): { skipped: number; remaining: number };
  /** Lets go of the claims; called once, before the final sync. */
  close(): void;
  sync(): Promise<void>;
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";

/** How often the driver lets timers, I/O and signals run when the tasks never wait on them. */
const YIELD_EVERY_MS = 25;

function checkConcurrency(value: number | undefined): number {
  if (value === undefined) return 1;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${value}`);
  }
  return value;
}

/** Runs `fn` over the tasks `backend` hands out. */
export async function drive<E>(
  backend: RunBackend<E>,
  fn: (key: string, entry: E) => unknown,
  options: RunOptions,
): Promise<RunSummary> {
  let concurrency: number;
  try {
    if (typeof fn !== "function") throw new TypeError(`run needs a function, not ${typeof fn}`);
    concurrency = checkConcurrency(options.concurrency);
  } catch (error) {
    backend.close();
    throw error;
  }
  const signal = options.signal;
  const started = performance.now();
  let done = 0;
  let aborted = 0;
  let failed = 0;
  let interrupted = false;
  let fatal: { error: unknown } | undefined;
  let stopping = false;
  const stop = () => {
    if (!stopping) interrupted = true;
    stopping = true;
  };
  if (signal?.aborted) stop();
  signal?.addEventListener("abort", stop);

  let undefer: (() => void) | undefined;
  const onSigint = () => {
    stop();
    // The next SIGINT is not ours: the pods' handler syncs and exits, or,
    // with no listener left, the default action ends the process.
    try {
      fs.removeSignalListener("SIGINT", onSigint);
    } catch { /* already gone */ }
  };
  if ((options.sigint ?? true) && !inWorker) {
    try {
      fs.addSignalListener("SIGINT", onSigint);
      undefer = deferSignal("SIGINT");
    } catch {
      // No SIGINT here (or the listener was refused): the signal option still works.
    }
  }
  const progress = new ProgressLine(options.progress, backend, started);

  const inFlight = new Set<Promise<void>>();
  const runOne = async (key: string, entry: E) => {
    let ok = true;
    let result: unknown;
    let message: string | undefined;
    try {
      result = await fn(key, entry);
    } catch (error) {
      ok = false;
      message = messageOf(error);
    }
    try {
      const outcome = backend.finish(key, ok, result, message);
      if (!outcome.ok) failed++;
      else if (outcome.aborted) aborted++;
      else done++;
    } catch (error) {
      fatal ??= { error };
      stopping = true;
    }
    progress.tick(done, failed);
  };

  let lastYield = performance.now();
  try {
    progress.tick(done, failed);
    for (;;) {
      while (!stopping && inFlight.size < concurrency) {
        const task = backend.claim();
        if (!task) break;
        const running: Promise<void> = runOne(task[0], task[1]).finally(() =>
          inFlight.delete(running)
        );
        inFlight.add(running);
      }
      if (inFlight.size === 0) break;
      await Promise.race(inFlight);
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYield = performance.now();
      }
    }
  } catch (error) {
    fatal ??= { error };
    await Promise.allSettled(inFlight);
  } finally {
    signal?.removeEventListener("abort", stop);
    if (undefer) {
      try {
        fs.removeSignalListener("SIGINT", onSigint);
      } catch { /* never added */ }
      undefer();
    }
  }
  let end = { skipped: 0, remaining: 0 };
  try {
    end = backend.end();
  } finally {
    backend.close();
  }
  progress.finish(done, failed);
  if (fatal) throw fatal.error;
  await backend.sync();
  return { done, aborted, failed, ...end, interrupted, elapsed: performance.now() - started };
}

const encoder = new TextEncoder();

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The progress line on stderr. */
class ProgressLine {
  readonly #enabled: boolean;
  readonly #terminal: boolean;
  readonly #interval: number;
  readonly #backend: RunBackend<unknown>;
  readonly #started: number;
  #last = -Infinity;
  #drawn = false;

  constructor(option: boolean | undefined, backend: RunBackend<unknown>, started: number) {
    let terminal = false;
    try {
      terminal = Deno.stderr.isTerminal();
    } catch { /* no stderr */ }
    this.#terminal = terminal;
    this.#enabled = option ?? terminal;
    this.#interval = terminal ? 100 : 1000;
    this.#backend = backend;
    this.#started = started;
  }

  tick(done: number, failed: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#last < this.#interval) return;
    this.#last = now;
    this.#draw(done, failed, now);
  }

  finish(done: number, failed: number): void {
    if (!this.#enabled) return;
    this.#draw(done, failed, performance.now());
    if (this.#terminal && this.#drawn) this.#write("\n");
  }

  #draw(done: number, failed: number, now: number): void {
    let counts: RunCounts;
    try {
      counts = this.#backend.counts();
    } catch {
      return; // closed meanwhile
    }
    const seconds = (now - this.#started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = Math.max(0, counts.size - counts.done - counts.aborted);
    const percent = counts.size === 0 ? 100 : (counts.done / counts.size) * 100;
    const line = `${counts.done}/${counts.size} done (${percent.toFixed(1)} %) · ${
      rate.toFixed(rate < 10 ? 1 : 0)
    }/s · ETA ${rate > 0 ? formatDuration(left / rate) : "?"} · ${failed} failed`;
    this.#write(this.#terminal ? `\r\x1b[2K${line}` : `${line}\n`);
    this.#drawn = true;
  }

  #write(text: string): void {
    try {
      const bytes = encoder.encode(text);
      let written = 0;
      while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
    } catch { /* stderr closed: no progress line */ }
  }
}
