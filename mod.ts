/**
 * atomic-store: crash-safe local persistence for Deno, easier than a
 * database and more fault-resistant than just a file.
 *
 * Every module is also importable on its own:
 *
 * - `@x/atomic-store/atomic`: atomic writes, file locks, locked JSON updates.
 *
 * @example Replace a file atomically
 * ```ts
 * import { atomicWriteJson } from "@x/atomic-store";
 *
 * const path = `${await Deno.makeTempDir()}/settings.json`;
 * await atomicWriteJson(path, { theme: "dark" });
 * ```
 *
 * @module
 */

export * from "./atomic/mod.ts";
