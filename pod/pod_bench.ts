/**
 * Pods against SQLite (`node:sqlite`, one table, WAL, one transaction per
 * 1000 rows) and Deno KV (1000-mutation atomic batches), on 100k small
 * objects:
 *
 * ```sh
 * node_modules/.bin/deno bench -A --unstable-kv pod/pod_bench.ts
 * ```
 *
 * Without `--unstable-kv` the Deno KV benches are skipped. Before the
 * benches run, a one-off measurement prints the bytes a sync writes after
 * one of 100k keys changed, and the memory the 100k workload takes.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { type FileHandle, type FileSystem, fs, setFileSystem } from "../_internal/fs.ts";
import { openPod } from "./mod.ts";

const COUNT = 100_000;
const BATCH = 1000;

interface Item {
  id: number;
  name: string;
  tags: string[];
  done: boolean;
}

const keys = Array.from({ length: COUNT }, (_, i) => `key-${i}`);
const items: Item[] = keys.map((_, i) => ({
  id: i,
  name: `item ${i}`,
  tags: ["a", "b"],
  done: i % 2 === 0,
}));

const root = await Deno.makeTempDir({ prefix: "pod-bench-" });
let counter = 0;
const fresh = (name: string) => join(root, `${name}-${counter++}`);

// Deno KV is unstable: reach it without needing its types at check time.
interface KvEntry {
  value: unknown;
}
interface KvAtomic {
  set(key: unknown[], value: unknown): KvAtomic;
  commit(): Promise<{ ok: boolean }>;
}
interface Kv {
  atomic(): KvAtomic;
  getMany(keys: unknown[][]): Promise<KvEntry[]>;
  list(selector: { prefix: unknown[] }): AsyncIterable<KvEntry & { key: unknown[] }>;
  close(): void;
}
const openKv = (Deno as unknown as { openKv?: (path: string) => Promise<Kv> }).openKv;
const noKv = openKv === undefined;
if (noKv) console.log("Deno KV benches skipped: run with --unstable-kv to include them.");

// ---------------------------------------------------------------------------
// Writers

async function fillPod(path: string): Promise<void> {
  const pod = await openPod<Item>(path);
  for (let i = 0; i < COUNT; i++) pod.set(keys[i], items[i]);
  await pod.sync();
  await pod.close();
}

function fillSqlite(path: string): void {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
  const insert = db.prepare("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)");
  for (let start = 0; start < COUNT; start += BATCH) {
    db.exec("BEGIN");
    for (let i = start; i < start + BATCH; i++) insert.run(keys[i], JSON.stringify(items[i]));
    db.exec("COMMIT");
  }
  db.close();
}

async function fillKv(path: string): Promise<void> {
  const kv = await openKv!(path);
  for (let start = 0; start < COUNT; start += BATCH) {
    const batch = kv.atomic();
    for (let i = start; i < start + BATCH; i++) batch.set(["items", keys[i]], items[i]);
    const result = await batch.commit();
    if (!result.ok) throw new Error("Deno KV commit failed");
  }
  kv.close();
}

// ---------------------------------------------------------------------------
// One-off measurements: bytes written for one changed key, memory.

class ByteCounter {
  bytes = 0;
  files = new Set<string>();

  install(): () => void {
    const base = fs;
    const wrap = (handle: FileHandle): FileHandle =>
      new Proxy(handle, {
        get: (target, key) => {
          const value = Reflect.get(target, key);
          if (key === "write" || key === "writeSync") {
            return (data: Uint8Array) => {
              this.bytes += data.byteLength;
              this.files.add(handle.path);
              return (value as (data: Uint8Array) => unknown).call(target, data);
            };
          }
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    const counting: FileSystem = {
      ...base,
      open: async (path, options) => wrap(await base.open(path, options)),
      openSync: (path, options) => wrap(base.openSync(path, options)),
    };
    return setFileSystem(counting);
  }
}

{
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const before = Deno.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  const sample = () => {
    const now = Deno.memoryUsage();
    peakRss = Math.max(peakRss, now.rss);
    peakHeap = Math.max(peakHeap, now.heapUsed);
  };
  const path = fresh("measure");
  const pod = await openPod<Item>(path);
  for (let i = 0; i < COUNT; i++) {
    pod.set(keys[i], { ...items[i] });
    if (i % 10_000 === 0) sample();
  }
  sample();
  await pod.sync();
  sample();
  let total = 0;
  for (const key of keys) total += pod.get(key)!.id;
  await pod.sync(); // compares the values handed out: nothing changed, nothing written
  sample();
  const files = [...Deno.readDirSync(path)].filter((entry) => entry.name.startsWith("shard-"));
  const podBytes = files.reduce(
    (sum, entry) => sum + Deno.statSync(join(path, entry.name)).size,
    0,
  );

  pod.get("key-54321")!.name = "changed";
  const counter = new ByteCounter();
  const restore = counter.install();
  try {
    await pod.sync();
  } finally {
    restore();
  }
  await pod.close();
  sample();
  console.log(
    `pod: a sync after changing 1 of ${COUNT} keys wrote ${counter.bytes} bytes to ` +
      `${counter.files.size} file (the pod: ${podBytes} bytes in ${files.length} shard files)`,
  );
  console.log(
    `pod: 100k workload (set 100k fresh objects, sync, get all, sync, close): ` +
      `peak rss ${mib(peakRss)} (+${mib(peakRss - before.rss)} over the process before it), ` +
      `peak heap used ${mib(peakHeap)} (+${mib(peakHeap - before.heapUsed)}); checksum ${total}`,
  );
}

// ---------------------------------------------------------------------------
// set 100k + sync

const heavy = { n: 8, warmup: 2 };
/** More iterations for the two sides of the "3x SQLite" target: single runs vary a lot here. */
const writes = { n: 30, warmup: 3 };

