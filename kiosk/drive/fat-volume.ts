/**
 * A read-only FAT12/16/32 reader over a BlockDevice (Microsoft FAT
 * specification, "FAT: General Overview of On-Disk Format" 1.03). It keeps long
 * names exactly as the volume stores them, which mtools and fusefat cannot:
 * mtools turns characters outside the BMP into "_" and "/" into "\", fusefat
 * shows only 8.3 aliases. Everything read is treated as hostile: clusters are
 * range-checked, chains and directory loops are bounded.
 */
import type { BlockDevice } from './block-device.ts';
import { decodeCodepage850 } from '../core/codepage-850.ts';
import { MediaError } from './errors.ts';
import {
  createClusterClaims,
  walkBounded,
  type FileAttributes,
  type VolumeEntry,
  type VolumeReader,
  type WalkLimits,
} from './volume.ts';

export interface FatBootSector {
  readonly kind: 'fat12' | 'fat16' | 'fat32';
  readonly bytesPerSector: number;
  readonly sectorsPerCluster: number;
  readonly reservedSectors: number;
  readonly fatCount: number;
  readonly rootEntryCount: number; // FAT12/16 fixed root; 0 on FAT32
  readonly totalSectors: number;
  readonly fatSectors: number; // per FAT
  readonly rootCluster: number; // FAT32 only; 0 otherwise
  readonly activeFat: number; // FAT32 ExtFlags: mirroring off selects one FAT
  readonly clusterCount: number;
  readonly firstDataSector: number;
  readonly rootDirSector: number; // FAT12/16 fixed root region
  /** BS_VolID, or null when the extended boot signature (0x29) is missing. */
  readonly volumeId: number | null;
  /** BS_VolLab, trailing spaces trimmed; "NO NAME" means none; null without 0x29. */
  readonly bootLabel: string | null;
}

const ATTR_READ_ONLY = 0x01;
const ATTR_HIDDEN = 0x02;
const ATTR_SYSTEM = 0x04;
const ATTR_VOLUME_ID = 0x08;
const ATTR_DIRECTORY = 0x10;
const ATTR_ARCHIVE = 0x20;
const ATTR_LONG_NAME = 0x0f;
const NT_LOWER_BASE = 0x08; // Windows NT: 8.3 base stored upper, shown lower
const NT_LOWER_EXT = 0x10;
const ENTRY_SIZE = 32;
const MAX_DIRECTORY_BYTES = 65536 * ENTRY_SIZE; // FAT spec: at most 65,536 entries per folder
const MAX_FAT_BYTES = 512 * 1024 * 1024; // bytes: refuse to load an absurd FAT

