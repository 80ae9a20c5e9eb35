/**
 * Hashing benchmark: the kiosk's one-read dual digest (SHA-256 + BLAKE3)
 * against the real command-line tools on the same file, from page cache.
 *
 *   node bench/hash.ts [--mib 1024]
 *
 * Prints MB/s per candidate and ratios against `sha256sum` + `b3sum`, the
 * time the two tools need to read the file twice.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DualDigest, hashWasmBlake3, wasmBlake3, type Blake3Factory } from '../manifest/index.ts';
import { hashFile, loadNativeBlake3, READ_CHUNK_BYTES } from '../kiosk/engines/hash-file.ts';
import { simdBlake3 } from '../manifest/blake3-simd/index.ts';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' } } });
const mib = Number(values.mib);
const dir = mkdtempSync(join(tmpdir(), 'bench-hash-'));
const file = join(dir, 'data.bin');
const block = randomBytes(16 * 1024 * 1024);
writeFileSync(file, '');
for (let i = 0; i < mib / 16; i++) writeFileSync(file, block, { flag: 'a' });
const bytes = mib * 1024 * 1024;

function seconds(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
async function secondsAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
/** Best of three runs: page cache warm, noise from the other core trimmed. */
async function best(fn: () => unknown): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) runs.push(await secondsAsync(async () => { await fn(); }));
  return Math.min(...runs);
}

function readAll(each: (chunk: Buffer) => void): void {
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    each(buf.subarray(0, n));
  }
  closeSync(fd);
}

async function blake3Only(factory: Blake3Factory): Promise<void> {
  const h = await factory();
  readAll((c) => h.update(c));
  h.digestHex();
}

readAll(() => undefined); // warm the page cache
const native = loadNativeBlake3();
const results: Array<[string, number]> = [];
const sha256sum = await best(() => execFileSync('sha256sum', [file]));
const b3sum1 = await best(() => execFileSync('b3sum', ['--num-threads', '1', file]));
const b3sumAll = await best(() => execFileSync('b3sum', [file]));
results.push(['sha256sum (coreutils)', sha256sum], ['b3sum --num-threads 1', b3sum1], ['b3sum (all cores)', b3sumAll]);
results.push(['node:crypto sha256 alone', await best(() => seconds(() => { const h = createHash('sha256'); readAll((c) => h.update(c)); h.digest(); }))]);
if (native) results.push(['@napi-rs/blake-hash blake3 alone', await best(() => blake3Only(native))]);
results.push(['hash-wasm blake3 alone', await best(() => blake3Only(hashWasmBlake3))]);
results.push(['simd-wasm blake3 alone', await best(() => blake3Only(simdBlake3))]);
if (native) results.push(['hashFile: sha256 + native blake3, one read (kiosk)', await best(() => hashFile(file, { blake3: native }))]);
results.push(['hashFile: sha256 + simd-wasm blake3, one read (agent)', await best(() => hashFile(file, { blake3: wasmBlake3 }))]);
results.push(['DualDigest sync loop, hash-wasm blake3', await best(async () => { const d = await DualDigest.create(hashWasmBlake3); readAll((c) => d.update(c)); d.finish(); })]);
results.push(['DualDigest sync loop, simd-wasm blake3', await best(async () => { const d = await DualDigest.create(simdBlake3); readAll((c) => d.update(c)); d.finish(); })]);

const tools = sha256sum + b3sum1;
console.log(`hashing ${mib} MiB from page cache on ${process.version}; best of 3 runs`);
console.log('candidate'.padEnd(54) + 'MB/s'.padStart(8) + '  ratio to sha256sum+b3sum(1 thread)');
for (const [name, s] of results) {
  console.log(`${name.padEnd(54)}${(bytes / s / 1e6).toFixed(0).padStart(8)}  ${(s / tools).toFixed(2)}x`);
}
rmSync(dir, { recursive: true, force: true });
