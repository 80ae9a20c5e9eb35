/**
 * The least a verifying copy in Node must do, as a yardstick for the agent's
 * import (bench/import.ts): every file read into the process, hashed with
 * SHA-256 and BLAKE3 (the agent's own hashers, manifest/digest.ts) and
 * written out, on one worker thread per core, then one `sync -f`. No
 * manifest, no walk checks, no staging names, no log, no comparison of the
 * digests: what is left is the per-byte work any import that hashes what it
 * copies must pay, and that `cp` (a copy inside the kernel) does not.
 *
 *   node bench/bare-copy.ts SRC DEST [--threads N]
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DualDigest, wasmBlake3 } from '../manifest/digest.ts';

const CHUNK_BYTES = 1024 * 1024; // bytes, as the agent reads

interface Share {
  readonly pairs: ReadonlyArray<readonly [string, string]>;
}

/** Copies one share of the files, hashing every chunk on its way through. */
async function copyShare(share: Share): Promise<number> {
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let bytes = 0;
  for (const [from, to] of share.pairs) {
    const digest = await DualDigest.create(wasmBlake3);
    const input = openSync(from, 'r');
    const output = openSync(to, 'wx');
    try {
      for (let n = readSync(input, buffer, 0, CHUNK_BYTES, null); n > 0; n = readSync(input, buffer, 0, CHUNK_BYTES, null)) {
        const chunk = buffer.subarray(0, n);
        digest.update(chunk);
        for (let done = 0; done < n;) done += writeSync(output, chunk, done, n - done);
        bytes += n;
      }
    } finally {
      closeSync(input);
      closeSync(output);
    }
    digest.finish();
  }
  return bytes;
}

if (isMainThread) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { threads: { type: 'string' } } });
  const [source, destination] = positionals;
  if (!source || !destination) throw new Error('usage: node bench/bare-copy.ts SRC DEST [--threads N]');
  const threads = Number(values.threads ?? availableParallelism());
  const shares: Array<Array<readonly [string, string]>> = Array.from({ length: threads }, () => []);
  let next = 0;
  for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
    const from = join(entry.parentPath, entry.name);
    const to = join(destination, relative(source, from));
    if (entry.isDirectory()) mkdirSync(to, { recursive: true });
    else if (entry.isFile()) {
      mkdirSync(dirname(to), { recursive: true });
      shares[next++ % threads]!.push([from, to]);
    }
  }
  await Promise.all(shares.map((pairs) => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { pairs } satisfies Share });
    worker.once('message', () => resolve());
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a copy thread exited with ${code}`))));
  })));
  execFileSync('sync', ['-f', destination]);
} else {
  parentPort!.postMessage(await copyShare(workerData as Share));
}
