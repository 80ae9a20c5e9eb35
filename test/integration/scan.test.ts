/**
 * The kiosk's scan, end to end, against the real clamd (Debian's) with the
 * project's test database and the real YARA rules, on generated drive trees.
 */
import { loadPolicy } from '../../kiosk/rules-files.ts';
import { DEFAULT_RULES_DIR } from '../../kiosk/config.ts';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAllowlist, type Allowlist } from '../../kiosk/core/allowlist.ts';
import { EICAR } from '../../kiosk/engines/clamav/test-database.ts';
import { startEngines, type Engines } from '../../kiosk/engines/engines.ts';
import { preferredBlake3 } from '../../kiosk/engines/hash-file.ts';
import { parsePolicy, type LoadedPolicy } from '../../kiosk/core/policy.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import type { FileDecision } from '../../kiosk/core/decide.ts';
import { runScan, scanCommand } from '../../kiosk/cli/scan-command.ts';
import { scanDrive, type ScanReport } from '../../kiosk/scan/scan-session.ts';
import { eicarZip, encryptedZip, nestZip, overlappingZip, zeroBombZip } from '../fixtures/archives/corpus.ts';

const work = mkdtempSync(join(tmpdir(), 'scan-it-'));
let engines: Engines;
let policy: LoadedPolicy;

/** The default policy with archive limits small enough for a quick bomb test. */
async function testPolicy(): Promise<LoadedPolicy> {
  const base = await loadPolicy();
  const p = structuredClone(base.policy);
  p.clamav.maxScanBytes = 256 * 1024 * 1024;
  p.clamav.maxEmbeddedFileBytes = 64 * 1024 * 1024;
  p.limits.maxFileBytes = 128 * 1024 * 1024;
  return parsePolicy(new TextEncoder().encode(JSON.stringify(p)), 'test-policy.json');
}

