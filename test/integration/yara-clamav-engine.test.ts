/**
 * ClamAV as the YARA engine, for real: the start-up probe refuses what
 * libclamav would skip, refuse or crash on; the limits the subset check
 * guards are still there in this ClamAV; and a real clamd applies the staged
 * rules to INSTREAM data, archives included, and reports the canary.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canarySample, CANARY_SIGNATURE } from '../../kiosk/engines/yara/canary.ts';
import { probeClamavRules } from '../../kiosk/engines/yara/clamav-probe.ts';
import { YaraRuleError } from '../../kiosk/engines/yara/errors.ts';
import { loadRuleSet, stageRuleSet } from '../../kiosk/engines/yara/rule-set.ts';
import type { RuleSet } from '../../kiosk/engines/yara/rule-set.ts';
import { runTool } from '../../kiosk/engines/run-tool.ts';

const RULES = join(import.meta.dirname, '../../rules/yara');
const PROBE = { clamscanPath: 'clamscan', timeoutMs: 30_000 };

let work: string;
let set: RuleSet;
let n = 0;
async function freshDir(): Promise<string> {
  const d = join(work, `d${n++}`);
  await mkdir(d);
  return d;
}
const rule = (name: string, strings: string, condition = '$a'): string =>
  `rule ${name}\n{\n  strings:\n    ${strings}\n  condition:\n    ${condition}\n}\n`;
/** A database directory holding the canary rule plus `extra`, as staged files. */
async function dbWith(extra: string): Promise<string> {
  const db = await freshDir();
  await writeFile(join(db, 'portcullis-canary.yar'), await readFile(join(RULES, 'canary.yar')));
  await writeFile(join(db, 'portcullis-extra.yar'), extra);
  return db;
}
async function probeError(db: string, expected: number): Promise<YaraRuleError> {
  const error: unknown = await probeClamavRules(db, await freshDir(), expected, PROBE).catch((e: unknown) => e);
  if (!(error instanceof YaraRuleError)) throw new Error(`expected a YaraRuleError, got ${String(error)}`);
  return error;
}
async function clamscan(db: string, file: string): Promise<string> {
  const r = await runTool('clamscan', ['--no-summary', `--database=${db}`, file], { timeoutMs: 30_000 });
  return r.stdout.trim();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'portcullis-clamav-yara-test-'));
  set = await loadRuleSet(RULES);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the libclamav start-up probe', () => {
  it('accepts the canary rule alone and counts it', async () => {
    const db = await freshDir();
    await writeFile(join(db, 'portcullis-canary.yar'), await readFile(join(RULES, 'canary.yar')));
    const r = await probeClamavRules(db, await freshDir(), 1, PROBE);
    expect(r.loadedSignatures).toBe(1);
  });

  it('refuses a rule libclamav skips with only a warning (wide regular expression)', async () => {
    const db = await dbWith(rule('Wide_Regex', '$a = /portcullis-[0-9]+/ wide'));
    const error = await probeError(db, 2);
    expect(error.code).toBe('RULE_ENGINE_REJECTED');
    expect(error.message).toMatch(/wide modifier/);
  });

  it('refuses a rule libclamav parses into nothing (yyerror on uint32be): the loaded count falls short', async () => {
    const db = await dbWith(rule('Big_Endian', '$a = "portcullis-be" nocase', '$a and uint32be(0) == 1'));
    expect((await probeError(db, 2)).code).toBe('RULE_ENGINE_REJECTED');
  });

  it('refuses a hex string without two fixed bytes in a row, which makes libclamav refuse the whole database', async () => {
    const db = await dbWith(rule('Hex_Pair', '$a = { 4D ?? 5A ?? 90 }'));
    const error = await probeError(db, 2);
    expect(error.code).toBe('RULE_ENGINE_REJECTED');
    expect(error.message).toMatch(/Malformed database|static subpattern/);
  });

  it('refuses a rule that crashes libclamav on the first scan ("contains")', async () => {
    const db = await dbWith(rule('Contains', '$a = "portcullis-c" nocase', '$a and "abc" contains "b"'));
    const error = await probeError(db, 2);
    expect(error.code).toBe('RULE_ENGINE_REJECTED');
    expect(error.message).toMatch(/crashed/);
  });
});

