/**
 * Adapter: the private folder in the kiosk's work folder where containers
 * are held while they are opened (WorkFiles in core/ports.ts).
 */
import { randomBytes } from 'node:crypto';
import { constants, openSync } from 'node:fs';
import { lstat, mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkFiles } from '../core/ports.ts';

/** A private folder in the kiosk's work folder for the containers being opened. */
export class InspectionFolder implements WorkFiles {
  readonly dir: string;
  readonly #prefix = randomBytes(8).toString('hex');
  #count = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Makes `dir` afresh, not recursively, and refuses it unless it is then a real folder of this account with mode 0700. */
  static async create(dir: string): Promise<InspectionFolder> {
    await rm(dir, { recursive: true, force: true }); // leftovers of a kiosk that was killed
    await mkdir(dir, { mode: 0o700 });
    const made = await lstat(dir);
    const uid = process.getuid?.();
    if (!made.isDirectory() || (made.mode & 0o777) !== 0o700 || (uid !== undefined && made.uid !== uid)) {
      throw new Error(`the inspection folder ${dir} is not a private folder of the kiosk: refusing to use it`);
    }
    return new InspectionFolder(await realpath(dir));
  }

  /** A new private file (O_EXCL, O_NOFOLLOW, 0600) for one container's bytes. */
  create(): { path: string; fd: number } {
    const path = join(this.dir, `${this.#prefix}${(this.#count++).toString(16).padStart(8, '0')}.container`);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    return { path, fd };
  }
}

