import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { main, writeIfPresent } from '../../../agent/main.ts';
import { DEFAULT_IDENTITY, makeDrive, tempDir, writeTrust } from '../../support/agent-fixtures.ts';

const exec = promisify(execFile);

function cli() {
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) };
  return { run: (...argv: string[]) => main(argv, io), out, err };
}

async function scenario() {
  const drive = await makeDrive({ files: { 'README.txt': 'hello', 'fw/plc.bin': 'firmware' } });
  const trust = writeTrust();
  const identity = join(tempDir('id'), 'identity.json');
  writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
  return { drive, trust, identity, log: join(trust, '..', 'portcullis-agent.log.jsonl') };
}

describe('portcullis-agent exit codes', () => {
  it('exits 0 when every file on the drive is permitted, with a JSON report on request', async () => {
    const s = await scenario();
    const c = cli();
    expect(await c.run('verify', s.drive.root, '--trust', s.trust, '--identity', s.identity, '--json')).toBe(0);
    expect(JSON.parse(c.out.join(''))).toMatchObject({ approved: true, counts: { permitted: 2, refused: 0 } });
  });

  it('exits 10 when some files are refused and 20 when the drive is refused', async () => {
    const s = await scenario();
    writeFileSync(join(s.drive.root, 'dropped.exe'), 'MZ');
    expect(await cli().run('verify', s.drive.root, '--trust', s.trust, '--identity', s.identity)).toBe(10);
    expect(await cli().run('verify', s.drive.root, '--trust', s.trust)).toBe(20); // media binding required, identity unknown
  });

  it('exits 20 when the drive is approved but nothing passes', async () => {
    const s = await scenario();
    writeFileSync(join(s.drive.root, 'README.txt'), 'HELLO');
    writeFileSync(join(s.drive.root, 'fw/plc.bin'), 'FIRMWARE');
    const c = cli();
    expect(await c.run('verify', s.drive.root, '--trust', s.trust, '--identity', s.identity)).toBe(20);
    expect(c.out.join('')).toContain('FILE_HASH_MISMATCH');
  });

  it('imports with exit 0, then exits 20 on the second run because every name clashes', async () => {
    const s = await scenario();
    const dest = tempDir('dest');
    expect(await cli().run('import', s.drive.root, '--to', dest, '--trust', s.trust, '--identity', s.identity)).toBe(0);
    expect(readFileSync(join(dest, 'fw/plc.bin'), 'utf8')).toBe('firmware');
    expect(await cli().run('import', s.drive.root, '--to', dest, '--trust', s.trust, '--identity', s.identity)).toBe(20);
  });

  it('refuses an import outside the destination the policy allows (exit 1)', async () => {
    const s = await scenario();
    const trust = writeTrust({ policy: { destination: tempDir('allowed') } });
    const c = cli();
    expect(await c.run('import', s.drive.root, '--to', tempDir('other'), '--trust', trust, '--identity', s.identity)).toBe(1);
    expect(c.err.join('')).toContain('DESTINATION_INVALID');
  });

  it('exits 64 on usage errors and 1 on a missing trust store', async () => {
    expect(await cli().run()).toBe(64);
    expect(await cli().run('frobnicate')).toBe(64);
    expect(await cli().run('verify')).toBe(64);
    expect(await cli().run('verify', '/x', '--trust', '/x', '--bogus')).toBe(64);
    expect(await cli().run('import', '/x', '--trust', writeTrust())).toBe(64);
    expect(await cli().run('log', 'export', '--log', '/x', '--format', 'xml')).toBe(64); // usage comes before reading the log
    expect(await cli().run('log', 'export', '--log', '/x', '--format', 'csv')).toBe(1); // then the unreadable log
    const c = cli();
    expect(await c.run('verify', tempDir('d'), '--trust', join(tempDir('t'), 'none.json'))).toBe(1);
    expect(c.err.join('')).toContain('TRUST_STORE_INVALID');
  });

  it('log verify exits 0 on an intact chain and 1 naming the first broken record; export refuses a broken log', async () => {
    const s = await scenario();
    await cli().run('verify', s.drive.root, '--trust', s.trust, '--identity', s.identity);
    const ok = cli();
    expect(await ok.run('log', 'verify', '--log', s.log)).toBe(0);
    expect(ok.out.join('')).toMatch(/intact: 4 records/);
    const csv = cli();
    expect(await csv.run('log', 'export', '--log', s.log, '--format', 'csv', '--since', '2000-01-01T00:00:00Z')).toBe(0);
    expect(csv.out.join('').split('\r\n').filter(Boolean)).toHaveLength(5);
    const none = cli();
    expect(await none.run('log', 'export', '--log', s.log, '--format', 'json', '--since', '2999-01-01T00:00:00Z')).toBe(0);
    expect(JSON.parse(none.out.join(''))).toEqual([]);
    const lines = readFileSync(s.log, 'utf8').split('\n');
    lines.splice(1, 1);
    writeFileSync(s.log, lines.join('\n'));
    const broken = cli();
    expect(await broken.run('log', 'verify', '--log', s.log)).toBe(1);
    expect(broken.out.join('')).toContain('BROKEN at line 2: DELETED');
    const exp = cli();
    expect(await exp.run('log', 'export', '--log', s.log, '--format', 'json')).toBe(1);
    expect(exp.err.join('')).toContain('LOG_CHAIN_BROKEN');
  });

  it('checks only the manifest with `manifest DRIVE`: 0 for a genuine one, 20 with the code for one it refuses, and nothing logged', async () => {
    const s = await scenario();
    const c = cli();
    expect(await c.run('manifest', s.drive.root, '--trust', s.trust)).toBe(0);
    expect(c.out.join('')).toMatch(/^genuine: sha256:[0-9a-f]{64}, signed by [0-9a-f]{64} \(kiosk gate-1\), 2 files may pass, 0 blocked, /u);
    const other = cli();
    expect(await other.run('manifest', s.drive.root, '--trust', writeTrust({ keys: [] }))).toBe(20);
    expect(other.out.join('')).toMatch(/^refused: KEY_UNTRUSTED: /u);
    const empty = cli();
    expect(await empty.run('manifest', tempDir('blank'), '--trust', s.trust)).toBe(20);
    expect(empty.out.join('')).toMatch(/^refused: NO_MANIFEST: /u);
    expect(() => readFileSync(s.log)).toThrow(); // no log written
  });

  it('writes a long report in a few large writes, every file on its own line', async () => {
    // About 3 000 lines of 28 characters: more than one 64 KiB batch.
    const files = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`notes/n${String(i).padStart(4, '0')}.txt`, `note ${i}`]));
    const drive = await makeDrive({ files });
    const trust = writeTrust();
    const identity = join(tempDir('id'), 'identity.json');
    writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
    const c = cli();
    expect(await c.run('verify', drive.root, '--trust', trust, '--identity', identity)).toBe(0);
    const head = c.out[0]!;
    expect(head).toMatch(/^verify .+: APPROVED: manifest sha256:[0-9a-f]{64}, kiosk gate-1, /u);
    const expected = Object.keys(files).sort().map((name) => `  permitted ${name}\n`).join('') + '3000 permitted, 0 refused\n';
    expect(c.out.slice(1).join('')).toBe(expected);
    expect(c.out.length).toBeGreaterThan(2); // the batches were written as they filled: not one write at the end
    expect(c.out.length).toBeLessThan(10); // a write per line would be 3002
  });

  it('runs as a real process through bin/portcullis-agent.js with the same exit codes', async () => {
    const s = await scenario();
    const bin = join(import.meta.dirname, '../../../agent/bin/portcullis-agent.js');
    const good = await exec(process.execPath, [bin, 'verify', s.drive.root, '--trust', s.trust, '--identity', s.identity]);
    expect(good.stdout).toContain('APPROVED');
    await expect(exec(process.execPath, [bin, 'verify', s.drive.root, '--trust', s.trust])).rejects.toMatchObject({ code: 20 });
    await expect(exec(process.execPath, [bin, 'nope'])).rejects.toMatchObject({ code: 64 });
  });
});

describe('standard streams that are not there', () => {
  it('writes nothing and goes on when a process has no stdout or stderr (an MSI custom action has none)', async () => {
    const missing = (): NodeJS.WriteStream => {
      throw Object.assign(new Error('open EBADF'), { code: 'EBADF' });
    };
    expect(() => writeIfPresent(missing, 'x')).not.toThrow();
    // A handle that is there but fails reports it later, as an error event: it must not crash the process.
    const broken = new PassThrough() as unknown as NodeJS.WriteStream;
    writeIfPresent(() => broken, 'x');
    broken.emit('error', Object.assign(new Error('write EBADF'), { code: 'EBADF' }));
    await new Promise((resolve) => setImmediate(resolve));
  });
});
