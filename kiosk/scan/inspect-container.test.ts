/**
 * The inspection of containers with the real sandboxed extractor (bwrap and
 * libarchive from Debian) and a stand-in scanner that calls any member
 * holding "EVIL" malware; clamd's part is proven in
 * test/integration/hostile-content.test.ts.
 */
import { loadPolicy } from '../rules-files.ts';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { crc32, gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preferredBlake3 } from '../engines/hash-file.ts';
import { buildTar } from '../../test/fixtures/archives/tar.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { lz4, sevenZip as sevenZipOf, windowsInstaller } from '../../test/fixtures/archives/debian-tools.ts';
import { gradientPng, simplePdf } from '../../test/fixtures/hostile/documents.ts';
import { buildCompoundFile } from '../../test/fixtures/office/ole2.ts';
import { plainWorkbook } from '../../test/fixtures/office/vba.ts';
import { buildAllowlist, EMPTY_ALLOWLIST, type Allowlist } from '../core/allowlist.ts';
import { type Policy } from '../core/policy.ts';
import { detectContainer } from '../core/container-format.ts';
import { createExtractor, type Extractor } from '../engines/extractor.ts';
import { InspectionFolder } from '../engines/inspection-folder.ts';
import { inspectContainer, type HeldContainer } from './inspect-container.ts';
import type { StreamScanner } from './scan-session.ts';

