/**
 * Where drives come from in service mode. A DriveSource lists the drives
 * present now; the watcher (watch.ts) polls it and diffs, so arrival and
 * removal are noticed the same way whatever the source:
 *
 *  - drivelist: the drivelist package (lsblk on Linux; its native addon on
 *    Windows, so only when the agent runs as node + script).
 *  - windows-letters: pure JavaScript for the single executable (which
 *    cannot load native addons): stat D:\ to Z:\ and read each volume's boot
 *    sector every poll, and ask CIM whether it is a removable disk and what
 *    its identity is only when the volume at a letter is new or changed.
 *  - mount-folders: every subfolder of the given folders is a drive (Linux
 *    /media/USER; in tests a temp folder standing for a mount root).
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { lstat, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseBootSector, readWindowsVolume, type BootSectorIdentity, type DriveIdentity, type WindowsVolumeFacts } from './drive-identity.ts';

export interface DriveInfo {
  /** Stable while the drive stays: device and mount point. */
  readonly key: string;
  /** The drive's root folder. */
  readonly mount: string;
  readonly identity: DriveIdentity | null;
}

export interface DriveSource {
  readonly name: string;
  list(): Promise<DriveInfo[]>;
  /** Folders worth watching with chokidar for a prompt poll (mount roots). */
  readonly watchFolders?: readonly string[];
}

export type IdentityReader = (mount: string) => Promise<DriveIdentity | null>;

/** Every real subfolder (not a symlink) of each root is a mounted drive. */
export function mountFolderSource(roots: readonly string[], identify: IdentityReader = () => Promise.resolve(null)): DriveSource {
  return {
    name: 'mount-folders',
    watchFolders: roots,
    async list() {
      const drives: DriveInfo[] = [];
      for (const root of roots) {
        let names: string[];
        try {
          names = await readdir(root);
        } catch {
          continue; // the mount root may not exist until the first drive is mounted
        }
        for (const name of names.sort()) {
          const mount = join(root, name);
          try {
            if (!(await lstat(mount)).isDirectory()) continue;
          } catch {
            continue;
          }
          drives.push({ key: mount, mount, identity: await identify(mount) });
        }
      }
      return drives;
    },
  };
}

interface DrivelistDrive {
  device: string;
  isRemovable: boolean;
  isSystem: boolean;
  mountpoints: Array<{ path: string }>;
}

/** The drivelist package: removable, non-system drives with a mount point. */
export function drivelistSource(identify: IdentityReader): DriveSource {
  return {
    name: 'drivelist',
    async list() {
      const { list } = (await import('drivelist')) as { list: () => Promise<DrivelistDrive[]> };
      const drives: DriveInfo[] = [];
      for (const d of await list()) {
        if (!d.isRemovable || d.isSystem) continue;
        for (const mp of d.mountpoints) drives.push({ key: `${d.device}|${mp.path}`, mount: mp.path, identity: await identify(mp.path) });
      }
      return drives;
    },
  };
}

/**
 * What can be read about the volume at a drive letter without starting a
 * process, to tell one stick from the next one inserted at the same letter.
 */
export interface VolumeStamp {
  /** The volume serial as stat() reports it (libuv on Windows: st_dev is the volume serial number); null when stat failed. */
  readonly serial: string | null;
  /** Filesystem, volume id and size from the boot sector; null when it could not be read or parsed. */
  readonly boot: BootSectorIdentity | null;
}

/** Probes for the windows-letters source; replaced in tests. */
export interface LetterProbe {
  /** Null when nothing is mounted at the letter; called every poll, so it must be cheap. */
  stamp(letter: string): Promise<VolumeStamp | null>;
  /** The full facts (CIM through PowerShell): only when a letter's volume is new or may have changed. */
  describe(letter: string): Promise<WindowsVolumeFacts | null>;
}

/**
 * Whether two stamps of one letter show the same volume. Fields are compared
 * only when both stamps have them (a boot sector unreadable once is no evidence
 * of a swap). Two stamps with nothing at all (stat and the boot sector both
 * failed) count as the same: nothing could tell them apart, and a drive that
 * stays unreadable must not be re-imported every poll. Any other pair with no
 * field in common counts as another volume.
 */
export function sameVolume(a: VolumeStamp, b: VolumeStamp): boolean {
  let compared = false;
  if (a.serial !== null && b.serial !== null) {
    if (a.serial !== b.serial) return false;
    compared = true;
  }
  if (a.boot !== null && b.boot !== null) {
    if (a.boot.filesystem !== b.boot.filesystem || a.boot.volumeId !== b.boot.volumeId || a.boot.capacity !== b.boot.capacity) return false;
    compared = true;
  }
  const empty = (s: VolumeStamp): boolean => s.serial === null && s.boot === null;
  return compared || (empty(a) && empty(b));
}

