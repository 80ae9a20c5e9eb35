/**
 * A drive mounted read-only gets its manifest only through the writable
 * switch, and is read-only again afterwards. Uses a real read-only bind mount
 * where this machine allows mounting; elsewhere says why and checks the
 * switch's calls instead.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MANIFEST_PATH, verifyManifest } from '../../manifest/index.ts';
import { generateKeyFiles, loadSigningKey } from '../../kiosk/cli/keygen.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';

const work = mkdtempSync(join(tmpdir(), 'ro-mount-'));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts.reverse()) {
    try { execFileSync('umount', [m]); } catch { /* already gone */ }
  }
});

function tryReadOnlyBind(source: string, target: string): string | null {
  try {
    execFileSync('mount', ['--bind', source, target], { stdio: 'pipe' });
    mounts.push(target);
    execFileSync('mount', ['-o', 'remount,ro,bind', target], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `cannot make a read-only bind mount here (${(error as Error).message.split('\n')[0]}): checking the switch's calls instead`;
  }
}

describe('a read-only mounted drive', () => {
  it('is made writable only around the manifest and carries a verified manifest afterwards', async () => {
    const source = join(work, 'source');
    const mnt = join(work, 'mnt');
    mkdirSync(source);
    mkdirSync(mnt);
    writeFileSync(join(source, 'README.txt'), 'hello\n');
    const keys = await generateKeyFiles(join(work, 'keys'));
    const why = tryReadOnlyBind(source, mnt);
    const calls: string[] = [];
    const writable = why === null
      ? {
          makeWritable: () => { calls.push('rw'); execFileSync('mount', ['-o', 'remount,rw,bind', mnt]); return Promise.resolve(); },
          makeReadOnly: () => { calls.push('ro'); execFileSync('mount', ['-o', 'remount,ro,bind', mnt]); return Promise.resolve(); },
        }
      : { makeWritable: () => { calls.push('rw'); return Promise.resolve(); }, makeReadOnly: () => { calls.push('ro'); return Promise.resolve(); } };
    if (why) console.warn(why);
    const root = why === null ? mnt : source;
    if (why === null) await expect(writeFile(join(mnt, 'probe.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    const outcome = await runScan({ path: root, json: true, keyPath: keys.privateKeyPath, dbPath: null, clamavDb: 'test', writable, out: () => undefined, err: () => undefined });
    expect(outcome.summary.report.decision.verdict).toBe('approved');
    expect(calls).toEqual(['rw', 'ro']);
    const { readFileSync } = await import('node:fs');
    const key = await loadSigningKey(keys.privateKeyPath);
    expect(verifyManifest(readFileSync(join(root, MANIFEST_PATH)), { keys: [{ keyId: key.keyId, publicKey: key.publicKey }] }, new Date()).statement.subject.map((s) => s.name)).toEqual(['README.txt']);
    if (why === null) await expect(writeFile(join(mnt, 'probe.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
  });
});
