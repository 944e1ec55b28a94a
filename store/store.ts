import { AsyncLocalStorage } from "node:async_hooks";
import { dirname, resolve } from "node:path";
import {
  type Codec,
  formatFromPath,
  type FormatName,
  type JsonOptions,
  type MsgpackOptions,
  resolveCodec,
  toBytes,
  type YamlOptions,
} from "../_internal/codec.ts";
import { AtomicStoreError, CorruptFileError } from "../_internal/errors.ts";
import { fs, isNotFound } from "../_internal/fs.ts";
import { type FileLock, lockFile } from "../atomic/lock.ts";
import { atomicWrite, type AtomicWriteOptions } from "../atomic/write.ts";

/**
 * How a store's value becomes bytes: the name of a built-in format, or a
 * codec of your own. A codec's `encode` may return text (written as UTF-8)
 * or bytes; `decode` always receives the file's bytes.
 */
export type StoreFormat<T> = FormatName | Codec<T>;

/** How long and how eagerly a `lock: true` store waits for its lock. */
export interface StoreLockOptions {
  /** How long the outermost `with` waits for the lock, in milliseconds. Default 30000. */
  timeout?: number;
  /** The longest pause between two attempts to take the lock, in milliseconds. Default 100. */
  pollInterval?: number;
}

/** Options of {@linkcode open}. */
export interface StoreOptions<T> extends AtomicWriteOptions {
  /**
   * The value used when the file does not exist. The store keeps its own
   * deep copy (`structuredClone`), so neither the object passed here nor
   * the store's value ever aliases the other. Default `null`.
   */
  default?: T;
  /**
   * `"json"`, `"yaml"`, `"msgpack"` or a custom {@linkcode Codec}. When
   * left out, the file name picks: `.yaml`/`.yml` is YAML,
   * `.msgpack`/`.mpk` is MessagePack, anything else JSON.
   */
  format?: StoreFormat<T>;
  /** Options of the JSON format, such as `{ indent: 0 }` for compact files. */
  json?: JsonOptions;
  /** Options of the YAML format, such as `{ stringify: { indent: 4 } }`. */
  yaml?: YamlOptions;
  /** Options of the MessagePack format, such as `{ encode: { sortKeys: true } }`. */
  msgpack?: MsgpackOptions;
  /**
   * With nested {@linkcode Store.with} calls on one store, every exit
   * commits by default. With `true`, only the outermost exit does.
   * Default `false`.
   */
  ignoreInnerExits?: boolean;
  /**
   * Make the outermost {@linkcode Store.with} hold a cross-process lock on
   * `path + ".lock"`: it takes the lock, re-reads the file, runs your
   * function, commits and only then releases the lock, so processes that
   * update the same store never lose each other's updates. `true` or an
   * object with lock timings. Default `false`.
   */
  lock?: boolean | StoreLockOptions;
  /**
   * When the file exists but does not decode, open anyway with the default
   * value, so that the next commit replaces the broken file. Without it,
   * such a file is a {@linkcode CorruptFileError} and is never written by
   * this store. Default `false`.
   */
  overwriteCorrupt?: boolean;
}

/**
 * One value kept in one file. Change {@linkcode Store.value} freely: the
 * file only changes when you {@linkcode Store.commit} or when a
 * {@linkcode Store.with} callback finishes, and then all at once.
 *
 * @example Keep a list of runs
 * ```ts
 * import assert from "node:assert/strict";
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/runs.json`;
 * const store = await open<string[]>(path, { default: [] });
 * store.value.push(new Date().toISOString());
 * await store.commit();
 * assert.ok((await open<string[]>(path)).value?.length === 1);
 * ```
 */
