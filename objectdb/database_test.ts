import assert from "node:assert/strict";
import { injectFaults } from "../_internal/fs.ts";
import {
  checkout,
  ConflictError,
  Database,
  ObjectGraphError,
  Persistent,
  PersistentDict,
  PersistentFile,
  PersistentStream,
  ReadConflictError,
  ReadOnlyError,
  transaction,
  TransactionFailedError,
  UnregisteredClassError,
  WriteConflictError,
} from "./mod.ts";
import { encodeRecord, FILE_MAGIC, KIND_COMMIT } from "./_log.ts";
import { resolveCodec, toBytes } from "../_internal/codec.ts";

type Bag = Persistent & Record<string, unknown>;

const tempPath = async (name = "test.db") => `${await Deno.makeTempDir()}/${name}`;

/** A database with a committed root, for a test body run in its own context. */
async function withRoot<T>(
  fn: (db: Database<Bag>, root: Bag) => Promise<T>,
  path?: string,
): Promise<T> {
  await using db = await Database.open<Bag>(path ?? await tempPath());
  return await transaction.run(async () => {
    const root = new Persistent() as Bag;
    db.elect(root);
    await transaction.commit();
    return await fn(db, root);
  });
}

class Point extends Persistent {
  x = 0;
  y = 0;
  tags: string[] = ["new"];
  get norm(): number {
    return Math.hypot(this.x, this.y);
  }
  set both(value: number) {
    this.x = value;
    this.y = value;
  }
  move(dx: number): void {
    this.x += dx;
  }
}
Database.register(Point);

Deno.test("subclasses: field initialisers, getters, setters and methods", async () => {
  await withRoot(async (db, root) => {
    const point = new Point();
    assert.deepEqual([point.x, point.y, point.tags], [0, 0, ["new"]]);
    assert.throws(() => point.move(1), ReadOnlyError);
    checkout(point);
    point.both = 3;
    point.move(1);
    point.tags.push("moved");
    assert.equal(point.norm, 5);
    checkout(root);
    root.point = point;
    await transaction.commit();
    assert.throws(() => (point.x = 1), ReadOnlyError);

    await using again = await Database.open<Bag>(db.path);
    const loaded = again.root!.point as Point;
    assert.ok(loaded instanceof Point);
    assert.deepEqual([loaded.x, loaded.y, loaded.tags, loaded.norm], [4, 3, ["new", "moved"], 5]);
    assert.deepEqual(Object.keys(loaded), ["x", "y", "tags"]);
    assert.deepEqual({ ...loaded }, { x: 4, y: 3, tags: ["new", "moved"] });
    assert.ok("x" in loaded && "move" in loaded && !("z" in loaded));
  });
});

Deno.test("read-only outside a checkout: set, define, delete, and nested values", async () => {
  await withRoot(async (_db, root) => {
    checkout(root);
    root.list = [1, { deep: true }];
    root.gone = 1;
    await transaction.commit();
    assert.throws(() => (root.list = []), ReadOnlyError);
    assert.throws(() => Object.defineProperty(root, "list", { value: [] }), ReadOnlyError);
    assert.throws(() => delete root.gone, ReadOnlyError);
    // Shared state is frozen, so it cannot be changed in place by mistake.
    assert.throws(() => (root.list as unknown[]).push(2), TypeError);
    assert.throws(() => ((root.list as { deep: boolean }[])[1].deep = false), TypeError);
    checkout(root);
    (root.list as unknown[]).push(2); // the checked-out copy is not frozen
    delete root.gone;
    await transaction.commit();
    assert.deepEqual(root.list, [1, { deep: true }, 2]);
    assert.equal("gone" in root, false);
  });
});

Deno.test("values: what can be stored survives a reload exactly", async () => {
  const path = await tempPath();
  const shared = { shared: true };
  const cyclic: Record<string, unknown> = { name: "cycle" };
  cyclic.self = cyclic;
  const value = {
    nothing: null,
    missing: undefined,
    numbers: [0, -0, 1.5, -7, NaN, Infinity, -Infinity, 2 ** 53 - 1],
    big: 12345678901234567890n,
    text: "héllo \u0000 wörld",
    when: new Date("2024-02-29T12:00:00Z"),
    invalid: new Date(NaN),
    bytes: new Uint8Array([0, 1, 255]),
    map: new Map<unknown, unknown>([[1, "one"], ["two", [2]], [null, { n: 1 }]]),
    set: new Set([1, "a", 2n]),
    nested: { a: { b: { c: [[], {}] } } },
    awkward: JSON.parse('{"__proto__": 1, "\\u0000": 2}'),
    sharedTwice: [shared, shared],
    cyclic,
  };
  await withRoot(async (_db, root) => {
    checkout(root);
    root.value = value;
    await transaction.commit();
  }, path);
  await using db = await Database.open<Bag>(path);
  const loaded = db.root!.value as typeof value;
  assert.deepEqual(loaded, value);
  assert.ok(Object.is(loaded.numbers[1], -0));
  assert.equal(Object.getPrototypeOf(loaded.awkward), Object.prototype);
  assert.equal(loaded.awkward["__proto__"], 1);
  assert.equal(loaded.sharedTwice[0], loaded.sharedTwice[1]);
  assert.equal(loaded.cyclic.self, loaded.cyclic);
});

