import assert from "node:assert/strict";
import { listDir } from "../_testing/fs.ts";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "@msgpack/msgpack";
import { parse as parseYaml } from "yaml";
import { type Codec, CorruptFileError, open, type Store } from "./mod.ts";
import { AtomicStoreError } from "../_internal/errors.ts";

/** The file's text, or `null` when it does not exist. */
async function fileText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function tempPath(name: string): Promise<string> {
  return `${await Deno.makeTempDir()}/${name}`;
}

// ---------------------------------------------------------------------------
// The reference examples, step by step.

Deno.test("seed: with() remembers start times across runs", async () => {
  const path = await tempPath("runs.json");
  {
    const store = await open<string[]>(path, { default: [] });
    await store.with((s) => {
      assert.equal(s.value.length, 0);
      s.value.push("1234");
      assert.deepEqual(s.value, ["1234"]);
    });
    assert.equal(await fileText(path), '[\n  "1234"\n]\n');
    assert.deepEqual(store.value, ["1234"]);
  }
  // With the same file missing before the first exit: nothing written early.
  {
    const store = await open<string[]>(path, { default: [] });
    assert.deepEqual(store.value, ["1234"]);
    await store.with(async (s) => {
      s.value.push("5678");
      assert.equal(await fileText(path), '[\n  "1234"\n]\n', "no intermediate write");
    });
    assert.deepEqual(JSON.parse((await fileText(path))!), ["1234", "5678"]);
    assert.deepEqual(store.value, ["1234", "5678"]);
  }
});

Deno.test("seed: with() writes nothing before it exits", async () => {
  const path = await tempPath("runs.json");
  const store = await open<string[]>(path, { default: [] });
  await store.with(async (s) => {
    s.value.push(new Date().toISOString());
    assert.equal(await fileText(path), null);
  });
  assert.equal(JSON.parse((await fileText(path))!).length, 1);
});

Deno.test("seed: manual commits write exactly what was committed", async () => {
  const path = await tempPath("gathered.json");
  const store = await open<Record<string, string>>(path, { default: {} });
  store.value.state = "running";
  store.value.thought = "I would not eat green eggs and ham.";
  assert.equal(await fileText(path), null, "only commit() writes");
  await store.commit();
  assert.deepEqual(JSON.parse((await fileText(path))!), {
    state: "running",
    thought: "I would not eat green eggs and ham.",
  });
  store.value.state = "done";
  store.value.thought = "I do so like Green eggs and ham!";
  assert.equal(JSON.parse((await fileText(path))!).state, "running");
  await store.commit();
  assert.deepEqual(JSON.parse((await fileText(path))!), {
    state: "done",
    thought: "I do so like Green eggs and ham!",
  });
});

Deno.test("seed: commit() inside with() writes at once, and the exit writes again", async () => {
  const path = await tempPath("steps.json");
  const store = await open(path, { default: { step: 0 } });
  await store.with(async (s) => {
    s.value.step = 1;
    await s.commit();
    assert.equal(JSON.parse((await fileText(path))!).step, 1);
    s.value.step = 2;
  });
  assert.equal(JSON.parse((await fileText(path))!).step, 2);
});

