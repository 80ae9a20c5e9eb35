/**
 * Writing the manifest and receipt onto real images, reading them back, and a
 * full drive refusing the write with nothing partial left. FAT goes through
 * mtools; exFAT through an exfat-fuse read-write mount where this machine
 * allows one, and through the built-in writer either way.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { probeExfatFuse } from '../../kiosk/drive/exfat-fuse.ts';
import { openVolume, readFileFromImage, removeFromImage, writeFilesToImage, type WriteOptions } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage, type ImageFilesystem } from '../support/image-builder.ts';
import { toolEnvironment } from '../../kiosk/drive/run-tool.ts';
import { entryPath } from '../../kiosk/drive/volume.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-media-write-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const fuseProblem = await probeExfatFuse(work);

const MANIFEST = '/.portcullis/manifest.dsse.json';
const RECEIPT = '/.portcullis/RECEIPT.TXT';
const manifestBytes = new TextEncoder().encode(JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: 'e30=', signatures: [] }));

interface Listing {
  readonly paths: string[];
  readonly free: number;
}

function listing(image: string): Listing {
  const device = openFileBlockDevice(image, 'read-only');
  try {
    const volume = openVolume(device);
    return { paths: volume.walk().map(entryPath).sort(), free: volume.freeBytes() };
  } finally {
    device.close();
  }
}

function fsckClean(image: string, filesystem: ImageFilesystem): void {
  const result = spawnSync(filesystem === 'fat32' ? 'fsck.vfat' : 'fsck.exfat', ['-n', image], { encoding: 'utf8', env: toolEnvironment() });
  expect(result.stdout + result.stderr).not.toMatch(/error|corrupt|invalid|differ/i);
  expect(result.status).toBe(0);
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return error instanceof MediaError ? error.code : `not a MediaError: ${String(error)}`;
  }
  return undefined;
}

/** An image whose free space is `leave` bytes (plus rounding), filled by one file. */
async function fullImage(name: string, filesystem: ImageFilesystem, leave: number): Promise<string> {
  const image = join(work, name);
  const base = { filesystem, sizeMiB: filesystem === 'fat32' ? 33 : 3, label: 'FULL', files: [] };
  await buildDriveImage(image, base);
  const { free } = listing(image);
  await buildDriveImage(image, { ...base, files: [{ path: 'FILLER.BIN', size: free - leave, fill: 0xa5 }] });
  return image;
}

interface Variant {
  readonly title: string;
  readonly filesystem: ImageFilesystem;
  readonly options: WriteOptions;
  readonly method: string;
}

const variants: Variant[] = [
  { title: 'FAT32 through mtools', filesystem: 'fat32', options: {}, method: 'mtools' },
  {
    title: fuseProblem === null ? 'exFAT through an exfat-fuse mount' : `exFAT, falling back to the built-in writer (no mount here: ${fuseProblem})`,
    filesystem: 'exfat',
    options: { exfat: 'auto' },
    method: fuseProblem === null ? 'fuse-mount' : 'direct',
  },
  { title: 'exFAT through the built-in writer', filesystem: 'exfat', options: { exfat: 'direct' }, method: 'direct' },
];

describe.each(variants)('$title', ({ filesystem, options, method }) => {
  const fresh = async (name: string): Promise<string> => {
    const image = join(work, `${method}-${name}.img`);
    await buildDriveImage(image, { filesystem, sizeMiB: filesystem === 'fat32' ? 33 : 4, label: 'WRITE', files: [{ path: 'data/plc.bin', size: 5000, fill: 7 }] });
    return image;
  };

  it('writes the manifest and receipt into a hidden folder and reads the same bytes back', async () => {
    const image = await fresh('write');
    const result = await writeFilesToImage(
      image,
      [
        { path: MANIFEST, content: manifestBytes },
        { path: RECEIPT, content: 'Approved by kiosk K1\r\n' },
      ],
      { ...options, hideNewFolders: true, scratchDir: work },
    );
    expect(result.method).toBe(method);
    expect(await readFileFromImage(image, MANIFEST)).toEqual(manifestBytes);
    expect(Buffer.from(await readFileFromImage(image, RECEIPT)).toString()).toBe('Approved by kiosk K1\r\n');
    const device = openFileBlockDevice(image, 'read-only');
    try {
      const folder = openVolume(device).walk().find((e) => entryPath(e) === '.portcullis');
      expect(folder?.attributes.hidden).toBe(true);
    } finally {
      device.close();
    }
    fsckClean(image, filesystem);
  });

  it('replaces an earlier manifest, leaving one copy with the new bytes', async () => {
    const image = await fresh('replace');
    await writeFilesToImage(image, [{ path: MANIFEST, content: 'old manifest, longer than the new one' }], { ...options, scratchDir: work });
    await writeFilesToImage(image, [{ path: MANIFEST, content: manifestBytes, readonly: true }], { ...options, scratchDir: work });
    expect(await readFileFromImage(image, MANIFEST)).toEqual(manifestBytes);
    expect(listing(image).paths.filter((p) => p.startsWith('.portcullis/'))).toEqual(['.portcullis/manifest.dsse.json']);
    // A read-only manifest can still be replaced by the kiosk.
    await writeFilesToImage(image, [{ path: MANIFEST, content: 'third' }], { ...options, scratchDir: work });
    expect(Buffer.from(await readFileFromImage(image, MANIFEST)).toString()).toBe('third');
    fsckClean(image, filesystem);
  });

  it('removes the manifest folder, and reports when there is nothing to remove', async () => {
    const image = await fresh('remove');
    const before = listing(image);
    await writeFilesToImage(image, [{ path: MANIFEST, content: manifestBytes }], { ...options, scratchDir: work });
    expect(await removeFromImage(image, '.portcullis', { scratchDir: work })).toBe(true);
    expect(await removeFromImage(image, '.portcullis', { scratchDir: work })).toBe(false);
    expect(listing(image)).toEqual(before);
    fsckClean(image, filesystem);
  });

  it.each([
    ['checked before writing', true],
    ['found out while writing, then rolled back', false],
  ])('refuses a manifest that does not fit with MEDIA_FULL, nothing partial left (%s)', async (_how, checkSpaceFirst) => {
    const clusterBytes = filesystem === 'fat32' ? 512 : 4096;
    const image = await fullImage(`${method}-full-${String(checkSpaceFirst)}.img`, filesystem, 2 * clusterBytes);
    const before = listing(image);
    expect(before.free).toBeLessThan(64 * 1024);
    const big = new Uint8Array(64 * 1024).fill(0x42);
    const code = await codeOf(writeFilesToImage(image, [{ path: MANIFEST, content: big }], { ...options, scratchDir: work, checkSpaceFirst }));
    expect(code).toBe('MEDIA_FULL');
    expect(listing(image)).toEqual(before);
    await expect(readFileFromImage(image, MANIFEST)).rejects.toMatchObject({ code: 'MEDIA_NOT_FOUND' });
    fsckClean(image, filesystem);
  });
});

describe('write requests the media layer refuses', () => {
  it('refuses a path a FAT volume cannot hold', async () => {
    const image = join(work, 'refuse.img');
    await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 33, label: 'R', files: [] });
    expect(await codeOf(writeFilesToImage(image, [{ path: 'bad:name.json', content: 'x' }], { scratchDir: work }))).toBe('MEDIA_NAME_UNSUPPORTED');
    expect(await codeOf(writeFilesToImage(image, [{ path: 'a//b', content: 'x' }], { scratchDir: work }))).toBe('MEDIA_SPEC_INVALID');
    expect(listing(image).paths).toEqual([]);
  });
});
