/**
 * The two drive operations and their reports:
 *
 *  - verifyDrive: the drive-level check, then every candidate file is read
 *    once and hashed; nothing is written anywhere but the log.
 *  - importDrive: the drive-level check, then every candidate is streamed
 *    into a staging file on the destination volume while it is hashed, and
 *    only a file whose size and both digests match is fsynced and linked into
 *    place. Never "verify, then copy": the bytes kept are the bytes hashed.
 *
 * Every decision is logged before it takes effect for the HMI user; a log
 * record that cannot be written stops the operation (LOG_WRITE_FAILED) and a
 * file placed just before is removed again.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { escapeForDisplay, type Blake3Factory, type VerifiedManifest } from '../manifest/index.ts';
import type { AuditSink, DriveRef, LogDigests } from './audit-log.ts';
import { syncFolder } from './atomic-file.ts';
import { checkDrive, type Candidate, type DriveCheck, type DriveCheckInput } from './drive-check.ts';
import { driveRef } from './drive-identity.ts';
import {
  DESTINATION_PROBLEM_TEXT, destinationNameProblems, hostFlavor, renamedCandidate, resolveInside, sameDestinationName, STAGING_FOLDER,
  type PathFlavor,
} from './destination-path.ts';
import { AgentError, type DriveRefusalCode, type FileRefusalCode } from './errors.ts';
import type { ClashPolicy } from './trust-store.ts';
import { readVerified } from './verified-copy.ts';

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

export interface ImportInput extends OperationInput {
  /** The destination folder; must exist and be a real folder. */
  readonly destination: string;
  readonly clash: ClashPolicy;
  readonly flavor?: PathFlavor;
}

interface Context {
  readonly log: AuditSink;
  readonly drive: DriveRef;
  readonly manifest: VerifiedManifest | null;
}

function logFile(ctx: Context, event: string, r: FileResult): void {
  ctx.log.append({
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
  });
}

