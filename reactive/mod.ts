/**
 * Tracked structures: plain data (objects, arrays, Maps, Sets, nested to
 * any depth) that tells you when it changes and saves itself, atomically,
 * after every change.
 *
 * - {@linkcode track} wraps a value in a proxy that reads and writes like
 *   it; with a name it is kept in `<dir>/<name>.yaml` (or `.json`,
 *   `.msgpack`, or one file per top-level key with `persist: "pod"`), and
 *   the file, when it exists, is what you get back next time.
 * - `onChange` hears of every change: the path to the changed part, the
 *   operation and its arguments, the changed container, and the same change
 *   as RFC 6902 JSON Patch operations.
 * - {@linkcode batch} makes many changes one: saved once, all undone if it
 *   throws, and run one at a time per structure.
 * - {@linkcode diff}, {@linkcode patch} and {@linkcode revert} compute,
 *   apply and undo JSON Patches, on tracked or plain structures;
 *   {@linkcode snapshot} makes a plain copy.
 *
 * ## Files
 *
 * Every save goes through an atomic write (temporary file, fsync, rename,
 * directory fsync), so a crash leaves the previous or the new version. If a
 * save fails, the change is undone in memory as well and the error is
 * thrown where the change was made: memory and disk agree. A file that
 * cannot be read is a `CorruptFileError` and is never overwritten.
 *
 * Maps, Sets, Dates and typed arrays read back as themselves in every
 * format: YAML uses the tags `!!set`, `!!omap`, `!!timestamp`, `!!binary`
 * (and `!Float64Array` and the like), MessagePack uses extension types, and
 * JSON uses the tagged form of {@linkcode toTaggedJson}
 * (`{"$set": [...]}`, `{"$map": [[key, value], ...]}`, `{"$date": "..."}`).
 *
 * With `persist: "pod"`, `<dir>/<name>/index.json` lists the top-level keys
 * in order and names the file holding each key's value (`<n>.json`, tagged
 * JSON). A key is read when first used; a change to one key rewrites that
 * key's file; a change to several keys or to the set of keys writes new
 * files and then the index, which is the commit point.
 *
 * ## The structure is a tree
 *
 * Values are copied into the structure, so one object is never in two
 * places: `state.b = state.a` stores a copy of `a`, and a later change to
 * `state.a` does not show in `state.b`. This keeps paths, patches and files
 * unambiguous (a YAML file with aliases, or a JSON file, reads back the
 * same). Map keys and Set members must therefore be primitives.
 *
 * ## Limits
 *
 * - Saving is synchronous, and so are custom backends.
 * - Dates and typed arrays are values: `state.when.setFullYear(2030)` is not
 *   seen; assign a new Date instead.
 * - `change.patches` is computed when first read, from the state at that
 *   moment: read it in the callback.
 * - One process should track a given file at a time: nothing locks it.
 *
 * @example A configuration file that saves itself
 * ```ts
 * import { batch, track } from "@x/atomic-store/reactive";
 *
 * const dir = await Deno.makeTempDir();
 * const conf = track({ endpoint: { protocol: "HTTP" }, retryIntervals: [1, 3, 5] }, "config", {
 *   dir,
 *   onChange: (change) => console.log(change.op, change.path, change.patches),
 * });
 * conf.retryIntervals.push(10); // saved to config.yaml
 * await batch(conf, () => { // saved once
 *   conf.endpoint.protocol = "HTTPS";
 *   conf.retryIntervals[0] = 2;
 * });
 * ```
 *
 * @module
 */

export { batch, isTracked, type Persist, snapshot, track, type TrackOptions } from "./_track.ts";
export type { Change } from "./_tracker.ts";
export type { JsonPatchOperation } from "./_edits.ts";
export type { PersistBackend } from "./_persist.ts";
export type { PathKey } from "./_values.ts";
export { diff, patch, PatchError, revert } from "./_patch.ts";
export { fromTaggedJson, toTaggedJson } from "../_internal/codec.ts";
export { AtomicStoreError, AtomicWriteError, CorruptFileError } from "../_internal/errors.ts";
