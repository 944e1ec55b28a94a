import assert from "node:assert/strict";
import { ask, startWorker as startTestWorker } from "../_testing/worker.ts";
import { tempDir } from "../_testing/fs.ts";
import { SharedPod } from "../pod/mod.ts";
import {
  DuplicateKeyError,
  openTracker,
  SharedProgressTracker,
  SharedTracker,
  type SharedTrackerHandle,
  UnknownKeyError,
} from "./mod.ts";

function startWorker(name: string): Worker {
  return startTestWorker(`./_testdata/${name}`, import.meta.url);
}

/** Asserts that no task was handed out twice for the same try. */
function assertNoRepeats(reports: string[][]): void {
  const all = reports.flat();
  const unique = new Set(all);
  assert.equal(unique.size, all.length, "a task was handed out twice for the same try");
}

Deno.test("two Workers iterating tryEntries: no task twice for one try, discovered tasks included, all done", async () => {
  const dir = await tempDir();
  const shared = await SharedProgressTracker.open<{ by: string }>(dir, {
    init: Array.from({ length: 400 }, (_, i) => [`t${i}`, {}] as [string, object]),
  });
  assert.ok(shared.isOwner);
  assert.ok(shared instanceof SharedPod);
  const reports: string[][] = [];
  // Rounds until nothing is left: tasks whose first try fails may be passed
  // over by both Workers in one round.
  for (let round = 0; round < 5 && shared.numDone() < shared.size; round++) {
    const workers = [startWorker("try_worker.ts"), startWorker("try_worker.ts")];
    try {
      reports.push(
        ...await Promise.all(
          workers.map((worker, index) =>
            ask<string[]>(worker, { handle: shared.handle, name: `w${index}`, discover: 400 })
          ),
        ),
      );
    } finally {
      for (const worker of workers) worker.terminate();
    }
  }
  assertNoRepeats(reports);
  assert.equal(shared.size, 800);
  assert.equal(shared.numDone(), 800);
  const byWorker = new Map<string, number>();
  for (const [key, entry] of shared) {
    assert.ok(entry._done, key);
    assert.equal(entry._tries, Number(key.slice(1)) % 7 === 0 ? 2 : 1, key);
    byWorker.set(entry.by!, (byWorker.get(entry.by!) ?? 0) + 1);
  }
  assert.ok(byWorker.get("w0")! > 0 && byWorker.get("w1")! > 0, "both Workers did some work");
  await shared.close();
  await using reopened = await openTracker(dir);
  assert.equal(reopened.numDone(), 800);
});

Deno.test("two Workers running run() on one shared tracker share the work", async () => {
  const dir = await tempDir();
  await using shared = await SharedTracker.open<{ by: string }>(dir, { maxTries: 3 });
  shared.addMany(Array.from({ length: 300 }, (_, i) => `t${i}`));
  const reports: string[][] = [];
  const summaries: { done: number; failed: number }[] = [];
  for (let round = 0; round < 3 && shared.numDone() < shared.size; round++) {
    const workers = [startWorker("run_worker.ts"), startWorker("run_worker.ts")];
    try {
      const replies = await Promise.all(
        workers.map((worker, index) =>
          ask<{ summary: { done: number; failed: number }; seen: string[] }>(worker, {
            handle: shared.handle,
            name: `w${index}`,
          })
        ),
      );
      for (const reply of replies) {
        reports.push(reply.seen);
        summaries.push(reply.summary);
      }
    } finally {
      for (const worker of workers) worker.terminate();
    }
  }
  assertNoRepeats(reports);
  assert.equal(shared.numDone(), 300);
  assert.equal(summaries.reduce((sum, s) => sum + s.done, 0), 300);
  assert.equal(summaries.reduce((sum, s) => sum + s.failed, 0), 60);
  for (const [key, entry] of shared) {
    assert.equal(entry._tries, Number(key.slice(1)) % 5 === 0 ? 2 : 1, key);
    assert.equal(entry._error, undefined);
    assert.match(entry.by!, /^w[01]$/);
  }
});

Deno.test("a shared tracker opened lazily over many shards: Workers run every task once", async () => {
  const dir = await tempDir();
  {
    await using tracker = await openTracker(dir, { fileSize: 20 });
    tracker.addMany(Array.from({ length: 600 }, (_, i) => `t${i}`));
    for (let i = 0; i < 600; i += 3) tracker.markDone(`t${i}`); // 200 done before
  }
  await using shared = await SharedTracker.open<{ by: string }>(dir, { maxTries: 3 });
  assert.equal(shared.size, 600); // from the shard headers
  assert.equal(shared.numDone(), 200);
  const reports: string[][] = [];
  for (let round = 0; round < 3 && shared.numDone() < shared.size; round++) {
    const workers = [startWorker("run_worker.ts"), startWorker("run_worker.ts")];
    try {
      const replies = await Promise.all(
        workers.map((worker, index) =>
          ask<{ seen: string[] }>(worker, { handle: shared.handle, name: `w${index}` })
        ),
      );
      for (const reply of replies) reports.push(reply.seen);
    } finally {
      for (const worker of workers) worker.terminate();
    }
  }
  assertNoRepeats(reports);
  assert.ok(!reports.flat().some((seen) => Number(seen.slice(1, seen.indexOf("#"))) % 3 === 0));
  assert.equal(shared.numDone(), 600);
  await shared.close();
  await using reopened = await openTracker(dir);
  assert.equal(reopened.numDone(), 600);
  assert.deepEqual([...reopened.todoKeys()], []);
});

interface Reply {
  ok: boolean;
  value?: unknown;
  name?: string;
  message?: string;
  duplicate?: boolean;
  unknown?: boolean;
  key?: string;
}

