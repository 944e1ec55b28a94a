/**
 * Benchmarks of `store.commit()` against the same work done by hand, and
 * against lowdb. Run with `deno bench -A store/store_bench.ts`; every group
 * has a baseline, so deno prints "x faster/slower than" ratios within one
 * run.
 *
 * - "small value": `commit()` of a small JSON value against the bare
 *   durable atomic write of the same bytes (temporary file, write, fsync,
 *   close, rename, directory fsync, by hand with Deno APIs).
 * - "10 MB value": `commit()` of a value whose JSON is about 10 MB against
 *   `JSON.stringify` plus one plain (non-atomic, non-durable) write.
 *
 * lowdb (`JSONFile` + `write()`) writes a temporary file and renames it,
 * but never calls fsync: its writes are atomic against crashes of the
 * process, not durable against power loss, so it does less work than a
 * commit.
 *
 * Deno awaits a benchmark only when `fn` is an `async` function, so every
 * asynchronous one here is declared `async`.
 *
 * @module
 */

import { join } from "node:path";
import { Low } from "lowdb";
import { JSONFile } from "lowdb/node";
import { open } from "./mod.ts";
import { jsonCodec } from "../_internal/codec.ts";
import { bareDurableWrite } from "../_testing/bench.ts";

const root = await Deno.makeTempDir({ prefix: "store_bench_" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(root, { recursive: true });
  } catch { /* already gone */ }
});

const utf8 = new TextEncoder();

// --- A small value -----------------------------------------------------------

interface Settings {
  theme: string;
  recent: string[];
  window: { width: number; height: number };
  runs: number;
}

const small: Settings = {
  theme: "dark",
  recent: ["/home/me/a.txt", "/home/me/b.txt", "/home/me/notes.md"],
  window: { width: 1280, height: 800 },
  runs: 0,
};
const smallBytes = utf8.encode(`${JSON.stringify(small, null, 2)}\n`);

const smallStore = await open(join(root, "small-store.json"), { default: small });
const lockedStore = await open(join(root, "small-locked.json"), { default: small, lock: true });
const smallLow = new Low<Settings>(new JSONFile(join(root, "small-low.json")), small);

// Many iterations, so that the fsync latency spikes of a shared disk
// average out instead of landing on one benchmark.
const SMALL_RUNS = { n: 3000, warmup: 300 };

Deno.bench({
  name: "bare durable sequence, by hand",
  group: "small value",
  ...SMALL_RUNS,
  baseline: true,
  fn: async () => await bareDurableWrite(join(root, "small-bare.json"), smallBytes),
});

Deno.bench({
  name: "store.commit()",
  group: "small value",
  ...SMALL_RUNS,
  fn: async () => {
    smallStore.value.runs++;
    await smallStore.commit();
  },
});

Deno.bench({
  name: "store.with() with lock: true (lock, re-read, commit, unlock)",
  group: "small value",
  ...SMALL_RUNS,
  fn: async () => await lockedStore.with((s) => void s.value.runs++),
});

Deno.bench({
  name: "lowdb JSONFile write() (no fsync)",
  group: "small value",
  ...SMALL_RUNS,
  fn: async () => {
    smallLow.data.runs++;
    await smallLow.write();
  },
});

// --- A 10 MB value -----------------------------------------------------------

interface Row {
  id: number;
  name: string;
  email: string;
  tags: string[];
  score: number;
  active: boolean;
}

const rows: Row[] = Array.from({ length: 50_000 }, (_, id) => ({
  id,
  name: `user number ${id}`,
  email: `user${id}@example.com`,
  tags: ["alpha", "beta", `group-${id % 17}`],
  score: (id * 7919) % 10007 / 100,
  active: id % 3 !== 0,
}));
const big = { rows };
const bigSize = JSON.stringify(big, null, 2).length;
console.log(`10 MB group: the value is ${(bigSize / 1e6).toFixed(1)} MB of JSON`);

// Only the value in memory is shared; each store has its own file.
const bigStore = await open(join(root, "big-store.json"), { default: null as unknown });
bigStore.value = big;
const bigLow = new Low<unknown>(new JSONFile(join(root, "big-low.json")), null);
bigLow.data = big;

Deno.bench({
  name: "JSON.stringify + one plain write",
  group: "10 MB value",
  baseline: true,
  fn: async () => {
    await Deno.writeFile(join(root, "big-plain.json"), utf8.encode(JSON.stringify(big, null, 2)));
  },
});

Deno.bench({
  name: "JSON.stringify alone",
  group: "10 MB value",
  fn: () => void JSON.stringify(big, null, 2),
});

// The encoder a JSON store uses: JSON.stringify with a replacer that
// refuses values JSON would silently change, which is most of the gap
// between a commit and the hand-made sequence below.
const storeEncoder = jsonCodec();
Deno.bench({
  name: "the store's JSON encoder alone",
  group: "10 MB value",
  fn: () => void storeEncoder.encode(big),
});

Deno.bench({
  name: "JSON.stringify + bare durable sequence, by hand",
  group: "10 MB value",
  fn: async () =>
    await bareDurableWrite(join(root, "big-bare.json"), utf8.encode(JSON.stringify(big, null, 2))),
});

Deno.bench({
  name: "store.commit()",
  group: "10 MB value",
  fn: async () => await bigStore.commit(),
});

Deno.bench({
  name: "lowdb JSONFile write() (no fsync)",
  group: "10 MB value",
  fn: async () => await bigLow.write(),
});
