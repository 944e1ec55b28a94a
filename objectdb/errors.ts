/**
 * The errors of the object database. All of them extend
 * {@linkcode AtomicStoreError}; `path` is the database file the error is
 * about (empty when the object involved belongs to no database yet).
 *
 * @module
 */

import { AtomicStoreError } from "../_internal/errors.ts";

/**
 * A property of a persistent object was set, defined or deleted outside a
 * checkout. Persistent objects are read-only until {@linkcode checkout} makes
 * them writable in the current transaction.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Persistent, ReadOnlyError } from "@x/atomic-store/objectdb";
 *
 * const note = new Persistent() as Persistent & { text?: string };
 * try {
 *   note.text = "hello";
 * } catch (error) {
 *   assert.ok(error instanceof ReadOnlyError);
 * }
 * checkout(note);
 * note.text = "hello"; // fine now
 * ```
 */
export class ReadOnlyError extends AtomicStoreError {
  /** The property that could not be changed. */
  readonly property: string;

  /** Creates an error about `property` of an object stored in `path` (or `""`). */
  constructor(path: string, property: string) {
    super(
      path,
      `cannot change "${property}" of a persistent object in read-only mode; ` +
        "call checkout(object) first",
    );
    this.property = property;
  }
}

/**
 * Base class of {@linkcode WriteConflictError} and
 * {@linkcode ReadConflictError}: another transaction committed a change to
 * an object this transaction changed too. The failed transaction is recorded
 * in the log; call `transaction.abort()` and try again.
 *
 * @example Retry on any conflict
 * ```ts
 * import {
 *   checkout,
 *   ConflictError,
 *   Database,
 *   Persistent,
 *   transaction,
 * } from "@x/atomic-store/objectdb";
 *
 * await using db = await Database.open(`${await Deno.makeTempDir()}/conflicts.db`);
 * await transaction.run(async () => {
 *   const root = new Persistent() as Persistent & { hits?: number };
 *   db.elect(root);
 *   await transaction.commit();
 *   for (let attempt = 0; attempt < 3; attempt++) {
 *     checkout(root);
 *     root.hits = (root.hits ?? 0) + 1;
 *     try {
 *       await transaction.commit();
 *       break;
 *     } catch (error) {
 *       if (!(error instanceof ConflictError)) throw error;
 *       transaction.abort();
 *     }
 *   }
 * });
 * ```
 */
export class ConflictError extends AtomicStoreError {
  /** The id of the object both transactions changed. */
  readonly oid: number;

  /** Creates an error about object `oid` of the database at `path`. */
  constructor(path: string, oid: number, message: string) {
    super(path, message);
    this.oid = oid;
  }
}

/**
 * Another transaction of the same {@linkcode Database} instance committed a
 * change to an object this transaction changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, transaction, WriteConflictError } from "@x/atomic-store/objectdb";
 *
 * await using db = await Database.open(`${await Deno.makeTempDir()}/write.db`);
 * const root = new Persistent() as Persistent & { owner?: string };
 * db.elect(root);
 * await transaction.commit();
 *
 * checkout(root);
 * root.owner = "main";
 * await transaction.run(async () => {
 *   checkout(root);
 *   root.owner = "worker";
 *   await transaction.commit(); // first one wins
 * });
 * try {
 *   await transaction.commit();
 * } catch (error) {
 *   assert.ok(error instanceof WriteConflictError);
 *   transaction.abort();
 * }
 * assert.ok(root.owner === "worker");
 * ```
 */
export class WriteConflictError extends ConflictError {
  /** Creates an error about object `oid` of the database at `path`. */
  constructor(path: string, oid: number) {
    super(
      path,
      oid,
      `write conflict on object ${oid} of "${path}": another transaction of this database ` +
        "committed a change to it first; call transaction.abort() and retry",
    );
  }
}

