/**
 * The least a verifying copy in Node must do, as a yardstick for the agent's
 * import (bench/import.ts): every file read into the process, hashed with the
 * digests the agent checks (its own hasher, agent/file-digest.ts: BLAKE3 by
 * default, `--digests sha256|both` as the policy can say, in the agent's
 * chunks) and written out, on as many worker threads as the agent's
 * stage pool, each taking the next file when it is free, then one
 * `sync -f`. No manifest (its folder is left behind), no walk checks, no
 * staging names, no log, no comparison of the digests: what is left is the
 * per-byte work any import that hashes what it copies must pay, and that
 * `cp` does not.
 *
 *   node bench/bare-copy.ts SRC DEST [--threads N] [--digests blake3|sha256|both]
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { DIGEST_CHOICES, FileHasher, type DigestChoice } from '../agent/file-digest.ts';
import { defaultStageThreads } from '../agent/stage-pool.ts';
import { COPY_CHUNK_BYTES } from '../agent/verified-copy.ts';
import { MANIFEST_FOLDER } from '../manifest/names.ts';

interface Share {
  readonly pairs: ReadonlyArray<readonly [string, string]>;
  /** One Int32: the index of the next pair to take, shared by every thread. */
  readonly next: SharedArrayBuffer;
  readonly digests: DigestChoice;
}

/** Copies files until none is left, hashing every chunk on its way through. */
async function copyShare(share: Share): Promise<void> {
  const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  const next = new Int32Array(share.next);
  for (let i = Atomics.add(next, 0, 1); i < share.pairs.length; i = Atomics.add(next, 0, 1)) {
    const [from, to] = share.pairs[i]!;
    const digest = await FileHasher.create(share.digests);
    const input = openSync(from, 'r');
    const output = openSync(to, 'wx');
    try {
      for (let n = readSync(input, buffer, 0, COPY_CHUNK_BYTES, null); n > 0; n = readSync(input, buffer, 0, COPY_CHUNK_BYTES, null)) {
        const chunk = buffer.subarray(0, n);
        digest.update(chunk);
        for (let done = 0; done < n;) done += writeSync(output, chunk, done, n - done);
      }
    } finally {
      closeSync(input);
      closeSync(output);
    }
    digest.finish();
  }
}

if (isMainThread) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { threads: { type: 'string' }, digests: { type: 'string', default: 'blake3' } } });
  const [source, destination] = positionals;
  const digests = values.digests as DigestChoice;
  if (!source || !destination || !DIGEST_CHOICES.includes(digests)) throw new Error('usage: node bench/bare-copy.ts SRC DEST [--threads N] [--digests blake3|sha256|both]');
  const threads = Number(values.threads ?? defaultStageThreads());
  const pairs: Array<readonly [string, string]> = [];
  const manifestFolder = join(source, MANIFEST_FOLDER);
  mkdirSync(destination, { recursive: true });
  for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
    const from = join(entry.parentPath, entry.name);
    if (from === manifestFolder || from.startsWith(`${manifestFolder}/`)) continue;
    const to = join(destination, relative(source, from));
    if (entry.isDirectory()) mkdirSync(to, { recursive: true });
    else if (entry.isFile()) pairs.push([from, to]);
  }
  const share: Share = { pairs, next: new SharedArrayBuffer(4), digests };
  await Promise.all(Array.from({ length: threads }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: share });
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a copy thread exited with ${code}`))));
  })));
  execFileSync('sync', ['-f', destination]);
} else {
  await copyShare(workerData as Share);
}
