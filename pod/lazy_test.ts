import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "../_testing/fs.ts";
import { countShardReads, readText as read, shardFiles, shardName } from "../_testing/pod.ts";
import { CorruptFileError, openPod } from "./mod.ts";

/** The header of a JSON shard: its first line without the `[` and the `,`. */
function jsonHeader(text: string): { pod: number; n?: number; seq?: [number, number] } {
  const line = text.slice(0, text.indexOf("\n"));
  return JSON.parse(line.slice(1, -1));
}

/** The bytes of every shard file of `dir`, by name. */
function snapshot(dir: string): Map<string, Uint8Array> {
  return new Map(shardFiles(dir).map((name) => [name, Deno.readFileSync(join(dir, name))]));
}

/** A pod of `count` keys `k0`, `k1`, … with values 0, 1, …, written and closed. */
async function fill(dir: string, count: number, fileSize: number): Promise<void> {
  await using pod = await openPod<number>(dir, { fileSize });
  for (let i = 0; i < count; i++) pod.set(`k${i}`, i);
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `k${from + i}`);

Deno.test("lazy open: order, entries and size match an eager open and a Map", async () => {
  const dir = await tempDir();
  const model = new Map<string, unknown>();
  {
    await using pod = await openPod(dir, { fileSize: 10 });
    const set = (key: string, value: unknown) => {
      pod.set(key, value);
      model.set(key, value);
    };
    const del = (key: string) => assert.equal(pod.delete(key), model.delete(key));
    for (let i = 0; i < 200; i++) set(`k${i}`, i % 3 === 0 ? { i } : i);
    await pod.sync();
    // Deleted and set again before a sync: back in their own shard with a
    // new, larger seq, so that shard's range overlaps the later ones.
    for (const i of [185, 123, 57]) {
      del(`k${i}`);
      set(`k${i}`, [i]);
    }
    // Deleted and synced (shard 1 empties and goes); some come back later, at the end.
    for (const i of [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 40, 41, 99, 150]) del(`k${i}`);
    await pod.sync();
    for (const i of [12, 41]) set(`k${i}`, `again ${i}`);
    for (let i = 200; i < 240; i++) set(`k${i}`, i);
    await pod.sync();
    del("k205");
    set("k205", "moved"); // overlaps again, in the last shards
    set("k7", "updated in place");
    del("k0");
    del("k239");
  }
  // The layout this test is about: some shard ranges overlap, and shard 1,
  // emptied, is gone.
  const headers = shardFiles(dir).map((name) => jsonHeader(read(dir, name)));
  assert.ok(!shardFiles(dir).includes(shardName(1)));
  let overlaps = 0;
  for (let a = 0; a < headers.length; a++) {
    for (let b = a + 1; b < headers.length; b++) {
      const [x, y] = [headers[a].seq!, headers[b].seq!];
      if (x[0] <= y[1] && y[0] <= x[1]) overlaps++;
    }
  }
  assert.ok(overlaps > 0);
  assert.equal(headers.reduce((sum, header) => sum + header.n!, 0), model.size);

  const expected = [...model.entries()];
  {
    await using eager = await openPod(dir, { lazy: false });
    assert.equal(eager.size, model.size);
    assert.deepEqual([...eager.entries()], expected);
  }
  {
    const reads = countShardReads();
    try {
      await using lazy = await openPod(dir);
      // Several groups: not everything is read at open.
      assert.ok(reads.shards() < headers.length, `${reads.shards()} of ${headers.length}`);
      assert.equal(lazy.size, model.size);
      assert.equal(reads.shards(), 1);
      assert.deepEqual([...lazy.keys()], [...model.keys()]);
      assert.equal(reads.whole.length, headers.length);
    } finally {
      reads.restore();
    }
  }
  {
    await using lazy = await openPod(dir);
    assert.equal(lazy.size, model.size);
    assert.deepEqual([...lazy.entries()], expected);
    assert.equal(lazy.size, model.size);
  }
  {
    await using lazy = await openPod(dir);
    assert.deepEqual([...lazy.values()], [...model.values()]);
  }
  {
    await using lazy = await openPod(dir);
    const seen: [string, unknown][] = [];
    lazy.forEach((value, key) => seen.push([key, value]));
    assert.deepEqual(seen, expected);
  }
  {
    await using lazy = await openPod(dir);
    assert.deepEqual([...lazy], expected);
  }
  {
    // A lookup first reads everything; the order is the same.
    await using lazy = await openPod(dir);
    assert.equal(lazy.get("k238"), 238);
    assert.equal(lazy.get("k239"), undefined);
    assert.deepEqual([...lazy], expected);
  }
  {
    // A lookup half-way through an iteration.
    await using lazy = await openPod(dir);
    const seen: string[] = [];
    for (const key of lazy.keys()) {
      seen.push(key);
      if (seen.length === 5) assert.equal(lazy.has("k238"), true);
    }
    assert.deepEqual(seen, [...model.keys()]);
  }
  // Nothing was written by reading.
  const again = await openPod(dir, { lazy: false });
  assert.deepEqual([...again], expected);
  await again.close();
});

