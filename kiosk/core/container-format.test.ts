import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildTar } from '../../test/fixtures/archives/tar.ts';
import { detectContainer, detectContainers, gzipHeaderProblem, layerContentName, zstdFramesProblem } from './container-format.ts';

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
      [bytes([0x5d, 0, 0, 0x80, 0], Array<number>(8).fill(0xff), [0, 0x41, 0x10, 0x2c, 0x40]), 'lzma'],
      [bytes([0x1f, 0x9d, 0x90]), 'compress'],
      [bytes('!<arch>\n'), 'ar'],
      [bytes('070701'), 'cpio'],
      [ustar(), 'tar'],
      [iso, 'iso9660'],
    ];
    for (const [head, format] of cases) expect(detectContainer(head), format).toBe(format);
  });

  it('takes text, images, programs and raw deflate for what they are: not containers', () => {
    for (const head of [bytes('hello world\n'), bytes([0x89], 'PNG\r\n\x1a\n'), bytes('MZ', [0x90, 0]), bytes('PDF-1.4 %'), deflateRawSync('x'.repeat(100)), new Uint8Array(0)]) {
      expect(detectContainer(head)).toBeNull();
    }
  });

  it('takes a PDF and an OLE2 compound file for documents that carry files (attachments, streams)', () => {
    expect(detectContainers(bytes('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n'))).toEqual(['pdf']);
    expect(detectContainers(bytes([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], Array<number>(504).fill(0)))).toEqual(['ole2']);
  });

  it('does not take a lone 0x5d byte followed by noise for an LZMA stream', () => {
    expect(detectContainer(bytes([0x5d, 0x12, 0x34, 0x56, 0x78], Array<number>(8).fill(0x41)))).toBeNull();
  });
});

