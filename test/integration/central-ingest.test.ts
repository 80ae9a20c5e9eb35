/**
 * The central review's receiver against a real PostgreSQL and real mutual
 * TLS (an openssl-made site CA), attacked first: a source forging another's
 * records, replaying, reordering, rewriting and editing its own, a foreign
 * CA, an unknown name, and broken, oversized and cut-off batches. Every
 * refusal is named, nothing is stored twice, nothing is overwritten.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../agent/audit-log.ts';
import { deliver, forwardLog, type ForwardTarget } from '../../agent/forward/forwarder.ts';
import { hashedRecordText, type LogRecord } from '../../manifest/agent-log.ts';
import { formatSyslog, formatSyslogRecord, frameOctetCounting } from '../../manifest/syslog.ts';
import { kioskRecordBytes, recordHash } from '../../manifest/audit-record.ts';
import { startReceiver, type Receiver } from '../../kiosk/review/central/receiver.ts';
import { openCentralStore, type CentralStore } from '../../kiosk/review/central/store.ts';
import { makeSitePki, type Pem, type SitePki } from '../support/site-pki.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

let dir: string;
let pgServer: TestPostgres;
let store: CentralStore;
let receiver: Receiver;
let pki: SitePki;
const certs = new Map<string, Pem>();
const events: Array<{ source: string; refused?: string }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'central-ingest-'));
  pki = makeSitePki(join(dir, 'pki'));
  pgServer = await startPostgres();
  store = await openCentralStore(pgServer.url);
  for (const name of ['hmi-a', 'hmi-b', 'hmi-c']) {
    await store.enrol(name, 'hmi');
    certs.set(name, pki.client(name));
  }
  certs.set('hmi-unknown', pki.client('hmi-unknown'));
  receiver = await startReceiver({ store, port: 0, tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca }, onBatch: (e) => events.push(e) });
}, 120_000);

afterAll(async () => {
  await receiver?.close();
  await store?.close();
  pgServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const target = (name: string, pem = certs.get(name)!): ForwardTarget => ({
  host: '127.0.0.1', port: receiver.port, transport: 'tls', tls: { ca: pki.ca, cert: pem.cert, key: pem.key, servername: 'localhost' }, timeoutMs: 5000,
});

/** An agent log of `n` records for `hmi`; returns its path and records. */
function agentLog(hmi: string, n: number, file = `${hmi}.jsonl`, start = Date.parse('2025-03-01T08:00:00Z')): { path: string; records: LogRecord[] } {
  const path = join(dir, file);
  let t = start;
  const log = new AuditLog(path, { hmi, clock: () => new Date((t += 1000)) });
  const records: LogRecord[] = [];
  for (let i = 0; i < n; i++) records.push(log.append({ event: i % 3 === 0 ? 'trust.key-added' : 'file.imported', outcome: i % 3 === 0 ? 'changed' : 'allowed', code: i % 3 === 0 ? 'TRUST_CHANGED' : 'IMPORTED', reason: `record ${i + 1}` }));
  return { path, records };
}

/** A record as a message from `host`, in `chain`. */
function frame(host: string, record: LogRecord, chain: string, line = Buffer.from(hashedRecordText(record).text)): Buffer {
  return frameOctetCounting(formatSyslogRecord({ time: record.time, hostname: host, appName: 'portcullis-agent', msgId: 'AGENT_EVENT', severity: 6, params: { seq: record.seq, hash: record.hash, chain } }, line));
}

async function counts(source: string): Promise<{ records: number; links: Record<string, number>; conflicts: number; refusals: Record<string, number> }> {
  const r = await store.pool.query<{ link: string; n: string }>('SELECT r.link, count(*) AS n FROM records r JOIN chains c ON c.id = r.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name = $1 GROUP BY r.link', [source]);
  const c = await store.pool.query<{ n: string }>('SELECT count(*) AS n FROM conflicts x JOIN chains c ON c.id = x.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name = $1', [source]);
  const f = await store.pool.query<{ code: string; times: number }>('SELECT code, sum(times)::int AS times FROM refusals WHERE source_name = $1 GROUP BY code', [source]);
  const links = Object.fromEntries(r.rows.map((x) => [x.link, Number(x.n)]));
  return { records: Object.values(links).reduce((a, b) => a + b, 0), links, conflicts: Number(c.rows[0]!.n), refusals: Object.fromEntries(f.rows.map((x) => [x.code, x.times])) };
}

