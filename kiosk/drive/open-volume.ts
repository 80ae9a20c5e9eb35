/** Picks the reader for a volume from its boot sector: FAT12/16/32 or exFAT. */
import type { BlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import { openExfatVolume } from './exfat-volume.ts';
import { openFatVolume } from './fat-volume.ts';
import { sniffFilesystem } from '../core/volume-check.ts';
import type { FilesystemKind, VolumeReader } from './volume.ts';

/** Opens a volume reader of the right kind on `device`. */
export function openVolume(device: BlockDevice): VolumeReader & { filesystem: FilesystemKind } {
  switch (sniffFilesystem(device.read(0, Math.min(512, device.size)))) {
    case 'fat':
      return openFatVolume(device);
    case 'exfat':
      return openExfatVolume(device);
    case null:
      throw new MediaError('MEDIA_UNRECOGNIZED', 'neither a FAT nor an exFAT boot sector at offset 0');
  }
}
