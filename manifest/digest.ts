/**
 * One pass, two digests: every chunk read goes to SHA-256 and BLAKE3 together,
 * so a file is read once whatever its size, with memory bounded by the chunk.
 * BLAKE3 comes in through a small interface: the kiosk plugs in a native
 * implementation, the agent (a single executable that cannot embed native
 * addons) a WebAssembly one (wasmBlake3).
 */
import { createHash, type Hash } from 'node:crypto';
import type { IHasher } from 'hash-wasm';
import { simdBlake3, wasmSimdSupported } from './blake3-simd/index.ts';
import { EnginePool } from './engine-pool.ts';

export interface Blake3Hasher {
  update(data: Uint8Array): void;
  /** Lowercase hex of the 32-byte digest. */
  digestHex(): string;
}

export type Blake3Factory = () => Promise<Blake3Hasher>;

export interface FileDigest {
  readonly sha256: string;
  readonly blake3: string;
  readonly size: number; // bytes
}

/** Finished hash-wasm hashers kept for reuse (EnginePool). */
const wasmEngines = new EnginePool<IHasher>('wasmBlake3', 16, (h, data) => h.update(data), (h) => h.digest('hex'));

/**
 * hash-wasm's BLAKE3 (WebAssembly without SIMD, about a third of simdBlake3's
 * speed): the fallback where the engine has no WebAssembly SIMD, and an
 * independent implementation the SIMD one is tested against.
 */
export const hashWasmBlake3: Blake3Factory = async () => {
  // Loaded on first use: only engines without WebAssembly SIMD need it, and loading it cost each stage thread 50 ms.
  const hasher = wasmEngines.take() ?? (await (await import('hash-wasm')).createBLAKE3(256));
  hasher.init();
  return wasmEngines.hasher(hasher);
};

/**
 * BLAKE3 in WebAssembly, no native code, runs anywhere Node runs: the
 * project's own SIMD build (manifest/blake3-simd) where the engine has
 * WebAssembly SIMD, as Node has on x64 and arm64; else hash-wasm's.
 */
export const wasmBlake3: Blake3Factory = () => (wasmSimdSupported() ? simdBlake3() : hashWasmBlake3());

export class DualDigest {
  private readonly sha256: Hash = createHash('sha256');
  private readonly blake3: Blake3Hasher;
  private size = 0;
  private finished = false;

  private constructor(blake3: Blake3Hasher) {
    this.blake3 = blake3;
  }

  static async create(blake3: Blake3Factory = wasmBlake3): Promise<DualDigest> {
    return new DualDigest(await blake3());
  }

  update(chunk: Uint8Array): void {
    if (this.finished) throw new Error('DualDigest: update after finish');
    this.sha256.update(chunk);
    this.blake3.update(chunk);
    this.size += chunk.length;
  }

  get bytesSeen(): number {
    return this.size;
  }

  finish(): FileDigest {
    this.finished = true;
    return { sha256: this.sha256.digest('hex'), blake3: this.blake3.digestHex(), size: this.size };
  }
}