Deno.test("seed: json indent 0 writes compact JSON; indent and replacer/reviver apply", async () => {
  const dir = await Deno.makeTempDir();
  const compact = await open(`${dir}/c.json`, {
    default: { a: [1, 2], b: { c: "d" } },
    json: { indent: 0 },
  });
  await compact.commit();
  assert.equal(await fileText(`${dir}/c.json`), '{"a":[1,2],"b":{"c":"d"}}');

  const wide = await open(`${dir}/w.json`, { default: { a: 1 }, json: { indent: 4 } });
  await wide.commit();
  assert.equal(await fileText(`${dir}/w.json`), '{\n    "a": 1\n}\n');

  // A replacer/reviver pair that stores Dates tagged and reads them back as Dates.
  const json = {
    indent: 0,
    replacer(this: unknown, key: string, value: unknown) {
      const raw = (this as Record<string, unknown>)[key];
      return raw instanceof Date ? { $date: raw.toISOString() } : value;
    },
    reviver(_key: string, value: unknown) {
      const tagged = value as { $date?: string } | null;
      return typeof tagged?.$date === "string" ? new Date(tagged.$date) : value;
    },
  };
  const dated = await open(`${dir}/d.json`, { default: { when: new Date(0) }, json });
  await dated.commit();
  assert.equal(await fileText(`${dir}/d.json`), '{"when":{"$date":"1970-01-01T00:00:00.000Z"}}');
  const again = await open<{ when: Date }>(`${dir}/d.json`, { json });
  assert.ok(again.value?.when instanceof Date);
  assert.equal(again.value.when.getTime(), 0);
});

Deno.test("seed: YAML and MessagePack stores round-trip", async () => {
  const dir = await Deno.makeTempDir();
  const value = { name: "run", times: ["a", "b"], nested: { n: 1.5, ok: true, none: null } };

  const yaml = await open(`${dir}/state.data`, { default: value, format: "yaml" });
  assert.equal(yaml.format, "yaml");
  await yaml.commit();
  const yamlText = (await fileText(`${dir}/state.data`))!;
  assert.match(yamlText, /^name: run\n/);
  assert.deepEqual(parseYaml(yamlText), value);
  assert.deepEqual((await open(`${dir}/state.data`, { format: "yaml" })).value, value);

  const indented = await open(`${dir}/i.yaml`, {
    default: { a: { b: 1 } },
    yaml: { stringify: { indent: 4 } },
  });
  await indented.commit();
  assert.equal(await fileText(`${dir}/i.yaml`), "a:\n    b: 1\n");

  const mp = await open(`${dir}/state.bin`, { default: value, format: "msgpack" });
  assert.equal(mp.format, "msgpack");
  mp.value.times.push("c");
  await mp.commit();
  const bytes = await Deno.readFile(`${dir}/state.bin`);
  assert.deepEqual(decodeMsgpack(bytes), { ...value, times: ["a", "b", "c"] });
  const reopened = await open<typeof value>(`${dir}/state.bin`, { format: "msgpack" });
  assert.deepEqual(reopened.value?.times, ["a", "b", "c"]);

  const msgpack = { encode: { useBigInt64: true }, decode: { useBigInt64: true } };
  const big = await open(`${dir}/big.msgpack`, { default: { n: 2n ** 63n - 1n }, msgpack });
  await big.commit();
  const bigAgain = await open<{ n: bigint }>(`${dir}/big.msgpack`, { msgpack });
  assert.equal(bigAgain.value?.n, 2n ** 63n - 1n);
});

Deno.test("seed: custom codecs, text and binary", async () => {
  const dir = await Deno.makeTempDir();
  // A text codec: one line per entry.
  const lines: Codec<string[]> = {
    name: "lines",
    encode: (value) => value.map((line) => `${line}\n`).join(""),
    decode: (data) => new TextDecoder().decode(data).split("\n").filter((line) => line !== ""),
  };
  const text = await open(`${dir}/runs.txt`, { default: ["first"], format: lines });
  assert.equal(text.format, "lines");
  text.value.push("second");
  await text.commit();
  assert.equal(await fileText(`${dir}/runs.txt`), "first\nsecond\n");
  assert.deepEqual((await open(`${dir}/runs.txt`, { format: lines })).value, ["first", "second"]);

  // A binary codec: a little-endian uint32 counter.
  const counter: Codec<number> = {
    encode(value) {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, value, true);
      return bytes;
    },
    decode(data) {
      if (data.length !== 4) throw new RangeError(`expected 4 bytes, got ${data.length}`);
      return new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    },
  };
  const bin = await open(`${dir}/count.bin`, { default: 0, format: counter });
  assert.equal(bin.format, "custom");
  await bin.with((s) => void (s.value += 258));
  assert.deepEqual(await Deno.readFile(`${dir}/count.bin`), new Uint8Array([2, 1, 0, 0]));
  assert.equal((await open(`${dir}/count.bin`, { format: counter })).value, 258);

  // The codec's name goes into CorruptFileError.
  await Deno.writeFile(`${dir}/count.bin`, new Uint8Array([1, 2, 3]));
  await assert.rejects(open(`${dir}/count.bin`, { format: counter }), (error: unknown) => {
    assert.ok(error instanceof CorruptFileError);
    assert.equal(error.format, "custom");
    assert.match(error.message, /expected 4 bytes/);
    return true;
  });

  // A codec whose encode returns something else fails at commit.
  const broken = { encode: () => 42, decode: () => 0 } as unknown as Codec<number>;
  const store = await open(`${dir}/broken`, { default: 0, format: broken });
  await assert.rejects(store.commit(), TypeError);
  assert.equal(await fileText(`${dir}/broken`), null);
});

