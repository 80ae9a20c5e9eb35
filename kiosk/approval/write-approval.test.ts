/**
 * The manifest and receipt writeApproval streams from the decision's files
 * are byte for byte what the statement built in memory gives (buildStatement,
 * canonicalize, signManifest, and the receipt as it was rendered from the
 * statement), on generated drives: names in every order, long blocked names
 * cut to 4 096 characters, files that may pass and blocked ones mixed.
 */
import { describe, expect, it } from 'vitest';
import { canonicalize, MANIFEST_PATH, RECEIPT_PATH, signManifest, verifyManifest, type BlockedFile, type Statement } from '../../manifest/index.ts';
import { testKey } from '../../test/vectors/generate.ts';
import { buildStatement, writeStatementPae, type ApprovedFile } from '../core/build-statement.ts';
import type { Decision, FileDecision } from '../core/decide.ts';
import type { DriveTarget } from '../core/ports.ts';
import { writeApproval, type ApprovalInput } from './write-approval.ts';

const key = testKey('alpha');
const now = new Date('2026-03-01T08:00:00.400Z');

function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

/** A drive in memory: what writeApproval writes is kept and read back. */
function memoryTarget(): DriveTarget & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    root: '/nowhere', unseen: [], description: 'memory', files,
    media: { filesystem: 'vfat', volumeId: '1A2B-3C4D', label: 'LINE3', capacity: 1024, usb: { vendorId: '0781', productId: '5567', serial: 'S1' } },
    removeManifest: () => Promise.resolve(files.delete(MANIFEST_PATH)),
    writeManifest: (list) => { for (const f of list) files.set(f.path, Uint8Array.from(f.content)); return Promise.resolve(); },
    readBack: (path) => Promise.resolve(files.get(path)!),
    close: () => Promise.resolve(),
  };
}

const PIECES = ['a', 'B', 'é', 'z', '0', '-', ' ', '😀', 'ß', '"', '\\\\', '\\x1b'];

/** Files in display order (as the scan ledger gives them), some passing, some blocked, some with names far over 4 096 characters. */
function decisionOf(next: () => number, count: number): FileDecision[] {
  const files: FileDecision[] = [];
  const seen = new Set<string>();
  while (files.length < count) {
    let display = '';
    for (let i = 0; i < 1 + Math.floor(next() * 6); i++) display += PIECES[Math.floor(next() * PIECES.length)];
    const r = files.length === 0 ? 1 : next();
    if (r < 0.15) display = 'L'.repeat(4093 + Math.floor(next() * 8)) + display; // cut to 4 093 characters and "..." (inside the L's)
    else if (r < 0.25) display = 'L'.repeat(4093) + ['a', 'B', '-', '0', 'zz', '...'][Math.floor(next() * 6)]!; // not cut, and sorted among the cut ones differently once they are
    if (files.length === 0) display = 'first'; // one file that passes: a drive with none gets no manifest
    if (seen.has(display)) continue;
    seen.add(display);
    const passes = (files.length === 0 || next() < 0.6) && !display.includes('\\') && !display.includes('"') && display.length < 1000 && !display.endsWith(' ');
    const hex = (c: number): string => c.toString(16).padStart(2, '0').repeat(32);
    files.push({
      path: passes ? `f/${display}` : null, display: passes ? `f/${display}` : display, size: Math.floor(next() * 1e6),
      digest: passes ? { sha256: hex(files.length % 256), blake3: hex((files.length * 7) % 256) } : null,
      verdict: passes ? 'clean' : 'blocked', reasons: passes ? [] : [{ code: next() < 0.5 ? 'MALWARE' : 'UNSAFE_NAME', detail: 'x' }, { code: 'MALWARE', detail: 'y' }],
      allowlistEntry: null, controlledClass: null,
    });
  }
  return files.sort((a, b) => (a.display < b.display ? -1 : a.display > b.display ? 1 : 0));
}

function inputOf(files: FileDecision[]): ApprovalInput {
  const decision: Decision = { verdict: 'partial', files, driveReasons: [] };
  return {
    decision, key, kioskId: 'gate-1', operatorId: 'T-1', scan: { id: 'scan-1', fileCount: files.length, byteCount: 7 },
    engines: { clamav: null, yara: null }, allowlist: null, policy: { id: 'default', digest: `sha256:${'a'.repeat(64)}` }, validityHours: 12, now,
  };
}

/** The statement as write-approval.ts built it in memory before it streamed. */
function referenceStatement(target: DriveTarget, input: ApprovalInput): Statement {
  const approved: ApprovedFile[] = [];
  const blocked: BlockedFile[] = [];
  for (const f of input.decision.files) {
    if (f.verdict !== 'blocked' && f.path !== null && f.digest !== null) {
      approved.push({ path: f.path, sha256: f.digest.sha256, blake3: f.digest.blake3, size: f.size });
    } else {
      const codes = [...new Set(f.reasons.map((r) => r.code))].slice(0, 16);
      blocked.push({ path: f.display.length <= 4096 ? f.display : `${f.display.slice(0, 4093)}...`, reasons: codes.length > 0 ? codes : ['SCAN_ERROR'] });
    }
  }
  return buildStatement({
    kioskId: input.kioskId, keyId: input.key.keyId, operatorId: input.operatorId, issuedAt: input.now, validitySeconds: input.validityHours * 3600,
    scan: input.scan, media: target.media, engines: input.engines, allowlist: input.allowlist, policy: input.policy, approved, blocked,
  });
}

