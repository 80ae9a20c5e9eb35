/**
 * Worker-thread entry of the stage pool: stages one file at a time with
 * synchronous calls (stageFileSync) and answers with the result. Requests
 * come at most IN_FLIGHT at a time, each in a slot; the pool aborts one by
 * setting its slot's flag in shared memory, which the read loop polls (a
 * message could not be taken while the loop runs). In the single executable
 * this file is bundled on its own and started from source text
 * (agent/sea/build.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DualDigest, wasmBlake3 } from '../manifest/index.ts';
import { stageFileSync } from './stage-file.ts';
import { COPY_CHUNK_BYTES } from './verified-copy.ts';
import type { FromWorker, StageWorkerData, ToWorker } from './stage-protocol.ts';

const port = parentPort;
if (port) {
  const flags = new Int32Array((workerData as StageWorkerData).abortFlags);
  const queue: ToWorker[] = [];
  const scratch = Buffer.allocUnsafe(COPY_CHUNK_BYTES); // one file at a time: one read buffer for all
  let running = false;
  const run = async (): Promise<void> => {
    running = true;
    for (let message = queue.shift(); message; message = queue.shift()) {
      const slot = message.slot;
      let answer: FromWorker;
      try {
        // A Buffer arrives as a plain Uint8Array (structured clone): make it a Buffer path again.
        const source = typeof message.request.source === 'string' ? message.request.source : Buffer.from(message.request.source.buffer, message.request.source.byteOffset, message.request.source.byteLength);
        const digest = await DualDigest.create(wasmBlake3);
        answer = { id: message.id, result: stageFileSync({ ...message.request, source }, digest, () => Atomics.load(flags, slot) !== 0, scratch) };
      } catch (error) {
        answer = { id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
      }
      port.postMessage(answer satisfies FromWorker);
    }
    running = false;
  };
  port.on('message', (message: ToWorker) => {
    queue.push(message);
    if (!running) void run();
  });
}
