/**
 * `portcullis-kiosk log ...`: verify, list, show and export the audit log.
 * Each command takes parsed options and its output streams, opens the
 * database read-only, and returns an exit code: 0 ok, 1 failure (a broken
 * chain, an unknown scan, a database that cannot be read), 64 usage.
 * Every value from the database is escaped again on output: a tampered
 * database may hold raw control or bidi characters.
 */
import { parseArgs } from 'node:util';
import { PortcullisError } from '../../manifest/errors.ts';
import { EXIT } from '../core/exit-codes.ts';
import type { ChainAnchor, VerifyResult } from '../audit/chain.ts';
import { csvRecord } from '../audit/csv.ts';
import { SCAN_STATUSES, type ScanDetail, type ScanFilter, type ScanStatus, type ScanSummary } from '../audit/queries.ts';
import { displayText, openAuditStore, type AuditStore } from '../audit/store.ts';

export const LOG_USAGE = `usage: portcullis-kiosk log <command> [--db FILE | --config FILE] [options]

commands:
  verify [--db FILE] [--anchor SEQ:HASH] [--json]
        check the hash chain; exit 1 names the first broken record. --anchor
        also checks record SEQ against a hash kept outside the kiosk
  list [--db FILE] [filters] [--json]
        scans, newest first (default --limit 50)
  show SCAN_ID [--db FILE] [--json]
        one scan: device, engines, policy, verdict, every file and reason
  export [--db FILE] --format csv|json [filters]
        scans oldest first; CSV has one row per file with the scan's columns

the log: --db FILE, else the kiosk config's auditDb (--config FILE or
PORTCULLIS_KIOSK_CONFIG), else var/kiosk/audit.db in the checkout: the
same log scan and run write to

filters:
  --since T --until T   started at or after / before T (YYYY-MM-DD, or
                        YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]; UTC when no zone;
                        a date alone in --until includes that whole day)
  --verdict V           approved, partial, rejected or interrupted
  --operator ID         operator id, exact
  --serial S            USB serial number, exact
  --file NAME-OR-HASH   a path fragment, or a SHA-256/BLAKE3 hex digest
                        (export keeps only the matching files)
  --limit N             at most N scans

exit codes: 0 ok, 1 failure (broken chain, unknown scan, unreadable log), 64 usage`;

export interface TextSink {
  write(chunk: string): unknown;
}

export interface LogStreams {
  readonly stdout?: TextSink;
  readonly stderr?: TextSink;
}

/** Filters as typed on the command line; checked here (bad values exit 64). */
export interface LogFilterOptions {
  readonly since?: string;
  readonly until?: string;
  readonly verdict?: string;
  readonly operator?: string;
  readonly serial?: string;
  readonly file?: string;
  readonly limit?: string | number;
}

export interface LogVerifyOptions extends LogStreams {
  readonly db?: string;
  readonly anchor?: string;
  readonly json?: boolean;
}

export interface LogListOptions extends LogStreams, LogFilterOptions {
  readonly db?: string;
  readonly json?: boolean;
}

export interface LogShowOptions extends LogStreams {
  readonly db?: string;
  readonly scanId?: string;
  readonly json?: boolean;
}

export interface LogExportOptions extends LogStreams, LogFilterOptions {
  readonly db?: string;
  readonly format?: string;
}

const DEFAULT_LIST_LIMIT = 50; // scans

