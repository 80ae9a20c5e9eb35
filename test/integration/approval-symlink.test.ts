/**
 * The drive is hostile: a `.portcullis` on a scanned folder that is a symlink
 * (or anything but a real folder on the drive) is never followed. The kiosk
 * neither deletes nor writes a manifest or receipt wherever it points, and
 * the drive is rejected with the reason. The same for the files inside a real
 * `.portcullis` folder (manifest, receipt and their temporary names).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_PATH, RECEIPT_PATH } from '../../manifest/index.ts';
import { DriveError, openFolderTarget } from '../../kiosk/drive/drive-target.ts';
import { writeApproval } from '../../kiosk/approval/write-approval.ts';
import { generateKeyFiles, loadSigningKey } from '../../kiosk/cli/keygen.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';

const work = mkdtempSync(join(tmpdir(), 'approval-symlink-'));
let keyPath: string;

beforeAll(async () => {
  keyPath = (await generateKeyFiles(join(work, 'keys'))).privateKeyPath;
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const quiet = { out: () => undefined, err: () => undefined };
const MANIFEST_FILES = [{ path: MANIFEST_PATH, content: new TextEncoder().encode('{}') }, { path: RECEIPT_PATH, content: new TextEncoder().encode('receipt') }];

/** A folder outside the drive holding files named like a manifest and a receipt. */
function victim(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'manifest.dsse.json'), 'precious manifest');
  writeFileSync(join(dir, 'receipt.txt'), 'precious receipt');
  return dir;
}

function expectUntouched(dir: string): void {
  expect(readdirSync(dir).sort()).toEqual(['manifest.dsse.json', 'receipt.txt']);
  expect(readFileSync(join(dir, 'manifest.dsse.json'), 'utf8')).toBe('precious manifest');
  expect(readFileSync(join(dir, 'receipt.txt'), 'utf8')).toBe('precious receipt');
}

function drive(name: string): string {
  const root = join(work, name);
  mkdirSync(root);
  writeFileSync(join(root, 'README.txt'), 'commissioning notes\n');
  return root;
}

describe('a scanned folder whose .portcullis is a symlink', () => {
  it('is rejected, and nothing is deleted or written where the symlink points', async () => {
    const outside = victim('victim-scan');
    const root = drive('drive-scan');
    symlinkSync(outside, join(root, '.portcullis'));
    const outcome = await runScan({ path: root, json: true, keyPath, dbPath: null, clamavDb: 'test', ...quiet });
    try {
      expect(outcome.manifest).toBeNull();
      expect(outcome.summary.report.decision.verdict).toBe('rejected');
      expect(outcome.summary.report.decision.driveReasons.map((r) => r.code)).toContain('MANIFEST_WRITE_FAILED');
      expect(outcome.summary.notes.join('\n')).not.toMatch(/manifest written/);
    } finally {
      outcome.summary.report.close();
    }
    expectUntouched(outside);
    expect(lstatSync(join(root, '.portcullis')).isSymbolicLink()).toBe(true);
  });
});

