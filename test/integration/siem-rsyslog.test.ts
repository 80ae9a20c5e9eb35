/**
 * SIEM export against Debian's rsyslog, started here on a loopback port with
 * its own configuration (imtcp in, omfile out with the raw message), stopped
 * afterwards. Covers the receiver being down, then up, new records, a chain
 * break, and no record lost or sent twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { steppingClock, tamper } from '../support/audit-log-fixture.ts';
import { openReviewStore, type StaffStore } from '../../kiosk/review/review-store.ts';
import { openSiemSpool, type SiemSpool, type SiemTarget } from '../../kiosk/review/siem.ts';
import { EXPORT_HMI, HMI, writeAgentExport, writeReviewFixture } from '../support/review-fixture.ts';
import { freePort, RSYSLOGD, waitFor } from './rsyslog-harness.ts';


const canConnect = (port: number): Promise<boolean> => new Promise((resolve) => {
  const socket = connect({ host: '127.0.0.1', port }, () => {
    socket.destroy();
    resolve(true);
  });
  socket.on('error', () => resolve(false));
});

class Rsyslog {
  private child: ChildProcess | null = null;
  readonly output: string;
  private readonly dir: string;
  private readonly port: number;
  constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.output = join(dir, 'received.log');
  }

  async start(): Promise<void> {
    const conf = join(this.dir, 'rsyslog.conf');
    writeFileSync(conf, `global(workDirectory="${this.dir}" net.enableDNS="off")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="siem") { action(type="omfile" file="${this.output}" template="raw") }
input(type="imtcp" port="${this.port}" address="127.0.0.1" ruleset="siem")
`);
    this.child = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', join(this.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(this.child, 'exit').then(() => {
      throw new Error(`rsyslogd exited: ${stderr}`);
    });
    await Promise.race([waitFor(() => canConnect(this.port), 'rsyslog to listen'), exited]);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    this.child = null;
  }

  lines(): string[] {
    return existsSync(this.output) ? readFileSync(this.output, 'utf8').split('\n').filter((l) => l.length > 0) : [];
  }
}

/** "hostname app msgid seq" of each received message: a record's identity at the receiver (docs/review.md). */
function identities(lines: readonly string[]): string[] {
  return lines.map((l) => {
    const m = /^<\d+>1 \S+ (\S+) (\S+) - (\S+) \[portcullis@32473 seq="(\d+)"/.exec(l);
    return m ? `${m[1]} ${m[2]} ${m[3]} ${m[4]}` : `unparsed: ${l}`;
  });
}

describe('SIEM export to a real rsyslog', () => {
  // scripts/setup.sh installs rsyslog: a missing receiver is a failure, never a skip.
  it('has the real rsyslogd to send to', () => {
    expect(existsSync(RSYSLOGD), `${RSYSLOGD} is missing: run ./portcullis setup (Debian package rsyslog)`).toBe(true);
  });

  let dir: string;
  let auditDb: string;
  let staff: StaffStore;
  let spool: SiemSpool;
  let rsyslog: Rsyslog;
  let target: SiemTarget;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'siem-'));
    const fixture = writeReviewFixture(dir);
    auditDb = fixture.auditDb;
    staff = openReviewStore(join(dir, 'review.db'));
    staff.importAgentLog(readFileSync(fixture.agentLog));
    staff.importAgentLog(readFileSync(writeAgentExport(dir)));
    spool = openSiemSpool(join(dir, 'spool.db'));
    const port = await freePort();
    rsyslog = new Rsyslog(dir, port);
    target = { host: '127.0.0.1', port, transport: 'tcp', connectTimeoutMs: 2000 };
  });

  afterAll(async () => {
    await rsyslog?.stop();
    spool?.close();
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let firstCount = 0;

  it('keeps every message spooled while the receiver is down', async () => {
    const { added, chainOk } = spool.collect({ auditDb, staff });
    expect(chainOk).toBe(true);
    expect(added).toBeGreaterThan(10);
    firstCount = added;
    await expect(spool.deliver(target)).rejects.toMatchObject({ code: 'SIEM_SEND_FAILED' });
    expect(spool.pending()).toBe(added);
    // Collecting again spools nothing twice: the high-water mark moved with the first collect.
    expect(spool.collect({ auditDb, staff }).added).toBe(0);
    expect(spool.highWater('kiosk')).toBeGreaterThan(0);
  });

  it('sends them all, once each, when the receiver comes up', async () => {
    await rsyslog.start();
    expect(await spool.deliver(target)).toBe(firstCount);
    expect(spool.pending()).toBe(0);
    const lines = await waitFor(() => (rsyslog.lines().length >= firstCount ? rsyslog.lines() : null), 'rsyslog to write the messages');
    const ids = identities(lines);
    expect(ids.length).toBe(firstCount);
    expect(ids.filter((id) => id.startsWith('unparsed'))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const kind of ['portcullis-kiosk SCAN_STARTED', 'portcullis-kiosk SCAN_FINISHED', 'portcullis-kiosk FILE_BLOCKED', 'portcullis-kiosk MANIFEST_ISSUED', 'portcullis-agent IMPORT_DONE', 'portcullis-agent IMPORT_REFUSED']) {
      expect(ids.some((id) => id.includes(` ${kind} `))).toBe(true);
    }
    // Structured data escaping survives the trip: the hostile markup name arrives as text inside its quotes.
    expect(lines.some((l) => l.includes('path="<img src=x onerror=alert(1)>"'))).toBe(true);
    expect(lines.every((l) => !l.includes('\u001b'))).toBe(true);
    // Agent records say whether their chain was checked: the JSON-lines log yes, the export no.
    const agent = (hmi: string): string[] => lines.filter((l) => l.includes(` ${hmi} portcullis-agent `));
    expect(agent(HMI).length).toBe(4);
    expect(agent(EXPORT_HMI).length).toBe(2);
    expect(agent(HMI).every((l) => l.includes(' chain="verified"'))).toBe(true);
    expect(agent(EXPORT_HMI).every((l) => l.includes(' chain="unverified"'))).toBe(true);
  });

  it('sends only what is new after more records, and survives a receiver restart', async () => {
    const store = openAuditStore(auditDb, { now: steppingClock(Date.parse('2025-03-02T00:00:00Z')) });
    store.recordEvent('ENGINE_FAILURE', { code: 'SCANNER_UNAVAILABLE', detail: 'clamd socket refused' });
    store.close();
    await rsyslog.stop();
    expect(spool.collect({ auditDb, staff }).added).toBe(1);
    await expect(spool.deliver(target)).rejects.toMatchObject({ code: 'SIEM_SEND_FAILED' });
    expect(spool.pending()).toBe(1);
    await rsyslog.start();
    expect(await spool.deliver(target)).toBe(1);
    const lines = await waitFor(() => (rsyslog.lines().length >= firstCount + 1 ? rsyslog.lines() : null), 'the new message');
    const ids = identities(lines);
    expect(ids.length).toBe(firstCount + 1);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.at(-1)).toMatch(/ portcullis-kiosk ENGINE_FAILURE \d+$/);
  });

  it('reports a broken chain once and exports nothing past the break', async () => {
    const store = openAuditStore(auditDb, { now: steppingClock(Date.parse('2025-03-03T00:00:00Z')) });
    store.recordEvent('KEY_GENERATED', { keyId: '3'.repeat(64) });
    store.close();
    tamper(auditDb, (db) => db.prepare("UPDATE files SET path = 'renamed.txt' WHERE path = 'ok.txt'").run());
    const { added, chainOk } = spool.collect({ auditDb, staff });
    expect(chainOk).toBe(false);
    expect(added).toBe(1);
    expect(spool.collect({ auditDb, staff }).added).toBe(0);
    expect(await spool.deliver(target)).toBe(1);
    const lines = await waitFor(() => (rsyslog.lines().length >= firstCount + 2 ? rsyslog.lines() : null), 'the alert');
    expect(lines.at(-1)).toMatch(/^<105>1 \S+ kiosk portcullis-kiosk - CHAIN_BROKEN \[portcullis@32473 code="HASH_MISMATCH" table="files"/);
    expect(lines.some((l) => l.includes('KEY_GENERATED') && l.includes('2025-03-03'))).toBe(false);
  });
});
