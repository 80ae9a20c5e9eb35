/**
 * What verify and import share: a file's result and the drive's report, the
 * records that open and close an operation in the log, the order files are
 * started in, and the check that the drive path leads to a folder.
 */
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { type Blake3Factory, type VerifiedManifest } from '../manifest/index.ts';
import type { AuditSink, DriveRef, LogDigests, LogEvent } from './audit-log.ts';
import type { Candidate, DriveCheck, DriveCheckInput } from './drive-check.ts';
import { AgentError, type DriveRefusalCode, type FileRefusalCode } from './errors.ts';
import type { ExpectedFile } from './verified-copy.ts';

export type FileOutcome = 'permitted' | 'imported' | 'skipped' | 'refused';

export interface FileResult {
  /** Path on the drive, escaped for display. */
  readonly path: string;
  readonly outcome: FileOutcome;
  readonly code: 'PERMITTED' | 'IMPORTED' | FileRefusalCode;
  readonly reason: string;
  /** Where it was written (import), escaped for display. */
  readonly destination: string | null;
  readonly digests: LogDigests | null;
}

export interface DriveReport {
  readonly mode: 'verify' | 'import';
  readonly drive: string;
  readonly approved: boolean;
  readonly code: 'APPROVED' | DriveRefusalCode;
  readonly reason: string;
  readonly manifestDigest: string | null;
  readonly keyId: string | null;
  readonly kiosk: string | null;
  readonly issuedAt: string | null;
  readonly expiresAt: string | null;
  readonly destination: string | null;
  readonly files: readonly FileResult[];
  readonly counts: { readonly permitted: number; readonly imported: number; readonly skipped: number; readonly refused: number };
}

export interface OperationInput extends DriveCheckInput {
  readonly log: AuditSink;
  readonly blake3?: Blake3Factory;
  readonly chunkBytes?: number;
  /** Test seam: called after each chunk read from a file (see verified-copy.ts). */
  readonly onChunk?: (path: string, bytesRead: number) => Promise<void> | void;
}

/** What every record of one operation shares: the log, the drive, and the manifest once it is verified. */
export interface Context {
  readonly log: AuditSink;
  readonly drive: DriveRef;
  readonly manifest: VerifiedManifest | null;
}

/** A file's log record from its result. */
export function fileEvent(ctx: Context, event: string, r: FileResult): LogEvent {
  return {
    event,
    outcome: r.outcome === 'refused' ? 'refused' : r.outcome === 'skipped' ? 'info' : 'allowed',
    code: r.code,
    reason: r.reason,
    manifestDigest: ctx.manifest?.payloadDigest ?? null,
    keyId: ctx.manifest?.keyId ?? null,
    drive: ctx.drive,
    path: r.path,
    destination: r.destination,
    digests: r.digests,
  };
}

/** The drive-level decision's record (drive.checked). */
export function logDrive(ctx: Context, check: DriveCheck): void {
  ctx.log.append({
    event: 'drive.checked',
    outcome: check.approved ? 'allowed' : 'refused',
    code: check.approved ? 'APPROVED' : check.code,
    reason: check.approved
      ? `manifest signed by ${check.manifest.keyId} (kiosk ${check.manifest.statement.predicate.kiosk.id}), valid until ${check.manifest.statement.predicate.expiresAt}; media fields matched: ${check.mediaChecked.join(', ') || 'none'}`
      : check.reason,
    manifestDigest: check.manifest?.payloadDigest ?? null,
    keyId: check.manifest?.keyId ?? null,
    drive: ctx.drive,
  });
}

/** What the manifest lists for a candidate: the size and digests its bytes must have. */
export function expectedDigests(c: Candidate): ExpectedFile {
  return { sha256: c.subject.digest.sha256, blake3: c.subject.digest.blake3, size: c.subject.annotations.size };
}

export function countResults(files: readonly FileResult[]): DriveReport['counts'] {
  const counts = { permitted: 0, imported: 0, skipped: 0, refused: 0 };
  for (const f of files) counts[f.outcome]++;
  return counts;
}