Deno.test("values: what cannot be stored fails the commit, naming where it is", async () => {
  class Foreign {}
  for (
    const [bad, where] of [
      [() => {}, /function \(anonymous\) at inner\[1\]/],
      [Symbol("s"), /symbol \(Symbol\(s\)\) at inner\[1\]/],
      [{ deep: [new Map([[1, () => 0]])] }, /function.*at inner\[1\]\.deep\[0\]\[0\]/],
      [new Foreign(), /Foreign/],
      [new Float64Array(2), /Float64Array/],
    ] as const
  ) {
    await withRoot(async (db, root) => {
      checkout(root);
      root.inner = [0, bad];
      await assert.rejects(transaction.commit(), (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, where);
        return true;
      });
      assert.equal(db.txCount, 1); // nothing written, not even a failure record
      assert.throws(() => checkout(root), TransactionFailedError);
      await assert.rejects(transaction.commit(), TransactionFailedError);
      transaction.abort();
      checkout(root);
      root.inner = [0];
      await transaction.commit();
      assert.equal(db.txCount, 2);
    });
  }
});

Deno.test("checkout makes a deep copy local to the transaction", async () => {
  await withRoot(async (_db, root) => {
    const friend = new Persistent() as Bag;
    checkout(root);
    root.data = { list: [1, 2] };
    root.friend = friend;
    await transaction.commit();

    checkout(root);
    (root.data as { list: number[] }).list.push(3);
    assert.equal(root.friend, friend); // persistent objects are never copied
    await transaction.run(() => {
      // Another context sees the shared state, unchanged.
      assert.deepEqual(root.data, { list: [1, 2] });
      assert.throws(() => (root.data = 1), ReadOnlyError);
    });
    transaction.abort();
    assert.deepEqual(root.data, { list: [1, 2] });
  });
});

Deno.test("new objects reachable from a committed object are stored with it", async () => {
  await withRoot(async (db, root) => {
    // Neither new object is checked out: their constructed state is stored.
    const leaf = new Point();
    const middle = new PersistentDict([["leaf", leaf]]);
    checkout(root);
    root.middle = middle;
    await transaction.commit();
    assert.equal(db.size, 3);
    assert.equal(Database.of(leaf), db);
    assert.equal(typeof Database.oidOf(middle), "number");

    await using again = await Database.open<Bag>(db.path);
    const loaded = again.root!.middle as PersistentDict<string, Point>;
    assert.ok(loaded.get("leaf") instanceof Point);
    assert.deepEqual(loaded.get("leaf")!.tags, ["new"]);
  });
});

Deno.test("ObjectGraphError: objects of another database", async () => {
  await using other = await Database.open<Bag>(await tempPath("other.db"));
  await withRoot(async (_db, root) => {
    const foreign = new Persistent() as Bag;
    other.elect(foreign);
    await transaction.commit();
    assert.throws(() => _db.elect(foreign), ObjectGraphError);
    checkout(root);
    root.foreign = foreign;
    await assert.rejects(
      transaction.commit(),
      (error: unknown) =>
        error instanceof ObjectGraphError && /another database/.test(error.message),
    );
    transaction.abort();
  });
});

Deno.test("unregistered classes: not committed, and not loaded, with their name", async () => {
  class Unknown extends Persistent {}
  await withRoot(async (db, root) => {
    checkout(root);
    root.child = new Unknown();
    await assert.rejects(transaction.commit(), (error: unknown) => {
      assert.ok(error instanceof UnregisteredClassError);
      assert.equal(error.className, "Unknown");
      assert.match(error.message, /Database\.register\(Unknown\)/);
      return true;
    });
    transaction.abort();
    assert.equal(db.txCount, 1);
  });

  // A log written by a program that registered "Phantom".
  const path = await tempPath();
  const body = toBytes(resolveCodec("msgpack").encode([1, 1, 2, [[1, "Phantom", [], null]]]));
  await Deno.writeFile(path, new Uint8Array([...FILE_MAGIC, ...encodeRecord(KIND_COMMIT, body)]));
  await assert.rejects(Database.open(path), (error: unknown) => {
    assert.ok(error instanceof UnregisteredClassError);
    assert.equal(error.className, "Phantom");
    assert.match(error.message, /Phantom/);
    return true;
  });

  assert.throws(() => Database.register(class Point extends Persistent {}), /already registered/);
  assert.throws(() => Database.register(Object as never), TypeError);
  Database.register(Point); // again: nothing happens
});

