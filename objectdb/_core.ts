/**
 * The machinery behind persistent objects: their bookkeeping, the proxy that
 * routes property access to shared or transaction-local state, transactions
 * and the async contexts that carry them, and the class registry.
 *
 * Every persistent object has a shared state (the latest committed state
 * this process knows of, read-only) and, for each transaction that checked
 * it out, a local deep copy. Property reads see the local copy of the
 * current transaction if there is one, the shared state otherwise; writes
 * need a local copy.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { ReadOnlyError, TransactionFailedError } from "./errors.ts";
import { deepCopy } from "./_wire.ts";

/** What the core needs to know of a database engine. */
export interface EngineRef {
  readonly path: string;
  /** The public `Database` object. */
  readonly database: object;
}

/** Changes a transaction made to a `PersistentDict`'s entries. */
export interface DictOverlay {
  /** Entries set, or copied on read so that they can be changed in place. */
  changed: Map<unknown, unknown>;
  /** Keys deleted (before `changed` is applied). */
  deleted: Set<unknown>;
  /** Whether every shared entry was deleted first. */
  cleared: boolean;
}

/** An object's state local to one transaction. */
export interface LocalState {
  /** The object's version when it was checked out. */
  base: number;
  attrs: Map<string, unknown>;
  dict: DictOverlay | undefined;
}

/** Bookkeeping of one persistent object. */
export class ObjectMeta {
  readonly proxy: object;
  readonly target: object;
  /** The database it belongs to (tentatively, for an elected root not yet committed). */
  engine: EngineRef | undefined;
  /** Assigned on the first commit. */
  oid: number | undefined;
  /** The sequence number of the transaction that last wrote it (0: never). */
  version = 0;
  /** Whether that transaction was committed through this process's engine. */
  versionLocal = false;
  /** Shared attributes. */
  attrs: Map<string, unknown> = new Map();
  /** Shared entries, for `PersistentDict`s. */
  items: Map<unknown, unknown> | undefined;
  /** How many transactions hold a local copy. */
  checkouts = 0;
  /** Constructed and never checked out, elected or committed: class fields may still be defined. */
  fresh = true;

  constructor(target: object, proxy: object) {
    this.target = target;
    this.proxy = proxy;
  }
}

const metaByTarget = new WeakMap<object, ObjectMeta>();
const metaByProxy = new WeakMap<object, ObjectMeta>();

/** The bookkeeping of a persistent object, or `undefined` for anything else. */
export function metaOf(object: unknown): ObjectMeta | undefined {
  return typeof object === "object" && object !== null ? metaByProxy.get(object) : undefined;
}

/** Whether `value` is a persistent object. */
export function isPersistent(value: object): boolean {
  return metaByProxy.has(value);
}

// ---------------------------------------------------------------------------
// Stored files

/** Something a `PersistentFile` can read its bytes from. */
export type FileSource =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | { read(buffer: Uint8Array): Promise<number | null> };

/** A `PersistentFile` not committed yet. */
export interface FileState {
  source: FileSource;
  /** Set once reading the source has started: it cannot be read twice. */
  consumed: boolean;
}

/** Where a stored file's bytes are: chunks of the log of `path`. */
export interface StreamInfo {
  path: string;
  size: number;
  /** File offsets of the chunks' data, in order. */
  offsets: number[];
  lengths: number[];
}

/** `PersistentFile`s, by object. */
export const fileStates: WeakMap<object, FileState> = new WeakMap();
/** `PersistentStream`s, by object. */
export const streamInfos: WeakMap<object, StreamInfo> = new WeakMap();

/** Whether `value` is a `PersistentFile` or a `PersistentStream`. */
export function isFileLike(value: object): boolean {
  return fileStates.has(value) || streamInfos.has(value);
}

// ---------------------------------------------------------------------------
// Transactions and contexts

/** An election of a root, pending in a transaction. */
export interface Election {
  meta: ObjectMeta;
  /** The root version of the database when the transaction first elected. */
  base: number;
  /** Whether the election attached a new object to the database. */
  attached: boolean;
}

/** One transaction: the objects it checked out and the roots it elected. */
export class Transaction {
  readonly locals: Map<ObjectMeta, LocalState> = new Map();
  readonly elected: Map<EngineRef, Election> = new Map();
  /** Why the transaction failed; it must be aborted. */
  failed: Error | undefined;
  /** The path of the database the failure is about. */
  failedPath = "";
}

/** A transaction context: what a thread is to the original design. */
export interface Context {
  tx: Transaction;
}