class LogUsageError extends PortcullisError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Runs one command body and turns its errors into exit codes. */
function runCommand(streams: LogStreams, body: (out: TextSink) => number): number {
  const err = streams.stderr ?? process.stderr;
  try {
    return body(streams.stdout ?? process.stdout);
  } catch (error) {
    if (error instanceof LogUsageError) {
      err.write(`portcullis-kiosk log: ${error.message}\n\n${LOG_USAGE}\n`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      err.write(`portcullis-kiosk log: ${error.code}: ${displayText(error.message)}\n`);
      return EXIT.FAILURE;
    }
    throw error;
  }
}

function withStore<T>(db: string | undefined, use: (store: AuditStore) => T): T {
  if (!db) throw new LogUsageError('--db FILE is required (or a kiosk config with auditDb)');
  const store = openAuditStore(db, { readonly: true });
  try {
    return use(store);
  } finally {
    store.close();
  }
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?$/;

function parseTime(flag: string, value: string, endOfDay: boolean): Date {
  const dateOnly = DATE_ONLY.exec(value);
  let time: Date;
  if (dateOnly) {
    time = new Date(`${value}T00:00:00Z`);
    if (!Number.isNaN(time.getTime()) && time.toISOString().slice(0, 10) !== value) time = new Date(NaN); // 2025-02-30
    if (endOfDay) time = new Date(time.getTime() + 24 * 3600 * 1000);
  } else if (DATE_TIME.test(value)) {
    time = new Date(/(Z|[+-]\d{2}:\d{2})$/.test(value) ? value : `${value}Z`);
  } else {
    time = new Date(NaN);
  }
  if (Number.isNaN(time.getTime())) throw new LogUsageError(`${flag} ${JSON.stringify(displayText(value))}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]`);
  return time;
}

function parseLimit(value: string | number): number {
  const text = String(value);
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new LogUsageError(`--limit ${JSON.stringify(displayText(text))}: expected a whole number from 1`);
  return Number(text);
}

/** Checks the filter options; exported for the review server, which takes the same filters. */
export function parseFilter(options: LogFilterOptions, defaultLimit?: number): ScanFilter {
  const filter: { -readonly [K in keyof ScanFilter]: ScanFilter[K] } = {};
  if (options.since !== undefined) filter.since = parseTime('--since', options.since, false);
  if (options.until !== undefined) filter.until = parseTime('--until', options.until, true);
  if (options.verdict !== undefined) {
    if (!(SCAN_STATUSES as readonly string[]).includes(options.verdict)) {
      throw new LogUsageError(`--verdict ${JSON.stringify(displayText(options.verdict))}: expected one of ${SCAN_STATUSES.join(', ')}`);
    }
    filter.status = options.verdict as ScanStatus;
  }
  if (options.operator !== undefined) filter.operatorId = displayText(options.operator);
  if (options.serial !== undefined) filter.serial = displayText(options.serial);
  if (options.file !== undefined) {
    if (options.file.length === 0) throw new LogUsageError('--file needs a name or a hash');
    filter.file = displayText(options.file);
  }
  if (options.limit !== undefined) filter.limit = parseLimit(options.limit);
  else if (defaultLimit !== undefined) filter.limit = defaultLimit;
  return filter;
}

/** A deep copy with every string escaped for display. */
function escapedJson(value: unknown): unknown {
  if (typeof value === 'string') return displayText(value);
  if (Array.isArray(value)) return value.map(escapedJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [displayText(k), escapedJson(v)]));
  }
  return value;
}

/** One value for text output: escaped, "-" for none. */
function show(value: string | number | null | undefined): string {
  return value === null || value === undefined ? '-' : displayText(String(value));
}

function parseAnchor(value: string): ChainAnchor {
  const match = /^([1-9][0-9]{0,14}):([0-9a-f]{64})$/.exec(value);
  if (!match) throw new LogUsageError(`--anchor ${JSON.stringify(displayText(value))}: expected SEQ:HASH (a record number, a colon and 64 lowercase hex characters)`);
  return { seq: Number(match[1]), hash: match[2]! };
}

function verifyText(result: VerifyResult): string {
  if (result.ok) return `audit log intact: ${result.records} records; head ${result.head.seq} ${result.head.hash}\n`;
  const f = result.first;
  const where = f.seq !== null ? `${f.table} seq ${f.seq}` : f.rowid !== null ? `${f.table} rowid ${f.rowid}` : f.table;
  return `audit log BROKEN: first broken record: ${where}: ${f.code}: ${displayText(f.reason)}\n` +
    `${result.records} records before it verified; do not trust what follows it: keep this database as evidence\n`;
}

/** `log verify --db FILE [--anchor SEQ:HASH] [--json]`: 0 intact, 1 broken. */
export function logVerifyCommand(options: LogVerifyOptions): number {
  return runCommand(options, (out) => {
    const anchor = options.anchor === undefined ? undefined : parseAnchor(options.anchor);
    const result = withStore(options.db, (store) => store.verifyChain(anchor ? { anchor } : {}));
    out.write(options.json ? `${JSON.stringify(escapedJson(result), null, 2)}\n` : verifyText(result));
    return result.ok ? EXIT.OK : EXIT.FAILURE;
  });
}

