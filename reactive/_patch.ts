/**
 * JSON Patch (RFC 6902) for tracked and plain structures: `diff`, `patch`
 * and `revert`, on the tagged JSON form of the values.
 *
 * @module
 */

import { fromTaggedJson, toTaggedJson, unescapeTaggedKey } from "../_internal/codec.ts";
import {
  applyEdit,
  contentsOf,
  type Edit,
  escapeToken,
  invertEdit,
  type JsonPatchOperation,
  positionOf,
} from "./_edits.ts";
import {
  type ArrayNode,
  type MapNode,
  type Node,
  nodeOf,
  type ObjectNode,
  type SetNode,
  UNLOADED,
} from "./_tracker.ts";
import { copyRaw, handles, isContainer, type PathKey } from "./_values.ts";

/**
 * A JSON Patch could not be applied: a malformed operation, a path that
 * leads nowhere, or a `test` that failed. Nothing was changed: a patch
 * applies completely or not at all.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { patch, PatchError } from "@x/atomic-store/reactive";
 *
 * const doc = { n: 1 };
 * try {
 *   patch(doc, [{ op: "test", path: "/n", value: 2 }, { op: "replace", path: "/n", value: 3 }]);
 * } catch (error) {
 *   assert.ok(error instanceof PatchError && error.index === 0);
 * }
 * assert.ok(doc.n === 1);
 * ```
 */
export class PatchError extends Error {
  /** The operation that failed. */
  readonly operation: unknown;
  /** Its position in the patch. */
  readonly index: number;

  /** Creates an error about `operation`, the `index`th of its patch. */
  constructor(message: string, operation: unknown, index: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "PatchError";
    this.operation = operation;
    this.index = index;
  }
}

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------
// diff

const TAGS = new Set(["$map", "$set", "$date", "$bytes", "$typed"]);

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function tagOf(value: Obj): string | undefined {
  const keys = Object.keys(value);
  return keys.length === 1 && TAGS.has(keys[0]) ? keys[0] : undefined;
}

/** Deep equality of JSON values (object key order ignored, `Object.is` for numbers). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let index = 0; index < a.length; index++) if (!jsonEqual(a[index], b[index])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !jsonEqual((a as Obj)[key], (b as Obj)[key])) return false;
  }
  return true;
}

function replaceOps(path: string, a: unknown, b: unknown, ops: JsonPatchOperation[]): void {
  ops.push({ op: "test", path, value: a }, { op: "replace", path, value: b });
}

function diffJson(a: unknown, b: unknown, path: string, ops: JsonPatchOperation[]): void {
  if (jsonEqual(a, b)) return;
  if (Array.isArray(a) && Array.isArray(b)) return diffArrays(a, b, path, ops);
  if (isObject(a) && isObject(b)) {
    const tagA = tagOf(a);
    const tagB = tagOf(b);
    if (tagA !== undefined || tagB !== undefined) {
      if (tagA === "$map" && tagB === "$map") {
        return diffKeyed(a.$map as [unknown, unknown][], b.$map as [unknown, unknown][], path, ops);
      }
      if (tagA === "$set" && tagB === "$set") {
        return diffKeyed(
          (a.$set as unknown[]).map((member) => [member]),
          (b.$set as unknown[]).map((member) => [member]),
          path,
          ops,
        );
      }
      return replaceOps(path, a, b, ops);
    }
    for (const key of Object.keys(a)) {
      if (!Object.hasOwn(b, key)) {
        const at = `${path}/${escapeToken(key)}`;
        ops.push({ op: "test", path: at, value: a[key] }, { op: "remove", path: at });
      }
    }
    for (const key of Object.keys(b)) {
      const at = `${path}/${escapeToken(key)}`;
      if (Object.hasOwn(a, key)) diffJson(a[key], b[key], at, ops);
      else ops.push({ op: "add", path: at, value: b[key] });
    }
    return;
  }
  replaceOps(path, a, b, ops);
}

function diffArrays(a: unknown[], b: unknown[], path: string, ops: JsonPatchOperation[]): void {
  let start = 0;
  while (start < a.length && start < b.length && jsonEqual(a[start], b[start])) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && jsonEqual(a[endA - 1], b[endB - 1])) {
    endA--;
    endB--;
  }
  const common = Math.min(endA - start, endB - start);
  for (let offset = 0; offset < common; offset++) {
    diffJson(a[start + offset], b[start + offset], `${path}/${start + offset}`, ops);
  }
  for (let index = start + common; index < endA; index++) {
    const at = `${path}/${start + common}`;
    ops.push({ op: "test", path: at, value: a[index] }, { op: "remove", path: at });
  }
  for (let index = start + common; index < endB; index++) {
    ops.push({ op: "add", path: `${path}/${index}`, value: b[index] });
  }
}

/**
 * Diffs the entries of two Maps (`[key, value]`) or the members of two
 * Sets (`[member]`), by key: removals, then additions and value changes in
 * the order of `b`. When the keys both have come in another order, the
 * whole collection is replaced.
 */
