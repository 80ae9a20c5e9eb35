/**
 * One file's verified read, and for import its staging copy: the unit of
 * work the stage pool runs on worker threads (agent/stage-pool.ts) and, with
 * a test hook, in the calling thread. Everything in a request is plain data,
 * so it crosses to a worker as it is.
 */
import { close, closeSync, constants, fstat, fstatSync, fsync, fsyncSync, open, openSync, unlinkSync, write, writeSync, type BigIntStats } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Blake3Factory } from '../manifest/digest.ts';
import type { DigestChoice, FileHasher, ReadDigest } from './file-digest.ts';
import { readVerified, readVerifiedSync, type ExpectedFile, type VerifiedReadCode } from './verified-copy.ts';

export interface StageRequest {
  /** The manifest subject's name (for hooks). */
  readonly name: string;
  /** The file on the drive (raw bytes of its path, as the walk found it). */
  readonly source: Buffer | string;
  readonly expected: ExpectedFile;
  /** The digests computed and compared (the trust store's policy.digests). */
  readonly digests: DigestChoice;
  /** The walk's dev/ino: a file swapped since the walk is refused. */
  readonly expectIdentity: { readonly dev: number; readonly ino: number };
  /** Import: the staging file to create (O_EXCL) and fill; null for verify (read and hash only). */
  readonly stagingPath: string | null;
  /** fsync the staging file before reporting it (when no group flush follows). */
  readonly fsync: boolean;
  readonly chunkBytes?: number;
}

export type StageCode = VerifiedReadCode | 'COPY_FAILED';

/**
 * An import's staged copy, still open: the descriptor pins the file, so its
 * identity cannot pass to another file (a deleted file's inode number is
 * reused at once) until the agent has compared it with what it named. The
 * caller closes it (releaseStaged) once the file is named or refused.
 */
export interface StagedCopy {
  /** The open descriptor of the staging file (a process-wide number: it crosses from a stage thread as it is). */
  readonly fd: number;
  /** `dev:ino` of the file written, decimal (fileIdentity). */
  readonly identity: string;
}

export type StageResult =
  | {
      readonly ok: true;
      readonly digest: ReadDigest;
      /** Import: the staged copy, which the file placed under its name must be; null for verify. */
      readonly staged: StagedCopy | null;
    }
  | { readonly ok: false; readonly code: StageCode; readonly reason: string; readonly digest: ReadDigest | null };

export interface StageHooks {
  readonly signal?: AbortSignal;
  /** Test seam: called after each chunk read (tests change the drive mid-copy). */
  readonly onChunk?: (bytesRead: number) => Promise<void> | void;
  /** BLAKE3 implementation (default: WebAssembly). */
  readonly blake3?: Blake3Factory;
}

const errorText = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** A new file, never an existing one nor one reached through a symlink (docs/agent.md "Copy-mediation"). */
const STAGING_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** A file's identity as compared after placing it: device and inode as exact integers (64-bit NTFS file ids do not fit a number). */
export const fileIdentity = (stats: Pick<BigIntStats, 'dev' | 'ino'>): string => `${stats.dev}:${stats.ino}`;

/** Closes a staged copy's descriptor once its file is named or refused (never throws). */
export function releaseStaged(staged: StagedCopy): void {
  try {
    closeSync(staged.fd);
  } catch {
    // already closed
  }
}

// The callback API with raw descriptors: a FileHandle left open past this function would be closed by the garbage collector.
const openAsync = (path: string, flags: number, mode: number): Promise<number> =>
  new Promise((resolve, reject) => open(path, flags, mode, (error, fd) => (error ? reject(error) : resolve(fd))));
const writeAsync = (fd: number, chunk: Uint8Array, offset: number, length: number): Promise<number> =>
  new Promise((resolve, reject) => write(fd, chunk, offset, length, null, (error, written) => (error ? reject(error) : resolve(written))));
