/**
 * Persistent objects: {@linkcode Persistent}, {@linkcode PersistentDict} and
 * {@linkcode checkout}.
 *
 * @module
 */

import {
  checkoutMeta,
  localOf,
  metaOf,
  type ObjectMeta,
  registerClass,
  setPersistentPrototype,
  wrapNew,
  writableLocal,
} from "./_core.ts";
import { deepCopy, isMutable } from "./_wire.ts";

/**
 * Base class of objects stored in a {@linkcode Database}.
 *
 * A persistent object's properties are its state. Outside a transaction
 * that checked it out, the state is shared and read-only: setting, defining
 * or deleting a property throws a {@linkcode ReadOnlyError}. After
 * {@linkcode checkout}, the current transaction works on its own deep copy,
 * which a commit writes and makes the new shared state.
 *
 * Property values can be primitives (BigInts and `undefined` included),
 * `Date`s, `Uint8Array`s, arrays, plain objects, `Map`s, `Set`s, other
 * persistent objects (stored as references: never copied, cycles allowed)
 * and {@linkcode PersistentFile}s; anything else makes the commit fail with
 * a `TypeError` naming where the value is. Committed values are frozen.
 *
 * Subclasses work as usual; class fields initialise the state of a new
 * object (in a constructor body, call `checkout(this)` before assigning).
 * Objects loaded from a database are created without running constructors,
 * so state must live in ordinary properties: JavaScript private fields
 * (`#x`) and symbol-keyed properties are not stored. Register subclasses
 * with `Database.register` so that they can be stored and loaded.
 *
 * @example A subclass with a default value
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, transaction } from "@x/atomic-store/objectdb";
 *
 * class Task extends Persistent {
 *   title = "untitled";
 *   done = false;
 * }
 * Database.register(Task);
 *
 * await using db = await Database.open<Task>(`${await Deno.makeTempDir()}/tasks.db`);
 * await transaction.run(async () => {
 *   const task = new Task();
 *   db.elect(task);
 *   checkout(task);
 *   task.title = "water the plants";
 *   await transaction.commit();
 * });
 * assert.ok(db.root?.title === "water the plants");
 * ```
 */
export class Persistent {
  /** Creates a new object, not yet stored anywhere. */
  constructor() {
    return wrapNew(this, false);
  }
}

setPersistentPrototype(Persistent.prototype);

/**
 * Makes `object` writable in the current transaction. Its state becomes a
 * deep copy local to the transaction (persistent objects it refers to are
 * not copied); other transactions keep seeing the shared state. When the
 * transaction commits or aborts, the object is read-only again. Checking out
 * an object twice in one transaction does nothing.
 *
 * @throws {TransactionFailedError} if the current transaction failed and was not aborted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Persistent } from "@x/atomic-store/objectdb";
 *
 * const counter = new Persistent() as Persistent & { count?: number };
 * checkout(counter);
 * counter.count = 1;
 * assert.ok(counter.count === 1);
 * ```
 */
export function checkout(object: Persistent): void {
  const meta = metaOf(object);
  if (!meta) throw new TypeError("checkout() takes a persistent object");
  checkoutMeta(meta);
}

/** Keys a {@linkcode PersistentDict} accepts: primitives and persistent objects. */
function checkKey(key: unknown): void {
  const type = typeof key;
  if (
    type === "object"
      ? key === null || metaOf(key) !== undefined
      : type !== "function" && type !== "symbol"
  ) {
    return;
  }
  throw new TypeError(
    "PersistentDict keys must be primitives or persistent objects (other objects are compared by identity, which does not survive a reload)",
  );
}

function dictMeta(dict: object): ObjectMeta {
  const meta = metaOf(dict);
  if (!meta?.items) throw new TypeError("not a PersistentDict");
  return meta;
}

function describeKey(key: unknown): string {
  return `entry ${typeof key === "string" ? JSON.stringify(key) : String(key)}`;
}

/**
 * A persistent map, for records with many entries and frequent small
 * changes: a commit writes only the entries the transaction set, deleted or
 * read for changing, not the whole map. It has the methods of a `Map`, and
 * also holds attributes like any {@linkcode Persistent} (entries and
 * attributes are independent).
 *
 * Keys are primitives or persistent objects; values are anything a
 * persistent object can hold. Reading an entry of a checked-out dict gives
 * a copy that can be changed in place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, PersistentDict, transaction } from "@x/atomic-store/objectdb";
 *
 * await using db = await Database.open(`${await Deno.makeTempDir()}/users.db`);
 * await transaction.run(async () => {
 *   const users = new PersistentDict<string, { visits: number }>();
 *   db.elect(users);
 *   checkout(users);
 *   users.set("ada", { visits: 1 });
 *   await transaction.commit();
 *
 *   checkout(users);
 *   users.get("ada")!.visits++; // a local copy, changed in place
 *   await transaction.commit();
 *   assert.ok(users.get("ada")?.visits === 2);
 * });
 * ```
 */
