import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog, csvCell, formatExport, GENESIS_HASH, hashedRecordText, recordHash, verifyLogBytes, type LogRecord } from './audit-log.ts';
import { canonicalize } from '../manifest/index.ts';
import { tempDir } from '../test/support/agent-fixtures.ts';

function writeLog(n: number): { path: string; lines: string[] } {
  const path = join(tempDir('log'), 'agent.log.jsonl');
  let t = Date.parse('2026-03-01T10:00:00Z');
  const log = new AuditLog(path, { hmi: 'HMI-3', clock: () => new Date((t += 1000)) });
  for (let i = 1; i <= n; i++) {
    log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: `file ${i}`, path: `dir/file-${i}.bin`, digests: { sha256: 'a'.repeat(64), blake3: 'b'.repeat(64), size: i } });
  }
  return { path, lines: readFileSync(path, 'utf8').trimEnd().split('\n') };
}

const check = (text: string) => verifyLogBytes(Buffer.from(text));

describe('the hash-chained decision log', () => {
  it('chains every record to the one before and hashes the canonical JSON without the hash', () => {
    const { lines } = writeLog(3);
    const records = lines.map((l) => JSON.parse(l) as LogRecord);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(records[0]!.prev).toBe(GENESIS_HASH);
    expect(records[1]!.prev).toBe(records[0]!.hash);
    expect(records[2]!.prev).toBe(records[1]!.hash);
    for (const r of records) expect(recordHash(r)).toBe(r.hash);
    expect(records[0]).toMatchObject({ hmi: 'HMI-3', event: 'file.imported', path: 'dir/file-1.bin', time: '2026-03-01T10:00:01.000Z' });
    expect(check(`${lines.join('\n')}\n`)).toMatchObject({ ok: true, records: 3, head: { seq: 3, hash: records[2]!.hash } });
  });

  it('writes each line as the canonical JSON of the record, also when drive values spell out key syntax', () => {
    const dir = tempDir('log');
    const log = new AuditLog(join(dir, 'agent.log.jsonl'), { hmi: 'HMI-"hmi":', clock: () => new Date('2026-03-01T10:00:00Z') });
    const hostile = ',"hmi":"x","hash":"0", caf\u00e9 \u202e\t\\ \ud83d\ude00';
    log.append({ event: 'drive.checked', outcome: 'refused', code: 'NO_MANIFEST', reason: hostile, drive: { mount: hostile, label: hostile, volumeId: null, filesystem: 'vfat', capacity: null } });
    log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'ok', path: hostile, destination: `a/${hostile}`, digests: { sha256: 'a'.repeat(64), blake3: 'b'.repeat(64), size: 3 } });
    // A digest the policy did not compute is null (docs/agent.md "The log").
    log.append({ event: 'file.checked', outcome: 'allowed', code: 'PERMITTED', reason: 'ok', path: 'a', digests: { sha256: null, blake3: 'b'.repeat(64), size: 3 } });
    log.append({ event: 'file.checked', outcome: 'allowed', code: 'PERMITTED', reason: 'ok', path: 'b', digests: { sha256: 'a'.repeat(64), blake3: null, size: 3 } });
    const lines = readFileSync(log.path, 'utf8').trimEnd().split('\n');
    for (const line of lines) {
      const record = JSON.parse(line) as LogRecord;
      expect(line).toBe(canonicalize(record));
      expect(recordHash(record)).toBe(record.hash);
      const { hash, ...body } = record;
      expect(hashedRecordText(body)).toEqual({ hash, text: line });
    }
    expect(check(`${lines.join('\n')}\n`)).toMatchObject({ ok: true, records: 4 });
  });

  it('refuses to encode a string that is not well-formed Unicode, as canonical JSON does', () => {
    const dir = tempDir('log');
    const log = new AuditLog(join(dir, 'agent.log.jsonl'), { hmi: 'HMI-1' });
    const record = log.append({ event: 'file.refused', outcome: 'refused', code: 'UNSAFE_NAME', reason: 'r', path: 'ok' });
    const body: Omit<LogRecord, 'hash'> & { hash?: string } = { ...record };
    delete body.hash;
    expect(() => hashedRecordText({ ...body, destination: 'half \ud800 pair' })).toThrow(/well-formed Unicode/);
    expect(() => hashedRecordText({ ...body, seq: 1.5 })).toThrow(/safe integers/);
  });

  it('names a deleted record', () => {
    const { lines } = writeLog(5);
    expect(check(`${[lines[0], lines[1], lines[3], lines[4]].join('\n')}\n`)).toMatchObject({ ok: false, problem: 'DELETED', line: 3, seq: 4 });
  });

  it('names an edited record, even one whose JSON is still valid', () => {
    const { lines } = writeLog(4);
    lines[2] = lines[2]!.replace('"code":"IMPORTED"', '"code":"REFUSED__"');
    expect(check(`${lines.join('\n')}\n`)).toMatchObject({ ok: false, problem: 'EDITED', line: 3 });
  });

  it('names an edited record whose hash was recomputed, at the record after it', () => {
    const { lines } = writeLog(4);
    const r = JSON.parse(lines[1]!) as LogRecord;
    r.outcome = 'refused';
    r.hash = recordHash(r);
    lines[1] = JSON.stringify(r);
    expect(check(`${lines.join('\n')}\n`)).toMatchObject({ ok: false, problem: 'CHAIN_BROKEN', line: 3, seq: 3 });
  });

  it('names reordered records', () => {
    const { lines } = writeLog(4);
    expect(check(`${[lines[0], lines[2], lines[1], lines[3]].join('\n')}\n`)).toMatchObject({ ok: false, problem: 'REORDERED', line: 2, seq: 3 });
  });

  it('names a truncated last line', () => {
    const { lines } = writeLog(3);
    expect(check(`${lines.join('\n')}`.slice(0, -20))).toMatchObject({ ok: false, problem: 'TRUNCATED', line: 3 });
  });

  it('refuses to append after a torn or forged last record (fail closed)', () => {
    const { path } = writeLog(2);
    appendFileSync(path, '{"seq":3');
    const log = new AuditLog(path, { hmi: 'HMI-3' });
    expect(() => log.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'x' })).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT' }));
  });

  it('fails with LOG_WRITE_FAILED when the log cannot be written', () => {
    const log = new AuditLog(join(tempDir('log'), 'missing-folder', 'agent.log.jsonl'), { hmi: 'HMI-3' });
    expect(() => log.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'x' })).toThrow(expect.objectContaining({ code: 'LOG_WRITE_FAILED' }));
  });

  it('appends a group as one chain and writes none of it when one record is refused', () => {
    const { path } = writeLog(2);
    const log = new AuditLog(path, { hmi: 'HMI-3' });
    const event = (reason: string) => ({ event: 'file.imported', outcome: 'allowed' as const, code: 'IMPORTED', reason, path: 'x.bin' });
    expect(log.appendMany([event('a'), event('b'), event('c')]).map((r) => r.seq)).toEqual([3, 4, 5]);
    const before = readFileSync(path);
    expect(() => log.appendMany([event('d'), { ...event('e'), outcome: 'bogus' as never }])).toThrow(expect.objectContaining({ code: 'LOG_WRITE_FAILED' }));
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(verifyLogBytes(before)).toMatchObject({ ok: true });
  });

  it('cuts a group that hit a full disk back to the old end, so the chain stays whole (real EFBIG via ulimit -f)', () => {
    const { path } = writeLog(3);
    const size = statSync(path).size;
    // A child process whose file-size limit lets about 1 KiB more be written: the group's write fails part-way.
    const script = `
      import { AuditLog } from ${JSON.stringify(join(import.meta.dirname, './audit-log.ts'))};
      const log = new AuditLog(${JSON.stringify(path)}, { hmi: 'HMI-3' });
      const events = Array.from({ length: 40 }, (_, i) => ({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'file ' + i, path: 'dir/file-' + i + '.bin' }));
      try { log.appendMany(events); console.log('written'); } catch (e) { console.log(e.code); }`;
    const blocks = Math.ceil(size / 512) + 2;
    const out = execFileSync('sh', ['-c', `trap '' XFSZ; ulimit -f ${blocks}; exec "$0" --input-type=module -e "$1"`, process.execPath, script], { encoding: 'utf8' });
    expect(out.trim()).toBe('LOG_WRITE_FAILED');
    expect(statSync(path).size).toBe(size);
    expect(verifyLogBytes(readFileSync(path))).toMatchObject({ ok: true });
    // and the next append continues the chain
    new AuditLog(path, { hmi: 'HMI-3' }).append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'after' });
    expect(verifyLogBytes(readFileSync(path))).toMatchObject({ ok: true });
  });

  it('refuses a record with a duplicate member whose last value is the one hashed (log verify reads bytes, not the parsed value)', () => {
    const { path, lines } = writeLog(3);
    // A reader that takes the first "code" sees REFUSED; JSON.parse takes the last, which the hash covers.
    lines[1] = lines[1]!.replace('{"code":"IMPORTED",', '{"code":"FILE_HASH_MISMATCH","code":"IMPORTED",');
    expect(check(`${lines.join('\n')}\n`)).toMatchObject({ ok: false, line: 2, seq: 2, problem: 'MALFORMED' });
    // As the last record, it stops appends as well (LOG_CORRUPT), like any other forged last record.
    writeFileSync(path, `${lines.slice(0, 2).join('\n')}\n`);
    const log = new AuditLog(path, { hmi: 'HMI-3' });
    expect(() => log.append({ event: 'file.refused', outcome: 'refused', code: 'FILE_UNLISTED', reason: 'x' })).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT' }));
  });

  it('refuses a record that is not byte for byte its canonical form (spaces, member order, escapes)', () => {
    const { lines } = writeLog(2);
    const variants = [
      lines[1]!.replace('"seq":2', '"seq": 2'),
      lines[1]!.replace(/^\{"code":"IMPORTED",(.*)\}$/u, '{$1,"code":"IMPORTED"}'),
      lines[1]!.replace('"reason":"file 2"', '"reason":"file \\u0032"'),
    ];
    for (const variant of variants) {
      expect(variant).not.toBe(lines[1]);
      expect(JSON.parse(variant)).toEqual(JSON.parse(lines[1]!)); // the same record once parsed
      expect(check(`${lines[0]}\n${variant}\n`)).toMatchObject({ ok: false, line: 2, problem: 'MALFORMED' });
    }
  });

  it('refuses bytes that are not UTF-8 even where they decode to the record that was hashed', () => {
    const path = join(tempDir('log'), 'agent.log.jsonl');
    const log = new AuditLog(path, { hmi: 'HMI-3', clock: () => new Date('2026-03-01T10:00:00Z') });
    log.append({ event: 'file.refused', outcome: 'refused', code: 'UNSAFE_NAME', reason: 'name \ufffd here' });
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from('\ufffd'));
    // U+FFFD (3 bytes) replaced by one invalid byte: a lenient decoder gives back the same text.
    const forged = Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff]), bytes.subarray(at + 3)]);
    expect(verifyLogBytes(forged)).toMatchObject({ ok: false, line: 1, problem: 'MALFORMED' });
    writeFileSync(path, forged);
    expect(() => log.append({ event: 'file.refused', outcome: 'refused', code: 'FILE_UNLISTED', reason: 'x' })).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT' }));
  });

  it('continues one chain when two writers (service and CLI) share the log', () => {
    const path = join(tempDir('log'), 'shared.jsonl');
    const a = new AuditLog(path, { hmi: 'HMI-3' });
    const b = new AuditLog(path, { hmi: 'HMI-3' });
    for (let i = 0; i < 3; i++) {
      a.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'a' });
      b.append({ event: 'trust.key-added', outcome: 'changed', code: 'TRUST_CHANGED', reason: 'b' });
    }
    expect(verifyLogBytes(readFileSync(path))).toMatchObject({ ok: true, records: 6 });
  });

  it('escapes control characters in reasons and clips hostile long paths instead of failing', () => {
    const path = join(tempDir('log'), 'x.jsonl');
    const log = new AuditLog(path, { hmi: 'HMI\u001b[31m' });
    const record = log.append({ event: 'file.refused', outcome: 'refused', code: 'UNSAFE_NAME', reason: 'name \u202e txt.exe', path: 'x'.repeat(20_000) });
    expect(record.hmi).toBe('HMI\\x1b[31m');
    expect(record.reason).toBe('name \\u{202e} txt.exe');
    expect(record.path!.length).toBeLessThanOrEqual(8192);
    expect(verifyLogBytes(readFileSync(path)).ok).toBe(true);
  });
});

