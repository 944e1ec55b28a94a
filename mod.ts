/**
 * atomic-store: crash-safe local persistence for Deno, easier than a
 * database and more fault-resistant than just a file.
 *
 * Every module is also importable on its own:
 *
 * - `@x/atomic-store/atomic`: atomic writes, file locks, locked JSON updates.
 * - `@x/atomic-store/store`: one value in one file, with `open`, `commit`
 *   and all-or-nothing `with` blocks, in JSON, YAML or MessagePack.
 * - `@x/atomic-store/pod`: persistent ordered maps kept in sharded files,
 *   synced in the background and at exit, shareable between Workers.
 * - `@x/atomic-store/objectdb`: a persistent object graph in one append-only
 *   log, with transactions, conflict detection, group commit and snapshots.
 * - `@x/atomic-store/reactive`: tracked objects, arrays, Maps and Sets that
 *   report every change (with JSON Patches) and save themselves atomically.
 * - `@x/atomic-store/tracker`: progress trackers, pods of tasks that remember
 *   what is done and how often each was tried, with a resumable `run`.
 *
 * @example Replace a file atomically
 * ```ts
 * import { atomicWriteJson } from "@x/atomic-store";
 *
 * const path = `${await Deno.makeTempDir()}/settings.json`;
 * await atomicWriteJson(path, { theme: "dark" });
 * ```
 *
 * @example Keep a value in a file
 * ```ts
 * import { open } from "@x/atomic-store";
 *
 * const path = `${await Deno.makeTempDir()}/runs.json`;
 * await using store = await open<string[]>(path, { default: [] });
 * await store.with((s) => void s.value.push(new Date().toISOString()));
 * ```
 *
 * @module
 */

export * from "./atomic/mod.ts";
export * from "./store/mod.ts";
export * from "./pod/mod.ts";
export * from "./objectdb/mod.ts";
export * from "./reactive/mod.ts";
export * from "./tracker/mod.ts";
