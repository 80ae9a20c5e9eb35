/**
 * The kiosk's access to a drive image: open it read-only for scanning, write
 * the manifest and receipt onto it, read them back, remove them.
 *
 * Scanning. The volume is parsed in a sandboxed child process, never here
 * (volume-sandbox.ts runs volume-child.ts): it reads the identity and the
 * listing, and extracts the files when the volume is not mounted. exFAT is
 * mounted with exfat-fuse through a read-only loop device
 * (ro,nosuid,nodev,noexec, checked) after the sandbox has listed it. FAT is
 * extracted: fusefat shows only 8.3 names, the kernel here has no vfat
 * driver, and mtools' own extraction turns characters outside the BMP into
 * "_" and "/" into "\", so two different names can land on one host name.
 * Extraction therefore uses this project's FAT reader, which keeps names
 * exactly. An exFAT image whose mount fails is extracted the same way, and
 * the reason is recorded. Either way the volume's own listing comes along:
 * hidden/system/read-only attributes (which neither a FUSE mount nor a host
 * folder shows) and the entries whose names the host folder cannot hold,
 * which the kiosk must block rather than miss.
 *
 * Writing (writeFilesToImage, removeFromImage, readFileFromImage) still reads
 * the volume's structures in this process: see README.md.
 */
import { mkdir, mkdtemp, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sniffFilesystem } from '../core/volume-check.ts';
import { openFileBlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import { exfatFuseUnavailable, mountExfatFuse, type FuseMount } from './exfat-fuse.ts';
import { exfatNameProblem, openExfatVolume, type ExfatEntry, type ExfatVolume } from './exfat-volume.ts';
import { fatCaseKey, fatNameProblem, FatImageWriter } from './fat-mtools.ts';
import { classifyEntries, type UnrepresentableEntry } from './host-names.ts';
import type { VolumeIdentity } from './identity.ts';
import { openVolume } from './open-volume.ts';
import type { ChildRequest, VolumeListing } from './volume-listing.ts';
import { readVolumeInSandbox, type VolumeSandboxOptions } from './volume-sandbox.ts';
import {
  DEFAULT_WALK_LIMITS,
  entryPath,
  readWholeFile,
  type FileAttributes,
  type FilesystemKind,
  type VolumeEntry,
  type VolumeReader,
  type WalkLimits,
} from './volume.ts';

export { classifyEntries, hostNameProblem, type UnrepresentableEntry, type UnrepresentableReason } from './host-names.ts';
export { openVolume } from './open-volume.ts';

export type AccessMethod = 'fuse-mount' | 'extract';

export interface OpenedImage {
  /** A folder to walk: the mount point or the extraction folder. */
  readonly root: string;
  readonly method: AccessMethod;
  readonly filesystem: FilesystemKind;
  /** Filesystem, volume id, label and capacity, read by the sandboxed reader. */
  readonly identity: VolumeIdentity;
  /** Why the image is not mounted (method 'extract'); null when it is. */
  readonly fallbackReason: string | null;
  /** Every entry on the volume, as the volume's own reader lists it. */
  readonly entries: readonly VolumeEntry[];
  /** Attributes by relative POSIX path, names exactly as on the volume. */
  readonly attributes: ReadonlyMap<string, FileAttributes>;
  /** Entries that are on the volume but not under `root` as themselves: block them. */
  readonly unrepresentable: readonly UnrepresentableEntry[];
  /**
   * Groups of paths that differ only in case. FAT and exFAT look names up
   * case-insensitively, so Windows (and exfat-fuse) open the first of a group
   * whichever name is asked for. Such volumes are extracted, not mounted, so
   * each name under `root` holds its own bytes. Block them.
   */
  readonly caseClashes: readonly (readonly string[])[];
  /** Unmounts or deletes the extraction; safe to call twice. */
  close(): Promise<void>;
}

export interface ExtractLimits extends WalkLimits {
  maxTotalBytes: number; // bytes extracted in all
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = {
  ...DEFAULT_WALK_LIMITS,
  maxTotalBytes: 8 * 1024 * 1024 * 1024,
};

export interface OpenOptions {
  /** 'mount' (default) tries exfat-fuse for exFAT; 'extract' skips it. FAT is always extracted. */
  prefer?: 'mount' | 'extract';
  limits?: Partial<ExtractLimits>;
  /** Stops the sandboxed reader (killed) and the open; it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** How the sandboxed reader runs (volume-sandbox.ts); tests replace the child. */
  sandbox?: VolumeSandboxOptions;
}

const FAT_NOT_MOUNTED =
  'FAT is extracted, not mounted: fusefat shows only 8.3 names, this kernel has no vfat driver, and mtools extraction alters names outside the BMP';

/** Groups of entry paths that are equal when compared case-insensitively, in volume order. */
export function findCaseClashes(entries: readonly VolumeEntry[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const entry of entries) {
    const key = entry.names.map(fatCaseKey).join('/');
    const group = groups.get(key) ?? [];
    group.push(entryPath(entry));
    groups.set(key, group);
  }
  return [...groups.values()].filter((group) => group.length > 1);
}

/** In-process listing, for the write path only (the drive was listed in the sandbox first). */
function listVolume(imagePath: string, limits: WalkLimits): { filesystem: FilesystemKind; entries: VolumeEntry[] } {
  const device = openFileBlockDevice(imagePath, 'read-only');
  try {
    const volume = openVolume(device);
    return { filesystem: volume.filesystem, entries: volume.walk(limits) };
  } finally {
    device.close();
  }
}

/** Which reader the boot sector asks for: two magic numbers, the only bytes of the image this process looks at. */
function sniffImage(imagePath: string): 'fat' | 'exfat' {
  const device = openFileBlockDevice(imagePath, 'read-only');
  try {
    const family = sniffFilesystem(device.read(0, Math.min(512, device.size)));
    if (family === null) throw new MediaError('MEDIA_UNRECOGNIZED', 'neither a FAT nor an exFAT boot sector at offset 0');
    return family;
  } finally {
    device.close();
  }
}

/** What the kiosk derives from the listing itself, never taking the child's word for it. */
function describe(listing: VolumeListing, family: 'fat' | 'exfat') {
  const { identity, entries } = listing;
  if ((identity.filesystem === 'exfat') !== (family === 'exfat')) {
    throw new MediaError('MEDIA_TOOL_FAILED', `the sandboxed volume reader says ${identity.filesystem}, the boot sector says ${family}: the drive is refused`);
  }
  return {
    identity,
    filesystem: identity.filesystem,
    entries,
    attributes: new Map(entries.map((entry) => [entryPath(entry), entry.attributes] as const)),
    unrepresentable: classifyEntries(entries).unrepresentable,
    caseClashes: findCaseClashes(entries),
  };
}

/**
 * Opens an image for scanning, read-only. `workDir` is a kiosk-owned folder;
 * the mount point or extraction folder is made inside it and removed by close().
 */
export async function openImageReadOnly(imagePath: string, workDir: string, options: OpenOptions = {}): Promise<OpenedImage> {
  const limits: ExtractLimits = { ...DEFAULT_EXTRACT_LIMITS, ...options.limits };
  const sandbox = { ...options.sandbox, ...(options.signal === undefined ? {} : { signal: options.signal }) };
  const request = (mode: 'list' | 'extract'): ChildRequest => ({ mode, limits: { maxEntries: limits.maxEntries, maxDepth: limits.maxDepth, maxTotalBytes: limits.maxTotalBytes } });
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const family = sniffImage(imagePath);

  let fallbackReason: string = family === 'fat' ? FAT_NOT_MOUNTED : 'extraction was asked for';
  if (family === 'exfat' && options.prefer !== 'extract') {
    const base = describe(await readVolumeInSandbox(imagePath, request('list'), null, sandbox), family);
    const { unrepresentable, caseClashes } = base;
    if (unrepresentable.length > 0) {
      // exfat-fuse 1.3 aborts the whole mount (ECONNABORTED) on a name with an unpaired surrogate.
      fallbackReason = `${unrepresentable.length} name(s) a mount cannot present, e.g. ${unrepresentable[0]?.reason ?? ''}`;
    } else if (caseClashes.length > 0) {
      // exfat-fuse opens the first twin whichever name is asked for: the scan would miss the others' bytes.
      fallbackReason = `${caseClashes.length} group(s) of names that differ only in case; a mount would show one file's bytes under all of them`;
    } else fallbackReason = (await exfatFuseUnavailable()) ?? '';
    if (fallbackReason === '') {
      const mountPoint = await mkdtemp(join(workDir, 'mount-'));
      let mount: FuseMount | null = null;
      try {
        mount = await mountExfatFuse(imagePath, mountPoint, 'read-only');
      } catch (error) {
        await rmdir(mountPoint).catch(() => undefined);
        fallbackReason = `exfat-fuse mount failed: ${(error as Error).message}`;
      }
      if (mount !== null) {
        const mounted = mount;
        let closed = false;
        return {
          ...base,
          root: mountPoint,
          method: 'fuse-mount',
          fallbackReason: null,
          close: async () => {
            if (closed) return;
            closed = true;
            await mounted.unmount();
            await rmdir(mountPoint);
          },
        };
      }
    }
  }

  // The child writes into a fresh folder of the kiosk's, bound as its /out; on any failure the folder goes.
  const root = await mkdtemp(join(workDir, 'extract-'));
  let base: ReturnType<typeof describe>;
  try {
    base = describe(await readVolumeInSandbox(imagePath, request('extract'), root, sandbox), family);
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  let closed = false;
  return {
    ...base,
    root,
    method: 'extract',
    fallbackReason,
    close: async () => {
      if (closed) return;
      closed = true;
      await rm(root, { recursive: true, force: true });
    },
  };
}

// ---- writing the manifest and receipt ----

export interface FileToWrite {
  /** Relative POSIX path, e.g. ".portcullis/manifest.dsse.json"; a leading "/" is allowed. */
  path: string;
  content: Uint8Array | string;
  hidden?: boolean;
  system?: boolean;
  readonly?: boolean;
}

export type WriteMethod = 'mtools' | 'fuse-mount' | 'direct';

export interface WriteOptions {
  /** exFAT: 'auto' (default) uses a read-write exfat-fuse mount and falls back to the built-in writer. */
  exfat?: 'auto' | 'fuse-mount' | 'direct';
  /** Folders created by a write are hidden when true (the well-known manifest folder). */
  hideNewFolders?: boolean;
  /** Scratch space for mtools and mount points. Default: the OS temp folder. */
  scratchDir?: string;
  /** Timestamp for entries written through mtools or the built-in exFAT writer (exfat-fuse uses its clock). Default: now. */
  time?: Date;
  /**
   * Refuse with MEDIA_FULL before writing anything when the free space cannot
   * hold the files (default true). Off, a write that runs out of room midway is
   * rolled back instead; tests turn it off to prove that path.
   */
  checkSpaceFirst?: boolean;
}

export interface WriteResult {
  readonly method: WriteMethod;
  /** Why the preferred method was not used, or null. */
  readonly fallbackReason: string | null;
}

interface PreparedFile {
  readonly names: string[];
  readonly bytes: Uint8Array;
  readonly attributes: Partial<FileAttributes>;
}

function splitWritePath(path: string, filesystem: FilesystemKind): string[] {
  const names = (path.startsWith('/') ? path.slice(1) : path).split('/');
  if (names.length === 0 || names.some((name) => name === '')) {
    throw new MediaError('MEDIA_SPEC_INVALID', `path ${JSON.stringify(path)} has an empty segment`);
  }
  for (const name of names) {
    const problem = filesystem === 'exfat' ? exfatNameProblem(name) : fatNameProblem(name);
    if (problem !== null) throw new MediaError('MEDIA_NAME_UNSUPPORTED', `path ${JSON.stringify(path)}: ${problem}`);
  }
  return names;
}

function prepare(files: readonly FileToWrite[], filesystem: FilesystemKind): PreparedFile[] {
  const seen = new Set<string>();
  return files.map((file) => {
    const names = splitWritePath(file.path, filesystem);
    const key = names.map(fatCaseKey).join('/');
    if (seen.has(key)) throw new MediaError('MEDIA_SPEC_INVALID', `path ${JSON.stringify(file.path)} is given twice`);
    seen.add(key);
    const attributes: { -readonly [K in keyof FileAttributes]?: boolean } = {};
    if (file.hidden !== undefined) attributes.hidden = file.hidden;
    if (file.system !== undefined) attributes.system = file.system;
    if (file.readonly !== undefined) attributes.readonly = file.readonly;
    const bytes = typeof file.content === 'string' ? new TextEncoder().encode(file.content) : file.content;
    return { names, bytes, attributes };
  });
}

/** Finds an entry by path: the exact name first, else the one case-insensitive match. */
function findEntry<E extends VolumeEntry>(entries: readonly E[], names: readonly string[], filesystem: FilesystemKind): E | undefined {
  const path = names.join('/');
  const exact = entries.find((entry) => entryPath(entry) === path);
  if (exact !== undefined) return exact;
  const key = names.map(fatCaseKey).join('/');
  const matches = entries.filter((entry) => entry.names.map(fatCaseKey).join('/') === key);
  if (matches.length > 1) {
    throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${JSON.stringify(path)} matches ${matches.length} entries on this ${filesystem} volume that differ only in case`);
  }
  return matches[0];
}

/**
 * Space the files need beyond what is free: data clusters, one cluster per new
 * folder and one per touched folder that may have to grow; clusters of files
 * being replaced count as reclaimable. Conservative: it may refuse a write
 * that would just have fit, never the other way round.
 */
function checkSpace(volume: VolumeReader, entries: readonly VolumeEntry[], files: readonly PreparedFile[], filesystem: FilesystemKind): void {
  const cluster = volume.clusterSize;
  const clusters = (bytes: number): number => Math.ceil(bytes / cluster);
  let needed = 0;
  let reclaim = 0;
  const newFolders = new Set<string>();
  const touched = new Set<string>();
  for (const file of files) {
    needed += clusters(file.bytes.length);
    for (let depth = 1; depth < file.names.length; depth += 1) {
      const prefix = file.names.slice(0, depth);
      if (findEntry(entries, prefix, filesystem) === undefined) newFolders.add(prefix.map(fatCaseKey).join('/'));
    }
    touched.add(file.names.slice(0, -1).map(fatCaseKey).join('/'));
    const existing = findEntry(entries, file.names, filesystem);
    if (existing?.kind === 'file') reclaim += clusters(existing.size);
  }
  needed += newFolders.size + touched.size;
  const free = volume.freeBytes() / cluster + reclaim;
  if (needed > free) {
    throw new MediaError(
      'MEDIA_FULL',
      `the drive has ${free * cluster} bytes free, writing ${files.map((f) => f.names.join('/')).join(', ')} needs up to ${needed * cluster}; nothing was written`,
    );
  }
}

/**
 * Writes files onto the image (mtools for FAT; exfat-fuse read-write or the
 * built-in writer for exFAT). All or nothing: MEDIA_FULL or any other failure
 * leaves none of the new files or folders behind (a file being replaced is
 * gone, as its new version could not be written).
 */
export async function writeFilesToImage(imagePath: string, files: readonly FileToWrite[], options: WriteOptions = {}): Promise<WriteResult> {
  const scratchDir = options.scratchDir ?? tmpdir();
  const time = options.time ?? new Date();
  const { filesystem, entries } = listVolume(imagePath, DEFAULT_WALK_LIMITS);
  const prepared = prepare(files, filesystem);
  if (options.checkSpaceFirst !== false) {
    const device = openFileBlockDevice(imagePath, 'read-only');
    try {
      checkSpace(openVolume(device), entries, prepared, filesystem);
    } finally {
      device.close();
    }
  }
  if (filesystem !== 'exfat') {
    await writeFatFiles(imagePath, prepared, scratchDir, time, options.hideNewFolders === true);
    return { method: 'mtools', fallbackReason: null };
  }
  const want = options.exfat ?? 'auto';
  let fallbackReason: string | null = null;
  if (want !== 'direct') {
    const unavailable = await exfatFuseUnavailable();
    if (unavailable === null) {
      const done = await writeExfatThroughFuse(imagePath, prepared, scratchDir, options.hideNewFolders === true);
      if (done === true) return { method: 'fuse-mount', fallbackReason: null };
      fallbackReason = done;
    } else {
      fallbackReason = unavailable;
    }
    if (want === 'fuse-mount') throw new MediaError('MEDIA_TOOL_FAILED', `exfat-fuse cannot be used: ${fallbackReason}`);
  }
  writeExfatDirect(imagePath, prepared, time, options.hideNewFolders === true);
  return { method: 'direct', fallbackReason };
}

async function writeFatFiles(imagePath: string, files: readonly PreparedFile[], scratchDir: string, time: Date, hideNewFolders: boolean): Promise<void> {
  const stage = await mkdtemp(join(scratchDir, 'fat-write-'));
  const writer = new FatImageWriter(imagePath, { scratchDir: stage, epochSeconds: time.getTime() / 1000, replace: true });
  await writer.open();
  const created: string[][] = [];
  try {
    let index = 0;
    for (const file of files) {
      for (let depth = 1; depth < file.names.length; depth += 1) {
        const folder = file.names.slice(0, depth);
        const attributes = hideNewFolders ? { hidden: true } : undefined;
        if (await writer.add({ names: folder, kind: 'directory', ...(attributes === undefined ? {} : { attributes }) })) created.push(folder);
      }
      const source = join(stage, `content-${index}`);
      index += 1;
      await writeFile(source, file.bytes, { flag: 'wx', mode: 0o600 });
      await writer.add({ names: file.names, kind: 'file', source, attributes: file.attributes });
      created.push(file.names);
    }
  } catch (error) {
    // Roll back: newest first, so files go before the folders that hold them.
    for (const names of created.reverse()) await writer.remove(names).catch(() => false);
    throw error;
  } finally {
    await writer.close();
    await rm(stage, { recursive: true, force: true });
  }
}

function writeExfatDirect(imagePath: string, files: readonly PreparedFile[], time: Date, hideNewFolders: boolean): void {
  const device = openFileBlockDevice(imagePath, 'read-write');
  const created: ExfatEntry[] = [];
  let volume: ExfatVolume | null = null;
  try {
    volume = openExfatVolume(device);
    for (const file of files) {
      let folder: ExfatEntry | undefined;
      for (const name of file.names.slice(0, -1)) {
        const found: ExfatEntry | undefined = volume.findChild(folder, name);
        if (found !== undefined && found.kind !== 'directory') {
          throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${JSON.stringify(found.names.join('/'))} is a file, not a folder`);
        }
        folder = found ?? volume.createDirectory(folder, name, { time, attributes: hideNewFolders ? { hidden: true } : {} });
        if (found === undefined) created.push(folder);
      }
      const leaf = file.names[file.names.length - 1] ?? '';
      const existing = volume.findChild(folder, leaf);
      if (existing !== undefined) {
        if (existing.kind === 'directory') throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${JSON.stringify(existing.names.join('/'))} is a folder`);
        volume.remove(existing);
      }
      created.push(volume.createFile(folder, leaf, file.bytes.length, [file.bytes], { time, attributes: file.attributes }));
    }
    device.sync();
  } catch (error) {
    if (volume !== null) {
      for (const entry of created.reverse()) {
        try {
          const current = findByNames(volume, entry.names);
          if (current !== undefined) volume.remove(current);
        } catch {
          // Best effort: the original error is what the caller needs.
        }
      }
      device.sync();
    }
    throw error;
  } finally {
    device.close();
  }
}

function isNoSpace(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOSPC';
}

/** Writes through a read-write exfat-fuse mount; returns true, or why the mount could not be used. */
async function writeExfatThroughFuse(
  imagePath: string,
  files: readonly PreparedFile[],
  scratchDir: string,
  hideNewFolders: boolean,
): Promise<true | string> {
  const mountPoint = await mkdtemp(join(scratchDir, 'exfat-rw-'));
  let mount: FuseMount;
  try {
    mount = await mountExfatFuse(imagePath, mountPoint, 'read-write');
  } catch (error) {
    await rmdir(mountPoint).catch(() => undefined);
    return `exfat-fuse read-write mount failed: ${(error as Error).message}`;
  }
  const createdFolders: string[][] = [];
  const createdFiles: string[][] = [];
  let failure: unknown = null;
  try {
    for (const file of files) {
      for (let depth = 1; depth < file.names.length; depth += 1) {
        const folder = file.names.slice(0, depth);
        try {
          await mkdir(join(mountPoint, ...folder));
          createdFolders.push(folder);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
      }
      // Write beside the target, then rename over it: a failure never leaves a half-written file under the real name.
      const leaf = file.names[file.names.length - 1] ?? '';
      const partialName = `${leaf.slice(0, 200)}.partial-${process.pid}`;
      const partial = join(mountPoint, ...file.names.slice(0, -1), partialName);
      try {
        await writeFile(partial, file.bytes, { flag: 'wx' });
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
      await rename(partial, join(mountPoint, ...file.names));
      createdFiles.push(file.names);
    }
  } catch (error) {
    failure = error;
    for (const names of createdFiles.reverse()) await rm(join(mountPoint, ...names), { force: true }).catch(() => undefined);
    for (const names of createdFolders.reverse()) await rmdir(join(mountPoint, ...names)).catch(() => undefined);
  } finally {
    await mount.unmount();
    await rmdir(mountPoint).catch(() => undefined);
  }
  if (failure !== null) {
    if (isNoSpace(failure)) throw new MediaError('MEDIA_FULL', `${imagePath}: no room on the drive; nothing was left behind`, { cause: failure });
    throw new MediaError('MEDIA_IO', `${imagePath}: writing through exfat-fuse failed: ${(failure as Error).message}`, { cause: failure });
  }
  // FUSE has no call for FAT attributes: set them, and hide new folders, with the built-in writer.
  const wantsAttributes = files.some((file) => Object.keys(file.attributes).length > 0) || (hideNewFolders && createdFolders.length > 0);
  if (wantsAttributes) {
    const device = openFileBlockDevice(imagePath, 'read-write');
    try {
      const volume = openExfatVolume(device);
      if (hideNewFolders) {
        for (const names of createdFolders) {
          const entry = findByNames(volume, names);
          if (entry !== undefined) volume.setAttributes(entry, { hidden: true });
        }
      }
      for (const file of files) {
        const entry = findByNames(volume, file.names);
        if (entry !== undefined && Object.keys(file.attributes).length > 0) volume.setAttributes(entry, file.attributes);
      }
      device.sync();
    } finally {
      device.close();
    }
  }
  return true;
}

function findByNames(volume: ExfatVolume, names: readonly string[]): ExfatEntry | undefined {
  let entry: ExfatEntry | undefined;
  for (const name of names) {
    entry = volume.findChild(entry, name);
    if (entry === undefined) return undefined;
  }
  return entry;
}

/**
 * Reads one file from the image without mounting (manifest re-read and
 * verification). Names match as on the volume: exactly, else case-insensitively.
 */
export async function readFileFromImage(imagePath: string, path: string, options: { maxBytes?: number } = {}): Promise<Uint8Array> {
  await Promise.resolve(); // reads are synchronous underneath; the promise keeps callers free to change that
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024; // bytes
  const device = openFileBlockDevice(imagePath, 'read-only');
  try {
    const volume = openVolume(device);
    const names = (path.startsWith('/') ? path.slice(1) : path).split('/');
    const entry = findEntry(volume.walk(), names, volume.filesystem);
    if (entry === undefined || entry.kind !== 'file') throw new MediaError('MEDIA_NOT_FOUND', `${JSON.stringify(path)} is not a file on the drive`);
    if (entry.size > maxBytes) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${JSON.stringify(path)} has ${entry.size} bytes, more than ${maxBytes}`);
    return readWholeFile(volume, entry);
  } finally {
    device.close();
  }
}

/** Removes a file or folder tree from the image; false when it was not there. */
export async function removeFromImage(imagePath: string, path: string, options: Pick<WriteOptions, 'scratchDir'> = {}): Promise<boolean> {
  const { filesystem } = listVolume(imagePath, DEFAULT_WALK_LIMITS);
  const names = (path.startsWith('/') ? path.slice(1) : path).split('/');
  if (names.some((name) => name === '')) throw new MediaError('MEDIA_SPEC_INVALID', `path ${JSON.stringify(path)} has an empty segment`);
  if (filesystem !== 'exfat') {
    const stage = await mkdtemp(join(options.scratchDir ?? tmpdir(), 'fat-remove-'));
    const writer = new FatImageWriter(imagePath, { scratchDir: stage });
    await writer.open();
    try {
      return await writer.remove(names);
    } finally {
      await writer.close();
      await rm(stage, { recursive: true, force: true });
    }
  }
  const device = openFileBlockDevice(imagePath, 'read-write');
  try {
    const volume = openExfatVolume(device);
    const entry = findByNames(volume, names);
    if (entry === undefined) return false;
    volume.remove(entry);
    device.sync();
    return true;
  } finally {
    device.close();
  }
}