/** The report of an operation; files sorted by the caller. */
export function report(mode: DriveReport['mode'], driveDisplay: string, check: DriveCheck, files: FileResult[], destination: string | null): DriveReport {
  const m = check.manifest;
  return {
    mode,
    drive: driveDisplay,
    approved: check.approved,
    code: check.approved ? 'APPROVED' : check.code,
    reason: check.approved ? 'the manifest is genuine and current' : check.reason,
    manifestDigest: m?.payloadDigest ?? null,
    keyId: m?.keyId ?? null,
    kiosk: m?.statement.predicate.kiosk.id ?? null,
    issuedAt: m?.statement.predicate.issuedAt ?? null,
    expiresAt: m?.statement.predicate.expiresAt ?? null,
    destination,
    files,
    counts: countResults(files),
  };
}

/** Logs the operation's last record (verify.finished, import.finished) and returns the report. */
export function finish(ctx: Context, r: DriveReport): DriveReport {
  const c = r.counts;
  ctx.log.append({
    event: `${r.mode}.finished`,
    outcome: !r.approved || c.permitted + c.imported === 0 ? 'refused' : 'info',
    code: r.code,
    reason: `${c.permitted} permitted, ${c.imported} imported, ${c.skipped} skipped, ${c.refused} refused`,
    manifestDigest: r.manifestDigest,
    keyId: r.keyId,
    drive: ctx.drive,
  });
  return r;
}

export const refusedResult = (path: string, code: FileRefusalCode, reason: string, digests: LogDigests | null = null): FileResult => ({
  path, outcome: 'refused', code, reason, destination: null, digests,
});


/**
 * The order files are started in: the share of bytes started keeps in step
 * with the share of files started, taking the largest files from one end of
 * a size order and the smallest from the other. The main thread's work is
 * per file (names, records) and the stage workers' is per byte (reading,
 * hashing); in name order a drive often holds thousands of small notes in one
 * folder and big images in another, and each side would wait for the other
 * in turn. Results and the report do not depend on this order.
 */
export function bytesAndFilesInStep<T>(items: readonly T[], size: (item: T) => number): T[] {
  const sorted = items.map((item, index) => ({ item, index, bytes: size(item) }))
    .sort((a, b) => b.bytes - a.bytes || a.index - b.index);
  const total = sorted.reduce((sum, x) => sum + x.bytes, 0);
  const out: T[] = [];
  let big = 0;
  let small = sorted.length - 1;
  let bytes = 0;
  while (big <= small) {
    const takeBig = bytes * sorted.length <= out.length * total; // bytes started / total <= files started / count
    const next = takeBig ? sorted[big++]! : sorted[small--]!;
    bytes += next.bytes;
    out.push(next.item);
  }
  return out;
}

/**
 * The drive path must lead to a folder: a path that does not exist (a typo,
 * a drive pulled before it was read) is DRIVE_NOT_FOUND, not a drive without
 * a manifest (NO_MANIFEST). What it leads to is checked further by the walk.
 */
export async function checkDrivePath(drive: string): Promise<void> {
  let stats: Stats;
  try {
    stats = await stat(drive);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? (cause as Error).message})`;
    throw new AgentError('DRIVE_NOT_FOUND', `${drive}: the drive path ${what}: check the drive letter or mount folder, and that the drive is still inserted`, { cause });
  }
  if (!stats.isDirectory()) throw new AgentError('DRIVE_NOT_FOUND', `${drive}: the drive path is not a folder: name the drive's root (E:\\ or its mount folder)`);
}


/** Exit-code class of a report (docs/agent.md "Exit codes"). */
export function reportClass(r: DriveReport): 'all' | 'some' | 'none' {
  if (!r.approved) return 'none';
  const passed = r.counts.permitted + r.counts.imported;
  const notPassed = r.counts.refused + r.counts.skipped;
  if (passed === 0) return 'none';
  return notPassed === 0 ? 'all' : 'some';
}
