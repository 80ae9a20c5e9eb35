/**
 * Under INSTREAM (no spool file for clamd), the full YARA engine still needs
 * the file's bytes in a file it may read: each chunk clamd is sent is also
 * written to a private file (created new, 0600, in a kiosk-owned 0700 folder),
 * what clamd left unread once it answered is written too, and the file is
 * scanned and removed. The drive is still read once.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ScannerError } from '../clamav/errors.ts';

export class TeeFiles {
  readonly dir: string;
  readonly #prefix = randomBytes(8).toString('hex');
  #count = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(dir: string): Promise<TeeFiles> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    const made = lstatSync(dir);
    if (!made.isDirectory() || (made.mode & 0o777) !== 0o700) throw new ScannerError('SCANNER_CONFIG', `${dir} is not a private folder of the kiosk`);
    return new TeeFiles(dir);
  }

  async scanWith<A, B>(chunks: AsyncIterable<Uint8Array>, first: (teed: AsyncIterable<Uint8Array>) => Promise<A>, second: (path: string) => Promise<B>): Promise<{ first: A; second: B }> {
    const path = join(this.dir, `${this.#prefix}${(this.#count++).toString(16)}.bytes`);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    let open = true;
    try {
      const iterator = chunks[Symbol.asyncIterator]();
      const write = (chunk: Uint8Array): void => {
        for (let at = 0; at < chunk.byteLength; ) at += writeSync(fd, chunk, at);
      };
      const teed: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]: () => ({
          next: async () => {
            const step = await iterator.next();
            if (step.done !== true) write(step.value);
            return step;
          },
        }),
      };
      const a = await first(teed);
      for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) write(step.value);
      closeSync(fd);
      open = false;
      return { first: a, second: await second(path) };
    } finally {
      if (open) closeSync(fd);
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  }
}
