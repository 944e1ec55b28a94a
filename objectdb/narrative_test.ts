// The user's guide of the original design, step by step, as one test. Each
// step of the narrative is a `t.step`, and runs in order against the same
// databases. Threads become `transaction.run` contexts; the semaphore that
// holds a thread back before its commit becomes a promise.
import assert from "node:assert/strict";
import {
  checkout,
  Database,
  ObjectGraphError,
  Persistent,
  PersistentDict,
  PersistentFile,
  PersistentStream,
  ReadConflictError,
  ReadOnlyError,
  transaction,
  WriteConflictError,
} from "./mod.ts";

type Thing = Persistent & {
  name?: string;
  another?: Thing;
  file?: PersistentFile | PersistentStream;
  pdict?: PersistentDict<string, unknown>;
};

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function joined(stream: unknown): Promise<string> {
  assert.ok(stream instanceof PersistentStream);
  let out = "";
  for await (const chunk of stream) out += text(chunk);
  return out;
}

Deno.test("the user's guide, as a narrative", async (t) => {
  const dir = await Deno.makeTempDir();
  const databasePath = `${dir}/narrative.db`;

  // Setup: a database over a path that does not exist yet.
  const db = await Database.open<Thing>(databasePath);
  const obj = new Persistent() as Thing;
  let newDb: Database<Thing>;
  let newObj: Thing;
  let another: Thing;
  let pdict: PersistentDict<string, unknown>;

  await t.step("setup: a new database is empty and has no root", () => {
    assert.equal(db.size, 0);
    assert.equal(db.root, null);
    assert.equal(db.txCount, 0);
  });

  await t.step("checking out: persistent objects are read-only until checked out", () => {
    assert.throws(() => {
      obj.name = "John";
    }, (error: unknown) => error instanceof ReadOnlyError && /read-only mode/.test(error.message));
    assert.equal(obj.name, undefined);
    const result: unknown = checkout(obj);
    assert.equal(result, undefined); // no return value: the identity never changes
    obj.name = "John";
    assert.equal(obj.name, "John");
  });

  await t.step("electing a root and committing", async () => {
    db.elect(obj);
    assert.equal(Database.of(obj), db);
    await transaction.commit();
    assert.equal(db.size, 1);
    assert.equal(db.txCount, 1);
    assert.equal(db.root, obj);
  });

  await t.step("transactions: every commit appends", async () => {
    checkout(obj);
    obj.name = "James";
    await transaction.commit();
    assert.equal(db.txCount, 2);
  });

  await t.step("sharing: a second instance has its own objects with the same state", async () => {
    newDb = await Database.open<Thing>(databasePath);
    newObj = newDb.root!;
    assert.notEqual(newObj, obj);
    assert.equal(Database.of(newObj), newDb);
    assert.equal(newObj.name, "James");
  });

  await t.step("sharing: commits reach other instances when a transaction begins", async () => {
    checkout(obj);
    obj.name = "Jane";
    await transaction.commit();
    assert.equal(db.txCount, 3);
    assert.equal(newObj.name, "James"); // not up to date yet
    await transaction.begin();
    assert.equal(newObj.name, "Jane");
  });

  await t.step(
    "internal conflicts: two contexts of one instance change the same object",
    async () => {
      const flag = Promise.withResolvers<void>();
      const thread = transaction.run(async () => {
        const root = db.root;
        assert.ok(root !== null);
        checkout(root);
        root.name = "Bob";
        await flag.promise;
        await transaction.commit();
      });
      checkout(obj);
      obj.name = "Bill";
      flag.resolve();
      await thread;
      assert.equal(db.txCount, 4); // the thread's transaction was committed

      await assert.rejects(transaction.commit(), WriteConflictError);
      assert.equal(db.txCount, 5); // the failed transaction was recorded
      assert.equal(obj.name, "Bob"); // reverted to the latest committed state
      transaction.abort();
      assert.throws(
        () => {
          obj.name = "John";
        },
        (error: unknown) => error instanceof ReadOnlyError && /read-only mode/.test(error.message),
      );
    },
  );

  await t.step("external conflicts: another instance changes the same object", async () => {
    await transaction.begin();
    assert.equal(db.txCount, newDb.txCount);
    const flag = Promise.withResolvers<void>();
    const thread = transaction.run(async () => {
      const root = newDb.root;
      assert.ok(root !== null);
      checkout(root);
      root.name = "Ian";
      await flag.promise;
      await transaction.commit();
    });
    checkout(obj);
    obj.name = "Ilya";
    flag.resolve();
    await thread;
    assert.equal(newDb.txCount, 6);

    // A read conflict, not a write conflict: the commit first catches up.
    await assert.rejects(transaction.commit(), ReadConflictError);
    assert.equal(db.txCount, 7);
    assert.equal(obj.name, "Ian");
    transaction.abort();
  });

  await t.step("more objects: a checked-out object must be connected to the graph", async () => {
    another = new Persistent() as Thing;
    checkout(another);
    await assert.rejects(
      transaction.commit(),
      (error: unknown) =>
        error instanceof ObjectGraphError && error.object === another &&
        /not connected to the object graph/.test(error.message),
    );
    transaction.abort();

    checkout(another);
    another.name = "Karla";
    checkout(obj);
    obj.another = another;
    await transaction.commit();
    assert.equal(db.size, 2);
    assert.notEqual(Database.oidOf(another), undefined);
  });

  await t.step("more objects: new objects reach the other instance", async () => {
    await transaction.begin();
    assert.equal(newObj.another?.name, "Karla");
  });

  await t.step("more objects: checkouts deep-copy state but never persistent objects", () => {
    checkout(obj);
    assert.equal(obj.another, another);
  });

  await t.step("more objects: circular references", async () => {
    checkout(another);
    another.another = obj;
    await transaction.commit();
    assert.equal(another.another, obj);
    assert.equal(obj.another, another);
  });

  await t.step("storing files: a PersistentFile becomes a PersistentStream", async () => {
    const file = await Deno.open(`${dir}/source.txt`, {
      read: true,
      write: true,
      create: true,
    });
    await file.write(new TextEncoder().encode("abc"));
    await file.seek(0, Deno.SeekMode.Start); // read from the current position to the end
    const pfile = new PersistentFile(file);
    checkout(obj);
    obj.file = pfile;
    await transaction.commit();
    assert.ok(obj.file instanceof PersistentStream);
    assert.equal(obj.file, pfile); // the same object, with a new class
    file.close();
  });

  await t.step("using persistent streams: the file-like API", async () => {
    const stream = obj.file as PersistentStream;
    await stream.open();
    assert.equal(text(await stream.read()), "abc");
    assert.equal(stream.tell(), 3);
    stream.seek(0);
    assert.equal(text(await stream.read()), "abc");
    await stream.close();
  });

  await t.step("using persistent streams: iteration is independent", async () => {
    assert.equal(await joined(obj.file), "abc");
    assert.equal((obj.file as PersistentStream).closed, true);
  });

  await t.step("using persistent streams: the other instance reads the file too", async () => {
    await transaction.begin();
    assert.equal(await joined(newObj.file), "abc");
  });

  await t.step("persistent dictionary: entries and attributes", async () => {
    pdict = new PersistentDict<string, unknown>();
    checkout(obj);
    checkout(pdict);
    obj.pdict = pdict;
    pdict.set("obj", obj);
    assert.equal(pdict.get("obj"), obj);
    (pdict as PersistentDict<string, unknown> & { name?: string }).name = "Bob";
    assert.equal((pdict as PersistentDict<string, unknown> & { name?: string }).name, "Bob");
    assert.equal(pdict.has("name"), false); // attributes and entries are independent

    await transaction.commit();
    assert.equal(pdict.get("obj"), obj);
    assert.equal((pdict as PersistentDict<string, unknown> & { name?: string }).name, "Bob");
  });

  await t.step("snapshots: the current state as a single transaction", async () => {
    const tmpDb = await Database.open<Thing>(`${databasePath}.tmp`);
    await db.snapshot(tmpDb);
    assert.equal(tmpDb.size, 3);
    assert.equal(tmpDb.txCount, 1);
    const tmpObj = tmpDb.root!;
    assert.equal(tmpObj.name, "Ian");
    assert.equal(tmpObj.another?.name, "Karla");
    assert.equal(await joined(tmpObj.file), "abc");
    assert.equal(tmpObj.another?.another, tmpObj);
    assert.equal(tmpObj.pdict?.get("obj"), tmpObj);
    await tmpDb.close();
  });

  await t.step("cleanup", async () => {
    await transaction.commit();
  });

  await t.step("beyond the narrative: reopening replays the same state", async () => {
    await Promise.all([db.close(), newDb.close()]);
    for (const path of [databasePath, `${databasePath}.tmp`]) {
      await using again = await Database.open<Thing>(path);
      const root = again.root!;
      assert.equal(root.name, "Ian");
      assert.equal(root.another?.name, "Karla");
      assert.equal(root.another?.another, root);
      assert.equal(await joined(root.file), "abc");
      assert.equal(root.pdict?.get("obj"), root);
      assert.equal((root.pdict as PersistentDict & { name?: string }).name, "Bob");
      assert.equal(again.size, 3);
    }
  });
});
