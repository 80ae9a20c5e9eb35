import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reviewCommand, reviewServeCommand, siemCommand } from './review-command.ts';
import { openReviewStore } from '../review/review-store.ts';
import type { ReviewServer } from '../review/server.ts';
import { writeReviewFixture } from '../../test/support/review-fixture.ts';

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
  });

  /** Runs `review import-agent-log FILES` into a fresh review database; the exit code, stderr and how many records it holds. */
  async function importInto(files: readonly string[]): Promise<{ code: number; stderr: string; records: number }> {
    const db = join(mkdtempSync(join(dir, 'import-')), 'review.db');
    const stderr = sink();
    const code = await reviewCommand(['import-agent-log', ...files, '--review-db', db], { stdout: sink(), stderr });
    const store = openReviewStore(db);
    try {
      return { code, stderr: stderr.text(), records: store.agentRecords().length };
    } finally {
      store.close();
    }
  }
  /** One line: "portcullis-kiosk: CODE: ..." and nothing else (no stack). */
  const oneLine = (code: string): RegExp => new RegExp(`^portcullis-kiosk: ${code}: [^\\n]+\\n$`);
  const expectRefused = (result: { code: number; stderr: string; records: number }, code: string): void => {
    expect(result.stderr).toMatch(oneLine(code));
    expect(result.code).toBe(1);
    expect(result.records).toBe(0);
  };

  it('tells a missing file, a folder, a FIFO and a file that is no agent log apart from a broken chain, importing nothing', async () => {
    expectRefused(await importInto([agentLog, join(dir, 'no-such.log.jsonl')]), 'REVIEW_IMPORT_NOT_FOUND');
    expectRefused(await importInto([dir]), 'REVIEW_IMPORT_UNREADABLE');
    const fifo = join(dir, 'agent.fifo');
    execFileSync('mkfifo', [fifo]);
    expectRefused(await importInto([fifo]), 'REVIEW_IMPORT_UNREADABLE');
    const notes = join(dir, 'notes.txt');
    writeFileSync(notes, 'shift handover\nline 3 drive checked\n');
    const object = join(dir, 'object.json');
    writeFileSync(object, '{"seq":1}\n');
    for (const garbage of [auditDb, notes, object]) expectRefused(await importInto([garbage]), 'REVIEW_IMPORT_NOT_AGENT_LOG');
    const lines = readFileSync(agentLog, 'utf8').split('\n');
    const edited = join(dir, 'edited.log.jsonl');
    writeFileSync(edited, lines.map((l, i) => (i === 0 ? l.replace('manifest verified', 'manifest verified!') : l)).join('\n'));
    const appended = join(dir, 'appended.log.jsonl');
    writeFileSync(appended, `${lines.join('\n')}not a record\n`);
    for (const tampered of [edited, appended]) expectRefused(await importInto([tampered]), 'REVIEW_IMPORT_CHAIN_BROKEN');
  });

  it('answers a port already in use with one line naming REVIEW_PORT_IN_USE and exit 1 (the real command line)', async () => {
    const blocker = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const port = (blocker.address() as AddressInfo).port;
      const cli = spawnSync(process.execPath, [join(import.meta.dirname, '../main.ts'), 'review', '--db', auditDb, '--review-db', reviewDb, '--port', String(port)], { encoding: 'utf8', timeout: 30_000 });
      expect(cli.status).toBe(1);
      expect(cli.stderr).toMatch(oneLine('REVIEW_PORT_IN_USE'));
    } finally {
      blocker.close();
    }
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

  it('refuses --host 0.0.0.0 without --public-name in one line naming REVIEW_PUBLIC_NAME_NEEDED, and a malformed name as a usage error', async () => {
    const stderr = sink();
    expect(await reviewCommand(['--db', auditDb, '--review-db', reviewDb, '--host', '0.0.0.0', '--port', '0'], { stdout: sink(), stderr })).toBe(1);
    expect(stderr.text()).toMatch(/^portcullis-kiosk: REVIEW_PUBLIC_NAME_NEEDED: [^\n]+\n$/);
    expect(await reviewCommand(['--db', auditDb, '--review-db', reviewDb, '--public-name', 'http://x/', '--port', '0'], { stdout: sink(), stderr: sink() })).toBe(64);
  });

  it('serves on every address behind a public name and warns that the review itself has no TLS', async () => {
    let stop: () => void = () => {};
    const until = new Promise<void>((resolve) => (stop = resolve));
    let server: ReviewServer | null = null;
    const stdout = sink();
    const done = reviewCommand(['--db', auditDb, '--review-db', reviewDb, '--host', '0.0.0.0', '--port', '0', '--public-name', 'kiosk7.plant.example'], { stdout, stderr: sink(), until, onListening: (s) => (server = s) });
    await expect.poll(() => server).not.toBeNull();
    const port = new URL(server!.url).port;
    expect((await fetch(`http://127.0.0.1:${port}/login`)).status).toBe(200);
    stop();
    expect(await done).toBe(0);
    expect(stdout.text()).toMatch(/^warning: .*TLS/m);
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
