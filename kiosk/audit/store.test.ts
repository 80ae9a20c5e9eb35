import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditError } from './errors.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';
import { openAuditStore } from './store.ts';
import { beginInput, file, finishInput, RAW_HOSTILE_LABEL, RAW_HOSTILE_NAME, steppingClock, T0, writeSampleLog } from '../../test/support/audit-log-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-audit-store-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const freshPath = (): string => join(work, `audit-${++n}.db`);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof AuditError ? error.code : `not an AuditError: ${String(error)}`;
  }
  return undefined;
}

describe('audit store', () => {
  it('opens the database in WAL mode with synchronous=FULL', () => {
    const path = freshPath();
    const store = openAuditStore(path);
    expect(store.durability()).toEqual({ journalMode: 'wal', synchronous: 'full' });
    store.recordEvent('KEY_GENERATED', { keyId: 'x' });
    expect(existsSync(`${path}-wal`)).toBe(true);
    store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal'); // persistent in the file
    db.close();
  });

  it('records and reads back a full scan', () => {
    const path = freshPath();
    const store = openAuditStore(path, { now: steppingClock() });
    store.beginScan(beginInput('scan-1', 0));
    store.finishScan(finishInput('scan-1', 0));
    const scan = store.getScan('scan-1');
    store.close();
    expect(scan).toMatchObject({
      scanId: 'scan-1',
      status: 'approved',
      kioskId: 'gate-1',
      operatorId: 'op-7',
      startedAt: new Date(T0).toISOString(),
      finishedAt: new Date(T0 + 30_000).toISOString(),
      device: {
        usb: { vendorId: '0781', productId: '5567', serial: 'SER-scan-1', manufacturer: 'SanDisk', product: 'Cruzer Blade' },
        filesystem: 'vfat',
        volumeId: '1234-ABCD',
        label: 'PLANT7',
        capacity: 16_000_000_000,
      },
      driveReasons: [],
      engines: {
        clamav: { version: 'ClamAV 1.4.3', databaseVersion: '27512', databaseTime: '2025-02-28T09:00:00Z' },
        yara: { engine: 'yara 4.5.2', ruleSetDigest: `sha256:${'c'.repeat(64)}`, ruleCount: 42 },
      },
      policy: { id: 'default', digest: `sha256:${'d'.repeat(64)}` },
      allowlist: { version: 'siemens@2025.1', digest: `sha256:${'e'.repeat(64)}` },
      stats: { files: 2, bytes: 2468, entries: 4 },
      durations: { walkMs: 3, scanMs: 250, totalMs: 253 },
      manifestFolderExtras: [],
      manifest: { digest: `sha256:${'1'.repeat(64)}`, keyId: '2'.repeat(64), expiresAt: '2025-03-02T08:00:00Z' },
    });
    expect(scan?.files).toEqual([
      expect.objectContaining({
        path: 'firmware/plc.bin', size: 1234, sha256: 'a'.repeat(64), blake3: 'f'.repeat(64), verdict: 'allowlisted', controlledClass: 'firmware',
        allowlistEntry: { vendor: 'Siemens', product: 'S7-1500', version: '2.9.4', file: 'plc.bin', source: 'vendor download page, checked by OT team' },
        reasons: [],
      }),
      expect.objectContaining({ path: 'docs/readme.txt', verdict: 'clean', sha256: 'b'.repeat(64), allowlistEntry: null, reasons: [] }),
    ]);
  });

  it('records file and drive reasons of a rejected scan with no manifest', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-r', 0));
    store.finishScan(finishInput('scan-r', 0, {
      decision: {
        verdict: 'rejected',
        driveReasons: [{ code: 'SCANNER_TIMEOUT', detail: 'clamd made no progress for 30 s' }],
        files: [file('x.exe', 'blocked', { reasons: [{ code: 'RISKY_TYPE', detail: '.exe' }, { code: 'MALWARE', detail: 'Win.Test' }] })],
      },
      manifest: null,
    }));
    const scan = store.getScan('scan-r');
    store.close();
    expect(scan?.status).toBe('rejected');
    expect(scan?.manifest).toBeNull();
    expect(scan?.driveReasons).toEqual([{ code: 'SCANNER_TIMEOUT', detail: 'clamd made no progress for 30 s' }]);
    expect(scan?.files[0]?.reasons).toEqual([{ code: 'RISKY_TYPE', detail: '.exe' }, { code: 'MALWARE', detail: 'Win.Test' }]);
  });

  it('lists a begun scan without an outcome as interrupted, never approved', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-i', 0));
    expect(store.listScans().map((s) => [s.scanId, s.status])).toEqual([['scan-i', 'interrupted']]);
    expect(store.listScans({ status: 'approved' })).toEqual([]);
    expect(store.getScan('scan-i')).toMatchObject({ status: 'interrupted', finishedAt: null, manifest: null, files: [] });
    store.close();
  });

  it('records SCAN_INTERRUPTED once for each scan left without an outcome', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-1', 0));
    store.finishScan(finishInput('scan-1', 0));
    store.beginScan(beginInput('scan-2', 1));
    expect(store.recordInterruptedScans()).toEqual(['scan-2']);
    expect(store.recordInterruptedScans()).toEqual([]);
    expect(store.getScan('scan-2')?.events.map((e) => e.type)).toEqual(['SCAN_INTERRUPTED']);
    expect(store.verifyChain().ok).toBe(true);
    store.close();
  });

  it('refuses to record an approval that the files or drive reasons do not support', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-x', 0));
    const blocked = file('evil.exe', 'blocked');
    const withBlocked = finishInput('scan-x', 0, { decision: { verdict: 'approved', files: [file('ok.txt', 'clean'), blocked], driveReasons: [] } });
    expect(codeOf(() => store.finishScan(withBlocked))).toBe('AUDIT_INVALID_RECORD');
    const withDriveReason = finishInput('scan-x', 0, { decision: { verdict: 'partial', files: [file('ok.txt', 'clean')], driveReasons: [{ code: 'SCAN_ABORTED', detail: 'stopped' }] } });
    expect(codeOf(() => store.finishScan(withDriveReason))).toBe('AUDIT_INVALID_RECORD');
    const cleanWithReasons = finishInput('scan-x', 0, { decision: { verdict: 'approved', files: [file('ok.txt', 'clean', { reasons: [{ code: 'MALWARE', detail: 'x' }] })], driveReasons: [] } });
    expect(codeOf(() => store.finishScan(cleanWithReasons))).toBe('AUDIT_INVALID_RECORD');
    const rejectedWithManifest = finishInput('scan-x', 0, { decision: { verdict: 'rejected', files: [blocked], driveReasons: [] } });
    expect(codeOf(() => store.finishScan(rejectedWithManifest))).toBe('AUDIT_INVALID_RECORD');
    // Nothing was written: the scan still reads as interrupted and the chain is intact.
    expect(store.getScan('scan-x')?.status).toBe('interrupted');
    expect(store.verifyChain()).toMatchObject({ ok: true, records: 3 }); // migration, scan, device
    // A more restrictive verdict than the files allow is always accepted.
    store.finishScan(finishInput('scan-x', 0, { decision: { verdict: 'rejected', files: [file('ok.txt', 'clean')], driveReasons: [] }, manifest: null }));
    expect(store.getScan('scan-x')?.status).toBe('rejected');
    store.close();
  });

  it('reads the files as it records them (a scan ledger) and records nothing when that source fails midway', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-l', 0));
    const failing = { *[Symbol.iterator]() { yield file('a.txt', 'clean'); yield file('b.txt', 'clean'); throw new Error('the scan ledger was closed'); } };
    expect(codeOf(() => store.finishScan(finishInput('scan-l', 0, { decision: { verdict: 'approved', files: failing, driveReasons: [] } })))).toBe('AUDIT_WRITE_FAILED');
    expect(store.getScan('scan-l')?.status).toBe('interrupted');
    expect(store.verifyChain()).toMatchObject({ ok: true, records: 3 });
    let reads = 0;
    const lazy = { *[Symbol.iterator]() { for (let i = 0; i < 600; i++) { reads++; yield file(`f${String(i).padStart(3, '0')}.txt`, i % 3 === 0 ? 'blocked' : 'clean'); } } };
    store.finishScan(finishInput('scan-l', 0, { decision: { verdict: 'partial', files: lazy, driveReasons: [] }, manifest: null }));
    expect(reads).toBe(600);
    const recorded = store.getScan('scan-l');
    expect(recorded?.status).toBe('partial');
    expect(recorded?.files).toHaveLength(600);
    expect(recorded?.files.filter((f) => f.verdict === 'blocked')).toHaveLength(200);
    expect(store.verifyChain().ok).toBe(true);
    store.close();
  });

  it('refuses to begin a scan twice, to finish an unknown scan and to finish a scan twice', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-1', 0));
    expect(codeOf(() => store.beginScan(beginInput('scan-1', 1)))).toBe('AUDIT_SCAN_EXISTS');
    expect(codeOf(() => store.finishScan(finishInput('scan-9', 0)))).toBe('AUDIT_SCAN_UNKNOWN');
    store.finishScan(finishInput('scan-1', 0));
    expect(codeOf(() => store.finishScan(finishInput('scan-1', 0)))).toBe('AUDIT_SCAN_FINISHED');
    expect(store.verifyChain().ok).toBe(true);
    store.close();
  });

  it('keeps one chain when two connections write in turn', () => {
    const path = freshPath();
    const a = openAuditStore(path);
    const b = openAuditStore(path);
    a.beginScan(beginInput('scan-a', 0));
    b.beginScan(beginInput('scan-b', 1));
    b.finishScan(finishInput('scan-b', 1));
    a.recordEvent('ENGINE_FAILURE', { detail: 'x' });
    a.finishScan(finishInput('scan-a', 0));
    const last = b.recordEvent('KEY_GENERATED', { keyId: 'y' });
    expect(a.verifyChain()).toEqual({ ok: true, records: last.seq, head: last });
    a.close();
    b.close();
  });

  it('names the field of a malformed record by its path and writes nothing', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-1', 0));
    const bad = finishInput('scan-1', 0);
    const files = [...bad.decision.files];
    files[1] = { ...files[1]!, digest: { sha256: 'XYZ', blake3: 'f'.repeat(64) } };
    try {
      store.finishScan({ ...bad, decision: { ...bad.decision, files } });
      expect.unreachable('finishScan accepted a malformed digest');
    } catch (error) {
      expect((error as AuditError).code).toBe('AUDIT_INVALID_RECORD');
      expect((error as AuditError).message).toContain('decision.files[1].digest.sha256');
    }
    expect(codeOf(() => store.beginScan(beginInput('bad id', 0)))).toBe('AUDIT_INVALID_RECORD');
    expect(codeOf(() => store.beginScan(beginInput('scan-2', 0, { startedAt: new Date(NaN) })))).toBe('AUDIT_INVALID_RECORD');
    expect(codeOf(() => store.recordEvent('lower-case', {}))).toBe('AUDIT_INVALID_RECORD');
    expect(store.verifyChain()).toMatchObject({ ok: true, records: 3 }); // migration, scan, device
    store.close();
  });

  it('stores drive-supplied text escaped, so no control or bidi character reaches the database', () => {
    const path = freshPath();
    const store = openAuditStore(path);
    store.beginScan(beginInput('scan-h', 0, { operatorId: 'op\u202e1', device: { usb: { vendorId: '0781', productId: '5567', serial: 'S\u0000N' }, filesystem: 'vfat', volumeId: null, label: RAW_HOSTILE_LABEL, capacity: null } }));
    store.finishScan(finishInput('scan-h', 0, {
      decision: { verdict: 'partial', driveReasons: [], files: [file('ok.txt', 'clean'), file(RAW_HOSTILE_NAME, 'blocked', { reasons: [{ code: 'UNSAFE_NAME', detail: `collides with "\u202eX"` }] })] },
    }));
    store.recordEvent('ENGINE_FAILURE', { detail: 'bad \u001b[31m answer', lone: '\ud800' }, { scanId: 'scan-h' });
    store.close();
    const db = new Database(path, { readonly: true });
    const texts: string[] = [];
    for (const table of ['scans', 'devices', 'files', 'reasons', 'events']) {
      for (const row of db.prepare(`SELECT * FROM ${table}`).all() as Array<Record<string, unknown>>) {
        for (const v of Object.values(row)) if (typeof v === 'string') texts.push(v);
      }
    }
    db.close();
    const joined = texts.join('\n');
    expect(joined).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u);
    expect(joined).toContain('\\x1b]0;owned\\x07LBL');
    expect(joined).toContain('=cmd|\\x1b[2J\\u{202e}gpj.exe');
    expect(joined).toContain('S\\x00N');
    expect(joined).toContain('\\u{d800}');
  });

  it('keeps any event data as canonical JSON, whatever its types', () => {
    const store = openAuditStore(freshPath());
    store.beginScan(beginInput('scan-e', 0));
    const error = Object.assign(new Error('clamd went away'), { code: 'SCANNER_UNAVAILABLE' });
    store.recordEvent('ENGINE_FAILURE', { error, ratio: 0.5, big: 2n ** 70n, when: new Date(T0), nested: [{ ok: true, missing: undefined }] }, { scanId: 'scan-e' });
    expect(store.getScan('scan-e')?.events[0]?.data).toEqual({
      error: { name: 'Error', message: 'clamd went away', code: 'SCANNER_UNAVAILABLE' },
      ratio: '0.5',
      big: '1180591620717411303424',
      when: new Date(T0).toISOString(),
      nested: [{ ok: true }],
    });
    expect(store.verifyChain().ok).toBe(true);
    store.close();
  });

  it('filters listings by time, verdict, operator, serial and file name or hash', () => {
    const path = freshPath();
    writeSampleLog(path);
    const store = openAuditStore(path, { readonly: true });
    const ids = (filter: Parameters<typeof store.listScans>[0]): string[] => store.listScans(filter).map((s) => s.scanId);
    expect(ids({})).toEqual(['scan-d', 'scan-c', 'scan-b', 'scan-a']);
    expect(ids({ since: new Date(T0 + 10 * 60_000), until: new Date(T0 + 21 * 60_000) })).toEqual(['scan-c', 'scan-b']);
    expect(ids({ status: 'partial' })).toEqual(['scan-b']);
    expect(ids({ status: 'interrupted' })).toEqual(['scan-d']);
    expect(ids({ operatorId: 'op-9' })).toEqual(['scan-b']);
    expect(ids({ serial: 'KINGSTON-1' })).toEqual(['scan-b']);
    expect(ids({ file: 'README' })).toEqual(['scan-a']);
    expect(ids({ file: `sha256:${'7'.repeat(64)}` })).toEqual(['scan-c']);
    expect(ids({ file: 'F'.repeat(64) })).toEqual(['scan-c', 'scan-b', 'scan-a']); // the BLAKE3 of several files, upper-case
    expect(ids({ limit: 2 })).toEqual(['scan-d', 'scan-c']);
    expect([...store.exportScans({ file: 'notes' })].map((s) => [s.scanId, s.files.map((f) => f.path)])).toEqual([['scan-b', ['notes.txt']]]);
    store.close();
  });
});

