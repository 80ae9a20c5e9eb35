/**
 * Reads a drive's boot regions (core/boot-regions.ts says which): from the
 * whole disk (the station's /dev/sdX) its MBR and GPT, from the volume (the
 * partition, or an image file) its boot sectors. Opened O_RDONLY|O_NOFOLLOW;
 * every read is bounded by the plan; a read that fails or comes up short, or
 * a plan that refuses the bytes, throws MediaError: the caller refuses the
 * drive (BOOT_SECTORS_UNCHECKED), it never skips the check.
 */
import { BOOT_LIMITS, checkGptEntries, diskBootRegions, volumeBootRegion, type BootRegion, type BootRegionBytes, type RegionPlan } from '../core/boot-regions.ts';
import { openFileBlockDevice, type BlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';

/** The devices to read: the whole disk when the kiosk holds it (null for an image or a partition alone), and the volume. */
export interface BootSectorSource {
  readonly disk: string | null;
  readonly volume: string;
}

function planned(plan: RegionPlan, device: string): RegionPlan & { ok: true } {
  if (!plan.ok) throw new MediaError('MEDIA_CORRUPT', `${device}: ${plan.detail}`);
  return plan;
}

function readRegions(device: BlockDevice, path: string, regions: readonly BootRegion[]): BootRegionBytes[] {
  return regions.map((region) => ({ region, device: path, bytes: device.read(region.offset, region.length) }));
}

function readDisk(path: string): BootRegionBytes[] {
  const device = openFileBlockDevice(path, 'read-only');
  try {
    const plan = planned(diskBootRegions(device.read(0, Math.min(BOOT_LIMITS.headBytes, device.size)), device.size), path);
    const regions = readRegions(device, path, plan.regions);
    const entries = regions.find((r) => r.region.name === 'gpt-entries');
    if (plan.gptEntriesCrc !== undefined) {
      // The plan checked the header; the entries it points to must match the header's CRC, as firmware checks them.
      const wrong = entries ? checkGptEntries(entries.bytes, plan.gptEntriesCrc) : 'the GPT partition entries were not read (a bug)';
      if (wrong) throw new MediaError('MEDIA_CORRUPT', `${path}: ${wrong}`);
    }
    return regions;
  } finally {
    device.close();
  }
}

function readVolume(path: string): BootRegionBytes[] {
  const device = openFileBlockDevice(path, 'read-only');
  try {
    const first = device.read(0, Math.min(512, device.size));
    return readRegions(device, path, planned(volumeBootRegion(first, device.size), path).regions);
  } finally {
    device.close();
  }
}

/**
 * The boot regions of `source`, disk first. A disk that is its own volume (a
 * filesystem on the whole stick, no partition table) is read once, as a volume.
 */
export function readBootRegions(source: BootSectorSource): BootRegionBytes[] {
  const disk = source.disk !== null && source.disk !== source.volume ? readDisk(source.disk) : [];
  return [...disk, ...readVolume(source.volume)];
}