Deno.test("PersistentDict: a Map with attributes, read-only outside a checkout", async () => {
  await withRoot(async (db, root) => {
    const dict = new PersistentDict<unknown, unknown>([["a", 1], ["b", { n: 2 }]]);
    assert.throws(() => dict.set("c", 3), ReadOnlyError);
    assert.throws(() => dict.delete("a"), ReadOnlyError);
    assert.throws(() => dict.clear(), ReadOnlyError);
    assert.throws(() => dict.set({}, 1), TypeError); // object keys do not survive a reload
    checkout(root);
    root.dict = dict;
    checkout(dict);
    dict.set("c", 3).set(root, "the root").set(7n, null);
    assert.equal(dict.delete("a"), true);
    assert.equal(dict.delete("nope"), false);
    (dict.get("b") as { n: number }).n = 20; // a local copy, changed in place
    (dict as unknown as Bag).title = "attributes are separate";
    assert.equal(dict.size, 4);
    assert.deepEqual([...dict.keys()], ["b", "c", root, 7n]);
    await transaction.commit();

    const check = (d: PersistentDict<unknown, unknown>, r: Bag) => {
      assert.deepEqual([...d.entries()], [["b", { n: 20 }], ["c", 3], [r, "the root"], [7n, null]]);
      assert.equal(d.get(r), "the root");
      assert.equal(d.has("a"), false);
      assert.equal(d.size, 4);
      assert.equal((d as unknown as Bag).title, "attributes are separate");
      assert.equal(d.has("title"), false);
    };
    check(dict, root);
    await using again = await Database.open<Bag>(db.path);
    check(again.root!.dict as PersistentDict<unknown, unknown>, again.root!);

    checkout(dict);
    dict.clear();
    dict.set("only", 1);
    const seen: unknown[] = [];
    dict.forEach((value, key) => seen.push([key, value]));
    assert.deepEqual(seen, [["only", 1]]);
    await transaction.commit();
    await transaction.begin();
    assert.deepEqual([...(again.root!.dict as PersistentDict)], [["only", 1]]);
  });
});

Deno.test("PersistentDict: a small change to a large dict writes a small record", async () => {
  await withRoot(async (db, root) => {
    const dict = new PersistentDict<number, string>();
    checkout(root);
    root.dict = dict;
    checkout(dict);
    for (let i = 0; i < 5000; i++) dict.set(i, `value number ${i}`);
    await transaction.commit();
    const before = (await Deno.stat(db.path)).size;
    checkout(dict);
    dict.set(42, "changed");
    dict.delete(43);
    await transaction.commit();
    const growth = (await Deno.stat(db.path)).size - before;
    assert.ok(growth < 200, `the record took ${growth} bytes`);
    await using again = await Database.open<Bag>(db.path);
    const loaded = again.root!.dict as PersistentDict<number, string>;
    assert.equal(loaded.size, 4999);
    assert.equal(loaded.get(42), "changed");
    assert.equal(loaded.get(44), "value number 44");
  });
});

Deno.test("PersistentDict: concurrent changes conflict at the object level", async () => {
  await withRoot(async (_db, root) => {
    const dict = new PersistentDict<string, number>();
    checkout(root);
    root.dict = dict;
    await transaction.commit();
    const results = await Promise.allSettled(["x", "y"].map((key) =>
      transaction.run(async () => {
        checkout(dict);
        dict.set(key, 1);
        await transaction.commit();
      })
    ));
    assert.equal(results[0].status, "fulfilled");
    assert.ok(results[1].status === "rejected" && results[1].reason instanceof WriteConflictError);
    assert.deepEqual([...dict], [["x", 1]]);
  });
});

