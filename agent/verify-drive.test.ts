import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MEDIA_ADVICE, type DriveIdentity } from './drive-identity.ts';
import type { DriveReport } from './drive-report.ts';
import { STAGE_ON_WORKERS_FROM_BYTES } from './staging.ts';
import { verifyDrive } from './verify-drive.ts';
import type { TrustStore } from './trust-store.ts';
import { MANIFEST_PATH } from '../manifest/index.ts';
import { DEFAULT_IDENTITY, kioskKey, makeDrive, makeTrust, MemoryLog, otherKey, tempDir, writeTrust } from '../test/support/agent-fixtures.ts';

const HOUR = 3600 * 1000;
const files = { 'README.txt': 'hello plant\n', 'firmware/plc-cpu.bin': Buffer.alloc(70_000, 0x5a) };

async function verify(root: string, trust: TrustStore = makeTrust(), identity: DriveIdentity | null = DEFAULT_IDENTITY, now = new Date()) {
  const log = new MemoryLog();
  const report = await verifyDrive({ drive: root, trust, now, identity, log });
  return { report, log };
}

const codes = (r: DriveReport): Record<string, string> => Object.fromEntries(r.files.map((f) => [f.path, f.code]));

describe('verify: the drive-level decision', () => {
  it('approves a fresh kiosk manifest from a trusted key and permits every listed file', async () => {
    const drive = await makeDrive({ files });
    const { report, log } = await verify(drive.root);
    expect(report).toMatchObject({ approved: true, code: 'APPROVED', keyId: kioskKey.keyId, kiosk: 'gate-1' });
    expect(codes(report)).toEqual({ 'README.txt': 'PERMITTED', 'firmware/plc-cpu.bin': 'PERMITTED' });
    expect(log.events.map((e) => [e.event, e.code])).toEqual([
      ['drive.checked', 'APPROVED'],
      ['file.checked', 'PERMITTED'],
      ['file.checked', 'PERMITTED'],
      ['verify.finished', 'APPROVED'],
    ]);
  });

  it('refuses a drive without a manifest with NO_MANIFEST', async () => {
    const drive = await makeDrive({ files });
    rmSync(join(drive.root, '.portcullis'), { recursive: true });
    const { report } = await verify(drive.root);
    expect(report).toMatchObject({ approved: false, code: 'NO_MANIFEST' });
    expect(report.files).toEqual([]);
  });

  it('refuses a manifest that is a symlink with MANIFEST_UNREADABLE and never follows it', async () => {
    const drive = await makeDrive({ files });
    const real = join(drive.root, 'elsewhere.json');
    writeFileSync(real, drive.envelope);
    rmSync(join(drive.root, MANIFEST_PATH));
    symlinkSync(real, join(drive.root, MANIFEST_PATH));
    expect((await verify(drive.root)).report).toMatchObject({ approved: false, code: 'MANIFEST_UNREADABLE' });
  });

  it('refuses an expired manifest with MANIFEST_EXPIRED', async () => {
    const drive = await makeDrive({ files, issuedAt: new Date(Date.now() - 14 * HOUR), validitySeconds: 12 * 3600 });
    expect((await verify(drive.root)).report).toMatchObject({ approved: false, code: 'MANIFEST_EXPIRED' });
  });

  it('refuses a manifest issued in the future with MANIFEST_NOT_YET_VALID', async () => {
    const drive = await makeDrive({ files, issuedAt: new Date(Date.now() + 2 * HOUR) });
    expect((await verify(drive.root)).report).toMatchObject({ approved: false, code: 'MANIFEST_NOT_YET_VALID' });
  });

  it('refuses a manifest signed by a key the store does not hold with KEY_UNTRUSTED', async () => {
    const drive = await makeDrive({ files, key: otherKey });
    expect((await verify(drive.root)).report).toMatchObject({ approved: false, code: 'KEY_UNTRUSTED' });
  });

  it('refuses a key outside its trusted period with KEY_UNTRUSTED', async () => {
    const drive = await makeDrive({ files });
    const trust = makeTrust({ keys: [{ key: kioskKey, notAfter: new Date(Date.now() - HOUR) }] });
    expect((await verify(drive.root, trust)).report).toMatchObject({ approved: false, code: 'KEY_UNTRUSTED' });
  });

  it('refuses a manifest signed by a revoked key with KEY_REVOKED', async () => {
    const drive = await makeDrive({ files });
    const trust = makeTrust({ revoked: [kioskKey.keyId] });
    expect((await verify(drive.root, trust)).report).toMatchObject({ approved: false, code: 'KEY_REVOKED' });
  });

  it('refuses a manifest changed after signing with SIGNATURE_INVALID', async () => {
    const drive = await makeDrive({ files });
    const envelope = JSON.parse(Buffer.from(drive.envelope).toString()) as { payload: string };
    const payload = Buffer.from(envelope.payload, 'base64').toString().replace('"T-1042"', '"T-9999"');
    envelope.payload = Buffer.from(payload).toString('base64');
    writeFileSync(join(drive.root, MANIFEST_PATH), JSON.stringify(envelope));
    expect((await verify(drive.root)).report).toMatchObject({ approved: false, code: 'SIGNATURE_INVALID' });
  });

  it('refuses a manifest older than the local maximum age with MANIFEST_TOO_OLD, though it has not expired', async () => {
    const drive = await makeDrive({ files, issuedAt: new Date(Date.now() - 30 * HOUR), validitySeconds: 7 * 24 * 3600 });
    expect((await verify(drive.root, makeTrust({ policy: { maxManifestAgeHours: 24 } }))).report).toMatchObject({ approved: false, code: 'MANIFEST_TOO_OLD' });
    expect((await verify(drive.root, makeTrust({ policy: { maxManifestAgeHours: 48 } }))).report).toMatchObject({ approved: true });
  });

  it('refuses a manifest copied onto another drive with MEDIA_MISMATCH', async () => {
    const drive = await makeDrive({ files });
    const { report, log } = await verify(drive.root, makeTrust(), { ...DEFAULT_IDENTITY, volumeId: '0BAD-F00D' });
    expect(report).toMatchObject({ approved: false, code: 'MEDIA_MISMATCH' });
    expect(log.events[0]).toMatchObject({ event: 'drive.checked', outcome: 'refused', code: 'MEDIA_MISMATCH' });
  });

  it('refuses with MEDIA_MISMATCH when binding is required and the identity cannot be read, saying it could not be read', async () => {
    const drive = await makeDrive({ files });
    const { report } = await verify(drive.root, makeTrust(), null);
    expect(report).toMatchObject({ approved: false, code: 'MEDIA_MISMATCH' });
    // The advice is the one for an unreadable identity, not the one for a manifest copied to another drive.
    expect(report.reason).toContain(MEDIA_ADVICE.IDENTITY_UNREADABLE);
    expect(report.reason).not.toContain(MEDIA_ADVICE.MISMATCH);
    expect((await verify(drive.root, makeTrust({ policy: { requireMediaBinding: false } }), null)).report).toMatchObject({ approved: true });
  });
});

