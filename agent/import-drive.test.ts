import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DriveReport } from './drive-report.ts';
import { STAGE_ON_WORKERS_FROM_BYTES } from './staging.ts';
import { syncfsReportsErrors } from './syncfs-helper.ts';
import { importDrive, type ImportInput } from './import-drive.ts';
import type { ClashPolicy } from './trust-store.ts';
import { DEFAULT_IDENTITY, makeDrive, makeTrust, MemoryLog, tempDir } from '../test/support/agent-fixtures.ts';

const big = Buffer.alloc(200_000);
for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
const files = { 'README.txt': 'hello plant\n', 'firmware/plc-cpu.bin': big };

/** Every file under a folder, relative, the staging folder included (so leftovers show). */
function listAll(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? [`${prefix}${e.name}/`, ...listAll(join(dir, e.name), `${prefix}${e.name}/`)] : [`${prefix}${e.name}`],
  ).sort();
}

async function runImport(root: string, dest: string, extra: Partial<ImportInput> = {}, clash: ClashPolicy = 'refuse'): Promise<{ report: DriveReport; log: MemoryLog }> {
  const log = new MemoryLog();
  const report = await importDrive({ drive: root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, destination: dest, clash, ...extra });
  return { report, log };
}

const byPath = (r: DriveReport): Record<string, string> => Object.fromEntries(r.files.map((f) => [f.path, f.code]));

