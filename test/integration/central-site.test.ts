/**
 * A site end to end, as processes on loopback: PostgreSQL, the central
 * review (`portcullis-kiosk review --central`), two kiosks forwarding their
 * audit logs (`siem send --central`) and three HMI agents forwarding theirs
 * (`portcullis-agent forward`), all over mutual TLS with an openssl-made site
 * CA. A day of traffic: scans at both kiosks (one with malware), imports of
 * the approved drives at the HMIs, a trust change, a drive with no manifest,
 * an HMI reinstalled (a new log chain) and an agent record tampered with
 * before it was sent. The central review must show every event, each host's
 * health, the tampering and the path of a file from the kiosk to the HMIs,
 * through its API and in Chromium.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../agent/audit-log.ts';
import { generateSigningKey, keyIdOf, publicKeyToPem, type SigningKey } from '../../manifest/keys.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { beginInput, file, finishInput } from '../support/audit-log-fixture.ts';
import { makeSitePki, type SitePki } from '../support/site-pki.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

const KIOSK = join(import.meta.dirname, '../../kiosk/main.ts');
const AGENT = join(import.meta.dirname, '../../agent/main.ts');
const CHROMIUM = '/usr/bin/chromium';
const DAY = Date.parse('2025-03-03T00:00:00Z');
const PASSWORD = 'a long central password';
const SHARED_FILE = 'a'.repeat(64); // firmware/plc.bin in every approved scan (the fixture's digest)
const KEY = (c: string): string => c.repeat(64);
/** The kiosks' signing key, and a lost kiosk's key that hmi-1 revokes and hmi-2 still trusts. */
const KIOSK_KEY: SigningKey = generateSigningKey();
const LOST_KEY: SigningKey = generateSigningKey();
const idOf = (k: SigningKey): string => keyIdOf(k.publicKey);

let dir: string;
let pgServer: TestPostgres;
let pki: SitePki;
let central: { web: string; ingest: number; stop: () => Promise<void> };
let cookie = '';

function run(command: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function startCentral(): Promise<typeof central> {
  const child = spawn(process.execPath, [KIOSK, 'review', '--central', '--database', pgServer.url, '--port', '0', '--ingest-port', '0',
    '--tls-cert', pki.server.certPath, '--tls-key', pki.server.keyPath, '--client-ca', pki.caPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const web = /central review at (http:\/\/[^ ]+)\//.exec(out);
      const ingest = /receiving records on 127\.0\.0\.1:([0-9]+)/.exec(out);
      if (web && ingest) {
        resolve({ web: web[1]!, ingest: Number(ingest[1]), stop: async () => {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('close', r));
        } });
      }
    });
    child.once('close', (code) => reject(new Error(`the central review exited ${code}: ${out}`)));
  });
}

/** A kiosk's day: `scans` scans every 40 minutes from 07:00, one with malware at `malwareAt`. */
function kioskDay(name: string, scans: number, malwareAt: number): string {
  const path = join(dir, `${name}.db`);
  let t = DAY + 6 * 3600_000;
  const store = openAuditStore(path, { now: () => new Date((t += 1000)) });
  try {
    store.recordEvent('KEY_GENERATED', { keyId: idOf(KIOSK_KEY) });
    for (let i = 0; i < scans; i++) {
      const id = `${name}-scan-${i}`;
      const minute = 7 * 60 + i * 40;
      t = DAY + minute * 60_000;
      store.beginScan({ ...beginInput(id, 0, { kioskId: name, operatorId: `op-${i % 3}` }), startedAt: new Date(DAY + minute * 60_000) });
      const base = finishInput(id, 0);
      const manifest = { digest: `sha256:${createDigest(name, i)}`, keyId: KEY('2'), expiresAt: '2025-03-04T00:00:00Z' };
      if (i === malwareAt) {
        store.finishScan({ ...base, finishedAt: new Date(DAY + minute * 60_000 + 30_000), manifest,
          decision: { verdict: 'partial', driveReasons: [], files: [...base.decision.files, file('tools/update.exe', 'blocked', { reasons: [{ code: 'MALWARE', detail: 'Win.Test.EICAR' }] }, '9')] },
          engines: { ...base.engines, clamav: { version: 'ClamAV 1.4.6', databaseVersion: '27600', databaseTime: new Date(Date.now() - 3600_000).toISOString() } } });
      } else {
        store.finishScan({ ...base, finishedAt: new Date(DAY + minute * 60_000 + 30_000), manifest,
          engines: { ...base.engines, clamav: { version: 'ClamAV 1.4.6', databaseVersion: '27600', databaseTime: new Date(Date.now() - 3600_000).toISOString() } } });
      }
    }
  } finally {
    store.close();
  }
  return path;
}