function tree(files: Record<string, Uint8Array | string>): string {
  const root = mkdtempSync(join(work, 'drive-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

async function scan(root: string, allowlist: Allowlist = buildAllowlist([])): Promise<ScanReport> {
  return scanDrive(root, {
    policy,
    allowlist,
    scanner: engines.scanner,
    inspection: engines.inspection,
    blake3: preferredBlake3(),
    classifyScannerError: (e) => engines.classifyScannerError(e),
  });
}

function byPath(report: ScanReport): Map<string, FileDecision> {
  return new Map([...report.decision.files].map((f) => [f.display, f]));
}

function codes(report: ScanReport, path: string): string[] {
  const file = byPath(report).get(path);
  if (!file) throw new Error(`no result for ${path}; have ${[...byPath(report).keys()].join(', ')}`);
  return file.reasons.map((r) => r.code);
}

beforeAll(async () => {
  policy = await testPolicy();
  engines = await startEngines({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, workDir: join(work, 'engines'), policy: policy.policy });
});

afterAll(async () => {
  await engines?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('kiosk scan with the real clamd and YARA rules', () => {
  it('finds EICAR plain, renamed, inside a zip and inside a zip in a zip', async () => {
    const zipped = await eicarZip();
    const root = tree({
      'eicar.com.txt': EICAR,
      'docs/quarterly-report.csv': EICAR,
      'archive/eicar.zip': zipped,
      'archive/nested.zip': await nestZip(zipped, 1),
      'clean.txt': 'nothing to see\n',
    });
    const report = await scan(root);
    for (const p of ['eicar.com.txt', 'docs/quarterly-report.csv', 'archive/eicar.zip', 'archive/nested.zip']) {
      expect(codes(report, p), p).toContain('MALWARE');
    }
    expect(byPath(report).get('clean.txt')?.verdict).toBe('clean');
    expect(report.decision.verdict).toBe('partial');
  });

  it('blocks archives nested past the recursion limit, encrypted archives and a decompression bomb', async () => {
    const root = tree({
      'deep.zip': await nestZip(await eicarZip(), policy.policy.clamav.maxRecursion + 4),
      'secret.zip': await encryptedZip(),
      'bomb.zip': await zeroBombZip(300 * 1024 * 1024),
      'ok.txt': 'fine\n',
    });
    const report = await scan(root);
    expect(codes(report, 'deep.zip')).toContain('LIMIT_EXCEEDED');
    expect(codes(report, 'secret.zip')).toContain('ENCRYPTED');
    expect(codes(report, 'bomb.zip')).toContain('LIMIT_EXCEEDED');
    expect(byPath(report).get('ok.txt')?.verdict).toBe('clean');
  });

  it('blocks a bomb nested inside another zip and an overlapping-entries bomb, where ClamAV alone stays silent', async () => {
    const nested = await nestZip(await zeroBombZip(300 * 1024 * 1024), 1);
    const overlapping = await overlappingZip(4 * 1024 * 1024, 200);
    const root = tree({ 'nested-bomb.zip': nested, 'overlap.zip': overlapping });
    const report = await scan(root);
    expect(codes(report, 'nested-bomb.zip')).toContain('LIMIT_EXCEEDED');
    expect(codes(report, 'overlap.zip')).toContain('LIMIT_EXCEEDED');
    const detail = byPath(report).get('nested-bomb.zip')!.reasons.map((r) => r.detail).join(' ');
    // The kiosk opens both levels itself: the reason names the member and the policy setting it crossed.
    expect(detail).toMatch(/^nested-bomb\.zip!\/level-1\.zip: .*(clamav\.maxEmbeddedFileBytes|archives\.maxCompressionRatio)/);
  });

  it('applies the YARA rules through clamd, also inside an archive', async () => {
    const sample = readFileSync(join(DEFAULT_RULES_DIR, 'tests/samples/autorun-open.inf'));
    const root = tree({ 'setup/autorun-copy.txt': sample, 'ok.txt': 'fine\n' });
    const report = await scan(root);
    expect(codes(report, 'setup/autorun-copy.txt')).toContain('YARA_MATCH');
  });

  it('blocks spoofed types, double extensions, and types that are not plant media', async () => {
    const pe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200, 0x90)]);
    const root = tree({
      'manual.pdf': pe,
      'invoice.pdf.exe': pe,
      'run-me.lnk': Buffer.from([0x4c, 0, 0, 0, 1, 0x14, 2, 0, 0, 0]),
      'tools/install.ps1': 'Write-Host hello\n',
      'readme.txt': 'fine\n',
    });
    const report = await scan(root);
    expect(codes(report, 'manual.pdf')).toContain('TYPE_MISMATCH');
    expect(codes(report, 'invoice.pdf.exe')).toEqual(expect.arrayContaining(['TYPE_MISMATCH', 'NOT_ALLOWLISTED']));
    expect(codes(report, 'run-me.lnk')).toContain('TYPE_NOT_ALLOWED');
    expect(codes(report, 'tools/install.ps1')).toContain('TYPE_NOT_ALLOWED');
    expect(byPath(report).get('readme.txt')?.verdict).toBe('clean');
  });

  it('lets allowlisted firmware pass and blocks unknown firmware', async () => {
    const known = Buffer.from('firmware image v2.8.1 '.repeat(100));
    const root = tree({ 'firmware/cpu-v2.8.1.bin': known, 'firmware/cpu-unknown.bin': Buffer.from('other firmware'.repeat(50)) });
    const allowlist = buildAllowlist([{
      name: 'vendor.json',
      bytes: new TextEncoder().encode(JSON.stringify({
        version: '1',
        owner: 'test',
        entries: [{ vendor: 'Acme', product: 'CPU 1500', version: '2.8.1', file: 'cpu-v2.8.1.bin', sha256: createHash('sha256').update(known).digest('hex'), source: 'test fixture' }],
      })),
    }]);
    const report = await scan(root, allowlist);
    expect(byPath(report).get('firmware/cpu-v2.8.1.bin')?.verdict).toBe('allowlisted');
    expect(codes(report, 'firmware/cpu-unknown.bin')).toEqual(['NOT_ALLOWLISTED']);
  });

  it('blocks hostile names and symlinks out of the drive, shown escaped, and passes an empty file', async () => {
    const root = tree({
      'invoice\u202efdp.txt': 'x',
      'aux.txt': 'x',
      'bell\u0007.txt': 'x',
      'trailing.': 'x',
      'stream.txt:hidden': 'x',
      'Readme.txt': 'a',
      'README.TXT': 'b',
      'empty.txt': '',
    });
    symlinkSync('/etc/passwd', join(root, 'passwd-link'));
    const report = await scan(root);
    expect(codes(report, 'invoice\\u{202e}fdp.txt')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'aux.txt')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'bell\\x07.txt')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'trailing.')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'stream.txt:hidden')).toEqual(['UNSAFE_NAME', 'TYPE_NOT_ALLOWED']); // ".txt:hidden" is no plant media type either
    expect(codes(report, 'Readme.txt')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'README.TXT')).toEqual(['UNSAFE_NAME']);
    expect(codes(report, 'passwd-link')).toEqual(['NOT_REGULAR_FILE']);
    expect(byPath(report).get('empty.txt')?.verdict).toBe('clean');
    expect(byPath(report).get('empty.txt')?.digest?.blake3).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });

  it('hashes exactly the bytes it scanned', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 17, 0x61); // text: a .csv must hold text
    const root = tree({ 'data/big.csv': body });
    const report = await scan(root);
    const file = byPath(report).get('data/big.csv')!;
    expect(file.verdict).toBe('clean');
    expect(file.digest?.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  });
});

