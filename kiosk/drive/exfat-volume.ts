/**
 * An exFAT reader and a small writer over a BlockDevice (Microsoft "exFAT File
 * System Specification", section numbers cited below). The reader walks a
 * hostile volume with every structure checked; the writer adds folders and
 * files, changes attributes and removes entries, so images can be built and
 * written without a mount (the kernel here has no exFAT driver) and with fixed
 * timestamps, byte for byte the same on every run.
 */
import type { BlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import {
  createClusterClaims,
  walkBounded,
  type FileAttributes,
  type VolumeEntry,
  type VolumeReader,
  type WalkLimits,
} from './volume.ts';

export interface ExfatBootSector {
  readonly bytesPerSector: number;
  readonly sectorsPerCluster: number;
  readonly volumeLength: number; // sectors
  readonly fatOffset: number; // sectors
  readonly fatLength: number; // sectors
  readonly clusterHeapOffset: number; // sectors
  readonly clusterCount: number;
  readonly rootCluster: number;
  readonly volumeSerial: number;
  readonly revision: number; // 0x0100 for 1.00
  readonly volumeFlags: number;
  readonly fatCount: number;
  readonly percentInUse: number;
}

const ENTRY_SIZE = 32;
const TYPE_END = 0x00;
const TYPE_BITMAP = 0x81;
const TYPE_UPCASE = 0x82;
const TYPE_LABEL = 0x83;
const TYPE_FILE = 0x85;
const TYPE_STREAM = 0xc0;
const TYPE_NAME = 0xc1;
const IN_USE = 0x80;
const FLAG_ALLOCATION_POSSIBLE = 0x01;
const FLAG_NO_FAT_CHAIN = 0x02;
const ATTR_READ_ONLY = 0x01;
const ATTR_HIDDEN = 0x02;
const ATTR_SYSTEM = 0x04;
const ATTR_DIRECTORY = 0x10;
const ATTR_ARCHIVE = 0x20;
const NAME_CHARS_PER_ENTRY = 15;
const MAX_NAME_LENGTH = 255;
const END_OF_CHAIN = 0xffffffff;
const BAD_CLUSTER = 0xfffffff7;
const MAX_DIRECTORY_BYTES = 256 * 1024 * 1024; // spec 6.2: a directory is at most 256 MiB
const MAX_FAT_BYTES = 512 * 1024 * 1024; // bytes: refuse to load an absurd FAT

function u16(b: Uint8Array, at: number): number {
  return (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
}
function u32(b: Uint8Array, at: number): number {
  return (u16(b, at) | (u16(b, at + 2) << 16)) >>> 0;
}
function u64(b: Uint8Array, at: number, what: string): number {
  const high = u32(b, at + 4);
  if (high >= 0x200000) throw new MediaError('MEDIA_CORRUPT', `${what}: 64-bit value beyond 2^53`);
  return high * 0x100000000 + u32(b, at);
}
function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}
function put32(b: Uint8Array, at: number, v: number): void {
  put16(b, at, v & 0xffff);
  put16(b, at + 2, (v >>> 16) & 0xffff);
}
function put64(b: Uint8Array, at: number, v: number): void {
  put32(b, at, v % 0x100000000);
  put32(b, at + 4, Math.floor(v / 0x100000000));
}

/** Parses and checks the Main Boot Sector (spec 3.1). */
export function parseExfatBootSector(sector: Uint8Array): ExfatBootSector {
  const fail = (why: string): never => {
    throw new MediaError('MEDIA_UNRECOGNIZED', `not an exFAT volume: ${why}`);
  };
  if (sector.length < 512) fail(`boot sector has ${sector.length} bytes, expected 512`);
  if (sector[0] !== 0xeb || sector[1] !== 0x76 || sector[2] !== 0x90) fail('JumpBoot is not EB 76 90');
  if (new TextDecoder('latin1').decode(sector.subarray(3, 11)) !== 'EXFAT   ') fail('FileSystemName is not "EXFAT   "');
  if (sector.subarray(11, 64).some((b) => b !== 0)) fail('MustBeZero field is not zero');
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) fail('no 0x55AA boot signature');
  const bytesPerSectorShift = sector[108] ?? 0;
  const sectorsPerClusterShift = sector[109] ?? 0;
  // Spec 3.1.14-15: 512..4096-byte sectors, clusters of at most 32 MiB.
  if (bytesPerSectorShift < 9 || bytesPerSectorShift > 12) fail(`BytesPerSectorShift ${bytesPerSectorShift}`);
  if (sectorsPerClusterShift > 25 - bytesPerSectorShift) fail(`SectorsPerClusterShift ${sectorsPerClusterShift}`);
  const volumeLength = u64(sector, 72, 'VolumeLength');
  const fatOffset = u32(sector, 80);
  const fatLength = u32(sector, 84);
  const clusterHeapOffset = u32(sector, 88);
  const clusterCount = u32(sector, 92);
  const rootCluster = u32(sector, 96);
  const fatCount = sector[110] ?? 0;
  if (fatCount !== 1 && fatCount !== 2) fail(`NumberOfFats ${fatCount}`);
  if (fatOffset < 24) fail(`FatOffset ${fatOffset} inside the boot regions`);
  if (clusterHeapOffset < fatOffset + fatLength * fatCount) fail('cluster heap overlaps the FAT');
  if (clusterCount < 1 || fatLength * (1 << bytesPerSectorShift) < (clusterCount + 2) * 4) fail('FAT too small for the clusters');
  const clusterSectors = 2 ** sectorsPerClusterShift;
  if (clusterHeapOffset + clusterCount * clusterSectors > volumeLength) fail('cluster heap runs past the volume');
  if (rootCluster < 2 || rootCluster > clusterCount + 1) fail(`root cluster ${rootCluster} out of range`);
  const revision = u16(sector, 104);
  if (revision >> 8 !== 1) fail(`file system revision ${revision >> 8}.${revision & 0xff}`);
  return {
    bytesPerSector: 2 ** bytesPerSectorShift,
    sectorsPerCluster: clusterSectors,
    volumeLength,
    fatOffset,
    fatLength,
    clusterHeapOffset,
    clusterCount,
    rootCluster,
    volumeSerial: u32(sector, 100),
    revision,
    volumeFlags: u16(sector, 106),
    fatCount,
    percentInUse: sector[112] ?? 0,
  };
}

