import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { imageFormatsToAsk, IMAGE_SIGNATURE_TAIL_BYTES, listedBytes, listingProblem, parseListing, type ListedItem, type Listing } from './seven-zip-view.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-7zview-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(tool: string, args: readonly string[], cwd = work): Buffer {
  const r = spawnSync(tool, args, { cwd, maxBuffer: 1 << 28 });
  expect(r.status, `${tool} ${args.join(' ')}: ${r.stderr?.toString() ?? r.error?.message}`).toBe(0);
  return r.stdout;
}

/** What `7zz l -slt` says of `path`, parsed. */
function listed(path: string, type?: string): Listing {
  const r = spawnSync('7zz', ['l', '-slt', ...(type ? [`-t${type}`] : []), '--', path], { maxBuffer: 1 << 28 });
  const parsed = parseListing(r.stdout.toString());
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed;
}

/** A 7z of `files` made by 7zz in a fresh folder. */
function sevenZip(name: string, files: Record<string, string>, ...options: string[]): string {
  const dir = mkdtempSync(join(work, 'src-'));
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
  run('7zz', ['a', '-bd', '-bso0', '-mhc=off', ...options, join(work, name), ...Object.keys(files)], dir);
  return join(work, name);
}

describe('reading 7-Zip\'s listing', () => {
  it('gives the archive\'s type and items as 7zz lists a 7z of files and folders', () => {
    const path = sevenZip('docs.7z', { 'A.txt': 'a', 'd/b.txt': 'bb' });
    const got = listed(path);
    expect(got.archives).toEqual([{ type: '7z', offset: 0 }]);
    expect(got.items.map((i) => [i.path, i.folder, i.size])).toEqual(expect.arrayContaining([['A.txt', false, 1], ['d/b.txt', false, 2]]));
    expect(listedBytes(got.items)).toBe(3);
    expect(listedBytes([...got.items, { path: 'storage', folder: false, size: null, anti: false, altStream: false }])).toBe(3);
    expect(listingProblem(got.items)).toBeNull();
  });

  it('says what 7-Zip opened at an offset, and nothing for a file it does not open', () => {
    const archive = readFileSync(sevenZip('hidden.7z', { 'run.ps1': 'calc' }));
    const picture = join(work, 'photo.png');
    writeFileSync(picture, Buffer.concat([Buffer.from('\u0089PNG\r\n\u001a\n', 'latin1'), Buffer.alloc(500, 0x11), archive]));
    expect(listed(picture).archives).toEqual([{ type: '7z', offset: 508 }]);
    const plain = join(work, 'plain.png');
    writeFileSync(plain, Buffer.concat([Buffer.from('\u0089PNG\r\n\u001a\n', 'latin1'), Buffer.alloc(500, 0x11)]));
    expect(listed(plain)).toEqual({ archives: [], items: [] });
  });

  it('finds two items with one name, which 7zz x -y would overwrite, as the red team renamed one in a 7z header', () => {
    const path = sevenZip('dup.7z', { 'notea.txt': 'EICAR stands here', 'notes.txt': 'Pump 3 notes' }, '-m0=BZip2');
    const bytes = Buffer.from(readFileSync(path));
    const at = 32 + Number(bytes.readBigUInt64LE(12));
    const size = Number(bytes.readBigUInt64LE(20));
    const headerBytes = Buffer.from(bytes.subarray(at, at + size).toString('latin1').replace(Buffer.from('notea.txt', 'utf16le').toString('latin1'), Buffer.from('notes.txt', 'utf16le').toString('latin1')), 'latin1');
    headerBytes.copy(bytes, at);
    bytes.writeUInt32LE(crc32(headerBytes), 28);
    bytes.writeUInt32LE(crc32(bytes.subarray(12, 32)), 8);
    writeFileSync(path, bytes);
    const got = listed(path);
    expect(got.items.map((i) => i.path)).toEqual(['notes.txt', 'notes.txt']);
    expect(listingProblem(got.items)).toMatch(/two items named "notes.txt"/);
  });

  it('refuses paths that differ only in letter case, a file that is also a folder, anti-items and alternate streams, and takes a folder listed twice', () => {
    const item = (path: string, more: Partial<ListedItem> = {}): ListedItem => ({ path, folder: false, size: 1, anti: false, altStream: false, ...more });
    expect(listingProblem([item('Notes.txt'), item('NOTES.TXT')])).toMatch(/two items/);
    expect(listingProblem([item('docs'), item('docs', { folder: true }), item('docs/a.txt')])).toMatch(/two items/);
    expect(listingProblem([item('a.txt', { anti: true })])).toMatch(/anti-item/);
    expect(listingProblem([item('a.txt:Zone.Identifier')])).toMatch(/alternate data stream/);
    expect(listingProblem([item('docs', { folder: true }), item('docs', { folder: true }), item('docs/a.txt'), item('b.txt')])).toBeNull();
  });

  it('refuses a listing in which a name\'s line break poses as another property', () => {
    const stdout = ['--', 'Path = /in', 'Type = 7z', '', '----------', 'Path = notes.txt', 'Size = 5', 'Folder = +', 'Size = 7', ''].join('\n');
    expect(parseListing(stdout)).toMatchObject({ problem: expect.stringMatching(/Size twice/) as unknown });
    const stray = ['--', 'Path = /in', 'Type = 7z', '', '----------', 'Path = notes.txt', 'and more of its name', ''].join('\n');
    expect(parseListing(stray)).toMatchObject({ problem: expect.stringMatching(/no item property/) as unknown });
  });
});

