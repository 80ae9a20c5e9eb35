/**
 * The drive-level decision: read the manifest from the drive, verify it
 * against the trust store (manifest/verify.ts), apply local policy (maximum
 * age, media binding), walk the drive and sort every entry into "candidate"
 * (listed, a regular file of the listed size: it still has to prove its bytes
 * while they are read) or "refused" with a code. No bytes of any file are
 * read here: the per-file proof happens in verified-copy.ts, in the same pass
 * that copies.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import {
  entryKindOf, LIMITS, MANIFEST_FOLDER, MANIFEST_PATH, ManifestError, NAME_PROBLEM_TEXT, RECEIPT_PATH, verifyManifest,
  type NameProblem, type Statement, type Subject, type VerifiedManifest,
} from '../manifest/index.ts';
import { checkMediaBinding, MEDIA_ADVICE, type DriveIdentity } from './drive-identity.ts';
import { DEFAULT_WALK_LIMITS, walkDrive, type DriveEntry, type WalkLimits } from './drive-walk.ts';
import { DESTINATION_PROBLEM_TEXT, destinationNameProblems, type DestinationProblem } from './destination-path.ts';
import type { DriveRefusalCode, FileRefusalCode } from './errors.ts';
import { trustAnchorsOf, type TrustStore } from './trust-store.ts';

export interface Candidate {
  readonly subject: Subject;
  readonly entry: DriveEntry;
}

export interface FileRefusal {
  /** The path on the drive (or in the manifest for FILE_MISSING), escaped for display. */
  readonly path: string;
  readonly code: FileRefusalCode;
  readonly reason: string;
  readonly subject: Subject | null;
}

export type DriveCheck =
  | {
      readonly approved: false;
      readonly code: DriveRefusalCode;
      readonly reason: string;
      readonly manifest: VerifiedManifest | null;
    }
  | {
      readonly approved: true;
      readonly manifest: VerifiedManifest;
      /** Which media fields were compared with the drive. */
      readonly mediaChecked: readonly string[];
      readonly candidates: readonly Candidate[];
      readonly refused: readonly FileRefusal[];
      readonly rootDev: number;
    };

export interface DriveCheckInput {
  /** The drive's root folder (E:\ or a mount folder). */
  readonly drive: string;
  readonly trust: TrustStore;
  readonly now: Date;
  /** The drive's identity, or null when it could not be read. */
  readonly identity: DriveIdentity | null;
  readonly limits?: WalkLimits;
  readonly signal?: AbortSignal;
  /** Called once the manifest is genuine, current and bound to this drive, before the drive is walked. */
  readonly onVerified?: (manifest: VerifiedManifest) => void;
}

export type ManifestRead =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly code: 'NO_MANIFEST' | 'MANIFEST_UNREADABLE'; readonly reason: string };

/**
 * O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a named pipe
 * swapped in after the lstat is opened without waiting for a writer (an open
 * for reading blocks until one comes, and a synchronous one holds the thread,
 * signal handlers included), then refused by fstat. Neither exists on Windows,
 * whose FAT and exFAT drives hold neither.
 */
export const DRIVE_OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

const NO_MANIFEST_REASON = 'the drive carries no Portcullis manifest: take it to the kiosk first';

/**
 * Reads the envelope without following symlinks, at most one byte past the
 * size limit: the folder and the file are lstat-ed first (only a real folder
 * and a regular file are opened), the file is opened without blocking and
 * checked again by fstat (the regular file on the drive's device).
 */
