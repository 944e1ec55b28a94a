import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "../_testing/fs.ts";
import { countShardReads, readText as read, shardFiles, shardName } from "../_testing/pod.ts";
import { counts, recount } from "../_testing/tracker.ts";
import { CorruptFileError, openPod } from "../pod/mod.ts";
import { DuplicateKeyError, openTracker, type ProgressTracker } from "./mod.ts";

const key = (i: number) => `t${i}`;

/**
 * A tracker of `count` tasks in shards of `fileSize`: done when i % 3 == 0,
 * tried once when i % 4 == 0, aborted when i % 10 == 0. Returns the counts.
 */
async function fill(dir: string, count: number, fileSize: number) {
  await using tracker = await openTracker(dir, { fileSize });
  for (let i = 0; i < count; i++) tracker.add(key(i));
  for (let i = 0; i < count; i++) {
    if (i % 3 === 0) tracker.markDone(key(i));
    if (i % 4 === 0) tracker.incrementTries(key(i));
    if (i % 10 === 0) tracker.abort(key(i));
  }
  return counts(tracker);
}

Deno.test("a lazy tracker knows its counts from the shard headers, without reading the shards", async () => {
  const dir = await tempDir();
  const expected = await fill(dir, 1000, 10);
  assert.deepEqual(expected, { done: 334, tried: 250, aborted: 100 });
  assert.equal(shardFiles(dir).length, 100);
  assert.match(
    read(dir, shardName(1)),
    /^\[\{"pod":1,"n":10,"seq":\[10,19\],"summary":\{"tracker":\[3,2,1\]\}\},\n/,
  );
  const reads = countShardReads();
  try {
    const tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), expected);
    assert.equal(tracker.size, 1000);
    assert.equal(tracker.percentDone(), "33.40 %");
    assert.equal(tracker.fractionTried(), 0.25);
    assert.equal(tracker.fractionAborted(), 0.1);
    assert.ok(reads.shards() <= 1, `${reads.whole}`);
    // Reading everything agrees.
    assert.deepEqual(recount(tracker), expected);
    assert.deepEqual(counts(tracker), expected);
    assert.equal(reads.whole.length, 100);
    await tracker.close();
  } finally {
    reads.restore();
  }
  // An eager open counts the same.
  await using eager = await openTracker(dir, { lazy: false });
  assert.deepEqual(counts(eager), expected);
});

Deno.test("counts stay right through a lazy pass of tryKeys and markDone, and after reopening", async () => {
  const dir = await tempDir();
  const count = 500;
  await fill(dir, count, 10);
  // The model: the state of each task.
  const model = Array.from({ length: count }, (_, i) => ({
    done: i % 3 === 0,
    tries: i % 4 === 0 ? 1 : 0,
    aborted: i % 10 === 0,
  }));
  const modelCounts = () => ({
    done: model.filter((task) => task.done).length,
    tried: model.filter((task) => task.tries > 0).length,
    aborted: model.filter((task) => task.aborted).length,
  });
  const todo = () => model.flatMap((task, i) => !task.done && !task.aborted ? [key(i)] : []);
  {
    await using tracker = await openTracker(dir);
    assert.deepEqual([...tracker.todoKeys()], todo());
    assert.deepEqual(counts(tracker), modelCounts());
  }
  {
    await using tracker = await openTracker(dir);
    const yielded: string[] = [];
    for (const k of tracker.tryKeys()) {
      yielded.push(k);
      const i = Number(k.slice(1));
      model[i].tries++;
      if (i % 7 !== 0) {
        tracker.markDone(k);
        model[i].done = true;
      }
      // Half-way, with shards still unread: the counts are right.
      if (yielded.length % 50 === 0) assert.deepEqual(counts(tracker), modelCounts());
    }
    assert.equal(yielded.length, 300); // neither done (i % 3) nor aborted (i % 10)
    assert.deepEqual(counts(tracker), modelCounts());
    await tracker.sync();
    assert.deepEqual(counts(tracker), modelCounts());
  }
  const reads = countShardReads();
  try {
    const tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), modelCounts());
    assert.ok(reads.shards() <= 1);
    assert.deepEqual([...tracker.todoKeys()], todo());
    assert.deepEqual(
      todo(),
      model.flatMap((_, i) => i % 7 === 0 && i % 10 !== 0 && i % 3 !== 0 ? [key(i)] : []),
    );
    assert.deepEqual(counts(tracker), modelCounts());
    assert.deepEqual(recount(tracker), modelCounts());
    await tracker.close();
  } finally {
    reads.restore();
  }
  // The counts in the headers are those of the records.
  for (const name of shardFiles(dir)) {
    const text = read(dir, name);
    const header = JSON.parse(text.slice(1, text.indexOf("\n") - 1));
    const records = JSON.parse(text).slice(1) as [
      string,
      number,
      { _done: boolean; _tries: number; _aborted: boolean },
    ][];
    assert.deepEqual(header.summary.tracker, [
      records.filter((record) => record[2]._done).length,
      records.filter((record) => record[2]._tries > 0).length,
      records.filter((record) => record[2]._aborted).length,
    ], name);
  }
});

