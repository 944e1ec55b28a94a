import assert from "node:assert/strict";
import { listDir } from "../_testing/fs.ts";
import {
  atomicWrite,
  AtomicWriteError,
  atomicWriteJson,
  atomicWriteJsonSync,
  atomicWriteSync,
  withAtomicFile,
} from "./mod.ts";

const text = (path: string) => Deno.readTextFile(path);

Deno.test("atomicWrite writes strings, bytes and streams, creating directories", async () => {
  const dir = await Deno.makeTempDir();
  await atomicWrite(`${dir}/a/b/text.txt`, "héllo\n");
  assert.equal(await text(`${dir}/a/b/text.txt`), "héllo\n");
  await atomicWrite(`${dir}/bytes.bin`, new Uint8Array([0, 1, 255]));
  assert.deepEqual(await Deno.readFile(`${dir}/bytes.bin`), new Uint8Array([0, 1, 255]));
  const chunks = Array.from({ length: 100 }, (_, i) => new TextEncoder().encode(`${i},`));
  await atomicWrite(`${dir}/stream.txt`, ReadableStream.from(chunks));
  assert.equal(
    await text(`${dir}/stream.txt`),
    Array.from({ length: 100 }, (_, i) => `${i},`).join(""),
  );
  await atomicWrite(`${dir}/stream.txt`, "replaced");
  assert.equal(await text(`${dir}/stream.txt`), "replaced");
  assert.deepEqual(listDir(dir), ["a", "bytes.bin", "stream.txt"]);
});

Deno.test("atomicWriteSync replaces a file and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  atomicWriteSync(`${dir}/f`, "one");
  atomicWriteSync(`${dir}/f`, new TextEncoder().encode("two"));
  assert.equal(await text(`${dir}/f`), "two");
  assert.deepEqual(listDir(dir), ["f"]);
  assert.throws(() => atomicWriteSync(`${dir}/f`, ReadableStream.from([]) as never), TypeError);
  assert.throws(() => atomicWriteSync(`${dir}/f`, 42 as never), TypeError);
  assert.equal(await text(`${dir}/f`), "two");
});

Deno.test("ensureDir: false does not create directories", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    atomicWrite(`${dir}/missing/f.txt`, "x", { ensureDir: false }),
    (error: unknown) => error instanceof AtomicWriteError && error.step === "open",
  );
  assert.deepEqual(listDir(dir), []);
});

Deno.test("new files get the mode asked for; existing files keep theirs", async () => {
  const dir = await Deno.makeTempDir();
  await atomicWrite(`${dir}/secret`, "s", { mode: 0o600 });
  assert.equal(Deno.statSync(`${dir}/secret`).mode! & 0o777, 0o600);
  Deno.chmodSync(`${dir}/secret`, 0o640);
  await atomicWrite(`${dir}/secret`, "t", { mode: 0o604 });
  assert.equal(Deno.statSync(`${dir}/secret`).mode! & 0o777, 0o640);
  atomicWriteSync(`${dir}/secret`, "u");
  assert.equal(Deno.statSync(`${dir}/secret`).mode! & 0o777, 0o640);
});

Deno.test("a symbolic link survives and its target is replaced", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/real`);
  await Deno.writeTextFile(`${dir}/real/config`, "old");
  await Deno.symlink(`${dir}/real/config`, `${dir}/link`);
  await atomicWrite(`${dir}/link`, "new");
  assert.ok(Deno.lstatSync(`${dir}/link`).isSymlink);
  assert.equal(await text(`${dir}/real/config`), "new");
  assert.deepEqual(listDir(`${dir}/real`), ["config"]);
  // A dangling link: the file it names is created.
  await Deno.symlink(`${dir}/real/later`, `${dir}/dangling`);
  await atomicWrite(`${dir}/dangling`, "born");
  assert.ok(Deno.lstatSync(`${dir}/dangling`).isSymlink);
  assert.equal(await text(`${dir}/real/later`), "born");
});

Deno.test("a directory where the file should be is an error before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/target`);
  await Deno.writeTextFile(`${dir}/target/inside`, "keep");
  for (
    const attempt of [
      () => atomicWrite(`${dir}/target`, "x"),
      () => Promise.resolve().then(() => atomicWriteSync(`${dir}/target`, "x")),
    ]
  ) {
    await assert.rejects(attempt(), (error: unknown) => {
      assert.ok(error instanceof AtomicWriteError);
      assert.equal(error.step, "prepare");
      assert.match(error.message, /is a directory/);
      assert.equal(error.path, `${dir}/target`);
      return true;
    });
  }
  assert.deepEqual(listDir(dir), ["target"]);
  assert.deepEqual(listDir(`${dir}/target`), ["inside"]);
});

