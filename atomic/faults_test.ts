import assert from "node:assert/strict";
import { listDir } from "../_testing/fs.ts";
import { type FsOp, InjectedFault, injectFaults } from "../_internal/fs.ts";
import {
  atomicUpdateJson,
  atomicWrite,
  AtomicWriteError,
  atomicWriteSync,
  CorruptFileError,
  withAtomicFile,
} from "./mod.ts";

// Each step of an atomic write, and the error step it must report.
const STEPS: [FsOp, string][] = [
  ["open", "open"],
  ["write", "write"],
  ["fsync", "fsync"],
  ["close", "close"],
  ["chmod", "chmod"],
  ["rename", "rename"],
  ["dirFsync", "dirFsync"],
];

type Writer = (path: string, data: string) => Promise<void>;
const WRITERS: [string, Writer][] = [
  ["atomicWrite", (path, data) => atomicWrite(path, data)],
  ["atomicWriteSync", (path, data) => Promise.resolve().then(() => atomicWriteSync(path, data))],
  [
    "atomicWrite(stream)",
    (path, data) => atomicWrite(path, ReadableStream.from([new TextEncoder().encode(data)])),
  ],
  ["withAtomicFile", (path, data) => withAtomicFile(path, (file) => file.write(data))],
];

for (const [writerName, write] of WRITERS) {
  for (const existed of [true, false]) {
    Deno.test(`${writerName}: a fault at any step leaves the ${existed ? "existing" : "missing"} target as it was`, async () => {
      for (const [op, step] of STEPS) {
        if (op === "chmod" && !existed) continue; // only existing targets get their mode copied
        const dir = await Deno.makeTempDir();
        const path = `${dir}/data.txt`;
        if (existed) await Deno.writeTextFile(path, "committed");
        await injectFaults([{ op, path: dir }], async (log) => {
          await assert.rejects(write(path, "new contents"), (error: unknown) => {
            assert.ok(error instanceof AtomicWriteError, `${op}: ${error}`);
            assert.equal(error.step, step);
            assert.equal(error.path, path);
            assert.ok(error.cause instanceof InjectedFault);
            assert.match(error.message, new RegExp(`failed at ${step}`));
            return true;
          });
          assert.equal(log.fired, 1, `${op} fault fired`);
        });
        assert.deepEqual(listDir(dir), existed ? ["data.txt"] : [], `${op}: directory contents`);
        if (existed) assert.equal(await Deno.readTextFile(path), "committed", `${op}: target`);
        // The next write, without faults, works.
        await write(path, "later");
        assert.equal(await Deno.readTextFile(path), "later");
        assert.deepEqual(listDir(dir), ["data.txt"]);
      }
    });
  }
}

Deno.test("a failing removal of the temp file does not hide the original error", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/x`;
  await Deno.writeTextFile(path, "committed");
  await injectFaults([{ op: "fsync" }, { op: "remove" }], async () => {
    await assert.rejects(
      atomicWrite(path, "new"),
      (error: unknown) => error instanceof AtomicWriteError && error.step === "fsync",
    );
  });
  assert.equal(await Deno.readTextFile(path), "committed");
});

Deno.test("without hard links, a directory fsync failure is still reported", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/x`;
  await Deno.writeTextFile(path, "committed");
  await injectFaults([{ op: "link" }, { op: "dirFsync" }], async () => {
    await assert.rejects(
      atomicWrite(path, "new"),
      (error: unknown) => error instanceof AtomicWriteError && error.step === "dirFsync",
    );
  });
});

Deno.test("atomicUpdateJson: faults while writing keep the old value and free the lock", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/counter.json`;
  await atomicUpdateJson(path, (n) => n + 1, { defaultData: 0 });
  for (const [op] of STEPS) {
    await injectFaults([{ op, path: dir }], async () => {
      await assert.rejects(
        atomicUpdateJson(path, (n: number) => n + 1, { defaultData: 0 }),
        Error,
        op,
      );
    });
    assert.equal(JSON.parse(await Deno.readTextFile(path)), 1, op);
  }
  assert.equal(await atomicUpdateJson(path, (n) => n + 1, { defaultData: 0, timeout: 1000 }), 2);
  assert.deepEqual(listDir(dir), ["counter.json", "counter.json.lock"]);
});

Deno.test("atomicUpdateJson: a failing read is an error, not an empty default", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/counter.json`;
  await Deno.writeTextFile(path, "41");
  await injectFaults([{ op: "read", path: "counter.json" }], async () => {
    await assert.rejects(
      atomicUpdateJson(path, (n: number) => n + 1, { defaultData: 0 }),
      InjectedFault,
    );
  });
  assert.equal(await Deno.readTextFile(path), "41");
  await Deno.writeTextFile(path, "4");
  await Deno.writeTextFile(path, "{", { append: true });
  await assert.rejects(atomicUpdateJson<number>(path, (n) => (n ?? 0) + 1), CorruptFileError);
  assert.equal(await Deno.readTextFile(path), "4{");
});
