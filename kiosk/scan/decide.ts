/**
 * The verdict: pure, no I/O. Given what the scan observed of every file, the
 * allowlist and the policy, decide per file `clean | allowlisted | blocked`
 * and per drive `approved | partial | rejected`. A file is clean only when
 * every required engine positively said so; anything else blocks it.
 */
import type { Allowlist, AllowlistEntry } from '../allowlist.ts';
import { controlledClass, type Policy } from '../policy.ts';
import type { ContentKind } from './file-type.ts';

/** Why a file may not pass; stable codes (docs/scanning.md). */
export type ReasonCode =
  | 'MALWARE'
  | 'YARA_MATCH'
  | 'ENCRYPTED'
  | 'LIMIT_EXCEEDED'
  | 'TYPE_MISMATCH'
  | 'RISKY_TYPE'
  | 'NOT_ALLOWLISTED'
  | 'UNSAFE_NAME'
  | 'NOT_REGULAR_FILE'
  | 'SCAN_ERROR';

export interface Reason {
  readonly code: ReasonCode;
  readonly detail: string;
}

/** Why a whole drive is refused. */
export type DriveReasonCode =
  | 'SCANNER_UNAVAILABLE'
  | 'SCANNER_TIMEOUT'
  | 'SCANNER_PROTOCOL'
  | 'SCANNER_ERROR'
  | 'ENGINE_NOT_READY'
  | 'LIMIT_EXCEEDED'
  | 'WALK_ERROR'
  | 'NO_FILES'
  | 'SCAN_ABORTED'
  | 'DEVICE_REFUSED'
  | 'MEDIA_FULL'
  | 'MANIFEST_WRITE_FAILED'
  | 'WORK_FOLDER_FAILED';

export interface DriveReason {
  readonly code: DriveReasonCode;
  readonly detail: string;
}

export type EngineName = 'clamav' | 'yara';

/** What the scan observed of one entry on the drive. */
export interface Observation {
  readonly path: string | null; // decoded relative path; null when the name is not UTF-8
  readonly display: string; // escaped, safe to show
  readonly size: number; // bytes
  readonly digest: { sha256: string; blake3: string } | null; // null when the file was not read in full
  readonly extensions: readonly string[];
  readonly contentKind: ContentKind | null;
  /** Reasons found while walking and reading (names, types, engines, limits). */
  readonly reasons: readonly Reason[];
  /** Engines that returned a clean answer for this file's bytes. */
  readonly cleanBy: ReadonlySet<EngineName>;
}

export type FileVerdict = 'clean' | 'allowlisted' | 'blocked';

export interface FileDecision {
  readonly path: string | null;
  readonly display: string;
  readonly size: number;
  readonly digest: { sha256: string; blake3: string } | null;
  readonly verdict: FileVerdict;
  readonly reasons: readonly Reason[];
  readonly allowlistEntry: AllowlistEntry | null;
  readonly controlledClass: string | null;
}

export type DriveVerdict = 'approved' | 'partial' | 'rejected';

export interface Decision {
  readonly verdict: DriveVerdict;
  /**
   * Every file in display order. A scan's decision reads them from its ledger
   * (scratch SQLite) a page at a time, so iterate; never collect them all
   * unless the drive is known to be small.
   */
  readonly files: Iterable<FileDecision>;
  readonly driveReasons: readonly DriveReason[];
}

/** A decision held in memory (tests, small inputs). */
export interface ListedDecision extends Decision {
  readonly files: readonly FileDecision[];
}

export function requiredEngines(policy: Policy): EngineName[] {
  const engines: EngineName[] = [];
  if (policy.clamav.required) engines.push('clamav');
  if (policy.yara.required) engines.push('yara');
  return engines;
}