export interface Store<T> extends AsyncDisposable {
  /**
   * The value in memory: what the file held when it was last read, plus
   * your changes. Read it, mutate it, or assign a new value.
   */
  value: T;
  /** The store's file, as an absolute path. */
  readonly path: string;
  /** The format's name: `"json"`, `"yaml"`, `"msgpack"` or a custom codec's `name` (`"custom"` when it has none). */
  readonly format: string;
  /**
   * Writes {@linkcode Store.value} to the file atomically: a crash or a
   * concurrent reader sees the previous commit or this one, never a mix.
   * Commits land in the order they were called.
   *
   * A value the format cannot store faithfully (a cycle or a BigInt in
   * JSON, a function…) rejects with a `TypeError` before the file is
   * touched. A failed write rejects with an `AtomicWriteError`, leaves the
   * file and `value` as they were, and the store can commit again.
   *
   * @example Save progress step by step
   * ```ts
   * import { open } from "@x/atomic-store/store";
   *
   * const path = `${await Deno.makeTempDir()}/job.json`;
   * const store = await open(path, { default: { state: "idle" } });
   * store.value.state = "running";
   * await store.commit();
   * store.value.state = "done";
   * await store.commit();
   * ```
   */
  commit(): Promise<void>;
  /**
   * Replaces {@linkcode Store.value} with what the file holds now (a copy
   * of the default when it does not exist), discarding uncommitted
   * changes. A file that does not decode rejects with
   * {@linkcode CorruptFileError} and leaves `value` alone; until a later
   * reload succeeds, this store then refuses to commit over that file
   * (unless it was opened with `overwriteCorrupt`).
   *
   * @example Pick up another writer's changes
   * ```ts
   * import assert from "node:assert/strict";
   * import { open } from "@x/atomic-store/store";
   *
   * const path = `${await Deno.makeTempDir()}/shared.json`;
   * const mine = await open(path, { default: 0 });
   * const theirs = await open(path, { default: 0 });
   * theirs.value = 7;
   * await theirs.commit();
   * await mine.reload();
   * assert.ok(mine.value === 7);
   * ```
   */
  reload(): Promise<void>;
  /**
   * Runs `fn(store)`; when it resolves, commits and returns its result.
   * Nothing in between is written.
   *
   * - If `fn` (or the commit) fails in the outermost `with`, nothing is
   *   written, `value` goes back to the last committed (or loaded) state,
   *   decoded afresh from the bytes last committed or read (or a fresh
   *   copy of the default), and the error propagates.
   * - A `with` called from inside another one on the same store is
   *   nested. By default its exit commits too; with `ignoreInnerExits`
   *   only the outermost exit does. If a nested `fn` throws, nothing is
   *   written and `value` goes back to what it was when that nested `with`
   *   began (a savepoint, taken by encoding the value), so the enclosing
   *   `fn` may catch the error and carry on with its own changes intact.
   *   Taking that savepoint needs the value to be encodable: if it is not,
   *   the nested `with` rejects with the encoder's `TypeError` before
   *   calling `fn`.
   * - Outermost `with` calls on the same store object run one after
   *   another, in call order, even when started concurrently.
   * - With `lock`, the outermost `with` takes the lock, re-reads the file
   *   (discarding uncommitted changes), runs `fn`, commits, and releases
   *   the lock, so updates from other processes are never lost.
   *
   * @example Record this run
   * ```ts
   * import assert from "node:assert/strict";
   * import { open } from "@x/atomic-store/store";
   *
   * const path = `${await Deno.makeTempDir()}/runs.json`;
   * const store = await open<string[]>(path, { default: [] });
   * const count = await store.with((s) => s.value.push(new Date().toISOString()));
   * assert.ok(count === 1);
   * ```
   *
   * @example A failing update changes nothing
   * ```ts
   * import assert from "node:assert/strict";
   * import { open } from "@x/atomic-store/store";
   *
   * const path = `${await Deno.makeTempDir()}/balance.json`;
   * const store = await open(path, { default: { balance: 100 } });
   * try {
   *   await store.with((s) => {
   *     s.value.balance -= 500;
   *     if (s.value.balance < 0) throw new RangeError("insufficient funds");
   *   });
   * } catch (error) {
   *   assert.ok(error instanceof RangeError);
   * }
   * assert.ok(store.value.balance === 100);
   * ```
   */
  with<R>(fn: (store: Store<T>) => R | Promise<R>): Promise<R>;
  /**
   * Releases the lock if a `with` holds one, and closes the store: later
   * `commit` and `with` calls reject, and a `with` still running does not
   * commit. Disposal never commits, since it cannot tell success from
   * failure; commit before leaving the scope.
   *
   * @example
   * ```ts
   * import { open } from "@x/atomic-store/store";
   *
   * const path = `${await Deno.makeTempDir()}/counter.json`;
   * {
   *   await using store = await open(path, { default: 0, lock: true });
   *   await store.with((s) => void s.value++);
   * }
   * ```
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/** One running outermost `with`, marked in the async context of its callback. */
interface Frame {
  readonly store: object;
}

// The outermost `with` calls active in the current async context. A call to
// `with` that finds its store's running frame here is nested; any other call
// queues behind the running one.
const activeFrames = new AsyncLocalStorage<ReadonlySet<Frame>>();

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

class FileStore<T> implements Store<T> {
  readonly path: string;
  readonly format: string;
  value!: T;