describe('verify: a drive refused after its manifest verified', () => {
  it('stops the stage threads started early for a large manifest: the agent process ends', async () => {
    // The threads start as soon as the manifest verifies and the media matches, so they boot while
    // the drive is walked; a walk that refuses the drive must end them, or they keep the process alive.
    const drive = await makeDrive({ files: { 'firmware/big.bin': Buffer.alloc(STAGE_ON_WORKERS_FROM_BYTES + 1024, 7), 'README.txt': 'hello plant\n' } });
    const dir = tempDir('early-stager');
    const identity = join(dir, 'identity.json');
    writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
    const agent = join(import.meta.dirname, './main.ts');
    const run = (): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [agent, 'verify', drive.root, '--trust', writeTrust(), '--identity', identity, '--log', join(dir, 'agent.log.jsonl'), '--json'], { encoding: 'utf8', timeout: 30_000 });
    // First the drive as signed: the threads do the work and the process ends.
    const passed = run();
    expect(passed.status).toBe(0);
    expect(JSON.parse(String(passed.stdout))).toMatchObject({ approved: true });
    // Then folders nested past the walk's limit: refused after the threads started.
    mkdirSync(join(drive.root, ...Array.from({ length: 70 }, (_, i) => `n${i}`)), { recursive: true });
    const refused = run();
    expect(refused.error).toBeUndefined(); // not killed by the timeout
    expect(refused.status).toBe(20);
    expect(JSON.parse(String(refused.stdout))).toMatchObject({ approved: false, code: 'DRIVE_LIMIT_EXCEEDED' });
  });
});

