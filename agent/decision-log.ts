/**
 * The group commit of per-file decisions: a worker hands over a decision
 * (a refusal, a check, or a verified staged file still to be named) and goes
 * on with the next file; the decisions ready at the start of a group are made
 * durable together (staged bytes, names, records), so a file counts as passed
 * only once its bytes, its name and its record are all on disk
 * (docs/agent.md "Copy-mediation").
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { AuditSink, LogEvent } from './audit-log.ts';
import { refusedResult, type FileResult } from './drive-report.ts';
import { removePlaced, type Placed } from './place-file.ts';

/**
 * Files under way at once: enough to keep every stage worker's queue full
 * while the main thread is busy naming and logging a group. A file waiting
 * its turn holds no descriptor and no buffer.
 */
export const TRANSFER_CONCURRENCY = 48;

/** What a staged file's placement decided: its record, its result, and the file it linked (if any). */
export interface PlacementDecision {
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
export interface Decided {
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
export class DecisionLog {
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
export async function decideAll<T>(decisions: DecisionLog, items: readonly T[], each: (item: T) => Promise<Decided>): Promise<FileResult[]> {
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

