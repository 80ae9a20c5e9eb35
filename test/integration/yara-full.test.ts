/**
 * The full YARA engine (libyara through the kiosk's sandboxed helper) for
 * real: site rule sets as published, modules on real samples in a real scan,
 * `rules check` against libyara's own compiler, and the attacks first: a rule
 * set that loses rules, an error hiding behind another file, a site file
 * trying to override the project's rules, a rule that times the engine out,
 * an engine that dies.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_RULES_DIR } from '../../kiosk/config.ts';
import { loadPolicy } from '../../kiosk/rules-files.ts';
import { buildAllowlist } from '../../kiosk/core/allowlist.ts';
import { parsePolicy, type LoadedPolicy } from '../../kiosk/core/policy.ts';
import { parseYaraMatch } from '../../kiosk/core/yara-match.ts';
import { checkRules, rulesCommand } from '../../kiosk/cli/rules-command.ts';
import { startEngines } from '../../kiosk/engines/engines.ts';
import { preferredBlake3 } from '../../kiosk/engines/hash-file.ts';
import { ScannerError } from '../../kiosk/engines/clamav/errors.ts';
import { YaraRuleError } from '../../kiosk/engines/yara/errors.ts';
import { startFullYara } from '../../kiosk/engines/yara-full/full-engine.ts';
import { scanDrive } from '../../kiosk/scan/scan-session.ts';
import { writeRuleCorpus } from '../fixtures/yara-corpus/generate.ts';
import { tinyPe } from '../fixtures/yara-corpus/pe.ts';

const work = mkdtempSync(join(tmpdir(), 'yara-full-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The project's rules plus `site` files (path under site/ -> text). */
function rulesFolder(site: Record<string, string>): string {
  const dir = mkdtempSync(join(work, 'rules-'));
  for (const name of readdirSync(DEFAULT_RULES_DIR).filter((n) => n.endsWith('.yar'))) copyFileSync(join(DEFAULT_RULES_DIR, name), join(dir, name));
  for (const [path, text] of Object.entries(site)) {
    mkdirSync(dirname(join(dir, 'site', path)), { recursive: true });
    writeFileSync(join(dir, 'site', path), text);
  }
  return dir;
}

async function policyWith(maxScanSeconds: number): Promise<LoadedPolicy> {
  const p = structuredClone((await loadPolicy()).policy);
  p.clamav.maxScanSeconds = maxScanSeconds;
  return parsePolicy(new TextEncoder().encode(JSON.stringify(p)), 'test-policy.json');
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  await Promise.resolve();
  yield bytes;
}

const PE_AND_MATH = {
  // As public sets write them: upper-case names, .yara, folders, no severity, the same rule name twice.
  'Vendor-Set/PE_Tools.yara': `import "pe"
rule SUSP_Tiny_Console_PE : PE {
  meta:
    description = "A one-section console program with a .zvtext section"
    reference = "https://intel.example.org/tiny-pe"
    author = "Plant SOC"
  strings:
    $code = { 31 C0 C3 }
  condition:
    uint16(0) == 0x5A4D and pe.is_pe and pe.number_of_sections == 1 and pe.sections[0].name == ".zvtext" and $code at pe.sections[0].raw_data_offset
}
`,
  'Vendor-Set/entropy.yar': `import "math"
rule SUSP_High_Entropy_Blob {
  meta:
    description = "Packed or encrypted content (entropy above 7.9)"
  strings:
    $magic = "ZVPACKED"
  condition:
    $magic at 0 and math.entropy(0, filesize) > 7.9
}
rule SUSP_Tiny_Console_PE {
  meta:
    description = "The same name in another file: its own namespace"
  condition:
    false
}
`,
};

