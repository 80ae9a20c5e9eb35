import { DEFAULT_POLICY_PATH, loadPolicy } from '../rules-files.ts';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { EICAR } from '../engines/clamav/test-database.ts';
import { parsePolicy } from './policy.ts';
import { checkType, CONTENT_KINDS, extensionsOf, looksText, promisesContent, sniffContent } from './file-type.ts';
import { bzip2, lzmaAlone, xz, zstd } from '../../test/fixtures/archives/debian-tools.ts';
import { buildTar } from '../../test/fixtures/archives/tar.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import {
  asciiDxf, asciiStl, binaryDxf, binaryStl, cp437Nfo, edsFile, gradientBmp, gradientPng, greyTiff, gsdmlFile, igesModel, openDocument,
  pixelWebp, plainIco, simplePdf, stepModel, utf16Text, windows1252Notes,
} from '../../test/fixtures/hostile/documents.ts';

const bytes = (...parts: Array<string | number[]>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

describe('type checks', () => {
  it('recognises programs, documents and text by their first bytes', () => {
    expect(sniffContent(bytes('MZ', [0x90, 0]))).toBe('pe');
    expect(sniffContent(bytes([0x7f], 'ELF'))).toBe('elf');
    expect(sniffContent(bytes('%PDF-1.7'))).toBe('pdf');
    expect(sniffContent(bytes([0x4c, 0, 0, 0, 1, 0x14, 2, 0]))).toBe('lnk');
    expect(sniffContent(bytes('PK', [3, 4]))).toBe('zip');
    expect(sniffContent(bytes('step,temp\n1,180\n'))).toBe('text');
    expect(sniffContent(bytes([0xff, 0xfe], 'h', [0], 'i', [0]))).toBe('text');
    expect(sniffContent(bytes([1, 2, 0, 3]))).toBe('binary');
  });

  it('reads extensions outermost last and ignores a leading dot', () => {
    expect(extensionsOf('dir/Report.PDF.exe')).toEqual(['.pdf', '.exe']);
    expect(extensionsOf('.bashrc')).toEqual([]);
    expect(extensionsOf('.config.json')).toEqual(['.json']);
    expect(extensionsOf('Makefile')).toEqual([]);
  });

  it('flags a program named like a document', () => {
    expect(checkType('invoice.pdf', bytes('MZ', [0x90, 0])).findings.map((f) => f.code)).toEqual(['TYPE_MISMATCH']);
    expect(checkType('notes.txt', bytes([0x7f], 'ELF')).findings).toHaveLength(1);
  });

  it('flags a document whose content is something else', () => {
    expect(checkType('manual.pdf', bytes('PK', [3, 4])).findings).toHaveLength(1);
    expect(checkType('photo.png', bytes('%PDF-')).findings).toHaveLength(1);
  });

  it('flags a double extension disguising a program', () => {
    const result = checkType('report.pdf.exe', bytes('MZ', [0x90, 0]));
    expect(result.findings.map((f) => f.detail).join()).toMatch(/double extension \.pdf\.exe/);
  });

  it('accepts honest files, an empty file and unknown extensions', () => {
    expect(checkType('setup.exe', bytes('MZ', [0x90, 0])).findings).toEqual([]);
    expect(checkType('manual.pdf', bytes('%PDF-1.4')).findings).toEqual([]);
    expect(checkType('recipe.csv', bytes('a,b\n')).findings).toEqual([]);
    expect(checkType('empty.txt', new Uint8Array()).findings).toEqual([]);
    expect(checkType('plc.bin', bytes([1, 2, 3, 0])).findings).toEqual([]);
    // A DOS program may be printable machine code: the EICAR test file is a valid .com.
    expect(checkType('eicar.com', EICAR).findings).toEqual([]);
    expect(checkType('version.1.2.txt', bytes('1.2')).findings).toEqual([]);
  });
});

const codes = (name: string, head: Uint8Array, size?: number): string[] => checkType(name, head, size).findings.map((f) => f.code);

/** The first sector of a FAT12 floppy (mformat's layout): what 7-Zip opens as a disk image whatever its name. */
function fatBootSector(): Uint8Array {
  const sector = Buffer.alloc(512);
  sector.set([0xeb, 0x3c, 0x90], 0);
  sector.write('MTOO4043', 3, 'latin1');
  sector.writeUInt16LE(512, 11); // bytes per sector
  sector.set([1], 13); // sectors per cluster
  sector.writeUInt16LE(1, 14); // reserved sectors
  sector.set([2], 16); // FATs
  sector.writeUInt16LE(224, 17); // root entries
  sector.writeUInt16LE(2880, 19); // sectors
  sector.set([0xf0], 21); // media
  sector.write('FAT12   ', 54, 'latin1');
  sector.set([0x55, 0xaa], 510);
  return sector;
}

/** Firmware-like bytes: high entropy, NULs included, the same every run. */
const firmware = (size = 4096): Uint8Array => {
  const out = Buffer.alloc(size);
  for (let i = 0, x = 0x2545f491; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; // xorshift32
    out[i] = x & 0xff;
  }
  out.write('\u007fFW', 0, 'latin1');
  return out;
};

describe('a file named as an archive must be that archive', () => {
  it('flags a FAT image, a zip or text named as a tar, and a tar whose bytes are another container', async () => {
    expect(codes('backup.tar', fatBootSector())).toEqual(['TYPE_MISMATCH']);
    expect(codes('backup.tar', await buildZip([{ name: 'a.txt', data: bytes('a') }]))).toEqual(['TYPE_MISMATCH']);
    expect(codes('notes.tar', bytes('not a tar at all\n'))).toEqual(['TYPE_MISMATCH']);
    expect(codes('logs.tar', gzipSync(buildTar([{ name: 'a.txt', data: bytes('a') }])))).toEqual(['TYPE_MISMATCH']);
  });

  it('flags bzip2, xz and zstd names over other bytes: LZMA-alone named .txz, xz named .tzst, a FAT image named .bz2', () => {
    const tar = buildTar([{ name: 'a.txt', data: bytes('a') }]);
    expect(codes('bundle.txz', lzmaAlone(tar))).toEqual(['TYPE_MISMATCH']);
    expect(codes('bundle.xz', bzip2(tar))).toEqual(['TYPE_MISMATCH']);
    expect(codes('bundle.tzst', xz(tar))).toEqual(['TYPE_MISMATCH']);
    expect(codes('bundle.zst', gzipSync(tar))).toEqual(['TYPE_MISMATCH']);
    expect(codes('data.bz2', fatBootSector())).toEqual(['TYPE_MISMATCH']);
    expect(codes('data.tbz2', bytes('BZh'))).toEqual(['TYPE_MISMATCH']);
  });

  it('passes each archive under its own names, v7 tar included', () => {
    const tar = buildTar([{ name: 'a.txt', data: bytes('a') }]);
    const v7 = Buffer.from(tar);
    v7.fill(0, 257, 265); // no ustar magic: a pre-POSIX header, checksum recomputed below
    v7.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of v7.subarray(0, 512)) sum += b;
    v7.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    const cases: Array<[string, Uint8Array]> = [
      ['a.tar', tar], ['v7.tar', v7], ['a.tar.gz', gzipSync(tar)], ['a.tgz', gzipSync(tar)], ['a.tar.bz2', bzip2(tar)], ['a.tbz2', bzip2(tar)],
      ['a.tar.xz', xz(tar)], ['a.txz', xz(tar)], ['a.tar.zst', zstd(tar)], ['a.tzst', zstd(tar)], ['notes.txt.gz', gzipSync('notes')],
    ];
    for (const [name, content] of cases) expect(codes(name, content), name).toEqual([]);
    expect(sniffContent(tar)).toBe('tar');
    expect(sniffContent(bzip2(tar))).toBe('bzip2');
    expect(sniffContent(xz(tar))).toBe('xz');
    expect(sniffContent(zstd(tar))).toBe('zstd');
    expect(sniffContent(lzmaAlone(tar))).toBe('lzma');
  });
});

