/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Increments one key `times` times, each read-modify-write under the lock.
import { SharedPod, type SharedPodHandle } from "../mod.ts";

interface Job {
  handle: SharedPodHandle;
  times: number;
}

self.onmessage = async ({ data: { handle, times } }: MessageEvent<Job>) => {
  const pod = SharedPod.connect<number>(handle);
  for (let i = 0; i < times; i++) {
    await pod.withLock(() => {
      pod.set.count += 1;
    });
  }
  await pod.close();
  self.postMessage("done");
};
