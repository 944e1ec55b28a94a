/**
 * The demo behind `npm start`: a job that keeps its state across runs.
 *
 * Each run records its start time and bumps a run counter in `demo-data/`,
 * with every write atomic and every read-modify-write locked, so runs
 * started in parallel never lose each other's updates. Run it twice and
 * watch the state grow.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { atomicUpdateJson } from "../mod.ts";

const dataDir = fileURLToPath(new URL("../demo-data/", import.meta.url));
const statePath = `${dataDir}runs.json`;

interface RunLog {
  runs: number;
  startTimes: string[];
}

const started = new Date().toISOString();
const state = await atomicUpdateJson<RunLog>(statePath, (log) => {
  log.runs += 1;
  log.startTimes.push(started);
  return log;
}, { defaultData: { runs: 0, startTimes: [] } });

console.log(`State kept in ${statePath}`);
console.log(`This is run number ${state.runs}. Start times so far:`);
for (const time of state.startTimes) console.log(`  ${time}`);
console.log("Run `npm start` again and the list grows.");
