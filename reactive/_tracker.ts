/**
 * The machinery behind `track`: one {@linkcode Tracker} per tracked
 * structure, one proxy handler ({@linkcode Node}) per container in it.
 *
 * The structure itself is plain data (the "raw" tree), reachable only
 * through the proxies. A change goes: check and copy the new value, check
 * that the container is still part of the structure (and find its path),
 * apply a primitive {@linkcode Edit}, log it (in a batch, or while saving),
 * save, report to `onChange`. When nothing listens, persists or batches,
 * the proxies take a short path that skips the log and the path.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { toTaggedJson } from "../_internal/codec.ts";
import { CorruptFileError } from "../_internal/errors.ts";
import {
  applyEdit,
  contentsOf,
  type Edit,
  editPatches,
  invertEdit,
  type JsonPatchOperation,
  keyToken,
  positionOf,
  spliceRaw,
} from "./_edits.ts";
import type { KeyedStore, Store } from "./_persist.ts";
import {
  checkPrimitive,
  copyRaw,
  handles,
  importMember,
  importValue,
  isContainer,
  MEMORY_POLICY,
  type PathKey,
  setOwn,
  type TrackedHandle,
  type ValuePolicy,
} from "./_values.ts";

/**
 * One change to a tracked structure, as handed to `onChange`.
 *
 * The fields are live references, not copies: `root` and `target` are the
 * tracked proxies. `patches` is computed when first read, from the state at
 * that moment: read it in the callback (the array you get is yours to
 * keep).
 */
export interface Change<T = unknown> {
  /** The tracked structure (the proxy `track` returned). */
  readonly root: T;
  /** The name given to `track`, if any. */
  readonly name: string | undefined;
  /**
   * Keys from the root to the changed container: object keys, array
   * indexes and `Map` keys. `[]` means the root itself changed.
   */
  readonly path: readonly PathKey[];
  /**
   * The operation: `"set"` and `"delete"` (properties, array elements,
   * `length`, `Map` entries), `"push"`, `"pop"`, `"shift"`, `"unshift"`,
   * `"splice"`, `"sort"`, `"reverse"`, `"fill"`, `"copyWithin"` (arrays),
   * `"add"` and `"clear"` (Sets and Maps), `"patch"` (one operation of
   * `patch` or `revert`, in `args[0]`), `"undo"` (a change taken back by a
   * failed `batch`, the undone change in `args[0]`).
   */
  readonly op: string;
  /** The arguments of the operation, as the caller gave them. */
  readonly args: readonly unknown[];
  /** The changed container, tracked. */
  readonly target: object;
  /**
   * The same change as RFC 6902 JSON Patch operations on the tagged JSON
   * form of the root (see `toTaggedJson`); every `remove` and `replace`
   * comes after a `test` of the old value, so `revert` can undo them.
   */
  readonly patches: readonly JsonPatchOperation[];
}

type Obj = Record<string, unknown>;

/** The value of a top-level key of a `"pod"` root that has not been read yet. */
export const UNLOADED: object = Object.freeze({
  [Symbol.for("Deno.customInspect")]: () => "[not loaded yet]",
});

const ALL = Symbol("all keys");

interface LogEntry {
  readonly edit: Edit;
  readonly node: Node;
  /** The top-level key the edit is under (`ALL` for the whole root). */
  readonly rootKey: string | typeof ALL;
  readonly change: ChangeRecord | undefined;
}

class ChangeRecord implements Change {
  readonly root: unknown;
  readonly name: string | undefined;
  readonly path: readonly PathKey[];
  readonly op: string;
  readonly args: readonly unknown[];
  readonly target: object;
  #tracker: Tracker;
  #source: Edit | readonly JsonPatchOperation[];
  #patches: readonly JsonPatchOperation[] | undefined;

  constructor(
    tracker: Tracker,
    path: readonly PathKey[],
    op: string,
    args: readonly unknown[],
    target: object,
    source: Edit | readonly JsonPatchOperation[],
  ) {
    this.root = tracker.root.proxy;
    this.name = tracker.name;
    this.path = path;
    this.op = op;
    this.args = args;
    this.target = target;
    this.#tracker = tracker;
    this.#source = source;
  }

  get patches(): readonly JsonPatchOperation[] {
    if (this.#patches === undefined) {
      const source = this.#source;
      this.#patches = Array.isArray(source)
        ? source
        : editPatches(source as Edit, this.#tracker.pointer(this.path));
    }
    return this.#patches;
  }
}

function detached(): TypeError {
  return new TypeError(
    "this part was removed from its tracked structure (or replaced), so changing it would change nothing that is kept; read it again from the structure",
  );
}

function refuseKey(kind: string): TypeError {
  return new TypeError(`${kind} in a tracked structure cannot be changed this way`);
}

const inBatch = new AsyncLocalStorage<ReadonlySet<Tracker>>();

/** The state of one tracked structure. */
export class Tracker {
  readonly name: string | undefined;
  readonly onChange: ((change: Change) => void) | undefined;
  readonly store: Store | undefined;
  readonly policy: ValuePolicy;
  /** Primitives need checking (every policy but memory's). */
  readonly strict: boolean;
  /** The store is a user backend, which gets a `Change` with every save. */
  readonly custom: boolean;
  readonly nodes: WeakMap<object, Node> = new WeakMap();
  root!: Node;
  /** Open batches (and internal atomic sections). */
  depth = 0;
  /** Nothing listens, persists or batches: proxies skip the log. */
  quiet: boolean;
  /** Edits since the outermost batch started (or of the change being saved). */
  readonly log: LogEntry[] = [];
  #tail: Promise<void> = Promise.resolve();