/** What a Debian tool writes for `input` (xz, lz4, GNU tar), as the kiosk meets it on a drive. */
function tool(command: string, args: readonly string[], input: Uint8Array | string = 'hello, plant\n', cwd?: string): Uint8Array {
  const result = spawnSync(command, args, { input, cwd });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr.toString()}`);
  return result.stdout;
}

/** A skippable frame (RFC 8878 3.1.2) of `size` zero bytes, magic 0x184D2A5n. */
const skippable = (n: number, size: number): Buffer => {
  const frame = Buffer.alloc(8 + size);
  frame.writeUInt32LE(0x184d2a50 + n, 0);
  frame.writeUInt32LE(size, 4);
  return frame;
};

/** A tar header block with its checksum computed the way `signed` says (historic tars summed signed bytes). */
function v7Header(name: string, size: number, options: { signed?: boolean; checksum?: number } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'latin1');
  h.write('0000644\u0000', 100, 'latin1');
  h.write('0000000\u0000', 108, 'latin1');
  h.write('0000000\u0000', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\u0000`, 124, 'latin1');
  h.write('14542406000\u0000', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += options.signed === true && b >= 0x80 ? b - 256 : b;
  h.write(`${(options.checksum ?? sum).toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return h;
}

describe('container detection like the tools that open them', () => {
  it('takes LZMA-alone streams with any properties byte xz writes, not only 0x5d', () => {
    for (const options of ['lc=4,lp=0,pb=2,dict=64KiB', 'lc=0,lp=0,pb=0,dict=4KiB', 'lc=0,lp=4,pb=4,dict=3MiB', 'lc=1,lp=3,pb=1,dict=6KiB']) {
      const stream = tool('xz', ['--format=lzma', `--lzma1=${options}`, '-c']);
      expect(detectContainer(stream), options).toBe('lzma');
    }
  });

  it('takes an LZMA-alone header with a known size and with the dictionary sizes 7-Zip and liblzma accept', () => {
    const stream = Buffer.from(tool('xz', ['--format=lzma', '-c']));
    const withDict = (dict: number): Buffer => {
      const copy = Buffer.from(stream);
      copy.writeUInt32LE(dict, 1);
      return copy;
    };
    for (const dict of [2 ** 12, 3 * 2 ** 11, 2 ** 31, 3 * 2 ** 30, 0xffffffff]) expect(detectContainer(withDict(dict)), `dictionary ${dict}`).toBe('lzma');
    const known = Buffer.from(stream);
    known.writeBigUInt64LE(13n, 5);
    expect(detectContainer(known)).toBe('lzma');
  });

  it('refuses LZMA-alone look-alikes the tools refuse: an odd or tiny dictionary size, a range coder not starting at 0, a properties byte of 225 or a size of 2^56', () => {
    const stream = Buffer.from(tool('xz', ['--format=lzma', '-c']));
    const changed = (change: (b: Buffer) => void): Buffer => {
      const copy = Buffer.from(stream);
      change(copy);
      return copy;
    };
    expect(detectContainer(changed((b) => b.writeUInt32LE(100_000, 1)))).toBeNull();
    expect(detectContainer(changed((b) => b.writeUInt32LE(0, 1)))).toBeNull();
    // Under 4 KiB: no encoder writes one, xz -d and libarchive refuse it (7-Zip alone would take it).
    expect(detectContainer(changed((b) => b.writeUInt32LE(2 ** 10, 1)))).toBeNull();
    expect(detectContainer(changed((b) => { b[13] = 1; }))).toBeNull();
    expect(detectContainer(changed((b) => { b[0] = 225; }))).toBeNull();
    expect(detectContainer(changed((b) => b.writeBigUInt64LE(2n ** 56n, 5)))).toBeNull();
  });

  it('takes a zstd stream that starts with skippable frames, as zstd, libarchive and GNU tar do', () => {
    const frame = zstdCompressSync('hello, plant\n');
    expect(detectContainer(Buffer.concat([skippable(0, 8), frame]))).toBe('zstd');
    expect(detectContainer(Buffer.concat([skippable(15, 0), skippable(3, 100), frame]))).toBe('zstd');
    // A skippable frame longer than the head: what follows cannot be seen, and zstd is the format that defines the frame.
    expect(detectContainer(skippable(0, 1 << 20).subarray(0, 4096))).toBe('zstd');
  });

  it('takes legacy zstd frames (v0.5 to v0.7) that zstd 1.5 still decodes', () => {
    for (const version of [0x25, 0x26, 0x27]) expect(detectContainer(bytes([version, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]))).toBe('zstd');
    expect(detectContainer(bytes([0x24, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]))).toBeNull();
  });

  it('takes lz4 legacy frames and lz4 frames behind a skippable frame, as lz4 -d does', () => {
    const legacy = tool('lz4', ['-l', '-c', '-q']);
    expect(detectContainer(legacy)).toBe('lz4');
    expect(detectContainer(Buffer.concat([skippable(0, 8), tool('lz4', ['-c', '-q'])]))).toBe('lz4');
  });

  it('takes pre-POSIX (v7) and GNU tar by their header checksum, without the ustar magic', () => {
    const dir = mkdtempSync(join(tmpdir(), 'container-format-'));
    try {
      writeFileSync(join(dir, 'run.ps1'), 'Start-Process calc.exe\r\n');
      for (const format of ['v7', 'gnu', 'oldgnu']) expect(detectContainer(tool('tar', [`--format=${format}`, '-cf', '-', 'run.ps1'], '', dir)), format).toBe('tar');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(detectContainer(v7Header('notes.txt', 6))).toBe('tar');
    // Historic tars summed the header as signed bytes; libarchive and GNU tar accept either sum.
    expect(detectContainer(v7Header('caf\u00e9.txt', 6, { signed: true }))).toBe('tar');
  });

  it('does not take a header-shaped block with a wrong checksum, a bad number field or a bad type flag for tar, nor an all-zero block', () => {
    expect(detectContainer(v7Header('notes.txt', 6, { checksum: 1234 }))).toBeNull();
    const badSize = v7Header('notes.txt', 6);
    badSize.write('12x', 124, 'latin1');
    expect(detectContainer(badSize)).toBeNull();
    const badType = v7Header('notes.txt', 6);
    badType[156] = 0x01;
    expect(detectContainer(badType)).toBeNull();
    expect(detectContainer(new Uint8Array(1024))).toBeNull();
    expect(detectContainer(Buffer.from('Line 3 notes. '.repeat(80)))).toBeNull();
  });

  it('names every format a head could be read as, so a tar that is also an LZMA-alone header shows both', () => {
    const lzmaHead = Buffer.from(tool('xz', ['--format=lzma', '-c'], '')).subarray(0, 18);
    const tar = Buffer.from(buildTar([{ name: 'x', data: Buffer.from('readme\n') }]));
    lzmaHead.copy(tar, 0);
    tar.fill(0, lzmaHead.length, 100);
    tar.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of tar.subarray(0, 512)) sum += b;
    tar.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    expect(detectContainers(tar)).toEqual(['tar', 'lzma']);
    expect(detectContainer(tar)).toBe('tar');
    expect(detectContainers(gzipSync('x'))).toEqual(['gzip']);
    // A first file with a two-letter name ("a0": 0x30 after the first byte, then NULs) is a tar only.
    expect(detectContainers(buildTar([{ name: 'a0', data: Buffer.from('hello\n') }]))).toEqual(['tar']);
    expect(detectContainers(bytes('hello'))).toEqual([]);
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

describe('what a compression layer carries beside its data', () => {
  const gzipWith = (flags: number, fields: Buffer): Buffer => {
    const plain = gzipSync(Buffer.from('Line 3 notes\n'));
    return Buffer.concat([plain.subarray(0, 3), Buffer.from([flags]), plain.subarray(4, 10), fields, plain.subarray(10)]);
  };
  const extra = (n: number): Buffer => Buffer.concat([Buffer.from([n & 0xff, n >> 8]), Buffer.alloc(n, 0x41)]);

  it('takes gzip headers as gzip, BGZF and a short comment write them, and refuses a large FEXTRA or FCOMMENT', () => {
    expect(gzipHeaderProblem(gzipSync(Buffer.from('x')))).toBeNull();
    expect(gzipHeaderProblem(gzipWith(0x04, Buffer.from([6, 0, 0x42, 0x43, 2, 0, 0x1b, 0])))).toBeNull(); // BGZF's "BC" subfield
    expect(gzipHeaderProblem(gzipWith(0x18, Buffer.from('notes.txt\0made on line 3\0', 'latin1')))).toBeNull();
    expect(gzipHeaderProblem(gzipWith(0x04, extra(2000)))).toMatch(/FEXTRA/);
    expect(gzipHeaderProblem(gzipWith(0x10, Buffer.concat([Buffer.alloc(3000, 0x41), Buffer.from([0])])))).toMatch(/FCOMMENT/);
  });

  const reader = (data: Uint8Array) => (position: number, length: number): Uint8Array => data.subarray(position, position + length);
  const skippable = (n: number): Buffer => {
    const b = Buffer.alloc(8 + n, 0x5a);
    b.writeUInt32LE(0x184d2a50, 0);
    b.writeUInt32LE(n, 4);
    return b;
  };

  it('walks zstd frames as zstd and pzstd write them, and refuses a large skippable frame or bytes between frames', () => {
    const data = Buffer.from('timestamp,value\n'.repeat(50_000));
    const plain = zstdCompressSync(data);
    expect(zstdFramesProblem(reader(plain), plain.length)).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-zstd-'));
    try {
      writeFileSync(join(dir, 'in.csv'), data);
      const r = spawnSync('pzstd', ['-q', '-p', '2', '-c', join(dir, 'in.csv')], { maxBuffer: 1 << 28 });
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(r.stdout.readUInt32LE(0)).toBe(0x184d2a50); // pzstd's own skippable frame, before each frame
      expect(zstdFramesProblem(reader(r.stdout), r.stdout.length)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const twoFrames = Buffer.concat([plain, skippable(4), plain]);
    expect(zstdFramesProblem(reader(twoFrames), twoFrames.length)).toBeNull();
    const hiding = Buffer.concat([plain, skippable(4000)]);
    expect(zstdFramesProblem(reader(hiding), hiding.length)).toMatch(/skippable frame of 4000 bytes/);
    const between = Buffer.concat([plain, Buffer.from('PK\u0005\u0006'), plain]);
    expect(zstdFramesProblem(reader(between), between.length)).toMatch(/no zstd frame/);
    expect(zstdFramesProblem(reader(plain.subarray(0, 20)), 20)).toMatch(/cut short/);
  });
});
