import assert from "node:assert/strict";
import { listDir } from "../_testing/fs.ts";
import { type FsOp, InjectedFault, injectFaults } from "../_internal/fs.ts";
import { AtomicWriteError, FileLockError, open } from "./mod.ts";

// Each step of a commit that can fail, and the step the error names.
const STEPS: [FsOp, string][] = [
  ["open", "open"],
  ["write", "write"],
  ["fsync", "fsync"],
  ["close", "close"],
  ["chmod", "chmod"],
  ["rename", "rename"],
  ["dirFsync", "dirFsync"],
];

function isStepFailure(step: string) {
  return (error: unknown) => {
    assert.ok(error instanceof AtomicWriteError, String(error));
    assert.equal(error.step, step);
    assert.ok(error.cause instanceof InjectedFault);
    return true;
  };
}

for (const format of ["json", "yaml", "msgpack"] as const) {
  Deno.test(`faults (${format}): a failing commit leaves the file unchanged and the store usable`, async () => {
    for (const [op, step] of STEPS) {
      const dir = await Deno.makeTempDir();
      const path = `${dir}/state.${format}`;
      const store = await open(path, { default: { n: 1 } });
      await store.commit();
      const before = await Deno.readFile(path);
      store.value.n = 2;
      await injectFaults([{ op, path: dir }], async (log) => {
        await assert.rejects(store.commit(), isStepFailure(step));
        assert.equal(log.fired, 1, op);
      });
      assert.deepEqual(await Deno.readFile(path), before, `${op}: file unchanged`);
      assert.deepEqual(listDir(dir), [`state.${format}`], `${op}: no temporary file left`);
      assert.deepEqual(store.value, { n: 2 }, `${op}: a failed commit keeps the value for a retry`);
      await store.commit();
      assert.deepEqual((await open(path)).value, { n: 2 }, `${op}: the retry works`);
    }
  });
}

Deno.test("faults: a failing first commit leaves no file at all", async () => {
  for (const [op, step] of STEPS) {
    if (op === "chmod") continue; // only an existing file has its mode copied
    const dir = await Deno.makeTempDir();
    const store = await open(`${dir}/new.json`, { default: [1] });
    await injectFaults([{ op, path: dir }], async () => {
      await assert.rejects(store.commit(), isStepFailure(step));
    });
    assert.deepEqual(listDir(dir), [], op);
    await store.commit();
    assert.deepEqual(listDir(dir), ["new.json"], op);
  }
});

Deno.test("faults: a failing write at the end of with() rolls back, and the next with() works", async () => {
  for (const [op, step] of STEPS) {
    for (const lock of [false, true]) {
      const dir = await Deno.makeTempDir();
      const path = `${dir}/s.json`;
      const store = await open(path, { default: { items: ["a"] }, lock });
      await store.with(() => {});
      // Every path in the directory but the lock file's.
      const notTheLock = new RegExp(`^${RegExp.escape(dir)}(?!.*\\.lock$)`);
      await injectFaults([{ op, path: notTheLock }], async () => {
        await assert.rejects(
          store.with((s) => void s.value.items.push("b")),
          isStepFailure(step),
        );
      });
      assert.deepEqual(store.value, { items: ["a"] }, `${op}: rolled back`);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { items: ["a"] }, op);
      if (lock) {
        // The lock was released: a store that will not wait gets it.
        const probe = await open(path, { default: {}, lock: { timeout: 0 } });
        await probe.with(() => {});
      }
      await store.with((s) => void s.value.items.push("c"));
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { items: ["a", "c"] }, op);
      assert.deepEqual(listDir(dir), lock ? ["s.json", "s.json.lock"] : ["s.json"]);
    }
  }
});

Deno.test("faults: a failing write at the exit of a nested with() restores its savepoint", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  const store = await open(path, { default: [] as string[] });
  await store.with(async (s) => {
    s.value.push("outer");
    await injectFaults([{ op: "rename", path: dir }], async () => {
      await assert.rejects(s.with((t) => void t.value.push("inner")), isStepFailure("rename"));
    });
    assert.deepEqual(s.value, ["outer"]);
  });
  assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), ["outer"]);
});

