/**
 * Review test data: the audit store's sample log plus a scan whose file
 * names are hostile markup, and an agent log from one HMI that imported the
 * approved drive (scan-a) and refused an unlisted file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../../agent/audit-log.ts';
import { formatExport, verifyLogBytes } from '../../manifest/agent-log.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { beginInput, file, fillSampleLog, finishInput, steppingClock, T0 } from './audit-log-fixture.ts';

export const HOSTILE_IMG = '<img src=x onerror=alert(1)>';
export const HOSTILE_SCRIPT = '<script>alert("x")</script>';
export const SCAN_A_MANIFEST = `sha256:${'1'.repeat(64)}`;
export const HMI = 'HMI-LINE3';

/** Writes audit.db and agent.log.jsonl into `dir`; returns their paths. */
export function writeReviewFixture(dir: string): { auditDb: string; agentLog: string } {
  const auditDb = join(dir, 'audit.db');
  const store = openAuditStore(auditDb, { now: steppingClock() });
  try {
    fillSampleLog(store);
    store.beginScan(beginInput('scan-e', 40, { operatorId: 'op-3', device: { usb: { vendorId: '0781', productId: '5581', serial: 'SER-HOSTILE', manufacturer: '<b>Evil</b>', product: 'x' }, filesystem: 'vfat', volumeId: 'AAAA-BBBB', label: '<svg onload=alert(2)>', capacity: 1_000_000 } }));
    store.finishScan(finishInput('scan-e', 40, {
      decision: {
        verdict: 'partial', driveReasons: [],
        files: [
          file(HOSTILE_IMG, 'blocked', { reasons: [{ code: 'UNSAFE_NAME', detail: 'the name contains a character Windows forbids (< > " | ? *)' }] }, '8'),
          file(HOSTILE_SCRIPT, 'blocked', { reasons: [{ code: 'UNSAFE_NAME', detail: '<script>alert(3)</script>' }] }, '9'),
          file('ok.txt', 'clean', {}, '0'),
        ],
      },
      report: { stats: { files: 3, bytes: 3702, entries: 3 }, durations: { walkMs: 2, scanMs: 90, totalMs: 92 }, manifestFolderExtras: [] },
      manifest: { digest: `sha256:${'b'.repeat(64)}`, keyId: '2'.repeat(64), expiresAt: '2025-03-02T08:40:00Z' },
    }));
  } finally {
    store.close();
  }
  const agentLog = join(dir, 'agent.log.jsonl');
  let t = T0 + 3_600_000;
  const log = new AuditLog(agentLog, { hmi: HMI, clock: () => new Date((t += 1000)) });
  const drive = { mount: 'E:\\', filesystem: 'FAT32', volumeId: '1234-ABCD', label: 'PLANT7', capacity: 16_000_000_000 };
  const digests = { sha256: 'a'.repeat(64), blake3: 'f'.repeat(64), size: 1234 };
  log.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'manifest verified', manifestDigest: SCAN_A_MANIFEST, keyId: '2'.repeat(64), drive });
  log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest: SCAN_A_MANIFEST, drive, path: 'firmware/plc.bin', destination: 'firmware/plc.bin', digests });
  log.append({ event: 'file.refused', outcome: 'refused', code: 'FILE_UNLISTED', reason: 'on the drive but not in the manifest', manifestDigest: SCAN_A_MANIFEST, drive, path: 'autorun.inf' });
  log.append({ event: 'import.finished', outcome: 'info', code: 'PARTIAL', reason: '1 imported, 1 refused', manifestDigest: SCAN_A_MANIFEST, drive });
  return { auditDb, agentLog };
}

export const EXPORT_HMI = 'HMI-LINE4';

/**
 * Writes hmi-line4.json into `dir`: the output of `portcullis-agent log export --format json` from a second HMI
 * that imported scan-a's drive. An export carries no prev hashes, so the review cannot check its chain.
 */
export function writeAgentExport(dir: string): string {
  const logPath = join(dir, 'hmi-line4.log.jsonl');
  let t = T0 + 7_200_000;
  const log = new AuditLog(logPath, { hmi: EXPORT_HMI, clock: () => new Date((t += 1000)) });
  const drive = { mount: 'F:\\', filesystem: 'FAT32', volumeId: '1234-ABCD', label: 'PLANT7', capacity: 16_000_000_000 };
  log.append({ event: 'drive.checked', outcome: 'allowed', code: 'APPROVED', reason: 'manifest verified', manifestDigest: SCAN_A_MANIFEST, keyId: '2'.repeat(64), drive });
  log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest: SCAN_A_MANIFEST, drive, path: 'firmware/plc.bin', destination: 'line4/plc.bin', digests: { sha256: 'a'.repeat(64), blake3: 'f'.repeat(64), size: 1234 } });
  const check = verifyLogBytes(readFileSync(logPath));
  if (!check.ok) throw new Error(`the fixture's agent log does not verify: ${check.detail}`);
  const exported = join(dir, 'hmi-line4.json');
  writeFileSync(exported, formatExport(check.entries, 'json'));
  return exported;
}

/** An RFC 4180 reader for the tests' CSV downloads: records of fields, CRLF line ends, quoted fields may hold anything. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      for (i++; ; i++) {
        if (i >= text.length) throw new Error('unterminated quoted field');
        if (text[i] === '"' && text[i + 1] === '"') field += text[i++];
        else if (text[i] === '"') break;
        else field += text[i];
      }
      i++;
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r') field += text[i++];
    }
    record.push(field);
    if (text[i] === ',') {
      i++;
    } else if (text.startsWith('\r\n', i)) {
      i += 2;
      records.push(record);
      record = [];
    } else if (i < text.length) {
      throw new Error(`expected a comma or CRLF at ${i}`);
    }
  }
  if (record.length > 0) records.push(record);
  return records;
}
