/**
 * Benchmarks of the `atomic/` module against the same system calls made by
 * hand. Run with `deno bench -A atomic/atomic_bench.ts`; every group has a
 * baseline, so deno prints "x faster/slower than" ratios within one run.
 *
 * Each group works in its own temporary directory (created on first use,
 * removed when the run ends) and every benchmark of a group replaces the same
 * target file again and again, with a fresh temporary name per iteration.
 *
 * @module
 */

import { join } from "node:path";
import { atomicUpdateJson, atomicWrite, atomicWriteSync, lockFile } from "./mod.ts";
import { bareDurableWrite, bareDurableWriteSync } from "../_testing/bench.ts";

const dirs = new Map<string, Promise<string>>();
const created: string[] = [];

/** The group's temporary directory, created on first use. */
function groupDir(group: string): Promise<string> {
  let dir = dirs.get(group);
  if (!dir) {
    dir = Deno.makeTempDir({ prefix: "atomic_bench_" }).then((path) => {
      created.push(path);
      return path;
    });
    dirs.set(group, dir);
  }
  return dir;
}

globalThis.addEventListener("unload", () => {
  for (const path of created) {
    try {
      Deno.removeSync(path, { recursive: true });
    } catch { /* already gone */ }
  }
});

/** A unique temporary name beside `target`, made as the library makes its own. */
function tempName(target: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${target}.${random[0].toString(36)}${random[1].toString(36)}.tmp`;
}

/** The non-durable replacement done by hand: temp file, write, close, rename. */
async function bareReplace(target: string, data: Uint8Array): Promise<void> {
  const temp = tempName(target);
  const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o666 });
  let offset = 0;
  while (offset < data.byteLength) offset += await file.write(data.subarray(offset));
  file.close();
  await Deno.rename(temp, target);
}

function randomBytes(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(size, at + 65536)));
  }
  return data;
}

function durableWriteGroup(group: string, size: number): void {
  const data = randomBytes(size);
  const target = async () => join(await groupDir(group), "target.bin");

  Deno.bench("bare sequence (async)", { group, baseline: true }, async (b) => {
    const path = await target();
    b.start();
    await bareDurableWrite(path, data);
    b.end();
  });
  Deno.bench("bare sequence (sync)", { group }, async (b) => {
    const path = await target();
    b.start();
    bareDurableWriteSync(path, data);
    b.end();
  });
  Deno.bench("atomicWrite", { group }, async (b) => {
    const path = await target();
    b.start();
    await atomicWrite(path, data);
    b.end();
  });
  Deno.bench("atomicWriteSync", { group }, async (b) => {
    const path = await target();
    b.start();
    atomicWriteSync(path, data);
    b.end();
  });
}

durableWriteGroup("write 1 KiB", 1024);
durableWriteGroup("write 1 MiB", 1024 * 1024);

{
  const group = "write 1 KiB, fsync: false";
  const data = randomBytes(1024);
  const target = async () => join(await groupDir(group), "target.bin");

  Deno.bench("bare write + rename", { group, baseline: true }, async (b) => {
    const path = await target();
    b.start();
    await bareReplace(path, data);
    b.end();
  });
  Deno.bench("atomicWrite, fsync: false", { group }, async (b) => {
    const path = await target();
    b.start();
    await atomicWrite(path, data, { fsync: false });
    b.end();
  });
  Deno.bench("atomicWriteSync, fsync: false", { group }, async (b) => {
    const path = await target();
    b.start();
    atomicWriteSync(path, data, { fsync: false });
    b.end();
  });
}

{
  const group = "uncontended lock";
  const target = async () => join(await groupDir(group), "bench.lock");

  Deno.bench("bare open + flock + unlock + close", { group, baseline: true }, async (b) => {
    const path = await target();
    b.start();
    const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o666 });
    if (!(await file.tryLock(true))) throw new Error("the bench lock is taken");
    await file.unlock();
    file.close();
    b.end();
  });
  Deno.bench("lockFile + release", { group }, async (b) => {
    const path = await target();
    b.start();
    const lock = await lockFile(path);
    await lock.release();
    b.end();
  });
}

{
  const group = "small JSON counter";
  const target = async () => join(await groupDir(group), "counter.json");
  let written = 0;

  Deno.bench("atomicWrite of the JSON (no lock, no read)", {
    group,
    baseline: true,
  }, async (b) => {
    const path = await target();
    const text = `${JSON.stringify({ counter: ++written }, null, 2)}\n`;
    b.start();
    await atomicWrite(path, text);
    b.end();
  });
  Deno.bench("atomicUpdateJson (lock, read, parse, write)", { group }, async (b) => {
    const path = await target();
    b.start();
    await atomicUpdateJson(path, (data) => {
      data.counter += 1;
      return data;
    }, { defaultData: { counter: 0 } });
    b.end();
  });
}
