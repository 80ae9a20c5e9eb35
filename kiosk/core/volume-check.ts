/**
 * Partition and filesystem checks before mounting: pure, over the first
 * sector of each volume. The kiosk reads FAT and exFAT; anything else, an
 * encrypted volume (BitLocker, LUKS) or a drive with no partition is refused
 * with a message the technician can act on. Checked in this order because a
 * BitLocker volume also looks like a FAT boot sector.
 */
import type { BlockDeviceRecord, StationErrorCode } from './device.ts';

/** Which filesystem a boot sector announces, or null when it is neither FAT nor exFAT. */
export function sniffFilesystem(sector: Uint8Array): 'fat' | 'exfat' | null {
  if (sector.length < 512 || sector[510] !== 0x55 || sector[511] !== 0xaa) return null;
  if (new TextDecoder('latin1').decode(sector.subarray(3, 11)) === 'EXFAT   ') return 'exfat';
  const bytesPerSector = (sector[11] ?? 0) | ((sector[12] ?? 0) << 8);
  if ((sector[0] === 0xeb || sector[0] === 0xe9) && [512, 1024, 2048, 4096].includes(bytesPerSector)) return 'fat';
  return null;
}

export const SECTOR_BYTES = 512;

export type VolumeKind = 'vfat' | 'exfat' | 'bitlocker' | 'luks' | 'ntfs' | 'unknown';

const ascii = (sector: Uint8Array, from: number, to: number): string => new TextDecoder('latin1').decode(sector.subarray(from, to));

/** What a volume's first sector announces. */
export function classifyVolume(sector: Uint8Array): VolumeKind {
  // BitLocker (Windows 7 and later, BitLocker To Go included): OEM id "-FVE-FS-" at offset 3.
  if (sector.length >= 11 && ascii(sector, 3, 11) === '-FVE-FS-') return 'bitlocker';
  // LUKS1 and LUKS2: magic "LUKS" 0xBA 0xBE at offset 0 (LUKS2's secondary header: "SKUL" 0xBA 0xBE).
  if (sector.length >= 6 && (ascii(sector, 0, 4) === 'LUKS' || ascii(sector, 0, 4) === 'SKUL') && sector[4] === 0xba && sector[5] === 0xbe) return 'luks';
  if (sector.length >= 11 && ascii(sector, 3, 11) === 'NTFS    ') return 'ntfs';
  const fs = sniffFilesystem(sector);
  return fs === 'fat' ? 'vfat' : fs === 'exfat' ? 'exfat' : 'unknown';
}

export type VolumeCheck =
  | { readonly ok: true; readonly filesystem: 'vfat' | 'exfat' }
  | { readonly ok: false; readonly code: StationErrorCode; readonly message: string };

export function checkVolume(device: string, sector: Uint8Array): VolumeCheck {
  const kind = classifyVolume(sector);
  switch (kind) {
    case 'vfat':
    case 'exfat':
      return { ok: true, filesystem: kind };
    case 'bitlocker':
      return { ok: false, code: 'VOLUME_ENCRYPTED', message: `${device} is encrypted with BitLocker: the kiosk cannot check what it cannot read. Copy the files to an unencrypted drive.` };
    case 'luks':
      return { ok: false, code: 'VOLUME_ENCRYPTED', message: `${device} is an encrypted LUKS volume: the kiosk cannot check what it cannot read. Copy the files to an unencrypted drive.` };
    case 'ntfs':
      return { ok: false, code: 'VOLUME_UNKNOWN_FS', message: `${device} is formatted NTFS: the kiosk reads FAT32 and exFAT only. Reformat the drive as FAT32 or exFAT.` };
    case 'unknown':
      return { ok: false, code: 'VOLUME_UNKNOWN_FS', message: `${device} holds no filesystem the kiosk can read (FAT32 or exFAT). Reformat the drive as FAT32 or exFAT.` };
  }
}

/** A drive must bring at least one partition (or a volume image). */
export function checkLayout(drives: readonly BlockDeviceRecord[]): VolumeCheck | null {
  if (drives.length === 0) return { ok: false, code: 'DEVICE_NO_STORAGE', message: 'the device brought no drive with it: nothing to scan.' };
  const empty = drives.find((d) => d.partitions.length === 0);
  if (empty) return { ok: false, code: 'VOLUME_NO_PARTITION', message: `${empty.device} has no partition: format it with one FAT32 or exFAT partition.` };
  return null;
}
