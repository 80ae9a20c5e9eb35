/**
 * Replaces a small file atomically: write a temporary file beside it
 * (exclusive create, so no one else's file is reused), fsync it, rename it
 * over the target, then fsync the folder so the rename itself is durable.
 * A reader sees the old content or the new, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, path);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(temp);
    } catch {
      // never created or already renamed
    }
    throw error;
  }
  syncFolder(dirname(path));
}

/** fsync a folder so a rename or link in it survives a power cut; Windows cannot open folders for this. */
export function syncFolder(folder: string): void {
  if (process.platform === 'win32') return;
  const fd = openSync(folder, constants.O_RDONLY | constants.O_DIRECTORY); // a folder or nothing: never blocks on a pipe
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
