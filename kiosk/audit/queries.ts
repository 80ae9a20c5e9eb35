/**
 * Read models over the audit tables for `log list`, `log show` and
 * `log export`. A scan without a result row is "interrupted": the kiosk
 * stopped before recording an outcome, so nothing from it was approved.
 * Values come back as stored (already escaped when written); renderers
 * escape again, since a tampered database may hold anything.
 */
import type Database from 'better-sqlite3';
import type { DriveVerdict, FileVerdict } from '../core/decide.ts';

export const SCAN_STATUSES = ['approved', 'partial', 'rejected', 'interrupted'] as const;
export type ScanStatus = DriveVerdict | 'interrupted';

export interface ScanFilter {
  readonly since?: Date; // scans started at or after
  readonly until?: Date; // scans started before
  readonly status?: ScanStatus;
  readonly operatorId?: string;
  readonly serial?: string; // USB serial, exact
  /** A fragment of a file's (escaped) path, case-insensitive for ASCII, or a SHA-256/BLAKE3 hex digest (optionally "sha256:"/"blake3:"). */
  readonly file?: string;
  readonly limit?: number;
}

export interface ScanSummary {
  readonly scanId: string;
  readonly status: ScanStatus;
  readonly kioskId: string;
  readonly operatorId: string | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly usb: { readonly vendorId: string | null; readonly productId: string | null; readonly serial: string | null } | null;
  readonly label: string | null;
  readonly files: number; // file rows recorded
  readonly blocked: number;
  readonly driveReasons: readonly string[]; // codes
  readonly manifestDigest: string | null;
}

export interface DeviceRecord {
  readonly usb: {
    readonly vendorId: string | null;
    readonly productId: string | null;
    readonly serial: string | null;
    readonly manufacturer: string | null;
    readonly product: string | null;
  } | null;
  readonly filesystem: string | null;
  readonly volumeId: string | null;
  readonly label: string | null;
  readonly capacity: number | null; // bytes
}

export interface ReasonRecord {
  readonly code: string;
  readonly detail: string;
}

export interface FileRecord {
  readonly seq: number;
  readonly path: string; // escaped display text
  readonly size: number; // bytes
  readonly sha256: string | null;
  readonly blake3: string | null;
  readonly verdict: FileVerdict;
  readonly controlledClass: string | null;
  readonly allowlistEntry: { readonly vendor: string | null; readonly product: string | null; readonly version: string | null; readonly file: string | null; readonly source: string | null } | null;
  readonly reasons: readonly ReasonRecord[];
}

export interface EventRecord {
  readonly seq: number;
  readonly recordedAt: string;
  readonly type: string;
  readonly data: unknown;
}

export interface ScanDetail {
  readonly scanId: string;
  readonly status: ScanStatus;
  readonly kioskId: string;
  readonly operatorId: string | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly device: DeviceRecord | null;
  readonly driveReasons: readonly ReasonRecord[];
  /** null until the scan has an outcome, like everything below but files and events. */
  readonly engines: {
    readonly clamav: { readonly version: string; readonly databaseVersion: string | null; readonly databaseTime: string | null } | null;
    readonly yara: { readonly engine: string; readonly ruleSetDigest: string | null; readonly ruleCount: number | null } | null;
  } | null;
  readonly policy: { readonly id: string; readonly digest: string } | null;
  readonly allowlist: { readonly version: string; readonly digest: string | null } | null;
  readonly stats: { readonly files: number; readonly bytes: number; readonly entries: number } | null;
  readonly durations: { readonly walkMs: number; readonly scanMs: number; readonly totalMs: number } | null;
  readonly manifestFolderExtras: readonly unknown[];
  readonly manifest: { readonly digest: string; readonly keyId: string | null; readonly expiresAt: string | null } | null;
  readonly files: readonly FileRecord[];
  readonly events: readonly EventRecord[];
  /** The chain records that started and finished the scan. */
  readonly records: { readonly started: number; readonly finished: number | null };
}

