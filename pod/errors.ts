import { AtomicStoreError } from "../_internal/errors.ts";

/**
 * The pod is open for writing elsewhere: in another process, or in another
 * Worker of this process. Each pod has one writer at a time; the lock that
 * says so is a kernel lock on `<pod>/.lock`, released when its holder
 * closes the pod or dies.
 *
 * Open the pod with `{ readOnly: true }` to read what was last synced, or,
 * between Workers of one process, share one pod with `SharedPod`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openPod, PodLockedError } from "@x/atomic-store/pod";
 *
 * const path = await Deno.makeTempDir();
 * await using pod = await openPod(path);
 * pod.set("greeting", "hello");
 * await pod.sync();
 * // A second process opening `path` now gets a PodLockedError:
 * const error = new PodLockedError(path);
 * assert.ok(error.path === path && error.message.includes("readOnly"));
 * ```
 */
export class PodLockedError extends AtomicStoreError {
  /** Creates an error about the pod directory `path`. */
  constructor(path: string, options?: ErrorOptions) {
    super(
      path,
      `pod "${path}" is open for writing in another process or Worker; close it there, ` +
        `open it with { readOnly: true }, or share one pod between Workers with SharedPod`,
      options,
    );
  }
}