Deno.test("seed: reentrancy, by default every exit writes", async () => {
  const path = await tempPath("mystate.json");
  await Deno.writeTextFile(path, '"before"');
  const store = await open(path, { default: [] as unknown });
  await store.with(async (outer) => {
    outer.value = "outer";
    assert.equal(await fileText(path), '"before"', "no with exited yet");
    await outer.with(async (inner) => {
      assert.equal(inner, outer, "the same store");
      inner.value = "inner";
      assert.equal(await fileText(path), '"before"', "no with exited yet");
    });
    assert.equal(await fileText(path), '"inner"\n', "the inner exit wrote");
  });
  assert.equal(await fileText(path), '"inner"\n', "the outer exit wrote it again");
});

Deno.test("seed: reentrancy with ignoreInnerExits, only the outermost exit writes", async () => {
  const path = await tempPath("mystate.json");
  await Deno.writeTextFile(path, '"before"');
  const store = await open(path, { default: [] as unknown, ignoreInnerExits: true });
  const writes: string[] = [];
  await store.with(async (outer) => {
    outer.value = "outer";
    assert.equal(await fileText(path), '"before"', "no with exited yet");
    await outer.with(async (inner) => {
      inner.value = "inner";
      assert.equal(await fileText(path), '"before"', "no with exited yet");
    });
    assert.equal(await fileText(path), '"before"', "still active: the inner exit did not write");
    writes.push(String(outer.value));
  });
  // The reference's comment says the outer exit writes "outer", but its own
  // code assigns "inner" to the same store before that exit, and the
  // reference implementation then writes "inner" too: the outer exit writes
  // the current value.
  assert.equal(await fileText(path), '"inner"\n', "the outer exit wrote the current value");
  assert.deepEqual(writes, ["inner"]);

  // Without an inner assignment, the outer value is what lands.
  await store.with(async (outer) => {
    outer.value = "outer";
    await outer.with(() => {});
    assert.equal(await fileText(path), '"inner"\n');
  });
  assert.equal(await fileText(path), '"outer"\n');
});

// ---------------------------------------------------------------------------
// Opening

Deno.test("open: missing file gives a deep copy of the default, never an alias", async () => {
  const path = await tempPath("s.json");
  const fallback = { list: [1, 2], nested: { deep: { x: 1 } } };
  const a = await open(path, { default: fallback });
  const b = await open(path, { default: fallback });
  assert.deepEqual(a.value, fallback);
  assert.notEqual(a.value, fallback);
  assert.notEqual(a.value.nested.deep, fallback.nested.deep);
  assert.notEqual(a.value, b.value);
  a.value.list.push(3);
  a.value.nested.deep.x = 99;
  assert.deepEqual(fallback, { list: [1, 2], nested: { deep: { x: 1 } } });
  assert.deepEqual(b.value.list, [1, 2]);
  // Changing the caller's object later does not change the store's default.
  fallback.list.push(42);
  await a.reload();
  assert.deepEqual(a.value, { list: [1, 2], nested: { deep: { x: 1 } } });
  // A second reload gives a fresh copy again.
  const first = a.value;
  await a.reload();
  assert.notEqual(a.value, first);
  assert.equal(await fileText(path), null, "opening and reloading never write");
});

