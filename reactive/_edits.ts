/**
 * Primitive edits of raw containers: the smallest changes a tracked
 * structure undergoes. Each edit can be applied, inverted (for undo) and
 * described as RFC 6902 JSON Patch operations on the tagged JSON form.
 *
 * @module
 */

import { escapeTaggedKey, toTaggedJson } from "../_internal/codec.ts";
import { setOwn } from "./_values.ts";

/** One RFC 6902 JSON Patch operation. */
export type JsonPatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "replace"; path: string; value: unknown }
  | { op: "move"; from: string; path: string }
  | { op: "copy"; from: string; path: string }
  | { op: "test"; path: string; value: unknown };

type Obj = Record<string, unknown>;

/** A primitive change to one raw container. */
export type Edit =
  /** Sets `key`; when it is new, inserts it at `index` (default: last). */
  | {
    kind: "objSet";
    target: Obj;
    key: string;
    value: unknown;
    had: boolean;
    old: unknown;
    index?: number;
  }
  | { kind: "objDelete"; target: Obj; key: string; old: unknown; index: number }
  | { kind: "splice"; target: unknown[]; start: number; removed: unknown[]; inserted: unknown[] }
  /** Sets `key`; when it is new, inserts it at `index` (default: last). */
  | {
    kind: "mapSet";
    target: Map<unknown, unknown>;
    key: unknown;
    value: unknown;
    had: boolean;
    old: unknown;
    index?: number;
  }
  | { kind: "mapDelete"; target: Map<unknown, unknown>; key: unknown; old: unknown; index: number }
  | { kind: "setAdd"; target: Set<unknown>; value: unknown; index?: number }
  | { kind: "setDelete"; target: Set<unknown>; value: unknown; index: number }
  /** Replaces the whole contents (sort, reverse, fill, clear, a patch of the whole). */
  | { kind: "assign"; target: object; old: Contents; value: Contents };

/** The contents of a container, as `assign` stores them. */
export type Contents = unknown[] | [string, unknown][] | [unknown, unknown][];

/** The contents of a raw container, as a fresh list. */
export function contentsOf(target: object): Contents {
  if (Array.isArray(target)) return target.slice();
  if (target instanceof Map) return [...target];
  if (target instanceof Set) return [...target];
  return Object.keys(target).map((key) => [key, (target as Obj)[key]] as [string, unknown]);
}

/** Position of `key` in insertion order, or -1. */
export function positionOf(keys: Iterable<unknown>, key: unknown): number {
  let index = 0;
  for (const candidate of keys) {
    if (candidate === key || (candidate !== candidate && key !== key)) return index;
    index++;
  }
  return -1;
}

/** Splices without spreading huge argument lists onto the stack. */
export function spliceRaw(
  target: unknown[],
  start: number,
  deleteCount: number,
  items: readonly unknown[],
): void {
  if (items.length <= 4096) {
    target.splice(start, deleteCount, ...items);
    return;
  }
  const tail = target.splice(start, target.length - start);
  for (const item of items) target.push(item);
  for (let index = deleteCount; index < tail.length; index++) target.push(tail[index]);
}

function insertAt(
  index: number | undefined,
  size: number,
  add: () => void,
  rebuild: (before: number) => void,
): void {
  if (index === undefined || index >= size) add();
  else rebuild(index);
}

function objInsert(target: Obj, key: string, value: unknown, index: number | undefined): void {
  const keys = Object.keys(target);
  if (index === undefined || index >= keys.length) {
    setOwn(target, key, value);
    return;
  }
  // Re-add the keys from `index` on, so that `key` lands in its place.
  // Integer-like keys keep the order the language gives them anyway.
  const moved = keys.slice(index).map((name) => [name, target[name]] as const);
  for (const [name] of moved) delete target[name];
  setOwn(target, key, value);
  for (const [name, item] of moved) setOwn(target, name, item);
}

function mapInsert(target: Map<unknown, unknown>, key: unknown, value: unknown, index?: number) {
  insertAt(index, target.size, () => target.set(key, value), (before) => {
    const entries = [...target];
    target.clear();
    entries.forEach(([name, item], position) => {
      if (position === before) target.set(key, value);
      target.set(name, item);
    });
  });
}

function setInsert(target: Set<unknown>, value: unknown, index?: number) {
  insertAt(index, target.size, () => target.add(value), (before) => {
    const members = [...target];
    target.clear();
    members.forEach((member, position) => {
      if (position === before) target.add(value);
      target.add(member);
    });
  });
}

function assignContents(target: object, contents: Contents): void {
  if (Array.isArray(target)) {
    target.length = 0;
    spliceRaw(target, 0, 0, contents);
  } else if (target instanceof Map) {
    target.clear();
    for (const [key, value] of contents as [unknown, unknown][]) target.set(key, value);
  } else if (target instanceof Set) {
    target.clear();
    for (const member of contents) target.add(member);
  } else {
    const object = target as Obj;
    for (const key of Object.keys(object)) delete object[key];
    for (const [key, value] of contents as [string, unknown][]) setOwn(object, key, value);
  }
}

/** Applies an edit to its raw container. */
export function applyEdit(edit: Edit): void {
  switch (edit.kind) {
    case "objSet":
      if (edit.had) setOwn(edit.target, edit.key, edit.value);
      else objInsert(edit.target, edit.key, edit.value, edit.index);
      return;
    case "objDelete":
      delete edit.target[edit.key];
      return;
    case "splice":
      spliceRaw(edit.target, edit.start, edit.removed.length, edit.inserted);
      return;
    case "mapSet":
      if (edit.had) edit.target.set(edit.key, edit.value);
      else mapInsert(edit.target, edit.key, edit.value, edit.index);
      return;
    case "mapDelete":
      edit.target.delete(edit.key);
      return;
    case "setAdd":
      setInsert(edit.target, edit.value, edit.index);
      return;
    case "setDelete":
      edit.target.delete(edit.value);
      return;
    case "assign":
      assignContents(edit.target, edit.value);
      return;
  }
}

