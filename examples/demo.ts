/**
 * The demo behind `npm start`: a job that keeps its state across runs.
 *
 * 1. It remembers every time it was started, in `demo-data/start-times.json`
 *    (a store: written atomically when the `with` callback finishes; with
 *    `lock: true`, runs started in parallel never lose each other's entries).
 * 2. It works through a list of 12 tasks kept in `demo-data/demo.tracker`
 *    (a progress tracker), doing at most 5 per run as if it were stopped
 *    halfway, so the next run carries on where this one left off.
 *
 * Run it twice and watch both grow. `npm start -- --fresh` starts over.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { open, openTracker } from "../mod.ts";

const dataDir = fileURLToPath(new URL("../demo-data/", import.meta.url));
if (Deno.args.includes("--fresh")) await Deno.remove(dataDir, { recursive: true }).catch(() => {});

// 1. Remember every start time.
{
  await using store = await open<string[]>(`${dataDir}start-times.json`, {
    default: [],
    lock: true,
  });
  await store.with((s) => {
    console.log(`Previous executions (${s.value.length}):`);
    for (const time of s.value) console.log(`  ${time}`);
    s.value.push(new Date().toISOString());
  });
  console.log(`This is run number ${store.value.length}.\n`);
}

// 2. A job that resumes: 12 tasks, at most 5 per run.
await using tasks = await openTracker<{ result: number }>(`${dataDir}demo.tracker`, {
  maxTries: 3,
});
tasks.addManyIfAbsent(
  Array.from({ length: 12 }, (_, i) => `task-${String(i + 1).padStart(2, "0")}`),
);
console.log(`Job: ${tasks.numDone()} of ${tasks.size} tasks were done before this run.`);

const stop = new AbortController();
let doneThisRun = 0;
const summary = await tasks.run(async (key) => {
  await new Promise((resolve) => setTimeout(resolve, 50)); // the "work"
  if (++doneThisRun === 5) stop.abort(); // pretend we were interrupted here
  console.log(`  did ${key}`);
  return { result: key.length * doneThisRun };
}, { concurrency: 1, signal: stop.signal });

console.log(
  `This run did ${summary.done}; now ${tasks.numDone()} of ${tasks.size} (${
    tasks.percentDone(0)
  }).`,
);
console.log(
  tasks.numDone() === tasks.size
    ? "The job is complete. `npm start -- --fresh` starts over."
    : "Run `npm start` again and the job carries on where it stopped.",
);
