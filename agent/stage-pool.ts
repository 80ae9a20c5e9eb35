/**
 * Stages files on worker threads, so that hashing (WebAssembly BLAKE3 and
 * SHA-256) and the many small filesystem calls of an import use every core
 * instead of the one the event loop runs on, and libuv's small shared thread
 * pool stays free for the main thread's own calls (naming, folder fsyncs).
 */
import { unlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { stageFile, type StageHooks, type StageRequest, type StageResult } from './stage-file.ts';
import { IN_FLIGHT, type FromWorker, type StageJob, type StageWorkerData, type ToWorker } from './stage-protocol.ts';

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

interface Job {
  readonly id: number;
  readonly request: StageRequest;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (r: StageResult) => void;
}

interface Thread {
  readonly worker: Worker;
  /** Shared with the worker: one abort flag per slot. */
  readonly flags: Int32Array;
  /** The job in each slot (null: free). */
  readonly slots: Array<Job | null>;
}

const stopped = (error: Error): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `a staging thread stopped (${error.message}): nothing of this file was kept`, digest: null });
const abortedBeforeStart: StageResult = { ok: false, code: 'ABORTED', reason: 'cancelled before the file was read', digest: null };

/** Files a thread holds now. */
const inHandOf = (thread: Thread): number => thread.slots.reduce((n, job) => n + (job ? 1 : 0), 0);

/** A dead worker's partial staging file, removed now rather than at the next start. */
function removeStaging(job: Job): void {
  if (job.request.stagingPath === null) return;
  try {
    unlinkSync(job.request.stagingPath);
  } catch {
    // never created, or already gone
  }
}

/**
 * trackUnmanagedFds off: a staged copy's descriptor is opened on a worker and
 * handed to the calling thread, which holds it until the file is named and
 * closes it. With Node's default a worker would count those descriptors as
 * its own: it warned "opened in unmanaged mode twice" each time it opened a
 * number the calling thread had closed (about 14 000 lines of
 * stderr in an import of 20 000 files), and closed every one it still counted when it exited, under the
 * calling thread's feet, so that a later close could hit another file that
 * got the number. A worker that dies in the middle of a file leaks that one
 * descriptor instead (the file is refused and its staging name removed).
 */
function startWorker(data: StageWorkerData): Worker {
  const options = { workerData: data, trackUnmanagedFds: false };
  if (typeof PORTCULLIS_STAGE_WORKER_SOURCE === 'string') return new Worker(PORTCULLIS_STAGE_WORKER_SOURCE, { ...options, eval: true });
  return new Worker(new URL('./stage-worker.ts', import.meta.url), options);
}

/**
 * Worker threads for staging: each does one file at a time with synchronous
 * calls, so a thread that waits on the disk does not hold a core; hence more
 * threads than cores (two per core, at least two, at most six).
 */
export function defaultStageThreads(cores = availableParallelism()): number {
  return Math.max(2, Math.min(2 * cores, 6));
}

/**
 * The pool keeps the queue itself and gives each worker at most IN_FLIGHT
 * files, so a file not yet started can still be aborted here, and one under
 * way through its slot's shared flag.
 */