const withoutHash = (r: LogRecord): Omit<LogRecord, 'hash'> => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'hash')) as Omit<LogRecord, 'hash'>;

/** Sends raw bytes as a source and says whether the receiver acknowledged (closed cleanly). */
async function sendRaw(name: string, bytes: Buffer, halfClose = true): Promise<'acknowledged' | 'dropped'> {
  const pem = certs.get(name)!;
  const socket = connect({ host: '127.0.0.1', port: receiver.port, ca: pki.ca, cert: pem.cert, key: pem.key, servername: 'localhost' });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  if (halfClose) socket.end(bytes);
  else socket.write(bytes);
  if (!halfClose) {
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    return 'dropped';
  }
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  const [hadError] = (await once(socket, 'close')) as [boolean];
  return !hadError && /^ACK [0-9]+\n$/.test(answer) ? 'acknowledged' : 'dropped';
}

describe('a source cannot write as another', () => {
  it('refuses records naming another HMI (INGEST_SOURCE_MISMATCH) and leaves that HMI untouched', async () => {
    const b = agentLog('hmi-b', 3);
    await forwardLog({ logPath: b.path, statePath: join(dir, 'b.state'), hmi: 'hmi-b', target: target('hmi-b') });
    // hmi-a replays hmi-b's records under its own certificate, once as hmi-b's HOSTNAME, once as its own.
    const forged = b.records.map((r) => frame('hmi-b', r, b.records[0]!.hash));
    const relabelled = b.records.map((r) => frame('hmi-a', { ...r, reason: 'rewritten' }, b.records[0]!.hash, Buffer.from(hashedRecordText({ ...r, hmi: 'hmi-b' }).text)));
    expect(await sendRaw('hmi-a', Buffer.concat([...forged, ...relabelled]))).toBe('acknowledged');
    expect((await counts('hmi-a')).refusals).toEqual({ INGEST_SOURCE_MISMATCH: 6 });
    expect(await counts('hmi-b')).toMatchObject({ records: 3, links: { ok: 3 }, conflicts: 0 });
  });

  it('refuses a certificate from another CA at the handshake, and an unknown name by name', async () => {
    await expect(deliver(target('hmi-a', pki.foreign('hmi-a')), [frameOctetCounting('x')])).rejects.toMatchObject({ code: 'FORWARD_FAILED' });
    const unknown = agentLog('hmi-unknown', 1);
    await expect(forwardLog({ logPath: unknown.path, statePath: join(dir, 'u.state'), hmi: 'hmi-unknown', target: target('hmi-unknown') })).rejects.toMatchObject({ code: 'FORWARD_FAILED' });
    expect((await counts('hmi-unknown')).refusals).toEqual({ INGEST_SOURCE_UNKNOWN: 1 });
  });
});

describe('a disabled source', () => {
  it('is refused by name until it is enabled again (a stolen HMI)', async () => {
    await store.enrol('hmi-d', 'hmi');
    certs.set('hmi-d', pki.client('hmi-d'));
    const log = agentLog('hmi-d', 1);
    await store.setDisabled('hmi-d', true);
    await expect(forwardLog({ logPath: log.path, statePath: join(dir, 'disabled.state'), hmi: 'hmi-d', target: target('hmi-d') })).rejects.toMatchObject({ code: 'FORWARD_FAILED' });
    const refused = await store.pool.query<{ detail: string }>("SELECT detail FROM refusals WHERE source_name = 'hmi-d' AND code = 'INGEST_SOURCE_UNKNOWN'");
    expect(refused.rows[0]!.detail).toContain('disabled');
    expect((await counts('hmi-d')).records).toBe(0);
    await store.setDisabled('hmi-d', false);
    expect(await forwardLog({ logPath: log.path, statePath: join(dir, 'disabled.state'), hmi: 'hmi-d', target: target('hmi-d') })).toMatchObject({ sent: 1 });
  });
});