export function decideFile(o: Observation, allowlist: Allowlist, policy: Policy): FileDecision {
  const reasons: Reason[] = [...o.reasons];
  const klass = o.path === null ? null : controlledClass(policy, o.path, o.extensions, o.contentKind);
  const entry = o.digest ? allowlist.lookup(o.digest) : null;
  if (o.digest === null && !reasons.some((r) => r.code === 'NOT_REGULAR_FILE' || r.code === 'LIMIT_EXCEEDED' || r.code === 'SCAN_ERROR')) {
    reasons.push({ code: 'SCAN_ERROR', detail: 'the file was not read in full' });
  }
  if (o.digest !== null) {
    for (const engine of requiredEngines(policy)) {
      const alreadyFlagged = reasons.some((r) => r.code !== 'UNSAFE_NAME' && r.code !== 'RISKY_TYPE' && r.code !== 'TYPE_MISMATCH');
      if (!o.cleanBy.has(engine) && !alreadyFlagged) {
        reasons.push({ code: 'SCAN_ERROR', detail: `${engine === 'clamav' ? 'ClamAV' : 'YARA'} gave no clean result for this file` });
      }
    }
  }
  if (klass && !entry) {
    reasons.push({ code: 'NOT_ALLOWLISTED', detail: `${klass.name}: this file's hash is not on the allowlist` });
  }
  const verdict: FileVerdict = reasons.length > 0 ? 'blocked' : entry ? 'allowlisted' : 'clean';
  return {
    path: o.path,
    display: o.display,
    size: o.size,
    digest: o.digest,
    verdict,
    reasons,
    allowlistEntry: entry,
    controlledClass: klass?.name ?? null,
  };
}

/** Drive reasons that mean the engines cannot be trusted for this scan. */
export const ENGINE_FAILURES: ReadonlySet<DriveReasonCode> = new Set(['SCANNER_UNAVAILABLE', 'SCANNER_TIMEOUT', 'SCANNER_PROTOCOL', 'SCANNER_ERROR', 'ENGINE_NOT_READY', 'SCAN_ABORTED']);

/** The files, with every one that would pass blocked instead (lazy: each iteration maps afresh). */
export function blockPassing(files: Iterable<FileDecision>, detail: string): Iterable<FileDecision> {
  return {
    *[Symbol.iterator]() {
      for (const f of files) {
        yield f.verdict === 'blocked' ? f : { ...f, verdict: 'blocked' as const, allowlistEntry: null, reasons: [{ code: 'SCAN_ERROR' as const, detail }] };
      }
    },
  };
}

/**
 * The drive's verdict from its files' decisions, counted as they were made,
 * and the drive reasons. An engine that failed during the scan (a crash may be
 * a hostile file's doing) makes its earlier clean answers worthless: nothing
 * on the drive is then reported clean.
 */
export function settleDrive(files: Iterable<FileDecision>, counts: { readonly files: number; readonly passing: number }, driveReasons: readonly DriveReason[]): Decision {
  const reasons = [...driveReasons];
  let passing = counts.passing;
  let settled = files;
  const engineFailure = reasons.find((r) => ENGINE_FAILURES.has(r.code));
  if (engineFailure) {
    settled = blockPassing(files, `not approved: the scan failed (${engineFailure.code})`);
    passing = 0;
  }
  if (reasons.length === 0 && passing === 0) {
    reasons.push({ code: 'NO_FILES', detail: counts.files === 0 ? 'the drive holds no files' : 'no file on the drive may pass' });
  }
  const verdict: DriveVerdict = reasons.length > 0 ? 'rejected' : passing === counts.files ? 'approved' : 'partial';
  return { verdict, files: settled, driveReasons: reasons };
}

export function decide(observations: readonly Observation[], allowlist: Allowlist, policy: Policy, driveReasons: readonly DriveReason[]): ListedDecision {
  const files = observations.map((o) => decideFile(o, allowlist, policy));
  const passing = files.filter((f) => f.verdict !== 'blocked').length;
  const settled = settleDrive(files, { files: files.length, passing }, driveReasons);
  return { ...settled, files: [...settled.files] };
}
