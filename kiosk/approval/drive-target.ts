/**
 * Where a scan reads and where its manifest goes: a mounted drive (a folder)
 * or a filesystem image. The drive is read through `root` only; it is written
 * only through `writeManifest`/`removeManifest` (on a real kiosk the mount is
 * remounted read-write just for that: docs/operations.md).
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { escapeForDisplay, MANIFEST_PATH, PortcullisError, RECEIPT_PATH, type MediaIdentity } from '../../manifest/index.ts';
import { readVolumeIdentity } from '../media/identity.ts';
import { openImageReadOnly, readFileFromImage, removeFromImage, writeFilesToImage } from '../media/image-access.ts';

export type DriveErrorCode = 'MEDIA_FULL' | 'MANIFEST_WRITE_FAILED' | 'DRIVE_UNREADABLE';
export class DriveError extends PortcullisError<DriveErrorCode> {}

export interface UsbIdentity {
  readonly vendorId: string; // 4 lowercase hex digits
  readonly productId: string;
  readonly serial: string | null;
}

export interface DriveTarget {
  /** Folder the scan walks: read-only in spirit (mount ro, or an extraction). */
  readonly root: string;
  readonly media: MediaIdentity;
  /** Entries on the volume the scan cannot see under `root` as themselves: blocked as unsafe names. */
  readonly unseen: ReadonlyArray<{ display: string; detail: string }>;
  readonly description: string;
  /** Removes an old manifest and receipt; true when something was there. */
  removeManifest(): Promise<boolean>;
  /** Writes the files all-or-nothing, synced to the device. */
  writeManifest(files: ReadonlyArray<{ path: string; content: Uint8Array }>): Promise<void>;
  readBack(path: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

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

/** Switches a read-only mount to read-write and back (the station's remount). */
export interface WritableSwitch {
  makeWritable(): Promise<void>;
  makeReadOnly(): Promise<void>;
}

async function whileWritable<T>(writable: WritableSwitch | null, work: () => Promise<T>): Promise<T> {
  if (!writable) return work();
  await writable.makeWritable();
  try {
    return await work();
  } finally {
    await writable.makeReadOnly();
  }
}

export interface FolderTargetOptions {
  readonly usb?: UsbIdentity | null;
  /** The mount is read-only: made writable only around removing and writing the manifest. */
  readonly writable?: WritableSwitch | null;
  /** The block device behind the mount, to read the volume's real identity from. */
  readonly device?: string | null;
}

/** A mounted drive, or a folder standing for one. */
export async function openFolderTarget(path: string, options: FolderTargetOptions = {}): Promise<DriveTarget> {
  const usb = options.usb ?? null;
  const writable = options.writable ?? null;
  const fs = await statfs(path).catch((cause: unknown) => {
    throw new DriveError('DRIVE_UNREADABLE', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  });
  const identity = options.device ? await readVolumeIdentity(options.device) : null;
  const media: MediaIdentity = identity
    ? { filesystem: identity.filesystem === 'exfat' ? 'exfat' : 'vfat', volumeId: identity.volumeId, label: safeText(identity.label, 64), capacity: identity.capacity, usb: usbPart(usb) }
    : { filesystem: 'dir', volumeId: null, label: safeText(basename(path), 64), capacity: fs.blocks * fs.bsize, usb: usbPart(usb) };
  const target: DriveTarget = {
    root: path,
    media,
    unseen: [],
    description: `folder ${path}`,
    async removeManifest() {
      const present = await Promise.all([MANIFEST_PATH, RECEIPT_PATH].map((rel) => stat(join(path, rel)).then(() => true, () => false)));
      if (!present.includes(true)) return false;
      return whileWritable(writable, async () => {
        for (const rel of [MANIFEST_PATH, RECEIPT_PATH]) await rm(join(path, rel), { force: true });
        return true;
      });
    },
    writeManifest: (files) => whileWritable(writable, () => writeFolderManifest(path, files)),
    async readBack(rel) {
      return readFile(join(path, rel), { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
    },
    async close() {},
  };
  return target;
}

async function writeFolderManifest(path: string, files: ReadonlyArray<{ path: string; content: Uint8Array }>): Promise<void> {
  const written: string[] = [];
  try {
    await mkdir(join(path, '.portcullis'), { recursive: true });
    for (const f of files) {
      const target = join(path, f.path);
      const temp = `${target}.partial`;
      const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
      try {
        await handle.writeFile(f.content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      written.push(target);
    }
    const dir = await open(dirname(join(path, MANIFEST_PATH)), constants.O_RDONLY);
    await dir.sync().finally(() => dir.close());
  } catch (error) {
    for (const f of files) await rm(join(path, `${f.path}.partial`), { force: true });
    for (const w of written) await rm(w, { force: true });
    if (isFull(error)) throw new DriveError('MEDIA_FULL', `${path} has no room for the manifest: nothing approved; free some space and rescan`, { cause: error });
    throw new DriveError('MANIFEST_WRITE_FAILED', `cannot write the manifest to ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** A FAT32 or exFAT image: scanned through a read-only mount or an extraction, written with mtools or exFAT tools. */
export async function openImageTarget(imagePath: string, workDir: string, usb: UsbIdentity | null = null): Promise<DriveTarget> {
  const identity = await readVolumeIdentity(imagePath);
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const opened = await openImageReadOnly(imagePath, workDir);
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
