/**
 * Scanning through a spool file: the kiosk writes the bytes it reads (the same
 * chunks it hashes) into a private file, then asks its own clamd to `SCAN` that
 * path. clamd does the same with an INSTREAM internally (it spools each stream
 * to its TemporaryDirectory before scanning), but then every byte also crosses
 * the socket twice and clamd's single listener thread receives every stream;
 * here clamd maps the finished file and only the scan runs in its threads.
 *
 * What clamd scans is still exactly what the kiosk hashed: the spool folder is
 * the kiosk's own (mode 0700), each file is created new (O_EXCL, 0600) under a
 * random prefix and a counter, and it is removed after the answer whatever the
 * outcome. The SCANs go through clamd sessions (session.ts), not a connection
 * per file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchownSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { chown, lstat, mkdir, realpath, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ClamdClient } from './client.ts';
import { ScannerError } from './errors.ts';
import { isScanPath, type ScanResult } from './protocol.ts';
import type { ClamdSessionPool } from './session.ts';

export interface SpoolOwner {
  readonly uid: number;
  readonly gid: number;
}

const SPOOL_NAME_CHARS = 16 + 13 + '.spool'.length; // random prefix, counter (at most 13 hex digits), suffix: see scan()

/**
 * Why `dir` cannot hold the spool, or null. clamd is told each spool file's
 * path in a SCAN command, which takes only printable ASCII without spaces.
 */
export function spoolFolderProblem(dir: string): string | null {
  if (isScanPath(join(dir, 'x'.repeat(SPOOL_NAME_CHARS)))) return null;
  return `${JSON.stringify(dir)} cannot hold clamd's spool: clamd is told each spool file's path in a SCAN command, which takes only printable ASCII without spaces; choose another work folder (--work-dir), such as /dev/shm/portcullis`;
}

export class SpoolScanner {
  readonly dir: string;
  readonly #sessions: ClamdSessionPool;
  readonly #owner: SpoolOwner | null;
  readonly #prefix = randomBytes(8).toString('hex'); // a random prefix, then a counter: names never repeat
  #count = 0;

  private constructor(dir: string, client: ClamdClient, owner: SpoolOwner | null) {
    this.dir = dir;
    this.#sessions = client.sessionPool();
    this.#owner = owner;
  }

  /**
   * Makes (or empties) `dir` for spool files. `owner`: the account clamd runs as,
   * when that is not this process's (the folder and each file are given to it).
   */
  static async create(dir: string, client: ClamdClient, owner: SpoolOwner | null = null): Promise<SpoolScanner> {
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    await rm(dir, { recursive: true, force: true }); // leftovers of a kiosk that was killed
    // Not recursive: if anyone made the folder (or a link) in between, this fails instead of using theirs.
    await mkdir(dir, { mode: 0o700 });
    if (owner) await chown(dir, owner.uid, owner.gid);
    const made = await lstat(dir);
    const uid = owner?.uid ?? process.getuid?.();
    if (!made.isDirectory() || (made.mode & 0o777) !== 0o700 || (uid !== undefined && made.uid !== uid)) {
      throw new ScannerError('SCANNER_CONFIG', `the spool folder ${dir} is not a private folder of the kiosk (or of clamd's account): refusing to use it`);
    }
    // clamd echoes the path it resolved: name files by the real path so the answer matches exactly.
    const real = await realpath(dir);
    const problem = spoolFolderProblem(real); // again with links resolved: that path is the one clamd is told
    if (problem !== null) throw new ScannerError('SCANNER_CONFIG', `the spool folder ${problem}`);
    return new SpoolScanner(real, client, owner);
  }

  /** Ends the idle clamd sessions; later scans fail. */
  close(): void {
    this.#sessions.close();
  }

  /**
   * Writes `chunks` to a fresh spool file, has clamd scan it, removes it. Errors from `chunks` propagate unchanged.
   * The spool's own file calls are synchronous: the folder is on a memory filesystem (or a fast local disk),
   * where each call is a copy into the page cache, cheaper than a round trip through libuv's thread pool.
   * The drive is still read asynchronously by the caller, so a slow drive never blocks the event loop.
   */
  async scan(chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ScanResult> {
    return (await this.scanWith(chunks, signal, null)).clamd;
  }

  /**
   * The same, with `alongside` given the finished spool file while clamd scans it (the full YARA
   * engine reads the same bytes: the drive is still read once). The file is removed once both settled.
   */
  async scanWith<T>(chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined, alongside: ((path: string) => Promise<T>) | null): Promise<{ clamd: ScanResult; alongside: T | null }> {
    const path = join(this.dir, `${this.#prefix}${(this.#count++).toString(16).padStart(8, '0')}.spool`);
    const fd = spoolCall(path, () => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    try {
      try {
        if (this.#owner) {
          const { uid, gid } = this.#owner;
          spoolCall(path, () => fchownSync(fd, uid, gid));
        }
        // Pulled by hand so that an error of the drive's read passes on unchanged, while the spool's own are ScannerErrors.
        const iterator = chunks[Symbol.asyncIterator]();
        for (;;) {
          const step = await iterator.next();
          if (step.done === true) break;
          if (signal?.aborted === true) {
            await iterator.return?.();
            throw new ScannerError('SCAN_ABORTED', `spooling a file for clamd was aborted: file not scanned`, { cause: signal.reason });
          }
          const chunk = step.value;
          spoolCall(path, () => {
            for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(fd, chunk, offset);
          });
        }
      } finally {
        closeSync(fd);
      }
      const [clamd, other] = await Promise.allSettled([this.#sessions.scanFile(path, signal), alongside === null ? Promise.resolve(null) : alongside(path)]);
      if (clamd.status === 'rejected') throw clamd.reason as Error;
      if (other.status === 'rejected') throw other.reason as Error;
      return { clamd: clamd.value, alongside: other.value };
    } finally {
      try {
        unlinkSync(path);
      } catch {
        // already gone: nothing to remove
      }
    }
  }
}

/** Runs one of the spool's own file calls; a failure (full tmpfs, folder gone) means the file was not scanned. */
function spoolCall<T>(path: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ScannerError('SCANNER_ERROR', `cannot write the spool file ${path} for clamd (${code}): file not scanned, block it; check the kiosk's work folder (space, permissions)`, { cause: error });
  }
}
