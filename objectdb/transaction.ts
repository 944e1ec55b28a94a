/**
 * Transactions: {@linkcode transaction}.
 *
 * @module
 */

import {
  assertUsable,
  currentContext,
  type Election,
  type LocalState,
  metaOf,
  type ObjectMeta,
  releaseTx,
  runInNewContext,
  Transaction,
} from "./_core.ts";
import { type Engine, openEnginesList } from "./_engine.ts";
import { ObjectGraphError } from "./errors.ts";
import { forEachReference } from "./_wire.ts";

/** The operations of {@linkcode transaction}. */
export interface TransactionManager {
  /**
   * Starts a new transaction in the current context, dropping what the
   * previous one checked out, and lets every open database catch up with
   * transactions other instances (or processes) committed.
   */
  begin(): Promise<void>;
  /**
   * Commits the current transaction: writes every object it checked out
   * (and new objects they refer to) to their databases, then starts a new
   * transaction. Does nothing when nothing was checked out or elected.
   *
   * If it fails, nothing of it is visible: checked-out objects show the
   * latest committed state again, conflicts are recorded in the log (and
   * counted by `txCount`), and the transaction must be aborted before the
   * context can go on. A transaction spanning several databases commits to
   * each in turn: atomicity holds per database.
   *
   * @throws {WriteConflictError} or {@linkcode ReadConflictError} when another transaction changed an object first.
   * @throws {ObjectGraphError} when a checked-out object is not connected to a database.
   * @throws {TransactionFailedError} when the log could not be written, or the transaction had failed already.
   */
  commit(): Promise<void>;
  /** Drops the current transaction's changes and starts a new one. */
  abort(): void;
  /**
   * Runs `fn` in a new, independent transaction context (what a thread is
   * to code using threads), which follows `fn`'s async calls. Whatever the
   * context's transaction still holds when `fn` settles is aborted. It does
   * not catch up: call `begin()` inside to see other instances' commits.
   */
  run<T>(fn: () => T | Promise<T>): Promise<T>;
}

function renew(tx: Transaction): void {
  releaseTx(tx);
  const context = currentContext();
  if (context.tx === tx) context.tx = new Transaction();
}

function fail(tx: Transaction, error: unknown, path: string): void {
  releaseTx(tx);
  tx.failed = error instanceof Error ? error : new Error(String(error));
  tx.failedPath = path;
}

function stateValues(meta: ObjectMeta, tx: Transaction): unknown[] {
  const local = tx.locals.get(meta);
  const values: unknown[] = [...(local ? local.attrs : meta.attrs).values()];
  if (meta.items) {
    values.push(meta.items);
    if (local?.dict) values.push(local.dict.changed);
  }
  return values;
}

/**
 * Assigns each checked-out object that belongs to no database yet to the
 * database whose objects refer to it, or throws {@linkcode ObjectGraphError}.
 */
function assignNewObjects(
  tx: Transaction,
  groups: Map<Engine, ObjectMeta[]>,
  unattached: ObjectMeta[],
): void {
  const owner = new Map<ObjectMeta, Engine>();
  for (const [engine, metas] of groups) {
    const work: ObjectMeta[] = [...metas];
    const election = tx.elected.get(engine);
    if (election) work.push(election.meta);
    while (work.length > 0) {
      const meta = work.pop()!;
      for (const value of stateValues(meta, tx)) {
        forEachReference(value, (object) => {
          const found = metaOf(object)!;
          if (found.oid !== undefined || (found.engine && found.engine !== engine)) return;
          const previous = owner.get(found);
          if (previous === engine) return;
          if (previous) {
            throw new ObjectGraphError(
              engine.path,
              object,
              "is referred to by objects of two databases",
            );
          }
          owner.set(found, engine);
          work.push(found);
        });
      }
    }
  }
  for (const meta of unattached) {
    const engine = owner.get(meta);
    if (!engine) {
      const path = groups.size > 0 ? groups.keys().next().value!.path : "";
      throw new ObjectGraphError(path, meta.proxy, "not connected to the object graph");
    }
    groups.get(engine)!.push(meta);
  }
}

