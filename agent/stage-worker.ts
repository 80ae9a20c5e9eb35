/**
 * Worker-thread entry of the stage pool: stages one file at a time with
 * synchronous calls (stageFileSync) and answers with the results, a few at a
 * time (ANSWER_BATCH). Requests come at most IN_FLIGHT at a time, each in a
 * slot; the pool aborts one by setting its slot's flag in shared memory,
 * which the read loop polls (a message could not be taken while the loop
 * runs). In the single executable this file is bundled on its own and
 * started from source text (agent/sea/build.ts).
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { FileHasher } from './file-digest.ts';
import { stageFileSync } from './stage-file.ts';
import { COPY_CHUNK_BYTES } from './verified-copy.ts';
import { ANSWER_BATCH, ANSWER_BEFORE_BYTES, type Answer, type FromWorker, type StageJob, type StageWorkerData, type ToWorker } from './stage-protocol.ts';

const port = parentPort;
if (port) {
  const flags = new Int32Array((workerData as StageWorkerData).abortFlags);
  const queue: StageJob[] = [];
  const scratch = Buffer.allocUnsafe(COPY_CHUNK_BYTES); // one file at a time: one read buffer for all
  let outbox: Answer[] = [];
  const send = (): void => {
    if (outbox.length === 0) return;
    port.postMessage({ answers: outbox } satisfies FromWorker);
    outbox = [];
  };
  let running = false;
  const run = async (): Promise<void> => {
    running = true;
    try {
      await drain();
    } finally {
      running = false;
    }
  };
  const drain = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const slot = job.slot;
      try {
        if (job.request.expected.size >= ANSWER_BEFORE_BYTES) send();
        // A Buffer arrives as a plain Uint8Array (structured clone): make it a Buffer path again.
        const source = typeof job.request.source === 'string' ? job.request.source : Buffer.from(job.request.source.buffer, job.request.source.byteOffset, job.request.source.byteLength);
        const digest = await FileHasher.create(job.request.digests);
        outbox.push({ id: job.id, result: stageFileSync({ ...job.request, source }, digest, () => Atomics.load(flags, slot) !== 0, scratch) });
      } catch (error) {
        outbox.push({ id: job.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
      // Files the pool sent meanwhile wait as messages that no event has delivered yet (this loop holds the thread): take them now.
      for (let waiting = receiveMessageOnPort(port); waiting; waiting = receiveMessageOnPort(port)) queue.push(...(waiting.message as ToWorker).jobs);
      if (outbox.length >= ANSWER_BATCH || queue.length === 0) send();
    }
  };
  // Answers that cannot be sent must not be lost quietly: the thread ends, and the pool refuses every file it held.
  const start = (): void => void run().catch(() => process.exit(1));
  port.on('message', (message: ToWorker) => {
    queue.push(...message.jobs);
    if (!running) start();
  });
}