describe('site rule sets as published, in a real scan', () => {
  it('matches pe and math rules on their samples, explains each match, and leaves look-alikes alone', async () => {
    const policy = await policyWith(60);
    const engines = await startEngines({ clamavDb: 'test', rulesDir: rulesFolder(PE_AND_MATH), workDir: join(work, 'engines-pe'), policy: policy.policy, yaraCacheDir: join(work, 'cache') });
    try {
      const packed = Buffer.concat([Buffer.from('ZVPACKED'), randomBytes(64 * 1024)]);
      const drive = mkdtempSync(join(work, 'drive-'));
      writeFileSync(join(drive, 'tool.exe'), tinyPe({ sectionName: '.zvtext' }));
      writeFileSync(join(drive, 'other.exe'), tinyPe({ sectionName: '.text' })); // the look-alike: another section name
      writeFileSync(join(drive, 'firmware.dat'), packed);
      writeFileSync(join(drive, 'notes.dat'), Buffer.concat([Buffer.from('ZVPACKED'), Buffer.alloc(64 * 1024, 0x41)])); // low entropy
      const report = await scanDrive(drive, {
        policy, allowlist: buildAllowlist([]), scanner: engines.scanner, inspection: engines.inspection, blake3: preferredBlake3(),
        classifyScannerError: (e) => engines.classifyScannerError(e), ledgerDir: work,
      });
      const files = new Map([...report.decision.files].map((f) => [f.display, f]));
      const yara = (path: string) => files.get(path)!.reasons.filter((r) => r.code === 'YARA_MATCH').map((r) => parseYaraMatch(r.detail));
      expect(yara('tool.exe')).toEqual([{
        rule: 'SUSP_Tiny_Console_PE', namespace: 'site/Vendor-Set/PE_Tools.yara', description: 'A one-section console program with a .zvtext section',
        reference: 'https://intel.example.org/tiny-pe', severity: null, strings: [{ id: '$code', count: 1, offsets: [0x200] }],
      }]);
      expect(yara('other.exe')).toEqual([]);
      expect(yara('firmware.dat').map((m) => [m?.rule, m?.namespace, m?.strings])).toEqual([['SUSP_High_Entropy_Blob', 'site/Vendor-Set/entropy.yar', [{ id: '$magic', count: 1, offsets: [0] }]]]);
      expect(yara('notes.dat')).toEqual([]);
      report.close();
      // Every rule is counted: the project's files and both site files, as libyara compiled them.
      expect(engines.info.yara?.ruleCount).toBe(engines.ruleSet.ruleCount + 3);
      expect(engines.info.yara?.ruleSetDigest).toBe(engines.fullYara.digest);
      expect(engines.info.yara?.engine).toMatch(/^libyara 4\.\d+\.\d+ \+ ClamAV/);
    } finally {
      await engines.stop();
    }
  });

  it('gives archive members the full engine too (the kiosk extracts them; libyara alone sees only the archive)', async () => {
    const policy = await policyWith(60);
    const engines = await startEngines({ clamavDb: 'test', rulesDir: rulesFolder(PE_AND_MATH), workDir: join(work, 'engines-zip'), policy: policy.policy, yaraCacheDir: join(work, 'cache') });
    try {
      const drive = mkdtempSync(join(work, 'drive-'));
      const inner = mkdtempSync(join(work, 'zip-'));
      writeFileSync(join(inner, 'firmware.dat'), Buffer.concat([Buffer.from('ZVPACKED'), randomBytes(64 * 1024)]));
      execFileSync('7zz', ['a', '-tgzip', join(drive, 'firmware.dat.gz'), join(inner, 'firmware.dat')], { stdio: 'ignore' });
      const report = await scanDrive(drive, {
        policy, allowlist: buildAllowlist([]), scanner: engines.scanner, inspection: engines.inspection, blake3: preferredBlake3(),
        classifyScannerError: (e) => engines.classifyScannerError(e), ledgerDir: work,
      });
      const reasons = [...report.decision.files].flatMap((f) => f.reasons);
      report.close();
      expect(reasons.filter((r) => r.code === 'YARA_MATCH').map((r) => r.detail)).toEqual([expect.stringMatching(/^firmware\.dat\.gz!\/firmware\.dat: SUSP_High_Entropy_Blob \[site\/Vendor-Set\/entropy\.yar\] \| .* \| strings: \$magic at 0x0$/)]);
      expect(parseYaraMatch(reasons.find((r) => r.code === 'YARA_MATCH')!.detail)).toMatchObject({ member: 'firmware.dat.gz!/firmware.dat', rule: 'SUSP_High_Entropy_Blob' });
    } finally {
      await engines.stop();
    }
  });
});

