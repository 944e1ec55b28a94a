import { type Entry, PodCore } from "./_core.ts";
import type { PodFormat } from "./_shard.ts";

export type { PodFormat } from "./_shard.ts";

/** Entries for {@linkcode Pod.update} and the `init` option: pairs, a `Map`, or a plain object. */
export type PodEntries<V> = Iterable<readonly [string, V]> | Readonly<Record<string, V>>;

/** Options of {@linkcode openPod}. */
export interface PodOptions<V = unknown> {
  /**
   * Sync automatically once this many keys are dirty. The sync starts as
   * soon as your code yields (at its next `await`) and runs in the
   * background, so a long synchronous loop syncs when it ends. `Infinity`
   * leaves syncing to you, to `close()` and to the exit hooks. Default 1000.
   */
  syncAt?: number;
  /** Keys per shard file: a sync rewrites whole shard files. Default 1000. */
  fileSize?: number;
  /**
   * Compress shard files with gzip. Applies when the pod is created; an
   * existing pod keeps what it was created with, and asking for the other
   * setting is a `TypeError`. Default `false`.
   */
  gzip?: boolean;
  /**
   * How shard files are encoded: `"json"` (readable, the default) or
   * `"msgpack"` (smaller; stores Dates and Uint8Arrays as they are).
   * Applies when the pod is created, like `gzip`.
   */
  format?: PodFormat;
  /** Entries applied after opening, as by {@linkcode Pod.update}. */
  init?: PodEntries<V>;
  /**
   * Open without taking the writer lock: reads work, every change is a
   * `TypeError`. In a thread where the pod is open for writing, the view
   * is live; elsewhere it is a snapshot of what was last synced, which
   * {@linkcode Pod.revert} refreshes. Values read through a read-only
   * handle are the pod's own objects, not copies: treat them as read-only
   * too (a change to one would reach the writer's view without being
   * marked for the next sync). Default `false`.
   */
  readOnly?: boolean;
  /**
   * Read shard files when their keys are first needed instead of all at
   * open. Opening then reads only the first few kilobytes of each file
   * (its header: how many keys, which part of the order, and a tracker's
   * counts), so `size` and a tracker's counts are ready at once; iterating
   * reads the files in order as it goes, and looking up a key that is not
   * among those read yet reads the rest. A damaged file is then reported
   * when it is read: `get`, `has`, an iteration or a change can throw
   * {@linkcode CorruptFileError}, and nothing is written over it. Set
   * `false` to read and check every file at open. Read-only opens outside
   * a writer's thread always read everything at open, since the files may
   * change after. Default `true`.
   */
  lazy?: boolean;
  /**
   * How long to wait, in milliseconds, for a writer elsewhere to let go of
   * the pod before failing with {@linkcode PodLockedError}. Default 100.
   */
  lockTimeout?: number;
  /**
   * Sync on SIGINT and SIGTERM, then exit with code 130 or 143. Turn it off
   * when your program handles those signals itself (and closes the pod).
   * Default `true`.
   */
  handleSignals?: boolean;
  /**
   * Receives the error of a failed automatic sync (threshold, exit,
   * signal). The changes stay dirty and the next sync retries them.
   * Default: print it with `console.error`.
   */
  onError?: (error: unknown) => void;
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`pod keys must be strings, not ${key === null ? "null" : typeof key}`);
  }
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === "object";
}

/** Turns {@linkcode PodEntries} into pairs, checking the shape. */
export function entriesOf<V>(entries: PodEntries<V>): [string, V][] {
  if (!isObject(entries)) {
    throw new TypeError(
      `entries must be an iterable of [key, value] pairs or a plain object, not ${typeof entries}`,
    );
  }
  if (Symbol.iterator in entries) {
    return Array.from(entries as Iterable<readonly [string, V]>, (pair) => {
      if (!Array.isArray(pair) && !isObject(pair)) {
        throw new TypeError(`entries must be [key, value] pairs, got ${typeof pair}`);
      }
      return [pair[0], pair[1]];
    });
  }
  return Object.entries(entries);
}

let createPod: <V>(core: PodCore, readOnly: boolean) => Pod<V>;
let coreOf: (pod: Pod<unknown>) => PodCore;

/** The state behind a pod handle, for `SharedPod`; not part of the public API. */
export function podCoreOf(pod: Pod<unknown>): PodCore {
  return coreOf(pod);
}

