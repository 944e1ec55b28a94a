import type { Entry, PodCore } from "../pod/_core.ts";
import {
  entriesOf,
  openPodWith,
  Pod,
  podCoreOf,
  type PodEntries,
  type PodOptions,
} from "../pod/pod.ts";
import {
  ABORTED,
  checkInput,
  type Claimant,
  DONE,
  guard,
  isTodo,
  type Raw,
  RunCursor,
  stateOf,
  type TrackerState,
  TRIES,
} from "./_state.ts";
import { drive, type RunOptions, type RunSummary } from "./_run.ts";
import { DuplicateKeyError, UnknownKeyError } from "./errors.ts";

/**
 * The fields a tracker keeps in every entry. They are read-only on the
 * entries it hands out: change them with the tracker's methods.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type TaskState } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir(), { init: { a: {} } });
 * tracker.incrementTries("a");
 * const state: TaskState = tracker.get("a")!;
 * assert.deepEqual([state._done, state._tries, state._aborted], [false, 1, false]);
 * ```
 */
export interface TaskState {
  /** Whether the task is done: {@linkcode ProgressTracker.markDone}. */
  readonly _done: boolean;
  /** How many times the task was tried: {@linkcode ProgressTracker.incrementTries}. */
  readonly _tries: number;
  /** Whether the task was given up on: {@linkcode ProgressTracker.abort}. */
  readonly _aborted: boolean;
  /**
   * The message of the error of the last failed try in
   * {@linkcode ProgressTracker.run}; removed when a try succeeds.
   */
  _error?: string;
}

/**
 * A tracker's value: the task state and your data about the task (all
 * optional, since {@linkcode ProgressTracker.add} creates bare entries).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type TaskEntry } from "@x/atomic-store/tracker";
 *
 * interface Download {
 *   bytes: number;
 * }
 * await using downloads = await openTracker<Download>(await Deno.makeTempDir());
 * downloads.add("a.zip");
 * const entry: TaskEntry<Download> = downloads.get("a.zip")!;
 * assert.equal(entry.bytes, undefined); // not known yet
 * ```
 */
export type TaskEntry<T extends object = Record<string, unknown>> = TaskState & Partial<T>;

/**
 * What {@linkcode ProgressTracker.set} and {@linkcode ProgressTracker.update}
 * take: your data, and state fields if you want to set them (checked).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type TaskInput } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker<{ owner: string }>(await Deno.makeTempDir());
 * const imported: TaskInput<{ owner: string }> = { owner: "ops", _done: true };
 * tracker.update({ "migrate-db": imported });
 * assert.equal(tracker.numDone(), 1);
 * ```
 */
export type TaskInput<T extends object = Record<string, unknown>> = Partial<T> & {
  _done?: boolean;
  _tries?: number;
  _aborted?: boolean;
  _error?: string;
};

/**
 * A function run on each task by {@linkcode ProgressTracker.run}. Throwing
 * (or rejecting) fails the try. A plain object it returns is mixed into
 * the entry in the same step that marks the task done, so the results
 * and the done mark reach the disk together.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type TaskFunction } from "@x/atomic-store/tracker";
 *
 * const measure: TaskFunction<{ length: number }> = (key) => ({ length: key.length });
 * await using tracker = await openTracker<{ length: number }>(await Deno.makeTempDir());
 * tracker.add("hello");
 * await tracker.run(measure);
 * assert.equal(tracker.get("hello")!.length, 5);
 * ```
 */
export type TaskFunction<T extends object = Record<string, unknown>> = (
  key: string,
  entry: TaskEntry<T>,
) => void | Partial<T> | Promise<void | Partial<T>>;

/**
 * Options of {@linkcode openTracker}: `maxTries`, and those of `openPod`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, type TrackerOptions } from "@x/atomic-store/tracker";
 *
 * const options: TrackerOptions = { maxTries: 5, syncAt: 100, init: { first: {} } };
 * await using tracker = await openTracker(await Deno.makeTempDir(), options);
 * assert.equal(tracker.maxTries, 5);
 * ```
 */