/**
 * Another database instance (another {@linkcode Database} object, or another
 * process) committed a change to an object this transaction changed; the
 * commit found it when catching up with the log.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, ReadConflictError, transaction } from "@x/atomic-store/objectdb";
 *
 * const path = `${await Deno.makeTempDir()}/read.db`;
 * await using a = await Database.open(path);
 * const root = new Persistent() as Persistent & { step?: number };
 * a.elect(root);
 * await transaction.commit();
 * await using b = await Database.open(path);
 *
 * checkout(root);
 * root.step = 1;
 * await transaction.run(async () => {
 *   const other = b.root as Persistent & { step?: number };
 *   checkout(other);
 *   other.step = 2;
 *   await transaction.commit();
 * });
 * try {
 *   await transaction.commit();
 * } catch (error) {
 *   assert.ok(error instanceof ReadConflictError);
 *   transaction.abort();
 * }
 * assert.ok(root.step === 2);
 * ```
 */
export class ReadConflictError extends ConflictError {
  /** Creates an error about object `oid` of the database at `path`. */
  constructor(path: string, oid: number) {
    super(
      path,
      oid,
      `read conflict on object ${oid} of "${path}": another database instance committed a ` +
        "change to it; call transaction.abort() and retry",
    );
  }
}

/**
 * A checked-out object is not connected to the object graph of any
 * database (nothing committed refers to it and it is not a root), or an
 * object refers to an object of another database. Nothing was written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, ObjectGraphError, Persistent, transaction } from "@x/atomic-store/objectdb";
 *
 * await transaction.run(async () => {
 *   const orphan = new Persistent();
 *   checkout(orphan);
 *   try {
 *     await transaction.commit();
 *   } catch (error) {
 *     assert.ok(error instanceof ObjectGraphError);
 *     transaction.abort();
 *   }
 * });
 * ```
 */
export class ObjectGraphError extends AtomicStoreError {
  /** The object that is not connected. */
  readonly object: object;

  /** Creates an error about `object`, for the database at `path` (or `""`). */
  constructor(path: string, object: object, detail = "not connected to the object graph") {
    super(path, `${describe(object)} ${detail}`);
    this.object = object;
  }
}

/**
 * The current transaction cannot go on: its commit failed (a conflict, an
 * I/O error, an object that cannot be stored). `cause` holds the original
 * error. Call `transaction.abort()` (or `transaction.begin()`) first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   checkout,
 *   ObjectGraphError,
 *   Persistent,
 *   transaction,
 *   TransactionFailedError,
 * } from "@x/atomic-store/objectdb";
 *
 * await transaction.run(async () => {
 *   checkout(new Persistent());
 *   await transaction.commit().catch((error) => assert.ok(error instanceof ObjectGraphError));
 *   try {
 *     checkout(new Persistent());
 *   } catch (error) {
 *     assert.ok(error instanceof TransactionFailedError);
 *   }
 *   transaction.abort();
 * });
 * ```
 */
export class TransactionFailedError extends AtomicStoreError {
  /** Creates an error for a transaction on `path` (or `""`) that failed with `cause`. */
  constructor(path: string, options: ErrorOptions & { detail?: string }) {
    const why = options.detail ??
      (options.cause instanceof Error ? options.cause.message : String(options.cause));
    super(
      path,
      `the transaction failed (${why}); call transaction.abort() before going on`,
      options,
    );
  }
}

/**
 * A persistent object's class was not registered with `Database.register`:
 * it cannot be committed, or an object of it was found in a log and cannot
 * be loaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Database, Persistent, UnregisteredClassError } from "@x/atomic-store/objectdb";
 *
 * class Draft extends Persistent {}
 * await using db = await Database.open(`${await Deno.makeTempDir()}/draft.db`);
 * try {
 *   db.elect(new Draft());
 * } catch (error) {
 *   assert.ok(error instanceof UnregisteredClassError && error.className === "Draft");
 * }
 * ```
 */
export class UnregisteredClassError extends AtomicStoreError {
  /** The name the class is (or would be) stored under. */
  readonly className: string;

  /** Creates an error about `className` in the database at `path`. */
  constructor(path: string, className: string, detail: string) {
    super(
      path,
      `${detail}: the class "${className}" is not registered; call Database.register(${
        className || "TheClass"
      }) first`,
    );
    this.className = className;
  }
}

function describe(object: object): string {
  const name = (object as { constructor?: { name?: string } }).constructor?.name || "object";
  return `a ${name}`;
}
