/**
 * A site end to end, as processes on loopback: PostgreSQL, the central
 * review (`portcullis-kiosk review --central`), two kiosks forwarding their
 * audit logs (`siem send --central`) and three HMI agents forwarding theirs
 * (`portcullis-agent forward`), all over mutual TLS with an openssl-made site
 * CA. The traffic is made by the programs themselves: drives scanned by
 * `portcullis-kiosk scan` (clamd with the test database; one drive carries
 * EICAR), imported at the HMIs by `portcullis-agent import`, a kiosk key
 * revoked by `trust revoke`, a drive nobody scanned, an HMI reinstalled (a
 * new log chain) and an agent record edited on disk before it was sent. The central review must show every event, each host's
 * health, the tampering and the path of a file from the kiosk to the HMIs,
 * through its API and in Chromium.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR } from '../../kiosk/engines/clamav/test-database.ts';
import { keyIdOf, publicKeyFromPem } from '../../manifest/keys.ts';
import { makeSitePki, type SitePki } from '../support/site-pki.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

const KIOSK = join(import.meta.dirname, '../../kiosk/main.ts');
const AGENT = join(import.meta.dirname, '../../agent/main.ts');
const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'a long central password';
/** On every drive: the file to follow from the kiosks to the HMIs. */
const SHARED_TEXT = 'Line 3 changeover procedure, rev. 7\n';
const SHARED_SHA256 = createHash('sha256').update(SHARED_TEXT).digest('hex');
const EICAR_SHA256 = createHash('sha256').update(EICAR).digest('hex');

let dir: string;
let pgServer: TestPostgres;
let pki: SitePki;
let central: { web: string; ingest: number; stop: () => Promise<void> };
let cookie = '';
let lostKeyId = '';

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

/** A drive: a folder with the shared procedure, files of its own, and EICAR when `malware`. */
function drive(name: string, malware = false): string {
  const root = join(dir, 'drives', name);
  mkdirSync(join(root, 'docs'), { recursive: true });
  writeFileSync(join(root, 'docs', 'procedure.txt'), SHARED_TEXT);
  writeFileSync(join(root, 'docs', `${name}-notes.txt`), `notes for ${name}\n`);
  if (malware) {
    mkdirSync(join(root, 'tools'));
    writeFileSync(join(root, 'tools', 'update.txt'), EICAR);
  }
  return root;
}

/** `portcullis-kiosk scan` of a drive at one kiosk, as a process. */
async function scan(kiosk: string, drivePath: string, operator: string): Promise<void> {
  const result = await run(KIOSK, ['scan', drivePath, '--key', join(dir, kiosk, 'kiosk.key'), '--db', join(dir, `${kiosk}.db`), '--kiosk-id', kiosk,
    '--operator', operator, '--clamav-db', 'test', '--json']);
  expect([0, 10], result.stderr).toContain(result.code);
}

/** `portcullis-agent ARGS --log LOG --hmi NAME` as a process. */
async function agent(hmi: string, args: string[], log = join(dir, `${hmi}.jsonl`)): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(AGENT, [...args, '--log', log, '--hmi', hmi]);
}

/** An HMI set up as the MSI would: a trust store with both kiosks' keys (and `more`), media binding optional for folder drives. */
async function setUpHmi(hmi: string, more: string[] = []): Promise<void> {
  const trust = join(dir, `${hmi}-trust.json`);
  for (const pem of [join(dir, 'kiosk-1', 'kiosk.pub.pem'), join(dir, 'kiosk-2', 'kiosk.pub.pem'), ...more]) {
    const added = await agent(hmi, ['trust', 'add', pem, '--trust', trust]);
    expect(added.code, added.stderr).toBe(0);
  }
  const policy = await agent(hmi, ['trust', 'policy', '--trust', trust, '--media-binding', 'optional']);
  expect(policy.code, policy.stderr).toBe(0);
}

