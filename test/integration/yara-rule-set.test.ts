/**
 * loadRuleSet and stageRuleSet with the real yarac and libclamav: the shipped
 * set loads, every file of the bad-rule corpus fails with its code, file and
 * line, and the bounds refuse oversized or odd rule directories.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANARY_SIGNATURE } from '../../kiosk/engines/yara/canary.ts';
import { YaraRuleError } from '../../kiosk/engines/yara/errors.ts';
import type { YaraRuleErrorCode } from '../../kiosk/engines/yara/errors.ts';
import { findRuleBySignature, loadRuleSet, stageRuleSet } from '../../kiosk/engines/yara/rule-set.ts';

const RULES = join(import.meta.dirname, '../../rules/yara');
const BAD = join(RULES, 'tests/bad');

let work: string;
let n = 0;
async function freshDir(): Promise<string> {
  const d = join(work, `d${n++}`);
  await mkdir(d);
  return d;
}
async function withCanary(): Promise<string> {
  const d = await freshDir();
  await copyFile(join(RULES, 'canary.yar'), join(d, 'canary.yar'));
  return d;
}
async function loadError(dir: string, options = {}): Promise<YaraRuleError> {
  const error: unknown = await loadRuleSet(dir, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof YaraRuleError)) throw new Error(`expected a YaraRuleError, got ${String(error)}`);
  return error;
}
const GOOD_RULE = (name: string): string =>
  `rule ${name}\n{\n  meta:\n    description = "test rule"\n    author = "Portcullis"\n    reference = "test"\n    severity = "low"\n  strings:\n    $a = "portcullis-${name}" nocase\n  condition:\n    $a\n}\n`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'portcullis-rule-set-test-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('loadRuleSet on rules/yara', () => {
  it('loads every shipped rule, validated by yarac and libclamav', async () => {
    const set = await loadRuleSet(RULES);
    const names = (await readdir(RULES)).filter((f) => f.endsWith('.yar')).sort();
    expect(set.files.map((f) => f.name)).toEqual(names);
    expect(set.ruleCount).toBe(set.rules.length);
    expect(set.ruleCount).toBeGreaterThanOrEqual(14);
    expect(set.validatedWith.yarac).toMatch(/^4\.\d+\.\d+/);
    expect(set.validatedWith.clamav).toMatch(/^ClamAV \d+\.\d+/);
    expect(set.canary.signature).toBe(CANARY_SIGNATURE);
  });

  it('digests the files in the documented layout, recomputed here from the files on disk', async () => {
    const set = await loadRuleSet(RULES);
    const h = createHash('sha256').update('portcullis-yara-rules-v1\n');
    for (const name of (await readdir(RULES)).filter((f) => f.endsWith('.yar')).sort()) {
      const bytes = await readFile(join(RULES, name));
      const nameLen = Buffer.alloc(4);
      nameLen.writeUInt32BE(name.length);
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(bytes.length));
      h.update(nameLen).update(name).update(len).update(bytes);
    }
    expect(set.digest).toBe(`sha256:${h.digest('hex')}`);
  });

  it('maps a clamd FOUND signature back to the rule and its severity', async () => {
    const set = await loadRuleSet(RULES);
    expect(findRuleBySignature(set, 'YARA.Portcullis_Shadow_Copy_Deletion.UNOFFICIAL')?.severity).toBe('critical');
    expect(findRuleBySignature(set, 'Win.Test.EICAR_HDB-1')).toBeUndefined();
    expect(findRuleBySignature(set, 'YARA.Not_A_Portcullis_Rule.UNOFFICIAL')).toBeUndefined();
  });
});

describe('the bad-rule corpus (rules/yara/tests/bad)', async () => {
  const rows = (await readFile(join(BAD, 'expected.tsv'), 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.split('\t'));

  it('lists every bad rule file', async () => {
    const files = (await readdir(BAD)).filter((f) => f.endsWith('.yar')).sort();
    expect(rows.map((r) => r[0]).sort()).toEqual(files);
  });

  for (const [file, code, line, why] of rows) {
    it(`refuses ${file} with ${code} at line ${line} (${why})`, async () => {
      const dir = await withCanary();
      await copyFile(join(BAD, file!), join(dir, file!));
      const error = await loadError(dir);
      expect(error.code).toBe(code as YaraRuleErrorCode);
      expect(error.file).toBe(file);
      expect(error.line).toBe(Number(line));
    });
  }
});

describe('loadRuleSet bounds and refusals', () => {
  it('refuses a directory without rule files', async () => {
    expect((await loadError(await freshDir())).code).toBe('RULE_SET_EMPTY');
  });

  it('refuses a directory that does not exist', async () => {
    expect((await loadError(join(work, 'no-such-dir'))).code).toBe('RULE_DIR_UNREADABLE');
  });

  it('refuses a rule set without the canary rule', async () => {
    const dir = await freshDir();
    await writeFile(join(dir, 'only.yar'), GOOD_RULE('Only_Rule'));
    expect((await loadError(dir)).code).toBe('RULE_CANARY_MISSING');
  });

  it('refuses a rule file over the per-file size limit', async () => {
    const dir = await withCanary();
    await writeFile(join(dir, 'big.yar'), GOOD_RULE('Big') + '// padding\n'.repeat(200));
    const error = await loadError(dir, { limits: { maxFileBytes: 1024 } });
    expect(error.code).toBe('RULE_FILE_TOO_LARGE');
    expect(error.file).toBe('big.yar');
  });

  it('refuses more rule files than allowed', async () => {
    const dir = await withCanary();
    for (const k of [1, 2, 3]) await writeFile(join(dir, `r${k}.yar`), GOOD_RULE(`R${k}`));
    expect((await loadError(dir, { limits: { maxFiles: 3 } })).code).toBe('RULE_SET_TOO_LARGE');
  });

  it('refuses more rules than allowed', async () => {
    const dir = await withCanary();
    await writeFile(join(dir, 'two.yar'), GOOD_RULE('One') + GOOD_RULE('Two'));
    expect((await loadError(dir, { limits: { maxRules: 2 } })).code).toBe('RULE_SET_TOO_LARGE');
  });

  it('refuses a symlinked rule file', async () => {
    const dir = await withCanary();
    await writeFile(join(work, 'outside.yar'), GOOD_RULE('Outside'));
    await symlink(join(work, 'outside.yar'), join(dir, 'linked.yar'));
    const error = await loadError(dir);
    expect(error.code).toBe('RULE_FILE_INVALID');
    expect(error.file).toBe('linked.yar');
  });

  it('refuses a .yara file that clamd would load but the set would not list', async () => {
    const dir = await withCanary();
    await writeFile(join(dir, 'extra.yara'), GOOD_RULE('Extra'));
    expect((await loadError(dir)).code).toBe('RULE_FILE_INVALID');
  });

  it('reports a missing yarac as RULE_COMPILER_UNAVAILABLE', async () => {
    const dir = await withCanary();
    expect((await loadError(dir, { yaracPath: join(work, 'no-yarac') })).code).toBe('RULE_COMPILER_UNAVAILABLE');
  });

  it('names the compile error, not a warning yarac printed for an earlier line', async () => {
    const dir = await withCanary();
    // yarac warns about the 1-byte string (line 9), then stops at the missing colon (reported at line 23).
    await writeFile(join(dir, 'mixed.yar'), GOOD_RULE('Slow').replace('"portcullis-Slow"', '"x"') + GOOD_RULE('Broken').replace('condition:', 'condition'));
    const error = await loadError(dir);
    expect(error.code).toBe('RULE_COMPILE_ERROR');
    expect(error.problems.map((p) => p.line)).toEqual([23, 9]);
    expect(error.line).toBe(23);
    expect(error.message).toMatch(/^mixed\.yar:23: error: syntax error/);
  });

  it('reports every problem of a file, not only the first', async () => {
    const dir = await withCanary();
    await copyFile(join(BAD, 'base64-modifier.yar'), join(dir, 'base64-modifier.yar'));
    const error = await loadError(dir);
    expect(error.problems.map((p) => p.message).join('\n')).toMatch(/base64[\s\S]*nocase/);
  });
});

describe('stageRuleSet', () => {
  it('writes the validated, probed bytes as portcullis-*.yar and removes stale ones it staged earlier', async () => {
    const set = await loadRuleSet(RULES);
    const db = await freshDir();
    await writeFile(join(db, 'portcullis-removed-rule.yar'), GOOD_RULE('Removed'));
    await writeFile(join(db, 'test.ndb'), 'Other.Sig:0:*:4142434445\n');
    const staged = await stageRuleSet(set, db);
    expect(staged).toHaveLength(set.files.length);
    const entries = (await readdir(db)).sort();
    expect(entries).toEqual(['test.ndb', ...set.files.map((f) => `portcullis-${f.name}`)].sort());
    expect(set.staged.files.map((f) => f.name)).toEqual(set.files.map((f) => f.name));
    for (const f of set.staged.files) {
      const written = await readFile(join(db, `portcullis-${f.name}`));
      expect(Buffer.compare(written, Buffer.from(f.bytes))).toBe(0);
      expect(written.toString('latin1')).toContain(') or (uint32(0) == ');
    }
  });

  it('draws a new probe key for every load: the staged bytes differ, the digest does not', async () => {
    const [a, b] = [await loadRuleSet(RULES), await loadRuleSet(RULES)];
    expect(a.digest).toBe(b.digest);
    expect(Buffer.compare(Buffer.from(a.staged.files[0]!.bytes), Buffer.from(b.staged.files[0]!.bytes))).not.toBe(0);
  });

  it('fails with RULE_STAGE_FAILED when the database directory is missing', async () => {
    const set = await loadRuleSet(RULES);
    const error: unknown = await stageRuleSet(set, join(work, 'missing-db')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(YaraRuleError);
    expect((error as YaraRuleError).code).toBe('RULE_STAGE_FAILED');
  });
});
