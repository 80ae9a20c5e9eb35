import { deflateRawSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { detectContainer, layerContentName } from './container-format.ts';

const bytes = (...parts: Array<string | number[]>): Uint8Array =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

function ustar(): Uint8Array {
  const block = Buffer.alloc(512);
  block.write('notes.txt', 0, 'latin1');
  block.write('ustar\u000000', 257, 'latin1');
  return block;
}

describe('container detection by content', () => {
  it('recognises each archive and compression format by its first bytes, whatever the name', () => {
    const iso = Buffer.alloc(0x8006);
    iso.write('\u0001CD001', 0x8000, 'latin1');
    const cases: Array<[Uint8Array, string]> = [
      [bytes('PK', [3, 4], 'rest'), 'zip'],
      [bytes('PK', [5, 6], Array<number>(18).fill(0)), 'zip'],
      [bytes([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]), '7z'],
      [bytes('Rar!', [0x1a, 0x07, 0x01, 0x00]), 'rar'],
      [bytes('MSCF', [0, 0, 0, 0]), 'cab'],
      [gzipSync('x'), 'gzip'],
      [bytes('BZh9', [0x31, 0x41, 0x59]), 'bzip2'],
      [bytes([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), 'xz'],
      [zstdCompressSync('x'), 'zstd'],
      [bytes([0x04, 0x22, 0x4d, 0x18, 0x64]), 'lz4'],
      [bytes([0x5d, 0, 0, 0x80, 0], Array<number>(8).fill(0xff)), 'lzma'],
      [bytes([0x1f, 0x9d, 0x90]), 'compress'],
      [bytes('!<arch>\n'), 'ar'],
      [bytes('070701'), 'cpio'],
      [ustar(), 'tar'],
      [iso, 'iso9660'],
    ];
    for (const [head, format] of cases) expect(detectContainer(head), format).toBe(format);
  });

  it('takes text, images, programs and raw deflate for what they are: not containers', () => {
    for (const head of [bytes('hello world\n'), bytes([0x89], 'PNG\r\n\x1a\n'), bytes('MZ', [0x90, 0]), bytes('%PDF-1.4'), deflateRawSync('x'.repeat(100)), new Uint8Array(0)]) {
      expect(detectContainer(head)).toBeNull();
    }
  });

  it('does not take a lone 0x5d byte followed by noise for an LZMA stream', () => {
    expect(detectContainer(bytes([0x5d, 0x12, 0x34, 0x56, 0x78], Array<number>(8).fill(0x41)))).toBeNull();
  });
});

describe('the name of a compression layer\'s content', () => {
  it('drops the layer\'s suffix and turns short tar suffixes into .tar', () => {
    expect(layerContentName('logs.tar.gz')).toBe('logs.tar');
    expect(layerContentName('a.TGZ')).toBe('a.tar');
    expect(layerContentName('notes.txt.zst')).toBe('notes.txt');
    expect(layerContentName('plain.gz')).toBe('plain');
    expect(layerContentName('noext')).toBe('noext');
    expect(layerContentName('.gz')).toBe('.gz');
  });
});