function diffKeyed(
  a: unknown[][],
  b: unknown[][],
  path: string,
  ops: JsonPatchOperation[],
): void {
  const isMap = a.every((entry) => entry.length === 2) && b.every((entry) => entry.length === 2) &&
    (a.length > 0 || b.length > 0) && (a[0]?.length ?? b[0]?.length) === 2;
  const tag = isMap ? "$map" : "$set";
  const form = (entries: unknown[][]) => ({ [tag]: isMap ? entries : entries.map(([m]) => m) });
  const keysB = new Map(b.map((entry, index) => [entry[0], index]));
  const keysA = new Set(a.map((entry) => entry[0]));
  const kept = a.filter((entry) => keysB.has(entry[0]));
  const keptInB = b.filter((entry) => keysA.has(entry[0]));
  if (kept.some((entry, index) => !Object.is(entry[0], keptInB[index][0]))) {
    return replaceOps(path, form(a), form(b), ops);
  }
  for (let index = a.length - 1; index >= 0; index--) {
    if (keysB.has(a[index][0])) continue;
    const at = `${path}/${tag}/${index}`;
    ops.push({ op: "test", path: at, value: isMap ? a[index] : a[index][0] });
    ops.push({ op: "remove", path: at });
  }
  const valueOf = new Map(a.map((entry) => [entry[0], entry[1]]));
  b.forEach((entry, index) => {
    if (!keysA.has(entry[0])) {
      ops.push({ op: "add", path: `${path}/${tag}/${index}`, value: isMap ? entry : entry[0] });
    } else if (isMap) {
      diffJson(valueOf.get(entry[0]), entry[1], `${path}/$map/${index}/1`, ops);
    }
  });
}

function plainOf(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  return handles.get(value)?.rawForRead() ?? value;
}

/**
 * The RFC 6902 JSON Patch that turns `a` into `b`, on their tagged JSON form
 * (`toTaggedJson`; for data without Maps, Sets, Dates, typed arrays or
 * keys starting with `$`, that is just the JSON). Both may be tracked or
 * plain. Every `remove` and `replace` comes after a `test` of the old
 * value, so {@linkcode revert} can undo the patch.
 *
 * Arrays are compared element by element after their common beginning and
 * end; Maps and Sets by key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diff, patch } from "@x/atomic-store/reactive";
 *
 * const before = { tags: ["a"], size: 1 };
 * const after = { tags: ["a", "b"], size: 2 };
 * const ops = diff(before, after);
 * // [{ op: "test", path: "/size", value: 1 }, { op: "replace", path: "/size", value: 2 },
 * //  { op: "add", path: "/tags/1", value: "b" }] (in some order)
 * patch(before, ops);
 * assert.ok(before.tags.length === 2 && before.size === 2);
 * ```
 */
export function diff(a: unknown, b: unknown): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [];
  diffJson(toTaggedJson(plainOf(a)), toTaggedJson(plainOf(b)), "", ops);
  return ops;
}

// ---------------------------------------------------------------------------
// patch

/** A container reached while resolving a path: its raw data, and its node when tracked. */
interface Place {
  readonly raw: object;
  readonly node: Node | undefined;
}

