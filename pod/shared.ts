import {
  AtomicStoreError,
  AtomicWriteError,
  CorruptFileError,
  FileLockError,
  FileLockTimeoutError,
} from "../_internal/errors.ts";
import {
  ChannelClient,
  ChannelClosedError,
  ChannelServer,
  decodeMessage,
  encodeMessage,
  type ErrorPayload,
  isChannel,
  type Outcome,
} from "./_channel.ts";
import type { PodCore } from "./_core.ts";
import { PodLockedError } from "./errors.ts";
import {
  entriesOf,
  openPod,
  type Pod,
  podCoreOf,
  type PodEntries,
  type PodOptions,
} from "./pod.ts";

/** Options of {@linkcode SharedPod.open}: those of a pod, and the number of clients. */
export interface SharedPodOptions<V = unknown> extends Omit<PodOptions<V>, "readOnly"> {
  /**
   * How many clients ({@linkcode SharedPod.connect} calls in other threads)
   * can be connected at once. Each takes 64 KiB of shared memory. Default 64.
   */
  maxClients?: number;
}

/**
 * What connects a Worker to a {@linkcode SharedPod}: post it to the Worker
 * as it is (no transfer list needed) and pass it to
 * {@linkcode SharedPod.connect} there.
 */
export interface SharedPodHandle {
  /** Marks the object as a shared pod handle. */
  readonly kind: "atomic-store/shared-pod";
  /** The pod's directory. */
  readonly path: string;
  /** Shared memory: the request slots' control words. */
  readonly control: SharedArrayBuffer;
  /** Shared memory: the request slots' message areas. */
  readonly data: SharedArrayBuffer;
}

/**
 * The mutation proxy of a {@linkcode SharedPod}: every assignment, `delete`
 * and method call made through it is recorded as a path and an operation
 * and applied, as one step, by the thread that owns the pod.
 *
 * `shared.set.foo = value` sets a key, `shared.set.foo.bar = 5` a nested
 * property, `shared.set.foo.list.push(x)` calls an array method on the
 * stored value; calling it, `shared.set("foo", value)`, sets a key too.
 * Reading through it gives another proxy, not a value: read values with
 * {@linkcode SharedPod.get}.
 */
export interface SharedPodSetter<V = unknown> {
  /** Sets `key` to `value`, like {@linkcode SharedPod.set}`.key = value`. */
  (key: string, value: V): void;
  /** A proxy for the path so far; assign to it, delete it, or call a method on it. */
  // deno-lint-ignore no-explicit-any
  [key: string]: any;
}

const OWNER = -1;
const SLOT_SIZE = 64 * 1024;
const FORBIDDEN_SEGMENTS = new Set(["__proto__", "prototype", "constructor"]);

/** The servers of this thread, so that connecting from the owning thread does not block it. */
const servers = new Map<SharedArrayBuffer, PodServer>();

function renderPath(path: readonly string[]): string {
  return path.map((part, index) =>
    /^[A-Za-z_$][\w$]*$/.test(part)
      ? `${index === 0 ? "" : "."}${part}`
      : `[${JSON.stringify(part)}]`
  ).join("");
}

function checkPath(path: unknown): asserts path is string[] {
  if (!Array.isArray(path) || path.length === 0 || !path.every((p) => typeof p === "string")) {
    throw new TypeError("a shared pod path must be a non-empty list of strings");
  }
}

/** The object at `path` inside `root`, for a nested change. */
function walk(root: unknown, path: readonly string[], full: readonly string[]): object {
  let node = root;
  for (const segment of path) {
    if (FORBIDDEN_SEGMENTS.has(segment)) {
      throw new TypeError(`"${segment}" cannot be part of a shared pod path`);
    }
    if (node === null || typeof node !== "object") break;
    node = (node as Record<string, unknown>)[segment];
  }
  if (node === null || typeof node !== "object") {
    throw new TypeError(`there is no object at set.${renderPath(full)}`);
  }
  return node;
}

const TYPED_ARRAY_PROTOTYPE = Object.getPrototypeOf(Uint8Array.prototype);