describe('a document is what its name says', () => {
  it('flags an OOXML or Visio name over bytes that are not a zip', () => {
    expect(codes('drawing.vsdx', bytes([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]))).toEqual(['TYPE_MISMATCH']);
    expect(codes('report.docx', bytes('{\\rtf1 hello}'))).toEqual(['TYPE_MISMATCH']);
  });

  it('flags a plain zip named as an OpenDocument file, and an OpenDocument file of another kind', async () => {
    const plainZip = await buildZip([{ name: 'viewer.svg', data: bytes('<svg/>') }, { name: 'firmware/cpu.bin', data: firmware(64) }]);
    for (const name of ['drawings.odg', 'notes.odt', 'table.ods', 'slides.odp']) expect(codes(name, plainZip), name).toEqual(['TYPE_MISMATCH']);
    expect(codes('table.ods', await openDocument('text'))).toEqual(['TYPE_MISMATCH']);
    // mimetype first but deflated: ODF 1.2 part 3, 3.3 says stored.
    expect(codes('notes.odt', await buildZip([{ name: 'mimetype', data: bytes('application/vnd.oasis.opendocument.text') }]))).toEqual(['TYPE_MISMATCH']);
  });

  it('passes real OpenDocument packages, an RTF, a legacy workbook and a PDF', async () => {
    expect(codes('notes.odt', await openDocument('text'))).toEqual([]);
    expect(codes('table.ods', await openDocument('spreadsheet'))).toEqual([]);
    expect(codes('slides.odp', await openDocument('presentation'))).toEqual([]);
    expect(codes('plan.odg', await openDocument('graphics'))).toEqual([]);
    expect(codes('report.docx', await buildZip([{ name: '[Content_Types].xml', data: bytes('<Types/>') }]))).toEqual([]);
    expect(codes('notes.rtf', bytes('{\\rtf1\\ansi hello}'))).toEqual([]);
    expect(codes('manual.pdf', simplePdf(['hello']))).toEqual([]);
  });
});

