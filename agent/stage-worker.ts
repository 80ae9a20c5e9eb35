/**
 * Worker-thread entry of the stage pool: runs stageFile for each request it
 * is sent, several at a time, and answers with the result. A request can be
 * aborted by id. In the single executable this file is bundled on its own and
 * started from source text (agent/sea/build.ts).
 */
import { parentPort } from 'node:worker_threads';
import { stageFile, type StageRequest, type StageResult } from './stage-file.ts';

export type ToWorker = { readonly type: 'stage'; readonly id: number; readonly request: StageRequest } | { readonly type: 'abort'; readonly id: number };
export type FromWorker = { readonly id: number; readonly result: StageResult } | { readonly id: number; readonly error: string };

const port = parentPort;
if (port) {
  const running = new Map<number, AbortController>();
  port.on('message', (message: ToWorker) => {
    if (message.type === 'abort') {
      running.get(message.id)?.abort();
      return;
    }
    const controller = new AbortController();
    running.set(message.id, controller);
    // A Buffer arrives as a plain Uint8Array (structured clone): make it a Buffer path again.
    const source = typeof message.request.source === 'string' ? message.request.source : Buffer.from(message.request.source);
    stageFile({ ...message.request, source }, { signal: controller.signal })
      .then((result) => port.postMessage({ id: message.id, result } satisfies FromWorker))
      .catch((error: unknown) => port.postMessage({ id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies FromWorker))
      .finally(() => running.delete(message.id));
  });
}
