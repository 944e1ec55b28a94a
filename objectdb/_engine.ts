/**
 * The engine behind a `Database`: replaying the log, catching up with
 * records other instances appended, and appending transactions with group
 * commit.
 *
 * A committed transaction's record body is a MessagePack array
 * `[1, rootOid | null, nextOid, objects]`, where each object is
 * `[oid, className, attributes, entries]`: `attributes` a flat array
 * `[name, value, name, value, ...]` (values as in `_wire.ts`) and `entries`
 * `null`, or for a `PersistentDict` `[cleared (0 or 1), deletedKeys,
 * [key, value, ...]]`, a change to apply to its entries (a full state is a
 * change with `cleared` set). A stored file is `[size, [offset, length,
 * ...]]`: where in the log its chunk records' data is.
 *
 * Commits queue per engine. Whoever finds the queue idle starts a flush:
 * it takes everything queued (commits made in the same tick included),
 * locks the log exclusively, catches up, checks each transaction for
 * conflicts in order, appends all their records with one write and one
 * fdatasync, and only then makes their changes visible. Commits that arrive
 * during the fdatasync form the next batch.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { resolveCodec, toBytes } from "../_internal/codec.ts";
import { AtomicStoreError, CorruptFileError } from "../_internal/errors.ts";
import { type FileHandle, fs } from "../_internal/fs.ts";
import {
  classNameOf,
  type DictOverlay,
  displayClassName,
  type Election,
  type EngineRef,
  type FileSource,
  fileStates,
  type LocalState,
  materialize,
  metaOf,
  type ObjectMeta,
  prototypeFor,
  releaseLocal,
  type StreamInfo,
  streamInfos,
  type Transaction,
} from "./_core.ts";
import {
  ConflictError,
  ObjectGraphError,
  ReadConflictError,
  TransactionFailedError,
  UnregisteredClassError,
  WriteConflictError,
} from "./errors.ts";
import { becomeStream, newStream } from "./file.ts";
import {
  BLOB_CHUNK_SIZE,
  checkFileHeader,
  encodeRecord,
  FILE_HEADER_SIZE,
  FILE_MAGIC,
  HEADER_SIZE,
  KIND_BLOB,
  KIND_COMMIT,
  KIND_FAILED,
  type LogRecord,
  type ScanEnd,
  scanLog,
} from "./_log.ts";
import { lockLog } from "./_lock.ts";
import { deepFreeze, WireReader, WireWriter, withPath } from "./_wire.ts";

/** Options of an engine. */
export interface EngineOptions {
  /** How long to wait for the log's lock, in ms. Default 30000. */
  timeout?: number;
}

/** One transaction's part for one database, queued for a flush. */
export interface CommitEntry {
  tx: Transaction;
  /** Objects it checked out that belong (or were assigned) to this database. */
  metas: ObjectMeta[];
  /** Their local states, taken when the commit was queued. */
  locals: Map<ObjectMeta, LocalState>;
  election: Election | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

const FORMAT = 1;
const EMPTY = new Uint8Array(0);
const FORMAT_NAME = "objectdb";

const openEngines = new Set<Engine>();

/** Every engine open in this process. */
export function openEnginesList(): Engine[] {
  return [...openEngines];
}

type Flat = unknown[];
type DictChange = [number, unknown[], Flat] | null;
type ObjectTree = [number, string, Flat, DictChange];

interface PlannedWrite {
  meta: ObjectMeta;
  oid: number;
  local: LocalState | undefined;
}

interface PendingFile {
  value: object;
  /** The tree the record stores; filled in once the bytes are written. */
  slot: unknown[];
  info?: StreamInfo;
}

interface Plan {
  entry: CommitEntry;
  writes: PlannedWrite[];
  claims: ObjectMeta[];
  files: PendingFile[];
  tree: unknown[];
  seq: number;
}

/** State shared by the entries of one batch. */
interface Batch {
  seq: number;
  nextOid: number;
  claimed: Map<ObjectMeta, number>;
  written: Set<ObjectMeta>;
  rootWritten: boolean;
  files: Map<object, PendingFile>;
}

/** Buffers records and appends them to the log. */
class Appender {
  readonly start: number;
  offset: number;
  #handle: FileHandle;
  #pending: Uint8Array[] = [];

