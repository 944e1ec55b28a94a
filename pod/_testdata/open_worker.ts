/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Tries to open, from a Worker, a pod that the main thread holds open.
import { openPod } from "../mod.ts";

self.onmessage = async (event: MessageEvent<string>) => {
  try {
    const pod = await openPod(event.data, { lockTimeout: 50 });
    await pod.close();
    self.postMessage({ name: "opened", path: "" });
  } catch (error) {
    self.postMessage({ name: (error as Error).name, path: (error as { path?: string }).path });
  }
};
