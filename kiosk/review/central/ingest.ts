/**
 * What the central review does with one batch of messages from one
 * authenticated source, in one PostgreSQL transaction. Every message is
 * judged on its own and either stored, counted as a duplicate, or refused
 * with a code that names why; nothing a source sends can land under another
 * source's name, and nothing already held is overwritten:
 *
 * - a message whose HOSTNAME, or whose record's kiosk or HMI name, is not the
 *   source's own: INGEST_SOURCE_MISMATCH (a source forging another's records);
 * - a record whose hash does not match its content: INGEST_RECORD_EDITED,
 *   kept as evidence of tampering;
 * - a record whose (chain, seq) is held with another hash: stored beside it
 *   as a conflict (REWRITTEN), the first one stays;
 * - the same record again (a retry, a replay): a duplicate, counted once;
 * - a record 1 that is not the chain's first: INGEST_CHAIN_MISMATCH;
 * - a record out of order: stored, its link checked when the record before
 *   it arrives (a gap stays visible until then); a link that does not hold
 *   marks the record `broken` (an earlier record was replaced);
 * - a new record 1 from a known source: a new, numbered chain (a reinstall),
 *   with an alert, never merged into the old one.
 */
import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import { checkLine, GENESIS_HASH, type LogRecord } from '../../../manifest/agent-log.ts';
import { checkKioskRecord, type KioskRecord } from '../../../manifest/audit-record.ts';
import { displayText } from '../../../manifest/names.ts';
import { DEFAULT_SD_ID, parseSyslog, type ParsedSyslog } from '../../../manifest/syslog.ts';

export type IngestRefusalCode =
  | 'INGEST_MALFORMED' // not RFC 5424, or no chain record where one belongs
  | 'INGEST_SOURCE_MISMATCH' // names another source
  | 'INGEST_WRONG_KIND' // an agent's message from a kiosk's certificate, or the reverse
  | 'INGEST_RECORD_EDITED' // the record's hash does not match its content
  | 'INGEST_CHAIN_MISMATCH'; // the chain named is not the one record 1 starts

export interface Source {
  readonly id: number;
  readonly name: string;
  readonly kind: 'kiosk' | 'hmi';
}

export interface IngestResult {
  readonly messages: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly conflicts: number;
  readonly refused: ReadonlyArray<{ code: IngestRefusalCode; detail: string }>;
  readonly heartbeats: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;
const APP = { kiosk: 'portcullis-kiosk', hmi: 'portcullis-agent' } as const;
const MAX_STATUS_BYTES = 64 * 1024; // bytes of a heartbeat's body kept

/** A text value as PostgreSQL can hold it and the page shows it: no NUL, no lone surrogate, controls escaped. */
const pgText = (value: string | null | undefined): string | null => (value === null || value === undefined ? null : displayText(value));
/**
 * A UTC time PostgreSQL will take, or null: a real calendar time (no 30 February, which Date.parse rolls over
 * and PostgreSQL refuses) from 1900 on. A value PostgreSQL refused would fail the whole batch, again and again.
 */
const time = (value: unknown): string | null => {
  if (typeof value !== 'string' || !UTC.test(value)) return null;
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime()) || parsed.getUTCFullYear() < 1900) return null;
  return parsed.toISOString().slice(0, 19) === value.slice(0, 19) ? value : null;
};

/** JSON a source sent (a heartbeat), made safe for jsonb and the page: strings display-safe (no NUL), depth and size bounded. */
function cleanJson(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return displayText(value).slice(0, 4096);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean' || value === null) return value;
  if (depth > 8) return null;
  if (Array.isArray(value)) return value.slice(0, 1024).map((v) => cleanJson(v, depth + 1));
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value as Record<string, unknown>).slice(0, 256).map(([k, v]) => [displayText(k).slice(0, 64), cleanJson(v, depth + 1)]));
  return null;
}

interface ChainRecord {
  readonly chainGenesis: string;
  readonly seq: number;
  readonly hash: string;
  readonly prev: string;
  readonly msgId: string;
  readonly time: string | null;
  readonly body: Buffer;
  readonly kiosk: KioskRecord | null;
  readonly agent: LogRecord | null;
}

interface Refusal {
  readonly code: IngestRefusalCode;
  readonly detail: string;
  readonly chain: string | null;
  readonly seq: number | null;
  readonly frame: Buffer;
}