Deno.test("open: the default default is null", async () => {
  const store = await open(await tempPath("n.json"));
  assert.equal(store.value, null);
  await store.commit();
  assert.equal(await fileText(store.path), "null\n");
});

Deno.test("open: path is absolute, format reflects the choice", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    const store = await open("relative.json", { default: 1 });
    assert.equal(store.path, `${await Deno.realPath(dir)}/relative.json`);
    assert.equal(store.format, "json");
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("open: the file extension picks the format unless format is given", async () => {
  const dir = await Deno.makeTempDir();
  const cases: [string, string][] = [
    ["a.json", "json"],
    ["a.yaml", "yaml"],
    ["a.YML", "yaml"],
    ["a.msgpack", "msgpack"],
    ["a.mpk", "msgpack"],
    ["a.txt", "json"],
    ["noext", "json"],
  ];
  for (const [name, format] of cases) {
    const store = await open(`${dir}/${name}`, { default: { k: [1] } });
    assert.equal(store.format, format, name);
    await store.commit();
    const bytes = await Deno.readFile(`${dir}/${name}`);
    const text = new TextDecoder().decode(bytes);
    if (format === "json") assert.deepEqual(JSON.parse(text), { k: [1] });
    if (format === "yaml") assert.equal(text, "k:\n  - 1\n");
    if (format === "msgpack") assert.deepEqual(bytes, encodeMsgpack({ k: [1] }));
  }
  const forced = await open(`${dir}/forced.yaml`, { default: [1], format: "json" });
  assert.equal(forced.format, "json");
  await forced.commit();
  assert.equal(await fileText(`${dir}/forced.yaml`), "[\n  1\n]\n");
});

Deno.test("open: bad arguments are TypeErrors", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(open(`${dir}/x`, { format: "toml" as never }), TypeError);
  await assert.rejects(open(`${dir}/x`, { format: { encode: () => "" } as never }), TypeError);
  await assert.rejects(open("" as string), TypeError);
  await assert.rejects(open(`${dir}/x`, { default: () => 1 }), TypeError);
  await assert.rejects(open(`${dir}/x`, { lock: { timeout: -1 } }), RangeError);
  assert.deepEqual(listDir(dir), []);
});

Deno.test("open: a directory at the path is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/state.json`);
  await assert.rejects(open(`${dir}/state.json`, { default: 0 }), (error: unknown) => {
    assert.ok(error instanceof AtomicStoreError);
    assert.equal(error.path, `${dir}/state.json`);
    assert.match(error.message, /is a directory/);
    return true;
  });
  assert.deepEqual(listDir(`${dir}/state.json`), []);
});

Deno.test("open: reading a file that exists is not confused with a missing file", async () => {
  const path = await tempPath("zero.json");
  await Deno.writeTextFile(path, "0");
  const store = await open(path, { default: 42 });
  assert.equal(store.value, 0);
  await Deno.writeTextFile(path, "null");
  await store.reload();
  assert.equal(store.value, null);
});

// ---------------------------------------------------------------------------
// Corrupt files

const CORRUPT: [string, string | Uint8Array, string][] = [
  ["state.json", '{"half": ', "json"],
  ["empty.json", "", "json"],
  ["latin1.json", new Uint8Array([0x22, 0xe9, 0x22]), "json"],
  ["state.yaml", "key: [unclosed\n", "yaml"],
  ["dup.yaml", "a: 1\na: 2\n", "yaml"],
  ["empty.yaml", "", "yaml"],
  ["state.msgpack", new Uint8Array([0x82, 0xa1]), "msgpack"],
  ["empty.msgpack", "", "msgpack"],
];