describe('the folder target', () => {
  it('neither removes nor writes through a .portcullis symlink', async () => {
    const outside = victim('victim-target');
    const root = drive('drive-target');
    symlinkSync(outside, join(root, '.portcullis'));
    const target = await openFolderTarget(root);
    expect(await target.removeManifest()).toBe(false);
    await expect(target.writeManifest(MANIFEST_FILES)).rejects.toMatchObject({ code: 'MANIFEST_FOLDER_UNSAFE' });
    await expect(target.readBack(MANIFEST_PATH)).rejects.toBeInstanceOf(DriveError);
    expectUntouched(outside);
  });

  it('refuses a .portcullis that is a file, and leaves the file as it was', async () => {
    const root = drive('drive-file');
    writeFileSync(join(root, '.portcullis'), 'not a folder');
    const target = await openFolderTarget(root);
    expect(await target.removeManifest()).toBe(false);
    await expect(target.writeManifest(MANIFEST_FILES)).rejects.toMatchObject({ code: 'MANIFEST_FOLDER_UNSAFE' });
    expect(readFileSync(join(root, '.portcullis'), 'utf8')).toBe('not a folder');
  });

  it('refuses a .portcullis that is another filesystem mounted on the drive', async () => {
    const root = drive('drive-mount');
    mkdirSync(join(root, '.portcullis'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(root, '.portcullis')]);
    try {
      const target = await openFolderTarget(root);
      await expect(target.writeManifest(MANIFEST_FILES)).rejects.toMatchObject({ code: 'MANIFEST_FOLDER_UNSAFE' });
      expect(readdirSync(join(root, '.portcullis'))).toEqual([]);
    } finally {
      execFileSync('umount', ['--lazy', join(root, '.portcullis')]);
    }
  });

  it('replaces symlinks planted as the manifest, the receipt and their temporary names instead of writing through them', async () => {
    const outside = victim('victim-files');
    const root = drive('drive-files');
    mkdirSync(join(root, '.portcullis'));
    symlinkSync(join(outside, 'manifest.dsse.json'), join(root, MANIFEST_PATH));
    symlinkSync(join(outside, 'receipt.txt'), join(root, `${RECEIPT_PATH}.partial`));
    const target = await openFolderTarget(root);
    expect(await target.removeManifest()).toBe(true);
    expect(existsSync(join(root, MANIFEST_PATH))).toBe(false);
    symlinkSync(join(outside, 'manifest.dsse.json'), join(root, `${MANIFEST_PATH}.partial`));
    symlinkSync(join(outside, 'receipt.txt'), join(root, RECEIPT_PATH));
    await target.writeManifest(MANIFEST_FILES);
    expect(lstatSync(join(root, MANIFEST_PATH)).isFile()).toBe(true);
    expect(lstatSync(join(root, RECEIPT_PATH)).isFile()).toBe(true);
    expect(readdirSync(join(root, '.portcullis')).sort()).toEqual(['manifest.dsse.json', 'receipt.txt']);
    expect(Buffer.from(await target.readBack(MANIFEST_PATH)).toString()).toBe('{}');
    expectUntouched(outside);
  });

  it('writes a real .portcullis folder when there is none', async () => {
    const root = drive('drive-plain');
    const target = await openFolderTarget(root);
    expect(await target.removeManifest()).toBe(false);
    await target.writeManifest(MANIFEST_FILES);
    expect(lstatSync(join(root, '.portcullis')).isDirectory()).toBe(true);
    expect(readFileSync(join(root, RECEIPT_PATH), 'utf8')).toBe('receipt');
    expect(await target.removeManifest()).toBe(true);
    expect(readdirSync(join(root, '.portcullis'))).toEqual([]);
  });
});

describe('a read-only mount made writable for the manifest', () => {
  it('keeps no manifest when the drive cannot be made read-only again afterwards', async () => {
    const root = drive('drive-remount');
    const calls: string[] = [];
    const writable = {
      makeWritable: () => { calls.push('rw'); return Promise.resolve(); },
      makeReadOnly: () => { calls.push('ro'); return Promise.reject(new Error('mount: /media/x: device is busy')); },
    };
    const target = await openFolderTarget(root, { writable });
    await expect(target.writeManifest(MANIFEST_FILES)).rejects.toMatchObject({ code: 'MANIFEST_WRITE_FAILED' });
    expect(calls).toEqual(['rw', 'ro']);
    expect(existsSync(join(root, MANIFEST_PATH))).toBe(false);
    expect(existsSync(join(root, RECEIPT_PATH))).toBe(false);
  });
});

describe('writing an approval', () => {
  it('takes the manifest off the drive again when it cannot be read back', async () => {
    const root = drive('drive-readback');
    const folder = await openFolderTarget(root);
    const target = { ...folder, readBack: () => Promise.reject(new DriveError('MANIFEST_WRITE_FAILED', 'read-back refused for this test')) };
    const content = new TextEncoder().encode('commissioning notes\n');
    const { createHash } = await import('node:crypto');
    const { blake3 } = await import('hash-wasm');
    const file = {
      path: 'README.txt', display: 'README.txt', size: content.length, verdict: 'clean' as const, reasons: [], allowlistEntry: null, controlledClass: null,
      digest: { sha256: createHash('sha256').update(content).digest('hex'), blake3: await blake3(content) },
    };
    await expect(writeApproval(target, {
      decision: { verdict: 'approved', files: [file], driveReasons: [] },
      key: await loadSigningKey(keyPath),
      kioskId: 'test-kiosk',
      operatorId: null,
      scan: { id: '00000000-0000-4000-8000-000000000000', fileCount: 1, byteCount: content.length },
      engines: { clamav: null, yara: null },
      allowlist: { version: 'test', digest: `sha256:${'0'.repeat(64)}` },
      policy: { id: 'test', digest: `sha256:${'0'.repeat(64)}` },
      validityHours: 1,
      now: new Date(),
    })).rejects.toMatchObject({ code: 'MANIFEST_WRITE_FAILED' });
    expect(existsSync(join(root, MANIFEST_PATH))).toBe(false);
    expect(existsSync(join(root, RECEIPT_PATH))).toBe(false);
  });
});
