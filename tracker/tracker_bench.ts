/**
 * A progress tracker against SQLite (`node:sqlite`: one table with a
 * status column, WAL, synchronous=FULL, one transaction per 1000 rows) on
 * one million tasks:
 *
 * ```sh
 * node_modules/.bin/deno bench -A tracker/tracker_bench.ts
 * ```
 *
 * - `addMany`: add 1M tasks and make them durable (tracker: `addMany`,
 *   then `sync`; SQLite: batched INSERTs).
 * - `pass`: one full pass over the tasks, counting a try and then marking
 *   the task done, and make that durable (tracker: `tryKeys()` with
 *   `markDone`, then `sync`; SQLite: keys read in pages of 1000 by rowid,
 *   two UPDATEs per task, by rowid, one transaction per page). The
 *   tracker's pass runs twice: on a tracker whose entries were all read
 *   before the timing starts (the pass alone), and from `openTracker` on,
 *   reading the shard files as the pass reaches them (what a restarted
 *   job does; SQLite's pass opens its database too).
 * - `reopen`: open the store again and know the counts (tracker:
 *   `openTracker`, which reads the header of each shard file, where the
 *   counts are; SQLite: open, then one aggregate query). For scale, two
 *   more benches read every entry: every row of the SQLite table, and
 *   every entry of the tracker.
 *
 * Each iteration takes seconds, so the benches ask for `n: 1` (Deno still
 * runs one warm-up iteration first), or `n: 3` for the reopen benches. Each iteration starts from a
 * copy of a store prepared once, outside the timing. Before the benches,
 * a one-off measurement prints the peak memory (`Deno.memoryUsage()`) of
 * each side, each in a fresh process that adds the tasks, makes one pass
 * and reopens. `TRACKER_BENCH_COUNT=100000` runs a smaller workload.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { writeChildScript } from "../_testing/child.ts";
import { openTracker, type ProgressTracker } from "./mod.ts";

const COUNT = Number(Deno.env.get("TRACKER_BENCH_COUNT") ?? 1_000_000);
const BATCH = 1000;
const LABEL = COUNT >= 1_000_000 ? `${COUNT / 1_000_000}M` : `${COUNT / 1000}k`;

const keys = Array.from({ length: COUNT }, (_, i) => `https://example.com/page/${i}`);
const root = await Deno.makeTempDir({ prefix: "tracker-bench-" });
let counter = 0;
const fresh = (name: string) => join(root, `${name}-${counter++}`);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(root, { recursive: true });
  } catch { /* already gone */ }
});

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

// ---------------------------------------------------------------------------
// The tracker

async function trackerAddMany(dir: string): Promise<void> {
  await using tracker = await openTracker(dir);
  tracker.addMany(keys);
  await tracker.sync();
}

async function trackerPass(dir: string): Promise<void> {
  await using tracker = await openTracker(dir);
  await pass(tracker);
}

async function pass(tracker: ProgressTracker): Promise<void> {
  for (const key of tracker.tryKeys()) tracker.markDone(key);
  await tracker.sync();
  if (tracker.numDone() !== COUNT) throw new Error(`pass: ${tracker.numDone()} done`);
}

async function trackerReopen(dir: string): Promise<void> {
  await using tracker = await openTracker(dir);
  if (tracker.size !== COUNT) throw new Error(`reopen: ${tracker.size} tasks`);
  if (tracker.numDone() !== COUNT) throw new Error(`reopen: ${tracker.numDone()} done`);
}

async function trackerReopenAll(dir: string): Promise<void> {
  await using tracker = await openTracker(dir);
  let count = 0;
  for (const _ of tracker.keys()) count++;
  if (count !== COUNT) throw new Error(`reopen: ${count} tasks read`);
}

// ---------------------------------------------------------------------------
// SQLite

function sqliteOpen(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  return db;
}

function sqliteAddMany(path: string): void {
  const db = sqliteOpen(path);
  db.exec(
    "CREATE TABLE tasks (key TEXT PRIMARY KEY, done INTEGER NOT NULL DEFAULT 0, " +
      "tries INTEGER NOT NULL DEFAULT 0, aborted INTEGER NOT NULL DEFAULT 0)",
  );
  const insert = db.prepare("INSERT INTO tasks (key) VALUES (?)");
  for (let start = 0; start < COUNT; start += BATCH) {
    db.exec("BEGIN");
    const end = Math.min(COUNT, start + BATCH);
    for (let i = start; i < end; i++) insert.run(keys[i]);
    db.exec("COMMIT");
  }
  db.close();
}

