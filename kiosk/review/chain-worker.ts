/**
 * Verifies the audit chain off the server's main thread: a year of records
 * takes minutes, and better-sqlite3 is synchronous, so the review would
 * otherwise stop answering while it runs. workerData: { auditDb }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openAuditStore } from '../audit/store.ts';

const { auditDb } = workerData as { auditDb: string };
const store = openAuditStore(auditDb, { readonly: true });
try {
  parentPort?.postMessage({ ok: true, result: store.verifyChain() });
} catch (error) {
  parentPort?.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) });
} finally {
  store.close();
}
