/**
 * The state behind every handle on one pod directory: the entries in
 * order, which shard file holds each key, what is dirty, and the sync
 * machinery. See `mod.ts` for the on-disk layout and the crash argument.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { atomicWriteInBatch, atomicWriteSync } from "../atomic/write.ts";
import { type FileLock, lockFile } from "../atomic/lock.ts";
import { CorruptFileError, FileLockTimeoutError } from "../_internal/errors.ts";
import { fs, isNotFound } from "../_internal/fs.ts";
import {
  checkValue,
  compressShard,
  decodeShard,
  decompressShard,
  encodeShard,
  isCompleteHeader,
  joinJsonShard,
  jsonHeaderLine,
  jsonRecordLine,
  type PodFormat,
  readShardHeader,
  SHARD_FILE,
  SHARD_LEFTOVER,
  shardFileName,
  type ShardFormat,
  shardFormat,
  type ShardHeader,
  type ShardRecord,
} from "./_shard.ts";
import { PodLockedError } from "./errors.ts";
import { type ExitParticipant, registerExit, unregisterExit } from "./_exit.ts";

/** How many shard files are written (or read) at the same time. */
const CONCURRENCY = 32;

/** Settings of a core, with defaults applied. */
export interface CoreOptions {
  format?: PodFormat;
  gzip?: boolean;
  syncAt: number;
  fileSize: number;
  readOnly: boolean;
  /** Read shard records when first needed rather than at open (writable cores only). */
  lazy: boolean;
  lockTimeout: number;
  handleSignals: boolean;
  onError: (error: unknown) => void;
}

/**
 * The entries of a shard, in sequence order: a plain list while entries
 * are only appended (as when read from the file, or filled by new keys), a
 * `Set` from the first removal on. Callers never add an entry twice.
 */
class ShardEntries implements Iterable<Entry> {
  #list: Entry[] | undefined;
  #set: Set<Entry> | undefined;

  constructor(list: Entry[] = []) {
    this.#list = list;
  }

  get size(): number {
    return this.#set === undefined ? this.#list!.length : this.#set.size;
  }

  add(entry: Entry): void {
    if (this.#set === undefined) this.#list!.push(entry);
    else this.#set.add(entry);
  }

  delete(entry: Entry): boolean {
    if (this.#set === undefined) {
      this.#set = new Set(this.#list);
      this.#list = undefined;
    }
    return this.#set.delete(entry);
  }

  [Symbol.iterator](): Iterator<Entry> {
    return this.#set === undefined ? this.#list![Symbol.iterator]() : this.#set.values();
  }
}

/** One shard file and the keys that live in it. */
class Shard {
  readonly index: number;
  /** The entries stored in this shard, in sequence order. */
  entries: ShardEntries = new ShardEntries();
  /** Deleted keys whose record may still be in this shard's file. */
  readonly ghosts: Set<string> = new Set();
  /** Keys set, deleted or marked since this shard was last written. */
  changed: Set<string> = new Set();
  /**
   * Every key and ghost of the shard counts as changed, without being in
   * `changed`: a shard started since the last write of its place, which is
   * written whole anyway. Saves a set entry per new key.
   */
  whole = false;
  /** Keys whose object values were handed out since this shard was last written. */
  lent: Set<string> = new Set();
  /** Whether the file exists, as far as this process knows. */
  onDisk = false;
  /** The header of a shard whose records have not been read yet. */
  header: ShardHeader | undefined;

  constructor(index: number) {
    this.index = index;
  }

  get load(): number {
    return this.entries.size + this.ghosts.size;
  }
}

/** A stored key. */
export interface Entry {
  readonly key: string;
  value: unknown;
  readonly seq: number;
  readonly shard: Shard;
  /**
   * Whether the value is known to be storable as it is: checked when set
   * or encoded, read from JSON, and not handed out or marked since.
   */
  checked: boolean;
}

/**
 * Summarizes the values of each shard into its header, so that a summary
 * of the whole pod (a tracker's counts) is known before the records are
 * read.
 */
export interface ShardSummarizer {
  /** The name of the summary in shard headers. */
  readonly name: string;
  /** The summary of the values of one shard: a small JSON value. */
  summarize(values: readonly unknown[]): unknown;
  /**
   * Called when a shard is read after open, with its new entries, in
   * order, and the summary its header gave (`undefined` if none), which
   * also counted any record dropped as a copy of a key read before.
   */
  loaded(entries: readonly Entry[], summary: unknown): void;
}

interface LoadedShard {
  readonly index: number;
  readonly file: string;
  readonly header: ShardHeader;
  /** The records, or `undefined` when only the header was read. */
  records: ShardRecord[] | undefined;
  sorted: boolean;
}

/** A shard in reading order, by its lowest sequence number. */
interface Ordered {
  readonly item: LoadedShard;
  readonly low: number;
}

/** A binary min-heap of entries by sequence number. */
class SeqHeap {
  readonly #items: Entry[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Entry | undefined {
    return this.#items[0];
  }