/** The first sector of a volume opened raw (\\.\E:); null when it cannot be read. */
async function readBootSector(letter: string): Promise<BootSectorIdentity | null> {
  let handle;
  try {
    handle = await open(`\\\\.\\${letter}:`, 'r');
  } catch {
    return null;
  }
  try {
    const sector = Buffer.alloc(4096); // raw volume reads must be whole sectors
    const { bytesRead } = await handle.read(sector, 0, sector.length, 0);
    return parseBootSector(sector.subarray(0, Math.min(bytesRead, 512)));
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

export const windowsProbe: LetterProbe = {
  async stamp(letter) {
    let serial: string | null = null;
    try {
      serial = (await stat(`${letter}:\\`, { bigint: true })).dev.toString(16);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      // Present but unreadable (e.g. the storage policy also blocks this service): report it and
      // go on, so the drive is refused with a logged reason instead of being silently ignored.
      process.stderr.write(`portcullis-agent: drive ${letter}: cannot be read (${code ?? String(error)})\n`);
    }
    return { serial, boot: await readBootSector(letter) };
  },
  describe: readWindowsVolume,
};

const LETTERS = 'DEFGHIJKLMNOPQRSTUVWXYZ'.split('');

interface LetterEntry {
  stamp: VolumeStamp;
  /** Null until described (and after a failed lookup). */
  facts: WindowsVolumeFacts | null;
  /** Grows when another volume is seen at the letter, so the watcher sees a removal and an arrival. */
  generation: number;
}

/**
 * Drive letters D: to Z: that CIM calls removable. Each poll stamps every
 * letter (stat and one boot-sector read, no process); CIM is asked only about
 * a letter whose volume is new or changed. A stick swapped for another between
 * two polls, the letter never free in between, gets a new key (the watcher
 * sees a removal and an arrival) and is described afresh: it never inherits
 * the facts, volume id included, of the stick before.
 */
export function windowsLetterSource(probe: LetterProbe = windowsProbe): DriveSource {
  const known = new Map<string, LetterEntry>();
  return {
    name: 'windows-letters',
    async list() {
      const drives: DriveInfo[] = [];
      for (const letter of LETTERS) {
        const stamp = await probe.stamp(letter);
        if (stamp === null) {
          known.delete(letter);
          continue;
        }
        let entry = known.get(letter);
        if (entry !== undefined && sameVolume(entry.stamp, stamp)) {
          // Keep what either reading knew, so a boot sector unreadable once does not erase the evidence.
          entry.stamp = { serial: stamp.serial ?? entry.stamp.serial, boot: stamp.boot ?? entry.stamp.boot };
        } else {
          entry = { stamp, facts: null, generation: (entry?.generation ?? 0) + 1 };
          known.set(letter, entry);
        }
        // A failed lookup (slow WMI at boot) is not remembered: it is asked again next poll.
        entry.facts ??= await probe.describe(letter);
        const facts = entry.facts;
        if (!facts?.removable) continue;
        drives.push({ key: `${letter}:${entry.generation}:${facts.identity.volumeId ?? ''}`, mount: `${letter}:\\`, identity: facts.identity });
      }
      return drives;
    },
  };
}

const run = promisify(execFile);

/**
 * Linux: the identity of a mounted drive from findmnt and, when readable,
 * the boot sector of its device. Null unless `mount` is itself a mount point.
 */
export async function linuxIdentity(mount: string): Promise<DriveIdentity | null> {
  let fs: { source?: string; fstype?: string; label?: string | null; uuid?: string | null } | undefined;
  try {
    const { stdout } = await run('findmnt', ['-J', '-o', 'SOURCE,FSTYPE,LABEL,UUID', '--mountpoint', mount], { timeout: 10_000 });
    fs = (JSON.parse(stdout) as { filesystems?: (typeof fs)[] }).filesystems?.[0];
  } catch {
    return null;
  }
  if (!fs?.source) return null;
  let boot = null;
  try {
    const fd = openSync(fs.source, 'r');
    try {
      const sector = Buffer.alloc(512);
      readSync(fd, sector, 0, 512, 0);
      boot = parseBootSector(sector);
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable boot sector: fall back to what the platform reports
  }
  return {
    filesystem: boot?.filesystem ?? fs.fstype ?? null,
    volumeId: boot?.volumeId ?? fs.uuid ?? null,
    label: fs.label ?? null,
    capacity: boot?.capacity ?? null,
  };
}
