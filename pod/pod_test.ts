import assert from "node:assert/strict";
import { tempDir } from "../_testing/fs.ts";
import { readText as read, shardFiles } from "../_testing/pod.ts";
import { join } from "node:path";
import {
  type FileHandle,
  type FileSystem,
  fs,
  InjectedFault,
  injectFaults,
  setFileSystem,
} from "../_internal/fs.ts";
import { AtomicWriteError } from "../atomic/mod.ts";
import { CorruptFileError, openPod, PersistentOrderedDict, Pod } from "./mod.ts";

Deno.test("a pod reads like a Map and keeps insertion order", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir);
  assert.ok(pod instanceof Pod);
  assert.equal(PersistentOrderedDict, Pod);
  assert.equal(pod.size, 0);
  pod.set("b", 1).set("a", 2).set("c", 3);
  assert.equal(pod.get("a"), 2);
  assert.equal(pod.get("missing"), undefined);
  assert.ok(pod.has("c"));
  assert.ok(!pod.has("d"));
  assert.deepEqual([...pod.keys()], ["b", "a", "c"]);
  assert.deepEqual([...pod.values()], [1, 2, 3]);
  assert.deepEqual([...pod.entries()], [["b", 1], ["a", 2], ["c", 3]]);
  assert.deepEqual([...pod], [["b", 1], ["a", 2], ["c", 3]]);
  const seen: string[] = [];
  pod.forEach(function (this: unknown, value, key, self) {
    assert.equal(self, pod);
    assert.equal(this, seen);
    seen.push(`${key}=${value}`);
  }, seen);
  assert.deepEqual(seen, ["b=1", "a=2", "c=3"]);
  pod.set("b", 10); // an update keeps its place
  assert.deepEqual([...pod.keys()], ["b", "a", "c"]);
  assert.equal(pod.delete("b"), true);
  assert.equal(pod.delete("b"), false);
  pod.set("b", 11); // a re-insert goes to the end
  assert.deepEqual([...pod.keys()], ["a", "c", "b"]);
  pod.update({ d: 4 });
  pod.update(new Map([["e", 5]]));
  pod.update([["f", 6], ["a", 7]]);
  assert.deepEqual([...pod.keys()], ["a", "c", "b", "d", "e", "f"]);
  assert.equal(pod.get("a"), 7);
  pod.clear();
  assert.equal(pod.size, 0);
  assert.equal(String(pod), "[object Pod]");
});

Deno.test("order survives deletes, re-inserts and reopening, across shards", async () => {
  const dir = await tempDir();
  const expected: string[] = [];
  {
    await using pod = await openPod<number>(dir, { fileSize: 3 });
    for (let i = 0; i < 10; i++) pod.set(`k${i}`, i);
    await pod.sync();
    // Deleted and re-inserted before the next sync: back in its own shard.
    pod.delete("k1");
    pod.set("k1", 100);
    // Deleted, synced, then re-inserted: lands in the last shard.
    pod.delete("k4");
    await pod.sync();
    pod.set("k4", 400);
    pod.delete("k7");
    pod.set("k0", -1); // update in place
    expected.push(...pod.keys());
  }
  assert.deepEqual(expected, ["k0", "k2", "k3", "k5", "k6", "k8", "k9", "k1", "k4"]);
  await using pod = await openPod<number>(dir);
  assert.deepEqual([...pod.keys()], expected);
  assert.equal(pod.get("k1"), 100);
  assert.equal(pod.get("k4"), 400);
  assert.equal(pod.get("k0"), -1);
  // Each key is in exactly one file.
  const seen = new Map<string, string>();
  for (const name of shardFiles(dir)) {
    for (const [key] of JSON.parse(read(dir, name)).slice(1)) {
      assert.ok(!seen.has(key), `${key} in ${seen.get(key)} and ${name}`);
      seen.set(key, name);
    }
  }
  assert.equal(seen.size, expected.length);
});