describe('text and data must be text', () => {
  it('flags firmware renamed to any text or data extension (review finding 12)', () => {
    for (const ext of ['.txt', '.csv', '.tsv', '.log', '.md', '.json', '.xml', '.yaml', '.yml', '.ini', '.cfg', '.conf', '.toml', '.nfo']) {
      expect(codes(`cpu1516${ext}`, firmware()), ext).toEqual(['TYPE_MISMATCH']);
    }
  });

  it('takes binary data without NUL bytes for binary: control characters give it away', () => {
    const noNul = Buffer.from(firmware()).map((b) => (b === 0 ? 1 : b));
    expect(sniffContent(noNul)).toBe('binary');
    expect(codes('settings.yaml', noNul)).toEqual(['TYPE_MISMATCH']);
    // A UTF-16 byte-order mark in front of binary data: unpaired surrogates and NUL code units.
    expect(sniffContent(Buffer.concat([Buffer.from([0xff, 0xfe]), firmware()]))).toBe('binary');
    expect(looksText(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('ab', 'utf16le'), Buffer.from([0x00, 0xdc])]))).toBe(false);
  });

  it('passes text in the encodings plants write: UTF-8 with and without a BOM, UTF-16 with a BOM, Windows-1252, CP437 art with ANSI escapes', () => {
    const cases: Array<[string, Uint8Array]> = [
      ['notes.txt', bytes('Line 3: all pumps nominal.\r\n')],
      ['notes.md', Buffer.from('\ufeff# Übergabe\n\nDruck 3 bar, 80 °C\n', 'utf8')],
      ['export.csv', utf16Text('tag\tvalue\r\nFT-101\t3.5\r\n')],
      ['export.tsv', utf16Text('tag\tvalue\r\nFT-101\t3.5\r\n', true)],
      ['protokoll.log', windows1252Notes()],
      ['release.nfo', cp437Nfo()],
      ['plant.toml', bytes('[line3]\npumps = 2\n')],
      ['plant.yaml', bytes('line3:\n  pumps: 2\n')],
      ['man.txt', bytes('N\bNA\bAM\bME\bE\n')],
      ['config.xml', bytes('<?xml version="1.0"?>\n<config/>\n')],
      ['config.xml', utf16Text('<?xml version="1.0" encoding="UTF-16"?>\r\n<config/>\r\n')],
    ];
    for (const [name, content] of cases) expect(codes(name, content), name).toEqual([]);
    expect(sniffContent(windows1252Notes())).toBe('text');
    expect(sniffContent(cp437Nfo())).toBe('text');
  });

  it('flags an .xml that is text but not XML', () => {
    expect(codes('config.xml', bytes('key = value\n'))).toEqual(['TYPE_MISMATCH']);
  });
});

describe('images are images', () => {
  it('flags firmware and a FAT image renamed to an image extension', () => {
    for (const ext of ['.bmp', '.tif', '.tiff', '.ico', '.webp', '.png', '.jpg', '.gif']) {
      expect(codes(`photo${ext}`, firmware()), ext).toEqual(['TYPE_MISMATCH']);
      expect(codes(`photo${ext}`, fatBootSector()), ext).toEqual(['TYPE_MISMATCH']);
    }
    // "BM" alone is not a bitmap: a bitmap has a DIB header of a size Windows defines.
    expect(codes('photo.bmp', bytes('BMW service notes\n'))).toEqual(['TYPE_MISMATCH']);
  });

  it('recognises BMP, TIFF, ICO and WebP files and passes any raster image under any image name', () => {
    expect(sniffContent(gradientBmp())).toBe('bmp');
    expect(sniffContent(greyTiff())).toBe('tiff');
    expect(sniffContent(bytes('MM', [0, 0x2a, 0, 0, 0, 8]))).toBe('tiff');
    expect(sniffContent(plainIco())).toBe('ico');
    expect(sniffContent(pixelWebp())).toBe('webp');
    const cases: Array<[string, Uint8Array]> = [
      ['scan.bmp', gradientBmp()], ['scan.tif', greyTiff()], ['scan.tiff', greyTiff()], ['app.ico', plainIco()], ['photo.webp', pixelWebp()],
      ['favicon.ico', gradientPng(16)], ['screenshot.jpg', gradientPng(16)], ['photo.png', gradientPng(16)],
    ];
    for (const [name, content] of cases) expect(codes(name, content), name).toEqual([]);
  });
});

