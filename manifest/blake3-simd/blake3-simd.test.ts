import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBLAKE3 } from 'hash-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { simdBlake3, wasmSimdSupported } from './index.ts';
import {
  blake3ModuleBytes, CHUNK_BYTES, CHUNK_END, CHUNK_START, IV, LAYOUT, type Blake3Exports,
} from './module.ts';

const dir = mkdtempSync(join(tmpdir(), 'blake3-simd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The BLAKE3 test-vector input: byte i is i mod 251. */
function vectorInput(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
}

/** Deterministic bytes and sizes (xorshift32), so a failure reproduces from its seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

function randomBytesFrom(next: () => number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = next() & 0xff;
  return bytes;
}

async function simdHex(data: Uint8Array): Promise<string> {
  const hasher = await simdBlake3();
  hasher.update(data);
  return hasher.digestHex();
}

async function referenceHex(data: Uint8Array): Promise<string> {
  const hasher = await createBLAKE3(256);
  hasher.init();
  hasher.update(data);
  return hasher.digest('hex');
}

function b3sumHex(data: Uint8Array): string {
  const path = join(dir, `input-${data.length}`);
  writeFileSync(path, data);
  return execFileSync('/usr/bin/b3sum', ['--no-names', path], { encoding: 'utf8' }).trim();
}

// Lengths of the official BLAKE3 test vectors, plus the edges of this
// implementation's 64-chunk input buffer and multi-buffer inputs.
const VECTOR_LENGTHS = [
  0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744,
  102400, 63 * 1024 + 1, 65535, 65536, 65537, 2 * 65536, 2 * 65536 + 1024, 1024 * 1024 + 7, 5 * 1024 * 1024,
];

describe('simdBlake3', () => {
  it('runs here: this Node validates WebAssembly SIMD', () => {
    expect(wasmSimdSupported()).toBe(true);
  });

  it('hashes the empty input and "abc" to the published digests', async () => {
    expect(await simdHex(new Uint8Array(0))).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect(await simdHex(new TextEncoder().encode('abc'))).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  });

  it.each(VECTOR_LENGTHS)('agrees with hash-wasm on the test-vector input of %i bytes', async (length) => {
    const input = vectorInput(length);
    expect(await simdHex(input)).toBe(await referenceHex(input));
  });

  it.each([0, 1, 1024, 1025, 8193, 65537, 102400, 1024 * 1024 + 7, 5 * 1024 * 1024])(
    'agrees with b3sum on the test-vector input of %i bytes',
    async (length) => {
      const input = vectorInput(length);
      expect(await simdHex(input)).toBe(b3sumHex(input));
    },
  );

  it('gives the one-shot digest whatever the update sizes, including empty updates', async () => {
    for (let seed = 1; seed <= 24; seed++) {
      const next = prng(seed * 0x9e3779b1);
      const length = seed % 3 === 0 ? next() % 4096 : next() % (3 * 1024 * 1024);
      const data = randomBytesFrom(next, length);
      const hasher = await simdBlake3();
      for (let offset = 0; offset <= length; ) {
        // Mostly sizes near the block, chunk and buffer edges, sometimes large ones.
        const kind = next() % 6;
        const edge = [0, 1, 63, 64, 65, 1023, 1024, 1025, 65535, 65536, 65537][next() % 11]!;
        const size = kind === 0 ? 0 : kind < 4 ? edge : next() % (kind === 4 ? 300 * 1024 : 4096);
        hasher.update(data.subarray(offset, offset + size));
        if (offset === length) break;
        offset = Math.min(length, offset + size);
      }
      expect({ seed, length, hex: hasher.digestHex() }).toEqual({ seed, length, hex: await referenceHex(data) });
    }
  });

  it('keeps interleaved hashers independent and resets reused ones', async () => {
    const next = prng(7);
    const inputs = [3 * 65536 + 5, 1, 70000, 0, 2049].map((length) => randomBytesFrom(next, length));
    const expected = await Promise.all(inputs.map(referenceHex));
    for (let round = 0; round < 3; round++) {
      const hashers = await Promise.all(inputs.map(() => simdBlake3()));
      for (let offset = 0; offset < 3 * 65536 + 5; offset += 4099) {
        hashers.forEach((h, i) => h.update(inputs[i]!.subarray(offset, offset + 4099)));
      }
      expect(hashers.map((h) => h.digestHex())).toEqual(expected);
    }
    // Many small hashes in a row through the pool of finished instances.
    for (let i = 0; i < 200; i++) {
      const input = randomBytesFrom(next, next() % 3000);
      expect(await simdHex(input)).toBe(await referenceHex(input));
    }
  });

  it('refuses an update after the digest and a second digest', async () => {
    const hasher = await simdBlake3();
    hasher.update(new Uint8Array(10));
    hasher.digestHex();
    expect(() => hasher.update(new Uint8Array(1))).toThrow(/update after digest/);
    expect(() => hasher.digestHex()).toThrow(/digest twice/);
  });

  it('does not disturb a finished instance handed on to the next hasher', async () => {
    const first = await simdBlake3();
    first.update(vectorInput(5000));
    const firstHex = first.digestHex();
    const second = await simdBlake3(); // likely the same instance, from the pool
    expect(() => first.update(new Uint8Array(1))).toThrow();
    second.update(vectorInput(3));
    expect(second.digestHex()).toBe(await referenceHex(vectorInput(3)));
    expect(firstHex).toBe(await referenceHex(vectorInput(5000)));
  });
});

/** Scalar BLAKE3 compression (c2sp.org/BLAKE3 §3.3), the test's independent reference for the SIMD kernel. */
function referenceCompress(cv: readonly number[], block: readonly number[], counter: bigint, blockLen: number, flags: number): number[] {
  const permutation = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const v = [...cv, IV[0]!, IV[1]!, IV[2]!, IV[3]!, Number(counter & 0xffffffffn), Number(counter >> 32n), blockLen, flags];
  let m = [...block];
  const rotr = (x: number, n: number): number => ((x >>> n) | (x << (32 - n))) >>> 0;
  const g = (a: number, b: number, c: number, d: number, x: number, y: number): void => {
    v[a] = (v[a]! + v[b]! + x) >>> 0;
    v[d] = rotr(v[d]! ^ v[a], 16);
    v[c] = (v[c]! + v[d]) >>> 0;
    v[b] = rotr(v[b]! ^ v[c], 12);
    v[a] = (v[a] + v[b] + y) >>> 0;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] = (v[c] + v[d]) >>> 0;
    v[b] = rotr(v[b] ^ v[c], 7);
  };
  for (let round = 0; round < 7; round++) {
    g(0, 4, 8, 12, m[0]!, m[1]!); g(1, 5, 9, 13, m[2]!, m[3]!); g(2, 6, 10, 14, m[4]!, m[5]!); g(3, 7, 11, 15, m[6]!, m[7]!);
    g(0, 5, 10, 15, m[8]!, m[9]!); g(1, 6, 11, 12, m[10]!, m[11]!); g(2, 7, 8, 13, m[12]!, m[13]!); g(3, 4, 9, 14, m[14]!, m[15]!);
    const previous = m;
    m = permutation.map((from) => previous[from]!);
  }
  return Array.from({ length: 8 }, (_, i) => (v[i]! ^ v[i + 8]!) >>> 0);
}

/** `count` little-endian words at `offset`, as BLAKE3 and wasm memory both lay them out. */
function wordsAt(bytes: Uint8Array, offset: number, count: number): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * count);
  return Array.from({ length: count }, (_, i) => view.getUint32(4 * i, true));
}