function createDigest(kiosk: string, i: number): string {
  return Buffer.from(`${kiosk}:${i}`).toString('hex').padEnd(64, '0').slice(0, 64);
}

/** An HMI's agent log for the day: imports of the given kiosks' drives, and optionally a trust change and a drive without a manifest. */
function hmiDay(name: string, log: string, imports: Array<{ kiosk: string; scan: number }>, extra: { trust?: boolean; unscanned?: boolean; start?: number } = {}): void {
  let t = extra.start ?? DAY + 8 * 3600_000;
  const audit = new AuditLog(log, { hmi: name, clock: () => new Date((t += 60_000)) });
  audit.append({ event: 'agent.started', outcome: 'info', code: 'SERVICE_STARTED', reason: 'watching drives' });
  if (extra.trust) audit.append({ event: 'trust.key-revoked', outcome: 'changed', code: 'TRUST_CHANGED', reason: 'revoked kiosk key (lost kiosk)', keyId: idOf(LOST_KEY) });
  if (extra.unscanned) audit.append({ event: 'drive.checked', outcome: 'refused', code: 'NO_MANIFEST', reason: 'no manifest on the drive: scan it at the kiosk first' });
  for (const { kiosk, scan } of imports) {
    const manifestDigest = `sha256:${createDigest(kiosk, scan)}`;
    audit.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'manifest verified', manifestDigest, keyId: idOf(KIOSK_KEY) });
    audit.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest, path: 'firmware/plc.bin', destination: `D:\\Line\\${kiosk}-${scan}\\plc.bin`, digests: { sha256: SHARED_FILE, blake3: KEY('f'), size: 1234 } });
    audit.append({ event: 'import.finished', outcome: 'info', code: 'DONE', reason: '1 imported', manifestDigest });
  }
}

function agentConfig(name: string, log: string, trustKeys: SigningKey[]): string {
  const cert = pki.client(name);
  const trust = join(dir, `${name}-trust.json`);
  writeFileSync(trust, JSON.stringify({ formatVersion: 1, sequence: 3, updatedAt: '2025-03-03T06:00:00Z',
    keys: trustKeys.map((k) => ({ keyId: idOf(k), label: null, publicKey: publicKeyToPem(k.publicKey), notBefore: null, notAfter: null, addedAt: '2025-03-01T00:00:00Z' })),
    revoked: [], policy: { maxManifestAgeHours: 168, destination: null, clash: 'refuse', requireMediaBinding: false }, signature: null }));
  const config = join(dir, `${name}.json`);
  writeFileSync(config, JSON.stringify({ formatVersion: 1, trust, log, hmiName: name,
    forward: { target: `127.0.0.1:${central.ingest}`, ca: pki.caPath, cert: cert.certPath, key: cert.keyPath, servername: 'localhost', state: `${name}-forward.json` } }));
  return config;
}

