/**
 * The central review's read models over PostgreSQL: the same scans, scan
 * detail, chart and HMI records as the single-kiosk review (kiosk/audit/
 * queries.ts), across every source, plus what only a site-wide view can
 * show: each host's health, HMI events without a manifest, the path of one
 * file from the kiosk to each HMI it reached, and the alerts.
 * A scan's id here is KIOSK/SCAN_ID: kiosks choose their scan ids, so only
 * the pair names one scan.
 */
import type pg from 'pg';
import type { AgentRecord } from '../review-store.ts';
import { scanDetail, type ScanDetail, type ScanFilter, type ScanSummary } from '../../audit/queries.ts';

export const HEALTH = {
  lastSeenWarningMs: 10 * 60_000, // ms: "not heard from for 10 minutes"
  lastSeenErrorMs: 60 * 60_000, // ms: an hour
  databaseWarningMs: 24 * 3600_000, // ms: ClamAV signatures older than a day
  databaseErrorMs: 7 * 24 * 3600_000, // ms: a week
} as const;

type Db = pg.Pool;
type Params = unknown[];

function where(filter: ScanFilter, params: Params): string {
  const c: string[] = [];
  const p = (v: unknown): string => `$${params.push(v)}`;
  if (filter.since) c.push(`s.started_at >= ${p(filter.since.toISOString())}`);
  if (filter.until) c.push(`s.started_at < ${p(filter.until.toISOString())}`);
  if (filter.status === 'interrupted') c.push('r.seq IS NULL');
  else if (filter.status) c.push(`r.verdict = ${p(filter.status)}`);
  if (filter.operatorId !== undefined) c.push(`s.operator_id = ${p(filter.operatorId)}`);
  if (filter.serial !== undefined) c.push(`d.usb_serial = ${p(filter.serial)}`);
  if (filter.file !== undefined) {
    const hash = /^(?:(sha256|blake3):)?([0-9a-fA-F]{64})$/.exec(filter.file.trim());
    const inScan = 'SELECT 1 FROM k_files f WHERE f.chain_id = s.chain_id AND f.scan_id = s.scan_id AND';
    if (hash) {
      // From the digest's index to the scans, not from the newest scans to their files: a shared firmware file is in hundreds of scans.
      const hex = hash[2]!.toLowerCase();
      const algorithm = hash[1]?.toLowerCase();
      const by = (column: string): string => `SELECT f.chain_id, f.scan_id FROM k_files f WHERE f.${column} = ${p(hex)}`;
      c.push(`(s.chain_id, s.scan_id) IN (${algorithm === 'sha256' ? by('sha256') : algorithm === 'blake3' ? by('blake3') : `${by('sha256')} UNION ${by('blake3')}`})`);
    } else {
      c.push(`EXISTS (${inScan} strpos(lower(f.path), ${p(filter.file.replace(/[A-Z]/g, (x) => x.toLowerCase()))}) > 0)`);
    }
  }
  return c.length ? `WHERE ${c.join(' AND ')}` : '';
}

const FROM = `FROM k_scans s JOIN sources src ON src.id = s.source_id
  LEFT JOIN k_results r ON r.chain_id = s.chain_id AND r.scan_id = s.scan_id
  LEFT JOIN k_devices d ON d.chain_id = s.chain_id AND d.scan_id = s.scan_id`;

export async function centralListScans(db: Db, filter: ScanFilter): Promise<ScanSummary[]> {
  const params: Params = [];
  const w = where(filter, params);
  const limit = filter.limit === undefined ? '' : `LIMIT $${params.push(filter.limit)}`;
  const rows = (await db.query(`SELECT src.name AS source, s.scan_id, s.kiosk_id, s.operator_id, s.started_text, r.finished_at,
      coalesce(r.verdict, 'interrupted') AS status, r.manifest_digest, d.usb_vendor_id, d.usb_product_id, d.usb_serial, d.label,
      (SELECT count(*) FROM k_files f WHERE f.chain_id = s.chain_id AND f.scan_id = s.scan_id)::int AS file_count,
      (SELECT count(*) FROM k_files f WHERE f.chain_id = s.chain_id AND f.scan_id = s.scan_id AND f.verdict = 'blocked')::int AS blocked_count,
      (SELECT string_agg(x.code, ',' ORDER BY x.seq) FROM k_reasons x WHERE x.chain_id = s.chain_id AND x.scan_id = s.scan_id AND x.level = 'drive') AS drive_reasons
    ${FROM} ${w} ORDER BY s.started_at DESC NULLS LAST, s.seq DESC ${limit}`, params)).rows as Array<Record<string, string | number | null>>;
  return rows.map((r) => ({
    scanId: `${String(r.source)}/${String(r.scan_id)}`,
    status: r.status as ScanSummary['status'],
    kioskId: String(r.kiosk_id),
    operatorId: r.operator_id as string | null,
    startedAt: String(r.started_text),
    finishedAt: r.finished_at as string | null,
    usb: r.usb_vendor_id === null && r.usb_product_id === null && r.usb_serial === null ? null : { vendorId: r.usb_vendor_id as string | null, productId: r.usb_product_id as string | null, serial: r.usb_serial as string | null },
    label: r.label as string | null,
    files: Number(r.file_count),
    blocked: Number(r.blocked_count),
    driveReasons: r.drive_reasons === null ? [] : String(r.drive_reasons).split(','),
    manifestDigest: r.manifest_digest as string | null,
  }));
}