const { policy: base } = await loadPolicy();
const work = mkdtempSync(join(tmpdir(), 'portcullis-inspect-'));
let folder: InspectionFolder;
beforeAll(async () => {
  folder = await InspectionFolder.create(join(work, 'inspect'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const scanner: StreamScanner = {
  engines: ['clamav', 'yara'],
  async scanStream(chunks) {
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(Buffer.from(c));
    return Buffer.concat(parts).includes('EVIL') ? { status: 'found', signature: 'Test.Evil', reason: 'MALWARE' } : { status: 'clean' };
  },
};

const text = (s: string): Uint8Array => Buffer.from(s);

async function inspect(bytes: Uint8Array, name: string, options: { policy?: Policy; allowlist?: Allowlist; extractor?: Extractor; exempt?: boolean } = {}): Promise<Array<[string, string]>> {
  const file = folder.create();
  writeSync(file.fd, bytes);
  closeSync(file.fd);
  const format = detectContainer(bytes);
  if (format === null) throw new Error(`${name} is not a container`);
  const held: HeldContainer = { path: file.path, size: bytes.length, format, chain: name, name, scope: 'files', exempt: options.exempt ?? false };
  try {
    const reasons = await inspectContainer(held, {
      inspection: { extractor: options.extractor ?? createExtractor(), folder },
      scanner,
      blake3: preferredBlake3(),
      policy: options.policy ?? base,
      allowlist: options.allowlist ?? EMPTY_ALLOWLIST,
    });
    return reasons.map((r) => [r.code, r.detail]);
  } finally {
    rmSync(file.path, { force: true });
  }
}

const PE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(64, 0x90)]);

/** A stand-in extractor's probe: 7-Zip opens nothing. */
const nothingOpens: Extractor['probe'] = () => Promise.resolve({ end: { code: 2, signal: null, stderr: '', killed: false }, stdout: '', truncated: false });

describe('inspecting containers with the sandboxed extractor', () => {
  it('passes a zip of text files, and finds what is wrong in a member, naming it', async () => {
    expect(await inspect(await buildZip([{ name: 'a.txt', data: text('hello') }, { name: 'b/c.csv', data: text('1,2') }]), 'ok.zip')).toEqual([]);
    const found = await inspect(await buildZip([{ name: 'notes.txt', data: text('EVIL') }, { name: 'setup.exe', data: PE }]), 'tools/setup.zip');
    expect(found).toEqual(expect.arrayContaining([
      ['MALWARE', 'tools/setup.zip!/notes.txt: Test.Evil'],
      ['NOT_ALLOWLISTED', 'tools/setup.zip!/setup.exe: programs: this file\'s hash is not on the allowlist'],
    ]));
  });

  it('opens a zip inside a zip whatever its name, and a zip inside a .tar.gz', async () => {
    const inner = await buildZip([{ name: 'payload.txt', data: text('EVIL inside') }]);
    const outer = await buildZip([{ name: 'data.dat', data: inner }]);
    expect((await inspect(outer, 'a.zip')).map(([c, d]) => [c, d.split(':')[0]])).toContainEqual(['MALWARE', 'a.zip!/data.dat!/payload.txt']);
    const tgz = gzipSync(buildTar([{ name: 'inner.zip', data: inner }]));
    expect((await inspect(tgz, 'b.tar.gz')).map(([c, d]) => [c, d.split(':')[0]])).toContainEqual(['MALWARE', 'b.tar.gz!/b.tar!/inner.zip!/payload.txt']);
  });

  it('judges members by the same type rules as files on the drive, unless the container itself is allowlisted', async () => {
    const tgz = gzipSync(buildTar([{ name: 'run.bat', data: text('@echo off\n') }, { name: 'setup.exe', data: PE }]));
    expect((await inspect(tgz, 'kit.tar.gz')).map(([c]) => c).sort()).toEqual(['NOT_ALLOWLISTED', 'TYPE_NOT_ALLOWED']);
    expect(await inspect(tgz, 'kit.tar.gz', { exempt: true })).toEqual([]);
    // An allowlisted member's own members need no hash either.
    const kit = await buildZip([{ name: 'setup.exe', data: PE }]);
    const vendor = await buildZip([{ name: 'vendor-kit.zip', data: kit }]);
    const allowlist = buildAllowlist([{ name: 'v.json', bytes: text(JSON.stringify({ version: '1', owner: 't', entries: [{ vendor: 'V', product: 'kit', version: '1', file: 'vendor-kit.zip', sha256: createHash('sha256').update(kit).digest('hex'), source: 'test' }] })) }]);
    expect(await inspect(vendor, 'outer.zip', { allowlist })).toEqual([]);
  });

  it('blocks links, unsafe member names and sparse members', async () => {
    const tar = buildTar([{ name: 'link', symlink: '/etc/passwd' }, { name: '../escape.txt', data: text('x') }]);
    const codes = (await inspect(tar, 't.tar')).map(([c, d]) => `${c} ${d.split(':')[0]}`);
    expect(codes).toEqual(expect.arrayContaining(['NOT_REGULAR_FILE t.tar!/link', 'UNSAFE_NAME t.tar!/../escape.txt']));
  });

  it('does not open formats the policy leaves out, and says which setting', async () => {
    const found = await inspect(lz4(buildTar([{ name: 'a.txt', data: text('x') }])), 'a.tar.lz4');
    expect(found).toEqual([['NOT_INSPECTED', 'a.tar.lz4: lz4 content is not opened under this policy (archives.formats), so it cannot be inspected']]);
  });

  it('stops at the policy\'s nesting, member count, size and ratio limits, naming each setting', async () => {
    let nested: Uint8Array = text('deep');
    for (let i = 0; i < 4; i++) nested = await buildZip([{ name: `l${i}.zip`, data: nested }]);
    const shallow: Policy = { ...base, clamav: { ...base.clamav, maxRecursion: 2 } };
    expect((await inspect(nested, 'n.zip', { policy: shallow })).map(([c, d]) => `${c} ${/clamav\.maxRecursion/.test(d)}`)).toEqual(['LIMIT_EXCEEDED true']);

    const many = buildTar(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.txt`, data: text(`${i}`) })));
    const few: Policy = { ...base, clamav: { ...base.clamav, maxFilesPerArchive: 5 } };
    expect((await inspect(many, 'm.tar', { policy: few }))[0]?.[1]).toMatch(/clamav\.maxFilesPerArchive/);

    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect((await inspect(bomb, 'z.gz'))[0]?.[1]).toMatch(/archives\.maxCompressionRatio/);

    const small: Policy = { ...base, clamav: { ...base.clamav, maxEmbeddedFileBytes: 1024 * 1024 }, archives: { ...base.archives, maxCompressionRatio: 1_000_000 } };
    expect((await inspect(gzipSync(Buffer.alloc(2 * 1024 * 1024, 0x41)), 'big.txt.gz', { policy: small }))[0]?.[1]).toMatch(/clamav\.maxEmbeddedFileBytes/);
    // A member whose header declares too many bytes is stopped before a byte of it is read.
    const declared = await inspect(buildTar([{ name: 'big.txt', data: Buffer.alloc(2 * 1024 * 1024, 0x41) }]), 'declared.tar', { policy: small });
    expect(declared[0]?.[1]).toMatch(/2097152 bytes, over the policy's clamav\.maxEmbeddedFileBytes/);
    // Everything unpacked from one file counts against clamav.maxScanBytes, member after member.
    const total: Policy = { ...base, clamav: { ...base.clamav, maxScanBytes: 1024 * 1024 }, archives: { ...base.archives, maxCompressionRatio: 1_000_000 } };
    const two = buildTar([{ name: 'a.txt', data: Buffer.alloc(700 * 1024, 0x41) }, { name: 'b.txt', data: Buffer.alloc(700 * 1024, 0x42) }]);
    expect((await inspect(two, 'two.tar', { policy: total }))[0]?.[1]).toMatch(/clamav\.maxScanBytes/);
  });

  it('blocks a container the extractor cannot read in full, with libarchive\'s own words', async () => {
    const tgz = gzipSync(buildTar([{ name: 'a.txt', data: Buffer.alloc(100_000, 0x41) }]));
    const found = await inspect(tgz.subarray(0, tgz.length - 40), 'cut.tar.gz');
    expect(found.map(([c]) => c)).toContain('NOT_INSPECTED');
  });

  it('blocks a container whose extractor writes a malformed stream, or complains', async () => {
    const garbage: Extractor = {
      opens: () => true,
      probe: nothingOpens,
      open() {
        const out = new PassThrough();
        out.end(Buffer.alloc(700, 0x41));
        return { output: out, ended: Promise.resolve({ code: 0, signal: null, stderr: '', killed: false }), kill() {} };
      },
    };
    const sevenZip = sevenZipOf([['a.txt', text('x')]]);
    expect((await inspect(sevenZip, 'a.7z', { extractor: garbage })).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    const complaining: Extractor = {
      opens: () => true,
      probe: nothingOpens,
      open() {
        const out = new PassThrough();
        out.end(text('plain content'));
        return { output: out, ended: Promise.resolve({ code: 0, signal: null, stderr: 'gzip: stdin: decompression OK, trailing garbage ignored', killed: false }), kill() {} };
      },
    };
    expect((await inspect(gzipSync(text('x')), 'a.txt.gz', { extractor: complaining })).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
  });

  it('ends an extractor that outlives the policy\'s scan time', async () => {
    const hanging: Extractor = {
      opens: () => true,
      probe: nothingOpens,
      open() {
        const out = new PassThrough();
        let killed = false;
        let settle: (v: { code: number | null; signal: NodeJS.Signals | null; stderr: string; killed: boolean }) => void = () => undefined;
        const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; killed: boolean }>((r) => { settle = r; });
        return {
          output: out,
          ended,
          kill() {
            if (killed) return;
            killed = true;
            out.end();
            settle({ code: null, signal: 'SIGKILL', stderr: '', killed: true });
          },
        };
      },
    };
    const quick: Policy = { ...base, clamav: { ...base.clamav, maxScanSeconds: 1 } };
    const found = await inspect(gzipSync(text('x')), 'slow.gz', { policy: quick, extractor: hanging });
    expect(found.map(([c, d]) => `${c} ${/clamav\.maxScanSeconds/.test(d)}`)).toEqual(['LIMIT_EXCEEDED true']);
  });
});

describe('the second red-team round inside containers', () => {
  const run = (tool: string, args: readonly string[], cwd?: string): Buffer => {
    const r = spawnSync(tool, args, { cwd, maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`${tool}: ${r.stderr?.toString() ?? r.error?.message}`);
    return r.stdout;
  };
  /** A 7z made by 7zz from `files` written into a fresh folder (sizes of zeros, or contents). */
  const sevenZipOfSizes = (files: Record<string, number | Uint8Array>, method = 'BZip2'): Buffer => {
    const dir = mkdtempSync(join(work, '7z-'));
    for (const [name, content] of Object.entries(files)) {
      if (typeof content === 'number') {
        writeFileSync(join(dir, name), '');
        truncateSync(join(dir, name), content);
      } else writeFileSync(join(dir, name), content);
    }
    run('7zz', ['a', '-bd', '-bso0', '-mhc=off', `-m0=${method}`, 'out.7z', ...Object.keys(files)], dir);
    return readFileSync(join(dir, 'out.7z'));
  };
  /** The real extractor, recording the tmpfs size of every extraction it is asked for. */
  const recording = (): { extractor: Extractor; tmpfs: number[] } => {
    const real = createExtractor();
    const tmpfs: number[] = [];
    return {
      tmpfs,
      extractor: {
        opens: (format) => real.opens(format),
        probe: (path, question, limits) => real.probe(path, question, limits),
        open(path, format, limits) {
          if (format === '7z' || format === 'pdf' || format === 'ole2') tmpfs.push(limits.maxOutputBytes);
          return real.open(path, format, limits);
        },
      },
    };
  };

  it('refuses a 7z whose listing unpacks past the ratio before 7-Zip writes a byte into RAM, and sizes a tmpfs to what a 7z lists', async () => {
    const bomb = sevenZipOfSizes({ 'z0.txt': 8 * 1024 * 1024, 'z1.txt': 8 * 1024 * 1024 });
    expect(bomb.length).toBeLessThan(4096);
    const { extractor, tmpfs } = recording();
    const found = await inspect(bomb, 'bomb.7z', { extractor });
    expect(found.map(([c]) => c)).toEqual(['LIMIT_EXCEEDED']);
    expect(found[0]?.[1]).toMatch(/archives\.maxCompressionRatio/);
    expect(tmpfs).toEqual([]);
    const fine = sevenZipOfSizes({ 'notes.txt': text('Line 3 notes\n'.repeat(1000)) });
    expect(await inspect(fine, 'notes.7z', { extractor })).toEqual([]);
    expect(tmpfs).toHaveLength(1);
    expect(tmpfs[0]).toBeLessThan(13_000 + 3 * 1024 * 1024);
  });

  it('reserves a live extraction\'s tmpfs, so a 7z inside a 7z gets only what is left', async () => {
    const inner = sevenZipOfSizes({ 'inner.txt': text('x'.repeat(600 * 1024)) }, 'LZMA2');
    const outer = sevenZipOfSizes({ 'a.txt': noiseText(300 * 1024), 'inner.7z': inner }, 'Copy');
    const { extractor, tmpfs } = recording();
    const tight: Policy = { ...base, archives: { ...base.archives, maxCompressionRatio: 2 } };
    // 2 x the outer file (about 300 KiB) is under the 1 MiB floor: the outer lists ~300 KiB, the inner 600 KiB.
    expect(await inspect(outer, 'kit.7z', { extractor, policy: tight })).toEqual([]);
    expect(tmpfs).toHaveLength(2);
    const floor = 1024 * 1024;
    const [first, second] = tmpfs as [number, number];
    expect(second).toBeLessThan(floor + 1024 * 1024 + 8192);
    expect(first).toBeLessThan(outer.length + 1024 * 1024 + 16 * 1024);
    // With the inner one listing more than the floor leaves once the outer is counted, it is refused.
    const big = sevenZipOfSizes({ 'inner.txt': text('y'.repeat(900 * 1024)) }, 'LZMA2');
    const over = sevenZipOfSizes({ 'a.txt': noiseText(300 * 1024), 'inner.7z': big }, 'Copy');
    const found = await inspect(over, 'over.7z', { extractor, policy: tight });
    expect(found.map(([c]) => c)).toEqual(['LIMIT_EXCEEDED']);
  });

  it('refuses a 7z holding two items with one name, which 7zz x -y overwrote, and reads one with distinct names', async () => {
    const dup = Buffer.from(sevenZipOfSizes({ 'notea.txt': text('EVIL first'), 'notes.txt': text('harmless second') }));
    const at = 32 + Number(dup.readBigUInt64LE(12));
    const size = Number(dup.readBigUInt64LE(20));
    const header = Buffer.from(dup.subarray(at, at + size).toString('latin1').replace(Buffer.from('notea.txt', 'utf16le').toString('latin1'), Buffer.from('notes.txt', 'utf16le').toString('latin1')), 'latin1');
    header.copy(dup, at);
    dup.writeUInt32LE(crc32(header), 28);
    dup.writeUInt32LE(crc32(dup.subarray(12, 32)), 8);
    const found = await inspect(dup, 'notes.7z');
    expect(found.map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    expect(found[0]?.[1]).toMatch(/two items named "notes\.txt"/);
    expect(await inspect(sevenZipOfSizes({ 'notea.txt': text('first'), 'notes.txt': text('second') }), 'fine.7z')).toEqual([]);
  });

  it('opens an OLE2 file and judges its streams: a program stream needs a hash, a script stream is not a plant type, a .doc needs its WordDocument', async () => {
    const word = Buffer.alloc(4096);
    word.writeUInt16LE(0xa5ec, 0);
    const doc = buildCompoundFile([{ name: 'WordDocument', data: word }, { name: 'setup.exe', data: Buffer.concat([PE, Buffer.alloc(5000)]) }, { name: 'run.ps1', data: text('Start-Process calc.exe\r\n') }]);
    const codes = (await inspect(doc, 'report.doc')).map(([c, d]) => `${c} ${d.split(':')[0]}`);
    expect(codes).toEqual(expect.arrayContaining(['NOT_ALLOWLISTED report.doc!/setup.exe', 'TYPE_NOT_ALLOWED report.doc!/run.ps1']));
    const noWord = buildCompoundFile([{ name: 'Data', data: text('notes') }]);
    expect((await inspect(noWord, 'manual.doc')).map(([c]) => c)).toEqual(['TYPE_MISMATCH']);
    expect(await inspect(plainWorkbook(), 'readings.xls')).toEqual([]);
    expect(await inspect(buildCompoundFile([{ name: 'WordDocument', data: word }, { name: '1Table', data: Buffer.alloc(6000, 7) }]), 'plain.doc')).toEqual([]);
  });

  it('does not take an installer database apart: an MSI is judged whole, as a program', async () => {
    const { extractor, tmpfs } = recording();
    expect(await inspect(windowsInstaller(PE), 'pump.msi', { extractor, exempt: true })).toEqual([]);
    expect(tmpfs).toEqual([]);
  });

  it('judges a PDF\'s attachments as files, each apart even under one name, and passes a PDF without any', async () => {
    const pdf = pdfWithAttachments([['setup.exe', PE], ['readings.csv', text('tag,value\r\nP3,4.2\r\n')]]);
    const codes = (await inspect(pdf, 'manual.pdf')).map(([c, d]) => `${c} ${d.split(':')[0]}`);
    expect(codes).toEqual(['NOT_ALLOWLISTED manual.pdf!/1/setup.exe']);
    const twice = pdfWithAttachments([['notes.txt', text('EVIL')], ['notes.txt', text('harmless')]]);
    expect((await inspect(twice, 'twice.pdf')).map(([c, d]) => `${c} ${d.split(':')[0]}`)).toEqual(['MALWARE twice.pdf!/1/notes.txt']);
    const escape = pdfWithAttachments([['notes.txt', text('harmless')], ['../1/notes.txt', text('EVIL')]]);
    expect((await inspect(escape, 'escape.pdf')).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    expect(await inspect(simplePdf(['Line 3 manual']), 'plain.pdf')).toEqual([]);
    // A "PDF" poppler cannot read at all: its attachments cannot be listed, so it is not inspected.
    expect((await inspect(Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(3000, 0x20)]), 'broken.pdf')).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
  });

  it('refuses a gzip FEXTRA field and a zstd skippable frame big enough to carry a file', async () => {
    const plain = gzipSync(buildTar([{ name: 'a.txt', data: text('x') }]));
    const extra = Buffer.concat([Buffer.from([plain[0]!, plain[1]!, plain[2]!, 0x04]), plain.subarray(4, 10), Buffer.from([0x00, 0x08]), Buffer.alloc(2048, 0x41), plain.subarray(10)]);
    expect((await inspect(extra, 'a.tar.gz')).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    const frame = Buffer.alloc(8 + 4096, 0x41);
    frame.writeUInt32LE(0x184d2a5e, 0);
    frame.writeUInt32LE(4096, 4);
    const zst = Buffer.concat([zstdCompressSync(buildTar([{ name: 'a.txt', data: text('x') }])), frame]);
    expect((await inspect(zst, 'a.tar.zst')).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    expect(await inspect(plain, 'a.tar.gz')).toEqual([]);
  });

  it('asks 7-Zip about a tar whose member puts an ext2 superblock at byte 1080, and about a picture member that is a disk image', async () => {
    const root = mkdtempSync(join(work, 'ext-root-'));
    writeFileSync(join(root, 'run.ps1'), 'calc');
    run('/usr/sbin/mke2fs', ['-q', '-t', 'ext2', '-b', '1024', '-d', root, join(work, 'ext.img'), '400']);
    const ext = readFileSync(join(work, 'ext.img'));
    const tar = buildTar([{ name: 'disk.bin', data: ext.subarray(512) }]);
    const asTar = await inspect(tar, 'backup.tar');
    expect(asTar.map(([c]) => c)).toContain('NOT_INSPECTED');
    expect(asTar.find(([c]) => c === 'NOT_INSPECTED')?.[1]).toMatch(/Ext/);
    const photo = Buffer.concat([Buffer.from('\u0089PNG\r\n\u001a\n', 'latin1'), ext.subarray(8)]);
    const zipped = await buildZip([{ name: 'photo.png', data: photo }]);
    expect((await inspect(zipped, 'photos.zip')).map(([c, d]) => `${c} ${d.split(':')[0]}`)).toEqual(['NOT_INSPECTED photos.zip!/photo.png']);
    expect(await inspect(await buildZip([{ name: 'photo.png', data: gradientPng(16) }]), 'photos.zip')).toEqual([]);
  });
});

/** Text of hex digits from SHA-256 in counter mode: compresses only about 2:1. */
function noiseText(size: number): Uint8Array {
  let out = '';
  for (let i = 0; out.length < size; i++) out += `${createHash('sha256').update(String(i)).digest('hex')}\n`;
  return text(out.slice(0, size));
}

/** A one-page PDF with attachments in its EmbeddedFiles name tree (names may repeat), as the red team wrote them. */
function pdfWithAttachments(files: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
  const objects: string[] = [];
  const names = files.map((_, i) => `(${i}) ${4 + 2 * i} 0 R`).join(' ');
  objects.push(`<</Type/Catalog/Pages 2 0 R/Names<</EmbeddedFiles<</Names[${names}]>>>>>>`, '<</Type/Pages/Kids[3 0 R]/Count 1>>', '<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>');
  files.forEach(([name, data], i) => {
    objects.push(`<</Type/Filespec/F(${name})/UF(${name})/EF<</F ${5 + 2 * i} 0 R>>>>`);
    objects.push(`<</Type/EmbeddedFile/Length ${data.length}>>stream\n${Buffer.from(data).toString('latin1')}\nendstream`);
  });
  let out = '%PDF-1.7\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<</Size ${objects.length + 1}/Root 1 0 R>>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}
