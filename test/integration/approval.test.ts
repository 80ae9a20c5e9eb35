/**
 * The approval flow end to end on real FAT32 and exFAT images: the real clamd
 * and YARA rules, the manifest written onto the image, read back and verified
 * by the spec, the audit log recorded; stale manifests, full drives, a scan
 * killed with SIGKILL, and a tampered log row.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_PATH, verifyManifest } from '../../manifest/index.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { EICAR } from '../../kiosk/engines/clamav/test-database.ts';
import { generateKeyFiles, loadSigningKey } from '../../kiosk/cli/keygen.ts';
import { buildDriveImage, type ImageFilesystem } from '../support/image-builder.ts';
import { readFileFromImage, writeFilesToImage } from '../../kiosk/drive/image-access.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';
import type { SigningKey } from '../../manifest/keys.ts';

const work = mkdtempSync(join(tmpdir(), 'approval-it-'));
let keyPath: string;
let key: SigningKey;

beforeAll(async () => {
  const generated = await generateKeyFiles(join(work, 'keys'));
  keyPath = generated.privateKeyPath;
  key = await loadSigningKey(keyPath);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const quiet = { out: () => undefined, err: () => undefined };
const pe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(300, 0x90)]);

async function image(fs: ImageFilesystem, name: string, sizeMiB = fs === 'fat32' ? 34 : 8): Promise<string> {
  const path = join(work, `${name}.img`);
  await buildDriveImage(path, {
    filesystem: fs,
    sizeMiB,
    label: 'LINE3',
    volumeId: '1A2B-3C4D',
    files: [
      { path: 'README.txt', content: 'commissioning notes\n' },
      { path: 'Projekte/Überdruck Prüfung.txt', content: 'long unicode name\n' },
      { path: 'recipes/recipe-42.csv', content: 'step,temp\n1,180\n', hidden: true },
      { path: 'tools/eicar.txt', content: EICAR },
      { path: 'docs/manual.pdf', content: pe },
    ],
  });
  return path;
}

function trustOf(k: SigningKey) {
  return { keys: [{ keyId: k.keyId, publicKey: k.publicKey }] };
}

describe.each(['fat32', 'exfat'] as const)('approving a %s image', (fs) => {
  it('writes a manifest that verifies by the spec, lists exactly the files that may pass, and records the scan', async () => {
    const img = await image(fs, `ok-${fs}`);
    const db = join(work, `audit-${fs}.db`);
    const outcome = await runScan({ path: img, image: true, json: true, keyPath, dbPath: db, clamavDb: 'test', usb: { vendorId: '0781', productId: '5567', serial: 'SN123' }, ...quiet });
    expect(outcome.summary.report.decision.verdict).toBe('partial');
    const verified = verifyManifest(await readFileFromImage(img, MANIFEST_PATH), trustOf(key), new Date());
    const names = verified.statement.subject.map((s) => s.name);
    expect(names).toEqual(['Projekte/Überdruck Prüfung.txt', 'README.txt', 'recipes/recipe-42.csv']);
    const blocked = verified.statement.predicate.blocked.map((b) => [b.path, b.reasons]);
    expect(blocked).toEqual([['docs/manual.pdf', ['TYPE_MISMATCH', 'NOT_ALLOWLISTED']], ['tools/eicar.txt', ['MALWARE']]]);
    for (const b of verified.statement.predicate.blocked) expect(names).not.toContain(b.path);
    expect(verified.statement.predicate.media).toMatchObject({ filesystem: fs === 'exfat' ? 'exfat' : 'vfat', volumeId: '1A2B-3C4D', label: 'LINE3', usb: { vendorId: '0781', productId: '5567', serial: 'SN123' } });
    expect(verified.payloadDigest).toBe(outcome.manifest?.digest);
    const receipt = new TextDecoder().decode(await readFileFromImage(img, '.portcullis/receipt.txt'));
    expect(receipt).toMatch(/Verdict: +PARTIAL/);
    const store = openAuditStore(db, { readonly: true });
    expect(store.verifyChain().ok).toBe(true);
    expect(store.getScan(outcome.scanId)?.manifest?.digest ?? JSON.stringify(store.getScan(outcome.scanId))).toContain(verified.payloadDigest);
    store.close();
  });

  it('removes a stale manifest before scanning and leaves none on a rejected drive', async () => {
    const img = await image(fs, `stale-${fs}`);
    await runScan({ path: img, image: true, json: true, keyPath, dbPath: null, clamavDb: 'test', ...quiet });
    const first = await readFileFromImage(img, MANIFEST_PATH);
    // Now everything on the drive is blocked: the old approval must not survive.
    await writeFilesToImage(img, [{ path: 'README.txt', content: EICAR }, { path: 'Projekte/Überdruck Prüfung.txt', content: EICAR }, { path: 'recipes/recipe-42.csv', content: EICAR }]);
    const second = await runScan({ path: img, image: true, json: true, keyPath, dbPath: null, clamavDb: 'test', ...quiet });
    expect(first.length).toBeGreaterThan(0);
    expect(second.summary.report.decision.verdict).toBe('rejected');
    expect(second.removedOldManifest).toBe(true);
    await expect(readFileFromImage(img, MANIFEST_PATH)).rejects.toMatchObject({ code: 'MEDIA_NOT_FOUND' });
  });
});

describe('approval edge cases', () => {
  it('rejects a drive with no room for the manifest and leaves nothing behind', async () => {
    const img = join(work, 'full.img');
    await buildDriveImage(img, { filesystem: 'exfat', sizeMiB: 3, label: 'FULL', files: [{ path: 'data.txt', content: 'hello\n' }, { path: 'filler.txt', size: 900_000, fill: 0x41 }] });
    // Fill the rest of the volume so the manifest cannot fit.
    let n = 0;
    for (const size of [64 * 1024, 4096, 512]) {
      for (;;) {
        try {
          await writeFilesToImage(img, [{ path: `pad${n++}.txt`, content: Buffer.alloc(size, 0x42) }]);
        } catch (error) {
          expect(error).toMatchObject({ code: 'MEDIA_FULL' });
          break;
        }
      }
    }
    const outcome = await runScan({ path: img, image: true, json: true, keyPath, dbPath: null, clamavDb: 'test', ...quiet });
    expect(outcome.summary.report.decision.verdict).toBe('rejected');
    expect(outcome.summary.report.decision.driveReasons.map((r) => r.code)).toContain('MEDIA_FULL');
    expect([...outcome.summary.report.decision.files].filter((f) => f.verdict !== 'blocked')).toEqual([]);
    await expect(readFileFromImage(img, MANIFEST_PATH)).rejects.toMatchObject({ code: 'MEDIA_NOT_FOUND' });
  });

  it('leaves no manifest and an intact log when the kiosk is killed with SIGKILL mid-scan', async () => {
    const dir = mkdtempSync(join(work, 'killed-'));
    const drive = join(dir, 'drive');
    const db = join(dir, 'audit.db');
    const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
    mkdirSync(join(drive, '.portcullis'), { recursive: true });
    writeFileSync(join(drive, MANIFEST_PATH), '{"stale":true}');
    for (let i = 0; i < 200; i++) writeFileSync(join(drive, `f${i}.bin.txt`), Buffer.alloc(1024 * 1024, i));
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../kiosk/main.ts'), 'scan', drive, '--key', keyPath, '--db', db, '--clamav-db', 'test', '--work-dir', join(dir, 'work')], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Kill once the scan is under way (the engines are up and files are being read).
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`the scan never started: ${seen}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        seen += d.toString();
        if (/self-test/.test(seen)) setTimeout(() => { clearTimeout(timer); child.kill('SIGKILL'); resolve(); }, 300);
      });
    });
    await new Promise((r) => child.once('exit', r));
    // The killed kiosk's clamd does not outlive it: its watchdog ends it within moments.
    const clamdAlive = (): boolean => spawnSync('pgrep', ['-f', join(dir, 'work')]).status === 0;
    for (let i = 0; i < 100 && clamdAlive(); i++) await new Promise((r) => setTimeout(r, 100));
    const leftOver = clamdAlive();
    if (leftOver) spawnSync('pkill', ['-f', join(dir, 'work')]); // clean up before failing
    expect(leftOver).toBe(false);
    expect(existsSync(join(drive, MANIFEST_PATH))).toBe(false);
    const store = openAuditStore(db, { readonly: true });
    expect(store.verifyChain().ok).toBe(true);
    const scans = store.listScans();
    store.close();
    expect(scans.map((s) => s.status)).toEqual(['interrupted']);
  });

  it('makes log verify fail at the row that was edited in the database', async () => {
    const dir = mkdtempSync(join(work, 'edited-'));
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir, 'drive'));
    writeFileSync(join(dir, 'drive', 'a.txt'), 'fine\n');
    writeFileSync(join(dir, 'drive', 'b.txt'), EICAR);
    const db = join(dir, 'audit.db');
    await runScan({ path: join(dir, 'drive'), json: true, keyPath, dbPath: db, clamavDb: 'test', ...quiet });
    const raw = new Database(db);
    // An attacker with the file drops the append-only triggers first.
    for (const t of raw.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as Array<{ name: string }>) raw.exec(`DROP TRIGGER "${t.name}"`);
    const row = raw.prepare("SELECT seq FROM files WHERE path = 'b.txt'").get() as { seq: number };
    raw.prepare("UPDATE files SET verdict = 'clean' WHERE seq = ?").run(row.seq);
    raw.close();
    const store = openAuditStore(db, { readonly: true });
    const result = store.verifyChain();
    store.close();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.first).toMatchObject({ table: 'files', seq: row.seq });
  });
});
