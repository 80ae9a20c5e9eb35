import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { recordHash, type VerifyResult } from './chain.ts';
import { CHAIN_COLUMNS, LEDGER_TABLES } from './schema.ts';
import { openAuditStore } from './store.ts';
import { tamper, writeSampleLog } from '../../test/support/audit-log-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-audit-chain-'));
const sample = join(work, 'sample.db');
let copies = 0;

// Written while the tests are collected: the per-table tests are generated from its rows.
writeSampleLog(sample);
const closedCleanly = !existsSync(`${sample}-wal`);
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tamperedCopy(change: (db: Database.Database) => void): string {
  const path = join(work, `copy-${++copies}.db`);
  copyFileSync(sample, path);
  tamper(path, change);
  return path;
}

function verify(path: string, options: Parameters<ReturnType<typeof openAuditStore>['verifyChain']>[0] = {}): VerifyResult {
  const store = openAuditStore(path, { readonly: true });
  try {
    return store.verifyChain(options);
  } finally {
    store.close();
  }
}

function failure(result: VerifyResult): { table: string; seq: number | null; code: string } {
  if (result.ok) throw new Error('expected the chain to be broken, but it verified');
  return { table: result.first.table, seq: result.first.seq, code: result.first.code };
}

type Row = Record<string, string | number | null>;

/** The row of `table` with the most non-NULL columns, not the chain's last record. */
function fullestRow(db: Database.Database, table: string): Row {
  const last = db.prepare('SELECT seq FROM chain_head').pluck().get() as number;
  const rows = db.prepare(`SELECT * FROM ${table} WHERE seq < ? ORDER BY seq`).all(last) as Row[];
  const filled = (r: Row): number => Object.values(r).filter((v) => v !== null).length;
  return rows.reduce((best, r) => (filled(r) > filled(best) ? r : best));
}

function sampleRows(): Map<string, { row: Row; types: Map<string, string> }> {
  const rows = new Map<string, { row: Row; types: Map<string, string> }>();
  const db = new Database(sample, { readonly: true });
  for (const table of LEDGER_TABLES) {
    const types = new Map((db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string; type: string }>).map((c) => [c.name, c.type]));
    rows.set(table, { row: fullestRow(db, table), types });
  }
  db.close();
  return rows;
}