/** Boot checksum over sectors 0-10, skipping VolumeFlags and PercentInUse (spec 3.4). */
export function exfatBootChecksum(region: Uint8Array, bytesPerSector: number): number {
  let sum = 0;
  for (let i = 0; i < bytesPerSector * 11; i += 1) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = ((sum & 1 ? 0x80000000 : 0) + (sum >>> 1) + (region[i] ?? 0)) >>> 0;
  }
  return sum;
}

/** Entry-set checksum over every byte of the set except its own field (spec 6.3.3). */
export function entrySetChecksum(set: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < set.length; i += 1) {
    if (i === 2 || i === 3) continue;
    sum = ((sum & 1 ? 0x8000 : 0) + (sum >>> 1) + (set[i] ?? 0)) & 0xffff;
  }
  return sum;
}

/** Up-case table checksum (spec 7.2.2). */
function tableChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = ((sum & 1 ? 0x80000000 : 0) + (sum >>> 1) + b) >>> 0;
  return sum;
}

/** Expands an up-case table; 0xFFFF n means "the next n characters map to themselves" (spec 7.2.5.1). */
export function expandUpcaseTable(bytes: Uint8Array): Uint16Array {
  const map = new Uint16Array(65536);
  for (let i = 0; i < map.length; i += 1) map[i] = i;
  let index = 0;
  for (let at = 0; at + 1 < bytes.length && index < 65536; at += 2) {
    const value = u16(bytes, at);
    if (value === 0xffff && at + 3 < bytes.length) {
      index += u16(bytes, at + 2);
      at += 2;
    } else {
      map[index] = value;
      index += 1;
    }
  }
  return map;
}

/** NameHash over the up-cased name, low byte then high byte of each unit (spec 7.6.4). */
export function exfatNameHash(name: string, upcase: Uint16Array): number {
  let hash = 0;
  for (let i = 0; i < name.length; i += 1) {
    const unit = upcase[name.charCodeAt(i)] ?? name.charCodeAt(i);
    hash = ((hash & 1 ? 0x8000 : 0) + (hash >>> 1) + (unit & 0xff)) & 0xffff;
    hash = ((hash & 1 ? 0x8000 : 0) + (hash >>> 1) + (unit >>> 8)) & 0xffff;
  }
  return hash;
}

/** Why an exFAT file name is invalid (spec 7.7.3), or null when it is valid. */
export function exfatNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME_LENGTH) return `${name.length} UTF-16 units, at most ${MAX_NAME_LENGTH}`;
  if (name === '.' || name === '..') return `"${name}" is reserved`;
  for (let i = 0; i < name.length; i += 1) {
    const unit = name.charCodeAt(i);
    if (unit < 0x20) return `control character U+${unit.toString(16).padStart(4, '0').toUpperCase()}`;
    if ('"*/:<>?\\|'.includes(name.charAt(i))) return `forbidden character ${name.charAt(i)}`;
  }
  return null;
}

/** Encodes a time as exFAT timestamp fields in UTC (spec 7.4.8-7.4.10). */
function encodeTimestamp(time: Date): { stamp: number; tenMs: number; utcOffset: number } {
  const year = Math.min(Math.max(time.getUTCFullYear(), 1980), 2107);
  const stamp =
    (((year - 1980) << 25) |
      ((time.getUTCMonth() + 1) << 21) |
      (time.getUTCDate() << 16) |
      (time.getUTCHours() << 11) |
      (time.getUTCMinutes() << 5) |
      (time.getUTCSeconds() >> 1)) >>>
    0;
  const tenMs = (time.getUTCSeconds() % 2) * 100 + Math.floor(time.getUTCMilliseconds() / 10);
  return { stamp, tenMs, utcOffset: 0x80 }; // 0x80: offset field valid, offset 0 (UTC)
}

export interface ExfatEntry extends VolumeEntry {
  readonly firstCluster: number;
  readonly noFatChain: boolean;
  /** Allocated length in bytes (directories: their whole length). */
  readonly dataLength: number;
  readonly validDataLength: number;
  /** Byte offsets of the entry set's 32-byte entries: file, stream, names, others. */
  readonly setOffsets: readonly number[];
}

export interface NewEntryOptions {
  attributes?: Partial<FileAttributes>;
  /** Create, modify and access time written into the entry set. */
  time: Date;
  /** Skip name validation and the case-insensitive clash check (hostile-media corpus only). */
  hostileName?: boolean;
}

