/**
 * Builds real FAT32 and exFAT drive images from a spec, for the kiosk's tests,
 * its hostile-media corpus and the demo. FAT32: mkfs.vfat, then mtools (long
 * and Unicode names, attributes through mattrib). exFAT: mkfs.exfat and
 * tune.exfat, then this project's exFAT writer (no mount needed, fixed
 * timestamps). Every build is read back and compared with its spec, so a tool
 * that quietly changes a name fails the build instead of the test that uses it.
 * The same spec gives the same bytes on every run.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { exfatNameProblem, openExfatVolume, type ExfatEntry } from '../../kiosk/drive/exfat-volume.ts';
import { fatCaseKey, fatNameProblem, FatImageWriter } from '../../kiosk/drive/fat-mtools.ts';
import { openFatVolume } from '../../kiosk/drive/fat-volume.ts';
import { formatVolumeId } from '../../kiosk/drive/identity.ts';
import { runToolOrThrow, toolEnvironment } from '../../kiosk/drive/run-tool.ts';
import { entryPath, type FileAttributes, type VolumeEntry, type VolumeReader } from '../../kiosk/drive/volume.ts';

export type ImageFilesystem = 'fat32' | 'exfat';

interface AttributeSpec {
  hidden?: boolean;
  system?: boolean;
  readonly?: boolean;
}

export type DriveFileSpec = AttributeSpec & { path: string } & (
    | { content: Uint8Array | string }
    | { size: number; /** Repeated to fill `size` bytes; a byte value or a pattern. Default 0. */ fill?: number | string | Uint8Array }
  );

export type DriveDirectorySpec = string | (AttributeSpec & { path: string });

export interface DriveImageSpec {
  filesystem: ImageFilesystem;
  sizeMiB: number;
  /** FAT32: up to 11 printable ASCII characters; exFAT: up to 11 UTF-16 units. '' for none. */
  label: string;
  /** 32-bit volume id / serial: a number, "XXXX-XXXX" or "XXXXXXXX". Default 0x504F5254. */
  volumeId?: number | string;
  files: DriveFileSpec[];
  directories?: DriveDirectorySpec[];
  /** Every timestamp on the volume. Default 2024-01-01T00:00:00Z. */
  time?: Date;
  /**
   * Write names exactly even where the filesystem's rules forbid them (control
   * characters, "?", case-only clashes) as long as its slots can hold them:
   * for the hostile-media corpus. "/" separates path segments and cannot be in a name.
   */
  hostileNames?: boolean;
}

export interface BuiltDriveImage {
  readonly path: string;
  readonly filesystem: ImageFilesystem;
  readonly volumeId: string;
  readonly label: string;
  readonly sizeBytes: number;
  /** Files and folders on the volume. */
  readonly entries: number;
}

export const DEFAULT_VOLUME_ID = 0x504f5254;
export const DEFAULT_IMAGE_TIME = new Date('2024-01-01T00:00:00Z');
/** FAT32 needs at least 65,525 clusters: with 512-byte clusters that is 33 MiB. */
export const MIN_FAT32_MIB = 33;
/** mkfs.exfat (exfatprogs 1.2) fails below 3 MiB: it aligns the FAT and cluster heap to 1 MiB. */
export const MIN_EXFAT_MIB = 3;
const MAX_IMAGE_MIB = 64 * 1024;
const FAT_LABEL_FORBIDDEN = '"*+,./:;<=>?[\\]|';

/** One folder or file to create, parents before children. */
export interface PlannedItem {
  readonly names: readonly string[];
  readonly kind: 'file' | 'directory';
  readonly attributes: Partial<FileAttributes>;
  readonly size: number;
  /** The content, produced on demand in chunks (files only). */
  readonly chunks: () => Iterable<Uint8Array>;
}

export interface DrivePlan {
  readonly filesystem: ImageFilesystem;
  readonly sizeBytes: number;
  readonly label: string;
  readonly volumeId: number;
  readonly time: Date;
  readonly hostileNames: boolean;
  readonly items: readonly PlannedItem[];
}

function invalid(message: string): never {
  throw new MediaError('MEDIA_SPEC_INVALID', message);
}

/** Parses a volume id given as a number, "XXXX-XXXX" or "XXXXXXXX". */
export function parseVolumeId(value: number | string, where = 'volumeId'): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) invalid(`${where}: expected a 32-bit unsigned integer, got ${value}`);
    return value;
  }
  const match = /^([0-9A-Fa-f]{4})-?([0-9A-Fa-f]{4})$/.exec(value);
  if (match === null) invalid(`${where}: expected "XXXX-XXXX" hex, got ${JSON.stringify(value)}`);
  return Number.parseInt(`${match[1] ?? ''}${match[2] ?? ''}`, 16);
}

