import assert from "node:assert/strict";
import jsonPatch from "fast-json-patch";
import {
  type Change,
  diff,
  fromTaggedJson,
  type JsonPatchOperation,
  patch,
  PatchError,
  revert,
  snapshot,
  toTaggedJson,
  track,
} from "./mod.ts";

/** Applies operations with an independent RFC 6902 implementation, to a JSON copy. */
function applyIndependently(document: unknown, operations: readonly JsonPatchOperation[]): unknown {
  const copy = structuredClone(document);
  return jsonPatch.applyPatch(copy, structuredClone(operations) as jsonPatch.Operation[], true)
    .newDocument;
}

Deno.test("change patches apply with fast-json-patch to the JSON form", () => {
  const start = {
    name: "x",
    list: [1, { id: 2, tags: ["a"] }, 3] as unknown[],
    map: new Map<unknown, unknown>([["k", { n: 1 }], [2, "two"]]),
    set: new Set(["a", "b"]),
    "$weird/~key": { "$set": 1 },
    when: new Date(0),
  };
  let json = toTaggedJson(start);
  const state = track(start, {
    onChange(change: Change) {
      json = applyIndependently(json, change.patches);
      assert.deepEqual(json, toTaggedJson(snapshot(state)), `after ${change.op}`);
    },
  });
  state.name = "y";
  state.list.push(4, { id: 5, tags: [] });
  state.list[1] = "replaced";
  state.list.splice(0, 2, "a", "b", "c");
  state.list.shift();
  state.list.unshift(0);
  state.list.sort();
  state.list.reverse();
  state.list.fill(7, 1, 2);
  state.list.copyWithin(0, 2);
  state.list.length = 3;
  state.list.pop();
  (state.map.get("k") as { n: number }).n = 2;
  (state.map.get("k") as Record<string, unknown>).added = [1];
  state.map.set(3, new Map([["deep", 1]]));
  (state.map.get(3) as Map<string, number>).set("deep", 2);
  state.map.delete("k");
  state.map.set(2, "TWO");
  state.map.clear();
  state.set.add("c");
  state.set.delete("a");
  state.set.clear();
  state["$weird/~key"]["$set"] = 2;
  state.when = new Date(1);
  delete (state as Partial<typeof state>).name;
  (state as Record<string, unknown>)["new/key~"] = { a: [] };
});

Deno.test("a batch's changes and undos, replayed with fast-json-patch, end where they began", async () => {
  const { batch } = await import("./mod.ts");
  const start = {
    list: [1, 2, 3],
    map: new Map([["a", 1]]),
    obj: { x: 1 } as Record<string, number>,
  };
  let json = toTaggedJson(start);
  const state = track(start, {
    onChange: (change) => json = applyIndependently(json, change.patches),
  });
  await assert.rejects(batch(state, () => {
    state.list.splice(1, 1);
    state.list.push(9);
    state.map.delete("a");
    state.map.set("b", 2);
    delete state.obj.x;
    state.obj.y = 2;
    state.list.reverse();
    throw new Error("no");
  }));
  assert.deepEqual(json, toTaggedJson(start));
});

Deno.test("diff gives operations that patch (ours and fast-json-patch's) and revert", () => {
  const cases: [unknown, unknown][] = [
    [{ a: 1 }, { a: 2 }],
    [{ a: 1, b: [1, 2, 3, 4] }, { b: [1, 9, 4], c: null }],
    [[1, 2, 3], [0, 1, 2, 3]],
    [[1, 2, 3], [1, 3]],
    [[{ x: 1 }, { x: 2 }], [{ x: 1 }, { x: 3 }, { y: 1 }]],
    [{ m: new Map([["a", 1], ["b", 2]]) }, { m: new Map([["b", 3], ["c", 4]]) }],
    [{ m: new Map([["a", 1], ["b", 2]]) }, { m: new Map([["b", 2], ["a", 1]]) }],
    [{ m: new Map([["a", { deep: [1] }]]) }, { m: new Map([["a", { deep: [1, 2] }]]) }],
    [{ s: new Set([1, 2, 3]) }, { s: new Set([2, 4]) }],
    [{ s: new Set([1, 2]) }, { s: [1, 2] }],
    [{ d: new Date(0), b: new Uint8Array([1]) }, { d: new Date(1), b: new Uint8Array([2]) }],
    [{ "$x": 1, "a/b": 2, "m~n": 3 }, { "$x": 2, "a/b": 3, "m~n": 4 }],
    [new Map([[1, "a"]]), new Map([[1, "b"], [2, "c"]])],
    [{}, { nested: { deeper: { list: [new Set(["x"])] } } }],
  ];
  for (const [a, b] of cases) {
    const ops = diff(a, b);
    const patched = patch(structuredClone(a) as object, ops);
    assert.deepEqual(patched, b, `patch: ${JSON.stringify(ops)}`);
    assert.deepEqual(applyIndependently(toTaggedJson(a), ops), toTaggedJson(b), "fast-json-patch");
    assert.deepEqual(revert(patched, ops), a, "revert");
    assert.deepEqual(diff(a, a), []);
  }
});