describe('attacks on the rule set and the engine', () => {
  it('keeps a site file from overriding or silencing the project\'s rules (its own namespace: a false global rule and the canary\'s name)', async () => {
    const policy = await policyWith(60);
    const site = {
      'evil/override.yar': 'global rule Everything_Off { condition: false }\nrule Portcullis_Canary { condition: false }\nrule Portcullis_Shadow_Copy_Deletion { condition: false }\n',
    };
    const engines = await startEngines({ clamavDb: 'test', rulesDir: rulesFolder(site), workDir: join(work, 'engines-override'), policy: policy.policy, yaraCacheDir: join(work, 'cache') });
    try {
      const answer = await engines.scanner.scanStream(oneChunk(readFileSync(join(DEFAULT_RULES_DIR, 'tests/samples/shadow-delete.bat'))));
      const facts = answer.status === 'found' ? [answer, ...(answer.more ?? [])].map((f) => parseYaraMatch(f.signature)) : [];
      expect(facts.map((f) => [f?.rule, f?.namespace])).toEqual([['Portcullis_Shadow_Copy_Deletion', 'portcullis/ransomware-prep.yar']]);
    } finally {
      await engines.stop();
    }
  });

  it('refuses a rule set with errors in two files, naming both (the second error does not hide behind the first)', async () => {
    const dir = rulesFolder({ 'a/first.yar': 'rule A { condition: nothing_here }\n', 'b/good.yar': 'rule Good { condition: filesize == 3 }\n', 'c/second.yara': 'rule B {\n  strings:\n    $a = "zvx"\n  condition:\n    $a and (\n}\n' });
    const error = await startFullYara({ rulesDir: dir, workDir: join(work, 'full-broken'), readable: [], timeoutSeconds: 5 }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(YaraRuleError);
    expect((error as YaraRuleError).code).toBe('RULE_COMPILE_ERROR');
    expect((error as YaraRuleError).problems.map((p) => [p.file, p.line])).toEqual([['site/a/first.yar', 1], ['site/c/second.yara', 6]]);
  });

  it('refuses to start when the compiled set it would load has lost rules (a stale or swapped compiled file)', async () => {
    const cacheDir = join(work, 'cache-swap');
    const dir = rulesFolder({ 'x/one.yar': 'rule One { condition: filesize == 1 }\nrule Two { condition: filesize == 2 }\n' });
    const first = await startFullYara({ rulesDir: dir, workDir: join(work, 'full-swap'), cacheDir, readable: [], timeoutSeconds: 5 });
    first.stop();
    // Swap the kept compiled set for one without rule Two, as a tampered or stale cache would hold.
    const kept = readdirSync(cacheDir).find((n) => n.endsWith('.yarc'))!;
    const fewer = rulesFolder({ 'x/one.yar': 'rule One { condition: filesize == 1 }\n' });
    const other = await startFullYara({ rulesDir: fewer, workDir: join(work, 'full-swap2'), cacheDir: join(work, 'cache-swap2'), readable: [], timeoutSeconds: 5 });
    other.stop();
    const small = readdirSync(join(work, 'cache-swap2')).find((n) => n.endsWith('.yarc'))!;
    copyFileSync(join(work, 'cache-swap2', small), join(cacheDir, kept));
    const error = await startFullYara({ rulesDir: dir, workDir: join(work, 'full-swap3'), cacheDir, readable: [], timeoutSeconds: 5 }).then(() => null, (e: unknown) => e);
    expect((error as YaraRuleError).code).toBe('RULE_NOT_LIVE');
  });

  it('blocks a file that keeps a slow rule busy past the limit (YARA_SCAN_TIMEOUT), and the engine goes on', async () => {
    const slow = { 'slow/loop.yar': 'rule Slow_Loop { condition: for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0x100 + uint8(j) ) ) }\n' };
    const scratch = mkdtempSync(join(work, 'files-'));
    const engine = await startFullYara({ rulesDir: rulesFolder(slow), workDir: join(work, 'full-slow'), readable: [scratch], timeoutSeconds: 1 });
    try {
      writeFileSync(join(scratch, 'big.bin'), Buffer.alloc(256 * 1024, 7));
      const answer = await engine.scanPath(join(scratch, 'big.bin'));
      expect(answer.status === 'found' ? [answer.reason, answer.signature.split(':')[0]] : null).toEqual(['LIMIT_EXCEEDED', 'YARA_SCAN_TIMEOUT']);
      writeFileSync(join(scratch, 'canary.txt'), readFileSync(join(DEFAULT_RULES_DIR, 'tests/samples/shadow-delete.bat')));
      const next = await engine.scanPath(join(scratch, 'canary.txt'));
      expect(next.status === 'found' && parseYaraMatch(next.signature)?.rule).toBe('Portcullis_Shadow_Copy_Deletion');
    } finally {
      engine.stop();
    }
  });

  it('rejects the drive, never "clean", when the engine dies under a scan', async () => {
    const scratch = mkdtempSync(join(work, 'files-'));
    const engine = await startFullYara({ rulesDir: rulesFolder({}), workDir: join(work, 'full-kill'), readable: [scratch], timeoutSeconds: 5 });
    writeFileSync(join(scratch, 'a.txt'), 'hello');
    engine.stop(); // as a crash would: the server is gone
    const error = await engine.scanPath(join(scratch, 'a.txt')).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ScannerError);
    expect((error as ScannerError).code).toBe('SCANNER_ERROR');
  });
});

