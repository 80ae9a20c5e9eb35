import { randomBytes } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bzip2, cabinet, sevenZip, xz, zstd } from '../../test/fixtures/archives/debian-tools.ts';
import { buildRar5 } from '../../test/fixtures/archives/rar5.ts';
import { buildTar } from '../../test/fixtures/archives/tar.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { EmbeddedArchiveFinder } from './embedded-archive.ts';

const payload = Buffer.from('Write-Host "run me"\r\n');

/** Feeds `bytes` to a finder in pieces of `size` bytes, as the scan reads them. */
function find(bytes: Uint8Array, size = 1024 * 1024): { format: string; offset: number } | null {
  const finder = new EmbeddedArchiveFinder();
  const buffer = new Uint8Array(size); // reused between pieces, as the scan's read buffer is
  for (let at = 0; at < bytes.length; at += size) {
    const piece = bytes.subarray(at, at + size);
    buffer.set(piece);
    finder.push(buffer.subarray(0, piece.length));
    buffer.fill(0x55);
  }
  finder.finish();
  return finder.found === null ? null : { ...finder.found };
}

/** A PNG-like head, then `prefix` bytes of noise, then the archive, then more noise. */
function hide(archive: Uint8Array, prefix: number): Uint8Array {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([png, randomBytes(prefix), archive, randomBytes(777)]);
}

describe('archives hidden inside other files', () => {
  it('finds each format 7-Zip opens at an offset, wherever the reads split it', async () => {
    const archives: Array<[string, Uint8Array]> = [
      ['7z', sevenZip([['run.ps1', payload]])],
      ['xz', xz(payload)],
      ['tar', buildTar([{ name: 'run.ps1', data: payload }])],
      ['cab', cabinet([['run.ps1', payload]])],
      ['rar', buildRar5([{ name: 'run.ps1', data: payload }])],
      ['bzip2', bzip2(payload)],
      ['gzip', gzipSync(payload)],
      ['zstd', zstd(payload)],
      ['zip', await buildZip([{ name: 'run.ps1', data: payload }])],
    ];
    for (const [format, archive] of archives) {
      for (const prefix of [5000, 1024 * 1024 - 300, 1024 * 1024 + 3]) {
        const file = hide(archive, prefix);
        for (const size of [4096, 1024 * 1024]) {
          const found = find(file, size);
          expect(found?.format, `${format} at ${prefix}, reads of ${size}`).toBe(format);
          // The tar header starts 257 bytes before its magic; every other at its signature.
          expect(found?.offset, `${format} at ${prefix}`).toBe(8 + prefix);
        }
      }
    }
  });

  it('finds nothing in noise, compressed data and text that only mention the signatures', () => {
    for (let i = 0; i < 4; i++) expect(find(randomBytes(16 * 1024 * 1024))).toBeNull();
    expect(find(deflateSync(randomBytes(4 * 1024 * 1024)))).toBeNull();
    expect(find(Buffer.from('Notes: 7z, ustar, MSCF, Rar!, BZh9, PK and xz are archive magic numbers.\n'.repeat(1000)))).toBeNull();
    expect(find(Buffer.from('a bzip2 block starts BZh91AY&SY then its data\r\n'.repeat(100)))).toBeNull();
    const junk = randomBytes(64 * 1024);
    expect(find(Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), junk]))).toBeNull(); // a gzip header, then no deflate data
    expect(find(Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58]), junk]))).toBeNull(); // zstd magic, then no frame
  });

  it('looks where 7-Zip looks: an archive starting past the first 8 MiB opens nowhere and is not searched for', () => {
    const archive = sevenZip([['run.ps1', payload]]);
    expect(find(hide(archive, 8 * 1024 * 1024 - 100))?.format).toBe('7z');
    expect(find(hide(archive, 9 * 1024 * 1024))).toBeNull();
  });
});
