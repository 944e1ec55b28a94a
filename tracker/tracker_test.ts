import assert from "node:assert/strict";
import { tempDir } from "../_testing/fs.ts";
import { injectFaults } from "../_internal/fs.ts";
import { counts, recount } from "../_testing/tracker.ts";
import { openPod } from "../pod/mod.ts";
import {
  AtomicStoreError,
  DuplicateKeyError,
  openTracker,
  Pod,
  ProgressTracker,
  Tracker,
  UnknownKeyError,
} from "./mod.ts";

/** A small website: page i links to a few others; some pages fail on their first fetch. */
const PAGES = 150;
function links(url: string): string[] {
  const i = Number(url.slice(1));
  return [(i * 7 + 1) % PAGES, (i * 13 + 5) % PAGES, Math.min(i + 1, PAGES - 1)].map((n) =>
    `/${n}`
  );
}
function fails(url: string, tries: number): boolean {
  return Number(url.slice(1)) % 5 === 0 && tries === 1;
}

Deno.test("the crawler from the seed: keys added while iterating tryKeys come up in the same loop", async () => {
  const dir = await tempDir();
  const passes: string[][] = [];
  {
    await using urls = await openTracker<{ links: number }>(dir, { maxTries: 3 });
    urls.addIfAbsent("/0");
    for (let pass = 0; pass < 5 && passes.at(-1)?.length !== 0; pass++) {
      const yielded: string[] = [];
      for (const url of urls.tryKeys()) {
        yielded.push(url);
        if (fails(url, urls.tries(url))) continue; // the fetch failed: try again later
        const found = links(url);
        urls.addManyIfAbsent(found);
        urls.get(url)!.links = found.length;
        urls.markDone(url);
      }
      passes.push(yielded);
    }
    // The first pass reached every page it discovered, in the order they were found.
    assert.deepEqual(passes[0], [...urls.keys()].slice(0, passes[0].length));
    assert.equal(new Set(passes[0]).size, passes[0].length);
    // Later passes retried the failures (and whatever they led to), until there was nothing left.
    assert.ok(passes[1].length > 0);
    assert.ok(passes[1].every((url) => Number(url.slice(1)) % 5 === 0 || !passes[0].includes(url)));
    assert.deepEqual(passes.at(-1), []);
    assert.ok(passes.length <= 4, `${passes.length} passes`);
    for (const url of urls.keys()) assert.ok(urls.tries(url) <= 2);
    assert.equal(urls.numDone(), urls.size);
    assert.equal(urls.percentDone(), "100.00 %");
  }
  await using again = await openTracker<{ links: number }>(dir, { maxTries: 3 });
  assert.equal(again.numDone(), again.size);
  assert.equal(again.tries("/0"), 2);
  assert.equal(again.tries("/1"), 1);
  assert.equal(again.get("/1")!.links, 3);
  assert.deepEqual([...again.tryKeys()], []);
});

Deno.test("a tracker is a Pod; aliases and names", async () => {
  await using tracker = await openTracker(await tempDir());
  assert.ok(tracker instanceof Pod);
  assert.ok(tracker instanceof ProgressTracker);
  assert.equal(Tracker, ProgressTracker);
  assert.equal(String(tracker), "[object ProgressTracker]");
  assert.equal(tracker.maxTries, 0);
  await assert.rejects(openTracker(await tempDir(), { maxTries: -1 }), RangeError);
  await assert.rejects(openTracker(await tempDir(), { maxTries: 1.5 }), RangeError);
});

Deno.test("adding tasks: add, addIfAbsent, addMany (all or nothing), addManyIfAbsent", async () => {
  await using tracker = await openTracker(await tempDir());
  tracker.add("a").add("b");
  assert.throws(() => tracker.add("a"), (error: unknown) => {
    assert.ok(error instanceof DuplicateKeyError && error instanceof AtomicStoreError);
    assert.equal(error.key, "a");
    assert.equal(error.path, tracker.path);
    return true;
  });
  assert.equal(tracker.addIfAbsent("a"), false);
  assert.equal(tracker.addIfAbsent("c"), true);
  assert.throws(() => tracker.addMany(["d", "b"]), DuplicateKeyError);
  assert.throws(() => tracker.addMany(["d", "e", "d"]), DuplicateKeyError);
  assert.throws(() => tracker.addMany(["d", 5 as unknown as string]), TypeError);
  assert.equal(tracker.has("d"), false);
  tracker.addMany(new Set(["d", "e"]));
  assert.equal(tracker.addManyIfAbsent(["e", "f", "f", "g"]), 2);
  assert.deepEqual([...tracker.keys()], ["a", "b", "c", "d", "e", "f", "g"]);
  assert.deepEqual({ ...tracker.get("g") }, { _done: false, _tries: 0, _aborted: false });
  assert.throws(() => tracker.add(1 as unknown as string), TypeError);
});

