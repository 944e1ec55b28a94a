/**
 * A request/response channel over SharedArrayBuffers, between client
 * Workers (which block with `Atomics.wait`) and a server in the owning
 * thread (which waits with `Atomics.waitAsync`, so its event loop keeps
 * running).
 *
 * The control buffer is an Int32Array: a header (doorbell counter, closed
 * flag, magic number, number of slots), then four integers per client
 * slot (state, chunk length, flags, unused). The data buffer holds one
 * fixed-size message area per slot. A message longer than its area goes
 * in chunks, each acknowledged by the other side. Messages are encoded
 * with `node:v8`'s structured serialization.
 *
 * @module
 */

import { deserialize, serialize } from "node:v8";

export const MAGIC = 0x706f6431; // "pod1"

// Header fields.
const DOORBELL = 0;
const CLOSED = 1;
const MAGIC_FIELD = 2;
const SLOT_COUNT = 3;
const HEADER = 4;

// Per-slot fields.
const SLOT_INTS = 4;
const STATE = 0;
const LENGTH = 1;
const FLAGS = 2;

// Slot states.
const FREE = 0;
const IDLE = 1;
const REQUEST = 2;
const REQUEST_TAKEN = 3;
const RESPONSE = 4;
const RESPONSE_TAKEN = 5;

const MORE = 1;

/** How long a client waits between checks that the server is still open. */
const CHECK_INTERVAL_MS = 250;

/** The shared memory of a channel. */
export interface ChannelBuffers {
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

/** What a request turns into. */
export type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: ErrorPayload };

/** An error as it crosses the channel. */
export interface ErrorPayload {
  readonly name: string;
  readonly message: string;
  readonly path?: string;
  /** The error's own fields with primitive values (`format`, `offset`, `step`, …). */
  readonly fields?: Record<string, string | number | boolean>;
}

/** Allocates the buffers of a channel with `slots` clients of `slotSize` bytes each. */
export function createBuffers(slots: number, slotSize: number): ChannelBuffers {
  const control = new SharedArrayBuffer(4 * (HEADER + slots * SLOT_INTS));
  const ints = new Int32Array(control);
  ints[MAGIC_FIELD] = MAGIC;
  ints[SLOT_COUNT] = slots;
  return { control, data: new SharedArrayBuffer(slots * slotSize) };
}

/** Checks the shape of buffers received from another thread. */
export function isChannel(buffers: Partial<ChannelBuffers>): buffers is ChannelBuffers {
  if (!(buffers.control instanceof SharedArrayBuffer)) return false;
  if (!(buffers.data instanceof SharedArrayBuffer)) return false;
  if (buffers.control.byteLength < 4 * HEADER) return false;
  const ints = new Int32Array(buffers.control);
  const slots = ints[SLOT_COUNT];
  return ints[MAGIC_FIELD] === MAGIC && slots > 0 &&
    buffers.control.byteLength === 4 * (HEADER + slots * SLOT_INTS) &&
    buffers.data.byteLength % slots === 0;
}