  constructor(
    name: string | undefined,
    onChange: ((change: Change) => void) | undefined,
    store: Store | undefined,
    custom: boolean,
  ) {
    this.name = name;
    this.onChange = onChange;
    this.store = store;
    this.policy = store?.policy ?? MEMORY_POLICY;
    this.strict = this.policy !== MEMORY_POLICY;
    this.custom = custom;
    this.quiet = onChange === undefined && store === undefined;
  }

  #updateQuiet(): void {
    this.quiet = this.onChange === undefined && this.store === undefined && this.depth === 0;
  }

  enter(): void {
    this.depth++;
    this.quiet = false;
  }

  leave(): void {
    this.depth--;
    this.#updateQuiet();
  }

  /** The node of a raw container, created on first use; records where it was reached from. */
  node(raw: object, parent: Node | null, key: PathKey): Node {
    let node = this.nodes.get(raw);
    if (node === undefined) {
      node = Array.isArray(raw)
        ? new ArrayNode(this, raw, parent, key)
        : raw instanceof Map
        ? new MapNode(this, raw, parent, key)
        : raw instanceof Set
        ? new SetNode(this, raw, parent, key)
        : parent === null && this.store?.kind === "keyed"
        ? new KeyedRootNode(this, raw as Obj, parent, key)
        : new ObjectNode(this, raw as Obj, parent, key);
      this.nodes.set(raw, node);
      handles.set(node.proxy, node);
    } else {
      node.parent = parent;
      node.key = key;
    }
    return node;
  }

  /** True when `node` is still part of the structure. */
  attached(node: Node): boolean {
    let current = node;
    while (current.parent !== null) {
      if (!current.parent.holds(current)) return false;
      current = current.parent;
    }
    return current === this.root;
  }

  /** The path from the root to `node`, or `undefined` when it is no longer part of the structure. */
  locate(node: Node): PathKey[] | undefined {
    const path: PathKey[] = [];
    let current = node;
    while (current.parent !== null) {
      if (!current.parent.holds(current)) return undefined;
      path.push(current.key);
      current = current.parent;
    }
    return current === this.root ? path.reverse() : undefined;
  }

  /** For messages: where `node` is, plus `key` (none when `keyed` is false). */
  where(node: Node, key?: PathKey, keyed = true): () => PathKey[] {
    return () => {
      const path = this.locate(node) ?? [];
      if (keyed) path.push(key);
      return path;
    };
  }

  /** The JSON Pointer (into the tagged JSON form) of the container at `path`. */
  pointer(path: readonly PathKey[]): string {
    let out = "";
    let current: unknown = this.root.raw;
    for (const key of path) {
      if (Array.isArray(current)) {
        out += `/${key as number}`;
        current = current[key as number];
      } else if (current instanceof Map) {
        out += `/$map/${positionOf(current.keys(), key)}/1`;
        current = current.get(key);
      } else {
        out += `/${keyToken(key as string)}`;
        current = (current as Obj)[key as string];
      }
    }
    return out;
  }

  /**
   * Checks and copies a value that is about to go to `key` of `node`'s
   * container (or to replace the container, when `keyed` is false).
   */
  import(value: unknown, node: Node, key: PathKey, keyed = true): unknown {
    if (typeof value !== "object" || value === null) {
      if (!this.strict && typeof value !== "function" && typeof value !== "symbol") return value;
      return checkPrimitive(value, this.policy, this.where(node, key, keyed));
    }
    return importValue(value, this.policy, this.where(node, key, keyed));
  }

  /** {@linkcode import} for Map keys and Set members. */
  importMember(value: unknown, node: Node, role: string): unknown {
    if (typeof value === "string" && !this.strict) return value;
    return importMember(value, this.policy, this.where(node, undefined, false), role);
  }

  // -------------------------------------------------------------------------
  // Loading

