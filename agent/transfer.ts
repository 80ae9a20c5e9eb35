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
import { release } from 'node:os';
import { constants, lstatSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { open, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeForDisplay, type VerifiedManifest } from '../manifest/index.ts';
import type { AuditSink, LogDigests, LogEvent } from './audit-log.ts';
import { checkDrive, type Candidate, type DriveCheck } from './drive-check.ts';
import { driveRef } from './drive-identity.ts';
import {
  DESTINATION_PROBLEM_TEXT, hostFlavor, resolveInside, STAGING_FOLDER, type PathFlavor,
} from './destination-path.ts';
import { AgentError, type FileRefusalCode } from './errors.ts';
import type { ClashPolicy } from './trust-store.ts';
import { releaseStaged, type StagedCopy } from './stage-file.ts';
import { createStagePool, inThreadStager, type Stager } from './stage-pool.ts';
import { SyncfsHelper } from './syncfs-helper.ts';
import {
  checkDestinationRoot, clashResult, existingAt, FolderNames, placeFile, removePlaced, type DestinationRoot, type Placed, type Placement,
} from './place-file.ts';
import {
  bytesAndFilesInStep, checkDrivePath, expectedDigests, fileEvent, finish, logDrive, refusedResult, report, type Context, type DriveReport, type FileResult,
  type OperationInput,
} from './drive-report.ts';

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
}

/**
 * Files under way at once: enough to keep every stage worker's queue full
 * while the main thread is busy naming and logging a group. A file waiting
 * its turn holds no descriptor and no buffer.
 */
export const TRANSFER_CONCURRENCY = 48;

/** What a staged file's placement decided: its record, its result, and the file it linked (if any). */
interface PlacementDecision {
  readonly event: LogEvent;
  readonly result: FileResult;
  readonly placed: Placed | null;
}

interface PendingDecision {
  event: LogEvent | null;
  result: FileResult | null;
  /** A file linked into the destination, taken back if its record cannot be made durable. */
  placed: Placed | null;
  /** For a staged file: gives it its name once the group's staged data is on disk. */
  readonly place: ((flushFailure: unknown) => Promise<PlacementDecision>) | null;
  readonly resolve: (result: FileResult) => void;
  readonly reject: (error: unknown) => void;
}

/** A file's result once its record is durable; the wrapper lets a worker move on to the next file meanwhile. */
interface Decided {
  readonly settled: Promise<FileResult>;
}

/**
 * Decisions waiting for a group before workers wait for room (bounds memory and the work a failed commit
 * takes back; with one group flushing and one committing, at most three times this many are uncommitted).
 * A group closes early at half of it.
 */
const MAX_UNCOMMITTED = 2048;
/**
 * The shortest time from one group to the next: one flush and one log fsync per window instead of per
 * file. Each flush waits for the disk, with a fixed cost per call: against 512 and 100 ms, this and
 * 2048 made a 2 GiB import of 20 000 files about a tenth faster (bench/import.ts).
 */
const GROUP_WINDOW_MS = 250; // ms

/**
 * Group commit of per-file decisions. Workers hand over a decision and go on
 * with the next file; a group is every decision ready when it begins (at
 * most every GROUP_WINDOW_MS), committed in this order:
 *
 *  1. the staged files of the group are made durable with one flush of the
 *     destination's filesystem (`flushStaged`; where there is none, each
 *     file was fsynced when it was staged);
 *  2. they are placed under their names, one at a time;
 *  3. their names are made durable: one more flush of the filesystem, or
 *     where there is none, an fsync of each folder they were placed in;
 *  4. the group's records are appended to the log with one fsync.
 *
 * A result settles only after all four, so a file is reported imported only
 * once its bytes, its name and its record are all durable, and no name ever
 * points at bytes that are not on disk. If step 4 fails, every file placed
 * in the group is removed again, the error stops the operation, and every
 * later decision fails the same way. Step 1 of a group may overlap steps 2-4
 * of the one before (drain).
 */
