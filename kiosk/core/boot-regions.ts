/**
 * Where a drive keeps code that runs before any file on it is opened, and
 * what the kiosk makes of the engines' answers about it. A PC that boots from
 * the stick runs its MBR (LBA 0); a UEFI one reads the GPT header and
 * partition entries; either runs a volume's boot sector (FAT: the boot sector
 * and the rest of the reserved sectors it loads; exFAT: the main and backup
 * boot regions, 12 sectors each). The drive is hostile: this reads fixed
 * fields of bytes it is given, follows only the GPT header's one pointer,
 * checks the header and entry CRCs as firmware does, and bounds every length
 * (BOOT_LIMITS). Pure: the adapter (drive/boot-sectors.ts) reads the bytes, the
 * scan (scan/boot-sectors.ts) hands each region to the engines.
 */
import type { DriveReason } from './decide.ts';
import { sniffFilesystem } from './volume-check.ts';

export const BOOT_LIMITS = {
  /** Bytes read first from a disk: LBA 0 and LBA 1 on 512- and 4096-byte sectors. */
  headBytes: 8192, // bytes
  /** The GPT partition entry array (128 entries of 128 bytes is the usual 16 KiB). */
  maxGptEntriesBytes: 128 * 1024, // bytes
  /** A FAT volume's reserved sectors (mkfs and Windows use 32 sectors, 16 KiB; aligning formatters a few MiB). */
  maxVolumeBootBytes: 8 * 1024 * 1024, // bytes
} as const;

export type BootRegionName = 'mbr' | 'gpt-header' | 'gpt-entries' | 'volume-boot';

/** A stretch of a device to scan: `source` says which of the two devices (the whole disk, or the volume). */
export interface BootRegion {
  readonly name: BootRegionName;
  readonly source: 'disk' | 'volume';
  readonly offset: number; // bytes from the start of the device
  readonly length: number; // bytes
  /** What it is, for people: "LBA 0 (512 bytes)", "FAT reserved sectors 0-31". */
  readonly what: string;
}

export type RegionPlan =
  /** `gptEntriesCrc`: on a GPT disk, the CRC the entry array (region gpt-entries) must have once read (checkGptEntries). */
  | { readonly ok: true; readonly regions: readonly BootRegion[]; readonly gptEntriesCrc?: number }
  | { readonly ok: false; readonly detail: string };