Deno.test("patch on a tracked structure reports each operation and saves once", async () => {
  const dir = await Deno.makeTempDir();
  const seen: Change[] = [];
  const state = track({ list: [1], n: 0 }, "patched", {
    dir,
    persist: "json",
    onChange: (change) => seen.push(change),
  });
  const ops: JsonPatchOperation[] = [
    { op: "add", path: "/list/-", value: 2 },
    { op: "test", path: "/n", value: 0 },
    { op: "replace", path: "/n", value: 5 },
    { op: "copy", from: "/list", path: "/copy" },
    { op: "move", from: "/copy", path: "/moved" },
    { op: "test", path: "/moved/1", value: 2 },
  ];
  patch(state, ops);
  assert.deepEqual(snapshot(state), { list: [1, 2], n: 5, moved: [1, 2] });
  assert.ok(seen.every((change) => change.op === "patch"));
  assert.deepEqual(seen.map((change) => (change.args[0] as JsonPatchOperation).op), [
    "add",
    "replace",
    "copy",
    "move",
    "move",
  ]);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/patched.json`)), snapshot(state));
  revert(state, ops);
  assert.deepEqual(snapshot(state), { list: [1], n: 0 });
  // A change's own patches revert it.
  seen.length = 0;
  state.list.splice(0, 1, 7, 8);
  revert(state, seen[0].patches);
  assert.deepEqual(snapshot(state.list), [1]);
});

Deno.test("a failing patch changes nothing, tracked or plain", async () => {
  const dir = await Deno.makeTempDir();
  const bad: JsonPatchOperation[] = [
    { op: "replace", path: "/a", value: 2 },
    { op: "add", path: "/list/0", value: "x" },
    { op: "test", path: "/a", value: 3 },
  ];
  const plain = { a: 1, list: [1] };
  assert.throws(() => patch(plain, bad), (error: unknown) => {
    assert.ok(error instanceof PatchError);
    assert.equal(error.index, 2);
    assert.match(error.message, /test failed/);
    return true;
  });
  assert.deepEqual(plain, { a: 1, list: [1] });
  const seen: string[] = [];
  const tracked = track({ a: 1, list: [1] }, "failing", {
    dir,
    persist: "yaml",
    onChange: (change) => seen.push(change.op),
  });
  const file = await Deno.readTextFile(`${dir}/failing.yaml`);
  assert.throws(() => patch(tracked, bad), PatchError);
  assert.deepEqual(snapshot(tracked), { a: 1, list: [1] });
  assert.deepEqual(seen, ["patch", "patch", "undo", "undo"]);
  assert.equal(await Deno.readTextFile(`${dir}/failing.yaml`), file);
  // Values the format cannot store are a TypeError, also undone.
  assert.throws(
    () =>
      patch(tracked, [{ op: "add", path: "/b", value: 1 }, {
        op: "add",
        path: "/c",
        value: { $bytes: "AA==" },
      }, { op: "add", path: "/d", value: () => 1 }]),
    TypeError,
  );
  assert.deepEqual(snapshot(tracked), { a: 1, list: [1] });
});

Deno.test("malformed operations and paths are PatchErrors", () => {
  const doc = { a: [1], m: new Map([["k", 1]]), s: new Set([1]), d: new Date(0) };
  const bad: unknown[] = [
    { op: "nope", path: "/a" },
    { op: "add", value: 1 },
    { op: "add", path: "a", value: 1 },
    { op: "add", path: "/a/5", value: 1 },
    { op: "add", path: "/a/01", value: 1 },
    { op: "remove", path: "/missing" },
    { op: "replace", path: "/missing", value: 1 },
    { op: "add", path: "/m/k", value: 1 },
    { op: "add", path: "/m/$map/0", value: ["k", 2] },
    { op: "add", path: "/m/$map/0", value: "not an entry" },
    { op: "add", path: "/s/$set/-", value: 1 },
    { op: "add", path: "/d/$date", value: "x" },
    { op: "move", from: "/a", path: "/a/0" },
    { op: "copy", path: "/x" },
    { op: "replace", path: "", value: [] },
    { op: "remove", path: "" },
  ];
  for (const operation of bad) {
    assert.throws(
      () => patch(doc, [operation as JsonPatchOperation]),
      PatchError,
      JSON.stringify(operation),
    );
  }
  assert.deepEqual(doc, { a: [1], m: new Map([["k", 1]]), s: new Set([1]), d: new Date(0) });
  assert.throws(() => revert({ a: 1 }, [{ op: "remove", path: "/a" }]), /without a test/);
  assert.throws(() => patch(5, []), TypeError);
});

Deno.test("Maps and Sets are addressed by position in their tagged form", () => {
  const doc = { m: new Map<unknown, unknown>([["a", 1], ["b", 2]]), s: new Set(["x", "y"]) };
  patch(doc, [
    { op: "add", path: "/m/$map/1", value: ["between", 0] },
    { op: "replace", path: "/m/$map/0/0", value: "renamed" },
    { op: "replace", path: "/m/$map/2/1", value: 20 },
    { op: "add", path: "/s/$set/0", value: "first" },
    { op: "replace", path: "/s/$set/2", value: "why" },
    { op: "remove", path: "/s/$set/1" },
  ]);
  assert.deepEqual([...doc.m], [["renamed", 1], ["between", 0], ["b", 20]]);
  assert.deepEqual([...doc.s], ["first", "why"]);
});

Deno.test("the tagged JSON form round-trips and escapes $ keys", () => {
  const value = {
    set: new Set([1]),
    map: new Map([[1, new Map([["x", new Date(5)]])]]),
    bytes: new Uint8Array([1, 2, 3]).subarray(1),
    floats: new Float32Array([0.5]),
    "$map": "not a tag",
    "$$": 1,
  };
  const json = toTaggedJson(value) as Record<string, unknown>;
  assert.deepEqual(json.set, { $set: [1] });
  assert.deepEqual(json.bytes, { $bytes: "AgM=" });
  assert.equal(json["$$map"], "not a tag");
  assert.equal(json["$$$"], 1);
  assert.deepEqual(fromTaggedJson(JSON.parse(JSON.stringify(json))), value);
  assert.throws(() => fromTaggedJson({ $map: 5 }), SyntaxError);
  assert.throws(() => fromTaggedJson({ $date: "yesterday" }), SyntaxError);
});
