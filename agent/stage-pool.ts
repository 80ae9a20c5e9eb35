/**
 * Stages files on worker threads, so that hashing (WebAssembly BLAKE3 and
 * SHA-256) and the many small filesystem calls of an import use every core
 * instead of the one the event loop runs on. Each worker runs several files
 * at once; a file goes to the worker with the fewest in hand.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { stageFile, type StageHooks, type StageRequest, type StageResult } from './stage-file.ts';
import type { FromWorker, ToWorker } from './stage-worker.ts';

/** In the single executable: the worker's bundled source (agent/sea/build.ts defines it). */
declare const PORTCULLIS_STAGE_WORKER_SOURCE: string | undefined;

export interface Stager {
  stage(request: StageRequest, signal?: AbortSignal): Promise<StageResult>;
  close(): Promise<void>;
}

/** The same work in the calling thread: for the test hooks, which cannot cross to a worker. */
export function inThreadStager(hooks: (request: StageRequest) => Omit<StageHooks, 'signal'>): Stager {
  return {
    stage: (request, signal) => stageFile(request, { ...hooks(request), signal }),
    close: () => Promise.resolve(),
  };
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, (r: StageResult) => void>;
}

const stopped = (error: Error): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `a staging thread stopped (${error.message}): nothing of this file was kept`, digest: null });

function startWorker(): Worker {
  if (typeof PORTCULLIS_STAGE_WORKER_SOURCE === 'string') return new Worker(PORTCULLIS_STAGE_WORKER_SOURCE, { eval: true });
  return new Worker(new URL('./stage-worker.ts', import.meta.url));
}

/** Worker threads for staging: one per core, at most four. */
export function createStagePool(threads = Math.max(1, Math.min(availableParallelism(), 4))): Stager {
  let nextId = 1;
  let broken: Error | null = null;
  let closing = false;
  const slots: Slot[] = [];
  for (let i = 0; i < threads; i++) {
    const slot: Slot = { worker: startWorker(), pending: new Map() };
    slot.worker.on('message', (message: FromWorker) => {
      const waiter = slot.pending.get(message.id);
      if (!waiter) return;
      slot.pending.delete(message.id);
      // An exception inside stageFile is a bug; the file is still refused, never passed (fail closed).
      waiter('result' in message ? message.result : { ok: false, code: 'COPY_FAILED', reason: `internal error while staging: ${message.error}`, digest: null });
    });
    // A worker that dies takes its files with it: they are refused, and so is every later file (fail closed).
    const fail = (error: Error): void => {
      broken ??= error;
      for (const w of slot.pending.values()) w(stopped(error));
      slot.pending.clear();
    };
    slot.worker.on('error', fail);
    // Any exit not asked for by close() breaks the pool, even with nothing in hand: no file may be sent to a dead worker.
    slot.worker.on('exit', (code) => { if (!closing) fail(new Error(`exited with code ${code}`)); });
    slots.push(slot);
  }
  return {
    stage(request, signal) {
      if (broken) return Promise.resolve(stopped(broken));
      const slot = slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
      const id = nextId++;
      return new Promise<StageResult>((resolve) => {
        const onAbort = (): void => slot.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
        signal?.addEventListener('abort', onAbort, { once: true });
        slot.pending.set(id, (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        });
        slot.worker.postMessage({ type: 'stage', id, request } satisfies ToWorker);
        if (signal?.aborted) onAbort();
      });
    },
    async close() {
      closing = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