export function readDriveManifest(drive: string): ManifestRead {
  const folder = join(drive, MANIFEST_FOLDER);
  let folderDev: number;
  try {
    const stats = lstatSync(folder);
    if (!stats.isDirectory()) return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `${MANIFEST_FOLDER} on the drive is not a folder` };
    folderDev = stats.dev;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, code: 'NO_MANIFEST', reason: NO_MANIFEST_REASON };
    return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `cannot read ${MANIFEST_FOLDER} (${(error as Error).message})` };
  }
  const path = join(drive, MANIFEST_PATH);
  try {
    const stats = lstatSync(path);
    if (!stats.isFile()) return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `the manifest is not a regular file (a ${KIND_TEXT[entryKindOf(stats)]}): rescan at the kiosk` };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, code: 'NO_MANIFEST', reason: NO_MANIFEST_REASON };
    return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `cannot read the manifest (${(error as Error).message})` };
  }
  let fd: number;
  try {
    fd = openSync(path, DRIVE_OPEN_FLAGS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, code: 'NO_MANIFEST', reason: NO_MANIFEST_REASON };
    return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `cannot open the manifest (${(error as Error).message})` };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { ok: false, code: 'MANIFEST_UNREADABLE', reason: 'the manifest is not a regular file' };
    if (stats.dev !== folderDev) return { ok: false, code: 'MANIFEST_UNREADABLE', reason: 'the manifest opened is not on the drive (a folder was swapped while it was read)' };
    const limit = LIMITS.maxEnvelopeBytes + 1; // one byte more lets verifyManifest say MANIFEST_TOO_LARGE
    // One buffer of the size fstat gives and one byte more (to see a file that grew), grown only if it did: no chunks to join.
    let bytes = Buffer.allocUnsafe(Math.min(limit, stats.size + 1));
    let total = 0;
    for (;;) {
      if (total === bytes.length) {
        if (total === limit) break;
        const grown = Buffer.allocUnsafe(Math.min(limit, total * 2));
        bytes.copy(grown, 0, 0, total);
        bytes = grown;
      }
      const n = readSync(fd, bytes, total, bytes.length - total, null);
      if (n === 0) break;
      total += n;
    }
    return { ok: true, bytes: bytes.subarray(0, total) };
  } catch (error) {
    return { ok: false, code: 'MANIFEST_UNREADABLE', reason: `reading the manifest failed (${(error as Error).message})` };
  } finally {
    closeSync(fd);
  }
}

const MANIFEST_FILES = new Set([MANIFEST_FOLDER, MANIFEST_PATH, RECEIPT_PATH].map((p) => p.toLowerCase()));

function problemText(problems: readonly (NameProblem | DestinationProblem)[]): string {
  return problems.map((p) => (p in NAME_PROBLEM_TEXT ? NAME_PROBLEM_TEXT[p as NameProblem] : DESTINATION_PROBLEM_TEXT[p as Exclude<DestinationProblem, NameProblem>])).join('; ');
}

const KIND_TEXT: Record<DriveEntry['kind'], string> = {
  file: 'file', directory: 'folder', symlink: 'symbolic link', device: 'device', fifo: 'named pipe', socket: 'socket', other: 'special file',
};

/**
 * Sorts the drive's entries against a verified statement. Pure: the walk's
 * entries and the statement come in, candidates and refusals go out.
 */
