import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('archives 7-Zip opens that the first search missed (second red-team round)', () => {
  it('finds a 7z whose minor version is 5, a zip needing version 6.4 with a control character in its name, and a tar with the signed checksum', async () => {
    const seven = Buffer.from(sevenZip([['run.ps1', payload]]));
    seven[7] = 5; // 7-Zip checks only the major version; the start header's CRC does not cover these bytes
    expect(find(hide(seven, 5000))).toEqual({ format: '7z', offset: 8 + 5000 });
    const zip = Buffer.from(await buildZip([{ name: 'run\u0001.ps1', data: payload }]));
    zip.writeUInt16LE(64, 4);
    expect(find(hide(zip, 5000))).toEqual({ format: 'zip', offset: 8 + 5000 });
    const tar = Buffer.from(buildTar([{ name: 'run.ps1', data: payload }]));
    tar.fill(0xe9, 265, 272); // an owner name of high bytes: the signed sum differs from the unsigned one
    tar.fill(0x20, 148, 156);
    let signed = 0;
    for (let i = 0; i < 512; i++) signed += tar[i]! > 127 ? tar[i]! - 256 : tar[i]!;
    tar.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(find(hide(tar, 5000))).toEqual({ format: 'tar', offset: 8 + 5000 });
  });

  it('finds an NSIS installer\'s data block, as makensis writes it, after a picture', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-nsis-'));
    try {
      writeFileSync(join(dir, 'run.ps1'), payload);
      writeFileSync(join(dir, 'inst.nsi'), 'OutFile "inst.exe"\nSetCompressor /SOLID lzma\nSection\nSetOutPath "$TEMP"\nFile "run.ps1"\nSectionEnd\n');
      const r = spawnSync('makensis', ['-V1', 'inst.nsi'], { cwd: dir });
      expect(r.status, `makensis (Debian package nsis): ${r.stderr?.toString() ?? r.error?.message}`).toBe(0);
      const exe = readFileSync(join(dir, 'inst.exe'));
      const block = exe.subarray(exe.indexOf(Buffer.concat([Buffer.from([0xef, 0xbe, 0xad, 0xde]), Buffer.from('NullsoftInst')])) - 4);
      expect(find(hide(block, 5000))).toEqual({ format: 'nsis', offset: 8 + 5000 });
      expect(find(hide(block.subarray(0, 4), 5000))).toBeNull(); // the flags alone are no header
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds an Intel HEX image at the start of a text file, which 7-Zip opens, and not hex records later in the text', () => {
    const records = (data: Buffer): string => {
      const lines: string[] = [];
      for (let at = 0; at < data.length; at += 16) {
        const chunk = data.subarray(at, at + 16);
        const rec = Buffer.concat([Buffer.from([chunk.length, at >> 8, at & 0xff, 0]), chunk]);
        let sum = 0;
        for (const b of rec) sum += b;
        lines.push(`:${Buffer.concat([rec, Buffer.from([(256 - (sum & 0xff)) & 0xff])]).toString('hex').toUpperCase()}`);
      }
      return `${[...lines, ':00000001FF'].join('\r\n')}\r\n`;
    };
    const hex = records(Buffer.concat([Buffer.from('MZ'), randomBytes(200)]));
    expect(find(Buffer.from(hex))).toEqual({ format: 'ihex', offset: 0 });
    expect(find(Buffer.from(`Firmware notes\r\n${hex}`))).toBeNull();
    expect(find(Buffer.from(':10 minutes: pump 3 restarted\r\n'))).toBeNull();
    const broken = hex.replace(/^:(..)(.)/, (_, n: string, c: string) => `:${n}${c === '0' ? '1' : '0'}`);
    expect(find(Buffer.from(broken))).toBeNull(); // its first record's checksum no longer adds up
  });
});