export interface TrackerOptions<T extends object = Record<string, unknown>>
  extends Omit<PodOptions<TaskInput<T>>, "init"> {
  /**
   * How many tries a task gets: the `todo…`/`try…` iterators, the gates
   * and `run` pass over tasks tried this many times. `0` means no limit.
   * Default 0.
   */
  maxTries?: number;
  /**
   * Tasks applied after opening, as by {@linkcode ProgressTracker.update}:
   * missing keys are added, and the data is mixed into the entries.
   */
  init?: PodEntries<TaskInput<T>>;
}

/**
 * Options of the gates and iterators.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir(), { init: { a: {} } });
 * tracker.abort("a");
 * assert.deepEqual([...tracker.todoKeys()], []);
 * assert.deepEqual([...tracker.todoKeys({ allowAborted: true })], ["a"]);
 * ```
 */
export interface TodoOptions {
  /** Count aborted tasks as to do (if they have tries left). Default `false`. */
  allowAborted?: boolean;
}

export type { RunOptions, RunSummary } from "./_run.ts";

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`task keys must be strings, not ${key === null ? "null" : typeof key}`);
  }
}

function checkMaxTries(value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`maxTries must be a non-negative integer (0: no limit), got ${value}`);
  }
  return value;
}

function checkDecimals(decimals: number): number {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 20) {
    throw new RangeError(`decimals must be an integer from 0 to 20, got ${decimals}`);
  }
  return decimals;
}

/** `"34.70 %"`. */
export function formatPercent(fraction: number, decimals: number): string {
  return `${(fraction * 100).toFixed(checkDecimals(decimals))} %`;
}

let createTracker: <T extends object>(
  core: PodCore,
  readOnly: boolean,
  maxTries: number,
) => ProgressTracker<T>;
let trackerStateOf: (tracker: ProgressTracker<object>) => TrackerState;

/** The bookkeeping of a tracker, for `SharedProgressTracker`; not part of the public API. */
export function stateOfTracker(tracker: ProgressTracker<object>): TrackerState {
  return trackerStateOf(tracker);
}

/**
 * A {@linkcode Pod} that tracks the progress of many repetitive tasks, so
 * that a long job can pick up where it left off after a crash, a Ctrl-C
 * or a failure. Get one with {@linkcode openTracker}.
 *
 * Each value is a task entry: `{ _done, _tries, _aborted, ...yourData }`.
 * The tracker keeps the three state fields (they are read-only on the
 * entries it hands out) and counts them as they change, so
 * {@linkcode ProgressTracker.numDone} and friends cost nothing. Store
 * the task's data and results in the same entry: it is all one pod value.
 *
 * - Add tasks with `add`, `addIfAbsent`, `addMany`, `addManyIfAbsent`, or
 *   `update` (which also mixes data into entries).
 * - Change state with `markDone`, `markNotDone`, `abort`, `unabort`,
 *   `incrementTries`, `decrementTries`, `resetTries`. These throw
 *   {@linkcode UnknownKeyError} for keys the tracker does not have; the
 *   reads (`isDone`, `isAborted`, `tries`) answer `false`/`0` for them.
 * - Walk the work with the `todo…` iterators (not done, not aborted, tries
 *   left) and the `try…` iterators, which also count a try for each task
 *   before handing it out; or let {@linkcode ProgressTracker.run} do it,
 *   several tasks at a time.
 *
 * Everything else is the pod's: values are saved at the next sync, which
 * happens every `syncAt` changes, on close, at exit and on SIGINT/SIGTERM.
 * A try counted but not synced before a crash is simply not counted.
 *
 * Each shard file's header holds the counts of its tasks, so reopening a
 * tracker of a million tasks reads only those headers (milliseconds): the
 * counts are ready at once, and the entries are read as the `todo…`/`try…`
 * iterators and runs reach them (see the pod's `lazy` option).
 *
 * In one thread, a directory is open either as a tracker or as a plain
 * pod, never both at once (a `TypeError`): a plain handle would change
 * entries behind the tracker's counters.
 *
 * @example The crawler loop
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker } from "@x/atomic-store/tracker";
 *
 * const links: Record<string, string[]> = { "/": ["/a", "/b"], "/a": ["/b", "/c"], "/b": [], "/c": ["/"] };
 * await using urls = await openTracker(await Deno.makeTempDir(), { maxTries: 3 });
 * urls.addIfAbsent("/");
 * for (const url of urls.tryKeys()) {
 *   const found = links[url]; // fetch the page here; on failure, `continue`
 *   urls.addManyIfAbsent(found); // new keys come up later in this same loop
 *   urls.markDone(url);
 * }
 * assert.equal(urls.numDone(), 4);
 * assert.equal(urls.percentDone(), "100.00 %");
 * ```
 */