Deno.test("a run on a lazy tracker works through every shard; the counts follow", async () => {
  const dir = await tempDir();
  const count = 300;
  const before = await fill(dir, count, 10);
  await using tracker = await openTracker<{ square: number }>(dir);
  const summary = await tracker.run((k) => ({ square: Number(k.slice(1)) ** 2 }), {
    concurrency: 4,
    sigint: false,
    progress: false,
  });
  assert.equal(summary.done, count - before.done - (before.aborted - 10)); // 10 of the aborted are done
  assert.equal(summary.failed, 0);
  assert.equal(tracker.numDone(), count - (before.aborted - 10));
  assert.deepEqual(counts(tracker), recount(tracker));
  assert.equal(tracker.get("t299")!.square, 299 ** 2);
  await tracker.close();
  await using again = await openTracker(dir);
  assert.deepEqual(counts(again), recount(again));
  assert.equal(again.numDone(), count - (before.aborted - 10));
});

Deno.test("a header summary that lies is corrected when its shard is read", async () => {
  for (const how of ["iterate", "lookup", "tryKeys", "delete"] as const) {
    const dir = await tempDir();
    const expected = await fill(dir, 100, 10);
    // Shard 5 holds t50..t59: t51, t54, t57 done; t52, t56 tried; t50 aborted.
    const name = shardName(5);
    const text = read(dir, name);
    const truth = /"tracker":\[(\d+),(\d+),(\d+)\]/.exec(text)!.slice(1).map(Number);
    assert.deepEqual(truth, [3, 2, 1]);
    Deno.writeTextFileSync(
      join(dir, name),
      text.replace(/"tracker":\[\d+,\d+,\d+\]/, '"tracker":[0,9,5]'),
    );
    const lie = {
      done: expected.done - 3,
      tried: expected.tried - 2 + 9,
      aborted: expected.aborted - 1 + 5,
    };
    await using tracker = await openTracker(dir);
    // Before shard 5 is read, the counts are what the headers say.
    assert.deepEqual(counts(tracker), lie, how);
    if (how === "iterate") {
      const keys = [...tracker.keys()];
      assert.equal(keys.length, 100);
    } else if (how === "lookup") {
      assert.equal(tracker.isDone("t99"), true);
    } else if (how === "tryKeys") {
      let n = 0;
      for (const _ of tracker.tryKeys()) n++;
      assert.ok(n > 0);
      // Every task handed out (neither done nor aborted) is tried now.
      expected.tried = 0;
      for (let i = 0; i < 100; i++) {
        if (i % 4 === 0 || (i % 3 !== 0 && i % 10 !== 0)) expected.tried++;
      }
    } else {
      assert.equal(tracker.delete("t55"), true); // not done, not tried, not aborted
    }
    assert.deepEqual(counts(tracker), expected, how);
    assert.deepEqual(recount(tracker), expected, how);
    await tracker.close();
    // Reopened: whatever the header says now, the counts are right once read.
    await using again = await openTracker(dir);
    const truthCounts = recount(again);
    assert.deepEqual(counts(again), truthCounts, how);
    assert.deepEqual(truthCounts, expected, how);
  }
});