describe('the whole scan command on a drive of many files', () => {
  it('streams the --json report and the audit record from the ledger: every file once, in order, nothing left in the work folder', async () => {
    const files: Record<string, string | Uint8Array> = { 'tools/eicar.txt': EICAR, 'docs/Readme.txt': 'a', 'docs/README.TXT': 'b' };
    for (let i = 0; i < 700; i++) files[`data/d${i % 7}/note-${String(i).padStart(4, '0')}.txt`] = `note ${i}\n`.repeat(60);
    const root = tree(files);
    const workDir = mkdtempSync(join(work, 'cmd-work-'));
    const db = join(work, `cmd-audit-${Date.now()}.db`);
    const pieces: string[] = [];
    const exit = await scanCommand({ path: root, json: true, noWrite: true, clamavDb: 'test', dbPath: db, workDir, out: (t) => pieces.push(t), err: () => undefined });
    expect(pieces.length).toBeGreaterThan(1); // written in batches, not as one string
    const doc = JSON.parse(pieces.join('\n')) as { verdict: string; files: Array<{ path: string; verdict: string; reasons: Array<{ code: string }> }> };
    expect(exit).toBe(10);
    expect(doc.verdict).toBe('partial');
    const paths = doc.files.map((f) => f.path);
    expect(paths).toHaveLength(703);
    expect(paths).toEqual([...Object.keys(files)].sort());
    const verdictOf = new Map(doc.files.map((f) => [f.path, f]));
    expect(verdictOf.get('tools/eicar.txt')?.reasons.map((r) => r.code)).toContain('MALWARE');
    for (const clash of ['docs/Readme.txt', 'docs/README.TXT']) expect(verdictOf.get(clash)?.reasons.map((r) => r.code)).toEqual(['UNSAFE_NAME']);
    expect(doc.files.filter((f) => f.verdict === 'clean')).toHaveLength(700);
    // The audit record holds the same files, read from the same ledger.
    const store = openAuditStore(db, { readonly: true });
    const scanId = store.listScans({}).at(-1)!.scanId;
    const recorded = store.getScan(scanId)!;
    store.close();
    expect(recorded.status).toBe('partial');
    expect(recorded.files.map((f) => f.path).sort()).toEqual([...paths].sort());
    // The ledger was unlinked when it was opened; only the engines' folder remains.
    expect(readdirSync(workDir).filter((n) => n.includes('ledger'))).toEqual([]);
  });
});