  /** The structure stored by the store, or `value` (saved as the initial state). */
  start(value: unknown): void {
    const store = this.store;
    const importRoot = (value: unknown, keyed: boolean): object => {
      const plain = typeof value === "object" && value !== null
        ? (handles.get(value)?.rawForRead() ?? value)
        : value;
      if (
        keyed
          ? !isContainer(plain) || Array.isArray(plain) || plain instanceof Map ||
            plain instanceof Set
          : !isContainer(plain)
      ) {
        throw new TypeError(
          keyed
            ? `persist: "pod" needs a plain object as the root, not ${describeRoot(plain)}`
            : `track needs a plain object, an array, a Map or a Set, not ${describeRoot(plain)}`,
        );
      }
      return importValue(plain, this.policy, () => []) as object;
    };
    if (store === undefined) {
      this.root = this.node(importRoot(value, false), null, undefined);
      return;
    }
    if (store.kind === "whole") {
      const loaded = store.load();
      if (loaded !== undefined) {
        this.root = this.node(this.#importLoaded(loaded.value, store.location), null, undefined);
        return;
      }
      const raw = importRoot(value, false);
      this.root = this.node(raw, null, undefined);
      store.save(raw, this.#initChange());
      return;
    }
    const keys = store.open();
    if (keys !== undefined) {
      const raw: Obj = {};
      for (const key of keys) setOwn(raw, key, UNLOADED);
      this.root = this.node(raw, null, undefined);
      return;
    }
    const raw = importRoot(value, true) as Obj;
    this.root = this.node(raw, null, undefined);
    store.commit(new Map(Object.entries(raw)), [], Object.keys(raw));
  }

  #initChange(): ChangeRecord | undefined {
    if (!this.custom) return undefined;
    return new ChangeRecord(this, [], "init", [], this.root.proxy, [
      { op: "add", path: "", value: toTaggedJson(this.root.raw) },
    ]);
  }

  #importLoaded(value: unknown, location: string, key?: string): object {
    const store = this.store!;
    const format = store.kind === "keyed" ? "json" : store.policy.format.toLowerCase();
    const fail = (detail: string, cause?: unknown) =>
      this.custom
        ? new TypeError(`${location} loaded a value that cannot be tracked: ${detail}`, { cause })
        : new CorruptFileError(location, format === "messagepack" ? "msgpack" : format, {
          cause,
          detail,
        });
    if (key === undefined && !isContainer(value)) {
      throw fail(`it holds ${describeRoot(value)}, not an object, an array, a Map or a Set`);
    }
    try {
      return importValue(value, this.policy, () => key === undefined ? [] : [key]) as object;
    } catch (error) {
      if (error instanceof TypeError) throw fail(error.message, error);
      throw error;
    }
  }

  /** Reads a top-level key of a `"pod"` root into memory, and returns its value. */
  loadKey(key: string): unknown {
    const store = this.store as KeyedStore;
    const stored = store.load(key);
    let value: unknown;
    if (typeof stored === "object" && stored !== null) {
      value = this.#importLoaded(stored, `${store.location} (key ${JSON.stringify(key)})`, key);
    } else {
      try {
        value = checkPrimitive(stored, this.policy, () => [key]);
      } catch (error) {
        throw new CorruptFileError(store.location, "json", { cause: error });
      }
    }
    setOwn(this.root.raw as Obj, key, value);
    return value;
  }

  /** Loads every key of a `"pod"` root that is not in memory yet. */
  loadAll(): void {
    const raw = this.root.raw as Obj;
    for (const key of Object.keys(raw)) if (raw[key] === UNLOADED) this.loadKey(key);
  }

  // -------------------------------------------------------------------------
  // Changing

  /** Applies an edit to the container of `node` (at `path`), then logs, saves and reports it. */
  perform(node: Node, path: PathKey[], edit: Edit, op: string, args: readonly unknown[]): void {
    applyEdit(edit);
    const change = this.onChange !== undefined || this.custom
      ? new ChangeRecord(this, path, op, args, node.proxy, edit)
      : undefined;
    if (this.store !== undefined || this.depth > 0) {
      const rootKey = path.length > 0
        ? path[0] as string
        : edit.kind === "objSet" || edit.kind === "objDelete"
        ? edit.key
        : ALL;
      this.log.push({ edit, node, rootKey, change });
      if (this.depth === 0) {
        try {
          this.#save(change);
        } catch (error) {
          this.undoTo(0, false);
          throw error;
        } finally {
          this.log.length = 0;
        }
      } else if (this.custom) {
        void change!.patches; // a batch reports them at its end, from this state
      }
    }
    this.onChange?.(change!);
  }

  /** Undoes logged edits down to `start`, reporting each undo when `report`. */
  undoTo(start: number, report: boolean): void {
    while (this.log.length > start) {
      const entry = this.log.pop()!;
      const inverse = invertEdit(entry.edit);
      applyEdit(inverse);
      if (report && this.onChange !== undefined && entry.change !== undefined) {
        const path = this.locate(entry.node);
        if (path === undefined) continue;
        try {
          this.onChange(
            new ChangeRecord(this, path, "undo", [entry.change], entry.node.proxy, inverse),
          );
        } catch { /* the undo goes on; the error that caused it is what propagates */ }
      }
    }
  }