for (const [name, contents, format] of CORRUPT) {
  Deno.test(`corrupt: ${name} raises CorruptFileError and is never overwritten`, async () => {
    const path = await tempPath(name);
    if (typeof contents === "string") await Deno.writeTextFile(path, contents);
    else await Deno.writeFile(path, contents);
    const before = await Deno.readFile(path);
    await assert.rejects(open(path, { default: { fresh: true } }), (error: unknown) => {
      assert.ok(error instanceof CorruptFileError, String(error));
      assert.equal(error.path, path);
      assert.equal(error.format, format);
      assert.ok(error.message.includes(path));
      assert.ok(error.cause !== undefined);
      return true;
    });
    assert.deepEqual(await Deno.readFile(path), before);

    // overwriteCorrupt: opens with the default, and the next commit replaces the file.
    const store = await open(path, { default: { fresh: true }, overwriteCorrupt: true });
    assert.deepEqual(store.value, { fresh: true });
    assert.deepEqual(await Deno.readFile(path), before, "opening alone writes nothing");
    await store.commit();
    assert.deepEqual((await open(path)).value, { fresh: true });
  });
}

Deno.test("corrupt: a store that finds its file broken refuses to commit until a good reload", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: 1 });
  await store.commit();
  await Deno.writeTextFile(path, "{ broken");
  await assert.rejects(store.reload(), CorruptFileError);
  assert.equal(store.value, 1, "a failed reload leaves value alone");
  store.value = 2;
  await assert.rejects(store.commit(), CorruptFileError);
  await assert.rejects(store.with((s) => void (s.value = 3)), CorruptFileError);
  assert.equal(await fileText(path), "{ broken");
  // Once the file is good again, the store commits again.
  await Deno.writeTextFile(path, "10");
  await store.reload();
  assert.equal(store.value, 10);
  store.value = 11;
  await store.commit();
  assert.equal(await fileText(path), "11\n");
});

Deno.test("corrupt: a locked with() does not run on a broken file, and frees the lock", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: 0, lock: true });
  await store.with((s) => void s.value++);
  await Deno.writeTextFile(path, "[1, 2");
  let ran = false;
  await assert.rejects(store.with(() => void (ran = true)), CorruptFileError);
  assert.equal(ran, false);
  assert.equal(await fileText(path), "[1, 2");
  await Deno.writeTextFile(path, "5");
  await store.with((s) => void s.value++);
  assert.equal(await fileText(path), "6\n");
});

// ---------------------------------------------------------------------------
// Values the format cannot store

Deno.test("unencodable values fail at commit with a TypeError and leave the file alone", async () => {
  const dir = await Deno.makeTempDir();
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const cases: [string, unknown][] = [
    ["v.json", cyclic],
    ["v.json", { n: 1n }],
    ["v.json", { f: () => 1 }],
    ["v.json", [undefined]],
    ["v.json", { m: new Map([[1, 2]]) }],
    ["v.json", NaN],
    ["v.msgpack", cyclic],
    ["v.msgpack", { n: 1n }],
    ["v.msgpack", { f() {} }],
    ["v.yaml", { f: () => 1 }],
    ["v.yaml", Symbol("s")],
  ];
  for (const [name, bad] of cases) {
    const path = `${dir}/${name}`;
    const store = await open<unknown>(path, { default: "good" });
    await store.commit();
    const before = await Deno.readFile(path);
    store.value = bad;
    await assert.rejects(store.commit(), TypeError, `${name}: ${String(bad)}`);
    assert.deepEqual(await Deno.readFile(path), before);
    assert.equal(store.value, bad, "a failed commit leaves value alone");
    // The store is still usable.
    store.value = "fixed";
    await store.commit();
    assert.equal((await open(path)).value, "fixed");
    await Deno.remove(path);
  }
  assert.deepEqual(listDir(dir), []);
});