describe('a work folder that fills up under the scan', () => {
  // Mounts a tmpfs, so it needs root, as the project's set-up and its loop-device and FUSE tests do.
  it('rejects the drive with WORK_FOLDER_FAILED and records it, never a partial approval', async () => {
    // A real full filesystem: a small tmpfs as the work folder (the engines' files fit, the ledger of 20 000 files does not).
    const small = mkdtempSync(join(work, 'tiny-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1280k,mode=0700', 'tmpfs', small]);
    try {
      const files: Record<string, string> = {};
      for (let i = 0; i < 20_000; i++) files[`d${i % 20}/file-with-a-longer-name-${i}.txt`] = 'x';
      const root = tree(files);
      const db = join(work, `tiny-audit-${Date.now()}.db`);
      const outcome = await runScan({ path: root, json: true, noWrite: true, clamavDb: 'test', dbPath: db, workDir: small, out: () => undefined, err: () => undefined });
      try {
        expect(outcome.exitCode).toBe(20);
        const { decision } = outcome.summary.report;
        expect(decision.verdict).toBe('rejected');
        expect(decision.driveReasons.map((r) => r.code)).toEqual(['WORK_FOLDER_FAILED']);
        expect(decision.driveReasons[0]?.detail).toContain('--work-dir');
        expect([...decision.files]).toEqual([]);
      } finally {
        outcome.summary.report.close();
      }
      const store = openAuditStore(db, { readonly: true });
      const recorded = store.getScan(outcome.scanId);
      store.close();
      expect(recorded?.status).toBe('rejected');
      expect(recorded?.driveReasons.map((r) => r.code)).toEqual(['WORK_FOLDER_FAILED']);
    } finally {
      try {
        execFileSync('umount', ['-l', small]); // lazily, so a failure above is the error reported
      } catch (error) {
        console.error(`could not unmount the test tmpfs ${small}: ${(error as Error).message}`);
      }
    }
  });
});

describe('the clamd the kiosk starts', () => {
  it('watches sessions with a ReadTimeout above MaxScanTime, so a slow file meets its own limit first', () => {
    const conf = readFileSync((engines.clamd as { configPath: string }).configPath, 'utf8');
    const maxScanTime = Number(/^MaxScanTime (\d+)$/m.exec(conf)?.[1]);
    const readTimeout = Number(/^ReadTimeout (\d+)$/m.exec(conf)?.[1]);
    expect(maxScanTime).toBe(policy.policy.clamav.maxScanSeconds * 1000);
    expect(readTimeout).toBeGreaterThanOrEqual(policy.policy.clamav.maxScanSeconds + 60);
  });

  it('refuses a work folder whose path clamd could not be told, before starting anything', async () => {
    const spaced = join(work, 'work folder');
    const error = await startEngines({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, workDir: spaced, policy: policy.policy }).then(() => null, (e: unknown) => e);
    expect((error as { code?: string } | null)?.code).toBe('SCANNER_CONFIG');
    expect(String((error as Error).message)).toContain('--work-dir');
    expect(existsSync(spaced)).toBe(false); // nothing made, so no clamd was started there
  });
});

describe('kiosk scan when clamd dies', () => {
  it('rejects the drive and reports no file clean when clamd is killed mid-scan', async () => {
    const own = await startEngines({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, workDir: join(work, 'engines-kill'), policy: policy.policy });
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`f${String(i).padStart(2, '0')}.dat`] = Buffer.alloc(2 * 1024 * 1024, i);
    const root = tree(files);
    let killed = false;
    const report = await scanDrive(root, {
      policy,
      allowlist: buildAllowlist([]),
      scanner: own.scanner,
      inspection: own.inspection,
      blake3: preferredBlake3(),
      classifyScannerError: (e) => own.classifyScannerError(e),
      onProgress: (p) => {
        if (!killed && p.filesDone >= 2 && 'pid' in own.clamd) {
          killed = true;
          process.kill(own.clamd.pid, 'SIGKILL');
        }
      },
    });
    await own.stop();
    expect(killed).toBe(true);
    expect(report.decision.verdict).toBe('rejected');
    expect(report.decision.driveReasons[0]?.code).toMatch(/^SCANNER_/);
    expect([...report.decision.files]).toHaveLength(12);
    expect([...report.decision.files].filter((f) => f.verdict !== 'blocked')).toEqual([]);
  });

  it('rejects the drive when no clamd answers at all', async () => {
    const root = tree({ 'a.txt': 'x' });
    const own = await startEngines({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, workDir: join(work, 'engines-down'), policy: policy.policy });
    await own.stop();
    const report = await scanDrive(root, {
      policy,
      allowlist: buildAllowlist([]),
      scanner: own.scanner,
      inspection: own.inspection,
      blake3: preferredBlake3(),
      classifyScannerError: (e) => own.classifyScannerError(e),
    });
    expect(report.decision.verdict).toBe('rejected');
    expect(report.decision.driveReasons.map((r) => r.code)).toEqual(['SCANNER_UNAVAILABLE']);
    expect([...report.decision.files].map((f) => f.verdict)).toEqual(['blocked']);
  });
});
