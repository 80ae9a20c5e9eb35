/**
 * The hash chain over every ledger row (README.md "Hash chain" is the
 * normative text): one global sequence across the ledger tables; each row's
 * hash is SHA-256 over the RFC 8785 canonical JSON of
 *
 *   { "prev": <previous record's hash>, "row": { <column>: <value>, ... },
 *     "seq": <seq>, "table": <table name> }
 *
 * where "row" holds every column but seq, prev_hash and hash, NULLs left out.
 * Verification walks the tables merged by seq and names the first record that
 * does not fit, then checks the chain head (a cut tail) and the migrations.
 */
import { recordHash, type RowContent } from '../../manifest/audit-record.ts';
import type Database from 'better-sqlite3';
import { GENESIS_HASH, LEDGER_TABLES, type LedgerTable } from './schema.ts';
import { sameHex } from '../../manifest/constant-time.ts';

// The record and its hash are the format the kiosk shares with the central review (manifest/audit-record.ts).
export { hashedColumns, recordHash, type ColumnValue, type RowContent } from '../../manifest/audit-record.ts';

export type ChainBreakCode =
  | 'SEQ_GAP' // records are missing before this one
  | 'SEQ_OUT_OF_ORDER' // this seq was already used, or is below the chain's start
  | 'MALFORMED' // a value no record can hold (wrong type, unsafe integer, malformed text)
  | 'HASH_MISMATCH' // the row's content does not give its stored hash: edited
  | 'PREV_MISMATCH' // the row does not continue the record before it
  | 'HEAD_MISSING' // the chain_head checkpoint is gone
  | 'HEAD_MISMATCH' // the checkpoint disagrees with the last record
  | 'TRUNCATED' // the checkpoint or an anchor names records that are gone
  | 'ANCHOR_MISMATCH' // a record's hash differs from the externally kept anchor
  | 'MIGRATIONS_MISMATCH'; // schema_migrations disagrees with the SCHEMA_MIGRATED records

export interface ChainBreak {
  readonly table: string;
  readonly seq: number | null;
  readonly rowid: number | null;
  readonly code: ChainBreakCode;
  readonly reason: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly records: number; readonly head: { readonly seq: number; readonly hash: string } }
  | { readonly ok: false; readonly records: number; readonly first: ChainBreak };

/** A record's seq and hash kept outside the kiosk (syslog, a printed receipt), to catch a rewritten chain. */
export interface ChainAnchor {
  readonly seq: number;
  readonly hash: string;
}

export interface VerifyOptions {
  readonly anchor?: ChainAnchor;
}

interface Cursor {
  readonly table: LedgerTable;
  readonly rows: Iterator<unknown>;
  current: Record<string, unknown> | null;
}

function advance(cursor: Cursor): void {
  const step = cursor.rows.next();
  cursor.current = step.done ? null : (step.value as Record<string, unknown>);
}

function parseJson(text: unknown): unknown {
  try {
    return typeof text === 'string' ? (JSON.parse(text) as unknown) : null;
  } catch {
    return null;
  }
}


function malformedColumn(row: Record<string, unknown>): string | null {
  for (const [column, value] of Object.entries(row)) {
    if (value === null || typeof value === 'string') continue;
    if (typeof value === 'number' && Number.isSafeInteger(value)) continue;
    return `column ${column} holds ${typeof value === 'number' ? `the non-integer or unsafe number ${value}` : `a ${typeof value}`}`;
  }
  return null;
}

/**
 * Verifies the whole chain inside one read transaction (a consistent
 * snapshot even while the kiosk writes). Returns the first broken record.
 */
export function verifyLedger(db: Database.Database, options: VerifyOptions = {}): VerifyResult {
  return db.transaction((): VerifyResult => {
    for (const table of [...LEDGER_TABLES, 'chain_head', 'schema_migrations']) {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) === undefined) {
        return { ok: false, records: 0, first: { table, seq: null, rowid: null, code: 'MALFORMED', reason: 'the table is missing' } };
      }
    }
    try {
      return walk(db, options);
    } catch (error) {
      // A table rebuilt without its columns, or otherwise unreadable: broken, not a crash.
      return { ok: false, records: 0, first: { table: '(schema)', seq: null, rowid: null, code: 'MALFORMED', reason: `the ledger cannot be read: ${(error as Error).message}` } };
    }
  })();
}

