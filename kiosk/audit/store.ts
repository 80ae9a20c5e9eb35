/**
 * The kiosk's audit store: SQLite (better-sqlite3, synchronous) in WAL mode
 * with synchronous=FULL, so a committed record survives a power cut. Every
 * write is one synchronous IMMEDIATE transaction that appends hash-chained
 * rows and moves the chain head; nothing is awaited inside one. A write that
 * cannot commit throws AUDIT_WRITE_FAILED and the operation it records must
 * fail closed (like USBGuard's audit: an event never committed is a failure).
 *
 * A scan is two records: beginScan writes SCAN_STARTED (the scans row and the
 * device), finishScan writes the whole outcome (files, reasons, result) in
 * one transaction. A scan with no result reads as "interrupted", never as
 * approved; the stored verdict can be no more permissive than its files and
 * drive reasons allow.
 */
import Database from 'better-sqlite3';
import { canonicalize, type JsonValue } from '../../manifest/canonical-json.ts';
import { displayText } from '../../manifest/names.ts';
import type { Predicate } from '../../manifest/statement.ts';
import type { Decision, DriveVerdict, FileDecision } from '../core/decide.ts';
import type { ScanReport } from '../scan/scan-session.ts';
import { recordHash, verifyLedger, type ColumnValue, type RowContent, type VerifyOptions, type VerifyResult } from './chain.ts';
import { AuditError } from './errors.ts';
import { getScan, listScans, scanIds, type ScanDetail, type ScanFilter, type ScanSummary } from './queries.ts';
import { MIGRATIONS, SCHEMA_VERSION, type LedgerTable } from './schema.ts';

const BUSY_TIMEOUT_MS = 5_000; // ms to wait for another writer's lock before AUDIT_WRITE_FAILED
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const EVENT_TYPE = /^[A-Z][A-Z0-9_]{1,47}$/;
const REASON_CODE = /^[A-Z][A-Z0-9_]{1,47}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const MAX_EVENT_DEPTH = 16; // nesting levels kept in an event's data

/** Events the kiosk records besides scans; any upper-case code is accepted. */
export const KNOWN_EVENT_TYPES = [
  'SCHEMA_MIGRATED',
  'SCAN_INTERRUPTED',
  'MANIFEST_WRITE_FAILED',
  'ENGINE_FAILURE',
  'KEY_GENERATED',
  'UPDATE_ROOT_PINNED',
  'UPDATE_IMPORTED',
  'UPDATE_UNCHANGED',
  'UPDATE_REFUSED',
  'UPDATE_ROLLED_BACK',
  'STATION_OUT_OF_SERVICE',
  'STATION_IN_SERVICE',
] as const;

/** Text as it is stored and shown (manifest/names.ts); re-exported for the audit and review modules. */
export { displayText };

export interface AuditStoreOptions {
  readonly now?: () => Date;
  /** Open an existing database for reading only: no migration, no write. */
  readonly readonly?: boolean;
  readonly busyTimeoutMs?: number; // ms
}

/** The drive as detected; every string is drive-supplied and stored escaped. */
export interface AuditDevice {
  readonly usb: {
    readonly vendorId: string;
    readonly productId: string;
    readonly serial: string | null;
    readonly manufacturer?: string | null;
    readonly product?: string | null;
  } | null;
  readonly filesystem: string | null;
  readonly volumeId: string | null;
  readonly label: string | null;
  readonly capacity: number | null; // bytes
}

export interface BeginScanInput {
  readonly scanId: string;
  readonly kioskId: string;
  readonly operatorId: string | null;
  /** null when a folder stands for a drive (tests, demo). */
  readonly device: AuditDevice | null;
  readonly startedAt: Date;
}

export interface FinishScanInput {
  readonly scanId: string;
  readonly decision: Decision;
  readonly report: Pick<ScanReport, 'stats' | 'durations' | 'manifestFolderExtras'>;
  readonly engines: Predicate['engines'];
  readonly policy: { readonly id: string; readonly digest: string };
  readonly allowlist: { readonly version: string; readonly digest: string } | null;
  /** The manifest written onto the drive; null when none was issued. */
  readonly manifest: { readonly digest: string; readonly keyId: string; readonly expiresAt: string | Date } | null;
  readonly finishedAt: Date;
}

/** Where a write landed in the chain: the last record it appended. */
export interface RecordRef {
  readonly seq: number;
  readonly hash: string;
}

