/** The messages between the stage pool (agent/stage-pool.ts) and its workers (agent/stage-worker.ts). */
import type { StageRequest, StageResult } from './stage-file.ts';

/**
 * Requests a worker holds at once: it goes on with the next while the main
 * thread, busy with a group commit, has not yet read its last answer.
 */
export const IN_FLIGHT = 8;

export interface StageWorkerData {
  /** IN_FLIGHT Int32 flags; non-zero aborts the request in that slot. */
  readonly abortFlags: SharedArrayBuffer;
}

/** `request.source` as a path string or its bytes in an ArrayBuffer of their own. */
export type ToWorker = { readonly type: 'stage'; readonly id: number; readonly slot: number; readonly request: Omit<StageRequest, 'source'> & { readonly source: string | Uint8Array } };
export type FromWorker = { readonly id: number; readonly result: StageResult } | { readonly id: number; readonly error: string };