Deno.test("a lazy open reads headers only; records are read when needed, once", async () => {
  const dir = await tempDir();
  await fill(dir, 1000, 10);
  assert.equal(shardFiles(dir).length, 100);
  const all = range(0, 1000);

  let reads = countShardReads();
  try {
    const pod = await openPod<number>(dir);
    assert.ok(reads.shards() <= 1, `read at open: ${reads.whole}`);
    assert.equal(new Set(reads.opened).size, 100); // every header
    const atOpen = reads.shards();
    assert.equal(pod.size, 1000);
    assert.equal(reads.shards(), atOpen);
    assert.equal(pod.get("k3"), 3);
    assert.equal(pod.has("k9"), true);
    assert.equal(reads.shards(), 1);
    const first: string[] = [];
    for (const key of pod.keys()) {
      first.push(key);
      if (first.length === 15) break;
    }
    assert.deepEqual(first, range(0, 15));
    assert.equal(reads.shards(), 2);
    // A change among the keys read: the sync writes its shard only.
    pod.set("k12", -12);
    await pod.sync();
    assert.equal(reads.shards(), 2);
    assert.equal(pod.get("k995"), 995); // not among those read: reads the rest
    assert.equal(reads.shards(), 100);
    assert.equal(reads.whole.length, 100); // each file once
    assert.deepEqual([...pod.keys()], all);
    assert.equal(reads.whole.length, 100);
    await pod.close();
  } finally {
    reads.restore();
  }
  assert.match(read(dir, shardName(1)), /\["k12",12,-12\]/);

  // A key that is not there reads everything, once.
  reads = countShardReads();
  try {
    const pod = await openPod<number>(dir);
    assert.equal(pod.has("missing"), false);
    assert.equal(reads.shards(), 100);
    assert.equal(pod.get("missing"), undefined);
    assert.equal(reads.whole.length, 100);
    await pod.close();
  } finally {
    reads.restore();
  }

  // Iterating to the end reads each shard once; so does an eager open, at open.
  reads = countShardReads();
  try {
    const pod = await openPod<number>(dir);
    assert.equal([...pod.values()].length, 1000);
    assert.equal(reads.whole.length, 100);
    await pod.close();
    reads.reset();
    const eager = await openPod<number>(dir, { lazy: false });
    assert.equal(reads.shards(), 100);
    await eager.close();
    reads.reset();
    // A read-only open with no writer in this thread reads everything at open.
    const snapshot = await openPod<number>(dir, { readOnly: true });
    assert.equal(reads.shards(), 100);
    assert.equal(snapshot.size, 1000);
    await snapshot.close();
    reads.reset();
    // A read-only handle joining a lazy writer in this thread is lazy too.
    const writer = await openPod<number>(dir);
    const viewer = await openPod<number>(dir, { readOnly: true });
    assert.ok(reads.shards() <= 1);
    assert.equal(viewer.get("k500"), 500);
    assert.equal(reads.shards(), 100);
    await viewer.close();
    await writer.close();
  } finally {
    reads.restore();
  }
});