Deno.test("an unencodable value at the end of with() rolls back and writes nothing", async () => {
  const path = await tempPath("s.json");
  const store = await open<Record<string, unknown>>(path, { default: { ok: true } });
  await store.commit();
  await assert.rejects(store.with((s) => void (s.value.bad = 10n)), TypeError);
  assert.deepEqual(store.value, { ok: true });
  assert.deepEqual(JSON.parse((await fileText(path))!), { ok: true });
});

// ---------------------------------------------------------------------------
// Failure inside with()

Deno.test("a throwing with() writes nothing and restores the last committed value", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: { items: ["a"] } });
  const boom = new Error("boom");
  await assert.rejects(
    store.with((s) => {
      s.value.items.push("b");
      throw boom;
    }),
    (error) => error === boom,
  );
  assert.deepEqual(store.value, { items: ["a"] }, "back to the default");
  assert.equal(await fileText(path), null, "nothing written");

  await store.with((s) => void s.value.items.push("c"));
  const committed = store.value;
  await assert.rejects(
    store.with(async (s) => {
      s.value.items.push("d");
      s.value = { items: [] };
      await Promise.resolve();
      throw new RangeError("late");
    }),
    RangeError,
  );
  assert.deepEqual(store.value, { items: ["a", "c"] });
  assert.notEqual(store.value, committed, "a fresh copy: nothing aliases the snapshot");
  assert.deepEqual(JSON.parse((await fileText(path))!), { items: ["a", "c"] });

  // The restored value is again independent of the snapshot.
  store.value.items.push("x");
  await assert.rejects(store.with(() => Promise.reject(new Error("again"))), Error);
  assert.deepEqual(store.value, { items: ["a", "c"] });
});

Deno.test("a throwing with() restores the loaded state, and commits made inside it stay", async () => {
  const path = await tempPath("s.json");
  await Deno.writeTextFile(path, '{"n": 1}');
  const store = await open(path, { default: { n: 0 } });
  store.value.n = 100; // uncommitted, outside with: discarded by the rollback
  await assert.rejects(store.with((s) => {
    s.value.n = 2;
    throw new Error("x");
  }));
  assert.deepEqual(store.value, { n: 1 });

  await assert.rejects(store.with(async (s) => {
    s.value.n = 3;
    await s.commit();
    s.value.n = 4;
    throw new Error("after a commit");
  }));
  assert.deepEqual(store.value, { n: 3 }, "back to the last commit");
  assert.deepEqual(JSON.parse((await fileText(path))!), { n: 3 });
});

Deno.test("a throwing nested with() rolls back to its own start; the outer may carry on", async () => {
  for (const ignoreInnerExits of [false, true]) {
    const path = await tempPath("s.json");
    const store = await open(path, { default: { log: [] as string[] }, ignoreInnerExits });
    await store.with(async (s) => {
      s.value.log.push("outer");
      await assert.rejects(
        s.with((t) => {
          t.value.log.push("inner");
          throw new Error("inner fails");
        }),
        /inner fails/,
      );
      assert.deepEqual(s.value.log, ["outer"], "the inner change is undone, the outer kept");
      assert.equal(await fileText(path), null, "the failed inner with wrote nothing");
      s.value.log.push("after");
    });
    assert.deepEqual(JSON.parse((await fileText(path))!).log, ["outer", "after"]);
  }
});

Deno.test("an inner error that escapes the outermost with() rolls everything back", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: 0, ignoreInnerExits: true });
  await store.with((s) => void (s.value = 1));
  await assert.rejects(
    store.with(async (s) => {
      s.value = 2;
      await s.with((t) => {
        t.value = 3;
        throw new Error("escapes");
      });
    }),
    /escapes/,
  );
  assert.equal(store.value, 1);
  assert.equal(await fileText(path), "1\n");
});

