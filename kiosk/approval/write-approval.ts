/**
 * Turns an approved or partial scan into a signed manifest on the drive:
 * subjects are exactly the files that may pass, blocked files go into the
 * predicate with their reason codes, a human-readable receipt goes beside it.
 * The kiosk re-reads what it wrote and verifies it before reporting success.
 */
import { createHash } from 'node:crypto';
import {
  MANIFEST_PATH, RECEIPT_PATH, signStatementPae, verifyManifestSummary, type BlockedFile, type Predicate, type SigningKey, type Statement,
} from '../../manifest/index.ts';
import { buildStatement, writeStatementPae, type ApprovedFile, type StatementHead } from '../core/build-statement.ts';
import type { Decision, FileDecision } from '../core/decide.ts';
import { DriveError, type DriveTarget } from '../core/ports.ts';

export interface ApprovalInput {
  readonly decision: Decision;
  readonly key: SigningKey;
  readonly kioskId: string;
  readonly operatorId: string | null;
  readonly scan: Predicate['scan'];
  readonly engines: Predicate['engines'];
  readonly allowlist: Predicate['allowlist'];
  readonly policy: Predicate['policy'];
  readonly validityHours: number;
  readonly now: Date;
}

export interface IssuedManifest {
  readonly digest: string; // sha256: of the payload
  readonly keyId: string;
  readonly expiresAt: string;
}

/** A drive's approved files, in the order the decision lists them (the ledger's: by display name, which is the path for a file that may pass). */
function* approvedFiles(files: Iterable<FileDecision>): Generator<ApprovedFile> {
  for (const f of files) {
    if (f.verdict !== 'blocked' && f.path !== null && f.digest !== null) yield { path: f.path, sha256: f.digest.sha256, blake3: f.digest.blake3, size: f.size };
  }
}

const MAX_BLOCKED_PATH = 4096; // characters of a blocked entry's path (manifest text(4096))