/** The method `name` of `target`, if the mutation proxy may call it. */
function methodOf(
  target: object,
  name: string,
  path: readonly string[],
): (...args: unknown[]) => unknown {
  const proto = Array.isArray(target)
    ? Array.prototype
    : target instanceof Date
    ? Date.prototype
    : ArrayBuffer.isView(target)
    ? TYPED_ARRAY_PROTOTYPE
    : undefined;
  const method = proto && name !== "constructor" && Object.hasOwn(proto, name)
    ? (proto as Record<string, unknown>)[name]
    : undefined;
  if (typeof method !== "function") {
    throw new TypeError(`cannot call ${name}() on the value at set.${renderPath(path)}`);
  }
  return method as (...args: unknown[]) => unknown;
}

function toPayload(error: unknown): ErrorPayload {
  if (error instanceof AtomicStoreError) {
    const fields: Record<string, string | number | boolean> = {};
    for (const [field, value] of Object.entries(error)) {
      if (field === "path" || field === "name" || field === "message") continue;
      if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
        fields[field] = value;
      }
    }
    return { name: error.name, message: error.message, path: error.path, fields };
  }
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}

const BUILT_IN_ERRORS: Record<string, ErrorConstructor> = {
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** The library's errors a client can receive, by name, so that `instanceof` works across threads. */
const STORE_ERRORS: Record<string, { prototype: AtomicStoreError }> = {
  AtomicStoreError,
  CorruptFileError,
  AtomicWriteError,
  FileLockError,
  FileLockTimeoutError,
  PodLockedError,
};

/**
 * Makes an error like the one thrown on the other side: the same class
 * for the library's own errors (with their fields) and the built-in ones.
 */
function fromPayload(payload: ErrorPayload): Error {
  if (payload.path !== undefined) {
    const error = new AtomicStoreError(payload.path, payload.message);
    const type = STORE_ERRORS[payload.name];
    if (type) Object.setPrototypeOf(error, type.prototype);
    error.name = payload.name;
    Object.assign(error, payload.fields);
    return error;
  }
  const type = BUILT_IN_ERRORS[payload.name];
  if (type) return new type(payload.message);
  const error = new Error(payload.message);
  error.name = payload.name;
  return error;
}

function uncloneable(error: unknown): unknown {
  if (error instanceof DOMException && error.name === "DataCloneError") {
    return new TypeError(`cannot send this value to the shared pod: ${error.message}`);
  }
  if (error instanceof Error && /could not be cloned|DataCloneError/i.test(error.message)) {
    return new TypeError(`cannot send this value to the shared pod: ${error.message}`);
  }
  return error;
}

interface Waiter {
  run(): void;
  cancel(error: Error): void;
}

/** Operations a subclass serves beyond the pod's own; throws for names it does not know. */
export type ExtraOperations = (op: string, args: unknown[]) => unknown;

/**
 * The owning thread's side: the pod, the channel, the lock. Exported for
 * subclasses of SharedPod (the progress tracker), not from `mod.ts`.
 */
export class PodServer {
  readonly pod: Pod<unknown>;
  readonly core: PodCore;
  readonly channel: ChannelServer;
  readonly handle: SharedPodHandle;
  readonly #extra: ExtraOperations | undefined;
  #holder: number | undefined;
  #depth = 0;
  #queue: Waiter[] = [];

  constructor(pod: Pod<unknown>, maxClients: number, extra?: ExtraOperations) {
    this.pod = pod;
    this.core = podCoreOf(pod);
    this.#extra = extra;
    this.channel = new ChannelServer(maxClients, SLOT_SIZE, (slot, bytes) => {
      let message: unknown;
      try {
        message = decodeMessage(bytes);
        if (!Array.isArray(message) || typeof message[0] !== "string") {
          throw new TypeError("malformed shared pod request");
        }
      } catch (error) {
        this.#reply(slot, { ok: false, error: toPayload(error) });
        return;
      }
      this.#handle(slot, message as [string, ...unknown[]]);
    });
    this.handle = {
      kind: "atomic-store/shared-pod",
      path: pod.path,
      control: this.channel.buffers.control,
      data: this.channel.buffers.data,
    };
    servers.set(this.handle.control, this);
  }

  get closed(): boolean {
    return this.channel.closed;
  }

  #closedError(): TypeError {
    return new TypeError(`shared pod "${this.pod.path}" is closed`);
  }

  #reply(slot: number, outcome: Outcome): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(outcome);
    } catch (error) {
      bytes = encodeMessage({ ok: false, error: toPayload(uncloneable(error)) });
    }
    this.channel.respond(slot, bytes);
  }

  #handle(slot: number, message: [string, ...unknown[]]): void {
    const [op, ...args] = message;
    if (this.#holder !== undefined && this.#holder !== slot && op !== "bye") {
      // Another client, or the owning thread, holds the lock: wait for it.
      this.#queue.push({ run: () => this.#handle(slot, message), cancel: () => {} });
      return;
    }
    let result: unknown;
    try {
      switch (op) {
        case "lock":
          this.#take(slot);
          break;
        case "unlock":
          this.unlock(slot);
          break;
        case "bye":
          if (this.#holder === slot) this.#release();
          break;
        default:
          result = this.dispatch(op, args);
      }
    } catch (error) {
      this.#reply(slot, { ok: false, error: toPayload(error) });
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#reply(slot, { ok: true, value }),
        (error) => this.#reply(slot, { ok: false, error: toPayload(error) }),
      );
    } else {
      this.#reply(slot, { ok: true, value: result });
    }
  }

  #take(holder: number): void {
    this.#holder = holder;
    this.#depth++;
  }

  #release(): void {
    this.#holder = undefined;
    this.#depth = 0;
    while (this.#queue.length > 0 && this.#holder === undefined) this.#queue.shift()!.run();
  }

  /** Takes the lock for the owning thread. */
  lockOwner(): Promise<void> {
    if (this.closed) return Promise.reject(this.#closedError());
    if (this.#holder === undefined || this.#holder === OWNER) {
      this.#take(OWNER);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({
        run: () => {
          this.#take(OWNER);
          resolve();
        },
        cancel: reject,
      });
    });
  }

  unlock(holder: number): void {
    if (this.#holder !== holder) {
      throw new TypeError(
        `this ${
          holder === OWNER ? "thread" : "client"
        } does not hold the lock of shared pod "${this.pod.path}"`,
      );
    }
    if (--this.#depth === 0) this.#release();
  }

  /** Calls from the owning thread: the same operations, on copies of the values. */
  ownerCall(op: string, args: unknown[]): unknown {
    if (this.closed) throw this.#closedError();
    let copies: unknown[];
    try {
      copies = structuredClone(args);
    } catch (error) {
      throw uncloneable(error);
    }
    const result = this.dispatch(op, copies);
    return result instanceof Promise ? result : structuredClone(result);
  }

  /** Applies one operation to the pod. */
  dispatch(op: string, args: unknown[]): unknown {
    const pod = this.pod;
    const core = this.core;
    switch (op) {
      case "get":
        return pod.has(args[0] as string) ? core.find(args[0] as string)!.value : undefined;
      case "has":
        return pod.has(args[0] as string);
      case "size":
        return pod.size;
      case "keys":
        return [...core.all().keys()];
      case "values":
        return Array.from(core.all().values(), (entry) => entry.value);
      case "entries":
        return Array.from(core.all(), ([key, entry]) => [key, entry.value]);
      case "dirty":
        return [...pod.dirty()];
      case "set":
        pod.set(args[0] as string, args[1]);
        return undefined;
      case "delete":
        return pod.delete(args[0] as string);
      case "clear":
        pod.clear();
        return undefined;
      case "update":
        pod.update(args[0] as [string, unknown][]);
        return undefined;
      case "mutate":
        return this.#mutate(args);
      case "read":
        return this.#read(args[0]);
      case "sync":
        return pod.sync();
      case "syncKey":
        return pod.syncKey(args[0] as string);
      case "markDirty":
        pod.markDirty(args[0] as string);
        return undefined;
      case "hold":
        pod.hold();
        return undefined;
      case "unhold":
        return pod.unhold();
      case "revert":
        return pod.revert();
      default:
        if (this.#extra) return this.#extra(op, args);
        throw new TypeError(`unknown shared pod operation "${op}"`);
    }
  }

  #read(path: unknown): unknown {
    checkPath(path);
    const [key, ...inner] = path;
    if (!this.pod.has(key)) return undefined;
    let node = this.core.find(key)!.value;
    for (const segment of inner) {
      if (node === null || typeof node !== "object") return undefined;
      node = (node as Record<string, unknown>)[segment];
    }
    return node;
  }

  /**
   * A change through the mutation proxy. Nested changes are made to a
   * copy of the key's value, which replaces the value only if the change
   * succeeds and the result can be stored: all or nothing.
   */
  #mutate([kind, path, ...rest]: unknown[]): unknown {
    checkPath(path);
    const [key, ...inner] = path;
    if (inner.length === 0 && kind === "set") {
      this.pod.set(key, rest[0]);
      return undefined;
    }
    if (inner.length === 0 && kind === "delete") return this.pod.delete(key);
    if (!this.pod.has(key)) {
      throw new TypeError(
        `there is no key ${JSON.stringify(key)} in shared pod "${this.pod.path}"`,
      );
    }
    const copy = structuredClone(this.core.find(key)!.value);
    let result: unknown;
    if (kind === "call") {
      const target = walk(copy, inner, path);
      const method = methodOf(target, rest[0] as string, path);
      result = method.apply(target, rest[1] as unknown[]);
      if (result === target) result = undefined; // sort(), fill()…: the caller has no use for a copy
    } else {
      const parent = walk(copy, inner.slice(0, -1), path);
      const last = inner[inner.length - 1];
      if (FORBIDDEN_SEGMENTS.has(last)) {
        throw new TypeError(`"${last}" cannot be part of a shared pod path`);
      }
      if (kind === "set") (parent as Record<string, unknown>)[last] = rest[0];
      else if (kind === "delete") result = delete (parent as Record<string, unknown>)[last];
      else throw new TypeError(`unknown shared pod change "${String(kind)}"`);
    }
    this.pod.set(key, copy);
    return result;
  }

  /** Stops serving, fails waiting lock requests, and closes the pod. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.channel.close();
      servers.delete(this.handle.control);
      const waiting = this.#queue;
      this.#queue = [];
      for (const waiter of waiting) waiter.cancel(this.#closedError());
    }
    await this.pod.close();
  }
}

let callShared: (shared: SharedPod<unknown>, op: string, args: unknown[]) => unknown;

/**
 * Sends one operation through a shared pod handle, as its methods do: for
 * subclasses (the progress tracker); not part of the public API.
 */
