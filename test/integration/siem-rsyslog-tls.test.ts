/**
 * SIEM export over TLS (RFC 5425) to Debian's rsyslog with its gtls network
 * stream driver, started here on a loopback port with a throwaway CA and
 * server certificate made by openssl, stopped afterwards. Covers delivery
 * once per record when the client trusts the CA, and a client trusting
 * another CA: nothing delivered, everything left spooled, then sent once by
 * a retry with the right CA. No skip: a missing rsyslogd, openssl or gtls
 * driver fails the test and says so.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { steppingClock } from '../support/audit-log-fixture.ts';
import { EXIT } from '../../kiosk/core/exit-codes.ts';
import { siemSendCommand, type SiemSendOptions, type TextSink } from '../../kiosk/cli/review-command.ts';
import { openReviewStore } from '../../kiosk/review/review-store.ts';
import { openSiemSpool } from '../../kiosk/review/siem.ts';
import { writeReviewFixture } from '../support/review-fixture.ts';
import { freePort, RSYSLOGD, waitFor } from './rsyslog-harness.ts';

const GTLS_DRIVER = '/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so';
const SERVER_NAME = 'siem.test';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA in dir/NAME-ca.pem (key NAME-ca.key). */
function makeCa(dir: string, name: string): string {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2',
    '-subj', `/CN=Portcullis test CA ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return join(dir, `${name}-ca.pem`);
}

/** A server certificate for siem.test and 127.0.0.1 signed by CA `ca`: [cert, key]. */
function makeServerCert(dir: string, ca: string): [string, string] {
  writeFileSync(join(dir, 'server.ext'), `basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1
`);
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${SERVER_NAME}`);
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', `${ca}-ca.pem`, '-CAkey', `${ca}-ca.key`, '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  return [join(dir, 'server.pem'), join(dir, 'server.key')];
}

/** True once a TLS handshake with the server succeeds while trusting `ca` (false on error or no answer within 1 s). */
const tlsHandshakes = (port: number, ca: Buffer): Promise<boolean> => new Promise((resolve) => {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: SERVER_NAME, rejectUnauthorized: true }, () => {
    socket.destroy();
    resolve(true);
  });
  socket.setTimeout(1000, () => {
    socket.destroy();
    resolve(false);
  });
  socket.on('error', () => resolve(false));
});

class TlsRsyslog {
  private child: ChildProcess | null = null;
  readonly output: string;
  private readonly dir: string;
  private readonly port: number;
  private readonly tls: { ca: string; cert: string; key: string };
  constructor(dir: string, port: number, tls: { ca: string; cert: string; key: string }) {
    this.dir = dir;
    this.port = port;
    this.tls = tls;
    this.output = join(dir, 'received.log');
  }

  async start(): Promise<void> {
    const conf = join(this.dir, 'rsyslog.conf');
    writeFileSync(conf, `global(workDirectory="${this.dir}" net.enableDNS="off"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="${this.tls.ca}"
  DefaultNetstreamDriverCertFile="${this.tls.cert}"
  DefaultNetstreamDriverKeyFile="${this.tls.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="siem") { action(type="omfile" file="${this.output}" template="raw") }
input(type="imtcp" port="${this.port}" address="127.0.0.1" ruleset="siem")
`);
    // The configuration check loads the modules: a gtls that cannot load fails here, with rsyslog's own words.
    const check = spawnSync(RSYSLOGD, ['-N1', '-f', conf], { encoding: 'utf8' });
    if (check.status !== 0 || /error/i.test(`${check.stdout}${check.stderr}`)) {
      throw new Error(`rsyslog cannot run the TLS (gtls) configuration: rsyslogd -N1 exited ${String(check.status)}: ${check.stdout}${check.stderr}`);
    }
    this.child = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', join(this.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(this.child, 'exit').then(() => {
      throw new Error(`rsyslogd exited before it spoke TLS (gtls driver or certificates not usable?): ${stderr || '(no stderr)'}`);
    });
    const ca = readFileSync(this.tls.ca);
    const listening = waitFor(() => tlsHandshakes(this.port, ca), 'a TLS handshake with rsyslog').catch(() => {
      throw new Error(`rsyslog does not speak TLS on 127.0.0.1:${this.port}: the gtls stream driver did not come up. rsyslogd stderr: ${stderr || '(empty)'}`);
    });
    await Promise.race([listening, exited]);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    this.child = null;
  }

  lines(): string[] {
    return existsSync(this.output) ? readFileSync(this.output, 'utf8').split('\n').filter((l) => l.length > 0) : [];
  }
}

/** The messages a fresh spool holds for the audit and review databases: what the receiver should get, in order. */
function expectedMessages(dir: string, auditDb: string, reviewDb: string): string[] {
  const path = join(dir, `expected-${Date.now()}.db`);
  const spool = openSiemSpool(path);
  const staff = openReviewStore(reviewDb);
  try {
    spool.collect({ auditDb, staff });
  } finally {
    staff.close();
    spool.close();
  }
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT message FROM spool ORDER BY id').pluck().all() as string[];
  } finally {
    db.close();
  }
}

function pendingIn(spoolPath: string): number {
  const spool = openSiemSpool(spoolPath);
  try {
    return spool.pending();
  } finally {
    spool.close();
  }
}