  #save(change: ChangeRecord | undefined): void {
    const store = this.store;
    if (store === undefined) return;
    if (store.kind === "whole") {
      store.save(this.root.raw, change);
      return;
    }
    const raw = this.root.raw as Obj;
    const touched = new Set<string>();
    let reorder = false;
    for (const { edit, rootKey } of this.log) {
      if (rootKey === ALL) {
        reorder = true;
        for (const key of Object.keys(raw)) touched.add(key);
        if (edit.kind === "assign") {
          for (const [key] of edit.old as [string, unknown][]) touched.add(key);
        }
      } else {
        touched.add(rootKey);
        if (edit.kind === "objDelete" || (edit.kind === "objSet" && !edit.had)) reorder = true;
      }
    }
    const writes = new Map<string, unknown>();
    const removed: string[] = [];
    for (const key of touched) {
      if (Object.hasOwn(raw, key)) writes.set(key, raw[key]);
      else removed.push(key);
    }
    store.commit(writes, removed, reorder ? Object.keys(raw) : undefined);
  }

  /** Saves what a batch changed; on failure, undoes all of it and throws. */
  #commitBatch(): void {
    if (this.log.length === 0) return;
    try {
      const change = this.custom
        ? new ChangeRecord(
          this,
          [],
          "batch",
          this.log.map((entry) => entry.change!),
          this.root.proxy,
          this.log.flatMap((entry) => entry.change!.patches),
        )
        : undefined;
      this.#save(change);
    } catch (error) {
      this.undoTo(0, true);
      throw error;
    } finally {
      this.log.length = 0;
    }
  }

  /** Runs `fn` as one change: all of it is saved once, or none of it stays. */
  atomically<R>(fn: () => R): R {
    this.enter();
    const start = this.log.length;
    let result: R;
    try {
      result = fn();
    } catch (error) {
      this.undoTo(start, true);
      this.leave();
      throw error;
    }
    this.leave();
    if (this.depth === 0) this.#commitBatch();
    return result;
  }

  /** The body of `batch`: one at a time per structure, nested calls join the open one. */
  async batch<R>(fn: () => R | Promise<R>): Promise<Awaited<R>> {
    if (inBatch.getStore()?.has(this)) return await this.#nested(fn);
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => release = resolve);
    try {
      await previous;
      const inside = new Set(inBatch.getStore());
      inside.add(this);
      return await inBatch.run(inside, () => this.#outer(fn));
    } finally {
      release();
    }
  }

  async #outer<R>(fn: () => R | Promise<R>): Promise<Awaited<R>> {
    this.enter();
    let result: Awaited<R>;
    try {
      result = await fn();
    } catch (error) {
      this.undoTo(0, true);
      this.leave();
      throw error;
    }
    this.leave();
    if (this.depth === 0) this.#commitBatch();
    return result;
  }

  async #nested<R>(fn: () => R | Promise<R>): Promise<Awaited<R>> {
    this.enter();
    const start = this.log.length;
    try {
      return await fn();
    } catch (error) {
      this.undoTo(start, true);
      throw error;
    } finally {
      this.leave();
    }
  }
}

function describeRoot(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return `a ${(value as object).constructor?.name ?? "prototype-less object"}`;
}

/** A copy to hand out for a value that left the structure. */
function release(value: unknown): unknown {
  return copyRaw(value);
}

// ---------------------------------------------------------------------------
// Proxy handlers

/** The proxy handler of one container; also its place in the structure. */
export abstract class Node implements TrackedHandle {
  readonly tracker: Tracker;
  readonly raw: object;
  readonly proxy: object;
  /** The container this one was last reached from (`null` for the root). */
  parent: Node | null;
  /** Its key in `parent` (repaired when array elements move). */
  key: PathKey;

  constructor(tracker: Tracker, raw: object, parent: Node | null, key: PathKey) {
    this.tracker = tracker;
    this.raw = raw;
    this.parent = parent;
    this.key = key;
    this.proxy = new Proxy(raw, this as ProxyHandler<object>);
  }

  /** The raw data for reading (a `"pod"` root loads every key first). */
  rawForRead(): object {
    if (this === this.tracker.root && this.tracker.store?.kind === "keyed") this.tracker.loadAll();
    return this.raw;
  }

  /** True when `child` is still in this container (repairing its key if it moved). */
  abstract holds(child: Node): boolean;

  /** The value to hand out for a raw value read from this container. */
  wrap(value: unknown, key: unknown): unknown {
    if (typeof value !== "object" || value === null) return value;
    const node = this.tracker.nodes.get(value);
    if (node !== undefined) {
      node.parent = this;
      node.key = key as PathKey;
      return node.proxy;
    }
    if (value instanceof Date || ArrayBuffer.isView(value)) return value;
    return this.tracker.node(value, this, key as PathKey).proxy;
  }

  /** Throws unless this container is still part of the structure (fast path). */
  assertAttached(): void {
    if (this.parent !== null && !this.tracker.attached(this)) throw detached();
  }

  /** The path of this container, or throws when it is no longer part of the structure. */
  path(): PathKey[] {
    const path = this.tracker.locate(this);
    if (path === undefined) throw detached();
    return path;
  }