const u16 = (b: Uint8Array, at: number): number => (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
const u32 = (b: Uint8Array, at: number): number => (u16(b, at) + u16(b, at + 2) * 0x10000);
const u64 = (b: Uint8Array, at: number): number => u32(b, at) + u32(b, at + 4) * 0x1_0000_0000;
const ascii = (b: Uint8Array, from: number, to: number): string => String.fromCharCode(...b.subarray(from, to));

const CRC_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, reflected, as UEFI's GPT uses it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The GPT header's fields the kiosk follows (UEFI 2.10, 5.3.2), checked against the disk. */
export interface GptHeader {
  readonly sectorBytes: 512 | 4096;
  readonly headerBytes: number;
  readonly entriesOffset: number; // bytes
  readonly entriesBytes: number; // bytes
  readonly entriesCrc: number;
}

/**
 * The disk's regions from its first BOOT_LIMITS.headBytes: LBA 0 always; on a
 * GPT disk (a protective MBR entry of type 0xEE, or "EFI PART" at LBA 1) also
 * the header's sector and the entry array it points to. A GPT the firmware
 * would not take (a bad signature, size, CRC or pointer) is not planned
 * around: the plan fails, and the drive is refused.
 */
export function diskBootRegions(head: Uint8Array, diskBytes: number): RegionPlan {
  if (diskBytes < 512 || head.length < Math.min(512, diskBytes)) return { ok: false, detail: `the disk is ${diskBytes} bytes: smaller than one sector` };
  const protective = [0, 1, 2, 3].some((i) => head[446 + i * 16 + 4] === 0xee);
  const at = [512, 4096].find((offset) => head.length >= offset + 8 && ascii(head, offset, offset + 8) === 'EFI PART');
  if (at === undefined) {
    if (protective) return { ok: false, detail: 'the MBR announces a GPT disk (partition type 0xEE) but there is no GPT header at LBA 1' };
    return { ok: true, regions: [{ name: 'mbr', source: 'disk', offset: 0, length: 512, what: 'LBA 0, the MBR (512 bytes)' }] };
  }
  const header = parseGptHeader(head, at as 512 | 4096, diskBytes);
  if (!header.ok) return header;
  const h = header.header;
  const s = h.sectorBytes;
  return {
    ok: true,
    gptEntriesCrc: h.entriesCrc,
    regions: [
      { name: 'mbr', source: 'disk', offset: 0, length: s, what: `LBA 0, the protective MBR (${s} bytes)` },
      { name: 'gpt-header', source: 'disk', offset: s, length: s, what: `LBA 1, the GPT header (${s} bytes)` },
      { name: 'gpt-entries', source: 'disk', offset: h.entriesOffset, length: h.entriesBytes, what: `the GPT partition entries at LBA ${h.entriesOffset / s} (${h.entriesBytes} bytes)` },
    ],
  };
}

/** Checks a GPT header at byte `at` (LBA 1, so the sector size is `at`) of `head`. */
export function parseGptHeader(head: Uint8Array, at: 512 | 4096, diskBytes: number): { ok: true; header: GptHeader } | { ok: false; detail: string } {
  const fail = (why: string): { ok: false; detail: string } => ({ ok: false, detail: `the GPT header at LBA 1 ${why}: the kiosk does not read a partition table firmware would not take` });
  if (head.length < at + at || diskBytes < at * 2) return fail('is cut short');
  const sector = head.subarray(at, at + at);
  const headerBytes = u32(sector, 12);
  if (headerBytes < 92 || headerBytes > at) return fail(`gives a header size of ${headerBytes} bytes`);
  // The header CRC is computed with its own field as zero (UEFI 5.3.2).
  const copy = sector.slice(0, headerBytes);
  copy.fill(0, 16, 20);
  if (crc32(copy) !== u32(sector, 16)) return fail('has a wrong CRC');
  if (u64(sector, 24) !== 1) return fail(`says it is at LBA ${u64(sector, 24)}`);
  const entriesLba = u64(sector, 72);
  const count = u32(sector, 80);
  const size = u32(sector, 84);
  if (size < 128 || size > 4096 || (size & (size - 1)) !== 0) return fail(`gives an entry size of ${size} bytes (128 times a power of two)`);
  if (count === 0) return fail('lists no partition entries');
  const entriesBytes = count * size;
  if (entriesBytes > BOOT_LIMITS.maxGptEntriesBytes) return fail(`announces ${count} entries of ${size} bytes: more than the ${BOOT_LIMITS.maxGptEntriesBytes} bytes the kiosk reads`);
  if (entriesLba < 2 || !Number.isSafeInteger(entriesLba * at) || entriesLba * at + entriesBytes > diskBytes) return fail(`puts its entries at LBA ${entriesLba}, outside the disk`);
  return { ok: true, header: { sectorBytes: at, headerBytes, entriesOffset: entriesLba * at, entriesBytes, entriesCrc: u32(sector, 88) } };
}

/** The entry array's CRC, as the header gives it (checked once the array is read). */
export function checkGptEntries(entries: Uint8Array, expectedCrc: number): string | null {
  return crc32(entries) === expectedCrc ? null : 'the GPT partition entries do not match the CRC in the header: the kiosk does not read a partition table firmware would not take';
}

/**
 * A volume's boot region from its first sector (at least 512 bytes, or all of
 * a smaller volume): FAT's reserved sectors, exFAT's main and backup boot
 * regions, or for anything else its first sector.
 */
export function volumeBootRegion(first: Uint8Array, volumeBytes: number): RegionPlan {
  if (volumeBytes < 512 || first.length < 512) return { ok: false, detail: `the volume is ${volumeBytes} bytes: smaller than one sector` };
  const fs = sniffFilesystem(first);
  let region: BootRegion;
  if (fs === 'fat') {
    const bytesPerSector = u16(first, 11); // sniffFilesystem took only 512, 1024, 2048 or 4096
    const reserved = u16(first, 14);
    if (reserved === 0) return { ok: false, detail: 'the FAT boot sector gives 0 reserved sectors' };
    const length = reserved * bytesPerSector;
    if (length > BOOT_LIMITS.maxVolumeBootBytes) return { ok: false, detail: `the FAT volume has ${reserved} reserved sectors (${length} bytes): more than the ${BOOT_LIMITS.maxVolumeBootBytes} bytes the kiosk reads` };
    region = { name: 'volume-boot', source: 'volume', offset: 0, length, what: `the FAT boot sector and reserved sectors 0-${reserved - 1} (${length} bytes)` };
  } else if (fs === 'exfat') {
    const shift = first[108] ?? 0;
    if (shift < 9 || shift > 12) return { ok: false, detail: `the exFAT boot sector gives 2^${shift}-byte sectors (9 to 12 allowed)` };
    const length = 24 << shift;
    region = { name: 'volume-boot', source: 'volume', offset: 0, length, what: `the exFAT main and backup boot regions, sectors 0-23 (${length} bytes)` };
  } else {
    region = { name: 'volume-boot', source: 'volume', offset: 0, length: 512, what: 'the volume\'s first sector (512 bytes)' };
  }
  if (region.length > volumeBytes) return { ok: false, detail: `${region.what} runs past the end of the ${volumeBytes}-byte volume` };
  return { ok: true, regions: [region] };
}

/** A region as read from its device (drive/boot-sectors.ts). */
export interface BootRegionBytes {
  readonly region: BootRegion;
  readonly device: string;
  readonly bytes: Uint8Array;
}

const REGION_WORDS: Readonly<Record<BootRegionName, string>> = {
  mbr: 'the MBR',
  'gpt-header': 'the GPT header',
  'gpt-entries': 'the GPT entries',
  'volume-boot': 'the volume boot sectors',
};

/** One region as the engines saw it. */
export interface BootRegionResult {
  readonly name: BootRegionName;
  readonly device: string;
  readonly offset: number; // bytes
  readonly length: number; // bytes
  readonly sha256: string;
  readonly result: 'clean' | 'found';
  /** The engine's name for what it found (escaped by the caller before it is shown). */
  readonly signature?: string;
  /** What kind of finding: MALWARE, YARA_MATCH, or a region the engine could not inspect (LIMIT_EXCEEDED, ...). */
  readonly finding?: string;
}

/**
 * The drive reason for a drive's boot regions: none when every region was
 * scanned and came back clean; BOOT_CODE_INFECTED when an engine matched one;
 * BOOT_SECTORS_UNCHECKED when one could not be inspected.
 */
export function judgeBootRegions(results: readonly BootRegionResult[]): DriveReason | null {
  const where = (r: BootRegionResult): string => `${REGION_WORDS[r.name]} of ${r.device}`;
  const infected = results.filter((r) => r.result === 'found' && (r.finding === 'MALWARE' || r.finding === 'YARA_MATCH'));
  if (infected.length > 0) {
    const found = infected.map((r) => `${where(r)}: ${r.signature ?? 'found'}`).join('; ');
    return { code: 'BOOT_CODE_INFECTED', detail: `boot code infected (${found}): do not plug this drive into any PC; hand it to security` };
  }
  const uninspected = results.filter((r) => r.result !== 'clean');
  if (uninspected.length > 0) {
    const what = uninspected.map((r) => `${where(r)}: ${r.finding ?? 'no clean answer'}${r.signature ? ` ${r.signature}` : ''}`).join('; ');
    return { code: 'BOOT_SECTORS_UNCHECKED', detail: `the engines could not check the boot sectors (${what})` };
  }
  if (results.length === 0) return { code: 'BOOT_SECTORS_UNCHECKED', detail: 'no boot region was scanned' };
  return null;
}