export interface AuditStore {
  readonly path: string;
  readonly schemaVersion: number;
  /** Records SCAN_STARTED: the scan and the device. */
  beginScan(input: BeginScanInput): RecordRef;
  /** Records the scan's whole outcome in one transaction: files, reasons, result. */
  finishScan(input: FinishScanInput): RecordRef;
  /** Records any other event; `data` is kept as canonical JSON with every string made display-safe. */
  recordEvent(type: string, data: Readonly<Record<string, unknown>>, options?: { readonly scanId?: string }): RecordRef;
  /** Records SCAN_INTERRUPTED once for each scan that has no outcome (call at start-up); returns their ids. */
  recordInterruptedScans(): string[];
  listScans(filter?: ScanFilter): ScanSummary[];
  getScan(scanId: string): ScanDetail | null;
  /** Scans matching the filter, oldest first; with a `file` filter each holds only the matching files. */
  exportScans(filter?: ScanFilter): Iterable<ScanDetail>;
  verifyChain(options?: VerifyOptions): VerifyResult;
  /** This connection's durability settings, for the kiosk's start-up self-check. */
  durability(): { readonly journalMode: string; readonly synchronous: 'off' | 'normal' | 'full' | 'extra' };
  close(): void;
}

type Row = Record<string, ColumnValue>;
type Append = (table: LedgerTable, row: Row) => RecordRef;

function invalid(operation: string, path: string, message: string): AuditError {
  return new AuditError('AUDIT_INVALID_RECORD', `${operation}: ${path}: ${message}; nothing was recorded`);
}

function timeText(operation: string, path: string, value: Date | string): string {
  if (typeof value === 'string') {
    if (UTC_TIME.test(value) && !Number.isNaN(Date.parse(value))) return value;
    throw invalid(operation, path, 'expected a UTC time like 2025-01-31T12:00:00Z');
  }
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw invalid(operation, path, 'expected a valid Date');
  return value.toISOString();
}

function count(operation: string, path: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalid(operation, path, `expected a non-negative integer, got ${String(value)}`);
  return value;
}

function identifier(operation: string, path: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) throw invalid(operation, path, 'expected 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit');
  return value;
}

function text(operation: string, path: string, value: unknown): string {
  if (typeof value !== 'string') throw invalid(operation, path, `expected text, got ${value === null ? 'null' : typeof value}`);
  return displayText(value);
}

function optionalText(operation: string, path: string, value: unknown): string | null {
  return value === null || value === undefined ? null : text(operation, path, value);
}

function matching(operation: string, path: string, value: unknown, pattern: RegExp, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw invalid(operation, path, `expected ${what}`);
  return value;
}

const VERDICT_RANK: Record<DriveVerdict, number> = { rejected: 0, partial: 1, approved: 2 };

/** The most permissive verdict the files and drive reasons allow (decide.ts's rule). */
function supportedVerdict(files: { readonly total: number; readonly passing: number }, driveReasons: readonly unknown[]): DriveVerdict {
  if (driveReasons.length > 0 || files.passing === 0) return 'rejected';
  return files.passing === files.total ? 'approved' : 'partial';
}

function fileRow(operation: string, scanId: string, f: FileDecision, i: number): Row {
  const at = `decision.files[${i}]`;
  if (f.verdict !== 'clean' && f.verdict !== 'allowlisted' && f.verdict !== 'blocked') throw invalid(operation, `${at}.verdict`, 'expected clean, allowlisted or blocked');
  if (f.verdict !== 'blocked' && f.reasons.length > 0) throw invalid(operation, at, `a ${f.verdict} file cannot have reasons to block it`);
  if (f.verdict === 'blocked' && f.reasons.length === 0) throw invalid(operation, at, 'a blocked file needs at least one reason');
  if (f.verdict !== 'blocked' && f.digest === null) throw invalid(operation, at, `a ${f.verdict} file needs its digests`);
  if (f.verdict === 'allowlisted' && f.allowlistEntry === null) throw invalid(operation, at, 'an allowlisted file needs its allowlist entry');
  const entry = f.allowlistEntry;
  return {
    scan_id: scanId,
    path: text(operation, `${at}.display`, f.display),
    size: count(operation, `${at}.size`, f.size),
    sha256: f.digest === null ? null : matching(operation, `${at}.digest.sha256`, f.digest.sha256, HEX64, '64 lowercase hex characters'),
    blake3: f.digest === null ? null : matching(operation, `${at}.digest.blake3`, f.digest.blake3, HEX64, '64 lowercase hex characters'),
    verdict: f.verdict,
    controlled_class: optionalText(operation, `${at}.controlledClass`, f.controlledClass),
    allowlist_vendor: entry ? text(operation, `${at}.allowlistEntry.vendor`, entry.vendor) : null,
    allowlist_product: entry ? text(operation, `${at}.allowlistEntry.product`, entry.product) : null,
    allowlist_version: entry ? text(operation, `${at}.allowlistEntry.version`, entry.version) : null,
    allowlist_file: entry ? text(operation, `${at}.allowlistEntry.file`, entry.file) : null,
    allowlist_source: entry ? text(operation, `${at}.allowlistEntry.source`, entry.source) : null,
  };
}

