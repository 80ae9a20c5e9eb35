/**
 * Reads one file from the drive exactly once, hashing every byte with
 * SHA-256 and BLAKE3 in the same pass (manifest's DualDigest, BLAKE3 in
 * WebAssembly) and handing the same bytes to an optional sink (the staging
 * file). It never reads more than one byte past the listed size, so a file
 * that grows is stopped at once; a file that shrinks, changes or cannot be
 * read fails. The caller keeps the sink's bytes only on { ok: true }.
 */
import { timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DualDigest, wasmBlake3, type Blake3Factory, type FileDigest } from '../manifest/index.ts';

export const COPY_CHUNK_BYTES = 1024 * 1024; // bytes per read: throughput without holding a file in memory

export interface ExpectedFile {
  readonly size: number; // bytes
  readonly sha256: string;
  readonly blake3: string;
}

export type VerifiedReadCode = 'FILE_SIZE_MISMATCH' | 'FILE_HASH_MISMATCH' | 'FILE_NOT_REGULAR' | 'FILE_UNREADABLE' | 'COPY_FAILED' | 'ABORTED';

export type VerifiedRead =
  | { readonly ok: true; readonly digest: FileDigest }
  | { readonly ok: false; readonly code: VerifiedReadCode; readonly reason: string; readonly digest: FileDigest | null };

export interface VerifiedReadOptions {
  /** Receives every chunk after it was hashed; a throw is COPY_FAILED. */
  readonly sink?: (chunk: Uint8Array) => Promise<void>;
  readonly signal?: AbortSignal;
  /** BLAKE3 implementation; the agent uses the WebAssembly one (default). */
  readonly blake3?: Blake3Factory;
  readonly chunkBytes?: number;
  /** The walk's dev/ino: refuse a file that was swapped since the walk. */
  readonly expectIdentity?: { readonly dev: number; readonly ino: number };
  /** Called after each chunk with the bytes read so far (tests use it to change the drive mid-copy). */
  readonly onChunk?: (bytesRead: number) => Promise<void> | void;
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

const fail = (code: VerifiedReadCode, reason: string, digest: FileDigest | null = null): VerifiedRead => ({ ok: false, code, reason, digest });

export async function readVerified(source: string | Buffer, expected: ExpectedFile, options: VerifiedReadOptions = {}): Promise<VerifiedRead> {
  if (options.signal?.aborted) return fail('ABORTED', 'cancelled before the file was read');
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: a symlink swapped in since the walk is refused, not followed (not on Windows: see docs/agent.md).
    handle = await open(source, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') return fail('FILE_NOT_REGULAR', 'the file is a symbolic link now');
    return fail('FILE_UNREADABLE', `cannot open the file (${code ?? (error as Error).message})`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return fail('FILE_NOT_REGULAR', 'the opened entry is not a regular file');
    if (options.expectIdentity && (stats.dev !== options.expectIdentity.dev || stats.ino !== options.expectIdentity.ino)) {
      return fail('FILE_UNREADABLE', 'the file was replaced since the drive was listed');
    }
    if (stats.size !== expected.size) {
      return fail('FILE_SIZE_MISMATCH', `the manifest says ${expected.size} bytes, the drive has ${stats.size}`);
    }
    const digest = await DualDigest.create(options.blake3 ?? wasmBlake3);
    const chunkBytes = options.chunkBytes ?? COPY_CHUNK_BYTES;
    // One byte more than the file needs at most: a small file does not allocate (and the GC reclaim) a whole chunk.
    // Only the bytes read into it are ever used, so it need not be zeroed.
    const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, expected.size + 1));
    let total = 0;
    for (;;) {
      if (options.signal?.aborted) return fail('ABORTED', `cancelled after ${total} of ${expected.size} bytes`);
      // Ask for at most one byte past the listed size: enough to see that a file grew.
      const want = Math.min(chunkBytes, expected.size - total + 1);
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buffer, 0, want, null));
      } catch (error) {
        return fail('FILE_UNREADABLE', `reading failed after ${total} bytes (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
      if (n === 0) break;
      total += n;
      if (total > expected.size) return fail('FILE_SIZE_MISMATCH', `the file grew past the ${expected.size} bytes the manifest lists while it was read`);
      const chunk = buffer.subarray(0, n);
      digest.update(chunk);
      if (options.sink) {
        try {
          await options.sink(chunk);
        } catch (error) {
          return fail('COPY_FAILED', `writing to the destination failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
        }
      }
      await options.onChunk?.(total);
    }
    const result = digest.finish();
    if (total < expected.size) return fail('FILE_SIZE_MISMATCH', `the file ended after ${total} of the ${expected.size} bytes the manifest lists`, result);
    const shaOk = sameHex(result.sha256, expected.sha256);
    const blakeOk = sameHex(result.blake3, expected.blake3);
    if (!shaOk || !blakeOk) {
      const which = !shaOk && !blakeOk ? 'SHA-256 and BLAKE3 differ' : !shaOk ? 'SHA-256 differs' : 'BLAKE3 differs';
      return fail('FILE_HASH_MISMATCH', `${which} from the manifest: the file changed after the kiosk scanned it`, result);
    }
    return { ok: true, digest: result };
  } finally {
    await handle.close();
  }
}
