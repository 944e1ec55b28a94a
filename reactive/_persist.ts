/**
 * Where tracked structures are saved: the internal store interfaces and
 * their implementations.
 *
 * - A {@linkcode WholeStore} saves the whole structure at once: the built-in
 *   single-file formats (YAML, JSON, MessagePack) and custom backends.
 * - A {@linkcode KeyedStore} saves each top-level key of a plain-object root
 *   on its own and loads it on first access: `persist: "pod"`. The
 *   implementation here keeps one file per key in a directory; another
 *   keyed store (such as one on `pod/`) can replace it behind the same
 *   interface.
 *
 * All stores are synchronous: a change is on disk (or refused, and rolled
 * back) before the assignment that made it returns.
 *
 * @module
 */

import { join } from "node:path";
import { type Codec, jsonCodec, resolveCodec } from "../_internal/codec.ts";
import { CorruptFileError } from "../_internal/errors.ts";
import { fs, isNotFound } from "../_internal/fs.ts";
import { atomicWriteSync } from "../atomic/write.ts";
import type { Change } from "./_tracker.ts";
import {
  JSON_POLICY,
  MEMORY_POLICY,
  MSGPACK_POLICY,
  type ValuePolicy,
  YAML_POLICY,
} from "./_values.ts";

/** What a store is told about the change it saves. */
export type ChangeInfo = Change;

/** A store that saves the whole structure at once. */
export interface WholeStore {
  readonly kind: "whole";
  readonly policy: ValuePolicy;
  /** Where the data lives, for messages. */
  readonly location: string;
  /** The stored value, or `undefined` when nothing is stored yet. */
  load(): { value: unknown } | undefined;
  /** Saves `root` (raw data: encode or copy it, never keep it); `change` is given to custom backends. */
  save(root: object, change?: ChangeInfo): void;
}

/** A store that saves each top-level key of a plain-object root on its own. */
export interface KeyedStore {
  readonly kind: "keyed";
  readonly policy: ValuePolicy;
  readonly location: string;
  /** The stored keys in order, or `undefined` when nothing is stored yet. */
  open(): string[] | undefined;
  /** Reads one key's value (it exists). */
  load(key: string): unknown;
  /**
   * Makes a new state durable, all or nothing: `writes` are the keys whose
   * values changed (raw data: encode it, never keep it), `removed` the keys
   * that are gone, and `order` the full key order when the set of keys or
   * their order changed.
   */
  commit(writes: Map<string, unknown>, removed: readonly string[], order?: readonly string[]): void;
}

/** Either kind of store. */
export type Store = WholeStore | KeyedStore;

/** The readable file name a built-in format uses. */
export const EXTENSIONS = { yaml: "yaml", json: "json", msgpack: "msgpack" } as const;

const POLICIES: Record<keyof typeof EXTENSIONS, ValuePolicy> = {
  yaml: YAML_POLICY,
  json: JSON_POLICY,
  msgpack: MSGPACK_POLICY,
};

