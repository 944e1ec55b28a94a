import {
  backendStore,
  EXTENSIONS,
  fileStore,
  keyedDirectoryStore,
  type PersistBackend,
  type Store,
} from "./_persist.ts";
import { type Change, nodeOf, Tracker } from "./_tracker.ts";
import { handles } from "./_values.ts";

/** Where a tracked structure is kept: see {@linkcode TrackOptions.persist}. */
export type Persist = false | "yaml" | "json" | "msgpack" | "pod" | PersistBackend;

/** Options of {@linkcode track}. */
export interface TrackOptions<T = unknown> {
  /**
   * Called after every change (once it is saved), with what changed. An
   * error it throws reaches the code that made the change; the change
   * stays (inside a {@linkcode batch}, the batch fails and undoes it).
   */
  onChange?: (change: Change<T>) => void;
  /**
   * Where the structure is kept:
   *
   * - `false`: in memory only (the default without a name).
   * - `"yaml"` (the default with a name), `"json"`, `"msgpack"`: the file
   *   `<dir>/<name>.yaml` (`.json`, `.msgpack`), rewritten atomically after
   *   every change. Maps, Sets, Dates and typed arrays read back as
   *   themselves: YAML tags, MessagePack extension types, the tagged JSON
   *   form of `toTaggedJson`.
   * - `"pod"`: the root must be a plain object; each top-level key is kept
   *   in a file of its own in the directory `<dir>/<name>/`, read on first
   *   access, and a change rewrites only the files of the keys it touched.
   * - a {@linkcode PersistBackend}: your own `load` and `save`.
   */
  persist?: Persist;
  /** The directory of the files. Default: the current directory. */
  dir?: string;
  /**
   * Flush every write to disk (fsync) so that it survives a power cut.
   * Turning this off keeps each write atomic but not durable. Default `true`.
   */
  fsync?: boolean;
}

function checkName(name: string): void {
  if (
    name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\\") ||
    name.includes("\0")
  ) {
    throw new TypeError(
      `the name ${
        JSON.stringify(name)
      } cannot be a file name: use a plain name, and the dir option for the directory`,
    );
  }
}

/**
 * Tracks `value`: returns a proxy that reads and writes like it, and that
 * reports every change to `onChange` and saves it (with `persist`). With a
 * name, the structure is saved by default as YAML in `<dir>/<name>.yaml`;
 * if that file exists, its contents are returned instead of `value`.
 *
 * `value` may be a plain object, an array, a `Map` or a `Set`, nested to
 * any depth; `Date`s and typed arrays are stored as values (replace them to
 * change them). The proxy behaves like the original: `Array.isArray`,
 * `instanceof Map`, iteration, spread and `JSON.stringify` work, and
 * reading the same nested object twice gives the same proxy. Use
 * {@linkcode snapshot} for a plain copy (for `structuredClone`, say).
 *
 * Values are copied into the structure, so it is always a tree: assigning
 * an object that is elsewhere in the structure stores a copy, and changing
 * the original object later does not change the structure. A `Map`'s keys
 * and a `Set`'s members must be primitives. A value the format cannot store
 * (a function, a symbol, a class instance, a cycle, `undefined` in a file,
 * `NaN` in JSON) is refused with a `TypeError`, and nothing changes.
 *
 * Each change is saved atomically before the assignment returns; if saving
 * fails, the change is undone in memory too (so memory and disk agree) and
 * the error (an `AtomicWriteError`) is thrown. A file that cannot be read
 * raises `CorruptFileError` and is never overwritten.
 *
 * A part removed from the structure (or replaced) can still be read through
 * a proxy kept from before, but changing it is a `TypeError`.
 *
 * @example Keep a configuration file in sync
 * ```ts
 * import assert from "node:assert/strict";
 * import { track } from "@x/atomic-store/reactive";
 *
 * const dir = await Deno.makeTempDir();
 * const conf = track({
 *   endpoint: { protocol: "HTTP", address: "docs.python.org" },
 *   retryIntervals: [1, 3, 5],
 * }, "example-config", { dir });
 * conf.retryIntervals.push(10); // saved
 * assert.ok(conf.endpoint.protocol === "HTTP");
 * assert.ok((await Deno.readTextFile(`${dir}/example-config.yaml`)).includes("- 10"));
 *
 * // Next time, the file is what counts:
 * const again = track({ endpoint: {}, retryIntervals: [] }, "example-config", { dir });
 * assert.ok(again.retryIntervals.length === 4);
 * ```
 *
 * @example React to changes (a view of a model)
 * ```ts
 * import { track } from "@x/atomic-store/reactive";
 *
 * const users = track({ regulars: new Set<string>(), admins: new Set<string>() }, {
 *   onChange(change) {
 *     if (change.path[0] === "regulars") {
 *       console.log("Number of users:", (change.target as Set<string>).size);
 *     }
 *   },
 * });
 * users.regulars.add("Random User"); // Number of users: 1
 * ```
 */
export function track<T extends object>(
  value: T,
  name?: string,
  options?: TrackOptions<T>,
): T;
/**
 * Tracks `value` without a name (so, by default, in memory only).
 *
 * @example
 * ```ts
 * import { track } from "@x/atomic-store/reactive";
 *
 * const list = track([1, 2], { onChange: (change) => console.log(change.op, change.args) });
 * list.push(3); // push [ 3 ]
 * ```
 */
