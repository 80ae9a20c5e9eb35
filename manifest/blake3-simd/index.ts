/**
 * BLAKE3 in WebAssembly SIMD, generated at load time by module.ts (no
 * toolchain, no native addon: it runs inside the agent's single executable).
 * Same contract as manifest/digest.ts's wasmBlake3; about three times its
 * throughput (bench/hash.ts).
 *
 * Streaming: input is copied into the instance's buffer of SUBTREE_CHUNKS
 * whole chunks. A full buffer is hashed only when more input arrives, so the
 * last chunk, which must carry CHUNK_END and perhaps ROOT, is never hashed
 * before the digest is asked for. Every flushed buffer is an aligned subtree
 * of SUBTREE_CHUNKS chunks, so its CV goes onto the stack as one entry (the
 * chaining-value stack of the BLAKE3 paper, §5.1). Sections: c2sp.org/BLAKE3.
 */
import type { Blake3Factory, Blake3Hasher } from '../digest.ts';
import { EnginePool } from '../engine-pool.ts';
import {
  blake3ModuleBytes, CHUNK_BYTES, BLOCK_BYTES, CHUNK_END, CHUNK_START, CV_BYTES, IV, LAYOUT, PARENT, ROOT, simdProbeModuleBytes,
  SUBTREE_CHUNKS, type Blake3Exports,
} from './module.ts';

const TWO_POW_32 = 0x1_0000_0000;

/**
 * The part of the WebAssembly JS API used here. The project's lib (es2024,
 * no DOM) declares no WebAssembly values, so this names what we rely on
 * instead of declaring globals for every file.
 */