function splitPath(path: string, where: string): string[] {
  if (typeof path !== 'string' || path.length === 0) invalid(`${where}.path: expected a non-empty string`);
  const names = (path.startsWith('/') ? path.slice(1) : path).split('/');
  if (names.some((name) => name.length === 0)) invalid(`${where}.path: empty segment in ${JSON.stringify(path)}`);
  return names;
}

function checkName(name: string, filesystem: ImageFilesystem, hostile: boolean, where: string): void {
  // What no FAT or exFAT directory entry can hold, hostile or not.
  if (name === '.' || name === '..') throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${where}: "${name}" cannot be a name on ${filesystem}`);
  if (name.length > 255) throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${where}: ${name.length} UTF-16 units, at most 255`);
  if (filesystem === 'fat32' && name.includes('\u0000')) {
    throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${where}: U+0000 ends a FAT long name`);
  }
  if (hostile) return;
  const problem = filesystem === 'fat32' ? fatNameProblem(name) : exfatNameProblem(name);
  if (problem !== null) throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${where}: ${JSON.stringify(name)} is not allowed on ${filesystem} (${problem})`);
}

function checkLabel(label: string, filesystem: ImageFilesystem): void {
  if (typeof label !== 'string') invalid('label: expected a string');
  if (filesystem === 'fat32') {
    if (!/^[\x20-\x7e]{0,11}$/.test(label)) invalid(`label: FAT32 labels are at most 11 printable ASCII characters, got ${JSON.stringify(label)}`);
    const bad = [...label].find((c) => FAT_LABEL_FORBIDDEN.includes(c));
    if (bad !== undefined) invalid(`label: ${JSON.stringify(bad)} is not allowed in a FAT label`);
    if (label.startsWith(' ')) invalid('label: a FAT label cannot start with a space');
  } else {
    if (label.length > 11) invalid(`label: exFAT labels are at most 11 UTF-16 units, got ${label.length}`);
    if (label !== '' && exfatNameProblem(label) !== null) invalid(`label: ${JSON.stringify(label)}: ${exfatNameProblem(label) ?? ''}`);
  }
}

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value;
}

function* filled(size: number, fill: number | string | Uint8Array): Generator<Uint8Array> {
  const pattern = typeof fill === 'number' ? Uint8Array.of(fill) : toBytes(fill);
  const chunkSize = 1024 * 1024; // bytes per chunk
  const block = new Uint8Array(Math.min(size, chunkSize));
  for (let i = 0; i < block.length; i += 1) block[i] = pattern[i % pattern.length] ?? 0;
  let done = 0;
  while (done < size) {
    const n = Math.min(block.length, size - done);
    // Keep the pattern's phase across chunks: chunkSize may not be a multiple of the pattern.
    const offset = done % pattern.length;
    if (offset === 0) yield block.subarray(0, n);
    else {
      const chunk = new Uint8Array(n);
      for (let i = 0; i < n; i += 1) chunk[i] = pattern[(done + i) % pattern.length] ?? 0;
      yield chunk;
    }
    done += n;
  }
}

