/**
 * A drive's identity for the manifest's media binding (docs/manifest.md §4.3
 * `media`): filesystem, volume id, label, capacity. The check is pure; how the
 * identity is read is an adapter: on Windows from the volume's boot sector
 * plus CIM (docs/agent.md "Media binding"); in tests and on Linux the caller
 * supplies it (`--identity FILE` or a drive source).
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { escapeForDisplay, type MediaIdentity } from '../manifest/index.ts';
import { formatIssues, integer, nullable, object, parse, string } from '../manifest/schema.ts';
import { AgentError } from './errors.ts';

export interface DriveIdentity {
  /** Filesystem as the platform names it (vfat, fat32, FAT32, exFAT, ntfs, dir). */
  readonly filesystem: string | null;
  /** FAT volume id or exFAT serial as XXXX-XXXX (any case); null when unknown. */
  readonly volumeId: string | null;
  /** Volume label as stored (not escaped); null when unknown. */
  readonly label: string | null;
  /** Size of the filesystem in bytes (boot sector total), null when unknown. */
  readonly capacity: number | null;
}

export const identitySchema = object({
  filesystem: nullable(string({ min: 1, max: 32 })),
  volumeId: nullable(string({ min: 1, max: 64 })),
  label: nullable(string({ max: 64 })),
  capacity: nullable(integer({ min: 0 })),
});

export function parseIdentity(value: unknown, where: string): DriveIdentity {
  const result = parse(identitySchema, value);
  if (!result.ok) throw new AgentError('IDENTITY_INVALID', `${where}: ${formatIssues(result.issues)}`);
  return result.value;
}

/** FAT12/16/32, vfat and msdos are one family: platforms name the same volume differently. */
export function filesystemFamily(name: string): string {
  const lower = name.toLowerCase();
  if (/^(v?fat(12|16|32)?|msdos)$/u.test(lower)) return 'fat';
  return lower;
}

const normaliseVolumeId = (id: string): string => id.toUpperCase().replace(/[^0-9A-F]/gu, '');
const normaliseLabel = (label: string): string => label.replace(/ +$/u, '');

/**
 * Why a drive could not be matched to its manifest's media: its identity
 * could not be read, the manifest binds no volume id, the drive cannot tell a
 * field the manifest binds (all three only when binding is required), or a
 * field differs (the manifest was made for another drive).
 */
export type MediaProblem = 'IDENTITY_UNREADABLE' | 'MANIFEST_UNBOUND' | 'FIELD_UNKNOWN' | 'MISMATCH';

/** What the HMI user and staff should do, by problem (drive-check.ts puts it after the reason). */
export const MEDIA_ADVICE: Record<MediaProblem, string> = {
  IDENTITY_UNREADABLE: 'the drive cannot be matched to its manifest because its identity could not be read; check that the agent can read the drive (on Windows it reads the volume as LocalSystem), or ask security staff',
  MANIFEST_UNBOUND: 'the manifest does not name the drive it was issued for; rescan this drive at a kiosk that binds manifests to their drive',
  FIELD_UNKNOWN: 'the drive does not tell everything the manifest was bound to, so it cannot be matched; ask security staff',
  MISMATCH: 'the manifest belongs to another drive; rescan this drive at the kiosk',
};

export type MediaCheck =
  | { readonly ok: true; readonly checked: readonly string[] }
  | { readonly ok: false; readonly problem: MediaProblem; readonly reason: string };

/**
 * Compares the manifest's media with the drive. Every field the manifest
 * binds (non-null) must match; with `required`, the manifest must bind a
 * volume id and the drive's identity must be known. A known mismatch always
 * refuses, required or not: it means the manifest was copied to another drive.
 */