Deno.test("deleting the last entry read while shards are unread: iterations still see every key", async () => {
  const all = range(0, 50);
  const without = (...keys: string[]) => all.filter((key) => !keys.includes(key));
  /** Runs `scenario` on a fresh lazily opened pod of 5 shards; checks the result on disk. */
  const check = async (
    scenario: (pod: Awaited<ReturnType<typeof openPod<number>>>) => void,
    expected: string[],
  ) => {
    const dir = await tempDir();
    await fill(dir, 50, 10);
    {
      await using pod = await openPod<number>(dir);
      scenario(pod);
      assert.equal(pod.size, expected.length);
      assert.deepEqual([...pod.keys()], expected);
    }
    await using pod = await openPod<number>(dir, { lazy: false });
    assert.deepEqual([...pod.keys()], expected);
  };
  // The last key of the first shard, the only one read.
  await check((pod) => assert.equal(pod.delete("k9"), true), without("k9"));
  // The whole first shard, in order, then the last key of the next.
  await check((pod) => {
    for (let i = 0; i < 10; i++) pod.delete(`k${i}`);
    pod.delete("k19");
  }, range(10, 50).filter((key) => key !== "k19"));
  // Backwards through the first shard.
  await check((pod) => {
    for (let i = 9; i >= 0; i--) pod.delete(`k${i}`);
  }, range(10, 50));
  // During an iteration: the last key read, ahead of the walk; then the current one.
  await check((pod) => {
    const seen: string[] = [];
    for (const key of pod.keys()) {
      seen.push(key);
      if (key === "k12") pod.delete("k19");
      if (key === "k25") pod.delete("k29");
      if (key === "k30") pod.delete("k30");
    }
    assert.deepEqual(seen, without("k19", "k29"));
  }, without("k19", "k29", "k30"));
  // The current key is the last one read.
  await check((pod) => {
    const seen: string[] = [];
    for (const key of pod.keys()) {
      seen.push(key);
      if (key.endsWith("9")) pod.delete(key);
    }
    assert.deepEqual(seen, all);
  }, all.filter((key) => !key.endsWith("9")));
  // Deleted, then set again: back at the end.
  await check((pod) => {
    pod.delete("k9");
    pod.set("k9", 9);
  }, [...without("k9"), "k9"]);
});

Deno.test("for..of on a lazy pod while deleting and setting keys behaves like a Map", async () => {
  const dir = await tempDir();
  await fill(dir, 60, 10);
  const model = new Map<string, unknown>(range(0, 60).map((key, i) => [key, i]));
  interface Store {
    delete(key: string): boolean;
    set(key: string, value: unknown): unknown;
    has(key: string): boolean;
  }
  /** What the loop body does at `key`, the same for the pod and the Map. */
  const step = (store: Store, key: string) => {
    const i = Number(key.slice(1));
    if (i % 7 === 0) store.delete(`k${i + 3}`); // ahead: never visited
    if (i % 5 === 0 && store.has(`k${i + 1}`)) store.set(`k${i + 1}`, -1000 - i); // ahead, in place
    if (i % 4 === 1) store.set(`k${i - 1}`, `was ${i}`); // behind, or back at the end if deleted
    if (i % 11 === 0) store.delete(key); // the current key
    if (i % 9 === 4 && !store.has(`k${i - 2}`)) store.set(`k${i - 2}`, "back"); // to the end
  };
  const visitedModel: [string, unknown][] = [];
  for (const [key, value] of model) {
    visitedModel.push([key, value]);
    step(model, key);
    assert.ok(visitedModel.length < 500);
  }
  {
    await using pod = await openPod(dir);
    const visited: [string, unknown][] = [];
    for (const [key, value] of pod) {
      visited.push([key, value]);
      step(pod as Store, key);
      assert.ok(visited.length < 500);
    }
    assert.deepEqual(visited, visitedModel);
    assert.deepEqual([...pod], [...model]);
    assert.equal(pod.size, model.size);
  }
  await using pod = await openPod(dir);
  assert.deepEqual([...pod], [...model]);
});

