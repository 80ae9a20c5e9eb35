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
import { chown, mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClamdClient } from './client.ts';
import type { ScanResult } from './protocol.ts';
import type { ClamdSessionPool } from './session.ts';

export interface SpoolOwner {
  readonly uid: number;
  readonly gid: number;
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
    await rm(dir, { recursive: true, force: true }); // leftovers of a kiosk that was killed
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (owner) await chown(dir, owner.uid, owner.gid);
    // clamd echoes the path it resolved: name files by the real path so the answer matches exactly.
    return new SpoolScanner(await realpath(dir), client, owner);
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
    const path = join(this.dir, `${this.#prefix}${(this.#count++).toString(16).padStart(8, '0')}.spool`);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      try {
        if (this.#owner) fchownSync(fd, this.#owner.uid, this.#owner.gid);
        for await (const chunk of chunks) {
          signal?.throwIfAborted();
          for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(fd, chunk, offset);
        }
      } finally {
        closeSync(fd);
      }
      return await this.#sessions.scanFile(path, signal);
    } finally {
      try {
        unlinkSync(path);
      } catch {
        // already gone: nothing to remove
      }
    }
  }
}
