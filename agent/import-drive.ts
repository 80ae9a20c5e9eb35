/**
 * `import DRIVE --to DIR`: the drive-level check, then every candidate is
 * streamed into a staging file on the destination volume while it is hashed
 * (staging.ts), and only a file whose size and digests match is named in the
 * destination (place-file.ts) in a group commit (decision-log.ts). Never
 * "verify, then copy": the bytes kept are the bytes hashed.
 *
 * Every decision is logged before it takes effect for the HMI user; a log
 * record that cannot be written stops the operation (LOG_WRITE_FAILED) and a
 * file placed just before is removed again.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeForDisplay } from '../manifest/index.ts';
import type { LogDigests } from './audit-log.ts';
import { decideAll, DecisionLog, type Decided, type PlacementDecision } from './decision-log.ts';
import { DESTINATION_PROBLEM_TEXT, hostFlavor, resolveInside, type PathFlavor } from './destination-path.ts';
import { checkDrive, type Candidate, type DriveCheck } from './drive-check.ts';
import { driveRef } from './drive-identity.ts';
import {
  bytesAndFilesInStep, checkDrivePath, expectedDigests, fileEvent, finish, logDrive, refusedResult, report, type Context, type DriveReport, type FileResult,
  type OperationInput,
} from './drive-report.ts';
import type { FileRefusalCode } from './errors.ts';
import type { Progress } from './operator-status.ts';
import { checkDestinationRoot, clashResult, existingAt, FolderNames, placeFile, type DestinationRoot, type Placement } from './place-file.ts';
import { releaseStaged, type StagedCopy } from './stage-file.ts';
import type { Stager } from './stage-pool.ts';
import { EarlyStager, prepareStaging, stagerFor } from './staging.ts';
import { platformHasSyncfs, SyncfsHelper } from './syncfs-helper.ts';
import { matchedText, type DigestChoice } from './file-digest.ts';
import { policyDigests, type ClashPolicy } from './trust-store.ts';

export interface ImportInput extends OperationInput {
  /**
   * Makes every staged file under the folder durable, once per group (default:
   * syncfs through `sync -f` on Linux; null: fsync each staged file instead).
   */
  readonly flushStaged?: ((stagingFolder: string) => Promise<void>) | null;
  /** Makes a folder's new names durable (default: fsync of the folder; a no-op on Windows). Test seam. */
  readonly syncFolder?: (folder: string) => Promise<void>;
  /** The destination folder; must exist and be a real folder. */
  readonly destination: string;
  readonly clash: ClashPolicy;
  readonly flavor?: PathFlavor;
  /** Called after each listed file was read and checked (not yet committed): for the operator's progress. */
  readonly onProgress?: (progress: Progress) => void;
}

/** `import DRIVE --to DIR`: copy-mediation of every permitted file. */
export async function importDrive(input: ImportInput): Promise<DriveReport> {
  await checkDrivePath(input.drive);
  const destination = await checkDestinationRoot(input.destination);
  const early = new EarlyStager(input);
  try {
    return await importWith(input, destination, early);
  } finally {
    await early.discard(); // a pool started but never handed over: a refused drive, an error
  }
}

async function importWith(input: ImportInput, destination: DestinationRoot, early: EarlyStager): Promise<DriveReport> {
  const root = destination.root;
  const flavor = input.flavor ?? hostFlavor();
  const check = await checkDrive({ ...input, onVerified: (m) => early.start(m) });
  const ctx: Context = { log: input.log, drive: driveRef(input.drive, input.identity), manifest: check.manifest };
  logDrive(ctx, check);
  const files: FileResult[] = [];
  const rootDisplay = escapeForDisplay(root);
  if (!check.approved) return finish(ctx, report('import', escapeForDisplay(input.drive), check, files, rootDisplay));

  const stager = early.take() ?? stagerFor(input, check.candidates);
  try {
    return await importFiles(input, destination, flavor, check, ctx, files, stager);
  } finally {
    await stager.close();
  }
}