type Params = Array<string | number>;

/** How a --file value is matched: a digest when it looks like one, else a path fragment. */
export function fileMatcher(needle: string): { sql: string; params: Params; matches: (f: FileRecord) => boolean } {
  const hash = /^(?:(sha256|blake3):)?([0-9a-fA-F]{64})$/.exec(needle.trim());
  if (hash) {
    const hex = hash[2]!.toLowerCase();
    const algorithm = hash[1]?.toLowerCase();
    if (algorithm === 'sha256') return { sql: 'f.sha256 = ?', params: [hex], matches: (f) => f.sha256 === hex };
    if (algorithm === 'blake3') return { sql: 'f.blake3 = ?', params: [hex], matches: (f) => f.blake3 === hex };
    return { sql: '(f.sha256 = ? OR f.blake3 = ?)', params: [hex, hex], matches: (f) => f.sha256 === hex || f.blake3 === hex };
  }
  // SQLite's lower() folds ASCII only; toLowerCase here is limited to the same.
  const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const fragment = asciiLower(needle);
  return { sql: 'instr(lower(f.path), ?) > 0', params: [fragment], matches: (f) => asciiLower(f.path).includes(fragment) };
}

function whereClause(filter: ScanFilter): { sql: string; params: Params } {
  const clauses: string[] = [];
  const params: Params = [];
  if (filter.since) {
    clauses.push('s.started_at >= ?');
    params.push(filter.since.toISOString());
  }
  if (filter.until) {
    clauses.push('s.started_at < ?');
    params.push(filter.until.toISOString());
  }
  if (filter.status === 'interrupted') clauses.push('r.seq IS NULL');
  else if (filter.status) {
    clauses.push('r.verdict = ?');
    params.push(filter.status);
  }
  if (filter.operatorId !== undefined) {
    clauses.push('s.operator_id = ?');
    params.push(filter.operatorId);
  }
  if (filter.serial !== undefined) {
    clauses.push('d.usb_serial = ?');
    params.push(filter.serial);
  }
  if (filter.file !== undefined) {
    const m = fileMatcher(filter.file);
    clauses.push(`EXISTS (SELECT 1 FROM files f WHERE f.scan_id = s.scan_id AND ${m.sql})`);
    params.push(...m.params);
  }
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

const FROM = 'FROM scans s LEFT JOIN scan_results r ON r.scan_id = s.scan_id LEFT JOIN devices d ON d.scan_id = s.scan_id';

function limitClause(filter: ScanFilter, params: Params): string {
  if (filter.limit === undefined) return '';
  params.push(filter.limit);
  return 'LIMIT ?';
}

interface SummaryRow {
  scan_id: string;
  kiosk_id: string;
  operator_id: string | null;
  started_at: string;
  finished_at: string | null;
  status: ScanStatus;
  usb_vendor_id: string | null;
  usb_product_id: string | null;
  usb_serial: string | null;
  label: string | null;
  file_count: number;
  blocked_count: number;
  drive_reasons: string | null;
  manifest_digest: string | null;
}

/** Scans matching the filter, newest first. */
export function listScans(db: Database.Database, filter: ScanFilter): ScanSummary[] {
  const { sql, params } = whereClause(filter);
  const limit = limitClause(filter, params);
  const rows = db.prepare(`
    SELECT s.scan_id, s.kiosk_id, s.operator_id, s.started_at, r.finished_at,
      COALESCE(r.verdict, 'interrupted') AS status, r.manifest_digest,
      d.usb_vendor_id, d.usb_product_id, d.usb_serial, d.label,
      (SELECT count(*) FROM files f WHERE f.scan_id = s.scan_id) AS file_count,
      (SELECT count(*) FROM files f WHERE f.scan_id = s.scan_id AND f.verdict = 'blocked') AS blocked_count,
      (SELECT group_concat(x.code, ',' ORDER BY x.seq) FROM reasons x WHERE x.scan_id = s.scan_id AND x.level = 'drive') AS drive_reasons
    ${FROM} ${sql}
    ORDER BY s.started_at DESC, s.seq DESC ${limit}`).all(...params) as SummaryRow[];
  return rows.map((r) => ({
    scanId: r.scan_id,
    status: r.status,
    kioskId: r.kiosk_id,
    operatorId: r.operator_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    usb: r.usb_vendor_id === null && r.usb_product_id === null && r.usb_serial === null ? null : { vendorId: r.usb_vendor_id, productId: r.usb_product_id, serial: r.usb_serial },
    label: r.label,
    files: r.file_count,
    blocked: r.blocked_count,
    driveReasons: r.drive_reasons === null ? [] : r.drive_reasons.split(','),
    manifestDigest: r.manifest_digest,
  }));
}

/** Ids of the scans matching the filter, oldest first. */
export function scanIds(db: Database.Database, filter: ScanFilter): string[] {
  const { sql, params } = whereClause(filter);
  const limit = limitClause(filter, params);
  return (db.prepare(`SELECT s.scan_id ${FROM} ${sql} ORDER BY s.started_at, s.seq ${limit}`).pluck().all(...params) as string[]);
}

function parseStoredJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text; // a tampered row; verification names it
  }
}