/** Each expected message appears exactly once and nothing else arrived. */
function expectEachOnce(lines: readonly string[], expected: readonly string[]): void {
  expect(lines.length).toBe(expected.length);
  for (const message of expected) expect(lines.filter((l) => l === message).length, message).toBe(1);
}

class Capture implements TextSink {
  text = '';
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

describe('SIEM export over TLS to a real rsyslog (gtls)', () => {
  let dir: string;
  let auditDb: string;
  let reviewDb: string;
  let spoolPath: string;
  let rsyslog: TlsRsyslog | undefined;
  let goodCa: string;
  let otherCa: string;
  let port: number;

  const send = async (ca: string): Promise<{ code: number; stdout: string; stderr: string }> => {
    const stdout = new Capture();
    const stderr = new Capture();
    const options: SiemSendOptions = { db: auditDb, spool: spoolPath, reviewDb, target: `127.0.0.1:${port}`, tls: true, ca, servername: SERVER_NAME, stdout, stderr };
    const code = await siemSendCommand(options);
    return { code, stdout: stdout.text, stderr: stderr.text };
  };

  beforeAll(async () => {
    for (const [path, what] of [[RSYSLOGD, 'rsyslogd (Debian package rsyslog)'], [GTLS_DRIVER, 'the rsyslog gtls driver (Debian package rsyslog-gnutls)']] as const) {
      if (!existsSync(path)) throw new Error(`${path} is missing: install ${what}; this test does not skip`);
    }
    dir = mkdtempSync(join(tmpdir(), 'siem-tls-'));
    const fixture = writeReviewFixture(dir);
    auditDb = fixture.auditDb;
    reviewDb = join(dir, 'review.db');
    const staff = openReviewStore(reviewDb);
    staff.importAgentLog(readFileSync(fixture.agentLog));
    staff.close();
    spoolPath = join(dir, 'spool.db');
    goodCa = makeCa(dir, 'good');
    otherCa = makeCa(dir, 'other');
    const [cert, key] = makeServerCert(dir, 'good');
    port = await freePort();
    rsyslog = new TlsRsyslog(dir, port, { ca: goodCa, cert, key });
    await rsyslog.start();
  }, 60_000);

  afterAll(async () => {
    await rsyslog?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let firstBatch: string[] = [];

  it('delivers every record once over TLS when the client trusts the CA', async () => {
    firstBatch = expectedMessages(dir, auditDb, reviewDb);
    expect(firstBatch.length).toBeGreaterThan(10);
    const { code, stdout, stderr } = await send(goodCa);
    expect(stderr).toBe('');
    expect(code).toBe(EXIT.OK);
    expect(stdout).toBe(`siem: ${firstBatch.length} spooled, ${firstBatch.length} sent, 0 pending\n`);
    expect(pendingIn(spoolPath)).toBe(0);
    const lines = await waitFor(() => (rsyslog!.lines().length >= firstBatch.length ? rsyslog!.lines() : null), 'rsyslog to write the messages');
    await sleep(300); // anything sent twice would land now
    expectEachOnce(rsyslog!.lines(), firstBatch);
    expect(lines.some((l) => l.includes('path="<img src=x onerror=alert(1)>"'))).toBe(true);
  });

  it('delivers nothing and keeps the records spooled when the server certificate is not from the trusted CA; a retry with the right CA sends them once', async () => {
    const store = openAuditStore(auditDb, { now: steppingClock(Date.parse('2025-03-02T00:00:00Z')) });
    store.recordEvent('ENGINE_FAILURE', { code: 'SCANNER_UNAVAILABLE', detail: 'clamd socket refused' });
    store.recordEvent('KEY_GENERATED', { keyId: '4'.repeat(64) });
    store.close();
    const all = expectedMessages(dir, auditDb, reviewDb);
    const added = all.length - firstBatch.length;
    expect(added).toBe(2);

    const refused = await send(otherCa);
    expect(refused.code).toBe(EXIT.FAILURE);
    expect(refused.stderr).toMatch(/SIEM_SEND_FAILED/);
    expect(refused.stderr).toMatch(/certificate/i);
    expect(pendingIn(spoolPath)).toBe(added);
    await sleep(500);
    expect(rsyslog!.lines()).toEqual(firstBatch);

    // A second refused run neither loses nor duplicates the spooled records.
    expect((await send(otherCa)).code).toBe(EXIT.FAILURE);
    expect(pendingIn(spoolPath)).toBe(added);

    const retried = await send(goodCa);
    expect(retried.stderr).toBe('');
    expect(retried.code).toBe(EXIT.OK);
    expect(retried.stdout).toBe(`siem: 0 spooled, ${added} sent, 0 pending\n`);
    expect(pendingIn(spoolPath)).toBe(0);
    await waitFor(() => rsyslog!.lines().length >= all.length, 'the retried messages');
    await sleep(300);
    const lines = rsyslog!.lines();
    expectEachOnce(lines, all);
    expect(lines.slice(-2).map((l) => /^<\d+>1 \S+ \S+ \S+ - (\S+) /.exec(l)?.[1])).toEqual(['ENGINE_FAILURE', 'KEY_GENERATED']);
  });
});