class DecisionLog {
  private readonly log: AuditSink;
  private readonly flushStaged: (() => Promise<void>) | null;
  private pending: PendingDecision[] = [];
  private draining: Promise<void> | null = null;
  private failure: { readonly error: unknown } | null = null;
  /** Set while a caller waits in idle(): nothing more will be submitted, so no group window is needed. */
  private noMoreComing = false;
  private closeWindowNow: (() => void) | null = null;
  /** Set while the drain waits for a decision or a commit. */
  private wakeDrain: (() => void) | null = null;
  /** The first failed flush: every later group's flush fails with it (see flush()). */
  private flushFailure: Error | null = null;
  /** Resolved (and replaced) each time the drain takes the waiting decisions into a group, or ends. */
  private groupTaken = Promise.withResolvers<void>();
  /** performance.now() when the current group's window opened. */
  private groupStarted = 0;

  private readonly syncFolder: (folder: string) => Promise<void>;

  constructor(log: AuditSink, flushStaged: (() => Promise<void>) | null = null, syncFolder: (folder: string) => Promise<void> = syncFolderAsync) {
    this.log = log;
    this.flushStaged = flushStaged;
    this.syncFolder = syncFolder;
  }

  /** Whether the group's commit flushes staged files (else each is fsynced when staged). */
  get flushesStaged(): boolean {
    return this.flushStaged !== null;
  }

  /** Throws the error that stopped the log, if any (workers check it before each new file). */
  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Queues a decision that needs no placement (refused, skipped, checked). */
  submit(event: LogEvent, result: FileResult): Promise<Decided> {
    return this.enqueue({ event, result, placed: null, place: null });
  }

  /** Queues a verified staged file; `place` names it in the group's commit, after the flush. */
  submitPlacement(place: (flushFailure: unknown) => Promise<PlacementDecision>): Promise<Decided> {
    return this.enqueue({ event: null, result: null, placed: null, place });
  }

  private async enqueue(d: Omit<PendingDecision, 'resolve' | 'reject'>): Promise<Decided> {
    // Wait for room: until the drain takes the waiting decisions into a group (not until it has committed everything).
    while (this.pending.length >= MAX_UNCOMMITTED && this.draining) await this.groupTaken.promise;
    const settled = new Promise<FileResult>((resolve, reject) => {
      this.pending.push({ ...d, resolve, reject });
    });
    if (this.pending.length >= MAX_UNCOMMITTED / 2) this.closeWindowNow?.();
    this.wakeDrain?.();
    this.draining ??= this.drain();
    settled.catch(() => undefined); // handled where it is awaited; never an unhandled rejection meanwhile
    return { settled };
  }

  /** Called once no more decisions will be submitted: commits what is queued at once and resolves when done. */
  async idle(): Promise<void> {
    this.noMoreComing = true;
    this.closeWindowNow?.();
    while (this.draining) await this.draining;
    this.noMoreComing = false;
  }

  /**
   * Waits until GROUP_WINDOW_MS have passed since the previous group began (or since the first
   * decision came), so that one flush, one fsync per folder and one log fsync serve every decision
   * of the window; closed early once no more decisions can come (idle) or half of MAX_UNCOMMITTED wait.
   */
  private async groupWindow(): Promise<void> {
    const wait = this.groupStarted + GROUP_WINDOW_MS - performance.now();
    if (wait <= 0 || this.noMoreComing || this.pending.length >= MAX_UNCOMMITTED / 2) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.closeWindowNow = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.closeWindowNow = null;
  }

  /**
   * Groups overlap by one step: the next group's flush (step 1) may start while
   * the previous group is still being named, fsynced and logged (steps 2-4),
   * so the disk is not idle meanwhile; its own steps 2-4 wait for the previous
   * group's, so records keep their order.
   */
  private async drain(): Promise<void> {
    this.groupStarted = performance.now();
    let previous: Promise<void> = Promise.resolve();
    let inFlight = 0; // groups taken and not yet committed: one committing, at most one more flushing behind it
    for (;;) {
      if (this.pending.length > 0 && inFlight < 2) {
        await this.groupWindow();
        this.groupStarted = performance.now();
        const group = this.pending;
        this.pending = [];
        this.announceGroupTaken();
        inFlight++;
        const flushed = this.flush(group);
        const before = previous;
        previous = (async () => {
          await before;
          try {
            await this.commit(group, await flushed);
          } catch (error) {
            // commit() handles its failures; anything else still fails the group and every later one, never hangs it.
            this.failure ??= { error };
            for (const d of group) d.reject(error);
          }
          inFlight--;
          this.wakeDrain?.();
        })();
        continue;
      }
      // Checked and cleared in one step with no await between: a decision enqueued after this starts a new drain.
      if (inFlight === 0 && this.pending.length === 0) break;
      await new Promise<void>((resolve) => {
        this.wakeDrain = resolve; // a decision arrived, or a group committed
      });
      this.wakeDrain = null;
    }
    this.draining = null;
    this.announceGroupTaken();
  }

