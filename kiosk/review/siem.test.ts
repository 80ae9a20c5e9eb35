import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleLog } from '../../test/support/audit-log-fixture.ts';
import { openReviewStore } from './review-store.ts';
import { agentMessage, formatSyslog, frameOctetCounting, openSiemSpool } from './siem.ts';
import { EXPORT_HMI, HMI, writeAgentExport, writeReviewFixture } from '../../test/support/review-fixture.ts';

describe('RFC 5424 formatting', () => {
  it('writes the header, the structured data and the message', () => {
    const line = formatSyslog({ time: '2025-03-01T08:00:01.000Z', hostname: 'gate 1', appName: 'portcullis-kiosk', msgId: 'FILE_BLOCKED', severity: 4,
      params: { seq: 7, path: 'a"b\\c]d', skipped: null, 'bad name=x': 'v' }, text: 'blocked' });
    expect(line).toBe('<108>1 2025-03-01T08:00:01.000Z gate_1 portcullis-kiosk - FILE_BLOCKED [portcullis@32473 seq="7" path="a\\"b\\\\c\\]d" bad_name_x="v"] blocked');
  });

  it('escapes control and direction characters so nothing reaches a terminal raw', () => {
    const line = formatSyslog({ time: 't', hostname: 'h', appName: 'a', msgId: 'M', severity: 6, params: { path: 'x\u001b[2J\u202e' }, text: 'y\u001b\n' });
    expect(line).not.toMatch(/[\u0000-\u001f\u202e]/u);
  });

  it('frames by octet count (RFC 6587), counting bytes, not characters', () => {
    expect(frameOctetCounting('<14>1 é').toString('utf8')).toBe('8 <14>1 é');
  });
});

describe('agent records', () => {
  it('say in their structured data whether their chain was verified (JSON-lines log) or not (an export)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'siem-agent-'));
    const store = openReviewStore(join(dir, 'review.db'));
    try {
      store.importAgentLog(readFileSync(writeReviewFixture(dir).agentLog));
      store.importAgentLog(readFileSync(writeAgentExport(dir)));
      const lines = store.agentRecordsAfter(0, 100).map((r) => ({ hmi: r.hmi, line: formatSyslog(agentMessage(r)) }));
      expect(lines.filter((l) => l.hmi === HMI).length).toBe(4);
      expect(lines.filter((l) => l.hmi === EXPORT_HMI).length).toBe(2);
      for (const { hmi, line } of lines) expect(line).toContain(hmi === HMI ? ' chain="verified"' : ' chain="unverified"');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('delivery over TLS', () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'siem-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = readFileSync(join(dir, 'cert.pem'));
    key = readFileSync(join(dir, 'key.pem'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sends every spooled message to a TLS receiver it trusts, and refuses one it does not', async () => {
    const auditDb = join(dir, 'audit.db');
    writeSampleLog(auditDb);
    let received = '';
    const server = createServer({ cert, key }, (socket: TLSSocket) => {
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
      socket.on('end', () => socket.end());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const spool = openSiemSpool(join(dir, 'spool.db'));
    try {
      const { added } = spool.collect({ auditDb });
      await expect(spool.deliver({ host: '127.0.0.1', port, transport: 'tls' })).rejects.toMatchObject({ code: 'SIEM_SEND_FAILED' });
      expect(spool.pending()).toBe(added);
      expect(await spool.deliver({ host: '127.0.0.1', port, transport: 'tls', tls: { ca: cert, servername: 'localhost' } })).toBe(added);
      // Parse the octet-counted stream back into messages.
      const messages: string[] = [];
      let rest = Buffer.from(received, 'utf8');
      while (rest.length > 0) {
        const space = rest.indexOf(0x20);
        const length = Number(rest.subarray(0, space).toString('ascii'));
        messages.push(rest.subarray(space + 1, space + 1 + length).toString('utf8'));
        rest = rest.subarray(space + 1 + length);
      }
      expect(messages.length).toBe(added);
      expect(messages.every((m) => /^<\d+>1 /.test(m))).toBe(true);
    } finally {
      spool.close();
      server.close();
    }
  });
});