Deno.test("elect: the root is transaction-local until committed", async () => {
  const path = await tempPath();
  await using db = await Database.open<Bag>(path);
  await transaction.run(async () => {
    const first = new Persistent() as Bag;
    db.elect(first);
    assert.equal(db.root, first);
    await transaction.run(() => assert.equal(db.root, null)); // other contexts do not see it
    transaction.abort();
    assert.equal(db.root, null);
    assert.equal(Database.of(first), undefined);

    const second = new Persistent() as Bag;
    db.elect(first);
    db.elect(second); // the last election counts
    assert.equal(Database.of(first), undefined);
    await transaction.commit();
    assert.equal(db.root, second);
    assert.equal(db.size, 1);

    // Re-electing an older object as root
    checkout(second);
    second.next = first;
    await transaction.commit();
    db.elect(first);
    await transaction.commit();
    await using again = await Database.open<Bag>(path);
    assert.equal(Database.oidOf(again.root!), Database.oidOf(first));
  });
});

Deno.test("a commit not awaited before its context ends still writes its changes", async () => {
  await withRoot(async (db, root) => {
    let committing: Promise<void> | undefined;
    await transaction.run(() => {
      checkout(root);
      root.late = "written";
      committing = transaction.commit();
    });
    await committing;
    assert.equal(root.late, "written");
    await using again = await Database.open<Bag>(db.path);
    assert.equal(again.root!.late, "written");
  });
});

Deno.test("a constructor body can check out its object to assign", async () => {
  class Named extends Persistent {
    name: string;
    constructor(name: string) {
      super();
      checkout(this);
      this.name = name;
    }
  }
  Database.register(Named);
  await withRoot(async (db, root) => {
    const named = new Named("made in a constructor");
    checkout(root);
    root.named = named;
    await transaction.commit();
    assert.throws(() => (named.name = "x"), ReadOnlyError);
    await using again = await Database.open<Bag>(db.path);
    assert.equal((again.root!.named as Named).name, "made in a constructor");
  });
});

Deno.test("run: contexts are independent, follow async calls, and abort leftovers", async () => {
  await withRoot(async (_db, root) => {
    await transaction.run(async () => {
      checkout(root);
      await new Promise((resolve) => setTimeout(resolve, 1));
      root.inside = true; // still this context's transaction after an await
      await Promise.all([1, 2].map(async (n) => {
        await null;
        root[`child${n}`] = n; // calls made from the context share its transaction
      }));
    });
    // Left uncommitted: aborted when the context ended.
    assert.equal(root.inside, undefined);
    assert.throws(() => (root.inside = true), ReadOnlyError);
    assert.equal(await transaction.run(() => 42), 42);
    await assert.rejects(transaction.run(() => Promise.reject(new URIError("x"))), URIError);
  });
});

Deno.test("group commit: concurrent contexts share one append and one fsync", async () => {
  const path = await tempPath();
  await injectFaults([], async (log) => {
    await using db = await Database.open<PersistentDict<number, Bag>>(path);
    await transaction.run(async () => {
      const root = new PersistentDict<number, Bag>();
      db.elect(root);
      checkout(root);
      for (let i = 0; i < 16; i++) root.set(i, new Persistent() as Bag);
      await transaction.commit();
    });
    const fsyncs = () => log.calls.filter((call) => call.startsWith("fsync")).length;
    const writes = () => log.calls.filter((call) => call.startsWith("write")).length;
    const [f0, w0] = [fsyncs(), writes()];
    await Promise.all(Array.from({ length: 16 }, (_, i) =>
      transaction.run(async () => {
        const item = db.root!.get(i)!;
        checkout(item);
        item.n = i;
        await transaction.commit();
      })));
    assert.equal(fsyncs() - f0, 1);
    assert.equal(writes() - w0, 1);
    assert.equal(db.txCount, 17);
  });
});

Deno.test("group commit: conflicts inside one batch are detected in order", async () => {
  await withRoot(async (db, root) => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        transaction.run(async () => {
          checkout(root);
          root.winner = i;
          await transaction.commit();
        })),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const result of results.slice(1)) {
      assert.ok(result.status === "rejected" && result.reason instanceof WriteConflictError);
    }
    assert.equal(root.winner, 0);
    assert.equal(db.txCount, 9); // 1 + 1 success + 7 recorded failures
  });
});

Deno.test("conflicts across instances: a commit catches up first", async () => {
  const path = await tempPath();
  await withRoot(async (db, root) => {
    await using other = await Database.open<Bag>(path);
    checkout(root);
    root.n = 1;
    await transaction.run(async () => {
      const theirs = other.root!;
      checkout(theirs);
      theirs.n = 2;
      await transaction.commit();
    });
    await assert.rejects(transaction.commit(), (error: unknown) => {
      assert.ok(error instanceof ReadConflictError && error instanceof ConflictError);
      assert.equal(error.oid, Database.oidOf(root));
      assert.equal(error.path, db.path);
      return true;
    });
    assert.equal(root.n, 2);
    transaction.abort();
    await transaction.begin();
    assert.equal(other.txCount, db.txCount); // the failure was recorded for everyone
    // Changes to other objects do not conflict.
    checkout(root);
    root.n = 3;
    await transaction.commit();
    await transaction.begin();
    assert.equal(other.root!.n, 3);
  }, path);
});

