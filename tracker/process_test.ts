import assert from "node:assert/strict";
import { tempDir } from "../_testing/fs.ts";
import {
  crashRounds,
  READY,
  runConcurrently,
  spawnDeno,
  writeChildScript,
} from "../_testing/child.ts";
import { openTracker } from "./mod.ts";

const TASKS = 10_000;
const MAX_TRIES = 10;

// A job of 10,000 tasks: each task records one completion in its entry
// (returned from the task, so it is saved with the done mark); every
// tenth task fails on its first try. The child runs until nothing is
// left to try, unless the parent kills it first.
const JOB = `
import { openTracker } from "$ROOT/tracker/mod.ts";
const tracker = await openTracker(Deno.args[0], { maxTries: ${MAX_TRIES}, syncAt: 250, fileSize: 500 });
if (tracker.size === 0) {
  tracker.addMany(Array.from({ length: ${TASKS} }, (_, i) => "t" + i));
  await tracker.sync();
}
console.log("${READY}");
for (let round = 0; round < 5; round++) {
  const summary = await tracker.run(async (key, entry) => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (Number(key.slice(1)) % 10 === 0 && entry._tries === 1) throw new Error("first try fails");
    return { completions: (entry.completions ?? 0) + 1 };
  }, { concurrency: 8, progress: false });
  if (summary.remaining === 0) break;
}
await tracker.close();
`;

interface Job {
  completions?: number;
}

/** Checks what is on disk; returns the number of tasks done. */
async function verifyJob(dir: string, label: string): Promise<number> {
  await using tracker = await openTracker<Job>(dir, { maxTries: MAX_TRIES });
  assert.equal(tracker.size, TASKS, label);
  let done = 0, tried = 0;
  for (const [key, entry] of tracker) {
    const completions = entry.completions ?? 0;
    assert.ok(completions <= 1, `${label}: ${key} completed ${completions} times`);
    assert.equal(entry._done, completions === 1, `${label}: ${key} done iff completed`);
    assert.ok(entry._tries <= MAX_TRIES, `${label}: ${key} tried ${entry._tries} times`);
    if (entry._done) done++;
    if (entry._tries > 0) tried++;
  }
  assert.equal(tracker.numDone(), done, label);
  assert.equal(tracker.numTried(), tried, label);
  return done;
}

Deno.test("a 10,000-task job killed 20 times at random finishes with every task done exactly once", async () => {
  const dir = await tempDir();
  const progress: number[] = [];
  const report = await crashRounds({
    source: JOB,
    rounds: 20,
    args: () => [dir],
    minDelay: 20,
    maxDelay: 300,
    verify: async (round) => {
      progress.push(await verifyJob(dir, `round ${round}`));
    },
  });
  assert.equal(report.killed + report.finished, 20);
  // Then a run that is left alone finishes the job.
  await runConcurrently(JOB, 1, () => [dir]);
  assert.equal(await verifyJob(dir, "final"), TASKS);
  await using tracker = await openTracker<Job>(dir);
  assert.equal(tracker.percentDone(), "100.00 %");
  console.log(`killed ${report.killed} times; done after each round: ${progress.join(", ")}`);
});

async function lines(child: Deno.ChildProcess, onLine: (line: string) => void): Promise<void> {
  let buffer = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      onLine(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  }
}

const INTERRUPTED = `
import { openTracker } from "$ROOT/tracker/mod.ts";
const [dir, pause] = Deno.args;
const tracker = await openTracker(dir, { syncAt: 5 });
tracker.addManyIfAbsent(Array.from({ length: 200 }, (_, i) => "t" + i));
await tracker.sync();
// The test's own view of the signals (the run has its own listener).
Deno.addSignalListener("SIGINT", () => console.log("SIGINT"));
let started = 0;
const summary = await tracker.run(async () => {
  if (++started === 4) console.log("${READY}"); // all four slots busy
  await new Promise((resolve) => setTimeout(resolve, Number(pause)));
  return { finished: true };
}, { concurrency: 4, progress: true });
console.log(JSON.stringify(summary));
await tracker.close();
Deno.exit(0);
`;

Deno.test("SIGINT during run: no new tasks, the ones in flight finish, the tracker syncs", async () => {
  const dir = await tempDir();
  using script = writeChildScript(INTERRUPTED);
  const child = spawnDeno(script.path, [dir, "30"]);
  const stderr = new Response(child.stderr).text();
  let summary: { done: number; interrupted: boolean; remaining: number } | undefined;
  await lines(child, (line) => {
    if (line === READY) child.kill("SIGINT");
    else if (line.startsWith("{")) summary = JSON.parse(line);
  });
  const status = await child.status;
  const err = await stderr;
  assert.equal(status.code, 0, err);
  assert.ok(summary, "the run resolved");
  assert.equal(summary.interrupted, true);
  assert.ok(summary.done >= 4 && summary.done < 200, `${summary.done} done`);
  assert.equal(summary.remaining, 200 - summary.done);
  assert.match(err, /\d+\/200 done \(\d+\.\d %\) · [\d.]+\/s · ETA \S+ · 0 failed/);
  await using tracker = await openTracker<{ finished: boolean }>(dir);
  assert.equal(tracker.numDone(), summary.done);
  // Every task that was tried was finished and recorded.
  assert.equal(tracker.numTried(), summary.done);
  for (const entry of tracker.values()) assert.equal(entry._done, entry.finished === true);
});

Deno.test("a second SIGINT during run exits at once, after syncing", async () => {
  const dir = await tempDir();
  using script = writeChildScript(INTERRUPTED);
  const child = spawnDeno(script.path, [dir, "60000"]); // tasks that would take a minute
  const stderr = new Response(child.stderr).text();
  const seen: string[] = [];
  await lines(child, (line) => {
    seen.push(line);
    if (line === READY) child.kill("SIGINT");
    else if (line === "SIGINT" && seen.filter((l) => l === "SIGINT").length === 1) {
      child.kill("SIGINT");
    }
  });
  const status = await child.status;
  await stderr;
  assert.equal(status.code, 130);
  assert.ok(!seen.some((line) => line.startsWith("{")), "the run did not get to resolve");
  // The pods' handler synced before exiting: the tries counted are on disk.
  await using tracker = await openTracker(dir);
  assert.equal(tracker.numDone(), 0);
  assert.equal(tracker.numTried(), 4);
});
