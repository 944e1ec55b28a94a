/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Runs a shared tracker's tasks with `run`; reports the summary and every
// (task, try) it was handed.
import { SharedProgressTracker, type SharedTrackerHandle } from "../mod.ts";

interface Job {
  handle: SharedTrackerHandle;
  name: string;
}

self.onmessage = async ({ data: { handle, name } }: MessageEvent<Job>) => {
  const tracker = SharedProgressTracker.connect<{ by: string }>(handle);
  const seen: string[] = [];
  const summary = await tracker.run(async (key, entry) => {
    seen.push(`${key}#${entry._tries}`);
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (Number(key.slice(1)) % 5 === 0 && entry._tries === 1) throw new Error("first try fails");
    return { by: name };
  }, { concurrency: 3 });
  await tracker.close();
  self.postMessage({ summary, seen });
};