Deno.test("with() returns fn's result after committing", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: [] as number[] });
  const length = await store.with(async (s) => {
    await Promise.resolve();
    return s.value.push(7);
  });
  assert.equal(length, 1);
  assert.equal(await fileText(path), "[\n  7\n]\n");
});

// ---------------------------------------------------------------------------
// Concurrency inside one process

Deno.test("concurrent outermost with() calls on one store run one after another", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: { n: 0, trace: [] as string[] } });
  const work = (id: number) =>
    store.with(async (s) => {
      s.value.trace.push(`start ${id}`);
      const seen = s.value.n;
      await new Promise((resolve) => setTimeout(resolve, 1));
      s.value.n = seen + 1;
      s.value.trace.push(`end ${id}`);
    });
  await Promise.all([work(1), work(2), work(3)]);
  assert.equal(store.value.n, 3);
  assert.deepEqual(store.value.trace, [
    "start 1",
    "end 1",
    "start 2",
    "end 2",
    "start 3",
    "end 3",
  ]);
  assert.equal(JSON.parse((await fileText(path))!).n, 3);
});

Deno.test("a with() started from a finished with() runs as an outermost one", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: [] as string[], ignoreInnerExits: true });
  let later!: Promise<void>;
  await store.with((s) => {
    s.value.push("first");
    // Started from inside, but it runs after the first with() has finished.
    later = new Promise<void>((resolve) => setTimeout(resolve, 5)).then(() =>
      store.with((t) => void t.value.push("second"))
    );
  });
  await later;
  assert.deepEqual(JSON.parse((await fileText(path))!), ["first", "second"]);
});

Deno.test("with() on one store inside with() on another: both are outermost", async () => {
  const dir = await Deno.makeTempDir();
  const a = await open(`${dir}/a.json`, { default: 0, ignoreInnerExits: true });
  const b = await open(`${dir}/b.json`, { default: 0, ignoreInnerExits: true });
  await a.with(async (s) => {
    s.value = 1;
    await b.with((t) => void (t.value = 2));
    assert.equal(await fileText(`${dir}/b.json`), "2\n", "b's exit wrote");
    assert.equal(await fileText(`${dir}/a.json`), null);
  });
  assert.equal(await fileText(`${dir}/a.json`), "1\n");
});

Deno.test("a failed with() does not block the next one", async () => {
  const store = await open(await tempPath("s.json"), { default: 0 });
  const results = await Promise.allSettled([
    store.with(() => {
      throw new Error("first");
    }),
    store.with((s) => void (s.value += 1)),
  ]);
  assert.equal(results[0].status, "rejected");
  assert.equal(results[1].status, "fulfilled");
  assert.equal(store.value, 1);
});

Deno.test("commits land in call order", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: 0 });
  const pending: Promise<void>[] = [];
  for (let i = 1; i <= 20; i++) {
    store.value = i;
    pending.push(store.commit());
  }
  await Promise.all(pending);
  assert.equal(await fileText(path), "20\n");
  assert.deepEqual(listDir(store.path.slice(0, store.path.lastIndexOf("/"))), ["s.json"]);
});

Deno.test("two stores on one file: without lock, the last commit wins; with lock, none is lost", async () => {
  const dir = await Deno.makeTempDir();
  const a = await open(`${dir}/plain.json`, { default: 0 });
  const b = await open(`${dir}/plain.json`, { default: 0 });
  a.value++;
  b.value++;
  await a.commit();
  await b.commit();
  assert.equal(await fileText(`${dir}/plain.json`), "1\n", "one update lost, file intact");

  const stores = await Promise.all(
    Array.from({ length: 5 }, () => open(`${dir}/locked.json`, { default: 0, lock: true })),
  );
  await Promise.all(
    stores.flatMap((store) =>
      Array.from({ length: 4 }, () =>
        store.with(async (s) => {
          const seen = s.value;
          await new Promise((resolve) => setTimeout(resolve, 1));
          s.value = seen + 1;
        }))
    ),
  );
  assert.equal(await fileText(`${dir}/locked.json`), "20\n");
  assert.deepEqual(listDir(dir), ["locked.json", "locked.json.lock", "plain.json"]);
});

