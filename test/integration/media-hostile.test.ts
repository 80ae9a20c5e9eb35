/**
 * Hostile drives: names the filesystems can hold but their rules forbid,
 * crafted names a host folder cannot hold, case-only clashes, and corrupt
 * structures. The kiosk must see all of them reported, never miss a file, and
 * never write outside its own folder.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { openExfatVolume } from '../../kiosk/drive/exfat-volume.ts';
import { openFatVolume, type FatVolume } from '../../kiosk/drive/fat-volume.ts';
import { openImageReadOnly, readFileFromImage } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage, type ImageFilesystem } from '../support/image-builder.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-media-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function codeOf(action: () => unknown): Promise<string | undefined> {
  try {
    await action();
  } catch (error) {
    return error instanceof MediaError ? error.code : `not a MediaError: ${String(error)}`;
  }
  return undefined;
}

function withFat<T>(image: string, use: (volume: FatVolume, write: (offset: number, bytes: Uint8Array) => void) => T): T {
  const device = openFileBlockDevice(image, 'read-write');
  try {
    return use(openFatVolume(device), (offset, bytes) => device.write(offset, bytes));
  } finally {
    device.close();
  }
}

const HOSTILE = [
  { path: 'bell\u0007.txt', content: 'control character' },
  { path: 'what?.txt', content: 'question mark' },
  { path: 'back\\slash.txt', content: 'backslash' },
  { path: 'README.TXT', content: 'upper' },
  { path: 'readme.txt', content: 'lower' },
  { path: 'lone\ud800.txt', content: 'unpaired surrogate' },
];

describe.each(['fat32', 'exfat'] as const)('hostile names on %s', (filesystem: ImageFilesystem) => {
  const image = join(work, `hostile-${filesystem}.img`);

  beforeAll(async () => {
    await buildDriveImage(image, { filesystem, sizeMiB: filesystem === 'fat32' ? 33 : 4, label: 'HOSTILE', files: HOSTILE, hostileNames: true });
  });

  it('builds names the rules forbid, and a case-only clash, exactly', () => {
    const device = openFileBlockDevice(image, 'read-only');
    try {
      const volume = filesystem === 'fat32' ? openFatVolume(device) : openExfatVolume(device);
      expect(volume.walk().map((e) => e.names.join('/')).sort()).toEqual(HOSTILE.map((f) => f.path).sort());
    } finally {
      device.close();
    }
  });

  it('extracts each clashing spelling as its own file and reports the name no host folder can hold', async () => {
    const opened = await openImageReadOnly(image, work, { prefer: 'extract' });
    try {
      expect(opened.unrepresentable).toEqual([{ names: ['lone\ud800.txt'], kind: 'file', reason: 'NAME_NOT_UNICODE' }]);
      expect(readFileSync(join(opened.root, 'README.TXT'), 'utf8')).toBe('upper');
      expect(readFileSync(join(opened.root, 'readme.txt'), 'utf8')).toBe('lower');
      expect(readFileSync(join(opened.root, 'bell\u0007.txt'), 'utf8')).toBe('control character');
      expect(readdirSync(opened.root)).toHaveLength(HOSTILE.length - 1);
    } finally {
      await opened.close();
    }
  });

  it('refuses to guess which of two case-only twins a case-insensitive lookup means', async () => {
    expect(Buffer.from(await readFileFromImage(image, 'readme.txt')).toString()).toBe('lower');
    expect(await codeOf(() => readFileFromImage(image, 'ReadMe.txt'))).toBe('MEDIA_NAME_UNSUPPORTED');
  });
});

describe('exFAT through exfat-fuse', () => {
  it('does not mount a volume with a name exfat-fuse cannot present (it aborts the whole mount), and extracts it', async () => {
    const image = join(work, 'lone.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 4, label: 'L', hostileNames: true, files: [{ path: 'lone\ud800.txt', content: 'x' }, { path: 'ok.txt', content: 'ok' }] });
    const opened = await openImageReadOnly(image, work);
    try {
      expect(opened.method).toBe('extract');
      expect(opened.fallbackReason).toMatch(/NAME_NOT_UNICODE/);
      expect(readdirSync(opened.root)).toEqual(['ok.txt']);
    } finally {
      await opened.close();
    }
  });

  it('extracts rather than mounts a volume with case-only twins, so each name keeps its own bytes', async () => {
    const image = join(work, 'twins.img');
    const files = [
      { path: 'Setup.EXE', content: 'scanned' },
      { path: 'SETUP.exe', content: 'smuggled' },
    ];
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 4, label: 'T', hostileNames: true, files });
    const opened = await openImageReadOnly(image, work);
    try {
      expect(opened.method).toBe('extract');
      expect(opened.fallbackReason).toMatch(/differ only in case/);
      expect(opened.caseClashes).toEqual([['Setup.EXE', 'SETUP.exe']]);
      expect(readFileSync(join(opened.root, 'Setup.EXE'), 'utf8')).toBe('scanned');
      expect(readFileSync(join(opened.root, 'SETUP.exe'), 'utf8')).toBe('smuggled');
    } finally {
      await opened.close();
    }
  });
});

describe('crafted FAT names', () => {
  it('reports "/" and ".." names instead of writing outside the extraction folder', async () => {
    const image = join(work, 'crafted.img');
    await buildDriveImage(image, {
      filesystem: 'fat32',
      sizeMiB: 33,
      label: 'CRAFTED',
      files: [
        { path: '\u00e9\u00e9/payload.txt', content: 'escape attempt' },
        { path: 'x\u00e9y', content: 'slash' },
        { path: 'ok.txt', content: 'fine' },
      ],
    });
    withFat(image, (volume) => {
      const byName = new Map(volume.walk().map((e) => [e.names.join('/'), e]));
      volume.rewriteLongName(byName.get('\u00e9\u00e9') ?? expect.fail('no folder'), '..');
      volume.rewriteLongName(byName.get('x\u00e9y') ?? expect.fail('no file'), 'x/y');
    });
    const jail = mkdtempSync(join(work, 'jail-'));
    const opened = await openImageReadOnly(image, jail);
    try {
      expect(opened.unrepresentable).toEqual([
        { names: ['..'], kind: 'directory', reason: 'NAME_IS_DOT' },
        { names: ['..', 'payload.txt'], kind: 'file', reason: 'PARENT_UNREPRESENTABLE' },
        { names: ['x/y'], kind: 'file', reason: 'NAME_HAS_SLASH' },
      ]);
      expect(readdirSync(opened.root)).toEqual(['ok.txt']);
      expect(readdirSync(jail)).toEqual([opened.root.slice(jail.length + 1)]);
    } finally {
      await opened.close();
    }
  });
});

describe('corrupt volumes', () => {
  const base = { sizeMiB: 33, label: 'CORRUPT', files: [{ path: 'dir/inner.txt', content: 'x' }, { path: 'two-clusters.bin', size: 1000, fill: 1 }] };

  it('refuses a FAT folder that loops back to the root', async () => {
    const image = join(work, 'loop.img');
    await buildDriveImage(image, { ...base, filesystem: 'fat32' });
    withFat(image, (volume, write) => {
      const dir = volume.walk().find((e) => e.names.join('/') === 'dir') ?? expect.fail('no dir');
      const root = volume.boot.rootCluster;
      write(dir.shortEntryOffset + 20, Uint8Array.of((root >> 16) & 0xff, root >> 24));
      write(dir.shortEntryOffset + 26, Uint8Array.of(root & 0xff, (root >> 8) & 0xff));
    });
    expect(await codeOf(() => openImageReadOnly(image, work))).toBe('MEDIA_CORRUPT');
    expect(readdirSync(work).filter((n) => n.startsWith('extract-'))).toEqual([]);
  });

  it('refuses a FAT file whose cluster chain runs into a free cluster', async () => {
    const image = join(work, 'chain.img');
    await buildDriveImage(image, { ...base, filesystem: 'fat32' });
    withFat(image, (volume, write) => {
      const file = volume.walk().find((e) => e.names.join('/') === 'two-clusters.bin') ?? expect.fail('no file');
      const fatStart = volume.boot.reservedSectors * volume.boot.bytesPerSector;
      write(fatStart + file.firstCluster * 4, new Uint8Array(4)); // first link now says "free"
    });
    expect(await codeOf(() => openImageReadOnly(image, work))).toBe('MEDIA_CORRUPT');
    expect(readdirSync(work).filter((n) => n.startsWith('extract-'))).toEqual([]);
  });

  it('refuses an exFAT entry set whose checksum does not match', async () => {
    const image = join(work, 'set.img');
    await buildDriveImage(image, { ...base, filesystem: 'exfat', sizeMiB: 4 });
    const device = openFileBlockDevice(image, 'read-write');
    try {
      const entry = openExfatVolume(device).walk().find((e) => e.names.join('/') === 'two-clusters.bin') ?? expect.fail('no file');
      const nameEntry = entry.setOffsets[2] ?? expect.fail('no name entry');
      device.write(nameEntry + 2, Uint8Array.of(0x54)); // "two" -> "Two", checksum left alone
    } finally {
      device.close();
    }
    expect(await codeOf(() => openImageReadOnly(image, work, { prefer: 'extract' }))).toBe('MEDIA_CORRUPT');
  });

  it('refuses an exFAT boot sector changed without its checksum', async () => {
    const image = join(work, 'boot.img');
    await buildDriveImage(image, { ...base, filesystem: 'exfat', sizeMiB: 4 });
    const bytes = readFileSync(image);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff; // VolumeSerialNumber
    writeFileSync(image, bytes);
    expect(await codeOf(() => openImageReadOnly(image, work))).toBe('MEDIA_CORRUPT');
  });

  it('stops at the entry, depth and size bounds instead of walking on', async () => {
    const image = join(work, 'bounds.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 4, label: 'B', files: [{ path: 'a/b/c/d/e.txt', content: '12345' }, { path: 'f.txt', content: '' }] });
    const open = (limits: { maxDepth?: number; maxEntries?: number; maxTotalBytes?: number }) => openImageReadOnly(image, work, { prefer: 'extract', limits });
    expect(await codeOf(() => open({ maxDepth: 4 }))).toBe('MEDIA_LIMIT_EXCEEDED');
    expect(await codeOf(() => open({ maxEntries: 5 }))).toBe('MEDIA_LIMIT_EXCEEDED');
    expect(await codeOf(() => open({ maxTotalBytes: 4 }))).toBe('MEDIA_LIMIT_EXCEEDED');
    const opened = await open({ maxDepth: 5, maxEntries: 6, maxTotalBytes: 5 });
    expect(readFileSync(join(opened.root, 'a/b/c/d/e.txt'), 'utf8')).toBe('12345');
    await opened.close();
  });

  it('refuses an image that is neither FAT nor exFAT', async () => {
    const image = join(work, 'zeros.img');
    writeFileSync(image, new Uint8Array(4 * 1024 * 1024));
    expect(await codeOf(() => openImageReadOnly(image, work))).toBe('MEDIA_UNRECOGNIZED');
  });
});
