/**
 * The database: {@linkcode Database}.
 *
 * @module
 */

import {
  assertUsable,
  classNameOf,
  currentTx,
  displayClassName,
  metaOf,
  registerClass,
} from "./_core.ts";
import { Engine } from "./_engine.ts";
import { ObjectGraphError, UnregisteredClassError } from "./errors.ts";
import type { Persistent } from "./persistent.ts";

/** Options of {@linkcode Database.open}. */
export interface DatabaseOptions {
  /**
   * How long to wait for the log's file lock (held by other instances and
   * processes while they append), in milliseconds. Default 30000.
   */
  timeout?: number;
}

/** Options of {@linkcode Database.register}. */
export interface RegisterOptions {
  /** The name objects of the class are stored under. Default: the class's `name`. */
  name?: string;
}

/** A class whose instances are persistent objects. */
export type PersistentClass = abstract new (...args: never[]) => Persistent;

/**
 * An object database over one append-only log file: a graph of
 * {@linkcode Persistent} objects reachable from a root, changed in
 * transactions (see {@linkcode transaction}).
 *
 * Several `Database` instances, in one process or in several, can share a
 * file. Each keeps the whole object graph in memory, and catches up with
 * what the others committed when a transaction begins and whenever it
 * commits; a kernel lock on the log serialises appends. The log survives
 * crashes: every commit is fsynced before it returns, and a torn tail left
 * by a crash is dropped when the file is next opened or written.
 *
 * @typeParam Root The class of the root object.
 *
 * @example The life of a database
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, transaction } from "@x/atomic-store/objectdb";
 *
 * class Settings extends Persistent {
 *   theme = "light";
 * }
 * Database.register(Settings);
 *
 * const path = `${await Deno.makeTempDir()}/app.db`;
 * {
 *   await using db = await Database.open<Settings>(path);
 *   assert.ok(db.root === null && db.size === 0);
 *   const settings = new Settings();
 *   db.elect(settings);
 *   await transaction.commit();
 *
 *   checkout(settings);
 *   settings.theme = "dark";
 *   await transaction.commit();
 *   assert.ok(db.txCount === 2 && Database.oidOf(settings) !== undefined);
 * }
 * await using again = await Database.open<Settings>(path);
 * assert.ok(again.root?.theme === "dark");
 * ```
 */
export class Database<Root extends Persistent = Persistent> implements AsyncDisposable {
  #engine: Engine;

  private constructor(engine: Engine) {
    this.#engine = engine;
    engine.database = this;
  }

  /**
   * Opens the database in the file at `path`, creating the file if it is
   * missing, and loads every object in it. A torn tail (an append a crash
   * interrupted) is truncated.
   *
   * @throws {CorruptFileError} when the file is not a database, or is damaged
   * before its tail; `offset` says where. The file is left untouched.
   * @throws {UnregisteredClassError} when an object's class was not registered.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Database } from "@x/atomic-store/objectdb";
   *
   * await using db = await Database.open(`${await Deno.makeTempDir()}/new.db`);
   * assert.ok(db.size === 0 && db.txCount === 0);
   * ```
   */
  static async open<Root extends Persistent = Persistent>(
    path: string,
    options: DatabaseOptions = {},
  ): Promise<Database<Root>> {
    return new Database<Root>(await Engine.open(path, options));
  }

  /**
   * Registers a subclass of {@linkcode Persistent}, so that its objects can
   * be committed and loaded. `Persistent` and `PersistentDict` need no
   * registration. Registering a class again does nothing; another class
   * under a name already taken is an error.
   *
   * @example
   * ```ts
   * import { Database, Persistent } from "@x/atomic-store/objectdb";
   *
   * class Invoice extends Persistent {
   *   total = 0;
   * }
   * Database.register(Invoice);
   * Database.register(class extends Persistent {}, { name: "Legacy" });
   * ```
   */
  static register(cls: PersistentClass, options: RegisterOptions = {}): void {
    registerClass(cls, options.name ?? cls.name);
  }

  /**
   * The database `object` belongs to: the one it was loaded from, committed
   * to, or elected as root of. `undefined` for new objects and non-persistent
   * values.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Database, Persistent } from "@x/atomic-store/objectdb";
   *
   * await using db = await Database.open(`${await Deno.makeTempDir()}/of.db`);
   * const root = new Persistent();
   * assert.ok(Database.of(root) === undefined);
   * db.elect(root);
   * assert.ok(Database.of(root) === db);
   * ```
   */
  static of(object: object): Database | undefined {
    return metaOf(object)?.engine?.database as Database | undefined;
  }

