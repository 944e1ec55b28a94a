/**
 * The bookkeeping behind every tracker handle on one pod directory: the
 * counters (done, tried, aborted), the keys claimed by iterations and runs
 * in progress, and the only code that changes the task state of an entry,
 * so that the counters follow every change.
 *
 * An entry is the pod value `{ _done, _tries, _aborted, ...userData }`.
 * Entries handed out to user code are guarded: their three state fields
 * become accessors that read a hidden slot and refuse assignment, so user
 * code cannot change the state (and the counters) behind the tracker's
 * back; JSON, MessagePack and structured cloning see ordinary fields.
 *
 * @module
 */

import { isPlainObject } from "../_internal/codec.ts";
import type { Entry, PodCore, ShardSummarizer } from "../pod/_core.ts";

export const DONE = "_done";
export const TRIES = "_tries";
export const ABORTED = "_aborted";
export const ERROR = "_error";

/** The fields a tracker keeps itself. */
export type StateField = typeof DONE | typeof TRIES | typeof ABORTED;

/** An entry as stored. */
export interface Raw {
  _done: boolean;
  _tries: number;
  _aborted: boolean;
  _error?: string;
  [field: string]: unknown;
}

const SLOT = Symbol("atomic-store task state");

interface Slot {
  _done: boolean;
  _tries: number;
  _aborted: boolean;
}

type Guarded = Raw & { [SLOT]: Slot };

const HINTS: Record<StateField, string> = {
  _done: "markDone() or markNotDone()",
  _tries: "incrementTries(), decrementTries() or resetTries()",
  _aborted: "abort() or unabort()",
};

function accessor(field: StateField): PropertyDescriptor {
  return {
    get(this: Guarded) {
      return this[SLOT][field];
    },
    set(this: Guarded) {
      throw new TypeError(
        `${field} of a task entry is kept by its tracker: change it with the tracker's ${
          HINTS[field]
        }`,
      );
    },
    enumerable: true,
    configurable: false,
  };
}

const GUARDS: PropertyDescriptorMap = {
  _done: accessor(DONE),
  _tries: accessor(TRIES),
  _aborted: accessor(ABORTED),
};

/**
 * Makes the state fields of an entry read-only for user code (once; later
 * calls return at once). They stay enumerable, in their place.
 */
export function guard<V>(value: V): V {
  const raw = value as unknown as Guarded;
  if (raw[SLOT] !== undefined) return value;
  const slot: Slot = { _done: raw._done, _tries: raw._tries, _aborted: raw._aborted };
  Object.defineProperty(raw, SLOT, { value: slot });
  Object.defineProperties(raw, GUARDS);
  return value;
}

/** Writes a state field, guarded or not. Counters are the caller's business. */
function write(value: Raw, field: StateField, next: boolean | number): void {
  const slot = (value as Partial<Guarded>)[SLOT];
  if (slot === undefined) (value as Record<string, unknown>)[field] = next;
  else (slot as unknown as Record<string, unknown>)[field] = next;
}

/** A fresh entry. */
export function freshEntry(): Raw {
  return { _done: false, _tries: 0, _aborted: false };
}

/**
 * What is wrong with the state fields of `value` (each may be missing),
 * or `undefined`.
 */
