/**
 * Property test: random sequences of operations (and of batches, some of
 * which fail) on a tracked structure give the same result as on a plain
 * copy, which is also what the file reads back as, what the reported
 * patches rebuild (applied with fast-json-patch), and what `diff` + `patch`
 * rebuild from the initial value.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import jsonPatch from "fast-json-patch";
import {
  batch,
  diff,
  type JsonPatchOperation,
  patch,
  type Persist,
  revert,
  snapshot,
  toTaggedJson,
  track,
} from "./mod.ts";

const KEYS = ["a", "b", "", "1", "true", "null", "$set", "$$x", "a/b", "~0", "-", "é"];

type Value = unknown;

const primitive = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
  fc.string({ maxLength: 6 }),
  fc.string({ unit: "grapheme", maxLength: 3 }),
  fc.boolean(),
  fc.constant(null),
);

/** Map keys and Set members: primitives that look alike in text. */
const member = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(...KEYS),
  fc.boolean(),
  fc.constant(null),
);

const leaf = fc.oneof(
  { weight: 6, arbitrary: primitive },
  fc.date({ min: new Date(0), max: new Date("2100-01-01"), noInvalidDate: true }),
  fc.uint8Array({ maxLength: 4 }),
  fc.float64Array({ maxLength: 3, noNaN: true }),
  fc.int16Array({ maxLength: 3 }),
);

const { value } = fc.letrec<{ value: Value; container: Value }>((tie) => ({
  value: fc.oneof({ depthSize: "small" }, leaf, tie("container")),
  container: fc.oneof(
    fc.array(tie("value"), { maxLength: 3 }),
    fc.array(fc.tuple(fc.constantFrom(...KEYS), tie("value")), { maxLength: 3 })
      .map((entries) => Object.fromEntries(entries)),
    fc.array(fc.tuple(member, tie("value")), { maxLength: 3 }).map((entries) => new Map(entries)),
    fc.array(member, { maxLength: 4 }).map((members) => new Set(members)),
  ),
}));

interface Op {
  kind: "op";
  /** Which child container to go into at each level (0: stop here). */
  path: number[];
  action: number;
  value: Value;
  member: unknown;
  i: number;
  j: number;
  k: number;
}

interface BatchCommand {
  kind: "batch";
  ops: Op[];
  fail: boolean;
}

const op: fc.Arbitrary<Op> = fc.record({
  kind: fc.constant("op" as const),
  path: fc.array(fc.nat(6), { maxLength: 3 }),
  action: fc.nat(),
  value,
  member,
  i: fc.nat(6),
  j: fc.nat(6),
  k: fc.nat(6),
});

const command: fc.Arbitrary<Op | BatchCommand> = fc.oneof(
  { weight: 5, arbitrary: op },
  fc.record({
    kind: fc.constant("batch" as const),
    ops: fc.array(op, { minLength: 1, maxLength: 5 }),
    fail: fc.boolean(),
  }),
);

const initial = fc.record({
  obj: fc.array(fc.tuple(fc.constantFrom(...KEYS), value), { maxLength: 3 })
    .map((entries) => Object.fromEntries(entries)),
  list: fc.array(value, { maxLength: 4 }),
  map: fc.array(fc.tuple(member, value), { maxLength: 3 }).map((entries) => new Map(entries)),
  set: fc.array(member, { maxLength: 3 }).map((members) => new Set(members)),
  n: primitive,
}).map((record) => ({ ...record })); // fast-check's records have no prototype

function isContainer(value: unknown): value is object {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value) || value instanceof Map || value instanceof Set) return true;
  return Object.getPrototypeOf(value) === Object.prototype;
}

function children(container: object): object[] {
  const values = Array.isArray(container)
    ? container
    : container instanceof Map
    ? [...container.values()]
    : container instanceof Set
    ? []
    : Object.values(container);
  return values.filter(isContainer);
}

const copy = <T>(value: T): T => structuredClone(value);

/**
 * Applies `op` to a tracked structure, or (`plain`) to the plain model, with
 * the same meaning: the model copies what it inserts, as the tracked
 * structure does.
 */