/**
 * A persistent, insertion-ordered map from strings to values, kept in a
 * directory of shard files. Get one with {@linkcode openPod}.
 *
 * It reads like a `Map`, and every change is written to disk at the next
 * sync: automatically when {@linkcode PodOptions.syncAt} keys are dirty,
 * on {@linkcode Pod.close}, when the program exits, and on SIGINT/SIGTERM.
 *
 * A value read with {@linkcode Pod.get} (or through iteration) and changed
 * in place, as in `pod.get("list").push(1)`, is saved too: handing out an
 * object value marks its key (mark-on-read), and the next sync re-encodes
 * it, rewriting its shard only if the bytes changed. A reference kept
 * across a sync is no longer watched: read it again, or call
 * {@linkcode Pod.markDirty}, after changing it later.
 *
 * Values are checked when set (a `TypeError` for what the format cannot
 * store), and values handed out or marked are checked again when synced;
 * keep using `get` rather than an object you passed to `set`.
 *
 * @example Keep the status of tasks across runs
 * ```ts
 * import assert from "node:assert/strict";
 * import { openPod } from "@x/atomic-store/pod";
 *
 * const path = `${await Deno.makeTempDir()}/tasks.pod`;
 * {
 *   await using tasks = await openPod<{ tries: number; done: boolean }>(path);
 *   tasks.set("https://example.com/", { tries: 0, done: false });
 *   tasks.get("https://example.com/")!.tries += 1; // saved too
 * } // closing syncs
 *
 * await using tasks = await openPod<{ tries: number; done: boolean }>(path);
 * assert.ok(tasks.get("https://example.com/")?.tries === 1);
 * ```
 */
export class Pod<V = unknown> implements AsyncDisposable, Iterable<[string, V]> {
  static {
    createPod = <V>(core: PodCore, readOnly: boolean) => new Pod<V>(core, readOnly);
    coreOf = (pod) => pod.#live();
  }

  #core: PodCore | undefined;
  #readOnly: boolean;
  /** The pod's directory, as given to {@linkcode openPod}. */
  readonly path: string;

  /**
   * Not for direct use: {@linkcode openPod} creates pods, and subclasses
   * (the progress tracker) are created by their own open functions.
   *
   * @ignore
   */
  protected constructor(core: PodCore, readOnly: boolean) {
    this.#core = core;
    this.#readOnly = readOnly;
    this.path = core.path;
  }

  #live(): PodCore {
    if (!this.#core) throw new TypeError(`pod "${this.path}" is closed`);
    return this.#core;
  }

  #writable(): PodCore {
    const core = this.#live();
    if (this.#readOnly) throw new TypeError(`pod "${this.path}" is open read-only`);
    return core;
  }

  #lend(core: PodCore, key: string, entry: Entry): unknown {
    if (!this.#readOnly) core.lend(key, entry);
    return entry.value;
  }

  /** Whether this handle was opened with `readOnly: true`. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** Whether {@linkcode Pod.close} has run. */
  get closed(): boolean {
    return this.#core === undefined;
  }

  /** The number of keys. */
  get size(): number {
    return this.#live().size;
  }

  /**
   * The value of `key`, or `undefined`. An object value is the stored
   * object itself: changes made to it are saved at the next sync.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod<string[]>(await Deno.makeTempDir());
   * pod.set("fruits", ["apple"]);
   * pod.get("fruits")!.push("pear");
   * assert.ok(pod.get("fruits")!.length === 2);
   * ```
   */
  get(key: string): V | undefined {
    checkKey(key);
    const core = this.#live();
    const entry = core.find(key);
    return entry === undefined ? undefined : this.#lend(core, key, entry) as V;
  }

  /** Whether `key` is in the pod. */
  has(key: string): boolean {
    checkKey(key);
    return this.#live().find(key) !== undefined;
  }

  /**
   * Sets `key` to `value`. A new key goes to the end of the order; an
   * existing key keeps its place. A value the pod's format cannot store
   * faithfully is a `TypeError`, and nothing changes.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod<number>(await Deno.makeTempDir());
   * pod.set("a", 1).set("b", 2).set("a", 3);
   * assert.ok([...pod.keys()].join() === "a,b");
   * ```
   */
  set(key: string, value: V): this {
    checkKey(key);
    const core = this.#writable();
    core.check(key, value);
    core.set(key, value);
    return this;
  }

  /**
   * Removes `key`; returns whether it was there. Setting it again later
   * puts it at the end of the order.
   */
  delete(key: string): boolean {
    checkKey(key);
    return this.#writable().delete(key);
  }

  /** Removes every key. */
  clear(): void {
    this.#writable().clear();
  }