  constructor(handle: FileHandle, start: number) {
    this.#handle = handle;
    this.start = start;
    this.offset = start;
  }

  add(record: Uint8Array): void {
    this.#pending.push(record);
    this.offset += record.length;
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    const records = this.#pending;
    this.#pending = [];
    if (records.length === 1) {
      this.#handle.writeSync(records[0]);
      return;
    }
    let size = 0;
    for (const record of records) size += record.length;
    const out = new Uint8Array(size);
    let at = 0;
    for (const record of records) {
      out.set(record, at);
      at += record.length;
    }
    this.#handle.writeSync(out);
  }

  /** Appends `source` as chunk records; returns where the data went. */
  async writeFile(path: string, chunks: AsyncIterable<Uint8Array>): Promise<StreamInfo> {
    this.flush();
    const info: StreamInfo = { path, size: 0, offsets: [], lengths: [] };
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      const record = encodeRecord(KIND_BLOB, chunk);
      await this.#handle.write(record);
      info.offsets.push(this.offset + HEADER_SIZE);
      info.lengths.push(chunk.length);
      info.size += chunk.length;
      this.offset += record.length;
    }
    return info;
  }
}

/** Reads `source` in chunks of at most {@linkcode BLOB_CHUNK_SIZE} bytes. */
async function* chunksOf(source: FileSource): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    for (let at = 0; at < source.length; at += BLOB_CHUNK_SIZE) {
      yield source.subarray(at, at + BLOB_CHUNK_SIZE);
    }
    return;
  }
  let buffer = new Uint8Array(BLOB_CHUNK_SIZE);
  let filled = 0;
  if (source instanceof ReadableStream) {
    for await (const piece of source) {
      let at = 0;
      while (at < piece.length) {
        const n = Math.min(piece.length - at, BLOB_CHUNK_SIZE - filled);
        buffer.set(piece.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === BLOB_CHUNK_SIZE) {
          yield buffer;
          buffer = new Uint8Array(BLOB_CHUNK_SIZE);
          filled = 0;
        }
      }
    }
  } else {
    for (;;) {
      const n = await source.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
      if (filled === BLOB_CHUNK_SIZE) {
        yield buffer;
        buffer = new Uint8Array(BLOB_CHUNK_SIZE);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}

/** Reads a stored file's chunks, for copying into a snapshot. */
async function* storedChunks(info: StreamInfo): AsyncGenerator<Uint8Array> {
  if (info.offsets.length === 0) return;
  const handle = await fs.open(info.path, { read: true });
  try {
    for (let index = 0; index < info.offsets.length; index++) {
      const out = new Uint8Array(info.lengths[index]);
      await handle.seek(info.offsets[index], Deno.SeekMode.Start);
      let filled = 0;
      while (filled < out.length) {
        const n = await handle.read(out.subarray(filled));
        if (!n) {
          throw new CorruptFileError(info.path, FORMAT_NAME, {
            offset: info.offsets[index],
            detail: "a stored file ends early",
          });
        }
        filled += n;
      }
      yield out;
    }
  } finally {
    await handle.close();
  }
}

function streamTree(info: StreamInfo): unknown[] {
  const flat: number[] = [];
  for (let i = 0; i < info.offsets.length; i++) flat.push(info.offsets[i], info.lengths[i]);
  return [info.size, flat];
}

function flatten(map: Map<unknown, unknown>, writer: WireWriter, keys: boolean): Flat {
  const flat: Flat = [];
  for (const [key, value] of map) {
    const name = keys ? String(key) : "<entry>";
    flat.push(
      keys ? key : withPath("<key>", () => writer.write(key)),
      withPath(name, () => writer.write(value)),
    );
  }
  return flat;
}

/** The entries of a dict as a transaction sees them. */
function merged(shared: Map<unknown, unknown>, overlay: DictOverlay): Map<unknown, unknown> {
  const out = overlay.cleared ? new Map() : new Map(shared);
  for (const key of overlay.deleted) out.delete(key);
  for (const [key, value] of overlay.changed) out.set(key, value);
  return out;
}

/** The engine of one open database file. */
export class Engine implements EngineRef {
  readonly path: string;
  database: object = {};
  readonly objects: Map<number, ObjectMeta> = new Map();
  root: ObjectMeta | undefined;
  rootVersion = 0;
  txCount = 0;

  #handle: FileHandle;
  #key: string;
  #timeout: number;
  #codec = resolveCodec<unknown>("msgpack");
  #end = FILE_HEADER_SIZE;
  #tornAt = -1;
  #tornSize = -1;
  #nextOid = 1;
  #rootLocal = false;
  #streams = new Map<number, object>();
  #queue: CommitEntry[] = [];
  #flushing: Promise<void> | undefined;
  #catchingUp: Promise<void> | undefined;
  #closed = false;
  #broken: Error | undefined;

  private constructor(path: string, key: string, handle: FileHandle, timeout: number) {
    this.path = path;
    this.#key = key;
    this.#handle = handle;
    this.#timeout = timeout;
  }

  /** Opens (creating if missing) and replays the log at `path`. */
  static async open(path: string, options: EngineOptions = {}): Promise<Engine> {
    const timeout = options.timeout ?? 30_000;
    if (!(timeout >= 0)) {
      throw new RangeError(`timeout must be a non-negative number of ms, got ${timeout}`);
    }
    const absolute = resolve(path);
    const handle = await fs.open(absolute, {
      read: true,
      write: true,
      append: true,
      create: true,
      mode: 0o666,
    });
    try {
      const engine = new Engine(absolute, await fs.realPath(absolute), handle, timeout);
      await engine.#initialize();
      openEngines.add(engine);
      return engine;
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  #corrupt(offset: number, detail: string, cause?: unknown): CorruptFileError {
    return new CorruptFileError(this.path, FORMAT_NAME, { offset, detail, cause });
  }

  #lock(exclusive: boolean): Promise<() => void> {
    return lockLog(this.#key, this.#handle, exclusive, this.#timeout);
  }

  #readAt = (buffer: Uint8Array, position: number): number => {
    this.#handle.seekSync(position, Deno.SeekMode.Start);
    return this.#handle.readSync(buffer) ?? 0;
  };

  async #initialize(): Promise<void> {
    if (this.#handle.statSync().size < FILE_HEADER_SIZE) {
      const release = await this.#lock(true);
      try {
        const size = this.#handle.statSync().size;
        if (size < FILE_HEADER_SIZE) {
          const bytes = new Uint8Array(size);
          if (size > 0) this.#readAt(bytes, 0);
          if (checkFileHeader(bytes) === "foreign") {
            throw this.#corrupt(0, "not an object database (bad file header)");
          }
          if (size > 0) this.#handle.truncateSync(0);
          this.#handle.writeSync(FILE_MAGIC);
          await this.#handle.dataSync();
          await fs.syncDir(dirname(this.path));
          return;
        }
      } finally {
        release();
      }
    }
    const release = await this.#lock(false);
    let stop: ScanEnd;
    try {
      const header = new Uint8Array(FILE_HEADER_SIZE);
      this.#readAt(header, 0);
      if (checkFileHeader(header) !== "valid") {
        throw this.#corrupt(0, "not an object database (bad file header)");
      }
      stop = this.#scan();
    } finally {
      release();
    }
    if (stop.type === "torn") {
      const release = await this.#lock(true);
      try {
        await this.#repairTail(this.#scan());
      } finally {
        release();
      }
    }
  }

  /** Truncates a torn tail; needs the exclusive lock. */
  async #repairTail(stop: ScanEnd): Promise<void> {
    if (stop.type !== "torn") return;
    this.#handle.truncateSync(stop.offset);
    await this.#handle.dataSync();
    this.#tornAt = -1;
  }

  /**
   * Applies the records between what was applied and the end of the file.
   * Synchronous, so that nothing interleaves; needs a lock.
   */
  #scan(): ScanEnd {
    const size = this.#handle.statSync().size;
    const records = scanLog(this.#readAt, this.#end, size);
    for (;;) {
      const step = records.next();
      if (step.done) {
        const stop = step.value;
        if (stop.type === "corrupt") throw this.#corrupt(stop.offset, stop.detail);
        if (stop.type === "torn") {
          this.#tornAt = stop.offset;
          this.#tornSize = size;
        }
        return stop;
      }
      this.#apply(step.value);
      this.#end = step.value.end;
    }
  }

  #apply(record: LogRecord): void {
    if (record.kind === KIND_BLOB) return;
    if (record.kind === KIND_FAILED) {
      this.txCount++;
      return;
    }
    let tree: unknown;
    try {
      tree = this.#codec.decode(record.body);
    } catch (error) {
      throw this.#corrupt(record.offset, "undecodable transaction", error);
    }
    if (
      !Array.isArray(tree) || tree[0] !== FORMAT || typeof tree[2] !== "number" ||
      !Array.isArray(tree[3])
    ) {
      throw this.#corrupt(record.offset, "unknown transaction format");
    }
    const [, rootOid, nextOid, objects] = tree as [number, number | null, number, ObjectTree[]];
    const seq = this.txCount + 1;
    const created = new Map<number, ObjectMeta>();
    try {
      for (const [oid, className, , dict] of objects) {
        if (this.objects.has(oid) || created.has(oid)) continue;
        const prototype = prototypeFor(className);
        if (!prototype) {
          throw new UnregisteredClassError(
            this.path,
            className,
            `cannot load object ${oid} of "${this.path}"`,
          );
        }
        created.set(oid, materialize(prototype, dict !== null));
      }
      const lookup = (oid: number): ObjectMeta => {
        const meta = this.objects.get(oid) ?? created.get(oid);
        if (!meta) throw new Error(`reference to unknown object ${oid}`);
        return meta;
      };
      const decoded = objects.map(([oid, , flat, dict]) => {
        const reader = new WireReader({
          object: (ref) => lookup(ref).proxy,
          file: (value) => this.#streamFor(value),
        });
        const attrs = new Map<string, unknown>();
        for (let i = 0; i < flat.length; i += 2) {
          const value = reader.read(flat[i + 1]);
          deepFreeze(value);
          attrs.set(flat[i] as string, value);
        }
        let change: { cleared: boolean; deleted: unknown[]; set: [unknown, unknown][] } | undefined;
        if (dict) {
          const [cleared, deleted, pairs] = dict;
          const set: [unknown, unknown][] = [];
          for (let i = 0; i < pairs.length; i += 2) {
            const key = reader.read(pairs[i]);
            const value = reader.read(pairs[i + 1]);
            deepFreeze(value);
            set.push([key, value]);
          }
          change = { cleared: cleared === 1, deleted: deleted.map((key) => reader.read(key)), set };
        }
        return { meta: lookup(oid), attrs, change };
      });
      const root = rootOid === null ? undefined : lookup(rootOid);
      // Nothing above changed any state; now apply.
      for (const [oid, meta] of created) {
        meta.oid = oid;
        meta.engine = this;
        this.objects.set(oid, meta);
      }
      for (const { meta, attrs, change } of decoded) {
        meta.attrs = attrs;
        if (change) {
          const items = meta.items ??= new Map();
          if (change.cleared) items.clear();
          for (const key of change.deleted) items.delete(key);
          for (const [key, value] of change.set) items.set(key, value);
        }
        meta.version = seq;
        meta.versionLocal = false;
      }
      if (root) {
        this.root = root;
        this.rootVersion = seq;
        this.#rootLocal = false;
      }
      this.#nextOid = Math.max(this.#nextOid, nextOid);
      this.txCount = seq;
    } catch (error) {
      if (error instanceof UnregisteredClassError || error instanceof CorruptFileError) throw error;
      throw this.#corrupt(record.offset, `bad transaction: ${(error as Error).message}`, error);
    }
  }

  #streamFor(tree: unknown): object {
    const [size, flat] = tree as [number, number[]];
    if (typeof size !== "number" || !Array.isArray(flat)) throw new Error("bad stored file");
    const key = flat.length > 0 ? flat[0] : -1;
    const known = this.#streams.get(key);
    if (known) return known;
    const info: StreamInfo = { path: this.path, size, offsets: [], lengths: [] };
    for (let i = 0; i < flat.length; i += 2) {
      info.offsets.push(flat[i]);
      info.lengths.push(flat[i + 1]);
    }
    const stream = newStream(info);
    if (key >= 0) this.#streams.set(key, stream);
    return stream;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new AtomicStoreError(this.path, `the database "${this.path}" is closed`);
    }
    if (this.#broken) throw this.#broken;
  }

  /**
   * Applies what other instances appended since the last look. Cheap when
   * nothing changed (one fstat).
   */
  catchUp(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#catchingUp) return this.#catchingUp;
    let size: number;
    try {
      this.#assertOpen();
      size = this.#handle.statSync().size;
    } catch (error) {
      return Promise.reject(error);
    }
    if (size === this.#end || (this.#tornAt === this.#end && size === this.#tornSize)) {
      return Promise.resolve();
    }
    const work = (async () => {
      const release = await this.#lock(false);
      try {
        this.#scan();
      } finally {
        release();
      }
    })();
    this.#catchingUp = work;
    const clear = () => {
      if (this.#catchingUp === work) this.#catchingUp = undefined;
    };
    work.then(clear, clear);
    return work;
  }

  /** Queues `entry` for the next flush. */
  commit(entry: CommitEntry): void {
    try {
      this.#assertOpen();
    } catch (error) {
      entry.reject(error);
      return;
    }
    this.#queue.push(entry);
    this.#flushing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    // Let commits made in the same tick join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        await this.#writeBatch(batch);
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #writeBatch(entries: CommitEntry[]): Promise<void> {
    if (this.#broken) {
      for (const entry of entries) entry.reject(this.#broken);
      return;
    }
    let release: () => void;
    try {
      release = await this.#lock(true);
    } catch (error) {
      for (const entry of entries) {
        entry.reject(new TransactionFailedError(this.path, { cause: error }));
      }
      return;
    }
    const outcomes = new Map<CommitEntry, unknown>();
    const plans: Plan[] = [];
    let appender: Appender | undefined;
    try {
      await this.#repairTail(this.#scan());
      appender = new Appender(this.#handle, this.#end);
      const batch: Batch = {
        seq: this.txCount,
        nextOid: this.#nextOid,
        claimed: new Map(),
        written: new Set(),
        rootWritten: false,
        files: new Map(),
      };
      for (const entry of entries) {
        const conflict = this.#findConflict(entry, batch);
        if (conflict) {
          appender.add(encodeRecord(KIND_FAILED, EMPTY));
          batch.seq++;
          outcomes.set(entry, conflict);
          continue;
        }
        let plan: Plan;
        try {
          plan = this.#plan(entry, batch);
        } catch (error) {
          outcomes.set(entry, error);
          continue;
        }
        const entryStart = appender.offset;
        try {
          for (const file of plan.files) {
            const state = fileStates.get(file.value)!;
            if (!(state.source instanceof Uint8Array)) state.consumed = true;
            file.info = await appender.writeFile(this.path, chunksOf(state.source));
            file.slot.push(...streamTree(file.info));
          }
          appender.add(encodeRecord(KIND_COMMIT, toBytes(this.#codec.encode(plan.tree))));
        } catch (error) {
          // This entry's file could not be read, or its record not encoded:
          // drop what it appended, and go on with the others.
          if (appender.offset !== entryStart) {
            this.#handle.truncateSync(entryStart);
            appender.offset = entryStart;
          }
          for (const meta of plan.claims) batch.claimed.delete(meta);
          for (const file of plan.files) batch.files.delete(file.value);
          outcomes.set(
            entry,
            error instanceof TypeError
              ? error
              : new TransactionFailedError(this.path, { cause: error }),
          );
          continue;
        }
        plan.seq = ++batch.seq;
        for (const write of plan.writes) batch.written.add(write.meta);
        if (entry.election) batch.rootWritten = true;
        plans.push(plan);
      }
      appender.flush();
      if (appender.offset !== appender.start) await this.#handle.dataSync();
      // Durable: make it visible.
      this.#end = appender.offset;
      this.txCount = batch.seq;
      this.#nextOid = batch.nextOid;
      for (const plan of plans) this.#applyOwn(plan);
    } catch (error) {
      if (appender) this.#undo(appender.start, error);
      const failure = new TransactionFailedError(this.path, { cause: error });
      for (const entry of entries) {
        const outcome = outcomes.get(entry);
        if (outcome === undefined || outcome instanceof ConflictError) outcomes.set(entry, failure);
      }
      for (const plan of plans) outcomes.set(plan.entry, failure);
    } finally {
      release();
    }
    for (const entry of entries) {
      const outcome = outcomes.get(entry);
      if (outcome === undefined) entry.resolve();
      else entry.reject(outcome);
    }
  }

  /** Removes a failed batch from the log. */
  #undo(start: number, cause: unknown): void {
    try {
      this.#handle.truncateSync(start);
      this.#handle.dataSyncSync();
    } catch (error) {
      try {
        if (this.#handle.statSync().size === start) return;
      } catch { /* fall through */ }
      this.#broken = new AtomicStoreError(
        this.path,
        `a failed commit could not be removed from "${this.path}" (${
          (error as Error).message
        }); close and reopen the database to see what the log holds`,
        { cause },
      );
    }
  }

  #findConflict(entry: CommitEntry, batch: Batch): ConflictError | undefined {
    for (const meta of entry.metas) {
      const local = entry.locals.get(meta);
      if (!local) continue;
      if (batch.written.has(meta)) {
        return new WriteConflictError(this.path, meta.oid ?? batch.claimed.get(meta) ?? 0);
      }
      if (meta.oid !== undefined && meta.version !== local.base) {
        return meta.versionLocal
          ? new WriteConflictError(this.path, meta.oid)
          : new ReadConflictError(this.path, meta.oid);
      }
    }
    const election = entry.election;
    if (election && (batch.rootWritten || this.rootVersion !== election.base)) {
      const oid = this.root?.oid ?? 0;
      return batch.rootWritten || this.#rootLocal
        ? new WriteConflictError(this.path, oid)
        : new ReadConflictError(this.path, oid);
    }
    return undefined;
  }

  /** Encodes `entry`'s objects, giving new ones oids. Throws when something cannot be stored. */
  #plan(entry: CommitEntry, batch: Batch): Plan {
    const claims: ObjectMeta[] = [];
    const files: PendingFile[] = [];
    const writes: PlannedWrite[] = [];
    const queued = new Set<ObjectMeta>();
    const work: ObjectMeta[] = [];
    const enqueue = (meta: ObjectMeta) => {
      if (!queued.has(meta)) {
        queued.add(meta);
        work.push(meta);
      }
    };
    const oidOf = (meta: ObjectMeta): number => {
      if (meta.oid !== undefined) return meta.oid;
      let oid = batch.claimed.get(meta);
      if (oid === undefined) {
        oid = batch.nextOid++;
        batch.claimed.set(meta, oid);
        claims.push(meta);
        enqueue(meta);
      }
      return oid;
    };
    const writer = () =>
      new WireWriter({
        ref: (object) => {
          const meta = metaOf(object)!;
          if (meta.engine !== undefined && meta.engine !== this) {
            throw new ObjectGraphError(this.path, object, "belongs to another database");
          }
          return oidOf(meta);
        },
        file: (value) => {
          const info = streamInfos.get(value);
          if (info) {
            if (info.path !== this.path) {
              throw new TypeError(
                "a PersistentStream can only be stored in its own database; wrap its readable() in a new PersistentFile",
              );
            }
            return streamTree(info);
          }
          let pending = batch.files.get(value);
          if (!pending) {
            if (fileStates.get(value)!.consumed) {
              throw new TypeError(
                "this PersistentFile's source was already read by a failed commit",
              );
            }
            pending = { value, slot: [] };
            batch.files.set(value, pending);
            files.push(pending);
          }
          return pending.slot;
        },
      });
    try {
      for (const meta of entry.metas) enqueue(meta);
      if (entry.election) enqueue(entry.election.meta);
      const objects: ObjectTree[] = [];
      while (work.length > 0) {
        const meta = work.shift()!;
        const oid = oidOf(meta);
        const className = classNameOf(meta);
        if (className === undefined) {
          throw new UnregisteredClassError(
            this.path,
            displayClassName(meta),
            `cannot commit an object of "${this.path}"`,
          );
        }
        const local = entry.locals.get(meta);
        const wire = writer();
        const flat = flatten(local ? local.attrs : meta.attrs, wire, true);
        let dict: DictChange = null;
        if (meta.items) {
          if (meta.oid === undefined) {
            // A new dict: its whole state.
            const entries = local?.dict ? merged(meta.items, local.dict) : meta.items;
            dict = [1, [], flatten(entries, wire, false)];
          } else if (local?.dict) {
            const overlay = local.dict;
            dict = [
              overlay.cleared ? 1 : 0,
              [...overlay.deleted].map((key) => withPath("<key>", () => wire.write(key))),
              flatten(overlay.changed, wire, false),
            ];
          } else {
            dict = [0, [], []];
          }
        }
        objects.push([oid, className, flat, dict]);
        writes.push({ meta, oid, local });
      }
      const root = entry.election ? oidOf(entry.election.meta) : null;
      return {
        entry,
        writes,
        claims,
        files,
        tree: [FORMAT, root, batch.nextOid, objects],
        seq: 0,
      };
    } catch (error) {
      for (const meta of claims) batch.claimed.delete(meta);
      for (const file of files) batch.files.delete(file.value);
      throw error;
    }
  }

  /** Makes a durable plan the new shared state. */
  #applyOwn(plan: Plan): void {
    const tx = plan.entry.tx;
    for (const { meta, oid, local } of plan.writes) {
      if (local) {
        for (const value of local.attrs.values()) deepFreeze(value);
        meta.attrs = local.attrs;
        if (local.dict && meta.items) {
          const overlay = local.dict;
          if (overlay.cleared) meta.items.clear();
          for (const key of overlay.deleted) meta.items.delete(key);
          for (const [key, value] of overlay.changed) {
            deepFreeze(value);
            meta.items.set(key, value);
          }
        }
        releaseLocal(tx, meta);
      } else {
        for (const value of meta.attrs.values()) deepFreeze(value);
        if (meta.items) { for (const value of meta.items.values()) deepFreeze(value); }
      }
      meta.oid = oid;
      meta.engine = this;
      meta.version = plan.seq;
      meta.versionLocal = true;
      meta.fresh = false;
      this.objects.set(oid, meta);
    }
    if (plan.entry.election) {
      this.root = plan.entry.election.meta;
      this.rootVersion = plan.seq;
      this.#rootLocal = true;
      tx.elected.delete(this);
    }
    for (const file of plan.files) {
      becomeStream(file.value, file.info!);
      if (file.info!.offsets.length > 0) this.#streams.set(file.info!.offsets[0], file.value);
    }
  }

  /** Writes the current state of this database into the empty database `target`. */
  async snapshotTo(target: Engine): Promise<void> {
    if (target === this) throw new TypeError("cannot snapshot a database into itself");
    this.#assertOpen();
    target.#assertOpen();
    await this.catchUp();
    // Collect and encode synchronously: one consistent state.
    const objects: ObjectTree[] = [];
    const files = new Map<object, { info: StreamInfo; slot: unknown[] }>();
    const seen = new Set<ObjectMeta>();
    const work: ObjectMeta[] = [];
    const visit = (meta: ObjectMeta) => {
      if (!seen.has(meta)) {
        seen.add(meta);
        work.push(meta);
      }
    };
    const encoder = {
      ref: (object: object) => {
        const meta = metaOf(object)!;
        visit(meta);
        return meta.oid!;
      },
      file: (value: object) => {
        let file = files.get(value);
        if (!file) files.set(value, file = { info: streamInfos.get(value)!, slot: [] });
        return file.slot;
      },
    };
    if (this.root) visit(this.root);
    while (work.length > 0) {
      const meta = work.shift()!;
      const wire = new WireWriter(encoder);
      objects.push([
        meta.oid!,
        classNameOf(meta)!,
        flatten(meta.attrs, wire, true),
        meta.items ? [1, [], flatten(meta.items, wire, false)] : null,
      ]);
    }
    const tree = [FORMAT, this.root?.oid ?? null, this.#nextOid, objects];

    const release = await target.#lock(true);
    let appender: Appender | undefined;
    try {
      await target.#repairTail(target.#scan());
      if (target.objects.size > 0 || target.root) {
        throw new AtomicStoreError(
          target.path,
          `cannot snapshot into "${target.path}": it is not empty`,
        );
      }
      appender = new Appender(target.#handle, target.#end);
      for (const file of files.values()) {
        const info = await appender.writeFile(target.path, storedChunks(file.info));
        file.slot.push(...streamTree(info));
      }
      appender.add(encodeRecord(KIND_COMMIT, toBytes(this.#codec.encode(tree))));
      appender.flush();
      await target.#handle.dataSync();
      target.#scan();
    } catch (error) {
      if (appender && target.#end === appender.start) target.#undo(appender.start, error);
      throw error;
    } finally {
      release();
    }
  }

  /** Waits for queued commits, then closes the log. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    openEngines.delete(this);
    while (this.#flushing) await this.#flushing;
    await this.#catchingUp?.catch(() => {});
    await this.#handle.close();
  }
}
