/**
 * A crawler that survives being stopped: it walks a (simulated) website
 * from its home page, discovering links as it goes, and keeps its
 * progress in a tracker in `demo-data/crawler.tracker`.
 *
 * ```sh
 * deno run -A examples/crawler.ts           # Ctrl-C (or kill it) at any time
 * deno run -A examples/crawler.ts           # ...and it continues where it stopped
 * deno run -A examples/crawler.ts --fresh   # start over
 * ```
 *
 * Fetches are simulated: each takes 5-40 ms, one in six fails (and is
 * retried by a later run, up to 3 tries in all; the home page always
 * answers), and some pages do not exist (the crawler gives up on them at
 * once). Every page records its
 * title and how many links it has, saved with its done mark.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { openTracker } from "../mod.ts";

const PAGES = 3000;
const path = fileURLToPath(new URL("../demo-data/crawler.tracker", import.meta.url));

interface Page {
  /** The page's title. */
  title: string;
  /** How many links the page has. */
  links: number;
}

/** A tiny deterministic hash, so that the website is the same on every run. */
function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

class NotFound extends Error {}

/** Fetches a page of the simulated website. */
async function fetchPage(url: string): Promise<{ title: string; links: string[] }> {
  await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 35));
  const id = Number(url.split("/").pop());
  if (id !== 0 && Math.random() < 1 / 6) throw new Error(`connection reset while fetching ${url}`);
  if (hash(url) % 40 === 0 && id !== 0) throw new NotFound(`${url}: 404 Not Found`);
  const seed = hash(`links of ${url}`);
  const count = 2 + (seed % 5);
  const links = Array.from(
    { length: count },
    (_, i) => `https://example.com/page/${hash(`${seed}/${i}`) % PAGES}`,
  );
  return { title: `Page ${id}`, links };
}

if (Deno.args.includes("--fresh")) {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

await using pages = await openTracker<Page>(path, { maxTries: 3 });
const seed = "https://example.com/page/0";
if (pages.addIfAbsent(seed)) {
  console.log(`Starting a new crawl from ${seed}.`);
} else {
  console.log(
    `Continuing: ${pages.numDone()} of ${pages.size} known pages done (${pages.percentDone()}), ` +
      `${pages.numAborted()} given up on.`,
  );
}

const summary = await pages.run(async (url) => {
  let page;
  try {
    page = await fetchPage(url);
  } catch (error) {
    if (!(error instanceof NotFound)) throw error; // kept in `_error`, retried by a later run
    pages.abort(url); // there is nothing to retry
    return;
  }
  pages.addManyIfAbsent(page.links); // discovered pages are crawled in this same run
  return { title: page.title, links: page.links.length }; // saved with the done mark
}, { concurrency: 16 });

console.log(
  `This run: ${summary.done} pages done, ${summary.failed} failed, ${summary.aborted} not found, ` +
    `in ${(summary.elapsed / 1000).toFixed(1)} s.`,
);
console.log(
  `In all: ${pages.numDone()} of ${pages.size} pages done (${pages.percentDone()}), ` +
    `${pages.numAborted()} not found.`,
);
if (summary.interrupted) {
  console.log(`Interrupted. Run it again to continue (${summary.remaining} pages to go).`);
} else if (summary.remaining > 0) {
  console.log(
    `Pages left to try (failed ones get ${pages.maxTries} tries): ${summary.remaining}. Run it again.`,
  );
} else {
  const failedForGood = pages.size - pages.numDone() - pages.numAborted();
  console.log(
    failedForGood > 0
      ? `Finished; ${failedForGood} pages failed ${pages.maxTries} times and were left alone.`
      : "Finished: every page that exists was crawled. Run with --fresh to start over.",
  );
}
console.log(`The progress is kept in ${path}.`);
