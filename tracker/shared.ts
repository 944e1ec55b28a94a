import { ChannelClient, isChannel } from "../pod/_channel.ts";
import {
  type ExtraOperations,
  localServer,
  PodServer,
  sharedCall,
  SharedPod,
  type SharedPodHandle,
  type SharedPodSetter,
} from "../pod/shared.ts";
import { drive, type RunOptions, type RunSummary } from "./_run.ts";
import { type Outcome, RunCursor } from "./_state.ts";
import { DuplicateKeyError, UnknownKeyError } from "./errors.ts";
import {
  formatPercent,
  openTracker,
  type ProgressTracker,
  stateOfTracker,
  type TaskEntry,
  type TaskFunction,
  type TaskInput,
  type TodoOptions,
  type TrackerOptions,
} from "./tracker.ts";

/**
 * Options of {@linkcode SharedProgressTracker.open}: those of `openTracker`, and `maxClients`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SharedProgressTracker, type SharedTrackerOptions } from "@x/atomic-store/tracker";
 *
 * const options: SharedTrackerOptions = { maxTries: 3, maxClients: 8 };
 * await using shared = await SharedProgressTracker.open(await Deno.makeTempDir(), options);
 * assert.equal(shared.maxTries, 3);
 * ```
 */
export interface SharedTrackerOptions<T extends object = Record<string, unknown>>
  extends Omit<TrackerOptions<T>, "readOnly"> {
  /** How many clients can be connected at once (see `SharedPod`). Default 64. */
  maxClients?: number;
}

/**
 * What connects a Worker to a {@linkcode SharedProgressTracker}: post it
 * to the Worker and pass it to {@linkcode SharedProgressTracker.connect}
 * there. It is a `SharedPodHandle` too: `SharedPod.connect` gives a plain
 * pod client on the same tracker.
 *
 * @example
 * ```ts ignore
 * // main.ts
 * const shared = await SharedProgressTracker.open("jobs.tracker");
 * const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
 * worker.postMessage(shared.handle);
 *
 * // worker.ts
 * self.onmessage = ({ data: handle }: MessageEvent<SharedTrackerHandle>) => {
 *   const jobs = SharedProgressTracker.connect(handle);
 *   for (const key of jobs.tryKeys()) jobs.markDone(key);
 * };
 * ```
 */
export interface SharedTrackerHandle extends SharedPodHandle {
  /** Marks the handle as a tracker's, with its settings. */
  readonly tracker: {
    /** The tracker's `maxTries`. */
    readonly maxTries: number;
  };
}

/** The number of entries a `todo…` iteration fetches per request. */
const TODO_BATCH = 256;

const SIMPLE_OPERATIONS = new Set([
  "add",
  "addIfAbsent",
  "addMany",
  "addManyIfAbsent",
  "markDone",
  "markNotDone",
  "isDone",
  "abort",
  "unabort",
  "isAborted",
  "incrementTries",
  "decrementTries",
  "resetTries",
  "tries",
  "shouldDo",
  "shouldTry",
  "shouldDoAdd",
  "shouldTryAdd",
]);

const ITERATORS = new Set([
  "todoKeys",
  "todoValues",
  "todoEntries",
  "tryKeys",
  "tryValues",
  "tryEntries",
]);

/** An operation's outcome as it crosses the channel: a value, or a tracker error to rebuild. */
type Reply = [0, unknown] | [1, "DuplicateKeyError" | "UnknownKeyError", string];