export function checkMediaBinding(media: MediaIdentity, drive: DriveIdentity | null, required: boolean): MediaCheck {
  if (drive === null) {
    return required ? { ok: false, problem: 'IDENTITY_UNREADABLE', reason: 'the drive\'s identity could not be read, and policy requires media binding' } : { ok: true, checked: [] };
  }
  if (required && media.volumeId === null) {
    return { ok: false, problem: 'MANIFEST_UNBOUND', reason: 'the manifest binds no volume id, and policy requires media binding' };
  }
  const checked: string[] = [];
  const mismatch = (field: string, want: string, got: string | null): MediaCheck => ({
    ok: false,
    problem: got === null ? 'FIELD_UNKNOWN' : 'MISMATCH',
    reason: `${field}: the manifest says ${want}, the drive ${got === null ? 'does not tell' : `says ${got}`}`,
  });
  // A field the manifest binds but the drive cannot tell fails when binding is required (fail closed).
  if (drive.filesystem !== null || required) {
    if (drive.filesystem === null || filesystemFamily(drive.filesystem) !== filesystemFamily(media.filesystem)) {
      return mismatch('filesystem', media.filesystem, drive.filesystem === null ? null : escapeForDisplay(drive.filesystem));
    }
    checked.push('filesystem');
  }
  if (media.volumeId !== null && (drive.volumeId !== null || required)) {
    if (drive.volumeId === null || normaliseVolumeId(drive.volumeId) !== normaliseVolumeId(media.volumeId)) {
      return mismatch('volume id', media.volumeId, drive.volumeId === null ? null : escapeForDisplay(drive.volumeId));
    }
    checked.push('volumeId');
  }
  // The kiosk writes labels escaped for display; compare in that form.
  if (media.label !== null && (drive.label !== null || required)) {
    if (drive.label === null || normaliseLabel(escapeForDisplay(drive.label)) !== normaliseLabel(media.label)) {
      return mismatch('label', JSON.stringify(media.label), drive.label === null ? null : JSON.stringify(escapeForDisplay(drive.label)));
    }
    checked.push('label');
  }
  if (media.capacity !== null && (drive.capacity !== null || required)) {
    if (drive.capacity !== media.capacity) {
      return mismatch('capacity', `${media.capacity} bytes`, drive.capacity === null ? null : `${drive.capacity} bytes`);
    }
    checked.push('capacity');
  }
  return { ok: true, checked };
}

/** Formats a 32-bit serial the way Windows and blkid show it. */
export function formatVolumeSerial(serial: number): string {
  const hex = (serial >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `${hex.slice(0, 4)}-${hex.slice(4)}`;
}

export interface BootSectorIdentity {
  readonly filesystem: 'fat12' | 'fat16' | 'fat32' | 'exfat';
  readonly volumeId: string | null;
  readonly capacity: number; // bytes
}

/**
 * Reads filesystem kind, volume serial and size from a FAT or exFAT boot
 * sector (Microsoft FAT specification §3, exFAT specification §3.1), the same
 * facts the kiosk binds. Null for anything else (NTFS, garbage).
 */
export function parseBootSector(sector: Uint8Array): BootSectorIdentity | null {
  if (sector.length < 512 || sector[510] !== 0x55 || sector[511] !== 0xaa) return null;
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const oem = new TextDecoder('latin1').decode(sector.subarray(3, 11));
  if (oem === 'EXFAT   ') {
    const volumeLength = view.getBigUint64(72, true); // sectors
    const bytesPerSectorShift = sector[108] ?? 0;
    if (bytesPerSectorShift < 9 || bytesPerSectorShift > 12) return null;
    const capacity = Number(volumeLength) * 2 ** bytesPerSectorShift;
    if (!Number.isSafeInteger(capacity)) return null;
    return { filesystem: 'exfat', volumeId: formatVolumeSerial(view.getUint32(100, true)), capacity };
  }
  if (sector[0] !== 0xeb && sector[0] !== 0xe9) return null;
  const bytesPerSector = view.getUint16(11, true);
  const sectorsPerCluster = sector[13] ?? 0;
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || sectorsPerCluster === 0) return null;
  const reserved = view.getUint16(14, true);
  const fats = sector[16] ?? 0;
  const rootEntries = view.getUint16(17, true);
  const total16 = view.getUint16(19, true);
  const fatSize16 = view.getUint16(22, true);
  const total32 = view.getUint32(32, true);
  const totalSectors = total16 !== 0 ? total16 : total32;
  const fatSize = fatSize16 !== 0 ? fatSize16 : view.getUint32(36, true);
  // FAT type follows from the cluster count alone (FAT specification §3.5).
  const rootSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataSectors = totalSectors - (reserved + fats * fatSize + rootSectors);
  if (dataSectors <= 0) return null;
  const clusters = Math.floor(dataSectors / sectorsPerCluster);
  const filesystem = clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
  // The extended boot signature 0x29 says the volume id field is present.
  const extOffset = filesystem === 'fat32' ? 64 : 36;
  const hasId = sector[extOffset + 2] === 0x29;
  const volumeId = hasId ? formatVolumeSerial(view.getUint32(extOffset + 3, true)) : null;
  return { filesystem, volumeId, capacity: totalSectors * bytesPerSector };
}

