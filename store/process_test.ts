import assert from "node:assert/strict";
import { decode as decodeMsgpack } from "@msgpack/msgpack";
import { parse as parseYaml } from "yaml";
import { crashRounds, READY, runConcurrently } from "../_testing/child.ts";
import { open } from "./mod.ts";

const PROCESSES = 4;
const INCREMENTS = 100;

Deno.test(`lock: ${PROCESSES} processes x ${INCREMENTS} increments through with() lose nothing`, async () => {
  const path = `${await Deno.makeTempDir()}/counter.json`;
  await runConcurrently(
    `
    import { open } from "$ROOT/store/mod.ts";
    const [path, count] = Deno.args;
    await using store = await open(path, { default: 0, lock: true });
    for (let i = 0; i < Number(count); i++) await store.with((s) => void s.value++);
    `,
    PROCESSES,
    () => [path, String(INCREMENTS)],
  );
  assert.equal(JSON.parse(await Deno.readTextFile(path)), PROCESSES * INCREMENTS);
  assert.equal((await open(path)).value, PROCESSES * INCREMENTS);
});

Deno.test("no lock: concurrent processes may lose updates, but the file is never corrupt", async () => {
  const path = `${await Deno.makeTempDir()}/counter.json`;
  const children = runConcurrently(
    `
    import { open } from "$ROOT/store/mod.ts";
    const [path, count] = Deno.args;
    const store = await open(path, { default: 0 });
    for (let i = 0; i < Number(count); i++) {
      await store.reload(); // read what the others wrote ...
      await store.with((s) => void s.value++); // ... but another may write in between
    }
    `,
    PROCESSES,
    () => [path, String(INCREMENTS)],
  );
  let finished = false;
  const done = children.finally(() => finished = true);
  // While the children run, every read sees a complete file.
  let reads = 0;
  while (!finished) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      throw error;
    }
    const value = JSON.parse(text);
    assert.ok(Number.isInteger(value) && value >= 1 && value <= PROCESSES * INCREMENTS, text);
    reads++;
  }
  await done;
  const final = JSON.parse(await Deno.readTextFile(path));
  // Each process counts its own increments at least; lost updates are allowed.
  assert.ok(final >= INCREMENTS && final <= PROCESSES * INCREMENTS, `final value ${final}`);
  assert.ok(reads >= 0);
});

const FILES = ["state.json", "state.yaml", "state.msgpack"] as const;

function decodeFile(name: string, bytes: Uint8Array): unknown {
  if (name.endsWith(".msgpack")) return decodeMsgpack(bytes);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  return name.endsWith(".yaml") ? parseYaml(text) : JSON.parse(text);
}

Deno.test("SIGKILL during commits: the file is always a complete, earlier commit", async () => {
  const dir = await Deno.makeTempDir();
  const last = new Map<string, number>();
  const report = await crashRounds({
    rounds: 30,
    // Each round one of three formats, alternating plain commits and locked with() calls.
    args: (round) => [`${dir}/${FILES[round % 3]}`, round % 2 === 0 ? "commit" : "with"],
    source: `
      import { open } from "$ROOT/store/mod.ts";
      const [path, mode] = Deno.args;
      // A value big enough that a write takes a while: n, and a checksum of it.
      const pad = Array.from({ length: 2000 }, (_, i) => i);
      const store = await open(path, { default: { n: 0, pad, check: 0 }, lock: mode === "with" });
      const step = async () => {
        if (mode === "commit") {
          store.value.n++;
          store.value.check = store.value.n * 7;
          await store.commit();
        } else {
          await store.with((s) => {
            s.value.n++;
            s.value.check = s.value.n * 7;
          });
        }
      };
      await step();
      console.log("${READY}");
      for (let i = 0; i < 100_000; i++) await step();
    `,
    maxDelay: 150,
    verify: async (round) => {
      const name = FILES[round % 3];
      const value = decodeFile(name, await Deno.readFile(`${dir}/${name}`)) as {
        n: number;
        pad: number[];
        check: number;
      };
      assert.ok(Number.isInteger(value.n) && value.n >= 1, `round ${round}: n = ${value.n}`);
      assert.equal(value.check, value.n * 7, `round ${round}: a value that was committed`);
      assert.equal(value.pad.length, 2000);
      assert.ok(value.n > (last.get(name) ?? 0), `round ${round}: never goes backwards`);
      last.set(name, value.n);
      if (round % 2 === 1) {
        // The killed holder's lock died with it.
        const store = await open(`${dir}/${name}`, { lock: { timeout: 5000 } });
        await store.with(() => {});
      }
    },
  });
  assert.equal(report.killed + report.finished, 30);
  assert.ok(report.killed > 0);
});