function logDrive(ctx: Context, check: DriveCheck): void {
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

function expectedDigests(c: Candidate): LogDigests {
  return { sha256: c.subject.digest.sha256, blake3: c.subject.digest.blake3, size: c.subject.annotations.size };
}

function countResults(files: readonly FileResult[]): DriveReport['counts'] {
  const counts = { permitted: 0, imported: 0, skipped: 0, refused: 0 };
  for (const f of files) counts[f.outcome]++;
  return counts;
}

function report(mode: DriveReport['mode'], driveDisplay: string, check: DriveCheck, files: FileResult[], destination: string | null): DriveReport {
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

function finish(ctx: Context, r: DriveReport): DriveReport {
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

const refusedResult = (path: string, code: FileRefusalCode, reason: string, digests: LogDigests | null = null): FileResult => ({
  path, outcome: 'refused', code, reason, destination: null, digests,
});

/** `verify DRIVE`: checks the drive and reads every listed file once to prove its bytes; writes nothing but the log. */
export async function verifyDrive(input: OperationInput): Promise<DriveReport> {
  const check = await checkDrive(input);
  const ctx: Context = { log: input.log, drive: driveRef(input.drive, input.identity), manifest: check.manifest };
  logDrive(ctx, check);
  const files: FileResult[] = [];
  if (check.approved) {
    for (const r of check.refused) {
      const result = refusedResult(r.path, r.code, r.reason);
      logFile(ctx, 'file.checked', result);
      files.push(result);
    }
    for (const c of check.candidates) {
      const read = await readVerified(c.entry.rawPath, expectedDigests(c), {
        signal: input.signal,
        blake3: input.blake3,
        chunkBytes: input.chunkBytes,
        expectIdentity: { dev: c.entry.dev, ino: c.entry.ino },
        onChunk: input.onChunk ? (n) => input.onChunk!(c.subject.name, n) : undefined,
      });
      const result: FileResult = read.ok
        ? { path: c.entry.display, outcome: 'permitted', code: 'PERMITTED', reason: 'listed in the manifest; size, SHA-256 and BLAKE3 match', destination: null, digests: read.digest }
        : refusedResult(c.entry.display, read.code, read.reason, read.digest);
      logFile(ctx, 'file.checked', result);
      files.push(result);
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return finish(ctx, report('verify', escapeForDisplay(input.drive), check, files, null));
}

/** Checks the destination root: absolute, an existing real folder (not a symlink or junction). */
export async function checkDestinationRoot(destination: string): Promise<string> {
  const root = resolve(destination);
  let stats: Stats;
  try {
    stats = await lstat(root);
  } catch (cause) {
    throw new AgentError('DESTINATION_INVALID', `${root}: the destination folder does not exist or cannot be read (${(cause as Error).message})`, { cause });
  }
  if (!stats.isDirectory()) throw new AgentError('DESTINATION_INVALID', `${root}: the destination is not a folder (or is a symbolic link or junction)`);
  return root;
}

/** Creates the staging folder on the destination volume and removes staging files left by a crash. */
async function prepareStaging(root: string): Promise<string> {
  const staging = join(root, STAGING_FOLDER);
  try {
    await mkdir(staging, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new AgentError('DESTINATION_INVALID', `${staging}: cannot create the staging folder (${(error as Error).message})`, { cause: error });
  }
  const stats = await lstat(staging);
  if (!stats.isDirectory()) throw new AgentError('DESTINATION_INVALID', `${staging}: the staging path is not a real folder`);
  for (const name of await readdir(staging)) {
    if (/^[0-9a-f]{32}\.part$/u.test(name)) await unlink(join(staging, name)).catch(() => undefined);
  }
  return staging;
}

type Placement =
  | { readonly ok: true; readonly finalPath: string; readonly relative: string }
  | { readonly ok: false; readonly outcome: 'refused' | 'skipped'; readonly code: FileRefusalCode; readonly reason: string };

/** Finds an existing entry in `dir` that is the same name on a case-insensitive, NFC/NFD-blind view. */
async function findSameName(dir: string, name: string): Promise<string | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return names.find((n) => sameDestinationName(n, name)) ?? null;
}

/** Walks/creates the parent folders inside root, reusing an existing folder of the same name; refuses anything but real folders. */
async function ensureParents(root: string, folders: readonly string[]): Promise<{ ok: true; dir: string; actual: string[] } | { ok: false; reason: string }> {
  let dir = root;
  const actual: string[] = [];
  for (const folder of folders) {
    const existing = await findSameName(dir, folder);
    const name = existing ?? folder;
    const next = join(dir, name);
    if (existing === null) {
      try {
        await mkdir(next);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    const stats = await lstat(next);
    if (!stats.isDirectory()) return { ok: false, reason: `${escapeForDisplay([...actual, name].join('/'))} at the destination is not a folder` };
    actual.push(name);
    dir = next;
  }
  return { ok: true, dir, actual };
}

function clashResult(policy: 'refuse' | 'skip', there: string): Placement {
  return policy === 'refuse'
    ? { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: `${there} is already at the destination; policy: refuse (nothing is overwritten)` }
    : { ok: false, outcome: 'skipped', code: 'DESTINATION_CLASH', reason: `${there} is already at the destination; policy: skip (the existing file is kept)` };
}

/** The existing entry at a relative path (same name by case and normalisation), without creating anything. */
async function existingAt(root: string, components: readonly string[]): Promise<string | null> {
  let dir = root;
  const actual: string[] = [];
  for (const component of components) {
    const found = await findSameName(dir, component).catch(() => null);
    if (found === null) return null;
    actual.push(found);
    dir = join(dir, found);
  }
  return actual.join('/');
}

const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EXDEV', 'ENOSYS', 'EOPNOTSUPP', 'EINVAL']);

/**
 * Puts the verified staging file at its name under the clash policy, never
 * replacing anything: link() fails with EEXIST instead of overwriting, so a
 * file that appears between the check and the move is never clobbered.
 */
async function placeFile(root: string, relative: string, staging: string, clash: ClashPolicy, flavor: PathFlavor): Promise<Placement> {
  const components = relative.split('/');
  const fileName = components.at(-1)!;
  const parents = await ensureParents(root, components.slice(0, -1));
  if (!parents.ok) return { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: parents.reason };
  for (let attempt = 0; attempt < 1000; attempt++) {
    let name = fileName;
    const existing = await findSameName(parents.dir, fileName);
    if (existing !== null) {
      const there = escapeForDisplay([...parents.actual, existing].join('/'));
      if (clash === 'refuse') return clashResult('refuse', there);
      if (clash === 'skip') return clashResult('skip', there);
      name = '';
      for (let n = 1 + attempt; n < 1000; n++) {
        const candidate = renamedCandidate(fileName, n);
        if (destinationNameProblems(candidate).length === 0 && (await findSameName(parents.dir, candidate)) === null) {
          name = candidate;
          break;
        }
      }
      if (name === '') return { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: 'no free "name (n)" left for a renamed copy' };
    }
    const rel = [...parents.actual, name].join('/');
    const checked = resolveInside(root, rel, flavor);
    if (!checked.ok) return { ok: false, outcome: 'refused', code: 'DESTINATION_UNSAFE', reason: checked.problems.map((p) => (p in DESTINATION_PROBLEM_TEXT ? DESTINATION_PROBLEM_TEXT[p as keyof typeof DESTINATION_PROBLEM_TEXT] : p)).join('; ') };
    const finalPath = join(parents.dir, name);
    try {
      await link(staging, finalPath);
      await unlink(staging).catch(() => undefined); // a leftover is removed with the staging folder's next clean-up
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') continue; // appeared meanwhile: apply the policy again
      if (!NO_LINK.has(code)) throw error;
      // Volumes without hard links (FAT): check, then rename; docs/agent.md names this narrow race.
      try {
        await lstat(finalPath);
        continue;
      } catch (missing) {
        if ((missing as NodeJS.ErrnoException).code !== 'ENOENT') throw missing;
      }
      await rename(staging, finalPath);
    }
    try {
      syncFolder(parents.dir);
    } catch (error) {
      await unlink(finalPath).catch(() => undefined); // not durable: take it back rather than leave it unlogged
      throw error;
    }
    return { ok: true, finalPath, relative: rel };
  }
  return { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: 'the destination name kept changing' };
}

/** `import DRIVE --to DIR`: copy-mediation of every permitted file. */
export async function importDrive(input: ImportInput): Promise<DriveReport> {
  const flavor = input.flavor ?? hostFlavor();
  const root = await checkDestinationRoot(input.destination);
  const check = await checkDrive(input);
  const ctx: Context = { log: input.log, drive: driveRef(input.drive, input.identity), manifest: check.manifest };
  logDrive(ctx, check);
  const files: FileResult[] = [];
  const rootDisplay = escapeForDisplay(root);
  if (!check.approved) return finish(ctx, report('import', escapeForDisplay(input.drive), check, files, rootDisplay));

  for (const r of check.refused) {
    const result = refusedResult(r.path, r.code, r.reason);
    logFile(ctx, 'file.refused', result);
    files.push(result);
  }
  const staging = check.candidates.length > 0 ? await prepareStaging(root) : null;
  try {
    for (const c of check.candidates) {
      const result = await importOne(input, ctx, c, root, staging!, flavor);
      files.push(result);
    }
  } finally {
    if (staging) await rmdir(staging).catch(() => undefined); // only when empty: leftovers are removed at the next start
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return finish(ctx, report('import', escapeForDisplay(input.drive), check, files, rootDisplay));
}

async function importOne(input: ImportInput, ctx: Context, c: Candidate, root: string, staging: string, flavor: PathFlavor): Promise<FileResult> {
  const display = c.entry.display;
  const refuse = (code: FileRefusalCode, reason: string, digests: LogDigests | null = null): FileResult => {
    const result = refusedResult(display, code, reason, digests);
    logFile(ctx, 'file.refused', result);
    return result;
  };
  if (input.signal?.aborted) return refuse('ABORTED', 'cancelled before this file was copied');

  // Refuse early what cannot be placed: an escape or over-long path, or a clash under refuse/skip.
  const planned = resolveInside(root, c.subject.name, flavor);
  if (!planned.ok) {
    return refuse('DESTINATION_UNSAFE', planned.problems.map((p) => (p in DESTINATION_PROBLEM_TEXT ? DESTINATION_PROBLEM_TEXT[p as keyof typeof DESTINATION_PROBLEM_TEXT] : p)).join('; '));
  }

  if (input.clash !== 'rename') {
    // No bytes need to be read for a file that cannot be placed anyway; placeFile checks again (race).
    const there = await existingAt(root, c.subject.name.split('/'));
    if (there !== null) {
      const early = clashResult(input.clash, escapeForDisplay(there));
      if (!early.ok) {
        const result: FileResult = { path: display, outcome: early.outcome, code: early.code, reason: early.reason, destination: null, digests: null };
        logFile(ctx, early.outcome === 'skipped' ? 'file.skipped' : 'file.refused', result);
        return result;
      }
    }
  }

  const stagingPath = join(staging, `${randomBytes(16).toString('hex')}.part`);
  let handle;
  try {
    handle = await open(stagingPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o644);
  } catch (error) {
    return refuse('COPY_FAILED', `cannot create a staging file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let kept = false;
  try {
    const read = await readVerified(c.entry.rawPath, expectedDigests(c), {
      signal: input.signal,
      blake3: input.blake3,
      chunkBytes: input.chunkBytes,
      expectIdentity: { dev: c.entry.dev, ino: c.entry.ino },
      onChunk: input.onChunk ? (n) => input.onChunk!(c.subject.name, n) : undefined,
      sink: async (chunk) => {
        let done = 0;
        while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
      },
    });
    if (!read.ok) return refuse(read.code, read.reason, read.digest);
    try {
      await handle.sync();
      await handle.close();
    } catch (error) {
      return refuse('COPY_FAILED', `flushing the copy failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, read.digest);
    }
    let placed: Placement;
    try {
      placed = await placeFile(root, c.subject.name, stagingPath, input.clash, flavor);
    } catch (error) {
      return refuse('COPY_FAILED', `placing the file failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, read.digest);
    }
    if (!placed.ok) {
      const result: FileResult = { path: display, outcome: placed.outcome, code: placed.code, reason: placed.reason, destination: null, digests: read.digest };
      logFile(ctx, placed.outcome === 'skipped' ? 'file.skipped' : 'file.refused', result);
      return result;
    }
    kept = true;
    const result: FileResult = {
      path: display,
      outcome: 'imported',
      code: 'IMPORTED',
      reason: 'listed in the manifest; size, SHA-256 and BLAKE3 matched while it was copied',
      destination: escapeForDisplay(placed.relative),
      digests: read.digest,
    };
    try {
      logFile(ctx, 'file.imported', result);
    } catch (error) {
      // Fail closed: a file whose record was never committed must not stay.
      await unlink(placed.finalPath).catch(() => undefined);
      throw error;
    }
    return result;
  } finally {
    await handle.close().catch(() => undefined);
    if (!kept) await unlink(stagingPath).catch(() => undefined);
  }
}

/** Exit-code class of a report (docs/agent.md "Exit codes"). */
export function reportClass(r: DriveReport): 'all' | 'some' | 'none' {
  if (!r.approved) return 'none';
  const passed = r.counts.permitted + r.counts.imported;
  const notPassed = r.counts.refused + r.counts.skipped;
  if (passed === 0) return 'none';
  return notPassed === 0 ? 'all' : 'some';
}