Deno.test("faults: a failing read is an error, never the default", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  await Deno.writeTextFile(path, '{"precious": true}');
  await injectFaults([{ op: "read", path: "s.json" }], async () => {
    await assert.rejects(open(path, { default: { precious: false } }), InjectedFault);
  });
  const store = await open(path, { default: { precious: false } });
  assert.deepEqual(store.value, { precious: true });
  store.value.precious = false;
  await injectFaults([{ op: "read", path: "s.json" }], async () => {
    await assert.rejects(store.reload(), InjectedFault);
  });
  assert.deepEqual(store.value, { precious: false }, "a failed reload leaves value alone");
  assert.equal(await Deno.readTextFile(path), '{"precious": true}');
});

Deno.test("faults: a lock that cannot be taken stops with() before fn runs", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  const store = await open(path, { default: 0, lock: true });
  let ran = false;
  await injectFaults([{ op: "lock", path: "s.json.lock" }], async () => {
    await assert.rejects(store.with(() => void (ran = true)), FileLockError);
  });
  assert.equal(ran, false);
  await store.with((s) => void s.value++);
  assert.equal(await Deno.readTextFile(path), "1\n");
});

Deno.test("faults: a read failing under the lock frees the lock and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  const store = await open(path, { default: 0, lock: true });
  await store.with((s) => void (s.value = 5));
  await injectFaults([{ op: "read", path: /s\.json$/ }], async () => {
    await assert.rejects(store.with((s) => void s.value++), InjectedFault);
  });
  assert.equal(await Deno.readTextFile(path), "5\n");
  await store.with((s) => void s.value++);
  assert.equal(await Deno.readTextFile(path), "6\n");
});

Deno.test("faults: a failing directory fsync puts back the previous contents", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  const store = await open(path, { default: "one" });
  await store.commit();
  store.value = "two";
  await injectFaults([{ op: "dirFsync", path: dir }], async () => {
    await assert.rejects(store.commit(), isStepFailure("dirFsync"));
  });
  assert.equal(await Deno.readTextFile(path), '"one"\n');
  assert.deepEqual(listDir(dir), ["s.json"]);

  // Contents changed behind the store's back are what is put back.
  await Deno.writeTextFile(path, '"changed behind its back"');
  await injectFaults([{ op: "dirFsync", path: dir }], async () => {
    await assert.rejects(store.commit(), isStepFailure("dirFsync"));
  });
  assert.equal(await Deno.readTextFile(path), '"changed behind its back"');
  assert.deepEqual(listDir(dir), ["s.json"]);

  // A file that did not exist is removed again.
  const fresh = await open(`${dir}/other.json`, { default: 1 });
  await injectFaults([{ op: "dirFsync", path: dir }], async () => {
    await assert.rejects(fresh.commit(), isStepFailure("dirFsync"));
  });
  assert.deepEqual(listDir(dir), ["s.json"]);

  await store.commit();
  assert.equal(await Deno.readTextFile(path), '"two"\n');
});

Deno.test("faults: when restoring after a failed directory fsync fails too, the error says so", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.json`;
  const store = await open(path, { default: 1 });
  await store.commit();
  store.value = 2;
  // The second rename is the one that would put the old file back.
  await injectFaults(
    [{ op: "dirFsync", path: dir }, { op: "rename", path: dir, nth: 2 }],
    async () => {
      await assert.rejects(store.commit(), (error: unknown) => {
        assert.ok(isStepFailure("dirFsync")(error));
        assert.match((error as Error).message, /restoring the previous contents failed too/);
        return true;
      });
    },
  );
  // The new contents stayed; the store still works.
  assert.equal(await Deno.readTextFile(path), "2\n");
  store.value = 3;
  await store.commit();
  assert.equal(await Deno.readTextFile(path), "3\n");
});

Deno.test("faults: fsync: false skips both flushes", async () => {
  const dir = await Deno.makeTempDir();
  const store = await open(`${dir}/s.json`, { default: 1, fsync: false });
  await injectFaults([{ op: "fsync" }, { op: "dirFsync" }], async (log) => {
    await store.commit();
    await store.commit();
    assert.equal(log.fired, 0);
  });
  assert.equal(await Deno.readTextFile(`${dir}/s.json`), "1\n");
});