/** Judges one frame: a chain record, a heartbeat, a sign-in, an alert, or a refusal. */
function judge(source: Source, frame: Buffer, sdId: string):
  | { kind: 'record'; record: ChainRecord }
  | { kind: 'heartbeat'; status: unknown }
  | { kind: 'sign-in'; params: Record<string, string>; at: string }
  | { kind: 'alert'; code: string; detail: string; at: string }
  | { kind: 'refused'; refusal: Refusal } {
  const refuse = (code: IngestRefusalCode, detail: string, chain: string | null = null, seq: number | null = null) =>
    ({ kind: 'refused' as const, refusal: { code, detail, chain, seq, frame } });
  const m: ParsedSyslog | string = parseSyslog(frame);
  if (typeof m === 'string') return refuse('INGEST_MALFORMED', m);
  if (m.hostname !== source.name) return refuse('INGEST_SOURCE_MISMATCH', `the message names ${displayText(m.hostname)}, but it came from ${source.name}'s certificate`);
  if (m.appName !== APP[source.kind]) return refuse('INGEST_WRONG_KIND', `${m.appName} from a source enrolled as ${source.kind === 'kiosk' ? 'a kiosk' : 'an HMI'}`);
  const params = m.sd.get(sdId) ?? {};
  if (m.msgId === 'HEARTBEAT') {
    if (m.body.length > MAX_STATUS_BYTES) return refuse('INGEST_MALFORMED', `a heartbeat of ${m.body.length} bytes exceeds ${MAX_STATUS_BYTES}`);
    try {
      return { kind: 'heartbeat', status: cleanJson({ ...params, ...(m.body.length > 0 ? { body: JSON.parse(m.body.toString('utf8')) as unknown } : {}) }) };
    } catch {
      return refuse('INGEST_MALFORMED', 'a heartbeat whose body is not JSON');
    }
  }
  if (m.msgId.startsWith('SIGN_') || m.msgId === 'TOKEN_USED') {
    if (source.kind !== 'kiosk' || !/^[1-9][0-9]{0,15}$/.test(params.id ?? '')) return refuse('INGEST_MALFORMED', 'a sign-in event without its id');
    return { kind: 'sign-in', params: { ...params, event: m.msgId }, at: m.time };
  }
  if (m.msgId === 'CHAIN_BROKEN') return { kind: 'alert', code: 'SOURCE_CHAIN_BROKEN', detail: `${source.name} reports its own chain broken: ${displayText(m.body.toString('utf8')).slice(0, 2000)}`, at: m.time };
  const chain = params.chain ?? '';
  if (!HEX64.test(chain)) return refuse('INGEST_MALFORMED', `${m.msgId}: no chain (the hash of the chain's record 1) in the structured data`);
  if (source.kind === 'kiosk') {
    const check = checkKioskRecord(m.body);
    if (!check.ok) return refuse(check.code === 'EDITED' ? 'INGEST_RECORD_EDITED' : 'INGEST_MALFORMED', `record ${check.seq ?? '?'}: ${check.detail}`, chain, check.seq);
    const r = check.record;
    if (r.table === 'scans' && r.row.kiosk_id !== source.name) return refuse('INGEST_SOURCE_MISMATCH', `scan ${displayText(String(r.row.scan_id))} names kiosk ${displayText(String(r.row.kiosk_id))}, but it came from ${source.name}`, chain, r.seq);
    if (r.seq === 1 && (r.hash !== chain || r.prev !== GENESIS_HASH)) return refuse('INGEST_CHAIN_MISMATCH', 'record 1 does not start the chain it names', chain, 1);
    const recorded = r.row.recorded_at ?? r.row.finished_at ?? null;
    return { kind: 'record', record: { chainGenesis: chain, seq: r.seq, hash: r.hash, prev: r.prev, msgId: m.msgId, time: time(recorded), body: m.body, kiosk: r, agent: null } };
  }
  const line = checkLine(m.body);
  if (typeof line === 'string') {
    const seq = Number(params.seq);
    return refuse(line === 'its hash does not match its content' ? 'INGEST_RECORD_EDITED' : 'INGEST_MALFORMED', `record ${params.seq ?? '?'}: ${line}`, chain, Number.isSafeInteger(seq) ? seq : null);
  }
  if (time(line.time) === null) return refuse('INGEST_MALFORMED', `record ${line.seq}: time ${displayText(line.time)} is not a real calendar time`, chain, line.seq);
  if (line.hmi !== source.name) return refuse('INGEST_SOURCE_MISMATCH', `the record names HMI ${displayText(line.hmi)}, but it came from ${source.name}`, chain, line.seq);
  if (line.seq === 1 && (line.hash !== chain || line.prev !== GENESIS_HASH)) return refuse('INGEST_CHAIN_MISMATCH', 'record 1 does not start the chain it names', chain, 1);
  return { kind: 'record', record: { chainGenesis: chain, seq: line.seq, hash: line.hash, prev: line.prev, msgId: m.msgId, time: line.time, body: m.body, kiosk: null, agent: line } };
}