Deno.test("the tracker API from a Worker: state changes, typed errors, checks, batched iteration", async () => {
  const dir = await tempDir();
  const shared = await SharedProgressTracker.open<{ title: string }>(dir, { maxClients: 2 });
  const worker = startWorker("api_worker.ts");
  const step = (name: string) => ask<Reply>(worker, { step: name });
  try {
    await ask(worker, { handle: shared.handle });
    assert.deepEqual(await step("add"), { ok: true, value: 1 });
    const duplicate = await step("duplicate");
    assert.deepEqual([duplicate.name, duplicate.duplicate, duplicate.key], [
      "DuplicateKeyError",
      true,
      "a",
    ]);
    assert.equal((await step("duplicateMany")).duplicate, true);
    assert.equal(shared.has("x"), false);
    const unknown = await step("unknown");
    assert.deepEqual([unknown.name, unknown.unknown, unknown.key], [
      "UnknownKeyError",
      true,
      "nope",
    ]);
    assert.deepEqual(await step("states"), {
      ok: true,
      value: {
        done: true,
        aborted: true,
        tries: 1,
        unknown: [false, 0],
        counts: [1, 1, 1],
        percent: ["25.00 %", "25.0 %", "25 %"],
        fractions: [0.25, 0.25, 0.25],
        gates: [false, false, true],
        adds: [true, true, 1],
      },
    });
    assert.equal(shared.numTried(), 2);
    const set = await step("setProxy");
    assert.deepEqual(set.value, [
      { _done: true, _tries: 0, _aborted: false, title: "A" },
      { _done: false, _tries: 0, _aborted: false, title: "G" },
    ]);
    for (const name of ["badState", "badSet"]) {
      const reply = await step(name);
      assert.equal(reply.name, "TypeError", name);
      assert.match(reply.message!, /_done must be a boolean|_tries must be/);
    }
    assert.equal(shared.isDone("a"), true);
    assert.equal(shared.has("h"), false);
    const todo = await step("todo");
    assert.deepEqual(todo.value, {
      keys: 605,
      values: 605,
      entries: [["c", { _done: false, _tries: 1, _aborted: false }], [
        "d",
        { _done: false, _tries: 0, _aborted: false },
      ]],
    });
    assert.deepEqual(await step("breakOut"), { ok: true, value: "c" });
    assert.equal(shared.tries("c"), 2);
    // The early end let go of "c": the owner gets it first.
    assert.equal(shared.tryKeys().next().value, "c");
    assert.deepEqual(await step("close"), { ok: true, value: "closed" });
  } finally {
    worker.terminate();
    await shared.close();
  }
  await using reopened = await openTracker<{ title: string }>(dir);
  assert.equal(reopened.get("a")!.title, "A");
  assert.equal(reopened.numDone(), 1);
  assert.equal(reopened.numAborted(), 1);
});

Deno.test("owner-side use: errors, same-thread connect, close ends iterations, handles checked", async () => {
  const dir = await tempDir();
  const shared = await SharedProgressTracker.open(dir, { maxTries: 2 });
  assert.equal(shared.maxTries, 2);
  assert.equal(shared.handle.tracker.maxTries, 2);
  assert.equal(String(shared), "[object SharedProgressTracker]");
  assert.equal(shared.numDone(), 0);
  assert.equal(shared.fractionDone(), 0);
  assert.equal(shared.percentDone(), "0.00 %");
  shared.addMany(["a", "b", "c"]);
  assert.throws(() => shared.add("a"), DuplicateKeyError);
  assert.throws(() => shared.abort("zz"), UnknownKeyError);
  assert.throws(() => shared.decrementTries("a"), RangeError);
  assert.equal(shared.shouldTry("a"), true);
  assert.equal(shared.incrementTries("a"), 2);
  assert.equal(shared.shouldTry("a"), false);
  shared.resetTries("a");
  shared.unabort("a");
  shared.markNotDone("a");
  assert.equal(shared.addIfAbsent("a"), false);

  // Two handles of this thread iterating at once do not get the same task.
  const client = SharedProgressTracker.connect(shared.handle);
  assert.ok(!client.isOwner);
  const mine = shared.tryKeys();
  const theirs = client.tryKeys();
  assert.equal(mine.next().value, "a");
  assert.equal(theirs.next().value, "b");
  await client.close(); // ends its iteration, letting go of "b"
  assert.equal(mine.next().value, "b");
  assert.throws(() => client.numDone(), TypeError);
  mine.return?.();

  // A plain SharedPod client works on the tracker too, checked by the tracker.
  const pod = SharedPod.connect(shared.handle);
  assert.throws(() => pod.set("x", { _done: 1 }), TypeError);
  pod.set("y", { note: "via SharedPod" });
  assert.deepEqual(shared.get("y"), {
    _done: false,
    _tries: 0,
    _aborted: false,
    note: "via SharedPod",
  });
  await pod.close();

  assert.throws(
    () => SharedProgressTracker.connect({ ...shared.handle, tracker: undefined } as never),
    TypeError,
  );
  const plain = await SharedPod.open(await tempDir());
  assert.throws(
    () => SharedProgressTracker.connect(plain.handle as SharedTrackerHandle),
    TypeError,
  );
  await plain.close();
  await assert.rejects(SharedProgressTracker.open(await tempDir(), { maxClients: 0 }), RangeError);
  await assert.rejects(
    SharedProgressTracker.open(await tempDir(), { readOnly: true } as never),
    TypeError,
  );
  await shared.close();
  assert.throws(() => shared.markDone("a"), TypeError);
});