describe('ClamAV YARA limits the subset check guards (measured on this ClamAV)', () => {
  it('loads a /re/i regex without a word and then misses data libyara matches (case differs)', async () => {
    const db = await dbWith(rule('Regex_I', '$a = /Portcullis-[0-9]+-Flag/i'));
    const dir = await freshDir();
    await writeFile(join(dir, 'upper.bin'), '\x00\x01PORTCULLIS-42-FLAG\x00');
    await writeFile(join(dir, 'exact.bin'), '\x00\x01Portcullis-42-Flag\x00');
    expect(await clamscan(db, join(dir, 'upper.bin'))).toMatch(/: OK$/);
    expect(await clamscan(db, join(dir, 'exact.bin'))).toMatch(/YARA\.Regex_I\.UNOFFICIAL FOUND$/);
    const y = await runTool('yara', [join(db, 'portcullis-extra.yar'), join(dir, 'upper.bin')], { timeoutMs: 30_000 });
    expect(y.stdout).toMatch(/^Regex_I /);
  });

  it('reads a hexadecimal number of 0x80000000 or more as negative: == never matches, the same number in decimal does', async () => {
    const db = await dbWith(
      rule('Hex_Big', '$a = "portcullis-never-here" nocase', '$a or uint32(4) == 0xDEADBEEF') +
        rule('Dec_Big', '$a = "portcullis-never-here" nocase', '$a or uint32(4) == 3735928559') +
        rule('Hex_Size', '$a = "portcullis-never-here" nocase', '$a or filesize < 0x80000000'),
    );
    const dir = await freshDir();
    await writeFile(join(dir, 'x.bin'), Buffer.from('0050000aefbeadde0000000000000000', 'hex'));
    const r = await runTool('clamscan', ['--no-summary', '--allmatch', `--database=${db}`, join(dir, 'x.bin')], { timeoutMs: 30_000 });
    expect([...new Set(r.stdout.trim().split('\n').map((l) => l.replace(/^.*: /, '')))]).toEqual(['YARA.Dec_Big.UNOFFICIAL FOUND']);
    const y = await runTool('yara', [join(db, 'portcullis-extra.yar'), join(dir, 'x.bin')], { timeoutMs: 30_000 });
    expect(y.stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort()).toEqual(['Dec_Big', 'Hex_Big', 'Hex_Size']);
  });

  it("cannot read a file's last byte: uint8 of the last offset is false, of the one before true", async () => {
    const db = await dbWith(
      rule('Last_Byte', '$a = "portcullis-never-here" nocase', '$a or uint8(15) == 0x2a') + rule('Before_Last', '$a = "portcullis-never-here" nocase', '$a or uint8(14) == 0x2a'),
    );
    const dir = await freshDir();
    await writeFile(join(dir, 'x.bin'), Buffer.from('00'.repeat(14) + '2a2a', 'hex'));
    const r = await runTool('clamscan', ['--no-summary', '--allmatch', `--database=${db}`, join(dir, 'x.bin')], { timeoutMs: 30_000 });
    expect(r.stdout).toContain('YARA.Before_Last.UNOFFICIAL FOUND');
    expect(r.stdout).not.toContain('Last_Byte');
  });

  it('matches only the normalised form of an HTML-typed file: raw case and comments are invisible', async () => {
    const db = await dbWith(
      rule('Case_Sensitive', '$a = "PORTCULLIS-HTML-MARK"') + rule('In_Comment', '$a = "portcullis-comment-mark" nocase'),
    );
    const dir = await freshDir();
    await writeFile(join(dir, 'a.html'), '<html><body>PORTCULLIS-HTML-MARK</body></html>\n');
    await writeFile(join(dir, 'b.html'), '<html><!-- portcullis-comment-mark --></html>\n');
    expect(await clamscan(db, join(dir, 'a.html'))).toMatch(/: OK$/);
    expect(await clamscan(db, join(dir, 'b.html'))).toMatch(/: OK$/);
    const y = await runTool('yara', [join(db, 'portcullis-extra.yar'), join(dir, 'b.html')], { timeoutMs: 30_000 });
    expect(y.stdout).toMatch(/^In_Comment /);
  });
});

// clamd INSTREAM (clamd(8)): "zINSTREAM\0", then chunks of u32be length + bytes, a zero-length chunk ends the stream.
function instream(socket: string, data: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    const replies: Buffer[] = [];
    s.on('error', reject);
    s.on('data', (d: Buffer) => replies.push(d));
    s.on('end', () => resolve(Buffer.concat(replies).toString('utf8').replace(/\0$/, '')));
    s.on('connect', () => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.byteLength);
      s.write(Buffer.concat([Buffer.from('zINSTREAM\0'), len, data, Buffer.alloc(4)]));
    });
  });
}

