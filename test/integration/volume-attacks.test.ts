/**
 * Red team of the sandboxed volume reader (issue 18.3): images crafted to make
 * the kiosk hang, write or read more than the drive holds, or take a lie for a
 * listing, and paths that are not image files. Each case is refused with a
 * named code (or kept as the drive holds it), through the real sandbox.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileBlockDevice, type BlockDevice } from '../../kiosk/drive/block-device.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { entrySetChecksum, openExfatVolume, type ExfatEntry } from '../../kiosk/drive/exfat-volume.ts';
import { openFatVolume, type FatEntry } from '../../kiosk/drive/fat-volume.ts';
import { openImageReadOnly, writeFilesToImage } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage } from '../support/image-builder.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-volume-attacks-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const IMAGE_ACCESS = pathToFileURL(join(import.meta.dirname, '..', '..', 'kiosk', 'drive', 'image-access.ts')).href;

/** Opens `image` in a Node process of its own (a kiosk that hangs must not hang the test); its error code, or OPENED. */
function openInAnotherProcess(image: string): { code: string; timedOut: boolean } {
  const script = `
import { openImageReadOnly } from ${JSON.stringify(IMAGE_ACCESS)};
try { const opened = await openImageReadOnly(${JSON.stringify(image)}, ${JSON.stringify(join(work, 'open'))}); await opened.close(); console.log('OPENED'); }
catch (error) { console.log(error.code ?? error.message); }`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  return { code: run.stdout.trim(), timedOut: run.signal === 'SIGTERM' };
}

describe('paths that are not image files', () => {
  it('refuses a FIFO named as the image at once, instead of waiting for a writer forever (run --watch DIR takes what is dropped there)', () => {
    const fifo = join(work, 'stick.img');
    execFileSync('mkfifo', [fifo]);
    expect(openInAnotherProcess(fifo)).toEqual({ code: 'MEDIA_IO', timedOut: false });
  });

  it('refuses a character device as the image', () => {
    expect(openInAnotherProcess('/dev/zero')).toEqual({ code: 'MEDIA_IO', timedOut: false });
  });
});

// ---- crafted structures ----

async function codeOf(action: () => Promise<unknown>): Promise<string> {
  try {
    const opened = await action();
    if (opened !== null && typeof opened === 'object' && 'close' in opened) await (opened as { close(): Promise<void> }).close();
  } catch (error) {
    return error instanceof MediaError ? error.code : `not a MediaError: ${String(error)}`;
  }
  return 'OPENED';
}

function withDevice<T>(image: string, use: (device: BlockDevice) => T): T {
  const device = openFileBlockDevice(image, 'read-write');
  try {
    return use(device);
  } finally {
    device.close();
  }
}

const le32 = (n: number): Uint8Array => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
const le64 = (n: number): Uint8Array => Uint8Array.of(...le32(n % 2 ** 32), ...le32(Math.floor(n / 2 ** 32)));

/** Points a FAT short entry at `cluster` with `size` bytes. */
function pointFatEntry(device: BlockDevice, entry: FatEntry, cluster: number, size: number): void {
  device.write(entry.shortEntryOffset + 20, Uint8Array.of((cluster >>> 16) & 0xff, (cluster >>> 24) & 0xff));
  device.write(entry.shortEntryOffset + 26, Uint8Array.of(cluster & 0xff, (cluster >>> 8) & 0xff));
  device.write(entry.shortEntryOffset + 28, le32(size));
}

/** Rewrites an exFAT file's stream extension (first cluster, lengths) and the entry set's checksum. */
function pointExfatEntry(device: BlockDevice, entry: ExfatEntry, change: { firstCluster?: number; dataLength?: number; validDataLength?: number }): void {
  const [primary, stream] = entry.setOffsets;
  if (primary === undefined || stream === undefined) throw new Error('no entry set');
  if (change.firstCluster !== undefined) device.write(stream + 20, le32(change.firstCluster));
  if (change.dataLength !== undefined) device.write(stream + 24, le64(change.dataLength));
  if (change.validDataLength !== undefined) device.write(stream + 8, le64(change.validDataLength));
  const set = new Uint8Array(entry.setOffsets.length * 32);
  entry.setOffsets.forEach((offset, k) => set.set(device.read(offset, 32), k * 32));
  const sum = entrySetChecksum(set);
  device.write(primary + 2, Uint8Array.of(sum & 0xff, sum >>> 8));
}

const named = <E extends { names: readonly string[] }>(entries: readonly E[], path: string): E => entries.find((e) => e.names.join('/') === path) ?? expect.fail(`no ${path}`);