describe('hash chain', () => {
  it('verifies an intact log and reports its head', () => {
    expect(closedCleanly).toBe(true); // the WAL was checkpointed: copies of the one file are complete
    const result = verify(sample);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.records).toBeGreaterThan(20);
    expect(result.head.seq).toBe(result.records);
    expect(result.head.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('computes each record hash exactly as the README describes', () => {
    const db = new Database(sample, { readonly: true });
    const row = db.prepare('SELECT * FROM files ORDER BY seq LIMIT 1').get() as Row;
    db.close();
    // Independent of recordHash: the documented object, canonical by hand (keys sorted, NULLs left out, no spaces).
    const content = Object.entries(row)
      .filter(([k, v]) => !(CHAIN_COLUMNS as readonly string[]).includes(k) && v !== null)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const text = `{"prev":${JSON.stringify(row.prev_hash)},"row":${JSON.stringify(Object.fromEntries(content))},"seq":${row.seq},"table":"files"}`;
    const expected = createHash('sha256').update(text, 'utf8').digest('hex');
    expect(row.hash).toBe(expected);
    expect(recordHash('files', row.seq as number, row.prev_hash as string, row)).toBe(expected);
  });
});

describe('the README worked example', () => {
  it('is the first record of the sample log, byte for byte', () => {
    const db = new Database(sample, { readonly: true });
    const row = db.prepare('SELECT * FROM events WHERE seq = 1').get() as Row;
    db.close();
    expect(row.hash).toBe('7db2a340a3e82edc510859b4c0ed05be31f3d83776cbc745983cff685d5f7074');
    const bytes = '{"prev":"0000000000000000000000000000000000000000000000000000000000000000","row":{"data":"{\\"description\\":\\"hash-chained ledger: events, scans, devices, files, reasons, scan_results; chain_head\\",\\"version\\":1}","recorded_at":"2025-03-01T08:00:01.000Z","type":"SCHEMA_MIGRATED"},"seq":1,"table":"events"}';
    expect(createHash('sha256').update(bytes, 'utf8').digest('hex')).toBe(row.hash);
  });
});

describe('tampering is detected at the record it touches', () => {
  const rows = sampleRows();

  for (const table of LEDGER_TABLES) {
    it(`editing any one value of a ${table} row fails verification at that row`, () => {
      const { row, types } = rows.get(table)!;
      const columns = Object.keys(row).filter((c) => c !== 'seq');
      expect(columns.length).toBeGreaterThan(3);
      for (const column of columns) {
        const value = row[column];
        const changed = value === null ? (types.get(column) === 'INTEGER' ? 1 : 'x') : typeof value === 'number' ? value + 1 : `${value}x`;
        const path = tamperedCopy((db) => db.prepare(`UPDATE ${table} SET ${column} = ? WHERE seq = ?`).run(changed, row.seq));
        expect({ column, ...failure(verify(path)) }).toEqual({ column, table, seq: row.seq, code: 'HASH_MISMATCH' });
      }
    });
  }

  it('turning a rejected verdict into approved fails verification at the result row', () => {
    let seq = 0;
    const path = tamperedCopy((db) => {
      seq = db.prepare("SELECT seq FROM scan_results WHERE verdict = 'rejected'").pluck().get() as number;
      db.prepare("UPDATE scan_results SET verdict = 'approved' WHERE seq = ?").run(seq);
    });
    expect(failure(verify(path))).toEqual({ table: 'scan_results', seq, code: 'HASH_MISMATCH' });
  });

  for (const table of LEDGER_TABLES) {
    it(`deleting a ${table} row fails verification at the record after it`, () => {
      const { row } = rows.get(table)!;
      const path = tamperedCopy((db) => db.prepare(`DELETE FROM ${table} WHERE seq = ?`).run(row.seq));
      expect(failure(verify(path))).toMatchObject({ seq: (row.seq as number) + 1, code: 'SEQ_GAP' });
    });
  }

  it('swapping the contents of two file rows fails verification at the first of them', () => {
    let first = 0;
    const path = tamperedCopy((db) => {
      const [a, b] = db.prepare('SELECT * FROM files ORDER BY seq LIMIT 2').all() as Row[];
      first = a!.seq as number;
      const columns = Object.keys(a!).filter((c) => c !== 'seq');
      const update = db.prepare(`UPDATE files SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE seq = ?`);
      update.run(...columns.map((c) => b![c]!), a!.seq);
      update.run(...columns.map((c) => a![c]!), b!.seq);
    });
    expect(failure(verify(path))).toEqual({ table: 'files', seq: first, code: 'HASH_MISMATCH' });
  });

  it('moving a record to another place in the sequence fails verification', () => {
    let seq = 0;
    const path = tamperedCopy((db) => {
      seq = db.prepare('SELECT min(seq) FROM reasons').pluck().get() as number;
      db.prepare('UPDATE reasons SET seq = 100000 WHERE seq = ?').run(seq);
    });
    expect(failure(verify(path))).toMatchObject({ seq: seq + 1, code: 'SEQ_GAP' });
  });

  it('truncating the tail is caught by the chain head', () => {
    const path = tamperedCopy((db) => {
      const last = db.prepare("SELECT seq FROM scan_results WHERE scan_id = 'scan-c'").pluck().get() as number;
      for (const table of LEDGER_TABLES) db.prepare(`DELETE FROM ${table} WHERE seq >= ?`).run(last - 3);
    });
    expect(failure(verify(path))).toMatchObject({ table: 'chain_head', code: 'TRUNCATED' });
  });

  it('editing or deleting the chain head is detected', () => {
    expect(failure(verify(tamperedCopy((db) => db.exec('UPDATE chain_head SET seq = seq - 1'))))).toMatchObject({ table: 'chain_head', code: 'HEAD_MISMATCH' });
    expect(failure(verify(tamperedCopy((db) => db.exec("UPDATE chain_head SET hash = '" + '0'.repeat(64) + "'"))))).toMatchObject({ table: 'chain_head', code: 'HEAD_MISMATCH' });
    expect(failure(verify(tamperedCopy((db) => db.exec('DELETE FROM chain_head'))))).toMatchObject({ table: 'chain_head', code: 'HEAD_MISSING' });
  });

  it('editing or deleting a schema_migrations row is detected', () => {
    expect(failure(verify(tamperedCopy((db) => db.exec("UPDATE schema_migrations SET applied_at = '2020-01-01T00:00:00.000Z'"))))).toMatchObject({ table: 'schema_migrations', code: 'MIGRATIONS_MISMATCH' });
    expect(failure(verify(tamperedCopy((db) => db.exec("UPDATE schema_migrations SET description = 'x'"))))).toMatchObject({ table: 'schema_migrations', code: 'MIGRATIONS_MISMATCH' });
    // With its migration rows gone the database no longer says which schema it has: it is refused outright.
    expect(() => verify(tamperedCopy((db) => db.exec('DELETE FROM schema_migrations'))))
      .toThrow(expect.objectContaining({ code: 'AUDIT_SCHEMA_OUTDATED' }));
  });

  it('a dropped table is reported by name', () => {
    expect(failure(verify(tamperedCopy((db) => db.exec('DROP TABLE reasons'))))).toEqual({ table: 'reasons', seq: null, code: 'MALFORMED' });
  });

  it('a value of the wrong type is reported as malformed at its row', () => {
    // STRICT tables refuse a wrong type, so the intruder rebuilds the table without STRICT.
    let seq = 0;
    const path = tamperedCopy((db) => {
      seq = db.prepare('SELECT min(seq) FROM files').pluck().get() as number;
      db.exec('CREATE TABLE files2 AS SELECT * FROM files; DROP TABLE files; ALTER TABLE files2 RENAME TO files');
      db.prepare('UPDATE files SET size = 1.5 WHERE seq = ?').run(seq);
    });
    expect(failure(verify(path))).toEqual({ table: 'files', seq, code: 'MALFORMED' });
  });

  it('a chain rewritten from an edit onwards passes alone but fails against an anchor kept outside', () => {
    const intact = verify(sample);
    if (!intact.ok) throw new Error('the sample must verify');
    const path = tamperedCopy((db) => {
      db.exec("UPDATE scan_results SET verdict = 'approved' WHERE scan_id = 'scan-c'");
      rehash(db);
    });
    expect(verify(path).ok).toBe(true);
    expect(failure(verify(path, { anchor: intact.head }))).toEqual({ table: 'events', seq: intact.head.seq, code: 'ANCHOR_MISMATCH' });
  });

  it('a tail cut with its head rewritten fails against an anchor kept outside', () => {
    const intact = verify(sample);
    if (!intact.ok) throw new Error('the sample must verify');
    const path = tamperedCopy((db) => {
      for (const table of LEDGER_TABLES) db.prepare(`DELETE FROM ${table} WHERE seq >= ?`).run(intact.head.seq - 2);
      rehash(db);
    });
    expect(verify(path).ok).toBe(true);
    expect(failure(verify(path, { anchor: intact.head }))).toMatchObject({ table: 'chain_head', code: 'TRUNCATED' });
  });
});

/** What an intruder who knows the algorithm does: recompute every hash and the head. */
function rehash(db: Database.Database): void {
  const all: Array<{ table: string; row: Row }> = [];
  for (const table of LEDGER_TABLES) for (const row of db.prepare(`SELECT * FROM ${table}`).all() as Row[]) all.push({ table, row });
  all.sort((a, b) => (a.row.seq as number) - (b.row.seq as number));
  let prev = '0'.repeat(64);
  for (const { table, row } of all) {
    const hash = recordHash(table, row.seq as number, prev, row);
    db.prepare(`UPDATE ${table} SET prev_hash = ?, hash = ? WHERE seq = ?`).run(prev, hash, row.seq);
    prev = hash;
  }
  db.prepare('UPDATE chain_head SET seq = ?, hash = ?').run(all.at(-1)!.row.seq, prev);
}
