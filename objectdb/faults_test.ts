import assert from "node:assert/strict";
import {
  type Fault,
  type FileHandle,
  type FileSystem,
  fs,
  InjectedFault,
  injectFaults,
  setFileSystem,
} from "../_internal/fs.ts";
import {
  checkout,
  Database,
  FileLockError,
  Persistent,
  PersistentDict,
  PersistentFile,
  PersistentStream,
  transaction,
  TransactionFailedError,
} from "./mod.ts";

type Thing = Persistent & { n?: number; file?: PersistentFile | PersistentStream };

/** A database at a fresh path whose root has `n = 0`. */
async function prepared(): Promise<string> {
  const path = `${await Deno.makeTempDir()}/faults.db`;
  await using db = await Database.open<Thing>(path);
  await transaction.run(async () => {
    const root = new Persistent() as Thing;
    db.elect(root);
    checkout(root);
    root.n = 0;
    await transaction.commit();
  });
  return path;
}

const failedWith = (cause: (error: unknown) => boolean) => (error: unknown) =>
  error instanceof TransactionFailedError && cause(error.cause);

// A failed append or fsync: the commit fails, the log is as before, other
// instances see nothing, and after abort() the same database works.
for (const op of ["write", "fsync"] as const) {
  Deno.test(`a failing ${op} while appending: nothing is half-visible, the database goes on`, async () => {
    const path = await prepared();
    const before = await Deno.readFile(path);
    await using observer = await Database.open<Thing>(path);
    await injectFaults([{ op, path: "faults.db" }], async (log) => {
      await using db = await Database.open<Thing>(path);
      await transaction.run(async () => {
        const root = db.root!;
        checkout(root);
        root.n = 1;
        await assert.rejects(
          transaction.commit(),
          failedWith((cause) => cause instanceof InjectedFault),
        );
        assert.equal(log.fired, 1);
        assert.deepEqual(await Deno.readFile(path), before, "the log is as it was");
        assert.equal(root.n, 0, "the object shows the committed state");
        assert.equal(db.txCount, 1);
        assert.throws(() => checkout(root), TransactionFailedError);
        await assert.rejects(transaction.commit(), TransactionFailedError);

        await transaction.begin(); // like abort(), and catches up
        assert.equal(observer.root!.n, 0);
        assert.equal(observer.txCount, 1);

        checkout(root);
        root.n = 2;
        await transaction.commit();
        assert.equal(db.txCount, 2);
      });
    });
    await transaction.begin();
    assert.equal(observer.root!.n, 2);
    await using reopened = await Database.open<Thing>(path);
    assert.equal(reopened.root!.n, 2);
    assert.equal(reopened.txCount, 2);
  });
}