describe('rules check: public-style rule sets as they come', () => {
  it('prints {"files":[{"path","accepted","rules","errors"}]} with --json, exit 1 when a file is refused', async () => {
    const dir = mkdtempSync(join(work, 'check-'));
    writeFileSync(join(dir, 'Good.YARA'), 'import "pe"\nrule A { condition: pe.is_pe }\nrule B { condition: filesize == 1 }\n');
    writeFileSync(join(dir, 'bad.yar'), 'rule C {\n  condition:\n    undeclared_thing\n}\n');
    const lines: string[] = [];
    const code = await rulesCommand(['check', dir, '--json'], (l) => lines.push(l));
    expect(code).toBe(1);
    expect(JSON.parse(lines.join('\n'))).toEqual({ files: [
      { path: join(dir, 'Good.YARA'), accepted: true, rules: 2, errors: [] },
      { path: join(dir, 'bad.yar'), accepted: false, rules: 0, errors: [`${join(dir, 'bad.yar')}:3: undefined identifier "undeclared_thing"`] },
    ].sort((a, b) => (a.path < b.path ? -1 : 1)) });
  });


  it('accepts every file libyara compiles (target: at least 95%) and refuses the rest with the engine\'s file:line', async () => {
    const dir = mkdtempSync(join(work, 'corpus-'));
    const written = writeRuleCorpus(dir, { rules: 600, seed: 7, rulesPerFile: 40, externals: true, broken: 4 });
    const result = await checkRules([dir]);
    expect(result.files).toHaveLength(written.length);
    // libyara's own compiler, file by file, given the external variables public sets expect.
    const yaracCompiles = (path: string): boolean => {
      try {
        execFileSync('yarac', ['-d', 'filename=', '-d', 'filepath=', '-d', 'extension=', '-d', 'filetype=', '-d', 'owner=', path, join(work, 'x.yarc')], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    const compilable = result.files.filter((f) => yaracCompiles(f.path));
    const accepted = compilable.filter((f) => f.accepted);
    expect(compilable.length).toBe(written.length - 4);
    expect(accepted.length / compilable.length).toBeGreaterThanOrEqual(0.95);
    const refused = result.files.filter((f) => !f.accepted);
    expect(refused.map((f) => f.path.slice(dir.length + 1)).sort()).toEqual(['broken/broken_0.yar', 'broken/broken_1.yar', 'broken/broken_2.yar', 'broken/broken_3.yar']);
    for (const f of refused) expect(f.errors[0]).toMatch(new RegExp(`^${f.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `));
    // Rule counts are the engine's: the generator's own count for every accepted file.
    const byPath = new Map(written.map((w) => [join(dir, w.path), w.rules]));
    for (const f of accepted) expect(f.rules, f.path).toBe(byPath.get(f.path));
  });
});
