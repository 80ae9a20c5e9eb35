import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../audit/export.ts';
import { logCommand, logExportCommand, logListCommand, logShowCommand, logVerifyCommand } from './log-command.ts';
import { tamper, writeSampleLog } from '../../test/support/audit-log-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-audit-cmd-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const db = join(work, 'sample.db');
writeSampleLog(db);

// Characters that must never reach a terminal or a spreadsheet raw: C0/C1 controls (LF and the CSV's CR LF aside) and bidi controls.
const UNSAFE = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;

function run(argv: string[]): { code: number; out: string; err: string } {
  const out: string[] = [];
  const err: string[] = [];
  const code = logCommand(argv, { stdout: { write: (c: string) => out.push(c) }, stderr: { write: (c: string) => err.push(c) } });
  return { code, out: out.join(''), err: err.join('') };
}

/** An independent RFC 4180 reader: records of fields, CRLF line ends, quoted fields may hold anything. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') { field += '"'; i += 2; }
        else if (text[i] === '"') { i++; break; }
        else if (i >= text.length) throw new Error('unterminated quoted field');
        else field += text[i++];
      }
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r') {
        if (text[i] === '"' || text[i] === '\n') throw new Error(`bare ${JSON.stringify(text[i])} in an unquoted field at ${i}`);
        field += text[i++];
      }
    }
    record.push(field);
    if (text[i] === ',') i++;
    else if (text.startsWith('\r\n', i)) { records.push(record); record = []; i += 2; }
    else throw new Error(`expected , or CRLF at ${i}`);
  }
  return records;
}

describe('log verify', () => {
  it('exits 0 on an intact log and prints the head to anchor', () => {
    const { code, out } = run(['verify', '--db', db]);
    expect(code).toBe(0);
    expect(out).toMatch(/^audit log intact: (\d+) records; head \1 [0-9a-f]{64}\n$/);
  });

  it('exits 1 on an edited log and names the first broken record', () => {
    const copy = join(work, 'edited.db');
    copyFileSync(db, copy);
    let seq = 0;
    tamper(copy, (d) => {
      seq = d.prepare("SELECT seq FROM files WHERE path = 'notes.txt'").pluck().get() as number;
      d.prepare("UPDATE files SET verdict = 'clean' WHERE seq = ?").run(seq + 1);
    });
    const { code, out } = run(['verify', '--db', copy]);
    expect(code).toBe(1);
    expect(out).toContain(`first broken record: files seq ${seq + 1}: HASH_MISMATCH`);
    const json = run(['verify', '--db', copy, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, first: { table: 'files', seq: seq + 1, code: 'HASH_MISMATCH' } });
  });

  it('exits 1 when a record differs from the anchor given', () => {
    const head = /head (\d+) ([0-9a-f]{64})/.exec(run(['verify', '--db', db]).out)!;
    expect(logVerifyCommand({ db, anchor: `${head[1]}:${head[2]}`, stdout: { write: () => true } })).toBe(0);
    const { code, out } = run(['verify', '--db', db, '--anchor', `${head[1]}:${'0'.repeat(64)}`]);
    expect(code).toBe(1);
    expect(out).toContain('ANCHOR_MISMATCH');
  });

  it('exits 1 with the error code when the database is missing or too new', () => {
    const missing = run(['verify', '--db', join(work, 'nope.db')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('AUDIT_OPEN_FAILED');
    const newer = join(work, 'newer.db');
    copyFileSync(db, newer);
    tamper(newer, (d) => d.exec("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00.000Z')"));
    const refused = run(['verify', '--db', newer]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('AUDIT_SCHEMA_TOO_NEW');
  });
});

describe('log usage errors', () => {
  it.each([
    [['verify']],
    [['list', '--db', db, '--since', 'yesterday']],
    [['list', '--db', db, '--until', '2025-02-30']],
    [['list', '--db', db, '--verdict', 'clean']],
    [['list', '--db', db, '--limit', '0']],
    [['list', '--db', db, '--colour']],
    [['show', '--db', db]],
    [['export', '--db', db, '--format', 'xlsx']],
    [['verify', '--db', db, '--anchor', '12']],
    [['prune', '--db', db]],
    [[]],
  ])('exits 64 with the usage text for %j', (argv) => {
    const { code, err } = run(argv);
    expect(code).toBe(64);
    expect(err).toContain('usage: portcullis-kiosk log');
  });
});

describe('log list and show', () => {
  it('lists scans newest first with their status, interrupted included', () => {
    const { code, out } = run(['list', '--db', db]);
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SCAN\s+STARTED \(UTC\)\s+STATUS/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'scan-d 2025-03-01T08:30:00.000Z interrupted',
      'scan-c 2025-03-01T08:20:00.000Z rejected',
      'scan-b 2025-03-01T08:10:00.000Z partial',
      'scan-a 2025-03-01T08:00:00.000Z approved',
    ]);
  });

  it('applies the filters given on the command line', () => {
    const ids = (argv: string[]): string[] => (JSON.parse(run(['list', '--db', db, '--json', ...argv]).out) as Array<{ scanId: string }>).map((s) => s.scanId);
    expect(ids(['--since', '2025-03-01T08:05Z', '--until', '2025-03-01T08:25:00+00:00'])).toEqual(['scan-c', 'scan-b']);
    expect(ids(['--until', '2025-03-01'])).toEqual(['scan-d', 'scan-c', 'scan-b', 'scan-a']); // the whole day
    expect(ids(['--until', '2025-02-28'])).toEqual([]);
    expect(ids(['--verdict', 'interrupted'])).toEqual(['scan-d']);
    expect(ids(['--operator', 'op-9'])).toEqual(['scan-b']);
    expect(ids(['--serial', 'SER-scan-a'])).toEqual(['scan-a']);
    expect(ids(['--file', 'PLC.BIN', '--limit', '1'])).toEqual(['scan-a']);
    expect(ids(['--limit', '1'])).toEqual(['scan-d']);
    expect(ids(['--file', `blake3:${'f'.repeat(64)}`, '--verdict', 'approved'])).toEqual(['scan-a']);
  });

  it('shows one scan with every file and reason, and exits 1 for an unknown scan', () => {
    const { code, out } = run(['show', 'scan-c', '--db', db]);
    expect(code).toBe(0);
    expect(out).toContain('scan scan-c: REJECTED');
    expect(out).toContain('drive: SCANNER_TIMEOUT: clamd made no progress for 30 s');
    expect(out).toContain('SCAN_ERROR: not approved: the scan failed (SCANNER_TIMEOUT)');
    expect(logShowCommand({ db, scanId: 'scan-zz', stdout: { write: () => true }, stderr: { write: () => true } })).toBe(1);
    expect(JSON.parse(run(['show', 'scan-d', '--db', db, '--json']).out)).toMatchObject({ scanId: 'scan-d', status: 'interrupted', files: [] });
  });

  it('shows hostile file names and labels escaped, in text and in JSON', () => {
    for (const argv of [['show', 'scan-b', '--db', db], ['show', 'scan-b', '--db', db, '--json'], ['list', '--db', db]]) {
      const { code, out } = run(argv);
      expect(code).toBe(0);
      expect(out).not.toMatch(UNSAFE);
    }
    const text = run(['show', 'scan-b', '--db', db]).out;
    expect(text).toContain('=cmd|\\x1b[2J\\u{202e}gpj.exe');
    expect(text).toContain('label "\\x1b]0;owned\\x07LBL"');
    expect(text).toContain('.portcullis/\\u{202e}evil');
  });

  it('escapes raw control characters even when they were written into the database behind the store', () => {
    const copy = join(work, 'raw.db');
    copyFileSync(db, copy);
    tamper(copy, (d) => {
      d.exec("UPDATE files SET path = char(27) || '[31mred' || char(8238) || 'txt.exe' WHERE path = 'notes.txt'");
      d.exec("UPDATE devices SET usb_serial = '=1+1' || char(13) || char(10) || 'x' WHERE scan_id = 'scan-b'");
    });
    for (const argv of [['show', 'scan-b', '--db', copy], ['list', '--db', copy], ['export', '--db', copy, '--format', 'csv'], ['export', '--db', copy, '--format', 'json']]) {
      const { out } = run(argv);
      const body = argv.includes('csv') ? out.replaceAll('\r\n', '\n') : out;
      const shown = (t: string): string => (argv.includes('json') ? JSON.stringify(t).slice(1, -1) : t);
      expect(body).not.toMatch(UNSAFE);
      expect(body).toContain(shown('=1+1\\x0d\\x0ax'));
      if (argv[0] !== 'list') expect(body).toContain(shown('\\x1b[31mred\\u{202e}txt.exe'));
    }
  });
});

describe('log export', () => {
  it('writes RFC 4180 CSV, one row per file with the scan columns, formulas neutralised and names escaped', () => {
    const out: string[] = [];
    expect(logExportCommand({ db, format: 'csv', stdout: { write: (c: string) => out.push(c) } })).toBe(0);
    const text = out.join('');
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.replaceAll('\r\n', '')).not.toMatch(/[\r\n]/); // escaped values never break a record
    const [header, ...rows] = parseCsv(text);
    expect(header).toEqual([...CSV_COLUMNS]);
    const col = (name: (typeof CSV_COLUMNS)[number]): number => CSV_COLUMNS.indexOf(name);
    for (const row of rows) expect(row).toHaveLength(CSV_COLUMNS.length);
    expect(rows.map((r) => [r[col('scan_id')], r[col('status')], r[col('file_path')]])).toEqual([
      ['scan-a', 'approved', 'firmware/plc.bin'],
      ['scan-a', 'approved', 'docs/readme.txt'],
      ['scan-b', 'partial', 'notes.txt'],
      ['scan-b', 'partial', "'=cmd|\\x1b[2J\\u{202e}gpj.exe"],
      ['scan-b', 'partial', "'+SUM(A1).csv"],
      ['scan-c', 'rejected', 'a.doc'],
      ['scan-d', 'interrupted', ''],
    ]);
    const hostile = rows[3]!;
    expect(hostile[col('label')]).toBe('\\x1b]0;owned\\x07LBL');
    expect(hostile[col('file_reasons')]).toBe('UNSAFE_NAME: the name contains a text-direction control character (can disguise the extension) | RISKY_TYPE: .exe files are blocked on plant media by policy');
    expect(rows[0]![col('file_allowlist_entry')]).toBe('Siemens S7-1500 2.9.4 (plc.bin)');
    expect(rows[5]![col('drive_reasons')]).toBe('SCANNER_TIMEOUT: clamd made no progress for 30 s');
    expect(rows[0]![col('manifest_digest')]).toBe(`sha256:${'1'.repeat(64)}`);
    for (const row of rows) for (const cell of row) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    expect(text).not.toMatch(UNSAFE);
  });

  it('exports JSON with the same filters, keeping only the matching files', () => {
    const { code, out } = run(['export', '--db', db, '--format', 'json', '--file', 'gpj']);
    expect(code).toBe(0);
    const scans = JSON.parse(out) as Array<{ scanId: string; files: Array<{ path: string }> }>;
    expect(scans.map((s) => [s.scanId, s.files.map((f) => f.path)])).toEqual([['scan-b', ['=cmd|\\x1b[2J\\u{202e}gpj.exe']]]);
    expect(JSON.parse(run(['export', '--db', db, '--format', 'json', '--operator', 'nobody']).out)).toEqual([]);
  });

  it('lists through the function the CLI wires, with its default limit', () => {
    const out: string[] = [];
    expect(logListCommand({ db, json: true, stdout: { write: (c: string) => out.push(c) } })).toBe(0);
    expect(JSON.parse(out.join(''))).toHaveLength(4);
  });
});
