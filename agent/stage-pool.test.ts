import { execFile } from 'node:child_process';
import { closeSync, existsSync, fstatSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createStagePool } from './stage-pool.ts';
import { ANSWER_BATCH, IN_FLIGHT } from './stage-protocol.ts';
import { fileIdentity, type StageRequest, type StagedCopy } from './stage-file.ts';
import { digestOf, tempDir } from '../test/support/agent-fixtures.ts';

const pool = createStagePool(2);
afterAll(() => pool.close());

async function requestFor(content: Buffer, stagingPath: string | null = null): Promise<StageRequest> {
  const path = join(tempDir('stage'), 'file.bin');
  writeFileSync(path, content);
  const d = await digestOf(content);
  const st = statSync(path);
  return { name: 'file.bin', source: Buffer.from(path), expected: { size: d.size, sha256: d.sha256, blake3: d.blake3 }, digests: 'both', expectIdentity: { dev: st.dev, ino: st.ino }, stagingPath, fsync: false };
}

describe('the stage pool (worker threads)', () => {
  it('hashes on a worker thread to the same digests the calling thread computes, and stages the bytes', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024 + 17, 9);
    const staging = join(tempDir('staging'), 'x.part');
    const request = await requestFor(content, staging);
    const result = await pool.stage(request);
    expect(result).toMatchObject({ ok: true, digest: { sha256: request.expected.sha256, blake3: request.expected.blake3, size: content.length } });
    expect(statSync(staging).size).toBe(content.length);
  });

  it('refuses a file whose bytes differ from the manifest, and leaves no staging file', async () => {
    const request = await requestFor(Buffer.from('hello'));
    const staging = join(tempDir('staging'), 'y.part');
    const result = await pool.stage({ ...request, stagingPath: staging, expected: { ...request.expected, sha256: '0'.repeat(64) } });
    expect(result).toMatchObject({ ok: false, code: 'FILE_HASH_MISMATCH' });
    expect(() => statSync(staging)).toThrow();
  });

  it('answers ABORTED for a request whose signal is already aborted', async () => {
    const request = await requestFor(Buffer.alloc(64 * 1024 * 1024, 1));
    const controller = new AbortController();
    controller.abort();
    expect(await pool.stage(request, controller.signal)).toMatchObject({ ok: false, code: 'ABORTED' });
  });

  it('turns an exception inside a worker into a refusal, never a pass, and keeps working', async () => {
    const request = await requestFor(Buffer.from('x'));
    const broken = { ...request, expected: null } as unknown as StageRequest;
    expect(await pool.stage(broken)).toMatchObject({ ok: false, code: 'COPY_FAILED' });
    expect(await pool.stage(request)).toMatchObject({ ok: true });
  });
});

describe('the stage pool: aborts', () => {
  it('stops a file under way on a worker when its signal aborts, and removes its staging file', async () => {
    const request = await requestFor(Buffer.alloc(256 * 1024 * 1024, 3));
    const staging = join(tempDir('staging'), 'big.part');
    const controller = new AbortController();
    const pending = pool.stage({ ...request, stagingPath: staging, chunkBytes: 64 * 1024 }, controller.signal);
    // Abort once the worker has started writing (the staging file exists and grows).
    for (let i = 0; i < 500 && !(existsSync(staging) && statSync(staging).size > 0); i++) await new Promise((r) => setTimeout(r, 2));
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, code: 'ABORTED' });
    expect((result as { reason: string }).reason).toMatch(/^cancelled after \d+ of 268435456 bytes$/);
    expect(existsSync(staging)).toBe(false);
  });

  it('answers ABORTED without reading for a file still queued in the pool', async () => {
    const one = createStagePool(1);
    try {
      const big = await requestFor(Buffer.alloc(64 * 1024 * 1024, 4));
      const small = await requestFor(Buffer.from('queued'));
      const controller = new AbortController();
      // One thread with two slots: the third request waits in the pool's own queue.
      const running = [one.stage(big), one.stage(big)];
      const queued = one.stage(small, controller.signal);
      controller.abort();
      expect(await queued).toMatchObject({ ok: false, code: 'ABORTED', reason: 'cancelled before the file was read' });
      expect(await Promise.all(running)).toMatchObject([{ ok: true }, { ok: true }]);
    } finally {
      await one.close();
    }
  });

  it('refuses a file asked for after the pool was closed, never leaves it waiting', async () => {
    const one = createStagePool(1);
    const request = await requestFor(Buffer.from('x'));
    expect(await one.stage(request)).toMatchObject({ ok: true });
    await one.close();
    expect(await one.stage(request)).toMatchObject({ ok: false, code: 'COPY_FAILED' });
  });
});