Deno.test("a damaged shard body is a CorruptFileError when read; nothing is overwritten", async () => {
  const dir = await tempDir();
  await fill(dir, 100, 10);
  const name = shardName(5);
  const path = join(Deno.realPathSync(dir), name);
  // A valid, complete header line, one record, and then the file ends.
  const lines = read(dir, name).split("\n");
  Deno.writeTextFileSync(path, `${lines[0]}\n${lines[1]}\n`);
  const damaged = Deno.readFileSync(path);
  const before = snapshot(dir);
  const isDamaged = (error: unknown) => {
    assert.ok(error instanceof CorruptFileError, String(error));
    assert.equal(error.path, path);
    assert.match(error.message, /shard-000005\.json/);
    return true;
  };

  const pod = await openPod<number | string>(dir);
  assert.equal(pod.get("k3"), 3);
  const seen: string[] = [];
  assert.throws(() => {
    for (const key of pod.keys()) seen.push(key);
  }, isDamaged);
  assert.ok(seen.length >= 49 && seen.length <= 50, `${seen.length}`);
  assert.deepEqual(seen, range(0, seen.length));
  assert.throws(() => pod.set("new", 1), isDamaged);
  assert.throws(() => pod.get("k77"), isDamaged);
  assert.throws(() => pod.has("k55"), isDamaged);
  assert.throws(() => pod.delete("k90"), isDamaged);
  assert.throws(() => [...pod.values()], isDamaged); // again: the file is read again
  // The keys of the shards read before are still there and can change.
  assert.equal(pod.get("k42"), 42);
  pod.set("k21", "changed");
  assert.equal(pod.delete("k22"), true);
  await pod.close();

  assert.deepEqual(Deno.readFileSync(path), damaged);
  const after = snapshot(dir);
  assert.deepEqual([...after.keys()], [...before.keys()]);
  for (const [file, bytes] of before) {
    if (file === shardName(2)) continue;
    assert.deepEqual(after.get(file), bytes, file);
  }
  assert.match(read(dir, shardName(2)), /\["k21",21,"changed"\]/);
  assert.doesNotMatch(read(dir, shardName(2)), /"k22"/);

  await assert.rejects(openPod(dir, { lazy: false }), isDamaged);
  await assert.rejects(openPod(dir, { readOnly: true }), isDamaged);
  assert.deepEqual(Deno.readFileSync(path), damaged);
  // The failed opens released the lock: a lazy open still works.
  await using again = await openPod(dir);
  assert.equal(again.get("k0"), 0);
});

Deno.test("a damaged header is a CorruptFileError at open", async () => {
  const dir = await tempDir();
  await fill(dir, 100, 10);
  const name = shardName(7);
  const path = join(Deno.realPathSync(dir), name);
  const text = read(dir, name);
  Deno.writeTextFileSync(path, text.replace('{"pod":1,', '{"pod":1,,'));
  const damaged = Deno.readFileSync(path);
  await assert.rejects(openPod(dir), (error: unknown) => {
    assert.ok(error instanceof CorruptFileError, String(error));
    assert.equal(error.path, path);
    return true;
  });
  assert.deepEqual(Deno.readFileSync(path), damaged);
});

Deno.test("a header that gives the wrong count or range is a CorruptFileError when read", async () => {
  const cases: [string, (header: string) => string][] = [
    ["n too small", (header) => header.replace('"n":10', '"n":9')],
    ["n too large", (header) => header.replace('"n":10', '"n":11')],
    ["seq too narrow", (header) => header.replace('"seq":[30,39]', '"seq":[30,38]')],
    ["seq shifted", (header) => header.replace('"seq":[30,39]', '"seq":[31,39]')],
  ];
  for (const [what, edit] of cases) {
    const dir = await tempDir();
    await fill(dir, 60, 10);
    const name = shardName(3);
    const path = join(Deno.realPathSync(dir), name);
    const text = read(dir, name);
    const edited = edit(text);
    assert.notEqual(edited, text, what);
    Deno.writeTextFileSync(path, edited);
    const isWrong = (error: unknown) => {
      assert.ok(error instanceof CorruptFileError, `${what}: ${error}`);
      assert.equal(error.path, path, what);
      return true;
    };
    {
      await using pod = await openPod<number>(dir);
      assert.equal(pod.get("k5"), 5, what);
      assert.throws(() => [...pod.keys()], isWrong);
      assert.throws(() => pod.get("k35"), isWrong);
      assert.throws(() => pod.get("k55"), isWrong);
    }
    assert.equal(read(dir, name), edited, what);
    await assert.rejects(openPod(dir, { lazy: false }), isWrong);
  }
});