function u16(b: Uint8Array, at: number): number {
  return (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
}
function u32(b: Uint8Array, at: number): number {
  return (u16(b, at) | (u16(b, at + 2) << 16)) >>> 0;
}
function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * Parses and checks a FAT boot sector (BPB). The FAT type follows from the
 * cluster count alone, as the spec demands (not from the BS_FilSysType text).
 */
export function parseFatBootSector(sector: Uint8Array): FatBootSector {
  const fail = (why: string): never => {
    throw new MediaError('MEDIA_UNRECOGNIZED', `not a FAT volume: ${why}`);
  };
  if (sector.length < 512) fail(`boot sector has ${sector.length} bytes, expected 512`);
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) fail('no 0x55AA boot signature');
  if (!(sector[0] === 0xeb && sector[2] === 0x90) && sector[0] !== 0xe9) fail('no x86 jump at byte 0');
  const bytesPerSector = u16(sector, 11);
  const sectorsPerCluster = sector[13] ?? 0;
  const reservedSectors = u16(sector, 14);
  const fatCount = sector[16] ?? 0;
  const rootEntryCount = u16(sector, 17);
  const totalSectors = u16(sector, 19) || u32(sector, 32);
  const fatSz16 = u16(sector, 22);
  const fatSectors = fatSz16 || u32(sector, 36);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) fail(`bytes per sector ${bytesPerSector}`);
  if (!isPowerOfTwo(sectorsPerCluster) || sectorsPerCluster > 128) fail(`sectors per cluster ${sectorsPerCluster}`);
  if (reservedSectors < 1) fail('no reserved sectors');
  if (fatCount < 1 || fatCount > 4) fail(`${fatCount} FATs`);
  if (fatSectors < 1) fail('FAT size 0');
  const rootDirSectors = Math.ceil((rootEntryCount * ENTRY_SIZE) / bytesPerSector);
  const rootDirSector = reservedSectors + fatCount * fatSectors;
  const firstDataSector = rootDirSector + rootDirSectors;
  if (totalSectors <= firstDataSector) fail(`total sectors ${totalSectors} leave no data region`);
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  // FAT spec section 3.5: the type is decided by the count of clusters.
  const kind = clusterCount < 4085 ? 'fat12' : clusterCount < 65525 ? 'fat16' : 'fat32';
  const entryBits = kind === 'fat12' ? 12 : kind === 'fat16' ? 16 : 32;
  if (Math.ceil(((clusterCount + 2) * entryBits) / 8) > fatSectors * bytesPerSector) {
    fail(`FAT of ${fatSectors} sectors cannot map ${clusterCount} clusters`);
  }
  let rootCluster = 0;
  let activeFat = 0;
  let extended = 38; // BS_BootSig offset on FAT12/16
  if (kind === 'fat32') {
    if (fatSz16 !== 0 || rootEntryCount !== 0) fail('FAT32 with a FAT12/16 root or FAT size');
    rootCluster = u32(sector, 44);
    if (rootCluster < 2 || rootCluster >= clusterCount + 2) fail(`root cluster ${rootCluster} out of range`);
    const extFlags = u16(sector, 40);
    // ExtFlags bit 7 set: mirroring off, bits 0-3 name the one active FAT.
    activeFat = (extFlags & 0x80) !== 0 ? extFlags & 0x0f : 0;
    if (activeFat >= fatCount) fail(`active FAT ${activeFat} of ${fatCount}`);
    extended = 66;
  } else if (rootEntryCount === 0) {
    fail('FAT12/16 without root directory entries');
  }
  let volumeId: number | null = null;
  let bootLabel: string | null = null;
  if (sector[extended] === 0x29) {
    volumeId = u32(sector, extended + 1);
    bootLabel = decodeCodepage850(sector.subarray(extended + 5, extended + 16)).replace(/ +$/, '');
  }
  return {
    kind,
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    rootEntryCount,
    totalSectors,
    fatSectors,
    rootCluster,
    activeFat,
    clusterCount,
    firstDataSector,
    rootDirSector,
    volumeId,
    bootLabel,
  };
}

/** The checksum of an 8.3 name that each long-name slot repeats (FAT spec 7.2). */
export function shortNameChecksum(name11: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i += 1) sum = (((sum & 1) << 7) + (sum >> 1) + (name11[i] ?? 0)) & 0xff;
  return sum;
}

export interface FatEntry extends VolumeEntry {
  readonly firstCluster: number;
  /** Byte offsets of this entry's long-name slots, in on-disk order (last part first). */
  readonly longNameSlots: readonly number[];
  /** Byte offset of the 8.3 entry. */
  readonly shortEntryOffset: number;
}

export interface FatVolume extends VolumeReader<FatEntry> {
  readonly boot: FatBootSector;
  /** The label from the root folder's volume-label entry, or null when it has none. */
  rootLabel(): string | null;
  /** Entries directly inside `folder` (the root when omitted). */
  children(folder?: FatEntry): FatEntry[];
  /**
   * Rewrites the long name of `entry` in place with `name`, which must need the
   * same number of slots. The 8.3 alias and so the slot checksums stay valid.
   */
  rewriteLongName(entry: FatEntry, name: string): void;
}

const LONG_NAME_CHARS_PER_SLOT = 13;
// Offsets of the 13 UTF-16 code units inside a long-name slot: 5 + 6 + 2.
const LONG_NAME_CHAR_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

function decodeShortName(raw: Uint8Array, ntFlags: number): string {
  const bytes = raw.slice(0, 11);
  if (bytes[0] === 0x05) bytes[0] = 0xe5; // 0x05 stands for a leading 0xE5 (spec 6.1)
  const lowerAscii = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  let base = decodeCodepage850(bytes.subarray(0, 8)).replace(/ +$/, '');
  let ext = decodeCodepage850(bytes.subarray(8, 11)).replace(/ +$/, '');
  if ((ntFlags & NT_LOWER_BASE) !== 0) base = lowerAscii(base);
  if ((ntFlags & NT_LOWER_EXT) !== 0) ext = lowerAscii(ext);
  return ext === '' ? base : `${base}.${ext}`;
}