export function sharedCall(shared: SharedPod<unknown>, op: string, args: unknown[]): unknown {
  return callShared(shared, op, args);
}

/** The server of `handle` if it runs in this thread: for subclasses; not part of the public API. */
export function localServer(handle: SharedPodHandle): PodServer | undefined {
  return servers.get(handle.control);
}

/** Builds the mutation proxy for `path`. */
function setterFor(
  call: (op: string, args: unknown[]) => unknown,
  path: string[],
): SharedPodSetter {
  const read = () => call("read", [path]);
  const target = (() => {}) as unknown as SharedPodSetter;
  return new Proxy(target, {
    get(_target, property) {
      if (property === Symbol.toPrimitive) {
        // `shared.set.n += 1` reads, then writes: two steps, not one.
        return () => {
          const value = read();
          if (value !== null && typeof value === "object") {
            throw new TypeError(
              `set.${renderPath(path)} is an object; read values with get(), not through set`,
            );
          }
          return value;
        };
      }
      if (property === "toJSON" || property === "valueOf") return read;
      if (typeof property === "symbol" || property === "then") return undefined;
      return setterFor(call, [...path, property]);
    },
    set(_target, property, value) {
      if (typeof property === "symbol") throw new TypeError("shared pod keys must be strings");
      call("mutate", ["set", [...path, property], value]);
      return true;
    },
    deleteProperty(_target, property) {
      if (typeof property === "symbol") throw new TypeError("shared pod keys must be strings");
      call("mutate", ["delete", [...path, property]]);
      return true;
    },
    defineProperty() {
      throw new TypeError("assign to the mutation proxy instead of defining properties on it");
    },
    apply(_target, _this, args) {
      if (path.length === 0) {
        if (typeof args[0] !== "string") {
          throw new TypeError(`pod keys must be strings, not ${typeof args[0]}`);
        }
        call("set", [args[0], args[1]]);
        return undefined;
      }
      if (path.length === 1) {
        throw new TypeError(`set.${path[0]}() calls nothing: the pod itself has no methods here`);
      }
      return call("mutate", ["call", path.slice(0, -1), path[path.length - 1], args]);
    },
  });
}