interface WebAssemblyApi {
  validate(bytes: Uint8Array<ArrayBuffer>): boolean;
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Instance: new (module: object) => { readonly exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

let simdSupported: boolean | undefined;

/** Whether this engine validates WebAssembly SIMD (v128); without it simdBlake3 cannot compile. */
export function wasmSimdSupported(): boolean {
  return (simdSupported ??= wasmApi.validate(simdProbeModuleBytes()));
}

let compiled: object | undefined;

/** Generated and compiled once per thread; instances share the code (and V8's tier-up of it). */
function blake3Module(): object {
  return (compiled ??= new wasmApi.Module(blake3ModuleBytes()));
}

/** One instance and the streaming state of the hash it is computing. */
class SimdBlake3Engine {
  private readonly wasm: Blake3Exports;
  private readonly memory: Uint8Array;
  private buffered = 0; // bytes waiting at LAYOUT.input
  private chunks = 0; // chunks already on the stack (a multiple of SUBTREE_CHUNKS until finish)
  private depth = 0; // CV stack entries

  constructor() {
    this.wasm = new wasmApi.Instance(blake3Module()).exports as Blake3Exports;
    this.memory = new Uint8Array(this.wasm.memory.buffer); // fixed size (min = max pages): never detached by a grow
    // Wasm memory is little-endian everywhere; a Uint32Array would follow the host (s390x is big-endian).
    const words = new DataView(this.wasm.memory.buffer, LAYOUT.iv, CV_BYTES);
    IV.forEach((word, i) => words.setUint32(4 * i, word, true));
  }

  reset(): void {
    this.buffered = 0;
    this.chunks = 0;
    this.depth = 0;
  }

  update(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length) {
      // Full, and input follows: these chunks are not the last, hash them now.
      if (this.buffered === LAYOUT.inputBytes) this.hashBuffered();
      const take = Math.min(LAYOUT.inputBytes - this.buffered, data.length - offset);
      this.memory.set(offset === 0 && take === data.length ? data : data.subarray(offset, offset + take), LAYOUT.input + this.buffered);
      this.buffered += take;
      offset += take;
    }
  }

  /** Lowercase hex of the 32-byte root output (§4.3.2). The engine is reusable after reset(). */
  finish(): string {
    // Whole chunks before the last one, as aligned subtrees, largest first:
    // `chunks` is a multiple of SUBTREE_CHUNKS here, so each stays aligned.
    const whole = this.buffered === 0 ? 0 : Math.ceil(this.buffered / CHUNK_BYTES) - 1;
    let at = LAYOUT.input;
    for (let size = SUBTREE_CHUNKS / 2; size >= 1; size /= 2) {
      if ((whole & size) === 0) continue;
      this.pushSubtree(at, size);
      at += size * CHUNK_BYTES;
    }

    // The last chunk (1 to 1024 bytes; 0 only for empty input) block by block,
    // the final block zero-padded with its real length (§4.2). ROOT if it is alone.
    const last = this.buffered - (at - LAYOUT.input);
    const blocks = Math.max(1, Math.ceil(last / BLOCK_BYTES));
    this.memory.fill(0, at + last, at + blocks * BLOCK_BYTES);
    const cv = LAYOUT.stack + this.depth * CV_BYTES;
    const counterLo = this.chunks % TWO_POW_32;
    const counterHi = Math.floor(this.chunks / TWO_POW_32);
    for (let b = 0; b < blocks; b++) {
      const final = b === blocks - 1;
      const flags = (b === 0 ? CHUNK_START : 0) | (final ? CHUNK_END | (this.depth === 0 ? ROOT : 0) : 0);
      this.wasm.compress(b === 0 ? LAYOUT.iv : cv, at + b * BLOCK_BYTES, final ? last - b * BLOCK_BYTES : BLOCK_BYTES, counterLo, counterHi, flags, cv);
    }

    // §4.3.1: fold the stack right to left onto the last chunk's CV; the final parent is the root.
    for (let i = this.depth - 1; i >= 0; i--) {
      const left = LAYOUT.stack + i * CV_BYTES; // left CV, then the right one just after it: one 64-byte block
      this.wasm.compress(LAYOUT.iv, left, BLOCK_BYTES, 0, 0, PARENT | (i === 0 ? ROOT : 0), left);
    }
    return Buffer.from(this.wasm.memory.buffer, LAYOUT.stack, CV_BYTES).toString('hex');
  }

  private hashBuffered(): void {
    this.pushSubtree(LAYOUT.input, SUBTREE_CHUNKS);
    this.buffered = 0;
  }

  /**
   * Hashes `size` whole chunks at `at` (a power of two, aligned at `chunks`)
   * onto the stack, then merges like a binary counter: each trailing zero bit
   * of the new chunk count in units of `size` is a completed parent. Never the
   * root: the last chunk is always still to come.
   */
  private pushSubtree(at: number, size: number): void {
    const top = LAYOUT.stack + this.depth * CV_BYTES;
    this.wasm.hashSubtree(at, size, this.chunks % TWO_POW_32, Math.floor(this.chunks / TWO_POW_32), LAYOUT.scratch, top);
    this.depth += 1;
    this.chunks += size;
    for (let count = this.chunks / size; count % 2 === 0; count /= 2) {
      this.depth -= 1;
      const left = LAYOUT.stack + (this.depth - 1) * CV_BYTES;
      this.wasm.compress(LAYOUT.iv, left, BLOCK_BYTES, 0, 0, PARENT, left);
    }
  }
}

/** Finished engines kept for reuse (EnginePool); each holds LAYOUT.pages (2) x 64 KiB of wasm memory. */
const engines = new EnginePool<SimdBlake3Engine>('simdBlake3', 16, (e, data) => e.update(data), (e) => e.finish());

function createHasher(): Blake3Hasher {
  const engine = engines.take() ?? new SimdBlake3Engine();
  engine.reset();
  return engines.hasher(engine);
}

/** BLAKE3 with WebAssembly SIMD; rejects where SIMD is missing (see wasmSimdSupported). */
export const simdBlake3: Blake3Factory = () => new Promise((resolve) => resolve(createHasher()));
