/**
 * A volume's identity for the manifest's media binding: filesystem, volume id,
 * label and capacity, read from the boot sector and root folder without
 * mounting. A second reader asks util-linux `blkid` for the same facts, so
 * tests can hold the two against each other.
 */
import { openFileBlockDevice, type BlockDevice } from './block-device.ts';
import { decodeCodepage850 } from '../core/codepage-850.ts';
import { MediaError } from './errors.ts';
import { openExfatVolume } from './exfat-volume.ts';
import { runToolOrThrow } from './run-tool.ts';
import { openFatVolume } from './fat-volume.ts';
import type { FilesystemKind } from './volume.ts';
import { sniffFilesystem } from '../core/volume-check.ts';

export interface VolumeIdentity {
  readonly filesystem: FilesystemKind;
  /** FAT volume id or exFAT volume serial as "XXXX-XXXX" (upper-case hex); null when a FAT volume has none. */
  readonly volumeId: string | null;
  /** As stored, trailing spaces trimmed; may hold control characters: escape before display. '' when none. */
  readonly label: string;
  /** Size of the filesystem in bytes, from its boot sector. */
  readonly capacity: number;
}

/** Formats a 32-bit volume id the way Windows and blkid show it: "1234-ABCD". */
export function formatVolumeId(id: number): string {
  const hex = (id >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `${hex.slice(0, 4)}-${hex.slice(4)}`;
}

export { sniffFilesystem } from '../core/volume-check.ts';

/** Reads the identity of the volume on `device`; MEDIA_UNRECOGNIZED when it is neither FAT nor exFAT. */
export function identifyVolume(device: BlockDevice): VolumeIdentity {
  const sector = device.read(0, Math.min(512, device.size));
  switch (sniffFilesystem(sector)) {
    case 'exfat': {
      const volume = openExfatVolume(device);
      return {
        filesystem: 'exfat',
        volumeId: formatVolumeId(volume.boot.volumeSerial),
        label: volume.label() ?? '',
        capacity: volume.boot.volumeLength * volume.boot.bytesPerSector,
      };
    }
    case 'fat': {
      const volume = openFatVolume(device);
      const boot = volume.boot;
      // Windows shows the root folder's label entry; the boot sector copy is the fallback.
      const bootLabel = boot.bootLabel === 'NO NAME' ? '' : (boot.bootLabel ?? '');
      return {
        filesystem: boot.kind,
        volumeId: boot.volumeId === null ? null : formatVolumeId(boot.volumeId),
        label: volume.rootLabel() ?? bootLabel,
        capacity: boot.totalSectors * boot.bytesPerSector,
      };
    }
    case null:
      throw new MediaError('MEDIA_UNRECOGNIZED', 'neither a FAT nor an exFAT boot sector at offset 0');
  }
}

/** Reads the identity of an image file or block device, opened read-only. */
export async function readVolumeIdentity(path: string): Promise<VolumeIdentity> {
  await Promise.resolve(); // reads are synchronous underneath; the promise keeps callers free to change that
  const device = openFileBlockDevice(path, 'read-only');
  try {
    return identifyVolume(device);
  } finally {
    device.close();
  }
}

/** Raw label fields: blkid prints their bytes unescaped, so a hostile label can hold a newline. */
const RAW_FIELDS = new Set(['ID_FS_LABEL', 'ID_FS_LABEL_FATBOOT']);

/**
 * Parses `blkid -p -o udev` output. Values are hostile: the raw ID_FS_LABEL
 * line carries the label's bytes as they are (control characters, even a
 * newline), so only the \xNN-escaped *_ENC fields are used for text, a line
 * that is not KEY=value is accepted only as the tail of a raw label, and a key
 * seen twice (a label posing as another field) is refused.
 */
export function parseBlkidUdev(text: string): ReadonlyMap<string, string> {
  const fields = new Map<string, string>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let previous = '';
  lines.forEach((line, index) => {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/s.exec(line);
    if (match === null) {
      if (RAW_FIELDS.has(previous)) return; // the rest of a raw label that held a newline
      throw new MediaError('MEDIA_TOOL_FAILED', `blkid output line ${index + 1} is not KEY=value`);
    }
    const [, key = '', value = ''] = match;
    if (fields.has(key)) throw new MediaError('MEDIA_TOOL_FAILED', `blkid output repeats ${key}`);
    fields.set(key, value);
    previous = key;
  });
  return fields;
}

/** Turns a blkid *_ENC value ("A\x20B") back into its bytes. */
export function decodeBlkidEncoded(value: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i += 1) {
    if (value[i] === '\\') {
      const hex = /^x([0-9a-fA-F]{2})/.exec(value.slice(i + 1, i + 4));
      if (hex === null) throw new MediaError('MEDIA_TOOL_FAILED', `blkid value has a bad escape at ${i}`);
      bytes.push(Number.parseInt(hex[1] ?? '', 16));
      i += 3;
    } else {
      bytes.push(value.charCodeAt(i));
    }
  }
  return Uint8Array.from(bytes);
}