function reasonRow(operation: string, at: string, scanId: string, fileSeq: number | null, reason: { code: string; detail: string }): Row {
  return {
    scan_id: scanId,
    level: fileSeq === null ? 'drive' : 'file',
    file_seq: fileSeq,
    code: matching(operation, `${at}.code`, reason.code, REASON_CODE, 'an upper-case code like MALWARE'),
    detail: text(operation, `${at}.detail`, reason.detail),
  };
}

/** Any value turned into JSON canonicalize accepts: strings display-safe, odd numbers and objects as text. */
function eventJson(value: unknown, depth = 0): JsonValue {
  if (value === null || value === undefined) return null;
  if (depth > MAX_EVENT_DEPTH) return '(nested too deep)';
  switch (typeof value) {
    case 'string':
      return displayText(value);
    case 'boolean':
      return value;
    case 'number':
      return Number.isSafeInteger(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'object': {
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
      if (Array.isArray(value)) return value.map((v) => eventJson(v, depth + 1));
      if (value instanceof Error) {
        const code = (value as { code?: unknown }).code;
        return { name: displayText(value.name), message: displayText(value.message), ...(typeof code === 'string' ? { code: displayText(code) } : {}) };
      }
      const out: Record<string, JsonValue> = {};
      for (const [k, v] of Object.entries(value)) if (v !== undefined) out[displayText(k)] = eventJson(v, depth + 1);
      return out;
    }
    default:
      return `(a ${typeof value})`; // functions and symbols carry no record
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function currentVersion(db: Database.Database): number {
  if (!tableExists(db, 'schema_migrations')) return 0;
  const row = db.prepare('SELECT max(version) AS version FROM schema_migrations').get() as { version: number | null };
  return row.version ?? 0;
}

function tooNew(path: string, version: number): AuditError {
  return new AuditError(
    'AUDIT_SCHEMA_TOO_NEW',
    `${path}: the audit database has schema version ${version}, newer than this kiosk knows (${SCHEMA_VERSION}): update the kiosk software; the database was not changed`,
  );
}

class SqliteAuditStore implements AuditStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly inTransaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(db: Database.Database, path: string, now: () => Date) {
    this.db = db;
    this.path = path;
    this.now = now;
    this.inTransaction = db.transaction((fn: () => unknown) => fn());
  }

  get schemaVersion(): number {
    return currentVersion(this.db);
  }

  /** Runs `fn` in one IMMEDIATE transaction; rows appended through it extend the chain, and the head moves with them. */
  write<T>(operation: string, fn: (append: Append) => T, before?: () => void): T {
    try {
      return this.inTransaction.immediate(() => {
        before?.();
        const head = this.db.prepare('SELECT seq, hash FROM chain_head WHERE id = 1').get() as { seq: number; hash: string } | undefined;
        if (!head) throw new AuditError('AUDIT_WRITE_FAILED', `${this.path}: ${operation} was not recorded: the chain head is missing (run "log verify")`);
        let seq = head.seq;
        let prev = head.hash;
        const append: Append = (table, row) => {
          seq += 1;
          const hash = recordHash(table, seq, prev, row);
          this.insert(table, Object.keys(row)).run(seq, prev, hash, ...Object.values(row));
          // Read the row back as verification will: a record that would not verify is never committed.
          const stored = this.readBack(table).get(seq) as RowContent | undefined;
          if (!stored || recordHash(table, seq, prev, stored) !== hash) {
            throw new AuditError('AUDIT_WRITE_FAILED', `${this.path}: ${operation} was not recorded: the ${table} row read back differs from what was hashed (a bug)`);
          }
          prev = hash;
          return { seq, hash };
        };
        const result = fn(append);
        if (seq > head.seq) this.db.prepare('UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1').run(seq, prev);
        return result;
      }) as T;
    } catch (error) {
      if (error instanceof AuditError) throw error;
      throw new AuditError('AUDIT_WRITE_FAILED', `${this.path}: ${operation} was not recorded (${errorText(error)}): treat the operation as failed`, { cause: error });
    }
  }

  private insert(table: LedgerTable, columns: readonly string[]): Database.Statement {
    const key = `${table}(${columns.join(',')})`;
    let statement = this.statements.get(key);
    if (!statement) {
      const names = ['seq', 'prev_hash', 'hash', ...columns];
      statement = this.db.prepare(`INSERT INTO ${table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`);
      this.statements.set(key, statement);
    }
    return statement;
  }

  private readBack(table: LedgerTable): Database.Statement {
    const key = `read ${table}`;
    let statement = this.statements.get(key);
    if (!statement) {
      statement = this.db.prepare(`SELECT * FROM ${table} WHERE seq = ?`);
      this.statements.set(key, statement);
    }
    return statement;
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  beginScan(input: BeginScanInput): RecordRef {
    const op = 'beginScan';
    const scanId = identifier(op, 'scanId', input.scanId);
    const scan: Row = {
      recorded_at: this.stamp(),
      scan_id: scanId,
      kiosk_id: identifier(op, 'kioskId', input.kioskId),
      operator_id: input.operatorId === null ? null : text(op, 'operatorId', input.operatorId),
      started_at: timeText(op, 'startedAt', input.startedAt),
    };
    const d = input.device;
    const device: Row | null = d === null ? null : {
      scan_id: scanId,
      usb_vendor_id: optionalText(op, 'device.usb.vendorId', d.usb?.vendorId),
      usb_product_id: optionalText(op, 'device.usb.productId', d.usb?.productId),
      usb_serial: optionalText(op, 'device.usb.serial', d.usb?.serial),
      manufacturer: optionalText(op, 'device.usb.manufacturer', d.usb?.manufacturer),
      product: optionalText(op, 'device.usb.product', d.usb?.product),
      filesystem: optionalText(op, 'device.filesystem', d.filesystem),
      volume_id: optionalText(op, 'device.volumeId', d.volumeId),
      label: optionalText(op, 'device.label', d.label),
      capacity: d.capacity === null ? null : count(op, 'device.capacity', d.capacity),
    };
    return this.write(`SCAN_STARTED ${scanId}`, (append) => {
      if (this.db.prepare('SELECT 1 FROM scans WHERE scan_id = ?').get(scanId)) {
        throw new AuditError('AUDIT_SCAN_EXISTS', `${op}: scan ${scanId} is already in the audit log; nothing was recorded`);
      }
      const started = append('scans', scan);
      return device ? append('devices', device) : started;
    });
  }

  finishScan(input: FinishScanInput): RecordRef {
    const op = 'finishScan';
    const scanId = identifier(op, 'scanId', input.scanId);
    const { decision, report, engines, manifest } = input;
    const verdict = decision.verdict;
    if (!Object.hasOwn(VERDICT_RANK, verdict)) throw invalid(op, 'decision.verdict', 'expected approved, partial or rejected');
    if (manifest !== null && verdict === 'rejected') throw invalid(op, 'manifest', 'a rejected drive cannot have a manifest');
    const driveReasons = decision.driveReasons.map((r, i) => reasonRow(op, `decision.driveReasons[${i}]`, scanId, null, r));
    const clamav = engines.clamav;
    const yara = engines.yara;
    const result: Row = {
      recorded_at: this.stamp(),
      scan_id: scanId,
      finished_at: timeText(op, 'finishedAt', input.finishedAt),
      verdict,
      clamav_version: clamav ? text(op, 'engines.clamav.version', clamav.version) : null,
      clamav_db_version: optionalText(op, 'engines.clamav.databaseVersion', clamav?.databaseVersion),
      clamav_db_time: optionalText(op, 'engines.clamav.databaseTime', clamav?.databaseTime),
      yara_engine: yara ? text(op, 'engines.yara.engine', yara.engine) : null,
      yara_rule_set_digest: yara ? text(op, 'engines.yara.ruleSetDigest', yara.ruleSetDigest) : null,
      yara_rule_count: yara ? count(op, 'engines.yara.ruleCount', yara.ruleCount) : null,
      policy_id: text(op, 'policy.id', input.policy.id),
      policy_digest: text(op, 'policy.digest', input.policy.digest),
      allowlist_version: input.allowlist ? text(op, 'allowlist.version', input.allowlist.version) : null,
      allowlist_digest: input.allowlist ? text(op, 'allowlist.digest', input.allowlist.digest) : null,
      file_count: count(op, 'report.stats.files', report.stats.files),
      byte_count: count(op, 'report.stats.bytes', report.stats.bytes),
      entry_count: count(op, 'report.stats.entries', report.stats.entries),
      walk_ms: count(op, 'report.durations.walkMs', report.durations.walkMs),
      scan_ms: count(op, 'report.durations.scanMs', report.durations.scanMs),
      total_ms: count(op, 'report.durations.totalMs', report.durations.totalMs),
      manifest_folder_extras: canonicalize(report.manifestFolderExtras.map((e, i) => text(op, `report.manifestFolderExtras[${i}]`, e))),
      manifest_digest: manifest ? matching(op, 'manifest.digest', manifest.digest, SHA256_DIGEST, '"sha256:" and 64 lowercase hex characters') : null,
      manifest_key_id: manifest ? matching(op, 'manifest.keyId', manifest.keyId, HEX64, '64 lowercase hex characters') : null,
      manifest_expires_at: manifest ? timeText(op, 'manifest.expiresAt', manifest.expiresAt) : null,
    };
    return this.write(`the outcome of scan ${scanId}`, (append) => {
      if (!this.db.prepare('SELECT 1 FROM scans WHERE scan_id = ?').get(scanId)) {
        throw new AuditError('AUDIT_SCAN_UNKNOWN', `${op}: scan ${scanId} was never begun; nothing was recorded`);
      }
      if (this.db.prepare('SELECT 1 FROM scan_results WHERE scan_id = ?').get(scanId)) {
        throw new AuditError('AUDIT_SCAN_FINISHED', `${op}: scan ${scanId} already has its outcome; nothing was recorded`);
      }
      for (const r of driveReasons) append('reasons', r);
      // Files are read as they are appended (a scan's come from its ledger a page at a time);
      // one that fails validation throws and the whole transaction is rolled back.
      const tally = { total: 0, passing: 0 };
      for (const f of decision.files) {
        const i = tally.total++;
        if (f.verdict !== 'blocked') tally.passing++;
        const { seq } = append('files', fileRow(op, scanId, f, i));
        f.reasons.forEach((r, j) => append('reasons', reasonRow(op, `decision.files[${i}].reasons[${j}]`, scanId, seq, r)));
      }
      // Default deny: an approval the files and drive reasons do not support is refused, not recorded.
      const supported = supportedVerdict(tally, decision.driveReasons);
      if (VERDICT_RANK[verdict] > VERDICT_RANK[supported]) {
        throw invalid(op, 'decision.verdict', `the decision says ${verdict} but its files and drive reasons allow at most ${supported}`);
      }
      return append('scan_results', result);
    });
  }

  recordEvent(type: string, data: Readonly<Record<string, unknown>>, options: { readonly scanId?: string } = {}): RecordRef {
    const op = 'recordEvent';
    const row: Row = {
      recorded_at: this.stamp(),
      type: matching(op, 'type', type, EVENT_TYPE, 'an upper-case event type like MANIFEST_WRITE_FAILED'),
      scan_id: optionalText(op, 'options.scanId', options.scanId),
      data: canonicalize(eventJson(data)),
    };
    return this.write(`event ${type}`, (append) => append('events', row));
  }

  recordInterruptedScans(): string[] {
    return this.write('SCAN_INTERRUPTED', (append) => {
      const open = this.db.prepare(`
        SELECT s.scan_id, s.started_at FROM scans s
        WHERE NOT EXISTS (SELECT 1 FROM scan_results r WHERE r.scan_id = s.scan_id)
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.scan_id = s.scan_id AND e.type = 'SCAN_INTERRUPTED')
        ORDER BY s.seq`).all() as Array<{ scan_id: string; started_at: string }>;
      const recordedAt = this.stamp();
      for (const s of open) {
        append('events', {
          recorded_at: recordedAt,
          type: 'SCAN_INTERRUPTED',
          scan_id: s.scan_id,
          data: canonicalize({ startedAt: s.started_at, detail: 'the scan never recorded an outcome (the kiosk stopped): nothing was approved' }),
        });
      }
      return open.map((s) => s.scan_id);
    });
  }

  listScans(filter: ScanFilter = {}): ScanSummary[] {
    return listScans(this.db, filter);
  }

  getScan(scanId: string): ScanDetail | null {
    return getScan(this.db, scanId, null);
  }

  *exportScans(filter: ScanFilter = {}): Iterable<ScanDetail> {
    for (const id of scanIds(this.db, filter)) {
      const detail = getScan(this.db, id, filter.file ?? null);
      if (detail) yield detail;
    }
  }

  verifyChain(options: VerifyOptions = {}): VerifyResult {
    return verifyLedger(this.db, options);
  }

  durability(): { journalMode: string; synchronous: 'off' | 'normal' | 'full' | 'extra' } {
    const levels = ['off', 'normal', 'full', 'extra'] as const;
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: levels[Number(this.db.pragma('synchronous', { simple: true }))] ?? 'off',
    };
  }

  close(): void {
    this.db.close();
  }
}

/**
 * Applies the migrations this database lacks, in order, in one transaction;
 * each leaves a SCHEMA_MIGRATED record in the chain beside its
 * schema_migrations row, so verification covers that table too.
 */
function migrate(store: SqliteAuditStore, db: Database.Database, path: string, now: () => Date): void {
  const applied: Array<{ version: number; description: string; appliedAt: string }> = [];
  // The steps run before the chain head is read: the first migration creates it.
  const applySteps = (): void => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT');
    const version = currentVersion(db); // again inside the lock: another process may have migrated meanwhile
    if (version > SCHEMA_VERSION) throw tooNew(path, version);
    for (const m of MIGRATIONS) {
      if (m.version <= version) continue;
      for (const step of m.steps) db.exec(step);
      const appliedAt = now().toISOString();
      db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, appliedAt);
      applied.push({ version: m.version, description: m.description, appliedAt });
    }
  };
  store.write('the schema migration', (append) => {
    for (const m of applied) {
      append('events', { recorded_at: m.appliedAt, type: 'SCHEMA_MIGRATED', scan_id: null, data: canonicalize({ version: m.version, description: m.description }) });
    }
  }, applySteps);
}

