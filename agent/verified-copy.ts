/**
 * Reads one file from the drive exactly once, hashing every byte with the
 * digests the policy checks (file-digest.ts: BLAKE3 in WebAssembly by
 * default, SHA-256, or both in the same pass) and handing the same bytes to
 * an optional sink (the staging file). It never reads more than one byte past the listed size, so a file
 * that grows is stopped at once; a file that shrinks, changes or cannot be
 * read fails. The caller keeps the sink's bytes only on { ok: true }.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { sameHex } from '../manifest/constant-time.ts';
import type { Blake3Factory } from '../manifest/digest.ts';
import { checkedDigests, DEFAULT_DIGEST_CHOICE, digestNames, FileHasher, uncheckedNote, type DigestChoice, type ReadDigest } from './file-digest.ts';

export const COPY_CHUNK_BYTES = 1024 * 1024; // bytes per read: throughput without holding a file in memory

export interface ExpectedFile {
  readonly size: number; // bytes
  readonly sha256: string;
  readonly blake3: string;
}

export type VerifiedReadCode = 'FILE_SIZE_MISMATCH' | 'FILE_HASH_MISMATCH' | 'FILE_NOT_REGULAR' | 'FILE_UNREADABLE' | 'COPY_FAILED' | 'ABORTED';

export type VerifiedRead =
  | { readonly ok: true; readonly digest: ReadDigest }
  | { readonly ok: false; readonly code: VerifiedReadCode; readonly reason: string; readonly digest: ReadDigest | null };

export interface VerifiedReadOptions {
  /** Receives every chunk after it was hashed; a throw is COPY_FAILED. */
  readonly sink?: (chunk: Uint8Array) => Promise<void>;
  readonly signal?: AbortSignal;
  /** BLAKE3 implementation; the agent uses the WebAssembly one (default). */
  readonly blake3?: Blake3Factory;
  /** The digests computed and compared (default: BLAKE3). */
  readonly digests?: DigestChoice;
  readonly chunkBytes?: number;
  /** The walk's dev/ino: refuse a file that was swapped since the walk. */
  readonly expectIdentity?: { readonly dev: number; readonly ino: number };
  /** Called after each chunk with the bytes read so far (tests use it to change the drive mid-copy). */
  readonly onChunk?: (bytesRead: number) => Promise<void> | void;
}

const fail = (code: VerifiedReadCode, reason: string, digest: ReadDigest | null = null): VerifiedRead => ({ ok: false, code, reason, digest });

const errorCode = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/**
 * O_NOFOLLOW: a symlink swapped in since the walk is refused, not followed;
 * O_NONBLOCK: a named pipe swapped in is opened without waiting for a writer
 * (then refused by fstat), where a plain open would wait forever and hold
 * the thread. Neither flag exists on Windows (docs/agent.md).
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function openFailure(error: unknown): VerifiedRead {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'EMLINK') return fail('FILE_NOT_REGULAR', 'the file is a symbolic link now');
  return fail('FILE_UNREADABLE', `cannot open the file (${code ?? (error as Error).message})`);
}

/** lstat, or undefined when nothing is there (other errors are thrown). */
async function lstatOrNothing(path: string | Buffer): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Before the open: only a regular file is opened at all (a device or pipe can act on being opened). */
function notRegularNow(stats: { isFile(): boolean } | undefined): VerifiedRead | null {
  if (stats === undefined) return fail('FILE_UNREADABLE', 'the file is gone since the drive was listed');
  return stats.isFile() ? null : fail('FILE_NOT_REGULAR', 'the entry is no longer a regular file (a link, folder, device or pipe)');
}

/**
 * The checks of one verified read, whichever way its bytes are read: what
 * was opened, how much to ask for next (never more than one byte past the
 * listed size), growth, and the digests at the end.
 */
class ReadCheck {
  total = 0;
  readonly chunkBytes: number;
  private readonly expected: ExpectedFile;
  private readonly digest: FileHasher;

  constructor(expected: ExpectedFile, digest: FileHasher, chunkBytes = COPY_CHUNK_BYTES) {
    this.expected = expected;
    this.digest = digest;
    this.chunkBytes = chunkBytes;
  }

  /** The opened entry must be the regular file the walk saw, of the listed size. */
  opened(stats: Pick<Stats, 'dev' | 'ino' | 'size'> & { isFile(): boolean }, identity: VerifiedReadOptions['expectIdentity']): VerifiedRead | null {
    if (!stats.isFile()) return fail('FILE_NOT_REGULAR', 'the opened entry is not a regular file');
    if (identity && (stats.dev !== identity.dev || stats.ino !== identity.ino)) {
      return fail('FILE_UNREADABLE', 'the file was replaced since the drive was listed');
    }
    if (stats.size !== this.expected.size) {
      return fail('FILE_SIZE_MISMATCH', `the manifest says ${this.expected.size} bytes, the drive has ${stats.size}`);
    }
    return null;
  }

  /**
   * A read buffer: one byte more than the file needs at most, so a small file does not allocate (and the GC
   * reclaim) a whole chunk. Only the bytes read into it are ever used, so it need not be zeroed.
   */
  buffer(scratch?: Buffer): Buffer {
    const bytes = Math.min(this.chunkBytes, this.expected.size + 1);
    return scratch && scratch.length >= bytes ? scratch.subarray(0, bytes) : Buffer.allocUnsafe(bytes);
  }

