/**
 * Baselines for benchmarks: what the library does, done by hand with the
 * bare Deno calls, so that benchmarks report the library's overhead.
 *
 * @module
 */

import { dirname } from "node:path";

/** A unique temporary name beside `target`. */
function tempName(target: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${target}.${random[0].toString(36)}${random[1].toString(36)}.tmp`;
}

/** The durable replacement done by hand: temp file, write, fsync, close, rename, fsync dir. */
export async function bareDurableWrite(target: string, data: Uint8Array): Promise<void> {
  const temp = tempName(target);
  const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o666 });
  let offset = 0;
  while (offset < data.byteLength) offset += await file.write(data.subarray(offset));
  await file.sync();
  file.close();
  await Deno.rename(temp, target);
  const dir = await Deno.open(dirname(target), { read: true });
  await dir.sync();
  dir.close();
}

/** {@linkcode bareDurableWrite} with synchronous calls. */
export function bareDurableWriteSync(target: string, data: Uint8Array): void {
  const temp = tempName(target);
  const file = Deno.openSync(temp, { write: true, createNew: true, mode: 0o666 });
  let offset = 0;
  while (offset < data.byteLength) offset += file.writeSync(data.subarray(offset));
  file.syncSync();
  file.close();
  Deno.renameSync(temp, target);
  const dir = Deno.openSync(dirname(target), { read: true });
  dir.syncSync();
  dir.close();
}