const BLKID_TYPES: Record<string, 'fat' | 'exfat'> = { vfat: 'fat', exfat: 'exfat' };

/** Builds an identity from parsed `blkid -p -o udev` fields (capacity comes from the caller). */
export function identityFromBlkid(fields: ReadonlyMap<string, string>, capacity: number): VolumeIdentity {
  const type = BLKID_TYPES[fields.get('ID_FS_TYPE') ?? ''];
  if (type === undefined) throw new MediaError('MEDIA_UNRECOGNIZED', `blkid reports filesystem ${JSON.stringify(fields.get('ID_FS_TYPE') ?? 'none')}`);
  let filesystem: FilesystemKind = 'exfat';
  if (type === 'fat') {
    const version = fields.get('ID_FS_VERSION');
    const kinds: Record<string, FilesystemKind> = { FAT12: 'fat12', FAT16: 'fat16', FAT32: 'fat32' };
    const kind = kinds[version ?? ''];
    if (kind === undefined) throw new MediaError('MEDIA_UNRECOGNIZED', `blkid reports FAT version ${JSON.stringify(version ?? 'none')}`);
    filesystem = kind;
  }
  const uuid = fields.get('ID_FS_UUID');
  if (uuid !== undefined && !/^[0-9A-F]{4}-[0-9A-F]{4}$/.test(uuid)) {
    throw new MediaError('MEDIA_TOOL_FAILED', `blkid volume id ${JSON.stringify(uuid)} is not XXXX-XXXX`);
  }
  const encoded = fields.get('ID_FS_LABEL_ENC');
  let label = '';
  if (encoded !== undefined) {
    if (!/^[\x21-\x7e\x80-\xff]*$/.test(encoded)) throw new MediaError('MEDIA_TOOL_FAILED', 'blkid ID_FS_LABEL_ENC holds unescaped bytes');
    const bytes = decodeBlkidEncoded(encoded);
    try {
      // blkid passes FAT label bytes through unchanged (OEM code page) and converts exFAT's UTF-16 to UTF-8.
      label = type === 'fat' ? decodeCodepage850(bytes) : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (cause) {
      throw new MediaError('MEDIA_TOOL_FAILED', 'blkid label is not valid UTF-8', { cause });
    }
  }
  return { filesystem, volumeId: uuid ?? null, label: label.replace(/ +$/, ''), capacity };
}

/** Asks `blkid -p` (low-level probe, no cache) for the identity of an image or device. */
export async function readVolumeIdentityWithBlkid(path: string): Promise<VolumeIdentity> {
  // latin1: one character per byte, so the \xNN-escaped fields decode to the label's own bytes.
  const { stdout } = await runToolOrThrow('blkid', ['-p', '-o', 'udev', '--', path], { timeoutMs: 10_000, encoding: 'latin1' });
  const fields = parseBlkidUdev(stdout);
  // blkid's capacity fields vary by version; take the boot sector's, as the filesystem sees itself.
  const device = openFileBlockDevice(path, 'read-only');
  try {
    return identityFromBlkid(fields, identifyVolume(device).capacity);
  } finally {
    device.close();
  }
}