describe('one source\'s chain', () => {
  it('counts a replayed batch once, and shows a gap until the missing records arrive, out of order', async () => {
    const c = agentLog('hmi-c', 6);
    const chain = c.records[0]!.hash;
    const all = c.records.map((r) => frame('hmi-c', r, chain));
    expect(await sendRaw('hmi-c', Buffer.concat([all[0]!, all[1]!, all[4]!, all[5]!]))).toBe('acknowledged');
    expect(await counts('hmi-c')).toMatchObject({ records: 4, links: { ok: 3, pending: 1 } });
    expect(await sendRaw('hmi-c', Buffer.concat([all[3]!, all[2]!, all[0]!, all[0]!]))).toBe('acknowledged');
    expect(await counts('hmi-c')).toMatchObject({ records: 6, links: { ok: 6 }, conflicts: 0 });
    expect(events.at(-1)).toMatchObject({ source: 'hmi-c' });
  });

  it('keeps a rewritten record beside the first (a conflict), names an edited one, and marks a replaced link broken', async () => {
    const c = agentLog('hmi-a', 4, 'hmi-a-rewrite.jsonl');
    const chain = c.records[0]!.hash;
    expect(await sendRaw('hmi-a', Buffer.concat(c.records.slice(0, 2).map((r) => frame('hmi-a', r, chain))))).toBe('acknowledged');
    // Record 2 rewritten with its hash recomputed: the same seq with another hash.
    const body2 = withoutHash(c.records[1]!);
    const rewritten2 = hashedRecordText({ ...body2, reason: 'nothing happened here' });
    // Record 3 edited without recomputing its hash; record 4 follows the rewritten record 2, so its link to 3 cannot hold either.
    const edited3 = Buffer.from(hashedRecordText(c.records[2]!).text.replace('record 3', 'record X'));
    const body4 = withoutHash(c.records[3]!);
    const forged4 = hashedRecordText({ ...body4, prev: rewritten2.hash });
    expect(await sendRaw('hmi-a', Buffer.concat([
      frame('hmi-a', { ...c.records[1]!, hash: rewritten2.hash }, chain, Buffer.from(rewritten2.text)),
      frame('hmi-a', c.records[2]!, chain, edited3),
      frame('hmi-a', { ...c.records[3]!, hash: forged4.hash }, chain, Buffer.from(forged4.text)),
    ]))).toBe('acknowledged');
    const after = await counts('hmi-a');
    expect(after.conflicts).toBe(1);
    expect(after.refusals.INGEST_RECORD_EDITED).toBe(1);
    // Record 4 is held, waiting for a record 3 that can never link: pending, not ok.
    expect(after.links.ok).toBe(2);
    const kept = await store.pool.query<{ reason: string }>("SELECT a.reason FROM a_records a JOIN chains c ON c.id = a.chain_id WHERE c.genesis = $1 AND a.seq = 2", [chain]);
    expect(kept.rows[0]!.reason).toBe('record 2');
    // The genuine record 3 arrives: record 4's link to it is judged and fails.
    expect(await sendRaw('hmi-a', frame('hmi-a', c.records[2]!, chain))).toBe('acknowledged');
    expect((await counts('hmi-a')).links.broken).toBe(1);
  });

  it('takes a new record 1 from the same HMI as a new, numbered chain with an alert', async () => {
    const first = agentLog('hmi-b', 2, 'hmi-b-reinstalled.jsonl', Date.parse('2025-03-02T08:00:00Z'));
    writeFileSync(join(dir, 'b.state'), readFileSync(join(dir, 'b.state'))); // the state of the old log stays
    const result = await forwardLog({ logPath: first.path, statePath: join(dir, 'b.state'), hmi: 'hmi-b', target: target('hmi-b') });
    expect(result).toMatchObject({ sent: 2, state: { chain: first.records[0]!.hash, seq: 2 } });
    const chains = await store.pool.query<{ number: number }>("SELECT c.number FROM chains c JOIN sources s ON s.id = c.source_id WHERE s.name = 'hmi-b' ORDER BY c.number");
    expect(chains.rows.map((r) => r.number)).toEqual([1, 2]);
    const alerts = await store.pool.query<{ code: string }>("SELECT a.code FROM alerts a JOIN sources s ON s.id = a.source_id WHERE s.name = 'hmi-b'");
    expect(alerts.rows.map((r) => r.code)).toEqual(['NEW_CHAIN']);
    expect(await counts('hmi-b')).toMatchObject({ records: 5, conflicts: 0 });
  });

  it('refuses a record 1 that does not start the chain it names (INGEST_CHAIN_MISMATCH)', async () => {
    const other = agentLog('hmi-c', 1, 'hmi-c-other.jsonl', Date.parse('2025-04-01T00:00:00Z'));
    expect(await sendRaw('hmi-c', frame('hmi-c', other.records[0]!, 'e'.repeat(64)))).toBe('acknowledged');
    expect((await counts('hmi-c')).refusals.INGEST_CHAIN_MISMATCH).toBe(1);
  });
});