  /** Wakes the workers waiting for room in `pending`. */
  private announceGroupTaken(): void {
    const taken = this.groupTaken;
    this.groupTaken = Promise.withResolvers<void>();
    taken.resolve();
  }

  /** Step 1: one flush for the group's staged files; resolves with its failure, or null. */
  private async flush(group: readonly PendingDecision[]): Promise<unknown> {
    if (this.failure || !this.flushStaged || !group.some((d) => d.place)) return null;
    if (this.flushFailure !== null) return this.flushFailure;
    try {
      await this.flushStaged();
      return null;
    } catch (error) {
      return this.flushFailed(error);
    }
  }

  /**
   * A failed flush fails every later one of this import: Linux reports a
   * writeback error to one syncfs caller only, so the next flush, which may
   * cover bytes whose writing failed, would succeed.
   */
  private flushFailed(error: unknown): Error {
    this.flushFailure ??= error instanceof Error ? error : new Error(`flush failed (${String(error)})`);
    return this.flushFailure;
  }

  /** Steps 2-4 for a group whose flush has ended (never rejects: a failure fails the group and every later one). */
  private async commit(group: readonly PendingDecision[], flushFailure: unknown): Promise<void> {
    if (this.failure) {
      await this.fail(group, this.failure.error);
      return;
    }
    let committed = 0;
    try {
      await this.place(group, flushFailure);
      if (this.flushStaged) await this.flushNames(group);
      else await this.syncFolders(group, new Set(group.flatMap((d) => (d.placed ? [d.placed.folder] : []))));
      const events = group.map((d) => d.event!);
      if (this.log.appendMany) {
        this.log.appendMany(events);
        committed = group.length;
      } else {
        for (const event of events) {
          this.log.append(event);
          committed++;
        }
      }
    } catch (error) {
      this.failure = { error };
      for (const d of group.slice(0, committed)) d.resolve(d.result!);
      await this.fail(group.slice(committed), error);
      return;
    }
    for (const d of group) d.resolve(d.result!);
  }

  /**
   * Step 3 where the filesystem can be flushed: one more flush makes every
   * name of the group durable (one journal commit instead of an fsync per
   * folder). If it fails, every file the group named is taken back and
   * refused (COPY_FAILED); the group's other records are still written.
   */
  private async flushNames(group: readonly PendingDecision[]): Promise<void> {
    if (!group.some((d) => d.placed)) return;
    try {
      // A flush of this import failed before (possibly a later group's, flushed meanwhile): it stands.
      await (this.flushFailure === null ? this.flushStaged!() : Promise.reject(this.flushFailure));
    } catch (error) {
      const failure = this.flushFailed(error);
      const folders = new Set<string>();
      for (const d of group) {
        if (!d.placed) continue;
        folders.add(d.placed.folder);
        await takeBack(d, 'the destination could not be made durable', failure);
      }
      // Best effort: a power cut must not bring back a name whose record says refused.
      await Promise.all([...folders].map((f) => this.syncFolderSafely(f)));
    }
  }

  /** The folder fsync seam, never throwing synchronously nor rejecting. */
  private syncFolderSafely(folder: string): Promise<void> {
    return Promise.resolve().then(() => this.syncFolder(folder)).catch(() => undefined);
  }