describe('verify: per-file results', () => {
  it('refuses a file whose bytes changed after signing (same size) with FILE_HASH_MISMATCH', async () => {
    const drive = await makeDrive({ files });
    writeFileSync(join(drive.root, 'README.txt'), 'HELLO PLANT\n');
    expect(codes((await verify(drive.root)).report)).toEqual({ 'README.txt': 'FILE_HASH_MISMATCH', 'firmware/plc-cpu.bin': 'PERMITTED' });
  });

  it('refuses a file whose size changed with FILE_SIZE_MISMATCH', async () => {
    const drive = await makeDrive({ files });
    writeFileSync(join(drive.root, 'README.txt'), 'hello plant, and more\n');
    expect(codes((await verify(drive.root)).report)['README.txt']).toBe('FILE_SIZE_MISMATCH');
  });

  it('refuses an extra file added to the drive as FILE_UNLISTED (a concealed file)', async () => {
    const drive = await makeDrive({ files });
    mkdirSync(join(drive.root, 'hidden'));
    writeFileSync(join(drive.root, 'hidden/.payload.exe'), 'MZ');
    writeFileSync(join(drive.root, '.portcullis/extra.dll'), 'MZ');
    const { report } = await verify(drive.root);
    expect(codes(report)).toMatchObject({ 'hidden/.payload.exe': 'FILE_UNLISTED', '.portcullis/extra.dll': 'FILE_UNLISTED', 'README.txt': 'PERMITTED' });
    expect(report.counts).toEqual({ permitted: 2, imported: 0, skipped: 0, refused: 2 });
  });

  it('refuses a listed file that is gone with FILE_MISSING', async () => {
    const drive = await makeDrive({ files });
    rmSync(join(drive.root, 'README.txt'));
    expect(codes((await verify(drive.root)).report)).toEqual({ 'README.txt': 'FILE_MISSING', 'firmware/plc-cpu.bin': 'PERMITTED' });
  });

  it('refuses a file the kiosk blocked that is still on the drive with BLOCKED_AT_KIOSK', async () => {
    const drive = await makeDrive({ files: { ...files, 'tools/setup.pdf.exe': 'MZ' }, unlisted: ['tools/setup.pdf.exe'], blocked: [{ path: 'tools/setup.pdf.exe', reasons: ['TYPE_MISMATCH'] }] });
    const f = (await verify(drive.root)).report.files.find((x) => x.path === 'tools/setup.pdf.exe');
    expect(f).toMatchObject({ outcome: 'refused', code: 'BLOCKED_AT_KIOSK' });
    expect(f?.reason).toContain('TYPE_MISMATCH');
  });

  it('reports names that are not UTF-8 escaped and refuses them as UNSAFE_NAME', async () => {
    const drive = await makeDrive({ files });
    writeFileSync(Buffer.concat([Buffer.from(`${drive.root}/bad`), Buffer.from([0xff, 0x1b]), Buffer.from('.exe')]), 'MZ');
    writeFileSync(join(drive.root, 'CON.txt'), 'x');
    const c = codes((await verify(drive.root)).report);
    expect(c['bad\\xff\\x1b.exe']).toBe('UNSAFE_NAME');
    expect(c['CON.txt']).toBe('UNSAFE_NAME');
  });

  it('never follows a symlink: a listed name that became a link is FILE_NOT_REGULAR, an unlisted link FILE_UNLISTED', async () => {
    const drive = await makeDrive({ files });
    rmSync(join(drive.root, 'README.txt'));
    symlinkSync('/etc/passwd', join(drive.root, 'README.txt'));
    symlinkSync('/etc', join(drive.root, 'etc-link'));
    const c = codes((await verify(drive.root)).report);
    expect(c).toMatchObject({ 'README.txt': 'FILE_NOT_REGULAR', 'etc-link': 'FILE_UNLISTED' });
  });

  it('refuses a drive deeper than the walk bound as DRIVE_LIMIT_EXCEEDED', async () => {
    const drive = await makeDrive({ files });
    mkdirSync(join(drive.root, 'a/b/c/d'), { recursive: true });
    const log = new MemoryLog();
    const report = await verifyDrive({ drive: drive.root, trust: makeTrust(), now: new Date(), identity: DEFAULT_IDENTITY, log, limits: { maxEntries: 1000, maxDepth: 3 } });
    expect(report).toMatchObject({ approved: false, code: 'DRIVE_LIMIT_EXCEEDED' });
  });
  it('refuses a drive with a folder that leads off its filesystem (another volume mounted or swapped in) as DRIVE_UNREADABLE', async () => {
    const content = Buffer.alloc(70_000, 0x5a);
    const drive = await makeDrive({ files: { 'README.txt': 'hello plant\n', 'firmware/plc-cpu.bin': content } });
    // The same listed bytes, but on another filesystem: the walk must not take them for the drive's.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(drive.root, 'firmware')]);
    try {
      writeFileSync(join(drive.root, 'firmware/plc-cpu.bin'), content);
      const { report } = await verify(drive.root);
      expect(report).toMatchObject({ approved: false, code: 'DRIVE_UNREADABLE' });
      expect(report.files).toEqual([]);
    } finally {
      execFileSync('umount', ['-l', join(drive.root, 'firmware')]);
    }
  });
});