Deno.test("update mixes data in, adding missing keys; set replaces data and keeps the state", async () => {
  const dir = await tempDir();
  await using tracker = await openTracker<{ title: string; depth: number }>(dir);
  tracker.update({ "/": { depth: 0 } });
  tracker.update(new Map([["/", { title: "Home" }], ["/a", { depth: 1, _tries: 2, _done: true }]]));
  assert.deepEqual({ ...tracker.get("/") }, {
    _done: false,
    _tries: 0,
    _aborted: false,
    depth: 0,
    title: "Home",
  });
  assert.equal(tracker.tries("/a"), 2);
  assert.deepEqual(counts(tracker), { done: 1, tried: 1, aborted: 0 });

  // Wrong types for state fields are TypeErrors, and nothing changes, in any entry.
  for (
    const bad of [
      { _done: "yes" },
      { _tries: -1 },
      { _tries: 1.5 },
      { _aborted: 1 },
      { _error: 404 },
    ]
  ) {
    assert.throws(
      () => tracker.update([["/b", { depth: 2 }], ["/", bad as never]]),
      TypeError,
      JSON.stringify(bad),
    );
    assert.throws(() => tracker.set("/", bad as never), TypeError);
  }
  assert.throws(() => tracker.update({ "/": [] as never }), TypeError);
  assert.throws(() => tracker.update({ "/": null as never }), TypeError);
  assert.throws(() => tracker.update({ "/": { depth: () => 1 } as never }), TypeError);
  assert.throws(() => tracker.set("/", 5 as never), TypeError);
  assert.equal(tracker.has("/b"), false);
  assert.equal(tracker.get("/")!.title, "Home");

  tracker.markDone("/");
  tracker.set("/", { title: "Start" }); // new data; the state stays
  assert.deepEqual({ ...tracker.get("/") }, {
    _done: true,
    _tries: 0,
    _aborted: false,
    title: "Start",
  });
  tracker.set("/", { _done: false, _aborted: true });
  assert.deepEqual(counts(tracker), { done: 1, tried: 1, aborted: 1 });
  tracker.set("/new", { _tries: 4 });
  assert.deepEqual(counts(tracker), { done: 1, tried: 2, aborted: 1 });
  // The value stored is a copy: changing the object passed changes nothing.
  const input = { title: "x" };
  tracker.set("/c", input);
  input.title = "y";
  assert.equal(tracker.get("/c")!.title, "x");
  // A `__proto__` field is data, not a prototype.
  tracker.update({ "/c": JSON.parse('{"__proto__": {"polluted": true}}') });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(recount(tracker), counts(tracker));
  await tracker.sync();
  await tracker.revert();
  assert.deepEqual(Object.keys(tracker.get("/c")!), [
    "_done",
    "_tries",
    "_aborted",
    "title",
    "__proto__",
  ]);
});

Deno.test("state changes, reads, and unknown keys", async () => {
  await using tracker = await openTracker(await tempDir(), { init: { a: {}, b: {} } });
  tracker.markDone("a");
  assert.equal(tracker.isDone("a"), true);
  tracker.markDone("a"); // twice is once
  assert.equal(tracker.numDone(), 1);
  tracker.markNotDone("a");
  assert.equal(tracker.isDone("a"), false);
  tracker.abort("b");
  assert.equal(tracker.isAborted("b"), true);
  assert.equal(tracker.numAborted(), 1);
  tracker.unabort("b");
  assert.equal(tracker.isAborted("b"), false);
  assert.equal(tracker.incrementTries("a"), 1);
  assert.equal(tracker.incrementTries("a"), 2);
  assert.equal(tracker.tries("a"), 2);
  assert.equal(tracker.decrementTries("a"), 1);
  tracker.resetTries("a");
  assert.equal(tracker.tries("a"), 0);
  assert.throws(() => tracker.decrementTries("a"), RangeError);
  assert.deepEqual(counts(tracker), { done: 0, tried: 0, aborted: 0 });

  // Reads answer for unknown keys; changes and gates refuse them.
  assert.equal(tracker.isDone("zzz"), false);
  assert.equal(tracker.isAborted("zzz"), false);
  assert.equal(tracker.tries("zzz"), 0);
  for (
    const change of [
      () => tracker.markDone("zzz"),
      () => tracker.markNotDone("zzz"),
      () => tracker.abort("zzz"),
      () => tracker.unabort("zzz"),
      () => tracker.incrementTries("zzz"),
      () => tracker.decrementTries("zzz"),
      () => tracker.resetTries("zzz"),
      () => tracker.shouldDo("zzz"),
      () => tracker.shouldTry("zzz"),
    ]
  ) {
    assert.throws(change, (error: unknown) => {
      assert.ok(error instanceof UnknownKeyError && error instanceof AtomicStoreError);
      assert.equal(error.key, "zzz");
      assert.match(error.message, /zzz/);
      return true;
    });
  }
  assert.equal(tracker.has("zzz"), false);
  assert.throws(() => tracker.markDone(7 as unknown as string), TypeError);
});