  /** Replaces the whole contents (sort, reverse, fill, copyWithin, clear, patches of the whole). */
  assign(contents: unknown[], op: string, args: readonly unknown[]): void {
    const tracker = this.tracker;
    if (tracker.quiet) {
      this.assertAttached();
      applyEdit({ kind: "assign", target: this.raw, old: [], value: contents });
      return;
    }
    const path = this.path();
    if (this === tracker.root && tracker.store?.kind === "keyed") tracker.loadAll();
    tracker.perform(
      this,
      path,
      { kind: "assign", target: this.raw, old: contentsOf(this.raw), value: contents },
      op,
      args,
    );
  }

  setPrototypeOf(): boolean {
    throw new TypeError("the prototype of a tracked object cannot be changed");
  }

  preventExtensions(): boolean {
    throw new TypeError("a tracked object cannot be frozen, sealed or made non-extensible");
  }
}

/** Plain objects. */
export class ObjectNode extends Node {
  declare readonly raw: Obj;

  holds(child: Node): boolean {
    return this.raw[child.key as string] === child.raw;
  }

  get(raw: Obj, key: string | symbol): unknown {
    const value = raw[key as string];
    if (typeof value !== "object" || value === null || typeof key === "symbol") return value;
    if (key === "__proto__" && !Object.hasOwn(raw, key)) return value;
    if (value === UNLOADED) return this.wrap(this.tracker.loadKey(key), key);
    return this.wrap(value, key);
  }

  set(_raw: Obj, key: string | symbol, value: unknown): boolean {
    if (typeof key === "symbol") {
      throw new TypeError(
        `cannot store a symbol-keyed property (${String(key)}) in a tracked object`,
      );
    }
    this.setKey(key, value, "set", undefined);
    return true;
  }

  /** Sets `key` to `value` (checked and copied); reports `op` with `args` (default `[key, value]`). */
  setKey(key: string, value: unknown, op: string, args: readonly unknown[] | undefined): void {
    const raw = this.raw;
    const tracker = this.tracker;
    const stored = tracker.import(value, this, key);
    const had = Object.hasOwn(raw, key);
    let old = had ? raw[key] : undefined;
    if (had && old === stored && (typeof stored !== "object" || stored === null)) return;
    if (tracker.quiet) {
      this.assertAttached();
      if (key === "__proto__") setOwn(raw, key, stored);
      else raw[key] = stored;
      return;
    }
    const path = this.path();
    if (old === UNLOADED) old = tracker.loadKey(key);
    tracker.perform(
      this,
      path,
      { kind: "objSet", target: raw, key, value: stored, had, old },
      op,
      args ?? [key, value],
    );
  }

  deleteProperty(raw: Obj, key: string | symbol): boolean {
    if (typeof key === "symbol" || !Object.hasOwn(raw, key)) return true;
    this.deleteKey(key, "delete", [key]);
    return true;
  }

  /** Deletes `key` (which exists); reports `op` with `args`. */
  deleteKey(key: string, op: string, args: readonly unknown[]): void {
    const raw = this.raw;
    const tracker = this.tracker;
    if (tracker.quiet) {
      this.assertAttached();
      delete raw[key];
      return;
    }
    const path = this.path();
    let old = raw[key];
    if (old === UNLOADED) old = tracker.loadKey(key);
    const index = Object.keys(raw).indexOf(key);
    tracker.perform(this, path, { kind: "objDelete", target: raw, key, old, index }, op, args);
  }

  defineProperty(raw: Obj, key: string | symbol, descriptor: PropertyDescriptor): boolean {
    const plain = "value" in descriptor && descriptor.get === undefined &&
      descriptor.set === undefined && descriptor.writable !== false &&
      descriptor.enumerable !== false && descriptor.configurable !== false;
    if (!plain) {
      throw new TypeError(
        "a tracked object holds plain data properties only (no getters, setters, read-only or hidden properties)",
      );
    }
    return this.set(raw, key, descriptor.value);
  }
}

/**
 * The root of a `"pod"` structure: its values are loaded on first access.
 * `Object.keys`, `in` and the like need no value; the descriptor of a key
 * not loaded yet is an accessor that loads it when read.
 */
export class KeyedRootNode extends ObjectNode {
  getOwnPropertyDescriptor(raw: Obj, key: string | symbol): PropertyDescriptor | undefined {
    const descriptor = Reflect.getOwnPropertyDescriptor(raw, key);
    if (descriptor === undefined || descriptor.value !== UNLOADED) return descriptor;
    const proxy = this.proxy as Obj;
    const name = key as string;
    return {
      get: () => proxy[name],
      set: (value: unknown) => proxy[name] = value,
      enumerable: true,
      configurable: true,
    };
  }
}