export function planFiles(statement: Statement, entries: readonly DriveEntry[]): { candidates: Candidate[]; refused: FileRefusal[] } {
  const subjects = new Map(statement.subject.map((s) => [s.name, s]));
  const blocked = new Map(statement.predicate.blocked.map((b) => [b.path, b.reasons]));
  const matched = new Set<string>();
  const candidates: Candidate[] = [];
  const refused: FileRefusal[] = [];
  for (const entry of entries) {
    if (entry.inManifestFolder) {
      if (entry.kind === 'directory' || (entry.path !== null && MANIFEST_FILES.has(entry.path.toLowerCase()))) continue;
      refused.push({ path: entry.display, code: 'FILE_UNLISTED', reason: `a ${KIND_TEXT[entry.kind]} inside ${MANIFEST_FOLDER}, which holds only the manifest`, subject: null });
      continue;
    }
    const subject = entry.path === null ? undefined : subjects.get(entry.path);
    if (subject) {
      matched.add(subject.name);
      if (entry.kind !== 'file') {
        refused.push({ path: entry.display, code: 'FILE_NOT_REGULAR', reason: `listed as a file, but on the drive it is a ${KIND_TEXT[entry.kind]}`, subject });
      } else if (entry.size !== subject.annotations.size) {
        refused.push({ path: entry.display, code: 'FILE_SIZE_MISMATCH', reason: `the manifest says ${subject.annotations.size} bytes, the drive has ${entry.size}: the file changed after the kiosk scanned it`, subject });
      } else {
        const problems = destinationNameProblems(subject.name);
        if (problems.length > 0) refused.push({ path: entry.display, code: 'UNSAFE_NAME', reason: problemText(problems), subject });
        else candidates.push({ subject, entry });
      }
      continue;
    }
    if (entry.kind === 'directory') continue; // folders are not transferred; their files are judged one by one
    const blockedReasons = blocked.get(entry.display);
    if (blockedReasons) {
      refused.push({ path: entry.display, code: 'BLOCKED_AT_KIOSK', reason: `the kiosk blocked it (${blockedReasons.join(', ')})`, subject: null });
      continue;
    }
    const problems = entry.path === null ? (['MALFORMED_UNICODE'] as const) : destinationNameProblems(entry.path);
    if (entry.path === null) {
      refused.push({ path: entry.display, code: 'UNSAFE_NAME', reason: 'the name is not valid UTF-8', subject: null });
    } else if (problems.length > 0) {
      refused.push({ path: entry.display, code: 'UNSAFE_NAME', reason: `${problemText(problems)} (and it is not in the manifest)`, subject: null });
    } else {
      const what = entry.kind === 'file' ? '' : ` (a ${KIND_TEXT[entry.kind]})`;
      refused.push({ path: entry.display, code: 'FILE_UNLISTED', reason: `on the drive but not in the manifest${what}: it was added or hidden after the kiosk scan`, subject: null });
    }
  }
  for (const subject of statement.subject) {
    if (!matched.has(subject.name)) {
      refused.push({ path: subject.name, code: 'FILE_MISSING', reason: 'listed in the manifest but not on the drive', subject });
    }
  }
  refused.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  candidates.sort((a, b) => (a.subject.name < b.subject.name ? -1 : a.subject.name > b.subject.name ? 1 : 0));
  return { candidates, refused };
}

/**
 * The drive's manifest read and verified. The envelope's bytes live only in
 * this call: a large manifest's buffer is not kept while the drive is walked.
 */
function readAndVerify(input: DriveCheckInput): { ok: true; manifest: VerifiedManifest } | { ok: false; refusal: DriveCheck } {
  const read = readDriveManifest(input.drive);
  if (!read.ok) return { ok: false, refusal: { approved: false, code: read.code, reason: read.reason, manifest: null } };
  try {
    return { ok: true, manifest: verifyManifest(read.bytes, trustAnchorsOf(input.trust), input.now) };
  } catch (error) {
    if (error instanceof ManifestError) return { ok: false, refusal: { approved: false, code: error.code, reason: error.message, manifest: null } };
    throw error;
  }
}

/** The whole drive-level check; never throws for anything the drive controls. */
export async function checkDrive(input: DriveCheckInput): Promise<DriveCheck> {
  const verified = readAndVerify(input);
  if (!verified.ok) return verified.refusal;
  const manifest = verified.manifest;

  // Local policy: an HMI may accept a shorter approval window than the kiosk granted.
  const { predicate } = manifest.statement;
  const ageMs = input.now.getTime() - Date.parse(predicate.issuedAt);
  const maxAgeMs = input.trust.policy.maxManifestAgeHours * 3600 * 1000;
  if (ageMs > maxAgeMs) {
    const hours = Math.floor(ageMs / 3_600_000);
    return {
      approved: false,
      code: 'MANIFEST_TOO_OLD',
      reason: `issued at ${predicate.issuedAt}, ${hours} hours ago; this HMI accepts manifests up to ${input.trust.policy.maxManifestAgeHours} hours old: rescan at the kiosk`,
      manifest,
    };
  }

  const media = checkMediaBinding(predicate.media, input.identity, input.trust.policy.requireMediaBinding);
  if (!media.ok) return { approved: false, code: 'MEDIA_MISMATCH', reason: `${media.reason}: ${MEDIA_ADVICE[media.problem]}`, manifest };

  input.onVerified?.(manifest);
  const walk = await walkDrive(input.drive, input.limits ?? DEFAULT_WALK_LIMITS, input.signal);
  if (!walk.ok) return { approved: false, code: walk.code, reason: walk.reason, manifest };

  const plan = planFiles(manifest.statement, walk.entries);
  return { approved: true, manifest, mediaChecked: media.checked, candidates: plan.candidates, refused: plan.refused, rootDev: walk.rootDev };
}