export interface ExfatVolume extends VolumeReader<ExfatEntry> {
  readonly boot: ExfatBootSector;
  /** The volume label (spec 7.3), or null when it has none. */
  label(): string | null;
  children(folder?: ExfatEntry): ExfatEntry[];
  /** The entry named `name` in `folder`, compared case-insensitively through the up-case table. */
  findChild(folder: ExfatEntry | undefined, name: string): ExfatEntry | undefined;
  createDirectory(folder: ExfatEntry | undefined, name: string, options: NewEntryOptions): ExfatEntry;
  /** Writes a file of `size` bytes from `chunks`; MEDIA_FULL, with nothing changed, when it cannot fit. */
  createFile(
    folder: ExfatEntry | undefined,
    name: string,
    size: number,
    chunks: Iterable<Uint8Array>,
    options: NewEntryOptions,
  ): ExfatEntry;
  setAttributes(entry: ExfatEntry, attributes: Partial<FileAttributes>): ExfatEntry;
  /** Removes a file, or a folder and everything in it, and frees their clusters. */
  remove(entry: ExfatEntry): void;
}

interface Allocation {
  readonly clusters: number[];
  readonly contiguous: boolean;
}

export function openExfatVolume(device: BlockDevice): ExfatVolume {
  const first = device.read(0, 512);
  const boot = parseExfatBootSector(first);
  const bps = boot.bytesPerSector;
  if (boot.volumeLength * bps > device.size) {
    throw new MediaError('MEDIA_CORRUPT', `exFAT volume claims ${boot.volumeLength * bps} bytes, device holds ${device.size}`);
  }
  const region = device.read(0, bps * 12);
  const checksum = exfatBootChecksum(region, bps);
  for (let at = bps * 11; at < bps * 12; at += 4) {
    if (u32(region, at) !== checksum) throw new MediaError('MEDIA_CORRUPT', 'exFAT boot region checksum does not match');
  }
  const clusterSize = bps * boot.sectorsPerCluster;
  const lastCluster = boot.clusterCount + 1;
  // VolumeFlags bit 0 (ActiveFat) picks the second FAT and bitmap on TexFAT volumes (spec 3.1.13.1).
  const activeFat = boot.fatCount === 2 ? boot.volumeFlags & 1 : 0;
  const fatStart = (boot.fatOffset + activeFat * boot.fatLength) * bps;
  const clusterOffset = (cluster: number): number => boot.clusterHeapOffset * bps + (cluster - 2) * clusterSize;
  let fat: Uint8Array | null = null;

  const fatBytes = (): Uint8Array => {
    if (fat === null) {
      const length = (boot.clusterCount + 2) * 4;
      if (length > MAX_FAT_BYTES) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `FAT of ${length} bytes is too large to load`);
      fat = device.read(fatStart, length);
    }
    return fat;
  };
  const setFatEntry = (cluster: number, value: number): void => {
    const bytes = new Uint8Array(4);
    put32(bytes, 0, value);
    fatBytes().set(bytes, cluster * 4);
    device.write(fatStart + cluster * 4, bytes);
  };

  const checkCluster = (cluster: number, what: string): void => {
    if (cluster < 2 || cluster > lastCluster) {
      throw new MediaError('MEDIA_CORRUPT', `${what}: cluster ${cluster} outside 2..${lastCluster}`);
    }
  };

  /** Clusters of an allocation: a contiguous run or a checked FAT chain (spec 6.3.4.2). */
  const clustersOf = (firstCluster: number, noFatChain: boolean, length: number, what: string, maxBytes: number): number[] => {
    if (length === 0 && noFatChain) return [];
    if (firstCluster === 0) {
      if (length === 0) return [];
      throw new MediaError('MEDIA_CORRUPT', `${what}: ${length} bytes but no first cluster`);
    }
    const wanted = Math.ceil(length / clusterSize);
    const limit = Math.ceil(maxBytes / clusterSize);
    if (noFatChain) {
      checkCluster(firstCluster, what);
      checkCluster(firstCluster + wanted - 1, what);
      return Array.from({ length: wanted }, (_, i) => firstCluster + i);
    }
    const out: number[] = [];
    let cluster = firstCluster;
    const table = fatBytes();
    for (;;) {
      checkCluster(cluster, what);
      out.push(cluster);
      if (out.length > limit) throw new MediaError('MEDIA_CORRUPT', `${what}: cluster chain longer than ${limit}`);
      const next = u32(table, cluster * 4);
      if (next === END_OF_CHAIN) break;
      if (next === BAD_CLUSTER || next < 2) throw new MediaError('MEDIA_CORRUPT', `${what}: chain runs into cluster value ${next}`);
      cluster = next;
    }
    if (length > 0 && out.length < wanted) {
      throw new MediaError('MEDIA_CORRUPT', `${what}: ${length} bytes need ${wanted} clusters, chain has ${out.length}`);
    }
    return length > 0 ? out.slice(0, wanted) : out;
  };

  /** A folder entry as it is on disk now: growing a folder rewrites its stream extension, so handles go stale. */
  const refresh = (folder: ExfatEntry): ExfatEntry => {
    const offset = folder.setOffsets[1];
    if (offset === undefined) return folder;
    const stream = device.read(offset, ENTRY_SIZE);
    if (stream[0] !== TYPE_STREAM) throw new MediaError('MEDIA_CORRUPT', `folder ${folder.names.join('/')}: its entry set has changed`);
    const dataLength = u64(stream, 24, 'folder length');
    return {
      ...folder,
      firstCluster: u32(stream, 20),
      noFatChain: ((stream[1] ?? 0) & FLAG_NO_FAT_CHAIN) !== 0,
      dataLength,
      validDataLength: u64(stream, 8, 'folder valid length'),
    };
  };

  const folderClusters = (handle: ExfatEntry | undefined): number[] => {
    const folder = handle === undefined ? undefined : refresh(handle);
    return folder === undefined
      ? clustersOf(boot.rootCluster, false, 0, 'root folder', MAX_DIRECTORY_BYTES)
      : clustersOf(folder.firstCluster, folder.noFatChain, folder.dataLength, `folder ${folder.names.join('/')}`, MAX_DIRECTORY_BYTES);
  };

  /** Byte offsets of every 32-byte entry of a folder. */
  const folderSlots = (handle: ExfatEntry | undefined): number[] => {
    const clusters = folderClusters(handle);
    const out: number[] = [];
    for (const cluster of clusters) {
      const start = clusterOffset(cluster);
      for (let at = 0; at < clusterSize; at += ENTRY_SIZE) out.push(start + at);
    }
    return out;
  };

  const readSlots = (offsets: number[]): Uint8Array[] => {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < offsets.length) {
      let j = i + 1;
      while (j < offsets.length && offsets[j] === (offsets[j - 1] ?? 0) + ENTRY_SIZE) j += 1;
      const bytes = device.read(offsets[i] ?? 0, (j - i) * ENTRY_SIZE);
      for (let k = 0; k < j - i; k += 1) out.push(bytes.subarray(k * ENTRY_SIZE, (k + 1) * ENTRY_SIZE));
      i = j;
    }
    return out;
  };

  interface RootInfo {
    bitmapCluster: number;
    bitmapLength: number;
    upcaseCluster: number;
    upcaseLength: number;
    upcaseChecksum: number;
    label: string | null;
  }
  let rootInfo: RootInfo | null = null;
  const root = (): RootInfo => {
    if (rootInfo !== null) return rootInfo;
    const info: Partial<RootInfo> = { label: null };
    for (const slot of readSlots(folderSlots(undefined))) {
      const type = slot[0] ?? 0;
      if (type === TYPE_END) break;
      if (type === TYPE_BITMAP && ((slot[1] ?? 0) & 1) === activeFat) {
        info.bitmapCluster = u32(slot, 20);
        info.bitmapLength = u64(slot, 24, 'bitmap length');
      } else if (type === TYPE_UPCASE) {
        info.upcaseChecksum = u32(slot, 4);
        info.upcaseCluster = u32(slot, 20);
        info.upcaseLength = u64(slot, 24, 'up-case table length');
      } else if (type === TYPE_LABEL) {
        const count = slot[1] ?? 0;
        if (count > 11) throw new MediaError('MEDIA_CORRUPT', `volume label of ${count} characters, at most 11`);
        let label = '';
        for (let i = 0; i < count; i += 1) label += String.fromCharCode(u16(slot, 2 + i * 2));
        info.label = label;
      }
    }
    if (info.bitmapCluster === undefined || info.bitmapLength === undefined) {
      throw new MediaError('MEDIA_CORRUPT', 'exFAT root folder has no allocation bitmap');
    }
    if (info.upcaseCluster === undefined || info.upcaseLength === undefined || info.upcaseChecksum === undefined) {
      throw new MediaError('MEDIA_CORRUPT', 'exFAT root folder has no up-case table');
    }
    // Spec 7.1: one bit per cluster of the heap. Longer is refused too: the writer reads the whole bitmap into memory.
    const bitmapNeeds = Math.ceil(boot.clusterCount / 8);
    if (info.bitmapLength < bitmapNeeds) throw new MediaError('MEDIA_CORRUPT', 'allocation bitmap too short');
    if (info.bitmapLength > bitmapNeeds + clusterSize) throw new MediaError('MEDIA_CORRUPT', `allocation bitmap of ${info.bitmapLength} bytes for ${boot.clusterCount} clusters (${bitmapNeeds} bytes)`);
    if (info.upcaseLength === 0 || info.upcaseLength > 128 * 1024 || info.upcaseLength % 2 !== 0) {
      throw new MediaError('MEDIA_CORRUPT', `up-case table of ${info.upcaseLength} bytes`);
    }
    rootInfo = info as RootInfo;
    return rootInfo;
  };

  let bitmap: Uint8Array | null = null;
  let bitmapClusters: number[] = [];
  const bitmapBytes = (): Uint8Array => {
    if (bitmap === null) {
      const info = root();
      bitmapClusters = clustersOf(info.bitmapCluster, false, info.bitmapLength, 'allocation bitmap', info.bitmapLength);
      bitmap = readRun(bitmapClusters, info.bitmapLength);
    }
    return bitmap;
  };
  const isAllocated = (cluster: number): boolean => (((bitmapBytes()[(cluster - 2) >> 3] ?? 0) >> ((cluster - 2) & 7)) & 1) === 1;
  const markClusters = (clusters: readonly number[], used: boolean): void => {
    const map = bitmapBytes();
    const touched = new Set<number>();
    for (const cluster of clusters) {
      const index = (cluster - 2) >> 3;
      const bit = 1 << ((cluster - 2) & 7);
      map[index] = used ? (map[index] ?? 0) | bit : (map[index] ?? 0) & ~bit;
      touched.add(index);
    }
    for (const index of touched) {
      const cluster = bitmapClusters[Math.floor(index / clusterSize)] ?? 0;
      device.write(clusterOffset(cluster) + (index % clusterSize), map.subarray(index, index + 1));
    }
  };

  let upcase: Uint16Array | null = null;
  const upcaseTable = (): Uint16Array => {
    if (upcase === null) {
      const info = root();
      const clusters = clustersOf(info.upcaseCluster, false, info.upcaseLength, 'up-case table', info.upcaseLength);
      const bytes = readRun(clusters, info.upcaseLength);
      if (tableChecksum(bytes) !== info.upcaseChecksum) throw new MediaError('MEDIA_CORRUPT', 'up-case table checksum does not match');
      upcase = expandUpcaseTable(bytes);
    }
    return upcase;
  };
  const upcased = (name: string): string => {
    const table = upcaseTable();
    let out = '';
    for (let i = 0; i < name.length; i += 1) out += String.fromCharCode(table[name.charCodeAt(i)] ?? 0);
    return out;
  };

  function readRun(clusters: readonly number[], length: number): Uint8Array {
    const out = new Uint8Array(length);
    let at = 0;
    for (const cluster of clusters) {
      if (at >= length) break;
      const n = Math.min(clusterSize, length - at);
      out.set(device.read(clusterOffset(cluster), n), at);
      at += n;
    }
    return out;
  }

  const children = (folder?: ExfatEntry): ExfatEntry[] => {
    const parentNames = folder?.names ?? [];
    const where = folder === undefined ? 'root folder' : `folder ${folder.names.join('/')}`;
    const offsets = folderSlots(folder);
    const slots = readSlots(offsets);
    const out: ExfatEntry[] = [];
    for (let i = 0; i < slots.length; i += 1) {
      const slot = slots[i] ?? new Uint8Array(ENTRY_SIZE);
      const type = slot[0] ?? 0;
      if (type === TYPE_END) break;
      if ((type & IN_USE) === 0) continue; // deleted or unused
      if (folder === undefined && (type === TYPE_BITMAP || type === TYPE_UPCASE || type === TYPE_LABEL)) continue;
      const isPrimary = (type & 0x40) === 0;
      const isBenign = (type & 0x20) !== 0;
      if (!isPrimary) throw new MediaError('MEDIA_CORRUPT', `${where}: secondary entry 0x${type.toString(16)} outside an entry set`);
      if (type !== TYPE_FILE) {
        // Benign primaries (volume GUID, TexFAT padding) may be skipped with their secondaries (spec 6.3.2).
        if (!isBenign) throw new MediaError('MEDIA_CORRUPT', `${where}: unknown critical entry 0x${type.toString(16)}`);
        i += slot[1] ?? 0;
        continue;
      }
      const secondaryCount = slot[1] ?? 0;
      if (secondaryCount < 2 || secondaryCount > 18 || i + secondaryCount >= slots.length) {
        throw new MediaError('MEDIA_CORRUPT', `${where}: file entry with ${secondaryCount} secondary entries`);
      }
      const set = new Uint8Array((secondaryCount + 1) * ENTRY_SIZE);
      for (let k = 0; k <= secondaryCount; k += 1) set.set(slots[i + k] ?? new Uint8Array(ENTRY_SIZE), k * ENTRY_SIZE);
      if (entrySetChecksum(set) !== u16(set, 2)) throw new MediaError('MEDIA_CORRUPT', `${where}: entry set checksum does not match`);
      const stream = set.subarray(ENTRY_SIZE, 2 * ENTRY_SIZE);
      if (stream[0] !== TYPE_STREAM) throw new MediaError('MEDIA_CORRUPT', `${where}: file entry without a stream extension`);
      const nameLength = stream[3] ?? 0;
      const nameEntries = Math.ceil(nameLength / NAME_CHARS_PER_ENTRY);
      if (nameLength === 0 || nameEntries > secondaryCount - 1) {
        throw new MediaError('MEDIA_CORRUPT', `${where}: name of ${nameLength} characters in ${secondaryCount - 1} entries`);
      }
      let name = '';
      for (let k = 0; k < nameEntries; k += 1) {
        const entry = set.subarray((2 + k) * ENTRY_SIZE, (3 + k) * ENTRY_SIZE);
        if (entry[0] !== TYPE_NAME) throw new MediaError('MEDIA_CORRUPT', `${where}: missing file name entry`);
        for (let c = 0; c < NAME_CHARS_PER_ENTRY; c += 1) name += String.fromCharCode(u16(entry, 2 + c * 2));
      }
      name = name.slice(0, nameLength);
      // Windows finds names by this hash: a wrong one hides the file from lookups while listings show it.
      if (exfatNameHash(name, upcaseTable()) !== u16(stream, 4)) {
        throw new MediaError('MEDIA_CORRUPT', `${where}: name hash of ${JSON.stringify(name)} does not match`);
      }
      const attr = u16(set, 4);
      const flags = stream[1] ?? 0;
      const what = `${where}: ${JSON.stringify(name)}`;
      const dataLength = u64(stream, 24, what);
      const validDataLength = u64(stream, 8, what);
      if (validDataLength > dataLength) throw new MediaError('MEDIA_CORRUPT', `${what}: valid length beyond data length`);
      const isDirectory = (attr & ATTR_DIRECTORY) !== 0;
      if (isDirectory && (dataLength === 0 || dataLength % clusterSize !== 0 || dataLength > MAX_DIRECTORY_BYTES)) {
        throw new MediaError('MEDIA_CORRUPT', `${what}: folder of ${dataLength} bytes`);
      }
      out.push({
        names: [...parentNames, name],
        kind: isDirectory ? 'directory' : 'file',
        size: isDirectory ? 0 : dataLength,
        attributes: {
          readonly: (attr & ATTR_READ_ONLY) !== 0,
          hidden: (attr & ATTR_HIDDEN) !== 0,
          system: (attr & ATTR_SYSTEM) !== 0,
          archive: (attr & ATTR_ARCHIVE) !== 0,
        },
        firstCluster: u32(stream, 20),
        noFatChain: (flags & FLAG_NO_FAT_CHAIN) !== 0,
        dataLength,
        validDataLength,
        setOffsets: offsets.slice(i, i + secondaryCount + 1),
      });
      i += secondaryCount;
    }
    return out;
  };

  /** The clusters that hold a file's DataLength bytes, checked (in the heap, chain as long as the length). */
  const fileClusters = (entry: ExfatEntry): number[] => clustersOf(entry.firstCluster, entry.noFatChain, entry.dataLength, `file ${entry.names.join('/')}`, entry.dataLength);

  /** Every folder's and file's clusters are checked and claimed as the walk meets them: a cross-link is MEDIA_CORRUPT. */
  const walk = (limits: Partial<WalkLimits> = {}): ExfatEntry[] => {
    const claim = createClusterClaims(lastCluster);
    return walkBounded(boot.rootCluster, (folder) => {
      claim(folderClusters(folder), folder === undefined ? 'root folder' : `folder ${folder.names.join('/')}`);
      const entries = children(folder);
      for (const entry of entries) if (entry.kind === 'file') claim(fileClusters(entry), `file ${entry.names.join('/')}`);
      return entries;
    }, limits);
  };

  function* fileChunks(entry: ExfatEntry): Generator<Uint8Array> {
    if (entry.kind !== 'file') throw new MediaError('MEDIA_NOT_FOUND', `${entry.names.join('/')} is a folder`);
    const clusters = fileClusters(entry);
    const maxRun = Math.max(1, Math.floor((1024 * 1024) / clusterSize)); // clusters per read: 1 MiB
    let position = 0;
    let i = 0;
    while (position < entry.dataLength) {
      let j = i + 1;
      while (j < clusters.length && j - i < maxRun && clusters[j] === (clusters[j - 1] ?? 0) + 1) j += 1;
      const length = Math.min(entry.dataLength - position, (j - i) * clusterSize);
      // Bytes past ValidDataLength read as zeros (spec 7.6.5).
      const valid = Math.max(0, Math.min(length, entry.validDataLength - position));
      const chunk = new Uint8Array(length);
      if (valid > 0) chunk.set(device.read(clusterOffset(clusters[i] ?? 0), valid));
      yield chunk;
      position += length;
      i = j;
    }
  }

  const freeClusters = (): number => {
    let free = 0;
    for (let c = 2; c <= lastCluster; c += 1) if (!isAllocated(c)) free += 1;
    return free;
  };

  // ---- writing ----

  /** Finds `count` free clusters, contiguous when possible; changes nothing. */
  const findFree = (count: number, what: string): Allocation => {
    let runStart = 0;
    let runLength = 0;
    for (let c = 2; c <= lastCluster; c += 1) {
      if (isAllocated(c)) {
        runLength = 0;
        continue;
      }
      if (runLength === 0) runStart = c;
      runLength += 1;
      if (runLength === count) return { clusters: Array.from({ length: count }, (_, k) => runStart + k), contiguous: true };
    }
    const scattered: number[] = [];
    for (let c = 2; c <= lastCluster && scattered.length < count; c += 1) if (!isAllocated(c)) scattered.push(c);
    if (scattered.length < count) {
      throw new MediaError(
        'MEDIA_FULL',
        `${what}: needs ${count * clusterSize} bytes, ${scattered.length * clusterSize} free; nothing was written`,
      );
    }
    return { clusters: scattered, contiguous: false };
  };

  const commitAllocation = (allocation: Allocation): void => {
    markClusters(allocation.clusters, true);
    if (!allocation.contiguous) {
      allocation.clusters.forEach((cluster, k) => setFatEntry(cluster, allocation.clusters[k + 1] ?? END_OF_CHAIN));
    }
  };

  const releaseClusters = (clusters: readonly number[], chained: boolean): void => {
    markClusters(clusters, false);
    if (chained) for (const cluster of clusters) setFatEntry(cluster, 0);
  };

  const writeEntrySet = (offsets: readonly number[], set: Uint8Array): void => {
    put16(set, 2, entrySetChecksum(set));
    offsets.forEach((offset, k) => device.write(offset, set.subarray(k * ENTRY_SIZE, (k + 1) * ENTRY_SIZE)));
  };

  const readEntrySet = (entry: ExfatEntry): Uint8Array => {
    const set = new Uint8Array(entry.setOffsets.length * ENTRY_SIZE);
    entry.setOffsets.forEach((offset, k) => set.set(device.read(offset, ENTRY_SIZE), k * ENTRY_SIZE));
    return set;
  };

  /** Adds one zeroed cluster to a folder, updating its entry (the root has none: always FAT-chained). */
  const growFolder = (handle: ExfatEntry | undefined): ExfatEntry | undefined => {
    const folder = handle === undefined ? undefined : refresh(handle);
    const current = folderSlots(folder);
    const lastOffset = current[current.length - 1] ?? 0;
    const lastUsed = Math.floor((lastOffset - boot.clusterHeapOffset * bps) / clusterSize) + 2;
    const next = lastUsed + 1;
    const adjacent = next <= lastCluster && !isAllocated(next);
    const allocation: Allocation = adjacent ? { clusters: [next], contiguous: true } : findFree(1, 'growing a folder');
    const added = allocation.clusters[0] ?? 0;
    device.write(clusterOffset(added), new Uint8Array(clusterSize));
    markClusters([added], true);
    if (folder === undefined || !folder.noFatChain) {
      setFatEntry(lastUsed, added);
      setFatEntry(added, END_OF_CHAIN);
    } else if (!adjacent) {
      // A contiguous folder that cannot stay contiguous gets a FAT chain (spec 6.3.4.2).
      const clusters = clustersOf(folder.firstCluster, true, folder.dataLength, 'folder', MAX_DIRECTORY_BYTES);
      [...clusters, added].forEach((cluster, k, all) => setFatEntry(cluster, all[k + 1] ?? END_OF_CHAIN));
    }
    if (folder === undefined) return undefined;
    const set = readEntrySet(folder);
    const length = folder.dataLength + clusterSize;
    if (!adjacent) set[ENTRY_SIZE + 1] = (set[ENTRY_SIZE + 1] ?? 0) & ~FLAG_NO_FAT_CHAIN;
    put64(set, ENTRY_SIZE + 8, length);
    put64(set, ENTRY_SIZE + 24, length);
    writeEntrySet(folder.setOffsets, set);
    return { ...folder, dataLength: length, validDataLength: length, noFatChain: folder.noFatChain && adjacent };
  };

  /** Offsets of `count` consecutive unused entries in a folder, growing it when needed. */
  const reserveSlots = (folder: ExfatEntry | undefined, count: number): { offsets: number[]; folder: ExfatEntry | undefined } => {
    let current = folder;
    for (let attempt = 0; attempt < 2 + Math.ceil((count * ENTRY_SIZE) / clusterSize); attempt += 1) {
      const offsets = folderSlots(current);
      const slots = readSlots(offsets);
      let run = 0;
      for (let i = 0; i < slots.length; i += 1) {
        run = ((slots[i]?.[0] ?? 0) & IN_USE) === 0 ? run + 1 : 0;
        if (run === count) return { offsets: offsets.slice(i - count + 1, i + 1), folder: current };
      }
      if (offsets.length * ENTRY_SIZE + clusterSize > MAX_DIRECTORY_BYTES) {
        throw new MediaError('MEDIA_FULL', 'folder has reached the 256 MiB exFAT limit');
      }
      current = growFolder(current);
    }
    throw new MediaError('MEDIA_CORRUPT', 'could not find room in a folder after growing it');
  };

  const findChild = (folder: ExfatEntry | undefined, name: string): ExfatEntry | undefined => {
    const key = upcased(name);
    return children(folder).find((entry) => upcased(entry.names[entry.names.length - 1] ?? '') === key);
  };

  const checkNewName = (folder: ExfatEntry | undefined, name: string, options: NewEntryOptions): void => {
    if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
      throw new MediaError('MEDIA_NAME_UNSUPPORTED', `exFAT names hold 1..${MAX_NAME_LENGTH} UTF-16 units, got ${name.length}`);
    }
    if (options.hostileName === true) return;
    const problem = exfatNameProblem(name);
    if (problem !== null) throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${JSON.stringify(name)}: ${problem}`);
    if (findChild(folder, name) !== undefined) {
      throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${JSON.stringify(name)} already exists (exFAT compares names case-insensitively)`);
    }
  };

  const buildEntrySet = (name: string, attr: number, flags: number, firstCluster: number, length: number, time: Date): Uint8Array => {
    const nameEntries = Math.ceil(name.length / NAME_CHARS_PER_ENTRY);
    const set = new Uint8Array((2 + nameEntries) * ENTRY_SIZE);
    set[0] = TYPE_FILE;
    set[1] = 1 + nameEntries;
    put16(set, 4, attr);
    const { stamp, tenMs, utcOffset } = encodeTimestamp(time);
    for (const at of [8, 12, 16]) put32(set, at, stamp);
    set[20] = tenMs;
    set[21] = tenMs;
    set[22] = utcOffset;
    set[23] = utcOffset;
    set[24] = utcOffset;
    const s = ENTRY_SIZE;
    set[s] = TYPE_STREAM;
    set[s + 1] = flags;
    set[s + 3] = name.length;
    put16(set, s + 4, exfatNameHash(name, upcaseTable()));
    put64(set, s + 8, length);
    put32(set, s + 20, firstCluster);
    put64(set, s + 24, length);
    for (let k = 0; k < nameEntries; k += 1) {
      const at = (2 + k) * ENTRY_SIZE;
      set[at] = TYPE_NAME;
      for (let c = 0; c < NAME_CHARS_PER_ENTRY; c += 1) {
        const index = k * NAME_CHARS_PER_ENTRY + c;
        put16(set, at + 2 + c * 2, index < name.length ? name.charCodeAt(index) : 0);
      }
    }
    return set;
  };

  const attributeBits = (attributes: Partial<FileAttributes> | undefined, base: number): number =>
    base |
    (attributes?.readonly === true ? ATTR_READ_ONLY : 0) |
    (attributes?.hidden === true ? ATTR_HIDDEN : 0) |
    (attributes?.system === true ? ATTR_SYSTEM : 0) |
    (attributes?.archive === true ? ATTR_ARCHIVE : 0);

  const placeEntry = (folder: ExfatEntry | undefined, set: Uint8Array, partial: Omit<ExfatEntry, 'setOffsets' | 'names'>, name: string): ExfatEntry => {
    const { offsets } = reserveSlots(folder, set.length / ENTRY_SIZE);
    writeEntrySet(offsets, set);
    return { ...partial, names: [...(folder?.names ?? []), name], setOffsets: offsets };
  };

  const createDirectory = (folder: ExfatEntry | undefined, name: string, options: NewEntryOptions): ExfatEntry => {
    checkNewName(folder, name, options);
    const allocation = findFree(1, `folder ${name}`);
    const cluster = allocation.clusters[0] ?? 0;
    device.write(clusterOffset(cluster), new Uint8Array(clusterSize));
    commitAllocation(allocation);
    const attr = attributeBits(options.attributes, ATTR_DIRECTORY);
    const set = buildEntrySet(name, attr, FLAG_ALLOCATION_POSSIBLE | FLAG_NO_FAT_CHAIN, cluster, clusterSize, options.time);
    try {
      return placeEntry(
        folder,
        set,
        {
          kind: 'directory',
          size: 0,
          attributes: { readonly: false, hidden: false, system: false, archive: false, ...options.attributes },
          firstCluster: cluster,
          noFatChain: true,
          dataLength: clusterSize,
          validDataLength: clusterSize,
        },
        name,
      );
    } catch (error) {
      releaseClusters([cluster], false);
      throw error;
    }
  };

  const createFile = (
    folder: ExfatEntry | undefined,
    name: string,
    size: number,
    chunks: Iterable<Uint8Array>,
    options: NewEntryOptions,
  ): ExfatEntry => {
    checkNewName(folder, name, options);
    if (!Number.isSafeInteger(size) || size < 0) throw new MediaError('MEDIA_SPEC_INVALID', `file size ${size}`);
    const count = Math.ceil(size / clusterSize);
    const allocation: Allocation = count === 0 ? { clusters: [], contiguous: true } : findFree(count, `file ${name}`);
    // Data first, entry last: a failure before the entry leaves no visible partial file.
    let written = 0;
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) {
        if (written >= size) throw new MediaError('MEDIA_SPEC_INVALID', `file ${name}: content longer than ${size} bytes`);
        const cluster = allocation.clusters[Math.floor(written / clusterSize)] ?? 0;
        const within = written % clusterSize;
        const n = Math.min(chunk.length - at, clusterSize - within, size - written);
        device.write(clusterOffset(cluster) + within, chunk.subarray(at, at + n));
        at += n;
        written += n;
      }
    }
    if (written !== size) throw new MediaError('MEDIA_SPEC_INVALID', `file ${name}: content is ${written} bytes, expected ${size}`);
    commitAllocation(allocation);
    const flags = FLAG_ALLOCATION_POSSIBLE | (count > 0 && allocation.contiguous ? FLAG_NO_FAT_CHAIN : 0);
    const firstCluster = allocation.clusters[0] ?? 0;
    const attr = attributeBits({ archive: true, ...options.attributes }, 0);
    const set = buildEntrySet(name, attr, flags, firstCluster, size, options.time);
    try {
      return placeEntry(
        folder,
        set,
        {
          kind: 'file',
          size,
          attributes: { readonly: false, hidden: false, system: false, archive: true, ...options.attributes },
          firstCluster,
          noFatChain: (flags & FLAG_NO_FAT_CHAIN) !== 0,
          dataLength: size,
          validDataLength: size,
        },
        name,
      );
    } catch (error) {
      releaseClusters(allocation.clusters, !allocation.contiguous);
      throw error;
    }
  };

  const setAttributes = (entry: ExfatEntry, attributes: Partial<FileAttributes>): ExfatEntry => {
    const set = readEntrySet(entry);
    const merged = { ...entry.attributes, ...attributes };
    const attr = attributeBits(merged, entry.kind === 'directory' ? ATTR_DIRECTORY : 0);
    put16(set, 4, attr);
    writeEntrySet(entry.setOffsets, set);
    return { ...entry, attributes: merged };
  };

  const remove = (handle: ExfatEntry): void => {
    const entry = handle.kind === 'directory' ? refresh(handle) : handle;
    if (entry.kind === 'directory') for (const child of children(entry)) remove(child);
    const clusters = clustersOf(entry.firstCluster, entry.noFatChain, entry.dataLength, entry.names.join('/'), Math.max(entry.dataLength, 1));
    // Clearing InUse on each entry of the set deletes it (spec 6.2.1.1).
    for (const offset of entry.setOffsets) {
      const slot = device.read(offset, ENTRY_SIZE);
      slot[0] = (slot[0] ?? 0) & ~IN_USE;
      device.write(offset, slot);
    }
    releaseClusters(clusters, !entry.noFatChain);
  };

  return {
    filesystem: 'exfat',
    clusterSize,
    boot,
    label: () => root().label,
    children,
    findChild,
    walk,
    fileChunks,
    freeBytes: () => freeClusters() * clusterSize,
    createDirectory,
    createFile,
    setAttributes,
    remove,
  };
}