export async function centralScanIds(db: Db, filter: ScanFilter): Promise<string[]> {
  const params: Params = [];
  const w = where(filter, params);
  const limit = filter.limit === undefined ? '' : `LIMIT $${params.push(filter.limit)}`;
  return (await db.query<{ id: string }>(`SELECT src.name || '/' || s.scan_id AS id ${FROM} ${w} ORDER BY s.started_at NULLS FIRST, s.seq ${limit}`, params)).rows.map((r) => r.id);
}

/** The chain and scan a KIOSK/SCAN_ID names (the kiosk's newest chain holding that scan id). */
async function locate(db: Db, id: string): Promise<{ chain: number; scanId: string; source: string } | null> {
  const slash = id.indexOf('/');
  if (slash <= 0) return null;
  const source = id.slice(0, slash);
  const scanId = id.slice(slash + 1);
  const row = (await db.query<{ chain_id: number }>(`SELECT s.chain_id FROM k_scans s JOIN sources src ON src.id = s.source_id
    JOIN chains c ON c.id = s.chain_id WHERE src.name = $1 AND s.scan_id = $2 ORDER BY c.number DESC LIMIT 1`, [source, scanId])).rows[0];
  return row ? { chain: row.chain_id, scanId, source } : null;
}

export async function centralManifestOf(db: Db, id: string): Promise<string | null> {
  const at = await locate(db, id);
  if (!at) return null;
  return (await db.query<{ m: string | null }>('SELECT manifest_digest AS m FROM k_results WHERE chain_id = $1 AND scan_id = $2', [at.chain, at.scanId])).rows[0]?.m ?? null;
}

type Row = Record<string, string | number | null>;
const str = (v: string | number | null | undefined): string | null => (v === null || v === undefined ? null : String(v));
const num = (v: string | number | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));

export async function centralGetScan(db: Db, id: string, fileFilter: string | null): Promise<ScanDetail | null> {
  const at = await locate(db, id);
  if (!at) return null;
  const args = [at.chain, at.scanId];
  const [s, r, d, reasons, files, events] = await Promise.all([
    db.query('SELECT * FROM k_scans WHERE chain_id = $1 AND scan_id = $2', args),
    db.query('SELECT * FROM k_results WHERE chain_id = $1 AND scan_id = $2', args),
    db.query('SELECT * FROM k_devices WHERE chain_id = $1 AND scan_id = $2', args),
    db.query('SELECT * FROM k_reasons WHERE chain_id = $1 AND scan_id = $2 ORDER BY seq', args),
    db.query('SELECT * FROM k_files WHERE chain_id = $1 AND scan_id = $2 ORDER BY seq', args),
    db.query('SELECT seq, recorded_at, type, data FROM k_events WHERE chain_id = $1 AND scan_id = $2 ORDER BY seq', args),
  ]);
  const scan = s.rows[0] as Row | undefined;
  if (!scan) return null;
  // The same columns as the kiosk's tables: one mapping for both reviews (kiosk/audit/queries.ts).
  return scanDetail({ scan, result: r.rows[0] as Row | undefined, device: d.rows[0] as Row | undefined, reasons: reasons.rows, files: files.rows, events: events.rows },
    fileFilter, { scanId: id, startedAt: String(scan.started_text) });
}

/** An HMI record at the central review: the single-kiosk review's, plus the log chain it is in and the state of its link. */
export interface CentralAgentRecord extends AgentRecord {
  readonly chainNumber: number;
  /** verified (AgentRecord.chain): the record's hash and its link to the record before hold; otherwise its link is broken or still waits for the record before. */
  readonly link: 'ok' | 'broken' | 'pending';
}