/** The tracker operations served by the owning thread, next to the pod's own. */
function trackerOperations(tracker: ProgressTracker<object>): ExtraOperations {
  const state = stateOfTracker(tracker);
  const iterations = new Map<number, Iterator<unknown>>();
  const runs = new Map<number, RunCursor>();
  let nextId = 1;
  const iteration = (id: unknown) => {
    const iterator = iterations.get(id as number);
    if (!iterator) throw new TypeError("this iteration of the shared tracker has ended");
    return iterator;
  };
  const run = (id: unknown) => {
    const cursor = runs.get(id as number);
    if (!cursor) throw new TypeError("this run of the shared tracker has ended");
    return cursor;
  };
  const perform = (op: string, args: unknown[]): unknown => {
    if (SIMPLE_OPERATIONS.has(op)) {
      return (tracker as unknown as Record<string, (...args: unknown[]) => unknown>)[op](...args);
    }
    switch (op) {
      case "counts":
        return { size: tracker.size, done: state.done, tried: state.tried, aborted: state.aborted };
      case "iterate": {
        const [kind, options] = args as [string, TodoOptions];
        if (!ITERATORS.has(kind)) throw new TypeError(`unknown tracker iteration "${kind}"`);
        const iterator =
          (tracker as unknown as Record<string, (o: TodoOptions) => Iterator<unknown>>)[
            kind
          ](options);
        const id = nextId++;
        iterations.set(id, iterator);
        return id;
      }
      case "next": {
        const [id, max] = args as [number, number];
        const iterator = iteration(id);
        const items: unknown[] = [];
        while (items.length < max) {
          let next: IteratorResult<unknown>;
          try {
            next = iterator.next();
          } catch (error) {
            iterations.delete(id);
            throw error;
          }
          if (next.done) {
            iterations.delete(id);
            return [items, true];
          }
          items.push(next.value);
        }
        return [items, false];
      }
      case "return": {
        const iterator = iterations.get(args[0] as number);
        iterations.delete(args[0] as number);
        iterator?.return?.();
        return undefined;
      }
      case "runStart": {
        if (tracker.closed) throw new TypeError(`tracker "${tracker.path}" is closed`);
        const cursor = new RunCursor(state, tracker.maxTries, args[0] === true);
        const id = nextId++;
        runs.set(id, cursor);
        return id;
      }
      case "claim": {
        if (tracker.closed) throw new TypeError(`tracker "${tracker.path}" is closed`);
        const task = run(args[0]).claim();
        return task ? [task[0], task[1].value] : null;
      }
      case "finish": {
        const [id, key, ok, result, message] = args as [
          number,
          string,
          boolean,
          unknown,
          string | undefined,
        ];
        if (tracker.closed) throw new TypeError(`tracker "${tracker.path}" is closed`);
        return run(id).finish(key, ok, result, message);
      }
      case "runEnd": {
        const cursor = run(args[0]);
        runs.delete(args[0] as number);
        const end = { skipped: cursor.skipped, remaining: cursor.remaining() };
        cursor.close();
        return end;
      }
      default:
        throw new TypeError(`unknown shared tracker operation "${op}"`);
    }
  };
  return (op, args) => {
    if (!op.startsWith("tracker.")) throw new TypeError(`unknown shared pod operation "${op}"`);
    try {
      return [0, perform(op.slice("tracker.".length), args)] satisfies Reply;
    } catch (error) {
      if (error instanceof DuplicateKeyError || error instanceof UnknownKeyError) {
        return [1, error.name, error.key] as Reply;
      }
      throw error;
    }
  };
}

function isTrackerHandle(handle: unknown): handle is SharedTrackerHandle {
  if (handle === null || typeof handle !== "object") return false;
  const candidate = handle as Partial<SharedTrackerHandle>;
  return candidate.kind === "atomic-store/shared-pod" && typeof candidate.path === "string" &&
    typeof candidate.tracker === "object" && candidate.tracker !== null &&
    Number.isSafeInteger(candidate.tracker.maxTries) && isChannel(candidate);
}

/**
 * One progress tracker shared by the Workers of a process, the way a
 * `SharedPod` shares a pod: the thread that calls
 * {@linkcode SharedProgressTracker.open} owns the tracker and serves the
 * others from its event loop; Workers get {@linkcode SharedProgressTracker.handle}
 * and call {@linkcode SharedProgressTracker.connect}.
 *
 * - Every method of the tracker's own (`add…`, `markDone`, `abort`,
 *   `incrementTries`, the gates, the counts) is one step on the owning
 *   thread: atomic.
 * - `tryKeys()`, `tryValues()` and `tryEntries()` claim each task on the
 *   owning thread (counting its try and holding it, in one step), so two
 *   Workers iterating at the same time never get the same task: each one
 *   skips the tasks the other holds. Tasks added meanwhile come up too.
 * - {@linkcode SharedProgressTracker.run} works the same way, and
 *   records each outcome in one step.
 * - Entries read through a client are copies: change your data with the
 *   {@linkcode SharedPod.set} proxy (`shared.set[key].title = "…"`), or
 *   return it from the `run` function. State fields cannot be set to
 *   wrong types that way either (a `TypeError`).
 *
 * Close every client, then the owner. A Worker terminated in the middle
 * of an iteration keeps its task held until the owner closes.
 *
 * @example In the owning thread
 * ```ts
 * import assert from "node:assert/strict";
 * import { SharedProgressTracker } from "@x/atomic-store/tracker";
 *
 * await using shared = await SharedProgressTracker.open(await Deno.makeTempDir(), {
 *   maxTries: 3,
 * });
 * shared.addMany(["a", "b"]);
 * // new Worker(...).postMessage(shared.handle); in the Worker:
 * // const tracker = SharedProgressTracker.connect(handle);
 * // for (const key of tracker.tryKeys()) { ...; tracker.markDone(key); }
 * for (const key of shared.tryKeys()) shared.markDone(key);
 * assert.equal(shared.percentDone(), "100.00 %");
 * ```
 */