function commitTo(engine: Engine, tx: Transaction, metas: ObjectMeta[], election?: Election) {
  const locals = new Map<ObjectMeta, LocalState>();
  for (const meta of metas) {
    const local = tx.locals.get(meta);
    if (local) locals.set(meta, local);
  }
  return new Promise<void>((resolve, reject) => {
    engine.commit({ tx, metas, locals, election, resolve, reject });
  });
}

async function commitSequentially(tx: Transaction, groups: Map<Engine, ObjectMeta[]>) {
  for (const [engine, metas] of groups) {
    try {
      await commitTo(engine, tx, metas, tx.elected.get(engine));
    } catch (error) {
      fail(tx, error, engine.path);
      throw error;
    }
  }
  renew(tx);
}

/**
 * The transaction API. Each async context (see
 * {@linkcode TransactionManager.run}; code outside any `run` shares one
 * default context) has a current transaction, which {@linkcode checkout}
 * and `Database.elect` join, and which {@linkcode TransactionManager.commit}
 * writes.
 *
 * @example Concurrent transactions on disjoint objects
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkout, Database, Persistent, PersistentDict, transaction } from "@x/atomic-store/objectdb";
 *
 * type Counter = Persistent & { count: number };
 * await using db = await Database.open<PersistentDict<string, Counter>>(
 *   `${await Deno.makeTempDir()}/counters.db`,
 * );
 * const counters = new PersistentDict<string, Counter>();
 * db.elect(counters);
 * checkout(counters);
 * for (const name of ["a", "b", "c"]) {
 *   const counter = new Persistent() as Counter;
 *   checkout(counter);
 *   counter.count = 0;
 *   counters.set(name, counter);
 * }
 * await transaction.commit();
 *
 * // Three contexts commit at once; their records share one write and one fsync.
 * await Promise.all(["a", "b", "c"].map((name) =>
 *   transaction.run(async () => {
 *     const counter = counters.get(name)!;
 *     checkout(counter);
 *     counter.count++;
 *     await transaction.commit();
 *   })
 * ));
 * assert.ok(counters.get("b")!.count === 1);
 * ```
 */
export const transaction: TransactionManager = {
  async begin(): Promise<void> {
    const context = currentContext();
    releaseTx(context.tx);
    context.tx = new Transaction();
    await Promise.all(openEnginesList().map((engine) => engine.catchUp()));
  },

  commit(): Promise<void> {
    const tx = currentContext().tx;
    try {
      assertUsable(tx);
    } catch (error) {
      return Promise.reject(error);
    }
    const groups = new Map<Engine, ObjectMeta[]>();
    const unattached: ObjectMeta[] = [];
    for (const meta of tx.locals.keys()) {
      const engine = meta.engine as Engine | undefined;
      if (!engine) {
        unattached.push(meta);
        continue;
      }
      let group = groups.get(engine);
      if (!group) groups.set(engine, group = []);
      group.push(meta);
    }
    for (const engine of tx.elected.keys()) {
      if (!groups.has(engine as Engine)) groups.set(engine as Engine, []);
    }
    if (unattached.length > 0) {
      try {
        assignNewObjects(tx, groups, unattached);
      } catch (error) {
        const path = (error as ObjectGraphError).path ?? "";
        fail(tx, error, path);
        return Promise.reject(error);
      }
    }
    if (groups.size === 0) {
      renew(tx);
      return Promise.resolve();
    }
    if (groups.size > 1) return commitSequentially(tx, groups);
    const [engine, metas] = groups.entries().next().value!;
    return commitTo(engine, tx, metas, tx.elected.get(engine)).then(
      () => renew(tx),
      (error) => {
        fail(tx, error, engine.path);
        throw error;
      },
    );
  },

  abort(): void {
    const context = currentContext();
    releaseTx(context.tx);
    context.tx = new Transaction();
  },

  run<T>(fn: () => T | Promise<T>): Promise<T> {
    return runInNewContext(fn);
  },
};
