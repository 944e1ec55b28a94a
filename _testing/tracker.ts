/**
 * Helpers for tests of progress trackers.
 *
 * @module
 */

import type { ProgressTracker } from "../tracker/mod.ts";

/** Done, tried and aborted counts. */
export interface Counts {
  done: number;
  tried: number;
  aborted: number;
}

/** The counts the tracker keeps. */
export function counts(tracker: ProgressTracker<object>): Counts {
  return { done: tracker.numDone(), tried: tracker.numTried(), aborted: tracker.numAborted() };
}

/** The counts, recounted from the entries (which reads every shard). */
export function recount(tracker: ProgressTracker<object>): Counts {
  let done = 0, tried = 0, aborted = 0;
  for (const entry of tracker.values()) {
    if (entry._done) done++;
    if (entry._tries > 0) tried++;
    if (entry._aborted) aborted++;
  }
  return { done, tried, aborted };
}
