import assert from "node:assert/strict";
import { crashRounds } from "../_testing/child.ts";
import { snapshot, track } from "./mod.ts";

// The child keeps an invariant across several top-level keys (a + b = 0,
// a = n, the log ends with n), changing all of them in each batch, until it
// is killed with SIGKILL at a random moment.
const CHILD = `
import { batch, track } from "$ROOT/reactive/mod.ts";
const [dir, persist] = Deno.args;
const state = track({ a: 0, b: 0, n: 0, log: [] }, "crash", { dir, persist });
console.log("READY");
for (;;) {
  await batch(state, () => {
    state.a += 1;
    state.b -= 1;
    state.n += 1;
    state.log.push(state.n);
    if (state.log.length > 20) state.log.splice(0, 10);
  });
}
`;

for (const persist of ["pod", "json"] as const) {
  Deno.test(`SIGKILL during saves (${persist}): the stored state is always a complete batch`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "reactive_crash_" });
    let previous = 0;
    const report = await crashRounds({
      source: CHILD,
      rounds: persist === "pod" ? 6 : 4,
      args: () => [dir, persist],
      minDelay: 20,
      maxDelay: 250,
      verify: () => {
        const state = snapshot(track({}, "crash", { dir, persist })) as {
          a: number;
          b: number;
          n: number;
          log: number[];
        };
        assert.equal(state.a + state.b, 0);
        assert.equal(state.a, state.n);
        if (state.n > 0) assert.equal(state.log.at(-1), state.n);
        assert.ok(state.n >= previous, "no committed batch is lost");
        previous = state.n;
      },
    });
    assert.ok(report.killed > 0);
    assert.ok(previous > 0, "the child got some batches done");
    await Deno.remove(dir, { recursive: true });
  });
}
