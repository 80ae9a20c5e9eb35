import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openReviewStore, type StaffStore } from './review-store.ts';
import { CONTENT_SECURITY_POLICY, SESSION_COOKIE, startReviewServer, type ReviewServer } from './server.ts';
import { EXPORT_HMI, HMI, parseCsv, writeAgentExport, writeReviewFixture } from '../../test/support/review-fixture.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request, so the Host header can be set freely (fetch would not allow it). */
function send(server: ReviewServer, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers: { host: url.host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('review server', () => {
  let dir: string;
  let staff: StaffStore;
  let server: ReviewServer;
  let cookie: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review-server-'));
    const { auditDb, agentLog } = writeReviewFixture(dir);
    staff = openReviewStore(join(dir, 'review.db'));
    await staff.addUser('bob', 'a long enough password');
    staff.importAgentLog(readFileSync(agentLog));
    staff.importAgentLog(readFileSync(writeAgentExport(dir)));
    server = await startReviewServer({ auditDb, staff, port: 0 });
    const login = await send(server, 'POST', '/login', { 'content-type': 'application/x-www-form-urlencoded' }, 'username=bob&password=a+long+enough+password');
    expect(login.status).toBe(303);
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict;`));
    cookie = setCookie.split(';')[0]!;
  });

  afterAll(async () => {
    await server?.close();
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 by default', () => {
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
  });

  it('sends the strict Content-Security-Policy on every answer, signed in or not', async () => {
    for (const reply of [await send(server, 'GET', '/login'), await send(server, 'GET', '/', { cookie }), await send(server, 'GET', '/api/nothing')]) {
      expect(reply.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
      expect(reply.headers['x-content-type-options']).toBe('nosniff');
    }
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe-inline');
  });

  it('refuses the API without a session and the page redirects to the login', async () => {
    expect((await send(server, 'GET', '/api/scans')).status).toBe(401);
    expect((await send(server, 'GET', '/api/scans', { cookie: `${SESSION_COOKIE}=forged` })).status).toBe(401);
    const page = await send(server, 'GET', '/');
    expect(page.status).toBe(303);
    expect(page.headers.location).toBe('/login');
    expect((await send(server, 'GET', '/app.js')).status).toBe(303);
  });

  it('refuses a foreign Host header (DNS rebinding) and a cross-origin login', async () => {
    expect((await send(server, 'GET', '/api/scans', { cookie, host: 'attacker.example:80' })).status).toBe(403);
    const crossOrigin = await send(server, 'POST', '/login', { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://attacker.example' }, 'token=x');
    expect(crossOrigin.status).toBe(403);
  });

  it('is read-only: anything but GET to the API is refused', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      expect((await send(server, method, '/api/scans', { cookie })).status).toBe(405);
    }
  });

  it('validates queries: unknown, repeated and malformed parameters are a 400 with the reason', async () => {
    const unknown = await send(server, 'GET', '/api/scans?colour=red', { cookie });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body)).toMatchObject({ code: 'BAD_REQUEST', error: 'colour: unknown field' });
    expect((await send(server, 'GET', '/api/scans?verdict=a&verdict=b', { cookie })).status).toBe(400);
    expect((await send(server, 'GET', '/api/scans?verdict=clean', { cookie })).status).toBe(400);
    expect((await send(server, 'GET', '/api/scans?since=yesterday', { cookie })).status).toBe(400);
    expect((await send(server, 'GET', '/api/export?format=xml', { cookie })).status).toBe(400);
  });

  it('filters scans by operator, file name and hash', async () => {
    const get = async (query: string): Promise<string[]> => (JSON.parse((await send(server, 'GET', `/api/scans?${query}`, { cookie })).body) as { scans: Array<{ scanId: string }> }).scans.map((s) => s.scanId);
    expect(await get('operator=op-9')).toEqual(['scan-b']);
    expect(await get('file=notes.txt')).toEqual(['scan-b']);
    expect(await get(`file=sha256:${'7'.repeat(64)}`)).toEqual(['scan-c']);
    expect(await get('since=2025-03-01T08:15Z&until=2025-03-01T08:35Z')).toEqual(['scan-d', 'scan-c']);
  });

  it('gives a scan with the agent records of its manifest, and escapes control characters in JSON', async () => {
    const a = JSON.parse((await send(server, 'GET', '/api/scans/scan-a', { cookie })).body) as { agent: Array<{ code: string; hmi: string; chain: string }> };
    expect(a.agent.filter((r) => r.hmi === HMI).map((r) => [r.code, r.chain])).toEqual([['APPROVED', 'verified'], ['IMPORTED', 'verified'], ['FILE_UNLISTED', 'verified'], ['PARTIAL', 'verified']]);
    expect(a.agent.filter((r) => r.hmi === EXPORT_HMI).map((r) => [r.code, r.chain])).toEqual([['APPROVED', 'unverified'], ['IMPORTED', 'unverified']]);
    const b = await send(server, 'GET', '/api/scans/scan-b', { cookie });
    expect(b.body).not.toMatch(/\\u001b|\\u202e/);
    expect(b.body).toContain('\\\\x1b');
    expect((await send(server, 'GET', '/api/scans/nope', { cookie })).status).toBe(404);
    expect((await send(server, 'GET', '/api/scans/%E0%A4%A', { cookie })).status).toBe(400);
  });

  it('reports the chain state and the daily chart data', async () => {
    const chain = JSON.parse((await send(server, 'GET', '/api/chain?wait=1', { cookie })).body) as { ok: boolean; state: string };
    expect(chain).toMatchObject({ state: 'checked', ok: true });
    const stats = JSON.parse((await send(server, 'GET', '/api/stats/daily?since=2025-03-01&until=2025-03-01', { cookie })).body) as { days: Array<{ day: string; scans: number; blockedScans: number }> };
    expect(stats.days).toEqual([{ day: '2025-03-01', scans: 5, blockedScans: 3, rejected: 1, blockedFiles: 4 }]);
  });

  it('exports the HMI records of the filtered scans as CSV and JSON, each saying whether its chain was verified', async () => {
    const csv = await send(server, 'GET', '/api/export?format=csv&records=agent&serial=SER-scan-a', { cookie });
    expect(csv.status).toBe(200);
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="portcullis-hmi-records-.*\.csv"$/);
    const [header, ...rows] = parseCsv(csv.body);
    const col = (name: string): number => header!.indexOf(name);
    expect(col('chain')).toBeGreaterThanOrEqual(0);
    expect(rows.map((r) => [r[col('hmi')], r[col('code')], r[col('chain')]])).toEqual([
      [HMI, 'APPROVED', 'verified'], [HMI, 'IMPORTED', 'verified'], [HMI, 'FILE_UNLISTED', 'verified'], [HMI, 'PARTIAL', 'verified'],
      [EXPORT_HMI, 'APPROVED', 'unverified'], [EXPORT_HMI, 'IMPORTED', 'unverified'],
    ]);
    expect(rows.every((r) => r[col('scan_id')] === 'scan-a')).toBe(true);
    const json = JSON.parse((await send(server, 'GET', '/api/export?format=json&records=agent&serial=SER-scan-a', { cookie })).body) as Array<{ scanId: string; hmi: string; chain: string }>;
    expect(json.map((r) => [r.scanId, r.hmi, r.chain])).toEqual(rows.map((r) => [r[col('scan_id')], r[col('hmi')], r[col('chain')]]));
    expect((await send(server, 'GET', '/api/export?format=csv&records=hmi', { cookie })).status).toBe(400);
    const none = await send(server, 'GET', '/api/export?format=csv&records=agent&operator=op-9', { cookie });
    expect(parseCsv(none.body)).toEqual([header]);
  });

  it('exports CSV with spreadsheet formulas neutralised and as an attachment', async () => {
    const csv = await send(server, 'GET', '/api/export?format=csv&operator=op-9', { cookie });
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="portcullis-scans-.*\.csv"$/);
    expect(csv.body).toContain(",'+SUM(A1).csv,");
    expect(csv.body.split('\r\n').filter((l) => l.startsWith('scan-b,')).length).toBe(3);
  });

});

describe('review sign-in limits', () => {
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
  const ALICE = 'alice has a long password';
  const BOB = 'bob has a long password too';
  let dir: string;
  let staff: StaffStore;
  let server: ReviewServer;
  let passwordChecks: number;

  const signIn = (body: string, headers: Record<string, string> = {}): Promise<Reply> => send(server, 'POST', '/login', { ...FORM, ...headers }, body);
  const password = (user: string, pass: string): string => `username=${user}&password=${encodeURIComponent(pass)}`;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review-limits-'));
    const { auditDb } = writeReviewFixture(dir);
    staff = openReviewStore(join(dir, 'review.db'));
    await staff.addUser('alice', ALICE);
    await staff.addUser('bob', BOB);
    passwordChecks = 0;
    // The real store, counting how many passwords it was asked to check.
    const counting: StaffStore = { ...staff, checkPassword: (user, pass) => (passwordChecks++, staff.checkPassword(user, pass)) };
    server = await startReviewServer({ auditDb, staff: counting, port: 0 });
  });

  afterEach(async () => {
    await server?.close();
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('checks at most five of 40 concurrent guesses for one account, so a right guess among the rest gets no session', async () => {
    const wrong = Array.from({ length: 39 }, (_, i) => signIn(password('alice', `wrong guess number ${i}`)));
    await expect.poll(() => passwordChecks).toBeGreaterThanOrEqual(5);
    const right = await signIn(password('alice', ALICE));
    const replies = await Promise.all(wrong);
    expect(right.status).toBe(429);
    expect(right.headers['set-cookie']).toBeUndefined();
    expect(passwordChecks).toBe(5);
    expect(replies.filter((r) => r.status === 401)).toHaveLength(5);
    expect(replies.filter((r) => r.status === 429)).toHaveLength(34);
  });

  it('locks the password sign-in of the account that failed five times, not the other staff at the same address', async () => {
    for (let i = 0; i < 5; i++) expect((await signIn(password('alice', `wrong ${i}`))).status).toBe(401);
    const locked = await signIn(password('alice', ALICE));
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await signIn(password('bob', BOB))).status).toBe(303);
  });

  it('locks an address that tried 20 wrong passwords across accounts, but a valid one-time token still signs in', async () => {
    for (const user of ['alice', 'carol', 'dave', 'erin']) {
      for (let i = 0; i < 5; i++) expect((await signIn(password(user, `wrong ${i}`))).status).toBe(401);
    }
    expect((await signIn(password('bob', BOB))).status).toBe(429);
    expect((await signIn('token=not-a-valid-token')).status).toBe(401);
    const { token } = staff.issueToken('test');
    const withToken = await signIn(`token=${token}`);
    expect(withToken.status).toBe(303);
    expect(String(withToken.headers['set-cookie'])).toMatch(new RegExp(`^${SESSION_COOKIE}=`));
  });

  it('refuses sign-in and sign-out from an opaque or foreign origin (Origin: null, Sec-Fetch-Site: cross-site)', async () => {
    const nullOrigin = await signIn(password('alice', ALICE), { origin: 'null' });
    expect(nullOrigin.status).toBe(403);
    expect(JSON.parse(nullOrigin.body)).toMatchObject({ code: 'FORBIDDEN' });
    expect((await signIn(password('alice', ALICE), { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    const ok = await signIn(password('alice', ALICE), { origin: server.url, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(303);
    const cookie = String(ok.headers['set-cookie']).split(';')[0]!;
    expect((await send(server, 'POST', '/logout', { cookie, origin: 'null' })).status).toBe(403);
    expect((await send(server, 'GET', '/api/me', { cookie })).status).toBe(200);
    expect((await send(server, 'POST', '/logout', { cookie, origin: server.url })).status).toBe(303);
    expect((await send(server, 'GET', '/api/me', { cookie })).status).toBe(401);
  });
});

describe('review server reached by a configured name', () => {
  let dir: string;
  let auditDb: string;
  let staff: StaffStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review-names-'));
    ({ auditDb } = writeReviewFixture(dir));
    staff = openReviewStore(join(dir, 'review.db'));
    await staff.addUser('bob', 'a long enough password');
  });
  afterAll(() => {
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers the public name a TLS proxy forwards, signs in from its https origin, and still refuses other names', async () => {
    const server = await startReviewServer({ auditDb, staff, port: 0, publicNames: ['Review.Plant.Example', 'review.plant.example:8443'] });
    try {
      for (const host of ['review.plant.example', 'review.plant.example:8443']) expect((await send(server, 'GET', '/login', { host })).status).toBe(200);
      for (const host of ['review.plant.example:8765', 'attacker.example']) expect((await send(server, 'GET', '/login', { host })).status).toBe(403);
      const login = await send(server, 'POST', '/login', { host: 'review.plant.example', origin: 'https://review.plant.example', 'content-type': 'application/x-www-form-urlencoded' }, 'username=bob&password=a+long+enough+password');
      expect(login.status).toBe(303);
      const foreign = await send(server, 'POST', '/login', { host: 'review.plant.example', origin: 'https://attacker.example', 'content-type': 'application/x-www-form-urlencoded' }, 'token=x');
      expect(foreign.status).toBe(403);
    } finally {
      await server.close();
    }
  });

  it('names a --host that is not an address of this machine with REVIEW_LISTEN_FAILED', async () => {
    await expect(startReviewServer({ auditDb, staff, port: 0, host: '192.0.2.1' })).rejects.toMatchObject({ code: 'REVIEW_LISTEN_FAILED' });
  });

  it('refuses to listen on every address without a public name, which every remote browser would be refused for', async () => {
    for (const host of ['0.0.0.0', '::']) {
      await expect(startReviewServer({ auditDb, staff, port: 0, host })).rejects.toMatchObject({ code: 'REVIEW_PUBLIC_NAME_NEEDED' });
    }
    const server = await startReviewServer({ auditDb, staff, port: 0, host: '0.0.0.0', publicNames: ['kiosk7.plant.example'] });
    try {
      const port = new URL(server.url).port;
      expect((await send(server, 'GET', '/login', { host: 'kiosk7.plant.example' })).status).toBe(200);
      expect((await send(server, 'GET', '/login', { host: `kiosk7.plant.example:${port}` })).status).toBe(403);
    } finally {
      await server.close();
    }
  });
});
