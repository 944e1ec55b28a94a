import assert from "node:assert/strict";
import { crc32c } from "./_crc32c.ts";
import {
  encodeRecord,
  FILE_MAGIC,
  KIND_FAILED,
  type LogRecord,
  RECORD_OVERHEAD,
  scanLog,
} from "./_log.ts";
import {
  checkout,
  CorruptFileError,
  Database,
  Persistent,
  PersistentFile,
  type PersistentStream,
  transaction,
} from "./mod.ts";

const ascii = (text: string) => new TextEncoder().encode(text);

Deno.test("CRC-32C: known vectors", () => {
  // RFC 3720 (iSCSI), appendix B.4, and the usual check value.
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(ascii("a")), 0xc1d04330);
  assert.equal(crc32c(ascii("The quick brown fox jumps over the lazy dog")), 0x22620404);
});

Deno.test("CRC-32C: the slicing path agrees with byte-at-a-time, also in pieces", () => {
  const bitwise = (data: Uint8Array) => {
    let crc = 0xffffffff;
    for (const byte of data) {
      crc ^= byte;
      for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
    return ~crc >>> 0;
  };
  const data = crypto.getRandomValues(new Uint8Array(1000));
  for (const length of [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 999, 1000]) {
    const slice = data.subarray(0, length);
    assert.equal(crc32c(slice), bitwise(slice), `length ${length}`);
    const cut = length >> 1;
    assert.equal(crc32c(slice.subarray(cut), crc32c(slice.subarray(0, cut))), bitwise(slice));
  }
});

Deno.test("record framing: header, body, checksums, commit marker", () => {
  const record = encodeRecord(KIND_FAILED, ascii("xyz"));
  assert.equal(record.length, RECORD_OVERHEAD + 3);
  assert.deepEqual([...record.subarray(0, 4)], [..."ODBR"].map((c) => c.charCodeAt(0)));
  assert.equal(record[4], KIND_FAILED);
  const view = new DataView(record.buffer);
  assert.equal(view.getUint32(8, true), 3);
  assert.equal(view.getUint32(12, true), crc32c(record.subarray(0, 12)));
  assert.equal(view.getUint32(19, true), crc32c(ascii("xyz")));
  assert.deepEqual([...record.subarray(23)], [..."CMT!"].map((c) => c.charCodeAt(0)));
});

type Thing = Persistent & { n?: number; file?: PersistentFile | PersistentStream };

/** Writes a database of `count` transactions (one with a stored file); returns its bytes and record ends. */
async function sampleLog(
  count: number,
): Promise<{ path: string; bytes: Uint8Array; ends: number[]; starts: number[] }> {
  const path = `${await Deno.makeTempDir()}/sample.db`;
  await using db = await Database.open<Thing>(path);
  await transaction.run(async () => {
    const root = new Persistent() as Thing;
    db.elect(root);
    await transaction.commit();
    for (let n = 1; n < count; n++) {
      checkout(root);
      root.n = n;
      if (n === 2) root.file = new PersistentFile(ascii("stored bytes"));
      await transaction.commit();
    }
  });
  const bytes = await Deno.readFile(path);
  const records: LogRecord[] = [];
  const readAt = (buffer: Uint8Array, position: number) => {
    const chunk = bytes.subarray(position, position + buffer.length);
    buffer.set(chunk);
    return chunk.length;
  };
  const scan = scanLog(readAt, FILE_MAGIC.length, bytes.length);
  for (let step = scan.next(); !step.done; step = scan.next()) records.push({ ...step.value });
  return {
    path,
    bytes,
    starts: records.map((record) => record.offset),
    ends: records.map((record) => record.end),
  };
}

Deno.test("a truncated log: every cut opens, shows a prefix, and loses only the torn tail", async () => {
  const { path, bytes, ends } = await sampleLog(5);
  assert.equal(ends.length, 6); // 5 transactions and one chunk of a stored file
  const transactionsUpTo = (offset: number) =>
    ends.filter((end, index) => end <= offset && index !== 2).length; // record 2 is the chunk
  for (let cut = 0; cut < bytes.length; cut++) {
    await Deno.writeFile(path, bytes.subarray(0, cut));
    await using db = await Database.open<Thing>(path);
    const complete = cut < FILE_MAGIC.length
      ? FILE_MAGIC.length
      : Math.max(FILE_MAGIC.length, ...ends.filter((end) => end <= cut));
    assert.equal((await Deno.stat(path)).size, complete, `cut at ${cut}`);
    const count = transactionsUpTo(cut);
    assert.equal(db.txCount, count, `cut at ${cut}`);
    if (count > 0) assert.equal(db.root?.n, count > 1 ? count - 1 : undefined);
    else assert.equal(db.root, null);
  }
});

Deno.test("a bit flip anywhere is reported with the damaged record's offset, and nothing is changed", async () => {
  const { path, bytes, starts, ends } = await sampleLog(4);
  for (let at = 0; at < bytes.length; at++) {
    const damaged = bytes.slice();
    damaged[at] ^= 1 << (at % 8);
    await Deno.writeFile(path, damaged);
    await assert.rejects(Database.open(path), (error: unknown) => {
      assert.ok(error instanceof CorruptFileError, `flip at ${at}: ${error}`);
      const record = starts.findIndex((start, index) => start <= at && at < ends[index]);
      assert.equal(error.offset, record === -1 ? 0 : starts[record], `flip at ${at}`);
      assert.equal(error.path, path);
      assert.match(error.message, /left untouched/);
      return true;
    });
    assert.deepEqual(await Deno.readFile(path), damaged, `flip at ${at}: the file is unchanged`);
  }
});

Deno.test("a zero-filled tail is torn; a zeroed record followed by data is damage", async () => {
  const { path, bytes, starts } = await sampleLog(3);
  await Deno.writeFile(path, new Uint8Array([...bytes, ...new Uint8Array(100)]));
  {
    await using db = await Database.open<Thing>(path);
    assert.equal(db.txCount, 3);
    assert.equal((await Deno.stat(path)).size, bytes.length);
  }
  const damaged = bytes.slice();
  damaged.fill(0, starts[1], starts[1] + 16);
  await Deno.writeFile(path, damaged);
  await assert.rejects(
    Database.open(path),
    (error: unknown) => error instanceof CorruptFileError && error.offset === starts[1],
  );
});

Deno.test("files that are not databases are refused and left alone", async () => {
  const dir = await Deno.makeTempDir();
  for (const content of ['{"json": true}', "ATOMIC-OBJECTDB\x02 another version", "AX"]) {
    const path = `${dir}/not.db`;
    await Deno.writeTextFile(path, content);
    await assert.rejects(
      Database.open(path),
      (error: unknown) => error instanceof CorruptFileError && error.offset === 0,
    );
    assert.equal(await Deno.readTextFile(path), content);
  }
  // An empty file, or a header torn while being created, is a new database.
  for (const content of [new Uint8Array(0), FILE_MAGIC.subarray(0, 7), new Uint8Array(5)]) {
    const path = `${dir}/new.db`;
    await Deno.writeFile(path, content);
    await using db = await Database.open(path);
    assert.equal(db.txCount, 0);
    assert.deepEqual(await Deno.readFile(path), FILE_MAGIC);
  }
});

Deno.test("damage appended by another writer is found when catching up", async () => {
  const { path } = await sampleLog(2);
  await using db = await Database.open<Thing>(path);
  const garbage = encodeRecord(KIND_FAILED, new Uint8Array(0));
  garbage[20] ^= 0xff; // break the commit marker
  await Deno.writeFile(path, new Uint8Array([...garbage, ...garbage]), { append: true });
  await assert.rejects(transaction.begin(), CorruptFileError);
  await transaction.run(async () => {
    checkout(db.root!);
    db.root!.n = 10;
    await assert.rejects(transaction.commit(), /corrupt/);
    transaction.abort();
  });
});
