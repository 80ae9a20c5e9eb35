/**
 * Layouts the small happy-path images never reach: folders that outgrow their
 * first cluster, files the exFAT writer must scatter over a fragmented
 * volume, and the FAT12/FAT16 volumes small or old drives carry.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { openExfatVolume } from '../../kiosk/drive/exfat-volume.ts';
import { probeExfatFuse } from '../../kiosk/drive/exfat-fuse.ts';
import { openImageReadOnly, readFileFromImage, removeFromImage, writeFilesToImage } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage, type ImageFilesystem } from '../support/image-builder.ts';
import { readVolumeIdentity } from '../../kiosk/drive/identity.ts';
import { runToolOrThrow, toolEnvironment } from '../../kiosk/drive/run-tool.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-media-layout-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const fuseProblem = await probeExfatFuse(work);

function fsck(image: string, filesystem: ImageFilesystem | 'fat'): void {
  const result = spawnSync(filesystem === 'exfat' ? 'fsck.exfat' : 'fsck.vfat', ['-n', image], { encoding: 'utf8', env: toolEnvironment() });
  expect(result.stdout + result.stderr).not.toMatch(/error|corrupt|invalid|differ/i);
  expect(result.status).toBe(0);
}

describe.each(['fat32', 'exfat'] as const)('%s folders with many entries', (filesystem) => {
  it('grows the root and a subfolder past one cluster and reads every file back', async () => {
    const image = join(work, `many-${filesystem}.img`);
    const files = [];
    for (let i = 0; i < 70; i += 1) {
      files.push({ path: `Archive/recipe number ${String(i).padStart(3, '0')} for line 4.csv`, content: `recipe ${i}\n` });
      files.push({ path: `long root name number ${String(i).padStart(3, '0')}.txt`, content: `root ${i}\n` });
    }
    await buildDriveImage(image, { filesystem, sizeMiB: filesystem === 'fat32' ? 33 : 4, label: 'MANY', files });
    fsck(image, filesystem);
    const opened = await openImageReadOnly(image, work);
    try {
      for (const file of files) expect(readFileSync(join(opened.root, file.path), 'utf8')).toBe(file.content);
    } finally {
      await opened.close();
    }
  });
});

describe('exFAT writer on a fragmented volume', () => {
  it('scatters a file over free gaps with a FAT chain that fsck.exfat and exfat-fuse accept', async () => {
    const image = join(work, 'fragmented.img');
    const freeBytes = (): number => {
      const device = openFileBlockDevice(image, 'read-only');
      try {
        return openExfatVolume(device).freeBytes();
      } finally {
        device.close();
      }
    };
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 3, label: 'FRAG', files: [] });
    // Fill the heap with 8 KiB files (a few clusters spare for the root folder), then free every other one.
    const count = Math.floor(freeBytes() / 8192) - 3;
    const files = Array.from({ length: count }, (_, i) => ({ path: `block-${String(i).padStart(3, '0')}.bin`, size: 8192, fill: i & 0xff }));
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 3, label: 'FRAG', files });
    for (let i = 0; i < count; i += 2) await removeFromImage(image, files[i]?.path ?? '');
    const size = 100 * 1024; // more than any free run: the gaps are 8 KiB, the spare tail smaller than this
    expect(freeBytes()).toBeGreaterThan(size + 8192);
    const content = Uint8Array.from({ length: size }, (_, i) => (i * 7) & 0xff);
    await writeFilesToImage(image, [{ path: 'scattered.bin', content }], { exfat: 'direct', scratchDir: work });
    const check = openFileBlockDevice(image, 'read-only');
    try {
      const entry = openExfatVolume(check).walk().find((e) => e.names[0] === 'scattered.bin');
      expect(entry?.noFatChain).toBe(false);
    } finally {
      check.close();
    }
    expect(await readFileFromImage(image, 'scattered.bin')).toEqual(content);
    fsck(image, 'exfat');
    const opened = await openImageReadOnly(image, work);
    try {
      expect(opened.method).toBe(fuseProblem === null ? 'fuse-mount' : 'extract');
      expect(new Uint8Array(readFileSync(join(opened.root, 'scattered.bin')))).toEqual(content);
    } finally {
      await opened.close();
    }
  });
});

describe.each([
  ['fat16', '16', 20],
  ['fat12', '12', 4],
] as const)('%s volumes', (kind, bits, sizeMiB) => {
  it(`reads names, attributes and identity of a ${kind} volume and writes a manifest onto it`, async () => {
    const image = join(work, `${kind}.img`);
    const handle = await import('node:fs/promises').then((fs) => fs.open(image, 'w'));
    await handle.truncate(sizeMiB * 1024 * 1024);
    await handle.close();
    await runToolOrThrow('mkfs.vfat', ['-F', bits, '-n', 'OLDDRIVE', '-i', '1234ABCD', '--mbr=n', image]);
    await writeFilesToImage(image, [{ path: 'Old Project/Long name \u00e9.txt', content: 'old', hidden: true }], { scratchDir: work });
    await writeFilesToImage(image, [{ path: '.portcullis/manifest.dsse.json', content: '{}' }], { scratchDir: work, hideNewFolders: true });
    fsck(image, 'fat');
    expect(await readVolumeIdentity(image)).toEqual({ filesystem: kind, volumeId: '1234-ABCD', label: 'OLDDRIVE', capacity: sizeMiB * 1024 * 1024 });
    const opened = await openImageReadOnly(image, work);
    try {
      expect(readFileSync(join(opened.root, 'Old Project/Long name \u00e9.txt'), 'utf8')).toBe('old');
      expect(opened.attributes.get('Old Project/Long name \u00e9.txt')?.hidden).toBe(true);
      expect(opened.attributes.get('.portcullis')?.hidden).toBe(true);
      expect(readFileSync(join(opened.root, '.portcullis/manifest.dsse.json'), 'utf8')).toBe('{}');
    } finally {
      await opened.close();
    }
  });
});