Deno.test("a summary in a shard read at open is not trusted; a bad summary makes the open read everything", async () => {
  const dir = await tempDir();
  const expected = await fill(dir, 100, 10);
  const first = read(dir, shardName(0));
  Deno.writeTextFileSync(
    join(dir, shardName(0)),
    first.replace(/"tracker":\[\d+,\d+,\d+\]/, '"tracker":[9,9,9]'),
  );
  {
    await using tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), expected);
  }
  const name = shardName(6);
  const text = read(dir, name);
  Deno.writeTextFileSync(
    join(dir, name),
    text.replace(/"tracker":\[\d+,\d+,\d+\]/, '"tracker":"many"'),
  );
  const reads = countShardReads();
  try {
    const tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), expected);
    assert.equal(reads.shards(), 10);
    await tracker.close();
  } finally {
    reads.restore();
  }
});

Deno.test("a directory written by a plain pod (no summaries) opens as a tracker with the right counts", async () => {
  const dir = await tempDir();
  const expected = { done: 0, tried: 0, aborted: 0 };
  {
    await using pod = await openPod(dir, { fileSize: 10 });
    for (let i = 0; i < 200; i++) {
      const value: Record<string, unknown> = { url: `/${i}` };
      if (i % 50 !== 7) {
        value._done = i % 3 === 0;
        value._tries = i % 4 === 0 ? 2 : 0;
        value._aborted = i % 10 === 0;
      } // else: no state fields at all, filled in by the tracker
      pod.set(key(i), value);
      if (value._done) expected.done++;
      if ((value._tries as number) > 0) expected.tried++;
      if (value._aborted) expected.aborted++;
    }
  }
  assert.doesNotMatch(read(dir, shardName(3)), /summary/);
  {
    await using tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), expected);
    assert.equal(tracker.size, 200);
    assert.deepEqual({ ...tracker.get("t57") }, {
      url: "/57",
      _done: false,
      _tries: 0,
      _aborted: false,
    });
    tracker.markDone("t57");
    expected.done++;
    assert.deepEqual(counts(tracker), expected);
  }
  // Shards rewritten by the tracker carry summaries now; the others still do not.
  assert.match(read(dir, shardName(5)), /"summary":\{"tracker":/);
  assert.doesNotMatch(read(dir, shardName(3)), /summary/);
  {
    await using tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), expected);
    assert.deepEqual(recount(tracker), expected);
  }
  // Eager, too.
  await using tracker = await openTracker(dir, { lazy: false });
  assert.deepEqual(counts(tracker), expected);
});

Deno.test("state changes on tasks in unread shards read them and keep the counts right", async () => {
  const cases: [
    string,
    (tracker: ProgressTracker<object>) => void,
    Partial<Record<"done" | "tried" | "aborted" | "size", number>>,
  ][] = [
    ["markDone", (t) => t.markDone("t95"), { done: 1 }],
    ["markNotDone", (t) => t.markNotDone("t96"), { done: -1 }],
    ["abort", (t) => t.abort("t97"), { aborted: 1 }],
    ["unabort", (t) => t.unabort("t90"), { aborted: -1 }],
    ["incrementTries", (t) => assert.equal(t.incrementTries("t97"), 1), { tried: 1 }],
    ["resetTries", (t) => t.resetTries("t96"), { tried: -1 }],
    ["delete", (t) => assert.equal(t.delete("t90"), true), { done: -1, aborted: -1, size: -1 }],
    ["set", (t) => t.set("t99", { _done: false, _aborted: true }), { done: -1, aborted: 1 }],
    ["update", (t) => t.update({ t98: { _tries: 3 }, fresh: { _done: true } }), {
      tried: 1,
      done: 1,
      size: 1,
    }],
    ["add a duplicate", (t) => assert.throws(() => t.add("t91"), DuplicateKeyError), {}],
    ["add", (t) => t.add("t100"), { size: 1 }],
    ["addManyIfAbsent", (t) => assert.equal(t.addManyIfAbsent(["t92", "x", "t93"]), 1), {
      size: 1,
    }],
    ["shouldTry", (t) => assert.equal(t.shouldTry("t97"), true), { tried: 1 }],
    ["clear", (t) => t.clear(), { done: -34, tried: -25, aborted: -10, size: -100 }],
  ];
  const dir = await tempDir();
  const base = await fill(dir, 100, 10);
  // t90: done, aborted; t96: done, tried; t99: done; t95, t97, t98: none of them.
  const copy = await tempDir();
  for (const [what, change, delta] of cases) {
    // A fresh copy of the files for each case.
    for (const name of shardFiles(copy)) Deno.removeSync(join(copy, name));
    for (const name of shardFiles(dir)) Deno.copyFileSync(join(dir, name), join(copy, name));
    const expected = {
      done: base.done + (delta.done ?? 0),
      tried: base.tried + (delta.tried ?? 0),
      aborted: base.aborted + (delta.aborted ?? 0),
    };
    {
      const reads = countShardReads();
      try {
        await using tracker = await openTracker(copy);
        assert.ok(reads.shards() <= 1, what);
        change(tracker);
        assert.deepEqual(counts(tracker), expected, what);
        assert.equal(tracker.size, 100 + (delta.size ?? 0), what);
        assert.deepEqual(recount(tracker), expected, what);
      } finally {
        reads.restore();
      }
    }
    await using again = await openTracker(copy);
    assert.deepEqual(counts(again), expected, what);
    assert.deepEqual(recount(again), expected, what);
  }
});