/** A display name cut to fit the manifest's text(4096), between characters: never inside a surrogate pair (a lone half is not canonical JSON). */
function cutName(display: string): string {
  if (display.length <= MAX_BLOCKED_PATH) return display;
  let end = MAX_BLOCKED_PATH - 3;
  const last = display.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${display.slice(0, end)}...`;
}

function blockedEntry(f: FileDecision): BlockedFile {
  const codes = [...new Set(f.reasons.map((r) => r.code))].slice(0, 16);
  return { path: cutName(f.display), reasons: codes.length > 0 ? codes : ['SCAN_ERROR'] };
}

function isBlockedEntry(f: FileDecision): boolean {
  return !(f.verdict !== 'blocked' && f.path !== null && f.digest !== null);
}

/**
 * The blocked entries sorted by path as buildStatement sorts them, from two
 * walks of the decision's files: those whose display name fits come in its
 * order already; those cut to MAX_BLOCKED_PATH come in order among
 * themselves (cutting keeps the order) but not among the others, so the two
 * are merged, equal paths in the decision's order (a stable sort's).
 */
function* blockedFiles(files: Iterable<FileDecision>): Generator<BlockedFile> {
  function* part(cut: boolean): Generator<{ entry: BlockedFile; index: number }> {
    let index = 0;
    for (const f of files) {
      index++;
      if (isBlockedEntry(f) && (f.display.length > MAX_BLOCKED_PATH) === cut) yield { entry: blockedEntry(f), index };
    }
  }
  const whole = part(false);
  const cut = part(true);
  let a = whole.next();
  let b = cut.next();
  for (;;) {
    if (a.done && b.done) return;
    // The entry of the two that a stable sort by path puts first: the smaller path, or on equal paths the earlier file.
    const takeA = b.done || (!a.done && (a.value.entry.path < b.value.entry.path || (a.value.entry.path === b.value.entry.path && a.value.index < b.value.index)));
    if (takeA && !a.done) {
      yield a.value.entry;
      a = whole.next();
    } else if (!b.done) {
      yield b.value.entry;
      b = cut.next();
    }
  }
}

export function statementHead(target: DriveTarget, input: ApprovalInput): StatementHead {
  return {
    kioskId: input.kioskId,
    keyId: input.key.keyId,
    operatorId: input.operatorId,
    issuedAt: input.now,
    validitySeconds: input.validityHours * 3600,
    scan: input.scan,
    media: target.media,
    engines: input.engines,
    allowlist: input.allowlist,
    policy: input.policy,
  };
}

/** The statement writeApproval signs, built in memory (tests compare it with the manifest written). */
export function statementFor(target: DriveTarget, input: ApprovalInput): Statement {
  return buildStatement({ ...statementHead(target, input), approved: [...approvedFiles(input.decision.files)], blocked: [...blockedFiles(input.decision.files)] });
}

/** Text lines written as they come, CRLF-terminated, into one growing buffer. */
function crlfLines(lines: Iterable<string>): Uint8Array {
  let buf = Buffer.allocUnsafe(64 * 1024);
  let end = 0;
  for (const line of lines) {
    const need = end + line.length * 3 + 2;
    if (need > buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(buf.length * 2, need));
      buf.copy(grown, 0, 0, end);
      buf = grown;
    }
    end += buf.write(line, end, 'utf8');
    end += buf.write('\r\n', end, 'latin1'); // CRLF: read on Windows HMIs
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, end);
}

/** The receipt's lines: the drive's verdict, who and what decided, every file that may pass and every blocked one. */
function* receiptLines(
  head: StatementHead, approved: () => Iterable<ApprovedFile>, blocked: () => Iterable<BlockedFile>, counts: { subjects: number; blocked: number }, verdict: string,
): Generator<string> {
  const p = buildStatement({ ...head, approved: [], blocked: [] }).predicate;
  yield 'PORTCULLIS MEDIA RECEIPT (informative: the signed manifest beside it is what counts)';
  yield '';
  yield `Verdict:      ${verdict.toUpperCase()}`;
  yield `Kiosk:        ${p.kiosk.id} (key ${p.kiosk.keyId.slice(0, 16)}...)`;
  yield `Operator:     ${p.operator?.id ?? '-'}`;
  yield `Scanned:      ${p.issuedAt}  scan ${p.scan.id}: ${p.scan.fileCount} files, ${p.scan.byteCount} bytes`;
  yield `Valid until:  ${p.expiresAt}`;
  yield `Drive:        ${p.media.filesystem} ${p.media.volumeId ?? ''} label "${p.media.label ?? ''}"`;
  yield `Engines:      ${p.engines.clamav?.version ?? 'ClamAV not run'} db ${p.engines.clamav?.databaseVersion ?? '-'}; YARA ${p.engines.yara ? `${p.engines.yara.ruleCount} rules` : 'not run'}`;
  yield '';
  yield `May pass (${counts.subjects}):`;
  for (const s of approved()) yield `  ${s.path}  (${s.size} bytes)`;
  yield '';
  yield `Blocked (${counts.blocked}):`;
  for (const b of blocked()) yield `  ${b.path}  ${b.reasons.join(', ')}`;
}

const SUBJECT_BYTES = 256; // a guess of one subject's canonical size, to size the payload's buffer

/**
 * Signs the statement and writes it with its receipt onto the drive; returns
 * the envelope's SHA-256 (to compare what is read back with) and expiry. The
 * statement is written from the decision's files as they come (the scan
 * ledger pages them in) straight into the buffer that is signed: memory holds
 * the payload's bytes and the envelope's, never the statement as objects,
 * and neither outlives this call.
 */
async function writeSigned(target: DriveTarget, input: ApprovalInput): Promise<{ written: string; expiresAt: string }> {
  const head = statementHead(target, input);
  const files = input.decision.files;
  const approved = (): Iterable<ApprovedFile> => approvedFiles(files);
  const blocked = (): Iterable<BlockedFile> => blockedFiles(files);
  const statement = writeStatementPae(head, approved, blocked, input.scan.fileCount * SUBJECT_BYTES);
  const envelope = signStatementPae(statement.pae, statement.payload, input.key);
  const receipt = crlfLines(receiptLines(head, approved, blocked, statement, input.decision.verdict));
  await target.writeManifest([{ path: MANIFEST_PATH, content: envelope }, { path: RECEIPT_PATH, content: receipt }]);
  return { written: createHash('sha256').update(envelope).digest('hex'), expiresAt: buildStatement({ ...head, approved: [], blocked: [] }).predicate.expiresAt };
}

export async function writeApproval(target: DriveTarget, input: ApprovalInput): Promise<IssuedManifest> {
  if (input.decision.verdict === 'rejected') throw new Error('writeApproval: a rejected drive gets no manifest');
  const { written, expiresAt } = await writeSigned(target, input);
  // Re-read from the drive and verify as an agent would, before saying "approved";
  // a manifest that cannot be read back is taken off the drive like one that does not verify.
  try {
    const back = await target.readBack(MANIFEST_PATH);
    const verified = verifyManifestSummary(back, { keys: [{ keyId: input.key.keyId, publicKey: input.key.publicKey }] }, input.now);
    if (createHash('sha256').update(back).digest('hex') !== written) throw new Error('the manifest read back differs from what was written');
    return { digest: verified.payloadDigest, keyId: verified.keyId, expiresAt };
  } catch (cause) {
    await target.removeManifest().catch(() => false);
    throw new DriveError('MANIFEST_WRITE_FAILED', `the manifest read back from the drive does not verify: ${(cause as Error).message}; nothing approved`, { cause });
  }
}