Deno.test("the shard file is readable JSON, one record per line", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod(dir);
    pod.set("alpha", { n: 1 });
    pod.set("beta", [1, 2, 3]);
  }
  assert.deepEqual(shardFiles(dir), ["shard-000000.json"]);
  assert.equal(
    read(dir, "shard-000000.json"),
    '[{"pod":1,"n":2,"seq":[0,1]},\n["alpha",0,{"n":1}],\n["beta",1,[1,2,3]]]\n',
  );
  const names = Array.from(Deno.readDirSync(dir), (entry) => entry.name).sort();
  assert.deepEqual(names, [".lock", "shard-000000.json"]);
});

Deno.test("keys must be strings", async () => {
  await using pod = await openPod(await tempDir());
  for (const key of [1, null, undefined, Symbol("k"), {}, ["a"]]) {
    const bad = key as unknown as string;
    assert.throws(() => pod.set(bad, 1), TypeError);
    assert.throws(() => pod.get(bad), TypeError);
    assert.throws(() => pod.has(bad), TypeError);
    assert.throws(() => pod.delete(bad), TypeError);
    assert.throws(() => pod.markDirty(bad), TypeError);
    await assert.rejects(pod.syncKey(bad), TypeError);
    assert.throws(() => pod.update([[bad, 1]]), TypeError);
  }
  assert.equal(pod.size, 0);
});

Deno.test("values the format cannot store are refused at set, naming the key", async () => {
  const dir = await tempDir();
  await using pod = await openPod(dir);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  for (const value of [undefined, 10n, () => 1, { x: NaN }, [1, undefined], cyclic, new Map()]) {
    assert.throws(() => pod.set("bad", value), (error: unknown) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /key "bad"/);
      return true;
    });
  }
  assert.throws(() => pod.update({ good: 1, bad: 10n }), TypeError);
  assert.equal(pod.size, 0, "a failed update changes nothing");
  pod.set("date", new Date(0)); // JSON stores it as its ISO string
  pod.set("nested", { a: [{ b: null, c: "x", d: true }] });
  await pod.sync();
  await pod.revert();
  assert.equal(pod.get("date"), "1970-01-01T00:00:00.000Z");
});

Deno.test("values changed in place after get are saved (mark-on-read)", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod<{ list: number[]; n: number }>(dir);
    pod.set("k", { list: [], n: 0 });
    await pod.sync();
    pod.get("k")!.list.push(1);
    assert.ok(pod.dirty().has("k"));
    await pod.sync();
    for (const [, value] of pod) value.n = 5;
    pod.forEach((value) => value.list.push(2));
  }
  await using pod = await openPod<{ list: number[]; n: number }>(dir);
  assert.deepEqual(pod.get("k"), { list: [1, 2], n: 5 });
});

class CountingFs {
  writes = 0;
  bytes = 0;
  files = new Set<string>();