/** True for canonical array index strings ("0", "17"; not "01", "-1", "1.5"). */
function toIndex(key: string): number {
  const length = key.length;
  if (length === 0 || length > 10) return -1;
  const first = key.charCodeAt(0);
  if (first < 48 || first > 57 || (first === 48 && length > 1)) return -1;
  for (let i = 1; i < length; i++) {
    const code = key.charCodeAt(i);
    if (code < 48 || code > 57) return -1;
  }
  const index = Number(key);
  return index < 4294967295 ? index : -1;
}

function toInteger(value: unknown): number {
  const number = Math.trunc(Number(value));
  return Number.isNaN(number) ? 0 : number;
}

function relative(value: unknown, length: number, fallback: number): number {
  if (value === undefined) return fallback;
  const number = toInteger(value);
  return number < 0 ? Math.max(length + number, 0) : Math.min(number, length);
}

type ArrayMethod = (node: ArrayNode, args: unknown[]) => unknown;

const ARRAY_METHODS: Record<string, ArrayMethod> = {
  push(node, items) {
    if (items.length > 0) {
      node.splice(node.raw.length, 0, node.importItems(items, node.raw.length), "push", items);
    }
    return node.raw.length;
  },
  pop(node) {
    const length = node.raw.length;
    if (length === 0) return undefined;
    return release(node.splice(length - 1, 1, [], "pop", [])[0]);
  },
  shift(node) {
    if (node.raw.length === 0) return undefined;
    return release(node.splice(0, 1, [], "shift", [])[0]);
  },
  unshift(node, items) {
    if (items.length > 0) node.splice(0, 0, node.importItems(items, 0), "unshift", items);
    return node.raw.length;
  },
  splice(node, args) {
    const length = node.raw.length;
    const start = relative(args[0], length, 0);
    const deleteCount = args.length === 0
      ? 0
      : args.length === 1
      ? length - start
      : Math.min(Math.max(toInteger(args[1]), 0), length - start);
    const items = args.slice(2);
    if (deleteCount === 0 && items.length === 0) return [];
    const inserted = node.importItems(items, start);
    return node.splice(start, deleteCount, inserted, "splice", args).map(release);
  },
  sort(node, args) {
    const compare = args[0];
    if (compare !== undefined && typeof compare !== "function") {
      throw new TypeError("the comparison function must be a function or undefined");
    }
    const raw = node.raw;
    const sorted = raw.slice();
    if (compare === undefined) sorted.sort();
    else {
      const fn = compare as (a: unknown, b: unknown) => number;
      sorted.sort((a, b) => fn(node.wrap(a, 0), node.wrap(b, 0)));
    }
    if (sorted.some((item, index) => item !== raw[index])) {
      node.assign(sorted, "sort", args);
    }
    return node.proxy;
  },
  reverse(node) {
    if (node.raw.length > 1) node.assign(node.raw.slice().reverse(), "reverse", []);
    return node.proxy;
  },
  fill(node, args) {
    const raw = node.raw;
    const length = raw.length;
    const start = relative(args[1], length, 0);
    const end = relative(args[2], length, length);
    if (start >= end) return node.proxy;
    const value = node.tracker.import(args[0], node, start);
    const isObject = typeof value === "object" && value !== null;
    if (!isObject && raw.slice(start, end).every((item) => item === value)) return node.proxy;
    const filled = raw.slice();
    for (let index = start; index < end; index++) {
      filled[index] = isObject && index > start ? copyRaw(value) : value;
    }
    node.assign(filled, "fill", args);
    return node.proxy;
  },
  copyWithin(node, args) {
    const raw = node.raw;
    const copied = raw.slice().copyWithin(
      toInteger(args[0]),
      toInteger(args[1]),
      args[2] as number,
    );
    let changed = false;
    for (let index = 0; index < copied.length; index++) {
      const item = copied[index];
      if (item === raw[index]) continue;
      changed = true;
      // The source stays where it was: each copy must be an object of its own.
      if (typeof item === "object" && item !== null) copied[index] = copyRaw(item);
    }
    if (changed) node.assign(copied, "copyWithin", args);
    return node.proxy;
  },
};

/** Arrays. */
export class ArrayNode extends Node {
  declare readonly raw: unknown[];
  #methods: Record<string, (...args: unknown[]) => unknown> | undefined;

  holds(child: Node): boolean {
    const raw = this.raw;
    if (raw[child.key as number] === child.raw) return true;
    const index = raw.indexOf(child.raw);
    if (index < 0) return false;
    child.key = index;
    return true;
  }

  get(raw: unknown[], key: string | symbol): unknown {
    const value = (raw as unknown as Record<string | symbol, unknown>)[key];
    if (typeof value === "object" && value !== null) {
      return this.wrap(value, Number(key));
    }
    if (typeof value === "function" && typeof key === "string") {
      const method = ARRAY_METHODS[key];
      if (method !== undefined && Object.hasOwn(ARRAY_METHODS, key)) {
        const cache = this.#methods ??= {};
        return cache[key] ??= (...args: unknown[]) => method(this, args);
      }
    }
    return value;
  }