export function stateProblem(value: Record<string, unknown>): string | undefined {
  const { _done: done, _tries: tries, _aborted: aborted, _error: error } = value;
  if (done !== undefined && typeof done !== "boolean") {
    return `_done must be a boolean, not ${describe(done)}`;
  }
  if (tries !== undefined && !(Number.isSafeInteger(tries) && (tries as number) >= 0)) {
    return `_tries must be a non-negative integer, not ${describe(tries)}`;
  }
  if (aborted !== undefined && typeof aborted !== "boolean") {
    return `_aborted must be a boolean, not ${describe(aborted)}`;
  }
  if (error !== undefined && typeof error !== "string") {
    return `_error must be a string, not ${describe(error)}`;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return `a value of type ${typeof value}`;
}

/**
 * Checks what `set`, `update` or a run's result brings for `key`: a plain
 * object whose state fields, if any, have the right types. A `TypeError`
 * otherwise.
 */
export function checkInput(key: string, value: unknown, what = "the value"): void {
  if (value === null || typeof value !== "object" || !isPlainObject(value)) {
    throw new TypeError(
      `${what} for task ${JSON.stringify(key)} must be a plain object, not ${describe(value)}`,
    );
  }
  const problem = stateProblem(value as Record<string, unknown>);
  if (problem) throw new TypeError(`${what} for task ${JSON.stringify(key)}: ${problem}`);
}

/** Done, tried and aborted counts: a tracker's shard summary. */
type Counts = [done: number, tried: number, aborted: number];

function countInto(counts: Counts, value: Partial<Raw> | null): void {
  if (value?._done === true) counts[0]++;
  if ((value?._tries ?? 0) > 0) counts[1]++;
  if (value?._aborted === true) counts[2]++;
}

function isCounts(summary: unknown): summary is Counts {
  return Array.isArray(summary) && summary.length === 3 &&
    summary.every((count) => Number.isSafeInteger(count) && count >= 0);
}

function addCounts(counts: Counts, summary: unknown): void {
  if (!isCounts(summary)) return;
  counts[0] += summary[0];
  counts[1] += summary[1];
  counts[2] += summary[2];
}

/** Whether an entry is to be tried: not done, not aborted (unless allowed), tries left. */
export function isTodo(value: Raw, maxTries: number, allowAborted: boolean): boolean {
  return value._done !== true && (allowAborted || value._aborted !== true) &&
    (maxTries === 0 || value._tries < maxTries);
}

/** Something that holds keys for a while: an iteration or a run in progress. */
export interface Claimant {
  holds(key: string): boolean;
}

/** The counters and claims of one pod directory open as a tracker. */
export class TrackerState {
  readonly core: PodCore;
  done = 0;
  tried = 0;
  aborted = 0;
  /** Iterations and runs in progress; a key one of them holds is skipped by the others. */
  readonly claimants: Set<Claimant> = new Set();
  /** Called with each key added, for runs that have gone past the end of the entries. */
  readonly addListeners: Set<(key: string) => void> = new Set();

  constructor(core: PodCore) {
    this.core = core;
  }

  /** Starts keeping counts in shard headers (after a first count). */
  attach(): void {
    this.core.summarizer = this.#summarizer;
  }

  /**
   * Puts the counts of each shard in its header, so that a lazy open
   * knows them without reading the records; checks them when the records
   * are read.
   */
  readonly #summarizer: ShardSummarizer = {
    name: "tracker",
    summarize: (values) => {
      const counts: Counts = [0, 0, 0];
      for (const value of values) countInto(counts, value as Partial<Raw> | null);
      return counts;
    },
    loaded: (entries, summary) => {
      const expected: Counts = [0, 0, 0];
      addCounts(expected, summary);
      const actual: Counts = [0, 0, 0];
      const problem = this.#scan(entries, actual);
      this.done += actual[0] - expected[0];
      this.tried += actual[1] - expected[1];
      this.aborted += actual[2] - expected[2];
      if (problem) this.core.report(problem);
    },
  };

  /**
   * Counts from scratch: on open and after a revert. Shards not read yet
   * count by the summaries in their headers; where one has none, every
   * shard is read. Missing state fields are filled in (and written at the
   * next sync, unless read-only). Returns a `TypeError` about the first
   * entry that is not a task entry; such entries count as not done, not
   * tried and not aborted.
   */
  recount(): TypeError | undefined {
    const core = this.core;
    let summaries = core.unreadSummaries(this.#summarizer.name);
    if (summaries === undefined || !summaries.every(isCounts)) {
      core.readAll();
      summaries = [];
    }
    const counts: Counts = [0, 0, 0];
    const problem = this.#scan(core.entriesRead(), counts);
    for (const summary of summaries) addCounts(counts, summary);
    [this.done, this.tried, this.aborted] = counts;
    return problem;
  }

  /** Adds the counts of entries to `counts` and checks them, filling in missing state fields. */
  #scan(entries: Iterable<Entry>, counts: Counts): TypeError | undefined {
    let problem: TypeError | undefined;
    for (const entry of entries) {
      const key = entry.key;
      const value = entry.value as Raw;
      if (value !== null && typeof value === "object") {
        const d = value._done, t = value._tries, a = value._aborted;
        if (
          typeof d !== "boolean" || typeof a !== "boolean" || typeof t !== "number" ||
          !(t >= 0 && Number.isSafeInteger(t)) ||
          (value._error !== undefined && typeof value._error !== "string")
        ) {
          problem ??= this.#repair(key, entry);
        }
      } else {
        problem ??= this.#notATask(key, value);
      }
      countInto(counts, value);
    }
    return problem;
  }

  #notATask(key: string, value: unknown): TypeError {
    return new TypeError(
      `pod "${this.core.path}" is not a progress tracker: the value of ${JSON.stringify(key)} is ${
        describe(value)
      }, not a task entry { _done, _tries, _aborted, ... }`,
    );
  }

  /** Fills in missing state fields of a stored entry, or describes what is wrong. */
  #repair(key: string, entry: Entry): TypeError | undefined {
    const value = entry.value as Raw;
    if (Array.isArray(value) || !isPlainObject(value)) return this.#notATask(key, value);
    const problem = stateProblem(value);
    if (problem) {
      return new TypeError(
        `pod "${this.core.path}" is not a progress tracker: in the value of ${
          JSON.stringify(key)
        }, ${problem}`,
      );
    }
    value._done ??= false;
    value._tries ??= 0;
    value._aborted ??= false;
    if (!this.core.readOnly) this.core.markDirty(key);
    return undefined;
  }

  /** Adds a key that is not there yet, as a fresh entry. */
  addFresh(key: string): Entry {
    this.core.set(key, freshEntry());
    const entry = this.core.find(key)!;
    this.#announce(key);
    return entry;
  }

  /** Counts a value that was just stored under a new key, or replaced another. */
  counted(key: string, previous: unknown, value: Raw): void {
    if (previous !== undefined) this.uncount(previous);
    if (value._done === true) this.done++;
    if (value._tries > 0) this.tried++;
    if (value._aborted === true) this.aborted++;
    if (previous === undefined) this.#announce(key);
  }

  /** Stops counting a value that was removed. */
  uncount(previous: unknown): void {
    const value = previous as Partial<Raw> | null;
    if (value?._done === true) this.done--;
    if ((value?._tries ?? 0) > 0) this.tried--;
    if (value?._aborted === true) this.aborted--;
  }

  /** After `clear()`. */
  reset(): void {
    this.done = this.tried = this.aborted = 0;
  }

  #announce(key: string): void {
    if (this.addListeners.size === 0) return;
    for (const listener of this.addListeners) listener(key);
  }

  /** Marks an entry to be written at the next sync, after a change made in place. */
  touch(key: string, entry: Entry): void {
    // A value known to be storable stays so after a change of a primitive
    // field; one handed out since may have been changed, so it is checked
    // again at the sync.
    if (entry.checked) this.core.set(key, entry.value);
    else this.core.markDirty(key);
  }

  /** Changes one state field of an entry, keeping the counters right. */
  setField(key: string, entry: Entry, field: StateField, next: boolean | number): void {
    const value = entry.value as Raw;
    const previous = value[field];
    if (previous === next) return;
    if (field === TRIES) {
      if (previous === 0) this.tried++;
      else if (next === 0) this.tried--;
    } else if (field === DONE) {
      this.done += next ? 1 : -1;
    } else {
      this.aborted += next ? 1 : -1;
    }
    write(value, field, next);
    this.touch(key, entry);
  }

  /**
   * Mixes `data` (checked with {@linkcode checkInput}) into an entry: state
   * fields through {@linkcode TrackerState.setField}, the rest as they are.
   */
  merge(key: string, entry: Entry, data: Record<string, unknown>): void {
    const value = entry.value as Raw;
    for (const field of Object.keys(data)) {
      const next = data[field];
      if (field === DONE || field === TRIES || field === ABORTED) {
        if (next !== undefined) this.setField(key, entry, field, next as boolean | number);
      } else if (field === "__proto__") {
        Object.defineProperty(value, field, {
          value: next,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        value[field] = next;
      }
    }
    this.touch(key, entry);
  }

  /** Whether a claimant other than `me` holds `key`. */
  claimedByOther(key: string, me: Claimant | undefined): boolean {
    if (this.claimants.size === 0 || (this.claimants.size === 1 && me !== undefined)) {
      return false;
    }
    for (const claimant of this.claimants) {
      if (claimant !== me && claimant.holds(key)) return true;
    }
    return false;
  }

  /**
   * Records the outcome of one try of a run: on success, mixes in the
   * result (a plain object, if any), drops `_error` and marks the task
   * done (unless it was aborted meanwhile); on failure, keeps the message
   * in `_error`. A result that cannot be stored makes the try a failure.
   */
  finish(
    key: string,
    ok: boolean,
    result: unknown,
    message: string | undefined,
  ): Outcome {
    const entry = this.core.find(key);
    if (!entry) return ok ? { ok } : { ok, message }; // deleted meanwhile
    if (ok && result !== null && typeof result === "object" && isPlainObject(result)) {
      try {
        const data = result as Record<string, unknown>;
        if (data[DONE] !== undefined || data[TRIES] !== undefined || data[ABORTED] !== undefined) {
          throw new TypeError(
            `the result of task ${JSON.stringify(key)} cannot set _done, _tries or _aborted`,
          );
        }
        checkInput(key, data, "the result");
        this.core.check(key, data);
        this.merge(key, entry, data);
      } catch (error) {
        ok = false;
        message = messageOf(error);
      }
    }
    const value = entry.value as Raw;
    if (ok) {
      if (value._error !== undefined) delete value._error;
      if (value._aborted !== true) this.setField(key, entry, DONE, true);
    } else {
      value._error = message ?? "failed";
    }
    this.touch(key, entry);
    if (!ok) return { ok, message: value._error };
    return value._aborted === true ? { ok, aborted: true } : { ok };
  }
}

/** What became of a try: a success (the task is done, or was aborted by its function), or a failure. */
export interface Outcome {
  ok: boolean;
  /** The function aborted the task: it succeeded, and the task is not marked done. */
  aborted?: boolean;
  /** Why it failed. */
  message?: string;
}

/** The message of a thrown value, for `_error`. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  try {
    return String(error);
  } catch {
    return "failed";
  }
}

/** The tracker state of each core open as a tracker. */
const states = new WeakMap<PodCore, TrackerState>();

/** The state of `core`, counted (and checked) the first time. */
export function stateOf(core: PodCore): TrackerState {
  let state = states.get(core);
  if (state) return state;
  state = new TrackerState(core);
  const problem = state.recount();
  if (problem) throw problem;
  state.attach();
  states.set(core, state);
  return state;
}

/**
 * The claim side of a run: walks the entries in order, claiming each task
 * to try (incrementing its tries) until the caller finishes it. Tasks
 * added while the run goes on are picked up: those added before the walk
 * reaches the end come up in order, later ones from a queue. Each task is
 * tried at most once per run. After a revert, the walk starts over on the
 * reverted entries.
 */
export class RunCursor implements Claimant {
  readonly state: TrackerState;
  readonly maxTries: number;
  readonly allowAborted: boolean;
  /** Keys claimed and not finished yet. */
  readonly inFlight: Set<string> = new Set();
  /** Undone tasks passed over because they were aborted or out of tries. */
  skipped = 0;
  #generation = -1;
  #walk: Iterator<[string, Entry]> | undefined;
  #queue: string[] = [];
  #queued = 0;
  readonly #listener = (key: string) => void this.#queue.push(key);

  constructor(state: TrackerState, maxTries: number, allowAborted: boolean) {
    this.state = state;
    this.maxTries = maxTries;
    this.allowAborted = allowAborted;
    state.claimants.add(this);
    this.#restart();
  }

  holds(key: string): boolean {
    return this.inFlight.has(key);
  }

  #restart(): void {
    this.state.addListeners.delete(this.#listener);
    this.#generation = this.state.core.generation;
    this.#walk = this.state.core.walk();
    this.#queue = [];
    this.#queued = 0;
  }

  /** Claims the next task to try, or returns `undefined` if there is none now. */
  claim(): [string, Entry] | undefined {
    if (this.state.core.generation !== this.#generation) this.#restart();
    if (this.#walk) {
      for (;;) {
        const next = this.#walk.next();
        if (next.done) {
          // From now on, new keys come through the queue.
          this.#walk = undefined;
          this.state.addListeners.add(this.#listener);
          break;
        }
        const [key, entry] = next.value;
        if (this.#take(key, entry)) return [key, entry];
      }
    }
    while (this.#queued < this.#queue.length) {
      const key = this.#queue[this.#queued++];
      const entry = this.state.core.find(key);
      if (entry && this.#take(key, entry)) return [key, entry];
    }
    this.#queue = [];
    this.#queued = 0;
    return undefined;
  }

  #take(key: string, entry: Entry): boolean {
    const value = entry.value as Raw;
    if (value._done === true) return false;
    if (!isTodo(value, this.maxTries, this.allowAborted)) {
      this.skipped++;
      return false;
    }
    if (this.inFlight.has(key) || this.state.claimedByOther(key, this)) return false;
    this.inFlight.add(key);
    this.state.setField(key, entry, TRIES, value._tries + 1);
    return true;
  }

  /** Records the outcome of a claimed task and lets go of it. */
  finish(key: string, ok: boolean, result: unknown, message: string | undefined): Outcome {
    this.inFlight.delete(key);
    return this.state.finish(key, ok, result, message);
  }

  /** The number of tasks still to try, for the summary. */
  remaining(): number {
    let count = 0;
    for (const [, entry] of this.state.core.walk()) {
      if (isTodo(entry.value as Raw, this.maxTries, this.allowAborted)) count++;
    }
    return count;
  }

  /** Ends the run: lets go of everything. */
  close(): void {
    this.state.claimants.delete(this);
    this.state.addListeners.delete(this.#listener);
    this.inFlight.clear();
  }
}