// @ts-expect-error: the static `open` takes tracker options, which TypeScript cannot match
// with SharedPod.open's for every value type; only the instances are substitutable.
export class SharedProgressTracker<T extends object = Record<string, unknown>>
  extends SharedPod<TaskEntry<T>> {
  /** Post this to a Worker and pass it to {@linkcode SharedProgressTracker.connect} there. */
  declare readonly handle: SharedTrackerHandle;
  /**
   * The mutation proxy (see {@linkcode SharedPod.set}): `shared.set[key].title = "…"`,
   * `shared.set(key, data)`. Values are checked and stored as by
   * `ProgressTracker.set`, in one step on the owning thread.
   */
  declare readonly set: SharedPodSetter<TaskInput<T>>;
  /** Iterations and runs of this handle still going, ended on close. */
  readonly #open = new Map<number, "iterate" | "runStart">();

  /**
   * Not for direct use: see {@linkcode SharedProgressTracker.open} and
   * {@linkcode SharedProgressTracker.connect}.
   *
   * @ignore
   */
  protected constructor(
    handle: SharedTrackerHandle,
    server: PodServer | undefined,
    client: ChannelClient | undefined,
    owner: boolean,
  ) {
    super(handle, server, client, owner);
  }

  /**
   * Opens the tracker at `path` (see `openTracker`) and starts serving it
   * to clients from this thread.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedProgressTracker } from "@x/atomic-store/tracker";
   *
   * const shared = await SharedProgressTracker.open(await Deno.makeTempDir(), {
   *   init: { a: {} },
   * });
   * assert.equal(shared.isDone("a"), false);
   * await shared.close();
   * ```
   */
  static override async open<T extends object = Record<string, unknown>>(
    path: string,
    options: SharedTrackerOptions<T> = {},
  ): Promise<SharedProgressTracker<T>> {
    const { maxClients = 64, ...trackerOptions } = options;
    if (!Number.isInteger(maxClients) || maxClients < 1 || maxClients > 4096) {
      throw new RangeError(`maxClients must be an integer from 1 to 4096, got ${maxClients}`);
    }
    if ((trackerOptions as TrackerOptions<T>).readOnly) {
      throw new TypeError("a shared tracker cannot be opened read-only");
    }
    const tracker = await openTracker<T>(path, trackerOptions);
    const base = tracker as unknown as ProgressTracker<object>;
    const server = new PodServer(base, maxClients, trackerOperations(base));
    const handle: SharedTrackerHandle = {
      ...server.handle,
      tracker: { maxTries: tracker.maxTries },
    };
    return new SharedProgressTracker<T>(handle, server, undefined, true);
  }

  /**
   * Connects to a shared tracker from the handle its owner posted. In the
   * owning thread itself, this gives a handle that calls it directly.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedProgressTracker } from "@x/atomic-store/tracker";
   *
   * await using owner = await SharedProgressTracker.open(await Deno.makeTempDir());
   * // Normally in a Worker, with the handle received in a message:
   * await using client = SharedProgressTracker.connect(owner.handle);
   * client.add("job");
   * client.markDone("job");
   * assert.equal(owner.numDone(), 1);
   * ```
   */
  static override connect<T extends object = Record<string, unknown>>(
    handle: SharedTrackerHandle,
  ): SharedProgressTracker<T> {
    if (!isTrackerHandle(handle)) {
      throw new TypeError(
        "not a shared tracker handle: pass the handle property of a SharedProgressTracker",
      );
    }
    const local = localServer(handle);
    if (local) return new SharedProgressTracker<T>(handle, local, undefined, false);
    const client = new ChannelClient(handle, `shared tracker "${handle.path}"`);
    return new SharedProgressTracker<T>(handle, undefined, client, false);
  }

  #op(op: string, args: unknown[]): unknown {
    const reply = sharedCall(
      this as unknown as SharedPod<unknown>,
      `tracker.${op}`,
      args,
    ) as Reply;
    if (reply[0] === 0) return reply[1];
    const [, name, key] = reply;
    throw name === "DuplicateKeyError"
      ? new DuplicateKeyError(this.path, key)
      : new UnknownKeyError(this.path, key);
  }

  /** The tracker's `maxTries` (`0`: no limit). */
  get maxTries(): number {
    return this.handle.tracker.maxTries;
  }

  /** Adds the task `key`; a {@linkcode DuplicateKeyError} if it is there. */
  add(key: string): this {
    this.#op("add", [key]);
    return this;
  }

  /** Adds the task `key` unless it is there; returns whether it was added. */
  addIfAbsent(key: string): boolean {
    return this.#op("addIfAbsent", [key]) as boolean;
  }

  /** Adds many tasks, all or none (see `ProgressTracker.addMany`). */
  addMany(keys: Iterable<string>): void {
    this.#op("addMany", [Array.from(keys)]);
  }

  /** Adds the tasks that are not there yet; returns how many were added. */
  addManyIfAbsent(keys: Iterable<string>): number {
    return this.#op("addManyIfAbsent", [Array.from(keys)]) as number;
  }

  /** Marks the task `key` done; an {@linkcode UnknownKeyError} for an unknown key. */
  markDone(key: string): void {
    this.#op("markDone", [key]);
  }

  /** Marks the task `key` not done. */
  markNotDone(key: string): void {
    this.#op("markNotDone", [key]);
  }

  /** Whether the task `key` is done; `false` for an unknown key. */
  isDone(key: string): boolean {
    return this.#op("isDone", [key]) as boolean;
  }

  /** Gives up on the task `key`. */
  abort(key: string): void {
    this.#op("abort", [key]);
  }

  /** Takes back {@linkcode SharedProgressTracker.abort}. */
  unabort(key: string): void {
    this.#op("unabort", [key]);
  }

  /** Whether the task `key` was aborted; `false` for an unknown key. */
  isAborted(key: string): boolean {
    return this.#op("isAborted", [key]) as boolean;
  }

  /** Counts one more try of the task `key`; returns the new count. */
  incrementTries(key: string): number {
    return this.#op("incrementTries", [key]) as number;
  }

  /** Counts one try less; returns the new count (a `RangeError` below 0). */
  decrementTries(key: string): number {
    return this.#op("decrementTries", [key]) as number;
  }

  /** Sets the tries of the task `key` back to 0. */
  resetTries(key: string): void {
    this.#op("resetTries", [key]);
  }

  /** How many times the task `key` was tried; 0 for an unknown key. */
  tries(key: string): number {
    return this.#op("tries", [key]) as number;
  }

  /** Whether the task `key` is to do (see `ProgressTracker.shouldDo`). */
  shouldDo(key: string, options: TodoOptions = {}): boolean {
    return this.#op("shouldDo", [key, options]) as boolean;
  }

  /** Like `shouldDo`, and when it says yes, counts a try: one step. */
  shouldTry(key: string, options: TodoOptions = {}): boolean {
    return this.#op("shouldTry", [key, options]) as boolean;
  }

  /** Adds the task `key` if it is new, then answers `shouldDo`: one step. */
  shouldDoAdd(key: string, options: TodoOptions = {}): boolean {
    return this.#op("shouldDoAdd", [key, options]) as boolean;
  }

  /** Adds the task `key` if it is new, then answers `shouldTry`: one step. */
  shouldTryAdd(key: string, options: TodoOptions = {}): boolean {
    return this.#op("shouldTryAdd", [key, options]) as boolean;
  }

  *#iterate<R>(kind: string, options: TodoOptions, batch: number): Generator<R, void, undefined> {
    const id = this.#op("iterate", [kind, options]) as number;
    this.#open.set(id, "iterate");
    let finished = false;
    try {
      while (!finished) {
        const [items, done] = this.#op("next", [id, batch]) as [R[], boolean];
        finished = done;
        yield* items;
      }
    } finally {
      this.#open.delete(id);
      if (!finished) this.#op("return", [id]);
    }
  }

  /** The tasks to do, in order, fetched in batches (see `ProgressTracker.todoKeys`). */
  todoKeys(options: TodoOptions = {}): IterableIterator<string> {
    return this.#iterate("todoKeys", options, TODO_BATCH);
  }

  /** Copies of the entries of the tasks to do. */
  todoValues(options: TodoOptions = {}): IterableIterator<TaskEntry<T>> {
    return this.#iterate("todoValues", options, TODO_BATCH);
  }

  /** `[key, copy of the entry]` pairs of the tasks to do. */
  todoEntries(options: TodoOptions = {}): IterableIterator<[string, TaskEntry<T>]> {
    return this.#iterate("todoEntries", options, TODO_BATCH);
  }

  /**
   * Tries the tasks to do, in order: each step claims the next task on
   * the owning thread (counting its try) and holds it until the loop moves
   * on, so other Workers skip it meanwhile.
   */
  tryKeys(options: TodoOptions = {}): IterableIterator<string> {
    return this.#iterate("tryKeys", options, 1);
  }

  /** Like {@linkcode SharedProgressTracker.tryKeys}, with copies of the entries. */
  tryValues(options: TodoOptions = {}): IterableIterator<TaskEntry<T>> {
    return this.#iterate("tryValues", options, 1);
  }

  /** Like {@linkcode SharedProgressTracker.tryKeys}, with `[key, copy of the entry]` pairs. */
  tryEntries(options: TodoOptions = {}): IterableIterator<[string, TaskEntry<T>]> {
    return this.#iterate("tryEntries", options, 1);
  }

  #counts(): { size: number; done: number; tried: number; aborted: number } {
    return this.#op("counts", []) as { size: number; done: number; tried: number; aborted: number };
  }

  /** How many tasks are done. */
  numDone(): number {
    return this.#counts().done;
  }

  /** How many tasks were tried at least once. */
  numTried(): number {
    return this.#counts().tried;
  }

  /** How many tasks are aborted. */
  numAborted(): number {
    return this.#counts().aborted;
  }

  /** The fraction of tasks done; 0 for an empty tracker. */
  fractionDone(): number {
    const counts = this.#counts();
    return counts.size === 0 ? 0 : counts.done / counts.size;
  }

  /** The fraction of tasks tried at least once; 0 for an empty tracker. */
  fractionTried(): number {
    const counts = this.#counts();
    return counts.size === 0 ? 0 : counts.tried / counts.size;
  }

  /** The fraction of tasks aborted; 0 for an empty tracker. */
  fractionAborted(): number {
    const counts = this.#counts();
    return counts.size === 0 ? 0 : counts.aborted / counts.size;
  }

  /** The share of tasks done, as text such as `"34.70 %"`. */
  percentDone(decimals = 2): string {
    return formatPercent(this.fractionDone(), decimals);
  }

  /** The share of tasks tried at least once, as text. */
  percentTried(decimals = 2): string {
    return formatPercent(this.fractionTried(), decimals);
  }

  /** The share of tasks aborted, as text. */
  percentAborted(decimals = 2): string {
    return formatPercent(this.fractionAborted(), decimals);
  }

  /**
   * Runs `fn(key, entry)` for each task to try, as
   * `ProgressTracker.run` does; several Workers can run on one shared
   * tracker at once, and never get the same task. `entry` is a copy:
   * return the results from `fn` (they are saved with the done mark, in
   * one step on the owning thread) or change them through `set`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedProgressTracker } from "@x/atomic-store/tracker";
   *
   * await using shared = await SharedProgressTracker.open<{ square: number }>(
   *   await Deno.makeTempDir(),
   *   { init: { "2": {}, "3": {} } },
   * );
   * const summary = await shared.run((key) => ({ square: Number(key) ** 2 }), { progress: false });
   * assert.equal(summary.done, 2);
   * assert.equal(shared.get("3")!.square, 9);
   * ```
   */
  async run(fn: TaskFunction<T>, options: RunOptions = {}): Promise<RunSummary> {
    const id = this.#op("runStart", [options.allowAborted ?? false]) as number;
    this.#open.set(id, "runStart");
    let ended = false;
    try {
      return await drive<TaskEntry<T>>(
        {
          claim: () => (this.#op("claim", [id]) as [string, TaskEntry<T>] | null) ?? undefined,
          finish: (key, ok, result, message) =>
            this.#op("finish", [id, key, ok, result, message]) as Outcome,
          counts: () => this.#counts(),
          end: () => {
            ended = true;
            this.#open.delete(id);
            return this.#op("runEnd", [id]) as { skipped: number; remaining: number };
          },
          close: () => {},
          sync: () => this.sync(),
        },
        fn,
        options,
      );
    } finally {
      if (!ended) {
        this.#open.delete(id);
        try {
          this.#op("runEnd", [id]);
        } catch { /* closed meanwhile */ }
      }
    }
  }

  /**
   * Ends this handle's iterations and runs, then syncs and closes it (see
   * `SharedPod.close`). Close the owner last.
   */
  override async close(): Promise<void> {
    for (const [id, kind] of this.#open) {
      try {
        this.#op(kind === "iterate" ? "return" : "runEnd", [id]);
      } catch { /* the owner has closed */ }
    }
    this.#open.clear();
    await super.close();
  }

  /** `"SharedProgressTracker"`. */
  get [Symbol.toStringTag](): string {
    return "SharedProgressTracker";
  }
}

export { SharedProgressTracker as SharedTracker };
