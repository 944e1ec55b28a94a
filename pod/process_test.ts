import assert from "node:assert/strict";
import { tempDir } from "../_testing/fs.ts";
import { join } from "node:path";
import {
  crashRounds,
  READY,
  runConcurrently,
  spawnDeno,
  writeChildScript,
} from "../_testing/child.ts";
import { shardFiles } from "../_testing/pod.ts";
import { openPod, PodLockedError } from "./mod.ts";

/** Every record of every shard file, by file. */
function readShards(dir: string): Map<string, [string, number, unknown][]> {
  const out = new Map<string, [string, number, unknown][]>();
  for (const name of shardFiles(dir)) {
    out.set(name, JSON.parse(Deno.readTextFileSync(join(dir, name))).slice(1));
  }
  return out;
}

const KEYS = 1000;

// Each round sets every key to the round number, deletes and re-inserts one
// key, and syncs; the parent kills it at a random moment.
const CRASH_WRITER = `
import { openPod } from "$ROOT/pod/mod.ts";
const pod = await openPod(Deno.args[0], { fileSize: 10, syncAt: Infinity, handleSignals: false });
let round = 0;
for (const value of pod.values()) round = Math.max(round, value);
if (pod.size === 0) for (let i = 0; i < ${KEYS}; i++) pod.set("k" + i, 0);
await pod.sync();
console.log("${READY}");
for (;;) {
  round++;
  for (const key of [...pod.keys()]) pod.set(key, round);
  const moved = "k" + (round % ${KEYS});
  pod.delete(moved);
  pod.set(moved, round);
  await pod.sync();
}
`;

Deno.test("crash rounds: a writer killed mid-sync leaves a pod that opens, whole shard by shard", async () => {
  const dir = await tempDir();
  const lastValue = new Map<string, number>();
  let torn = 0;
  const report = await crashRounds({
    source: CRASH_WRITER,
    rounds: 50,
    args: () => [dir],
    minDelay: 20,
    maxDelay: 150,
    verify: async (round) => {
      const files = readShards(dir);
      // Every key is in exactly one file, and each file is the state of one sync.
      const owner = new Map<string, string>();
      const values = new Set<number>();
      for (const [name, records] of files) {
        const inFile = new Set(records.map((record) => record[2] as number));
        assert.equal(inFile.size, 1, `round ${round}: ${name} mixes values ${[...inFile]}`);
        for (const [key, , value] of records) {
          assert.ok(!owner.has(key), `round ${round}: ${key} in ${owner.get(key)} and ${name}`);
          owner.set(key, name);
          values.add(value as number);
          // Nothing synced is lost: no key goes back to an older value.
          const before = lastValue.get(key) ?? 0;
          assert.ok(
            (value as number) >= before,
            `round ${round}: ${key} went ${before} -> ${value}`,
          );
          lastValue.set(key, value as number);
        }
      }
      assert.equal(owner.size, KEYS, `round ${round}: every key is there`);
      if (values.size > 1) torn++;
      // The pod opens, with the keys in sequence-number order.
      await using pod = await openPod<number>(dir);
      assert.equal(pod.size, KEYS);
      const bySeq = [...files.values()].flat().sort((a, b) => a[1] - b[1]).map((r) => r[0]);
      assert.deepEqual([...pod.keys()], bySeq);
      const leftovers = Array.from(Deno.readDirSync(dir), (e) => e.name).filter((name) =>
        name.endsWith(".tmp") || name.endsWith(".old")
      );
      assert.deepEqual(leftovers, [], "temporary files are removed on open");
    },
  });
  assert.equal(report.killed + report.finished, 50);
  assert.ok(report.killed > 40, `killed ${report.killed} of 50`);
  console.log(`killed ${report.killed} times; ${torn} times the files held more than one sync`);
});