Deno.bench({
  name: "sqlite: insert 100k, commit every 1000 (WAL)",
  group: "set 100k + sync",
  baseline: true,
  ...writes,
  fn(b) {
    const path = fresh("sqlite");
    b.start();
    fillSqlite(path);
    b.end();
  },
});

Deno.bench({
  name: "pod: set 100k + sync()",
  group: "set 100k + sync",
  ...writes,
  async fn(b) {
    const path = fresh("pod");
    b.start();
    await fillPod(path);
    b.end();
  },
});

Deno.bench({
  name: "deno kv: set 100k in atomic batches of 1000",
  group: "set 100k + sync",
  ignore: noKv,
  ...heavy,
  async fn(b) {
    const path = fresh("kv");
    b.start();
    await fillKv(path);
    b.end();
  },
});

// ---------------------------------------------------------------------------
// get 100k (and reopen), on stores filled once

const sqlitePath = fresh("sqlite-read");
fillSqlite(sqlitePath);
const podPath = fresh("pod-read");
await fillPod(podPath);
const kvPath = fresh("kv-read");
if (!noKv) await fillKv(kvPath);

const readDb = new DatabaseSync(sqlitePath);
const select = readDb.prepare("SELECT v FROM kv WHERE k = ?");
const readPod = await openPod<Item>(podPath);
const readOnlyPod = await openPod<Item>(podPath, { readOnly: true });
const readKv = noKv ? undefined : await openKv!(kvPath);

Deno.bench({
  name: "sqlite: get 100k by key (+ JSON.parse)",
  group: "get 100k",
  baseline: true,
  ...heavy,
  fn() {
    let sum = 0;
    for (const key of keys) sum += JSON.parse((select.get(key) as { v: string }).v).id;
    if (sum <= 0) throw new Error("unexpected sum");
  },
});

Deno.bench({
  name: "pod: get 100k (mark-on-read, then a sync that compares)",
  group: "get 100k",
  ...heavy,
  async fn() {
    let sum = 0;
    for (const key of keys) sum += readPod.get(key)!.id;
    await readPod.sync();
    if (sum <= 0) throw new Error("unexpected sum");
  },
});

Deno.bench({
  name: "pod: get 100k (read-only handle: no marking)",
  group: "get 100k",
  ...heavy,
  fn() {
    let sum = 0;
    for (const key of keys) sum += readOnlyPod.get(key)!.id;
    if (sum <= 0) throw new Error("unexpected sum");
  },
});

Deno.bench({
  name: "deno kv: get 100k (getMany, 10 keys a call)",
  group: "get 100k",
  ignore: noKv,
  ...heavy,
  async fn() {
    let sum = 0;
    for (let start = 0; start < COUNT; start += 10) {
      const found = await readKv!.getMany(keys.slice(start, start + 10).map((k) => ["items", k]));
      for (const entry of found) sum += (entry.value as Item).id;
    }
    if (sum <= 0) throw new Error("unexpected sum");
  },
});

// ---------------------------------------------------------------------------
// reopen: from closed files to every entry in memory (and, for scale, to
// knowing the size: SQLite's count, the pod's shard headers)

Deno.bench({
  name: "sqlite: open + load all 100k rows into a Map",
  group: "reopen 100k",
  baseline: true,
  ...heavy,
  fn() {
    const db = new DatabaseSync(sqlitePath);
    const map = new Map<string, Item>();
    for (const row of db.prepare("SELECT k, v FROM kv ORDER BY rowid").all()) {
      map.set(row.k as string, JSON.parse(row.v as string));
    }
    db.close();
    if (map.size !== COUNT) throw new Error("rows missing");
  },
});

Deno.bench({
  name: "sqlite: open + count (for reference: nothing loaded)",
  group: "reopen 100k",
  ...heavy,
  fn() {
    const db = new DatabaseSync(sqlitePath);
    db.prepare("SELECT count(*) FROM kv").get();
    db.close();
  },
});

const closedPodPath = fresh("pod-reopen");
await fillPod(closedPodPath);

Deno.bench({
  name: "pod: openPod + read every entry (keys()) + close",
  group: "reopen 100k",
  ...heavy,
  async fn() {
    const pod = await openPod<Item>(closedPodPath);
    let count = 0;
    for (const _ of pod.keys()) count++;
    if (count !== COUNT) throw new Error("entries missing");
    await pod.close();
  },
});

Deno.bench({
  name: "pod: openPod with lazy: false (reads and checks every shard) + close",
  group: "reopen 100k",
  ...heavy,
  async fn() {
    const pod = await openPod<Item>(closedPodPath, { lazy: false });
    if (pod.size !== COUNT) throw new Error("entries missing");
    await pod.close();
  },
});

Deno.bench({
  name: "pod: openPod (shard headers only) + size + close",
  group: "reopen 100k",
  ...heavy,
  async fn() {
    const pod = await openPod<Item>(closedPodPath);
    if (pod.size !== COUNT) throw new Error("entries missing");
    await pod.close();
  },
});

Deno.bench({
  name: "deno kv: open + list all 100k into a Map",
  group: "reopen 100k",
  ignore: noKv,
  ...heavy,
  async fn() {
    const kv = await openKv!(kvPath);
    const map = new Map<string, unknown>();
    for await (const entry of kv.list({ prefix: ["items"] })) {
      map.set(entry.key[1] as string, entry.value);
    }
    kv.close();
    if (map.size !== COUNT) throw new Error("entries missing");
  },
});

globalThis.addEventListener("unload", () => {
  readDb.close();
  readKv?.close();
  try {
    Deno.removeSync(root, { recursive: true });
  } catch { /* best effort */ }
});