const AGENT_SELECT = `SELECT a.seq, a.hmi, c.number AS chain_number, to_char(a.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS time, a.event, a.outcome, a.code,
  a.reason, a.manifest_digest, a.key_id, a.drive_label, a.path, a.destination, a.sha256, a.blake3, a.size, r.hash, r.link
  FROM a_records a JOIN chains c ON c.id = a.chain_id JOIN records r ON r.chain_id = a.chain_id AND r.seq = a.seq`;

const toAgent = (r: Row): CentralAgentRecord => ({
  id: Number(r.seq), hmi: String(r.hmi), chainNumber: Number(r.chain_number), seq: Number(r.seq), time: String(r.time), event: String(r.event), outcome: String(r.outcome),
  code: String(r.code), reason: String(r.reason), manifestDigest: str(r.manifest_digest), keyId: str(r.key_id), driveLabel: str(r.drive_label), path: str(r.path),
  destination: str(r.destination), sha256: str(r.sha256), blake3: str(r.blake3), size: num(r.size), hash: String(r.hash), verified: r.link === 'ok' ? 1 : 0,
  chain: r.link === 'ok' ? 'verified' : 'unverified', link: r.link as CentralAgentRecord['link'],
});

export async function centralAgentRecordsFor(db: Db, digest: string, limit = 5000): Promise<CentralAgentRecord[]> {
  return (await db.query(`${AGENT_SELECT} WHERE a.manifest_digest = $1 ORDER BY a.time, a.hmi, a.seq LIMIT $2`, [digest, limit])).rows.map(toAgent);
}

/** HMI events with no manifest (trust changes, unscanned drives, policy), or whose manifest no kiosk reported: newest first. */
export async function hmiEventsWithoutManifest(db: Db, options: { since?: Date; until?: Date; limit: number }): Promise<CentralAgentRecord[]> {
  const params: unknown[] = [options.limit];
  const range = [options.since ? `a.time >= $${params.push(options.since.toISOString())}` : null, options.until ? `a.time < $${params.push(options.until.toISOString())}` : null].filter(Boolean);
  return (await db.query(`${AGENT_SELECT} WHERE (a.manifest_digest IS NULL OR NOT EXISTS (SELECT 1 FROM k_results k WHERE k.manifest_digest = a.manifest_digest))
    AND a.event NOT IN ('drive.arrived', 'drive.removed') ${range.length ? `AND ${range.join(' AND ')}` : ''} ORDER BY a.time DESC LIMIT $1`, params)).rows.map(toAgent);
}

/** One file by SHA-256 or BLAKE3: every kiosk scan that saw it, and every HMI record about it (by digest, or through the manifests that carried it). */
export async function filePath(db: Db, hash: string): Promise<{ kiosk: unknown[]; hmi: CentralAgentRecord[] }> {
  const m = /^(?:(sha256|blake3):)?([0-9a-f]{64})$/.exec(hash.trim().toLowerCase());
  if (!m) return { kiosk: [], hmi: [] };
  const hex = m[2]!;
  const column = m[1] === 'blake3' ? 'blake3' : m[1] === 'sha256' ? 'sha256' : null;
  const match = column ? `f.${column} = $1` : '(f.sha256 = $1 OR f.blake3 = $1)';
  const kiosk = (await db.query(`SELECT src.name || '/' || f.scan_id AS "scanId", s.kiosk_id AS "kioskId", s.started_text AS "startedAt", f.path, f.verdict, f.sha256,
      f.blake3, r.manifest_digest AS "manifestDigest", r.verdict AS "scanVerdict"
    FROM k_files f JOIN k_scans s ON s.chain_id = f.chain_id AND s.scan_id = f.scan_id JOIN sources src ON src.id = s.source_id
    LEFT JOIN k_results r ON r.chain_id = f.chain_id AND r.scan_id = f.scan_id WHERE ${match} ORDER BY s.started_at LIMIT 500`, [hex])).rows as Array<Record<string, unknown>>;
  // An HMI may check only one of the two digests (the agent's default is BLAKE3): the kiosk's rows give the file's other digest.
  const sha = new Set<string>(column !== 'blake3' ? [hex] : []);
  const b3 = new Set<string>(column !== 'sha256' ? [hex] : []);
  for (const k of kiosk) {
    if (typeof k.sha256 === 'string') sha.add(k.sha256);
    if (typeof k.blake3 === 'string') b3.add(k.blake3);
  }
  const hmi = (await db.query(`${AGENT_SELECT} WHERE a.sha256 = ANY($1::text[]) OR a.blake3 = ANY($2::text[]) ORDER BY a.time LIMIT 2000`, [[...sha], [...b3]])).rows.map(toAgent);
  return { kiosk, hmi };
}