describe('log export', () => {
  it('exports the review fields as CSV and JSON', () => {
    const { lines } = writeLog(2);
    const records = lines.map((l) => JSON.parse(l) as LogRecord);
    const csv = formatExport(records, 'csv').split('\r\n');
    expect(csv[0]).toBe('seq,time,hmi,event,outcome,code,reason,manifestDigest,keyId,driveMount,driveFilesystem,driveVolumeId,driveLabel,driveCapacity,path,destination,sha256,blake3,size,hash');
    expect(csv[1]).toContain(',HMI-3,file.imported,allowed,IMPORTED,file 1,');
    const json = JSON.parse(formatExport(records, 'json')) as Array<Record<string, unknown>>;
    expect(json[1]).toMatchObject({ seq: 2, path: 'dir/file-2.bin', size: 2, hmi: 'HMI-3' });
  });

  it('defuses cells a spreadsheet would run as a formula and quotes separators', () => {
    expect(csvCell('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvCell('+cmd|calc')).toBe("'+cmd|calc");
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell(-5)).toBe('-5');
    expect(csvCell(null)).toBe('');
  });

  it('is written from a verified log only', () => {
    const { path, lines } = writeLog(2);
    writeFileSync(path, `${lines[1]}\n`);
    expect(verifyLogBytes(readFileSync(path))).toMatchObject({ ok: false, problem: 'DELETED' });
  });
});
