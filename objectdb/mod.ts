/**
 * A persistent object graph in one crash-safe, append-only file: objects
 * reachable from a root, changed in optimistic transactions, shared by
 * several instances and processes.
 *
 * - {@linkcode Database}: `Database.open(path)` loads (or creates) a
 *   database; `elect` a root, read `root`, `size`, `txCount`; `snapshot`
 *   compacts the history into a new file.
 * - {@linkcode Persistent}: the base class of stored objects. They are
 *   read-only until {@linkcode checkout} gives the current transaction a
 *   writable deep copy.
 * - {@linkcode transaction}: `begin`, `commit`, `abort`, and `run`, which
 *   runs a function in its own transaction context (contexts follow async
 *   calls). Concurrent commits are written together: one append, one fsync.
 * - {@linkcode PersistentDict}: a persistent `Map` that writes only the
 *   entries a transaction changed.
 * - {@linkcode PersistentFile} / {@linkcode PersistentStream}: store bytes,
 *   streams or files; read them back as a file or by iterating.
 * - Errors: {@linkcode ReadOnlyError}, {@linkcode WriteConflictError} and
 *   {@linkcode ReadConflictError} (both {@linkcode ConflictError}s),
 *   {@linkcode ObjectGraphError}, {@linkcode TransactionFailedError},
 *   {@linkcode UnregisteredClassError}, and `CorruptFileError` for a
 *   damaged file.
 *
 * The file starts with a 16-byte header; then come records, each framed
 * with its length, a CRC-32C of the header, a CRC-32C of the body, and a
 * commit marker. A transaction is one record (a MessagePack body); stored
 * files are chunk records before it; failed transactions leave an empty
 * record. On open, a torn tail after the last complete record is dropped;
 * damage before it is a `CorruptFileError` with the byte offset, and
 * nothing is truncated.
 *
 * @example A root, a change, a conflict
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   checkout,
 *   Database,
 *   Persistent,
 *   transaction,
 *   WriteConflictError,
 * } from "@x/atomic-store/objectdb";
 *
 * class Account extends Persistent {
 *   balance = 0;
 * }
 * Database.register(Account);
 *
 * await using db = await Database.open<Account>(`${await Deno.makeTempDir()}/bank.db`);
 * const account = new Account();
 * db.elect(account);
 * await transaction.commit();
 *
 * // Two contexts change the same object; the first commit wins.
 * const results = await Promise.allSettled([10, 20].map((amount) =>
 *   transaction.run(async () => {
 *     checkout(account);
 *     account.balance += amount;
 *     await transaction.commit();
 *   })
 * ));
 * assert.ok(results[0].status === "fulfilled");
 * assert.ok(results[1].status === "rejected" && results[1].reason instanceof WriteConflictError);
 * assert.ok(account.balance === 10 && db.txCount === 3);
 * ```
 *
 * @module
 */

export {
  Database,
  type DatabaseOptions,
  type PersistentClass,
  type RegisterOptions,
} from "./database.ts";
export { checkout, Persistent, PersistentDict } from "./persistent.ts";
export { transaction, type TransactionManager } from "./transaction.ts";
export { PersistentFile, type PersistentFileSource, PersistentStream } from "./file.ts";
export {
  ConflictError,
  ObjectGraphError,
  ReadConflictError,
  ReadOnlyError,
  TransactionFailedError,
  UnregisteredClassError,
  WriteConflictError,
} from "./errors.ts";
export {
  AtomicStoreError,
  CorruptFileError,
  FileLockError,
  FileLockTimeoutError,
} from "../_internal/errors.ts";