export class ProgressTracker<T extends object = Record<string, unknown>> extends Pod<TaskEntry<T>> {
  static {
    createTracker = <T extends object>(core: PodCore, readOnly: boolean, maxTries: number) =>
      new ProgressTracker<T>(core, readOnly, maxTries);
    trackerStateOf = (tracker) => tracker.#state;
  }

  readonly #state: TrackerState;
  readonly #maxTries: number;
  /** Iterations of this handle still going, ended when it closes. */
  readonly #claimants = new Set<Claimant & { close?(): void }>();

  /**
   * Not for direct use: see {@linkcode openTracker}.
   *
   * @ignore
   */
  protected constructor(core: PodCore, readOnly: boolean, maxTries: number) {
    super(core, readOnly);
    this.#state = stateOf(core);
    this.#maxTries = maxTries;
  }

  /** How many tries a task gets (`0`: no limit), as opened. */
  get maxTries(): number {
    return this.#maxTries;
  }

  /** The core, checking that this handle is open. */
  #core(): PodCore {
    return podCoreOf(this as ProgressTracker<object>);
  }

  /** The core, checking that this handle is open and writable. */
  #writable(): PodCore {
    const core = this.#core();
    if (this.readOnly) throw new TypeError(`tracker "${this.path}" is open read-only`);
    return core;
  }

  /** The entry of `key`, which must exist, for a state change. */
  #task(key: string): Entry {
    checkKey(key);
    const entry = this.#writable().find(key);
    if (!entry) throw new UnknownKeyError(this.path, key);
    return entry;
  }

  #value(key: string): Raw | undefined {
    checkKey(key);
    return this.#core().find(key)?.value as Raw | undefined;
  }

  #lend(core: PodCore, key: string, entry: Entry): TaskEntry<T> {
    if (!this.readOnly) core.lend(key, entry);
    return guard(entry.value) as TaskEntry<T>;
  }

  // ---------------------------------------------------------------------------
  // Pod methods, with the task state checked and counted

  /**
   * The entry of `key`, or `undefined`. Its user data can be changed in
   * place (and is saved, as with any pod value); its state fields are
   * read-only: assigning one is a `TypeError`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker<{ title: string }>(await Deno.makeTempDir());
   * tracker.add("/about");
   * tracker.get("/about")!.title = "About us"; // saved at the next sync
   * assert.throws(() => (tracker.get("/about") as { _done: boolean })._done = true, TypeError);
   * ```
   */
  override get(key: string): TaskEntry<T> | undefined {
    const value = super.get(key);
    return value === undefined ? undefined : guard(value);
  }

  /**
   * Sets the entry of `key` to `value`: a plain object with your data,
   * replacing the data there was. State fields given in `value` are
   * checked (a `TypeError`, and nothing changes, for a wrong type) and
   * applied; those left out keep their current values, or start as not
   * done, 0 tries, not aborted for a new key. The entry stored is a copy.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker<{ size: number }>(await Deno.makeTempDir());
   * tracker.set("a.txt", { size: 10 });
   * tracker.markDone("a.txt");
   * tracker.set("a.txt", { size: 12 }); // still done
   * assert.equal(tracker.isDone("a.txt"), true);
   * assert.throws(() => tracker.set("b.txt", { _tries: -1 }), TypeError);
   * ```
   */
  override set(key: string, value: TaskInput<T>): this {
    checkKey(key);
    const core = this.#writable();
    checkInput(key, value);
    core.check(key, value);
    const previous = core.find(key)?.value as Raw | undefined;
    const input = value as Record<string, unknown>;
    const stored: Raw = {
      _done: (input._done as boolean | undefined) ?? previous?._done ?? false,
      _tries: (input._tries as number | undefined) ?? previous?._tries ?? 0,
      _aborted: (input._aborted as boolean | undefined) ?? previous?._aborted ?? false,
    };
    for (const field of Object.keys(input)) {
      if (field === DONE || field === TRIES || field === ABORTED) continue;
      Object.defineProperty(stored, field, {
        value: input[field],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    core.set(key, stored);
    this.#state.counted(key, previous, stored);
    return this;
  }

  /** Removes the task `key`; returns whether it was there. */
  override delete(key: string): boolean {
    checkKey(key);
    const previous = this.#core().find(key)?.value;
    const removed = super.delete(key);
    if (removed) this.#state.uncount(previous);
    return removed;
  }

  /** Removes every task. */
  override clear(): void {
    super.clear();
    this.#state.reset();
  }

  /**
   * Mixes data into entries, adding the keys that are missing first (as
   * {@linkcode ProgressTracker.add} would). Takes `[key, data]` pairs, a
   * `Map` or a plain object; each `data` is a plain object whose fields
   * are copied into the entry. State fields in it are checked and
   * applied. Everything is checked before anything changes.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker<{ depth: number; title: string }>(
   *   await Deno.makeTempDir(),
   * );
   * tracker.update({ "/": { depth: 0 } });
   * tracker.update([["/", { title: "Home" }], ["/a", { depth: 1, _tries: 2 }]]);
   * assert.deepEqual({ ...tracker.get("/") }, {
   *   _done: false,
   *   _tries: 0,
   *   _aborted: false,
   *   depth: 0,
   *   title: "Home",
   * });
   * assert.equal(tracker.tries("/a"), 2);
   * ```
   */
  override update(entries: PodEntries<TaskInput<T>>): void {
    const core = this.#writable();
    const pairs = entriesOf(entries);
    for (const [key, data] of pairs) {
      checkKey(key);
      checkInput(key, data);
      core.check(key, data);
      core.find(key); // reads shards not read yet now, before any change
    }
    const state = this.#state;
    for (const [key, data] of pairs) {
      const entry = core.find(key) ?? state.addFresh(key);
      state.merge(key, entry, data as Record<string, unknown>);
    }
  }

  /** The entries, in order; their state fields are read-only (see {@linkcode ProgressTracker.get}). */
  override *values(): IterableIterator<TaskEntry<T>> {
    const core = this.#core();
    for (const [key, entry] of core.walk()) yield this.#lend(core, key, entry);
  }

  /** The `[key, entry]` pairs, in order. */
  override *entries(): IterableIterator<[string, TaskEntry<T>]> {
    const core = this.#core();
    for (const [key, entry] of core.walk()) yield [key, this.#lend(core, key, entry)];
  }

  /**
   * Drops every change not yet synced and reloads the tracker from disk;
   * the counts follow. Iterations in progress end with a `TypeError` at
   * their next step.
   */
  override async revert(): Promise<void> {
    await super.revert();
    if (!this.closed) {
      const problem = this.#state.recount();
      if (problem) throw problem;
    }
  }

  /** Syncs and closes this handle (see {@linkcode Pod.close}); iterations of this handle end. */
  override async close(): Promise<void> {
    await super.close();
    for (const claimant of this.#claimants) {
      claimant.close?.();
      this.#state.claimants.delete(claimant);
    }
    this.#claimants.clear();
  }

  // ---------------------------------------------------------------------------
  // Adding tasks

  /**
   * Adds the task `key`: not done, 0 tries, not aborted. A key that is
   * there already is a {@linkcode DuplicateKeyError}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir());
   * tracker.add("job-1").add("job-2");
   * assert.deepEqual({ ...tracker.get("job-1") }, { _done: false, _tries: 0, _aborted: false });
   * ```
   */
  add(key: string): this {
    checkKey(key);
    const core = this.#writable();
    if (core.find(key) !== undefined) throw new DuplicateKeyError(this.path, key);
    this.#state.addFresh(key);
    return this;
  }

  /** Adds the task `key` unless it is there; returns whether it was added. */
  addIfAbsent(key: string): boolean {
    checkKey(key);
    const core = this.#writable();
    if (core.find(key) !== undefined) return false;
    this.#state.addFresh(key);
    return true;
  }

  /**
   * Adds many tasks, in order. If any key is there already, or comes
   * twice, it is a {@linkcode DuplicateKeyError} and nothing is added.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { DuplicateKeyError, openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir());
   * tracker.addMany(["a", "b"]);
   * assert.throws(() => tracker.addMany(["c", "a"]), DuplicateKeyError);
   * assert.equal(tracker.has("c"), false);
   * ```
   */
  addMany(keys: Iterable<string>): void {
    const core = this.#writable();
    const list = Array.from(keys);
    const seen = new Set<string>();
    for (const key of list) {
      checkKey(key);
      if (core.find(key) !== undefined || seen.has(key)) {
        throw new DuplicateKeyError(this.path, key);
      }
      seen.add(key);
    }
    const state = this.#state;
    for (const key of list) state.addFresh(key);
  }

  /** Adds the tasks that are not there yet, in order; returns how many were added. */
  addManyIfAbsent(keys: Iterable<string>): number {
    const core = this.#writable();
    const list = Array.from(keys);
    for (const key of list) checkKey(key);
    const state = this.#state;
    let added = 0;
    for (const key of list) {
      if (core.find(key) !== undefined) continue;
      state.addFresh(key);
      added++;
    }
    return added;
  }

  // ---------------------------------------------------------------------------
  // Task state

  /**
   * Marks the task `key` done. An unknown key is an
   * {@linkcode UnknownKeyError}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir(), { init: { a: {} } });
   * tracker.markDone("a");
   * assert.equal(tracker.isDone("a"), true);
   * tracker.markNotDone("a");
   * assert.equal(tracker.numDone(), 0);
   * ```
   */
  markDone(key: string): void {
    this.#state.setField(key, this.#task(key), DONE, true);
  }

  /** Marks the task `key` not done. */
  markNotDone(key: string): void {
    this.#state.setField(key, this.#task(key), DONE, false);
  }

  /** Whether the task `key` is done; `false` for an unknown key. */
  isDone(key: string): boolean {
    return this.#value(key)?._done === true;
  }

  /**
   * Gives up on the task `key`: the `todo…`/`try…` iterators, the gates
   * and `run` pass over it unless asked to `allowAborted`.
   */
  abort(key: string): void {
    this.#state.setField(key, this.#task(key), ABORTED, true);
  }

  /** Takes back {@linkcode ProgressTracker.abort}. */
  unabort(key: string): void {
    this.#state.setField(key, this.#task(key), ABORTED, false);
  }

  /** Whether the task `key` was aborted; `false` for an unknown key. */
  isAborted(key: string): boolean {
    return this.#value(key)?._aborted === true;
  }

  /**
   * Counts one more try of the task `key`; returns the new count.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir(), { init: { a: {} } });
   * assert.equal(tracker.incrementTries("a"), 1);
   * assert.equal(tracker.decrementTries("a"), 0);
   * assert.throws(() => tracker.decrementTries("a"), RangeError);
   * ```
   */
  incrementTries(key: string): number {
    const entry = this.#task(key);
    const tries = (entry.value as Raw)._tries + 1;
    this.#state.setField(key, entry, TRIES, tries);
    return tries;
  }

  /** Counts one try less; returns the new count. Below 0 is a `RangeError`. */
  decrementTries(key: string): number {
    const entry = this.#task(key);
    const tries = (entry.value as Raw)._tries - 1;
    if (tries < 0) {
      throw new RangeError(`task ${JSON.stringify(key)} has no tries to take back`);
    }
    this.#state.setField(key, entry, TRIES, tries);
    return tries;
  }

  /** Sets the tries of the task `key` back to 0. */
  resetTries(key: string): void {
    this.#state.setField(key, this.#task(key), TRIES, 0);
  }

  /** How many times the task `key` was tried; 0 for an unknown key. */
  tries(key: string): number {
    return this.#value(key)?._tries ?? 0;
  }

  // ---------------------------------------------------------------------------
  // Gates

  /**
   * Whether the task `key` is to do: not done, not aborted (unless
   * `allowAborted`), and tried fewer than `maxTries` times. An unknown key
   * is an {@linkcode UnknownKeyError}: see
   * {@linkcode ProgressTracker.shouldDoAdd}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir(), { maxTries: 2 });
   * tracker.add("flaky");
   * assert.equal(tracker.shouldTry("flaky"), true); // tries: 1
   * assert.equal(tracker.shouldTry("flaky"), true); // tries: 2
   * assert.equal(tracker.shouldTry("flaky"), false); // out of tries
   * assert.equal(tracker.shouldDo("flaky"), false);
   * ```
   */
  shouldDo(key: string, options: TodoOptions = {}): boolean {
    checkKey(key);
    const entry = this.#core().find(key);
    if (!entry) throw new UnknownKeyError(this.path, key);
    return isTodo(entry.value as Raw, this.#maxTries, options.allowAborted ?? false);
  }

  /** Like {@linkcode ProgressTracker.shouldDo}, and when it says yes, counts a try. */
  shouldTry(key: string, options: TodoOptions = {}): boolean {
    const entry = this.#task(key);
    if (!isTodo(entry.value as Raw, this.#maxTries, options.allowAborted ?? false)) return false;
    this.#state.setField(key, entry, TRIES, (entry.value as Raw)._tries + 1);
    return true;
  }

  /** Adds the task `key` if it is new, then answers {@linkcode ProgressTracker.shouldDo}. */
  shouldDoAdd(key: string, options: TodoOptions = {}): boolean {
    this.addIfAbsent(key);
    return this.shouldDo(key, options);
  }

  /** Adds the task `key` if it is new, then answers {@linkcode ProgressTracker.shouldTry}. */
  shouldTryAdd(key: string, options: TodoOptions = {}): boolean {
    this.addIfAbsent(key);
    return this.shouldTry(key, options);
  }

  // ---------------------------------------------------------------------------
  // Iterators

  /**
   * The tasks to do, in order: not done, not aborted (unless
   * `allowAborted`), tried fewer than `maxTries` times. Tasks added during
   * the iteration come up too. Changes nothing.
   */
  todoKeys(options: TodoOptions = {}): IterableIterator<string> {
    return this.#todo(options, (key) => key);
  }

  /** The entries of the tasks to do (see {@linkcode ProgressTracker.todoKeys}). */
  todoValues(options: TodoOptions = {}): IterableIterator<TaskEntry<T>> {
    return this.#todo(options, (key, entry, core) => this.#lend(core, key, entry));
  }

  /** The `[key, entry]` pairs of the tasks to do. */
  todoEntries(options: TodoOptions = {}): IterableIterator<[string, TaskEntry<T>]> {
    return this.#todo(options, (key, entry, core) => [key, this.#lend(core, key, entry)]);
  }

  *#todo<R>(
    options: TodoOptions,
    shape: (key: string, entry: Entry, core: PodCore) => R,
  ): Generator<R, void, undefined> {
    const allowAborted = options.allowAborted ?? false;
    const maxTries = this.#maxTries;
    const core = this.#core();
    const generation = core.generation;
    for (const [key, entry] of core.walk()) {
      if (!isTodo(entry.value as Raw, maxTries, allowAborted)) continue;
      yield shape(key, entry, core);
      this.#still(core, generation);
    }
  }

  /** Throws if the tracker was closed or reverted during an iteration. */
  #still(core: PodCore, generation: number): void {
    if (this.#core() !== core || core.generation !== generation || core.closed) {
      throw new TypeError(
        `tracker "${this.path}" was reverted during this iteration; start a new one`,
      );
    }
  }

  /**
   * Tries the tasks to do, in order: counts a try for each task, then
   * hands out its key. Tasks added during the iteration come up too, as
   * in the crawler loop (see {@linkcode ProgressTracker}). Each task is
   * held from the moment it is handed out until the loop moves on or
   * ends: other `try…` iterations and runs of the same tracker (in this
   * thread, or in Workers of a `SharedProgressTracker`) skip it
   * meanwhile.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir(), { maxTries: 1 });
   * tracker.addMany(["a", "b"]);
   * for (const key of tracker.tryKeys()) if (key === "a") tracker.markDone(key);
   * assert.deepEqual([...tracker.tryKeys()], []); // a is done, b used its only try
   * assert.equal(tracker.tries("b"), 1);
   * ```
   */
  tryKeys(options: TodoOptions = {}): IterableIterator<string> {
    return this.#try(options, (key) => key);
  }

  /** Like {@linkcode ProgressTracker.tryKeys}, handing out the entries. */
  tryValues(options: TodoOptions = {}): IterableIterator<TaskEntry<T>> {
    return this.#try(options, (key, entry, core) => this.#lend(core, key, entry));
  }

  /** Like {@linkcode ProgressTracker.tryKeys}, handing out `[key, entry]` pairs. */
  tryEntries(options: TodoOptions = {}): IterableIterator<[string, TaskEntry<T>]> {
    return this.#try(options, (key, entry, core) => [key, this.#lend(core, key, entry)]);
  }

  *#try<R>(
    options: TodoOptions,
    shape: (key: string, entry: Entry, core: PodCore) => R,
  ): Generator<R, void, undefined> {
    const allowAborted = options.allowAborted ?? false;
    const maxTries = this.#maxTries;
    const core = this.#writable();
    const state = this.#state;
    const generation = core.generation;
    const claim = {
      current: undefined as string | undefined,
      holds(key: string) {
        return key === this.current;
      },
    };
    state.claimants.add(claim);
    this.#claimants.add(claim);
    try {
      for (const [key, entry] of core.walk()) {
        const value = entry.value as Raw;
        if (!isTodo(value, maxTries, allowAborted) || state.claimedByOther(key, claim)) continue;
        claim.current = key;
        state.setField(key, entry, TRIES, value._tries + 1);
        yield shape(key, entry, core);
        claim.current = undefined;
        this.#still(core, generation);
      }
    } finally {
      state.claimants.delete(claim);
      this.#claimants.delete(claim);
    }
  }

  // ---------------------------------------------------------------------------
  // Counts

  /** How many tasks are done. Kept as the tasks change: O(1). */
  numDone(): number {
    this.#core();
    return this.#state.done;
  }

  /** How many tasks were tried at least once. */
  numTried(): number {
    this.#core();
    return this.#state.tried;
  }

  /** How many tasks are aborted. */
  numAborted(): number {
    this.#core();
    return this.#state.aborted;
  }

  /** The fraction of tasks done, from 0 to 1; 0 for an empty tracker. */
  fractionDone(): number {
    const size = this.size;
    return size === 0 ? 0 : this.#state.done / size;
  }

  /** The fraction of tasks tried at least once; 0 for an empty tracker. */
  fractionTried(): number {
    const size = this.size;
    return size === 0 ? 0 : this.#state.tried / size;
  }

  /** The fraction of tasks aborted; 0 for an empty tracker. */
  fractionAborted(): number {
    const size = this.size;
    return size === 0 ? 0 : this.#state.aborted / size;
  }

  /**
   * The share of tasks done, as text: `"34.70 %"` with the default 2
   * decimals; `"0.00 %"` for an empty tracker.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using tracker = await openTracker(await Deno.makeTempDir());
   * assert.equal(tracker.percentDone(), "0.00 %");
   * tracker.addMany(["a", "b", "c"]);
   * tracker.markDone("a");
   * assert.equal(tracker.percentDone(), "33.33 %");
   * assert.equal(tracker.percentDone(0), "33 %");
   * ```
   */
  percentDone(decimals = 2): string {
    return formatPercent(this.fractionDone(), decimals);
  }

  /** The share of tasks tried at least once, as text (see {@linkcode ProgressTracker.percentDone}). */
  percentTried(decimals = 2): string {
    return formatPercent(this.fractionTried(), decimals);
  }

  /** The share of tasks aborted, as text (see {@linkcode ProgressTracker.percentDone}). */
  percentAborted(decimals = 2): string {
    return formatPercent(this.fractionAborted(), decimals);
  }

  // ---------------------------------------------------------------------------
  // Running

  /**
   * Runs `fn(key, entry)` for each task to try, in order, with up to
   * `concurrency` in flight, and resolves with a {@linkcode RunSummary}
   * once there is nothing left to try and the tracker has synced.
   *
   * - Before each call, the task's try is counted (and the task is held,
   *   so other runs and `try…` iterations skip it).
   * - When `fn` succeeds, the task is marked done (unless `fn` aborted
   *   it) and `_error` is removed; a plain object `fn` returns is mixed
   *   into the entry in that same step, so results and the done mark are
   *   saved together. When it throws, the message goes to `_error`; the
   *   task is not tried again in this run, but a later run retries it
   *   while it has tries left.
   * - Tasks added while the run goes on (by `fn`, as a crawler does, or by
   *   anyone) are tried too.
   * - On `signal`'s abort or on SIGINT, no new task starts; the tasks in
   *   flight finish, the tracker syncs, and the summary says
   *   `interrupted`. The first SIGINT does not make the pods sync and
   *   exit while the run goes on; a second one does, at once.
   * - On a terminal, a progress line is drawn on stderr (`progress`).
   *
   * Kill the process and run again: done tasks stay done, and the run
   * continues with the others.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openTracker } from "@x/atomic-store/tracker";
   *
   * await using pages = await openTracker<{ length: number }>(await Deno.makeTempDir(), {
   *   maxTries: 3,
   * });
   * pages.addMany(["/", "/about", "/missing"]);
   * const summary = await pages.run(async (url) => {
   *   if (url === "/missing") throw new Error("404");
   *   await new Promise((resolve) => setTimeout(resolve, 1)); // fetch(url) here
   *   return { length: url.length }; // saved with the done mark
   * }, { concurrency: 2, progress: false });
   * assert.equal(summary.done, 2);
   * assert.equal(summary.failed, 1);
   * assert.equal(pages.get("/missing")!._error, "404");
   * assert.equal(pages.get("/about")!.length, 6);
   * ```
   */
  run(fn: TaskFunction<T>, options: RunOptions = {}): Promise<RunSummary> {
    try {
      this.#writable();
      const state = this.#state;
      const cursor = new RunCursor(state, this.#maxTries, options.allowAborted ?? false);
      this.#claimants.add(cursor);
      return drive<TaskEntry<T>>(
        {
          claim: () => {
            const core = this.#core();
            const task = cursor.claim();
            return task && [task[0], this.#lend(core, task[0], task[1])];
          },
          finish: (key, ok, result, message) => {
            this.#writable();
            return cursor.finish(key, ok, result, message);
          },
          counts: () => ({ size: this.size, done: state.done, aborted: state.aborted }),
          end: () => ({ skipped: cursor.skipped, remaining: cursor.remaining() }),
          close: () => {
            cursor.close();
            this.#claimants.delete(cursor);
          },
          sync: () => this.sync(),
        },
        fn,
        options,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `"ProgressTracker"`. */
  override get [Symbol.toStringTag](): string {
    return "ProgressTracker";
  }
}

export { ProgressTracker as Tracker };

/**
 * Opens (or creates) the progress tracker kept in the directory `path`:
 * a pod (see `openPod`, whose options all apply) whose values are task
 * entries. A pod whose values are not task entries is a `TypeError`;
 * entries that lack some state fields get them (not done, 0 tries, not
 * aborted).
 *
 * @example Resume where the last run stopped
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker } from "@x/atomic-store/tracker";
 *
 * const path = await Deno.makeTempDir();
 * {
 *   await using jobs = await openTracker(path, { maxTries: 3 });
 *   jobs.addManyIfAbsent(["a", "b", "c"]);
 *   jobs.markDone("a");
 * } // closing syncs; so do exiting and Ctrl-C
 *
 * await using jobs = await openTracker(path, { maxTries: 3 });
 * assert.deepEqual([...jobs.todoKeys()], ["b", "c"]);
 * assert.equal(jobs.numDone(), 1);
 * ```
 */
export function openTracker<T extends object = Record<string, unknown>>(
  path: string,
  options: TrackerOptions<T> = {},
): Promise<ProgressTracker<T>> {
  try {
    const maxTries = checkMaxTries(options.maxTries);
    const { maxTries: _maxTries, ...podOptions } = options;
    return openPodWith<TaskEntry<T>, ProgressTracker<T>>(
      path,
      podOptions as PodOptions<TaskEntry<T>>,
      "progress tracker",
      (core, readOnly) => createTracker<T>(core, readOnly, maxTries),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}
