/**
 * Benchmarks of the `objectdb/` module. Run with
 * `deno bench -A objectdb/objectdb_bench.ts`; every group has a baseline, so
 * deno prints "x faster/slower than" ratios within one run.
 *
 * - "commit one small object": checkout, change and commit one object,
 *   against appending and fdatasyncing the very same record bytes by hand,
 *   and against an SQLite update of one row (`node:sqlite`, WAL,
 *   `synchronous=FULL`).
 * - "32 commits": 32 contexts committing disjoint objects at once (group
 *   commit: one append and one fdatasync for all that queue together)
 *   against one context committing 32 times in a row.
 * - "open": opening a log of 100,000 transactions, and opening its snapshot.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { checkout, Database, Persistent, PersistentDict, transaction } from "./mod.ts";

type Counter = Persistent & { n: number; label: string };
type Root = PersistentDict<number, Counter>;

const dir = await Deno.makeTempDir({ prefix: "objectdb_bench_" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
});

/** A database whose root maps 0..count-1 to counters. */
async function counterDatabase(name: string, count: number): Promise<Database<Root>> {
  const db = await Database.open<Root>(`${dir}/${name}.db`);
  await transaction.run(async () => {
    const root = new PersistentDict<number, Counter>();
    db.elect(root);
    checkout(root);
    for (let i = 0; i < count; i++) {
      const counter = new Persistent() as Counter;
      checkout(counter);
      counter.n = 0;
      counter.label = `counter ${i}`;
      root.set(i, counter);
    }
    await transaction.commit();
  });
  return db;
}

async function increment(counter: Counter): Promise<void> {
  checkout(counter);
  counter.n++;
  await transaction.commit();
}

// ---------------------------------------------------------------------------
// One small commit

const single = await counterDatabase("single", 1);
const singleCounter = single.root!.get(0)!;
// The bytes one such commit appends: the last record of the log.
const before = (await Deno.stat(single.path)).size;
await transaction.run(() => increment(singleCounter));
const recordBytes = (await Deno.readFile(single.path)).slice(before);

const bare = await Deno.open(`${dir}/bare.log`, { append: true, create: true });

const sqlite = new DatabaseSync(`${dir}/sqlite.db`);
sqlite.exec("PRAGMA journal_mode=WAL");
sqlite.exec("PRAGMA synchronous=FULL");
sqlite.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER, label TEXT)");
sqlite.exec("INSERT INTO counters VALUES (0, 0, 'counter 0')");
const update = sqlite.prepare("UPDATE counters SET n = n + 1 WHERE id = ?");

Deno.bench(`bare append + fdatasync of the same ${recordBytes.length} bytes`, {
  group: "commit one small object",
  baseline: true,
}, async () => {
  await bare.write(recordBytes);
  await bare.syncData();
});

Deno.bench("objectdb: checkout, change, commit", {
  group: "commit one small object",
}, async () => {
  await transaction.run(() => increment(singleCounter));
});

Deno.bench("node:sqlite: UPDATE one row (WAL, synchronous=FULL)", {
  group: "commit one small object",
}, () => {
  update.run(0);
});

// ---------------------------------------------------------------------------
// Group commit

const CONTEXTS = 32;
const group = await counterDatabase("group", CONTEXTS);
const groupCounters = Array.from({ length: CONTEXTS }, (_, i) => group.root!.get(i)!);

Deno.bench("1 context, 32 commits in a row", {
  group: "32 commits",
  baseline: true,
}, async () => {
  await transaction.run(async () => {
    for (const counter of groupCounters) await increment(counter);
  });
});

Deno.bench("32 contexts committing at once (group commit)", {
  group: "32 commits",
}, async () => {
  await Promise.all(groupCounters.map((counter) => transaction.run(() => increment(counter))));
});

// ---------------------------------------------------------------------------
// Open time

const TRANSACTIONS = 100_000;
const WRITERS = 100;
const history = await counterDatabase("history", 1000);
{
  const counters = [...history.root!.values()];
  const started = performance.now();
  let done = 1; // the transaction that created the counters
  await Promise.all(Array.from({ length: WRITERS }, (_, writer) =>
    transaction.run(async () => {
      for (let i = writer; done < TRANSACTIONS; i += WRITERS) {
        done++;
        await increment(counters[i % counters.length]);
      }
    })));
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `built a log of ${history.txCount} transactions (${
      ((await Deno.stat(history.path)).size / 2 ** 20).toFixed(1)
    } MiB) in ${seconds.toFixed(1)} s`,
  );
}
const compact = await Database.open(`${dir}/compact.db`);
await history.snapshot(compact);
console.log(
  `its snapshot: ${compact.txCount} transaction, ${compact.size} objects, ${
    ((await Deno.stat(compact.path)).size / 1024).toFixed(0)
  } KiB`,
);
await Promise.all([history.close(), compact.close()]);

Deno.bench(`open a log of ${TRANSACTIONS} transactions`, {
  group: "open",
  baseline: true,
  n: 5,
  warmup: 1,
}, async () => {
  const db = await Database.open(history.path);
  if (db.txCount !== TRANSACTIONS) throw new Error(`read ${db.txCount} transactions`);
  await db.close();
});

Deno.bench("open its snapshot", { group: "open", n: 20, warmup: 2 }, async () => {
  const db = await Database.open(compact.path);
  if (db.size !== 1001) throw new Error(`read ${db.size} objects`);
  await db.close();
});