  install(): () => void {
    const base = fs;
    const wrapHandle = (handle: FileHandle): FileHandle =>
      new Proxy(handle, {
        get: (target, key) => {
          const value = Reflect.get(target, key);
          if (key === "write" || key === "writeSync") {
            return (data: Uint8Array) => {
              this.writes++;
              this.bytes += data.byteLength;
              this.files.add(handle.path.replace(/^.*\/\.?/, "").replace(/\.[0-9a-z]+\.tmp$/, ""));
              return (value as (data: Uint8Array) => unknown).call(target, data);
            };
          }
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    const counting: FileSystem = {
      ...base,
      open: async (path, options) => wrapHandle(await base.open(path, options)),
      openSync: (path, options) => wrapHandle(base.openSync(path, options)),
    };
    return setFileSystem(counting);
  }
}

Deno.test("a value changed in place into something unstorable fails the sync, naming the key", async () => {
  const dir = await tempDir();
  await using pod = await openPod<Record<string, unknown>>(dir);
  pod.set("ok", { n: 1 });
  pod.set("k", { n: 1 });
  await pod.sync();
  pod.get("k")!.f = () => 1;
  await assert.rejects(pod.sync(), (error: unknown) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /key "k"/);
    return true;
  });
  assert.deepEqual([...pod.dirty()], ["k"]);
  delete pod.get("k")!.f;
  await pod.sync();
  assert.equal(pod.dirty().size, 0);
});

Deno.test("reading values does not write files unless they changed", async () => {
  const dir = await tempDir();
  await using pod = await openPod<{ n: number }>(dir, { fileSize: 10 });
  for (let i = 0; i < 50; i++) pod.set(`k${i}`, { n: i });
  await pod.sync();
  const counter = new CountingFs();
  const restore = counter.install();
  try {
    let total = 0;
    for (const value of pod.values()) total += value.n;
    assert.equal(total, 1225);
    assert.equal(pod.dirty().size, 50);
    await pod.sync();
    assert.equal(counter.writes, 0);
    pod.get("k12")!.n = -1;
    await pod.sync();
    assert.deepEqual([...counter.files], ["shard-000001.json"]);
  } finally {
    restore();
  }
  assert.equal(pod.dirty().size, 0);
});

Deno.test("a sync after changing 1 key of 100k rewrites one shard", async () => {
  const dir = await tempDir();
  await using pod = await openPod<{ id: number; name: string }>(dir);
  for (let i = 0; i < 100_000; i++) pod.set(`key${i}`, { id: i, name: `item ${i}` });
  await pod.sync();
  const total = shardFiles(dir).reduce((sum, name) => sum + Deno.statSync(join(dir, name)).size, 0);
  assert.equal(shardFiles(dir).length, 100);
  pod.set("key54321", { id: -1, name: "changed" });
  const counter = new CountingFs();
  const restore = counter.install();
  try {
    await pod.sync();
  } finally {
    restore();
  }
  assert.deepEqual([...counter.files], ["shard-000054.json"]);
  assert.ok(counter.bytes < total / 50, `${counter.bytes} bytes of ${total}`);
  console.log(`1 key of 100k changed: sync wrote ${counter.bytes} bytes (pod: ${total} bytes)`);
});

Deno.test("100k keys round trip", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod<{ i: number; tags: string[] }>(dir);
    for (let i = 0; i < 100_000; i++) pod.set(`key-${i}`, { i, tags: [`t${i % 7}`] });
    for (let i = 0; i < 100_000; i += 1000) pod.delete(`key-${i}`);
    for (let i = 0; i < 100_000; i += 1000) pod.set(`key-${i}`, { i: -i, tags: [] });
  }
  await using pod = await openPod<{ i: number; tags: string[] }>(dir);
  assert.equal(pod.size, 100_000);
  const keys = [...pod.keys()];
  assert.equal(keys[0], "key-1");
  assert.equal(keys[99_899], "key-99999");
  assert.equal(keys[99_900], "key-0");
  assert.equal(keys[99_999], "key-99000");
  assert.deepEqual(pod.get("key-500"), { i: 500, tags: ["t3"] });
  assert.deepEqual(pod.get("key-2000"), { i: -2000, tags: [] });
});

Deno.test("automatic sync at syncAt, hold and unhold", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir, { syncAt: 5, fileSize: 100 });
  for (let i = 0; i < 4; i++) pod.set(`k${i}`, i);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(pod.dirty().size, 4);
  assert.deepEqual(shardFiles(dir), []);
  pod.set("k4", 4);
  await new Promise((resolve) => setTimeout(resolve, 0));
  await pod.sync(); // waits for the automatic one
  assert.equal(pod.dirty().size, 0);
  assert.deepEqual(shardFiles(dir), ["shard-000000.json"]);

  pod.hold();
  for (let i = 5; i < 20; i++) pod.set(`k${i}`, i);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(pod.dirty().size, 15);
  await pod.unhold();
  assert.equal(pod.dirty().size, 0);
  assert.equal(JSON.parse(read(dir, "shard-000000.json")).length, 21);
});

