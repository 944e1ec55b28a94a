/**
 * Benchmarks of `reactive/`. Run with
 * `deno bench -A reactive/reactive_bench.ts`; every group has a baseline, so
 * deno prints "x faster/slower than" ratios within one run.
 *
 * - `property set` and `array push`: the same workload on plain objects (the
 *   baseline), on tracked structures (without and with an `onChange`
 *   listener, never persisted), and on the npm libraries `on-change` and
 *   `valtio` (vanilla `proxy` + `subscribe`), each with a listener that does
 *   nothing.
 * - `persisted batch`: 10,000 changes to a structure saved as JSON, inside
 *   one `batch`, against one atomic write of the same data: the batch costs
 *   one write (counted, and checked on every run).
 *
 * @module
 */

import onChange from "on-change";
import { proxy, subscribe } from "valtio/vanilla";
import { injectFaults } from "../_internal/fs.ts";
import { atomicWriteJson } from "../atomic/mod.ts";
import { batch, track } from "./mod.ts";

const SETS = 1_000;
const PUSHES = 1_000;
const noop = () => {};

interface State {
  count: number;
  nested: { value: number; label: string };
}

const initial = (): State => ({ count: 0, nested: { value: 0, label: "" } });

/** Sets top-level and nested properties, numbers and strings. */
function setProperties(state: State): void {
  for (let i = 0; i < SETS; i++) {
    state.count = i;
    state.nested.value = i;
    state.nested.label = i % 2 === 0 ? "even" : "odd";
  }
}

/** Pushes numbers and small objects. */
function pushItems(list: unknown[]): void {
  for (let i = 0; i < PUSHES; i++) list.push(i % 3 === 0 ? { id: i } : i);
}

// Long-lived structures for the property sets, created once per library.
const plainState = initial();
const quietState = track(initial());
const listenedState = track(initial(), { onChange: noop });
const onChangeState = onChange(initial(), noop);
const valtioState = proxy(initial());
subscribe(valtioState, noop);

Deno.bench("plain object", { group: "property set", baseline: true }, () => {
  setProperties(plainState);
});
Deno.bench("track (no listener)", { group: "property set" }, () => {
  setProperties(quietState);
});
Deno.bench("track + onChange", { group: "property set" }, () => {
  setProperties(listenedState);
});
Deno.bench("on-change", { group: "property set" }, () => {
  setProperties(onChangeState);
});
Deno.bench("valtio", { group: "property set" }, async () => {
  setProperties(valtioState);
  await Promise.resolve(); // let valtio deliver its batched notification
});

// Fresh lists for every run of the pushes, so that they do not grow forever.
Deno.bench("plain array", { group: "array push", baseline: true }, () => {
  pushItems({ list: [] as unknown[] }.list);
});
Deno.bench("track (no listener)", { group: "array push" }, () => {
  pushItems(track({ list: [] as unknown[] }).list);
});
Deno.bench("track + onChange", { group: "array push" }, () => {
  pushItems(track({ list: [] as unknown[] }, { onChange: noop }).list);
});
Deno.bench("on-change", { group: "array push" }, () => {
  pushItems(onChange({ list: [] as unknown[] }, noop).list);
});
Deno.bench("valtio", { group: "array push" }, async () => {
  const state = proxy({ list: [] as unknown[] });
  const unsubscribe = subscribe(state, noop);
  pushItems(state.list);
  await Promise.resolve();
  unsubscribe();
});

// Persisted: one batch of 10,000 changes is one atomic write.
const CHANGES = 10_000;
const dir = Deno.makeTempDirSync({ prefix: "reactive_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const persisted = track({ items: [] as number[], total: 0 }, "batched", { dir, persist: "json" });

Deno.bench("one atomicWriteJson", { group: "persisted batch", baseline: true }, async () => {
  await atomicWriteJson(`${dir}/plain.json`, {
    items: Array.from({ length: CHANGES / 2 }, (_, i) => i),
    total: CHANGES / 2,
  });
});
Deno.bench("10,000 changes in one batch (json)", { group: "persisted batch" }, async () => {
  await injectFaults([], async (log) => {
    await batch(persisted, () => {
      persisted.items.length = 0;
      persisted.total = 0;
      for (let i = 0; i < CHANGES / 2; i++) {
        persisted.items.push(i);
        persisted.total += 1;
      }
    });
    const writes = log.calls.filter((call) => call.startsWith("rename ")).length;
    if (writes !== 1) throw new Error(`expected one write, saw ${writes}`);
  });
});