type DbRow = Record<string, string | number | null>;
const str = (v: string | number | null | undefined): string | null => (v === null || v === undefined ? null : String(v));

/** One scan with everything recorded about it; `fileFilter` keeps only matching files. */
export function getScan(db: Database.Database, scanId: string, fileFilter: string | null): ScanDetail | null {
  const s = db.prepare('SELECT * FROM scans WHERE scan_id = ?').get(scanId) as DbRow | undefined;
  if (!s) return null;
  return scanDetail({
    scan: s,
    result: db.prepare('SELECT * FROM scan_results WHERE scan_id = ?').get(scanId) as DbRow | undefined,
    device: db.prepare('SELECT * FROM devices WHERE scan_id = ?').get(scanId) as DbRow | undefined,
    reasons: db.prepare('SELECT * FROM reasons WHERE scan_id = ? ORDER BY seq').all(scanId) as DbRow[],
    files: db.prepare('SELECT * FROM files WHERE scan_id = ? ORDER BY seq').all(scanId) as DbRow[],
    events: db.prepare('SELECT seq, recorded_at, type, data FROM events WHERE scan_id = ? ORDER BY seq').all(scanId) as DbRow[],
  }, fileFilter);
}

/** The rows of one scan, by the ledger's column names, as the kiosk's SQLite or the central review's PostgreSQL give them. */
export interface ScanRows {
  readonly scan: Readonly<Record<string, unknown>>;
  readonly result: Readonly<Record<string, unknown>> | undefined;
  readonly device: Readonly<Record<string, unknown>> | undefined;
  readonly reasons: ReadonlyArray<Readonly<Record<string, unknown>>>;
  readonly files: ReadonlyArray<Readonly<Record<string, unknown>>>;
  readonly events: ReadonlyArray<Readonly<Record<string, unknown>>>;
}

