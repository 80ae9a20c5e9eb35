/**
 * The kiosk audit log's record, as the kiosk hashes it (kiosk/audit/README.md
 * "Hash chain" is the normative text) and as it travels to the central
 * review: shared by the kiosk, which writes and forwards it, and the central
 * review, which checks it. No I/O.
 *
 *   hash = SHA-256( JCS( { "prev": ..., "row": { column: value, NULLs left out }, "seq": n, "table": T } ) )
 *
 * On the wire a record is the JCS of the same object plus its "hash".
 */
import { createHash } from 'node:crypto';
import { canonicalize } from './canonical-json.ts';
import { sameHex } from './constant-time.ts';

export type ColumnValue = string | number | null;
export type RowContent = Readonly<Record<string, ColumnValue>>;

/** Columns every ledger row carries besides its content; the hash covers every other column. */
export const CHAIN_COLUMNS = ['seq', 'prev_hash', 'hash'] as const;

/** The content columns of each ledger table and their types (schema version 1): a record with others is not the kiosk's. */
export const LEDGER_COLUMNS = {
  events: { recorded_at: 'text', type: 'text', scan_id: 'text', data: 'text' },
  scans: { recorded_at: 'text', scan_id: 'text', kiosk_id: 'text', operator_id: 'text', started_at: 'text' },
  devices: {
    scan_id: 'text', usb_vendor_id: 'text', usb_product_id: 'text', usb_serial: 'text', manufacturer: 'text', product: 'text',
    filesystem: 'text', volume_id: 'text', label: 'text', capacity: 'integer',
  },
  files: {
    scan_id: 'text', path: 'text', size: 'integer', sha256: 'text', blake3: 'text', verdict: 'text', controlled_class: 'text',
    allowlist_vendor: 'text', allowlist_product: 'text', allowlist_version: 'text', allowlist_file: 'text', allowlist_source: 'text',
  },
  reasons: { scan_id: 'text', level: 'text', file_seq: 'integer', code: 'text', detail: 'text' },
  scan_results: {
    recorded_at: 'text', scan_id: 'text', finished_at: 'text', verdict: 'text', clamav_version: 'text', clamav_db_version: 'text',
    clamav_db_time: 'text', yara_engine: 'text', yara_rule_set_digest: 'text', yara_rule_count: 'integer', policy_id: 'text',
    policy_digest: 'text', allowlist_version: 'text', allowlist_digest: 'text', file_count: 'integer', byte_count: 'integer',
    entry_count: 'integer', walk_ms: 'integer', scan_ms: 'integer', total_ms: 'integer', manifest_folder_extras: 'text',
    manifest_digest: 'text', manifest_key_id: 'text', manifest_expires_at: 'text',
  },
} as const satisfies Record<string, Record<string, 'text' | 'integer'>>;
export type LedgerTableName = keyof typeof LEDGER_COLUMNS;

/** The hashed object's "row": every content column whose value is not NULL. */
export function hashedColumns(row: RowContent): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [column, value] of Object.entries(row)) {
    if ((CHAIN_COLUMNS as readonly string[]).includes(column) || value === null) continue;
    out[column] = value;
  }
  return out;
}

/** The record hash, lowercase hex; throws TypeError when a value cannot be canonical JSON. */
export function recordHash(table: string, seq: number, prevHash: string, row: RowContent): string {
  const body = canonicalize({ table, seq, prev: prevHash, row: hashedColumns(row) });
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

export interface KioskRecord {
  readonly table: LedgerTableName;
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  /** Every content column of the table; absent ones (NULL) as null. */
  readonly row: Readonly<Record<string, ColumnValue>>;
}

/** A record as it travels: the JCS of { hash, prev, row (NULLs left out), seq, table }. */
export function kioskRecordBytes(table: LedgerTableName, seq: number, prev: string, hash: string, row: RowContent): Buffer {
  return Buffer.from(canonicalize({ table, seq, prev, hash, row: hashedColumns(row) }), 'utf8');
}

const HEX64 = /^[0-9a-f]{64}$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether a record's hash matches its content: 'ok', or what is wrong ('EDITED' when only the hash disagrees). */
export type KioskRecordCheck = { readonly ok: true; readonly record: KioskRecord } | { readonly ok: false; readonly code: 'MALFORMED' | 'EDITED'; readonly detail: string; readonly seq: number | null };

/**
 * Checks a record's bytes: UTF-8 JSON with exactly table, seq, prev, hash
 * and row; a known table whose columns and types match; the bytes its
 * canonical form (nothing else is what the kiosk sent); the hash its
 * content's.
 */
export function checkKioskRecord(bytes: Uint8Array): KioskRecordCheck {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return { ok: false, code: 'MALFORMED', detail: 'not UTF-8 JSON', seq: null };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, code: 'MALFORMED', detail: 'expected a JSON object', seq: null };
  const v = value as Record<string, unknown>;
  const seq = typeof v.seq === 'number' && Number.isSafeInteger(v.seq) && v.seq >= 1 ? v.seq : null;
  const bad = (detail: string): KioskRecordCheck => ({ ok: false, code: 'MALFORMED', detail, seq });
  if (Object.keys(v).sort().join(',') !== 'hash,prev,row,seq,table') return bad('expected exactly hash, prev, row, seq, table');
  if (seq === null) return bad('seq: expected an integer from 1');
  if (typeof v.table !== 'string' || !Object.hasOwn(LEDGER_COLUMNS, v.table)) return bad('table: not a ledger table');
  if (typeof v.prev !== 'string' || !HEX64.test(v.prev) || typeof v.hash !== 'string' || !HEX64.test(v.hash)) return bad('prev, hash: expected 64 lowercase hex characters');
  if (v.row === null || typeof v.row !== 'object' || Array.isArray(v.row)) return bad('row: expected an object');
  const table = v.table as LedgerTableName;
  const columns: Record<string, 'text' | 'integer'> = LEDGER_COLUMNS[table];
  const row: Record<string, ColumnValue> = {};
  for (const name of Object.keys(columns)) row[name] = null;
  for (const [name, cell] of Object.entries(v.row as Record<string, unknown>)) {
    const type = Object.hasOwn(columns, name) ? columns[name] : undefined;
    if (type === undefined) return bad(`row.${name}: not a column of ${table}`);
    if (type === 'text' ? typeof cell !== 'string' : typeof cell !== 'number' || !Number.isSafeInteger(cell)) return bad(`row.${name}: expected ${type}`);
    row[name] = cell as ColumnValue;
  }
  const record: KioskRecord = { table, seq, prev: v.prev, hash: v.hash, row };
  let canonical: Buffer;
  try {
    canonical = kioskRecordBytes(table, seq, record.prev, record.hash, row);
  } catch {
    return bad('a value canonical JSON cannot hold');
  }
  if (!canonical.equals(Buffer.from(bytes))) return bad('not in canonical form (RFC 8785): not what the kiosk sends');
  if (!sameHex(recordHash(table, seq, record.prev, row), record.hash)) return { ok: false, code: 'EDITED', detail: 'its hash does not match its content', seq };
  return { ok: true, record };
}