function sqlitePass(path: string): void {
  const db = sqliteOpen(path);
  const page = db.prepare(
    "SELECT rowid AS id, key FROM tasks WHERE rowid > ? AND done = 0 AND aborted = 0 " +
      "ORDER BY rowid LIMIT ?",
  );
  const claim = db.prepare("UPDATE tasks SET tries = tries + 1 WHERE rowid = ?");
  const markDone = db.prepare("UPDATE tasks SET done = 1 WHERE rowid = ?");
  let after = 0;
  for (;;) {
    const rows = page.all(after, BATCH) as { id: number; key: string }[];
    if (rows.length === 0) break;
    db.exec("BEGIN");
    for (const row of rows) {
      claim.run(row.id);
      markDone.run(row.id);
    }
    db.exec("COMMIT");
    after = rows[rows.length - 1].id;
  }
  const { done } = db.prepare("SELECT SUM(done) AS done FROM tasks").get() as { done: number };
  if (done !== COUNT) throw new Error(`sqlite pass: ${done} done`);
  db.close();
}

function sqliteReopen(path: string): void {
  const db = new DatabaseSync(path);
  const counts = db.prepare(
    "SELECT COUNT(*) AS size, SUM(done) AS done, SUM(tries > 0) AS tried, " +
      "SUM(aborted) AS aborted FROM tasks",
  ).get() as { size: number };
  if (counts.size !== COUNT) throw new Error(`sqlite reopen: ${counts.size} tasks`);
  db.close();
}

function sqliteReopenAll(path: string): void {
  const db = new DatabaseSync(path);
  const rows = db.prepare("SELECT key, done, tries, aborted FROM tasks ORDER BY rowid").all();
  if (rows.length !== COUNT) throw new Error(`sqlite reopen: ${rows.length} tasks`);
  db.close();
}

function copySqlite(from: string, to: string): void {
  Deno.copyFileSync(from, to);
}

// ---------------------------------------------------------------------------
// Templates, made once: a fresh store with every task added, and one with
// every task done (for the reopen benches).

const trackerFresh = fresh("tracker-template");
await trackerAddMany(trackerFresh);
const trackerDone = fresh("tracker-done");
await copyDir(trackerFresh, trackerDone);
await trackerPass(trackerDone);

const sqliteFresh = `${fresh("sqlite-template")}.db`;
sqliteAddMany(sqliteFresh); // closing checkpoints the WAL into the file
const sqliteDone = `${fresh("sqlite-done")}.db`;
copySqlite(sqliteFresh, sqliteDone);
sqlitePass(sqliteDone);

// ---------------------------------------------------------------------------
// Peak memory, measured once per side, each in a fresh process that adds
// the tasks, makes one pass, and reopens.

const MEMORY_CHILD = `
const [kind, path, count] = Deno.args;
const COUNT = Number(count);
const keys = Array.from({ length: COUNT }, (_, i) => "https://example.com/page/" + i);
const base = Deno.memoryUsage();
let rss = base.rss, heap = base.heapUsed;
const sample = () => {
  const now = Deno.memoryUsage();
  rss = Math.max(rss, now.rss);
  heap = Math.max(heap, now.heapUsed);
};
if (kind === "reopen") {
  // A restarted job: open a finished 1M-task store and read its counts.
  const { openTracker } = await import("$ROOT/tracker/mod.ts");
  await using tracker = await openTracker(path);
  tracker.numDone();
  sample();
} else if (kind === "tracker") {
  const { openTracker } = await import("$ROOT/tracker/mod.ts");
  {
    await using tracker = await openTracker(path);
    tracker.addMany(keys);
    sample();
    await tracker.sync();
    sample();
    let n = 0;
    for (const key of tracker.tryKeys()) {
      tracker.markDone(key);
      if (++n % 100000 === 0) sample();
    }
    await tracker.sync();
    sample();
  }
  await using tracker = await openTracker(path);
  sample();
} else {
  const { DatabaseSync } = await import("node:sqlite");
  let db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  db.exec("CREATE TABLE tasks (key TEXT PRIMARY KEY, done INTEGER NOT NULL DEFAULT 0, tries INTEGER NOT NULL DEFAULT 0, aborted INTEGER NOT NULL DEFAULT 0)");
  const insert = db.prepare("INSERT INTO tasks (key) VALUES (?)");
  for (let start = 0; start < COUNT; start += 1000) {
    db.exec("BEGIN");
    for (let i = start; i < Math.min(COUNT, start + 1000); i++) insert.run(keys[i]);
    db.exec("COMMIT");
  }
  sample();
  const page = db.prepare("SELECT rowid AS id FROM tasks WHERE rowid > ? AND done = 0 AND aborted = 0 ORDER BY rowid LIMIT 1000");
  const claim = db.prepare("UPDATE tasks SET tries = tries + 1 WHERE rowid = ?");
  const done = db.prepare("UPDATE tasks SET done = 1 WHERE rowid = ?");
  for (let after = 0, n = 0;;) {
    const rows = page.all(after);
    if (rows.length === 0) break;
    db.exec("BEGIN");
    for (const row of rows) {
      claim.run(row.id);
      done.run(row.id);
      if (++n % 100000 === 0) sample();
    }
    db.exec("COMMIT");
    after = rows[rows.length - 1].id;
  }
  db.close();
  sample();
  db = new DatabaseSync(path);
  db.prepare("SELECT COUNT(*), SUM(done), SUM(tries > 0), SUM(aborted) FROM tasks").get();
  sample();
  db.close();
}
console.log(JSON.stringify({ base: base.rss, rss, heap, baseHeap: base.heapUsed }));
`;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