/** A scan's detail from its rows (shared by the single-kiosk and the central review); `scanId` and `startedAt` may be given when the store names them otherwise. */
export function scanDetail(rows: ScanRows, fileFilter: string | null, names: { readonly scanId?: string; readonly startedAt?: string } = {}): ScanDetail {
  const v = (x: unknown): string | number | null => (typeof x === 'string' || typeof x === 'number' ? x : typeof x === 'bigint' ? Number(x) : null);
  // PostgreSQL gives bigint columns as text: a count is a number whichever store it came from.
  const n = (x: unknown): number | null => (x === null || x === undefined ? null : Number(x));
  const { scan: s, result: r, device: d } = rows;
  const byFile = new Map<number, ReasonRecord[]>();
  const driveReasons: ReasonRecord[] = [];
  for (const x of rows.reasons) {
    const reason = { code: String(v(x.code)), detail: String(v(x.detail)) };
    if (x.level === 'drive' || x.file_seq === null) driveReasons.push(reason);
    else {
      const list = byFile.get(Number(x.file_seq)) ?? [];
      list.push(reason);
      byFile.set(Number(x.file_seq), list);
    }
  }
  let files: FileRecord[] = rows.files.map((f) => ({
    seq: Number(f.seq),
    path: String(v(f.path)),
    size: Number(f.size),
    sha256: str(v(f.sha256)),
    blake3: str(v(f.blake3)),
    verdict: String(v(f.verdict)) as FileVerdict,
    controlledClass: str(v(f.controlled_class)),
    allowlistEntry: f.allowlist_vendor === null && f.allowlist_product === null && f.allowlist_file === null ? null : {
      vendor: str(v(f.allowlist_vendor)),
      product: str(v(f.allowlist_product)),
      version: str(v(f.allowlist_version)),
      file: str(v(f.allowlist_file)),
      source: str(v(f.allowlist_source)),
    },
    reasons: byFile.get(Number(f.seq)) ?? [],
  }));
  if (fileFilter !== null) files = files.filter(fileMatcher(fileFilter).matches);
  const events = rows.events.map((e) => ({
    seq: Number(e.seq),
    recordedAt: String(v(e.recorded_at)),
    type: String(v(e.type)),
    data: parseStoredJson(String(v(e.data))),
  }));
  const device: DeviceRecord | null = d ? {
    usb: d.usb_vendor_id === null && d.usb_product_id === null && d.usb_serial === null ? null : {
      vendorId: str(v(d.usb_vendor_id)),
      productId: str(v(d.usb_product_id)),
      serial: str(v(d.usb_serial)),
      manufacturer: str(v(d.manufacturer)),
      product: str(v(d.product)),
    },
    filesystem: str(v(d.filesystem)),
    volumeId: str(v(d.volume_id)),
    label: str(v(d.label)),
    capacity: n(d.capacity),
  } : null;
  const extras = r ? parseStoredJson(String(v(r.manifest_folder_extras))) : [];
  return {
    scanId: names.scanId ?? String(v(s.scan_id)),
    status: r ? (String(v(r.verdict)) as DriveVerdict) : 'interrupted',
    kioskId: String(v(s.kiosk_id)),
    operatorId: str(v(s.operator_id)),
    startedAt: names.startedAt ?? String(v(s.started_at)),
    finishedAt: r ? str(v(r.finished_at)) : null,
    device,
    driveReasons,
    engines: r ? {
      clamav: r.clamav_version === null ? null : { version: String(v(r.clamav_version)), databaseVersion: str(v(r.clamav_db_version)), databaseTime: str(v(r.clamav_db_time)) },
      yara: r.yara_engine === null ? null : { engine: String(v(r.yara_engine)), ruleSetDigest: str(v(r.yara_rule_set_digest)), ruleCount: n(r.yara_rule_count) },
    } : null,
    policy: r ? { id: String(v(r.policy_id)), digest: String(v(r.policy_digest)) } : null,
    allowlist: r && r.allowlist_version !== null ? { version: String(v(r.allowlist_version)), digest: str(v(r.allowlist_digest)) } : null,
    stats: r ? { files: Number(r.file_count), bytes: Number(r.byte_count), entries: Number(r.entry_count) } : null,
    durations: r ? { walkMs: Number(r.walk_ms), scanMs: Number(r.scan_ms), totalMs: Number(r.total_ms) } : null,
    manifestFolderExtras: Array.isArray(extras) ? (extras as unknown[]) : [extras],
    manifest: r && r.manifest_digest !== null ? { digest: String(v(r.manifest_digest)), keyId: str(v(r.manifest_key_id)), expiresAt: str(v(r.manifest_expires_at)) } : null,
    files,
    events,
    records: { started: Number(s.seq), finished: r ? Number(r.seq) : null },
  };
}