export function track<T extends object>(value: T, options: TrackOptions<T>): T;
export function track<T extends object>(
  value: T,
  nameOrOptions?: string | TrackOptions<T>,
  maybeOptions?: TrackOptions<T>,
): T {
  let name: string | undefined;
  let options: TrackOptions<T>;
  if (typeof nameOrOptions === "object" && nameOrOptions !== null) {
    if (maybeOptions !== undefined) {
      throw new TypeError("track(value, options) takes no third argument");
    }
    options = nameOrOptions;
  } else {
    if (nameOrOptions !== undefined && typeof nameOrOptions !== "string") {
      throw new TypeError(`the name must be a string, not ${typeof nameOrOptions}`);
    }
    name = nameOrOptions;
    options = maybeOptions ?? {};
  }
  const { onChange, dir = ".", fsync = true } = options;
  if (onChange !== undefined && typeof onChange !== "function") {
    throw new TypeError("onChange must be a function");
  }
  const persist = options.persist ?? (name === undefined ? false : "yaml");
  let store: Store | undefined;
  if (persist !== false) {
    if (name === undefined) {
      throw new TypeError(
        "a tracked structure needs a name to be persisted: track(value, name, options)",
      );
    }
    if (typeof persist === "string") {
      checkName(name);
      if (persist === "pod") store = keyedDirectoryStore(dir, name, fsync);
      else if (Object.hasOwn(EXTENSIONS, persist)) store = fileStore(persist, dir, name, fsync);
      else {
        throw new TypeError(
          `persist must be false, "yaml", "json", "msgpack", "pod" or a backend, not ${
            JSON.stringify(persist)
          }`,
        );
      }
    } else {
      store = backendStore(persist, name);
    }
  }
  const tracker = new Tracker(
    name,
    onChange as ((change: Change) => void) | undefined,
    store,
    typeof persist === "object",
  );
  tracker.start(value);
  return tracker.root.proxy as T;
}

function trackerOf(value: unknown, what: string): Tracker {
  const node = nodeOf(value);
  if (node === undefined) {
    throw new TypeError(`${what} needs a tracked structure (or a part of one), as made by track()`);
  }
  return node.tracker;
}

/**
 * Runs `fn` as one change of the structure `tracked` belongs to: the
 * changes made while it runs are saved once, when it finishes. If `fn`
 * throws (or rejects), every change made inside is undone, so the structure
 * and its file are as before, and the error propagates. `onChange` still
 * hears of each change as it happens, and of each undo (`op: "undo"`).
 *
 * Batches of one structure run one at a time, in call order: a batch that
 * is called while another one runs waits for it. A `batch` called inside
 * `fn` joins the running one (if it fails, only its own changes are
 * undone). While a batch runs, every change to the structure belongs to it,
 * even one made by code outside `fn`.
 *
 * @example Increment safely
 * ```ts
 * import assert from "node:assert/strict";
 * import { batch, track } from "@x/atomic-store/reactive";
 *
 * const counter = track({ value: 0 });
 * const increment = async () => {
 *   const previous = counter.value;
 *   await new Promise((resolve) => setTimeout(resolve, 10)); // let others run
 *   counter.value = previous + 1;
 * };
 * await Promise.all([batch(counter, increment), batch(counter, increment)]);
 * assert.ok(counter.value === 2);
 * ```
 *
 * @example All or nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { batch, track } from "@x/atomic-store/reactive";
 *
 * const dir = await Deno.makeTempDir();
 * const account = track({ balance: 100, log: [] as string[] }, "account", { dir, persist: "json" });
 * try {
 *   await batch(account, () => {
 *     account.balance -= 150;
 *     account.log.push("withdraw 150");
 *     if (account.balance < 0) throw new Error("insufficient funds");
 *   });
 * } catch {
 *   // undone: the structure and the file are as before
 * }
 * assert.ok(account.balance === 100 && account.log.length === 0);
 * ```
 */
export function batch<R>(tracked: object, fn: () => R | Promise<R>): Promise<Awaited<R>> {
  let tracker: Tracker;
  try {
    tracker = trackerOf(tracked, "batch");
    if (typeof fn !== "function") throw new TypeError("batch needs a function to run");
  } catch (error) {
    return Promise.reject(error);
  }
  return tracker.batch(fn);
}

/**
 * A plain deep copy of a tracked structure (or of a part of one): plain
 * objects, arrays, Maps, Sets, Dates and typed arrays, detached from
 * tracking. A `"pod"` structure is read completely. Given anything else, it
 * returns `structuredClone(value)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { snapshot, track } from "@x/atomic-store/reactive";
 *
 * const state = track({ tags: new Set(["a"]), when: new Date(0) });
 * const copy = snapshot(state);
 * copy.tags.add("b");
 * assert.ok(state.tags.size === 1);
 * assert.ok(structuredClone(copy).tags.has("b"));
 * ```
 */
export function snapshot<T>(value: T): T {
  const handle = typeof value === "object" && value !== null ? handles.get(value) : undefined;
  return structuredClone(handle ? handle.rawForRead() : value) as T;
}

/**
 * True when `value` is a tracked structure or a part of one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTracked, track } from "@x/atomic-store/reactive";
 *
 * const state = track({ nested: { n: 1 } });
 * assert.ok(isTracked(state.nested) && !isTracked({}));
 * ```
 */
export function isTracked(value: unknown): boolean {
  return nodeOf(value) !== undefined;
}
