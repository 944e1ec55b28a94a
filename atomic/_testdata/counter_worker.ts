/// <reference lib="deno.worker" />
// Test worker: increments the JSON counter named in the message 50 times.
import { atomicUpdateJson } from "../mod.ts";

self.onmessage = async (event: MessageEvent<string>) => {
  for (let i = 0; i < 50; i++) {
    await atomicUpdateJson(event.data, (n) => n + 1, { defaultData: 0 });
  }
  self.postMessage("done");
};