describe('schema migrations', () => {
  it('run once: reopening applies nothing and records nothing', () => {
    const path = freshPath();
    openAuditStore(path, { now: steppingClock() }).close();
    const first = new Database(path, { readonly: true });
    const migrations = first.prepare('SELECT version, description, applied_at FROM schema_migrations').all();
    first.close();
    expect(migrations).toHaveLength(MIGRATIONS.length);
    const again = openAuditStore(path, { now: () => new Date(T0 + 86_400_000) });
    expect(again.schemaVersion).toBe(SCHEMA_VERSION);
    expect(again.verifyChain()).toMatchObject({ ok: true, records: MIGRATIONS.length });
    again.close();
    const second = new Database(path, { readonly: true });
    expect(second.prepare('SELECT version, description, applied_at FROM schema_migrations').all()).toEqual(migrations);
    second.close();
  });

  it('refuses a database whose schema is newer than the code knows, and leaves it unchanged', () => {
    const path = freshPath();
    openAuditStore(path).close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(SCHEMA_VERSION + 1, 'from the future', '2030-01-01T00:00:00.000Z');
    const before = db.prepare('SELECT seq, hash FROM chain_head').get();
    db.close();
    expect(codeOf(() => openAuditStore(path))).toBe('AUDIT_SCHEMA_TOO_NEW');
    expect(codeOf(() => openAuditStore(path, { readonly: true }))).toBe('AUDIT_SCHEMA_TOO_NEW');
    const after = new Database(path, { readonly: true });
    expect(after.prepare('SELECT seq, hash FROM chain_head').get()).toEqual(before);
    expect(after.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(SCHEMA_VERSION + 1);
    after.close();
  });

  it('will not create a database when opened read-only', () => {
    const path = join(work, 'absent.db');
    expect(codeOf(() => openAuditStore(path, { readonly: true }))).toBe('AUDIT_OPEN_FAILED');
    expect(existsSync(path)).toBe(false);
  });

  it('refuses to read a database that is not yet migrated, rather than guess at it', () => {
    const path = freshPath();
    new Database(path).close();
    expect(codeOf(() => openAuditStore(path, { readonly: true }))).toBe('AUDIT_SCHEMA_OUTDATED');
  });
});