  /**
   * Sets many keys: `[key, value]` pairs, a `Map`, or a plain object. All
   * keys and values are checked first, so a bad one changes nothing.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod<number>(await Deno.makeTempDir());
   * pod.update({ one: 1, two: 2 });
   * pod.update([["three", 3]]);
   * assert.ok(pod.size === 3);
   * ```
   */
  update(entries: PodEntries<V>): void {
    const core = this.#writable();
    const pairs = entriesOf(entries);
    for (const [key, value] of pairs) {
      checkKey(key);
      core.check(key, value);
      core.find(key); // reads shards not read yet now, before any change
    }
    for (const [key, value] of pairs) core.set(key, value);
  }

  /** The keys, in order. */
  *keys(): IterableIterator<string> {
    for (const [key] of this.#live().walk()) yield key;
  }

  /** The values, in key order. Object values count as read (see {@linkcode Pod.get}). */
  *values(): IterableIterator<V> {
    const core = this.#live();
    for (const [key, entry] of core.walk()) yield this.#lend(core, key, entry) as V;
  }

  /** The `[key, value]` pairs, in order. Object values count as read. */
  *entries(): IterableIterator<[string, V]> {
    const core = this.#live();
    for (const [key, entry] of core.walk()) yield [key, this.#lend(core, key, entry) as V];
  }

  /** The same as {@linkcode Pod.entries}. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** Calls `callback` for each entry, in order, like `Map.prototype.forEach`. */
  forEach(callback: (value: V, key: string, pod: this) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  /**
   * Writes every shard file that holds a dirty key, each atomically, and
   * resolves when they are on disk. Waits for a sync already running.
   * If a write fails, its keys stay dirty and the error is thrown; the
   * next sync writes them.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod(await Deno.makeTempDir());
   * pod.set("saved", true);
   * await pod.sync();
   * assert.ok(pod.dirty().size === 0);
   * ```
   */
  sync(): Promise<void> {
    try {
      return this.#live().sync();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Writes the shard file holding `key`, if it is dirty. Other dirty keys
   * of that file are written along with it.
   */
  syncKey(key: string): Promise<void> {
    try {
      checkKey(key);
      return this.#live().syncKey(key);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Flags `key` to be written at the next sync, for a value changed
   * through a reference kept from before the last sync. Unknown keys are
   * ignored.
   */
  markDirty(key: string): void {
    checkKey(key);
    this.#writable().markDirty(key);
  }

  /**
   * The keys the next sync writes: those set, deleted or marked, and those
   * whose object values were handed out (which the sync compares and
   * writes only if they changed).
   */
  dirty(): Set<string> {
    return this.#live().dirty();
  }

  /**
   * Suspends automatic syncing at the threshold, for a batch of changes.
   * Explicit syncs, closing, and the exit hooks still write.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod<number>(await Deno.makeTempDir(), { syncAt: 10 });
   * pod.hold();
   * for (let i = 0; i < 100; i++) pod.set(`k${i}`, i);
   * await pod.unhold(); // syncs: more than 10 keys are dirty
   * assert.ok(pod.dirty().size === 0);
   * ```
   */
  hold(): void {
    this.#writable().held = true;
  }

  /** Resumes automatic syncing, and syncs now if the threshold is reached. */
  unhold(): Promise<void> {
    try {
      return this.#writable().unhold();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Drops every change not yet synced and reloads the pod from disk.
   * Objects obtained earlier are no longer part of the pod. On a read-only
   * snapshot, this picks up what the writer has synced since.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openPod } from "@x/atomic-store/pod";
   *
   * await using pod = await openPod<number>(await Deno.makeTempDir());
   * pod.set("kept", 1);
   * await pod.sync();
   * pod.set("dropped", 2);
   * await pod.revert();
   * assert.ok(pod.has("kept") && !pod.has("dropped"));
   * ```
   */
  revert(): Promise<void> {
    try {
      const core = this.#live();
      // A read-only handle on a pod open for writing here is already live.
      if (this.#readOnly && !core.readOnly) return Promise.resolve();
      return core.revert();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Syncs and closes this handle; the last handle on a pod releases its
   * lock. If the sync fails, the handle stays open and the error is
   * thrown. Later calls do nothing.
   */
  async close(): Promise<void> {
    const core = this.#core;
    if (!core) return;
    await core.closeHandle();
    this.#core = undefined;
  }

  /** Closes the pod, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** `"Pod"`. */
  get [Symbol.toStringTag](): string {
    return "Pod";
  }
}

export { Pod as PersistentOrderedDict };

const DEFAULT_SYNC_AT = 1000;
const DEFAULT_FILE_SIZE = 1000;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity && name === "syncAt") return value;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Opens (or creates) the pod kept in the directory `path`.
 *
 * Opening a path that is already open in this thread gives a new handle
 * on the same data, so two parts of a program never overwrite each
 * other's changes with stale ones (a path open as a progress tracker is a
 * `TypeError`: open it with `openTracker`). A pod open for writing in another
 * process or Worker is a {@linkcode PodLockedError}, unless `readOnly` is
 * set. Opening reads the header of each shard file and the first file's
 * records; the others are read when needed (see {@linkcode PodOptions.lazy}).
 * A damaged shard file is a `CorruptFileError` naming it, when it is read;
 * it is never written over.
 *
 * @example Create, fill, reopen
 * ```ts
 * import assert from "node:assert/strict";
 * import { openPod } from "@x/atomic-store/pod";
 *
 * const path = await Deno.makeTempDir();
 * const pod = await openPod<number>(path, { init: { a: 1, b: 2 } });
 * pod.delete("a");
 * pod.set("a", 3); // back, at the end
 * await pod.close();
 *
 * await using again = await openPod<number>(path);
 * assert.ok([...again.keys()].join() === "b,a");
 * ```
 *
 * @example Compressed MessagePack shards
 * ```ts
 * import { openPod } from "@x/atomic-store/pod";
 *
 * await using pod = await openPod(await Deno.makeTempDir(), { format: "msgpack", gzip: true });
 * pod.set("when", new Date(0));
 * ```
 */
export function openPod<V = unknown>(
  path: string,
  options: PodOptions<V> = {},
): Promise<Pod<V>> {
  return openPodWith(path, options, "pod", (core, readOnly) => createPod<V>(core, readOnly));
}

/**
 * What each open pod directory is open as in this thread (`"pod"`, or a
 * subclass's name): a handle of one kind would bypass the bookkeeping of
 * the other, so one directory is open as one kind at a time.
 */
const openAs = new WeakMap<PodCore, string>();

/**
 * The body of {@linkcode openPod}, for subclasses of `Pod` (the progress
 * tracker): checks the options, opens the core, and wraps it with `make`,
 * which may throw (the handle is then closed). Not part of the public API.
 */
export async function openPodWith<V, P extends Pod<V>>(
  path: string,
  options: PodOptions<V>,
  kind: string,
  make: (core: PodCore, readOnly: boolean) => P,
): Promise<P> {
  if (typeof path !== "string") throw new TypeError(`path must be a string, not ${typeof path}`);
  const readOnly = options.readOnly ?? false;
  if (options.format !== undefined && options.format !== "json" && options.format !== "msgpack") {
    throw new TypeError(`format must be "json" or "msgpack", got ${String(options.format)}`);
  }
  if (options.gzip !== undefined && typeof options.gzip !== "boolean") {
    throw new TypeError(`gzip must be a boolean, got ${typeof options.gzip}`);
  }
  if (readOnly && options.init !== undefined) {
    throw new TypeError("init cannot be applied to a pod opened read-only");
  }
  const lockTimeout = options.lockTimeout ?? 100;
  if (!(lockTimeout >= 0)) {
    throw new RangeError(`lockTimeout must be a non-negative number of ms, got ${lockTimeout}`);
  }
  const core = await PodCore.open(path, {
    format: options.format,
    gzip: options.gzip,
    syncAt: positiveInteger("syncAt", options.syncAt, DEFAULT_SYNC_AT),
    fileSize: positiveInteger("fileSize", options.fileSize, DEFAULT_FILE_SIZE),
    readOnly,
    lazy: options.lazy ?? true,
    lockTimeout,
    handleSignals: options.handleSignals ?? true,
    onError: options.onError ?? ((error) => {
      console.error(
        `atomic-store: an automatic sync of pod "${path}" failed; the changes stay dirty:`,
        error,
      );
    }),
  });
  let pod: P;
  try {
    const current = openAs.get(core);
    if (current !== undefined && current !== kind && core.handles > 1) {
      throw new TypeError(
        `pod "${path}" is open as a ${current} in this thread; open it the same way, not as a ${kind}`,
      );
    }
    openAs.set(core, kind);
    pod = make(core, readOnly);
  } catch (error) {
    await core.closeHandle().catch(() => {});
    throw error;
  }
  if (options.init !== undefined) {
    try {
      pod.update(options.init);
    } catch (error) {
      await pod.close();
      throw error;
    }
  }
  return pod;
}