Deno.test("syncKey writes the shard of one key; markDirty and dirty", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number[]>(dir, { fileSize: 2 });
  pod.update({ a: [1], b: [2], c: [3] });
  assert.deepEqual([...pod.dirty()].sort(), ["a", "b", "c"]);
  await pod.syncKey("c");
  assert.deepEqual(shardFiles(dir), ["shard-000001.json"]);
  assert.deepEqual([...pod.dirty()].sort(), ["a", "b"]);
  await pod.sync();
  pod.markDirty("b");
  pod.markDirty("nothing"); // ignored
  assert.deepEqual([...pod.dirty()], ["b"]);
  await pod.syncKey("missing");
  await pod.syncKey("b");
  assert.equal(pod.dirty().size, 0);
});

Deno.test("revert drops unsynced changes", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir);
  pod.update({ a: 1, b: 2 });
  await pod.sync();
  pod.delete("a");
  pod.set("b", 20);
  pod.set("c", 3);
  await pod.revert();
  assert.deepEqual([...pod.entries()], [["a", 1], ["b", 2]]);
  assert.equal(pod.dirty().size, 0);
  pod.set("d", 4); // sequence numbers go on after a revert
  await pod.sync();
  await pod.revert();
  assert.deepEqual([...pod.keys()], ["a", "b", "d"]);
});

Deno.test("opening the same path twice in one thread shares the data", async () => {
  const dir = await tempDir();
  const a = await openPod<{ n: number }>(dir);
  const b = await openPod<{ n: number }>(`${dir}/./`);
  a.set("x", { n: 1 });
  assert.equal(b.get("x"), a.get("x"));
  b.get("x")!.n = 2;
  assert.equal(a.get("x")!.n, 2);
  await a.close();
  assert.ok(a.closed);
  assert.throws(() => a.get("x"), TypeError);
  b.set("y", { n: 3 }); // still open through b
  await b.close();
  await b.close(); // idempotent
  await using c = await openPod<{ n: number }>(dir);
  assert.deepEqual([...c.entries()], [["x", { n: 2 }], ["y", { n: 3 }]]);
  await assert.rejects(openPod(dir, { format: "msgpack" }), TypeError);
});

Deno.test("read-only handles", async () => {
  const dir = await tempDir();
  await assert.rejects(openPod(`${dir}/missing`, { readOnly: true }), Deno.errors.NotFound);
  await assert.rejects(openPod(dir, { readOnly: true, init: { a: 1 } }), TypeError);
  const writer = await openPod<number>(dir);
  writer.set("a", 1);
  // In the writer's thread, a read-only handle is live.
  const live = await openPod<number>(dir, { readOnly: true });
  assert.ok(live.readOnly);
  assert.equal(live.get("a"), 1);
  assert.throws(() => live.set("b", 2), TypeError);
  assert.throws(() => live.delete("a"), TypeError);
  assert.throws(() => live.clear(), TypeError);
  assert.throws(() => live.hold(), TypeError);
  writer.set("a", 2);
  assert.equal(live.get("a"), 2);
  await live.close();
  await writer.close();
  // Without a writer here, it is a snapshot of the files.
  const snapshot = await openPod<number>(dir, { readOnly: true });
  const writer2 = await openPod<number>(dir);
  writer2.set("c", 3);
  await writer2.sync();
  assert.ok(!snapshot.has("c"));
  await snapshot.revert();
  assert.equal(snapshot.get("c"), 3);
  await snapshot.close();
  await writer2.close();
});

Deno.test("gzip and msgpack round trips", async () => {
  for (
    const [format, gzip] of [["json", true], ["msgpack", false], ["msgpack", true]] as const
  ) {
    const dir = await tempDir();
    const value = format === "msgpack"
      ? { when: new Date(86_400_000), bytes: new Uint8Array([1, 2, 3]), list: [1, "two", null] }
      : { when: "1970-01-02", list: [1, "two", null], nested: { deep: [true] } };
    {
      await using pod = await openPod(dir, { format, gzip, fileSize: 2 });
      for (let i = 0; i < 5; i++) pod.set(`k${i}`, { ...value, i });
      pod.delete("k1");
      pod.set("k1", 1);
    }
    const files = shardFiles(dir);
    assert.deepEqual(files, [0, 1, 2].map((i) => `shard-00000${i}.${format}${gzip ? ".gz" : ""}`));
    if (gzip) {
      assert.deepEqual([...Deno.readFileSync(join(dir, files[0])).subarray(0, 2)], [31, 139]);
    }
    // The stored format is detected on reopening.
    await using pod = await openPod(dir);
    assert.deepEqual([...pod.keys()], ["k0", "k2", "k3", "k4", "k1"]);
    assert.deepEqual(pod.get("k3"), { ...value, i: 3 });
    await assert.rejects(
      openPod(dir, { format: format === "json" ? "msgpack" : "json" }),
      TypeError,
    );
    await assert.rejects(openPod(dir, { gzip: !gzip }), TypeError);
  }
});