/**
 * Opens (creating and migrating when needed) the audit database at `path`.
 * Refuses a database whose schema is newer than this code knows
 * (AUDIT_SCHEMA_TOO_NEW) without changing it.
 */
export function openAuditStore(path: string, options: AuditStoreOptions = {}): AuditStore {
  const now = options.now ?? (() => new Date());
  const readonly = options.readonly === true;
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: options.busyTimeoutMs ?? BUSY_TIMEOUT_MS });
  } catch (cause) {
    throw new AuditError('AUDIT_OPEN_FAILED', `${path}: cannot open the audit database (${errorText(cause)})`, { cause });
  }
  try {
    const version = currentVersion(db);
    if (version > SCHEMA_VERSION) throw tooNew(path, version);
    // Tables but no schema_migrations: someone else's database, not this kiosk's log.
    // Migrating would write audit tables into it; an empty database is a new log.
    if (!tableExists(db, 'schema_migrations') && db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get() !== undefined) {
      throw new AuditError('AUDIT_NOT_AN_AUDIT_LOG', `${path}: an SQLite database that is not a kiosk audit log; nothing was written to it: check --db (or the config's auditDb)`);
    }
    if (readonly) {
      if (version < SCHEMA_VERSION) {
        throw new AuditError('AUDIT_SCHEMA_OUTDATED', `${path}: schema version ${version} is older than ${SCHEMA_VERSION}: open it once with the kiosk (a scan, or the station) to migrate it`);
      }
      return new SqliteAuditStore(db, path, now);
    }
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new AuditError('AUDIT_OPEN_FAILED', `${path}: SQLite refused WAL mode (journal_mode is ${String(mode)})`);
    db.pragma('synchronous = FULL'); // every commit is fsynced: a record the kiosk acted on survives a power cut
    db.pragma('foreign_keys = ON');
    // better-sqlite3's default page cache is 16 MiB, filled by the first large scan and kept:
    // the kiosk's peak memory then depended on the drive. The writer needs little cache.
    db.pragma('cache_size = -2048'); // KiB
    if (db.pragma('synchronous', { simple: true }) !== 2) throw new AuditError('AUDIT_OPEN_FAILED', `${path}: SQLite refused synchronous=FULL`);
    const store = new SqliteAuditStore(db, path, now);
    if (version < SCHEMA_VERSION) migrate(store, db, path, now);
    return store;
  } catch (error) {
    db.close();
    if (error instanceof AuditError) throw error;
    throw new AuditError('AUDIT_OPEN_FAILED', `${path}: cannot use the audit database (${errorText(error)})`, { cause: error });
  }
}
