/**
 * Hashes a file with SHA-256 and BLAKE3 in one streaming read. The kiosk uses
 * the native BLAKE3 (@napi-rs/blake-hash, measured in bench/hash.ts) and falls
 * back to WebAssembly when the addon cannot load.
 */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { DualDigest, EnginePool, wasmBlake3, type Blake3Factory, type FileDigest } from '../../manifest/index.ts';

export const READ_CHUNK_BYTES = 1024 * 1024; // bytes per read: large enough for throughput, small for memory

interface NativeBlake3 {
  update(input: Uint8Array): unknown;
  digest(format: string): string;
  reset(): void;
}

let nativeFactory: Blake3Factory | null | undefined;

/** The native BLAKE3 when its addon loads here, else null. */
export function loadNativeBlake3(): Blake3Factory | null {
  if (nativeFactory !== undefined) return nativeFactory;
  try {
    const require = createRequire(import.meta.url);
    const { Blake3Hasher } = require('@napi-rs/blake-hash') as { Blake3Hasher: new () => NativeBlake3 };
    // Finished hashers are reset and reused: each holds native memory that only a garbage collection
    // would free, and V8 does not see it, so a scan of 100 000 small files grew by one per file.
    const engines = new EnginePool<NativeBlake3>('native BLAKE3', 16, (h, data) => void h.update(data), (h) => {
      const hex = h.digest('hex');
      h.reset();
      return hex;
    });
    nativeFactory = () => Promise.resolve(engines.hasher(engines.take() ?? new Blake3Hasher()));
  } catch {
    nativeFactory = null;
  }
  return nativeFactory;
}

export function preferredBlake3(): Blake3Factory {
  return loadNativeBlake3() ?? wasmBlake3;
}

export interface HashFileOptions {
  readonly signal?: AbortSignal;
  readonly blake3?: Blake3Factory;
  /** Called after each chunk with the bytes hashed so far. */
  readonly onProgress?: (bytes: number) => void;
}

export async function hashFile(path: string, options: HashFileOptions = {}): Promise<FileDigest> {
  const digest = await DualDigest.create(options.blake3 ?? preferredBlake3());
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK_BYTES, signal: options.signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    digest.update(chunk);
    options.onProgress?.(digest.bytesSeen);
  }
  return digest.finish();
}
