/**
 * The audit log as staff take it out: the filters `log list`/`log export`
 * and the review page share, and one CSV row per scanned file. Every text
 * cell is escaped for display and written by the formula-safe CSV writer.
 */
import { displayText } from '../../manifest/index.ts';
import { UsageError } from '../core/errors.ts';
import { csvRecord } from './csv.ts';
import { SCAN_STATUSES, type ScanDetail, type ScanFilter, type ScanStatus } from './queries.ts';

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
  if (Number.isNaN(time.getTime())) throw new UsageError(`${flag} ${JSON.stringify(displayText(value))}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]`);
  return time;
}

function parseLimit(value: string | number): number {
  const text = String(value);
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new UsageError(`--limit ${JSON.stringify(displayText(text))}: expected a whole number from 1`);
  return Number(text);
}

/** Checks the filter options (the command line's and the review page's): a bad value is a UsageError. */
export function parseFilter(options: LogFilterOptions, defaultLimit?: number): ScanFilter {
  const filter: { -readonly [K in keyof ScanFilter]: ScanFilter[K] } = {};
  if (options.since !== undefined) filter.since = parseTime('--since', options.since, false);
  if (options.until !== undefined) filter.until = parseTime('--until', options.until, true);
  if (options.verdict !== undefined) {
    if (!(SCAN_STATUSES as readonly string[]).includes(options.verdict)) {
      throw new UsageError(`--verdict ${JSON.stringify(displayText(options.verdict))}: expected one of ${SCAN_STATUSES.join(', ')}`);
    }
    filter.status = options.verdict as ScanStatus;
  }
  if (options.operator !== undefined) filter.operatorId = displayText(options.operator);
  if (options.serial !== undefined) filter.serial = displayText(options.serial);
  if (options.file !== undefined) {
    if (options.file.length === 0) throw new UsageError('--file needs a name or a hash');
    filter.file = displayText(options.file);
  }
  if (options.limit !== undefined) filter.limit = parseLimit(options.limit);
  else if (defaultLimit !== undefined) filter.limit = defaultLimit;
  return filter;
}

function show(value: string | number | null | undefined): string {
  return value === null || value === undefined ? '-' : displayText(String(value));
}

function allowlistText(f: ScanDetail['files'][number]): string {
  const a = f.allowlistEntry;
  return a ? `${show(a.vendor)} ${show(a.product)} ${show(a.version)} (${show(a.file)})` : '';
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

