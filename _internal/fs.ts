/**
 * The single seam between atomic-store and the operating system.
 *
 * Every module reaches the filesystem, file locks and signals through the
 * {@linkcode fs} object exported here, never through `Deno.*` directly. That
 * gives two things: tests can swap in a fault-injecting implementation
 * ({@linkcode injectFaults}) and check that no data is lost when a write, an
 * fsync or a rename fails; and a Node or Bun port has exactly one file to
 * reimplement.
 *
 * Every operation comes as an async and a `…Sync` pair with the same meaning,
 * so that algorithms can be written once (see `_internal/io.ts`).
 *
 * @module
 */

/** The kinds of operation that faults can be injected into. */
export type FsOp =
  | "open"
  | "read"
  | "write"
  | "fsync"
  | "truncate"
  | "seek"
  | "close"
  | "lock"
  | "unlock"
  | "stat"
  | "rename"
  | "remove"
  | "mkdir"
  | "link"
  | "chmod"
  | "realPath"
  | "readDir"
  | "dirFsync"
  | "signal";

/** Options for {@linkcode FileSystem.open}, mirroring `Deno.OpenOptions`. */
export interface OpenOptions {
  read?: boolean;
  write?: boolean;
  append?: boolean;
  create?: boolean;
  createNew?: boolean;
  truncate?: boolean;
  /** Permission bits for a newly created file (the umask applies). */
  mode?: number;
}

/** Metadata of a file, a subset of `Deno.FileInfo`. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  size: number;
  mtime: Date | null;
  /** Permission bits; `null` on platforms without them. */
  mode: number | null;
  /** Inode number; `null` where the platform has none. */
  ino: number | null;
  dev: number;
}

/** An open file. Writes always write the whole buffer. */
export interface FileHandle {
  /** The path the file was opened with. */
  readonly path: string;
  write(data: Uint8Array): Promise<void>;
  writeSync(data: Uint8Array): void;
  /** Writes every chunk of a stream, in order. */
  writeStream(stream: ReadableStream<Uint8Array>): Promise<void>;
  read(buffer: Uint8Array): Promise<number | null>;
  readSync(buffer: Uint8Array): number | null;
  /** fsync(2): flushes data and metadata. */
  sync(): Promise<void>;
  syncSync(): void;
  /** fdatasync(2): flushes data and the metadata needed to read it back. */
  dataSync(): Promise<void>;
  dataSyncSync(): void;
  truncate(length?: number): Promise<void>;
  truncateSync(length?: number): void;
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
  seekSync(offset: number, whence: Deno.SeekMode): number;
  /** Tries to take an advisory kernel lock without waiting. */
  tryLock(exclusive: boolean): Promise<boolean>;
  tryLockSync(exclusive: boolean): boolean;
  unlock(): Promise<void>;
  unlockSync(): void;
  stat(): Promise<FileInfo>;
  statSync(): FileInfo;
  close(): Promise<void>;
  closeSync(): void;
}

/** A handler registered with {@linkcode FileSystem.addSignalListener}. */
export type SignalHandler = () => void;

/** Everything atomic-store needs from the operating system. */
export interface FileSystem {
  open(path: string, options: OpenOptions): Promise<FileHandle>;
  openSync(path: string, options: OpenOptions): FileHandle;
  readFile(path: string): Promise<Uint8Array>;
  readFileSync(path: string): Uint8Array;
  rename(from: string, to: string): Promise<void>;
  renameSync(from: string, to: string): void;
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  removeSync(path: string, options?: { recursive?: boolean }): void;
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<void>;
  mkdirSync(path: string, options?: { recursive?: boolean; mode?: number }): void;
  stat(path: string): Promise<FileInfo>;
  statSync(path: string): FileInfo;
  /** Like `stat`, but does not follow a final symbolic link. */
  lstat(path: string): Promise<FileInfo>;
  lstatSync(path: string): FileInfo;
  link(existing: string, newPath: string): Promise<void>;
  linkSync(existing: string, newPath: string): void;
  chmod(path: string, mode: number): Promise<void>;
  chmodSync(path: string, mode: number): void;
  realPath(path: string): Promise<string>;
  realPathSync(path: string): string;
  /** The target a symbolic link names, as stored in the link. */
  readLink(path: string): Promise<string>;
  readLinkSync(path: string): string;
  /** Names of the entries of a directory. */
  readDir(path: string): Promise<string[]>;
  readDirSync(path: string): string[];
  /** fsync(2) on a directory, making renames and creations in it durable. */
  syncDir(path: string): Promise<void>;
  syncDirSync(path: string): void;
  addSignalListener(signal: Deno.Signal, handler: SignalHandler): void;
  removeSignalListener(signal: Deno.Signal, handler: SignalHandler): void;
}

function toInfo(info: Deno.FileInfo): FileInfo {
  return {
    isFile: info.isFile,
    isDirectory: info.isDirectory,
    isSymlink: info.isSymlink,
    size: info.size,
    mtime: info.mtime,
    mode: info.mode,
    ino: info.ino,
    dev: info.dev,
  };
}

