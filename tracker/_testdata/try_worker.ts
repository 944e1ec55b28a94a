/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Works through a shared tracker with tryEntries, discovering new tasks on
// the way; reports every (task, try) it was handed.
import { SharedProgressTracker, type SharedTrackerHandle } from "../mod.ts";

interface Job {
  handle: SharedTrackerHandle;
  name: string;
  discover: number;
}

self.onmessage = async ({ data: { handle, name, discover } }: MessageEvent<Job>) => {
  const tracker = SharedProgressTracker.connect<{ by: string }>(handle);
  const seen: string[] = [];
  for (const [key, entry] of tracker.tryEntries()) {
    seen.push(`${key}#${entry._tries}`);
    const n = Number(key.slice(1));
    if (n < discover) tracker.addIfAbsent(`t${n + discover}`);
    if (n % 7 === 0 && entry._tries === 1) continue; // the first try of these fails
    tracker.set[key].by = name;
    tracker.markDone(key);
  }
  await tracker.close();
  self.postMessage(seen);
};