Deno.test("a key twice in one file is a CorruptFileError at read; the entries read stay", async () => {
  const dir = await tempDir();
  await fill(dir, 60, 10);
  const name = shardName(3);
  const path = join(Deno.realPathSync(dir), name);
  // n and seq stay right: only the key of one record changes.
  const edited = read(dir, name).replace('["k31",31,31]', '["k30",31,"twice"]');
  assert.match(edited, /"k30",31/);
  Deno.writeTextFileSync(path, edited);
  const before = snapshot(dir);
  const isTwice = (error: unknown) => {
    assert.ok(error instanceof CorruptFileError, String(error));
    assert.equal(error.path, path);
    assert.match(error.message, /"k30" appears twice/);
    return true;
  };

  const pod = await openPod<number>(dir);
  const size = pod.size;
  const first: string[] = [];
  assert.throws(() => {
    for (const key of pod.keys()) first.push(key);
  }, isTwice);
  assert.ok(first.length >= 29 && first.length <= 30, `${first.length}`);
  assert.deepEqual(first, range(0, first.length));
  // Nothing of the damaged file got in; what was read before stays.
  assert.equal(pod.size, size);
  assert.equal(pod.get("k25"), 25);
  assert.equal(pod.get("k29"), 29);
  assert.throws(() => pod.get("k30"), isTwice);
  assert.throws(() => pod.has("k45"), isTwice);
  const second: string[] = [];
  assert.throws(() => {
    for (const key of pod.keys()) second.push(key);
  }, isTwice);
  assert.deepEqual(second, first);
  assert.equal(pod.size, size);
  await pod.close();
  assert.deepEqual(snapshot(dir), before);
  await assert.rejects(openPod(dir, { lazy: false }), isTwice);

  // Mended while open: the next read reads the file again.
  const mended = await openPod<number>(dir);
  assert.throws(() => mended.get("k45"), isTwice);
  Deno.writeTextFileSync(path, edited.replace('["k30",31,"twice"]', '["k31",31,31]'));
  assert.equal(mended.get("k45"), 45);
  assert.deepEqual([...mended.keys()], range(0, 60));
  await mended.close();
});

/** A deterministic, poorly compressible string. */
function noise(seed: number, length: number): string {
  let x = seed * 2654435761 % 2 ** 32 || 1;
  let text = "";
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    text += (x % 36).toString(36);
  }
  return text;
}

Deno.test("gzip and msgpack pods open lazily with the same entries", async () => {
  for (
    const [format, gzip] of [["json", true], ["msgpack", false], ["msgpack", true]] as const
  ) {
    // Big shards (headers read from the first 4 KiB) and tiny ones.
    for (const [fileSize, count] of [[40, 2000], [2, 100]]) {
      const what = `${format}${gzip ? " gzip" : ""}, fileSize ${fileSize}`;
      const dir = await tempDir();
      const model = new Map<string, unknown>();
      {
        await using pod = await openPod(dir, { format, gzip, fileSize });
        for (let i = 0; i < count; i++) {
          const value = format === "msgpack"
            ? { i, text: noise(i, 200), when: new Date(i * 1000), bytes: new Uint8Array([i % 256]) }
            : { i, text: noise(i, 200) };
          pod.set(`k${i}`, value);
          model.set(`k${i}`, value);
        }
        await pod.sync();
        for (const i of [count - 5, count - 45]) {
          pod.delete(`k${i}`);
          model.delete(`k${i}`);
          pod.set(`k${i}`, { i: -i });
          model.set(`k${i}`, { i: -i });
        }
      }
      const files = shardFiles(dir);
      assert.equal(files.length, 50, what);
      const ext = `${format}${gzip ? ".gz" : ""}`;
      assert.ok(files.every((file) => file.endsWith(`.${ext}`)), what);
      if (fileSize === 40) {
        assert.ok(Deno.statSync(join(dir, files[10])).size > 4096, what);
      }
      const expected = [...model];
      {
        await using eager = await openPod(dir, { lazy: false });
        assert.deepEqual([...eager], expected, what);
      }
      const reads = countShardReads();
      try {
        const pod = await openPod(dir);
        // Overlapping ranges (keys set again in old shards) are read
        // together at open; with the big shards, less than all of them.
        if (fileSize === 40) assert.ok(reads.shards() < 50, what);
        assert.equal(pod.size, model.size, what);
        assert.deepEqual([...pod], expected, what);
        assert.equal(reads.whole.length, 50, what);
        await pod.close();
        reads.reset();
        const again = await openPod(dir);
        assert.deepEqual(again.get(`k${count - 1}`), model.get(`k${count - 1}`), what);
        assert.deepEqual([...again], expected, what);
        await again.close();
      } finally {
        reads.restore();
      }
    }
  }
});

