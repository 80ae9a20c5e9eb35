/**
 * Turns an approved or partial scan into a signed manifest on the drive:
 * subjects are exactly the files that may pass, blocked files go into the
 * predicate with their reason codes, a human-readable receipt goes beside it.
 * The kiosk re-reads what it wrote and verifies it before reporting success.
 */
import { MANIFEST_PATH, RECEIPT_PATH, signManifest, verifyManifest, type Predicate, type SigningKey, type Statement } from '../../manifest/index.ts';
import { buildStatement, type ApprovedFile } from '../core/build-statement.ts';
import type { Decision } from '../core/decide.ts';
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
  readonly statement: Statement;
}

export function statementFor(target: DriveTarget, input: ApprovalInput): Statement {
  const approved: ApprovedFile[] = [];
  const blocked: Array<Predicate['blocked'][number]> = [];
  for (const f of input.decision.files) {
    if (f.verdict !== 'blocked' && f.path !== null && f.digest !== null) {
      approved.push({ path: f.path, sha256: f.digest.sha256, blake3: f.digest.blake3, size: f.size });
    } else {
      const codes = [...new Set(f.reasons.map((r) => r.code))].slice(0, 16);
      blocked.push({ path: f.display.length <= 4096 ? f.display : `${f.display.slice(0, 4093)}...`, reasons: codes.length > 0 ? codes : ['SCAN_ERROR'] });
    }
  }
  return buildStatement({
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
    approved,
    blocked,
  });
}

export function renderReceipt(statement: Statement, verdict: string): string {
  const p = statement.predicate;
  const lines = [
    'PORTCULLIS MEDIA RECEIPT (informative: the signed manifest beside it is what counts)',
    '',
    `Verdict:      ${verdict.toUpperCase()}`,
    `Kiosk:        ${p.kiosk.id} (key ${p.kiosk.keyId.slice(0, 16)}...)`,
    `Operator:     ${p.operator?.id ?? '-'}`,
    `Scanned:      ${p.issuedAt}  scan ${p.scan.id}: ${p.scan.fileCount} files, ${p.scan.byteCount} bytes`,
    `Valid until:  ${p.expiresAt}`,
    `Drive:        ${p.media.filesystem} ${p.media.volumeId ?? ''} label "${p.media.label ?? ''}"`,
    `Engines:      ${p.engines.clamav?.version ?? 'ClamAV not run'} db ${p.engines.clamav?.databaseVersion ?? '-'}; YARA ${p.engines.yara ? `${p.engines.yara.ruleCount} rules` : 'not run'}`,
    '',
    `May pass (${statement.subject.length}):`,
    ...statement.subject.map((s) => `  ${s.name}  (${s.annotations.size} bytes)`),
    '',
    `Blocked (${p.blocked.length}):`,
    ...p.blocked.map((b) => `  ${b.path}  ${b.reasons.join(', ')}`),
    '',
  ];
  return lines.join('\r\n'); // CRLF: read on Windows HMIs
}

export async function writeApproval(target: DriveTarget, input: ApprovalInput): Promise<IssuedManifest> {
  if (input.decision.verdict === 'rejected') throw new Error('writeApproval: a rejected drive gets no manifest');
  const statement = statementFor(target, input);
  const envelope = signManifest(statement, input.key);
  const receipt = new TextEncoder().encode(renderReceipt(statement, input.decision.verdict));
  await target.writeManifest([{ path: MANIFEST_PATH, content: envelope }, { path: RECEIPT_PATH, content: receipt }]);
  // Re-read from the drive and verify as an agent would, before saying "approved";
  // a manifest that cannot be read back is taken off the drive like one that does not verify.
  try {
    const back = await target.readBack(MANIFEST_PATH);
    const verified = verifyManifest(back, { keys: [{ keyId: input.key.keyId, publicKey: input.key.publicKey }] }, input.now);
    if (!Buffer.from(back).equals(Buffer.from(envelope))) throw new Error('the manifest read back differs from what was written');
    return { digest: verified.payloadDigest, keyId: verified.keyId, expiresAt: statement.predicate.expiresAt, statement };
  } catch (cause) {
    await target.removeManifest().catch(() => false);
    throw new DriveError('MANIFEST_WRITE_FAILED', `the manifest read back from the drive does not verify: ${(cause as Error).message}; nothing approved`, { cause });
  }
}