function listText(scans: readonly ScanSummary[]): string {
  if (scans.length === 0) return 'no scans match\n';
  const header = ['SCAN', 'STARTED (UTC)', 'STATUS', 'OPERATOR', 'USB', 'SERIAL', 'LABEL', 'FILES', 'BLOCKED', 'MANIFEST', 'DRIVE REASONS'];
  const rows = scans.map((s) => [
    show(s.scanId),
    show(s.startedAt),
    show(s.status),
    show(s.operatorId),
    s.usb ? `${show(s.usb.vendorId)}:${show(s.usb.productId)}` : '-',
    show(s.usb?.serial),
    show(s.label),
    String(s.files),
    String(s.blocked),
    s.manifestDigest ? 'yes' : 'no',
    s.driveReasons.length ? show(s.driveReasons.join(',')) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** `log list --db FILE [filters] [--json]`: newest first. */
export function logListCommand(options: LogListOptions): number {
  return runCommand(options, (out) => {
    const filter = parseFilter(options, DEFAULT_LIST_LIMIT);
    const scans = withStore(options.db, (store) => store.listScans(filter));
    out.write(options.json ? `${JSON.stringify(escapedJson(scans), null, 2)}\n` : listText(scans));
    return EXIT.OK;
  });
}

function deviceText(scan: ScanDetail): string {
  const d = scan.device;
  if (!d) return '-';
  const parts: string[] = [];
  if (d.usb) {
    parts.push(`USB ${show(d.usb.vendorId)}:${show(d.usb.productId)} serial ${show(d.usb.serial)}`);
    if (d.usb.manufacturer || d.usb.product) parts.push(`${show(d.usb.manufacturer)} / ${show(d.usb.product)}`);
  }
  parts.push(`${show(d.filesystem)} volume ${show(d.volumeId)} label ${d.label === null ? '-' : `"${show(d.label)}"`} ${d.capacity === null ? '' : `${d.capacity} bytes`}`.trim());
  return parts.join('; ');
}

const STATUS_TEXT: Record<ScanStatus, string> = {
  approved: 'APPROVED: every file may pass',
  partial: 'PARTIAL: some files were blocked; the rest may pass',
  rejected: 'REJECTED: nothing on the drive may pass',
  interrupted: 'INTERRUPTED: the scan never recorded an outcome; nothing was approved',
};

function showText(scan: ScanDetail): string {
  const lines: string[] = [];
  const row = (label: string, value: string): number => lines.push(`  ${label.padEnd(12)} ${value}`);
  lines.push(`scan ${show(scan.scanId)}: ${STATUS_TEXT[scan.status] ?? show(scan.status)}`);
  row('kiosk', show(scan.kioskId));
  row('operator', show(scan.operatorId));
  row('started', show(scan.startedAt));
  row('finished', show(scan.finishedAt));
  row('device', deviceText(scan));
  const e = scan.engines;
  if (e) {
    row('clamav', e.clamav ? `${show(e.clamav.version)} database ${show(e.clamav.databaseVersion)} (${show(e.clamav.databaseTime)})` : 'not used');
    row('yara', e.yara ? `${show(e.yara.engine)} rules ${show(e.yara.ruleSetDigest)} (${show(e.yara.ruleCount)} rules)` : 'not used');
  }
  if (scan.policy) row('policy', `${show(scan.policy.id)} ${show(scan.policy.digest)}`);
  if (scan.status !== 'interrupted') row('allowlist', scan.allowlist ? `${show(scan.allowlist.version)} ${show(scan.allowlist.digest)}` : 'none');
  if (scan.stats && scan.durations) {
    row('scanned', `${scan.stats.files} files, ${scan.stats.bytes} bytes, ${scan.stats.entries} entries in ${scan.durations.totalMs} ms (walk ${scan.durations.walkMs} ms, read ${scan.durations.scanMs} ms)`);
  }
  if (scan.status !== 'interrupted') {
    row('manifest', scan.manifest ? `${show(scan.manifest.digest)} key ${show(scan.manifest.keyId)} expires ${show(scan.manifest.expiresAt)}` : 'none issued');
  }
  for (const extra of scan.manifestFolderExtras) row('extra', `.portcullis holds ${show(typeof extra === 'string' ? extra : JSON.stringify(extra))}`);
  for (const r of scan.driveReasons) lines.push(`  drive: ${show(r.code)}: ${show(r.detail)}`);
  lines.push(`files (${scan.files.length}):`);
  for (const f of scan.files) {
    lines.push(`  ${show(f.verdict).padEnd(11)} ${show(f.path)}  ${f.size} bytes  sha256 ${show(f.sha256)}  blake3 ${show(f.blake3)}`);
    if (f.controlledClass) lines.push(`      controlled: ${show(f.controlledClass)}`);
    if (f.allowlistEntry) lines.push(`      allowlisted: ${allowlistText(f)}`);
    for (const r of f.reasons) lines.push(`      ${show(r.code)}: ${show(r.detail)}`);
  }
  if (scan.events.length) {
    lines.push('events:');
    for (const ev of scan.events) lines.push(`  ${show(ev.recordedAt)} ${show(ev.type)} ${show(JSON.stringify(ev.data))}`);
  }
  return `${lines.join('\n')}\n`;
}

function allowlistText(f: ScanDetail['files'][number]): string {
  const a = f.allowlistEntry;
  return a ? `${show(a.vendor)} ${show(a.product)} ${show(a.version)} (${show(a.file)})` : '';
}

/** `log show SCAN_ID --db FILE [--json]`: 1 when the scan is not in the log. */
export function logShowCommand(options: LogShowOptions): number {
  return runCommand(options, (out) => {
    if (!options.scanId) throw new LogUsageError('show needs a SCAN_ID');
    const scan = withStore(options.db, (store) => store.getScan(options.scanId!));
    if (!scan) {
      (options.stderr ?? process.stderr).write(`portcullis-kiosk log: no scan ${JSON.stringify(displayText(options.scanId))} in the audit log\n`);
      return EXIT.FAILURE;
    }
    out.write(options.json ? `${JSON.stringify(escapedJson(scan), null, 2)}\n` : showText(scan));
    return EXIT.OK;
  });
}

export const CSV_COLUMNS = [
  'scan_id', 'status', 'kiosk_id', 'operator_id', 'started_at', 'finished_at',
  'usb_vendor_id', 'usb_product_id', 'usb_serial', 'usb_manufacturer', 'usb_product',
  'filesystem', 'volume_id', 'label', 'capacity', 'drive_reasons',
  'clamav_version', 'clamav_db_version', 'clamav_db_time', 'yara_engine', 'yara_rule_set_digest', 'yara_rule_count',
  'policy_id', 'policy_digest', 'allowlist_version', 'allowlist_digest',
  'files_scanned', 'bytes_scanned', 'total_ms', 'manifest_digest', 'manifest_key_id', 'manifest_expires_at',
  'file_path', 'file_size', 'file_sha256', 'file_blake3', 'file_verdict', 'file_controlled_class', 'file_allowlist_entry', 'file_reasons',
] as const;

const reasonsCell = (reasons: ScanDetail['driveReasons']): string => reasons.map((r) => `${r.code}: ${r.detail}`).join(' | ');

/** The CSV rows of one scan: one per file, or one with empty file columns when it has none. */
export function scanCsvRows(scan: ScanDetail): string {
  const d = scan.device;
  const e = scan.engines;
  const scanCells: Array<string | number | null> = [
    scan.scanId, scan.status, scan.kioskId, scan.operatorId, scan.startedAt, scan.finishedAt,
    d?.usb?.vendorId ?? null, d?.usb?.productId ?? null, d?.usb?.serial ?? null, d?.usb?.manufacturer ?? null, d?.usb?.product ?? null,
    d?.filesystem ?? null, d?.volumeId ?? null, d?.label ?? null, d?.capacity ?? null, reasonsCell(scan.driveReasons),
    e?.clamav?.version ?? null, e?.clamav?.databaseVersion ?? null, e?.clamav?.databaseTime ?? null,
    e?.yara?.engine ?? null, e?.yara?.ruleSetDigest ?? null, e?.yara?.ruleCount ?? null,
    scan.policy?.id ?? null, scan.policy?.digest ?? null, scan.allowlist?.version ?? null, scan.allowlist?.digest ?? null,
    scan.stats?.files ?? null, scan.stats?.bytes ?? null, scan.durations?.totalMs ?? null,
    scan.manifest?.digest ?? null, scan.manifest?.keyId ?? null, scan.manifest?.expiresAt ?? null,
  ];
  const fileRows: Array<Array<string | number | null>> = scan.files.length === 0
    ? [[null, null, null, null, null, null, null, null]]
    : scan.files.map((f) => [f.path, f.size, f.sha256, f.blake3, f.verdict, f.controlledClass, f.allowlistEntry ? allowlistText(f) : null, reasonsCell(f.reasons)]);
  // Every text cell is escaped: drive-supplied names, labels and serials never reach a spreadsheet raw.
  const escaped = (cells: Array<string | number | null>): Array<string | number | null> => cells.map((c) => (typeof c === 'string' ? displayText(c) : c));
  return fileRows.map((fileCells) => csvRecord(escaped([...scanCells, ...fileCells]))).join('');
}

/** `log export --db FILE --format csv|json [filters]`: oldest first, written scan by scan. */
export function logExportCommand(options: LogExportOptions): number {
  return runCommand(options, (out) => {
    if (options.format !== 'csv' && options.format !== 'json') throw new LogUsageError('export needs --format csv or --format json');
    const format = options.format;
    const filter = parseFilter(options);
    withStore(options.db, (store) => {
      if (format === 'csv') out.write(csvRecord(CSV_COLUMNS));
      else out.write('[');
      let first = true;
      for (const scan of store.exportScans(filter)) {
        if (format === 'csv') out.write(scanCsvRows(scan));
        else out.write(`${first ? '\n' : ',\n'}${JSON.stringify(escapedJson(scan))}`);
        first = false;
      }
      if (format === 'json') out.write(first ? ']\n' : '\n]\n');
    });
    return EXIT.OK;
  });
}

/** Where the log commands find the audit log when --db is not given. */
export interface LogDefaults {
  /** The audit log for a config file (--config, or none given); throws a PortcullisError for a bad config. */
  readonly db?: (configPath: string | undefined) => string;
}

/**
 * `log <verify|list|show|export> ...` from raw arguments, for the CLI's
 * composition root: parses with node:util parseArgs (strict) and runs the
 * command. Bad arguments exit 64 with the usage text.
 */
export function logCommand(argv: readonly string[], streams: LogStreams = {}, defaults: LogDefaults = {}): number {
  const [command, ...rest] = argv;
  const filterOptions = {
    since: { type: 'string' },
    until: { type: 'string' },
    verdict: { type: 'string' },
    operator: { type: 'string' },
    serial: { type: 'string' },
    file: { type: 'string' },
    limit: { type: 'string' },
  } as const;
  const db = { type: 'string' } as const;
  const config = { type: 'string' } as const;
  const json = { type: 'boolean' } as const;
  // --db, else the default for the config (the same log scan and run use).
  const dbOf = (values: { db?: string | undefined; config?: string | undefined }): string | undefined => values.db ?? defaults.db?.(values.config);
  return runCommand(streams, () => {
    try {
      switch (command) {
        case 'verify': {
          const { values } = parseArgs({ args: rest, strict: true, options: { db, config, json, anchor: { type: 'string' } } });
          return logVerifyCommand({ ...streams, ...values, db: dbOf(values) });
        }
        case 'list': {
          const { values } = parseArgs({ args: rest, strict: true, options: { db, config, json, ...filterOptions } });
          return logListCommand({ ...streams, ...values, db: dbOf(values) });
        }
        case 'show': {
          const { values, positionals } = parseArgs({ args: rest, strict: true, allowPositionals: true, options: { db, config, json } });
          if (positionals.length !== 1) throw new LogUsageError('show needs exactly one SCAN_ID');
          return logShowCommand({ ...streams, ...values, db: dbOf(values), scanId: positionals[0]! });
        }
        case 'export': {
          const { values } = parseArgs({ args: rest, strict: true, options: { db, config, format: { type: 'string' }, ...filterOptions } });
          return logExportCommand({ ...streams, ...values, db: dbOf(values) });
        }
        case undefined:
          throw new LogUsageError('log needs a command: verify, list, show or export');
        default:
          throw new LogUsageError(`unknown log command ${JSON.stringify(displayText(command))}`);
      }
    } catch (error) {
      if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) throw new LogUsageError(error.message);
      throw error;
    }
  });
}