async function api<T>(path: string): Promise<T> {
  const reply = await fetch(`${central.web}${path}`, { headers: { cookie } });
  expect(reply.status, path).toBe(200);
  return (await reply.json()) as T;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'central-site-'));
  pki = makeSitePki(join(dir, 'pki'));
  pgServer = await startPostgres();
  const enrolK = await run(KIOSK, ['review', 'source', 'add', 'kiosk-1', '--kind', 'kiosk', '--site', 'plant-north', '--database', pgServer.url]);
  expect(enrolK.code, enrolK.stderr).toBe(0);
  const enrolK2 = await run(KIOSK, ['review', 'source', 'add', 'kiosk-2', '--kind', 'kiosk', '--site', 'plant-south', '--database', pgServer.url]);
  expect(enrolK2.code, enrolK2.stderr).toBe(0);
  expect(enrolK.code, enrolK.stderr).toBe(0);
  const enrolH = await run(KIOSK, ['review', 'source', 'add', 'hmi-1', 'hmi-2', 'hmi-3', '--kind', 'hmi', '--site', 'plant-north', '--database', pgServer.url]);
  expect(enrolH.code, enrolH.stderr).toBe(0);
  expect((await run(KIOSK, ['review', 'user', 'add', 'alice', '--database', pgServer.url], `${PASSWORD}\n`)).code).toBe(0);
  central = await startCentral();

  // The day at the kiosks, forwarded by two processes.
  const kiosks = [kioskDay('kiosk-1', 12, 5), kioskDay('kiosk-2', 8, 99)];
  for (const [i, db] of kiosks.entries()) {
    const name = `kiosk-${i + 1}`;
    const cert = pki.client(name);
    const sent = await run(KIOSK, ['siem', 'send', '--central', '--db', db, '--spool', join(dir, `${name}-spool.db`), '--target', `127.0.0.1:${central.ingest}`,
      '--tls', '--ca', pki.caPath, '--cert', cert.certPath, '--key', cert.keyPath, '--servername', 'localhost', '--kiosk-id', name]);
    expect(sent.code, sent.stderr).toBe(0);
  }

  // The HMIs: hmi-1 imports from both kiosks and revokes a key; hmi-2 meets an unscanned drive; hmi-3 is reinstalled mid-day.
  const logs = { 'hmi-1': join(dir, 'hmi-1.jsonl'), 'hmi-2': join(dir, 'hmi-2.jsonl'), 'hmi-3': join(dir, 'hmi-3.jsonl') };
  hmiDay('hmi-1', logs['hmi-1'], [{ kiosk: 'kiosk-1', scan: 0 }, { kiosk: 'kiosk-2', scan: 1 }, { kiosk: 'kiosk-1', scan: 5 }], { trust: true });
  hmiDay('hmi-2', logs['hmi-2'], [{ kiosk: 'kiosk-1', scan: 0 }, { kiosk: 'kiosk-2', scan: 3 }], { unscanned: true });
  hmiDay('hmi-3', logs['hmi-3'], [{ kiosk: 'kiosk-2', scan: 2 }]);
  const configs = {
    'hmi-1': agentConfig('hmi-1', logs['hmi-1'], [KIOSK_KEY]),
    'hmi-2': agentConfig('hmi-2', logs['hmi-2'], [KIOSK_KEY, LOST_KEY]), // still trusts the key hmi-1 revoked
    'hmi-3': agentConfig('hmi-3', logs['hmi-3'], [KIOSK_KEY]),
  };
  for (const name of ['hmi-1', 'hmi-2', 'hmi-3'] as const) {
    const sent = await run(AGENT, ['forward', '--config', configs[name]]);
    expect(sent.code, sent.stderr + sent.stdout).toBe(0);
  }
  // hmi-3 reinstalled: its old log is kept aside, a new one begins and is forwarded as a new chain.
  renameSync(logs['hmi-3'], join(dir, 'hmi-3.old.jsonl'));
  hmiDay('hmi-3', logs['hmi-3'], [{ kiosk: 'kiosk-1', scan: 0 }], { start: DAY + 15 * 3600_000 });
  // hmi-2 writes one more record, which is edited on disk before it is sent.
  const lines = readFileSync(logs['hmi-2'], 'utf8');
  const tampered = new AuditLog(logs['hmi-2'], { hmi: 'hmi-2', clock: () => new Date(DAY + 20 * 3600_000) });
  tampered.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest: `sha256:${createDigest('kiosk-2', 3)}`, path: 'recipes/line2.csv', destination: 'D:\\Line\\line2.csv', digests: { sha256: KEY('3'), blake3: KEY('4'), size: 10 } });
  writeFileSync(logs['hmi-2'], lines + readFileSync(logs['hmi-2'], 'utf8').slice(lines.length).replace('recipes/line2.csv', 'recipes/line9.csv'));
  for (const name of ['hmi-2', 'hmi-3'] as const) {
    const sent = await run(AGENT, ['forward', '--config', configs[name]]);
    expect(sent.code, sent.stderr + sent.stdout).toBe(0);
  }
  const token = await run(KIOSK, ['review', 'token', '--database', pgServer.url]);
  const login = await fetch(`${central.web}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token.stdout.trim()}` });
  expect(login.status).toBe(303);
  cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
}, 180_000);