function referenceChunkCv(chunk: Uint8Array, counter: bigint): number[] {
  let cv = [...IV];
  for (let b = 0; b < 16; b++) {
    cv = referenceCompress(cv, wordsAt(chunk, 64 * b, 16), counter, 64, (b === 0 ? CHUNK_START : 0) | (b === 15 ? CHUNK_END : 0));
  }
  return cv;
}

interface WebAssemblyApi {
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Instance: new (module: object) => { readonly exports: object };
}

describe('generated BLAKE3 module', () => {
  it('gives each SIMD lane its own 64-bit chunk counter, carrying into the high word', () => {
    // Files of 4 TiB are out of reach for a test, so drive the kernel directly:
    // four chunks whose counters straddle 2^32, against the scalar reference.
    const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly; // lib es2024 declares no WebAssembly values
    const wasm = new api.Instance(new api.Module(blake3ModuleBytes())).exports as Blake3Exports;
    const memory = new Uint8Array(wasm.memory.buffer);
    const chunks = randomBytesFrom(prng(99), 4 * CHUNK_BYTES);
    memory.set(chunks, LAYOUT.input);
    const start = 0xffff_fffen; // lanes 0x1_0000_0000 and 0x1_0000_0001 need the carry
    const out = LAYOUT.stack;
    for (let lane = 0; lane < 4; lane++) {
      // A one-chunk subtree per call: the kernel's lane 0 gets `start + lane`, lanes 1-3 the next counters.
      const counter = start + BigInt(lane);
      wasm.hashSubtree(LAYOUT.input + lane * CHUNK_BYTES, 1, Number(counter & 0xffffffffn), Number(counter >> 32n), LAYOUT.scratch, out);
      expect(wordsAt(memory, out, 8)).toEqual(referenceChunkCv(chunks.subarray(lane * CHUNK_BYTES, (lane + 1) * CHUNK_BYTES), counter));
      // Lanes 1-3 of that call hashed the following chunks with counters + 1..3: check them in scratch.
      for (let other = lane + 1; other < 4; other++) {
        const cv = wordsAt(memory, LAYOUT.scratch + (other - lane) * 32, 8);
        expect(cv).toEqual(referenceChunkCv(chunks.subarray(other * CHUNK_BYTES, (other + 1) * CHUNK_BYTES), start + BigInt(other)));
      }
    }
  });
});