  /**
   * The id of `object` in its database, assigned when it is first committed;
   * `undefined` before.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Database, Persistent, transaction } from "@x/atomic-store/objectdb";
   *
   * await using db = await Database.open(`${await Deno.makeTempDir()}/oid.db`);
   * const root = new Persistent();
   * db.elect(root);
   * assert.ok(Database.oidOf(root) === undefined);
   * await transaction.commit();
   * assert.ok(typeof Database.oidOf(root) === "number");
   * ```
   */
  static oidOf(object: object): number | undefined {
    return metaOf(object)?.oid;
  }

  /** The absolute path of the log file. */
  get path(): string {
    return this.#engine.path;
  }

  /**
   * The root object, or `null` while there is none. In a transaction that
   * elected a new root, that root.
   */
  get root(): Root | null {
    const election = currentTx().elected.get(this.#engine);
    if (election) return election.meta.proxy as Root;
    return (this.#engine.root?.proxy ?? null) as Root | null;
  }

  /**
   * Makes `object` the root, in the current transaction: the next commit
   * stores it (with everything it refers to) and records the election.
   * `Database.of(object)` is this database from now on, unless the
   * transaction is aborted.
   *
   * @throws {ObjectGraphError} when `object` belongs to another database.
   * @throws {UnregisteredClassError} when its class is not registered.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Database, PersistentDict, transaction } from "@x/atomic-store/objectdb";
   *
   * await using db = await Database.open(`${await Deno.makeTempDir()}/elect.db`);
   * db.elect(new PersistentDict());
   * await transaction.commit();
   * assert.ok(db.root instanceof PersistentDict && db.size === 1);
   * ```
   */
  elect(object: Root): void {
    const engine = this.#engine;
    const meta = metaOf(object);
    if (!meta) throw new TypeError("elect() takes a persistent object");
    if (meta.engine && meta.engine !== engine) {
      throw new ObjectGraphError(engine.path, object, "belongs to another database");
    }
    if (classNameOf(meta) === undefined) {
      throw new UnregisteredClassError(
        engine.path,
        displayClassName(meta),
        "cannot elect the root",
      );
    }
    const tx = currentTx();
    assertUsable(tx);
    const previous = tx.elected.get(engine);
    if (previous?.attached && previous.meta !== meta && previous.meta.oid === undefined) {
      previous.meta.engine = undefined;
    }
    const attached = meta.engine === undefined;
    if (attached) meta.engine = engine;
    meta.fresh = false;
    tx.elected.set(engine, {
      meta,
      base: previous?.base ?? engine.rootVersion,
      attached: attached || (previous?.meta === meta && previous.attached),
    });
  }

  /** The number of objects stored (as of the last catch-up). */
  get size(): number {
    return this.#engine.objects.size;
  }

  /**
   * The number of transactions in the log, failed ones included (as of the
   * last catch-up).
   */
  get txCount(): number {
    return this.#engine.txCount;
  }

  /**
   * Writes the current state of this database (every object reachable from
   * the root, with its stored files) into `target`, an empty database, as a
   * single transaction. Opening the snapshot replays one record instead of
   * the whole history.
   *
   * @example Compact a log
   * ```ts
   * import assert from "node:assert/strict";
   * import { checkout, Database, Persistent, transaction } from "@x/atomic-store/objectdb";
   *
   * const dir = await Deno.makeTempDir();
   * await using db = await Database.open(`${dir}/history.db`);
   * const root = new Persistent() as Persistent & { n?: number };
   * db.elect(root);
   * for (let n = 0; n < 5; n++) {
   *   checkout(root);
   *   root.n = n;
   *   await transaction.commit();
   * }
   * await using compact = await Database.open(`${dir}/compact.db`);
   * await db.snapshot(compact);
   * assert.ok(compact.txCount === 1);
   * assert.ok((compact.root as Persistent & { n?: number }).n === 4);
   * ```
   */
  snapshot(target: Database<Persistent>): Promise<void> {
    return this.#engine.snapshotTo(target.#engine);
  }

  /**
   * Waits for commits in progress, then closes the file. Objects stay
   * readable; commits to this database fail from now on.
   *
   * @example
   * ```ts
   * import { Database } from "@x/atomic-store/objectdb";
   *
   * const db = await Database.open(`${await Deno.makeTempDir()}/close.db`);
   * await db.close();
   * ```
   */
  close(): Promise<void> {
    return this.#engine.close();
  }

  /** Closes the database, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