  /**
   * Step 3 elsewhere. A folder that cannot be fsynced costs only its own
   * files: they are taken back and refused (COPY_FAILED), and the group's
   * other records are still written, refusals of tampered files among them.
   */
  private async syncFolders(group: readonly PendingDecision[], folders: ReadonlySet<string>): Promise<void> {
    const failed = new Map<string, unknown>();
    await Promise.all([...folders].map(async (f) => {
      try {
        await Promise.resolve().then(() => this.syncFolder(f));
      } catch (error) {
        failed.set(f, error);
      }
    }));
    for (const d of group) {
      if (d.placed && failed.has(d.placed.folder)) await takeBack(d, 'the destination folder could not be made durable', failed.get(d.placed.folder));
    }
  }

  /** Step 2: each staged file is placed under its name, one at a time (after the flush: none if it failed). */
  private async place(group: readonly PendingDecision[], flushFailure: unknown): Promise<void> {
    for (const d of group) {
      if (!d.place) continue;
      const decision = await d.place(flushFailure);
      d.event = decision.event;
      d.result = decision.result;
      d.placed = decision.placed;
    }
  }

  /** Fail closed: files placed in a failed group are removed (and the removal made durable), and staged ones never get a name. */
  private async fail(group: readonly PendingDecision[], error: unknown): Promise<void> {
    const folders = new Set<string>();
    for (const d of group) {
      if (d.placed) {
        await removePlaced(d.placed);
        folders.add(d.placed.folder);
      } else if (d.place && d.event === null) {
        await d.place(error).catch(() => undefined); // refuses and removes its staging file
      }
    }
    // Best effort: a power cut must not bring back a name whose record was never written.
    await Promise.all([...folders].map((f) => this.syncFolderSafely(f)));
    for (const d of group) d.reject(error);
  }
}

/** Removes a file named in a group whose names could not be made durable, and turns its decision into a refusal. */
async function takeBack(d: PendingDecision, what: string, error: unknown): Promise<void> {
  await removePlaced(d.placed!);
  const reason = `${what} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): the copy was removed again`;
  d.result = refusedResult(d.result!.path, 'COPY_FAILED', reason, d.result!.digests);
  d.event = { ...d.event!, event: 'file.refused', outcome: 'refused', code: 'COPY_FAILED', reason, destination: null };
  d.placed = null;
}

/** fsync a folder so a link in it survives a power cut (a no-op on Windows, which cannot open folders for this). */
async function syncFolderAsync(folder: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(folder, constants.O_RDONLY | constants.O_DIRECTORY); // a folder or nothing: never blocks on a pipe
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Runs every file through `each` (at most TRANSFER_CONCURRENCY at once), then
 * waits until every decision is durable. After the first failure no new file
 * starts; the error is thrown once the files under way have settled.
 */
async function decideAll<T>(decisions: DecisionLog, items: readonly T[], each: (item: T) => Promise<Decided>): Promise<FileResult[]> {
  const decided: Decided[] = [];
  let next = 0;
  let failed: { readonly error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        decisions.throwIfFailed();
        decided.push(await each(item));
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(TRANSFER_CONCURRENCY, items.length) }, worker));
  await decisions.idle();
  const settled = await Promise.allSettled(decided.map((d) => d.settled));
  if (failed !== null) throw (failed as { readonly error: unknown }).error;
  const lost = settled.find((r) => r.status === 'rejected');
  if (lost) throw lost.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<FileResult>).value);
}

/** `verify DRIVE`: checks the drive and reads every listed file once to prove its bytes; writes nothing but the log. */
export async function verifyDrive(input: OperationInput): Promise<DriveReport> {
  await checkDrivePath(input.drive);
  const early = new EarlyStager(input);
  try {
    return await verifyWith(input, early);
  } finally {
    await early.discard(); // a pool started but never handed over: a refused drive, an error
  }
}