export interface SourceHealth {
  readonly name: string;
  readonly kind: 'kiosk' | 'hmi';
  readonly site: string;
  readonly lastSeen: string | null;
  readonly level: 'ok' | 'warning' | 'error';
  readonly problems: readonly string[];
  readonly chains: ReadonlyArray<{ number: number; records: number; maxSeq: number; gaps: number; broken: number; pending: number; conflicts: number; edited: number }>;
  readonly status: Record<string, unknown> | null;
}

/** Each host's health: last seen, signatures' age, rule set, trust store, chain state, against the HEALTH thresholds. */
export async function centralHealth(db: Db, now: Date): Promise<SourceHealth[]> {
  const sources = (await db.query(`SELECT id, name, kind, site, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_seen, status, disabled FROM sources ORDER BY site, kind, name`)).rows as Array<{ id: number; name: string; kind: 'kiosk' | 'hmi'; site: string; last_seen: string | null; status: Record<string, unknown> | null; disabled: boolean }>;
  const chains = (await db.query(`SELECT c.source_id, c.number, c.records::int AS records, c.max_seq::int AS max_seq, c.broken::int AS broken,
      c.pending::int AS pending, c.conflicts::int AS conflicts,
      (SELECT coalesce(sum(f.times), 0) FROM refusals f WHERE f.code = 'INGEST_RECORD_EDITED' AND f.source_id = c.source_id AND f.chain = c.genesis)::int AS edited
    FROM chains c ORDER BY c.source_id, c.number`)).rows as Array<{ source_id: number; number: number; records: number; max_seq: number; broken: number; pending: number; conflicts: number; edited: number }>;
  const revoked = new Set((await db.query<{ key_id: string }>("SELECT DISTINCT key_id FROM a_records WHERE event = 'trust.key-revoked' AND key_id IS NOT NULL")).rows.map((r) => r.key_id));
  // The newest scan result of each kiosk's newest chain: one index step per kiosk (k_results' key is chain, seq).
  const latest = new Map((await db.query(`SELECT s.id AS source_id, last.clamav_db_time FROM sources s
    CROSS JOIN LATERAL (SELECT r.clamav_db_time FROM chains c CROSS JOIN LATERAL (SELECT x.clamav_db_time FROM k_results x WHERE x.chain_id = c.id ORDER BY x.seq DESC LIMIT 1) r
      WHERE c.source_id = s.id ORDER BY c.number DESC LIMIT 1) last WHERE s.kind = 'kiosk'`)).rows.map((r: Record<string, unknown>) => [Number(r.source_id), r]));
  return sources.map((s) => {
    const problems: string[] = [];
    let level: SourceHealth['level'] = 'ok';
    const raise = (to: 'warning' | 'error', text: string): void => {
      problems.push(text);
      if (to === 'error' || level === 'ok') level = to;
    };
    const seenAgo = s.last_seen === null ? null : now.getTime() - Date.parse(s.last_seen);
    if (s.disabled) raise('warning', 'disabled: its messages are refused');
    if (seenAgo === null) raise('error', 'never heard from');
    else if (seenAgo > HEALTH.lastSeenErrorMs) raise('error', `not heard from for ${Math.round(seenAgo / 60_000)} minutes`);
    else if (seenAgo > HEALTH.lastSeenWarningMs) raise('warning', `not heard from for ${Math.round(seenAgo / 60_000)} minutes`);
    const own = chains.filter((c) => c.source_id === s.id).map((c) => ({ number: c.number, records: c.records, maxSeq: c.max_seq, gaps: c.max_seq - c.records, broken: c.broken, pending: c.pending, conflicts: c.conflicts, edited: c.edited }));
    for (const c of own) {
      const label = own.length > 1 ? `chain ${c.number}: ` : '';
      if (c.edited > 0) raise('error', `${label}${c.edited} record(s) arrived edited (hash does not match content): tampering`);
      if (c.conflicts > 0) raise('error', `${label}${c.conflicts} record(s) rewritten (a second version of a record already received)`);
      if (c.broken > 0) raise('error', `${label}${c.broken} record(s) do not follow the record before them: an earlier record was replaced`);
      if (c.gaps > 0) raise('warning', `${label}${c.gaps} record(s) missing below seq ${c.maxSeq}`);
    }
    if (own.length > 1) raise('warning', `${own.length} log chains: started again ${own.length - 1} time(s) (a reinstall or a new log)`);
    const status = s.status ?? null;
    const body = (status?.body ?? {}) as Record<string, unknown>;
    const headSeq = Number(status?.headSeq ?? NaN);
    const current = own.at(-1);
    if (current && Number.isFinite(headSeq) && headSeq > current.maxSeq) raise('warning', `the host's log is at seq ${headSeq}, ${headSeq - current.maxSeq} record(s) not yet received`);
    if (s.kind === 'kiosk') {
      const last = latest.get(s.id);
      const dbTime = typeof body.clamavDbTime === 'string' ? body.clamavDbTime : typeof last?.clamav_db_time === 'string' ? last.clamav_db_time : null;
      const age = dbTime === null ? null : now.getTime() - Date.parse(dbTime);
      if (age === null || Number.isNaN(age)) raise('warning', 'ClamAV signature age unknown (no scan and no heartbeat yet)');
      else if (age > HEALTH.databaseErrorMs) raise('error', `ClamAV signatures are ${Math.round(age / 86_400_000)} days old`);
      else if (age > HEALTH.databaseWarningMs) raise('warning', `ClamAV signatures are ${Math.round(age / 3_600_000)} hours old`);
    } else {
      const trusted = Array.isArray(body.trustedKeys) ? (body.trustedKeys as unknown[]).filter((k): k is string => typeof k === 'string') : [];
      for (const key of trusted) if (revoked.has(key)) raise('error', `still trusts kiosk key ${key.slice(0, 16)}…, revoked elsewhere on the site`);
    }
    return { name: s.name, kind: s.kind, site: s.site, lastSeen: s.last_seen, level, problems, chains: own, status };
  });
}