async function untilReady(child: Deno.ChildProcess): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes(READY)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child ended before ${READY}: ${seen}`);
    seen += value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
}

const SIGNAL_CHILD = `
import { openPod } from "$ROOT/pod/mod.ts";
const pod = await openPod(Deno.args[0], { syncAt: Infinity });
for (let i = 0; i < 100; i++) pod.set("k" + i, { i });
console.log("${READY}");
setInterval(() => {}, 1000);
`;

for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`${signal}: the pod syncs and the process exits with ${code}`, async () => {
    const dir = await tempDir();
    using script = writeChildScript(SIGNAL_CHILD);
    const child = spawnDeno(script.path, [dir]);
    const stderr = new Response(child.stderr).text();
    await untilReady(child);
    assert.deepEqual(shardFiles(dir), [], "nothing synced before the signal");
    child.kill(signal);
    const status = await child.status;
    assert.equal(status.code, code, await stderr);
    await stderr;
    await using pod = await openPod<{ i: number }>(dir);
    assert.equal(pod.size, 100);
    assert.deepEqual(pod.get("k99"), { i: 99 });
  });
}

Deno.test("normal exit and an uncaught exception both sync", async () => {
  const exits = {
    normal: "",
    exit: "Deno.exit(3);",
    uncaught: 'setTimeout(() => { throw new Error("boom"); }, 0);',
    rejection: 'Promise.reject(new Error("boom"));',
  };
  const dirs = Object.fromEntries(
    await Promise.all(Object.keys(exits).map(async (name) => [name, await tempDir()])),
  );
  const source = `
import { openPod } from "$ROOT/pod/mod.ts";
const exits = ${JSON.stringify(exits)};
const [dir, how] = Deno.args;
const pod = await openPod(dir, { syncAt: Infinity });
pod.update({ a: [1], b: [2] });
pod.get("a").push(10);
eval(exits[how]);
`;
  using script = writeChildScript(source);
  for (const how of Object.keys(exits)) {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", script.path, dirs[how], how],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.equal(code, { normal: 0, exit: 3, uncaught: 1, rejection: 1 }[how]);
    await using pod = await openPod<number[]>(dirs[how]);
    assert.deepEqual([...pod.entries()], [["a", [1, 10]], ["b", [2]]], how);
  }
});

Deno.test("another process gets PodLockedError, or a read-only view", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir);
  pod.update({ a: 1, b: 2 });
  await pod.sync();
  pod.set("unsynced", 3);
  const [out] = await runConcurrently(
    `
import { openPod, PodLockedError } from "$ROOT/pod/mod.ts";

const [dir] = Deno.args;
const result = {};
try {
  await openPod(dir, { lockTimeout: 50 });
  result.opened = true;
} catch (error) {
  result.locked = error instanceof PodLockedError;
  result.path = error.path;
  result.message = error.message;
}
const view = await openPod(dir, { readOnly: true });
result.entries = [...view.entries()];
try { view.set("x", 1); } catch (error) { result.readOnlySet = error.name; }
await view.close();
console.log(JSON.stringify(result));
`,
    1,
    () => [dir],
  );
  const result = JSON.parse(out);
  assert.equal(result.opened, undefined);
  assert.equal(result.locked, true);
  assert.equal(result.path, dir);
  assert.match(result.message, /readOnly/);
  assert.deepEqual(result.entries, [["a", 1], ["b", 2]]);
  assert.equal(result.readOnlySet, "TypeError");
  // In this process, the error type is the same one.
  assert.ok(new PodLockedError(dir) instanceof Error);
});

Deno.test("a Worker of this process that opens the pod directly gets PodLockedError", async () => {
  const dir = await tempDir();
  await using _pod = await openPod(dir);
  const worker = new Worker(new URL("./_testdata/open_worker.ts", import.meta.url).href, {
    type: "module",
  });
  try {
    const reply = new Promise<{ name: string; path: string }>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
    });
    worker.postMessage(dir);
    const { name, path } = await reply;
    assert.equal(name, "PodLockedError");
    assert.equal(path, dir);
  } finally {
    worker.terminate();
  }
});
