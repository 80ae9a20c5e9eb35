/**
 * Mounts an exFAT image with exfat-fuse (the kernel here has no exFAT driver).
 * exfat-fuse run as root insists on a block device ("fuse: mount failed: Block
 * device required" on a plain file), so the image goes through a loop device,
 * read-only for scans. exfat-fuse drops noexec from its options, so a read-only
 * mount is bind-remounted ro,nosuid,nodev,noexec and the flags are checked in
 * /proc/self/mountinfo before anyone may walk it.
 */
import { access, constants, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaError } from './errors.ts';
import { runTool, runToolOrThrow, toolEnvironment } from './run-tool.ts';

export interface FuseMount {
  readonly mountPoint: string;
  readonly loopDevice: string;
  /** Unmounts and waits until exfat-fuse has let go of the loop device (its writes are flushed then). */
  unmount(): Promise<void>;
}

const REQUIRED_READ_ONLY_FLAGS = ['ro', 'nosuid', 'nodev', 'noexec'];
const DETACH_WAIT_MS = 10_000; // ms

/** Why exfat-fuse cannot be used here, or null when it looks usable. */
export async function exfatFuseUnavailable(): Promise<string | null> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is missing or not accessible';
  }
  for (const tool of ['mount.exfat-fuse', 'losetup', 'umount']) {
    const found = await runTool('sh', ['-c', 'command -v "$0"', tool]).catch(() => null);
    if (found?.exitCode !== 0) return `${tool} is not installed`;
  }
  return null;
}

/**
 * Mounts and unmounts a scratch 3 MiB exFAT image: null when that works, else
 * why not. Tests use it to know which path they are checking; the kiosk can
 * run it at start-up as a self-check.
 */
export async function probeExfatFuse(scratchDir: string): Promise<string | null> {
  const missing = await exfatFuseUnavailable();
  if (missing !== null) return missing;
  const dir = await mkdtemp(join(scratchDir, 'exfat-probe-'));
  try {
    const image = join(dir, 'probe.img');
    const handle = await open(image, 'wx', 0o600);
    await handle.truncate(3 * 1024 * 1024);
    await handle.close();
    await runToolOrThrow('mkfs.exfat', [image], { env: toolEnvironment() });
    const mountPoint = join(dir, 'mnt');
    await mkdir(mountPoint, { mode: 0o700 });
    const mount = await mountExfatFuse(image, mountPoint, 'read-only');
    await mount.unmount();
    return null;
  } catch (error) {
    return `exfat-fuse mount probe failed: ${(error as Error).message}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Mount options of `mountPoint` from /proc/self/mountinfo (field 6), or null when it is not a mount point. */
export async function mountOptions(mountPoint: string): Promise<string[] | null> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  // mountinfo escapes space, tab, newline and backslash as \ooo octal.
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
  let found: string[] | null = null;
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 5 && unescape(fields[4] ?? '') === mountPoint) found = (fields[5] ?? '').split(','); // the last one is on top
  }
  return found;
}

async function waitForDetach(loopDevice: string): Promise<boolean> {
  const name = loopDevice.replace(/^\/dev\//, '');
  const deadline = Date.now() + DETACH_WAIT_MS;
  while (Date.now() < deadline) {
    try {
      await access(`/sys/block/${name}/loop/backing_file`);
    } catch {
      return true;
    }
    await sleep(25);
  }
  return false;
}

/** Mounts `imagePath` at the existing empty folder `mountPoint`. */
export async function mountExfatFuse(imagePath: string, mountPoint: string, mode: 'read-only' | 'read-write'): Promise<FuseMount> {
  const readOnly = mode === 'read-only';
  const attach = await runToolOrThrow('losetup', ['--find', '--show', ...(readOnly ? ['--read-only'] : []), '--', imagePath]);
  const loopDevice = attach.stdout.trim();
  if (!/^\/dev\/loop[0-9]+$/.test(loopDevice)) throw new MediaError('MEDIA_TOOL_FAILED', `losetup answered ${JSON.stringify(loopDevice)}`);
  const options = readOnly ? 'ro,nosuid,nodev,noexec,noatime' : 'rw,nosuid,nodev,noexec';
  const mounted = await runTool('mount.exfat-fuse', ['-o', options, loopDevice, mountPoint], { timeoutMs: 20_000 });
  // Detaching a loop device that is in use only marks it for auto-clear: the
  // kernel frees it when exfat-fuse closes it, so nothing leaks if we crash.
  await runTool('losetup', ['--detach', loopDevice]);
  if (mounted.exitCode !== 0) {
    throw new MediaError('MEDIA_TOOL_FAILED', `mount.exfat-fuse ${imagePath}: exit ${mounted.exitCode}: ${mounted.stderr.trim().slice(0, 300)}`);
  }
  const unmount = async (): Promise<void> => {
    const umount = await runTool('umount', ['--', mountPoint], { timeoutMs: 20_000 });
    if (umount.exitCode !== 0) {
      const fallback = await runTool('fusermount', ['-u', mountPoint], { timeoutMs: 20_000 }).catch(() => null);
      if (fallback?.exitCode !== 0) {
        throw new MediaError('MEDIA_TOOL_FAILED', `cannot unmount ${mountPoint}: ${umount.stderr.trim().slice(0, 300)}`);
      }
    }
    if (!(await waitForDetach(loopDevice)) && !readOnly) {
      throw new MediaError('MEDIA_TOOL_FAILED', `${loopDevice} still busy ${DETACH_WAIT_MS} ms after unmounting ${mountPoint}: writes may not be flushed`);
    }
  };
  if (readOnly) {
    const remount = await runTool('mount', ['-o', 'remount,bind,ro,nosuid,nodev,noexec', '--', mountPoint]);
    const flags = await mountOptions(mountPoint);
    const missing = REQUIRED_READ_ONLY_FLAGS.filter((flag) => !(flags ?? []).includes(flag));
    if (remount.exitCode !== 0 || missing.length > 0) {
      await unmount();
      throw new MediaError('MEDIA_TOOL_FAILED', `${mountPoint} lacks ${missing.join(',') || 'its remount'}: refusing to scan it`);
    }
  }
  return { mountPoint, loopDevice, unmount };
}
