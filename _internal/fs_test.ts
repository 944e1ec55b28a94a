import assert from "node:assert/strict";
import { denoFileSystem, faultyFileSystem, fs, InjectedFault, injectFaults } from "./fs.ts";

Deno.test("faults fire on the nth matching call, for the given number of times", async () => {
  const dir = await Deno.makeTempDir();
  const { fs: faulty, log } = faultyFileSystem(denoFileSystem, [
    // The last path segment only: the temporary directory's name is random.
    { op: "mkdir", nth: 2, times: 2, path: /\/b\d$/ },
  ]);
  await faulty.mkdir(`${dir}/a1`);
  await faulty.mkdir(`${dir}/b1`); // first matching call
  await assert.rejects(faulty.mkdir(`${dir}/b2`), InjectedFault);
  assert.throws(() => faulty.mkdirSync(`${dir}/b3`), InjectedFault);
  faulty.mkdirSync(`${dir}/b4`);
  assert.equal(log.fired, 2);
  assert.deepEqual(log.calls.map((call) => call.split("/").pop()), ["a1", "b1", "b2", "b3", "b4"]);
});

Deno.test("handle methods are wrapped, with custom errors", async () => {
  const dir = await Deno.makeTempDir();
  const { fs: faulty } = faultyFileSystem(denoFileSystem, [
    { op: "fsync", error: () => new Deno.errors.Interrupted("disk gone") },
  ]);
  const file = await faulty.open(`${dir}/f`, { write: true, create: true });
  await file.write(new TextEncoder().encode("x"));
  await assert.rejects(file.sync(), Deno.errors.Interrupted);
  await file.sync();
  await file.close();
  assert.equal(await Deno.readTextFile(`${dir}/f`), "x");
});

Deno.test("injectFaults swaps the seam and restores it, also on error", async () => {
  const before = fs;
  await assert.rejects(
    injectFaults([{ op: "stat" }], () => {
      assert.notEqual(fs, before);
      return fs.stat(".");
    }),
    InjectedFault,
  );
  assert.equal(fs, before);
});

Deno.test("dataSync and dataSyncSync both count as fsync", async () => {
  const path = `${await Deno.makeTempDir()}/data`;
  await injectFaults([{ op: "fsync", times: 2 }], async (log) => {
    const file = await fs.open(path, { write: true, create: true });
    await assert.rejects(file.dataSync(), InjectedFault);
    assert.throws(() => file.dataSyncSync(), InjectedFault);
    await file.dataSync();
    file.closeSync();
    assert.equal(log.fired, 2);
  });
});
