/**
 * Where drives come from in service mode. A DriveSource lists the drives
 * present now; the watcher (watch.ts) polls it and diffs, so arrival and
 * removal are noticed the same way whatever the source:
 *
 *  - drivelist: the drivelist package (lsblk on Linux; its native addon on
 *    Windows, so only when the agent runs as node + script).
 *  - windows-letters: pure JavaScript for the single executable (which
 *    cannot load native addons): stat D:\ to Z:\ each poll, and ask CIM once
 *    per new letter whether it is a removable disk and what its identity is.
 *  - mount-folders: every subfolder of the given folders is a drive (Linux
 *    /media/USER; in tests a temp folder standing for a mount root).
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseBootSector, readWindowsVolume, type DriveIdentity, type WindowsVolumeFacts } from './drive-identity.ts';

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

/** Probes for the windows-letters source; replaced in tests. */
export interface LetterProbe {
  exists(letter: string): Promise<boolean>;
  describe(letter: string): Promise<WindowsVolumeFacts | null>;
}

export const windowsProbe: LetterProbe = {
  async exists(letter) {
    try {
      await stat(`${letter}:\\`);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      // Present but unreadable (e.g. the storage policy also blocks this service): report it and
      // go on, so the drive is refused with a logged reason instead of being silently ignored.
      process.stderr.write(`portcullis-agent: drive ${letter}: cannot be read (${code ?? String(error)})\n`);
      return true;
    }
  },
  describe: readWindowsVolume,
};

const LETTERS = 'DEFGHIJKLMNOPQRSTUVWXYZ'.split('');

/** Drive letters D: to Z: that CIM calls removable; each new letter is described once. */
export function windowsLetterSource(probe: LetterProbe = windowsProbe): DriveSource {
  const known = new Map<string, WindowsVolumeFacts | null>();
  return {
    name: 'windows-letters',
    async list() {
      const drives: DriveInfo[] = [];
      for (const letter of LETTERS) {
        if (!(await probe.exists(letter))) {
          known.delete(letter);
          continue;
        }
        // A failed lookup (slow WMI at boot) is not remembered: it is asked again next poll.
        if (!known.has(letter) || known.get(letter) === null) known.set(letter, await probe.describe(letter));
        const facts = known.get(letter);
        if (!facts?.removable) continue;
        drives.push({ key: `${letter}:${facts.identity.volumeId ?? ''}`, mount: `${letter}:\\`, identity: facts.identity });
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
