/**
 * The demo behind `npm start`: a program that remembers every time it was
 * started.
 *
 * The list lives in `demo-data/start-times.json`, kept by a store: the
 * file is written atomically when the `with` callback finishes, and with
 * `lock: true` runs started in parallel never lose each other's entries.
 * Run it twice and watch the list grow.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { open } from "../mod.ts";

const path = fileURLToPath(new URL("../demo-data/start-times.json", import.meta.url));

await using store = await open<string[]>(path, { default: [], lock: true });
await store.with((s) => {
  console.log(`Previous executions (${s.value.length}):`);
  for (const time of s.value) console.log(`  ${time}`);
  s.value.push(new Date().toISOString());
});

console.log(`This was run number ${store.value.length}, recorded in ${path}.`);
console.log("Run `npm start` again and the list grows.");