  readonly #codec: Codec<T>;
  readonly #default: T;
  readonly #options: StoreOptions<T>;
  readonly #lock: StoreLockOptions | undefined;
  /** The bytes last committed or read, or `undefined` for the default. */
  #committed: Uint8Array | undefined;
  /** Set when this store last found the file undecodable. */
  #corrupt: CorruptFileError | undefined;
  /** Settles when every commit so far has. */
  #writes: Promise<unknown> = Promise.resolve();
  /** Settles when the running outermost `with` has. */
  #turn: Promise<void> = Promise.resolve();
  #frame: Frame | undefined;
  #held: FileLock | undefined;
  #dirReady = false;
  #disposed = false;

  constructor(path: string, options: StoreOptions<T>, initialDefault: T) {
    this.path = path;
    this.#options = options;
    const codec = resolveCodec<T>(options.format ?? formatFromPath(path), {
      json: options.json,
      yaml: options.yaml,
      msgpack: options.msgpack,
    });
    this.#codec = codec;
    this.format = codec.name;
    this.#default = initialDefault;
    this.#lock = options.lock === true
      ? {}
      : options.lock
      ? { timeout: options.lock.timeout, pollInterval: options.lock.pollInterval }
      : undefined;
    const timeout = this.#lock?.timeout;
    if (timeout !== undefined && !(timeout >= 0)) {
      throw new RangeError(`lock.timeout must be a non-negative number of ms, got ${timeout}`);
    }
  }

  async reload(): Promise<void> {
    await this.#writes;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await fs.readFile(this.path);
    } catch (error) {
      if (error instanceof Deno.errors.IsADirectory) {
        throw new AtomicStoreError(
          this.path,
          `cannot use "${this.path}" as a store: it is a directory`,
          { cause: error },
        );
      }
      if (!isNotFound(error)) throw error;
    }
    if (bytes === undefined) {
      this.value = structuredClone(this.#default);
      this.#committed = undefined;
      this.#corrupt = undefined;
      return;
    }
    let value: T;
    try {
      value = this.#codec.decode(bytes);
    } catch (cause) {
      const error = new CorruptFileError(this.path, this.format, { cause });
      if (!this.#options.overwriteCorrupt) {
        this.#corrupt = error;
        throw error;
      }
      this.value = structuredClone(this.#default);
      this.#committed = undefined;
      this.#corrupt = undefined;
      return;
    }
    this.value = value;
    this.#committed = bytes;
    this.#corrupt = undefined;
  }

  /** The current value as the bytes to write; throws what the encoder throws. */
  #encode(): Uint8Array {
    const data = this.#codec.encode(this.value);
    // Copy bytes, so a codec reusing its buffer cannot change the snapshot.
    return typeof data === "string" ? toBytes(data) : data.slice();
  }

  #checkOpen(): void {
    if (this.#disposed) {
      throw new AtomicStoreError(this.path, `the store for "${this.path}" has been disposed`);
    }
  }

