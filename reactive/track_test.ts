import assert from "node:assert/strict";
import { type FaultLog, injectFaults } from "../_internal/fs.ts";
import {
  AtomicWriteError,
  batch,
  type Change,
  CorruptFileError,
  isTracked,
  type PersistBackend,
  snapshot,
  track,
} from "./mod.ts";

const tempDir = () => Deno.makeTempDir({ prefix: "reactive_test_" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Records the changes a tracked structure reports, with their patches read at once. */
function recorder() {
  const changes: (Change & { patchList: unknown[] })[] = [];
  const onChange = (change: Change) => {
    changes.push(Object.assign(Object.create(change), { patchList: [...change.patches] }));
  };
  return { changes, onChange, last: () => changes[changes.length - 1] };
}

const writes = (log: FaultLog) => log.calls.filter((call) => call.startsWith("rename ")).length;
const reads = (log: FaultLog, part = "") =>
  log.calls.filter((call) => call.startsWith("read ") && call.includes(part)).length;

// ---------------------------------------------------------------------------
// The seed's examples

Deno.test("seed: a configuration file kept in sync as YAML", async () => {
  const dir = await tempDir();
  const conf = track(
    {
      endpoint: { protocol: "HTTP", address: "docs.python.org" },
      retry_intervals: [1, 3, 5],
    },
    "example-config",
    { dir },
  );
  conf.retry_intervals.push(10);
  assert.equal(conf.endpoint.protocol, "HTTP");
  assert.equal(
    await Deno.readTextFile(`${dir}/example-config.yaml`),
    "endpoint:\n  protocol: HTTP\n  address: docs.python.org\nretry_intervals:\n  - 1\n  - 3\n  - 5\n  - 10\n",
  );
  // The batch ("with conf:") saves once at its end.
  await injectFaults([], async (log) => {
    await batch(conf, () => {
      conf.endpoint.protocol = "HTTPS";
      conf.retry_intervals[0] = 2;
    });
    assert.equal(writes(log), 1);
  });
  // An existing file wins over the initial value.
  const again = track({ endpoint: {}, retry_intervals: [] as number[] }, "example-config", { dir });
  assert.deepEqual(snapshot(again), {
    endpoint: { protocol: "HTTPS", address: "docs.python.org" },
    retry_intervals: [2, 3, 5, 10],
  });
});

Deno.test("seed: a view updated from a model of sets", () => {
  const printed: string[] = [];
  const userDir = track(
    { regulars: new Set<string>(), admins: new Set<string>() },
    "user directory",
    {
      persist: false,
      onChange(change) {
        if (change.path.length === 1 && change.path[0] === "regulars") {
          printed.push(`Number of users: ${(change.target as Set<string>).size}`);
        }
        if (change.path.length === 1 && change.path[0] === "admins") {
          printed.push(`Number of admins: ${(change.target as Set<string>).size}`);
        }
      },
    },
  );
  userDir.regulars.add("Random User");
  userDir.admins.add("Superuser");
  userDir.regulars.add("Another User");
  userDir.regulars.add("Another User"); // already there: no change
  assert.deepEqual(printed, ["Number of users: 1", "Number of admins: 1", "Number of users: 2"]);
});

Deno.test("seed: the change record (root, name, path, op, args, target)", () => {
  const { changes, onChange, last } = recorder();
  const family = track({ parents: {} as Record<string, string>, siblings: [] as string[] }, {
    onChange,
  });
  family.siblings.push("Brother");
  assert.equal(last().target, family.siblings); // the list that was appended to
  assert.deepEqual(snapshot(last().target), ["Brother"]);
  assert.equal(last().root, family);
  assert.equal(last().name, undefined);
  assert.deepEqual(last().path, ["siblings"]);
  assert.equal(last().op, "push");
  assert.deepEqual(last().args, ["Brother"]);
  family.parents.mother = "Mom";
  assert.equal(last().target, family.parents);
  assert.deepEqual([last().op, last().args, last().path], ["set", ["mother", "Mom"], ["parents"]]);
  assert.equal(changes.length, 2);
  const named = track([1, 2], "list", { persist: false, onChange });
  named.push(3);
  assert.equal(last().name, "list");
  assert.equal(last().op, "push");
  assert.deepEqual(last().path, []);
  assert.equal(last().target, named);
});

Deno.test("seed: a counter incremented concurrently, without and with batch", async () => {
  const counter = track({} as { value: number }, { persist: false });
  const incrementCounter = async () => {
    const previous = counter.value;
    const next = previous + 1;
    await sleep(10); // let the other one run
    counter.value = next;
  };
  counter.value = 0;
  await Promise.all([incrementCounter(), incrementCounter()]);
  assert.equal(counter.value, 1); // 1 + 1 = what?!
  counter.value = 0;
  await Promise.all([batch(counter, incrementCounter), batch(counter, incrementCounter)]);
  assert.equal(counter.value, 2); // back to regular math
});

Deno.test("seed: per-key persistence loads each key lazily and saves only that key", async () => {
  const dir = await tempDir();
  track({ "one branch": "lots of data", "other branch": "even more data" }, "example-dbm", {
    dir,
    persist: "pod",
  });
  await injectFaults([], (log) => {
    const large = track({} as Record<string, string>, "example-dbm", { dir, persist: "pod" });
    assert.equal(reads(log, "/example-dbm/"), 1, "opening reads the index only");
    assert.deepEqual(Object.keys(large), ["one branch", "other branch"]);
    assert.ok("other branch" in large);
    assert.equal(reads(log, "/example-dbm/"), 1, "keys and membership need no value");
    assert.equal(large["one branch"], "lots of data"); // lazily loaded
    assert.equal(reads(log, "/example-dbm/"), 2);
    assert.equal(large["one branch"], "lots of data");
    assert.equal(reads(log, "/example-dbm/"), 2, "a loaded key is not read again");
    const before = log.calls.length;
    large["one branch"] = "changed data"; // saved by specific key
    const renames = log.calls.slice(before).filter((call) => call.startsWith("rename "));
    assert.equal(renames.length, 1);
    assert.match(renames[0], /example-dbm\/\.0\.json\.\w+\.tmp$/); // the temporary file of 0.json
    assert.equal(reads(log, "/example-dbm/"), 2, "the other branch was never read");
  });
  const reopened = track({} as Record<string, string>, "example-dbm", { dir, persist: "pod" });
  assert.deepEqual(snapshot(reopened), {
    "one branch": "changed data",
    "other branch": "even more data",
  });
});

// ---------------------------------------------------------------------------
// Behaving like the original

Deno.test("a tracked structure behaves like the original", () => {
  const state = track({
    list: [1, { id: 2 }],
    map: new Map<string, unknown>([["a", { n: 1 }]]),
    set: new Set([1, 2]),
    when: new Date(0),
    bytes: new Uint8Array([1, 2]),
    nested: { deep: { deeper: [[1]] } },
  });
  assert.ok(Array.isArray(state.list));
  assert.ok(state.map instanceof Map && state.set instanceof Set && state.when instanceof Date);
  assert.ok(isTracked(state.nested.deep) && !isTracked(state.when));
  assert.deepEqual([...state.list.keys()], [0, 1]);
  assert.deepEqual([...state.set], [1, 2]);
  assert.deepEqual([...state.map.keys()], ["a"]);
  assert.equal(state.map.size, 1);
  assert.equal(JSON.stringify(state.list), '[1,{"id":2}]');
  assert.equal(
    JSON.stringify(state),
    JSON.stringify({
      list: [1, { id: 2 }],
      map: {},
      set: {},
      when: new Date(0),
      bytes: new Uint8Array([1, 2]),
      nested: { deep: { deeper: [[1]] } },
    }),
  );
  assert.deepEqual({ ...state.nested }, { deep: { deeper: [[1]] } });
  assert.deepEqual([...state.list], [1, { id: 2 }]);
  assert.equal(state.list.map((item) => typeof item).join(), "number,object");
  assert.equal(state.list.indexOf(state.list[1]), 1);
  assert.equal(Object.prototype.toString.call(state.map), "[object Map]");
  const copy = structuredClone(snapshot(state));
  assert.deepEqual(copy.map.get("a"), { n: 1 });
  assert.throws(() => structuredClone(state), DOMException); // proxies do not clone; snapshots do
  // Identity: the same nested object gives the same proxy.
  assert.equal(state.nested.deep, state.nested.deep);
  assert.equal(state.map.get("a"), state.map.get("a"));
  assert.equal(state.list[1], [...state.list][1]);
  // Map and Set methods work on the proxies.
  state.map.forEach((value, key, map) =>
    assert.ok(map === state.map && key === "a" && isTracked(value))
  );
  assert.deepEqual([...state.set.entries()], [[1, 1], [2, 2]]);
  assert.deepEqual(state.set.union(new Set([3])), new Set([1, 2, 3]));
});

Deno.test("values are copied in: the structure stays a tree", () => {
  const outside = { n: 1 };
  const state = track({ a: outside, list: [] as { n: number }[] });
  outside.n = 2;
  assert.equal(state.a.n, 1, "the initial value was copied");
  state.list.push(state.a); // one object in two places? a copy.
  state.a.n = 3;
  assert.equal(state.list[0].n, 1);
  const item = { n: 5 };
  state.list.push(item);
  item.n = 6;
  assert.equal(state.list[1].n, 5);
  state.list.fill(state.a, 0);
  state.list[0].n = 9;
  assert.deepEqual(snapshot(state.list), [{ n: 9 }, { n: 3 }]);
});

Deno.test("a part removed or replaced can be read but not changed", () => {
  const state = track({ list: [{ n: 1 }, { n: 2 }], obj: { x: { y: 1 } } });
  const first = state.list[0];
  const second = state.list[1];
  state.list.shift();
  second.n = 20; // moved, still in the structure
  assert.equal(state.list[0].n, 20);
  assert.equal(first.n, 1);
  assert.throws(() => first.n = 5, /removed from its tracked structure/);
  const x = state.obj.x;
  state.obj.x = { y: 2 };
  assert.throws(() => x.y = 3, TypeError);
  assert.equal(state.obj.x.y, 2);
  // What array methods hand back is a plain copy.
  const popped = state.list.pop()!;
  assert.ok(!isTracked(popped));
});

Deno.test("arrays: every mutating method is one change with its operation name", () => {
  const { changes, onChange } = recorder();
  const list = track([3, 1, 2] as number[], { onChange });
  list.push(4, 5);
  list.pop();
  list.shift();
  list.unshift(0);
  list.splice(1, 1, 7, 8);
  list.sort((a, b) => a - b);
  list.reverse();
  list.fill(6, 0, 1);
  list.copyWithin(1, 0, 1);
  list[0] = 1;
  list[list.length] = 9;
  list.length = 2;
  assert.deepEqual(changes.map((change) => change.op), [
    "push",
    "pop",
    "shift",
    "unshift",
    "splice",
    "sort",
    "reverse",
    "fill",
    "copyWithin",
    "set",
    "set",
    "set",
  ]);
  assert.deepEqual(snapshot(list), [1, 6]);
  assert.deepEqual(changes.at(-1)!.args, ["length", 2]);
  // No-ops report nothing.
  const count = changes.length;
  list.sort((a, b) => a - b);
  list[0] = 1;
  list.splice(0, 0);
  list.push();
  assert.equal(changes.length, count);
});

Deno.test("Maps and Sets report set, delete, add and clear", () => {
  const { changes, onChange } = recorder();
  const state = track({ map: new Map<string, number>(), set: new Set<number>() }, { onChange });
  state.map.set("a", 1).set("b", 2);
  state.map.delete("a");
  state.map.delete("zzz");
  state.map.clear();
  state.set.add(1);
  state.set.delete(1);
  state.set.add(2);
  state.set.clear();
  assert.deepEqual(
    changes.map((change) => [change.op, change.path, change.args]),
    [
      ["set", ["map"], ["a", 1]],
      ["set", ["map"], ["b", 2]],
      ["delete", ["map"], ["a"]],
      ["clear", ["map"], []],
      ["add", ["set"], [1]],
      ["delete", ["set"], [1]],
      ["add", ["set"], [2]],
      ["clear", ["set"], []],
    ],
  );
});

Deno.test("paths reach through arrays, Maps and moved elements", () => {
  const { last, onChange } = recorder();
  const state = track({
    rows: [{ cells: [0, 0] }, { cells: [0, 0] }],
    byId: new Map<number, { tags: Set<string> }>([[7, { tags: new Set() }]]),
  }, { onChange });
  const row = state.rows[1];
  row.cells[1] = 5;
  assert.deepEqual(last().path, ["rows", 1, "cells"]);
  state.rows.unshift({ cells: [] });
  row.cells[0] = 6; // now at index 2
  assert.deepEqual(last().path, ["rows", 2, "cells"]);
  assert.deepEqual(last().patchList, [
    { op: "test", path: "/rows/2/cells/0", value: 0 },
    { op: "replace", path: "/rows/2/cells/0", value: 6 },
  ]);
  state.byId.get(7)!.tags.add("x");
  assert.deepEqual(last().path, ["byId", 7, "tags"]);
  assert.deepEqual(last().patchList, [{
    op: "add",
    path: "/byId/$map/0/1/tags/$set/0",
    value: "x",
  }]);
});

// ---------------------------------------------------------------------------
// Bad input

Deno.test("values the format cannot store are refused at assignment, nothing changes", async () => {
  const dir = await tempDir();
  class Point {
    x = 1;
  }
  for (const persist of [false, "yaml", "json", "msgpack", "pod"] as const) {
    const name = `refuse-${persist}`;
    const { changes, onChange } = recorder();
    const state = track({ a: 1, list: [1] as unknown[], map: new Map<unknown, unknown>() }, name, {
      dir,
      persist,
      onChange,
      fsync: false,
    }) as Record<string, unknown> & { list: unknown[]; map: Map<unknown, unknown> };
    const file = persist === false
      ? undefined
      : persist === "pod"
      ? `${dir}/${name}/index.json`
      : `${dir}/${name}.${persist}`;
    const before = file ? await Deno.readFile(file) : undefined;
    const refused: [string, () => unknown][] = [
      ["function", () => state.a = () => 1],
      ["symbol", () => state.a = Symbol("s")],
      ["class instance", () => state.a = new Point()],
      ["nested function", () => state.list.push({ deep: [{ f: Math.max }] })],
      ["RegExp", () => state.a = /x/],
      ["WeakMap", () => state.map.set("k", new WeakMap())],
      ["object Map key", () => state.map.set({}, 1)],
      ["symbol-keyed property", () => (state as Record<symbol, unknown>)[Symbol("k")] = 1],
      ["cycle", () => {
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        state.a = cyclic;
      }],
      ["hole", () => state.list[5] = 1],
      ["sparse array", () => state.a = [1, , 3]],
      ["array property", () => (state.list as unknown as Record<string, unknown>).extra = 1],
      ["getter", () => Object.defineProperty(state, "g", { get: () => 1 })],
      ["frozen", () => Object.freeze(state)],
    ];
    if (persist !== false) {
      refused.push(
        ["undefined", () => state.a = undefined],
        ["BigInt", () => state.a = 1n],
        [
          "lone surrogate or NaN",
          () => state.a = persist === "json" || persist === "pod" ? NaN : "\ud800",
        ],
      );
    }
    for (const [what, assign] of refused) {
      assert.throws(assign, TypeError, `${persist}: ${what}`);
    }
    assert.deepEqual(snapshot(state), { a: 1, list: [1], map: new Map() }, `${persist}`);
    assert.equal(changes.length, 0);
    if (file) assert.deepEqual(await Deno.readFile(file), before, `${persist}: file untouched`);
  }
  assert.throws(() => track(new Date() as object), /plain object, an array, a Map or a Set/);
  assert.throws(() => track([1], "x", { persist: "pod", dir }), /plain object as the root/);
  assert.throws(() => track({}, "a/b", { dir }), /cannot be a file name/);
  assert.throws(() => track({}, undefined, { persist: "json" }), /needs a name/);
  assert.throws(() => track({}, "x", { persist: "xml" as never }), /persist must be/);
});

Deno.test("the message of a refusal says where", () => {
  const state = track({ users: [{ name: "a", meta: {} as Record<string, unknown> }] }, "where", {
    persist: "json",
    dir: Deno.makeTempDirSync(),
    fsync: false,
  });
  assert.throws(
    () => state.users[0].meta.handler = { on: () => 1 },
    /cannot store a function \(on\) at \$\.users\[0\]\.meta\.handler\.on in JSON/,
  );
});

for (const format of ["yaml", "json", "msgpack"] as const) {
  Deno.test(`a corrupt ${format} file raises CorruptFileError and is left untouched`, async () => {
    const dir = await tempDir();
    const path = `${dir}/state.${format}`;
    const garbage = format === "msgpack"
      ? new Uint8Array([0xc1, 0xff, 0x00])
      : new TextEncoder().encode(format === "json" ? '{"half": ' : "a: [1, 2\n b: {");
    await Deno.writeFile(path, garbage);
    assert.throws(
      () => track({ fresh: true }, "state", { dir, persist: format }),
      (error: unknown) =>
        error instanceof CorruptFileError && error.path === path && error.format === format,
    );
    assert.deepEqual(await Deno.readFile(path), garbage);
    // A readable file whose contents cannot be tracked is refused the same way.
    await Deno.writeTextFile(path, format === "json" ? "42" : format === "yaml" ? "42\n" : "");
    if (format !== "msgpack") {
      assert.throws(() => track({}, "state", { dir, persist: format }), CorruptFileError);
    }
  });
}

Deno.test("a corrupt pod index or key file raises CorruptFileError and is left untouched", async () => {
  const dir = await tempDir();
  track({ a: 1, b: { x: 1 } }, "keys", { dir, persist: "pod" });
  await Deno.writeTextFile(`${dir}/keys/1.json`, "{ broken");
  const state = track({} as { a: number; b: { x: number } }, "keys", { dir, persist: "pod" });
  assert.equal(state.a, 1);
  assert.throws(() => state.b, CorruptFileError);
  assert.throws(() => state.b = { x: 2 }, CorruptFileError, "never overwritten");
  assert.equal(await Deno.readTextFile(`${dir}/keys/1.json`), "{ broken");
  await Deno.writeTextFile(`${dir}/keys/index.json`, '{"format": "something else"}');
  assert.throws(() => track({}, "keys", { dir, persist: "pod" }), CorruptFileError);
  assert.equal(await Deno.readTextFile(`${dir}/keys/index.json`), '{"format": "something else"}');
});

// ---------------------------------------------------------------------------
// Persistence

Deno.test("Maps, Sets, Dates and typed arrays survive the round trip in every format", async () => {
  const dir = await tempDir();
  const value = {
    set: new Set<unknown>(["a", 1, true, null, "true", "1"]),
    map: new Map<unknown, unknown>([
      ["k", { inner: new Set([2]) }],
      [1, "number key"],
      ["1", "string key"],
      [true, [new Date(3)]],
      [null, new Map([["deep", 1]])],
    ]),
    date: new Date("2024-05-01T12:00:00.000Z"),
    bytes: new Uint8Array([0, 1, 255]),
    floats: new Float64Array([1.5, -2.25]),
    ints: new Int32Array([-1, 7]),
    empty: { set: new Set(), map: new Map(), list: [] },
    tricky: { "$set": [1], "$$x": 2, "": 3, "a/b~c": 4, "yes": "no", "2024-01-01": "2024-01-01" },
    numbers: [0, -1.5, 1e21, Number.MAX_SAFE_INTEGER, 5e-324],
  };
  for (const persist of ["yaml", "json", "msgpack", "pod"] as const) {
    const state = track(value, `round-${persist}`, { dir, persist });
    state.set.add("added");
    state.map.set("later", new Set(["x"]));
    const expected = snapshot(state);
    const reloaded = track({}, `round-${persist}`, { dir, persist });
    assert.deepEqual(snapshot(reloaded), expected, persist);
    assert.ok((reloaded as typeof value).map instanceof Map, persist);
  }
  const json = await Deno.readTextFile(`${dir}/round-json.json`);
  assert.match(json, /"\$set": \[/);
  assert.match(json, /"\$\$set": \[/); // a plain key starting with $ is escaped
  const yaml = await Deno.readTextFile(`${dir}/round-yaml.yaml`);
  assert.match(yaml, /set: !!set/);
  assert.match(yaml, /map: !!omap/);
});

Deno.test("NaN, Infinity and -0: stored where the format can, refused or normalised where not", async () => {
  const dir = await tempDir();
  const yaml = track({ n: NaN, i: -Infinity, z: -0 }, "nums", { dir, persist: "yaml" });
  assert.ok(Object.is(snapshot(track({}, "nums", { dir }) as typeof yaml).z, -0));
  assert.ok(Number.isNaN(yaml.n));
  const json = track({ z: -0 }, "nums", { dir, persist: "json" });
  assert.ok(Object.is(json.z, 0), "JSON stores -0 as 0");
  assert.throws(() => json.z = Infinity, TypeError);
});

Deno.test("every change is saved atomically before the assignment returns", async () => {
  const dir = await tempDir();
  const state = track({ n: 0 }, "counter", { dir, persist: "json" });
  for (let i = 1; i <= 3; i++) {
    state.n = i;
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/counter.json`)).n, i);
  }
  assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name), [
    "counter.json",
  ]);
});

Deno.test("a failing save raises, leaves the file as last saved, and undoes the change in memory", async () => {
  for (const persist of ["yaml", "json", "msgpack", "pod"] as const) {
    const dir = await tempDir();
    const { changes, onChange } = recorder();
    const state = track({ n: 1, list: [1], other: "x" }, "faulty", { dir, persist, onChange });
    const files = async () => {
      const out: Record<string, string> = {};
      for await (const entry of Deno.readDir(persist === "pod" ? `${dir}/faulty` : dir)) {
        out[entry.name] = await Deno.readTextFile(
          `${persist === "pod" ? `${dir}/faulty` : dir}/${entry.name}`,
        );
      }
      return out;
    };
    const before = await files();
    for (const op of ["write", "fsync", "rename", "dirFsync"] as const) {
      await injectFaults([{ op, path: dir, times: 1_000 }], (log) => {
        assert.throws(() => state.n = 2, AtomicWriteError, `${persist} ${op}`);
        assert.throws(() => state.list.push(2), AtomicWriteError);
        assert.throws(() => (state as Record<string, unknown>).added = 1, AtomicWriteError);
        assert.throws(() => delete (state as Record<string, unknown>).other, AtomicWriteError);
        assert.ok(log.fired >= 4);
      });
      assert.deepEqual(snapshot(state), { n: 1, list: [1], other: "x" }, `${persist} ${op}`);
      assert.deepEqual(await files(), before, `${persist} ${op}: files`);
    }
    assert.equal(changes.length, 0, "nothing was reported");
    state.n = 3; // and the next change works
    assert.equal((track({}, "faulty", { dir, persist }) as { n: number }).n, 3);
  }
});

Deno.test("a custom backend gets every save with its change", () => {
  const saved: { name: string; value: unknown; op: string; patches: unknown }[] = [];
  let stored: unknown;
  const backend: PersistBackend = {
    load: () => stored,
    save(name, value, change) {
      const { op, patches } = change as Change;
      saved.push({ name, value, op, patches });
      stored = value;
    },
  };
  const state = track({ items: [1] }, "remote", { persist: backend });
  state.items.push(2);
  assert.deepEqual(saved.map((entry) => entry.op), ["init", "push"]);
  assert.deepEqual(saved[1].value, { items: [1, 2] });
  assert.deepEqual(saved[1].patches, [{ op: "add", path: "/items/1", value: 2 }]);
  assert.equal(saved[1].name, "remote");
  const again = track({ items: [] as number[] }, "remote", { persist: backend });
  assert.deepEqual(snapshot(again), { items: [1, 2] });
  // A failing save undoes the change.
  const failing = track({ n: 1 }, "remote2", {
    persist: {
      load: () => undefined,
      save: (_n, value) => {
        if ((value as { n: number }).n > 1) throw new Error("offline");
      },
    },
  });
  assert.throws(() => failing.n = 2, /offline/);
  assert.equal(failing.n, 1);
  assert.throws(
    () => track({}, "async", { persist: { load: () => Promise.resolve(1), save: () => {} } }),
    /must be synchronous/,
  );
});

// ---------------------------------------------------------------------------
// Batches

Deno.test("batch: 10,000 changes cost one write", async () => {
  const dir = await tempDir();
  for (const persist of ["json", "yaml", "msgpack"] as const) {
    const state = track({ items: [] as number[], count: 0, other: { n: 0 } }, "many", {
      dir,
      persist,
    });
    await injectFaults([], async (log) => {
      await batch(state, () => {
        for (let i = 0; i < 5_000; i++) {
          state.items.push(i);
          state.count++;
        }
      });
      assert.equal(writes(log), 1, persist);
    });
    assert.equal((track({}, "many", { dir, persist }) as { count: number }).count, 5_000);
  }
});

Deno.test("batch with per-key persistence: one write per touched key (+ the index for several)", async () => {
  const dir = await tempDir();
  const state = track({ items: [] as number[], count: 0, other: { n: 0 } }, "many", {
    dir,
    persist: "pod",
  });
  await injectFaults([], async (log) => {
    await batch(state, () => {
      for (let i = 0; i < 10_000; i++) state.items.push(i);
    });
    assert.equal(writes(log), 1, "one key: its file");
    await batch(state, () => {
      for (let i = 0; i < 5_000; i++) {
        state.items[i] = -i;
        state.count++;
      }
    });
    assert.equal(writes(log), 1 + 3, "two keys: two fresh files, then the index");
  });
  const reloaded = track({}, "many", { dir, persist: "pod" }) as typeof state;
  assert.equal(reloaded.count, 5_000);
  assert.equal(reloaded.items[4_999], -4_999);
  assert.equal(reloaded.items.length, 10_000);
  // Replaced files are removed: the index and one file per key remain.
  assert.equal([...Deno.readDirSync(`${dir}/many`)].length, 4);
});

Deno.test("batch: a throwing function undoes everything, reports each undo, rethrows", async () => {
  const dir = await tempDir();
  const { changes, onChange } = recorder();
  const state = track({ a: 1, list: [1, 2], map: new Map([["k", 1]]), set: new Set([1]) }, "undo", {
    dir,
    persist: "json",
    onChange,
  });
  const file = await Deno.readTextFile(`${dir}/undo.json`);
  const expected = snapshot(state);
  await injectFaults([], async (log) => {
    await assert.rejects(
      batch(state, async () => {
        state.a = 2;
        delete (state as Partial<typeof state>).a;
        state.list.splice(0, 1, 7, 8, 9);
        state.list.sort().reverse();
        await sleep(1);
        state.map.set("k", 2).set("new", 3);
        state.map.delete("k");
        state.set.add(2);
        state.set.clear();
        (state as Record<string, unknown>).added = { deep: [1] };
        throw new Error("changed my mind");
      }),
      /changed my mind/,
    );
    assert.equal(writes(log), 0);
  });
  assert.deepEqual(snapshot(state), expected);
  assert.deepEqual(Object.keys(state), ["a", "list", "map", "set"], "key order restored");
  assert.deepEqual([...state.map.keys()], ["k"]);
  assert.equal(await Deno.readTextFile(`${dir}/undo.json`), file);
  const done = changes.filter((change) => change.op !== "undo");
  const undone = changes.filter((change) => change.op === "undo");
  assert.equal(undone.length, done.length);
  assert.deepEqual(
    undone.map((change) => change.args[0]),
    done.reverse().map((change) => Object.getPrototypeOf(change)),
  );
});

Deno.test("batch: a failing save at the end undoes the whole batch", async () => {
  const dir = await tempDir();
  const state = track({ n: 0, list: [] as number[] }, "endfail", { dir, persist: "yaml" });
  await injectFaults([{ op: "rename", path: dir }], async () => {
    await assert.rejects(
      batch(state, () => {
        state.n = 5;
        state.list.push(1, 2);
      }),
      AtomicWriteError,
    );
  });
  assert.deepEqual(snapshot(state), { n: 0, list: [] });
  assert.deepEqual(snapshot(track({}, "endfail", { dir })), { n: 0, list: [] });
});

Deno.test("batch: nested batches join the outer one; a failing inner one undoes only itself", async () => {
  const state = track({ log: [] as string[] });
  await batch(state, async () => {
    state.log.push("outer");
    await assert.rejects(
      batch(state, () => {
        state.log.push("inner");
        throw new Error("inner fails");
      }),
      /inner fails/,
    );
    await batch(state.log, () => state.log.push("inner ok")); // a part names its structure
  });
  assert.deepEqual(snapshot(state.log), ["outer", "inner ok"]);
  await assert.rejects(batch({}, () => {}), /needs a tracked structure/);
});

Deno.test("batch: batches of one structure run one at a time, in call order", async () => {
  const state = track({ order: [] as string[] });
  const run = (name: string, ms: number) =>
    batch(state, async () => {
      state.order.push(`${name} start`);
      await sleep(ms);
      state.order.push(`${name} end`);
      return name;
    });
  assert.deepEqual(await Promise.all([run("a", 15), run("b", 1), run("c", 5)]), ["a", "b", "c"]);
  assert.deepEqual(snapshot(state.order), [
    "a start",
    "a end",
    "b start",
    "b end",
    "c start",
    "c end",
  ]);
});

Deno.test("an onChange that throws: the change stays outside a batch, is undone inside one", async () => {
  let fail = true;
  const state = track({ n: 0 }, {
    onChange: () => {
      if (fail) throw new Error("view broke");
    },
  });
  assert.throws(() => state.n = 1, /view broke/);
  assert.equal(state.n, 1);
  await assert.rejects(batch(state, () => state.n = 2), /view broke/);
  fail = false;
  assert.equal(state.n, 1);
});

Deno.test("keys called __proto__ are data, not prototypes", async () => {
  const dir = await tempDir();
  const value = JSON.parse('{"__proto__": {"polluted": true}, "plain": 1}');
  for (const persist of [false, "json", "yaml", "pod"] as const) {
    const state = track(value, `proto-${persist}`, { dir, persist }) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(state), Object.prototype);
    assert.deepEqual(Object.keys(state), ["__proto__", "plain"]);
    state["__proto__"] = { again: 1 };
    assert.equal(Object.getPrototypeOf(state), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    if (persist !== false) {
      const reloaded = track({}, `proto-${persist}`, { dir, persist }) as Record<string, unknown>;
      assert.deepEqual(Object.keys(reloaded), ["__proto__", "plain"], `${persist}`);
      assert.deepEqual(snapshot(reloaded["__proto__"]), { again: 1 });
    }
  }
});
