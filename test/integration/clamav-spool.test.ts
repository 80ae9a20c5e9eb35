/**
 * The spool path against the real clamd: the kiosk writes what it reads into
 * a private file and clamd SCANs it. Detections and limits through the spool
 * are in clamav.test.ts (every case runs both ways); this file covers the
 * spool itself: nothing left behind, private modes, a clamd running as
 * another account, and clamd lost mid-scan.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SpoolScanner } from '../../kiosk/engines/clamav/spool.ts';
import { scannerErrorCodeOf, startTestClamd, type TestClamd } from '../support/test-clamd.ts';
import { EICAR, TEST_SIGNATURES } from '../../kiosk/engines/clamav/test-database.ts';

let clamd: TestClamd;
const extra: TestClamd[] = [];

beforeAll(async () => {
  clamd = await startTestClamd({ disableCache: true });
});

afterEach(async () => {
  await Promise.all(extra.splice(0).map((c) => c.dispose()));
});

afterAll(async () => {
  await clamd?.dispose();
});

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

async function newSpool(name: string, on: TestClamd = clamd, owner: { uid: number; gid: number } | null = null): Promise<SpoolScanner> {
  return SpoolScanner.create(join(on.baseDir, name), on.client, owner);
}

describe('the spool leaves nothing behind', () => {
  it('removes the file after a clean answer and after a detection', async () => {
    const spool = await newSpool('after-answers');
    expect(await spool.scan(Readable.from([ascii('plant notes\n')]))).toEqual({ status: 'clean' });
    expect(await spool.scan(Readable.from([EICAR]))).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
    expect(await readdir(spool.dir)).toEqual([]);
  });

  it('removes the file when the drive read fails, and passes the read error on unchanged', async () => {
    const spool = await newSpool('after-read-error');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(4096);
      await Promise.resolve();
      throw new Error('EIO: the drive went away');
    }
    await expect(spool.scan(failing())).rejects.toThrow('EIO: the drive went away');
    expect(await readdir(spool.dir)).toEqual([]);
  });

  it('removes the file when the scan is aborted', async () => {
    const spool = await newSpool('after-abort');
    const controller = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      for (let i = 0; ; i++) {
        if (i === 3) controller.abort();
        await Promise.resolve();
        yield new Uint8Array(1024);
      }
    }
    await expect(spool.scan(slow(), controller.signal)).rejects.toThrow();
    expect(await readdir(spool.dir)).toEqual([]);
  });

  it('fails with SCANNER_ERROR, not a verdict, when the spool folder is gone', async () => {
    const spool = await newSpool('vanishing');
    await rm(spool.dir, { recursive: true });
    expect(await scannerErrorCodeOf(spool.scan(Readable.from([ascii('harmless')])))).toBe('SCANNER_ERROR');
  });

  it('empties a spool folder left by a kiosk that was killed', async () => {
    const dir = join(clamd.baseDir, 'leftovers');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'old.spool'), 'bytes of an earlier drive');
    const spool = await newSpool('leftovers');
    expect(await readdir(spool.dir)).toEqual([]);
  });
});

describe('spool files are private', () => {
  it('keeps the folder at 0700 and each file at 0600 while clamd scans it', async () => {
    const spool = await newSpool('modes');
    const seen: number[] = [];
    async function* watched(): AsyncGenerator<Uint8Array> {
      yield ascii('first chunk\n');
      const [name] = await readdir(spool.dir);
      expect(name).toMatch(/^[0-9a-f]{24}\.spool$/);
      seen.push((await stat(spool.dir)).mode & 0o777, (await stat(join(spool.dir, name ?? ''))).mode & 0o777);
      yield ascii('second chunk\n');
    }
    expect(await spool.scan(watched())).toEqual({ status: 'clean' });
    expect(seen).toEqual([0o700, 0o600]);
  });
});

describe('a clamd running as another account', () => {
  const asRoot = process.getuid?.() === 0 && existsSync('/etc/passwd');

  async function nobody(): Promise<{ uid: number; gid: number }> {
    const entry = (await readFile('/etc/passwd', 'utf8')).split('\n').find((line) => line.startsWith('nobody:'));
    const [, , uid, gid] = entry?.split(':') ?? [];
    expect(uid, 'this test needs the "nobody" account').toBeDefined();
    return { uid: Number(uid), gid: Number(gid) };
  }

  it.runIf(asRoot)('cannot read a spool it does not own: the file is an error, never clean', async () => {
    const other = await startTestClamd({ user: 'nobody' });
    extra.push(other);
    const spool = await newSpool('not-owned', other, null);
    expect(await scannerErrorCodeOf(spool.scan(Readable.from([ascii('harmless')])))).toBe('SCANNER_ERROR');
    expect(await readdir(spool.dir)).toEqual([]);
  });

  it.runIf(asRoot)('reads the spool when the folder and files are given to its account', async () => {
    const other = await startTestClamd({ user: 'nobody' });
    extra.push(other);
    const owner = await nobody();
    const spool = await newSpool('owned', other, owner);
    expect((await stat(spool.dir)).uid).toBe(owner.uid);
    expect(await spool.scan(Readable.from([EICAR]))).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
    expect(await spool.scan(Readable.from([ascii('harmless')]))).toEqual({ status: 'clean' });
  });
});

describe('clamd sessions', () => {
  it('scans many files over a few sessions, and goes on after clamd ends an idle one', async () => {
    const quick = await startTestClamd({ disableCache: true, settings: { readTimeout: 1 } });
    extra.push(quick);
    const spool = await newSpool('sessions', quick);
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => spool.scan(Readable.from([i % 10 === 0 ? EICAR : ascii(`notes ${i}\n`)]))),
    );
    expect(answers.filter((a) => a.status === 'found')).toHaveLength(3);
    expect(answers.filter((a) => a.status === 'clean')).toHaveLength(27);
    // clamd ends a session left idle past its ReadTimeout (1 s here); the next scan still gets a real answer.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await spool.scan(Readable.from([EICAR]))).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
    expect(await spool.scan(Readable.from([ascii('harmless')]))).toEqual({ status: 'clean' });
    expect(await readdir(spool.dir)).toEqual([]);
  });
});

describe('losing clamd', () => {
  it('fails with SCANNER_UNAVAILABLE when clamd is gone, and removes the file', async () => {
    const doomed = await startTestClamd();
    extra.push(doomed);
    const spool = await newSpool('lost', doomed);
    async function* killFirst(): AsyncGenerator<Uint8Array> {
      process.kill(doomed.pid, 'SIGKILL');
      await doomed.exited;
      yield new Uint8Array(1024);
    }
    expect(await scannerErrorCodeOf(spool.scan(killFirst()))).toBe('SCANNER_UNAVAILABLE');
    expect(await readdir(spool.dir)).toEqual([]);
  });
});