Deno.test("gzip and msgpack pods without overlaps read one shard at open", async () => {
  for (
    const [format, gzip] of [["json", true], ["msgpack", false], ["msgpack", true]] as const
  ) {
    const dir = await tempDir();
    {
      await using pod = await openPod(dir, { format, gzip, fileSize: 40 });
      for (let i = 0; i < 2000; i++) pod.set(`k${i}`, { i, text: noise(i, 200) });
    }
    const reads = countShardReads();
    try {
      await using pod = await openPod<{ i: number }>(dir);
      assert.equal(reads.shards(), 1);
      assert.equal(pod.size, 2000);
      assert.equal(pod.get("k39")!.i, 39);
      assert.equal(reads.shards(), 1);
      let n = 0;
      for (const [key, value] of pod) {
        assert.equal(key, `k${n}`);
        assert.equal(value.i, n);
        if (++n === 41) break;
      }
      assert.equal(reads.shards(), 2);
      assert.equal(pod.get("k1999")!.i, 1999);
      assert.equal(reads.shards(), 50);
    } finally {
      reads.restore();
    }
  }
});

Deno.test("shards in the old layout (no n, no seq) are read at open; a sync gives them the new header", async () => {
  const dir = await tempDir();
  Deno.writeTextFileSync(join(dir, shardName(0)), '[{"pod":1},\n["a",0,1]]\n');
  Deno.writeTextFileSync(join(dir, shardName(1)), '[{"pod":1},\n["b",1,2]]\n');
  Deno.writeTextFileSync(
    join(dir, shardName(2)),
    '[{"pod":1,"n":2,"seq":[2,3]},\n["c",2,3],\n["d",3,4]]\n',
  );
  Deno.writeTextFileSync(join(dir, shardName(3)), '[{"pod":1,"n":1,"seq":[4,4]},\n["e",4,5]]\n');
  const reads = countShardReads();
  try {
    const pod = await openPod<number>(dir);
    assert.deepEqual(new Set(reads.whole), new Set([shardName(0), shardName(1)]));
    assert.equal(pod.size, 5);
    assert.deepEqual([...pod], [["a", 1], ["b", 2], ["c", 3], ["d", 4], ["e", 5]]);
    pod.set("a", 10);
    await pod.sync();
    await pod.close();
  } finally {
    reads.restore();
  }
  assert.equal(read(dir, shardName(0)), '[{"pod":1,"n":1,"seq":[0,0]},\n["a",0,10]]\n');
  assert.equal(read(dir, shardName(1)), '[{"pod":1},\n["b",1,2]]\n'); // untouched
  {
    await using pod = await openPod<number>(dir);
    assert.deepEqual([...pod.keys()], ["a", "b", "c", "d", "e"]);
  }

  // Old-layout files after new ones: everything up to them is read at open.
  const later = await tempDir();
  Deno.writeTextFileSync(
    join(later, shardName(0)),
    '[{"pod":1,"n":2,"seq":[0,1]},\n["x",0,1],\n["y",1,2]]\n',
  );
  Deno.writeTextFileSync(join(later, shardName(1)), '[{"pod":1},\n["z",2,3]]\n');
  {
    await using pod = await openPod<number>(later);
    assert.deepEqual([...pod], [["x", 1], ["y", 2], ["z", 3]]);
    pod.set("w", 4); // a new key goes to the last shard, which gets the new header
  }
  assert.equal(
    read(later, shardName(1)),
    '[{"pod":1,"n":2,"seq":[2,3]},\n["z",2,3],\n["w",3,4]]\n',
  );
  await using pod = await openPod<number>(later, { lazy: false });
  assert.deepEqual([...pod], [["x", 1], ["y", 2], ["z", 3], ["w", 4]]);
});