class DenoFileHandle implements FileHandle {
  readonly path: string;
  #file: Deno.FsFile;

  constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.byteLength) {
      offset += await this.#file.write(data.subarray(offset));
    }
  }
  writeSync(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.byteLength) {
      offset += this.#file.writeSync(data.subarray(offset));
    }
  }
  async writeStream(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream) await this.write(chunk);
  }
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#file.read(buffer);
  }
  readSync(buffer: Uint8Array): number | null {
    return this.#file.readSync(buffer);
  }
  sync(): Promise<void> {
    return this.#file.sync();
  }
  syncSync(): void {
    this.#file.syncSync();
  }
  dataSync(): Promise<void> {
    return this.#file.syncData();
  }
  dataSyncSync(): void {
    this.#file.syncDataSync();
  }
  truncate(length?: number): Promise<void> {
    return this.#file.truncate(length);
  }
  truncateSync(length?: number): void {
    this.#file.truncateSync(length);
  }
  seek(offset: number, whence: Deno.SeekMode): Promise<number> {
    return this.#file.seek(offset, whence);
  }
  seekSync(offset: number, whence: Deno.SeekMode): number {
    return this.#file.seekSync(offset, whence);
  }
  tryLock(exclusive: boolean): Promise<boolean> {
    return this.#file.tryLock(exclusive);
  }
  tryLockSync(exclusive: boolean): boolean {
    return this.#file.tryLockSync(exclusive);
  }
  unlock(): Promise<void> {
    return this.#file.unlock();
  }
  unlockSync(): void {
    this.#file.unlockSync();
  }
  async stat(): Promise<FileInfo> {
    return toInfo(await this.#file.stat());
  }
  statSync(): FileInfo {
    return toInfo(this.#file.statSync());
  }
  close(): Promise<void> {
    this.#file.close();
    return Promise.resolve();
  }
  closeSync(): void {
    this.#file.close();
  }
}

async function syncDirectory(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

function syncDirectorySync(path: string): void {
  const dir = Deno.openSync(path, { read: true });
  try {
    dir.syncSync();
  } finally {
    dir.close();
  }
}

/** The real implementation, on Deno's runtime APIs. */
export const denoFileSystem: FileSystem = {
  open: async (path, options) => new DenoFileHandle(path, await Deno.open(path, options)),
  openSync: (path, options) => new DenoFileHandle(path, Deno.openSync(path, options)),
  readFile: (path) => Deno.readFile(path),
  readFileSync: (path) => Deno.readFileSync(path),
  rename: (from, to) => Deno.rename(from, to),
  renameSync: (from, to) => Deno.renameSync(from, to),
  remove: (path, options) => Deno.remove(path, options),
  removeSync: (path, options) => Deno.removeSync(path, options),
  mkdir: (path, options) => Deno.mkdir(path, options),
  mkdirSync: (path, options) => Deno.mkdirSync(path, options),
  stat: async (path) => toInfo(await Deno.stat(path)),
  statSync: (path) => toInfo(Deno.statSync(path)),
  lstat: async (path) => toInfo(await Deno.lstat(path)),
  lstatSync: (path) => toInfo(Deno.lstatSync(path)),
  link: (existing, newPath) => Deno.link(existing, newPath),
  linkSync: (existing, newPath) => Deno.linkSync(existing, newPath),
  chmod: (path, mode) => Deno.chmod(path, mode),
  chmodSync: (path, mode) => Deno.chmodSync(path, mode),
  realPath: (path) => Deno.realPath(path),
  realPathSync: (path) => Deno.realPathSync(path),
  readLink: (path) => Deno.readLink(path),
  readLinkSync: (path) => Deno.readLinkSync(path),
  readDir: async (path) => {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  },
  readDirSync: (path) => Array.from(Deno.readDirSync(path), (entry) => entry.name),
  syncDir: syncDirectory,
  syncDirSync: syncDirectorySync,
  addSignalListener: (signal, handler) => Deno.addSignalListener(signal, handler),
  removeSignalListener: (signal, handler) => Deno.removeSignalListener(signal, handler),
};

/**
 * The filesystem every module uses. Reassigned only by
 * {@linkcode setFileSystem}; read it at call time, never cache it.
 */
export let fs: FileSystem = denoFileSystem;

/**
 * Replaces the filesystem implementation, for tests and ports.
 *
 * @returns A function that restores the previous implementation.
 */
export function setFileSystem(replacement: FileSystem): () => void {
  const previous = fs;
  fs = replacement;
  return () => {
    fs = previous;
  };
}

/** True when `error` means "no such file or directory". */
export function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound;
}

/** True when `error` means "already exists". */
export function isAlreadyExists(error: unknown): boolean {
  return error instanceof Deno.errors.AlreadyExists;
}

// ---------------------------------------------------------------------------
// Fault injection

/** One fault to inject: fail the `nth` call of kind `op`. */
export interface Fault {
  /** Which kind of operation fails. */
  op: FsOp;
  /** The 1-based number of the matching call that fails first (default 1). */
  nth?: number;
  /** How many consecutive matching calls fail from then on (default 1). */
  times?: number;
  /** Only calls whose path contains this string (or matches this RegExp) count. */
  path?: string | RegExp;
  /** The error to throw; by default an {@linkcode InjectedFault}. */
  error?: () => Error;
}

/** The error a fault throws unless the fault names another one. */
export class InjectedFault extends Error {
  /** The kind of operation that failed. */
  readonly op: FsOp;
  /** The path the failing call was about. */
  readonly path: string;

  constructor(op: FsOp, path: string) {
    super(`injected fault: ${op} ${path}`);
    this.name = "InjectedFault";
    this.op = op;
    this.path = path;
  }
}

type Method = (...args: never[]) => unknown;

// Which fault kind each method belongs to; the first argument of a
// filesystem method is its path, a handle's path is its own.
const FS_METHOD_OPS: Record<string, FsOp> = {
  open: "open",
  readFile: "read",
  rename: "rename",
  remove: "remove",
  mkdir: "mkdir",
  stat: "stat",
  lstat: "stat",
  link: "link",
  chmod: "chmod",
  realPath: "realPath",
  readLink: "realPath",
  readDir: "readDir",
  syncDir: "dirFsync",
  addSignalListener: "signal",
};

const HANDLE_METHOD_OPS: Record<string, FsOp> = {
  write: "write",
  writeStream: "write",
  read: "read",
  sync: "fsync",
  dataSync: "fsync",
  truncate: "truncate",
  seek: "seek",
  tryLock: "lock",
  unlock: "unlock",
  stat: "stat",
  close: "close",
};

/** A recorder of calls, handed to {@linkcode injectFaults} callers. */
export interface FaultLog {
  /** Every call made while the faults were active, as `op path`. */
  readonly calls: string[];
  /** How many faults have fired. */
  readonly fired: number;
}

/**
 * Wraps `base` so that the calls described by `faults` fail.
 *
 * Both the async and the sync variant of a method count as one kind; a
 * closed handle's `close` still counts (a failing close leaves the file
 * descriptor closed, as on Linux).
 */
export function faultyFileSystem(
  base: FileSystem,
  faults: readonly Fault[],
): { fs: FileSystem; log: FaultLog } {
  const seen = new Map<Fault, number>();
  const calls: string[] = [];
  let fired = 0;

  const check = (op: FsOp, path: string) => {
    calls.push(`${op} ${path}`);
    for (const fault of faults) {
      if (fault.op !== op) continue;
      if (typeof fault.path === "string" && !path.includes(fault.path)) continue;
      if (fault.path instanceof RegExp && !fault.path.test(path)) continue;
      const count = (seen.get(fault) ?? 0) + 1;
      seen.set(fault, count);
      const first = fault.nth ?? 1;
      if (count >= first && count < first + (fault.times ?? 1)) {
        fired++;
        throw fault.error?.() ?? new InjectedFault(op, path);
      }
    }
  };

  const wrap = <T extends object>(
    target: T,
    ops: Record<string, FsOp>,
    pathOf: (args: unknown[]) => string,
  ): T =>
    new Proxy(target, {
      get(object, key, receiver) {
        const value = Reflect.get(object, key, receiver);
        if (typeof key !== "string" || typeof value !== "function") return value;
        // `dataSync` is an async method whose name happens to end in "Sync".
        const suffixed = key.endsWith("Sync") && !(key in ops);
        const isSync = suffixed || key === "addSignalListener";
        const op = ops[suffixed ? key.slice(0, -4) : key];
        const method = value as Method;
        const isOpen = target === base && (key === "open" || key === "openSync");
        const wrapHandle = (handle: unknown) => isOpen ? wrapFile(handle as FileHandle) : handle;
        if (op === undefined) return method.bind(object);
        if (isSync) {
          return (...args: never[]) => {
            check(op, pathOf(args));
            return wrapHandle(method.apply(object, args));
          };
        }
        return async (...args: never[]) => {
          check(op, pathOf(args));
          return wrapHandle(await method.apply(object, args));
        };
      },
    });

  const wrapFile = (handle: FileHandle): FileHandle =>
    wrap(handle, HANDLE_METHOD_OPS, () => handle.path);

  const wrapped = wrap(base, FS_METHOD_OPS, (args) => String(args[0]));
  return {
    fs: wrapped,
    log: {
      calls,
      get fired() {
        return fired;
      },
    },
  };
}

/**
 * Runs `fn` with `faults` injected into the filesystem seam, then restores
 * the previous implementation (also when `fn` throws).
 *
 * @example Fail the first fsync
 * ```ts ignore
 * await injectFaults([{ op: "fsync" }], async () => {
 *   await atomicWrite(path, "x"); // rejects with AtomicWriteError
 * });
 * ```
 */
export async function injectFaults<T>(
  faults: readonly Fault[],
  fn: (log: FaultLog) => T | Promise<T>,
): Promise<T> {
  const { fs: faulty, log } = faultyFileSystem(fs, faults);
  const restore = setFileSystem(faulty);
  try {
    return await fn(log);
  } finally {
    restore();
  }
}