  /** Checks and copies items about to be inserted at `start`. */
  importItems(items: unknown[], start: number): unknown[] {
    const tracker = this.tracker;
    const out = new Array(items.length);
    for (let index = 0; index < items.length; index++) {
      out[index] = tracker.import(items[index], this, start + index);
    }
    return out;
  }

  /** Removes `deleteCount` elements at `start`, inserts `inserted` (already imported); returns the removed raw elements. */
  splice(
    start: number,
    deleteCount: number,
    inserted: unknown[],
    op: string,
    args: readonly unknown[],
  ): unknown[] {
    const raw = this.raw;
    const tracker = this.tracker;
    if (tracker.quiet) {
      this.assertAttached();
      if (deleteCount === 0 && start === raw.length) {
        for (const item of inserted) raw.push(item);
        return [];
      }
      const removed = raw.slice(start, start + deleteCount);
      spliceRaw(raw, start, deleteCount, inserted);
      return removed;
    }
    const path = this.path();
    const removed = raw.slice(start, start + deleteCount);
    tracker.perform(
      this,
      path,
      { kind: "splice", target: raw, start, removed, inserted },
      op,
      args,
    );
    return removed;
  }

  set(raw: unknown[], key: string | symbol, value: unknown): boolean {
    if (typeof key === "symbol") {
      throw new TypeError(
        `cannot store a symbol-keyed property (${String(key)}) in a tracked array`,
      );
    }
    const length = raw.length;
    if (key === "length") {
      const next = Number(value);
      if (!Number.isInteger(next) || next < 0 || next >= 4294967296) {
        throw new RangeError(`invalid array length ${String(value)}`);
      }
      if (next > length) {
        throw new TypeError(
          `cannot grow a tracked array by setting its length (${length} → ${next}): it would have holes; push elements instead`,
        );
      }
      if (next < length) this.splice(next, length - next, [], "set", ["length", next]);
      return true;
    }
    const index = toIndex(key);
    if (index < 0) {
      throw new TypeError(
        `a tracked array holds elements only, not a property ${JSON.stringify(key)}`,
      );
    }
    if (index > length) {
      throw new TypeError(
        `cannot set element ${index} of a tracked array of length ${length}: it would leave holes`,
      );
    }
    const stored = this.tracker.import(value, this, index);
    if (index < length) {
      const old = raw[index];
      if (old === stored && (typeof stored !== "object" || stored === null)) return true;
      if (this.tracker.quiet) {
        this.assertAttached();
        raw[index] = stored;
        return true;
      }
    }
    this.splice(index, index < length ? 1 : 0, [stored], "set", [index, value]);
    return true;
  }

  deleteProperty(raw: unknown[], key: string | symbol): boolean {
    if (typeof key === "string" && Object.hasOwn(raw, key) && key !== "length") {
      throw new TypeError(
        `deleting element ${key} would leave a hole in a tracked array; use splice`,
      );
    }
    return true;
  }

  defineProperty(): boolean {
    throw refuseKey("a property of a tracked array");
  }
}

function* wrapValues(node: Node, map: Map<unknown, unknown>): Generator<unknown> {
  for (const [key, value] of map) yield node.wrap(value, key);
}

function* wrapEntries(node: Node, map: Map<unknown, unknown>): Generator<[unknown, unknown]> {
  for (const [key, value] of map) yield [key, node.wrap(value, key)];
}

type CollectionMethod<N> = (node: N, args: unknown[]) => unknown;

const MAP_METHODS: Record<string | symbol, CollectionMethod<MapNode>> = {
  get: (node, [key]) => node.wrap(node.raw.get(key), key),
  has: (node, [key]) => node.raw.has(key),
  set: (node, [key, value]) => {
    node.setEntry(key, value, "set", [key, value]);
    return node.proxy;
  },
  delete: (node, [key]) => {
    if (!node.raw.has(key)) return false;
    node.deleteEntry(key, "delete", [key]);
    return true;
  },
  clear: (node) => {
    if (node.raw.size > 0) node.assign([], "clear", []);
  },
  forEach: (node, [callback, thisArg]) => {
    if (typeof callback !== "function") throw new TypeError("forEach needs a function");
    for (const [key, value] of node.raw) {
      callback.call(thisArg, node.wrap(value, key), key, node.proxy);
    }
  },
  keys: (node) => node.raw.keys(),
  values: (node) => wrapValues(node, node.raw),
  entries: (node) => wrapEntries(node, node.raw),
  [Symbol.iterator]: (node) => wrapEntries(node, node.raw),
};

/** Maps (primitive keys, any values). */
export class MapNode extends Node {
  declare readonly raw: Map<unknown, unknown>;
  #methods: Record<string | symbol, (...args: unknown[]) => unknown> | undefined;

  holds(child: Node): boolean {
    return this.raw.get(child.key) === child.raw;
  }

