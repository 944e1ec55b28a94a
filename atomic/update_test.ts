import assert from "node:assert/strict";
import { ask, startWorker } from "../_testing/worker.ts";
import { listDir } from "../_testing/fs.ts";
import { atomicUpdateJson, AtomicWriteError, CorruptFileError } from "./mod.ts";
import { runConcurrently } from "../_testing/child.ts";

Deno.test("atomicUpdateJson starts from a copy of defaultData, or undefined", async () => {
  const dir = await Deno.makeTempDir();
  const defaults = { counter: 0, tags: [] as string[] };
  const first = await atomicUpdateJson(`${dir}/a.json`, (data) => {
    data.counter++;
    data.tags.push("x");
    return data;
  }, { defaultData: defaults });
  assert.deepEqual(first, { counter: 1, tags: ["x"] });
  assert.deepEqual(defaults, { counter: 0, tags: [] }, "the caller's default is never mutated");
  let seen: unknown = "unset";
  await atomicUpdateJson(`${dir}/b.json`, (data) => {
    seen = data;
    return { created: true };
  });
  assert.equal(seen, undefined);
  assert.equal(await Deno.readTextFile(`${dir}/b.json`), '{\n  "created": true\n}\n');
});

Deno.test("atomicUpdateJson accepts async updates and creates missing directories", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/deep/er/results.json`;
  const result = await atomicUpdateJson<number[]>(path, async (list) => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    return [...(list ?? []), 1];
  });
  assert.deepEqual(result, [1]);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), [1]);
});

Deno.test("a corrupt file raises CorruptFileError and is left untouched", async () => {
  const dir = await Deno.makeTempDir();
  const cases = ["{ half", "", '\uFEFF{"a":', new Uint8Array([0xff, 0xfe, 0x7b])];
  for (const contents of cases) {
    const path = `${dir}/state.json`;
    const bytes = typeof contents === "string" ? new TextEncoder().encode(contents) : contents;
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      atomicUpdateJson(path, () => ({ reset: true }), { defaultData: { reset: false } }),
      (error: unknown) => {
        assert.ok(error instanceof CorruptFileError);
        assert.equal(error.path, path);
        assert.equal(error.format, "json");
        assert.match(error.message, /state\.json/);
        return true;
      },
    );
    assert.deepEqual(await Deno.readFile(path), bytes);
  }
  assert.deepEqual(listDir(dir), ["state.json", "state.json.lock"]);
});

Deno.test("a throwing update or an unencodable result leaves the file untouched", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/n.json`;
  await atomicUpdateJson(path, () => 1);
  await assert.rejects(
    atomicUpdateJson(path, () => {
      throw new EvalError("nope");
    }),
    EvalError,
  );
  await assert.rejects(atomicUpdateJson(path, () => 2n as unknown as number), TypeError);
  await assert.rejects(atomicUpdateJson(path, () => undefined as unknown as number), TypeError);
  assert.equal(await Deno.readTextFile(path), "1\n");
  // The lock was released every time.
  assert.equal(
    await atomicUpdateJson(path, (n: number | undefined) => (n ?? 0) + 1, { timeout: 0 }),
    2,
  );
});

Deno.test("a directory at the path is an error before the lock file is created", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/state.json`);
  await assert.rejects(atomicUpdateJson(`${dir}/state.json`, () => 1), AtomicWriteError);
  assert.deepEqual(listDir(dir), ["state.json"]);
});

Deno.test("concurrent updates in one process are never lost", async () => {
  const path = `${await Deno.makeTempDir()}/counter.json`;
  await Promise.all(
    Array.from({ length: 100 }, () => atomicUpdateJson(path, (n) => n + 1, { defaultData: 0 })),
  );
  assert.equal(JSON.parse(await Deno.readTextFile(path)), 100);
});

Deno.test("8 processes x 50 increments give exactly 400", async () => {
  const path = `${await Deno.makeTempDir()}/counter.json`;
  await runConcurrently(
    `
import { atomicUpdateJson } from "$ROOT/atomic/mod.ts";
for (let i = 0; i < 50; i++) {
  await atomicUpdateJson(Deno.args[0], (data) => ({ counter: data.counter + 1 }), {
    defaultData: { counter: 0 },
  });
}
`,
    8,
    () => [path],
  );
  assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { counter: 400 });
});

Deno.test("4 Workers x 50 increments give exactly 200", async () => {
  const path = `${await Deno.makeTempDir()}/counter.json`;
  const workers = Array.from(
    { length: 4 },
    () => startWorker("./_testdata/counter_worker.ts", import.meta.url),
  );
  try {
    await Promise.all(workers.map((worker) => ask(worker, path)));
  } finally {
    for (const worker of workers) worker.terminate();
  }
  assert.equal(JSON.parse(await Deno.readTextFile(path)), 200);
});
