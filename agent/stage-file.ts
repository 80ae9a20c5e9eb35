/**
 * One file's verified read, and for import its staging copy: the unit of
 * work the stage pool runs on worker threads (agent/stage-pool.ts) and, with
 * a test hook, in the calling thread. Everything in a request is plain data,
 * so it crosses to a worker as it is.
 */
import { closeSync, constants, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import type { Blake3Factory, DualDigest, FileDigest } from '../manifest/digest.ts';
import { readVerified, readVerifiedSync, type ExpectedFile, type VerifiedReadCode } from './verified-copy.ts';

export interface StageRequest {
  /** The manifest subject's name (for hooks). */
  readonly name: string;
  /** The file on the drive (raw bytes of its path, as the walk found it). */
  readonly source: Buffer | string;
  readonly expected: ExpectedFile;
  /** The walk's dev/ino: a file swapped since the walk is refused. */
  readonly expectIdentity: { readonly dev: number; readonly ino: number };
  /** Import: the staging file to create (O_EXCL) and fill; null for verify (read and hash only). */
  readonly stagingPath: string | null;
  /** fsync the staging file before reporting it (when no group flush follows). */
  readonly fsync: boolean;
  readonly chunkBytes?: number;
}

export type StageCode = VerifiedReadCode | 'COPY_FAILED';

export type StageResult =
  | { readonly ok: true; readonly digest: FileDigest }
  | { readonly ok: false; readonly code: StageCode; readonly reason: string; readonly digest: FileDigest | null };

export interface StageHooks {
  readonly signal?: AbortSignal;
  /** Test seam: called after each chunk read (tests change the drive mid-copy). */
  readonly onChunk?: (bytesRead: number) => Promise<void> | void;
  /** BLAKE3 implementation (default: WebAssembly). */
  readonly blake3?: Blake3Factory;
}

const errorText = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

const STAGING_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

const cannotCreate = (error: unknown): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `cannot create a staging file (${errorText(error)})`, digest: null });
const flushFailed = (error: unknown, digest: FileDigest): StageResult => ({ ok: false, code: 'COPY_FAILED', reason: `flushing the copy failed (${errorText(error)})`, digest });

/** Reads, hashes and (import) stages one file; on any failure the staging file is removed. */
export async function stageFile(request: StageRequest, hooks: StageHooks = {}): Promise<StageResult> {
  if (request.stagingPath === null) {
    return readVerified(request.source, request.expected, { signal: hooks.signal, blake3: hooks.blake3, chunkBytes: request.chunkBytes, expectIdentity: request.expectIdentity, onChunk: hooks.onChunk });
  }
  const stagingPath = request.stagingPath;
  let handle;
  try {
    handle = await open(stagingPath, STAGING_FLAGS, 0o644);
  } catch (error) {
    return cannotCreate(error);
  }
  let keep = false;
  try {
    const read = await readVerified(request.source, request.expected, {
      signal: hooks.signal,
      blake3: hooks.blake3,
      chunkBytes: request.chunkBytes,
      expectIdentity: request.expectIdentity,
      onChunk: hooks.onChunk,
      sink: async (chunk) => {
        let done = 0;
        while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
      },
    });
    if (!read.ok) return read;
    try {
      if (request.fsync) await handle.sync();
      await handle.close();
    } catch (error) {
      return flushFailed(error, read.digest);
    }
    keep = true;
    return read;
  } finally {
    await handle.close().catch(() => undefined);
    if (!keep) await unlink(stagingPath).catch(() => undefined);
  }
}

/**
 * stageFile with synchronous calls, for a worker thread that does one file at
 * a time (agent/stage-worker.ts). `digest` is a fresh DualDigest; `aborted`
 * is polled before each read; `scratch` is the thread's read buffer.
 */
export function stageFileSync(request: StageRequest, digest: DualDigest, aborted: () => boolean, scratch?: Buffer): StageResult {
  const options = { aborted, chunkBytes: request.chunkBytes, expectIdentity: request.expectIdentity, scratch };
  if (request.stagingPath === null) return readVerifiedSync(request.source, request.expected, digest, options);
  const stagingPath = request.stagingPath;
  let fd: number;
  try {
    fd = openSync(stagingPath, STAGING_FLAGS, 0o644);
  } catch (error) {
    return cannotCreate(error);
  }
  let open = true;
  let keep = false;
  try {
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
      open = false;
      closeSync(fd);
    } catch (error) {
      return flushFailed(error, read.digest);
    }
    keep = true;
    return read;
  } finally {
    if (open) {
      try {
        closeSync(fd);
      } catch {
        // closing a file that failed: nothing more to learn
      }
    }
    if (!keep) {
      try {
        unlinkSync(stagingPath);
      } catch {
        // never created or already gone
      }
    }
  }
}