interface Clamd {
  readonly socket: string;
  readonly process: ChildProcess;
  readonly log: string;
}
/** Starts a real clamd on `db`; resolves when the socket answers or rejects with its exit code. */
async function startClamd(db: string): Promise<Clamd> {
  const dir = await freshDir();
  const socket = join(dir, 'clamd.sock');
  const log = join(dir, 'clamd.log');
  const conf = join(dir, 'clamd.conf');
  await mkdir(join(dir, 'tmp'));
  await writeFile(
    conf,
    [
      `LocalSocket ${socket}`,
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${join(dir, 'tmp')}`,
      `LogFile ${log}`,
      'Foreground yes',
      'SelfCheck 0',
      ...(process.getuid?.() === 0 ? ['User root'] : []),
      '',
    ].join('\n'),
  );
  const child = spawn('clamd', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 300; i++) {
    const done = await Promise.race([exited, sleep(100).then(() => 'waiting' as const)]);
    if (done !== 'waiting') throw new Error(`clamd exited with ${String(done)}: ${stderr.trim()}`);
    try {
      if ((await instream(socket, Buffer.from('ping'))).endsWith('OK')) return { socket, process: child, log };
    } catch {
      // not listening yet
    }
  }
  child.kill('SIGKILL');
  throw new Error('clamd did not answer within 30 s');
}
async function stopClamd(c: Clamd): Promise<void> {
  if (c.process.exitCode !== null) return;
  const exited = new Promise((resolve) => c.process.on('exit', resolve));
  c.process.kill('SIGTERM');
  await exited;
}

describe('a real clamd with the staged rule set', () => {
  let clamd: Clamd;
  beforeAll(async () => {
    const db = await freshDir();
    await writeFile(join(db, 'portcullis-test.ndb'), 'Portcullis.Test.Pattern:0:*:706f727463756c6c69732d746573742d7061747465726e\n');
    await stageRuleSet(set, db);
    clamd = await startClamd(db);
  });
  afterAll(async () => {
    if (clamd !== undefined) await stopClamd(clamd);
  });

  it('reports the canary over INSTREAM with the documented signature name', async () => {
    expect(await instream(clamd.socket, canarySample())).toBe(`stream: ${CANARY_SIGNATURE} FOUND`);
  });

  it('applies the YARA rules to a stream in the same pass as the other signatures', async () => {
    const sample = await readFile(join(RULES, 'tests/samples/cred-mimikatz.txt'));
    expect(await instream(clamd.socket, sample)).toBe('stream: YARA.Portcullis_Credential_Dumper.UNOFFICIAL FOUND');
    expect(await instream(clamd.socket, Buffer.from('xx portcullis-test-pattern xx'))).toBe(
      'stream: Portcullis.Test.Pattern.UNOFFICIAL FOUND',
    );
  });

  it('applies the YARA rules inside a compressed stream', async () => {
    const sample = gzipSync(await readFile(join(RULES, 'tests/samples/shadow-delete.bat')));
    expect(await instream(clamd.socket, sample)).toBe('stream: YARA.Portcullis_Shadow_Copy_Deletion.UNOFFICIAL FOUND');
  });

  it('answers OK for a benign look-alike', async () => {
    const sample = await readFile(join(RULES, 'tests/samples/shadow-list.bat'));
    expect(await instream(clamd.socket, sample)).toBe('stream: OK');
  });
});

describe('clamd and a broken rule file in its database directory', () => {
  it('starts anyway and drops the rule, saying so only on stderr', async () => {
    const db = await dbWith('rule Broken_Syntax\n{\n  strings:\n    $a = "portcullis-broken" nocase\n  condition\n    $a\n}\n');
    const clamd = await startClamd(db);
    try {
      expect(await instream(clamd.socket, canarySample())).toBe(`stream: ${CANARY_SIGNATURE} FOUND`);
      expect(await instream(clamd.socket, Buffer.from('portcullis-broken'))).toBe('stream: OK');
      expect(await readFile(clamd.log, 'utf8')).toMatch(/Loaded 1 signature/);
    } finally {
      await stopClamd(clamd);
    }
  });

  it('refuses to start on a hex string without two fixed bytes in a row', async () => {
    const db = await dbWith(rule('Hex_Pair', '$a = { 4D ?? 5A ?? 90 }'));
    await expect(startClamd(db)).rejects.toThrow(/exited with 1[\s\S]*Malformed database/);
  });
});
