import assert from "node:assert/strict";
import { tempDir } from "../_testing/fs.ts";
import { injectFaults } from "../_internal/fs.ts";
import { recount } from "../_testing/tracker.ts";
import { openTracker } from "./mod.ts";

const tick = (ms = 1) => new Promise((resolve) => setTimeout(resolve, ms));

const keys = (count: number) => Array.from({ length: count }, (_, i) => `t${i}`);
const number = (key: string) => Number(key.slice(1));

Deno.test("run: concurrency, results saved with the done mark, failures kept and retried later, maxTries", async () => {
  const dir = await tempDir();
  await using tracker = await openTracker<{ out: number }>(dir, { maxTries: 2 });
  tracker.addMany(keys(50));
  let inFlight = 0;
  let peak = 0;
  const work = async (key: string, entry: { _tries: number }) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await tick();
    inFlight--;
    if (number(key) % 7 === 0) throw new Error(`always fails: ${key}`);
    if (number(key) % 5 === 0 && entry._tries === 1) throw new Error("fails once");
    return { out: number(key) * 2 };
  };

  const first = await tracker.run(work, { concurrency: 4, progress: false });
  assert.equal(peak, 4);
  // 8 keys always fail (0, 7, …, 49), 8 more fail on their first try (5, 10, …, 45 but not 35).
  assert.deepEqual({ ...first, elapsed: 0 }, {
    done: 34,
    aborted: 0,
    failed: 16,
    skipped: 0,
    remaining: 16,
    interrupted: false,
    elapsed: 0,
  });
  assert.equal(tracker.dirty().size, 0, "the run synced");
  assert.equal(tracker.get("t7")!._error, "always fails: t7");
  assert.equal(tracker.get("t5")!._error, "fails once");
  assert.equal(tracker.get("t3")!.out, 6);
  assert.equal(tracker.get("t3")!._error, undefined);
  assert.equal(tracker.numDone(), 34);
  assert.equal(tracker.numTried(), 50);

  const second = await tracker.run(work, { concurrency: 4, progress: false });
  assert.deepEqual([second.done, second.failed, second.skipped, second.remaining], [8, 8, 0, 0]);
  assert.equal(tracker.get("t5")!._error, undefined, "a success removes the error");
  assert.equal(tracker.get("t5")!.out, 10);

  const third = await tracker.run(work, { progress: false });
  assert.deepEqual([third.done, third.failed, third.skipped, third.remaining], [0, 0, 8, 0]);
  for (const [key, entry] of tracker) {
    assert.ok(entry._tries <= 2, key);
    assert.equal(entry._done, number(key) % 7 !== 0, key);
  }
  // Reopened, the same.
  await tracker.close();
  await using reopened = await openTracker<{ out: number }>(dir, { maxTries: 2 });
  assert.equal(reopened.numDone(), 42);
  assert.equal(reopened.get("t49")!._tries, 2);
  assert.equal(reopened.get("t48")!.out, 96);
});

Deno.test("run picks up tasks added while it runs, also after it went past the last one", async () => {
  for (const concurrency of [1, 3]) {
    await using tracker = await openTracker<{ links: string[] }>(await tempDir());
    tracker.add("/0");
    const order: string[] = [];
    const summary = await tracker.run(async (url) => {
      order.push(url);
      await tick();
      const n = number(url.replace("/", "t"));
      const found = n < 40
        ? [`/${2 * n + 1}`, `/${2 * n + 2}`].filter((u) => number(u.replace("/", "t")) < 60)
        : [];
      tracker.addManyIfAbsent(found);
      return { links: found };
    }, { concurrency, progress: false });
    assert.equal(summary.done, 60);
    assert.equal(tracker.size, 60);
    assert.equal(tracker.numDone(), 60);
    assert.equal(new Set(order).size, 60, "each task once");
    for (const entry of tracker.values()) assert.equal(entry._tries, 1);
  }
});

Deno.test("run stops on its signal: tasks in flight finish, then it syncs; the next run continues", async () => {
  const dir = await tempDir();
  await using tracker = await openTracker<{ by: number }>(dir, { syncAt: Infinity });
  tracker.addMany(keys(100));
  const controller = new AbortController();
  let started = 0;
  const first = await tracker.run(async () => {
    if (++started === 10) controller.abort();
    await tick();
    return { by: 1 };
  }, { concurrency: 3, signal: controller.signal, progress: false });
  assert.equal(first.interrupted, true);
  assert.equal(first.done, started, "every task started was finished and recorded");
  assert.ok(first.done >= 10 && first.done < 100);
  assert.equal(first.remaining, 100 - first.done);
  assert.equal(tracker.numTried(), tracker.numDone());
  assert.equal(tracker.dirty().size, 0, "synced");

  // An aborted signal starts nothing.
  const none = await tracker.run(() => {
    throw new Error("not called");
  }, { signal: AbortSignal.abort(), progress: false });
  assert.deepEqual([none.done, none.failed, none.interrupted], [0, 0, true]);

  const second = await tracker.run(() => ({ by: 2 }), { concurrency: 5, progress: false });
  assert.equal(second.interrupted, false);
  assert.equal(second.done, 100 - first.done);
  assert.equal(tracker.numDone(), 100);
  for (const entry of tracker.values()) assert.equal(entry._tries, 1);
});