  push(entry: Entry): void {
    const items = this.#items;
    let i = items.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent].seq <= entry.seq) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = entry;
  }

  pop(): Entry | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const child = left + 1 < items.length && items[left + 1].seq < items[left].seq
        ? left + 1
        : left;
      if (items[child].seq >= last.seq) break;
      items[i] = items[child];
      i = child;
    }
    items[i] = last;
    return top;
  }
}

interface Loaded {
  readonly format: ShardFormat;
  readonly shards: LoadedShard[];
  readonly leftovers: string[];
}

/** Reads the records of a shard whose header alone was read. */
function readRecords(item: LoadedShard, format: ShardFormat): void {
  if (item.records !== undefined) return;
  const decoded = decodeShard(item.file, format, fs.readFileSync(item.file));
  const { n, seq } = item.header;
  if (
    decoded.header.n !== n || decoded.header.seq?.[0] !== seq?.[0] ||
    decoded.header.seq?.[1] !== seq?.[1]
  ) {
    throw new CorruptFileError(item.file, format.format, {
      detail: "it changed since the pod was opened; another program writes to the pod",
    });
  }
  item.records = decoded.records;
  item.sorted = decoded.sorted;
}

interface Taken {
  readonly changed: Set<string>;
  readonly lent: Set<string>;
  readonly whole: boolean;
}

