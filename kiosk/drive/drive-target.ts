/**
 * Where a scan reads and where its manifest goes: a mounted drive (a folder)
 * or a filesystem image. The drive is read through `root` only; it is written
 * only through `writeManifest`/`removeManifest` (on a real kiosk the mount is
 * remounted read-write just for that: docs/operations.md).
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { escapeForDisplay, MANIFEST_PATH, PortcullisError, RECEIPT_PATH, type MediaIdentity } from '../../manifest/index.ts';
import { DriveError, type DriveErrorCode, type DriveTarget, type UsbIdentity, type WritableSwitch } from '../core/ports.ts';
import { openImageReadOnly, readFileFromImage, removeFromImage, writeFilesToImage, type OpenOptions } from './image-access.ts';
import { readVolumeIdentityInSandbox } from './volume-sandbox.ts';

export { DriveError, type DriveErrorCode, type DriveTarget, type UsbIdentity, type WritableSwitch } from '../core/ports.ts';

/** Drive labels and serials are hostile: escaped and bounded before they enter a manifest. */
function safeText(text: string | null, max: number): string | null {
  if (text === null) return null;
  const escaped = escapeForDisplay(text);
  return escaped.length <= max ? escaped : `${escaped.slice(0, max - 3)}...`;
}

function usbPart(usb: UsbIdentity | null): MediaIdentity['usb'] {
  return usb ? { vendorId: usb.vendorId, productId: usb.productId, serial: safeText(usb.serial, 128) } : null;
}

function isFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' || (error instanceof PortcullisError && error.code === 'MEDIA_FULL');
}

/**
 * Runs `work` with the mount writable, then makes it read-only again. A drive
 * that cannot be made read-only after a manifest was written keeps no
 * manifest: `undo` takes it off while the mount is still writable, and the
 * write fails (a manifest on a drive the scan calls rejected must not exist).
 */
async function whileWritable<T>(writable: WritableSwitch | null, work: () => Promise<T>, undo?: () => Promise<unknown>): Promise<T> {
  if (!writable) return work();
  await writable.makeWritable();
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await writable.makeReadOnly().catch(() => undefined); // the work's own error is the one to report
    throw error;
  }
  try {
    await writable.makeReadOnly();
  } catch (cause) {
    const undone = undo ? await undo().then(() => 'the manifest was taken off it again', () => 'the manifest could NOT be taken off it: do not use this drive') : 'nothing was written';
    throw new DriveError('MANIFEST_WRITE_FAILED', `the drive could not be made read-only again (${(cause as Error).message}); ${undone}; nothing approved`, { cause });
  }
  return result;
}

export interface FolderTargetOptions {
  readonly usb?: UsbIdentity | null;
  /** The mount is read-only: made writable only around removing and writing the manifest. */
  readonly writable?: WritableSwitch | null;
  /** The block device behind the mount, to read the volume's real identity from (in the volume reader's sandbox). */
  readonly device?: string | null;
  /** Stops reading the device's identity. */
  readonly signal?: AbortSignal;
}