describe('broken batches: nothing stored, nothing twice', () => {
  it('drops a batch with an unframeable message, one that is oversized, and one cut off, and takes it whole when sent again', async () => {
    const c = agentLog('hmi-c', 3, 'hmi-c-batches.jsonl', Date.parse('2025-05-01T00:00:00Z'));
    const chain = c.records[0]!.hash;
    const good = c.records.map((r) => frame('hmi-c', r, chain));
    const before = (await counts('hmi-c')).records;
    expect(await sendRaw('hmi-c', Buffer.concat([good[0]!, Buffer.from('<14>1 newline framing\n')]))).toBe('dropped');
    expect(await sendRaw('hmi-c', Buffer.concat([good[0]!, Buffer.from(`${600 * 1024} `), Buffer.alloc(1000)]))).toBe('dropped');
    expect(await sendRaw('hmi-c', Buffer.concat([good[0]!, good[1]!.subarray(0, 20)]))).toBe('dropped');
    expect(await sendRaw('hmi-c', Buffer.concat([good[0]!, good[1]!]), false)).toBe('dropped'); // the sender went away mid-batch
    expect((await counts('hmi-c')).records).toBe(before);
    expect(await sendRaw('hmi-c', Buffer.concat(good))).toBe('acknowledged');
    const after = await counts('hmi-c');
    expect(after.records).toBe(before + 3);
    expect(after.refusals).toMatchObject({ INGEST_FRAME_INVALID: 1, INGEST_FRAME_OVERSIZED: 1, INGEST_FRAME_TRUNCATED: 1 });
  });

  it('names a message that is not syslog, and a heartbeat keeps the source\'s status', async () => {
    const junk = frameOctetCounting('hello, I am not RFC 5424');
    const beat = frameOctetCounting(formatSyslog({ time: new Date().toISOString(), hostname: 'hmi-c', appName: 'portcullis-agent', msgId: 'HEARTBEAT', severity: 6, params: { headSeq: 3 }, text: '{"trustSequence":4}' }));
    expect(await sendRaw('hmi-c', Buffer.concat([junk, beat]))).toBe('acknowledged');
    expect((await counts('hmi-c')).refusals.INGEST_MALFORMED).toBe(1);
    const status = await store.pool.query<{ status: { headSeq: string; body: { trustSequence: number } } }>("SELECT status FROM sources WHERE name = 'hmi-c'");
    expect(status.rows[0]!.status).toMatchObject({ headSeq: '3', body: { trustSequence: 4 } });
  });

  it('sends again after a full disk at the agent, and the receiver keeps each record once', async () => {
    const c = agentLog('hmi-c', 4, 'hmi-c-full.jsonl', Date.parse('2025-06-01T00:00:00Z'));
    const before = (await counts('hmi-c')).records;
    const full = (): never => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    const statePath = join(dir, 'c-full.state');
    await expect(forwardLog({ logPath: c.path, statePath, hmi: 'hmi-c', target: target('hmi-c'), writeState: full })).rejects.toMatchObject({ code: 'FORWARD_FAILED' });
    expect(await forwardLog({ logPath: c.path, statePath, hmi: 'hmi-c', target: target('hmi-c') })).toMatchObject({ sent: 4 });
    expect(await forwardLog({ logPath: c.path, statePath, hmi: 'hmi-c', target: target('hmi-c') })).toMatchObject({ sent: 0 });
    expect((await counts('hmi-c')).records).toBe(before + 4);
  });

  it('keeps the log spooled while the receiver is away', async () => {
    const c = agentLog('hmi-c', 2, 'hmi-c-away.jsonl', Date.parse('2025-07-01T00:00:00Z'));
    const away: ForwardTarget = { ...target('hmi-c'), port: 1 };
    await expect(forwardLog({ logPath: c.path, statePath: join(dir, 'away.state'), hmi: 'hmi-c', target: away })).rejects.toMatchObject({ code: 'FORWARD_FAILED' });
    expect(await forwardLog({ logPath: c.path, statePath: join(dir, 'away.state'), hmi: 'hmi-c', target: target('hmi-c') })).toMatchObject({ sent: 2 });
  });
});