/** Checks a spec and orders what to create; pure, so every refusal is unit-tested. */
export function planDriveImage(spec: DriveImageSpec): DrivePlan {
  if (spec.filesystem !== 'fat32' && spec.filesystem !== 'exfat') invalid(`filesystem: expected "fat32" or "exfat", got ${JSON.stringify(spec.filesystem)}`);
  const min = spec.filesystem === 'fat32' ? MIN_FAT32_MIB : MIN_EXFAT_MIB;
  if (!Number.isInteger(spec.sizeMiB) || spec.sizeMiB < min || spec.sizeMiB > MAX_IMAGE_MIB) {
    invalid(`sizeMiB: ${spec.filesystem} needs an integer from ${min} to ${MAX_IMAGE_MIB}, got ${spec.sizeMiB}`);
  }
  checkLabel(spec.label, spec.filesystem);
  const volumeId = parseVolumeId(spec.volumeId ?? DEFAULT_VOLUME_ID);
  const time = spec.time ?? DEFAULT_IMAGE_TIME;
  if (!(time instanceof Date) || Number.isNaN(time.getTime()) || time.getUTCFullYear() < 1980 || time.getUTCFullYear() > 2107) {
    invalid('time: expected a Date from 1980 to 2107');
  }
  const hostile = spec.hostileNames === true;
  const key = (names: readonly string[]): string => (hostile ? names : names.map(fatCaseKey)).join('/');
  const items = new Map<string, PlannedItem>();
  const addFolder = (names: readonly string[], attributes: Partial<FileAttributes>, where: string): void => {
    for (let depth = 1; depth <= names.length; depth += 1) {
      const prefix = names.slice(0, depth);
      const existing = items.get(key(prefix));
      const own = depth === names.length;
      if (existing !== undefined) {
        if (existing.kind !== 'directory') invalid(`${where}.path: ${JSON.stringify(prefix.join('/'))} is a file`);
        if (own && Object.keys(attributes).length > 0) items.set(key(prefix), { ...existing, attributes });
        continue;
      }
      items.set(key(prefix), { names: prefix, kind: 'directory', attributes: own ? attributes : {}, size: 0, chunks: () => [] });
    }
  };
  (spec.directories ?? []).forEach((dir, index) => {
    const where = `directories[${index}]`;
    const path = typeof dir === 'string' ? dir : dir.path;
    const names = splitPath(path, where);
    names.forEach((name) => checkName(name, spec.filesystem, hostile, `${where}.path`));
    const attributes = typeof dir === 'string' ? {} : pickAttributes(dir);
    addFolder(names, attributes, where);
  });
  spec.files.forEach((file, index) => {
    const where = `files[${index}]`;
    const names = splitPath(file.path, where);
    names.forEach((name) => checkName(name, spec.filesystem, hostile, `${where}.path`));
    addFolder(names.slice(0, -1), {}, where);
    if (items.has(key(names))) {
      invalid(`${where}.path: ${JSON.stringify(file.path)} is given twice${hostile ? '' : ' (names compare case-insensitively)'}`);
    }
    let size: number;
    let chunks: () => Iterable<Uint8Array>;
    if ('content' in file) {
      const bytes = toBytes(file.content);
      size = bytes.length;
      chunks = () => [bytes];
    } else {
      if (!Number.isSafeInteger(file.size) || file.size < 0) invalid(`${where}.size: expected a byte count, got ${file.size}`);
      const fill = file.fill ?? 0;
      if (typeof fill === 'number' && (!Number.isInteger(fill) || fill < 0 || fill > 255)) invalid(`${where}.fill: expected a byte value`);
      if (typeof fill !== 'number' && toBytes(fill).length === 0) invalid(`${where}.fill: empty pattern`);
      size = file.size;
      chunks = () => filled(file.size, fill);
    }
    if (spec.filesystem === 'fat32' && size > 0xffffffff) invalid(`${where}.size: FAT32 files are below 4 GiB`);
    items.set(key(names), { names, kind: 'file', attributes: pickAttributes(file), size, chunks });
  });
  return {
    filesystem: spec.filesystem,
    sizeBytes: spec.sizeMiB * 1024 * 1024,
    label: spec.label,
    volumeId,
    time,
    hostileNames: hostile,
    items: [...items.values()],
  };
}

function pickAttributes(spec: AttributeSpec): Partial<FileAttributes> {
  const out: { -readonly [K in keyof FileAttributes]?: boolean } = {};
  if (spec.hidden !== undefined) out.hidden = spec.hidden;
  if (spec.system !== undefined) out.system = spec.system;
  if (spec.readonly !== undefined) out.readonly = spec.readonly;
  return out;
}

/** Builds the image at `outPath` (replacing it) and returns what is on it. */
export async function buildDriveImage(outPath: string, spec: DriveImageSpec): Promise<BuiltDriveImage> {
  const plan = planDriveImage(spec);
  const partial = join(dirname(outPath), `.${basename(outPath)}.partial`);
  const scratch = await mkdtemp(join(dirname(outPath), '.image-build-'));
  try {
    await rm(partial, { force: true });
    const handle = await open(partial, 'wx', 0o600);
    await handle.truncate(plan.sizeBytes); // sparse: only written clusters take disk space
    await handle.close();
    if (plan.filesystem === 'fat32') await buildFat32(partial, plan, scratch);
    else await buildExfat(partial, plan);
    const entries = verifyAgainstPlan(partial, plan);
    await rename(partial, outPath);
    return {
      path: outPath,
      filesystem: plan.filesystem,
      volumeId: formatVolumeId(plan.volumeId),
      label: plan.label,
      sizeBytes: (await stat(outPath)).size,
      entries,
    };
  } finally {
    await rm(partial, { force: true });
    await rm(scratch, { recursive: true, force: true });
  }
}