function walk(db: Database.Database, options: VerifyOptions): VerifyResult {
  const cursors: Cursor[] = LEDGER_TABLES.map((table) => {
    const cursor: Cursor = { table, rows: db.prepare(`SELECT * FROM ${table} ORDER BY seq`).iterate()[Symbol.iterator](), current: null };
    advance(cursor);
    return cursor;
  });
  const migrated = new Map<number, { appliedAt: unknown; description: unknown }>();
  let prev = GENESIS_HASH;
  let records = 0;
  const fail = (first: ChainBreak): VerifyResult => {
    for (const c of cursors) c.rows.return?.();
    return { ok: false, records, first };
  };
  for (;;) {
    let next: Cursor | null = null;
    for (const c of cursors) {
      if (c.current && (next === null || Number(c.current.seq) < Number(next.current!.seq))) next = c;
    }
    if (next === null) break;
    const row = next.current!;
    const table = next.table;
    const seq = row.seq as number;
    const expected = records + 1;
    const at = { table, seq, rowid: seq };
    if (seq < expected) {
      return fail({ ...at, code: 'SEQ_OUT_OF_ORDER', reason: `seq ${seq} appears again or out of order (expected ${expected})` });
    }
    if (seq > expected) {
      const missing = seq - expected === 1 ? `record ${expected} is missing` : `records ${expected} to ${seq - 1} are missing`;
      return fail({ ...at, code: 'SEQ_GAP', reason: `${missing} before this one` });
    }
    const malformed = malformedColumn(row);
    if (malformed !== null || typeof row.hash !== 'string' || typeof row.prev_hash !== 'string') {
      return fail({ ...at, code: 'MALFORMED', reason: malformed ?? 'hash or prev_hash is not text' });
    }
    let computed: string;
    try {
      computed = recordHash(table, seq, row.prev_hash, row as RowContent);
    } catch (error) {
      return fail({ ...at, code: 'MALFORMED', reason: `the row cannot be hashed: ${(error as Error).message}` });
    }
    if (!sameHex(computed, row.hash)) {
      return fail({ ...at, code: 'HASH_MISMATCH', reason: 'the row does not match its hash: it was changed after it was written' });
    }
    if (!sameHex(row.prev_hash, prev)) {
      return fail({ ...at, code: 'PREV_MISMATCH', reason: 'the row does not continue the record before it: records were removed, moved or replaced' });
    }
    if (options.anchor && options.anchor.seq === seq && !sameHex(options.anchor.hash, row.hash)) {
      return fail({ ...at, code: 'ANCHOR_MISMATCH', reason: `the record's hash is not the anchored ${options.anchor.hash}: the chain was rewritten` });
    }
    if (table === 'events' && row.type === 'SCHEMA_MIGRATED') {
      const data = parseJson(row.data) as { version?: unknown; description?: unknown } | null;
      if (typeof data?.version === 'number') migrated.set(data.version, { appliedAt: row.recorded_at, description: data.description });
    }
    prev = row.hash;
    records = seq;
    advance(next);
  }

  const head = db.prepare('SELECT rowid, id, seq, hash FROM chain_head').all() as Array<{ rowid: number; id: unknown; seq: unknown; hash: unknown }>;
  const only = head[0];
  if (head.length !== 1 || !only || only.id !== 1) {
    return { ok: false, records, first: { table: 'chain_head', seq: null, rowid: null, code: 'HEAD_MISSING', reason: `expected one chain_head row with id 1, found ${head.length} rows` } };
  }
  const headAt = { table: 'chain_head', seq: typeof only.seq === 'number' ? only.seq : null, rowid: only.rowid };
  if (typeof only.seq !== 'number' || typeof only.hash !== 'string') {
    return { ok: false, records, first: { ...headAt, code: 'MALFORMED', reason: 'chain_head seq or hash has the wrong type' } };
  }
  if (only.seq > records) {
    return { ok: false, records, first: { ...headAt, code: 'TRUNCATED', reason: `the chain ends at record ${records} but its head names record ${only.seq}: the last ${only.seq - records} records were removed` } };
  }
  if (only.seq < records || !sameHex(only.hash, prev)) {
    return { ok: false, records, first: { ...headAt, code: 'HEAD_MISMATCH', reason: `the head (record ${only.seq}) does not match the last record (${records})` } };
  }
  if (options.anchor && options.anchor.seq > records) {
    return { ok: false, records, first: { ...headAt, code: 'TRUNCATED', reason: `the anchored record ${options.anchor.seq} is beyond the chain's end (${records})` } };
  }

  // schema_migrations sits outside the chain; each row must equal its SCHEMA_MIGRATED record.
  const migrations = db.prepare('SELECT rowid, version, description, applied_at FROM schema_migrations ORDER BY rowid').all() as Array<{ rowid: number; version: unknown; description: unknown; applied_at: unknown }>;
  for (const m of migrations) {
    const recorded = typeof m.version === 'number' ? migrated.get(m.version) : undefined;
    if (!recorded || recorded.appliedAt !== m.applied_at || recorded.description !== m.description) {
      return { ok: false, records, first: { table: 'schema_migrations', seq: null, rowid: m.rowid, code: 'MIGRATIONS_MISMATCH', reason: `migration ${String(m.version)} does not match its SCHEMA_MIGRATED record` } };
    }
    migrated.delete(m.version as number);
  }
  const [lost] = migrated.keys();
  if (lost !== undefined) {
    return { ok: false, records, first: { table: 'schema_migrations', seq: null, rowid: null, code: 'MIGRATIONS_MISMATCH', reason: `the row of migration ${lost} is missing` } };
  }
  return { ok: true, records, head: { seq: records, hash: prev } };
}
