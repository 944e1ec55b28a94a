/**
 * Pods: persistent, insertion-ordered maps from strings to values, kept in
 * a directory of shard files, for data that should survive the program
 * without the weight of a database: the status of URLs in a crawler, the
 * progress of a long batch job.
 *
 * - {@linkcode openPod} gives a {@linkcode Pod} (alias
 *   {@linkcode PersistentOrderedDict}): `get`, `set`, `has`, `delete`,
 *   `clear`, `size`, `keys()`, `values()`, `entries()`, `forEach`, `update`,
 *   and sync control (`sync`, `syncKey`, `markDirty`, `dirty`, `hold`,
 *   `unhold`, `revert`, `close`).
 * - {@linkcode SharedPod} shares one pod between the Workers of a process:
 *   the thread that opens it owns the pod and serves the others from its
 *   event loop over SharedArrayBuffers; Workers connect with the
 *   `handle` and read synchronously (blocking on `Atomics.wait`), and
 *   change values through the `set` mutation proxy, one atomic step per
 *   change, with `lock()`/`withLock()` for read-modify-write.
 *
 * ## When data reaches the disk
 *
 * Changes are kept in memory and written by a sync: automatically once
 * `syncAt` keys are dirty (in the background, at the next turn of the event
 * loop), on `close()`, at normal program exit (the `unload` event, with
 * synchronous writes), before the runtime exits on an uncaught exception,
 * and on SIGINT or SIGTERM (the pod syncs, then the process exits with the
 * conventional code 130 or 143). Unsynced changes have the standing of data
 * written to an open file: a SIGKILL, a power cut or a runtime crash loses
 * exactly what was not synced yet, and never anything that was. In a
 * Worker, close the pod yourself: a terminated Worker gets no exit event.
 *
 * Values changed in place (`pod.get("list").push(1)`) are saved too: every
 * object value handed out by `get`, `values`, `entries` or `forEach` marks
 * its key (mark-on-read). The next sync re-encodes the shard files of those
 * keys and rewrites only the files whose contents actually changed (it
 * compares with the file), so reading alone never writes. Mutations
 * through a reference kept from before a sync need another `get` or a
 * `markDirty`.
 *
 * ## On-disk layout
 *
 * A pod directory holds `.lock` (the writer lock) and shard files named
 * `shard-000000.json`, `shard-000001.json`, … (`.msgpack` for MessagePack,
 * plus `.gz` with gzip). Each shard holds a header and up to `fileSize`
 * records `[key, seq, value]`; in JSON, one record per line:
 *
 * ```text
 * [{"pod":1,"n":2,"seq":[0,1]},
 * ["https://example.com/",0,{"tries":1,"done":false}],
 * ["https://example.com/about",1,{"tries":0,"done":false}]]
 * ```
 *
 * - A new key goes to the last shard (a new one is started when it is
 *   full) with the next sequence number. Updating a key rewrites its shard
 *   in place and keeps its number.
 * - The order of the pod is the order of sequence numbers, across all
 *   shards. Deleting a key and setting it again gives it a new, larger
 *   number: it moves to the end, as in a `Map`.
 * - **A key never changes shard while a record of it may be on disk.** A
 *   key deleted and set again before its shard was written goes back into
 *   that same shard (with its new number); only once the shard has been
 *   written without it can the key land elsewhere.
 * - The header gives the number of records (`n`), their lowest and
 *   highest sequence numbers (`seq`) and, in a tracker, its counts
 *   (`summary`). Opening reads only the headers: a shard's records are
 *   read when an iteration reaches its place in the order, or when a key
 *   is looked up that is not among those read (which reads them all). See
 *   {@linkcode PodOptions.lazy}.
 * - A sync rewrites only the shards holding dirty keys, each with an
 *   atomic write (temporary file, fsync, rename), several at a time, then
 *   flushes the directory once, which makes all the renames durable before
 *   `sync()` resolves; a shard left empty is deleted. Room freed by
 *   deletes in older shards is not reused: new keys always go to the last
 *   shard.
 *
 * ## Why a crash leaves a consistent pod
 *
 * Each shard file is replaced atomically, so after a crash at any instant
 * every shard is a complete version: the one before the interrupted sync
 * or the one after it. Every key lives in exactly one shard file (the rule
 * above), so each key's record comes from a single file and is that
 * file's old or new version of it: a key is never lost half-way through a
 * move and never appears twice. Shards can therefore be written in any
 * order, and in parallel. Each key has the value it had at some completed
 * sync, or at the interrupted one; the order is that of the sequence
 * numbers, which only grow. Opening the pod needs no log replay, and
 * leftover temporary files are deleted when the pod is next opened for
 * writing. A shard that cannot be decoded is a `CorruptFileError` naming
 * the file, when it is read (at open for a damaged header or with
 * `lazy: false`, otherwise at first use); nothing is overwritten, since
 * only shards that were read are ever written.
 *
 * ## One writer
 *
 * Opening the same directory twice in one thread gives two handles on the
 * same data. Another process or Worker that opens it for writing gets a
 * {@linkcode PodLockedError}; it can open it with `readOnly: true` to
 * read what was last synced. Values must be storable in the pod's format
 * (checked on `set`, a `TypeError` otherwise): for JSON, plain data; with
 * MessagePack, also Dates and Uint8Arrays.
 *
 * @example Track tasks across runs
 * ```ts
 * import { openPod } from "@x/atomic-store/pod";
 *
 * const path = `${await Deno.makeTempDir()}/urls.pod`;
 * await using urls = await openPod<{ tries: number; done: boolean }>(path);
 * if (!urls.has("https://example.com/")) urls.set("https://example.com/", { tries: 0, done: false });
 * for (const [url, status] of urls) {
 *   if (status.done || status.tries > 3) continue;
 *   status.tries += 1; // saved at the next sync
 *   // ... fetch url, then:
 *   status.done = true;
 * }
 * ```
 *
 * @module
 */

export {
  openPod,
  PersistentOrderedDict,
  Pod,
  type PodEntries,
  type PodFormat,
  type PodOptions,
} from "./pod.ts";
export {
  SharedPod,
  type SharedPodHandle,
  type SharedPodOptions,
  type SharedPodSetter,
} from "./shared.ts";
export { PodLockedError } from "./errors.ts";
export { AtomicStoreError, CorruptFileError } from "../_internal/errors.ts";