Deno.test("maxTries gates shouldDo, shouldTry, the iterators; allowAborted", async () => {
  await using tracker = await openTracker(await tempDir(), { maxTries: 2 });
  assert.equal(tracker.shouldDoAdd("a"), true);
  assert.equal(tracker.shouldTryAdd("b"), true);
  assert.equal(tracker.tries("b"), 1);
  assert.equal(tracker.shouldTry("b"), true);
  assert.equal(tracker.shouldTry("b"), false); // 2 tries used
  assert.equal(tracker.tries("b"), 2);
  assert.equal(tracker.shouldDo("b"), false);
  assert.equal(tracker.shouldTryAdd("b"), false);
  tracker.addMany(["c", "d", "e"]);
  tracker.markDone("c");
  tracker.abort("d");
  assert.deepEqual([...tracker.todoKeys()], ["a", "e"]);
  assert.deepEqual([...tracker.todoKeys({ allowAborted: true })], ["a", "d", "e"]);
  assert.equal(tracker.shouldDo("d"), false);
  assert.equal(tracker.shouldDo("d", { allowAborted: true }), true);
  assert.equal(tracker.shouldDo("c", { allowAborted: true }), false);
  assert.deepEqual([...tracker.tryKeys()], ["a", "e"]);
  assert.deepEqual([...tracker.tryKeys()], ["a", "e"]);
  assert.deepEqual([...tracker.tryKeys()], []); // out of tries
  assert.deepEqual([...tracker.tryKeys({ allowAborted: true })], ["d"]);
  assert.deepEqual(
    [...tracker.todoEntries({ allowAborted: true })].map(([key, entry]) => [key, entry._tries]),
    [["d", 1]],
  );
  assert.deepEqual([...tracker.todoValues({ allowAborted: true })].map((v) => v._tries), [1]);
  assert.deepEqual([...tracker.tryValues({ allowAborted: true })].map((v) => v._tries), [2]);
  assert.deepEqual([...tracker.tryEntries({ allowAborted: true })], []);
  for (const key of tracker.keys()) assert.ok(tracker.tries(key) <= 2, key);
  assert.deepEqual(counts(tracker), { done: 1, tried: 4, aborted: 1 });
  assert.equal(tracker.percentTried(1), "80.0 %");
  assert.equal(tracker.percentAborted(), "20.00 %");
  assert.throws(() => tracker.percentDone(-1), RangeError);
});

Deno.test("counts: empty is 0, and they are right after reopening and reverting", async () => {
  const dir = await tempDir();
  {
    await using tracker = await openTracker(dir);
    assert.deepEqual(counts(tracker), { done: 0, tried: 0, aborted: 0 });
    assert.equal(tracker.fractionDone(), 0);
    assert.equal(tracker.fractionTried(), 0);
    assert.equal(tracker.fractionAborted(), 0);
    assert.equal(tracker.percentDone(), "0.00 %");
    for (let i = 0; i < 1000; i++) tracker.add(`t${i}`);
    for (let i = 0; i < 347; i++) tracker.markDone(`t${i}`);
    for (let i = 300; i < 500; i++) tracker.incrementTries(`t${i}`);
    for (let i = 990; i < 1000; i++) tracker.abort(`t${i}`);
    assert.equal(tracker.percentDone(), "34.70 %");
    assert.equal(tracker.fractionTried(), 0.2);
  }
  await using tracker = await openTracker(dir, { syncAt: Infinity });
  assert.deepEqual(counts(tracker), { done: 347, tried: 200, aborted: 10 });
  tracker.markDone("t999");
  tracker.delete("t0");
  tracker.abort("t1");
  tracker.resetTries("t300");
  tracker.clear();
  assert.deepEqual(counts(tracker), { done: 0, tried: 0, aborted: 0 });
  await tracker.revert();
  assert.deepEqual(counts(tracker), { done: 347, tried: 200, aborted: 10 });
  assert.equal(tracker.percentDone(1), "34.7 %");
});

