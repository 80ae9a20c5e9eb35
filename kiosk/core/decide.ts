/**
 * The verdict: pure, no I/O. Given what the scan observed of every file, the
 * allowlist and the policy, decide per file `clean | allowlisted | blocked`
 * and per drive `approved | partial | rejected`. A file is clean only when
 * every required engine positively said so; anything else blocks it.
 */
import type { Allowlist, AllowlistEntry } from './allowlist.ts';
import { allowedType, controlledClass, type Policy } from './policy.ts';
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
  | 'TYPE_NOT_ALLOWED'
  | 'MACRO'
  | 'NOT_INSPECTED'
  | 'UNSAFE_NAME'
  | 'NOT_REGULAR_FILE'
  | 'SCAN_ERROR';

/** Reasons an allowlisted hash clears: policy on what a file is, never a finding about what it holds. */
export const HASH_GATED: ReadonlySet<ReasonCode> = new Set<ReasonCode>(['NOT_ALLOWLISTED', 'TYPE_NOT_ALLOWED', 'MACRO']);

/**
 * Where a file sits, for the type rules: on the drive itself, or as a member
 * of a container opened as an archive ("files": judged like a file on the
 * drive), as a document ("parts": document parts are also allowed), or for
 * its content only ("content": the type list does not apply; controlled
 * classes, blocked names and type checks do).
 */
export type TypeScope = 'drive' | 'files' | 'parts' | 'content';

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
  | 'WORK_FOLDER_FAILED'
  /** An engine found something in the drive's MBR, GPT or a volume's boot sectors (core/boot-regions.ts). */
  | 'BOOT_CODE_INFECTED'
  /** The boot sectors could not be read, were malformed or past the bounds, or no engine gave them a clean answer. */
  | 'BOOT_SECTORS_UNCHECKED';

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

export function decideFile(o: Observation, allowlist: Allowlist, policy: Policy, scope: TypeScope = 'drive'): FileDecision {
  const reasons: Reason[] = [...o.reasons];
  const entry = o.digest ? allowlist.lookup(o.digest) : null;
  if (o.digest === null && !reasons.some((r) => r.code === 'NOT_REGULAR_FILE' || r.code === 'LIMIT_EXCEEDED' || r.code === 'SCAN_ERROR')) {
    reasons.push({ code: 'SCAN_ERROR', detail: 'the file was not read in full' });
  }
  if (o.digest !== null) {
    for (const engine of requiredEngines(policy)) {
      const alreadyFlagged = reasons.some((r) => r.code !== 'UNSAFE_NAME' && r.code !== 'RISKY_TYPE' && r.code !== 'TYPE_MISMATCH' && !HASH_GATED.has(r.code));
      if (!o.cleanBy.has(engine) && !alreadyFlagged) {
        reasons.push({ code: 'SCAN_ERROR', detail: `${engine === 'clamav' ? 'ClamAV' : 'YARA'} gave no clean result for this file` });
      }
    }
  }
  const typed = o.path === null ? null : typeRule(o, o.path, policy, scope);
  if (typed?.blocked) reasons.push(typed.blocked);
  // A file not read in full is blocked already; its content kind is unknown, so no type gate is judged for it.
  if (typed?.gated && o.digest !== null) reasons.push(typed.gated);
  // An allowlisted hash clears what a file is (its type, its class, its macros), never what was found in it.
  const kept = entry ? reasons.filter((r) => !HASH_GATED.has(r.code)) : reasons;
  const verdict: FileVerdict = kept.length > 0 ? 'blocked' : entry ? 'allowlisted' : 'clean';
  return {
    path: o.path,
    display: o.display,
    size: o.size,
    digest: o.digest,
    verdict,
    reasons: kept,
    allowlistEntry: entry,
    controlledClass: typed?.controlled ?? null,
  };
}

/** The type rules for one file: a blocked name or extension, or the hash gate of a controlled or unlisted type. */
function typeRule(o: Observation, path: string, policy: Policy, scope: TypeScope): { blocked: Reason | null; gated: Reason | null; controlled: string | null } {
  const base = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  const ext = o.extensions[o.extensions.length - 1];
  let blocked: Reason | null = null;
  if (ext !== undefined && policy.types.blockedExtensions.includes(ext)) {
    blocked = { code: 'RISKY_TYPE', detail: `${ext} files are blocked on plant media by policy (types.blockedExtensions)` };
  } else if (policy.types.blockedNames.some((n) => n.toLowerCase() === base)) {
    blocked = { code: 'RISKY_TYPE', detail: `${base} is blocked on plant media by policy (types.blockedNames)` };
  }
  const klass = controlledClass(policy, path, o.extensions, o.contentKind, scope === 'parts');
  if (klass) {
    return { blocked, gated: { code: 'NOT_ALLOWLISTED', detail: `${klass.name}: this file's hash is not on the allowlist` }, controlled: klass.name };
  }
  if (scope === 'content' || allowedType(policy, o.extensions, o.contentKind, scope === 'parts')) return { blocked, gated: null, controlled: null };
  const what = ext !== undefined ? `${ext} files are` : `a file without an extension (content: ${o.contentKind ?? 'unknown'}) is`;
  return {
    blocked,
    gated: { code: 'TYPE_NOT_ALLOWED', detail: `${what} not a plant media type under this policy (types.allowed): only an allowlisted hash passes` },
    controlled: null,
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