const storage = new AsyncLocalStorage<Context>();
const defaultContext: Context = { tx: new Transaction() };

/** The context of the running code. */
export function currentContext(): Context {
  return storage.getStore() ?? defaultContext;
}

/** The transaction of the running code. */
export function currentTx(): Transaction {
  return (storage.getStore() ?? defaultContext).tx;
}

/** Runs `fn` in a new context with a fresh transaction, and releases what it leaves. */
export function runInNewContext<T>(fn: () => T | Promise<T>): Promise<T> {
  const context: Context = { tx: new Transaction() };
  return storage.run(context, async () => {
    try {
      return await fn();
    } finally {
      releaseTx(context.tx);
    }
  });
}

/** Drops one local copy: the object reads its shared state in `tx` again. */
export function releaseLocal(tx: Transaction, meta: ObjectMeta): void {
  if (tx.locals.delete(meta)) meta.checkouts--;
}

/** Drops every local copy and election of `tx`. */
export function releaseTx(tx: Transaction): void {
  for (const meta of tx.locals.keys()) meta.checkouts--;
  tx.locals.clear();
  for (const [engine, election] of tx.elected) {
    const meta = election.meta;
    if (election.attached && meta.oid === undefined && meta.engine === engine) {
      meta.engine = undefined;
    }
  }
  tx.elected.clear();
}

/** Throws if `tx` failed and was not aborted yet. */
export function assertUsable(tx: Transaction): void {
  if (tx.failed) throw new TransactionFailedError(tx.failedPath, { cause: tx.failed });
}

/** Makes `meta` writable in the current transaction. */
export function checkoutMeta(meta: ObjectMeta): void {
  const tx = currentTx();
  assertUsable(tx);
  if (tx.locals.has(meta)) return;
  const seen = new Map<object, unknown>();
  const attrs = new Map<string, unknown>();
  for (const [key, value] of meta.attrs) attrs.set(key, deepCopy(value, seen));
  tx.locals.set(meta, {
    base: meta.version,
    attrs,
    dict: meta.items ? { changed: new Map(), deleted: new Set(), cleared: false } : undefined,
  });
  meta.checkouts++;
  meta.fresh = false;
}

/** The local state of `meta` in the current transaction, if it is checked out there. */
export function localOf(meta: ObjectMeta): LocalState | undefined {
  return meta.checkouts === 0 ? undefined : currentTx().locals.get(meta);
}

/** The local state of `meta`, or a {@linkcode ReadOnlyError} about changing `property`. */
export function writableLocal(meta: ObjectMeta, property: string): LocalState {
  const local = localOf(meta);
  if (!local) throw new ReadOnlyError(meta.engine?.path ?? "", property);
  return local;
}

// ---------------------------------------------------------------------------
// The class registry

// deno-lint-ignore ban-types
const classesByName = new Map<string, Function>();
const namesByPrototype = new Map<object, string>();

/** Registers `cls` for loading under `name`. */
// deno-lint-ignore ban-types
export function registerClass(cls: Function, name: string): void {
  if (typeof cls !== "function" || !metaCapable(cls)) {
    throw new TypeError("Database.register() takes a class that extends Persistent");
  }
  if (!name) {
    throw new TypeError("the class has no name; pass one: Database.register(cls, { name })");
  }
  const existing = classesByName.get(name);
  if (existing === cls) return;
  if (existing) {
    throw new TypeError(
      `another class is already registered as "${name}"; pass a distinct { name } to register it`,
    );
  }
  const previous = namesByPrototype.get(cls.prototype);
  if (previous !== undefined) {
    throw new TypeError(`this class is already registered as "${previous}"`);
  }
  classesByName.set(name, cls);
  namesByPrototype.set(cls.prototype, name);
}

let persistentPrototype: object | undefined;

/** Called once by `persistent.ts` with `Persistent.prototype`. */
export function setPersistentPrototype(prototype: object): void {
  persistentPrototype = prototype;
}

// deno-lint-ignore ban-types
function metaCapable(cls: Function): boolean {
  return cls.prototype === persistentPrototype ||
    (persistentPrototype !== undefined &&
      Object.prototype.isPrototypeOf.call(persistentPrototype, cls.prototype));
}

/** The registered name of `meta`'s class, or `undefined`. */
export function classNameOf(meta: ObjectMeta): string | undefined {
  return namesByPrototype.get(Object.getPrototypeOf(meta.target));
}

