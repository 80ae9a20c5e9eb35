/**
 * Where an import's files are staged and who stages them: the staging
 * folder on the destination volume, which must be the agent's alone, and the
 * stager that reads, hashes and writes each file (worker threads for a drive
 * with enough bytes to pay for them, else the calling thread), started early
 * so its threads boot while the drive is walked.
 */
import { lstatSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { VerifiedManifest } from '../manifest/index.ts';
import type { Candidate } from './drive-check.ts';
import type { OperationInput } from './drive-report.ts';
import { STAGING_FOLDER } from './destination-path.ts';
import { AgentError } from './errors.ts';
import { createStagePool, inThreadStager, type Stager } from './stage-pool.ts';

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
export function stagerFor(input: OperationInput, candidates: readonly Candidate[]): Stager {
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
export class EarlyStager {
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
export function prepareStaging(root: string): string {
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

