import assert from "node:assert/strict";
import { join } from "node:path";
import { ask, startWorker as startTestWorker } from "../_testing/worker.ts";
import { tempDir } from "../_testing/fs.ts";
import { openPod, SharedPod, type SharedPodHandle } from "./mod.ts";

function startWorker(name: string): Worker {
  return startTestWorker(`./_testdata/${name}`, import.meta.url);
}

Deno.test("the squaring example: 25 keys, 5 Workers, each squares its share", async () => {
  const dir = await tempDir();
  const pod = await SharedPod.open<number | null>(dir, {
    init: Array.from({ length: 25 }, (_, i) => [String(i), null] as [string, null]),
  });
  assert.ok(pod.isOwner);
  const workers = Array.from({ length: 5 }, () => startWorker("square_worker.ts"));
  try {
    await Promise.all(
      workers.map((worker, index) => ask(worker, { handle: pod.handle, index, count: 5 })),
    );
  } finally {
    for (const worker of workers) worker.terminate();
  }
  const expected = Array.from({ length: 25 }, (_, i) => [String(i), i ** 2]);
  assert.deepEqual([...pod], expected);
  await pod.close();
  // Synced on close, in order.
  await using reopened = await openPod<number>(dir);
  assert.deepEqual([...reopened], expected);
});

Deno.test("4 Workers x 1000 increments under withLock total exactly 4000", async () => {
  const dir = await tempDir();
  await using pod = await SharedPod.open<number>(dir, { init: { count: 0 } });
  const workers = Array.from({ length: 4 }, () => startWorker("counter_worker.ts"));
  try {
    await Promise.all(workers.map((worker) => ask(worker, { handle: pod.handle, times: 1000 })));
  } finally {
    for (const worker of workers) worker.terminate();
  }
  assert.equal(pod.get("count"), 4000);
});

interface Reply {
  ok: boolean;
  value?: unknown;
  name?: string;
  message?: string;
}

