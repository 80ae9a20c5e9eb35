import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reviewCommand, reviewServeCommand, siemCommand } from './commands.ts';
import { openReviewStore } from './review-store.ts';
import type { ReviewServer } from './server.ts';
import { writeReviewFixture } from './test-fixture.ts';

function sink(): { write: (s: string) => void; text: () => string } {
  let out = '';
  return { write: (s) => void (out += s), text: () => out };
}

describe('review and siem commands', () => {
  let dir: string;
  let auditDb: string;
  let agentLog: string;
  let reviewDb: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'review-cli-'));
    ({ auditDb, agentLog } = writeReviewFixture(dir));
    reviewDb = join(dir, 'review.db');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints a one-time token that the review database accepts once', async () => {
    const stdout = sink();
    expect(await reviewCommand(['token', '--review-db', reviewDb], { stdout, stderr: sink() })).toBe(0);
    const token = stdout.text().trim();
    const store = openReviewStore(reviewDb);
    try {
      expect(store.useToken(token)).toBe(true);
      expect(store.useToken(token)).toBe(false);
    } finally {
      store.close();
    }
  });

  it('imports agent logs and says how many records were new', async () => {
    const stdout = sink();
    expect(await reviewCommand(['import-agent-log', agentLog, '--review-db', reviewDb], { stdout, stderr: sink() })).toBe(0);
    expect(stdout.text()).toContain('jsonl, 4 records from HMI-LINE3: 4 new, 0 already imported');
    const stderr = sink();
    expect(await reviewCommand(['import-agent-log', join(dir, 'audit.db'), '--review-db', reviewDb], { stdout: sink(), stderr })).toBe(1);
    expect(stderr.text()).toContain('REVIEW_IMPORT_CHAIN_BROKEN');
  });

  it('answers usage errors with exit 64', async () => {
    expect(await reviewCommand(['token', '--review-db', reviewDb, '--bogus'], { stdout: sink(), stderr: sink() })).toBe(64);
    expect(await siemCommand(['send', '--db', auditDb, '--spool', join(dir, 's.db'), '--target', 'nohost'], { stdout: sink(), stderr: sink() })).toBe(64);
  });

  it('siem send exits 1 and keeps the messages spooled when the receiver is unreachable', async () => {
    const stderr = sink();
    expect(await siemCommand(['send', '--db', auditDb, '--spool', join(dir, 'spool.db'), '--target', '127.0.0.1:1'], { stdout: sink(), stderr })).toBe(1);
    expect(stderr.text()).toContain('SIEM_SEND_FAILED');
  });

  it('serves the review on loopback until told to stop', async () => {
    let stop: () => void = () => {};
    const until = new Promise<void>((resolve) => (stop = resolve));
    let server: ReviewServer | null = null;
    const stdout = sink();
    const done = reviewServeCommand({ db: auditDb, reviewDb, port: 0, until, stdout, stderr: sink(), onListening: (s) => (server = s) });
    await expect.poll(() => server).not.toBeNull();
    const response = await fetch(`${server!.url}/login`);
    expect(response.status).toBe(200);
    stop();
    expect(await done).toBe(0);
    expect(stdout.text()).toMatch(/^review at http:\/\/127\.0\.0\.1:\d+\//);
  });
});