Deno.test("revert on a lazy pod restores what was synced, read lazily again", async () => {
  const dir = await tempDir();
  await fill(dir, 50, 10);
  const synced = range(0, 50).map((key, i): [string, number | string] => [key, i]);
  const reads = countShardReads();
  try {
    const pod = await openPod<number | string>(dir);
    pod.set("k3", "changed");
    pod.delete("k15"); // not read yet: reads the rest
    pod.set("new", "added");
    assert.equal(reads.shards(), 5);
    reads.reset();
    await pod.revert();
    assert.ok(reads.shards() <= 1, `${reads.whole}`);
    assert.equal(pod.size, 50);
    assert.equal(pod.dirty().size, 0);
    assert.deepEqual([...pod], synced);
    assert.equal(reads.whole.length, 5);

    // What was synced before the revert stays, the rest goes.
    pod.set("k3", "synced");
    await pod.sync();
    pod.set("k4", "dropped");
    pod.set("k44", "dropped");
    pod.delete("k0");
    reads.reset();
    await pod.revert();
    assert.ok(reads.shards() <= 1);
    assert.equal(pod.get("k4"), 4);
    assert.equal(pod.get("k3"), "synced");
    assert.equal(pod.get("k0"), 0);
    assert.ok(reads.shards() <= 1);
    assert.equal(pod.get("k44"), 44);
    assert.deepEqual(
      [...pod],
      synced.map((
        [key, value],
      ): [string, number | string] => [key, key === "k3" ? "synced" : value]),
    );
    // Reverting before anything beyond the first shard was read.
    await pod.revert();
    await pod.revert();
    assert.equal(pod.size, 50);
    assert.deepEqual([...pod.keys()], range(0, 50));
    await pod.close();
  } finally {
    reads.restore();
  }
});

Deno.test("a key copied by hand into a later file: the record read first wins, lazily or not", async () => {
  for (const lazy of [true, false]) {
    for (const action of ["none", "set", "delete", "delete+sync"] as const) {
      const dir = await tempDir();
      Deno.writeTextFileSync(
        join(dir, shardName(0)),
        '[{"pod":1,"n":2,"seq":[0,1]},\n["a",0,"old"],\n["b",1,2]]\n',
      );
      Deno.writeTextFileSync(
        join(dir, shardName(1)),
        '[{"pod":1,"n":2,"seq":[5,6]},\n["a",5,"copy"],\n["c",6,3]]\n',
      );
      const expected: [string, unknown][] = [["a", "old"], ["b", 2], ["c", 3]];
      {
        await using pod = await openPod(dir, { lazy });
        if (action === "set") {
          pod.set("a", "mine");
          expected[0][1] = "mine";
        }
        if (action.startsWith("delete")) {
          pod.delete("a");
          expected.shift();
        }
        if (action === "delete+sync") await pod.sync();
        const what = `lazy: ${lazy}, ${action}`;
        assert.deepEqual([...pod.keys()], expected.map(([key]) => key), what);
        assert.deepEqual([...pod.entries()], expected, what);
        assert.equal(pod.size, expected.length, what);
      } // the sync leaves "a" in one file at most
      await using again = await openPod(dir, { lazy });
      assert.deepEqual([...again.entries()], expected, `reopened, lazy: ${lazy}, ${action}`);
      assert.equal(again.size, expected.length);
      assert.ok(!read(dir, shardName(1)).includes('"a"'));
    }
  }
});

Deno.test("a revert during an iteration ends it with a TypeError", async () => {
  const dir = await tempDir();
  await using pod = await openPod<number>(dir, { fileSize: 10 });
  for (let i = 0; i < 30; i++) pod.set(`k${i}`, i);
  await pod.sync();
  await pod.close();
  await using reopened = await openPod<number>(dir, { fileSize: 10 });
  const seen: string[] = [];
  await assert.rejects(async () => {
    for (const key of reopened.keys()) {
      seen.push(key);
      if (key === "k2") await reopened.revert();
    }
  }, (error: unknown) => error instanceof TypeError && /reverted/.test(error.message));
  assert.deepEqual(seen, ["k0", "k1", "k2"]);
  assert.equal([...reopened.keys()].length, 30);
});

Deno.test("update reads the shards it needs before changing anything", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod<number>(dir, { fileSize: 2 });
    pod.update({ a: 1, b: 2, c: 3, d: 4 });
  }
  const damaged = join(dir, shardName(1));
  const text = Deno.readTextFileSync(damaged);
  Deno.writeTextFileSync(damaged, `${text.slice(0, text.indexOf("\n") + 1)}garbage`);
  const before = snapshot(dir);
  const pod = await openPod<number>(dir);
  assert.throws(() => pod.update({ a: 10, z: 26 }), CorruptFileError);
  assert.equal(pod.get("a"), 1);
  assert.equal(pod.dirty().size, 0);
  await pod.close();
  assert.deepEqual(snapshot(dir), before);
});