describe('cross-linked clusters: one cluster owned by two files or folders', () => {
  it('refuses FAT files that share one chain (21 files of 20 MiB from a 33 MiB image: 440 MB extracted)', async () => {
    const image = join(work, 'fat-crosslinked.img');
    const copies = Array.from({ length: 20 }, (_, i) => ({ path: `copy${i}.bin`, content: 'x' }));
    await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 33, label: 'XLINK', files: [{ path: 'big.bin', size: 20 * 1024 * 1024, fill: 'A' }, ...copies] });
    withDevice(image, (device) => {
      const entries = openFatVolume(device).walk();
      const big = named(entries, 'big.bin');
      for (const copy of entries.filter((e) => e.names[0]?.startsWith('copy') === true)) pointFatEntry(device, copy, big.firstCluster, big.size);
    });
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open')))).toBe('MEDIA_CORRUPT');
  });

  it('refuses a FAT folder whose chain runs on into another folder', async () => {
    const image = join(work, 'fat-folder-crosslinked.img');
    await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 33, label: 'XLINK', files: [{ path: 'a/one.txt', content: '1' }, { path: 'b/two.txt', content: '2' }] });
    withDevice(image, (device) => {
      const volume = openFatVolume(device);
      const entries = volume.walk();
      const fatStart = volume.boot.reservedSectors * volume.boot.bytesPerSector;
      device.write(fatStart + named(entries, 'b').firstCluster * 4, le32(named(entries, 'a').firstCluster));
    });
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open')))).toBe('MEDIA_CORRUPT');
  });

  it.each(['extract', 'mount'] as const)('refuses exFAT files that share clusters (%s)', async (prefer) => {
    const image = join(work, `exfat-crosslinked-${prefer}.img`);
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 8, label: 'XLINK', files: [{ path: 'big.bin', size: 3 * 1024 * 1024, fill: 'A' }, { path: 'copy.bin', content: 'x' }] });
    withDevice(image, (device) => {
      const entries = openExfatVolume(device).walk();
      const big = named(entries, 'big.bin');
      pointExfatEntry(device, named(entries, 'copy.bin'), { firstCluster: big.firstCluster, dataLength: big.dataLength, validDataLength: big.validDataLength });
    });
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open'), { prefer }))).toBe('MEDIA_CORRUPT');
  });

  it('names an exFAT file that claims more bytes than the volume holds as corrupt, also when the volume is only listed for a mount', async () => {
    const image = join(work, 'exfat-huge-file.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 4, label: 'HUGE', files: [{ path: 'huge.bin', content: 'x' }] });
    withDevice(image, (device) => pointExfatEntry(device, named(openExfatVolume(device).walk(), 'huge.bin'), { dataLength: 2 ** 40, validDataLength: 0 }));
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open')))).toBe('MEDIA_CORRUPT');
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open'), { prefer: 'extract' }))).toBe('MEDIA_CORRUPT');
  });
});

describe('structures the kiosk itself reads when it writes the manifest', () => {
  it('refuses an exFAT allocation bitmap longer than the volume\'s clusters need (the kiosk allocated and read all of it: +4 GiB of memory from an 8 GiB sparse image)', async () => {
    const image = join(work, 'exfat-long-bitmap.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 8, label: 'BITMAP', files: [{ path: 'a.txt', content: 'a' }] });
    const claimed = 4 * 1024 * 1024; // bytes; the volume's clusters need 256
    withDevice(image, (device) => {
      const volume = openExfatVolume(device);
      const { bytesPerSector, clusterHeapOffset, rootCluster, fatOffset, clusterCount } = volume.boot;
      const root = clusterHeapOffset * bytesPerSector + (rootCluster - 2) * volume.clusterSize;
      let entry = -1;
      for (let at = 0; at < volume.clusterSize && entry === -1; at += 32) if (device.read(root + at, 1)[0] === 0x81) entry = root + at;
      const bitmapCluster = new DataView(device.read(entry + 20, 4).buffer).getUint32(0, true);
      // The bitmap's chain goes on through the volume's last clusters, which are free.
      const count = claimed / volume.clusterSize;
      const far = clusterCount + 2 - (count - 1);
      device.write(fatOffset * bytesPerSector + bitmapCluster * 4, le32(far));
      for (let k = 0; k < count - 1; k += 1) device.write(fatOffset * bytesPerSector + (far + k) * 4, le32(k === count - 2 ? 0xffffffff : far + k + 1));
      device.write(entry + 24, le64(claimed));
    });
    expect(await codeOf(() => openImageReadOnly(image, join(work, 'open')))).toBe('MEDIA_CORRUPT');
    expect(await codeOf(() => writeFilesToImage(image, [{ path: '.portcullis/receipt.txt', content: 'x' }], { exfat: 'direct', scratchDir: work }).then(() => null))).toBe('MEDIA_CORRUPT');
  });
});
