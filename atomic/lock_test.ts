import assert from "node:assert/strict";
import { FileLockError, FileLockTimeoutError, lockFile, withFileLock } from "./mod.ts";
import { READY, spawnDeno, writeChildScript } from "../_testing/child.ts";

const tick = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

// A child that takes a lock, says READY, and holds it until killed or told to stop.
const HOLDER = `
import { lockFile } from "$ROOT/atomic/mod.ts";
const [path, mode] = Deno.args;
await lockFile(path, { exclusive: mode === "exclusive" });
console.log("${READY}");
setInterval(() => {}, 1000); // hold until killed
`;

async function startHolder(path: string, mode: "exclusive" | "shared") {
  const script = writeChildScript(HOLDER);
  const child = spawnDeno(script.path, [path, mode]);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes(READY)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`holder exited early: ${await new Response(child.stderr).text()}`);
    seen += value;
  }
  return {
    async kill() {
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel();
      await child.stderr.cancel();
      script[Symbol.dispose]();
    },
  };
}

Deno.test("exclusive locks in one process are taken one at a time, in arrival order", async () => {
  const path = `${await Deno.makeTempDir()}/job.lock`;
  const order: string[] = [];
  const worker = (name: string) =>
    withFileLock(path, async () => {
      order.push(`${name}+`);
      await tick(5);
      order.push(`${name}-`);
    });
  await Promise.all(["a", "b", "c", "d"].map(worker));
  assert.deepEqual(order, ["a+", "a-", "b+", "b-", "c+", "c-", "d+", "d-"]);
});

Deno.test("a lock times out with FileLockTimeoutError naming the path and the wait", async () => {
  const path = `${await Deno.makeTempDir()}/job.lock`;
  const held = await lockFile(path);
  await assert.rejects(lockFile(path, { timeout: 60, pollInterval: 10 }), (error: unknown) => {
    assert.ok(error instanceof FileLockTimeoutError);
    assert.ok(error instanceof FileLockError);
    assert.equal(error.path, path);
    assert.equal(error.timeout, 60);
    assert.match(error.message, /timed out after 60 ms.*job\.lock/);
    return true;
  });
  await held.release();
  await held.release(); // idempotent
  assert.ok(held.released);
  const again = await lockFile(path, { timeout: 0 });
  await again.release();
});

Deno.test("shared locks coexist; an exclusive lock waits for them all", async () => {
  const path = `${await Deno.makeTempDir()}/data.lock`;
  const a = await lockFile(path, { exclusive: false });
  const b = await lockFile(path, { exclusive: false, timeout: 100 });
  let writerHasIt = false;
  const writer = lockFile(path).then((lock) => {
    writerHasIt = true;
    return lock;
  });
  await tick();
  assert.equal(writerHasIt, false);
  await a.release();
  await tick();
  assert.equal(writerHasIt, false);
  await b.release();
  const lock = await writer;
  assert.ok(writerHasIt);
  await assert.rejects(lockFile(path, { exclusive: false, timeout: 30 }), FileLockTimeoutError);
  await lock.release();
});

Deno.test("await using releases the lock at the end of the block", async () => {
  const path = `${await Deno.makeTempDir()}/scoped.lock`;
  {
    await using lock = await lockFile(path);
    assert.equal(lock.path, path);
    assert.equal(lock.exclusive, true);
  }
  const next = await lockFile(path, { timeout: 0 });
  await next.release();
});

Deno.test("withFileLock releases when the callback throws", async () => {
  const path = `${await Deno.makeTempDir()}/throw.lock`;
  await assert.rejects(
    withFileLock(path, () => {
      throw new URIError("boom");
    }),
    URIError,
  );
  assert.equal(await withFileLock(path, () => 5, { timeout: 0 }), 5);
});

Deno.test("an abort signal stops the wait", async () => {
  const path = `${await Deno.makeTempDir()}/abort.lock`;
  const held = await lockFile(path);
  const controller = new AbortController();
  const waiting = lockFile(path, { signal: controller.signal });
  controller.abort(new Error("no longer needed"));
  await assert.rejects(waiting, /no longer needed/);
  await held.release();
  await (await lockFile(path, { timeout: 0 })).release();
});

Deno.test("a directory cannot be a lock file, and a bad timeout is refused", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(lockFile(dir), (error: unknown) => {
    assert.ok(error instanceof FileLockError);
    assert.match(error.message, /directory/);
    return true;
  });
  await assert.rejects(lockFile(`${dir}/x.lock`, { timeout: -1 }), RangeError);
  await assert.rejects(lockFile(`${dir}/missing/x.lock`), FileLockError);
});

Deno.test("a lock held by another process excludes us until that process is SIGKILLed", async () => {
  const path = `${await Deno.makeTempDir()}/cross.lock`;
  const holder = await startHolder(path, "exclusive");
  await assert.rejects(lockFile(path, { timeout: 150, pollInterval: 20 }), FileLockTimeoutError);
  await assert.rejects(lockFile(path, { timeout: 50, exclusive: false }), FileLockTimeoutError);
  await holder.kill();
  // The kernel released the dead holder's lock.
  const lock = await lockFile(path, { timeout: 2000 });
  await lock.release();
});

Deno.test("a shared lock in another process admits shared holders, not exclusive ones", async () => {
  const path = `${await Deno.makeTempDir()}/cross-shared.lock`;
  const holder = await startHolder(path, "shared");
  const reader = await lockFile(path, { exclusive: false, timeout: 1000 });
  await reader.release();
  await assert.rejects(lockFile(path, { timeout: 100, pollInterval: 10 }), FileLockTimeoutError);
  await holder.kill();
  await (await lockFile(path, { timeout: 2000 })).release();
});
