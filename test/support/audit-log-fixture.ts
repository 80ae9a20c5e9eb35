/**
 * A small, realistic audit log for tests: an approved, a partial, a rejected
 * and an interrupted scan, with hostile names and labels, plus events; and a
 * way to tamper with a copy the way someone with file access would (append-
 * only triggers dropped, foreign keys and CHECK constraints off).
 */
import Database from 'better-sqlite3';
import type { FileDecision } from '../../kiosk/core/decide.ts';
import { openAuditStore, type AuditStore, type BeginScanInput, type FinishScanInput } from '../../kiosk/audit/store.ts';

export const T0 = Date.parse('2025-03-01T08:00:00.000Z');

/** A clock that moves one second per reading. */
export function steppingClock(start = T0): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

const hex = (c: string): string => c.repeat(64);

/** A name as a hostile drive would hold it: ESC sequence, bidi override, formula start. */
export const RAW_HOSTILE_NAME = '=cmd|\u001b[2J\u202egpj.exe';
export const RAW_HOSTILE_LABEL = '\u001b]0;owned\u0007LBL';

export function file(display: string, verdict: FileDecision['verdict'], options: Partial<FileDecision> = {}, digestChar = 'a'): FileDecision {
  return {
    path: display,
    display,
    size: 1234,
    digest: { sha256: hex(digestChar), blake3: hex(digestChar === 'f' ? 'e' : 'f') },
    verdict,
    reasons: verdict === 'blocked' ? [{ code: 'MALWARE', detail: 'Eicar-Test-Signature' }] : [],
    allowlistEntry: null,
    controlledClass: null,
    ...options,
  };
}

export function beginInput(scanId: string, minute: number, overrides: Partial<BeginScanInput> = {}): BeginScanInput {
  return {
    scanId,
    kioskId: 'gate-1',
    operatorId: 'op-7',
    device: {
      usb: { vendorId: '0781', productId: '5567', serial: `SER-${scanId}`, manufacturer: 'SanDisk', product: 'Cruzer Blade' },
      filesystem: 'vfat',
      volumeId: '1234-ABCD',
      label: 'PLANT7',
      capacity: 16_000_000_000,
    },
    startedAt: new Date(T0 + minute * 60_000),
    ...overrides,
  };
}

export function finishInput(scanId: string, minute: number, overrides: Partial<FinishScanInput> = {}): FinishScanInput {
  const files = [
    file('firmware/plc.bin', 'allowlisted', {
      controlledClass: 'firmware',
      allowlistEntry: { vendor: 'Siemens', product: 'S7-1500', version: '2.9.4', file: 'plc.bin', sha256: hex('a'), blake3: undefined, source: 'vendor download page, checked by OT team', note: null },
    }),
    file('docs/readme.txt', 'clean', {}, 'b'),
  ];
  return {
    scanId,
    decision: { verdict: 'approved', files, driveReasons: [] },
    report: { stats: { files: files.length, bytes: 2468, entries: 4 }, durations: { walkMs: 3, scanMs: 250, totalMs: 253 }, manifestFolderExtras: [] },
    engines: {
      clamav: { version: 'ClamAV 1.4.3', databaseVersion: '27512', databaseTime: '2025-02-28T09:00:00Z' },
      yara: { engine: 'yara 4.5.2', ruleSetDigest: `sha256:${hex('c')}`, ruleCount: 42 },
    },
    policy: { id: 'default', digest: `sha256:${hex('d')}` },
    allowlist: { version: 'siemens@2025.1', digest: `sha256:${hex('e')}` },
    manifest: { digest: `sha256:${hex('1')}`, keyId: hex('2'), expiresAt: '2025-03-02T08:00:00Z' },
    finishedAt: new Date(T0 + minute * 60_000 + 30_000),
    ...overrides,
  };
}

/** Writes the sample log: scan-a approved, scan-b partial (hostile names), scan-c rejected, scan-d interrupted. */
export function writeSampleLog(path: string): void {
  const store = openAuditStore(path, { now: steppingClock() });
  try {
    fillSampleLog(store);
  } finally {
    store.close();
  }
}

export function fillSampleLog(store: AuditStore): void {
  store.recordEvent('KEY_GENERATED', { keyId: hex('2') });
  store.beginScan(beginInput('scan-a', 0));
  store.finishScan(finishInput('scan-a', 0));

  store.beginScan(beginInput('scan-b', 10, { operatorId: 'op-9', device: { usb: { vendorId: '0951', productId: '1666', serial: 'KINGSTON-1', manufacturer: 'Kingston', product: 'DataTraveler' }, filesystem: 'exfat', volumeId: 'DEAD-BEEF', label: RAW_HOSTILE_LABEL, capacity: 32_000_000_000 } }));
  const hostile = file(RAW_HOSTILE_NAME, 'blocked', {
    reasons: [
      { code: 'UNSAFE_NAME', detail: 'the name contains a text-direction control character (can disguise the extension)' },
      { code: 'RISKY_TYPE', detail: '.exe files are blocked on plant media by policy' },
    ],
  }, '3');
  store.finishScan(finishInput('scan-b', 10, {
    decision: { verdict: 'partial', driveReasons: [], files: [file('notes.txt', 'clean', {}, '4'), hostile, file('+SUM(A1).csv', 'clean', {}, '5')] },
    report: { stats: { files: 3, bytes: 3702, entries: 3 }, durations: { walkMs: 2, scanMs: 90, totalMs: 92 }, manifestFolderExtras: ['.portcullis/\u202eevil'] },
    manifest: { digest: `sha256:${hex('6')}`, keyId: hex('2'), expiresAt: '2025-03-02T08:10:00Z' },
  }));
  store.recordEvent('MANIFEST_WRITE_FAILED', { detail: 'read-back differed', attempt: 1 }, { scanId: 'scan-b' });

  store.beginScan(beginInput('scan-c', 20, { operatorId: 'op-7', device: { usb: null, filesystem: 'vfat', volumeId: null, label: '', capacity: null } }));
  store.finishScan(finishInput('scan-c', 20, {
    decision: {
      verdict: 'rejected',
      driveReasons: [{ code: 'SCANNER_TIMEOUT', detail: 'clamd made no progress for 30 s' }],
      files: [file('a.doc', 'blocked', { reasons: [{ code: 'SCAN_ERROR', detail: 'not approved: the scan failed (SCANNER_TIMEOUT)' }] }, '7')],
    },
    manifest: null,
    allowlist: null,
    engines: { clamav: { version: 'ClamAV 1.4.3', databaseVersion: null, databaseTime: null }, yara: null },
  }));

  store.beginScan(beginInput('scan-d', 30));
  store.recordEvent('ENGINE_FAILURE', { code: 'SCANNER_UNAVAILABLE', detail: 'clamd socket refused' });
}

/** Changes a copy as an intruder with write access to the file would. */
export function tamper(path: string, change: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    db.pragma('foreign_keys = OFF');
    db.pragma('ignore_check_constraints = ON');
    db.pragma('synchronous = OFF'); // a test copy: no need to wait for the disk
    db.transaction(() => {
      const triggers = db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").pluck().all() as string[];
      for (const t of triggers) db.exec(`DROP TRIGGER "${t}"`);
      change(db);
    })();
  } finally {
    db.close();
  }
}
