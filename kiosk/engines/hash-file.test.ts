import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DualDigest, wasmBlake3 } from '../../manifest/index.ts';
import { hashFile, loadNativeBlake3, READ_CHUNK_BYTES } from './hash-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'hash-'));
const sha256sum = (path: string): string => execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]!;
const b3sum = (path: string): string => execFileSync('b3sum', ['--no-names', path], { encoding: 'utf8' }).trim();
const blake3Of = (text: string): string => execFileSync('b3sum', ['--no-names'], { input: text, encoding: 'utf8' }).trim();

describe('hashFile', () => {
  it('hashes an empty file to the known SHA-256 and BLAKE3 of no bytes', async () => {
    const path = join(dir, 'empty');
    writeFileSync(path, '');
    expect(await hashFile(path)).toEqual({
      sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      blake3: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
      size: 0,
    });
  });

  it('agrees with sha256sum and b3sum on a file many read buffers long', async () => {
    const path = join(dir, 'large');
    writeFileSync(path, randomBytes(READ_CHUNK_BYTES * 9 + 12345));
    const digest = await hashFile(path);
    expect(digest).toEqual({ sha256: sha256sum(path), blake3: b3sum(path), size: READ_CHUNK_BYTES * 9 + 12345 });
  });

  it('gives the same digests with the native and the WebAssembly BLAKE3', async () => {
    const path = join(dir, 'mid');
    writeFileSync(path, randomBytes(3 * 1024 * 1024 + 7));
    const native = loadNativeBlake3();
    expect(native).not.toBeNull();
    expect(await hashFile(path, { blake3: native! })).toEqual(await hashFile(path, { blake3: wasmBlake3 }));
  });

  it('reuses finished native hashers from a clean state, never one still in use', async () => {
    const native = loadNativeBlake3()!;
    const a = await native();
    a.update(Buffer.from('abc'));
    expect(a.digestHex()).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
    expect(() => a.update(Buffer.from('x'))).toThrow(/after digest/);
    expect(() => a.digestHex()).toThrow(/twice/);
    // The next two: one is a's reset hasher, the other new; both start empty, and they do not share state.
    const b = await native();
    const c = await native();
    b.update(Buffer.from('ab'));
    c.update(Buffer.from('abc'));
    expect(c.digestHex()).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
    expect(b.digestHex()).toBe(blake3Of('ab'));
    const d = await native();
    expect(d.digestHex()).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });

  it('reports progress and stops when aborted', async () => {
    const path = join(dir, 'abort');
    writeFileSync(path, randomBytes(READ_CHUNK_BYTES * 4));
    const controller = new AbortController();
    const seen: number[] = [];
    const run = hashFile(path, { signal: controller.signal, onProgress: (n) => { seen.push(n); controller.abort(); } });
    await expect(run).rejects.toThrow(/abort/i);
    expect(seen[0]).toBeGreaterThan(0);
  });

  it('refuses to update a finished digest', async () => {
    const digest = await DualDigest.create();
    digest.finish();
    expect(() => digest.update(new Uint8Array(1))).toThrow();
  });
});
