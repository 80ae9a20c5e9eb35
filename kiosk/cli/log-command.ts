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
import type { ScanDetail, ScanStatus, ScanSummary } from '../audit/queries.ts';
import { displayText, openAuditStore, type AuditStore } from '../audit/store.ts';
import { CSV_COLUMNS, parseFilter, scanCsvRows, type LogFilterOptions } from '../audit/export.ts';
import { csvRecord } from '../audit/csv.ts';
import { UsageError } from '../core/errors.ts';

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


/** Runs one command body and turns its errors into exit codes. */
function runCommand(streams: LogStreams, body: (out: TextSink) => number): number {
  const err = streams.stderr ?? process.stderr;
  try {
    return body(streams.stdout ?? process.stdout);
  } catch (error) {
    if (error instanceof UsageError) {
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
  if (!db) throw new UsageError('--db FILE is required (or a kiosk config with auditDb)');
  const store = openAuditStore(db, { readonly: true });
  try {
    return use(store);
  } finally {
    store.close();
  }
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
  if (!match) throw new UsageError(`--anchor ${JSON.stringify(displayText(value))}: expected SEQ:HASH (a record number, a colon and 64 lowercase hex characters)`);
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
    if (!options.scanId) throw new UsageError('show needs a SCAN_ID');
    const scan = withStore(options.db, (store) => store.getScan(options.scanId!));
    if (!scan) {
      (options.stderr ?? process.stderr).write(`portcullis-kiosk log: no scan ${JSON.stringify(displayText(options.scanId))} in the audit log\n`);
      return EXIT.FAILURE;
    }
    out.write(options.json ? `${JSON.stringify(escapedJson(scan), null, 2)}\n` : showText(scan));
    return EXIT.OK;
  });
}

/** `log export --db FILE --format csv|json [filters]`: oldest first, written scan by scan. */
export function logExportCommand(options: LogExportOptions): number {
  return runCommand(options, (out) => {
    if (options.format !== 'csv' && options.format !== 'json') throw new UsageError('export needs --format csv or --format json');
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
          if (positionals.length !== 1) throw new UsageError('show needs exactly one SCAN_ID');
          return logShowCommand({ ...streams, ...values, db: dbOf(values), scanId: positionals[0]! });
        }
        case 'export': {
          const { values } = parseArgs({ args: rest, strict: true, options: { db, config, format: { type: 'string' }, ...filterOptions } });
          return logExportCommand({ ...streams, ...values, db: dbOf(values) });
        }
        case undefined:
          throw new UsageError('log needs a command: verify, list, show or export');
        default:
          throw new UsageError(`unknown log command ${JSON.stringify(displayText(command))}`);
      }
    } catch (error) {
      if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(error.message);
      throw error;
    }
  });
}