describe('import: copy-mediation', () => {
  it('copies only permitted files, byte for byte, and leaves no staging behind', async () => {
    const drive = await makeDrive({ files: { ...files, 'extra.exe': 'MZ' }, unlisted: ['extra.exe'] });
    const dest = tempDir('dest');
    const { report, log } = await runImport(drive.root, dest);
    expect(byPath(report)).toEqual({ 'README.txt': 'IMPORTED', 'extra.exe': 'FILE_UNLISTED', 'firmware/plc-cpu.bin': 'IMPORTED' });
    expect(listAll(dest)).toEqual(['README.txt', 'firmware/', 'firmware/plc-cpu.bin']);
    expect(readFileSync(join(dest, 'firmware/plc-cpu.bin')).equals(big)).toBe(true);
    expect(log.events.filter((e) => e.event === 'file.imported').map((e) => e.path).sort()).toEqual(['README.txt', 'firmware/plc-cpu.bin']);
    expect(log.events.find((e) => e.path === 'extra.exe')).toMatchObject({ event: 'file.refused', outcome: 'refused', code: 'FILE_UNLISTED' });
  });

  it('never lets a file whose bytes changed after signing reach the destination, and leaves nothing partial', async () => {
    const drive = await makeDrive({ files });
    const tampered = Buffer.from(big);
    tampered[150_000] = 0xff - big[150_000]!; // same size, one byte changed deep inside the file
    writeFileSync(join(drive.root, 'firmware/plc-cpu.bin'), tampered);
    const dest = tempDir('dest');
    const { report } = await runImport(drive.root, dest, { chunkBytes: 16 * 1024 });
    expect(byPath(report)).toEqual({ 'README.txt': 'IMPORTED', 'firmware/plc-cpu.bin': 'FILE_HASH_MISMATCH' });
    expect(listAll(dest)).toEqual(['README.txt']);
  });

  it('checks the digests the policy names on the stage threads too: with both, a file whose listed SHA-256 alone is wrong and one whose listed BLAKE3 alone is wrong stay out', async () => {
    const large = Buffer.alloc(STAGE_ON_WORKERS_FROM_BYTES, 0x42); // the drive is staged on worker threads
    const spec = {
      files: { 'sha-wrong.txt': 'right bytes, wrong SHA-256\n', 'blake-wrong.txt': 'right bytes, wrong BLAKE3\n', 'large.bin': large },
      listedDigests: { 'sha-wrong.txt': { sha256: 'e'.repeat(64) }, 'blake-wrong.txt': { blake3: 'e'.repeat(64) } },
    };
    const both = tempDir('dest');
    const { report } = await runImport((await makeDrive(spec)).root, both, { trust: makeTrust({ policy: { digests: 'both' } }) });
    expect(byPath(report)).toEqual({ 'blake-wrong.txt': 'FILE_HASH_MISMATCH', 'large.bin': 'IMPORTED', 'sha-wrong.txt': 'FILE_HASH_MISMATCH' });
    expect(listAll(both)).toEqual(['large.bin']);
    const sha = tempDir('dest');
    const bySha = await runImport((await makeDrive(spec)).root, sha, { trust: makeTrust({ policy: { digests: 'sha256' } }) });
    expect(byPath(bySha.report)).toEqual({ 'blake-wrong.txt': 'IMPORTED', 'large.bin': 'IMPORTED', 'sha-wrong.txt': 'FILE_HASH_MISMATCH' });
    const byDefault = await runImport((await makeDrive(spec)).root, tempDir('dest'));
    expect(byPath(byDefault.report)).toEqual({ 'blake-wrong.txt': 'FILE_HASH_MISMATCH', 'large.bin': 'IMPORTED', 'sha-wrong.txt': 'IMPORTED' });
    expect(byDefault.log.events.find((e) => e.path === 'sha-wrong.txt')).toMatchObject({ event: 'file.imported', digests: { sha256: null } });
  });

  it('stops a file that grows while it is copied and leaves nothing visible', async () => {
    const drive = await makeDrive({ files });
    const dest = tempDir('dest');
    const onChunk = (path: string, n: number): void => {
      if (path === 'firmware/plc-cpu.bin' && n === 16 * 1024) appendFileSync(join(drive.root, path), Buffer.alloc(50_000, 1));
    };
    const { report } = await runImport(drive.root, dest, { chunkBytes: 16 * 1024, onChunk });
    expect(byPath(report)['firmware/plc-cpu.bin']).toBe('FILE_SIZE_MISMATCH');
    expect(listAll(dest)).toEqual(['README.txt']);
  });

  it('refuses a file that shrinks while it is copied and leaves nothing visible', async () => {
    const drive = await makeDrive({ files });
    const dest = tempDir('dest');
    const onChunk = (path: string, n: number): void => {
      if (path === 'firmware/plc-cpu.bin' && n === 16 * 1024) truncateSync(join(drive.root, path), 20_000);
    };
    const { report } = await runImport(drive.root, dest, { chunkBytes: 16 * 1024, onChunk });
    expect(byPath(report)['firmware/plc-cpu.bin']).toBe('FILE_SIZE_MISMATCH');
    expect(listAll(dest)).toEqual(['README.txt']);
  });

  it('aborts mid-copy on a signal (drive removed, service stopping) and cleans staging', async () => {
    const drive = await makeDrive({ files });
    const dest = tempDir('dest');
    const controller = new AbortController();
    const onChunk = (path: string, n: number): void => {
      if (path === 'firmware/plc-cpu.bin' && n >= 32 * 1024) controller.abort();
    };
    const { report, log } = await runImport(drive.root, dest, { chunkBytes: 16 * 1024, onChunk, signal: controller.signal });
    expect(byPath(report)['firmware/plc-cpu.bin']).toBe('ABORTED');
    expect(listAll(dest)).toEqual(['README.txt']);
    expect(log.events.find((e) => e.code === 'ABORTED')).toMatchObject({ event: 'file.refused' });
  });

  it('refuses a clash by default and never overwrites, also across case and NFC/NFD spellings', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'new', 'caf\u00e9.txt': 'menu' } });
    const dest = tempDir('dest');
    writeFileSync(join(dest, 'readme.TXT'), 'old');
    writeFileSync(join(dest, 'cafe\u0301.txt'), 'old menu');
    const { report } = await runImport(drive.root, dest);
    expect(byPath(report)).toEqual({ 'README.txt': 'DESTINATION_CLASH', 'caf\u00e9.txt': 'DESTINATION_CLASH' });
    expect(readFileSync(join(dest, 'readme.TXT'), 'utf8')).toBe('old');
    expect(listAll(dest)).toEqual(['cafe\u0301.txt', 'readme.TXT']);
  });

  it('renames a clashing file to "name (1).ext" under policy rename', async () => {
    const drive = await makeDrive({ files: { 'docs/report.pdf': 'v2' } });
    const dest = tempDir('dest');
    mkdirSync(join(dest, 'DOCS'));
    writeFileSync(join(dest, 'DOCS/report.pdf'), 'v1');
    writeFileSync(join(dest, 'DOCS/report (1).pdf'), 'v1b');
    const { report } = await runImport(drive.root, dest, {}, 'rename');
    expect(report.files[0]).toMatchObject({ code: 'IMPORTED', destination: 'DOCS/report (2).pdf' });
    expect(readFileSync(join(dest, 'DOCS/report.pdf'), 'utf8')).toBe('v1');
    expect(readFileSync(join(dest, 'DOCS/report (2).pdf'), 'utf8')).toBe('v2');
  });

  it('keeps the existing file under policy skip and reports the new one as skipped', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'new', 'other.txt': 'x' } });
    const dest = tempDir('dest');
    writeFileSync(join(dest, 'README.txt'), 'old');
    const { report, log } = await runImport(drive.root, dest, {}, 'skip');
    expect(report.files.map((f) => [f.path, f.outcome])).toEqual([['README.txt', 'skipped'], ['other.txt', 'imported']]);
    expect(readFileSync(join(dest, 'README.txt'), 'utf8')).toBe('old');
    expect(log.events.find((e) => e.event === 'file.skipped')).toMatchObject({ code: 'DESTINATION_CLASH' });
  });

  it('refuses to write through a symlink planted at the destination', async () => {
    const drive = await makeDrive({ files: { 'firmware/plc.bin': 'fw' } });
    const dest = tempDir('dest');
    const outside = tempDir('outside');
    symlinkSync(outside, join(dest, 'firmware'));
    const { report } = await runImport(drive.root, dest);
    expect(report.files[0]).toMatchObject({ outcome: 'refused', code: 'DESTINATION_CLASH' });
    expect(readdirSync(outside)).toEqual([]);
  });

  it('refuses a destination that is itself a symlink', async () => {
    const drive = await makeDrive({ files });
    const link = join(tempDir('dest'), 'inbox');
    symlinkSync(tempDir('real'), link);
    await expect(runImport(drive.root, link)).rejects.toMatchObject({ code: 'DESTINATION_INVALID' });
  });

  it('refuses a whole drive without copying anything when the manifest is not genuine', async () => {
    const drive = await makeDrive({ files });
    const dest = tempDir('dest');
    const { report } = await runImport(drive.root, dest, { trust: makeTrust({ keys: [] }) });
    expect(report).toMatchObject({ approved: false, code: 'KEY_UNTRUSTED' });
    expect(listAll(dest)).toEqual([]);
  });

  it('fails closed when the import record cannot be written: the placed file is removed again', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'hello' } });
    const dest = tempDir('dest');
    const log = new MemoryLog();
    log.failAfter = 1; // drive.checked is written, file.imported is not
    await expect(importDrive({ drive: drive.root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, destination: dest, clash: 'refuse' })).rejects.toMatchObject({ code: 'LOG_WRITE_FAILED' });
    expect(existsSync(join(dest, 'README.txt'))).toBe(false);
    expect(listAll(dest)).toEqual([]);
  });

  it('commits decisions in groups: many files, fewer log writes, every file recorded once', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 60; i++) many[`batch/f-${String(i).padStart(2, '0')}.txt`] = `file ${i}\n`.repeat(i + 1);
    const drive = await makeDrive({ files: many });
    const dest = tempDir('dest');
    const { report, log } = await runImport(drive.root, dest);
    expect(report.counts.imported).toBe(60);
    const imported = log.events.filter((e) => e.event === 'file.imported').map((e) => e.path);
    expect(imported.sort()).toEqual(Object.keys(many).sort());
    expect(log.groups.reduce((a, b) => a + b, 0)).toBe(60);
    expect(log.groups.length).toBeLessThan(60); // concurrent files share a log fsync
    for (const [path, content] of Object.entries(many)) expect(readFileSync(join(dest, path), 'utf8')).toBe(content);
  });

  it('removes again every file of a group whose records could not be written, and keeps the ones committed before', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 30; i++) many[`g/f-${String(i).padStart(2, '0')}.txt`] = `file ${i}`;
    const drive = await makeDrive({ files: many });
    const dest = tempDir('dest');
    const log = new MemoryLog();
    log.failAfter = 1 + 10; // drive.checked, then the first ten file records; the group that passes ten fails whole
    await expect(importDrive({ drive: drive.root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, destination: dest, clash: 'refuse' })).rejects.toMatchObject({ code: 'LOG_WRITE_FAILED' });
    const recorded = log.events.filter((e) => e.event === 'file.imported').map((e) => e.path!).sort();
    expect(recorded.length).toBeLessThanOrEqual(10);
    // Exactly the files with a committed record are at the destination; no staging file is left.
    expect(listAll(dest).filter((p) => !p.endsWith('/'))).toEqual(recorded);
  });

  it('names no file before the flush that makes its staged bytes durable', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 40; i++) many[`f/${String(i).padStart(2, '0')}.txt`] = `file ${i}`;
    const drive = await makeDrive({ files: many });
    const dest = tempDir('dest');
    const seen: { staged: string[]; named: number }[] = [];
    const { report } = await runImport(drive.root, dest, {
      flushStaged: (folder) => {
        // At each flush: which staged files wait in the staging folder, and how many files already have names.
        const named = listAll(dest).filter((p) => p.startsWith('f/') && !p.endsWith('/')).length;
        seen.push({ staged: readdirSync(folder), named });
        return Promise.resolve();
      },
    });
    expect(report.counts.imported).toBe(40);
    expect(seen.length).toBeGreaterThan(0);
    // A file named by the time of a flush went through an earlier flush: never more names than files flushed before.
    const flushed = new Set<string>();
    for (const s of seen) {
      expect(s.named).toBeLessThanOrEqual(flushed.size);
      for (const name of s.staged) flushed.add(name);
    }
    expect(seen[0]!.named).toBe(0);
  });

  it('refuses the staged files of a group whose flush failed: no name, no staging file left', async () => {
    const drive = await makeDrive({ files: { 'a.txt': 'a', 'b/c.txt': 'c' } });
    const dest = tempDir('dest');
    const { report, log } = await runImport(drive.root, dest, { flushStaged: () => Promise.reject(Object.assign(new Error('I/O error'), { code: 'EIO' })) });
    expect(byPath(report)).toEqual({ 'a.txt': 'COPY_FAILED', 'b/c.txt': 'COPY_FAILED' });
    expect(listAll(dest)).toEqual([]);
    expect(log.events.filter((e) => e.event === 'file.refused').map((e) => e.reason)).toEqual(expect.arrayContaining([expect.stringContaining('EIO')]));
  });

  it('keeps refusing after a failed flush: a later flush that succeeds may cover bytes whose writing failed', async () => {
    const drive = await makeDrive({ files: { 'early.txt': 'first', 'late.txt': 'second' } });
    const dest = tempDir('dest');
    let calls = 0;
    const { report } = await runImport(drive.root, dest, {
      chunkBytes: 1,
      onChunk: async (path) => {
        // late.txt is staged only after the first group's flush has failed, so it is in a later group.
        if (path === 'late.txt') for (let i = 0; i < 300 && calls === 0; i++) await new Promise((r) => setTimeout(r, 10));
      },
      flushStaged: () => {
        calls++;
        return calls === 1 ? Promise.reject(Object.assign(new Error('I/O error'), { code: 'EIO' })) : Promise.resolve();
      },
    });
    expect(calls).toBe(1); // never asked again: the failure stands for the rest of the import
    expect(byPath(report)).toEqual({ 'early.txt': 'COPY_FAILED', 'late.txt': 'COPY_FAILED' });
    expect(report.files.find((f) => f.path === 'late.txt')!.reason).toMatch(/EIO/);
    expect(listAll(dest).filter((p) => !p.startsWith('.portcullis-staging'))).toEqual([]);
  });

  it('fsyncs each staged file instead where the platform has no filesystem flush', async () => {
    const drive = await makeDrive({ files });
    const dest = tempDir('dest');
    const { report } = await runImport(drive.root, dest, { flushStaged: null });
    expect(byPath(report)).toEqual({ 'README.txt': 'IMPORTED', 'firmware/plc-cpu.bin': 'IMPORTED' });
    expect(readFileSync(join(dest, 'firmware/plc-cpu.bin')).equals(big)).toBe(true);
  });

  it('refuses to write through a destination folder swapped for a symlink during the import', async () => {
    const drive = await makeDrive({ files: { 'sub/a.txt': 'first', 'sub/b.txt': 'second' } });
    const dest = tempDir('dest');
    const outside = tempDir('outside');
    let swapped = false;
    const { report } = await runImport(drive.root, dest, {
      chunkBytes: 1,
      onChunk: async (path) => {
        if (path !== 'sub/b.txt' || swapped) return;
        // Wait until a.txt has been committed (an earlier group), then swap the folder for a link outside.
        for (let i = 0; i < 200 && !existsSync(join(dest, 'sub/a.txt')); i++) await new Promise((r) => setTimeout(r, 10));
        renameSync(join(dest, 'sub'), join(dest, 'sub-moved'));
        symlinkSync(outside, join(dest, 'sub'));
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(byPath(report)).toEqual({ 'sub/a.txt': 'IMPORTED', 'sub/b.txt': 'DESTINATION_UNSAFE' });
    expect(readdirSync(outside)).toEqual([]);
  });

  it('takes back every file named in a group whose names could not be flushed, and still logs every other decision', async () => {
    const drive = await makeDrive({ files: { 'good/a.txt': 'a', 'other/b.txt': 'b', 'tampered.txt': 'original' } });
    writeFileSync(join(drive.root, 'tampered.txt'), 'changed!');
    const dest = tempDir('dest');
    const calls: number[] = [];
    const { report, log } = await runImport(drive.root, dest, {
      // The first flush (staged bytes) succeeds; the one after naming fails.
      flushStaged: () => {
        calls.push(listAll(dest).filter((p) => /^(good|other)\/.+\.txt$/u.test(p)).length);
        return calls.length === 1 ? Promise.resolve() : Promise.reject(Object.assign(new Error('I/O error'), { code: 'EIO' }));
      },
      syncFolder: () => Promise.reject(new Error('folders are not fsynced one by one when the filesystem is flushed')),
    });
    expect(calls).toEqual([0, 2]); // the second flush came after both files were named
    expect(byPath(report)).toEqual({ 'good/a.txt': 'COPY_FAILED', 'other/b.txt': 'COPY_FAILED', 'tampered.txt': 'FILE_HASH_MISMATCH' });
    expect(listAll(dest).filter((p) => !p.endsWith('/'))).toEqual([]);
    const recorded: Record<string, string> = Object.fromEntries(log.events.filter((e) => e.path).map((e) => [e.path!, e.code] as const));
    expect(recorded).toEqual({ 'good/a.txt': 'COPY_FAILED', 'other/b.txt': 'COPY_FAILED', 'tampered.txt': 'FILE_HASH_MISMATCH' });
    expect(log.events.find((e) => e.path === 'good/a.txt')!.reason).toMatch(/could not be made durable \(EIO\)/);
  });

  it('refuses only the files of a folder that could not be made durable, and still logs every other decision', async () => {
    const drive = await makeDrive({ files: { 'good/a.txt': 'a', 'bad/b.txt': 'b', 'tampered.txt': 'original' } });
    writeFileSync(join(drive.root, 'tampered.txt'), 'changed!');
    const dest = tempDir('dest');
    const { report, log } = await runImport(drive.root, dest, {
      flushStaged: null, // folders are fsynced one by one where the filesystem cannot be flushed
      syncFolder: (folder) => (folder.endsWith('bad') ? Promise.reject(Object.assign(new Error('I/O error'), { code: 'EIO' })) : Promise.resolve()),
    });
    expect(byPath(report)).toEqual({ 'bad/b.txt': 'COPY_FAILED', 'good/a.txt': 'IMPORTED', 'tampered.txt': 'FILE_HASH_MISMATCH' });
    expect(listAll(dest)).toEqual(['bad/', 'good/', 'good/a.txt']);
    const recorded: Record<string, string> = Object.fromEntries(log.events.filter((e) => e.path).map((e) => [e.path!, e.code] as const));
    expect(recorded).toEqual({ 'bad/b.txt': 'COPY_FAILED', 'good/a.txt': 'IMPORTED', 'tampered.txt': 'FILE_HASH_MISMATCH' });
  });

  it('stages a drive of more than STAGE_ON_WORKERS_FROM_BYTES on worker threads, byte for byte', async () => {
    const image = Buffer.alloc(STAGE_ON_WORKERS_FROM_BYTES + 4096);
    for (let i = 0; i < image.length; i += 4096) image.writeUInt32LE(i, i);
    const drive = await makeDrive({ files: { 'fw/image.bin': image, 'fw/notes.txt': 'n' } });
    const dest = tempDir('dest');
    const { report } = await runImport(drive.root, dest);
    expect(byPath(report)).toEqual({ 'fw/image.bin': 'IMPORTED', 'fw/notes.txt': 'IMPORTED' });
    expect(readFileSync(join(dest, 'fw/image.bin')).equals(image)).toBe(true);
    expect(listAll(dest)).toEqual(['fw/', 'fw/image.bin', 'fw/notes.txt']);
  });

  it('removes staging files a crash left behind before it starts', async () => {
    const drive = await makeDrive({ files: { 'a.txt': 'a' } });
    const dest = tempDir('dest');
    mkdirSync(join(dest, '.portcullis-staging'), { mode: 0o700 }); // as the agent made it
    writeFileSync(join(dest, '.portcullis-staging', `${'0'.repeat(32)}.part`), 'half a file');
    await runImport(drive.root, dest);
    expect(listAll(dest)).toEqual(['a.txt']);
  });

  it('uses the filesystem flush only on kernels whose syncfs reports write errors (Linux 5.8 and later)', () => {
    expect(['6.1.0-28-amd64', '5.8.0', '5.15.0-100-generic', '10.0'].map(syncfsReportsErrors)).toEqual([true, true, true, true]);
    expect(['5.7.19', '5.4.0-150-generic', '4.19.0', 'unknown', ''].map(syncfsReportsErrors)).toEqual([false, false, false, false, false]);
  });
});
