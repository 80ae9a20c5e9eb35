/**
 * The generated drive tree the benchmarks share: thousands of files from
 * 1 KiB to 200 MiB, some zip archives, about `mib` MiB in all, filled with
 * deterministic, poorly compressible bytes so scanners and hashes do real work.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildZip } from '../test/fixtures/archives/zip.ts';

/** Deterministic xorshift filler (the same seed gives the same bytes). */
export function filler(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (let i = size - (size % 4); i < size; i++) out[i] = i & 0xff;
  return out;
}

/** A mixed tree under `root`: large images, project parts, archives and small notes. */
export async function buildTree(root: string, mib: number): Promise<{ files: number; bytes: number }> {
  const budget = mib * 1024 * 1024;
  let bytes = 0;
  let files = 0;
  const big = [200, 120, 64, 32, 16].map((m) => m * 1024 * 1024);
  let seed = 1;
  const put = (rel: string, data: Buffer | Uint8Array): void => {
    const path = join(root, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, data);
    bytes += data.length;
    files++;
  };
  for (const size of big) if (bytes + size < budget * 0.6) put(`images/disk-${files}.bin`, filler(size, seed++));
  for (let i = 0; bytes < budget * 0.8; i++) put(`projects/p${i % 40}/part-${i}.dat`, filler(256 * 1024 + (i % 7) * 131072, seed++));
  for (let i = 0; i < 40; i++) put(`archives/bundle-${i}.zip`, await buildZip([{ name: 'a.dat', data: filler(512 * 1024, seed++), method: 'store' }, { name: 'b.txt', data: Buffer.from('notes '.repeat(2000)) }]));
  for (let i = 0; bytes < budget; i++) put(`docs/d${i % 100}/note-${i}.txt`, Buffer.from(`line ${i}\n`.repeat(128 + (i % 64) * 64)));
  return { files, bytes };
}