Deno.test("a corrupt shard is a CorruptFileError naming it, and nothing is overwritten", async () => {
  const cases: [string, Uint8Array | string][] = [
    ["shard-000001.json", '[{"pod":1},\n["a",0,1],\n["b",1,'],
    ["shard-000001.json", '{"not":"a shard"}'],
    ["shard-000001.json", '[{"pod":1},["a","x",1]]'],
    ["shard-000001.json", '[{"pod":1},["a",0,1],["a",1,2]]'],
    ["shard-000001.json", '[{"pod":99}]'],
    ["shard-000001.json", new Uint8Array([0xff, 0xfe])],
  ];
  for (const [name, contents] of cases) {
    const dir = await tempDir();
    {
      await using pod = await openPod(dir, { fileSize: 1 });
      pod.update({ x: 1, y: 2 });
    }
    const path = join(dir, name);
    if (typeof contents === "string") Deno.writeTextFileSync(path, contents);
    else Deno.writeFileSync(path, contents);
    const before = Deno.readFileSync(path);
    await assert.rejects(openPod(dir), (error: unknown) => {
      assert.ok(error instanceof CorruptFileError, String(error));
      assert.equal(error.path, path);
      assert.match(error.message, /shard-000001\.json/);
      return true;
    });
    assert.deepEqual(Deno.readFileSync(path), before);
    assert.equal(read(dir, "shard-000000.json"), '[{"pod":1,"n":1,"seq":[0,0]},\n["x",0,1]]\n');
    // The lock was released: a read-only open fails the same way, and so
    // does a writable one again.
    await assert.rejects(openPod(dir), CorruptFileError);
  }
  const dir = await tempDir();
  Deno.writeFileSync(join(dir, "shard-000000.json.gz"), new Uint8Array([1, 2, 3]));
  await assert.rejects(openPod(dir), CorruptFileError);
  Deno.writeTextFileSync(join(dir, "shard-000001.msgpack"), "x");
  await assert.rejects(openPod(dir), CorruptFileError); // mixed formats
});

Deno.test("a failing sync keeps keys dirty and the pod usable; the next sync writes them", async () => {
  for (const op of ["open", "write", "fsync", "rename", "dirFsync"] as const) {
    const dir = await tempDir();
    const pod = await openPod<number>(dir, { fileSize: 2 });
    pod.update({ a: 1, b: 2, c: 3, d: 4, e: 5 });
    await pod.sync();
    pod.set("a", 10); // shard 0
    pod.set("c", 30); // shard 1
    pod.delete("e"); // shard 2, left empty: removed
    // The directory is flushed once, after every shard was renamed.
    const afterRenames = op === "dirFsync";
    const fault = afterRenames ? { op } : { op, path: "shard-000001" };
    await injectFaults([fault], async (log) => {
      await assert.rejects(pod.sync(), (error: unknown) => {
        assert.ok(error instanceof AtomicWriteError || error instanceof InjectedFault, `${op}`);
        if (error instanceof AtomicWriteError) assert.ok(error.cause instanceof InjectedFault);
        return true;
      });
      assert.equal(log.fired, 1);
    });
    assert.deepEqual([...pod.dirty()].sort(), afterRenames ? ["a", "c", "e"] : ["c"], op);
    assert.equal(pod.get("c"), 30);
    // Each file is whole: the old version, or (renamed before the failed
    // flush) the new one, which the next sync writes again.
    assert.equal(
      read(dir, "shard-000001.json"),
      afterRenames
        ? '[{"pod":1,"n":2,"seq":[2,3]},\n["c",2,30],\n["d",3,4]]\n'
        : '[{"pod":1,"n":2,"seq":[2,3]},\n["c",2,3],\n["d",3,4]]\n',
    );
    pod.set("f", 6);
    await pod.sync();
    assert.equal(pod.dirty().size, 0);
    await pod.close();
    await using again = await openPod<number>(dir);
    assert.deepEqual([...again.entries()], [["a", 10], ["b", 2], ["c", 30], ["d", 4], ["f", 6]]);
  }
});

