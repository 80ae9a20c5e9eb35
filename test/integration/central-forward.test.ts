/**
 * Forwarding as the hosts run it: a kiosk's `siem send --central --follow`
 * sends a malware block as soon as it is recorded, not at the next round;
 * the agent forwards to a local collector (Debian's rsyslog over plain TCP)
 * with MSGIDs that say what happened, each record once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../agent/audit-log.ts';
import { forwardLog } from '../../agent/forward/forwarder.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { startReceiver, type Receiver } from '../../kiosk/review/central/receiver.ts';
import { openCentralStore, type CentralStore } from '../../kiosk/review/central/store.ts';
import { beginInput, file, finishInput, steppingClock, tamper } from '../support/audit-log-fixture.ts';
import { openSiemSpool } from '../../kiosk/review/siem.ts';
import { openReviewStore } from '../../kiosk/review/review-store.ts';
import { makeSitePki, type SitePki } from '../support/site-pki.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';
import { freePort, RSYSLOGD, waitFor } from './rsyslog-harness.ts';

const KIOSK = join(import.meta.dirname, '../../kiosk/main.ts');
const AGENT = join(import.meta.dirname, '../../agent/main.ts');

function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}
let dir: string;
let pgServer: TestPostgres;
let store: CentralStore;
let receiver: Receiver;
let pki: SitePki;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'central-forward-'));
  pki = makeSitePki(join(dir, 'pki'));
  pgServer = await startPostgres();
  store = await openCentralStore(pgServer.url);
  await store.enrol('gate-1', 'kiosk');
  receiver = await startReceiver({ store, port: 0, tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca } });
}, 120_000);

afterAll(async () => {
  await receiver?.close();
  await store?.close();
  pgServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a kiosk forwarding with --follow', () => {
  it('sends a malware block within seconds of its record, though the round is a minute', async () => {
    const db = join(dir, 'audit.db');
    const audit = openAuditStore(db, { now: steppingClock() });
    audit.beginScan(beginInput('scan-1', 0));
    audit.finishScan(finishInput('scan-1', 0));
    const cert = pki.client('gate-1');
    const child: ChildProcess = spawn(process.execPath, [KIOSK, 'siem', 'send', '--central', '--follow', '60', '--db', db, '--spool', join(dir, 'spool.db'),
      '--target', `127.0.0.1:${receiver.port}`, '--tls', '--ca', pki.caPath, '--cert', cert.certPath, '--key', cert.keyPath, '--servername', 'localhost', '--kiosk-id', 'gate-1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const blocked = async (): Promise<number> => Number((await store.pool.query<{ n: string }>("SELECT count(*) AS n FROM k_files WHERE verdict = 'blocked'")).rows[0]!.n);
      await waitFor(async () => (await store.pool.query('SELECT 1 FROM k_results')).rowCount === 1, `the first scan at the central review (${out})`, 20_000);
      expect(await blocked()).toBe(0);
      await new Promise((r) => setTimeout(r, 500)); // the sender is now waiting for its next round
      audit.beginScan(beginInput('scan-2', 10));
      audit.finishScan(finishInput('scan-2', 10, { decision: { verdict: 'partial', driveReasons: [], files: [file('ok.txt', 'clean', {}, 'b'), file('bad.exe', 'blocked', { reasons: [{ code: 'MALWARE', detail: 'Win.Test.EICAR' }] }, '9')] } }));
      const recorded = Date.now();
      await waitFor(async () => (await blocked()) === 1, `the blocked file at the central review (${out})`, 10_000);
      expect(Date.now() - recorded).toBeLessThan(5_000);
      const msg = await store.pool.query<{ msg_id: string }>("SELECT r.msg_id FROM records r JOIN k_files f ON f.chain_id = r.chain_id AND f.seq = r.seq WHERE f.verdict = 'blocked'");
      expect(msg.rows[0]!.msg_id).toBe('FILE_BLOCKED');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'close');
      audit.close();
    }
  });
});

describe('a kiosk whose audit database was edited before its rows left', () => {
  it('has the edited row refused by name at the central review, the others stored, and the host shown as tampered', async () => {
    await store.enrol('gate-2', 'kiosk');
    const db = join(dir, 'gate-2.db');
    const audit = openAuditStore(db, { now: steppingClock() });
    audit.beginScan(beginInput('scan-9', 0, { kioskId: 'gate-2' }));
    audit.finishScan(finishInput('scan-9', 0, { decision: { verdict: 'partial', driveReasons: [], files: [file('ok.txt', 'clean', {}, 'b'), file('bad.exe', 'blocked', { reasons: [{ code: 'MALWARE', detail: 'Win.Test.EICAR' }] }, '9')] } }));
    audit.close();
    // Someone with the file turns the blocked file into a clean one, leaving its hash as it was.
    tamper(db, (d) => d.prepare("UPDATE files SET verdict = 'clean' WHERE path = 'bad.exe'").run());
    // The kiosk's own review had visitors: their sign-ins go with the records.
    const staff = openReviewStore(join(dir, 'gate-2-review.db'));
    staff.recordSignIn({ event: 'SIGN_IN_FAILED', username: 'mallory', method: 'password', address: '10.0.0.9' });
    staff.recordSignIn({ event: 'SIGN_IN', username: 'alice', method: 'password', address: '127.0.0.1' });
    const spool = openSiemSpool(join(dir, 'gate-2-spool.db'));
    try {
      spool.collectCentral({ auditDb: db, kioskId: 'gate-2', staff });
      spool.collectCentral({ auditDb: db, kioskId: 'gate-2', staff }); // a second round adds nothing
      const pem = pki.client('gate-2');
      await spool.deliver({ host: '127.0.0.1', port: receiver.port, transport: 'tls', protocol: 'central', tls: { ca: pki.ca, cert: pem.cert, key: pem.key, servername: 'localhost' } });
      expect(spool.pending()).toBe(0);
      // Sent again (a lost ACK): nothing counted twice.
      await spool.deliver({ host: '127.0.0.1', port: receiver.port, transport: 'tls', protocol: 'central', tls: { ca: pki.ca, cert: pem.cert, key: pem.key, servername: 'localhost' } });
    } finally {
      spool.close();
      staff.close();
    }
    const signIns = await store.pool.query<{ event: string; username: string; address: string }>("SELECT i.event, i.username, i.address FROM sign_ins i JOIN sources s ON s.id = i.source_id WHERE s.name = 'gate-2' ORDER BY i.source_event_id");
    expect(signIns.rows).toEqual([{ event: 'SIGN_IN_FAILED', username: 'mallory', address: '10.0.0.9' }, { event: 'SIGN_IN', username: 'alice', address: '127.0.0.1' }]);
    const refused = await store.pool.query<{ code: string }>("SELECT code FROM refusals WHERE source_name = 'gate-2'");
    expect(refused.rows.map((r) => r.code)).toEqual(['INGEST_RECORD_EDITED']);
    const files = await store.pool.query<{ path: string; verdict: string }>("SELECT f.path, f.verdict FROM k_files f JOIN chains c ON c.id = f.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name = 'gate-2'");
    expect(files.rows).toEqual([{ path: 'ok.txt', verdict: 'clean' }]);
    // Record 1 (the schema event, before any scan) is the kiosk's like the rest: the chain starts where it should.
    const first = await store.pool.query<{ msg_id: string }>("SELECT r.msg_id FROM records r JOIN chains c ON c.id = r.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name = 'gate-2' AND r.seq = 1");
    expect(first.rows.map((r) => r.msg_id)).toEqual(['SCHEMA_MIGRATED']);
    const { centralHealth } = await import('../../kiosk/review/central/queries.ts');
    const health = (await centralHealth(store.pool, new Date())).find((h) => h.name === 'gate-2')!;
    expect(health.level).toBe('error');
    expect(health.problems.join(' ')).toMatch(/edited.*tampering/);
  });
});

describe('the agent service forwarding as it runs', () => {
  it('sends its start, a drive it refused and its stop from watch, with a heartbeat, while it watches drives', async () => {
    await store.enrol('hmi-w', 'hmi');
    const cert = pki.client('hmi-w');
    const media = join(dir, 'media');
    mkdirSync(media);
    writeFileSync(join(dir, 'hmi-w-trust.json'), JSON.stringify({ formatVersion: 1, sequence: 0, updatedAt: '2025-03-01T00:00:00Z', keys: [], revoked: [],
      policy: { maxManifestAgeHours: 24, destination: join(dir, 'hmi-w-inbox'), clash: 'refuse', requireMediaBinding: false }, signature: null }));
    mkdirSync(join(dir, 'hmi-w-inbox'));
    const config = join(dir, 'hmi-w.json');
    writeFileSync(config, JSON.stringify({ formatVersion: 1, trust: 'hmi-w-trust.json', log: 'hmi-w.jsonl', hmiName: 'hmi-w', source: 'mount-folders', mountFolders: ['media'],
      pollIntervalSeconds: 1, settleSeconds: 0, notify: 'log',
      forward: { target: `127.0.0.1:${receiver.port}`, ca: pki.caPath, cert: cert.certPath, key: cert.keyPath, servername: 'localhost', intervalSeconds: 1 } }));
    const watch = spawn(process.execPath, [AGENT, 'watch', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout.on('data', (c: Buffer) => (out += c.toString()));
    watch.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const events = async (): Promise<string[]> => (await store.pool.query<{ event: string }>("SELECT a.event FROM a_records a WHERE a.hmi = 'hmi-w' ORDER BY a.seq")).rows.map((r) => r.event);
    try {
      await waitFor(async () => (await events()).includes('agent.started'), `the service's start at the central review (${out})`, 20_000);
      mkdirSync(join(media, 'STICK')); // a drive with no manifest
      writeFileSync(join(media, 'STICK', 'payload.exe'), 'MZ');
      await waitFor(async () => (await events()).includes('drive.checked'), `the refused drive at the central review (${out})`, 20_000);
    } finally {
      watch.kill('SIGTERM');
      await once(watch, 'close');
    }
    // The service sends one last round after it logged its stop; a second round by hand finds nothing left.
    expect(await events()).toEqual(expect.arrayContaining(['agent.started', 'drive.arrived', 'drive.checked', 'agent.stopped']));
    const again = await run(AGENT, ['forward', '--config', config]);
    expect([again.code, again.out]).toEqual([0, 'forwarded 0 record(s); the log is delivered up to seq ' + String((await events()).length) + '\n']);
    const beat = await store.pool.query<{ status: { headSeq: string } | null }>("SELECT status FROM sources WHERE name = 'hmi-w'");
    expect(Number(beat.rows[0]!.status?.headSeq)).toBeGreaterThan(0);
  });
});

describe('an agent forwarding to a local collector', () => {
  it('sends every record once to rsyslog over plain TCP, a trust change as TRUST_CHANGED', async () => {
    const port = await freePort();
    const output = join(dir, 'collector.log');
    const conf = join(dir, 'rsyslog.conf');
    writeFileSync(conf, `global(workDirectory="${dir}" net.enableDNS="off")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="hmi") { action(type="omfile" file="${output}" template="raw") }
input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="hmi")
`);
    const rsyslog = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: 'ignore' });
    try {
      await waitFor(() => new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }), 'rsyslog to listen');
      const logPath = join(dir, 'hmi.jsonl');
      const log = new AuditLog(logPath, { hmi: 'hmi-9', clock: steppingClock() });
      log.append({ event: 'trust.key-revoked', outcome: 'changed', code: 'TRUST_CHANGED', reason: 'revoked a lost kiosk\'s key', keyId: '7'.repeat(64) });
      log.append({ event: 'drive.checked', outcome: 'refused', code: 'NO_MANIFEST', reason: 'no manifest' });
      log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched', path: 'a\u202etxt.exe' });
      const target = { host: '127.0.0.1', port, transport: 'tcp' as const, protocol: 'syslog' as const };
      const statePath = join(dir, 'collector-state.json');
      expect(await forwardLog({ logPath, statePath, hmi: 'hmi-9', target })).toMatchObject({ sent: 3 });
      log.append({ event: 'import.finished', outcome: 'info', code: 'DONE', reason: '1 imported' });
      expect(await forwardLog({ logPath, statePath, hmi: 'hmi-9', target })).toMatchObject({ sent: 1 });
      const records = (): string[] => (existsSync(output) ? readFileSync(output, 'utf8').split('\n').filter((l) => l.includes(' portcullis-agent - ') && !l.includes(' HEARTBEAT ')) : []);
      await waitFor(() => records().length === 4, 'four records at the collector');
      expect(records().map((l) => / portcullis-agent - (\S+) /.exec(l)?.[1])).toEqual(['TRUST_CHANGED', 'DRIVE_REFUSED', 'FILE_IMPORTED', 'IMPORT_DONE']);
      expect(records().every((l) => l.startsWith('<') && l.includes(' hmi-9 '))).toBe(true);
    } finally {
      rsyslog.kill('SIGTERM');
      await once(rsyslog, 'exit');
    }
  });
});