function readIfExistsSync(path: string): Uint8Array | undefined {
  try {
    return fs.readFileSync(path);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** The single-file store of a built-in format: `<dir>/<name>.<ext>`. */
export function fileStore(
  format: keyof typeof EXTENSIONS,
  dir: string,
  name: string,
  fsync: boolean,
): WholeStore {
  const path = join(dir, `${name}.${EXTENSIONS[format]}`);
  const codec = resolveCodec<unknown>(format, {
    json: { tagged: true },
    yaml: { tagged: true },
    msgpack: { tagged: true },
  });
  return {
    kind: "whole",
    policy: POLICIES[format],
    location: path,
    load() {
      const bytes = readIfExistsSync(path);
      if (bytes === undefined) return undefined;
      try {
        return { value: codec.decode(bytes) };
      } catch (cause) {
        throw new CorruptFileError(path, format, { cause });
      }
    },
    save(root) {
      atomicWriteSync(path, codec.encode(root), { fsync });
    },
  };
}

/**
 * A custom place to keep a tracked structure, given as the `persist`
 * option: a remote store, a database, a format of your own.
 *
 * Both methods are synchronous: `save` must have stored the value (or
 * thrown) when it returns. When `save` throws, the change is undone in
 * memory and the error reaches the code that made the change. (A method
 * that returns a promise is a `TypeError`: asynchronous backends are not
 * supported yet.)
 *
 * @example Keep the structure in memory elsewhere (a stand-in for a remote store)
 * ```ts
 * import assert from "node:assert/strict";
 * import { type PersistBackend, track } from "@x/atomic-store/reactive";
 *
 * const remote = new Map<string, unknown>();
 * const backend: PersistBackend = {
 *   load: (name) => remote.get(name),
 *   save: (name, value, change) => {
 *     remote.set(name, value);
 *     console.log(change.op, change.patches); // send the patches instead of the value
 *   },
 * };
 * const todo = track({ items: ["write"] }, "todo", { persist: backend });
 * todo.items.push("test"); // push [ { op: "add", path: "/items/1", value: "test" } ]
 * assert.ok((remote.get("todo") as { items: string[] }).items.length === 2);
 * ```
 */
export interface PersistBackend {
  /** Returns the stored structure called `name`, or `undefined` when there is none. */
  load(name: string): unknown;
  /**
   * Stores `value`, a plain deep copy of the whole structure, after
   * `change`. The first save, of the initial value, has `op: "init"`; a
   * `batch` (or a `patch` of several operations) is one change
   * with `op: "batch"`, whose `args` are the changes made in it and whose
   * `patches` are theirs, in order.
   */
  save(name: string, value: unknown, change: Change): void;
}

function notAsync(result: unknown, what: string): void {
  if (
    result !== null && typeof result === "object" &&
    typeof (result as { then?: unknown }).then === "function"
  ) {
    // Keep a rejection from surfacing as unhandled: the TypeError says it all.
    (result as Promise<unknown>).then(undefined, () => {});
    throw new TypeError(
      `${what} returned a promise: persistence backends must be synchronous (asynchronous ones are not supported yet)`,
    );
  }
}

/** Adapts a user's {@linkcode PersistBackend}. */
export function backendStore(backend: PersistBackend, name: string): WholeStore {
  if (
    backend === null || typeof backend !== "object" || typeof backend.load !== "function" ||
    typeof backend.save !== "function"
  ) {
    throw new TypeError(
      'persist must be false, "yaml", "json", "msgpack", "pod" or an object with load() and save()',
    );
  }
  return {
    kind: "whole",
    policy: MEMORY_POLICY,
    location: `the persistence backend of "${name}"`,
    load() {
      const value = backend.load(name);
      notAsync(value, "load()");
      return value === undefined ? undefined : { value };
    },
    save(root, change) {
      notAsync(backend.save(name, structuredClone(root), change!), "save()");
    },
  };
}

// ---------------------------------------------------------------------------
// One file per key: `persist: "pod"`.

/** What `index.json` of a keyed directory holds. */
interface IndexFile {
  format: "atomic-store/reactive-keys";
  version: 1;
  /** The next unused file number. */
  next: number;
  /** Keys in order, each with the number of the file holding its value. */
  keys: [string, number][];
}

const INDEX_FORMAT = "atomic-store/reactive-keys";

function parseIndex(path: string, bytes: Uint8Array, codec: Codec<unknown>): IndexFile {
  let value: unknown;
  try {
    value = codec.decode(bytes);
  } catch (cause) {
    throw new CorruptFileError(path, "json", { cause });
  }
  const index = value as IndexFile;
  const valid = index !== null && typeof index === "object" && index.format === INDEX_FORMAT &&
    index.version === 1 && Number.isSafeInteger(index.next) && Array.isArray(index.keys) &&
    index.keys.every((entry) =>
      Array.isArray(entry) && entry.length === 2 && typeof entry[0] === "string" &&
      Number.isSafeInteger(entry[1]) && entry[1] >= 0 && entry[1] < index.next
    ) && new Set(index.keys.map(([key]) => key)).size === index.keys.length;
  if (!valid) {
    throw new CorruptFileError(path, "json", {
      detail: `not an index of ${INDEX_FORMAT} version 1`,
    });
  }
  return index;
}

/**
 * One file per top-level key, in the directory `<dir>/<name>/`:
 *
 * - `index.json` lists the keys in order, each with the number of the file
 *   that holds its value, and the next unused number. It is the commit
 *   point: a key file that the index does not name is ignored.
 * - `<number>.json` holds one key's value, in the tagged JSON form.
 *
 * A change to one existing key rewrites that key's file in place (one
 * atomic write). A change to several keys, or to the set of keys, writes
 * the new values to fresh files, then the index (atomically), then deletes
 * the files that are no longer named. A crash or a failure at any point
 * leaves the index naming a complete, consistent state; unnamed files are
 * overwritten later when their numbers come round again.
 */
export function keyedDirectoryStore(dir: string, name: string, fsync: boolean): KeyedStore {
  const root = join(dir, name);
  const indexPath = join(root, "index.json");
  const codec = jsonCodec<unknown>({ tagged: true });
  const indexCodec = jsonCodec<unknown>();
  let files = new Map<string, number>();
  let next = 0;
  const fileOf = (number: number) => join(root, `${number}.json`);
  const write = (path: string, data: string | Uint8Array) => atomicWriteSync(path, data, { fsync });
  const writeIndex = (keys: Map<string, number>, nextNumber: number) => {
    const index: IndexFile = {
      format: INDEX_FORMAT,
      version: 1,
      next: nextNumber,
      keys: [...keys],
    };
    write(indexPath, indexCodec.encode(index));
  };
  const removeQuietly = (path: string) => {
    try {
      fs.removeSync(path);
    } catch { /* an unnamed file is harmless */ }
  };
  return {
    kind: "keyed",
    policy: JSON_POLICY,
    location: root,
    open() {
      const bytes = readIfExistsSync(indexPath);
      if (bytes === undefined) return undefined;
      const index = parseIndex(indexPath, bytes, indexCodec);
      files = new Map(index.keys);
      next = index.next;
      return index.keys.map(([key]) => key);
    },
    load(key) {
      const number = files.get(key);
      if (number === undefined) throw new Error(`internal: no file for key ${JSON.stringify(key)}`);
      const path = fileOf(number);
      let bytes: Uint8Array;
      try {
        bytes = fs.readFileSync(path);
      } catch (cause) {
        if (isNotFound(cause)) {
          throw new CorruptFileError(path, "json", {
            cause,
            detail: `the file of key ${JSON.stringify(key)} is missing`,
          });
        }
        throw cause;
      }
      try {
        return codec.decode(bytes);
      } catch (cause) {
        throw new CorruptFileError(path, "json", { cause });
      }
    },
    commit(writes, removed, order) {
      const gone = removed.filter((key) => files.has(key));
      const changed = [...writes.keys()];
      const sameKeys = gone.length === 0 && changed.every((key) => files.has(key)) &&
        (order === undefined ||
          (order.length === files.size && [...files.keys()].every((key, i) => order[i] === key)));
      if (sameKeys && changed.length === 1) {
        // One existing key: its file is the commit point.
        write(fileOf(files.get(changed[0])!), codec.encode(writes.get(changed[0])));
        return;
      }
      if (sameKeys && changed.length === 0) return;
      const updated = new Map(files);
      let number = next;
      const fresh: number[] = [];
      try {
        for (const [key, value] of writes) {
          const file = number++;
          write(fileOf(file), codec.encode(value));
          fresh.push(file);
          updated.set(key, file);
        }
        for (const key of gone) updated.delete(key);
        let ordered = updated;
        if (order !== undefined) {
          ordered = new Map();
          for (const key of order) {
            const file = updated.get(key);
            if (file === undefined) throw new Error("internal: the key order names a missing key");
            ordered.set(key, file);
          }
          if (ordered.size !== updated.size) {
            throw new Error("internal: the key order misses keys");
          }
        }
        writeIndex(ordered, number);
        const obsolete = [...files].filter(([key, file]) => ordered.get(key) !== file);
        files = ordered;
        next = number;
        for (const [, file] of obsolete) removeQuietly(fileOf(file));
      } catch (error) {
        for (const file of fresh) removeQuietly(fileOf(file));
        throw error;
      }
    },
  };
}