Deno.test("removing an empty shard that fails keeps the deletion dirty", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir, { fileSize: 1 });
  pod.update({ a: 1, b: 2 });
  await pod.sync();
  pod.delete("b");
  await injectFaults([{ op: "remove", path: "shard-000001" }], async () => {
    await assert.rejects(pod.sync(), InjectedFault);
  });
  assert.deepEqual([...pod.dirty()], ["b"]);
  await pod.sync();
  assert.deepEqual(shardFiles(dir), ["shard-000000.json"]);
});

Deno.test("an automatic sync that fails reports to onError and keeps the keys", async () => {
  const dir = await tempDir();
  const errors: unknown[] = [];
  await using pod = await openPod<number>(dir, { syncAt: 2, onError: (e) => errors.push(e) });
  await injectFaults([{ op: "rename", path: "shard-", times: 100 }], async () => {
    pod.update({ a: 1, b: 2 });
    // The automatic sync runs in the background: wait for its report.
    while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  });
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof AtomicWriteError);
  assert.equal(pod.dirty().size, 2);
  await pod.sync();
  assert.equal(pod.dirty().size, 0);
});

Deno.test("a close whose sync fails keeps the handle open", async () => {
  const dir = await tempDir();
  const pod = await openPod<number>(dir);
  pod.set("a", 1);
  await injectFaults([{ op: "fsync", path: "shard-", times: 10 }], async () => {
    await assert.rejects(pod.close(), AtomicWriteError);
  });
  assert.ok(!pod.closed);
  assert.equal(pod.get("a"), 1);
  await pod.close();
  assert.equal(read(dir, "shard-000000.json"), '[{"pod":1,"n":1,"seq":[0,0]},\n["a",0,1]]\n');
});

Deno.test("leftover temporary files are removed on open; other files are left alone", async () => {
  const dir = await tempDir();
  Deno.writeTextFileSync(join(dir, ".shard-000000.json.abc123.tmp"), "partial");
  Deno.writeTextFileSync(join(dir, "notes.txt"), "mine");
  await using _pod = await openPod(dir);
  const names = Array.from(Deno.readDirSync(dir), (entry) => entry.name).sort();
  assert.deepEqual(names, [".lock", "notes.txt"]);
});

Deno.test("option checks", async () => {
  const dir = await tempDir();
  await assert.rejects(openPod(dir, { syncAt: 0 }), RangeError);
  await assert.rejects(openPod(dir, { fileSize: 1.5 }), RangeError);
  await assert.rejects(openPod(dir, { format: "yaml" as never }), TypeError);
  await assert.rejects(openPod(dir, { gzip: "yes" as never }), TypeError);
  await assert.rejects(openPod(dir, { lockTimeout: -1 }), RangeError);
  await assert.rejects(openPod(dir, { init: 5 as never }), TypeError);
  // The failed init closed the pod again: it opens.
  await using pod = await openPod(dir, { syncAt: Infinity, init: [["a", 1]] });
  assert.equal(pod.size, 1);
});

Deno.test("a file where the pod directory should be is an error", async () => {
  const dir = await tempDir();
  Deno.writeTextFileSync(join(dir, "file"), "x");
  await assert.rejects(openPod(join(dir, "file")));
  assert.equal(Deno.readTextFileSync(join(dir, "file")), "x");
});

