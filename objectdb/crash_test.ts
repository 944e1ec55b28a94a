import assert from "node:assert/strict";
import { crashRounds, READY } from "../_testing/child.ts";
import {
  checkout,
  Database,
  Persistent,
  PersistentDict,
  type PersistentStream,
  transaction,
} from "./mod.ts";

const CONTEXTS = 4;
const PIECE = 64 * 1024;
const PIECES = 18; // 1.125 MiB: a full chunk record, then a short one

type Item = Persistent & {
  n: number;
  sum: number;
  pad: string;
  seen: PersistentDict<number, number>;
  file?: PersistentStream;
  fileN?: number;
};

/** What a stored file written at step `n` of context `j` holds. */
const fileText = (j: number, n: number) => `${j}:${n};`.repeat(n % 592 === 111 ? 200_000 : 500);

// The child commits forever, in CONTEXTS contexts at once (so that group
// commits happen), each on its own item. Every commit keeps the invariants
// the parent checks: sum = 1 + ... + n, `seen` holds exactly 1..n. Some
// commits carry a padding or a stored file (one in sixteen of them over 1 MiB), so that
// kills also land in the middle of long appends.
const WRITER = `
import { checkout, Database, PersistentFile, transaction } from "$ROOT/objectdb/mod.ts";
const fileText = ${fileText.toString()};
const db = await Database.open(Deno.args[0]);
console.log("${READY}");
const slowFile = () => {
  let piece = 0;
  return new ReadableStream({
    async pull(controller) {
      await new Promise((resolve) => setTimeout(resolve, 3));
      controller.enqueue(new Uint8Array(${PIECE}).fill(piece % 251));
      if (++piece === ${PIECES}) controller.close();
    },
  });
};
// One more context stores a file from a slow stream, so that kills also land
// between the chunk records of a file whose transaction never gets written.
const slow = transaction.run(async () => {
  const item = db.root.get(-1);
  checkout(item);
  item.n++;
  item.file = new PersistentFile(slowFile());
  await transaction.commit();
});
await Promise.all(Array.from({ length: ${CONTEXTS} }, (_, j) =>
  transaction.run(async () => {
    for (;;) {
      await transaction.begin();
      const item = db.root.get(j);
      checkout(item);
      checkout(item.seen);
      const n = item.n + 1;
      item.n = n;
      item.sum += n;
      item.pad = n % 9 === 0 ? "x".repeat(20_000) : "";
      item.seen.set(n, n);
      if (n % 37 === 0) {
        item.file = new PersistentFile(new TextEncoder().encode(fileText(j, n)));
        item.fileN = n;
      }
      await transaction.commit();
    }
  })
));
`;

Deno.test("SIGKILL during commits: every reopen succeeds and shows a prefix of the commits", async () => {
  const path = `${await Deno.makeTempDir()}/crash.db`;
  {
    await using db = await Database.open(path);
    await transaction.run(async () => {
      const root = new PersistentDict<number, Item>();
      db.elect(root);
      checkout(root);
      for (let j = -1; j < CONTEXTS; j++) {
        const item = new Persistent() as Item;
        checkout(item);
        Object.assign(item, { n: 0, sum: 0, pad: "", seen: new PersistentDict() });
        root.set(j, item);
      }
      await transaction.commit();
    });
  }
  const last = Array<number>(CONTEXTS).fill(0);
  let progressed = 0;
  const report = await crashRounds({
    source: WRITER,
    rounds: 50,
    minDelay: 20,
    maxDelay: 200,
    args: () => [path],
    verify: async (round) => {
      await using db = await Database.open<PersistentDict<number, Item>>(path);
      let total = 0;
      for (let j = 0; j < CONTEXTS; j++) {
        const item = db.root!.get(j)!;
        const { n } = item;
        assert.ok(n >= last[j], `round ${round}: item ${j} went back from ${last[j]} to ${n}`);
        if (n > last[j]) progressed++;
        last[j] = n;
        total += n;
        assert.equal(item.sum, (n * (n + 1)) / 2, `round ${round}: item ${j}`);
        assert.deepEqual([...item.seen.keys()], Array.from({ length: n }, (_, i) => i + 1));
        assert.equal(item.pad.length, n % 9 === 0 && n > 0 ? 20_000 : 0);
        if (n >= 37) {
          assert.equal(item.fileN, n - (n % 37));
          let text = "";
          for await (const chunk of item.file!) text += new TextDecoder().decode(chunk);
          assert.equal(text, fileText(j, item.fileN!));
        }
      }
      const slow = db.root!.get(-1)!;
      if (slow.n > 0) {
        let piece = 0;
        for await (const chunk of slow.file!) {
          for (let at = 0; at < chunk.length; at += PIECE, piece++) {
            assert.ok(chunk.subarray(at, at + PIECE).every((byte) => byte === piece % 251));
          }
        }
        assert.equal(piece, PIECES);
      }
      // No transaction fails (the items are disjoint): the log holds exactly these.
      assert.equal(db.txCount, 1 + total + slow.n, `round ${round}`);
    },
  });
  assert.ok(report.killed >= 45, `most rounds were killed mid-run (${report.killed})`);
  assert.ok(progressed > 0, "the writers made progress");
});
