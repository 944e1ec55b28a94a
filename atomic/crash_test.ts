import assert from "node:assert/strict";
import { atomicWrite } from "./mod.ts";
import { crashRounds, READY } from "../_testing/child.ts";

// Payload i is large (1 MiB) for odd i and small for even i, so kills land
// in the middle of long writes as well as between short ones.
const payload = (i: number) =>
  JSON.stringify({ i, pad: i % 2 ? "L".repeat(1 << 20) : "s".repeat(16) });

const WRITER = `
import { atomicWrite, atomicWriteSync } from "$ROOT/atomic/mod.ts";
const [path, mode, start] = Deno.args;
const payload = ${payload.toString()};
console.log("${READY}");
for (let i = Number(start); ; i++) {
  if (mode === "sync") atomicWriteSync(path, payload(i));
  else await atomicWrite(path, payload(i));
}
`;

Deno.test("SIGKILL during atomic writes: the file is always one complete payload", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/data.json`;
  await atomicWrite(path, payload(0));
  let last = 0;
  const report = await crashRounds({
    source: WRITER,
    rounds: 50,
    maxDelay: 250,
    args: (round) => [path, round % 2 ? "sync" : "async", String(last + 1)],
    verify: async () => {
      const text = await Deno.readTextFile(path);
      const value = JSON.parse(text);
      assert.equal(text, payload(value.i), "the file is exactly one payload");
      assert.ok(value.i >= last, "no committed write is lost");
      last = value.i;
    },
  });
  assert.ok(report.killed > 40, `most rounds were killed mid-run (${report.killed})`);
  // Temporary files left by killed writers never get in the way.
  await atomicWrite(path, payload(last + 1));
  assert.equal(await Deno.readTextFile(path), payload(last + 1));
  const stray = Array.from(Deno.readDirSync(dir), (entry) => entry.name).filter((name) =>
    name !== "data.json"
  );
  assert.ok(stray.every((name) => /^\.data\.json\.\w+\.(tmp|old)$/.test(name)), stray.join(", "));
});