Deno.test("new shards: dirty keys, deletes, re-inserts and a failed first sync are counted exactly", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir, { fileSize: 4, syncAt: 7 });
  pod.hold(); // no automatic sync while the counts are checked
  for (let i = 0; i < 6; i++) pod.set(`k${i}`, i); // shards 0 (k0–k3) and 1 (k4, k5)
  pod.delete("k1");
  pod.set("k1", 11); // back into shard 0, at the end of the order
  pod.delete("k5");
  pod.set("k2", 22);
  assert.deepEqual([...pod.dirty()].sort(), ["k0", "k1", "k2", "k3", "k4", "k5"]);
  await injectFaults([{ op: "rename", path: "shard-000000" }], async () => {
    await assert.rejects(pod.sync(), AtomicWriteError);
  });
  // Shard 1 was written; shard 0 is new and dirty as a whole again.
  assert.deepEqual([...pod.dirty()].sort(), ["k0", "k1", "k2", "k3"]);
  pod.set("k6", 6); // shard 1 (written): one more dirty key
  assert.deepEqual([...pod.dirty()].sort(), ["k0", "k1", "k2", "k3", "k6"]);
  await pod.unhold(); // 5 dirty keys: below syncAt, nothing written
  assert.equal(pod.dirty().size, 5);
  pod.set("k7", 7); // shard 1, now full
  pod.set("k8", 8); // shard 2, new: 7 dirty keys reach syncAt
  await new Promise((resolve) => setTimeout(resolve, 0));
  await pod.sync(); // waits for the automatic one
  assert.equal(pod.dirty().size, 0);
  await pod.close();
  await using again = await openPod<number>(dir);
  assert.deepEqual([...again.entries()], [
    ["k0", 0],
    ["k2", 22],
    ["k3", 3],
    ["k4", 4],
    ["k1", 11],
    ["k6", 6],
    ["k7", 7],
    ["k8", 8],
  ]);
});

Deno.test("after a failed directory flush, the next sync flushes again even with nothing to write", async () => {
  const dir = await tempDir();
  await using pod = await openPod<{ n: number }>(dir);
  pod.set("a", { n: 1 });
  await pod.sync();
  pod.get("a")!.n = 2;
  await injectFaults([{ op: "dirFsync" }], async () => {
    await assert.rejects(pod.sync());
  });
  assert.deepEqual([...pod.dirty()], ["a"]);
  // The file already holds {"n":2}: the sync compares, writes nothing, and
  // still flushes the directory, which the rename needs to be durable.
  await injectFaults([], async (log) => {
    await pod.sync();
    assert.ok(log.calls.some((call) => call.startsWith("dirFsync")), log.calls.join("; "));
    assert.ok(!log.calls.some((call) => call.startsWith("rename")), log.calls.join("; "));
  });
  assert.equal(pod.dirty().size, 0);
  await pod.sync();
  assert.equal(JSON.parse(read(dir, "shard-000000.json"))[1][2].n, 2);
});

Deno.test("after failed directory flushes, close and revert flush before they finish", async () => {
  const dir = await tempDir();
  const pod = await openPod<{ n: number }>(dir);
  pod.set("a", { n: 1 });
  await pod.sync();
  pod.get("a")!.n = 2;
  await injectFaults([{ op: "dirFsync", times: 2 }], async () => {
    await assert.rejects(pod.sync()); // renamed, not flushed
    await assert.rejects(pod.sync()); // same bytes: waits for a flush, which fails again
  });
  assert.deepEqual([...pod.dirty()], ["a"]);
  await injectFaults([], async (log) => {
    await pod.revert();
    assert.ok(log.calls.some((call) => call.startsWith("dirFsync")), log.calls.join("; "));
  });
  assert.equal(pod.get("a")!.n, 2);
  pod.get("a")!.n = 3;
  await injectFaults([{ op: "dirFsync" }], async () => {
    await assert.rejects(pod.sync());
  });
  await injectFaults([], async (log) => {
    await pod.close();
    assert.ok(log.calls.some((call) => call.startsWith("dirFsync")), log.calls.join("; "));
  });
  await using again = await openPod<{ n: number }>(dir);
  assert.equal(again.get("a")!.n, 3);
});