const fsyncAsync = (fd: number): Promise<void> => new Promise((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
const closeAsync = (fd: number): Promise<void> => new Promise((resolve, reject) => close(fd, (error) => (error ? reject(error) : resolve())));
const fstatAsync = (fd: number): Promise<BigIntStats> => new Promise((resolve, reject) => fstat(fd, { bigint: true }, (error, stats) => (error ? reject(error) : resolve(stats))));

const cannotCreate = (error: unknown): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `cannot create a staging file (${errorText(error)})`, digest: null });
const flushFailed = (error: unknown, digest: ReadDigest): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `flushing the copy failed (${errorText(error)})`, digest });

/** Reads, hashes and (import) stages one file; on any failure the staging file is removed. */
export async function stageFile(request: StageRequest, hooks: StageHooks = {}): Promise<StageResult> {
  if (request.stagingPath === null) {
    const read = await readVerified(request.source, request.expected, { signal: hooks.signal, blake3: hooks.blake3, digests: request.digests, chunkBytes: request.chunkBytes, expectIdentity: request.expectIdentity, onChunk: hooks.onChunk });
    return read.ok ? { ...read, staged: null } : read;
  }
  const stagingPath = request.stagingPath;
  let fd: number;
  try {
    fd = await openAsync(stagingPath, STAGING_FLAGS, 0o644);
  } catch (error) {
    return cannotCreate(error);
  }
  let keep = false;
  try {
    let identity: string;
    try {
      identity = fileIdentity(await fstatAsync(fd));
    } catch (error) {
      return cannotCreate(error);
    }
    const read = await readVerified(request.source, request.expected, {
      signal: hooks.signal,
      blake3: hooks.blake3,
      digests: request.digests,
      chunkBytes: request.chunkBytes,
      expectIdentity: request.expectIdentity,
      onChunk: hooks.onChunk,
      sink: async (chunk) => {
        let done = 0;
        while (done < chunk.length) done += await writeAsync(fd, chunk, done, chunk.length - done);
      },
    });
    if (!read.ok) return read;
    try {
      if (request.fsync) await fsyncAsync(fd);
    } catch (error) {
      return flushFailed(error, read.digest);
    }
    keep = true; // open until it is named (releaseStaged)
    return { ...read, staged: { fd, identity } };
  } finally {
    if (!keep) {
      await closeAsync(fd).catch(() => undefined);
      await unlink(stagingPath).catch(() => undefined);
    }
  }
}

/**
 * stageFile with synchronous calls, for a worker thread that does one file at
 * a time (agent/stage-worker.ts). `digest` is a fresh FileHasher for `request.digests`; `aborted`
 * is polled before each read; `scratch` is the thread's read buffer.
 */
export function stageFileSync(request: StageRequest, digest: FileHasher, aborted: () => boolean, scratch?: Buffer): StageResult {
  const options = { aborted, chunkBytes: request.chunkBytes, expectIdentity: request.expectIdentity, scratch };
  if (request.stagingPath === null) {
    const read = readVerifiedSync(request.source, request.expected, digest, options);
    return read.ok ? { ...read, staged: null } : read;
  }
  const stagingPath = request.stagingPath;
  let fd: number;
  try {
    fd = openSync(stagingPath, STAGING_FLAGS, 0o644);
  } catch (error) {
    return cannotCreate(error);
  }
  let keep = false;
  try {
    let identity: string;
    try {
      identity = fileIdentity(fstatSync(fd, { bigint: true }));
    } catch (error) {
      return cannotCreate(error);
    }
    const read = readVerifiedSync(request.source, request.expected, digest, {
      ...options,
      sink: (chunk) => {
        let done = 0;
        while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
      },
    });
    if (!read.ok) return read;
    try {
      if (request.fsync) fsyncSync(fd);
    } catch (error) {
      return flushFailed(error, read.digest);
    }
    keep = true; // open until it is named (releaseStaged)
    return { ...read, staged: { fd, identity } };
  } finally {
    if (!keep) {
      try {
        closeSync(fd);
      } catch {
        // closing a file that failed: nothing more to learn
      }
      try {
        unlinkSync(stagingPath);
      } catch {
        // never created or already gone
      }
    }
  }
}