describe('disk-image signatures 7-Zip opens at fixed offsets or at the end', () => {
  const tailOf = (b: Uint8Array): Uint8Array => b.subarray(Math.max(0, b.length - IMAGE_SIGNATURE_TAIL_BYTES));

  it('names ext2 (mke2fs) and FAT (mtools) images, and a DMG trailer and VHD footer at the end', () => {
    const root = mkdtempSync(join(work, 'root-'));
    writeFileSync(join(root, 'run.ps1'), 'calc');
    run('mke2fs', ['-q', '-t', 'ext2', '-b', '1024', '-d', root, join(work, 'ext.img'), '400']);
    const ext = readFileSync(join(work, 'ext.img'));
    expect(imageFormatsToAsk(ext, tailOf(ext))).toContain('Ext');
    run('dd', ['if=/dev/zero', `of=${join(work, 'fat.img')}`, 'bs=1k', 'count=1440', 'status=none']);
    run('mformat', ['-i', join(work, 'fat.img'), '-f', '1440', '::']);
    const fat = readFileSync(join(work, 'fat.img'));
    expect(imageFormatsToAsk(fat, tailOf(fat))).toEqual(expect.arrayContaining(['FAT', 'MBR']));
    const koly = Buffer.concat([Buffer.alloc(4096, 0x33), Buffer.from('koly'), Buffer.alloc(508)]);
    expect(imageFormatsToAsk(koly.subarray(0, 4096), tailOf(koly))).toEqual(['Dmg']);
    const vhd = Buffer.concat([Buffer.alloc(4096, 0x33), Buffer.from('conectix'), Buffer.alloc(504)]);
    expect(imageFormatsToAsk(vhd.subarray(0, 4096), tailOf(vhd))).toEqual(['VHD']);
  });

  it('names nothing for an ordinary tar, zip, gzip or text file', () => {
    const dir = mkdtempSync(join(work, 'plain-'));
    writeFileSync(join(dir, 'notes.txt'), 'Line 3 notes\r\n'.repeat(400));
    const tar = run('tar', ['-cf', '-', '-C', dir, 'notes.txt']);
    const text = readFileSync(join(dir, 'notes.txt'));
    for (const file of [tar, text, run('gzip', ['-c', join(dir, 'notes.txt')])]) expect(imageFormatsToAsk(file, tailOf(file))).toEqual([]);
  });
});