describe('engineering data is what its name says', () => {
  it('passes STEP, STL (ASCII and binary), DXF (ASCII and binary), IGES, EDS, GSDML and a DWG header', () => {
    const dwg = Buffer.alloc(128);
    dwg.write('AC1032', 0, 'latin1'); // AutoCAD 2018; five zero bytes follow the version string
    dwg[11] = 0x19;
    const stl = binaryStl(3);
    const cases: Array<[string, Uint8Array, number?]> = [
      ['bracket.step', stepModel()], ['bracket.stp', stepModel()], ['bracket.stl', asciiStl()], ['bracket.stl', stl], ['bracket.stl', stl, stl.length],
      ['bracket.stl', binaryStl(3, 'solid bracket exported as binary')], ['plan.dxf', asciiDxf()], ['plan.dxf', binaryDxf()], ['bracket.igs', igesModel()],
      ['bracket.iges', igesModel()], ['drive.eds', edsFile()], ['device.gsd', edsFile()], ['device.gsdml', gsdmlFile()], ['device.xdd', gsdmlFile()],
      ['plant.aml', gsdmlFile()], ['plan.dwg', dwg],
    ];
    for (const [name, content, size] of cases) expect(codes(name, content, size), name).toEqual([]);
    expect(sniffContent(dwg)).toBe('dwg');
    // A text file that only starts like a DWG version string is text.
    expect(sniffContent(bytes('AC1000 spare parts list\n'))).toBe('text');
  });

  it('flags firmware, plain text and a FAT image under engineering names, and a binary STL whose size contradicts its triangle count', () => {
    for (const ext of ['.dwg', '.dxf', '.step', '.stp', '.iges', '.igs', '.eds', '.gsd', '.gsdml', '.xdd', '.aml', '.stl']) {
      expect(codes(`model${ext}`, firmware(8192).subarray(0, 4096), 8192), ext).toEqual(['TYPE_MISMATCH']);
    }
    expect(codes('bracket.step', bytes('just some notes\n'))).toEqual(['TYPE_MISMATCH']);
    expect(codes('device.gsdml', edsFile())).toEqual(['TYPE_MISMATCH']);
    expect(codes('bracket.stl', bytes('just some notes\n'))).toEqual(['TYPE_MISMATCH']);
    expect(codes('bracket.stl', fatBootSector(), 1_474_560)).toEqual(['TYPE_MISMATCH']);
    expect(codes('bracket.stl', binaryStl(3), 84 + 50 * 3 + 10)).toEqual(['TYPE_MISMATCH']);
    // The whole file in a short head: its length is its size.
    expect(codes('bracket.stl', Buffer.concat([binaryStl(3), Buffer.alloc(10)]))).toEqual(['TYPE_MISMATCH']);
  });
});

describe('the policy and the type checks agree', () => {
  it('gives every extension of every allowed type outside documents a content promise, so nothing passes on its name alone', async () => {
    const { policy } = await loadPolicy();
    const unpromised = policy.types.allowed
      .filter((t) => t.scope === 'anywhere')
      .flatMap((t) => t.extensions)
      .filter((ext) => !promisesContent(ext));
    expect(unpromised).toEqual([]);
  });

  it('accepts every content kind the sniffer can name in a policy file, and no other', async () => {
    const text = await readFile(DEFAULT_POLICY_PATH, 'utf8');
    const withKinds = (kinds: readonly string[]): Uint8Array => {
      const value = JSON.parse(text) as { controlled: Array<{ contentKinds: string[] }> };
      value.controlled[0]!.contentKinds = [...kinds];
      return new TextEncoder().encode(JSON.stringify(value));
    };
    for (const kind of CONTENT_KINDS) expect(() => parsePolicy(withKinds([kind]), 'test'), kind).not.toThrow();
    expect(() => parsePolicy(withKinds(['fat-image']), 'test')).toThrow();
    expect(new Set(CONTENT_KINDS).size).toBe(CONTENT_KINDS.length);
  });
});
