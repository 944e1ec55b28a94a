import assert from "node:assert/strict";
import { runConcurrently } from "../_testing/child.ts";
import { checkout, Database, Persistent, PersistentDict, transaction } from "./mod.ts";

class Counter extends Persistent {
  n = 0;
}
Database.register(Counter);

const PROCESSES = 4;
const TRANSACTIONS = 200;

// Each worker runs TRANSACTIONS transactions that increment a counter: its
// own (distinct) or counter 0 (same), and reports what happened to them.
const WORKER = `
import { checkout, ConflictError, Database, Persistent, transaction } from "$ROOT/objectdb/mod.ts";
class Counter extends Persistent {
  n = 0;
}
Database.register(Counter);
const [path, mode, index] = Deno.args;
const db = await Database.open(path);
// Start together, so that the workers overlap.
await Deno.writeTextFile(\`\${path}.ready.\${index}\`, "");
while (Array.from(Deno.readDirSync(Deno.args[3])).filter((entry) => entry.name.includes(".ready.")).length < ${PROCESSES}) {
  await new Promise((resolve) => setTimeout(resolve, 5));
}
let committed = 0;
let conflicts = 0;
for (let i = 0; i < ${TRANSACTIONS}; i++) {
  await transaction.begin();
  const counter = db.root.get(mode === "distinct" ? Number(index) : 0);
  checkout(counter);
  counter.n++;
  // Another worker may commit meanwhile.
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
  try {
    await transaction.commit();
    committed++;
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    conflicts++;
    transaction.abort();
  }
}
await db.close();
console.log(JSON.stringify({ committed, conflicts }));
`;

async function counters(): Promise<string> {
  const path = `${await Deno.makeTempDir()}/counters.db`;
  await using db = await Database.open(path);
  await transaction.run(async () => {
    const root = new PersistentDict<number, Counter>();
    db.elect(root);
    checkout(root);
    for (let i = 0; i < PROCESSES; i++) root.set(i, new Counter());
    await transaction.commit();
  });
  return path;
}

async function run(path: string, mode: "distinct" | "same") {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const outputs = await runConcurrently(WORKER, PROCESSES, (i) => [path, mode, String(i), dir]);
  const reports = outputs.map((out) => JSON.parse(out) as { committed: number; conflicts: number });
  await using db = await Database.open<PersistentDict<number, Counter>>(path);
  return { reports, db, values: [...db.root!.values()].map((counter) => counter.n) };
}

Deno.test(`${PROCESSES} processes x ${TRANSACTIONS} transactions on distinct objects: all committed, none lost`, async () => {
  const path = await counters();
  const { reports, db, values } = await run(path, "distinct");
  assert.deepEqual(reports, Array(PROCESSES).fill({ committed: TRANSACTIONS, conflicts: 0 }));
  assert.deepEqual(values, Array(PROCESSES).fill(TRANSACTIONS));
  assert.equal(db.txCount, 1 + PROCESSES * TRANSACTIONS);
});

Deno.test(`${PROCESSES} processes x ${TRANSACTIONS} transactions on one object: each applied or a conflict`, async () => {
  const path = await counters();
  const { reports, db, values } = await run(path, "same");
  const committed = reports.reduce((sum, report) => sum + report.committed, 0);
  const conflicts = reports.reduce((sum, report) => sum + report.conflicts, 0);
  assert.equal(committed + conflicts, PROCESSES * TRANSACTIONS);
  assert.equal(values[0], committed, "the counter is the number of successful commits");
  assert.deepEqual(values.slice(1), Array(PROCESSES - 1).fill(0));
  assert.equal(db.txCount, 1 + PROCESSES * TRANSACTIONS, "failed transactions are recorded too");
  console.log(`${committed} commits, ${conflicts} conflicts`);
});
