/**
 * Real FAT32 and exFAT images, built with mkfs.vfat + mtools and mkfs.exfat +
 * the project's exFAT writer, opened the way the kiosk opens a drive: exFAT
 * through an exfat-fuse mount when this machine allows one (else extracted,
 * and the test says why), FAT always extracted with the project's reader.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { mountOptions, probeExfatFuse } from '../../kiosk/drive/exfat-fuse.ts';
import { openFatVolume } from '../../kiosk/drive/fat-volume.ts';
import { openImageReadOnly, readFileFromImage, type OpenedImage } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage, type DriveImageSpec, type ImageFilesystem } from '../support/image-builder.ts';
import { readVolumeIdentity } from '../../kiosk/drive/identity.ts';
import { toolEnvironment } from '../../kiosk/drive/run-tool.ts';

const NFC = 'caf\u00e9.txt';
const NFD = 'cafe\u0301.txt';
const RTL = 'invoice\u202etxt.exe';
const EMOJI = 'emoji\u{1F600}.txt';
const DEEP = 'Projects/Line 4/PLC/program.s7p';

function spec(filesystem: ImageFilesystem): DriveImageSpec {
  return {
    filesystem,
    sizeMiB: filesystem === 'fat32' ? 33 : 8,
    label: 'PORTTEST',
    volumeId: 'C0DE-F00D',
    directories: [{ path: '.hidden-dir', hidden: true }, 'empty'],
    files: [
      { path: 'README.TXT', content: 'upper-case 8.3\n' },
      { path: 'notes.txt', content: 'lower-case 8.3\n' },
      { path: 'Long file name with spaces.txt', content: 'long' },
      { path: NFC, content: 'NFC' },
      { path: NFD, content: 'NFD' },
      { path: '\u65e5\u672c\u8a9e.txt', content: 'CJK' },
      { path: EMOJI, content: 'outside the BMP' },
      { path: RTL, content: 'MZ', hidden: true },
      { path: 'trailing space ', content: 'ts' },
      { path: 'CON', content: 'a DOS device name' },
      { path: 'boot.ini', content: 'sys', hidden: true, system: true, readonly: true },
      { path: DEEP, size: 70_000, fill: 'S7' },
    ],
  };
}

function expectedContent(filesystem: ImageFilesystem): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const file of spec(filesystem).files) {
    if ('content' in file) out.set(file.path, Buffer.from(file.content as string));
    else out.set(file.path, Buffer.from('S7'.repeat(35_000)));
  }
  return out;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function listTree(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
}

const work = mkdtempSync(join(tmpdir(), 'portcullis-media-'));
const fuseProblem = await probeExfatFuse(work);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(['fat32', 'exfat'] as const)('%s image', (filesystem) => {
  const image = join(work, `${filesystem}.img`);
  let opened: OpenedImage;

  beforeAll(async () => {
    await buildDriveImage(image, spec(filesystem));
    opened = await openImageReadOnly(image, work);
  });
  afterAll(async () => opened.close());

  it(`passes ${filesystem === 'fat32' ? 'fsck.fat' : 'fsck.exfat'} without a complaint`, () => {
    const fsck = filesystem === 'fat32' ? ['fsck.vfat', ['-n', image]] as const : ['fsck.exfat', ['-n', image]] as const;
    const result = spawnSync(fsck[0], fsck[1], { encoding: 'utf8', env: toolEnvironment() });
    expect(result.stdout + result.stderr).not.toMatch(/error|corrupt|invalid|differ/i);
    expect(result.status).toBe(0);
  });

  it('carries the label and volume id it was built with', async () => {
    expect(await readVolumeIdentity(image)).toEqual({ filesystem, volumeId: 'C0DE-F00D', label: 'PORTTEST', capacity: spec(filesystem).sizeMiB * 1024 * 1024 });
  });

  it('is the same bytes when built twice from the same spec', async () => {
    const again = join(work, `${filesystem}-again.img`);
    await buildDriveImage(again, spec(filesystem));
    expect(sha256(again)).toBe(sha256(image));
    rmSync(again);
  });

  const how =
    filesystem === 'fat32'
      ? 'extracts FAT (fusefat shows only 8.3 names, no kernel vfat driver here)'
      : fuseProblem === null
        ? 'mounts exFAT read-only with exfat-fuse'
        : `extracts exFAT because no mount is possible here: ${fuseProblem}`;
  it(how, () => {
    if (filesystem === 'exfat' && fuseProblem === null) {
      expect(opened.method).toBe('fuse-mount');
      expect(opened.fallbackReason).toBeNull();
    } else {
      expect(opened.method).toBe('extract');
      expect(opened.fallbackReason).toMatch(filesystem === 'fat32' ? /fusefat/ : /./);
    }
  });

  it('shows every name exactly as written: 8.3, long, NFC and NFD apart, CJK, emoji, RTL override, trailing space, nested', () => {
    const expected = [
      ...spec(filesystem).files.map((f) => f.path),
      '.hidden-dir',
      'empty',
      'Projects',
      'Projects/Line 4',
      'Projects/Line 4/PLC',
    ].sort();
    expect(listTree(opened.root)).toEqual(expected);
    expect(opened.unrepresentable).toEqual([]);
  });

  it('gives back every byte of every file', () => {
    for (const [path, content] of expectedContent(filesystem)) {
      expect(readFileSync(join(opened.root, path)), path).toEqual(content);
    }
  });

  it('reports hidden, system and read-only attributes that the folder cannot show', () => {
    expect(opened.attributes.get('boot.ini')).toMatchObject({ hidden: true, system: true, readonly: true });
    expect(opened.attributes.get(RTL)).toMatchObject({ hidden: true, system: false });
    expect(opened.attributes.get('.hidden-dir')).toMatchObject({ hidden: true });
    expect(opened.attributes.get('notes.txt')).toMatchObject({ hidden: false, system: false, readonly: false });
  });

  it('finds README.TXT when asked for readme.txt, as the filesystem does', async () => {
    expect(Buffer.from(await readFileFromImage(image, 'readme.txt')).toString()).toBe('upper-case 8.3\n');
    expect(Buffer.from(await readFileFromImage(image, '/PROJECTS/line 4/plc/PROGRAM.S7P')).length).toBe(70_000);
  });

  it('never lets a write into what the kiosk scans reach the image', () => {
    const before = sha256(image);
    const planted = join(opened.root, 'planted.txt');
    if (opened.method === 'fuse-mount') {
      expect(() => writeFileSync(planted, 'x')).toThrow(/EROFS|read-only/i);
    } else {
      writeFileSync(planted, 'x'); // the extraction is a copy in a kiosk-owned folder
      rmSync(planted);
    }
    expect(sha256(image)).toBe(before);
  });
});

describe('FAT32 specifics', () => {
  const image = join(work, 'fat32.img');

  it('keeps 8.3 names as plain 8.3 entries (lower case through the NT flag) and gives long names an alias', () => {
    const device = openFileBlockDevice(image, 'read-only');
    try {
      const byName = new Map(openFatVolume(device).walk().map((e) => [e.names.join('/'), e.shortName]));
      expect(byName.get('README.TXT')).toBe('README.TXT');
      expect(byName.get('notes.txt')).toBe('notes.txt');
      expect(byName.get('Long file name with spaces.txt')).toBe('LONGFI~1.TXT');
    } finally {
      device.close();
    }
  });

  it('holds long names that mtools, an independent reader, also finds', () => {
    const env = toolEnvironment({ MTOOLS_SKIP_CHECK: '1' });
    const read = (path: string): string => execFileSync('mtype', ['-i', image, `::${path}`], { env, encoding: 'utf8' });
    expect(read('Long file name with spaces.txt')).toBe('long');
    expect(read(NFD)).toBe('NFD');
    expect(read(RTL)).toBe('MZ');
    expect(read('readme.txt')).toBe('upper-case 8.3\n'); // case-insensitive there too
    expect(execFileSync('mattrib', ['-i', image, '::boot.ini'], { env, encoding: 'utf8' })).toMatch(/SHR/);
  });

  it('needs its own reader: mtools extraction would rename the emoji file to emoji__.txt', () => {
    const out = mkdtempSync(join(work, 'mtools-'));
    execFileSync('mcopy', ['-s', '-n', '-i', image, '::/', out], { env: toolEnvironment({ MTOOLS_SKIP_CHECK: '1' }) });
    const names = readdirSync(out);
    expect(names).toContain('emoji__.txt');
    expect(names).not.toContain(EMOJI);
  });

  it('extracts into a case-sensitive folder, so only the exact name opens there', async () => {
    const opened = await openImageReadOnly(image, work);
    try {
      expect(existsSync(join(opened.root, 'README.TXT'))).toBe(true);
      expect(existsSync(join(opened.root, 'readme.txt'))).toBe(false);
    } finally {
      await opened.close();
    }
    expect(existsSync(opened.root)).toBe(false);
  });
});

describe('exFAT specifics', () => {
  const image = join(work, 'exfat.img');

  it('gives the same tree and bytes whether mounted or extracted', async () => {
    const extracted = await openImageReadOnly(image, work, { prefer: 'extract' });
    const preferred = await openImageReadOnly(image, work);
    try {
      expect(extracted.method).toBe('extract');
      expect(extracted.fallbackReason).toBe('extraction was asked for');
      expect(listTree(preferred.root)).toEqual(listTree(extracted.root));
      expect(readFileSync(join(preferred.root, DEEP))).toEqual(readFileSync(join(extracted.root, DEEP)));
    } finally {
      await extracted.close();
      await preferred.close();
    }
  });

  const mountTitle =
    fuseProblem === null
      ? 'mounts read-only, nosuid, nodev and noexec, and opens readme.txt as README.TXT'
      : `cannot check mount flags, no mount is possible here (${fuseProblem}); checks the extracted copy instead`;
  it(mountTitle, async () => {
    const opened = await openImageReadOnly(image, work);
    try {
      if (opened.method === 'fuse-mount') {
        expect(await mountOptions(opened.root)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
        expect(readFileSync(join(opened.root, 'readme.txt'), 'utf8')).toBe('upper-case 8.3\n');
      } else {
        expect(readFileSync(join(opened.root, 'README.TXT'), 'utf8')).toBe('upper-case 8.3\n');
      }
    } finally {
      await opened.close();
    }
    expect(existsSync(opened.root)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(opened.root);
  });
});