Deno.test("atomicWriteJson pretty-prints with a newline; indent 0 is compact", async () => {
  const dir = await Deno.makeTempDir();
  await atomicWriteJson(`${dir}/c.json`, { setting1: "value1", nested: { key: "value" } });
  assert.equal(
    await text(`${dir}/c.json`),
    '{\n  "setting1": "value1",\n  "nested": {\n    "key": "value"\n  }\n}\n',
  );
  atomicWriteJsonSync(`${dir}/c.json`, { a: [1, 2] }, { indent: 0 });
  assert.equal(await text(`${dir}/c.json`), '{"a":[1,2]}');
  await atomicWriteJson(`${dir}/c.json`, { when: new Date(0), skipped: undefined }, { indent: 4 });
  assert.equal(await text(`${dir}/c.json`), '{\n    "when": "1970-01-01T00:00:00.000Z"\n}\n');
});

Deno.test("atomicWriteJson refuses values JSON cannot represent, before touching the file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/v.json`;
  await Deno.writeTextFile(path, "original");
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const bad: [unknown, RegExp][] = [
    [cyclic, /circular|cycle/i],
    [{ n: 10n }, /BigInt/],
    [() => 1, /function/],
    [{ deep: [{ f: function named() {} }] }, /\$\.deep\[0\]\.f/],
    [{ x: NaN }, /NaN at \$\.x/],
    [{ x: Infinity }, /Infinity/],
    [[1, undefined], /undefined at \$\[1\]/],
    [undefined, /undefined at \$ /],
    [{ m: new Map([["a", 1]]) }, /Map at \$\.m/],
    [{ s: new Set([1]) }, /Set/],
    [{ b: new Uint8Array(2) }, /Uint8Array/],
    [{ sym: Symbol("x") }, /symbol/],
  ];
  for (const [value, message] of bad) {
    await assert.rejects(atomicWriteJson(path, value), (error: unknown) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, message);
      return true;
    });
    assert.throws(() => atomicWriteJsonSync(path, value), TypeError);
  }
  assert.equal(await text(path), "original");
  assert.deepEqual(listDir(dir), ["v.json"]);
});

Deno.test("withAtomicFile replaces the target only when the callback resolves", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/out.txt`;
  const result = await withAtomicFile(path, async (file) => {
    await file.write("Line 1\n");
    await file.write(new TextEncoder().encode("Line 2\n"));
    assert.equal(await Deno.readTextFile(path).catch(() => "absent"), "absent");
    return 7;
  });
  assert.equal(result, 7);
  assert.equal(await text(path), "Line 1\nLine 2\n");

  await assert.rejects(
    withAtomicFile(path, async (file) => {
      await file.write("partial");
      throw new RangeError("something went wrong");
    }),
    RangeError,
  );
  assert.equal(await text(path), "Line 1\nLine 2\n");
  assert.deepEqual(listDir(dir), ["out.txt"]);
});

Deno.test("withAtomicFile pipes streams and refuses writes after it finished", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/piped.txt`;
  let late: ((chunk: string) => Promise<void>) | undefined;
  await withAtomicFile(path, async (file) => {
    late = file.write;
    await ReadableStream.from(["x", "y", "z"]).pipeThrough(new TextEncoderStream()).pipeTo(
      file.writable,
    );
  });
  assert.equal(await text(path), "xyz");
  await assert.rejects(late!("more"), TypeError);
  assert.equal(await text(path), "xyz");
});