async function verifyWith(input: OperationInput, early: EarlyStager): Promise<DriveReport> {
  const check = await checkDrive({ ...input, onVerified: (m) => early.start(m) });
  const ctx: Context = { log: input.log, drive: driveRef(input.drive, input.identity), manifest: check.manifest };
  logDrive(ctx, check);
  const files: FileResult[] = [];
  if (check.approved) {
    const decisions = new DecisionLog(ctx.log);
    const refused = check.refused.map((r) => refusedResult(r.path, r.code, r.reason));
    files.push(...(await decideAll(decisions, refused, (result) => decisions.submit(fileEvent(ctx, 'file.checked', result), result))));
    const stager = early.take() ?? stagerFor(input, check.candidates);
    try {
      files.push(...(await decideAll(decisions, bytesAndFilesInStep(check.candidates, (c) => c.subject.annotations.size), async (c) => {
        const read = await stager.stage({
          name: c.subject.name,
          source: c.entry.rawPath,
          expected: expectedDigests(c),
          expectIdentity: { dev: c.entry.dev, ino: c.entry.ino },
          stagingPath: null,
          fsync: false,
          chunkBytes: input.chunkBytes,
        }, input.signal);
        const result: FileResult = read.ok
          ? { path: c.entry.display, outcome: 'permitted', code: 'PERMITTED', reason: 'listed in the manifest; size, SHA-256 and BLAKE3 match', destination: null, digests: read.digest }
          : refusedResult(c.entry.display, read.code, read.reason, read.digest);
        return decisions.submit(fileEvent(ctx, 'file.checked', result), result);
      })));
    } finally {
      await stager.close();
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return finish(ctx, report('verify', escapeForDisplay(input.drive), check, files, null));
}

/**
 * Below this many bytes in all, files are staged in the calling thread:
 * starting the workers (each loads the agent's code and its WebAssembly)
 * costs more than hashing that much (measured by bench/agent-startup.ts).
 */
export const STAGE_ON_WORKERS_FROM_BYTES = 16 * 1024 * 1024; // bytes

/**
 * Where files are read and staged: worker threads (every core) for a drive
 * with enough bytes to pay for them; otherwise, or when a test hook
 * (onChunk, another BLAKE3) is given, since functions cannot cross to a
 * worker, the calling thread. Both run the same stageFile.
 */
function stagerFor(input: OperationInput, candidates: readonly Candidate[]): Stager {
  const bytes = candidates.reduce((sum, c) => sum + c.subject.annotations.size, 0);
  if (!stagesOnWorkers(input, bytes)) {
    return inThreadStager((request) => ({
      blake3: input.blake3,
      onChunk: input.onChunk ? (n) => input.onChunk!(request.name, n) : undefined,
    }));
  }
  return createStagePool();
}

function stagesOnWorkers(input: OperationInput, bytes: number): boolean {
  return !input.onChunk && !input.blake3 && bytes >= STAGE_ON_WORKERS_FROM_BYTES;
}

/**
 * Starts the stage pool's threads as soon as the manifest is verified, when
 * the bytes it lists call for them, so they boot while the drive is walked
 * (about half a second of a large import otherwise spent waiting for them).
 */
class EarlyStager {
  private pool: Stager | null = null;
  private readonly input: OperationInput;

  constructor(input: OperationInput) {
    this.input = input;
  }

  start(manifest: VerifiedManifest): void {
    const listed = manifest.statement.subject.reduce((sum, s) => sum + s.annotations.size, 0);
    if (this.pool === null && stagesOnWorkers(this.input, listed)) this.pool = createStagePool();
  }

  /** The started pool, handed over to the caller (who closes it); null if none was started. */
  take(): Stager | null {
    const pool = this.pool;
    this.pool = null;
    return pool;
  }

  async discard(): Promise<void> {
    await this.take()?.close();
  }
}

/** The agent's staging folder as it is now: missing, private to the agent, or not (and why). */
type StagingState =
  | { readonly kind: 'missing' }
  | { readonly kind: 'private' }
  | { readonly kind: 'not-folder'; readonly reason: string }
  | { readonly kind: 'shared'; readonly reason: string };

/**
 * Whether the staging folder is the agent's alone: a real folder (lstat: not
 * a link or junction), and on POSIX owned by the agent's user with no
 * permission for group or others (mode 700), so nobody else can put, swap or
 * remove a staged file between its hash and its link. Windows: not checked
 * here (Node reports no owner and no ACL); the folder inherits the
 * destination's ACL (docs/agent.md "Copy-mediation").
 */
function stagingState(staging: string): StagingState {
  const stats = lstatSync(staging, { throwIfNoEntry: false });
  if (stats === undefined) return { kind: 'missing' };
  if (!stats.isDirectory()) return { kind: 'not-folder', reason: 'is not a real folder (a link, junction or file)' };
  if (process.platform === 'win32') return { kind: 'private' };
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) return { kind: 'shared', reason: `belongs to user id ${stats.uid}, not to the agent's (${uid})` };
  if ((stats.mode & 0o077) !== 0) return { kind: 'shared', reason: `has mode ${(stats.mode & 0o777).toString(8)}: others may reach into it (the agent's own is 700)` };
  return { kind: 'private' };
}

/** Creates a private staging folder (mode 700); one that appeared meanwhile is judged by stagingState. */
function makeStaging(staging: string): void {
  try {
    mkdirSync(staging, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new AgentError('DESTINATION_INVALID', `${staging}: cannot create the staging folder (${(error as Error).message})`, { cause: error });
  }
}

/**
 * Makes sure the staging folder on the destination volume is the agent's
 * alone, then removes staging files left by a crash. A staging folder someone
 * else could use is replaced by a private one when it is empty (rmdir removes
 * only an empty folder, never follows a link) and refused when it holds
 * anything: its files are kept as evidence, never read or deleted.
 */
function prepareStaging(root: string): string {
  const staging = join(root, STAGING_FOLDER);
  let state = stagingState(staging);
  if (state.kind === 'missing') {
    makeStaging(staging);
    state = stagingState(staging);
  } else if (state.kind === 'shared') {
    try {
      rmdirSync(staging);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOTEMPTY' || code === 'EEXIST' ? 'holds files' : `could not be removed (${code ?? (error as Error).message})`;
      throw new AgentError('DESTINATION_INVALID', `${staging}: the staging folder ${state.reason} and ${why}, so others could have put or swapped files in it: move it aside (keep it as evidence) and import again; the agent creates its own (mode 700)`, { cause: error });
    }
    makeStaging(staging);
    state = stagingState(staging);
  }
  if (state.kind !== 'private') {
    const reason = state.kind === 'missing' ? 'could not be created' : state.reason;
    throw new AgentError('DESTINATION_INVALID', `${staging}: the staging path ${reason}: remove it; the agent creates its own staging folder (mode 700)`);
  }
  let leftovers: string[];
  try {
    leftovers = readdirSync(staging);
  } catch (error) {
    throw new AgentError('DESTINATION_INVALID', `${staging}: cannot read the staging folder (${(error as Error).message})`, { cause: error });
  }
  for (const entry of leftovers) {
    if (/^[0-9a-f]{32}\.part$/u.test(entry)) {
      try {
        unlinkSync(join(staging, entry));
      } catch {
        // gone meanwhile
      }
    }
  }
  return staging;
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
    input, ctx, decisions, root, staging: staging!, flavor, names: new FolderNames(destination), stager, stagingPrefix: randomBytes(8).toString('hex'), stagedCount: 0, open: new Set(),
  };
  try {
    files.push(...(await decideAll(decisions, bytesAndFilesInStep(check.candidates, (c) => c.subject.annotations.size), (c) => importOne(job, c))));
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
        reason: 'listed in the manifest; size, SHA-256 and BLAKE3 matched while it was copied',
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

/** Linux reports writeback errors from syncfs(2) only since 5.8; before that a failed flush looked like success. */
export function syncfsReportsErrors(kernelRelease: string): boolean {
  const match = /^(\d+)\.(\d+)/u.exec(kernelRelease);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 5 || (major === 5 && minor >= 8);
}

/**
 * Whether staged files are flushed per group on this platform: Linux 5.8 or
 * later has syncfs(2) (`sync -f` through SyncfsHelper, one flush of the
 * destination's filesystem for a whole group, as `cp` then `sync` does);
 * elsewhere each staged file is fsynced on its own (Windows: FlushFileBuffers
 * per file; older Linux: fsync per file).
 */
function platformHasSyncfs(): boolean {
  return process.platform === 'linux' && syncfsReportsErrors(release());
}