Deno.test("revert on a lazy tracker: counts from the headers again", async () => {
  const dir = await tempDir();
  const expected = await fill(dir, 200, 10);
  await using tracker = await openTracker(dir, { syncAt: Infinity });
  tracker.markDone("t199");
  tracker.abort("t1");
  for (const k of tracker.todoKeys()) tracker.incrementTries(k);
  assert.notDeepEqual(counts(tracker), expected);
  const reads = countShardReads();
  try {
    await tracker.revert();
    assert.ok(reads.shards() <= 1);
    assert.deepEqual(counts(tracker), expected);
  } finally {
    reads.restore();
  }
  assert.deepEqual(recount(tracker), expected);
});

Deno.test("a damaged shard in a lazy tracker: counts from the headers, a CorruptFileError when reached", async () => {
  const dir = await tempDir();
  const expected = await fill(dir, 100, 10);
  const name = shardName(5);
  const path = join(Deno.realPathSync(dir), name);
  const lines = read(dir, name).split("\n");
  Deno.writeTextFileSync(path, `${lines[0]}\n${lines[1]}\n`);
  const damaged = Deno.readFileSync(path);
  const isDamaged = (error: unknown) => {
    assert.ok(error instanceof CorruptFileError, String(error));
    assert.equal(error.path, path);
    return true;
  };
  const tracker = await openTracker(dir);
  assert.deepEqual(counts(tracker), expected);
  const tried: string[] = [];
  assert.throws(() => {
    for (const k of tracker.tryKeys()) {
      tried.push(k);
      tracker.markDone(k);
    }
  }, isDamaged);
  assert.ok(tried.length > 0);
  assert.ok(tried.every((k) => Number(k.slice(1)) < 50));
  assert.equal(tracker.numDone(), expected.done + tried.length);
  assert.throws(() => tracker.markDone("t77"), isDamaged);
  assert.throws(() => tracker.add("new"), isDamaged);
  assert.equal(tracker.numDone(), expected.done + tried.length);
  await tracker.close();
  assert.deepEqual(Deno.readFileSync(path), damaged);
  // The tries and done marks of the shards read were saved, with their counts.
  const firstShard = read(dir, shardName(0));
  assert.match(firstShard, /"summary":\{"tracker":\[10,/);
});

Deno.test("tasks deleted and added again in old shards: counts and order after a lazy reopen", async () => {
  const dir = await tempDir();
  await fill(dir, 200, 10);
  let expected: ReturnType<typeof counts>;
  let order: string[];
  {
    await using tracker = await openTracker(dir, { fileSize: 10 });
    for (const i of [0, 3, 57, 120]) {
      tracker.delete(key(i)); // back to their old shards, at the end of the order
      tracker.add(key(i));
    }
    tracker.markDone(key(3));
    expected = counts(tracker);
    order = [...tracker.keys()];
  }
  const reads = countShardReads();
  try {
    await using tracker = await openTracker(dir, { fileSize: 10 });
    assert.ok(reads.shards() <= 1, `read at open: ${reads.whole}`);
    assert.deepEqual(counts(tracker), expected);
    assert.equal(tracker.isDone(key(3)), true); // a deferred entry, found without reading on
    assert.ok(reads.shards() <= 1, `read after a lookup: ${reads.whole}`);
    assert.deepEqual([...tracker.keys()], order);
    assert.deepEqual(counts(tracker), expected);
    assert.deepEqual(recount(tracker), expected);
  } finally {
    reads.restore();
  }
});