export function createStagePool(threads = defaultStageThreads()): Stager & { inHand(): number[]; answerMessages(): number } {
  let nextId = 1;
  let answerMessages = 0;
  let broken: Error | null = null;
  let closing = false;
  const queue: Job[] = [];
  const pool: Thread[] = [];

  /** Gives queued files to threads with free slots; each thread gets this round's files in one message. */
  const dispatch = (): void => {
    const batches = new Map<Thread, StageJob[]>();
    while (queue.length > 0) {
      // The thread with the fewest files in hand: a few big files must not queue behind each other on one thread.
      let target: { thread: Thread; slot: number; busy: number } | null = null;
      for (const thread of pool) {
        const busy = inHandOf(thread);
        const slot = thread.slots.indexOf(null);
        if (slot !== -1 && (target === null || busy < target.busy)) target = { thread, slot, busy };
      }
      if (!target) break;
      const job = queue.shift()!;
      if (job.signal?.aborted) {
        job.resolve(abortedBeforeStart);
        continue;
      }
      Atomics.store(target.thread.flags, target.slot, 0);
      target.thread.slots[target.slot] = job;
      // A small Buffer is a view of Node's shared 8 KiB pool, which structured cloning would copy whole: send the path's bytes alone.
      const source = typeof job.request.source === 'string' ? job.request.source : new Uint8Array(job.request.source);
      let batch = batches.get(target.thread);
      if (!batch) batches.set(target.thread, (batch = []));
      batch.push({ id: job.id, slot: target.slot, request: { ...job.request, source } });
    }
    for (const [thread, jobs] of batches) thread.worker.postMessage({ type: 'stage', jobs } satisfies ToWorker);
  };

  try {
    for (let i = 0; i < threads; i++) startThread();
  } catch (error) {
    // A thread that cannot start leaves none running: nobody would close them.
    for (const thread of pool) void thread.worker.terminate();
    throw error;
  }

  function startThread(): void {
    const shared = new SharedArrayBuffer(IN_FLIGHT * Int32Array.BYTES_PER_ELEMENT);
    const flags = new Int32Array(shared);
    const thread: Thread = { worker: startWorker({ abortFlags: shared }), flags, slots: new Array<Job | null>(IN_FLIGHT).fill(null) };
    thread.worker.on('message', (message: FromWorker) => {
      answerMessages++;
      for (const answer of message.answers) {
        const slot = thread.slots.findIndex((j) => j?.id === answer.id);
        if (slot === -1) continue;
        const job = thread.slots[slot]!;
        thread.slots[slot] = null;
        // An exception inside stageFileSync is a bug; the file is still refused, never passed (fail closed).
        job.resolve('result' in answer ? answer.result : { ok: false, code: 'COPY_FAILED', reason: `internal error while staging: ${answer.error}`, digest: null });
      }
      dispatch();
    });
    // A worker that dies takes its files with it: they are refused, and so is every later file (fail closed).
    const fail = (error: Error): void => {
      broken ??= error;
      thread.slots.forEach((job, slot) => {
        if (job) removeStaging(job);
        job?.resolve(stopped(error));
        thread.slots[slot] = null;
      });
      for (const job of queue.splice(0)) job.resolve(stopped(broken));
    };
    thread.worker.on('error', fail);
    // Any exit not asked for by close() breaks the pool, even with nothing in hand: no file may be sent to a dead worker.
    thread.worker.on('exit', (code) => { if (!closing) fail(new Error(`exited with code ${code}`)); });
    pool.push(thread);
  }
  return {
    stage(request, signal) {
      if (broken) return Promise.resolve(stopped(broken));
      if (closing) return Promise.resolve(stopped(new Error('the pool was closed')));
      return new Promise<StageResult>((resolve) => {
        const job: Job = {
          id: nextId++,
          request,
          signal,
          resolve: (r) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(r);
          },
        };
        function onAbort(): void {
          const waiting = queue.indexOf(job);
          if (waiting !== -1) {
            queue.splice(waiting, 1);
            job.resolve(abortedBeforeStart);
            return;
          }
          for (const thread of pool) {
            const slot = thread.slots.indexOf(job);
            if (slot !== -1) Atomics.store(thread.flags, slot, 1);
          }
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(job);
        dispatch();
      });
    },
    inHand() {
      return pool.map(inHandOf);
    },
    /** Messages of answers received so far (a worker answers several files per message). */
    answerMessages() {
      return answerMessages;
    },
    async close() {
      closing = true;
      await Promise.all(pool.map((t) => t.worker.terminate()));
      // Whatever was still asked for is refused, never left waiting (fail closed).
      const closed = stopped(new Error('the pool was closed'));
      for (const job of queue.splice(0)) job.resolve(closed);
      for (const thread of pool) thread.slots.forEach((job, slot) => {
        job?.resolve(closed);
        thread.slots[slot] = null;
      });
    },
  };
}