  /** Bytes to ask for next: at most one past the listed size, enough to see that a file grew. */
  want(): number {
    return Math.min(this.chunkBytes, this.expected.size - this.total + 1);
  }

  aborted(): VerifiedRead {
    return fail('ABORTED', `cancelled after ${this.total} of ${this.expected.size} bytes`);
  }

  readFailed(error: unknown): VerifiedRead {
    return fail('FILE_UNREADABLE', `reading failed after ${this.total} bytes (${errorCode(error)})`);
  }

  /** Hashes a chunk just read; a refusal if the file grew past its listed size. */
  took(chunk: Uint8Array): VerifiedRead | null {
    this.total += chunk.length;
    if (this.total > this.expected.size) return fail('FILE_SIZE_MISMATCH', `the file grew past the ${this.expected.size} bytes the manifest lists while it was read`);
    this.digest.update(chunk);
    return null;
  }

  /** The verdict once a read returned no more bytes. */
  finish(): VerifiedRead {
    const result = this.digest.finish();
    const expected = this.expected;
    if (this.total < expected.size) return fail('FILE_SIZE_MISMATCH', `the file ended after ${this.total} of the ${expected.size} bytes the manifest lists`, result);
    // Every digest computed must match (docs/manifest.md §6.4); one that was not computed is null, never taken as matched.
    const differ = checkedDigests(this.digest.choice).filter((name) => {
      const got = result[name];
      return got === null || !sameHex(got, expected[name]);
    });
    if (differ.length > 0) {
      const which = `${digestNames(differ)} ${differ.length === 2 ? 'differ' : 'differs'}`;
      return fail('FILE_HASH_MISMATCH', `${which} from the manifest: the file changed after the kiosk scanned it${uncheckedNote(this.digest.choice)}`, result);
    }
    return { ok: true, digest: result };
  }
}

const sinkFailure = (error: unknown): VerifiedRead => fail('COPY_FAILED', `writing to the destination failed (${errorCode(error)})`);

export async function readVerified(source: string | Buffer, expected: ExpectedFile, options: VerifiedReadOptions = {}): Promise<VerifiedRead> {
  if (options.signal?.aborted) return fail('ABORTED', 'cancelled before the file was read');
  let handle: FileHandle;
  try {
    const refused = notRegularNow(await lstatOrNothing(source));
    if (refused) return refused;
    handle = await open(source, OPEN_FLAGS);
  } catch (error) {
    return openFailure(error);
  }
  try {
    const check = new ReadCheck(expected, await FileHasher.create(options.digests ?? DEFAULT_DIGEST_CHOICE, options.blake3), options.chunkBytes);
    const refused = check.opened(await handle.stat(), options.expectIdentity);
    if (refused) return refused;
    const buffer = check.buffer();
    for (;;) {
      if (options.signal?.aborted) return check.aborted();
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buffer, 0, check.want(), null));
      } catch (error) {
        return check.readFailed(error);
      }
      if (n === 0) return check.finish();
      const chunk = buffer.subarray(0, n);
      const grew = check.took(chunk);
      if (grew) return grew;
      if (options.sink) {
        try {
          await options.sink(chunk);
        } catch (error) {
          return sinkFailure(error);
        }
      }
      await options.onChunk?.(check.total);
    }
  } finally {
    await handle.close();
  }
}

export interface VerifiedReadSyncOptions {
  /** Receives every chunk after it was hashed; a throw is COPY_FAILED. */
  readonly sink?: (chunk: Uint8Array) => void;
  /** Polled before each read (a worker thread cannot take an abort message while it reads). */
  readonly aborted?: () => boolean;
  readonly chunkBytes?: number;
  readonly expectIdentity?: { readonly dev: number; readonly ino: number };
  /** A read buffer to reuse from file to file (a thread doing one file at a time); used when large enough. */
  readonly scratch?: Buffer;
}

/**
 * The same read with synchronous calls, for a worker thread that does one
 * file at a time: no round trips through libuv's thread pool, which the
 * event loop of the main thread then has to itself. `digest` is fresh, with
 * the digests the policy checks.
 */
export function readVerifiedSync(source: string | Buffer, expected: ExpectedFile, digest: FileHasher, options: VerifiedReadSyncOptions = {}): VerifiedRead {
  if (options.aborted?.()) return fail('ABORTED', 'cancelled before the file was read');
  let fd: number;
  try {
    const refused = notRegularNow(lstatSync(source, { throwIfNoEntry: false }));
    if (refused) return refused;
    fd = openSync(source, OPEN_FLAGS);
  } catch (error) {
    return openFailure(error);
  }
  try {
    const check = new ReadCheck(expected, digest, options.chunkBytes);
    const refused = check.opened(fstatSync(fd), options.expectIdentity);
    if (refused) return refused;
    const buffer = check.buffer(options.scratch);
    for (;;) {
      if (options.aborted?.()) return check.aborted();
      let n: number;
      try {
        n = readSync(fd, buffer, 0, check.want(), null);
      } catch (error) {
        return check.readFailed(error);
      }
      if (n === 0) return check.finish();
      const chunk = buffer.subarray(0, n);
      const grew = check.took(chunk);
      if (grew) return grew;
      if (options.sink) {
        try {
          options.sink(chunk);
        } catch (error) {
          return sinkFailure(error);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}
