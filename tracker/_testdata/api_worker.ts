/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Runs the steps the test sends, one message each, and reports the outcome.
import {
  DuplicateKeyError,
  SharedProgressTracker,
  type SharedTrackerHandle,
  UnknownKeyError,
} from "../mod.ts";

let tracker: SharedProgressTracker<{ title: string }> | undefined;

const steps: Record<string, (t: SharedProgressTracker<{ title: string }>) => unknown> = {
  add: (t) => (t.add("a"), t.addMany(["b", "c"]), t.addManyIfAbsent(["c", "d"])),
  duplicate: (t) => t.add("a"),
  duplicateMany: (t) => t.addMany(["x", "a"]),
  unknown: (t) => t.markDone("nope"),
  states: (t) => {
    t.markDone("a");
    t.abort("b");
    t.incrementTries("c");
    t.incrementTries("c");
    t.decrementTries("c");
    return {
      done: t.isDone("a"),
      aborted: t.isAborted("b"),
      tries: t.tries("c"),
      unknown: [t.isDone("nope"), t.tries("nope")],
      counts: [t.numDone(), t.numTried(), t.numAborted()],
      percent: [t.percentDone(), t.percentTried(1), t.percentAborted(0)],
      fractions: [t.fractionDone(), t.fractionTried(), t.fractionAborted()],
      gates: [t.shouldDo("a"), t.shouldDo("b"), t.shouldDo("b", { allowAborted: true })],
      adds: [t.shouldTryAdd("e"), t.shouldDoAdd("f"), t.tries("e")],
    };
  },
  setProxy: (t) => {
    t.set.a.title = "A";
    t.set("g", { title: "G" });
    return [t.get("a"), t.get("g")];
  },
  badState: (t) => (t.set.a._done = "yes"),
  badSet: (t) => t.set("h", { _tries: -1 } as never),
  todo: (t) => {
    t.addMany(Array.from({ length: 600 }, (_, i) => `many${i}`));
    return {
      keys: [...t.todoKeys()].length,
      values: [...t.todoValues()].length,
      entries: [...t.todoEntries()].slice(0, 2),
    };
  },
  breakOut: (t) => {
    for (const key of t.tryKeys()) return key; // ends the iteration early
  },
  close: async (t) => (await t.close(), "closed"),
};

self.onmessage = async (
  { data }: MessageEvent<{ handle?: SharedTrackerHandle; step?: string }>,
) => {
  if (data.handle) {
    tracker = SharedProgressTracker.connect(data.handle);
    self.postMessage({ ok: true });
    return;
  }
  try {
    self.postMessage({ ok: true, value: await steps[data.step!](tracker!) });
  } catch (error) {
    self.postMessage({
      ok: false,
      name: (error as Error).name,
      message: (error as Error).message,
      duplicate: error instanceof DuplicateKeyError,
      unknown: error instanceof UnknownKeyError,
      key: (error as { key?: string }).key,
    });
  }
};