Deno.test("the mutation proxy from a Worker: each change is one step on the owner", async () => {
  const dir = await tempDir();
  const pod = await SharedPod.open(dir, { maxClients: 2 });
  const worker = startWorker("proxy_worker.ts");
  const step = (name: string) => ask<Reply>(worker, { step: name });
  try {
    await ask(worker, { handle: pod.handle });
    assert.deepEqual(await step("assignObject"), { ok: true, value: { bar: 0, baz: [] } });
    // Visible in the owning thread at once.
    assert.deepEqual(pod.get("foo"), { bar: 0, baz: [] });
    assert.deepEqual(await step("assignNested"), { ok: true, value: { bar: 5, baz: [] } });
    assert.deepEqual(await step("push"), { ok: true, value: 2 });
    assert.deepEqual(pod.get("foo"), { bar: 5, baz: ["fizz", "buzz"] });
    assert.deepEqual(await step("splice"), { ok: true, value: ["fizz"] });
    assert.deepEqual(await step("plusEquals"), { ok: true, value: { bar: 15, baz: ["buzz"] } });
    assert.deepEqual(await step("copy"), { ok: true, value: { bar: 15, baz: ["buzz"] } });
    assert.deepEqual(await step("deleteNested"), { ok: true, value: { baz: ["buzz"] } });
    assert.deepEqual(await step("call"), { ok: true, value: [1, 2, 3] });
    assert.deepEqual(await step("big"), { ok: true, value: 300_000 });
    // Failures are thrown in the Worker, and change nothing.
    for (
      const [name, pattern] of [
        ["missingPath", /no key "nothing"/],
        ["badValue", /BigInt/],
        ["arrayHole", /undefined/],
        ["badMethod", /cannot call toString/],
        ["nonStringKey", /keys must be strings/],
      ] as const
    ) {
      const reply = await step(name);
      assert.equal(reply.ok, false, name);
      assert.equal(reply.name, "TypeError", name);
      assert.match(reply.message!, pattern);
    }
    assert.deepEqual(pod.get("foo"), { baz: ["buzz"] });
    assert.deepEqual(pod.get("list"), [1, 2, 3]);
    const all = await step("readAll");
    assert.deepEqual(all.value, {
      keys: ["foo", "list", "big"],
      size: 3,
      entries: [["foo", { baz: ["buzz"] }], ["list", [1, 2, 3]], ["big", "x".repeat(300_000)]],
    });

    // While the Worker holds the lock, the owner's lock() waits.
    assert.deepEqual(await step("lockAndHold"), { ok: true, value: "locked" });
    let ownerGotLock = false;
    const ownerLock = pod.lock().then(() => (ownerGotLock = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(ownerGotLock, false);
    assert.deepEqual(await step("unlock"), { ok: true, value: "unlocked" });
    await ownerLock;
    assert.ok(ownerGotLock);
    pod.unlock();
    assert.throws(() => pod.unlock(), TypeError);

    assert.deepEqual(await step("close"), { ok: true, value: "closed" });
    const after = await step("afterClose");
    assert.equal(after.ok, false);
    assert.match(after.message!, /closed/);
  } finally {
    worker.terminate();
    await pod.close();
  }
});

Deno.test("owner-side use: copies in, copies out; same-thread connect; sync controls", async () => {
  const dir = await tempDir();
  const pod = await SharedPod.open<{ n: number }>(dir, { syncAt: 1000 });
  const value = { n: 1 };
  pod.set("a", value);
  value.n = 2; // the pod kept a copy
  assert.deepEqual(pod.get("a"), { n: 1 });
  pod.get("a")!.n = 3; // and hands out copies
  assert.deepEqual(pod.get("a"), { n: 1 });
  pod.update({ b: { n: 2 } });
  assert.deepEqual([...pod.keys()], ["a", "b"]);
  assert.deepEqual([...pod.dirty()].sort(), ["a", "b"]);
  const seen: string[] = [];
  pod.forEach((v, k) => seen.push(`${k}${v.n}`));
  assert.deepEqual(seen, ["a1", "b2"]);
  await pod.sync();
  assert.equal(pod.dirty().size, 0);
  pod.hold();
  pod.set.c = { n: 3 };
  pod.markDirty("a");
  await pod.syncKey("a");
  await pod.unhold();
  pod.set.c.n = 30;
  assert.equal(pod.delete("b"), true);
  await pod.revert();
  assert.deepEqual([...pod], [["a", { n: 1 }], ["b", { n: 2 }], ["c", { n: 3 }]]);
  assert.throws(() => pod.set("x", (() => 1) as never), TypeError);

  const again = SharedPod.connect<{ n: number }>(pod.handle);
  assert.ok(!again.isOwner);
  again.set.d = { n: 4 };
  assert.equal(pod.size, 4);
  await again.close();
  assert.throws(() => again.get("a"), TypeError);
  assert.equal(pod.get("d")!.n, 4); // closing a non-owner handle leaves the pod open

  await pod.withLock(async () => {
    await pod.withLock(() => {}); // reentrant
    pod.clear();
  });
  assert.equal(pod.size, 0);
  await pod.close();
  await pod.close();
  assert.throws(() => pod.get("a"), TypeError);
  await assert.rejects(pod.lock(), TypeError);
  assert.throws(() => SharedPod.connect({} as SharedPodHandle), TypeError);
  await assert.rejects(SharedPod.open(dir, { maxClients: 0 }), RangeError);
  await assert.rejects(SharedPod.open(dir, { readOnly: true } as never), TypeError);
});

Deno.test("clients beyond maxClients are refused", async () => {
  await using pod = await SharedPod.open(await tempDir(), { maxClients: 1 });
  const worker = startWorker("proxy_worker.ts");
  const second = startWorker("proxy_worker.ts");
  try {
    await ask(worker, { handle: pod.handle });
    const refused = await ask<Reply>(second, { handle: pod.handle });
    assert.equal(refused.name, "RangeError");
    assert.match(refused.message!, /client slots/);
    assert.deepEqual(await ask(worker, { step: "close" }), { ok: true, value: "closed" });
  } finally {
    worker.terminate();
    second.terminate();
  }
});

Deno.test("a library error reaches a Worker with its class and fields", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod<number>(dir, { fileSize: 1 });
    pod.update({ first: 1, last: 2 });
  }
  // Damage the second shard's records; its header stays readable, so the
  // lazy open succeeds and the damage shows when the shard is read.
  const damaged = join(dir, "shard-000001.json");
  const text = Deno.readTextFileSync(damaged);
  Deno.writeTextFileSync(damaged, text.slice(0, text.indexOf("\n") + 4));
  await using pod = await SharedPod.open(dir);
  const worker = startWorker("proxy_worker.ts");
  try {
    await ask(worker, { handle: pod.handle });
    const reply = await ask<Reply>(worker, { step: "readDamaged" });
    assert.deepEqual(reply.value, {
      corrupt: true,
      storeError: true,
      name: "CorruptFileError",
      path: damaged,
      format: "json",
    });
  } finally {
    worker.terminate();
  }
});
