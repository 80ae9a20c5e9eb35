import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { walkDrive, type WalkEntry, type WalkLimits, type WalkStop } from './walk.ts';

const roomy: WalkLimits = { maxEntries: 1000, maxDepth: 8, maxTotalBytes: 1 << 30 };

async function collect(root: string, limits = roomy) {
  const entries: WalkEntry[] = [];
  const manifestFolder: string[] = [];
  const tooDeep: string[] = [];
  const walk = walkDrive(root, limits, { onManifestFolderEntry: (e) => manifestFolder.push(e.display), onTooDeep: (e) => tooDeep.push(e.display) });
  let step = await walk.next();
  while (!step.done) {
    entries.push(step.value);
    step = await walk.next();
  }
  const stop: WalkStop | null = step.value;
  return { entries, stop, manifestFolder, tooDeep };
}

describe('walkDrive', () => {
  it('reports symlinks, FIFOs and non-UTF-8 names without following or losing them', async () => {
    const root = mkdtempSync(join(tmpdir(), 'walk-'));
    const secret = mkdtempSync(join(tmpdir(), 'outside-'));
    writeFileSync(join(secret, 'passwd'), 'root:x:0:0');
    writeFileSync(join(root, 'a.txt'), 'hello');
    symlinkSync(join(secret, 'passwd'), join(root, 'link-out'));
    symlinkSync(secret, join(root, 'dir-link'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    writeFileSync(Buffer.concat([Buffer.from(root + '/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'x');
    const { entries, stop } = await collect(root);
    expect(stop).toBeNull();
    expect(entries.map((e) => [e.display, e.kind, e.path === null])).toEqual([
      ['a.txt', 'file', false],
      ['bad\\xff\\xfe.txt', 'file', true],
      ['dir-link', 'symlink', false],
      ['link-out', 'symlink', false],
      ['pipe', 'fifo', false],
    ]);
  });

  it('walks folders in name order and keeps .portcullis content apart', async () => {
    const root = mkdtempSync(join(tmpdir(), 'walk-'));
    mkdirSync(join(root, 'b/c'), { recursive: true });
    mkdirSync(join(root, '.portcullis'));
    writeFileSync(join(root, '.portcullis/manifest.dsse.json'), '{}');
    writeFileSync(join(root, '.portcullis/extra.exe'), 'MZ');
    writeFileSync(join(root, 'b/c/deep.txt'), 'x');
    writeFileSync(join(root, 'b/z.txt'), 'x');
    writeFileSync(join(root, 'a.txt'), 'x');
    const { entries, manifestFolder } = await collect(root);
    expect(entries.map((e) => e.path)).toEqual(['a.txt', 'b', 'b/c', 'b/z.txt', 'b/c/deep.txt']);
    expect(manifestFolder.sort()).toEqual(['.portcullis', '.portcullis/extra.exe', '.portcullis/manifest.dsse.json']);
  });

  it('stops with LIMIT_EXCEEDED past the entry count or the total size', async () => {
    const root = mkdtempSync(join(tmpdir(), 'walk-'));
    for (let i = 0; i < 5; i++) writeFileSync(join(root, `f${i}`), 'x'.repeat(100));
    expect((await collect(root, { ...roomy, maxEntries: 4 })).stop).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect((await collect(root, { ...roomy, maxTotalBytes: 450 })).stop).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect((await collect(root, { ...roomy, maxEntries: 5, maxTotalBytes: 500 })).stop).toBeNull();
  });

  it('does not descend past the depth limit and reports the folder it stopped at', async () => {
    const root = mkdtempSync(join(tmpdir(), 'walk-'));
    mkdirSync(join(root, 'l1/l2/l3'), { recursive: true });
    writeFileSync(join(root, 'l1/l2/l3/x.txt'), 'x');
    const { entries, tooDeep } = await collect(root, { ...roomy, maxDepth: 2 });
    expect(entries.map((e) => e.path)).toEqual(['l1', 'l1/l2']);
    expect(tooDeep).toEqual(['l1/l2']);
  });
});
