/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// The squaring example: each Worker squares the keys that fall to it.
import { SharedPod, type SharedPodHandle } from "../mod.ts";

interface Job {
  handle: SharedPodHandle;
  index: number;
  count: number;
}

self.onmessage = async ({ data: { handle, index, count } }: MessageEvent<Job>) => {
  const pod = SharedPod.connect<number | null>(handle);
  for (const key of pod.keys()) {
    if (Number(key) % count === index) pod.set[key] = Number(key) ** 2;
  }
  await pod.close();
  self.postMessage("done");
};