/** A small, seeded random number generator (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("counters match a full recount after random operation sequences", async () => {
  for (const seed of [1, 2, 3]) {
    const dir = await tempDir();
    const rand = random(seed);
    const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)];
    const key = () => `k${Math.floor(rand() * 60)}`;
    let tracker = await openTracker<{ n: number }>(dir, { maxTries: 4, fileSize: 7 });
    const log: string[] = [];
    try {
      for (let step = 0; step < 1500; step++) {
        const k = key();
        const op = pick([
          "add",
          "addMany",
          "set",
          "setState",
          "update",
          "delete",
          "markDone",
          "markNotDone",
          "abort",
          "unabort",
          "increment",
          "decrement",
          "reset",
          "shouldTry",
          "tryKeys",
          "tryEntries",
          "sync",
          "revert",
          "reopen",
          "clear",
          "run",
        ]);
        log.push(`${op} ${k}`);
        try {
          switch (op) {
            case "add":
              tracker.addIfAbsent(k);
              break;
            case "addMany":
              tracker.addManyIfAbsent([k, key(), key()]);
              break;
            case "set":
              tracker.set(k, { n: step });
              break;
            case "setState":
              tracker.set(k, { _done: rand() < 0.5, _tries: Math.floor(rand() * 3), n: step });
              break;
            case "update":
              tracker.update([[k, { n: step, _aborted: rand() < 0.3 }], [key(), { n: -step }]]);
              break;
            case "delete":
              tracker.delete(k);
              break;
            case "markDone":
              tracker.markDone(k);
              break;
            case "markNotDone":
              tracker.markNotDone(k);
              break;
            case "abort":
              tracker.abort(k);
              break;
            case "unabort":
              tracker.unabort(k);
              break;
            case "increment":
              tracker.incrementTries(k);
              break;
            case "decrement":
              tracker.decrementTries(k);
              break;
            case "reset":
              tracker.resetTries(k);
              break;
            case "shouldTry":
              tracker.shouldTry(k, { allowAborted: rand() < 0.5 });
              break;
            case "tryKeys":
              for (const t of tracker.tryKeys()) {
                if (rand() < 0.3) tracker.markDone(t);
                if (rand() < 0.1) tracker.addIfAbsent(key());
                if (rand() < 0.2) break;
              }
              break;
            case "tryEntries":
              for (const [t, entry] of tracker.tryEntries()) {
                entry.n = step;
                if (rand() < 0.2) tracker.delete(t);
                if (rand() < 0.3) break;
              }
              break;
            case "sync":
              if (rand() < 0.5) await tracker.sync();
              break;
            case "revert":
              if (rand() < 0.3) await tracker.revert();
              break;
            case "reopen":
              if (rand() < 0.2) {
                await tracker.close();
                tracker = await openTracker<{ n: number }>(dir, { maxTries: 4, fileSize: 7 });
              }
              break;
            case "clear":
              if (rand() < 0.05) tracker.clear();
              break;
            case "run":
              if (rand() < 0.2) {
                await tracker.run((t) => {
                  if (rand() < 0.3) throw new Error("no");
                  if (rand() < 0.1) tracker.addIfAbsent(key());
                  return { n: t.length };
                }, { concurrency: 3, progress: false });
              }
              break;
          }
        } catch (error) {
          if (!(error instanceof UnknownKeyError) && !(error instanceof RangeError)) throw error;
        }
        assert.deepEqual(counts(tracker), recount(tracker), `seed ${seed}: ${log.join("; ")}`);
        for (const entry of tracker.values()) assert.ok(entry._tries >= 0);
      }
    } finally {
      await tracker.close();
    }
    await using reopened = await openTracker(dir);
    assert.deepEqual(counts(reopened), recount(reopened));
  }
});

Deno.test("the state fields of entries handed out are read-only; user data is saved", async () => {
  const dir = await tempDir();
  {
    await using tracker = await openTracker<{ title: string; tags: string[] }>(dir);
    tracker.add("a");
    tracker.update({ b: { tags: [] } });
    const entry = tracker.get("a")!;
    entry.title = "A"; // user data: fine, and saved
    tracker.get("b")!.tags!.push("x");
    const writable = entry as { _done: boolean; _tries: number; _aborted: boolean };
    assert.throws(() => writable._done = true, TypeError, "markDone");
    assert.throws(() => writable._tries = 5, TypeError);
    assert.throws(() => writable._aborted = true, TypeError);
    assert.throws(() => delete (entry as { _done?: boolean })._done, TypeError);
    assert.throws(() => Object.defineProperty(entry, "_done", { value: true }), TypeError);
    for (const value of tracker.values()) {
      assert.throws(() => (value as { _done: boolean })._done = true, TypeError);
    }
    for (const [, value] of tracker) {
      assert.throws(() => (value as { _tries: number })._tries = 1, TypeError);
    }
    tracker.forEach((value) => assert.throws(() => (value as { _done: boolean })._done = true));
    // The tracker itself still changes them, and the entry shows it.
    tracker.markDone("a");
    assert.equal(entry._done, true);
    tracker.incrementTries("a");
    assert.equal(entry._tries, 1);
    assert.deepEqual(counts(tracker), { done: 1, tried: 1, aborted: 0 });
    assert.equal(
      JSON.stringify(entry),
      '{"_done":true,"_tries":1,"_aborted":false,"title":"A"}',
    );
    assert.deepEqual(structuredClone(entry), {
      _done: true,
      _tries: 1,
      _aborted: false,
      title: "A",
    });
  }
  await using tracker = await openTracker<{ title: string; tags: string[] }>(dir);
  assert.deepEqual({ ...tracker.get("a") }, {
    _done: true,
    _tries: 1,
    _aborted: false,
    title: "A",
  });
  assert.deepEqual(tracker.get("b")!.tags, ["x"]);
});

Deno.test("a directory is open as a tracker or as a pod in one thread, not both", async () => {
  const dir = await tempDir();
  {
    await using tracker = await openTracker(dir);
    tracker.add("a");
    await assert.rejects(openPod(dir), TypeError);
    await assert.rejects(openPod(dir, { readOnly: true }), TypeError);
    // A second tracker handle shares the data and the counts.
    await using second = await openTracker(dir, { maxTries: 1 });
    second.markDone("a");
    assert.equal(tracker.numDone(), 1);
    assert.equal(second.maxTries, 1);
    await using view = await openTracker(dir, { readOnly: true });
    assert.equal(view.isDone("a"), true);
    assert.throws(() => view.markDone("a"), TypeError);
    assert.throws(() => view.add("b"), TypeError);
    assert.throws(() => [...view.tryKeys()], TypeError);
    await assert.rejects(view.run(() => {}), TypeError);
  }
  {
    await using pod = await openPod(dir);
    await assert.rejects(openTracker(dir), TypeError);
    assert.deepEqual(pod.get("a"), { _done: true, _tries: 0, _aborted: false });
  }
  await using tracker = await openTracker(dir);
  assert.equal(tracker.numDone(), 1);
});

Deno.test("opening a pod as a tracker: missing state fields are filled in, other values refused", async () => {
  const partial = await tempDir();
  {
    await using pod = await openPod(partial);
    pod.update({ a: { url: "x" }, b: { _done: true }, c: { _tries: 2, _aborted: true } });
  }
  {
    await using tracker = await openTracker(partial);
    assert.deepEqual(counts(tracker), { done: 1, tried: 1, aborted: 1 });
    assert.deepEqual({ ...tracker.get("a") }, {
      url: "x",
      _done: false,
      _tries: 0,
      _aborted: false,
    });
  }
  await using pod = await openPod(partial);
  assert.deepEqual(pod.get("a"), { url: "x", _done: false, _tries: 0, _aborted: false });
  await pod.close();

  for (
    const [value, pattern] of [
      [5, /is 5, not a task entry/],
      [null, /is null/],
      [[1], /is an array/],
      [{ _done: "no" }, /_done must be a boolean/],
      [{ _tries: -2 }, /_tries must be a non-negative integer/],
    ] as const
  ) {
    const dir = await tempDir();
    {
      await using bad = await openPod(dir);
      bad.update({ ok: {}, bad: value });
    }
    await assert.rejects(openTracker(dir), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, pattern);
      assert.match(error.message, /"bad"/);
      return true;
    });
    // The failed open let go of the directory.
    await using again = await openPod(dir);
    assert.equal(again.size, 2);
  }
});

Deno.test("two tryKeys loops at once in one thread never hold the same key", async () => {
  await using tracker = await openTracker(await tempDir());
  tracker.addMany(["a", "b", "c", "d"]);
  const first = tracker.tryKeys();
  const second = tracker.tryKeys();
  assert.equal(first.next().value, "a");
  assert.equal(second.next().value, "b"); // a is held by the first loop
  assert.equal(first.next().value, "c"); // a is let go of; b is held
  tracker.markDone("b");
  assert.equal(second.next().value, "d");
  assert.equal(first.next().done, true); // d is held
  assert.equal(second.next().done, true);
  assert.deepEqual(["a", "b", "c", "d"].map((key) => tracker.tries(key)), [1, 1, 1, 1]);
  // A loop that breaks lets go of its key.
  for (const key of tracker.tryKeys()) {
    assert.equal(key, "a");
    break;
  }
  assert.equal(tracker.tryKeys().next().value, "a");
});

Deno.test("reverting or closing during an iteration ends it with a TypeError", async () => {
  const dir = await tempDir();
  const tracker = await openTracker(dir);
  tracker.addMany(["a", "b", "c"]);
  await tracker.sync();
  const todo = tracker.todoKeys();
  const tries = tracker.tryKeys();
  todo.next();
  tries.next();
  await tracker.revert();
  assert.throws(() => todo.next(), TypeError);
  assert.throws(() => tries.next(), TypeError);
  assert.equal(tracker.tries("a"), 0); // the try was not synced
  const again = tracker.tryKeys();
  again.next();
  await tracker.close();
  assert.throws(() => again.next(), TypeError);
  assert.throws(() => tracker.numDone(), TypeError);
  assert.throws(() => tracker.markDone("a"), TypeError);
  assert.throws(() => [...tracker.todoKeys()], TypeError);
});

Deno.test("failing syncs (injected faults) keep the tracker consistent, in memory and on disk", async () => {
  const dir = await tempDir();
  const tracker = await openTracker<{ n: number }>(dir, { fileSize: 10, syncAt: Infinity });
  try {
    for (let i = 0; i < 100; i++) tracker.add(`t${i}`);
    await tracker.sync();
    // Some shard writes fail, others succeed: the sync rejects, and the
    // keys of the failed shards stay dirty.
    for (const [round, op] of (["rename", "fsync", "write", "dirFsync"] as const).entries()) {
      for (let i = round; i < 100; i += 4) tracker.markDone(`t${i}`);
      for (let i = round; i < 100; i += 3) tracker.incrementTries(`t${i}`);
      const expected = { ...counts(tracker) };
      // A sync flushes the directory once, after all its shard writes.
      const fault = op === "dirFsync" ? { op, path: dir } : { op, path: dir, nth: 3, times: 2 };
      await injectFaults(
        [fault],
        async (log) => {
          await assert.rejects(tracker.sync());
          assert.ok(log.fired > 0, op);
        },
      );
      assert.deepEqual(counts(tracker), expected);
      assert.deepEqual(recount(tracker), expected);
      assert.ok(tracker.dirty().size > 0);
    }
    await tracker.sync();
    assert.equal(tracker.dirty().size, 0);
  } finally {
    await tracker.close();
  }
  await using reopened = await openTracker<{ n: number }>(dir);
  assert.deepEqual(counts(reopened), { done: 100, tried: 100, aborted: 0 });
  assert.deepEqual(recount(reopened), counts(reopened));
});

Deno.test("a sync that fails half-way, then a revert: the counts follow what is on disk", async () => {
  const dir = await tempDir();
  await using tracker = await openTracker(dir, { fileSize: 10, syncAt: Infinity });
  for (let i = 0; i < 50; i++) tracker.add(`t${i}`);
  await tracker.sync();
  for (let i = 0; i < 50; i++) tracker.markDone(`t${i}`);
  await injectFaults([{ op: "rename", path: "shard-", nth: 2, times: 2 }], async () => {
    await assert.rejects(tracker.sync());
  });
  await tracker.revert(); // drops what did not reach the disk
  const done = tracker.numDone();
  assert.ok(done > 0 && done < 50, `${done} done`);
  assert.equal(done % 10, 0, "whole shards were written, or none of them");
  assert.deepEqual(recount(tracker), counts(tracker));
});