Deno.test("a failing fsync fails the whole batch of concurrent commits, and none shows", async () => {
  const path = `${await Deno.makeTempDir()}/batch.db`;
  await injectFaults([{ op: "fsync", nth: 3 }], async (log) => {
    // fsync 1 creates the file, 2 commits the counters, 3 is the batch.
    await using db = await Database.open<PersistentDict<number, Thing>>(path);
    const root = new PersistentDict<number, Thing>();
    await transaction.run(async () => {
      db.elect(root);
      checkout(root);
      for (let i = 0; i < 8; i++) root.set(i, new Persistent() as Thing);
      await transaction.commit();
    });
    const size = (await Deno.stat(path)).size;
    const bump = (i: number) =>
      transaction.run(async () => {
        const item = root.get(i)!;
        checkout(item);
        item.n = i;
        await transaction.commit();
      });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => bump(i)));
    assert.equal(log.fired, 1);
    for (const result of results) {
      assert.ok(result.status === "rejected" && result.reason instanceof TransactionFailedError);
    }
    assert.equal((await Deno.stat(path)).size, size);
    assert.ok([...root.values()].every((item) => item.n === undefined));
    await Promise.all(Array.from({ length: 8 }, (_, i) => bump(i)));
    assert.deepEqual([...root.values()].map((item) => item.n), [0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

/** A filesystem whose next synchronous write to a file named like `name` writes half, then fails. */
function tearingFileSystem(base: FileSystem, name: string): { fs: FileSystem; arm(): void } {
  let armed = false;
  const wrap = (handle: FileHandle): FileHandle =>
    new Proxy(handle, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (key === "writeSync") {
          return (data: Uint8Array) => {
            if (armed && target.path.endsWith(name)) {
              armed = false;
              target.writeSync(data.subarray(0, data.length >> 1));
              throw new Error("the disk filled up halfway");
            }
            target.writeSync(data);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return {
    fs: {
      ...base,
      open: async (path, options) => wrap(await base.open(path, options)),
      openSync: (path, options) => wrap(base.openSync(path, options)),
    },
    arm: () => armed = true,
  };
}

Deno.test("an append that stops halfway is removed: no record of the batch shows", async () => {
  const path = await prepared();
  const tearing = tearingFileSystem(fs, "faults.db");
  const restore = setFileSystem(tearing.fs);
  try {
    await using db = await Database.open<Thing & { items?: Thing[] }>(path);
    await using observer = await Database.open<Thing>(path);
    const items = Array.from({ length: 4 }, () => new Persistent() as Thing);
    await transaction.run(async () => {
      // Four new objects hung from the root, in one transaction.
      const root = db.root!;
      checkout(root);
      root.items = items;
      await transaction.commit();
    });
    const before = await Deno.readFile(path);
    const bump = (item: Thing, n: number) =>
      transaction.run(async () => {
        checkout(item);
        item.n = n;
        await transaction.commit();
      });
    tearing.arm();
    const results = await Promise.allSettled(items.map((item, i) => bump(item, i + 1)));
    assert.ok(results.every((result) => result.status === "rejected"));
    assert.deepEqual(await Deno.readFile(path), before);
    await transaction.begin();
    assert.equal(observer.txCount, db.txCount);
    assert.ok(items.every((item) => item.n === undefined));
    await Promise.all(items.map((item, i) => bump(item, i + 1)));
    await using reopened = await Database.open<Thing & { items: Thing[] }>(path);
    assert.deepEqual(reopened.root!.items.map((item) => item.n), [1, 2, 3, 4]);
  } finally {
    restore();
  }
});

Deno.test("a failing write of a stored file: its commit fails; bytes can be committed again", async () => {
  const path = await prepared();
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(3 << 20);
  for (let at = 0; at < big.length; at += data.length) big.set(data, at);
  await injectFaults([{ op: "write", nth: 2, path: "faults.db" }], async (log) => {
    await using db = await Database.open<Thing>(path);
    const before = (await Deno.stat(path)).size;
    await transaction.run(async () => {
      const root = db.root!;
      const file = new PersistentFile(big);
      checkout(root);
      root.file = file;
      await assert.rejects(
        transaction.commit(),
        failedWith((cause) => cause instanceof InjectedFault),
      );
      assert.equal(log.fired, 1);
      assert.equal((await Deno.stat(path)).size, before, "the chunk written first was removed");
      transaction.abort();
      checkout(root);
      root.file = file; // bytes are not consumed by a failed commit
      await transaction.commit();
      assert.equal(root.file, file);
      assert.ok(file instanceof PersistentStream && file.size === big.length);
    });
  });
  await using reopened = await Database.open<Thing>(path);
  const chunks: Uint8Array[] = [];
  for await (const chunk of reopened.root!.file as PersistentStream) chunks.push(chunk);
  assert.deepEqual(new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer()), big);
});

Deno.test("a stream source read by a failed commit cannot be committed again", async () => {
  const path = await prepared();
  await injectFaults([{ op: "fsync", path: "faults.db" }], async () => {
    await using db = await Database.open<Thing>(path);
    await transaction.run(async () => {
      const file = new PersistentFile(ReadableStream.from([new Uint8Array([1, 2, 3])]));
      checkout(db.root!);
      db.root!.file = file;
      await assert.rejects(transaction.commit(), TransactionFailedError);
      transaction.abort();
      checkout(db.root!);
      db.root!.file = file;
      await assert.rejects(transaction.commit(), /already read/);
      transaction.abort();
    });
  });
});

Deno.test("when a failed commit cannot be undone, the database refuses to go on", async () => {
  const path = await prepared();
  const faults: Fault[] = [{ op: "fsync", path: "faults.db" }, {
    op: "truncate",
    path: "faults.db",
  }];
  await injectFaults(faults, async () => {
    const db = await Database.open<Thing>(path);
    await transaction.run(async () => {
      checkout(db.root!);
      db.root!.n = 1;
      await assert.rejects(transaction.commit(), TransactionFailedError);
      transaction.abort();
      checkout(db.root!);
      db.root!.n = 2;
      await assert.rejects(transaction.commit(), /could not be removed.*reopen/);
      transaction.abort();
    });
    await db.close();
  });
  // The records that could not be removed are complete: reopening shows them.
  await using reopened = await Database.open<Thing>(path);
  assert.equal(reopened.root!.n, 1);
});

Deno.test("a failing lock: the commit fails, and the next one works", async () => {
  const path = await prepared();
  await injectFaults([{ op: "lock", path: "faults.db", nth: 2 }], async (log) => {
    await using db = await Database.open<Thing>(path); // lock 1: reading the log
    await transaction.run(async () => {
      checkout(db.root!);
      db.root!.n = 5;
      await assert.rejects(
        transaction.commit(),
        failedWith((cause) => cause instanceof FileLockError),
      );
      assert.equal(log.fired, 1);
      transaction.abort();
      checkout(db.root!);
      db.root!.n = 5;
      await transaction.commit();
    });
  });
  await using reopened = await Database.open<Thing>(path);
  assert.equal(reopened.root!.n, 5);
});

Deno.test("a failing read while catching up: begin() fails, the next one catches up", async () => {
  const path = await prepared();
  const readsToOpen = await injectFaults([], async (log) => {
    await (await Database.open(path)).close();
    return log.calls.filter((call) => call.startsWith("read ")).length;
  });
  await using writer = await Database.open<Thing>(path);
  await injectFaults([{ op: "read", path: "faults.db", nth: readsToOpen + 1 }], async (log) => {
    await using observer = await Database.open<Thing>(path);
    await transaction.run(async () => {
      checkout(writer.root!);
      writer.root!.n = 6;
      await transaction.commit();
    });
    await transaction.run(async () => {
      await assert.rejects(transaction.begin(), InjectedFault);
      assert.equal(log.fired, 1);
      assert.equal(observer.root!.n, 0);
      assert.equal(observer.txCount, 1);
      await transaction.begin();
      assert.equal(observer.root!.n, 6);
      assert.equal(observer.txCount, 2);
    });
  });
});