/** `portcullis-agent import` of a drive into its own folder of the HMI's inbox; the exit code (0 all, 10 some refused, 20 none). */
async function importAt(hmi: string, drivePath: string): Promise<number> {
  const to = join(dir, `${hmi}-inbox`, `${basename(drivePath)}-${Date.now()}`);
  mkdirSync(to, { recursive: true });
  return (await agent(hmi, ['import', drivePath, '--to', to, '--trust', join(dir, `${hmi}-trust.json`)])).code;
}

function agentConfig(name: string): string {
  const cert = pki.client(name);
  const config = join(dir, `${name}.json`);
  writeFileSync(config, JSON.stringify({ formatVersion: 1, trust: `${name}-trust.json`, log: `${name}.jsonl`, hmiName: name,
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

  // Two kiosks with their keys; a lost kiosk's key that hmi-1 revokes and hmi-2 still trusts.
  // Independent programs run side by side, as on a site; each kiosk and each HMI does its own things in order.
  const keys = await Promise.all(['kiosk-1', 'kiosk-2', 'lost-kiosk'].map((k) => run(KIOSK, ['keygen', '--out', join(dir, k)])));
  expect(keys.map((k) => k.code)).toEqual([0, 0, 0]);
  const lostKey = join(dir, 'lost-kiosk', 'kiosk.pub.pem');
  lostKeyId = keyIdOf(publicKeyFromPem(readFileSync(lostKey, 'utf8')));
  // The day at the gate: drives scanned at both kiosks (scan processes), one with malware, one never scanned.
  const drives = { a: drive('a'), b: drive('b'), c: drive('c', true), d: drive('d'), e: drive('e'), unscanned: drive('unscanned') };
  await Promise.all([
    (async () => {
      await scan('kiosk-1', drives.a, 'op-1');
      await scan('kiosk-1', drives.b, 'op-2');
      await scan('kiosk-1', drives.c, 'op-1');
    })(),
    (async () => {
      await scan('kiosk-2', drives.d, 'op-3');
      await scan('kiosk-2', drives.e, 'op-3');
    })(),
  ]);
  // At the HMIs (agent processes): hmi-1 revokes the lost key and imports a, c, d; hmi-2 meets the unscanned drive and imports a, e; hmi-3 imports b.
  await Promise.all([
    (async () => {
      await setUpHmi('hmi-1');
      expect((await agent('hmi-1', ['trust', 'revoke', lostKeyId, '--trust', join(dir, 'hmi-1-trust.json'), '--reason', 'kiosk lost'])).code).toBe(0);
      expect(await importAt('hmi-1', drives.a)).toBe(0);
      expect(await importAt('hmi-1', drives.c)).toBe(10); // the malware was blocked at the kiosk: the HMI refuses it, the rest passes
      expect(await importAt('hmi-1', drives.d)).toBe(0);
    })(),
    (async () => {
      await setUpHmi('hmi-2', [lostKey]);
      expect(await importAt('hmi-2', drives.unscanned)).toBe(20);
      expect(await importAt('hmi-2', drives.a)).toBe(0);
      expect(await importAt('hmi-2', drives.e)).toBe(0);
    })(),
    (async () => {
      await setUpHmi('hmi-3');
      expect(await importAt('hmi-3', drives.b)).toBe(0);
    })(),
  ]);

  // Everything forwarded: the kiosks by siem send --central, the HMIs by portcullis-agent forward (processes).
  const configs = { 'hmi-1': agentConfig('hmi-1'), 'hmi-2': agentConfig('hmi-2'), 'hmi-3': agentConfig('hmi-3') };
  const sent = await Promise.all([
    ...['kiosk-1', 'kiosk-2'].map((name) => {
      const cert = pki.client(name);
      return run(KIOSK, ['siem', 'send', '--central', '--db', join(dir, `${name}.db`), '--spool', join(dir, `${name}-spool.db`), '--target', `127.0.0.1:${central.ingest}`,
        '--tls', '--ca', pki.caPath, '--cert', cert.certPath, '--key', cert.keyPath, '--servername', 'localhost', '--kiosk-id', name]);
    }),
    ...(['hmi-1', 'hmi-2', 'hmi-3'] as const).map((name) => run(AGENT, ['forward', '--config', configs[name]])),
  ]);
  for (const r of sent) expect(r.code, r.stderr + r.stdout).toBe(0);
  // hmi-3 reinstalled: its log and trust store are gone, it is set up again and imports drive a: a new chain.
  renameSync(join(dir, 'hmi-3.jsonl'), join(dir, 'hmi-3.old.jsonl'));
  renameSync(join(dir, 'hmi-3-trust.json'), join(dir, 'hmi-3-trust.old.json'));
  await setUpHmi('hmi-3');
  expect(await importAt('hmi-3', drives.a)).toBe(0);
  // hmi-2 goes on (drive d), and its record of importing the procedure from d is edited on disk before it is sent.
  const before = readFileSync(join(dir, 'hmi-2.jsonl'), 'utf8');
  expect(await importAt('hmi-2', drives.d)).toBe(0);
  const added = readFileSync(join(dir, 'hmi-2.jsonl'), 'utf8').slice(before.length).split('\n');
  const target = added.findIndex((l) => l.includes('"event":"file.imported"') && l.includes('procedure.txt'));
  expect(target).toBeGreaterThanOrEqual(0);
  added[target] = added[target]!.replace('"reason":"', '"reason":"(nothing to see) ');
  writeFileSync(join(dir, 'hmi-2.jsonl'), before + added.join('\n'));
  const again = await Promise.all((['hmi-2', 'hmi-3'] as const).map((name) => run(AGENT, ['forward', '--config', configs[name]])));
  for (const r of again) expect(r.code, r.stderr + r.stdout).toBe(0);
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
  it('shows every scan of both kiosks, the malware block among them, and what the HMI did with that drive', async () => {
    const { scans } = await api<{ scans: Array<{ scanId: string; kioskId: string; status: string; blocked: number }> }>('/api/scans?limit=100');
    expect(scans.map((s) => s.kioskId).sort()).toEqual(['kiosk-1', 'kiosk-1', 'kiosk-1', 'kiosk-2', 'kiosk-2']);
    const partial = scans.filter((s) => s.status === 'partial');
    expect(partial.map((s) => [s.kioskId, s.blocked])).toEqual([['kiosk-1', 1]]);
    expect(partial[0]!.scanId).toMatch(/^kiosk-1\//);
    const detail = await api<{ scan: { files: Array<{ path: string; verdict: string; reasons: Array<{ code: string }> }> }; agent: Array<{ hmi: string; event: string; code: string }> }>(`/api/scans/${encodeURIComponent(partial[0]!.scanId)}`);
    expect(detail.scan.files.find((f) => f.path === 'tools/update.txt')).toMatchObject({ verdict: 'blocked', reasons: [{ code: 'MALWARE' }] });
    expect(detail.agent.filter((a) => a.event === 'file.refused').map((a) => `${a.hmi} ${a.code}`)).toEqual(['hmi-1 BLOCKED_AT_KIOSK']);
    expect(detail.agent.filter((a) => a.event === 'file.imported').map((a) => a.hmi)).toEqual(['hmi-1', 'hmi-1']);
  });

  it('shows each host\'s health: the tampering, the reinstall and the revoked key still trusted', async () => {
    const { sources } = await api<{ sources: Array<{ name: string; site: string; level: string; problems: string[]; chains: Array<{ number: number; records: number }> }> }>('/api/central/health');
    const by = new Map(sources.map((s) => [s.name, s]));
    expect([...by.keys()].sort()).toEqual(['hmi-1', 'hmi-2', 'hmi-3', 'kiosk-1', 'kiosk-2']);
    expect(by.get('kiosk-1')).toMatchObject({ level: 'ok', problems: [], site: 'plant-north' });
    expect(by.get('kiosk-2')).toMatchObject({ level: 'ok', site: 'plant-south' });
    expect(by.get('hmi-1')).toMatchObject({ level: 'ok', problems: [] });
    expect(by.get('hmi-2')!.level).toBe('error');
    expect(by.get('hmi-2')!.problems.join(' ')).toMatch(/edited.*tampering/);
    expect(by.get('hmi-2')!.problems.join(' ')).toContain(`still trusts kiosk key ${lostKeyId.slice(0, 16)}`);
    expect(by.get('hmi-3')!.chains.map((c) => c.number)).toEqual([1, 2]);
    expect(by.get('hmi-3')!.problems.join(' ')).toMatch(/2 log chains/);
  });

  it('follows one file from the kiosks to every HMI it reached, though the HMIs check only its BLAKE3', async () => {
    const path = await api<{ kiosk: Array<{ kioskId: string }>; hmi: Array<{ hmi: string; destination: string; sha256: string | null; chain: string }> }>(`/api/central/file?hash=sha256:${SHARED_SHA256}`);
    expect(path.kiosk.map((k) => k.kioskId).sort()).toEqual(['kiosk-1', 'kiosk-1', 'kiosk-1', 'kiosk-2', 'kiosk-2']);
    // hmi-1: a, c, d; hmi-2: a, e (its record of d was edited and refused); hmi-3: b, then a after the reinstall.
    expect(path.hmi.map((h) => h.hmi).sort()).toEqual(['hmi-1', 'hmi-1', 'hmi-1', 'hmi-2', 'hmi-2', 'hmi-3', 'hmi-3']);
    expect(path.hmi.every((h) => h.sha256 === null && h.destination === 'docs/procedure.txt')).toBe(true);
  });

  it('exports the scans and their HMI records across the kiosks', async () => {
    const csv = await (await fetch(`${central.web}/api/export?format=csv&file=sha256:${EICAR_SHA256}`, { headers: { cookie } })).text();
    expect(csv.split('\r\n').filter((l) => l.includes('tools/update.txt'))).toHaveLength(1);
    const agentRows = await (await fetch(`${central.web}/api/export?format=json&records=agent&file=sha256:${EICAR_SHA256}`, { headers: { cookie } })).json() as Array<{ hmi: string; event: string }>;
    expect(agentRows.map((a) => `${a.hmi} ${a.event}`)).toEqual(expect.arrayContaining(['hmi-1 drive.checked', 'hmi-1 file.refused', 'hmi-1 import.finished']));
  });

  it('lists HMI events without a manifest and the alerts, and counts every forwarded record once', async () => {
    const { records } = await api<{ records: Array<{ hmi: string; event: string; code: string }> }>('/api/central/hmi-events');
    expect(records.map((r) => `${r.hmi} ${r.event} ${r.code}`)).toEqual(expect.arrayContaining(['hmi-1 trust.key-revoked TRUST_CHANGED', 'hmi-2 drive.checked NO_MANIFEST']));
    const alerts = await api<{ alerts: Array<{ code: string; source: string }>; refusals: Array<{ code: string; source: string }> }>('/api/central/alerts');
    expect(alerts.alerts.map((a) => `${a.source} ${a.code}`)).toContain('hmi-3 NEW_CHAIN');
    expect(alerts.refusals.map((a) => `${a.source} ${a.code}`)).toEqual(['hmi-2 INGEST_RECORD_EDITED']);
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
      expect(await page.locator('#health tbody').textContent()).toMatch(/trust store #\d+, 2 key\(s\)/);
      await page.fill('#file-path input[name=hash]', SHARED_SHA256);
      await page.click('#file-path button');
      await expect.poll(() => page.locator('#file-hmi tbody tr').count()).toBe(7);
      await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(5);
      // The picture in docs/ is renewed only when asked (PORTCULLIS_DOC_SCREENSHOTS=1), so a test run leaves the checkout clean.
      await page.screenshot({ path: process.env.PORTCULLIS_DOC_SCREENSHOTS === '1' ? join(import.meta.dirname, '../../docs/central-review-screenshot.png') : join(tmpdir(), 'portcullis-central-review-screenshot.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