type Selector =
  | { kind: "whole" }
  | { kind: "key"; key: string }
  | { kind: "index"; index: number | "-" }
  | { kind: "entry"; index: number | "-" }
  | { kind: "entryKey"; index: number }
  | { kind: "entryValue"; index: number }
  | { kind: "member"; index: number | "-" }
  | { kind: "all" };

interface Ref {
  readonly place: Place;
  readonly selector: Selector;
}

class Failure extends Error {}

function parsePointer(pointer: unknown): string[] {
  if (typeof pointer !== "string") throw new Failure("the path is not a string");
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new Failure(`"${pointer}" is not a JSON Pointer`);
  return pointer.slice(1).split("/").map((token) =>
    token.replaceAll("~1", "/").replaceAll("~0", "~")
  );
}

function parseIndex(token: string, dash: boolean): number | "-" {
  if (dash && token === "-") return "-";
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Failure(`"${token}" is not an index`);
  return Number(token);
}

/** Applies patch operations to one structure, tracked or plain, and can undo them. */
class Applier {
  readonly root: Place;
  /** Undo log, for plain structures (tracked ones undo through their tracker). */
  readonly undo: Edit[] = [];
  #operation: JsonPatchOperation | undefined;

  constructor(target: object) {
    const node = nodeOf(target);
    this.root = { raw: node ? node.raw : target, node };
  }

