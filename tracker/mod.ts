/**
 * Progress trackers: pods that remember which of many tasks are done,
 * how often each was tried, and which were given up on, so that a long
 * job (a crawler, a batch of downloads, a migration) picks up where it
 * left off after a crash, a Ctrl-C or a failure.
 *
 * - {@linkcode openTracker} gives a {@linkcode ProgressTracker} (alias
 *   {@linkcode Tracker}), a `Pod` whose values are task entries
 *   `{ _done, _tries, _aborted, ...yourData }`, with `add…` methods, state
 *   changes (`markDone`, `abort`, `incrementTries`, …), gates (`shouldDo`,
 *   `shouldTry`, …), `todo…`/`try…` iterators, counts kept as the tasks
 *   change (`numDone`, `fractionTried`, `percentDone`, …), and
 *   {@linkcode ProgressTracker.run}, which works through the tasks several
 *   at a time, records failures, and stops cleanly on Ctrl-C.
 * - {@linkcode SharedProgressTracker} (alias {@linkcode SharedTracker})
 *   shares one tracker between Workers, like `SharedPod`: each state
 *   change is one step on the owning thread, and Workers iterating
 *   `tryKeys()` or running `run` at the same time never get the same task.
 *
 * ## Tries, crashes and maxTries
 *
 * A task's try is counted when it is handed out (by `shouldTry`, the
 * `try…` iterators or `run`), before the work starts, so a task that
 * crashes the program counts as tried. Like every pod change, the count
 * reaches the disk at the next sync: after a SIGKILL, the tries and done
 * marks of the last moments may be lost, and those tasks are simply tried
 * again. With `maxTries: n`, a task is handed out at most `n` times, in
 * total, across runs. `run` saves a task's results (the object its
 * function returns) in the same step as its done mark, so they reach the
 * disk together: a task's results are recorded exactly once.
 *
 * @example A resumable job
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker } from "@x/atomic-store/tracker";
 *
 * const path = `${await Deno.makeTempDir()}/thumbnails.tracker`;
 * await using jobs = await openTracker<{ bytes: number }>(path, { maxTries: 3 });
 * jobs.addManyIfAbsent(["a.jpg", "b.jpg", "c.jpg"]); // known ones are kept as they are
 * const summary = await jobs.run(async (file) => {
 *   await new Promise((resolve) => setTimeout(resolve, 1)); // the real work
 *   return { bytes: file.length * 1000 };
 * }, { concurrency: 2 });
 * assert.equal(summary.done, 3);
 * assert.equal(jobs.percentDone(), "100.00 %");
 * ```
 *
 * @module
 */

export {
  openTracker,
  ProgressTracker,
  type RunOptions,
  type RunSummary,
  type TaskEntry,
  type TaskFunction,
  type TaskInput,
  type TaskState,
  type TodoOptions,
  Tracker,
  type TrackerOptions,
} from "./tracker.ts";
export {
  SharedProgressTracker,
  SharedTracker,
  type SharedTrackerHandle,
  type SharedTrackerOptions,
} from "./shared.ts";
export { DuplicateKeyError, UnknownKeyError } from "./errors.ts";
export {
  Pod,
  type PodEntries,
  type PodFormat,
  type PodOptions,
  SharedPod,
  type SharedPodHandle,
  type SharedPodSetter,
} from "../pod/mod.ts";
export { AtomicStoreError } from "../_internal/errors.ts";
