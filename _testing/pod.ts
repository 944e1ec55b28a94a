/**
 * Helpers for tests of pods and trackers: shard file names and contents,
 * and counting which shard files are read.
 *
 * @module
 */

import { basename, join } from "node:path";
import { type FileSystem, fs, setFileSystem } from "../_internal/fs.ts";

/** The shard file names in a pod directory, sorted. */
export function shardFiles(dir: string): string[] {
  return Array.from(Deno.readDirSync(dir), (entry) => entry.name)
    .filter((name) => name.startsWith("shard-")).sort();
}

/** The text of the file `name` in `dir`. */
export function readText(dir: string, name: string): string {
  return Deno.readTextFileSync(join(dir, name));
}

/** The file name of shard `index`: `shard-000042.json`, or with another extension. */
export function shardName(index: number, ext = "json"): string {
  return `shard-${String(index).padStart(6, "0")}.${ext}`;
}

/** What {@linkcode countShardReads} records, until `restore()`. */
export interface ShardReads {
  /** Shard files read whole (their records), in order, repeats included. */
  readonly whole: string[];
  /** Shard files opened for reading only (the header of a lazy open). */
  readonly opened: string[];
  /** Puts the previous filesystem back. */
  restore(): void;
  /** The number of distinct shard files read whole so far. */
  shards(): number;
  /** Forgets what was recorded. */
  reset(): void;
}

/** Counts how shard files are read, through the filesystem seam. */
export function countShardReads(): ShardReads {
  const base = fs;
  const whole: string[] = [];
  const opened: string[] = [];
  const isShard = (path: string) => basename(path).startsWith("shard-");
  const counting: FileSystem = {
    ...base,
    readFile: (path) => {
      if (isShard(path)) whole.push(basename(path));
      return base.readFile(path);
    },
    readFileSync: (path) => {
      if (isShard(path)) whole.push(basename(path));
      return base.readFileSync(path);
    },
    open: (path, options) => {
      if (isShard(path) && options.read && !options.write) opened.push(basename(path));
      return base.open(path, options);
    },
    openSync: (path, options) => {
      if (isShard(path) && options.read && !options.write) opened.push(basename(path));
      return base.openSync(path, options);
    },
  };
  return {
    whole,
    opened,
    restore: setFileSystem(counting),
    shards: () => new Set(whole).size,
    reset() {
      whole.length = 0;
      opened.length = 0;
    },
  };
}