Deno.test("run: what a task returns or does", async () => {
  await using tracker = await openTracker<{ value: unknown; note: string }>(await tempDir());
  tracker.addMany(["state", "unstorable", "date", "number", "aborts", "inPlace", "sync"]);
  const summary = await tracker.run((key, entry) => {
    switch (key) {
      case "state":
        return { _done: true } as never; // state fields are the tracker's
      case "unstorable":
        return { value: 10n } as never;
      case "date":
        return new Date() as never; // not a plain object: ignored
      case "number":
        return 42 as never; // ignored
      case "aborts":
        tracker.abort(key); // gave up: not marked done
        return;
      case "inPlace":
        entry.note = "changed in place"; // saved too, at the next sync
        return;
      case "sync":
        throw "a string"; // thrown values that are not errors
    }
  }, { progress: false });
  assert.deepEqual([summary.done, summary.aborted, summary.failed], [3, 1, 3]);
  assert.match(tracker.get("state")!._error!, /cannot set _done/);
  assert.equal(tracker.isDone("state"), false);
  assert.match(tracker.get("unstorable")!._error!, /BigInt/);
  assert.equal(tracker.get("unstorable")!.value, undefined);
  assert.equal(tracker.isDone("date"), true);
  assert.equal(tracker.isDone("number"), true);
  assert.equal(tracker.isDone("aborts"), false);
  assert.equal(tracker.isAborted("aborts"), true);
  assert.equal(tracker.get("inPlace")!.note, "changed in place");
  assert.equal(tracker.get("sync")!._error, "a string");
  assert.deepEqual(recount(tracker), {
    done: tracker.numDone(),
    tried: tracker.numTried(),
    aborted: tracker.numAborted(),
  });
  await assert.rejects(tracker.run(() => {}, { concurrency: 0 }), RangeError);
  await assert.rejects(tracker.run(() => {}, { concurrency: 1.5 }), RangeError);
  await assert.rejects(tracker.run(5 as never), TypeError);
});

Deno.test("two runs at once in one thread never take the same task", async () => {
  await using tracker = await openTracker<{ by: string }>(await tempDir());
  tracker.addMany(keys(80));
  const taken = new Map<string, string[]>();
  const worker = (name: string) => async (key: string) => {
    taken.set(key, [...(taken.get(key) ?? []), name]);
    await tick();
    return { by: name };
  };
  const [a, b] = await Promise.all([
    tracker.run(worker("a"), { concurrency: 2, progress: false }),
    tracker.run(worker("b"), { concurrency: 3, progress: false }),
  ]);
  assert.equal(a.done + b.done, 80);
  assert.ok(a.done > 0 && b.done > 0);
  assert.equal(taken.size, 80);
  for (const [key, names] of taken) assert.equal(names.length, 1, key);
  for (const [key, entry] of tracker) assert.equal(entry.by, taken.get(key)![0]);
});

Deno.test("a run whose automatic syncs fail (injected faults) still records every task once", async () => {
  const dir = await tempDir();
  const errors: unknown[] = [];
  {
    await using tracker = await openTracker<{ count: number }>(dir, {
      syncAt: 10,
      fileSize: 10,
      onError: (error) => errors.push(error),
    });
    tracker.addMany(keys(200));
    await tracker.sync();
    await injectFaults([{ op: "rename", path: "shard-", nth: 2, times: 6 }], async (log) => {
      const summary = await tracker.run(async (_key, entry) => {
        await tick(0);
        return { count: (entry.count ?? 0) + 1 };
      }, { concurrency: 4, progress: false }).catch((error) => error);
      assert.ok(log.fired > 0);
      void summary; // the final sync may or may not be among the failed ones
    });
    assert.equal(tracker.numDone(), 200);
    assert.deepEqual(recount(tracker), { done: 200, tried: 200, aborted: 0 });
  } // closing syncs what is still dirty
  assert.ok(errors.length > 0, "the failed automatic syncs were reported");
  await using reopened = await openTracker<{ count: number }>(dir);
  assert.equal(reopened.numDone(), 200);
  for (const entry of reopened.values()) assert.equal(entry.count, 1);
});

Deno.test("closing the tracker under a run makes the run fail", async () => {
  const tracker = await openTracker(await tempDir());
  tracker.addMany(keys(10));
  let calls = 0;
  await assert.rejects(
    tracker.run(async () => {
      if (++calls === 3) await tracker.close();
      await tick();
    }, { progress: false }),
    TypeError,
  );
  assert.ok(tracker.closed);
});