export function encodeMessage(message: unknown): Uint8Array {
  const bytes = serialize(message);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeMessage(bytes: Uint8Array): unknown {
  return deserialize(bytes);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** The error thrown on the client side of a closed channel. */
export class ChannelClosedError extends TypeError {}

/** The client end: one slot, synchronous calls. */
export class ChannelClient {
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #base: number;
  readonly #offset: number;
  readonly #size: number;
  readonly #describe: string;
  #open = true;

  /** Claims a free slot; throws a `RangeError` when all are taken. */
  constructor(buffers: ChannelBuffers, describe: string) {
    this.#control = new Int32Array(buffers.control);
    this.#data = new Uint8Array(buffers.data);
    this.#describe = describe;
    const slots = this.#control[SLOT_COUNT];
    this.#size = buffers.data.byteLength / slots;
    if (Atomics.load(this.#control, CLOSED) !== 0) throw this.#closedError();
    for (let slot = 0; slot < slots; slot++) {
      const base = HEADER + slot * SLOT_INTS;
      if (Atomics.compareExchange(this.#control, base + STATE, FREE, IDLE) === FREE) {
        this.#base = base;
        this.#offset = slot * this.#size;
        return;
      }
    }
    throw new RangeError(
      `all ${slots} client slots of ${describe} are taken; close clients you no longer need, ` +
        `or open it with a larger maxClients`,
    );
  }

  #closedError(): ChannelClosedError {
    return new ChannelClosedError(`${this.#describe} is closed`);
  }

  #ring(): void {
    Atomics.add(this.#control, DOORBELL, 1);
    Atomics.notify(this.#control, DOORBELL);
  }

  /** Waits until the slot's state is `wanted`. */
  #waitFor(wanted: number): void {
    const index = this.#base + STATE;
    for (;;) {
      const state = Atomics.load(this.#control, index);
      if (state === wanted) return;
      if (Atomics.load(this.#control, CLOSED) !== 0) {
        this.#open = false;
        throw this.#closedError();
      }
      Atomics.wait(this.#control, index, state, CHECK_INTERVAL_MS);
    }
  }

  /** Sends `bytes` and returns the response's bytes. */
  request(bytes: Uint8Array): Uint8Array {
    if (!this.#open || Atomics.load(this.#control, CLOSED) !== 0) {
      this.#open = false;
      throw this.#closedError();
    }
    const control = this.#control;
    const base = this.#base;
    let sent = 0;
    do {
      const length = Math.min(this.#size, bytes.byteLength - sent);
      this.#data.set(bytes.subarray(sent, sent + length), this.#offset);
      sent += length;
      control[base + LENGTH] = length;
      control[base + FLAGS] = sent < bytes.byteLength ? MORE : 0;
      Atomics.store(control, base + STATE, REQUEST);
      this.#ring();
      // After the last chunk the server may answer at once: wait for the response.
      if (sent < bytes.byteLength) this.#waitFor(REQUEST_TAKEN);
    } while (sent < bytes.byteLength);
    const chunks: Uint8Array[] = [];
    for (;;) {
      this.#waitFor(RESPONSE);
      const length = control[base + LENGTH];
      chunks.push(this.#data.slice(this.#offset, this.#offset + length));
      if ((control[base + FLAGS] & MORE) === 0) break;
      Atomics.store(control, base + STATE, RESPONSE_TAKEN);
      this.#ring();
    }
    Atomics.store(control, base + STATE, IDLE);
    return concat(chunks);
  }

  /** Gives the slot back. */
  release(): void {
    this.#open = false;
    Atomics.store(this.#control, this.#base + STATE, FREE);
  }
}

interface SlotState {
  chunks: Uint8Array[];
  response: Uint8Array | undefined;
  sent: number;
}

/** The server end: serves every slot from the owning thread's event loop. */
export class ChannelServer {
  readonly buffers: ChannelBuffers;
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #size: number;
  readonly #slots: SlotState[];
  readonly #onRequest: (slot: number, bytes: Uint8Array) => void;
  #closed = false;

  constructor(
    slots: number,
    slotSize: number,
    onRequest: (slot: number, bytes: Uint8Array) => void,
  ) {
    this.buffers = createBuffers(slots, slotSize);
    this.#control = new Int32Array(this.buffers.control);
    this.#data = new Uint8Array(this.buffers.data);
    this.#size = slotSize;
    this.#slots = Array.from(
      { length: slots },
      () => ({ chunks: [], response: undefined, sent: 0 }),
    );
    this.#onRequest = onRequest;
    void this.#serve();
  }

  get closed(): boolean {
    return this.#closed;
  }

  async #serve(): Promise<void> {
    while (!this.#closed) {
      const seen = Atomics.load(this.#control, DOORBELL);
      this.#scan();
      if (this.#closed) return;
      const waiting = Atomics.waitAsync(this.#control, DOORBELL, seen);
      if (waiting.async) await waiting.value;
    }
  }

  #scan(): void {
    const control = this.#control;
    for (let slot = 0; slot < this.#slots.length && !this.#closed; slot++) {
      const base = HEADER + slot * SLOT_INTS;
      const state = Atomics.load(control, base + STATE);
      if (state === REQUEST) {
        const length = control[base + LENGTH];
        const more = (control[base + FLAGS] & MORE) !== 0;
        const offset = slot * this.#size;
        const entry = this.#slots[slot];
        entry.chunks.push(this.#data.slice(offset, offset + length));
        Atomics.store(control, base + STATE, REQUEST_TAKEN);
        Atomics.notify(control, base + STATE);
        if (!more) {
          const bytes = concat(entry.chunks);
          entry.chunks = [];
          this.#onRequest(slot, bytes);
        }
      } else if (state === RESPONSE_TAKEN) {
        this.#sendChunk(slot);
      }
    }
  }

  /** Answers the request of `slot`. */
  respond(slot: number, bytes: Uint8Array): void {
    if (this.#closed) return;
    const entry = this.#slots[slot];
    entry.response = bytes;
    entry.sent = 0;
    this.#sendChunk(slot);
  }

  #sendChunk(slot: number): void {
    const entry = this.#slots[slot];
    const bytes = entry.response;
    if (!bytes) return;
    const control = this.#control;
    const base = HEADER + slot * SLOT_INTS;
    const length = Math.min(this.#size, bytes.byteLength - entry.sent);
    this.#data.set(bytes.subarray(entry.sent, entry.sent + length), slot * this.#size);
    entry.sent += length;
    const more = entry.sent < bytes.byteLength;
    if (!more) entry.response = undefined;
    control[base + LENGTH] = length;
    control[base + FLAGS] = more ? MORE : 0;
    Atomics.store(control, base + STATE, RESPONSE);
    Atomics.notify(control, base + STATE);
  }

  /** Stops serving; waiting clients wake up and fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const control = this.#control;
    Atomics.store(control, CLOSED, 1);
    for (let slot = 0; slot < this.#slots.length; slot++) {
      Atomics.notify(control, HEADER + slot * SLOT_INTS + STATE);
    }
    Atomics.add(control, DOORBELL, 1);
    Atomics.notify(control, DOORBELL);
  }
}