function apply(root: object, op: Op, plain: boolean): void {
  let container = root;
  for (const choice of op.path) {
    const options = children(container);
    const pick = choice % (options.length + 1);
    if (pick === 0) break;
    container = options[pick - 1];
  }
  const value = plain ? copy(op.value) : op.value;
  const { i, j, k } = op;
  if (Array.isArray(container)) {
    const list = container as unknown[];
    const length = list.length;
    switch (op.action % 12) {
      case 0:
        list.push(value);
        return;
      case 1:
        list.pop();
        return;
      case 2:
        list.shift();
        return;
      case 3:
        list.unshift(value, op.member);
        return;
      case 4:
        list.splice(i % (length + 1), j % 3, value);
        return;
      case 5:
        list[i % (length + 1)] = value;
        return;
      case 6:
        list.length = i % (length + 1);
        return;
      case 7:
        list.sort();
        return;
      case 8:
        list.reverse();
        return;
      case 9: {
        const start = i % (length + 1);
        const end = j % (length + 1);
        list.fill(value, start, end);
        if (plain) { for (let at = start + 1; at < end; at++) list[at] = copy(value); }
        return;
      }
      case 10: {
        const before = list.slice();
        list.copyWithin(i % (length + 1), j % (length + 1), k % (length + 1));
        if (plain) {
          list.forEach((item, at) => {
            if (item !== before[at] && typeof item === "object" && item !== null) {
              list[at] = copy(item);
            }
          });
        }
        return;
      }
      default:
        list.sort((a, b) => String(typeof a).localeCompare(String(typeof b)));
        return;
    }
  }
  if (container instanceof Map) {
    switch (op.action % 4) {
      case 0:
      case 1:
        container.set(op.member, value);
        return;
      case 2:
        container.delete(op.member);
        return;
      default:
        container.clear();
        return;
    }
  }
  if (container instanceof Set) {
    switch (op.action % 4) {
      case 0:
      case 1:
        container.add(op.member);
        return;
      case 2:
        container.delete(op.member);
        return;
      default:
        container.clear();
        return;
    }
  }
  const object = container as Record<string, unknown>;
  const key = KEYS[i % KEYS.length];
  if (op.action % 3 === 2) delete object[key];
  else object[key] = value;
}

function applyIndependently(document: unknown, operations: readonly JsonPatchOperation[]): unknown {
  return jsonPatch.applyPatch(document, copy(operations) as jsonPatch.Operation[], true)
    .newDocument;
}

let runs = 0;

Deno.test("random operations: tracked = plain = reloaded file = patches = diff + patch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reactive_property_" });
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<Persist>(false, "json", "yaml", "msgpack", "pod"),
      initial,
      fc.array(command, { maxLength: 12 }),
      async (persist, start, commands) => {
        const name = `run${runs++}`;
        const model = copy(start) as object;
        let json = toTaggedJson(start);
        const tracked = track(copy(start), name, {
          dir,
          persist,
          fsync: false,
          onChange: (change) => json = applyIndependently(json, change.patches),
        });
        for (const command of commands) {
          if (command.kind === "op") {
            apply(tracked, command, false);
            apply(model, command, true);
            continue;
          }
          const done = batch(tracked, () => {
            for (const step of command.ops) apply(tracked, step, false);
            if (command.fail) throw new Error("the batch fails");
          });
          if (command.fail) {
            await assert.rejects(done, /the batch fails/);
          } else {
            await done;
            for (const step of command.ops) apply(model, step, true);
          }
        }
        assert.deepStrictEqual(snapshot(tracked), model, "tracked = plain");
        assert.deepStrictEqual(json, toTaggedJson(model), "reported patches (fast-json-patch)");
        if (persist !== false) {
          const reloaded = track({}, name, { dir, persist });
          assert.deepStrictEqual(snapshot(reloaded), model, `reloaded from ${persist}`);
        }
        const ops = diff(start, model);
        const rebuilt = patch(copy(start), ops);
        assert.deepStrictEqual(rebuilt, model, "diff + patch");
        assert.deepStrictEqual(
          applyIndependently(toTaggedJson(start), ops),
          toTaggedJson(model),
          "diff + fast-json-patch",
        );
        assert.deepStrictEqual(revert(rebuilt, ops), start, "revert");
      },
    ),
    { numRuns: 200 },
  );
  await Deno.remove(dir, { recursive: true });
});