/** What staff should look at: refusals, rewritten records, broken links, new chains, sources' own alerts, refused sign-ins. */
export async function centralAlerts(db: Db, limit = 200): Promise<{ alerts: unknown[]; refusals: unknown[]; signIns: unknown[] }> {
  const alerts = (await db.query(`SELECT to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, s.name AS source, a.code, a.detail FROM alerts a LEFT JOIN sources s ON s.id = a.source_id
    UNION ALL SELECT to_char(x.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), s.name, 'RECORD_REWRITTEN', 'chain ' || c.number || ' record ' || x.seq || ' arrived again with another hash ' || left(x.hash, 16) || '…: the first version is kept'
      FROM conflicts x JOIN chains c ON c.id = x.chain_id JOIN sources s ON s.id = c.source_id
    UNION ALL SELECT to_char(r.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), s.name, 'LINK_BROKEN', 'chain ' || c.number || ' record ' || r.seq || ' does not follow record ' || (r.seq - 1) || ': an earlier record was replaced'
      FROM records r JOIN chains c ON c.id = r.chain_id JOIN sources s ON s.id = c.source_id WHERE r.link = 'broken'
    ORDER BY at DESC LIMIT $1`, [limit])).rows;
  const refusals = (await db.query(`SELECT to_char(last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, source_name AS source, code, detail, seq, times FROM refusals ORDER BY last_at DESC LIMIT $1`, [limit])).rows;
  const signIns = (await db.query(`SELECT to_char(i.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, coalesce(s.name, 'central') AS source, i.event, i.username, i.method, i.address
    FROM sign_ins i LEFT JOIN sources s ON s.id = i.source_id ORDER BY i.at DESC LIMIT $1`, [limit])).rows;
  return { alerts, refusals, signIns };
}