/** The name `meta`'s class would be stored under, for messages. */
export function displayClassName(meta: ObjectMeta): string {
  return (Object.getPrototypeOf(meta.target)?.constructor?.name as string | undefined) ?? "";
}

/** The prototype of the class registered as `name`, or `undefined`. */
export function prototypeFor(name: string): object | undefined {
  return classesByName.get(name)?.prototype;
}

// ---------------------------------------------------------------------------
// The proxy

// Setters found on a prototype chain: `null` for "none", `false` for a
// getter without a setter.
const setterCache = new WeakMap<object, Map<string, ((value: unknown) => void) | null | false>>();

function setterOf(target: object, key: string): ((value: unknown) => void) | null | false {
  const proto = Object.getPrototypeOf(target);
  if (proto === null) return null;
  let cache = setterCache.get(proto);
  if (!cache) setterCache.set(proto, cache = new Map());
  let found = cache.get(key);
  if (found !== undefined) return found;
  found = null;
  for (let p = proto; p !== null; p = Object.getPrototypeOf(p)) {
    const descriptor = Object.getOwnPropertyDescriptor(p, key);
    if (!descriptor) continue;
    if (descriptor.get || descriptor.set) found = descriptor.set ?? false;
    break;
  }
  cache.set(key, found);
  return found;
}

function visibleAttrs(meta: ObjectMeta): Map<string, unknown> {
  if (meta.checkouts === 0) return meta.attrs;
  return currentTx().locals.get(meta)?.attrs ?? meta.attrs;
}

const handler: ProxyHandler<object> = {
  get(target, key, receiver) {
    if (typeof key === "string") {
      const attrs = visibleAttrs(metaByTarget.get(target)!);
      const value = attrs.get(key);
      if (value !== undefined || attrs.has(key)) return value;
    }
    return Reflect.get(target, key, receiver);
  },
  set(target, key, value, receiver) {
    if (typeof key === "symbol") return Reflect.set(target, key, value, receiver);
    const setter = setterOf(target, key);
    if (setter) {
      setter.call(receiver, value);
      return true;
    }
    if (setter === false) {
      throw new TypeError(`cannot set "${key}": the class defines it with a getter only`);
    }
    writableLocal(metaByTarget.get(target)!, key).attrs.set(key, value);
    return true;
  },
  defineProperty(target, key, descriptor) {
    if (typeof key === "symbol") return Reflect.defineProperty(target, key, descriptor);
    if (descriptor.get || descriptor.set) {
      throw new TypeError(`cannot define "${key}" as an accessor on a persistent object`);
    }
    const meta = metaByTarget.get(target)!;
    const local = localOf(meta);
    if (local) local.attrs.set(key, descriptor.value);
    else if (meta.fresh) meta.attrs.set(key, descriptor.value); // class fields
    else throw new ReadOnlyError(meta.engine?.path ?? "", key);
    return true;
  },
  deleteProperty(target, key) {
    if (typeof key === "symbol") return Reflect.deleteProperty(target, key);
    writableLocal(metaByTarget.get(target)!, key).attrs.delete(key);
    return true;
  },
  has(target, key) {
    if (typeof key === "string" && visibleAttrs(metaByTarget.get(target)!).has(key)) return true;
    return Reflect.has(target, key);
  },
  ownKeys(target) {
    return [...visibleAttrs(metaByTarget.get(target)!).keys(), ...Reflect.ownKeys(target)];
  },
  getOwnPropertyDescriptor(target, key) {
    if (typeof key === "string") {
      const attrs = visibleAttrs(metaByTarget.get(target)!);
      if (attrs.has(key)) {
        return { value: attrs.get(key), writable: true, enumerable: true, configurable: true };
      }
    }
    return Reflect.getOwnPropertyDescriptor(target, key);
  },
};

/** Wraps a newly constructed instance; its constructor returns the result. */
export function wrapNew<T extends object>(target: T, dict: boolean): T {
  const proxy = new Proxy(target, handler) as T;
  const meta = new ObjectMeta(target, proxy);
  if (dict) meta.items = new Map();
  metaByTarget.set(target, meta);
  metaByProxy.set(proxy, meta);
  return proxy;
}

/** Creates an object of a stored class without running its constructor. */
export function materialize(prototype: object, dict: boolean): ObjectMeta {
  const target = Object.create(prototype);
  const proxy = new Proxy(target, handler);
  const meta = new ObjectMeta(target, proxy);
  meta.fresh = false;
  if (dict) meta.items = new Map();
  metaByTarget.set(target, meta);
  metaByProxy.set(proxy, meta);
  return meta;
}