Deno.test("a revert while an iteration waits on its last entry ends it with a TypeError", async () => {
  const dir = await tempDir();
  {
    await using pod = await openPod<number>(dir, { fileSize: 2 });
    pod.update({ a: 1, b: 2, c: 3 });
  }
  await using pod = await openPod<number>(dir, { fileSize: 2 });
  const keys = pod.keys();
  for (let i = 0; i < 3; i++) keys.next();
  await pod.revert();
  assert.throws(() => keys.next(), TypeError);
});

Deno.test("keys deleted and set again in old shards: a lazy open still reads one shard, order kept", async () => {
  const dir = await tempDir();
  await fill(dir, 100, 10);
  const model = new Map(range(0, 100).map((key, i) => [key, i]));
  {
    await using pod = await openPod<number>(dir, { fileSize: 10 });
    // Each goes back to its old shard with a new, high sequence number.
    for (const key of ["k0", "k35", "k1", "k77"]) {
      pod.delete(key);
      pod.set(key, -model.get(key)!);
      model.delete(key);
      model.set(key, -Number(key.slice(1)));
    }
  }
  assert.ok(jsonHeader(read(dir, shardName(0))).seq![1] >= 100, "shard 0 spans the whole order");
  const reads = countShardReads();
  try {
    const pod = await openPod<number>(dir);
    assert.equal(reads.shards(), 1, `read at open: ${reads.whole}`);
    assert.equal(pod.size, 100);
    // Deferred entries are found without reading on.
    assert.equal(pod.get("k1"), -1);
    assert.equal(reads.shards(), 1);
    const first: string[] = [];
    for (const key of pod.keys()) {
      first.push(key);
      if (first.length === 12) break;
    }
    assert.deepEqual(first, [...model.keys()].slice(0, 12));
    assert.equal(reads.shards(), 2);
    // A deferred key deleted before its place comes up is gone from the walk.
    pod.delete("k0");
    model.delete("k0");
    assert.deepEqual([...pod.entries()], [...model.entries()]);
    assert.equal(pod.size, 99);
    await pod.close();
  } finally {
    reads.restore();
  }
  await using again = await openPod<number>(dir);
  assert.deepEqual([...again.entries()], [...model.entries()]);
  await using eager = await openPod<number>(dir, { lazy: false, readOnly: true });
  assert.deepEqual([...eager.entries()], [...model.entries()]);
});

Deno.test("random changes, partial walks and lazy reopens agree with a Map", async () => {
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 12; round++) {
    const dir = await tempDir();
    const model = new Map<string, number>();
    let pod = await openPod<number>(dir, { fileSize: 4 });
    for (let step = 0; step < 120; step++) {
      const key = `k${random(40)}`;
      const action = random(10);
      if (action < 4) {
        pod.set(key, step);
        model.set(key, step);
      } else if (action < 6) {
        assert.equal(pod.delete(key), model.delete(key));
      } else if (action < 7) {
        // Delete and set again before a sync: back to its old shard.
        pod.delete(key);
        model.delete(key);
        pod.set(key, -step);
        model.set(key, -step);
      } else if (action < 8) {
        await pod.sync();
      } else if (action < 9) {
        await pod.close();
        pod = await openPod<number>(dir, { fileSize: 4 });
        assert.equal(pod.size, model.size, `round ${round}, step ${step}: size`);
        // Walk part of the way, then check what a lookup sees.
        let walked = 0;
        const expected = [...model.keys()];
        for (const walkedKey of pod.keys()) {
          assert.equal(walkedKey, expected[walked], `round ${round}, step ${step}: walk`);
          if (++walked === random(6)) break;
        }
        assert.equal(pod.get(key), model.get(key));
      } else {
        assert.equal(pod.has(key), model.has(key));
      }
    }
    assert.deepEqual([...pod.entries()], [...model.entries()], `round ${round}`);
    await pod.close();
    await using again = await openPod<number>(dir);
    assert.deepEqual([...again.entries()], [...model.entries()], `round ${round}, reopened`);
  }
});