/** A mounted drive, or a folder standing for one. */
export async function openFolderTarget(path: string, options: FolderTargetOptions = {}): Promise<DriveTarget> {
  const usb = options.usb ?? null;
  const writable = options.writable ?? null;
  const fs = await statfs(path).catch((cause: unknown) => {
    throw new DriveError('DRIVE_UNREADABLE', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  });
  const identity = options.device ? await readVolumeIdentityInSandbox(options.device, options.signal ? { signal: options.signal } : {}) : null;
  const media: MediaIdentity = identity
    ? { filesystem: identity.filesystem === 'exfat' ? 'exfat' : 'vfat', volumeId: identity.volumeId, label: safeText(identity.label, 64), capacity: identity.capacity, usb: usbPart(usb) }
    : { filesystem: 'dir', volumeId: null, label: safeText(basename(path), 64), capacity: fs.blocks * fs.bsize, usb: usbPart(usb) };
  const target: DriveTarget = {
    root: path,
    media,
    unseen: [],
    description: `folder ${path}`,
    async removeManifest() {
      const present = await manifestFilesIn(path);
      if (present.length === 0) return false;
      return whileWritable(writable, async () => {
        await removeFolderManifest(path, present);
        return true;
      });
    },
    writeManifest: (files) => whileWritable(writable, () => writeFolderManifest(path, files), () => removeFolderManifest(path, files.map((f) => f.path))),
    async readBack(rel) {
      const folder = await openManifestFolder(path, false).catch(rethrowAs('MANIFEST_WRITE_FAILED', `cannot read the manifest back from ${path}`));
      if (!folder) throw new DriveError('MANIFEST_WRITE_FAILED', `${path} has no ${MANIFEST_FOLDER} folder to read the manifest back from; nothing approved`);
      try {
        return await readFile(folder.at(manifestFileName(rel)), { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
      } catch (cause) {
        throw new DriveError('MANIFEST_WRITE_FAILED', `cannot read the manifest back from ${path}: ${(cause as Error).message}; nothing approved`, { cause });
      } finally {
        await folder.close();
      }
    },
    async close() {},
  };
  return target;
}

/** The drive's manifest folder, held open: every name in it is reached through the open folder. */
interface ManifestFolder {
  /** A path to NAME inside the folder that was opened, whatever its name on the drive points to now. */
  at(name: string): string;
  sync(): Promise<void>;
  close(): Promise<void>;
}

const MANIFEST_FOLDER = dirname(MANIFEST_PATH); // ".portcullis"

/** A manifest file's name inside the manifest folder; the kiosk writes nothing anywhere else on a drive. */
function manifestFileName(rel: string): string {
  if (dirname(rel) !== MANIFEST_FOLDER || basename(rel).startsWith('.')) throw new Error(`${rel}: the kiosk writes only directly inside ${MANIFEST_FOLDER} (a bug)`);
  return basename(rel);
}

function unsafeFolder(root: string, what: string): DriveError {
  return new DriveError(
    'MANIFEST_FOLDER_UNSAFE',
    `${root}: ${MANIFEST_FOLDER} on the drive is ${what}, not a folder of the drive: the kiosk never writes through it; nothing approved. Remove it from the drive and scan again`,
  );
}

function rethrowAs(code: DriveErrorCode, what: string): (cause: unknown) => never {
  return (cause: unknown) => {
    if (cause instanceof DriveError) throw cause;
    throw new DriveError(code, `${what}: ${(cause as Error).message}; nothing approved`, { cause });
  };
}

/**
 * Opens the drive's `.portcullis` without following a symlink (the drive is hostile):
 * O_NOFOLLOW | O_DIRECTORY refuse a symlink or anything but a folder, and the device
 * number refuses another filesystem mounted there. Names inside are then reached through
 * /proc/self/fd/N (Linux: the folder that was opened), so a `.portcullis` swapped for a
 * symlink after the check cannot redirect a write; without /proc every write fails closed.
 * Null when there is none and `create` is false.
 */
async function openManifestFolder(root: string, create: boolean): Promise<ManifestFolder | null> {
  const rootInfo = await stat(root);
  const path = join(root, MANIFEST_FOLDER);
  const flags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
  const openFolder = async (): Promise<FileHandle | null> => {
    try {
      return await open(path, flags);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw unsafeFolder(root, 'a symbolic link');
      if (code === 'ENOTDIR') throw unsafeFolder(root, 'a file');
      if (code === 'ENOENT') return null;
      throw error;
    }
  };
  let handle = await openFolder();
  if (!handle && create) {
    await mkdir(path, { mode: 0o755 }).catch(ignoreExisting); // made meanwhile: checked by the open below
    handle = await openFolder();
    if (!handle) throw new Error(`${path} is gone right after it was made`);
  }
  if (!handle) return null;
  const opened = handle;
  const info = await opened.stat().catch(async (e: unknown) => {
    await opened.close();
    throw e;
  });
  if (!info.isDirectory() || info.dev !== rootInfo.dev) {
    await opened.close();
    throw unsafeFolder(root, info.isDirectory() ? 'another filesystem mounted on the drive' : 'not a folder');
  }
  return {
    at: (name) => `/proc/self/fd/${opened.fd}/${name}`,
    sync: () => opened.sync(),
    close: () => opened.close(),
  };
}
/** The manifest files present in a real manifest folder (lstat: a symlink counts as present, and is never followed). */
async function manifestFilesIn(root: string): Promise<string[]> {
  let folder: ManifestFolder | null;
  try {
    folder = await openManifestFolder(root, false);
  } catch (error) {
    // Not a folder of the drive: nothing in it is the kiosk's to remove, and writing refuses it.
    if (error instanceof DriveError) return [];
    throw error;
  }
  if (!folder) return [];
  try {
    const present: string[] = [];
    for (const rel of [MANIFEST_PATH, RECEIPT_PATH]) {
      if (await lstat(folder.at(manifestFileName(rel))).then(() => true, () => false)) present.push(rel);
    }
    return present;
  } finally {
    await folder.close();
  }
}

async function removeFolderManifest(root: string, files: readonly string[]): Promise<void> {
  const folder = await openManifestFolder(root, false);
  if (!folder) return;
  try {
    for (const rel of files) await unlink(folder.at(manifestFileName(rel))).catch(ignoreMissing);
    await folder.sync();
  } finally {
    await folder.close();
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}

function ignoreExisting(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
}

async function writeFolderManifest(path: string, files: ReadonlyArray<{ path: string; content: Uint8Array }>): Promise<void> {
  const written: string[] = [];
  let folder: ManifestFolder | null = null;
  const names = files.map((f) => manifestFileName(f.path));
  try {
    folder = await openManifestFolder(path, true);
    if (!folder) throw new Error(`${MANIFEST_FOLDER} could not be created`);
    for (const [i, f] of files.entries()) {
      const target = folder.at(names[i]!);
      const temp = folder.at(`${names[i]!}.partial`);
      // Whatever sits at the temporary name (a planted symlink) goes; the new file must be ours (O_EXCL).
      await unlink(temp).catch(ignoreMissing);
      const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
      try {
        await handle.writeFile(f.content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target); // replaces a symlink at the name, never writes through it
      written.push(target);
    }
    await folder.sync();
  } catch (error) {
    if (folder) {
      for (const name of names) await unlink(folder.at(`${name}.partial`)).catch(() => undefined);
      for (const w of written) await unlink(w).catch(() => undefined);
    }
    if (error instanceof DriveError) throw error;
    if (isFull(error)) throw new DriveError('MEDIA_FULL', `${path} has no room for the manifest: nothing approved; free some space and rescan`, { cause: error });
    throw new DriveError('MANIFEST_WRITE_FAILED', `cannot write the manifest to ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    await folder?.close();
  }
}

/**
 * A FAT32 or exFAT image: identity, listing and (unless exFAT is mounted) the
 * files come from the sandboxed volume reader; written with mtools or exFAT tools.
 */
export async function openImageTarget(imagePath: string, workDir: string, usb: UsbIdentity | null = null, options: Pick<OpenOptions, 'signal' | 'sandbox'> = {}): Promise<DriveTarget> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const opened = await openImageReadOnly(imagePath, workDir, options).catch((cause: unknown) => {
    if (cause instanceof PortcullisError || options.signal?.aborted === true) throw cause;
    throw new DriveError('DRIVE_UNREADABLE', `cannot read the image ${imagePath}: ${(cause as Error).message}: name a FAT32 or exFAT image file`, { cause });
  });
  const identity = opened.identity;
  const unseen = [
    ...opened.unrepresentable.map((u) => ({ display: escapeForDisplay(u.names.join('/')), detail: `a name this kiosk cannot hold as itself (${u.reason})` })),
  ];
  return {
    root: opened.root,
    media: {
      filesystem: identity.filesystem === 'exfat' ? 'exfat' : 'vfat',
      volumeId: identity.volumeId,
      label: safeText(identity.label, 64),
      capacity: identity.capacity,
      usb: usbPart(usb),
    },
    unseen,
    description: `${identity.filesystem} image ${imagePath} (${opened.method}${opened.fallbackReason ? `: ${opened.fallbackReason}` : ''})`,
    async removeManifest() {
      const a = await removeFromImage(imagePath, MANIFEST_PATH, { scratchDir: workDir });
      const b = await removeFromImage(imagePath, RECEIPT_PATH, { scratchDir: workDir });
      return a || b;
    },
    async writeManifest(files) {
      try {
        await writeFilesToImage(imagePath, files.map((f) => ({ path: f.path, content: f.content })), { hideNewFolders: true, scratchDir: workDir });
      } catch (error) {
        if (isFull(error)) throw new DriveError('MEDIA_FULL', `the drive has no room for the manifest: nothing approved; free some space and rescan`, { cause: error });
        throw new DriveError('MANIFEST_WRITE_FAILED', `cannot write the manifest: ${(error as Error).message}`, { cause: error });
      }
    },
    readBack: (rel) => readFileFromImage(imagePath, rel),
    close: () => opened.close(),
  };
}