Deno.test("stored files: many chunks, random access, independent iteration", async () => {
  const size = 2.5 * (1 << 20);
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
  // A stream of odd-sized pieces.
  const pieces = (function* () {
    for (let at = 0; at < size; at += 100_003) yield data.slice(at, at + 100_003);
  })();
  await withRoot(async (db, root) => {
    checkout(root);
    root.big = new PersistentFile(ReadableStream.from(pieces));
    root.small = new PersistentFile(new Uint8Array([1, 2, 3]));
    root.empty = new PersistentFile(new Uint8Array(0));
    await transaction.commit();

    for (const r of [root, (await Database.open<Bag>(db.path)).root!]) {
      const big = r.big as PersistentStream;
      assert.ok(big instanceof PersistentStream);
      assert.equal(big.size, size);
      assert.equal(big.closed, true);
      await assert.rejects(big.read(1), TypeError);
      await big.open();
      big.seek((1 << 20) - 5);
      assert.deepEqual(await big.read(10), data.slice((1 << 20) - 5, (1 << 20) + 5));
      assert.equal(big.tell(), (1 << 20) + 5);
      big.seek(size - 3);
      assert.deepEqual(await big.read(100), data.slice(size - 3));
      assert.deepEqual(await big.read(), new Uint8Array(0));
      const chunks: Uint8Array[] = [];
      for await (const chunk of big) chunks.push(chunk);
      assert.ok(chunks.every((chunk) => chunk.length <= 1 << 20) && chunks.length === 3);
      assert.deepEqual(new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer()), data);
      assert.equal(big.closed, false); // iteration left the file-like API alone
      await big.close();
      assert.deepEqual(
        await new Response((r.small as PersistentStream).readable()).bytes(),
        new Uint8Array([1, 2, 3]),
      );
      assert.equal((r.empty as PersistentStream).size, 0);
      for await (const _ of r.empty as PersistentStream) assert.fail("no chunks");
      if (r !== root) await Database.of(r)!.close();
    }
  });
});

Deno.test("stored files: a failing source fails only its transaction", async () => {
  await withRoot(async (db, root) => {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new URIError("source broke"));
      },
    });
    const size = (await Deno.stat(db.path)).size;
    checkout(root);
    root.file = new PersistentFile(failing);
    const other = transaction.run(async () => {
      const item = new Persistent() as Bag;
      db.elect(item);
      await transaction.commit();
    });
    await assert.rejects(
      transaction.commit(),
      (error: unknown) =>
        error instanceof TransactionFailedError && error.cause instanceof URIError,
    );
    await other; // committed in the same batch
    transaction.abort();
    assert.ok((await Deno.stat(db.path)).size > size);
    await using again = await Database.open<Bag>(db.path);
    assert.equal(again.txCount, 2);
  });
});

Deno.test("snapshot: only into an empty database; a closed database refuses commits", async () => {
  await withRoot(async (db, root) => {
    await using target = await Database.open<Bag>(await tempPath("target.db"));
    await db.snapshot(target);
    await assert.rejects(db.snapshot(target), /not empty/);
    await assert.rejects(db.snapshot(db as Database), TypeError);
    await db.close();
    checkout(root);
    root.late = true;
    await assert.rejects(transaction.commit(), /is closed/);
    transaction.abort();
    assert.equal(Database.of({}), undefined);
    assert.equal(Database.oidOf(42 as unknown as object), undefined);
  });
});

Deno.test("a transaction over two databases commits to each", async () => {
  await using a = await Database.open<Bag>(await tempPath("a.db"));
  await using b = await Database.open<Bag>(await tempPath("b.db"));
  await transaction.run(async () => {
    const rootA = new Persistent() as Bag;
    const rootB = new Persistent() as Bag;
    a.elect(rootA);
    b.elect(rootB);
    const childB = new Persistent() as Bag;
    checkout(rootB);
    rootB.child = childB;
    checkout(childB);
    childB.name = "b's";
    await transaction.commit();
    assert.equal(Database.of(childB), b);
    assert.deepEqual([a.size, b.size, a.txCount, b.txCount], [1, 2, 1, 1]);
  });
});