async function peakMemory(kind: "tracker" | "sqlite" | "reopen"): Promise<string> {
  using script = writeChildScript(MEMORY_CHILD);
  let path = kind === "tracker" ? fresh("tracker-memory") : `${fresh("sqlite-memory")}.db`;
  if (kind === "reopen") {
    path = fresh("tracker-reopen-memory");
    await copyDir(trackerDone, path);
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", script.path, kind, path, String(COUNT)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const peak = JSON.parse(new TextDecoder().decode(output.stdout));
  return `peak RSS ${mib(peak.rss)} (${mib(peak.rss - peak.base)} above the process with ` +
    `its keys), peak JS heap ${mib(peak.heap)} (+${mib(peak.heap - peak.baseHeap)})`;
}

console.log(`peak memory, ${LABEL} tasks (add, one pass, reopen), each in a fresh process:`);
console.log(`  tracker: ${await peakMemory("tracker")}`);
console.log(`  sqlite:  ${await peakMemory("sqlite")}`);
console.log(`a restart: open a finished tracker and read its counts, in a fresh process:`);
console.log(`  tracker: ${await peakMemory("reopen")}`);

// ---------------------------------------------------------------------------
// The benches

const SLOW = { n: 1, warmup: 0 };
/** Reopening takes about a second: a few more iterations. */
const REOPEN = { n: 3, warmup: 1 };

Deno.bench({
  name: `sqlite: insert ${LABEL} tasks, batched`,
  group: "addMany",
  baseline: true,
  ...SLOW,
  fn(b) {
    const path = `${fresh("sqlite-add")}.db`;
    b.start();
    sqliteAddMany(path);
    b.end();
  },
});

Deno.bench({
  name: `tracker: addMany ${LABEL} + sync`,
  group: "addMany",
  ...SLOW,
  async fn(b) {
    const dir = fresh("tracker-add");
    b.start();
    await trackerAddMany(dir);
    b.end();
  },
});

Deno.bench({
  name: `sqlite: one pass over ${LABEL} (claim, mark done)`,
  group: "pass",
  baseline: true,
  ...SLOW,
  fn(b) {
    const path = `${fresh("sqlite-pass")}.db`;
    copySqlite(sqliteFresh, path);
    b.start();
    sqlitePass(path);
    b.end();
  },
});

Deno.bench({
  name: `tracker: tryKeys + markDone over ${LABEL} + sync`,
  group: "pass",
  ...SLOW,
  async fn(b) {
    const dir = fresh("tracker-pass");
    await copyDir(trackerFresh, dir);
    // Time the pass alone: open, and read every entry, first.
    await using tracker = await openTracker(dir);
    for (const _ of tracker.keys());
    b.start();
    await pass(tracker);
    b.end();
  },
});

Deno.bench({
  name: `tracker: openTracker, then the same pass, reading shards as it goes`,
  group: "pass",
  ...SLOW,
  async fn(b) {
    const dir = fresh("tracker-pass");
    await copyDir(trackerFresh, dir);
    b.start();
    await trackerPass(dir);
    b.end();
  },
});

Deno.bench({
  name: `sqlite: reopen ${LABEL} + counts`,
  group: "reopen",
  baseline: true,
  ...REOPEN,
  fn() {
    sqliteReopen(sqliteDone);
  },
});

Deno.bench({
  name: `tracker: reopen ${LABEL} + counts (shard headers)`,
  group: "reopen",
  ...REOPEN,
  async fn() {
    await trackerReopen(trackerDone);
  },
});

Deno.bench({
  name: `sqlite: reopen ${LABEL} + read every row`,
  group: "reopen",
  ...REOPEN,
  fn() {
    sqliteReopenAll(sqliteDone);
  },
});

Deno.bench({
  name: `tracker: reopen ${LABEL} + read every entry`,
  group: "reopen",
  ...REOPEN,
  async fn() {
    await trackerReopenAll(trackerDone);
  },
});