  commit(): Promise<void> {
    let bytes: Uint8Array;
    try {
      this.#checkOpen();
      if (this.#corrupt) throw this.#corrupt;
      bytes = this.#encode();
    } catch (error) {
      return Promise.reject(error);
    }
    const write = this.#writes.then(async () => {
      await atomicWrite(this.path, bytes, this.#options);
      this.#committed = bytes;
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  /** Sets `value` to the last committed (or read) state, decoded afresh. */
  #rollback(): void {
    try {
      this.value = this.#committed === undefined
        ? structuredClone(this.#default)
        : this.#codec.decode(this.#committed);
    } catch {
      // Only a custom codec that cannot decode its own output gets here;
      // the caller's error matters more than this one.
    }
  }

  async with<R>(fn: (store: Store<T>) => R | Promise<R>): Promise<R> {
    this.#checkOpen();
    const frames = activeFrames.getStore();
    if (this.#frame && frames?.has(this.#frame)) return await this.#nested(fn);

    const previous = this.#turn;
    let done!: () => void;
    this.#turn = new Promise((resolve) => done = resolve);
    await previous;
    try {
      this.#checkOpen();
      return await this.#outermost(fn, frames);
    } finally {
      done();
    }
  }

  async #outermost<R>(
    fn: (store: Store<T>) => R | Promise<R>,
    frames: ReadonlySet<Frame> | undefined,
  ): Promise<R> {
    const frame: Frame = { store: this };
    this.#frame = frame;
    try {
      if (this.#lock) {
        // The lock file lives beside the store's file: its directory must exist.
        if (!this.#dirReady && (this.#options.ensureDir ?? true)) {
          await fs.mkdir(dirname(this.path), { recursive: true });
          this.#dirReady = true;
        }
        this.#held = await lockFile(`${this.path}.lock`, this.#lock);
        await this.reload();
      }
      try {
        const inner = new Set(frames);
        inner.add(frame);
        const result = await activeFrames.run(inner, () => fn(this));
        await this.commit();
        return result;
      } catch (error) {
        this.#rollback();
        throw error;
      }
    } finally {
      this.#frame = undefined;
      const held = this.#held;
      this.#held = undefined;
      await held?.release();
    }
  }

  async #nested<R>(fn: (store: Store<T>) => R | Promise<R>): Promise<R> {
    const savepoint = this.#encode();
    try {
      const result = await fn(this);
      if (!this.#options.ignoreInnerExits) await this.commit();
      return result;
    } catch (error) {
      try {
        this.value = this.#codec.decode(savepoint);
      } catch { /* a codec that cannot read its own output; keep the caller's error */ }
      throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#disposed = true;
    const held = this.#held;
    this.#held = undefined;
    await held?.release();
  }
}

/**
 * Opens the store kept in the file at `path`: reads and decodes the file if
 * it exists, otherwise starts from a deep copy of `options.default`.
 * Nothing is written until {@linkcode Store.commit} or the end of a
 * {@linkcode Store.with}.
 *
 * @throws {CorruptFileError} when the file exists but does not decode
 *   (unless `overwriteCorrupt` is set). The file is left untouched.
 * @throws {AtomicStoreError} when `path` is a directory.
 * @throws {TypeError} when `format` is not a known format or codec, or the
 *   default cannot be copied with `structuredClone`.
 * @throws {RangeError} when `lock.timeout` is negative.
 *
 * @example Remember every start time
 * ```ts
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/runs.json`;
 * const store = await open<string[]>(path, { default: [] });
 * await store.with((s) => {
 *   console.log("Previous executions:", s.value);
 *   s.value.push(new Date().toISOString());
 * });
 * ```
 *
 * @example Compact JSON, or another format
 * ```ts
 * import assert from "node:assert/strict";
 * import { open } from "@x/atomic-store/store";
 *
 * const dir = await Deno.makeTempDir();
 * const small = await open(`${dir}/small.json`, { default: { a: 1 }, json: { indent: 0 } });
 * await small.commit();
 * assert.ok(await Deno.readTextFile(`${dir}/small.json`) === '{"a":1}');
 *
 * const config = await open(`${dir}/config.yaml`, { default: { debug: false } });
 * assert.ok(config.format === "yaml");
 * ```
 */
export function open<T>(path: string, options: StoreOptions<T> & { default: T }): Promise<Store<T>>;
/**
 * Opens the store kept in the file at `path`; without a `default`, the
 * value is `null` while the file does not exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { open } from "@x/atomic-store/store";
 *
 * const store = await open<{ name: string }>(`${await Deno.makeTempDir()}/me.json`);
 * assert.ok(store.value === null);
 * store.value = { name: "Ada" };
 * await store.commit();
 * ```
 */
export function open<T = unknown>(
  path: string,
  options?: StoreOptions<T>,
): Promise<Store<T | null>>;
export async function open<T>(
  path: string,
  options: StoreOptions<T> = {},
): Promise<Store<T | null>> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`path must be a non-empty string, got ${JSON.stringify(path)}`);
  }
  let initial: T | null;
  try {
    initial = structuredClone(options.default ?? null);
  } catch (error) {
    throw new TypeError(
      `the default value cannot be copied: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  const store = new FileStore<T | null>(
    resolve(path),
    options as StoreOptions<T | null>,
    initial,
  );
  await store.reload();
  return store;
}