/** A bulk insert through unnest: one statement for many rows. */
async function bulk(client: PoolClient, table: string, columns: ReadonlyArray<readonly [string, string]>, rows: ReadonlyArray<ReadonlyArray<unknown>>, tail = ''): Promise<void> {
  if (rows.length === 0) return;
  const arrays = columns.map((_, i) => rows.map((r) => r[i] ?? null));
  const list = columns.map(([name]) => name).join(', ');
  const unnest = columns.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
  await client.query(`INSERT INTO ${table} (${list}) SELECT * FROM unnest(${unnest}) ${tail}`, arrays);
}

/**
 * Stores one batch from `source` inside the caller's transaction. Throws
 * only when the database fails (the caller rolls back and the sender keeps
 * the batch); every problem with the messages themselves is a refusal.
 */
export async function ingestBatch(client: PoolClient, source: Source, frames: readonly Buffer[], now: Date, sdId = DEFAULT_SD_ID): Promise<IngestResult> {
  const receivedAt = now.toISOString();
  const records: ChainRecord[] = [];
  const refusals: Refusal[] = [];
  let heartbeats = 0;
  let latestStatus: unknown = null;
  for (const frame of frames) {
    const j = judge(source, frame, sdId);
    if (j.kind === 'record') records.push(j.record);
    else if (j.kind === 'refused') refusals.push(j.refusal);
    else if (j.kind === 'heartbeat') {
      heartbeats++;
      latestStatus = j.status;
    } else if (j.kind === 'sign-in') {
      const p = j.params;
      await client.query(`INSERT INTO sign_ins (source_id, source_event_id, at, event, username, method, address) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (source_id, source_event_id) DO NOTHING`, [source.id, Number(p.id), time(j.at) ?? receivedAt, pgText(p.event), pgText(p.user ?? null), pgText(p.method ?? null), pgText(p.address ?? '-')]);
    } else {
      await client.query('INSERT INTO alerts (source_id, code, detail, at, key) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING',
        [source.id, j.code, pgText(j.detail), time(j.at) ?? receivedAt, `${source.id}:${j.code}:${createHash('sha256').update(j.detail).digest('hex')}`]);
    }
  }
  await client.query('UPDATE sources SET last_seen = $2 WHERE id = $1', [source.id, receivedAt]);
  if (latestStatus !== null) await client.query('UPDATE sources SET status = $2, status_at = $3 WHERE id = $1', [source.id, JSON.stringify(latestStatus), receivedAt]);

  for (const r of refusals) {
    const excerpt = displayText(r.frame.subarray(0, 512).toString('utf8'));
    await client.query(`INSERT INTO refusals (source_id, source_name, code, detail, chain, seq, frame_sha256, excerpt, first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
      ON CONFLICT (source_name, frame_sha256, code) DO UPDATE SET last_at = excluded.last_at, times = refusals.times + 1`,
    [source.id, source.name, r.code, pgText(r.detail), r.chain, r.seq, createHash('sha256').update(r.frame).digest('hex'), excerpt, receivedAt]);
  }

  // Chains: found by (source, record 1's hash); a new one is numbered after the source's others and announced.
  const chainIds = new Map<string, number>();
  for (const genesis of new Set(records.map((r) => r.chainGenesis))) {
    const found = await client.query<{ id: number }>('SELECT id FROM chains WHERE source_id = $1 AND genesis = $2', [source.id, genesis]);
    if (found.rows[0]) {
      chainIds.set(genesis, found.rows[0].id);
      continue;
    }
    const made = await client.query<{ id: number; number: number }>(`INSERT INTO chains (source_id, genesis, number, first_seen)
      VALUES ($1, $2, (SELECT coalesce(max(number), 0) + 1 FROM chains WHERE source_id = $1), $3) RETURNING id, number`, [source.id, genesis, receivedAt]);
    const chain = made.rows[0]!;
    chainIds.set(genesis, chain.id);
    if (chain.number > 1) {
      await client.query('INSERT INTO alerts (source_id, code, detail, at, key) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING',
        [source.id, 'NEW_CHAIN', `${source.name} started log chain ${chain.number} (a reinstall or a new log): the earlier chain ends where it was last heard`, receivedAt, `new-chain:${chain.id}`]);
    }
  }

  // One record per (chain, seq) in this batch: a second, different one is a conflict like any other.
  const byKey = new Map<string, ChainRecord>();
  const sameBatchConflicts: ChainRecord[] = [];
  for (const r of records) {
    const key = `${chainIds.get(r.chainGenesis)}:${r.seq}`;
    const first = byKey.get(key);
    if (!first) byKey.set(key, r);
    else if (first.hash !== r.hash) sameBatchConflicts.push(r);
  }
  const unique = [...byKey.values()].sort((a, b) => chainIds.get(a.chainGenesis)! - chainIds.get(b.chainGenesis)! || a.seq - b.seq);
  let duplicates = records.length - unique.length - sameBatchConflicts.length;

  // What is already held for these keys, and the records just before each (for the links).
  const cid = (r: ChainRecord): number => chainIds.get(r.chainGenesis)!;
  const wanted = unique.flatMap((r) => [[cid(r), r.seq], [cid(r), r.seq - 1]] as Array<[number, number]>);
  const held = new Map<string, string>();
  if (wanted.length > 0) {
    const rows = await client.query<{ chain_id: number; seq: string; hash: string }>(
      'SELECT r.chain_id, r.seq, r.hash FROM records r JOIN unnest($1::int[], $2::bigint[]) AS w(c, s) ON r.chain_id = w.c AND r.seq = w.s',
      [wanted.map((w) => w[0]), wanted.map((w) => w[1])]);
    for (const row of rows.rows) held.set(`${row.chain_id}:${row.seq}`, row.hash);
  }
  const fresh: ChainRecord[] = [];
  const conflicts: ChainRecord[] = [...sameBatchConflicts];
  for (const r of unique) {
    const existing = held.get(`${cid(r)}:${r.seq}`);
    if (existing === undefined) fresh.push(r);
    else if (existing === r.hash) duplicates++;
    else conflicts.push(r);
  }
  const inBatch = new Map(fresh.map((r) => [`${cid(r)}:${r.seq}`, r.hash]));
  const link = (r: ChainRecord): 'ok' | 'broken' | 'pending' => {
    if (r.seq === 1) return r.prev === GENESIS_HASH ? 'ok' : 'broken';
    const before = inBatch.get(`${cid(r)}:${r.seq - 1}`) ?? held.get(`${cid(r)}:${r.seq - 1}`);
    return before === undefined ? 'pending' : before === r.prev ? 'ok' : 'broken';
  };
  await bulk(client, 'records', [['chain_id', 'int'], ['seq', 'bigint'], ['hash', 'text'], ['prev', 'text'], ['msg_id', 'text'], ['time', 'timestamptz'], ['received_at', 'timestamptz'], ['link', 'text']],
    fresh.map((r) => [cid(r), r.seq, r.hash, r.prev, r.msgId, r.time, receivedAt, link(r)]));
  // The chains' counts move in the same transaction (the hosts' health reads them, never the records).
  const delta = new Map<number, { records: number; maxSeq: number; pending: number; broken: number; conflicts: number }>();
  const of = (chain: number): { records: number; maxSeq: number; pending: number; broken: number; conflicts: number } => {
    let d = delta.get(chain);
    if (!d) delta.set(chain, (d = { records: 0, maxSeq: 0, pending: 0, broken: 0, conflicts: 0 }));
    return d;
  };
  for (const r of fresh) {
    const d = of(cid(r));
    const l = link(r);
    d.records++;
    d.maxSeq = Math.max(d.maxSeq, r.seq);
    if (l === 'pending') d.pending++;
    if (l === 'broken') d.broken++;
  }
  // Records that waited for one of these: their link is judged now.
  if (fresh.length > 0) {
    const judged = await client.query<{ chain_id: number; link: string }>(`UPDATE records r SET link = CASE WHEN r.prev = f.h THEN 'ok' ELSE 'broken' END
      FROM unnest($1::int[], $2::bigint[], $3::text[]) AS f(c, s, h) WHERE r.chain_id = f.c AND r.seq = f.s + 1 AND r.link = 'pending' RETURNING r.chain_id, r.link`,
    [fresh.map(cid), fresh.map((r) => r.seq), fresh.map((r) => r.hash)]);
    for (const j of judged.rows) {
      const d = of(j.chain_id);
      d.pending--;
      if (j.link === 'broken') d.broken++;
    }
  }
  if (conflicts.length > 0) {
    const held = await client.query<{ chain_id: number }>(`INSERT INTO conflicts (chain_id, seq, hash, body, received_at)
      SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::bytea[], $5::timestamptz[]) ON CONFLICT DO NOTHING RETURNING chain_id`,
    [conflicts.map(cid), conflicts.map((r) => r.seq), conflicts.map((r) => r.hash), conflicts.map((r) => r.body), conflicts.map(() => receivedAt)]);
    for (const c of held.rows) of(c.chain_id).conflicts++;
  }
  if (delta.size > 0) {
    const rows = [...delta.entries()];
    await client.query(`UPDATE chains c SET records = c.records + d.records, max_seq = greatest(c.max_seq, d.max_seq), pending = c.pending + d.pending,
        broken = c.broken + d.broken, conflicts = c.conflicts + d.conflicts
      FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS d(id, records, max_seq, pending, broken, conflicts) WHERE c.id = d.id`,
    [rows.map(([id]) => id), rows.map(([, d]) => d.records), rows.map(([, d]) => d.maxSeq), rows.map(([, d]) => d.pending), rows.map(([, d]) => d.broken), rows.map(([, d]) => d.conflicts)]);
  }

  await storeContent(client, source, fresh, cid);
  return { messages: frames.length, stored: fresh.length, duplicates, conflicts: conflicts.length, refused: refusals.map((r) => ({ code: r.code, detail: r.detail })), heartbeats };
}

