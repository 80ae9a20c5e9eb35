/**
 * Volume identity of real images, read from the boot sector and root folder
 * by the project's parser and, independently, by util-linux blkid.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { openFatVolume } from '../../kiosk/drive/fat-volume.ts';
import { buildDriveImage } from '../support/image-builder.ts';
import { readVolumeIdentity, readVolumeIdentityWithBlkid } from '../../kiosk/drive/identity.ts';
import { toolEnvironment } from '../../kiosk/drive/run-tool.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-media-id-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function codeOf(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn();
  } catch (error) {
    return error instanceof MediaError ? error.code : 'not a MediaError';
  }
  return undefined;
}

describe('volume identity', () => {
  it('reads back the FAT32 label and volume id mkfs.vfat was given, and blkid agrees', async () => {
    const image = join(work, 'fat.img');
    await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 34, label: 'PLANT 7', volumeId: 0x0badf00d, files: [] });
    const identity = await readVolumeIdentity(image);
    expect(identity).toEqual({ filesystem: 'fat32', volumeId: '0BAD-F00D', label: 'PLANT 7', capacity: 34 * 1024 * 1024 });
    expect(await readVolumeIdentityWithBlkid(image)).toEqual(identity);
  });

  it('reads back the exFAT label and serial mkfs.exfat and tune.exfat were given, and blkid agrees', async () => {
    const image = join(work, 'exfat.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 5, label: 'Caf\u00e9 \u03a9', volumeId: 'DEAD-BEEF', files: [] });
    const identity = await readVolumeIdentity(image);
    expect(identity).toEqual({ filesystem: 'exfat', volumeId: 'DEAD-BEEF', label: 'Caf\u00e9 \u03a9', capacity: 5 * 1024 * 1024 });
    expect(await readVolumeIdentityWithBlkid(image)).toEqual(identity);
  });

  it('keeps control characters of a hostile FAT label as they are, like blkid', async () => {
    const image = join(work, 'hostile-label.img');
    await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 33, label: 'PLAIN', files: [] });
    const hostile = Uint8Array.from([0x41, 0x01, 0x42, 0x1b, 0x5b, 0x32, 0x4a, 0x24, 0x22, 0x90, 0x20]); // A ^A B ESC [2J $ " É
    const device = openFileBlockDevice(image, 'read-write');
    try {
      device.write(71, hostile); // BS_VolLab
      // The root folder's label entry is the first 8.3 entry of the root cluster.
      const volume = openFatVolume(device);
      const rootStart = (volume.boot.firstDataSector + (volume.boot.rootCluster - 2) * volume.boot.sectorsPerCluster) * 512;
      expect(device.read(rootStart + 11, 1)[0]).toBe(0x08);
      device.write(rootStart, hostile);
    } finally {
      device.close();
    }
    const identity = await readVolumeIdentity(image);
    expect(identity.label).toBe('A\u0001B\u001b[2J$"\u00c9');
    expect(await readVolumeIdentityWithBlkid(image)).toEqual(identity);
  });

  it('refuses a file that holds no FAT or exFAT volume', async () => {
    const image = join(work, 'zeros.img');
    writeFileSync(image, new Uint8Array(1024 * 1024));
    expect(await codeOf(() => readVolumeIdentity(image))).toBe('MEDIA_UNRECOGNIZED');
  });

  const loopWorks = spawnSync('losetup', ['--find'], { encoding: 'utf8', env: toolEnvironment() }).status === 0;
  it(loopWorks ? 'reads the same identity from a read-only loop block device' : 'cannot attach a loop device here, so checks the image file path only', async () => {
    const image = join(work, 'exfat.img');
    const fromFile = await readVolumeIdentity(image);
    expect(fromFile.volumeId).toBe('DEAD-BEEF');
    if (!loopWorks) return;
    const loop = execFileSync('losetup', ['--find', '--show', '--read-only', image], { encoding: 'utf8', env: toolEnvironment() }).trim();
    try {
      expect(await readVolumeIdentity(loop)).toEqual(fromFile);
    } finally {
      execFileSync('losetup', ['--detach', loop], { env: toolEnvironment() });
    }
  });
});
