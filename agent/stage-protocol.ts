/** The messages between the stage pool (agent/stage-pool.ts) and its workers (agent/stage-worker.ts). */
import type { StageRequest, StageResult } from './stage-file.ts';

/**
 * Requests a worker holds at once: it goes on with the next while the main
 * thread, busy with a group commit, has not yet read its last answer.
 */
export const IN_FLIGHT = 8;

/**
 * A worker sends the answers it has gathered once this many wait, once it
 * has nothing left to do, or before it starts a file of ANSWER_BEFORE_BYTES
 * or more (so finished files never wait behind a long one). A message per
 * file cost the main thread about as much as the naming of the file itself.
 */
export const ANSWER_BATCH = IN_FLIGHT / 2;
export const ANSWER_BEFORE_BYTES = 1024 * 1024; // bytes

export interface StageWorkerData {
  /** IN_FLIGHT Int32 flags; non-zero aborts the request in that slot. */
  readonly abortFlags: SharedArrayBuffer;
}

/** One file for a worker: `request.source` as a path string or its bytes in an ArrayBuffer of their own. */
export interface StageJob {
  readonly id: number;
  readonly slot: number;
  readonly request: Omit<StageRequest, 'source'> & { readonly source: string | Uint8Array };
}
export type Answer = { readonly id: number; readonly result: StageResult } | { readonly id: number; readonly error: string };

/** The pool sends every file it gives a thread in one dispatch as one message; the worker answers in batches. */
export type ToWorker = { readonly type: 'stage'; readonly jobs: readonly StageJob[] };
export type FromWorker = { readonly answers: readonly Answer[] };
