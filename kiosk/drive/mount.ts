/**
 * Mounting on a real kiosk (docs/station.md): each partition read-only with
 * nosuid, nodev, noexec, under a folder the kiosk owns, remounted read-write
 * only while the manifest is written, then unmounted. The argument lists are
 * pure and tested; the adapter runs util-linux `mount`/`umount` (root, or a
 * polkit/sudo rule on the kiosk image). Not run here: no block devices.
 */
import { execFile } from 'node:child_process';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StationError } from '../core/device.ts';
import type { MountAdapter } from '../core/ports.ts';

export type { MountAdapter, MountedVolume } from '../core/ports.ts';

/** Options every kiosk mount carries: the drive is hostile. */
export const MOUNT_FLAGS = ['nosuid', 'nodev', 'noexec', 'noatime'] as const;

export interface MountIdentity {
  readonly uid: number; // owner of every file on the mount (the kiosk user)
  readonly gid: number;
}

/** `mount` arguments for a read-only kiosk mount of a FAT or exFAT partition. */
export function mountArgs(device: string, target: string, filesystem: 'vfat' | 'exfat', who: MountIdentity): string[] {
  const options = ['ro', ...MOUNT_FLAGS, `uid=${who.uid}`, `gid=${who.gid}`, 'fmask=0177', 'dmask=0077'];
  // vfat: show long names as stored, decode them as UTF-8 (the walk re-checks every name).
  if (filesystem === 'vfat') options.push('shortname=mixed', 'utf8');
  return ['-t', filesystem, '-o', options.join(','), '--', device, target];
}

/** `mount` arguments to switch a kiosk mount between read-only and read-write; the hostile-drive flags stay. */
export function remountArgs(target: string, writable: boolean): string[] {
  return ['-o', ['remount', writable ? 'rw' : 'ro', ...MOUNT_FLAGS].join(','), '--', target];
}

/** The kiosk-owned folder a partition is mounted on: a name made of safe characters only. */
export function mountPointFor(baseDir: string, device: string): string {
  return join(baseDir, device.replace(/^\/dev\//, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'drive');
}

export type RunTool = (command: string, args: readonly string[]) => Promise<void>;

export const runTool: RunTool = (command, args) => new Promise((resolve, reject) => {
  execFile(command, [...args], { timeout: 30_000 }, (error, _stdout, stderr) => {
    if (error) reject(new StationError('MOUNT_FAILED', `${command} ${args.join(' ')}: ${String(stderr).trim() || error.message}`, { cause: error }));
    else resolve();
  });
});

export function createMountAdapter(options: { baseDir: string; who: MountIdentity; run?: RunTool }): MountAdapter {
  const run = options.run ?? runTool;
  return {
    async mount(device, filesystem) {
      await mkdir(options.baseDir, { recursive: true, mode: 0o700 });
      const path = mountPointFor(options.baseDir, device);
      await mkdir(path, { mode: 0o700 });
      try {
        await run('mount', mountArgs(device, path, filesystem, options.who));
      } catch (error) {
        await rmdir(path).catch(() => undefined);
        throw error;
      }
      return {
        path,
        makeWritable: () => run('mount', remountArgs(path, true)),
        makeReadOnly: () => run('mount', remountArgs(path, false)),
        async unmount() {
          // A pulled drive is already gone: lazy unmount detaches what is left.
          await run('umount', ['--lazy', '--', path]);
          await rmdir(path).catch(() => undefined);
        },
      };
    },
  };
}