Deno.test("lock: the outermost with() re-reads the file, discarding uncommitted changes", async () => {
  const path = await tempPath("s.json");
  const store = await open(path, { default: { n: 0 }, lock: { timeout: 5000, pollInterval: 5 } });
  const other = await open(path, { default: { n: 0 } });
  other.value.n = 41;
  await other.commit();
  store.value.n = 1000; // uncommitted: replaced by the file's contents under the lock
  await store.with(async (s) => {
    assert.equal(s.value.n, 41);
    // Nested calls do not take the lock again (that would deadlock).
    await s.with((t) => void t.value.n++);
  });
  assert.equal(JSON.parse((await fileText(path))!).n, 42);
});

Deno.test("lock: the lock is held exactly while the outermost with() runs", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/s.json`; // the lock file's directory is created too
  const store = await open(path, { default: 0, lock: true });
  const probe = await open(path, { default: 0, lock: { timeout: 0 } });
  await store.with(async () => {
    // Another lock holder cannot get in while this with() runs.
    await assert.rejects(probe.with(() => {}), /timed out/);
  });
  await probe.with((s) => void s.value++);
  assert.equal(await fileText(path), "1\n");
});

// ---------------------------------------------------------------------------
// Disposal

Deno.test("await using releases a held lock and does not commit", async () => {
  const path = await tempPath("s.json");
  let store!: Store<number>;
  let unfinished!: Promise<void>;
  let release!: () => void;
  const started = Promise.withResolvers<void>();
  {
    await using disposable = await open(path, { default: 0, lock: true });
    store = disposable;
    unfinished = store.with(async (s) => {
      s.value = 99;
      started.resolve();
      await new Promise<void>((resolve) => release = resolve);
    });
    await started.promise;
    // Leaving the block disposes the store while the with() still runs.
  }
  // The lock is free again: another store takes it at once.
  const other = await open(path, { default: 0, lock: { timeout: 0 } });
  await other.with((s) => void (s.value = 1));
  release();
  await assert.rejects(unfinished, (error: unknown) => {
    assert.ok(error instanceof AtomicStoreError);
    assert.match(error.message, /disposed/);
    return true;
  });
  assert.equal(await fileText(path), "1\n", "the disposed store's with() did not commit");
  assert.equal(store.value, 0, "and rolled back");
  await assert.rejects(store.commit(), /disposed/);
  await assert.rejects(store.with(() => {}), /disposed/);
});

Deno.test("await using without a lock just closes the store", async () => {
  const path = await tempPath("s.json");
  {
    await using store = await open(path, { default: [1] });
    store.value.push(2);
  }
  assert.equal(await fileText(path), null, "disposal never commits");
});

Deno.test("commit keeps the file's mode and follows a symbolic link", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/real`);
  await Deno.writeTextFile(`${dir}/real/s.json`, "1");
  Deno.chmodSync(`${dir}/real/s.json`, 0o640);
  await Deno.symlink(`${dir}/real/s.json`, `${dir}/link.json`);
  const store = await open(`${dir}/link.json`, { default: 0 });
  assert.equal(store.value, 1);
  store.value = 2;
  await store.commit();
  await store.commit();
  assert.ok(Deno.lstatSync(`${dir}/link.json`).isSymlink);
  assert.equal(await fileText(`${dir}/real/s.json`), "2\n");
  assert.equal(Deno.statSync(`${dir}/real/s.json`).mode! & 0o777, 0o640);
  assert.deepEqual(listDir(`${dir}/real`), ["s.json"]);
  // A new file gets the mode asked for.
  const secret = await open(`${dir}/secret.json`, { default: 0, mode: 0o600 });
  await secret.commit();
  assert.equal(Deno.statSync(`${dir}/secret.json`).mode! & 0o777, 0o600);
});
