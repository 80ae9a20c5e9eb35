/**
 * The destination side of an import against someone who can change folders
 * while it runs: every folder from the destination root down to a file's
 * parent is checked before the file is named (M1), and the staging folder
 * and the staged files cannot be swapped under the agent (M2). Real folders,
 * real links, real ownership (the suite runs as root, so it can hand a folder
 * to another user as an attacker would have created it).
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DriveReport } from './drive-report.ts';
import { importDrive, type ImportInput } from './import-drive.ts';
import { DEFAULT_IDENTITY, makeDrive, makeTrust, MemoryLog, tempDir } from '../test/support/agent-fixtures.ts';

const STAGING = '.portcullis-staging';
const NOBODY = 65534; // uid and gid of "nobody": a user other than the agent's

async function runImport(root: string, dest: string, extra: Partial<ImportInput> = {}): Promise<{ report: DriveReport; log: MemoryLog }> {
  const log = new MemoryLog();
  const report = await importDrive({ drive: root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, destination: dest, clash: 'refuse', ...extra });
  return { report, log };
}

const byPath = (r: DriveReport): Record<string, string> => Object.fromEntries(r.files.map((f) => [f.path, f.code]));

/** Every file (not folder) under a folder, relative. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  ).sort();
}

/** Waits (up to 5 s) until `path` exists: the earlier group has named its file. */
async function untilExists(path: string): Promise<void> {
  for (let i = 0; i < 500 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('import: every folder from the destination root down is checked before a file is named', () => {
  it('refuses a file whose grandparent folder was swapped for a symlink during the import, and writes nothing outside', async () => {
    const drive = await makeDrive({ files: { 'a/b/first.txt': 'first', 'a/b/second.txt': 'second' } });
    const dest = tempDir('dest');
    const outside = tempDir('outside');
    mkdirSync(join(outside, 'b')); // the link leads to a real folder of the same shape
    let swapped = false;
    const { report, log } = await runImport(drive.root, dest, {
      onChunk: async (path) => {
        if (path !== 'a/b/second.txt' || swapped) return;
        // Once first.txt is named (an earlier group), a/ becomes a link: a/b still looks like a real folder.
        await untilExists(join(dest, 'a/b/first.txt'));
        renameSync(join(dest, 'a'), join(dest, 'a-moved'));
        symlinkSync(outside, join(dest, 'a'));
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(byPath(report)).toEqual({ 'a/b/first.txt': 'IMPORTED', 'a/b/second.txt': 'DESTINATION_UNSAFE' });
    expect(filesUnder(outside)).toEqual([]);
    expect(log.events.filter((e) => e.event === 'file.imported').map((e) => e.path)).toEqual(['a/b/first.txt']);
  });

  it('refuses a file when the destination root itself was swapped for a symlink during the import', async () => {
    const drive = await makeDrive({ files: { 'a/first.txt': 'first', 'a/second.txt': 'second' } });
    const parent = tempDir('dest-parent');
    const dest = join(parent, 'inbox');
    mkdirSync(dest);
    const outside = tempDir('outside');
    mkdirSync(join(outside, 'a'));
    let swapped = false;
    const { report, log } = await runImport(drive.root, dest, {
      onChunk: async (path) => {
        if (path !== 'a/second.txt' || swapped) return;
        await untilExists(join(dest, 'a/first.txt'));
        renameSync(dest, join(parent, 'inbox-moved'));
        symlinkSync(outside, dest);
        // The staging folder is reached through the link too, so that the link itself would succeed.
        symlinkSync(join(parent, 'inbox-moved', STAGING), join(outside, STAGING));
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(byPath(report)).toEqual({ 'a/first.txt': 'IMPORTED', 'a/second.txt': 'DESTINATION_UNSAFE' });
    expect(filesUnder(join(outside, 'a'))).toEqual([]);
    expect(log.events.filter((e) => e.event === 'file.imported').map((e) => e.path)).toEqual(['a/first.txt']);
  });

  it('creates no folder outside the destination when an ancestor was swapped before a new folder is made', async () => {
    const drive = await makeDrive({ files: { 'a/first.txt': 'first', 'a/new/second.txt': 'second' } });
    const dest = tempDir('dest');
    const outside = tempDir('outside');
    let swapped = false;
    const { report } = await runImport(drive.root, dest, {
      onChunk: async (path) => {
        if (path !== 'a/new/second.txt' || swapped) return;
        await untilExists(join(dest, 'a/first.txt'));
        renameSync(join(dest, 'a'), join(dest, 'a-moved'));
        symlinkSync(outside, join(dest, 'a'));
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(byPath(report)).toEqual({ 'a/first.txt': 'IMPORTED', 'a/new/second.txt': 'DESTINATION_UNSAFE' });
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe('import: a file taken back is removed only where the agent put it', () => {
  it('does not delete a file outside the destination when a folder was swapped before a failed group is taken back', async () => {
    const drive = await makeDrive({ files: { 'a/victim.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    const outside = tempDir('outside');
    writeFileSync(join(outside, 'victim.txt'), 'someone else\'s file\n');
    const log = new MemoryLog();
    log.failAfter = 1; // drive.checked is written; the group with the file's record is not
    let flushes = 0;
    await expect(importDrive({
      drive: drive.root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, destination: dest, clash: 'refuse',
      // The second flush comes after the file was named: swap its folder for a link to where another file of that name lives.
      flushStaged: () => {
        if (++flushes === 2) {
          renameSync(join(dest, 'a'), join(dest, 'a-moved'));
          symlinkSync(outside, join(dest, 'a'));
        }
        return Promise.resolve();
      },
    })).rejects.toMatchObject({ code: 'LOG_WRITE_FAILED' });
    expect(flushes).toBe(2);
    expect(readFileSync(join(outside, 'victim.txt'), 'utf8')).toBe('someone else\'s file\n');
  });
});

describe('import: the staging folder and the staged files belong to the agent alone', () => {
  it('never names a staged file that was replaced between hashing and linking', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    let replaced = 0;
    const { report, log } = await runImport(drive.root, dest, {
      // Between the hash and the link: put other bytes under every staged name, as a user who could write there would.
      flushStaged: (folder) => {
        for (const name of readdirSync(folder)) {
          unlinkSync(join(folder, name));
          writeFileSync(join(folder, name), 'attacker bytes\n');
          replaced++;
        }
        return Promise.resolve();
      },
    });
    expect(replaced).toBe(1);
    expect(byPath(report)).toEqual({ 'README.txt': 'COPY_FAILED' });
    expect(existsSync(join(dest, 'README.txt'))).toBe(false);
    expect(log.events.filter((e) => e.event === 'file.imported')).toEqual([]);
  });

  it('refuses a pre-created staging folder that another user owns and that holds files, and imports nothing', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    const staging = join(dest, STAGING);
    mkdirSync(staging, { mode: 0o777 });
    writeFileSync(join(staging, 'planted'), 'x');
    chownSync(staging, NOBODY, NOBODY);
    await expect(runImport(drive.root, dest)).rejects.toMatchObject({ code: 'DESTINATION_INVALID' });
    expect(filesUnder(dest)).toEqual([`${STAGING}/planted`]);
    expect(readFileSync(join(staging, 'planted'), 'utf8')).toBe('x'); // evidence is kept, not deleted
  });

  it('refuses a pre-created staging folder of its own that others may write into and that holds files', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    const staging = join(dest, STAGING);
    mkdirSync(staging);
    writeFileSync(join(staging, 'planted'), 'x');
    chmodSync(staging, 0o777);
    await expect(runImport(drive.root, dest)).rejects.toMatchObject({ code: 'DESTINATION_INVALID' });
    expect(filesUnder(dest)).toEqual([`${STAGING}/planted`]);
  });

  it('replaces an empty pre-created staging folder that another user owns with a private one of its own', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    const staging = join(dest, STAGING);
    mkdirSync(staging, { mode: 0o777 });
    chownSync(staging, NOBODY, NOBODY);
    const seen: Array<{ uid: number; mode: number }> = [];
    const { report } = await runImport(drive.root, dest, {
      flushStaged: (folder) => {
        const stats = lstatSync(folder);
        seen.push({ uid: stats.uid, mode: stats.mode & 0o777 });
        return Promise.resolve();
      },
    });
    expect(byPath(report)).toEqual({ 'README.txt': 'IMPORTED' });
    expect(seen.length).toBeGreaterThan(0); // a flush for the staged bytes, another for the names
    for (const s of seen) expect(s).toEqual({ uid: process.getuid!(), mode: 0o700 });
    expect(filesUnder(dest)).toEqual(['README.txt']);
  });

  it('refuses a staging path that is a symlink to a folder elsewhere', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'approved bytes\n' } });
    const dest = tempDir('dest');
    const elsewhere = tempDir('elsewhere');
    symlinkSync(elsewhere, join(dest, STAGING));
    await expect(runImport(drive.root, dest)).rejects.toMatchObject({ code: 'DESTINATION_INVALID' });
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});