  #child(place: Place, raw: unknown, key: PathKey, what: string): Place {
    if (raw === UNLOADED && place.node) raw = place.node.tracker.loadKey(key as string);
    if (!isContainer(raw)) throw new Failure(`${what} is not an object, array, Map or Set`);
    const node = place.node?.tracker.node(raw, place.node, key);
    return { raw, node };
  }

  resolve(pointer: unknown): Ref {
    const tokens = parsePointer(pointer);
    let place = this.root;
    let at = 0;
    if (tokens.length === 0) return { place, selector: { kind: "whole" } };
    for (;;) {
      const raw = place.raw;
      const token = tokens[at];
      const last = at === tokens.length - 1;
      if (Array.isArray(raw)) {
        const index = parseIndex(token, last);
        if (last) return { place, selector: { kind: "index", index } };
        if ((index as number) >= raw.length) throw new Failure(`no element ${index}`);
        place = this.#child(place, raw[index as number], index as number, `element ${index}`);
        at++;
      } else if (raw instanceof Map || raw instanceof Set) {
        const tag = raw instanceof Map ? "$map" : "$set";
        if (token !== tag) throw new Failure(`a ${raw.constructor.name} is addressed as "${tag}"`);
        if (last) return { place, selector: { kind: "all" } };
        const index = parseIndex(tokens[at + 1], at + 1 === tokens.length - 1);
        if (at + 1 === tokens.length - 1) {
          return { place, selector: { kind: raw instanceof Map ? "entry" : "member", index } };
        }
        if (raw instanceof Set) throw new Failure("a Set member has no parts");
        const part = tokens[at + 2];
        const position = index as number;
        if (position >= raw.size) throw new Failure(`no entry ${position}`);
        if (part === "0" && at + 2 === tokens.length - 1) {
          return { place, selector: { kind: "entryKey", index: position } };
        }
        if (part !== "1") throw new Failure(`a Map entry has parts 0 (key) and 1 (value)`);
        if (at + 2 === tokens.length - 1) {
          return { place, selector: { kind: "entryValue", index: position } };
        }
        const key = [...raw.keys()][position];
        place = this.#child(place, raw.get(key), key as PathKey, `the value of entry ${position}`);
        at += 3;
      } else if (isContainer(raw)) {
        const key = unescapeTaggedKey(token);
        if (last) return { place, selector: { kind: "key", key } };
        if (!Object.hasOwn(raw, key)) throw new Failure(`no key ${JSON.stringify(key)}`);
        place = this.#child(place, (raw as Obj)[key], key, `key ${JSON.stringify(key)}`);
        at++;
      } else {
        throw new Failure("cannot address inside a value");
      }
    }
  }

  /** The raw value a reference names (it must exist). */
  get(ref: Ref): unknown {
    const { place, selector } = ref;
    const raw = place.raw;
    switch (selector.kind) {
      case "whole":
        return raw;
      case "key": {
        if (!Object.hasOwn(raw, selector.key)) {
          throw new Failure(`no key ${JSON.stringify(selector.key)}`);
        }
        const value = (raw as Obj)[selector.key];
        return value === UNLOADED ? place.node!.tracker.loadKey(selector.key) : value;
      }
      case "index": {
        const array = raw as unknown[];
        if (selector.index === "-" || selector.index >= array.length) {
          throw new Failure(`no element ${selector.index}`);
        }
        return array[selector.index];
      }
      case "entry":
      case "entryKey":
      case "entryValue": {
        const map = raw as Map<unknown, unknown>;
        if (selector.index === "-" || selector.index >= map.size) {
          throw new Failure(`no entry ${selector.index}`);
        }
        const key = [...map.keys()][selector.index];
        return selector.kind === "entry"
          ? [key, map.get(key)]
          : selector.kind === "entryKey"
          ? key
          : map.get(key);
      }
      case "member": {
        const set = raw as Set<unknown>;
        if (selector.index === "-" || selector.index >= set.size) {
          throw new Failure(`no member ${selector.index}`);
        }
        return [...set][selector.index];
      }
      case "all":
        return raw instanceof Map ? [...raw] : [...(raw as Set<unknown>)];
    }
  }

  // Edits, through the tracker for tracked places, directly (with undo) for plain ones.

  #edit(edit: Edit): void {
    applyEdit(edit);
    this.undo.push(edit);
  }

  #args(): unknown[] {
    return [this.#operation];
  }

  setKey(place: Place, key: string, value: unknown): void {
    const raw = place.raw as Obj;
    if (place.node) return (place.node as ObjectNode).setKey(key, value, "patch", this.#args());
    const had = Object.hasOwn(raw, key);
    this.#edit({ kind: "objSet", target: raw, key, value, had, old: raw[key] });
  }

  deleteKey(place: Place, key: string): void {
    const raw = place.raw as Obj;
    if (!Object.hasOwn(raw, key)) throw new Failure(`no key ${JSON.stringify(key)}`);
    if (place.node) return (place.node as ObjectNode).deleteKey(key, "patch", this.#args());
    const index = Object.keys(raw).indexOf(key);
    this.#edit({ kind: "objDelete", target: raw, key, old: raw[key], index });
  }

  splice(place: Place, start: number, deleteCount: number, items: unknown[]): void {
    const raw = place.raw as unknown[];
    if (place.node) {
      const node = place.node as ArrayNode;
      node.splice(start, deleteCount, node.importItems(items, start), "patch", this.#args());
      return;
    }
    const removed = raw.slice(start, start + deleteCount);
    this.#edit({ kind: "splice", target: raw, start, removed, inserted: items });
  }

  mapSet(place: Place, key: unknown, value: unknown, index?: number): void {
    const raw = place.raw as Map<unknown, unknown>;
    if (place.node) {
      return (place.node as MapNode).setEntry(key, value, "patch", this.#args(), index);
    }
    const had = raw.has(key);
    this.#edit({ kind: "mapSet", target: raw, key, value, had, old: raw.get(key), index });
  }

  mapDelete(place: Place, key: unknown): void {
    const raw = place.raw as Map<unknown, unknown>;
    if (place.node) return (place.node as MapNode).deleteEntry(key, "patch", this.#args());
    const index = positionOf(raw.keys(), key);
    this.#edit({ kind: "mapDelete", target: raw, key, old: raw.get(key), index });
  }

  setAdd(place: Place, value: unknown, index?: number): void {
    const raw = place.raw as Set<unknown>;
    if (raw.has(value)) throw new Failure(`${JSON.stringify(value)} is already a member`);
    if (place.node) {
      return (place.node as SetNode).addMember(value, "patch", this.#args(), index);
    }
    this.#edit({ kind: "setAdd", target: raw, value, index });
  }

  setDelete(place: Place, value: unknown): void {
    const raw = place.raw as Set<unknown>;
    if (place.node) return (place.node as SetNode).deleteMember(value, "patch", this.#args());
    this.#edit({ kind: "setDelete", target: raw, value, index: positionOf(raw, value) });
  }

  /** Replaces the contents of a container with those of `value` (of the same kind). */
  assign(place: Place, value: unknown): void {
    const raw = place.raw;
    const sameKind = Array.isArray(raw)
      ? Array.isArray(value)
      : raw instanceof Map
      ? value instanceof Map
      : raw instanceof Set
      ? value instanceof Set
      : isContainer(value) && !Array.isArray(value) && !(value instanceof Map) &&
        !(value instanceof Set);
    if (!sameKind) {
      throw new Failure(
        `the whole ${raw.constructor?.name ?? "Object"} can only be replaced by another one`,
      );
    }
    if (place.node) {
      const tracker = place.node.tracker;
      const copy = tracker.import(value, place.node, undefined, false) as object;
      place.node.assign(contentsOf(copy) as unknown[], "patch", this.#args());
      return;
    }
    this.#edit({
      kind: "assign",
      target: raw,
      old: contentsOf(raw),
      value: contentsOf(value as object),
    });
  }

  // RFC 6902 operations on a resolved reference.

  add(ref: Ref, value: unknown): void {
    const { place, selector } = ref;
    switch (selector.kind) {
      case "whole":
      case "all":
        return this.replace(ref, value);
      case "key":
        return this.setKey(place, selector.key, value);
      case "index": {
        const length = (place.raw as unknown[]).length;
        const index = selector.index === "-" ? length : selector.index;
        if (index > length) throw new Failure(`index ${index} is past the end (${length})`);
        return this.splice(place, index, 0, [value]);
      }
      case "entry": {
        const map = place.raw as Map<unknown, unknown>;
        const index = selector.index === "-" ? map.size : selector.index;
        if (index > map.size) throw new Failure(`entry ${index} is past the end (${map.size})`);
        const [key, item] = entryOf(value);
        if (map.has(key)) throw new Failure(`the Map already has the key ${JSON.stringify(key)}`);
        return this.mapSet(place, key, item, index);
      }
      case "entryKey":
      case "entryValue":
        return this.replace(ref, value);
      case "member": {
        const set = place.raw as Set<unknown>;
        const index = selector.index === "-" ? set.size : selector.index;
        if (index > set.size) throw new Failure(`member ${index} is past the end (${set.size})`);
        return this.setAdd(place, value, index);
      }
    }
  }

  remove(ref: Ref): void {
    const { place, selector } = ref;
    switch (selector.kind) {
      case "key":
        return this.deleteKey(place, selector.key);
      case "index": {
        this.get(ref);
        return this.splice(place, selector.index as number, 1, []);
      }
      case "entry": {
        const [key] = this.get(ref) as [unknown, unknown];
        return this.mapDelete(place, key);
      }
      case "member":
        return this.setDelete(place, this.get(ref));
      default:
        throw new Failure("only a key, an element, a Map entry or a Set member can be removed");
    }
  }

  replace(ref: Ref, value: unknown): void {
    const { place, selector } = ref;
    switch (selector.kind) {
      case "whole":
        return this.assign(place, value);
      case "all": {
        if (!Array.isArray(value)) throw new Failure("the contents must be an array");
        return this.assign(
          place,
          place.raw instanceof Map ? new Map(value.map(entryOf)) : new Set(value),
        );
      }
      case "key":
        this.get(ref);
        return this.setKey(place, selector.key, value);
      case "index":
        this.get(ref);
        return this.splice(place, selector.index as number, 1, [value]);
      case "entry": {
        const [oldKey] = this.get(ref) as [unknown, unknown];
        const [key, item] = entryOf(value);
        return this.#rekey(place, selector.index as number, oldKey, key, item);
      }
      case "entryKey": {
        const oldKey = this.get(ref);
        const item = (place.raw as Map<unknown, unknown>).get(oldKey);
        return this.#rekey(place, selector.index, oldKey, value, item);
      }
      case "entryValue": {
        const key = [...(place.raw as Map<unknown, unknown>).keys()][selector.index];
        return this.mapSet(place, key, value);
      }
      case "member": {
        const old = this.get(ref);
        if (Object.is(old, value)) return;
        this.setDelete(place, old);
        return this.setAdd(place, value, selector.index as number);
      }
    }
  }

  #rekey(place: Place, index: number, oldKey: unknown, key: unknown, item: unknown): void {
    const map = place.raw as Map<unknown, unknown>;
    if (Object.is(oldKey, key)) return this.mapSet(place, key, item);
    if (map.has(key)) throw new Failure(`the Map already has the key ${JSON.stringify(key)}`);
    this.mapDelete(place, oldKey);
    this.mapSet(place, key, item, index);
  }

  /** Applies one operation (already checked for shape). */
  apply(operation: JsonPatchOperation): void {
    this.#operation = operation;
    switch (operation.op) {
      case "add":
        return this.add(this.resolve(operation.path), fromTaggedJson(operation.value));
      case "remove":
        return this.remove(this.resolve(operation.path));
      case "replace":
        return this.replace(this.resolve(operation.path), fromTaggedJson(operation.value));
      case "test": {
        const actual = toTaggedJson(this.get(this.resolve(operation.path)));
        if (!jsonEqual(actual, operation.value)) {
          throw new Failure(`test failed: the value at "${operation.path}" is different`);
        }
        return;
      }
      case "move":
      case "copy": {
        if (operation.op === "move" && operation.path.startsWith(`${operation.from}/`)) {
          throw new Failure("cannot move a value into itself");
        }
        const from = this.resolve(operation.from);
        let value = this.get(from);
        if (operation.op === "move") {
          if (operation.path === operation.from) return;
          this.remove(from);
        } else {
          value = copyRaw(value);
        }
        return this.add(this.resolve(operation.path), value);
      }
    }
  }

  /** The index that a trailing `-` of `pointer` (an append) stands for now that it is done. */
  lastIndex(pointer: string): string {
    if (!pointer.endsWith("/-")) return pointer;
    const { place, selector } = this.resolve(pointer);
    if (!("index" in selector) || selector.index !== "-") return pointer; // an object key "-"
    const raw = place.raw;
    const size = Array.isArray(raw) ? raw.length : (raw as Map<unknown, unknown>).size;
    if (size === 0) throw new Failure(`nothing at "${pointer}" to take back`);
    return `${pointer.slice(0, -2)}/${size - 1}`;
  }

  rollback(): void {
    while (this.undo.length > 0) applyEdit(invertEdit(this.undo.pop()!));
  }
}

function entryOf(value: unknown): [unknown, unknown] {
  if (!Array.isArray(value) || value.length !== 2) {
    throw new Failure("a Map entry must be a [key, value] pair");
  }
  return [value[0], value[1]];
}

const OPS = new Set(["add", "remove", "replace", "move", "copy", "test"]);

function checkShape(operation: unknown, index: number): JsonPatchOperation {
  const op = operation as Record<string, unknown>;
  const fail = (why: string) => new PatchError(`operation ${index}: ${why}`, operation, index);
  if (op === null || typeof op !== "object") throw fail("not an object");
  if (!OPS.has(op.op as string)) throw fail(`unknown op ${JSON.stringify(op.op)}`);
  if (typeof op.path !== "string") throw fail("no path");
  if ((op.op === "move" || op.op === "copy") && typeof op.from !== "string") throw fail("no from");
  if ((op.op === "add" || op.op === "replace" || op.op === "test") && !("value" in op)) {
    throw fail("no value");
  }
  return op as unknown as JsonPatchOperation;
}

function run<T>(target: T, body: (applier: Applier) => void): T {
  if (typeof target !== "object" || target === null) {
    throw new TypeError("patch and revert change objects, arrays, Maps and Sets in place");
  }
  const applier = new Applier(target);
  const tracker = applier.root.node?.tracker;
  if (tracker) {
    tracker.atomically(() => body(applier));
    return target;
  }
  try {
    body(applier);
  } catch (error) {
    applier.rollback();
    throw error;
  }
  return target;
}

function step(applier: Applier, operation: JsonPatchOperation, index: number): void {
  try {
    applier.apply(operation);
  } catch (error) {
    if (error instanceof Failure) {
      throw new PatchError(
        `operation ${index} (${operation.op} "${operation.path}"): ${error.message}`,
        operation,
        index,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Applies RFC 6902 JSON Patch operations (as made by {@linkcode diff} or
 * found in `Change.patches`) to `target`, in place, and returns it.
 *
 * Paths are JSON Pointers into the tagged JSON form of `target`: a `Map`
 * entry is `/$map/<position>` (`[key, value]`, its parts `/0` and `/1`), a
 * `Set` member `/$set/<position>`, and an object key starting with `$` has
 * one more `$`. Values are in that form too.
 *
 * The patch applies completely or not at all: if an operation fails (a
 * `test` that does not hold, a path that leads nowhere), everything before
 * it is undone and a {@linkcode PatchError} is thrown. On a tracked
 * structure every operation is reported to `onChange` (`op: "patch"`) and
 * the result is saved once; a value the format cannot store is a
 * `TypeError`, and nothing changes.
 *
 * @example Apply a change made elsewhere
 * ```ts
 * import assert from "node:assert/strict";
 * import { patch, track } from "@x/atomic-store/reactive";
 *
 * const seen: string[] = [];
 * const state = track({ todo: ["write"] }, { onChange: (change) => seen.push(change.op) });
 * patch(state, [{ op: "add", path: "/todo/-", value: "test" }]);
 * assert.ok(state.todo[1] === "test" && seen[0] === "patch");
 * ```
 */
export function patch<T>(target: T, operations: readonly JsonPatchOperation[]): T {
  if (!Array.isArray(operations)) throw new TypeError("a patch is an array of operations");
  const checked = operations.map(checkShape);
  return run(
    target,
    (applier) => checked.forEach((operation, index) => step(applier, operation, index)),
  );
}

/**
 * Undoes `operations` that were applied to `target` (by {@linkcode patch},
 * or as one change reported in `Change.patches`), and returns `target`.
 * `revert(patch(x, ops), ops)` gives back the `x` from before.
 *
 * Removing and replacing forget the old value, so each `remove` and
 * `replace` must come right after a `test` of the same path, as in the
 * output of {@linkcode diff} and in `Change.patches`; otherwise
 * {@linkcode PatchError}. Like `patch`, it applies completely or not at all.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diff, patch, revert } from "@x/atomic-store/reactive";
 *
 * const doc = { n: 1, list: [1] };
 * const ops = diff(doc, { n: 2, list: [1, 2] });
 * patch(doc, ops);
 * revert(doc, ops);
 * assert.ok(doc.n === 1 && doc.list.length === 1);
 * ```
 */
export function revert<T>(target: T, operations: readonly JsonPatchOperation[]): T {
  if (!Array.isArray(operations)) throw new TypeError("a patch is an array of operations");
  const checked = operations.map(checkShape);
  return run(target, (applier) => {
    for (let index = checked.length - 1; index >= 0; index--) {
      const operation = checked[index];
      const before = checked[index - 1];
      const tested = before?.op === "test" && before.path === operation.path
        ? before as { value: unknown }
        : undefined;
      let inverse: JsonPatchOperation | undefined;
      try {
        switch (operation.op) {
          case "test":
            continue;
          case "add":
            inverse = tested
              ? { op: "replace", path: operation.path, value: tested.value }
              : { op: "remove", path: applier.lastIndex(operation.path) };
            break;
          case "copy":
            inverse = { op: "remove", path: applier.lastIndex(operation.path) };
            break;
          case "move":
            inverse = { op: "move", from: applier.lastIndex(operation.path), path: operation.from };
            break;
          case "remove":
          case "replace":
            if (!tested) {
              throw new Failure(
                `cannot take back a ${operation.op} without a test of the old value right before it`,
              );
            }
            inverse = operation.op === "remove"
              ? { op: "add", path: operation.path, value: tested.value }
              : { op: "replace", path: operation.path, value: tested.value };
            break;
        }
      } catch (error) {
        if (error instanceof Failure) {
          throw new PatchError(`operation ${index}: ${error.message}`, operation, index, {
            cause: error,
          });
        }
        throw error;
      }
      step(applier, inverse!, index);
    }
  });
}
