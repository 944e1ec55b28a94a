/**
 * Syncing open pods when the program ends: on normal exit (the `unload`
 * event, synchronous writes), on an uncaught exception or unhandled
 * rejection (the `error` and `unhandledrejection` events, before the
 * runtime exits), and on SIGINT/SIGTERM (sync, then exit with 130/143).
 *
 * Signal listeners are registered through the filesystem seam while at
 * least one pod that wants them is open, and removed when the last one
 * closes. Workers get no signal listeners: a signal is the main thread's
 * business there. Code that stops cleanly on a signal by itself (a
 * tracker's `run`) can defer the first one with {@linkcode deferSignal}.
 *
 * @module
 */

import { fs } from "../_internal/fs.ts";

/** What the exit hooks need from an open pod. */
export interface ExitParticipant {
  /** Writes everything dirty with synchronous calls. */
  flushSync(): void;
  /** Writes everything dirty. */
  sync(): Promise<void>;
  /** Reports an error of an automatic sync. */
  report(error: unknown): void;
}

const EXIT_CODES: Partial<Record<Deno.Signal, number>> = { SIGINT: 130, SIGTERM: 143 };

const participants = new Map<ExitParticipant, boolean>();
let eventsInstalled = false;
let signalsInstalled = false;
let exiting = false;

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";

function flushAllSync(): void {
  for (const participant of participants.keys()) {
    try {
      participant.flushSync();
    } catch (error) {
      participant.report(error);
    }
  }
}

/** Signals left to someone else for now (see {@linkcode deferSignal}), with their counts. */
const deferred = new Map<Deno.Signal, number>();
/** Deferred signals that have arrived once already. */
const caught = new Set<Deno.Signal>();

async function onSignal(signal: Deno.Signal): Promise<void> {
  const code = EXIT_CODES[signal] ?? 1;
  if (deferred.has(signal) && !caught.has(signal)) {
    caught.add(signal); // the first one is the deferrer's business; a second one exits
    return;
  }
  if (exiting) Deno.exit(code); // a second signal: stop waiting
  exiting = true;
  await Promise.all(
    [...participants.keys()].map((participant) =>
      participant.sync().catch((error) => participant.report(error))
    ),
  );
  Deno.exit(code);
}

const signalHandlers = new Map<Deno.Signal, () => void>(
  (Object.keys(EXIT_CODES) as Deno.Signal[]).map((signal) => [signal, () => void onSignal(signal)]),
);

function updateListeners(): void {
  const wantEvents = participants.size > 0;
  if (wantEvents !== eventsInstalled) {
    const method = wantEvents ? "addEventListener" : "removeEventListener";
    for (const event of ["unload", "error", "unhandledrejection"]) {
      globalThis[method](event, flushAllSync);
    }
    eventsInstalled = wantEvents;
  }
  const wantSignals = !inWorker && [...participants.values()].some(Boolean);
  if (wantSignals === signalsInstalled) return;
  for (const [signal, handler] of signalHandlers) {
    try {
      if (wantSignals) fs.addSignalListener(signal, handler);
      else fs.removeSignalListener(signal, handler);
    } catch {
      // The platform lacks this signal (SIGTERM on Windows); the exit
      // and error hooks still apply.
    }
  }
  signalsInstalled = wantSignals;
}

/** Starts syncing `participant` at exit; `signals` adds the SIGINT/SIGTERM handling. */
export function registerExit(participant: ExitParticipant, signals: boolean): void {
  participants.set(participant, signals);
  updateListeners();
}

/** Stops syncing `participant` at exit. */
export function unregisterExit(participant: ExitParticipant): void {
  participants.delete(participant);
  updateListeners();
}

/**
 * Leaves the first `signal` to the caller until the returned function is
 * called: the pods' handler then neither syncs nor exits on it, and a
 * second one makes it sync and exit as usual. For code that stops cleanly
 * on SIGINT by itself (a tracker's `run`). Deferrals nest.
 */
export function deferSignal(signal: Deno.Signal): () => void {
  deferred.set(signal, (deferred.get(signal) ?? 0) + 1);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    const count = deferred.get(signal)! - 1;
    if (count > 0) {
      deferred.set(signal, count);
    } else {
      deferred.delete(signal);
      caught.delete(signal);
    }
  };
}