describe('the stage pool: spreading files', () => {
  it('gives files to the thread with the fewest in hand, so big files run side by side', async () => {
    const two = createStagePool(2);
    try {
      const request = await requestFor(Buffer.alloc(8 * 1024 * 1024, 5));
      const first = two.stage(request);
      expect(two.inHand()).toEqual([1, 0]);
      const second = two.stage(request);
      expect(two.inHand()).toEqual([1, 1]); // not [2, 0]: the second file goes to the idle thread
      const third = two.stage(request);
      expect(two.inHand().sort()).toEqual([1, 2]);
      expect(await Promise.all([first, second, third])).toMatchObject([{ ok: true }, { ok: true }, { ok: true }]);
      expect(two.inHand()).toEqual([0, 0]);
    } finally {
      await two.close();
    }
  });
});

describe('the stage pool: answers in batches', () => {
  it('answers many small files in fewer messages than files, each with its own digests', async () => {
    const one = createStagePool(1);
    try {
      const contents = Array.from({ length: 64 }, (_, i) => Buffer.from(`small file ${i} `.repeat(i + 1)));
      const requests = await Promise.all(contents.map((c) => requestFor(c)));
      const results = await Promise.all(requests.map((r) => one.stage(r)));
      results.forEach((result, i) => {
        expect(result).toMatchObject({ ok: true, digest: { sha256: requests[i]!.expected.sha256, blake3: requests[i]!.expected.blake3, size: contents[i]!.length } });
      });
      // One message per file would be 64; a batch holds up to ANSWER_BATCH (4) and the worker's queue holds IN_FLIGHT (8).
      expect([ANSWER_BATCH, IN_FLIGHT]).toEqual([4, 8]);
      expect(one.answerMessages()).toBeLessThanOrEqual(64 / 4 + 64 / 8 + 1);
      expect(one.answerMessages()).toBeGreaterThan(1);
    } finally {
      await one.close();
    }
  });

  it('sends the answers it holds before it starts a big file, so they never wait behind it', async () => {
    const one = createStagePool(1);
    try {
      const small = await requestFor(Buffer.from('done early'));
      const big = await requestFor(Buffer.alloc(128 * 1024 * 1024, 6));
      const order: string[] = [];
      // Three messages, the later two waiting (drained) while the first small file is staged: its answer must go out before the big one is read.
      const results = await Promise.all([
        one.stage(small).then((r) => (order.push('small'), r)),
        one.stage({ ...big, chunkBytes: 64 * 1024 }).then((r) => (order.push('big'), r)),
        one.stage(small).then((r) => (order.push('small again'), r)),
      ]);
      expect(results).toMatchObject([{ ok: true }, { ok: true }, { ok: true }]);
      expect(order).toEqual(['small', 'big', 'small again']);
      expect(one.answerMessages()).toBe(2); // the first small one alone, then the big one and the one after it together
    } finally {
      await one.close();
    }
  });
});

describe('the stage pool: staged copies belong to the calling thread', () => {
  it('keeps a staged copy the calling thread holds open when the pool and its threads end', async () => {
    const one = createStagePool(1);
    const request = await requestFor(Buffer.from('held across the end of the pool'), join(tempDir('staging'), 'held.part'));
    const result = await one.stage(request);
    expect(result).toMatchObject({ ok: true });
    const staged = (result as { staged: StagedCopy }).staged;
    await one.close(); // the worker that opened the copy exits
    try {
      expect(fileIdentity(fstatSync(staged.fd, { bigint: true }))).toBe(staged.identity);
    } finally {
      closeSync(staged.fd);
    }
  });

  it('stages and hands over many copies without Node warning that a descriptor was opened twice', async () => {
    // A child process, so that the worker's warnings (written to the process's stderr) can be read.
    const script = join(tempDir('fd-warning'), 'stage-many.ts');
    writeFileSync(script, [
      `import { closeSync, statSync, writeFileSync } from 'node:fs';`,
      `import { join } from 'node:path';`,
      `import { createStagePool } from ${JSON.stringify(join(import.meta.dirname, './stage-pool.ts'))};`,
      `import { digestOf, tempDir } from ${JSON.stringify(join(import.meta.dirname, '../test/support/agent-fixtures.ts'))};`,
      `const pool = createStagePool(1);`,
      `const dir = tempDir('many');`,
      `let ok = 0;`,
      `for (let i = 0; i < 40; i++) {`,
      `  const source = join(dir, 'f' + i); const content = Buffer.from('file ' + i); writeFileSync(source, content);`,
      `  const d = await digestOf(content); const st = statSync(source);`,
      `  const r = await pool.stage({ name: 'f', source, expected: { size: d.size, sha256: d.sha256, blake3: d.blake3 }, digests: 'blake3', expectIdentity: { dev: st.dev, ino: st.ino }, stagingPath: join(dir, i + '.part'), fsync: false });`,
      `  if (r.ok && r.staged) { ok++; closeSync(r.staged.fd); } // named and released on this thread, as an import does`,
      `}`,
      `await pool.close();`,
      `console.log(ok);`,
    ].join('\n'));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
    expect(stdout.trim()).toBe('40');
    expect(stderr.split('\n').filter((line) => line.includes('Warning'))).toEqual([]);
  });
});