export class PersistentDict<K = unknown, V = unknown> extends Persistent
  implements Iterable<[K, V]> {
  /** Creates a dict holding `entries`, not yet stored anywhere. */
  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super();
    const meta = metaOf(this)!;
    meta.items = new Map();
    if (entries) {
      for (const [key, value] of entries) {
        checkKey(key);
        meta.items.set(key, value);
      }
    }
  }

  /** The number of entries. */
  get size(): number {
    const meta = dictMeta(this);
    const shared = meta.items!;
    const overlay = localOf(meta)?.dict;
    if (!overlay) return shared.size;
    let size = overlay.cleared ? 0 : shared.size;
    if (!overlay.cleared) { for (const key of overlay.deleted) if (shared.has(key)) size--; }
    for (const key of overlay.changed.keys()) {
      if (overlay.cleared || overlay.deleted.has(key) || !shared.has(key)) size++;
    }
    return size;
  }

  /** The value stored under `key`, or `undefined`. */
  get(key: K): V | undefined {
    const meta = dictMeta(this);
    const shared = meta.items!;
    const overlay = localOf(meta)?.dict;
    if (!overlay) return shared.get(key) as V | undefined;
    if (overlay.changed.has(key)) return overlay.changed.get(key) as V;
    if (overlay.cleared || overlay.deleted.has(key)) return undefined;
    return copyOnRead(overlay.changed, key, shared.get(key)) as V | undefined;
  }

  /** Whether there is an entry for `key`. */
  has(key: K): boolean {
    const meta = dictMeta(this);
    const shared = meta.items!;
    const overlay = localOf(meta)?.dict;
    if (!overlay) return shared.has(key);
    return overlay.changed.has(key) ||
      (!overlay.cleared && !overlay.deleted.has(key) && shared.has(key));
  }

  /**
   * Stores `value` under `key`. Needs a checkout.
   *
   * @throws {ReadOnlyError} outside a checkout.
   */
  set(key: K, value: V): this {
    checkKey(key);
    const overlay = writableLocal(dictMeta(this), describeKey(key)).dict!;
    overlay.changed.set(key, value);
    return this;
  }

  /**
   * Deletes the entry for `key`; returns whether there was one. Needs a checkout.
   *
   * @throws {ReadOnlyError} outside a checkout.
   */
  delete(key: K): boolean {
    const meta = dictMeta(this);
    const overlay = writableLocal(meta, describeKey(key)).dict!;
    const had = this.has(key);
    overlay.changed.delete(key);
    if (!overlay.cleared && meta.items!.has(key)) overlay.deleted.add(key);
    return had;
  }

  /**
   * Deletes every entry. Needs a checkout.
   *
   * @throws {ReadOnlyError} outside a checkout.
   */
  clear(): void {
    const overlay = writableLocal(dictMeta(this), "entries").dict!;
    overlay.cleared = true;
    overlay.changed.clear();
    overlay.deleted.clear();
  }

  /** The entries, in insertion order. */
  *entries(): IterableIterator<[K, V]> {
    const meta = dictMeta(this);
    const shared = meta.items!;
    const overlay = localOf(meta)?.dict;
    if (!overlay) {
      yield* shared.entries() as IterableIterator<[K, V]>;
      return;
    }
    if (!overlay.cleared) {
      for (const [key, value] of shared) {
        if (overlay.deleted.has(key)) continue;
        yield [
          key as K,
          (overlay.changed.has(key)
            ? overlay.changed.get(key)
            : copyOnRead(overlay.changed, key, value)) as V,
        ];
      }
    }
    for (const [key, value] of overlay.changed) {
      if (overlay.cleared || overlay.deleted.has(key) || !shared.has(key)) {
        yield [key as K, value as V];
      }
    }
  }

  /** The keys, in insertion order. */
  *keys(): IterableIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  /** The values, in insertion order. */
  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  /** Calls `fn` for each entry, in insertion order. */
  forEach(fn: (value: V, key: K, dict: this) => void): void {
    for (const [key, value] of this.entries()) fn(value, key, this);
  }

  /** The entries, in insertion order. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}

function copyOnRead(changed: Map<unknown, unknown>, key: unknown, value: unknown): unknown {
  if (!isMutable(value)) return value;
  const copy = deepCopy(value);
  changed.set(key, copy);
  return copy;
}

registerClass(Persistent, "Persistent");
registerClass(PersistentDict, "PersistentDict");