  get(raw: Map<unknown, unknown>, key: string | symbol): unknown {
    if (key === "size") return raw.size;
    const method = Object.hasOwn(MAP_METHODS, key) ? MAP_METHODS[key] : undefined;
    if (method !== undefined) {
      const cache = this.#methods ??= {};
      return cache[key] ??= (...args: unknown[]) => method(this, args);
    }
    const value = Reflect.get(raw, key, raw);
    return typeof value === "function" ? value.bind(raw) : value;
  }

  /** Sets an entry; a new key goes at `index` (default: last). */
  setEntry(
    key: unknown,
    value: unknown,
    op: string,
    args: readonly unknown[],
    index?: number,
  ): void {
    const raw = this.raw;
    const tracker = this.tracker;
    const storedKey = tracker.importMember(key, this, "Map key");
    const stored = tracker.import(value, this, storedKey as PathKey);
    const had = raw.has(storedKey);
    const old = raw.get(storedKey);
    if (had && old === stored && (typeof stored !== "object" || stored === null)) return;
    const edit: Edit = {
      kind: "mapSet",
      target: raw,
      key: storedKey,
      value: stored,
      had,
      old,
      index,
    };
    if (tracker.quiet) {
      this.assertAttached();
      applyEdit(edit);
      return;
    }
    tracker.perform(this, this.path(), edit, op, args);
  }

  deleteEntry(key: unknown, op: string, args: readonly unknown[]): void {
    const raw = this.raw;
    const tracker = this.tracker;
    if (tracker.quiet) {
      this.assertAttached();
      raw.delete(key);
      return;
    }
    const path = this.path();
    const index = positionOf(raw.keys(), key);
    tracker.perform(
      this,
      path,
      { kind: "mapDelete", target: raw, key, old: raw.get(key), index },
      op,
      args,
    );
  }

  set(): boolean {
    throw refuseKey("a property of a tracked Map (use map.set())");
  }

  deleteProperty(): boolean {
    throw refuseKey("a property of a tracked Map (use map.delete())");
  }

  defineProperty(): boolean {
    throw refuseKey("a property of a tracked Map");
  }
}

const SET_METHODS: Record<string | symbol, CollectionMethod<SetNode>> = {
  add: (node, [value]) => {
    node.addMember(value, "add", [value]);
    return node.proxy;
  },
  has: (node, [value]) => node.raw.has(value),
  delete: (node, [value]) => {
    if (!node.raw.has(value)) return false;
    node.deleteMember(value, "delete", [value]);
    return true;
  },
  clear: (node) => {
    if (node.raw.size > 0) node.assign([], "clear", []);
  },
  forEach: (node, [callback, thisArg]) => {
    if (typeof callback !== "function") throw new TypeError("forEach needs a function");
    for (const value of node.raw) callback.call(thisArg, value, value, node.proxy);
  },
  keys: (node) => node.raw.values(),
  values: (node) => node.raw.values(),
  entries: (node) => node.raw.entries(),
  [Symbol.iterator]: (node) => node.raw.values(),
};

/** Sets (of primitives). */
export class SetNode extends Node {
  declare readonly raw: Set<unknown>;
  #methods: Record<string | symbol, (...args: unknown[]) => unknown> | undefined;

  holds(): boolean {
    return false;
  }

  get(raw: Set<unknown>, key: string | symbol): unknown {
    if (key === "size") return raw.size;
    const method = Object.hasOwn(SET_METHODS, key) ? SET_METHODS[key] : undefined;
    if (method !== undefined) {
      const cache = this.#methods ??= {};
      return cache[key] ??= (...args: unknown[]) => method(this, args);
    }
    const value = Reflect.get(raw, key, raw);
    return typeof value === "function" ? value.bind(raw) : value;
  }

  addMember(value: unknown, op: string, args: readonly unknown[], index?: number): void {
    const raw = this.raw;
    const tracker = this.tracker;
    const member = tracker.importMember(value, this, "Set member");
    if (raw.has(member)) return;
    if (tracker.quiet && index === undefined) {
      this.assertAttached();
      raw.add(member);
      return;
    }
    const path = this.path();
    tracker.perform(this, path, { kind: "setAdd", target: raw, value: member, index }, op, args);
  }

  deleteMember(value: unknown, op: string, args: readonly unknown[]): void {
    const raw = this.raw;
    const tracker = this.tracker;
    if (tracker.quiet) {
      this.assertAttached();
      raw.delete(value);
      return;
    }
    const path = this.path();
    const index = positionOf(raw, value);
    tracker.perform(this, path, { kind: "setDelete", target: raw, value, index }, op, args);
  }

  set(): boolean {
    throw refuseKey("a property of a tracked Set (use set.add())");
  }

  deleteProperty(): boolean {
    throw refuseKey("a property of a tracked Set (use set.delete())");
  }

  defineProperty(): boolean {
    throw refuseKey("a property of a tracked Set");
  }
}

/** The node behind a tracked proxy, or `undefined` for anything else. */
export function nodeOf(value: unknown): Node | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const handle = handles.get(value);
  return handle instanceof Node ? handle : undefined;
}