/** The shape of `Get-CimInstance Win32_LogicalDisk | Select-Object ... | ConvertTo-Json`. */
const cimSchema = object({
  DeviceID: string({ pattern: /^[A-Z]:$/u }),
  DriveType: integer(),
  FileSystem: nullable(string({ max: 32 })),
  VolumeName: nullable(string({ max: 64 })),
  VolumeSerialNumber: nullable(string({ max: 16 })),
  Size: nullable(integer({ min: 0 })),
});

/** Win32_LogicalDisk DriveType 2: a removable disk (USB sticks, SD cards). */
export const DRIVE_TYPE_REMOVABLE = 2;

export interface WindowsVolumeFacts {
  readonly letter: string;
  readonly removable: boolean;
  /** From CIM: label and filesystem as Windows names them. */
  readonly identity: DriveIdentity;
}

/** Parses the CIM answer for one volume; null when it is malformed. */
export function parseCimVolume(json: string): WindowsVolumeFacts | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return null;
  }
  const result = parse(cimSchema, value);
  if (!result.ok) return null;
  const v = result.value;
  const serial = v.VolumeSerialNumber && /^[0-9A-Fa-f]{8}$/u.test(v.VolumeSerialNumber) ? formatVolumeSerial(Number.parseInt(v.VolumeSerialNumber, 16)) : null;
  return {
    letter: v.DeviceID.slice(0, 1),
    removable: v.DriveType === DRIVE_TYPE_REMOVABLE,
    // CIM's Size is the cluster area for FAT, not the boot sector total: capacity comes from the boot sector.
    identity: { filesystem: v.FileSystem, volumeId: serial, label: v.VolumeName, capacity: null },
  };
}

const run = promisify(execFile);

/** The PowerShell command that asks CIM about one drive letter (docs/agent.md). */
export function cimCommand(letter: string): string[] {
  if (!/^[A-Z]$/u.test(letter)) throw new TypeError(`not a drive letter: ${letter}`);
  const script =
    `Get-CimInstance -ClassName Win32_LogicalDisk -Filter "DeviceID='${letter}:'" | ` +
    'Select-Object DeviceID,DriveType,FileSystem,VolumeName,VolumeSerialNumber,@{n="Size";e={[int64]$_.Size}} | ConvertTo-Json -Compress';
  return ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-Command', script];
}

/**
 * Windows only: identity of drive `letter` from CIM (label, serial,
 * filesystem, removable) and the raw boot sector read from \\.\X: (capacity
 * and serial as the kiosk reads them; the service runs as LocalSystem, which
 * may open volumes). Null when it cannot be read; the binding check then
 * fails closed when binding is required.
 */
export async function readWindowsVolume(letter: string): Promise<WindowsVolumeFacts | null> {
  let facts: WindowsVolumeFacts | null;
  try {
    const { stdout } = await run(systemTool('WindowsPowerShell\\v1.0\\powershell.exe'), cimCommand(letter), { windowsHide: true, timeout: 15_000 });
    facts = parseCimVolume(stdout.trim());
  } catch {
    return null;
  }
  if (facts === null) return null;
  let boot: BootSectorIdentity | null = null;
  try {
    const fd = openSync(`\\\\.\\${letter}:`, 'r');
    try {
      const sector = Buffer.alloc(4096); // raw volume reads must be whole sectors
      const n = readSync(fd, sector, 0, sector.length, 0);
      boot = parseBootSector(sector.subarray(0, Math.min(n, 512)));
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable boot sector: fall back to what the platform reports
  }
  const identity: DriveIdentity = {
    filesystem: boot?.filesystem ?? facts.identity.filesystem,
    volumeId: boot?.volumeId ?? facts.identity.volumeId,
    label: facts.identity.label,
    capacity: boot?.capacity ?? null,
  };
  return { ...facts, identity };
}

/** A DriveRef for the log: identity fields escaped, mount as given. */
export function driveRef(mount: string, identity: DriveIdentity | null): {
  mount: string;
  filesystem: string | null;
  volumeId: string | null;
  label: string | null;
  capacity: number | null;
} {
  const esc = (v: string | null): string | null => (v === null ? null : escapeForDisplay(v));
  return {
    mount: escapeForDisplay(mount),
    filesystem: esc(identity?.filesystem ?? null),
    volumeId: esc(identity?.volumeId ?? null),
    label: esc(identity?.label ?? null),
    capacity: identity?.capacity ?? null,
  };
}

/**
 * A Windows system tool by full path: the agent runs as LocalSystem, and a bare
 * name would be looked up on PATH, where a user-writable folder could hold a
 * program of the same name.
 */
export function systemTool(relative: string): string {
  const root = process.env.SystemRoot ?? 'C:\\Windows';
  return `${root}\\System32\\${relative}`;
}
