/**
 * Review sign-ins are auditable events (IEC 62443-3-3 SR 2.8): every
 * sign-in, refused sign-in, lock, sign-out and one-time token lands in the
 * review database and goes to the SIEM with the other records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReviewStore, type StaffStore } from './review-store.ts';
import { startReviewServer, type ReviewServer } from './server.ts';
import { openSiemSpool } from './siem.ts';
import { writeReviewFixture } from '../../test/support/review-fixture.ts';

function post(server: ReviewServer, path: string, body: string, cookie?: string): Promise<{ status: number; cookie: string | null }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path, headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0]?.split(';')[0] ?? null }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('review sign-ins in the log', () => {
  let dir: string;
  let auditDb: string;
  let staff: StaffStore;
  let server: ReviewServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review-sign-ins-'));
    auditDb = writeReviewFixture(dir).auditDb;
    staff = openReviewStore(join(dir, 'review.db'));
    await staff.addUser('dana', 'dana has a long password');
    server = await startReviewServer({ auditDb, staff, port: 0, loginLimits: { windowMs: 60_000, perAccount: 2, perAddress: 50 } });
  });
  afterAll(async () => {
    await server?.close();
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('records success, failure, lock, token and sign-out, and the SIEM gets each once', async () => {
    const token = staff.issueToken('test').token;
    expect((await post(server, '/login', 'username=dana&password=wrong+password+1')).status).toBe(401);
    expect((await post(server, '/login', 'username=dana&password=wrong+password+2')).status).toBe(401);
    expect((await post(server, '/login', 'username=dana&password=dana+has+a+long+password')).status).toBe(429);
    expect((await post(server, '/login', 'token=not-a-token')).status).toBe(401);
    const signedIn = await post(server, '/login', `token=${token}`);
    expect(signedIn.status).toBe(303);
    expect((await post(server, '/logout', '', signedIn.cookie!)).status).toBe(303);
    const events = staff.signInsAfter(0, 100);
    expect(events.map((e) => [e.event, e.username, e.method])).toEqual([
      ['SIGN_IN_FAILED', 'dana', 'password'],
      ['SIGN_IN_FAILED', 'dana', 'password'],
      ['SIGN_IN_LOCKED', 'dana', 'password'],
      ['TOKEN_FAILED', null, 'token'],
      ['TOKEN_USED', null, 'token'],
      ['SIGN_OUT', 'token', null],
    ]);
    expect(events.every((e) => e.address === '127.0.0.1' && /^\d{4}-\d{2}-\d{2}T/.test(e.at))).toBe(true);

    const spool = openSiemSpool(join(dir, 'spool.db'));
    try {
      spool.collect({ auditDb, staff });
      const again = spool.collect({ auditDb, staff });
      expect(again.added).toBe(0);
      expect(spool.highWater('sign-in')).toBe(events.at(-1)!.id);
      const db = (spool as unknown as { path: string }).path;
      const { default: Database } = await import('better-sqlite3');
      const raw = new Database(db, { readonly: true });
      const messages = raw.prepare("SELECT message FROM spool WHERE source = 'sign-in' ORDER BY id").pluck().all() as string[];
      raw.close();
      expect(messages.map((m) => m.split(' ')[5])).toEqual(['SIGN_IN_FAILED', 'SIGN_IN_FAILED', 'SIGN_IN_LOCKED', 'TOKEN_FAILED', 'TOKEN_USED', 'SIGN_OUT']);
      expect(messages[2]).toMatch(/^<108>1 /); // warning, facility 13
      expect(messages[2]).toContain('user="dana"');
    } finally {
      spool.close();
    }
  });
});