describe('verify: which of the listed digests are checked (policy.digests)', () => {
  // One file with the right bytes and size whose manifest lists a wrong SHA-256, one with a wrong BLAKE3.
  const oneWrong = { 'sha-wrong.txt': { sha256: 'e'.repeat(64) }, 'blake-wrong.txt': { blake3: 'e'.repeat(64) } };
  const wrongFiles = { 'sha-wrong.txt': 'right bytes, wrong SHA-256\n', 'blake-wrong.txt': 'right bytes, wrong BLAKE3\n' };
  const recordOf = (log: MemoryLog, path: string) => log.events.find((e) => e.path === path && e.event === 'file.checked');
  /** Which digests a file's record holds: 'hex' for a computed one, null for one not computed. */
  const computed = (log: MemoryLog, path: string) => {
    const d = recordOf(log, path)?.digests;
    const kind = (v: string | null | undefined): 'hex' | null | 'other' => (v === null ? null : typeof v === 'string' && /^[0-9a-f]{64}$/u.test(v) ? 'hex' : 'other');
    return { sha256: kind(d?.sha256), blake3: kind(d?.blake3) };
  };

  it('checks BLAKE3 only by default: a wrong BLAKE3 is FILE_HASH_MISMATCH, a wrong SHA-256 passes and its record names SHA-256 as not computed', async () => {
    const drive = await makeDrive({ files: wrongFiles, listedDigests: oneWrong });
    const { report, log } = await verify(drive.root);
    expect(codes(report)).toEqual({ 'blake-wrong.txt': 'FILE_HASH_MISMATCH', 'sha-wrong.txt': 'PERMITTED' });
    expect(computed(log, 'sha-wrong.txt')).toEqual({ sha256: null, blake3: 'hex' });
    expect(computed(log, 'blake-wrong.txt')).toEqual({ sha256: null, blake3: 'hex' });
  });

  it('checks SHA-256 only when the policy says sha256: a wrong SHA-256 is FILE_HASH_MISMATCH, a wrong BLAKE3 passes and its record names BLAKE3 as not computed', async () => {
    const drive = await makeDrive({ files: wrongFiles, listedDigests: oneWrong });
    const { report, log } = await verify(drive.root, makeTrust({ policy: { digests: 'sha256' } }));
    expect(codes(report)).toEqual({ 'blake-wrong.txt': 'PERMITTED', 'sha-wrong.txt': 'FILE_HASH_MISMATCH' });
    expect(computed(log, 'blake-wrong.txt')).toEqual({ sha256: 'hex', blake3: null });
  });

  it('checks both when the policy says both: a file whose listed SHA-256 alone is wrong, and one whose listed BLAKE3 alone is wrong, are each FILE_HASH_MISMATCH', async () => {
    const drive = await makeDrive({ files: { ...wrongFiles, 'README.txt': 'hello plant\n' }, listedDigests: oneWrong });
    const { report, log } = await verify(drive.root, makeTrust({ policy: { digests: 'both' } }));
    expect(codes(report)).toEqual({ 'README.txt': 'PERMITTED', 'blake-wrong.txt': 'FILE_HASH_MISMATCH', 'sha-wrong.txt': 'FILE_HASH_MISMATCH' });
    expect(computed(log, 'README.txt')).toEqual({ sha256: 'hex', blake3: 'hex' });
  });
});