/** The content of newly stored records into the typed tables the page reads. */
async function storeContent(client: PoolClient, source: Source, fresh: readonly ChainRecord[], cid: (r: ChainRecord) => number): Promise<void> {
  const of = (table: string): Array<[number, number, Readonly<Record<string, string | number | null>>]> =>
    fresh.filter((r) => r.kiosk?.table === table).map((r) => [cid(r), r.seq, r.kiosk!.row]);
  const t = pgText;
  const n = (v: string | number | null | undefined): number | null => (typeof v === 'number' ? v : null);
  const s = (v: string | number | null | undefined): string | null => (typeof v === 'string' ? t(v) : null);
  await bulk(client, 'k_scans', [['chain_id', 'int'], ['seq', 'bigint'], ['source_id', 'int'], ['scan_id', 'text'], ['kiosk_id', 'text'], ['operator_id', 'text'], ['started_at', 'timestamptz'], ['started_text', 'text'], ['recorded_at', 'text']],
    of('scans').map(([c, q, r]) => [c, q, source.id, s(r.scan_id) ?? '', s(r.kiosk_id) ?? '', s(r.operator_id), time(r.started_at), s(r.started_at) ?? '', s(r.recorded_at) ?? '']), 'ON CONFLICT DO NOTHING');
  await bulk(client, 'k_devices', [['chain_id', 'int'], ['seq', 'bigint'], ['scan_id', 'text'], ['usb_vendor_id', 'text'], ['usb_product_id', 'text'], ['usb_serial', 'text'], ['manufacturer', 'text'], ['product', 'text'], ['filesystem', 'text'], ['volume_id', 'text'], ['label', 'text'], ['capacity', 'bigint']],
    of('devices').map(([c, q, r]) => [c, q, s(r.scan_id) ?? '', s(r.usb_vendor_id), s(r.usb_product_id), s(r.usb_serial), s(r.manufacturer), s(r.product), s(r.filesystem), s(r.volume_id), s(r.label), n(r.capacity)]));
  await bulk(client, 'k_files', [['chain_id', 'int'], ['seq', 'bigint'], ['scan_id', 'text'], ['path', 'text'], ['size', 'bigint'], ['sha256', 'text'], ['blake3', 'text'], ['verdict', 'text'], ['controlled_class', 'text'], ['allowlist_vendor', 'text'], ['allowlist_product', 'text'], ['allowlist_version', 'text'], ['allowlist_file', 'text'], ['allowlist_source', 'text']],
    of('files').map(([c, q, r]) => [c, q, s(r.scan_id) ?? '', s(r.path) ?? '', n(r.size) ?? 0, s(r.sha256), s(r.blake3), s(r.verdict) ?? 'blocked', s(r.controlled_class), s(r.allowlist_vendor), s(r.allowlist_product), s(r.allowlist_version), s(r.allowlist_file), s(r.allowlist_source)]));
  await bulk(client, 'k_reasons', [['chain_id', 'int'], ['seq', 'bigint'], ['scan_id', 'text'], ['level', 'text'], ['file_seq', 'bigint'], ['code', 'text'], ['detail', 'text']],
    of('reasons').map(([c, q, r]) => [c, q, s(r.scan_id) ?? '', s(r.level) ?? 'drive', n(r.file_seq), s(r.code) ?? '', s(r.detail) ?? '']));
  await bulk(client, 'k_results', [['chain_id', 'int'], ['seq', 'bigint'], ['scan_id', 'text'], ['recorded_at', 'text'], ['finished_at', 'text'], ['verdict', 'text'], ['clamav_version', 'text'], ['clamav_db_version', 'text'], ['clamav_db_time', 'text'], ['yara_engine', 'text'], ['yara_rule_set_digest', 'text'], ['yara_rule_count', 'bigint'], ['policy_id', 'text'], ['policy_digest', 'text'], ['allowlist_version', 'text'], ['allowlist_digest', 'text'], ['file_count', 'bigint'], ['byte_count', 'bigint'], ['entry_count', 'bigint'], ['walk_ms', 'bigint'], ['scan_ms', 'bigint'], ['total_ms', 'bigint'], ['manifest_folder_extras', 'text'], ['manifest_digest', 'text'], ['manifest_key_id', 'text'], ['manifest_expires_at', 'text']],
    of('scan_results').map(([c, q, r]) => [c, q, s(r.scan_id) ?? '', s(r.recorded_at) ?? '', s(r.finished_at) ?? '', s(r.verdict) ?? 'rejected', s(r.clamav_version), s(r.clamav_db_version), s(r.clamav_db_time), s(r.yara_engine), s(r.yara_rule_set_digest), n(r.yara_rule_count), s(r.policy_id) ?? '', s(r.policy_digest) ?? '', s(r.allowlist_version), s(r.allowlist_digest), n(r.file_count) ?? 0, n(r.byte_count) ?? 0, n(r.entry_count) ?? 0, n(r.walk_ms) ?? 0, n(r.scan_ms) ?? 0, n(r.total_ms) ?? 0, s(r.manifest_folder_extras) ?? '[]', s(r.manifest_digest), s(r.manifest_key_id), s(r.manifest_expires_at)]), 'ON CONFLICT DO NOTHING');
  await bulk(client, 'k_events', [['chain_id', 'int'], ['seq', 'bigint'], ['recorded_at', 'text'], ['type', 'text'], ['scan_id', 'text'], ['data', 'text']],
    of('events').map(([c, q, r]) => [c, q, s(r.recorded_at) ?? '', s(r.type) ?? '', s(r.scan_id), s(r.data) ?? '']));
  const agent = fresh.filter((r) => r.agent !== null);
  await bulk(client, 'a_records', [['chain_id', 'int'], ['seq', 'bigint'], ['source_id', 'int'], ['hmi', 'text'], ['time', 'timestamptz'], ['event', 'text'], ['outcome', 'text'], ['code', 'text'], ['reason', 'text'], ['manifest_digest', 'text'], ['key_id', 'text'], ['drive_label', 'text'], ['path', 'text'], ['destination', 'text'], ['sha256', 'text'], ['blake3', 'text'], ['size', 'bigint']],
    agent.map((r) => {
      const a = r.agent!;
      return [cid(r), a.seq, source.id, t(a.hmi), a.time, a.event, a.outcome, a.code, t(a.reason), a.manifestDigest, a.keyId, t(a.drive?.label), t(a.path), t(a.destination), a.digests?.sha256 ?? null, a.digests?.blake3 ?? null, a.digests?.size ?? null];
    }));
}
