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
 * random name, and it is removed after the answer whatever the outcome.
 */
import { randomBytes } from 'node:crypto';
import { chown, mkdir, open, realpath, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClamdClient } from './client.ts';
import type { ScanResult } from './protocol.ts';

export interface SpoolOwner {
  readonly uid: number;
  readonly gid: number;
}

export class SpoolScanner {
  readonly dir: string;
  readonly #client: ClamdClient;
  readonly #owner: SpoolOwner | null;

  private constructor(dir: string, client: ClamdClient, owner: SpoolOwner | null) {
    this.dir = dir;
    this.#client = client;
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

  /** Writes `chunks` to a fresh spool file, has clamd scan it, removes it. Errors from `chunks` propagate unchanged. */
  async scan(chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ScanResult> {
    const path = join(this.dir, `${randomBytes(12).toString('hex')}.spool`);
    const handle = await open(path, 'wx', 0o600);
    try {
      try {
        if (this.#owner) await handle.chown(this.#owner.uid, this.#owner.gid);
        for await (const chunk of chunks) {
          signal?.throwIfAborted();
          for (let offset = 0; offset < chunk.byteLength; ) {
            const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
            offset += bytesWritten;
          }
        }
      } finally {
        await handle.close();
      }
      return await this.#client.scanFile(path, signal);
    } finally {
      await unlink(path).catch(() => undefined);
    }
  }
}
