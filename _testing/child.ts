/**
 * Test helpers that run real `deno` child processes: crash rounds (SIGKILL
 * at a random moment) and concurrent workers.
 *
 * Child scripts are written to a temporary folder inside the repository, so
 * that Deno finds `deno.json` and its import map from them. In a script's
 * source, `$ROOT/` stands for the repository root as a file URL, for
 * imports such as `import { atomicWrite } from "$ROOT/atomic/mod.ts";`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The repository root, as a file URL ending in `/`. */
export const ROOT: URL = new URL("../", import.meta.url);

/** The marker a child prints on stdout when it is ready to be killed. */
export const READY = "READY";

/** A child script written into the repository; remove it with `using`/`dispose`. */
export interface ChildScript extends Disposable {
  /** The script's absolute path. */
  readonly path: string;
}

/** Writes `source` to a fresh file under `<repo>/.tmp/`, with `$ROOT/` resolved. */
export function writeChildScript(source: string): ChildScript {
  const base = fileURLToPath(new URL(".tmp/", ROOT));
  Deno.mkdirSync(base, { recursive: true });
  const dir = Deno.makeTempDirSync({ dir: base, prefix: "child-" });
  const path = `${dir}/child.ts`;
  Deno.writeTextFileSync(path, source.replaceAll("$ROOT/", ROOT.href));
  return {
    path,
    [Symbol.dispose]() {
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

/** Starts `deno run -A script ...args` with piped stdout and stderr. */
export function spawnDeno(script: string, args: string[] = []): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", script, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Runs `count` copies of a script concurrently; throws if any fails. */
export async function runConcurrently(
  source: string,
  count: number,
  args: (index: number) => string[] = () => [],
): Promise<string[]> {
  using script = writeChildScript(source);
  const children = Array.from({ length: count }, (_, index) => spawnDeno(script.path, args(index)));
  const results = await Promise.all(children.map(async (child) => {
    const [status, out, err] = await Promise.all([
      child.status,
      readAll(child.stdout),
      readAll(child.stderr),
    ]);
    return { status, out, err };
  }));
  const failed = results.find((result) => !result.status.success);
  if (failed) throw new Error(`a child failed (code ${failed.status.code}):\n${failed.err}`);
  return results.map((result) => result.out);
}

/** Options of {@linkcode crashRounds}. */
export interface CrashRoundsOptions {
  /** The child's source; it should print {@linkcode READY} once set up, then work until killed. */
  source: string;
  /** How many times to start and kill the child. */
  rounds: number;
  /** Arguments for the child in a given round. */
  args?: (round: number) => string[];
  /** The kill comes a random time in [minDelay, maxDelay] ms after READY. Defaults 0 and 200. */
  minDelay?: number;
  maxDelay?: number;
  /** Checks what is on disk after each round; throw to fail. */
  verify: (round: number) => void | Promise<void>;
}

/** What {@linkcode crashRounds} observed. */
export interface CrashRoundsReport {
  /** Rounds in which the child was killed while running. */
  killed: number;
  /** Rounds in which the child finished before the kill. */
  finished: number;
}

/**
 * Starts the child, waits for READY, kills it with SIGKILL after a random
 * delay, then calls `verify`; `rounds` times.
 */
export async function crashRounds(options: CrashRoundsOptions): Promise<CrashRoundsReport> {
  const { minDelay = 0, maxDelay = 200 } = options;
  using script = writeChildScript(options.source);
  const report = { killed: 0, finished: 0 };
  for (let round = 0; round < options.rounds; round++) {
    const child = spawnDeno(script.path, options.args?.(round) ?? []);
    const stderr = readAll(child.stderr);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes(READY)) {
      const { value, done } = await reader.read();
      if (done) {
        const status = await child.status;
        throw new Error(`child exited (code ${status.code}) before ${READY}:\n${await stderr}`);
      }
      seen += value;
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    const drained = (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })();
    await new Promise((resolve) =>
      setTimeout(resolve, minDelay + Math.random() * (maxDelay - minDelay))
    );
    try {
      child.kill("SIGKILL");
    } catch { /* it already exited */ }
    const status = await child.status;
    await drained;
    const err = await stderr;
    if (status.signal === "SIGKILL") report.killed++;
    else if (status.success) report.finished++;
    else {throw new Error(
        `child failed on its own (code ${status.code}) in round ${round}:\n${err}`,
      );}
    await options.verify(round);
  }
  return report;
}