/**
 * One pod shared by the Workers of a process.
 *
 * The thread that calls {@linkcode SharedPod.open} owns the pod and serves
 * the others from its event loop; it must keep that loop free and alive
 * while clients work: awaiting the Workers is right, a long synchronous
 * loop or `Atomics.wait` stalls every client until it ends.
 * It posts {@linkcode SharedPod.handle} to each Worker, which calls
 * {@linkcode SharedPod.connect} to get a client with the same methods.
 *
 * - Reads (`get`, `has`, `size`, `keys()`, …) are synchronous, and return
 *   copies: a client blocks, with `Atomics.wait`, until the owning thread
 *   answers. Every change is visible to every client at once.
 * - Changes go through the methods (`delete`, `clear`, `update`) or the
 *   {@linkcode SharedPod.set} proxy: `shared.set.foo = {bar: 0, baz: []}`,
 *   `shared.set.foo.bar = 5`, `shared.set.foo.baz.push("fizz")`. Each is
 *   one step on the owning thread, so changes from many clients never
 *   interleave. Changing a value returned by `get` changes only the copy.
 * - `shared.set.n += 1` is two steps (a read, then a write), and so is any
 *   read followed by a write: another client can change the value in
 *   between. Use {@linkcode SharedPod.withLock} for read-modify-write.
 *   While a client holds the lock, requests of the other clients wait;
 *   calls made in the owning thread itself do not, unless it takes the
 *   lock too.
 * - Promise-returning methods (`sync`, `lock`, …) also block in a client
 *   until done.
 *
 * Close every client when done (a Worker killed while it holds the lock
 * leaves the lock taken), and close the owner last: that syncs and closes
 * the pod. Open one SharedPod per directory and share its handle.
 *
 * @example In the owning thread
 * ```ts
 * import assert from "node:assert/strict";
 * import { SharedPod } from "@x/atomic-store/pod";
 *
 * await using shared = await SharedPod.open(await Deno.makeTempDir());
 * shared.set.foo = { bar: 0, baz: [] as string[] };
 * shared.set.foo.bar = 5;
 * shared.set.foo.baz.push("fizz");
 * assert.ok(JSON.stringify(shared.get("foo")) === '{"bar":5,"baz":["fizz"]}');
 * // new Worker(...).postMessage(shared.handle), then in the Worker:
 * // const client = SharedPod.connect(handle);
 * ```
 *
 * @example Squaring numbers in five Workers
 * ```ts ignore
 * // main.ts
 * const pod = await SharedPod.open<number | null>("squares.pod", {
 *   init: Array.from({ length: 25 }, (_, i) => [String(i), null]),
 * });
 * const workers = Array.from({ length: 5 }, (_, index) => {
 *   const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
 *   worker.postMessage({ handle: pod.handle, index, count: 5 });
 *   return new Promise((resolve) => worker.onmessage = () => resolve(worker.terminate()));
 * });
 * await Promise.all(workers);
 * for (const [key, value] of pod) console.log(key, value);
 * await pod.close();
 *
 * // worker.ts
 * self.onmessage = async ({ data: { handle, index, count } }) => {
 *   const pod = SharedPod.connect<number | null>(handle);
 *   for (const key of pod.keys()) if (Number(key) % count === index) pod.set[key] = Number(key) ** 2;
 *   await pod.close();
 *   self.postMessage("done");
 * };
 * ```
 */