async function buildFat32(imagePath: string, plan: DrivePlan, scratch: string): Promise<void> {
  const args = ['-F', '32', '-S', '512', '--mbr=n', '--invariant'];
  if (plan.sizeBytes < 260 * 1024 * 1024) args.push('-s', '1'); // 512-byte clusters keep small images FAT32
  if (plan.label !== '') args.push('-n', plan.label);
  await runToolOrThrow('mkfs.vfat', [...args, imagePath], { env: toolEnvironment() });
  // --invariant fixes every time-based field but also forces volume id 1234-ABCD
  // and ignores -i, so the id is written into the boot sector and its backup here.
  const device = openFileBlockDevice(imagePath, 'read-write');
  try {
    const id = new Uint8Array(4);
    new DataView(id.buffer).setUint32(0, plan.volumeId, true);
    const boot = device.read(0, 512);
    const backupSector = (boot[50] ?? 0) | ((boot[51] ?? 0) << 8); // BPB_BkBootSec
    device.write(67, id); // BS_VolID on FAT32
    if (backupSector !== 0 && backupSector !== 0xffff) device.write(backupSector * 512 + 67, id);
    device.sync();
  } finally {
    device.close();
  }
  const writer = new FatImageWriter(imagePath, {
    scratchDir: scratch,
    epochSeconds: plan.time.getTime() / 1000,
    hostileNames: plan.hostileNames,
  });
  await writer.open();
  try {
    let staged = 0;
    for (const item of plan.items) {
      let source: string | undefined;
      if (item.kind === 'file') {
        source = join(scratch, `content-${staged}`);
        staged += 1;
        const handle = await open(source, 'wx', 0o600);
        try {
          for (const chunk of item.chunks()) await handle.write(chunk);
        } finally {
          await handle.close();
        }
      }
      await writer.add({ names: item.names, kind: item.kind, attributes: item.attributes, ...(source === undefined ? {} : { source }) });
      if (source !== undefined) await rm(source);
    }
  } finally {
    await writer.close();
  }
}

async function buildExfat(imagePath: string, plan: DrivePlan): Promise<void> {
  await runToolOrThrow('mkfs.exfat', [...(plan.label === '' ? [] : ['-L', plan.label]), imagePath], { env: toolEnvironment() });
  await runToolOrThrow('tune.exfat', ['-I', `0x${plan.volumeId.toString(16).padStart(8, '0')}`, imagePath], { env: toolEnvironment() });
  const device = openFileBlockDevice(imagePath, 'read-write');
  try {
    const volume = openExfatVolume(device);
    const folders = new Map<string, ExfatEntry>();
    for (const item of plan.items) {
      const parent = item.names.length > 1 ? folders.get(item.names.slice(0, -1).join('/')) : undefined;
      const name = item.names[item.names.length - 1] ?? '';
      const options = { attributes: item.attributes, time: plan.time, hostileName: plan.hostileNames };
      if (item.kind === 'directory') folders.set(item.names.join('/'), volume.createDirectory(parent, name, options));
      else volume.createFile(parent, name, item.size, item.chunks(), options);
    }
    device.sync();
  } finally {
    device.close();
  }
}

/** Reads the built image back and checks names, kinds, sizes, attributes and bytes against the plan. */
function verifyAgainstPlan(imagePath: string, plan: DrivePlan): number {
  const device = openFileBlockDevice(imagePath, 'read-only');
  try {
    const volume: VolumeReader = plan.filesystem === 'fat32' ? openFatVolume(device) : openExfatVolume(device);
    const entries = volume.walk({ maxEntries: plan.items.length + 1 });
    const found = new Map<string, VolumeEntry>(entries.map((entry) => [entryPath(entry), entry]));
    const problems: string[] = [];
    for (const item of plan.items) {
      const path = item.names.join('/');
      const entry = found.get(path);
      found.delete(path);
      if (entry === undefined) {
        problems.push(`${JSON.stringify(path)} is missing`);
        continue;
      }
      if (entry.kind !== item.kind || entry.size !== item.size) problems.push(`${JSON.stringify(path)} is a ${entry.kind} of ${entry.size} bytes`);
      for (const [key, wanted] of Object.entries(item.attributes) as Array<[keyof FileAttributes, boolean]>) {
        if (entry.attributes[key] !== wanted) problems.push(`${JSON.stringify(path)}: ${key} is ${entry.attributes[key]}`);
      }
      if (item.kind === 'file' && digest(volume.fileChunks(entry)) !== digest(item.chunks())) problems.push(`${JSON.stringify(path)}: content differs`);
    }
    for (const extra of found.keys()) problems.push(`unexpected ${JSON.stringify(extra)}`);
    if (problems.length > 0) {
      throw new MediaError('MEDIA_TOOL_FAILED', `the built ${plan.filesystem} image does not match its spec: ${problems.slice(0, 5).join('; ')}`);
    }
    return entries.length;
  } finally {
    device.close();
  }
}

function digest(chunks: Iterable<Uint8Array>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}