interface WriteJob {
  readonly shard: Shard;
  readonly taken: Taken;
  readonly ghosts: string[];
  /** The new contents, or `undefined` to remove the file. */
  readonly data: Uint8Array | undefined;
  /** Only values handed out changed: skip the write if the file already holds these bytes. */
  readonly unlessSame: Uint8Array | undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeFormat(format: PodFormat, gzip: boolean): string {
  return `${format}${gzip ? " with gzip" : ""}`;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Reads and checks the shard files of the pod in `dir`: every record, or
 * with `lazy`, the header of each file and the records of files without a
 * complete header.
 */
async function readPodDir(
  dir: string,
  path: string,
  requested: { format?: PodFormat; gzip?: boolean },
  lazy: boolean,
): Promise<Loaded> {
  const names = await fs.readDir(dir);
  const files: { index: number; name: string; format: PodFormat; gzip: boolean }[] = [];
  const leftovers: string[] = [];
  const kinds = new Set<string>();
  const indices = new Set<number>();
  for (const name of names) {
    const match = SHARD_FILE.exec(name);
    if (!match) {
      if (SHARD_LEFTOVER.test(name)) leftovers.push(name);
      continue;
    }
    const index = Number(match[1]);
    if (indices.has(index)) {
      throw new CorruptFileError(join(dir, name), "pod", {
        detail: `another file in the pod is shard ${index} too`,
      });
    }
    indices.add(index);
    const file = { index, name, format: match[2] as PodFormat, gzip: match[3] !== undefined };
    kinds.add(describeFormat(file.format, file.gzip));
    files.push(file);
  }
  if (kinds.size > 1) {
    throw new CorruptFileError(dir, "pod", {
      detail: `its shards are in several formats (${[...kinds].join(", ")})`,
    });
  }
  let format = shardFormat(requested.format ?? "json", requested.gzip ?? false);
  if (files.length > 0) {
    const stored = files[0];
    if (
      (requested.format !== undefined && requested.format !== stored.format) ||
      (requested.gzip !== undefined && requested.gzip !== stored.gzip)
    ) {
      throw new TypeError(
        `pod "${path}" is stored as ${describeFormat(stored.format, stored.gzip)}, not ${
          describeFormat(requested.format ?? stored.format, requested.gzip ?? stored.gzip)
        }; open it without the format and gzip options, or with matching ones`,
      );
    }
    format = shardFormat(stored.format, stored.gzip);
  }
  files.sort((a, b) => a.index - b.index);
  const shards: LoadedShard[] = new Array(files.length);
  if (lazy) {
    // Small reads: synchronous calls cost less than a trip to the I/O threads.
    for (let i = 0; i < files.length; i++) {
      const file = join(dir, files[i].name);
      // The records come along only when the header did not fit in the first kilobytes.
      shards[i] = {
        index: files[i].index,
        file,
        records: undefined,
        sorted: true,
        ...readShardHeader(file, format),
      };
    }
  }
  await pool(files.map((file, position) => ({ file, position })), CONCURRENCY, async (item) => {
    const read = shards[item.position];
    if (read && (read.records !== undefined || isCompleteHeader(read.header))) return;
    const file = join(dir, item.file.name);
    const decoded = decodeShard(file, format, await fs.readFile(file));
    shards[item.position] = { index: item.file.index, file, ...decoded };
  });
  return { format, shards, leftovers };
}

/** Open cores of this thread, by canonical directory, for "same path, same data". */
const cores = new Map<string, Promise<PodCore>>();

/** The state of one pod directory, shared by every handle opened on it in this thread. */
export class PodCore implements ExitParticipant {
  /** The canonical (absolute, symbolic links resolved) directory. */
  readonly dir: string;
  /** The path as first given, for messages. */
  readonly path: string;
  readonly readOnly: boolean;
  readonly options: CoreOptions;
  format!: ShardFormat;
  /** Open handles; the core is released when the last one closes. */
  handles = 0;
  closed = false;
  held = false;
  /** Counts replacements of the whole state (open, revert), for iterations to notice. */
  generation = 0;
  /** Puts a summary of each shard's values in its header (a tracker's counts). */
  summarizer: ShardSummarizer | undefined;

  /** The entries of the shards read so far, in sequence order. */
  #entries: Map<string, Entry> = new Map();
  /** Shards by lowest sequence number; those from `#next` on are not read yet. */
  #order: Ordered[] = [];
  #next = 0;
  /**
   * Entries read but not in `#entries` yet: their sequence numbers come
   * after the lowest of a shard not read yet, so their place in the order
   * is further on. (A key deleted and set again before a sync goes back to
   * its old shard with a new number, so one shard can span many.)
   */
  #deferred = new Map<string, Entry>();
  /** The deferred entries by sequence number; entries no longer deferred are skipped. */
  #deferredBySeq = new SeqHeap();
  /** The number of keys in shards not read yet. */
  #unreadSize = 0;
  /** The last key in `#entries` while shards remain to read: where walks read on. */
  #lastKey: string | undefined;
  /** Keys deleted while shards remain to read: a copy of one in those shards stays deleted. */
  #erased = new Set<string>();

  #lock: FileLock | undefined;
  #shards = new Map<number, Shard>();
  #ghostOf = new Map<string, Shard>();
  #tail: Shard | undefined;
  #nextSeq = 0;
  /** Shards with changed or lent keys. */
  #pending = new Set<Shard>();
  /** Files were renamed or removed since the last successful directory flush. */
  #unflushed = false;
  /** Shards being written by an asynchronous sync. */
  #inFlight = new Set<Shard>();
  /** Number of keys in the `changed` and `lent` sets of all shards. */
  #dirtyCount = 0;
  #chain: Promise<void> = Promise.resolve();
  #autoQueued = false;
  #autoThreshold: number;

  private constructor(dir: string, path: string, options: CoreOptions) {
    this.dir = dir;
    this.path = path;
    this.readOnly = options.readOnly;
    this.options = options;
    this.#autoThreshold = options.syncAt;
  }

  /**
   * Opens the core for `path`, or joins the one already open in this
   * thread. Read-only opens join an open writable core, or load their own
   * snapshot of what is on disk.
   */
  static async open(path: string, options: CoreOptions): Promise<PodCore> {
    const absolute = resolve(path);
    if (options.readOnly) {
      const dir = await fs.realPath(absolute);
      const existing = cores.get(dir);
      const core = existing ? await existing.catch(() => undefined) : undefined;
      if (core && !core.closed) {
        core.#checkFormat(options);
        core.handles++;
        return core;
      }
      // Without the lock, files may change after open: read them all now.
      const snapshot = new PodCore(dir, path, options);
      snapshot.#install(await readPodDir(dir, path, options, false));
      snapshot.handles++;
      return snapshot;
    }
    await fs.mkdir(absolute, { recursive: true });
    const dir = await fs.realPath(absolute);
    let opening = cores.get(dir);
    if (!opening) {
      opening = PodCore.#create(dir, path, options);
      cores.set(dir, opening);
      opening.catch(() => cores.delete(dir));
    }
    const core = await opening;
    core.#checkFormat(options);
    core.handles++;
    return core;
  }

  static async #create(dir: string, path: string, options: CoreOptions): Promise<PodCore> {
    let lock: FileLock;
    try {
      lock = await lockFile(join(dir, ".lock"), { timeout: options.lockTimeout });
    } catch (error) {
      if (error instanceof FileLockTimeoutError) throw new PodLockedError(path, { cause: error });
      throw error;
    }
    try {
      const loaded = await readPodDir(dir, path, options, options.lazy);
      for (const name of loaded.leftovers) {
        // Temporary files of writes that a crash interrupted; the lock
        // says no writer is running.
        await fs.remove(join(dir, name)).catch(() => {});
      }
      const core = new PodCore(dir, path, options);
      core.#lock = lock;
      core.#install(loaded);
      registerExit(core, options.handleSignals);
      return core;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  #checkFormat(options: { format?: PodFormat; gzip?: boolean }): void {
    const { format, gzip } = this.format;
    if (
      (options.format !== undefined && options.format !== format) ||
      (options.gzip !== undefined && options.gzip !== gzip)
    ) {
      throw new TypeError(
        `pod "${this.path}" is open as ${describeFormat(format, gzip)}, not ${
          describeFormat(options.format ?? format, options.gzip ?? gzip)
        }`,
      );
    }
  }

  /**
   * Replaces the whole in-memory state with what was read from disk.
   * Shards read only as far as their headers are ordered by their lowest
   * sequence numbers and read later, one by one in that order, so that
   * the entries stay in sequence order.
   */
  #install(loaded: Loaded): void {
    this.format = loaded.format;
    this.generation++;
    this.#entries = new Map();
    this.#shards = new Map();
    this.#ghostOf = new Map();
    this.#pending = new Set();
    this.#dirtyCount = 0;
    this.#tail = undefined;
    this.#autoThreshold = this.options.syncAt;
    this.#order = [];
    this.#next = 0;
    this.#deferred = new Map();
    this.#deferredBySeq = new SeqHeap();
    this.#unreadSize = 0;
    this.#lastKey = undefined;
    this.#erased = new Set();
    let maxSeq = -1;
    for (const item of loaded.shards) {
      const shard = new Shard(item.index);
      shard.onDisk = true;
      this.#shards.set(item.index, shard);
      this.#tail = shard;
      let low: number, high: number;
      if (item.records === undefined) {
        if (!isCompleteHeader(item.header)) throw new Error("unreachable: incomplete header");
        [low, high] = item.header.seq;
        shard.header = item.header;
        this.#unreadSize += item.header.n;
      } else {
        if (item.records.length === 0) continue;
        low = Infinity;
        high = -1;
        for (const record of item.records) {
          if (record[1] < low) low = record[1];
          if (record[1] > high) high = record[1];
        }
      }
      if (high > maxSeq) maxSeq = high;
      this.#order.push({ item, low });
    }
    this.#nextSeq = maxSeq + 1;
    this.#order.sort((a, b) => a.low - b.low);
    let last = -1;
    this.#order.forEach(({ item }, i) => {
      if (item.records !== undefined) last = i;
    });
    // Records already read are installed now, with every shard before them.
    while (this.#next <= last || (this.#next === 0 && this.#order.length > 0)) {
      this.#readShard(false);
    }
  }

  /**
   * Reads the next shard in order and places its entries, with those
   * deferred before, whose sequence numbers come before the next shard's
   * lowest; the others wait in `#deferred`. `later` says that the shard is
   * read after open, when the summarizer has counted its header. A key
   * twice in one file is a `CorruptFileError`, and the shard stays unread.
   */
  #readShard(later: boolean): void {
    const { item } = this.#order[this.#next];
    readRecords(item, this.format);
    const shard = this.#shards.get(item.index)!;
    const frontier = this.#next + 1 < this.#order.length
      ? this.#order[this.#next + 1].low
      : Infinity;
    let records = item.records!;
    if (!item.sorted) records = [...records].sort((a, b) => a[1] - b[1]);
    const entries = this.#entries;
    const deferred = this.#deferred;
    const checked = this.format.format === "json";
    // Straight to the end of the order when nothing waits and the whole
    // shard comes before the next one: the usual case.
    const direct = deferred.size === 0 && (records.length === 0 || records.at(-1)![1] < frontier);
    const added: Entry[] = [];
    /** Records of keys read before from another file (or deleted since). */
    const dropped: string[] = [];
    try {
      for (const [key, seq, value] of records) {
        const existing = entries.get(key) ?? deferred.get(key);
        if (existing !== undefined || (later && this.#erased.has(key))) {
          if (existing?.shard === shard) {
            throw new CorruptFileError(this.#fileOf(shard), this.format.format, {
              detail: `key ${JSON.stringify(key)} appears twice in it`,
            });
          }
          // A key in two files happens only when files were copied or
          // edited by hand. The record read first wins, lazily or not:
          // the program may have used, changed or deleted it since. This
          // file is rewritten without the other at the next sync.
          dropped.push(key);
          continue;
        }
        const entry: Entry = { key, value, seq, shard, checked };
        if (direct) {
          entries.set(key, entry);
        } else {
          deferred.set(key, entry);
          this.#deferredBySeq.push(entry);
        }
        added.push(entry);
      }
    } catch (error) {
      for (const { key } of added) {
        if (!entries.delete(key)) deferred.delete(key); // left in the heap, skipped
      }
      this.#dropStaleDeferred();
      item.records = undefined; // read the file again next time: it may have been mended
      throw error;
    }
    if (direct) {
      if (added.length > 0) this.#lastKey = added.at(-1)!.key;
    } else {
      const bySeq = this.#deferredBySeq;
      while (bySeq.size > 0 && bySeq.peek()!.seq < frontier) {
        const entry = bySeq.pop()!;
        if (deferred.get(entry.key) !== entry) continue; // deleted meanwhile
        deferred.delete(entry.key);
        entries.set(entry.key, entry);
        this.#lastKey = entry.key;
      }
    }
    this.#dropStaleDeferred();
    if (!this.readOnly) {
      for (const key of dropped) this.#markChanged(shard, key);
    }
    shard.entries = new ShardEntries(added);
    let summary: unknown;
    if (shard.header !== undefined) {
      this.#unreadSize -= shard.header.n!;
      summary = this.summarizer && shard.header.summary?.[this.summarizer.name];
      shard.header = undefined;
    }
    item.records = undefined; // the entries hold what is needed now
    this.#next++;
    if (!this.partial) this.#erased.clear();
    if (later && this.summarizer) this.summarizer.loaded(added, summary);
  }

  /** Empties the heap of deferred entries once none is deferred, so it holds no values. */
  #dropStaleDeferred(): void {
    if (this.#deferred.size === 0 && this.#deferredBySeq.size > 0) {
      this.#deferredBySeq = new SeqHeap();
    }
  }

  /** Reads shards until one adds an entry at the end (or none is left). */
  #readOn(): void {
    const size = this.#entries.size;
    do this.#readShard(true); while (this.#entries.size === size && this.partial);
  }

  /** Whether some shards have not been read yet. */
  get partial(): boolean {
    return this.#next < this.#order.length;
  }

  /** Reads every shard not read yet. */
  readAll(): void {
    while (this.#next < this.#order.length) this.#readShard(true);
  }

  /**
   * The summaries that the headers of the shards not read yet hold under
   * `name`, or `undefined` if one of them has none.
   */
  unreadSummaries(name: string): unknown[] | undefined {
    const summaries: unknown[] = [];
    for (let i = this.#next; i < this.#order.length; i++) {
      const summary = this.#order[i].item.header.summary?.[name];
      if (summary === undefined) return undefined;
      summaries.push(summary);
    }
    return summaries;
  }

  /** The number of keys. */
  get size(): number {
    return this.#entries.size + this.#deferred.size + this.#unreadSize;
  }

  /** The entry of `key`, reading the shards not read yet if it is not among those read. */
  find(key: string): Entry | undefined {
    const entry = this.#entries.get(key) ?? this.#deferred.get(key);
    if (entry !== undefined || this.#next === this.#order.length) return entry;
    this.readAll();
    return this.#entries.get(key);
  }

  /**
   * The entries in order, reading each shard as the walk comes to it. A revert during the walk ends it with a `TypeError`.
   */
  *walk(): Generator<[string, Entry], void, undefined> {
    const generation = this.generation;
    const still = () => {
      if (this.generation !== generation) {
        throw new TypeError(
          `pod "${this.path}" was reverted during this iteration; start a new one`,
        );
      }
    };
    for (const pair of this.#entries) {
      still();
      if (pair[0] === this.#lastKey && this.#next < this.#order.length) this.#readOn();
      yield pair;
    }
    still();
  }

  /** The entries of the shards read so far (those placed in order first); reads nothing. */
  *entriesRead(): IterableIterator<Entry> {
    yield* this.#entries.values();
    yield* this.#deferred.values();
  }

  /** Every entry, in order, with every shard read. */
  all(): Map<string, Entry> {
    this.readAll();
    return this.#entries;
  }

  // -------------------------------------------------------------------------
  // Reading and writing entries

  /** Notes that the object value of `entry` was handed out and may be mutated. */
  lend(key: string, entry: Entry): void {
    const value = entry.value;
    if (this.readOnly || typeof value !== "object" || value === null) return;
    entry.checked = false;
    const shard = entry.shard;
    if (shard.whole || shard.changed.has(key)) return;
    const lent = shard.lent;
    const size = lent.size;
    lent.add(key);
    if (lent.size === size) return;
    if (size === 0) this.#pending.add(shard);
    this.#dirtyCount++;
    this.#maybeAutoSync();
  }

  /** Marks `key` of `shard` changed; `added` says it was just added to the shard's entries. */
  #markChanged(shard: Shard, key: string, added = false): void {
    if (shard.whole) {
      if (added) {
        this.#dirtyCount++;
        this.#pending.add(shard);
      }
      return;
    }
    const changed = shard.changed;
    const size = changed.size;
    changed.add(key);
    if (changed.size === size) return;
    if (shard.lent.size === 0 || !shard.lent.delete(key)) this.#dirtyCount++;
    this.#pending.add(shard);
  }

  #newTail(): Shard {
    const tail = this.#tail;
    if (tail && tail.load < this.options.fileSize) return tail;
    const index = tail ? tail.index + 1 : 0;
    const shard = new Shard(index);
    shard.whole = true;
    this.#shards.set(index, shard);
    this.#tail = shard;
    return shard;
  }

  /** Checks that `value` can be stored under `key`; a `TypeError` otherwise. */
  check(key: string, value: unknown): void {
    checkValue(this.format, key, value);
  }

  /** Stores a checked value. */
  set(key: string, value: unknown): void {
    const entry = this.find(key);
    if (entry) {
      entry.value = value;
      entry.checked = true;
      this.#markChanged(entry.shard, key);
    } else {
      // A key deleted since its shard was last written goes back to that
      // shard, so that no key is ever in two files.
      let shard = this.#ghostOf.size === 0 ? undefined : this.#ghostOf.get(key);
      const ghost = shard !== undefined;
      if (shard) {
        shard.ghosts.delete(key);
        this.#ghostOf.delete(key);
      } else {
        shard = this.#newTail();
      }
      const added: Entry = { key, value, seq: this.#nextSeq++, shard, checked: true };
      this.#entries.set(key, added);
      shard.entries.add(added);
      this.#markChanged(shard, key, !ghost);
    }
    this.#maybeAutoSync();
  }

  delete(key: string): boolean {
    const entry = this.find(key);
    if (!entry) return false;
    this.#remove(key, entry);
    this.#maybeAutoSync();
    return true;
  }

  #remove(key: string, entry: Entry): void {
    // The last entry read marks where a walk reads on: read on first.
    if (this.partial) {
      if (this.#deferred.get(key) !== entry && key === this.#lastKey) this.#readOn();
      if (this.partial) this.#erased.add(key);
    }
    if (this.#deferred.get(key) === entry) {
      this.#deferred.delete(key); // left in the heap, skipped
      this.#dropStaleDeferred();
    } else {
      this.#entries.delete(key);
    }
    const shard = entry.shard;
    shard.entries.delete(entry);
    shard.ghosts.add(key);
    this.#ghostOf.set(key, shard);
    this.#markChanged(shard, key);
  }

  clear(): void {
    for (const [key, entry] of this.all()) this.#remove(key, entry);
    this.#maybeAutoSync();
  }

  /** Marks `key` to be written at the next sync; returns false for an unknown key. */
  markDirty(key: string): boolean {
    const entry = this.find(key);
    if (entry) entry.checked = false;
    const shard = entry?.shard ?? this.#ghostOf.get(key);
    if (!shard) return false;
    this.#markChanged(shard, key);
    this.#maybeAutoSync();
    return true;
  }

  /** Keys that the next sync writes (or checks, for lent values). */
  dirty(): Set<string> {
    const keys = new Set<string>();
    for (const shard of this.#pending) {
      if (shard.whole) {
        for (const entry of shard.entries) keys.add(entry.key);
        for (const key of shard.ghosts) keys.add(key);
        continue;
      }
      for (const key of shard.changed) keys.add(key);
      for (const key of shard.lent) keys.add(key);
    }
    return keys;
  }

  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  // -------------------------------------------------------------------------
  // Syncing

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(job);
    this.#chain = run.then(() => {}, () => {});
    return run;
  }

  #maybeAutoSync(): void {
    if (this.held || this.#autoQueued || this.readOnly || this.closed) return;
    if (this.#dirtyCount < this.#autoThreshold) return;
    this.#autoQueued = true;
    void this.#enqueue(async () => {
      this.#autoQueued = false;
      if (this.closed) return;
      try {
        await this.#writeShards([...this.#pending]);
        this.#autoThreshold = this.options.syncAt;
      } catch (error) {
        // Back off: the next automatic attempt waits for syncAt more changes.
        this.#autoThreshold = this.#dirtyCount + this.options.syncAt;
        this.report(error);
      }
    });
  }

  report(error: unknown): void {
    try {
      this.options.onError(error);
    } catch { /* an error handler that throws has nowhere to go */ }
  }

  /** Writes every shard with dirty keys. */
  sync(): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    return this.#enqueue(() => this.#writeShards([...this.#pending]));
  }

  /** Writes the shard of `key`, if it has dirty keys. */
  syncKey(key: string): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    return this.#enqueue(() => {
      const shard = (this.#entries.get(key) ?? this.#deferred.get(key))?.shard ??
        this.#ghostOf.get(key);
      if (shard && this.#pending.has(shard)) return this.#writeShards([shard]);
      return this.#unflushed ? this.#writeShards([]) : Promise.resolve();
    });
  }

  /** Drops unsynced changes and reloads from disk. */
  revert(): Promise<void> {
    return this.#enqueue(async () => {
      // What is reloaded must be what a crash would leave.
      if (this.#unflushed) {
        await fs.syncDir(this.dir);
        this.#unflushed = false;
      }
      this.#install(
        await readPodDir(this.dir, this.path, this.format, this.options.lazy && !this.readOnly),
      );
    });
  }

  unhold(): Promise<void> {
    this.held = false;
    if (this.#dirtyCount >= this.options.syncAt) return this.sync();
    return Promise.resolve();
  }

  #take(shard: Shard): Taken {
    const taken = { changed: shard.changed, lent: shard.lent, whole: shard.whole };
    this.#dirtyCount -= shard.whole
      ? shard.entries.size + shard.ghosts.size
      : taken.changed.size + taken.lent.size;
    shard.changed = new Set();
    shard.lent = new Set();
    shard.whole = false;
    this.#pending.delete(shard);
    return taken;
  }

  #restore(shard: Shard, taken: Taken): void {
    if (taken.whole) {
      // Whole again: what changed since the take is part of it.
      if (!shard.whole) {
        this.#dirtyCount += shard.entries.size + shard.ghosts.size -
          (shard.changed.size + shard.lent.size);
        shard.changed = new Set();
        shard.lent = new Set();
        shard.whole = true;
      }
      this.#pending.add(shard);
      return;
    }
    for (const key of taken.changed) this.#markChanged(shard, key);
    for (const key of taken.lent) {
      if (shard.changed.has(key) || shard.lent.has(key)) continue;
      shard.lent.add(key);
      this.#dirtyCount++;
      this.#pending.add(shard);
    }
  }

  /** Encodes the contents of `shard`, checking only values not known to be storable. */
  #encode(shard: Shard): Uint8Array {
    const held = [...shard.entries];
    let low = Infinity;
    let high = -1;
    for (const entry of held) {
      if (entry.seq < low) low = entry.seq;
      if (entry.seq > high) high = entry.seq;
    }
    const header: { n: number; seq: [number, number]; summary?: Record<string, unknown> } = {
      n: held.length,
      seq: [low, high],
    };
    const summarizer = this.summarizer;
    if (summarizer) {
      const summary = summarizer.summarize(held.map((entry) => entry.value));
      header.summary = { [summarizer.name]: summary };
    }
    if (this.format.format !== "json") {
      const records = held.map((entry): ShardRecord => [entry.key, entry.seq, entry.value]);
      return encodeShard(this.format, header, records);
    }
    const lines: string[] = new Array(held.length + 1);
    lines[0] = jsonHeaderLine(header);
    for (let i = 0; i < held.length; i++) {
      const entry = held[i];
      lines[i + 1] = jsonRecordLine(entry.key, entry.seq, entry.value, entry.checked);
    }
    // Only now that every value of the shard encoded: they are all storable.
    for (const entry of held) entry.checked = true;
    return joinJsonShard(lines);
  }

  #fileOf(shard: Shard): string {
    return join(this.dir, shardFileName(shard.index, this.format));
  }

  /**
   * Takes a shard's dirty keys and encodes its contents, as of now. Returns
   * `undefined` when there is nothing to write.
   */
  #prepare(shard: Shard, errors: unknown[], force: boolean): WriteJob | undefined {
    const taken = this.#take(shard);
    const ghosts = shard.ghosts.size === 0 ? [] : [...shard.ghosts];
    if (shard.entries.size === 0) {
      if (!shard.onDisk && !force) {
        this.#dropGhosts(shard, ghosts);
        return undefined;
      }
      return { shard, taken, ghosts, data: undefined, unlessSame: undefined };
    }
    try {
      const raw = this.#encode(shard);
      const onlyLent = !force && !taken.whole && taken.changed.size === 0 && shard.onDisk;
      const data = compressShard(this.format, raw);
      return { shard, taken, ghosts, data, unlessSame: onlyLent ? raw : undefined };
    } catch (error) {
      this.#restore(shard, taken);
      errors.push(error);
      return undefined;
    }
  }

  /** The uncompressed contents of a shard's file, or `undefined` if unreadable. */
  async #readRaw(file: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = await fs.readFile(file);
      return this.format.gzip ? decompressShard(bytes) : bytes;
    } catch {
      return undefined;
    }
  }

  #readRawSync(file: string): Uint8Array | undefined {
    try {
      const bytes = fs.readFileSync(file);
      return this.format.gzip ? decompressShard(bytes) : bytes;
    } catch {
      return undefined;
    }
  }

  #dropGhosts(shard: Shard, ghosts: string[]): void {
    for (const key of ghosts) {
      if (shard.ghosts.delete(key)) this.#ghostOf.delete(key);
    }
    if (
      shard.entries.size === 0 && shard.ghosts.size === 0 && !shard.onDisk &&
      shard !== this.#tail && !this.#pending.has(shard) && !this.#inFlight.has(shard)
    ) {
      this.#shards.delete(shard.index);
    }
  }

  #written(job: WriteJob): void {
    job.shard.onDisk = job.data !== undefined;
    this.#dropGhosts(job.shard, job.ghosts);
  }

  /**
   * Writes `shards`, up to {@linkcode CONCURRENCY} at a time, then flushes
   * the directory once for all of them. Each shard is encoded just before
   * its write, so encoding overlaps the other writes; keys changed before
   * this call are all included, and a key changed during it is written now
   * or by the next sync. The order of the writes does not matter: no key
   * is in two files (see `mod.ts`). Ghosts are dropped only once the
   * directory flush made the new files durable.
   */
  async #writeShards(shards: Shard[]): Promise<void> {
    const errors: unknown[] = [];
    /** Files replaced or removed: durable once the directory is flushed. */
    const done: WriteJob[] = [];
    await pool(shards.sort((a, b) => a.index - b.index), CONCURRENCY, async (shard) => {
      if (!this.#pending.has(shard)) return;
      const job = this.#prepare(shard, errors, false);
      if (!job) return;
      this.#inFlight.add(shard);
      const file = this.#fileOf(job.shard);
      try {
        if (job.unlessSame) {
          const current = await this.#readRaw(file);
          if (current && sameBytes(current, job.unlessSame)) {
            // The file holds these bytes; after a failed directory flush
            // they may not be durable yet: then they wait for this one.
            if (this.#unflushed) {
              done.push(job);
            } else {
              this.#inFlight.delete(shard);
              this.#written(job);
            }
            return;
          }
        }
        if (job.data) {
          await atomicWriteInBatch(file, job.data, { ensureDir: false });
          job.shard.onDisk = true; // durable or not, the file is there now
        } else {
          await fs.remove(file).catch((error) => {
            if (!isNotFound(error)) throw error;
          });
        }
        done.push(job);
      } catch (error) {
        this.#restore(job.shard, job.taken);
        this.#inFlight.delete(shard);
        errors.push(error);
      }
    });
    if (done.length > 0 || this.#unflushed) {
      // One flush of the directory makes every rename and removal durable.
      // If it fails, each file is still whole (old or new version), and
      // the keys stay dirty for the next sync to write again (or, where
      // the file already holds their bytes, to flush again).
      let flushed = false;
      try {
        this.#unflushed = true;
        await fs.syncDir(this.dir);
        this.#unflushed = false;
        flushed = true;
      } catch (error) {
        errors.push(error);
      }
      for (const job of done) {
        this.#inFlight.delete(job.shard);
        if (flushed) this.#written(job);
        else this.#restore(job.shard, job.taken);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /**
   * Writes every dirty shard, and any shard an asynchronous sync is still
   * writing, with synchronous calls: the exit path, where nothing can be
   * awaited.
   */
  flushSync(): void {
    if (this.readOnly || this.closed) return;
    const errors: unknown[] = [];
    for (const shard of new Set([...this.#pending, ...this.#inFlight])) {
      const job = this.#prepare(shard, errors, this.#inFlight.has(shard));
      if (!job) continue;
      const file = this.#fileOf(shard);
      try {
        if (job.unlessSame) {
          const current = this.#readRawSync(file);
          if (current && sameBytes(current, job.unlessSame)) {
            this.#written(job);
            continue;
          }
        }
        if (job.data) {
          atomicWriteSync(file, job.data, { ensureDir: false });
        } else {
          try {
            fs.removeSync(file);
          } catch (error) {
            if (!isNotFound(error)) throw error;
          }
          fs.syncDirSync(this.dir);
        }
        this.#written(job);
      } catch (error) {
        this.#restore(shard, job.taken);
        errors.push(error);
      }
    }
    if (this.#unflushed) {
      // Renames of an asynchronous sync whose directory flush failed.
      try {
        fs.syncDirSync(this.dir);
        this.#unflushed = false;
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  // -------------------------------------------------------------------------
  // Closing

  /** Closes one handle: syncs, and releases everything after the last one. */
  async closeHandle(): Promise<void> {
    if (!this.readOnly) {
      // Changes made while a sync is running are picked up by the next one.
      const waiting = () => this.#pending.size > 0 || this.#unflushed;
      for (let round = 0; round < 3 && waiting(); round++) await this.sync();
      await this.#chain;
      if (waiting()) this.flushSync();
    }
    if (--this.handles > 0) return;
    this.closed = true;
    if (this.readOnly && !this.#lock) return;
    cores.delete(this.dir);
    unregisterExit(this);
    await this.#lock?.release();
  }
}
