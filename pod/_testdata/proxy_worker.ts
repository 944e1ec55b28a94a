/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Runs the steps the test sends, one message each, and reports the outcome.
import { AtomicStoreError, CorruptFileError, SharedPod, type SharedPodHandle } from "../mod.ts";

let pod: SharedPod | undefined;

const steps: Record<string, (pod: SharedPod) => unknown> = {
  assignObject: (pod) => (pod.set.foo = { bar: 0, baz: [] }, pod.get("foo")),
  assignNested: (pod) => (pod.set.foo.bar = 5, pod.get("foo")),
  push: (pod) => pod.set.foo.baz.push("fizz", "buzz"),
  splice: (pod) => pod.set.foo.baz.splice(0, 1),
  plusEquals: (pod) => (pod.set.foo.bar += 10, pod.get("foo")),
  deleteNested: (pod) => (delete pod.set.foo.bar, pod.get("foo")),
  call: (pod) => (pod.set("list", [3, 1, 2]), pod.set.list.sort(), pod.get("list")),
  missingPath: (pod) => (pod.set.nothing.here = 1),
  badValue: (pod) => (pod.set.foo.fn = 10n),
  arrayHole: (pod) => delete pod.set.list[0],
  badMethod: (pod) => pod.set.foo.toString(),
  nonStringKey: (pod) => pod.get(1 as unknown as string),
  readAll: (pod) => ({ keys: [...pod.keys()], size: pod.size, entries: [...pod] }),
  copy: (pod) => {
    const value = pod.get("foo") as { baz: string[] };
    value.baz.push("local only");
    return pod.get("foo");
  },
  big: (pod) => {
    pod.set.big = "x".repeat(300_000);
    return (pod.get("big") as string).length;
  },
  lockAndHold: async (pod) => {
    await pod.lock();
    return "locked";
  },
  unlock: (pod) => (pod.unlock(), "unlocked"),
  close: async (pod) => (await pod.close(), "closed"),
  afterClose: (pod) => pod.get("foo"),
  readDamaged: (pod) => {
    try {
      return pod.get("last");
    } catch (error) {
      return {
        corrupt: error instanceof CorruptFileError,
        storeError: error instanceof AtomicStoreError,
        name: (error as Error).name,
        path: (error as CorruptFileError).path,
        format: (error as CorruptFileError).format,
      };
    }
  },
};

self.onmessage = async (
  { data }: MessageEvent<{ handle?: SharedPodHandle; step?: string }>,
) => {
  if (data.handle) {
    try {
      pod = SharedPod.connect(data.handle);
      self.postMessage({ ok: true });
    } catch (error) {
      self.postMessage({
        ok: false,
        name: (error as Error).name,
        message: (error as Error).message,
      });
    }
    return;
  }
  try {
    self.postMessage({ ok: true, value: await steps[data.step!](pod!) });
  } catch (error) {
    self.postMessage({ ok: false, name: (error as Error).name, message: (error as Error).message });
  }
};