/** The receipt as it was rendered from the statement. */
function referenceReceipt(statement: Statement, verdict: string): string {
  const p = statement.predicate;
  return [
    'PORTCULLIS MEDIA RECEIPT (informative: the signed manifest beside it is what counts)', '',
    `Verdict:      ${verdict.toUpperCase()}`,
    `Kiosk:        ${p.kiosk.id} (key ${p.kiosk.keyId.slice(0, 16)}...)`,
    `Operator:     ${p.operator?.id ?? '-'}`,
    `Scanned:      ${p.issuedAt}  scan ${p.scan.id}: ${p.scan.fileCount} files, ${p.scan.byteCount} bytes`,
    `Valid until:  ${p.expiresAt}`,
    `Drive:        ${p.media.filesystem} ${p.media.volumeId ?? ''} label "${p.media.label ?? ''}"`,
    `Engines:      ${p.engines.clamav?.version ?? 'ClamAV not run'} db ${p.engines.clamav?.databaseVersion ?? '-'}; YARA ${p.engines.yara ? `${p.engines.yara.ruleCount} rules` : 'not run'}`,
    '', `May pass (${statement.subject.length}):`, ...statement.subject.map((s) => `  ${s.name}  (${s.annotations.size} bytes)`),
    '', `Blocked (${p.blocked.length}):`, ...p.blocked.map((b) => `  ${b.path}  ${b.reasons.join(', ')}`), '',
  ].join('\r\n');
}

describe('writeApproval streams the manifest it used to build in memory', () => {
  it('writes the same envelope and receipt bytes on 40 generated drives', async () => {
    const next = random(99);
    let cut = 0;
    for (let n = 0; n < 40; n++) {
      const files = decisionOf(next, 5 + Math.floor(next() * 60));
      cut += files.filter((f) => f.display.length > 4096).length;
      const target = memoryTarget();
      const input = inputOf(files);
      const issued = await writeApproval(target, input);
      const statement = referenceStatement(target, input);
      expect(Buffer.from(target.files.get(MANIFEST_PATH)!).toString()).toBe(Buffer.from(signManifest(statement, key)).toString());
      expect(Buffer.from(target.files.get(RECEIPT_PATH)!).toString()).toBe(referenceReceipt(statement, 'partial'));
      expect(issued.expiresAt).toBe(statement.predicate.expiresAt);
      const verified = verifyManifest(target.files.get(MANIFEST_PATH)!, { keys: [{ keyId: key.keyId, publicKey: key.publicKey }] }, new Date('2026-03-01T09:00:00Z'));
      expect(issued.digest).toBe(verified.payloadDigest);
    }
    expect(cut).toBeGreaterThan(20); // long names were cut and merged back in order
  });

  it('cuts a long blocked name between characters, never inside a surrogate pair (an emoji at the cut made canonical JSON throw)', async () => {
    const hex = 'ab'.repeat(32);
    const passing: FileDecision = { path: 'first', display: 'first', size: 1, digest: { sha256: hex, blake3: hex }, verdict: 'clean', reasons: [], allowlistEntry: null, controlledClass: null };
    const long = 'L'.repeat(4092) + '\u{1F600}' + 'tail';
    const blockedFile: FileDecision = { path: null, display: long, size: 2, digest: null, verdict: 'blocked', reasons: [{ code: 'MALWARE', detail: 'x' }], allowlistEntry: null, controlledClass: null };
    const target = memoryTarget();
    await writeApproval(target, inputOf([passing, blockedFile]));
    const verified = verifyManifest(target.files.get(MANIFEST_PATH)!, { keys: [{ keyId: key.keyId, publicKey: key.publicKey }] }, new Date('2026-03-01T09:00:00Z'));
    expect(verified.statement.predicate.blocked.map((b) => b.path)).toEqual([`${'L'.repeat(4092)}...`]);
  });

  it('writes the statement canonically however its lists come: sorted as they stream, unsorted through the in-memory sort', () => {
    const next = random(5);
    const files = decisionOf(next, 50);
    const target = memoryTarget();
    const statement = referenceStatement(target, inputOf(files));
    const { predicate } = statement;
    const head = {
      kioskId: predicate.kiosk.id, keyId: predicate.kiosk.keyId, operatorId: 'T-1', issuedAt: now, validitySeconds: 12 * 3600,
      scan: predicate.scan, media: predicate.media, engines: predicate.engines, allowlist: predicate.allowlist, policy: predicate.policy,
    };
    const approved = statement.subject.map((s) => ({ path: s.name, sha256: s.digest.sha256, blake3: s.digest.blake3, size: s.annotations.size }));
    const expected = canonicalize(statement);
    expect(Buffer.from(writeStatementPae(head, () => approved, () => predicate.blocked).payload).toString()).toBe(expected);
    const reversed = { approved: [...approved].reverse(), blocked: [...predicate.blocked].reverse() };
    expect(Buffer.from(writeStatementPae(head, () => reversed.approved, () => reversed.blocked, 10).payload).toString())
      .toBe(canonicalize(buildStatement({ ...head, ...reversed }))); // equal paths keep the order given, as the stable sort does
  });
});