function attributesOf(attr: number): FileAttributes {
  return {
    readonly: (attr & ATTR_READ_ONLY) !== 0,
    hidden: (attr & ATTR_HIDDEN) !== 0,
    system: (attr & ATTR_SYSTEM) !== 0,
    archive: (attr & ATTR_ARCHIVE) !== 0,
  };
}

/** Opens a FAT volume. `writable` devices allow rewriteLongName (image building). */
export function openFatVolume(device: BlockDevice): FatVolume {
  const boot = parseFatBootSector(device.read(0, 512));
  const bps = boot.bytesPerSector;
  const clusterSize = bps * boot.sectorsPerCluster;
  if (boot.totalSectors * bps > device.size) {
    throw new MediaError(
      'MEDIA_CORRUPT',
      `FAT volume claims ${boot.totalSectors * bps} bytes but the device holds ${device.size}`,
    );
  }
  const lastCluster = boot.clusterCount + 1;
  const endOfChain = boot.kind === 'fat12' ? 0xff8 : boot.kind === 'fat16' ? 0xfff8 : 0x0ffffff8;
  let fat: Uint8Array | null = null;

  const fatBytes = (): Uint8Array => {
    if (fat === null) {
      const length = boot.fatSectors * bps;
      if (length > MAX_FAT_BYTES) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `FAT of ${length} bytes is too large to load`);
      fat = device.read((boot.reservedSectors + boot.activeFat * boot.fatSectors) * bps, length);
    }
    return fat;
  };

  const fatEntry = (cluster: number): number => {
    const table = fatBytes();
    switch (boot.kind) {
      case 'fat12': {
        const at = cluster + (cluster >> 1);
        const v = u16(table, at);
        return (cluster & 1) !== 0 ? v >> 4 : v & 0x0fff;
      }
      case 'fat16':
        return u16(table, cluster * 2);
      case 'fat32':
        return u32(table, cluster * 4) & 0x0fffffff;
    }
  };

  const clusterOffset = (cluster: number): number => (boot.firstDataSector + (cluster - 2) * boot.sectorsPerCluster) * bps;

  /** The clusters of a chain, checked: in range, no loop, no free or bad link. */
  const chain = (first: number, maxClusters: number, what: string): number[] => {
    const out: number[] = [];
    let cluster = first;
    for (;;) {
      if (cluster < 2 || cluster > lastCluster) {
        throw new MediaError('MEDIA_CORRUPT', `${what}: cluster ${cluster} outside 2..${lastCluster}`);
      }
      out.push(cluster);
      if (out.length > maxClusters) {
        throw new MediaError('MEDIA_CORRUPT', `${what}: cluster chain longer than ${maxClusters} (a loop or a lie)`);
      }
      const next = fatEntry(cluster);
      if (next >= endOfChain) return out;
      if (next === 0 || next === endOfChain - 1) {
        throw new MediaError('MEDIA_CORRUPT', `${what}: chain runs into a ${next === 0 ? 'free' : 'bad'} cluster`);
      }
      cluster = next;
    }
  };

  /** The clusters of a folder: none for the fixed FAT12/16 root. */
  const folderClusters = (folder: FatEntry | undefined): number[] => {
    if (folder === undefined && boot.kind !== 'fat32') return [];
    const first = folder === undefined ? boot.rootCluster : folder.firstCluster;
    const what = folder === undefined ? 'root folder' : `folder ${folder.names.join('/')}`;
    if (first === 0) throw new MediaError('MEDIA_CORRUPT', `${what}: starts at cluster 0`);
    return chain(first, Math.ceil(MAX_DIRECTORY_BYTES / clusterSize), what);
  };

  /** The clusters that hold a file's bytes, checked: enough for its size, and no more. */
  const fileClusters = (entry: FatEntry): number[] => {
    if (entry.size === 0) return [];
    const needed = Math.ceil(entry.size / clusterSize);
    const what = `file ${entry.names.join('/')}`;
    if (entry.firstCluster === 0) throw new MediaError('MEDIA_CORRUPT', `${what}: ${entry.size} bytes but no clusters`);
    const clusters = chain(entry.firstCluster, needed, what);
    if (clusters.length < needed) {
      throw new MediaError('MEDIA_CORRUPT', `${what}: ${entry.size} bytes need ${needed} clusters, chain has ${clusters.length}`);
    }
    return clusters;
  };

  /** Byte offsets of every 32-byte slot of a folder, in order. */
  const folderSlots = (folder: FatEntry | undefined): number[] => {
    const offsets: number[] = [];
    if (folder === undefined && boot.kind !== 'fat32') {
      const start = boot.rootDirSector * bps;
      for (let i = 0; i < boot.rootEntryCount; i += 1) offsets.push(start + i * ENTRY_SIZE);
      return offsets;
    }
    for (const cluster of folderClusters(folder)) {
      const start = clusterOffset(cluster);
      for (let at = 0; at < clusterSize; at += ENTRY_SIZE) offsets.push(start + at);
    }
    return offsets;
  };

  /** Reads the slots of a folder in cluster-sized batches. */
  const readSlots = (offsets: number[]): Array<[number, Uint8Array]> => {
    const out: Array<[number, Uint8Array]> = [];
    let i = 0;
    while (i < offsets.length) {
      let j = i + 1;
      while (j < offsets.length && offsets[j] === (offsets[j - 1] ?? 0) + ENTRY_SIZE) j += 1;
      const start = offsets[i] ?? 0;
      const bytes = device.read(start, (j - i) * ENTRY_SIZE);
      for (let k = i; k < j; k += 1) out.push([offsets[k] ?? 0, bytes.subarray((k - i) * ENTRY_SIZE, (k - i + 1) * ENTRY_SIZE)]);
      i = j;
    }
    return out;
  };

  interface PendingLongName {
    expect: number; // ordinal of the next slot
    checksum: number;
    parts: string[];
    slots: number[];
  }

  const children = (folder?: FatEntry): FatEntry[] => {
    const parentNames = folder?.names ?? [];
    const out: FatEntry[] = [];
    let pending: PendingLongName | null = null;
    for (const [offset, slot] of readSlots(folderSlots(folder))) {
      const first = slot[0] ?? 0;
      if (first === 0x00) break; // end of folder (spec 6.1)
      if (first === 0xe5) {
        pending = null; // deleted entry
        continue;
      }
      const attr = slot[11] ?? 0;
      if ((attr & 0x3f) === ATTR_LONG_NAME) {
        const ordinal = first & 0x3f;
        if ((first & 0x40) !== 0) {
          pending = ordinal >= 1 && ordinal <= 20 ? { expect: ordinal, checksum: slot[13] ?? 0, parts: [], slots: [] } : null;
        }
        if (pending === null || ordinal !== pending.expect || slot[13] !== pending.checksum) {
          pending = null; // an orphaned or out-of-order slot: ignored as Windows does
          continue;
        }
        let part = '';
        for (const at of LONG_NAME_CHAR_OFFSETS) part += String.fromCharCode(u16(slot, at));
        pending.parts[ordinal - 1] = part;
        pending.slots.push(offset);
        pending.expect -= 1;
        continue;
      }
      const longName = pending;
      pending = null;
      if ((attr & ATTR_VOLUME_ID) !== 0) continue; // the label, not a file
      const name11 = slot.subarray(0, 11);
      const dotted = decodeCodepage850(name11);
      if (dotted === '.          ' || dotted === '..         ') continue; // a folder's self and parent links
      let name = decodeShortName(name11, slot[12] ?? 0);
      const shortName = name;
      let longNameSlots: number[] = [];
      if (longName !== null && longName.expect === 0 && longName.checksum === shortNameChecksum(name11)) {
        const full = longName.parts.join('');
        const end = full.indexOf('\u0000');
        const text = end === -1 ? full : full.slice(0, end);
        if (text !== '') {
          name = text;
          longNameSlots = longName.slots;
        }
      }
      const isDirectory = (attr & ATTR_DIRECTORY) !== 0;
      const high = boot.kind === 'fat32' ? u16(slot, 20) << 16 : 0;
      out.push({
        names: [...parentNames, name],
        kind: isDirectory ? 'directory' : 'file',
        size: isDirectory ? 0 : u32(slot, 28),
        attributes: attributesOf(attr),
        shortName,
        firstCluster: (high | u16(slot, 26)) >>> 0,
        longNameSlots,
        shortEntryOffset: offset,
      });
    }
    return out;
  };

  /** Every folder's and file's chain is checked and claimed as the walk meets it: a cross-link is MEDIA_CORRUPT. */
  const walk = (limits: Partial<WalkLimits> = {}): FatEntry[] => {
    const claim = createClusterClaims(lastCluster);
    return walkBounded(boot.kind === 'fat32' ? boot.rootCluster : 0, (folder) => {
      claim(folderClusters(folder), folder === undefined ? 'root folder' : `folder ${folder.names.join('/')}`);
      const entries = children(folder);
      for (const entry of entries) if (entry.kind === 'file') claim(fileClusters(entry), `file ${entry.names.join('/')}`);
      return entries;
    }, limits);
  };

  function* fileChunks(entry: FatEntry): Generator<Uint8Array> {
    if (entry.kind !== 'file') throw new MediaError('MEDIA_NOT_FOUND', `${entry.names.join('/')} is a folder`);
    if (entry.size === 0) return;
    const clusters = fileClusters(entry);
    let remaining = entry.size;
    const maxRun = Math.max(1, Math.floor((1024 * 1024) / clusterSize)); // clusters per read: 1 MiB
    let i = 0;
    while (remaining > 0) {
      let j = i + 1;
      while (j < clusters.length && j - i < maxRun && clusters[j] === (clusters[j - 1] ?? 0) + 1) j += 1;
      const length = Math.min(remaining, (j - i) * clusterSize);
      yield device.read(clusterOffset(clusters[i] ?? 0), length);
      remaining -= length;
      i = j;
    }
  }

  const freeBytes = (): number => {
    let free = 0;
    for (let c = 2; c <= lastCluster; c += 1) if (fatEntry(c) === 0) free += 1;
    return free * clusterSize;
  };

  const rootLabel = (): string | null => {
    for (const [, slot] of readSlots(folderSlots(undefined))) {
      const first = slot[0] ?? 0;
      if (first === 0x00) break;
      const attr = slot[11] ?? 0;
      if (first === 0xe5 || (attr & 0x3f) === ATTR_LONG_NAME) continue;
      if ((attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY)) === ATTR_VOLUME_ID) {
        return decodeCodepage850(slot.subarray(0, 11)).replace(/ +$/, '');
      }
    }
    return null;
  };

  const rewriteLongName = (entry: FatEntry, name: string): void => {
    const slots = entry.longNameSlots.length;
    if (slots === 0) throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${entry.names.join('/')} has no long name to rewrite`);
    if (name.length === 0 || Math.ceil(name.length / LONG_NAME_CHARS_PER_SLOT) !== slots) {
      throw new MediaError('MEDIA_NAME_UNSUPPORTED', `a ${name.length}-unit name does not fit ${slots} long-name slots`);
    }
    // Units beyond the name: one 0x0000 terminator, then 0xFFFF padding (spec 7.1).
    const units: number[] = [];
    for (let i = 0; i < slots * LONG_NAME_CHARS_PER_SLOT; i += 1) {
      units.push(i < name.length ? name.charCodeAt(i) : i === name.length ? 0x0000 : 0xffff);
    }
    entry.longNameSlots.forEach((offset, index) => {
      const slot = device.read(offset, ENTRY_SIZE);
      const part = slots - 1 - index; // on disk the last part comes first
      LONG_NAME_CHAR_OFFSETS.forEach((at, k) => {
        const unit = units[part * LONG_NAME_CHARS_PER_SLOT + k] ?? 0xffff;
        slot[at] = unit & 0xff;
        slot[at + 1] = unit >> 8;
      });
      device.write(offset, slot);
    });
  };

  return {
    filesystem: boot.kind,
    clusterSize,
    boot,
    walk,
    children,
    fileChunks,
    freeBytes,
    rootLabel,
    rewriteLongName,
  };
}
