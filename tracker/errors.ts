import { AtomicStoreError } from "../_internal/errors.ts";

/**
 * A task was added with a key the tracker already has: thrown by
 * `add` and `addMany` (which then add nothing). Use `addIfAbsent` or
 * `addManyIfAbsent` to skip known keys instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DuplicateKeyError, openTracker } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir());
 * tracker.add("https://example.com/");
 * assert.throws(() => tracker.add("https://example.com/"), DuplicateKeyError);
 * ```
 */
export class DuplicateKeyError extends AtomicStoreError {
  /** The key that was there already. */
  readonly key: string;

  /** Creates an error about `key` in the tracker at `path`. */
  constructor(path: string, key: string, options?: ErrorOptions) {
    super(
      path,
      `tracker "${path}" already has the task ${JSON.stringify(key)}; ` +
        `use addIfAbsent or addManyIfAbsent to skip known keys`,
      options,
    );
    this.key = key;
  }
}

/**
 * A state change (`markDone`, `abort`, `incrementTries`, …) or a gate
 * (`shouldDo`, `shouldTry`) named a key the tracker does not have. Nothing
 * changed. Add the task first, or use `shouldDoAdd`/`shouldTryAdd`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openTracker, UnknownKeyError } from "@x/atomic-store/tracker";
 *
 * await using tracker = await openTracker(await Deno.makeTempDir());
 * assert.throws(() => tracker.markDone("never added"), UnknownKeyError);
 * assert.equal(tracker.isDone("never added"), false); // reads just say no
 * ```
 */
export class UnknownKeyError extends AtomicStoreError {
  /** The key that is not in the tracker. */
  readonly key: string;

  /** Creates an error about `key`, missing from the tracker at `path`. */
  constructor(path: string, key: string, options?: ErrorOptions) {
    super(
      path,
      `tracker "${path}" has no task ${JSON.stringify(key)}; add it first ` +
        `(or use shouldDoAdd/shouldTryAdd)`,
      options,
    );
    this.key = key;
  }
}
