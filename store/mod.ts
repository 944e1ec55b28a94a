/**
 * One value in one file, kept safe: easier than a database, more
 * fault-resistant than writing the file yourself.
 *
 * {@linkcode open} reads the file (or starts from a copy of a default
 * value) and hands you a {@linkcode Store}. Change `store.value` as you
 * like; the file changes only when you call `commit()` or when a
 * `store.with(fn)` callback finishes, and then atomically: the new
 * contents go to a temporary file that is flushed to disk and renamed over
 * the old one, so a crash, even a SIGKILL or a power cut, leaves either
 * the previous commit or the new one, never a mix.
 *
 * - Formats: JSON (the default), YAML, MessagePack, or your own codec. The
 *   file name picks YAML (`.yaml`, `.yml`) or MessagePack (`.msgpack`,
 *   `.mpk`) when `format` is not given.
 * - Failure is all or nothing: when the callback of the outermost
 *   `with` throws, nothing is written and `value` goes back to the last
 *   committed state. A nested `with` that throws goes back to where it
 *   began, so the enclosing callback may catch the error and carry on.
 * - A file that does not decode is a {@linkcode CorruptFileError}, and the
 *   store never overwrites it unless you opened it with
 *   `overwriteCorrupt: true`.
 * - With `lock: true`, each outermost `with` holds a cross-process lock and
 *   re-reads the file first, so several processes can update one store
 *   without losing updates. Without it, two processes that write the same
 *   file concurrently may lose one of their updates, but never corrupt it.
 *
 * @example Remember every start time
 * ```ts
 * import assert from "node:assert/strict";
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/runs.json`;
 * for (let run = 0; run < 2; run++) {
 *   await using store = await open<string[]>(path, { default: [] });
 *   await store.with((s) => {
 *     console.log("Previous executions:", s.value);
 *     s.value.push(new Date().toISOString());
 *   });
 * }
 * assert.ok(JSON.parse(await Deno.readTextFile(path)).length === 2);
 * ```
 *
 * @example Manual commits, one per finished step
 * ```ts
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/gathered.json`;
 * const store = await open<Record<string, string>>(path, { default: {} });
 * store.value.state = "running";
 * await store.commit();
 * // ... some calculations ...
 * store.value.state = "done";
 * await store.commit();
 * ```
 *
 * @example Many processes, one counter
 * ```ts
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/counter.json`;
 * await using store = await open(path, { default: 0, lock: true });
 * // Re-reads the file under the lock, increments, commits, unlocks.
 * await store.with((s) => void s.value++);
 * ```
 *
 * @example Nested `with`: only the outermost exit writes
 * ```ts
 * import assert from "node:assert/strict";
 * import { open } from "@x/atomic-store/store";
 *
 * const path = `${await Deno.makeTempDir()}/state.json`;
 * const store = await open(path, { default: "before", ignoreInnerExits: true });
 * await store.with(async (s) => {
 *   s.value = "outer";
 *   await s.with((t) => void (t.value = "inner"));
 *   assert.ok(!(await Deno.stat(path).catch(() => null))); // nothing written yet
 * });
 * assert.ok(JSON.parse(await Deno.readTextFile(path)) === "inner");
 * ```
 *
 * @module
 */

export {
  open,
  type Store,
  type StoreFormat,
  type StoreLockOptions,
  type StoreOptions,
} from "./store.ts";
export type {
  Codec,
  FormatName,
  JsonOptions,
  JsonTransform,
  MsgpackOptions,
  YamlOptions,
} from "../_internal/codec.ts";
export type { AtomicWriteOptions } from "../atomic/write.ts";
export {
  AtomicStoreError,
  AtomicWriteError,
  CorruptFileError,
  FileLockError,
  FileLockTimeoutError,
} from "../_internal/errors.ts";