async function importFiles(input: ImportInput, destination: DestinationRoot, flavor: PathFlavor, check: DriveCheck & { approved: true }, ctx: Context, files: FileResult[], stager: Stager): Promise<DriveReport> {
  const root = destination.root;
  const rootDisplay = escapeForDisplay(root);
  const staging = check.candidates.length > 0 ? prepareStaging(root) : null;
  let helper: SyncfsHelper | null = null;
  const flush = input.flushStaged === undefined
    ? (platformHasSyncfs() ? (folder: string) => (helper ??= SyncfsHelper.start(folder)).flush() : null)
    : input.flushStaged;
  const decisions = new DecisionLog(ctx.log, flush && staging ? () => flush(staging) : null, input.syncFolder);
  const refused = check.refused.map((r) => refusedResult(r.path, r.code, r.reason));
  files.push(...(await decideAll(decisions, refused, (result) => decisions.submit(fileEvent(ctx, 'file.refused', result), result))));
  const job: ImportJob = {
    input, ctx, decisions, root, staging: staging!, flavor, names: new FolderNames(destination), stager, digests: policyDigests(input.trust),
    importedReason: `listed in the manifest; ${matchedText(policyDigests(input.trust), 'matched')} while it was copied`, stagingPrefix: randomBytes(8).toString('hex'), stagedCount: 0, open: new Set(),
  };
  try {
    const progress = { filesDone: 0, filesTotal: check.candidates.length, bytesDone: 0, bytesTotal: check.candidates.reduce((sum, c) => sum + c.subject.annotations.size, 0) };
    const each = async (c: Candidate): Promise<Decided> => {
      const decided = await importOne(job, c);
      progress.filesDone++;
      progress.bytesDone += c.subject.annotations.size;
      input.onProgress?.({ ...progress });
      return decided;
    };
    files.push(...(await decideAll(decisions, bytesAndFilesInStep(check.candidates, (c) => c.subject.annotations.size), each)));
  } finally {
    for (const copy of job.open) releaseStaged(copy); // staged copies a failed commit never got to: closed here
    await (helper as SyncfsHelper | null)?.close();
    if (staging) await rmdir(staging).catch(() => undefined); // only when empty: leftovers are removed at the next start
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return finish(ctx, report('import', escapeForDisplay(input.drive), check, files, rootDisplay));
}

interface ImportJob {
  readonly input: ImportInput;
  readonly ctx: Context;
  readonly decisions: DecisionLog;
  readonly root: string;
  readonly staging: string;
  readonly flavor: PathFlavor;
  readonly names: FolderNames;
  readonly stager: Stager;
  /** The digests computed and checked for every file (the trust store's policy.digests). */
  readonly digests: DigestChoice;
  /** The reason recorded for every imported file (one string for all of them). */
  readonly importedReason: string;
  /** 16 random hex digits naming this import's staging files. */
  readonly stagingPrefix: string;
  stagedCount: number;
  /** Staged copies still open (held until named or refused, so their identity cannot pass to another file). */
  readonly open: Set<StagedCopy>;
}

async function importOne(job: ImportJob, c: Candidate): Promise<Decided> {
  const { input, ctx, root, staging, flavor } = job;
  const display = c.entry.display;
  const decide = (result: FileResult, event: string): Promise<Decided> => job.decisions.submit(fileEvent(ctx, event, result), result);
  const refuse = (code: FileRefusalCode, reason: string, digests: LogDigests | null = null): Promise<Decided> =>
    decide(refusedResult(display, code, reason, digests), 'file.refused');
  if (input.signal?.aborted) return refuse('ABORTED', 'cancelled before this file was copied');

  // Refuse early what cannot be placed: an escape or over-long path, or a clash under refuse/skip.
  const planned = resolveInside(root, c.subject.name, flavor);
  if (!planned.ok) {
    return refuse('DESTINATION_UNSAFE', planned.problems.map((p) => (p in DESTINATION_PROBLEM_TEXT ? DESTINATION_PROBLEM_TEXT[p as keyof typeof DESTINATION_PROBLEM_TEXT] : p)).join('; '));
  }

  if (input.clash !== 'rename') {
    // No bytes need to be read for a file that cannot be placed anyway; placeFile checks again (race).
    const there = await existingAt(job.names, root, c.subject.name.split('/'));
    if (there !== null) {
      const early = clashResult(input.clash, escapeForDisplay(there));
      if (!early.ok) {
        const result: FileResult = { path: display, outcome: early.outcome, code: early.code, reason: early.reason, destination: null, digests: null };
        return decide(result, early.outcome === 'skipped' ? 'file.skipped' : 'file.refused');
      }
    }
  }

  // 32 hex digits, as the clean-up at start expects: a random prefix per import, then a counter (O_EXCL still refuses a clash).
  const stagingPath = join(staging, `${job.stagingPrefix}${(job.stagedCount++).toString(16).padStart(16, '0')}.part`);
  const read = await job.stager.stage({
    name: c.subject.name,
    source: c.entry.rawPath,
    expected: expectedDigests(c),
    digests: job.digests,
    expectIdentity: { dev: c.entry.dev, ino: c.entry.ino },
    stagingPath,
    fsync: !job.decisions.flushesStaged, // no filesystem flush follows: each file is made durable itself
    chunkBytes: input.chunkBytes,
  }, input.signal);
  if (!read.ok) return refuse(read.code, read.reason, read.digest);
  const digests = read.digest;
  const staged = read.staged;
  if (staged !== null) job.open.add(staged);
  const refusal = (code: FileRefusalCode, reason: string): PlacementDecision => {
    const result = refusedResult(display, code, reason, digests);
    return { event: fileEvent(ctx, 'file.refused', result), result, placed: null };
  };
  // Named in the group's commit, after the flush that makes its bytes durable (DecisionLog).
  return await job.decisions.submitPlacement(async (flushFailure) => {
    try {
      if (flushFailure !== null) {
        return refusal('COPY_FAILED', `flushing the copy failed (${(flushFailure as NodeJS.ErrnoException).code ?? (flushFailure as Error).message})`);
      }
      if (staged === null) return refusal('COPY_FAILED', 'the staged copy has no identity to check it by');
      let placed: Placement;
      try {
        placed = await placeFile(job.names, root, c.subject.name, stagingPath, staged, input.clash, flavor);
      } catch (error) {
        return refusal('COPY_FAILED', `placing the file failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
      if (!placed.ok) {
        const result: FileResult = { path: display, outcome: placed.outcome, code: placed.code, reason: placed.reason, destination: null, digests };
        return { event: fileEvent(ctx, placed.outcome === 'skipped' ? 'file.skipped' : 'file.refused', result), result, placed: null };
      }
      const result: FileResult = {
        path: display,
        outcome: 'imported',
        code: 'IMPORTED',
        reason: job.importedReason,
        destination: escapeForDisplay(placed.relative),
        digests,
      };
      return { event: fileEvent(ctx, 'file.imported', result), result, placed: { finalPath: placed.finalPath, folder: placed.folder, identity: staged.identity } };
    } finally {
      if (staged !== null) {
        releaseStaged(staged); // after the identity check, before the unlink (Windows deletes an open file's name only once it is closed)
        job.open.delete(staged);
      }
      try {
        unlinkSync(stagingPath); // placed files are hard links (or renamed): the staging name goes either way
      } catch {
        // already gone (renamed into place)
      }
    }
  });
}
