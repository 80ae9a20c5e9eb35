/**
 * What the person at the HMI is told, in plain words, without admin rights
 * and without reading the log: the service writes into a status folder that
 * users may read (install.ps1 and the MSI set its ACL: SYSTEM and
 * Administrators write, Users read) and that a per-user helper
 * (agent/windows/status-tray.ps1) shows as notifications:
 *
 *  - status.json (for the helper) and status.txt (for a person): the one
 *    current state: checking a drive (do not remove it), importing with
 *    progress, done, refused; replaced atomically, progress at most once a
 *    second;
 *  - one report per drive, reports/YYYYMMDD-HHMMSS-<drive>.txt, and a copy as
 *    latest.txt: every file's outcome, the refused ones with their reason in
 *    plain words and their code. The newest MAX_REPORTS are kept.
 *
 * Text from the drive (labels, names) is escaped as everywhere else.
 * Writing status is best effort: a status folder that cannot be written
 * never stops or changes an import (the log is the record).
 */
import { mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { escapeForDisplay, type ManifestErrorCode } from '../manifest/index.ts';
import { writeFileAtomic } from './atomic-file.ts';
import type { DriveReport, FileResult } from './drive-report.ts';
import { DRIVE_CODE_ADVICE, type DriveRefusalCode, type FileRefusalCode } from './errors.ts';

/** Reports kept in the status folder's reports/ (the oldest go first). */
export const MAX_REPORTS = 200;
/** The shortest time between two progress writes. */
export const PROGRESS_EVERY_MS = 1000; // ms

/** Why a file stayed out, for the person at the HMI. */
export const FILE_REASON_PLAIN: Record<FileRefusalCode, string> = {
  FILE_UNLISTED: 'not approved at the kiosk (added to the drive after the scan, or never scanned)',
  FILE_HASH_MISMATCH: 'changed since the kiosk checked it',
  FILE_SIZE_MISMATCH: 'changed size since the kiosk checked it',
  FILE_MISSING: 'approved at the kiosk but no longer on the drive',
  FILE_NOT_REGULAR: 'not an ordinary file any more (a link, folder or device)',
  FILE_UNREADABLE: 'could not be read from the drive',
  BLOCKED_AT_KIOSK: 'blocked by the kiosk',
  UNSAFE_NAME: 'has a name that is not safe on Windows',
  DESTINATION_UNSAFE: 'cannot be placed safely in the inbox (path too long or leaves the inbox)',
  DESTINATION_CLASH: 'a file of the same name is already in the inbox',
  COPY_FAILED: 'copying it failed; nothing partial was left',
  ABORTED: 'not copied: the drive was removed or the service stopped',
};

const MANIFEST_PLAIN: Record<ManifestErrorCode, string> = {
  MANIFEST_TOO_LARGE: 'its approval file is implausibly large: do not use this drive',
  ENVELOPE_INVALID: 'its approval file is damaged: rescan at the kiosk',
  PAYLOAD_TYPE_UNSUPPORTED: 'its approval file is of an unknown kind: rescan at the kiosk',
  PAYLOAD_NOT_CANONICAL: 'its approval file is damaged: rescan at the kiosk',
  KEY_UNTRUSTED: 'it was approved by a kiosk this HMI does not trust',
  KEY_REVOKED: 'it was approved by a kiosk whose key was withdrawn: hand it to security staff',
  SIGNATURE_INVALID: 'its approval was changed after the kiosk signed it: hand it to security staff',
  SIGNER_MISMATCH: 'its approval names another kiosk than the one that signed it: hand it to security staff',
  MANIFEST_VERSION: 'its approval is of a version this agent cannot read: rescan or update the agent',
  MANIFEST_SCHEMA: 'its approval file is malformed: rescan at the kiosk',
  SUBJECT_UNSAFE: 'its approval lists an unsafe file name: rescan at the kiosk',
  MANIFEST_NOT_YET_VALID: 'its approval is dated in the future: check this HMI\'s clock',
  MANIFEST_EXPIRED: 'its approval has expired: rescan at the kiosk',
  KEY_INVALID: 'a kiosk key is unreadable: tell the administrator',
};

/** Why a whole drive was refused, for the person at the HMI. */
export function driveReasonPlain(code: DriveRefusalCode): string {
  if (code in DRIVE_CODE_ADVICE) return DRIVE_CODE_ADVICE[code as keyof typeof DRIVE_CODE_ADVICE];
  return MANIFEST_PLAIN[code as ManifestErrorCode] ?? 'it cannot be used here';
}

export interface DriveDescription {
  /** Where the drive is (E:\ or a mount folder). */
  readonly mount: string;
  readonly label: string | null;
}

/** "E:\ (LINE3)", escaped. */
export function driveName(drive: DriveDescription): string {
  return escapeForDisplay(drive.label ? `${drive.mount} (${drive.label})` : drive.mount);
}

export interface Progress {
  readonly filesDone: number;
  readonly filesTotal: number;
  readonly bytesDone: number; // bytes
  readonly bytesTotal: number; // bytes
}

export type OperatorState = 'checking' | 'importing' | 'done' | 'partial' | 'refused' | 'error';

/** status.json: what the per-user helper reads. */
export interface OperatorStatus {
  readonly formatVersion: 1;
  readonly state: OperatorState;
  /** ISO 8601 UTC. */
  readonly time: string;
  readonly drive: string;
  /** One line in plain words. */
  readonly text: string;
  readonly progress: Progress | null;
  /** The drive's report (a file in reports/), once there is one. */
  readonly report: string | null;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const size = (bytes: number): string => (bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${(bytes / MIB).toFixed(1)} MiB`);

export function progressText(p: Progress): string {
  return `checked ${p.filesDone} of ${p.filesTotal} files (${size(p.bytesDone)} of ${size(p.bytesTotal)})`;
}

const REFUSED_OUTCOMES = new Set(['refused', 'skipped']);

/** The report's outcome in one word for the state, and its summary in plain words. */
export function summarize(report: DriveReport, drive: string): { state: OperatorState; text: string } {
  if (!report.approved) return { state: 'refused', text: `Drive ${drive} refused: ${driveReasonPlain(report.code as DriveRefusalCode)}. Nothing was copied. You may remove the drive.` };
  const c = report.counts;
  const kept = report.files.filter((f) => REFUSED_OUTCOMES.has(f.outcome));
  const notCopied = c.refused + c.skipped;
  const where = report.destination ?? 'the inbox';
  const named = kept.slice(0, 3).map((f) => `${f.path} (${plainReason(f)})`);
  const refusedText = notCopied === 0 ? '' : ` ${notCopied} not copied${named.length > 0 ? `: ${named.join('; ')}${notCopied > named.length ? `; and ${notCopied - named.length} more` : ''}` : ''}.`;
  if (c.imported === 0) return { state: 'refused', text: `Drive ${drive}: nothing was copied.${refusedText} You may remove the drive.` };
  return {
    state: notCopied === 0 ? 'done' : 'partial',
    text: `Drive ${drive}: ${c.imported} file(s) checked and copied to ${where}.${refusedText} You may remove the drive.`,
  };
}

export function plainReason(f: FileResult): string {
  return f.code in FILE_REASON_PLAIN ? FILE_REASON_PLAIN[f.code as FileRefusalCode] : f.reason;
}

/** The per-file report a person reads: plain words first, the code for staff after. */
export function reportText(report: DriveReport, drive: string, time: Date): string {
  const { text } = summarize(report, drive);
  const lines = [`Portcullis import report, ${time.toISOString()}`, text, ''];
  if (report.approved) {
    lines.push(`Approved by kiosk ${escapeForDisplay(report.kiosk ?? '?')} at ${report.issuedAt ?? '?'}; manifest ${report.manifestDigest ?? '?'}.`, '');
    for (const f of report.files) {
      if (f.outcome === 'imported') lines.push(`copied      ${f.path}${f.destination && f.destination !== f.path ? ` -> ${f.destination}` : ''}`);
      else lines.push(`NOT COPIED  ${f.path}: ${plainReason(f)} (${f.code})`);
    }
  } else {
    lines.push(`Code for security staff: ${report.code}.`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** A file name part from a drive's name: letters, digits, - and _ only. */
function fileNamePart(drive: DriveDescription): string {
  const raw = `${drive.mount.replace(/[:\\/]+$/u, '')}-${drive.label ?? ''}`;
  return raw.replace(/[^A-Za-z0-9_-]+/gu, '_').replace(/^_+|_+$/gu, '').slice(0, 40) || 'drive';
}

/** One level only (a recursive mkdir spins forever on a path under /proc); the folder above must exist. */
function makeFolder(folder: string): void {
  try {
    mkdirSync(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

export interface StatusFolderOptions {
  readonly folder: string;
  readonly clock?: () => Date;
  /** Where a status write that failed is reported (the service's stdout). */
  readonly say?: (line: string) => void;
}

/** The status folder of one HMI. Every method is best effort and never throws. */
export class StatusFolder {
  private readonly folder: string;
  private readonly clock: () => Date;
  private readonly say: (line: string) => void;
  /** performance.now() of the last progress written; none yet: the first is always written. */
  private lastProgress = Number.NEGATIVE_INFINITY;

  constructor(options: StatusFolderOptions) {
    this.folder = options.folder;
    this.clock = options.clock ?? (() => new Date());
    this.say = options.say ?? (() => undefined);
  }

  checking(drive: DriveDescription): void {
    this.lastProgress = Number.NEGATIVE_INFINITY;
    this.write({ state: 'checking', drive: driveName(drive), text: `Checking drive ${driveName(drive)}: do not remove it until the result appears.`, progress: null, report: null });
  }

  /** At most once every PROGRESS_EVERY_MS, except the last file. */
  progress(drive: DriveDescription, p: Progress): void {
    const now = performance.now();
    if (p.filesDone < p.filesTotal && now - this.lastProgress < PROGRESS_EVERY_MS) return;
    this.lastProgress = now;
    this.write({ state: 'importing', drive: driveName(drive), text: `Importing drive ${driveName(drive)}: ${progressText(p)}. Do not remove it.`, progress: p, report: null });
  }

  /** Writes the drive's report and the final state; returns the report's path, or null when it could not be written. */
  finished(drive: DriveDescription, report: DriveReport): string | null {
    const time = this.clock();
    const { state, text } = summarize(report, driveName(drive));
    let path: string | null = null;
    try {
      const reports = join(this.folder, 'reports');
      makeFolder(this.folder);
      makeFolder(reports);
      const stamp = time.toISOString().replace(/[-:]/gu, '').replace('T', '-').slice(0, 15);
      const target = join(reports, `${stamp}-${fileNamePart(drive)}.txt`);
      const body = reportText(report, driveName(drive), time);
      writeFileAtomic(target, body, 0o644);
      writeFileAtomic(join(this.folder, 'latest.txt'), body, 0o644);
      path = target;
      this.prune(reports);
    } catch (error) {
      this.say(`portcullis-agent: the drive report could not be written to ${this.folder} (${(error as Error).message}); the log has every decision`);
    }
    this.write({ state, drive: driveName(drive), text, progress: null, report: path });
    return path;
  }

  failed(drive: DriveDescription, code: string): void {
    this.write({ state: 'error', drive: driveName(drive), text: `Drive ${driveName(drive)} was not processed (${code}): nothing was copied. Call security staff.`, progress: null, report: null });
  }

  private write(status: Omit<OperatorStatus, 'formatVersion' | 'time'>): void {
    const full: OperatorStatus = { formatVersion: 1, time: this.clock().toISOString(), ...status };
    try {
      makeFolder(this.folder);
      writeFileAtomic(join(this.folder, 'status.json'), `${JSON.stringify(full)}\n`, 0o644);
      writeFileAtomic(join(this.folder, 'status.txt'), `${full.time}  ${full.text}\r\n`, 0o644);
    } catch (error) {
      this.say(`portcullis-agent: the status could not be written to ${this.folder} (${(error as Error).message})`);
    }
  }

  private prune(reports: string): void {
    const names = readdirSync(reports).filter((n) => /^\d{8}-\d{6}-.*\.txt$/u.test(n)).sort();
    for (const old of names.slice(0, Math.max(0, names.length - MAX_REPORTS))) {
      try {
        unlinkSync(join(reports, old));
      } catch {
        // gone meanwhile
      }
    }
  }
}