export class SharedPod<V = unknown> implements AsyncDisposable, Iterable<[string, V]> {
  /** Post this to a Worker and pass it to {@linkcode SharedPod.connect} there. */
  readonly handle: SharedPodHandle;
  /** The pod's directory. */
  readonly path: string;
  /**
   * The mutation proxy: assign, delete and call methods through it; see
   * {@linkcode SharedPodSetter}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedPod } from "@x/atomic-store/pod";
   *
   * await using shared = await SharedPod.open<number[]>(await Deno.makeTempDir());
   * shared.set("list", [3, 1, 2]);
   * shared.set.list.sort();
   * const removed = shared.set.list.splice(0, 1);
   * assert.ok(removed[0] === 1 && shared.get("list")!.length === 2);
   * delete shared.set.list;
   * ```
   */
  readonly set: SharedPodSetter<V>;
  readonly #server: PodServer | undefined;
  readonly #client: ChannelClient | undefined;
  readonly #owner: boolean;
  #closed = false;

  static {
    callShared = (shared, op, args) => shared.#call(op, args);
  }

  /**
   * Not for direct use: see {@linkcode SharedPod.open} and
   * {@linkcode SharedPod.connect}.
   *
   * @ignore
   */
  protected constructor(
    handle: SharedPodHandle,
    server: PodServer | undefined,
    client: ChannelClient | undefined,
    owner: boolean,
  ) {
    this.handle = handle;
    this.path = handle.path;
    this.#server = server;
    this.#client = client;
    this.#owner = owner;
    this.set = setterFor((op, args) => this.#call(op, args), []) as SharedPodSetter<V>;
  }

  /**
   * Opens the pod at `path` (see `openPod`) and starts serving it to
   * clients from this thread.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedPod } from "@x/atomic-store/pod";
   *
   * const shared = await SharedPod.open<number>(await Deno.makeTempDir(), { init: { a: 1 } });
   * assert.ok(shared.get("a") === 1);
   * await shared.close();
   * ```
   */
  static async open<V = unknown>(
    path: string,
    options: SharedPodOptions<V> = {},
  ): Promise<SharedPod<V>> {
    const { maxClients = 64, ...podOptions } = options;
    if (!Number.isInteger(maxClients) || maxClients < 1 || maxClients > 4096) {
      throw new RangeError(`maxClients must be an integer from 1 to 4096, got ${maxClients}`);
    }
    if ((podOptions as PodOptions).readOnly) {
      throw new TypeError("a shared pod cannot be opened read-only");
    }
    const pod = await openPod<unknown>(path, podOptions as PodOptions<unknown>);
    const server = new PodServer(pod, maxClients);
    return new SharedPod<V>(server.handle, server, undefined, true);
  }

  /**
   * Connects to a shared pod from the handle its owner posted. In the
   * owning thread itself, this gives a handle that calls the pod directly.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedPod } from "@x/atomic-store/pod";
   *
   * await using owner = await SharedPod.open<number>(await Deno.makeTempDir());
   * // Normally in a Worker, with the handle received in a message:
   * await using client = SharedPod.connect<number>(owner.handle);
   * client.set.answer = 42;
   * assert.ok(owner.get("answer") === 42);
   * ```
   */
  static connect<V = unknown>(handle: SharedPodHandle): SharedPod<V> {
    if (
      handle === null || typeof handle !== "object" || handle.kind !== "atomic-store/shared-pod" ||
      typeof handle.path !== "string" || !isChannel(handle)
    ) {
      throw new TypeError("not a shared pod handle: pass the handle property of a SharedPod");
    }
    const local = servers.get(handle.control);
    if (local) return new SharedPod<V>(handle, local, undefined, false);
    const client = new ChannelClient(handle, `shared pod "${handle.path}"`);
    return new SharedPod<V>(handle, undefined, client, false);
  }

  #call(op: string, args: unknown[]): unknown {
    if (this.#closed) throw new TypeError(`this handle on shared pod "${this.path}" is closed`);
    if (this.#server) return this.#server.ownerCall(op, args);
    let request: Uint8Array;
    try {
      request = encodeMessage([op, ...args]);
    } catch (error) {
      throw uncloneable(error);
    }
    const outcome = decodeMessage(this.#client!.request(request)) as Outcome;
    if (outcome.ok) return outcome.value;
    throw fromPayload(outcome.error);
  }

  #promise<T>(op: string, args: unknown[]): Promise<T> {
    try {
      return Promise.resolve(this.#call(op, args) as T);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Whether this is the handle {@linkcode SharedPod.open} returned, which serves the others. */
  get isOwner(): boolean {
    return this.#owner;
  }

  /** The number of keys. */
  get size(): number {
    return this.#call("size", []) as number;
  }

  /** A copy of the value of `key`, or `undefined`. */
  get(key: string): V | undefined {
    return this.#call("get", [key]) as V | undefined;
  }

  /** Whether `key` is in the pod. */
  has(key: string): boolean {
    return this.#call("has", [key]) as boolean;
  }

  /** The keys, in order, as of this call. */
  keys(): IterableIterator<string> {
    return (this.#call("keys", []) as string[]).values();
  }

  /** Copies of the values, in order, as of this call. */
  values(): IterableIterator<V> {
    return (this.#call("values", []) as V[]).values();
  }

  /** Copies of the entries, in order, as of this call. */
  entries(): IterableIterator<[string, V]> {
    return (this.#call("entries", []) as [string, V][]).values();
  }

  /** The same as {@linkcode SharedPod.entries}. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** Calls `callback` for each entry (copies), in order. */
  forEach(callback: (value: V, key: string, pod: this) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  /** Removes `key`; returns whether it was there. */
  delete(key: string): boolean {
    return this.#call("delete", [key]) as boolean;
  }

  /** Removes every key. */
  clear(): void {
    this.#call("clear", []);
  }

  /** Sets many keys in one step: pairs, a `Map`, or a plain object. */
  update(entries: PodEntries<V>): void {
    this.#call("update", [entriesOf(entries)]);
  }

  /** Writes every dirty shard of the pod. */
  sync(): Promise<void> {
    return this.#promise("sync", []);
  }

  /** Writes the shard of `key`, if dirty. */
  syncKey(key: string): Promise<void> {
    return this.#promise("syncKey", [key]);
  }

  /** Flags `key` to be written at the next sync. */
  markDirty(key: string): void {
    this.#call("markDirty", [key]);
  }

  /** The keys the next sync writes. */
  dirty(): Set<string> {
    return new Set(this.#call("dirty", []) as string[]);
  }

  /** Suspends automatic syncing; the pod still records every client's changes. */
  hold(): void {
    this.#call("hold", []);
  }

  /** Resumes automatic syncing, syncing now if the threshold is reached. */
  unhold(): Promise<void> {
    return this.#promise("unhold", []);
  }

  /** Drops unsynced changes, of every client, and reloads from disk. */
  revert(): Promise<void> {
    return this.#promise("revert", []);
  }

  /**
   * Takes the pod's lock, waiting for the current holder. Locks are
   * reentrant: release each with {@linkcode SharedPod.unlock}.
   */
  lock(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new TypeError(`this handle on shared pod "${this.path}" is closed`));
    }
    if (this.#server) return this.#server.lockOwner();
    return this.#promise("lock", []);
  }

  /** Releases the lock taken with {@linkcode SharedPod.lock}. */
  unlock(): void {
    if (this.#server && !this.#closed) this.#server.unlock(OWNER);
    else this.#call("unlock", []);
  }

  /**
   * Runs `fn` holding the lock, for read-modify-write steps that no other
   * client may interleave with.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedPod } from "@x/atomic-store/pod";
   *
   * await using shared = await SharedPod.open<number>(await Deno.makeTempDir());
   * shared.set.count = 0;
   * await shared.withLock(() => {
   *   shared.set.count = shared.get("count")! + 1;
   * });
   * assert.ok(shared.get("count") === 1);
   * ```
   */
  async withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    await this.lock();
    try {
      return await fn();
    } finally {
      this.unlock();
    }
  }

  /**
   * Syncs and closes this handle. Closing the owner stops serving clients
   * and closes the pod; close it after the clients. Later calls do nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#server) {
      if (!this.#server.closed) await this.#server.pod.sync();
      if (this.#owner) await this.#server.close();
      this.#closed = true;
      return;
    }
    // Sync, then say goodbye (which also frees the lock, if held), even if
    // the sync fails; after the owner closed, there is nothing to do.
    let failure: unknown;
    for (const op of ["sync", "bye"]) {
      try {
        this.#call(op, []);
      } catch (error) {
        if (!(error instanceof ChannelClosedError)) failure ??= error;
      }
    }
    this.#client!.release();
    this.#closed = true;
    if (failure !== undefined) throw failure;
  }

  /** Closes the handle, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