describe('the chains\' counts the health view reads', () => {
  it('agree with the records after every batch above: held, pending, broken, rewritten, highest seq (a pending record resolved on the way)', async () => {
    const kept = await store.pool.query<{ id: number; records: string; max_seq: string; pending: string; broken: string; conflicts: string }>('SELECT id, records, max_seq, pending, broken, conflicts FROM chains ORDER BY id');
    const counted = await store.pool.query<{ id: number; records: string; max_seq: string; pending: string; broken: string; conflicts: string }>(`SELECT c.id,
        (SELECT count(*) FROM records r WHERE r.chain_id = c.id) AS records, (SELECT coalesce(max(seq), 0) FROM records r WHERE r.chain_id = c.id) AS max_seq,
        (SELECT count(*) FROM records r WHERE r.chain_id = c.id AND r.link = 'pending') AS pending, (SELECT count(*) FROM records r WHERE r.chain_id = c.id AND r.link = 'broken') AS broken,
        (SELECT count(*) FROM conflicts x WHERE x.chain_id = c.id) AS conflicts FROM chains c ORDER BY c.id`);
    expect(kept.rows.length).toBeGreaterThan(4);
    expect(kept.rows).toEqual(counted.rows);
    expect(kept.rows.some((r) => r.broken === '1') && kept.rows.some((r) => r.conflicts === '1')).toBe(true);
  });
});

describe('values PostgreSQL would refuse never block a source', () => {
  it('names a record with an impossible date, keeps a heartbeat holding NUL, stores a kiosk row without its scan, and acknowledges the batch', async () => {
    await store.enrol('gate-x', 'kiosk');
    certs.set('gate-x', pki.client('gate-x'));
    const c = agentLog('hmi-b', 2, 'hmi-b-dates.jsonl', Date.parse('2025-08-01T00:00:00Z'));
    const chain = c.records[0]!.hash;
    // Record 2 rewritten to 30 February with its hash recomputed: well-formed, but no such day.
    const feb30 = hashedRecordText({ ...withoutHash(c.records[1]!), time: '2025-02-30T10:00:00.000Z' });
    const beat = frameOctetCounting(formatSyslog({ time: new Date().toISOString(), hostname: 'hmi-b', appName: 'portcullis-agent', msgId: 'HEARTBEAT', severity: 6, params: {}, text: '{"trustedKeys":["a\\u0000b"],"deep":[[[[[[[[[[[1]]]]]]]]]]]}' }));
    expect(await sendRaw('hmi-b', Buffer.concat([frame('hmi-b', c.records[0]!, chain), frame('hmi-b', { ...c.records[1]!, hash: feb30.hash }, chain, Buffer.from(feb30.text)), beat]))).toBe('acknowledged');
    expect((await counts('hmi-b')).refusals.INGEST_MALFORMED).toBe(1);
    const status = await store.pool.query<{ status: { body: { trustedKeys: string[] } } }>("SELECT status FROM sources WHERE name = 'hmi-b'");
    expect(status.rows[0]!.status.body.trustedKeys).toEqual(['a\\x00b']);
    // A kiosk's files row that names no scan: odd, but the kiosk's own; kept, and the batch goes through.
    const row = { scan_id: null, path: 'x\u0000.txt', size: 1, sha256: null, blake3: null, verdict: 'clean', controlled_class: null, allowlist_vendor: null, allowlist_product: null, allowlist_version: null, allowlist_file: null, allowlist_source: null };
    const hash = recordHash('files', 1, '0'.repeat(64), row);
    const message = frameOctetCounting(formatSyslogRecord({ time: new Date().toISOString(), hostname: 'gate-x', appName: 'portcullis-kiosk', msgId: 'FILE_CHECKED', severity: 6, params: { seq: 1, hash, chain: hash } }, kioskRecordBytes('files', 1, '0'.repeat(64), hash, row)));
    expect(await sendRaw('gate-x', message)).toBe('acknowledged');
    const kept = await store.pool.query<{ path: string }>("SELECT f.path FROM k_files f JOIN chains c ON c.id = f.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name = 'gate-x'");
    expect(kept.rows).toEqual([{ path: 'x\\x00.txt' }]);
  });
});
