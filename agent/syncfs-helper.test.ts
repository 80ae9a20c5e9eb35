import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SyncfsHelper } from './syncfs-helper.ts';
import { bytesAndFilesInStep } from './drive-report.ts';
import { tempDir } from '../test/support/agent-fixtures.ts';

const alive = (pid: number | undefined): boolean => pid !== undefined && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
const childrenOf = (pid: number): number => spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length;

describe('the syncfs helper (one shell per import, one line per flush)', () => {
  it('answers each flush of a real filesystem, in order, and ends with its input', async () => {
    const dir = tempDir('syncfs');
    writeFileSync(join(dir, 'a.bin'), Buffer.alloc(1024 * 1024, 1));
    const helper = SyncfsHelper.start(dir);
    await Promise.all([helper.flush(), helper.flush(), helper.flush()]);
    await helper.flush();
    expect(alive(helper.pid)).toBe(true); // one process however many flushes
    expect(childrenOf(helper.pid!)).toBe(0); // each sync has ended
    await helper.close();
    expect(alive(helper.pid)).toBe(false);
    await expect(helper.flush()).rejects.toThrow(/syncfs helper ended/);
  });

  it('fails a flush with sync\'s own reason when the folder cannot be flushed, and every flush after it', async () => {
    const dir = tempDir('syncfs');
    const gone = join(dir, 'missing');
    const helper = SyncfsHelper.start(gone);
    await expect(helper.flush()).rejects.toThrow(/^sync -f failed: .*No such file or directory/);
    mkdirSync(gone); // sync would now succeed, but a failure stays: the next flush may cover bytes whose writing failed
    await expect(helper.flush()).rejects.toThrow(/^sync -f failed: .*No such file or directory/);
    await helper.close();
  });

  it('fails closed when the helper is killed: the flush under way and every later one reject', async () => {
    const dir = tempDir('syncfs');
    const helper = SyncfsHelper.start(dir);
    await helper.flush();
    process.kill(helper.pid!, 'SIGKILL');
    await expect(helper.flush()).rejects.toThrow(/syncfs helper( ended|'s input failed)/);
    await expect(helper.flush()).rejects.toThrow();
    await helper.close();
  });

  it('fails a flush that does not answer in time', async () => {
    const dir = tempDir('syncfs');
    const helper = SyncfsHelper.start(dir, 1);
    await expect(helper.flush()).rejects.toThrow(/did not finish within 1 ms/);
    await helper.close();
  });
});

describe('the order files are started in', () => {
  it('keeps the share of bytes started in step with the share of files, and starts every file once', () => {
    const sizes = [5, 1000, 1, 1, 1, 1, 1, 1, 1, 1, 500, 2, 2, 2];
    const order = bytesAndFilesInStep(sizes.map((s, i) => ({ s, i })), (x) => x.s);
    expect(order.map((x) => x.i).sort((a, b) => a - b)).toEqual(sizes.map((_, i) => i));
    expect(order[0]!.s).toBe(1000); // the largest first
    const total = sizes.reduce((a, b) => a + b, 0);
    let bytes = 0;
    order.forEach((x, k) => {
      // Before each big file is started, the files started had caught up with the bytes started.
      if (x.s >= 500) expect(bytes * sizes.length).toBeLessThanOrEqual(k * total);
      bytes += x.s;
    });
    expect(order.slice(1, 4).map((x) => x.s)).toEqual([1, 1, 1]); // then small files while bytes lead
    expect(bytesAndFilesInStep([], (x: number) => x)).toEqual([]);
    expect(bytesAndFilesInStep([0, 0, 0], (x) => x)).toEqual([0, 0, 0]);
  });
});