/** The pictures: scans and blocked scans per day per kiosk, blocked reasons, and the busiest hosts, over [since, until). */
export async function centralActivity(db: Db, since: Date | undefined, until: Date | undefined): Promise<unknown> {
  // Without a range: the 30 days up to the newest scan (a site whose kiosks went quiet still shows its last month).
  const latest = (await db.query<{ m: string | null }>("SELECT to_char(max(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS m FROM k_scans")).rows[0]?.m ?? null;
  const end = until ?? new Date(Date.parse(`${latest ?? new Date().toISOString().slice(0, 10)}T00:00:00Z`) + 86_400_000);
  const range = [(since ?? new Date(end.getTime() - 30 * 86_400_000)).toISOString(), end.toISOString()];
  const [perDay, reasons, kiosks, hmis] = await Promise.all([
    db.query(`SELECT to_char(date_trunc('day', s.started_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, src.site, count(*)::int AS scans,
        count(*) FILTER (WHERE r.verdict IN ('partial', 'rejected'))::int AS blocked FROM k_scans s JOIN sources src ON src.id = s.source_id
        LEFT JOIN k_results r ON r.chain_id = s.chain_id AND r.scan_id = s.scan_id
      WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY 1, 2 ORDER BY 1, 2`, range),
    db.query(`SELECT x.code, count(*)::int AS count FROM k_reasons x JOIN k_scans s ON s.chain_id = x.chain_id AND s.scan_id = x.scan_id
      WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY x.code ORDER BY count DESC, x.code LIMIT 10`, range),
    db.query(`SELECT s.kiosk_id AS host, count(*)::int AS count FROM k_scans s WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`, range),
    db.query(`SELECT a.hmi AS host, count(*)::int AS count FROM a_records a WHERE a.time >= $1 AND a.time < $2 AND a.event = 'file.imported' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`, range),
  ]);
  return { since: range[0], until: range[1], perDay: perDay.rows, topReasons: reasons.rows, topKiosks: kiosks.rows, topHmis: hmis.rows };
}

/** The chart of the single-kiosk page, across every kiosk. */
export async function centralDailyStats(db: Db, since: Date | undefined, until: Date | undefined): Promise<unknown> {
  const latest = (await db.query<{ m: string | null }>("SELECT to_char(max(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS m FROM k_scans")).rows[0]?.m ?? null;
  const end = until ?? new Date(Date.parse(`${latest ?? new Date().toISOString().slice(0, 10)}T00:00:00Z`) + 86_400_000);
  const start = since ?? new Date(end.getTime() - 30 * 86_400_000);
  const range = [start.toISOString(), end.toISOString()];
  const scans = (await db.query(`SELECT to_char(date_trunc('day', s.started_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, count(*)::int AS scans,
      count(*) FILTER (WHERE r.verdict IN ('partial', 'rejected'))::int AS blocked, count(*) FILTER (WHERE r.verdict = 'rejected')::int AS rejected
    FROM k_scans s LEFT JOIN k_results r ON r.chain_id = s.chain_id AND r.scan_id = s.scan_id WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY 1`, range)).rows as Array<{ day: string; scans: number; blocked: number; rejected: number }>;
  const files = (await db.query(`SELECT to_char(date_trunc('day', s.started_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, count(*)::int AS n
    FROM k_scans s JOIN k_files f ON f.chain_id = s.chain_id AND f.scan_id = s.scan_id WHERE s.started_at >= $1 AND s.started_at < $2 AND f.verdict = 'blocked' GROUP BY 1`, range)).rows as Array<{ day: string; n: number }>;
  const reasons = (await db.query(`SELECT x.code, count(*)::int AS count FROM k_reasons x JOIN k_scans s ON s.chain_id = x.chain_id AND s.scan_id = x.scan_id
    WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY x.code ORDER BY count DESC, x.code LIMIT 8`, range)).rows;
  const byDay = new Map(scans.map((s) => [s.day, s]));
  const blockedFiles = new Map(files.map((f) => [f.day, f.n]));
  const days = [];
  for (let t = Date.parse(`${range[0]!.slice(0, 10)}T00:00:00Z`); t < end.getTime(); t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    const s = byDay.get(day);
    days.push({ day, scans: s?.scans ?? 0, blockedScans: s?.blocked ?? 0, rejected: s?.rejected ?? 0, blockedFiles: blockedFiles.get(day) ?? 0 });
  }
  return { since: range[0], until: range[1], days, topReasons: reasons };
}

/** The top bar's chain state across every source: intact, or the first problem. */
export async function centralChainState(db: Db, now: Date): Promise<unknown> {
  const health = await centralHealth(db, now);
  const records = Number((await db.query<{ n: string }>('SELECT coalesce(sum(records), 0) AS n FROM chains')).rows[0]!.n);
  const problem = health.flatMap((h) => h.problems.filter((p) => /tampering|rewritten|replaced|missing/.test(p)).map((p) => `${h.name}: ${p}`))[0];
  return problem === undefined
    ? { state: 'checked', checkedAt: now.toISOString(), ok: true, records, head: { seq: records }, central: true }
    : { state: 'checked', checkedAt: now.toISOString(), ok: false, records, first: { table: 'central', seq: null, code: 'SOURCE_CHAIN', reason: problem }, central: true };
}