afterAll(async () => {
  await central?.stop();
  pgServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a site on one central review', () => {
  it('shows every scan of both kiosks, the malware block among them', async () => {
    const { scans } = await api<{ scans: Array<{ scanId: string; kioskId: string; status: string; blocked: number }> }>('/api/scans?limit=100');
    expect(scans).toHaveLength(20);
    expect(scans.filter((s) => s.kioskId === 'kiosk-1')).toHaveLength(12);
    expect(scans.filter((s) => s.status === 'partial').map((s) => s.scanId)).toEqual(['kiosk-1/kiosk-1-scan-5']);
    const detail = await api<{ scan: { files: Array<{ path: string; verdict: string }> }; agent: Array<{ hmi: string; event: string }> }>(`/api/scans/${encodeURIComponent('kiosk-1/kiosk-1-scan-5')}`);
    expect(detail.scan.files.find((f) => f.path === 'tools/update.exe')?.verdict).toBe('blocked');
    expect(detail.agent.map((a) => `${a.hmi} ${a.event}`)).toEqual(['hmi-1 drive.checked', 'hmi-1 file.imported', 'hmi-1 import.finished']);
  });

  it('shows each host\'s health: the tampering, the reinstall and the revoked key still trusted', async () => {
    const { sources } = await api<{ sources: Array<{ name: string; level: string; problems: string[]; chains: Array<{ number: number; records: number }> }> }>('/api/central/health');
    const by = new Map(sources.map((s) => [s.name, s]));
    expect([...by.keys()].sort()).toEqual(['hmi-1', 'hmi-2', 'hmi-3', 'kiosk-1', 'kiosk-2']);
    expect(by.get('kiosk-1')).toMatchObject({ level: 'ok', problems: [], site: 'plant-north' });
    expect(by.get('kiosk-2')).toMatchObject({ site: 'plant-south' });
    expect(by.get('hmi-1')).toMatchObject({ level: 'ok' });
    expect(by.get('hmi-2')!.level).toBe('error');
    expect(by.get('hmi-2')!.problems.join(' ')).toMatch(/edited.*tampering/);
    expect(by.get('hmi-2')!.problems.join(' ')).toContain(`still trusts kiosk key ${idOf(LOST_KEY).slice(0, 16)}`);
    expect(by.get('hmi-1')!.problems.join(' ')).not.toContain('still trusts');
    expect(by.get('hmi-3')!.chains.map((c) => c.number)).toEqual([1, 2]);
    expect(by.get('hmi-3')!.problems.join(' ')).toMatch(/2 log chains/);
  });

  it('follows one file from the kiosks to every HMI it reached', async () => {
    const path = await api<{ kiosk: Array<{ kioskId: string }>; hmi: Array<{ hmi: string; destination: string; chain: string }> }>(`/api/central/file?hash=sha256:${SHARED_FILE}`);
    expect(path.kiosk).toHaveLength(20);
    expect(path.hmi.map((h) => h.hmi).sort()).toEqual(['hmi-1', 'hmi-1', 'hmi-1', 'hmi-2', 'hmi-2', 'hmi-3', 'hmi-3']);
    expect(path.hmi.find((h) => h.hmi === 'hmi-3' && h.destination.includes('kiosk-1-0'))).toBeTruthy();
  });

  it('exports the scans and their HMI records across the kiosks', async () => {
    const csv = await (await fetch(`${central.web}/api/export?format=csv&file=sha256:${'9'.repeat(64)}`, { headers: { cookie } })).text();
    expect(csv.split('\r\n').filter((l) => l.includes('tools/update.exe'))).toHaveLength(1);
    const agent = await (await fetch(`${central.web}/api/export?format=json&records=agent&since=2025-03-03T07:00&until=2025-03-03T07:30`, { headers: { cookie } })).json() as Array<{ scanId: string; hmi: string }>;
    expect(agent.map((a) => `${a.scanId} ${a.hmi}`)).toEqual(expect.arrayContaining(['kiosk-1/kiosk-1-scan-0 hmi-1', 'kiosk-1/kiosk-1-scan-0 hmi-2', 'kiosk-1/kiosk-1-scan-0 hmi-3']));
  });

  it('lists HMI events without a manifest and the alerts, and counts every forwarded record once', async () => {
    const { records } = await api<{ records: Array<{ hmi: string; event: string; code: string }> }>('/api/central/hmi-events');
    expect(records.map((r) => `${r.hmi} ${r.code}`)).toEqual(expect.arrayContaining(['hmi-1 TRUST_CHANGED', 'hmi-2 NO_MANIFEST']));
    const alerts = await api<{ alerts: Array<{ code: string; source: string }>; refusals: Array<{ code: string; source: string }> }>('/api/central/alerts');
    expect(alerts.alerts.map((a) => `${a.source} ${a.code}`)).toContain('hmi-3 NEW_CHAIN');
    expect(alerts.refusals.map((a) => `${a.source} ${a.code}`)).toContain('hmi-2 INGEST_RECORD_EDITED');
    const db = await import('pg');
    const client = new db.default.Client({ connectionString: pgServer.url });
    await client.connect();
    const counts = (await client.query<{ name: string; n: string }>('SELECT s.name, count(*) AS n FROM records r JOIN chains c ON c.id = r.chain_id JOIN sources s ON s.id = c.source_id GROUP BY s.name ORDER BY s.name')).rows;
    await client.end();
    // Every record of every log once: the kiosks' whole chains, the HMIs' logs (hmi-3's two), less hmi-2's edited record.
    const head = (name: string): number => Number(new Database(join(dir, `${name}.db`), { readonly: true }).prepare('SELECT seq FROM chain_head').pluck().get());
    const lineCount = (file: string): number => readFileSync(join(dir, file), 'utf8').split('\n').length - 1;
    expect(Object.fromEntries(counts.map((c) => [c.name, Number(c.n)]))).toEqual({
      'kiosk-1': head('kiosk-1'), 'kiosk-2': head('kiosk-2'), 'hmi-1': lineCount('hmi-1.jsonl'), 'hmi-2': lineCount('hmi-2.jsonl') - 1,
      'hmi-3': lineCount('hmi-3.jsonl') + lineCount('hmi-3.old.jsonl'),
    });
    expect(head('kiosk-1')).toBe(64); // 2 events, 12 scans of 5 records, the blocked file and its reason
  });

  it('shows the site views in Chromium', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: run ./portcullis setup`).toBe(true);
    const context: BrowserContext = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(`${central.web}/login`);
      await page.fill('#password-login input[name=username]', 'alice');
      await page.fill('#password-login input[name=password]', PASSWORD);
      await page.click('#password-login button');
      await expect.poll(() => page.locator('#health tbody tr').count()).toBe(5);
      await expect.poll(() => page.locator('#chain').textContent()).toMatch(/^CHAIN PROBLEM: hmi-2: .*tampering/);
      expect(await page.locator('#health tr.health-error').count()).toBeGreaterThanOrEqual(1);
      await expect.poll(() => page.locator('#alerts tbody tr').count()).toBeGreaterThanOrEqual(1);
      expect(await page.locator('#sign-ins tbody').textContent()).toContain('SIGN_IN');
      expect(await page.locator('#hmi-events tbody').textContent()).toContain('NO_MANIFEST');
      expect(await page.locator('#activity-chart rect').count()).toBeGreaterThan(0);
      expect(await page.locator('#activity-chart').textContent()).toContain('plant-south');
      expect(await page.locator('#health tbody').textContent()).toContain('trust store #3');
      await page.fill('#file-path input[name=hash]', SHARED_FILE);
      await page.click('#file-path button');
      await expect.poll(() => page.locator('#file-hmi tbody tr').count()).toBe(7);
      await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(20);
      await page.screenshot({ path: join(import.meta.dirname, '../../docs/central-review-screenshot.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