/** The edit that undoes `edit`, to be applied right after it was (in reverse order). */
export function invertEdit(edit: Edit): Edit {
  switch (edit.kind) {
    case "objSet":
      return edit.had ? { ...edit, value: edit.old, old: edit.value } : {
        kind: "objDelete",
        target: edit.target,
        key: edit.key,
        old: edit.value,
        index: Object.keys(edit.target).indexOf(edit.key),
      };
    case "objDelete":
      return {
        kind: "objSet",
        target: edit.target,
        key: edit.key,
        value: edit.old,
        had: false,
        old: undefined,
        index: edit.index,
      };
    case "splice":
      return { ...edit, removed: edit.inserted, inserted: edit.removed };
    case "mapSet":
      return edit.had ? { ...edit, value: edit.old, old: edit.value } : {
        kind: "mapDelete",
        target: edit.target,
        key: edit.key,
        old: edit.value,
        index: positionOf(edit.target.keys(), edit.key),
      };
    case "mapDelete":
      return {
        kind: "mapSet",
        target: edit.target,
        key: edit.key,
        value: edit.old,
        had: false,
        old: undefined,
        index: edit.index,
      };
    case "setAdd":
      return {
        kind: "setDelete",
        target: edit.target,
        value: edit.value,
        index: positionOf(edit.target, edit.value),
      };
    case "setDelete":
      return { kind: "setAdd", target: edit.target, value: edit.value, index: edit.index };
    case "assign":
      return { ...edit, old: edit.value, value: edit.old };
  }
}

/** Escapes one JSON Pointer token (RFC 6901). */
export function escapeToken(token: string): string {
  return token.includes("~") || token.includes("/")
    ? token.replaceAll("~", "~0").replaceAll("/", "~1")
    : token;
}

/** The JSON Pointer token of an object key in the tagged JSON form. */
export function keyToken(key: string): string {
  return escapeToken(escapeTaggedKey(key));
}

/** The JSON form of a value, for patch operations: a fresh copy. */
function json(value: unknown): unknown {
  return toTaggedJson(value);
}

function contentsJson(target: object, contents: Contents): unknown {
  if (Array.isArray(target)) return json(contents);
  if (target instanceof Map) return json(new Map(contents as [unknown, unknown][]));
  if (target instanceof Set) return json(new Set(contents));
  const object: Obj = {};
  for (const [key, value] of contents as [string, unknown][]) setOwn(object, key, value);
  return json(object);
}

/**
 * The RFC 6902 operations of an edit applied to the container at `pointer`.
 * Every `remove` and `replace` is preceded by a `test` of the old value, so
 * that the operations can be reverted and refuse to apply to another state.
 * Positions in Maps and Sets are read from the container's current state.
 */
export function editPatches(edit: Edit, pointer: string): JsonPatchOperation[] {
  switch (edit.kind) {
    case "objSet": {
      const path = `${pointer}/${keyToken(edit.key)}`;
      return edit.had
        ? [
          { op: "test", path, value: json(edit.old) },
          { op: "replace", path, value: json(edit.value) },
        ]
        : [{ op: "add", path, value: json(edit.value) }];
    }
    case "objDelete": {
      const path = `${pointer}/${keyToken(edit.key)}`;
      return [{ op: "test", path, value: json(edit.old) }, { op: "remove", path }];
    }
    case "splice": {
      const { start, removed, inserted } = edit;
      const ops: JsonPatchOperation[] = [];
      const common = Math.min(removed.length, inserted.length);
      for (let index = 0; index < common; index++) {
        const path = `${pointer}/${start + index}`;
        ops.push({ op: "test", path, value: json(removed[index]) });
        ops.push({ op: "replace", path, value: json(inserted[index]) });
      }
      for (let index = common; index < removed.length; index++) {
        const path = `${pointer}/${start + common}`;
        ops.push({ op: "test", path, value: json(removed[index]) });
        ops.push({ op: "remove", path });
      }
      for (let index = common; index < inserted.length; index++) {
        ops.push({ op: "add", path: `${pointer}/${start + index}`, value: json(inserted[index]) });
      }
      return ops;
    }
    case "mapSet": {
      const index = edit.index ?? positionOf(edit.target.keys(), edit.key);
      if (edit.had) {
        const path = `${pointer}/$map/${index}/1`;
        return [
          { op: "test", path, value: json(edit.old) },
          { op: "replace", path, value: json(edit.value) },
        ];
      }
      return [{ op: "add", path: `${pointer}/$map/${index}`, value: json([edit.key, edit.value]) }];
    }
    case "mapDelete": {
      const path = `${pointer}/$map/${edit.index}`;
      return [{ op: "test", path, value: json([edit.key, edit.old]) }, { op: "remove", path }];
    }
    case "setAdd": {
      const index = edit.index ?? positionOf(edit.target, edit.value);
      return [{ op: "add", path: `${pointer}/$set/${index}`, value: json(edit.value) }];
    }
    case "setDelete": {
      const path = `${pointer}/$set/${edit.index}`;
      return [{ op: "test", path, value: json(edit.value) }, { op: "remove", path }];
    }
    case "assign":
      return [
        { op: "test", path: pointer, value: contentsJson(edit.target, edit.old) },
        { op: "replace", path: pointer, value: contentsJson(edit.target, edit.value) },
      ];
  }
}
