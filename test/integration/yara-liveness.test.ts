/**
 * Every YARA rule proven live (issue 15, point 4), with the real libyara,
 * libclamav and clamd: the dead-rules bug of ClamAV 1.4.6 reproduced with a
 * third-party rule file, the kiosk refusing every way such a file could
 * reach clamd, and the per-rule probes catching rules that load and never
 * match, also when nothing is printed.
 */
import { loadPolicy } from '../../kiosk/rules-files.ts';
import { DEFAULT_RULES_DIR } from '../../kiosk/config.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, opendir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClamdClient } from '../../kiosk/engines/clamav/client.ts';
import { ScannerError } from '../../kiosk/engines/clamav/errors.ts';
import { startClamd } from '../../kiosk/engines/clamav/supervisor.ts';
import { renderTestSignatures, renderUnsignedDatabase } from '../../kiosk/engines/clamav/test-database.ts';
import { EngineError, startEngines } from '../../kiosk/engines/engines.ts';
import { type Policy } from '../../kiosk/core/policy.ts';
import { canarySample, CANARY_RULE, CANARY_SIGNATURE } from '../../kiosk/engines/yara/canary.ts';
import { probeClamavRules } from '../../kiosk/engines/yara/clamav-probe.ts';
import { YaraRuleError } from '../../kiosk/engines/yara/errors.ts';
import { instrumentRules, proveRulesLive, type LivenessProbe } from '../../kiosk/engines/yara/liveness.ts';
import { loadRuleSet, stageRuleSet, STAGED_PREFIX, type RuleSet } from '../../kiosk/engines/yara/rule-set.ts';
import { runTool } from '../../kiosk/engines/run-tool.ts';
import { parseYaraMatch } from '../../kiosk/core/yara-match.ts';

const RULES = join(import.meta.dirname, '../../rules/yara');
const BAD = join(RULES, 'tests/bad');
// Written for libyara: import "pe", pe.exports after string references. Kills every YARA rule libclamav loads after it.
const THIRD_PARTY = join(BAD, 'third-party-pe-exports.yar');
// Uses `matches`: libclamav loads it without a word and every YARA rule loaded after it never matches.
const SILENT_KILLER = join(BAD, 'matches-operator.yar');

let work: string;
let set: RuleSet;
let policy: Policy;
let n = 0;
async function freshDir(): Promise<string> {
  const d = join(work, `d${n++}`);
  await mkdir(d);
  return d;
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  await Promise.resolve();
  yield bytes;
}

/** The project's test signatures (.hdb, .ndb) without their loose YARA rule, as loose files in `dir`. */
async function writeSignatures(dir: string): Promise<number> {
  const files = [...renderTestSignatures()].filter(([name]) => !name.endsWith('.yar'));
  for (const [name, bytes] of files) await writeFile(join(dir, name), bytes);
  return files.length; // one signature each
}

/** Names in `dir` in the order the kernel lists them, which is the order libclamav loads them in. */
async function rawOrder(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of await opendir(dir)) names.push(entry.name);
  return names;
}

/** Writes `bytes` into `dir` under a name libclamav loads before every other YARA file there; returns the name. */
async function writeLoadedFirst(dir: string, stem: string, bytes: Uint8Array): Promise<string> {
  for (let k = 0; k < 500; k++) {
    const name = `${stem}-${k}.yar`;
    await writeFile(join(dir, name), bytes);
    if ((await rawOrder(dir)).filter((f) => f.endsWith('.yar'))[0] === name) return name;
    await unlink(join(dir, name));
  }
  throw new Error(`no name of the form ${stem}-N.yar is listed first in ${dir}`);
}

/** One rule file: the staged canary file, then `killer`, then every other staged file, so the order is fixed. */
function canaryThenKillerThenRest(killer: Uint8Array): Uint8Array {
  const canary = set.staged.files.find((f) => set.files.find((o) => o.name === f.name)?.rules.includes(CANARY_RULE));
  if (canary === undefined) throw new Error('no canary file');
  const rest = set.staged.files.filter((f) => f !== canary);
  return Buffer.concat([canary.bytes, Buffer.from('\n'), killer, Buffer.from('\n'), ...rest.flatMap((f) => [f.bytes, Buffer.from('\n')])]);
}

interface BareClamd {
  readonly client: ClamdClient;
  readonly log: string;
  readonly stderr: () => string;
  stop(): Promise<void>;
}
/** A clamd started the plain way (no kiosk supervisor and its checks), as a site would run it. */
async function startBareClamd(db: string): Promise<BareClamd> {
  const dir = await freshDir();
  const socket = join(dir, 'clamd.sock');
  const log = join(dir, 'clamd.log');
  const conf = join(dir, 'clamd.conf');
  await mkdir(join(dir, 'tmp'));
  const lines = [`LocalSocket ${socket}`, `DatabaseDirectory ${db}`, `TemporaryDirectory ${join(dir, 'tmp')}`, `LogFile ${log}`, 'Foreground yes', 'SelfCheck 0'];
  if (process.getuid?.() === 0) lines.push('User root');
  await writeFile(conf, `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn('/usr/sbin/clamd', ['--config-file', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const client = new ClamdClient({ socketPath: socket });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`clamd exited: ${stderr}`);
    try {
      await client.ping();
      return { client, log, stderr: () => stderr, stop };
    } catch {
      await sleep(100);
    }
  }
  await stop();
  throw new Error('clamd did not answer within 30 s');
}

async function rejection<T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof type)) throw new Error(`expected a ${type.name}, got ${String(error)}`);
  return error;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pc-liveness-'));
  set = await loadRuleSet(RULES);
  policy = (await loadPolicy()).policy;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the dead-rules bug of ClamAV 1.4.6, reproduced', () => {
  it('a third-party rule file loaded first leaves every project rule counted and dead in a plain clamd; the kiosk refuses to start clamd on it', async () => {
    const db = await freshDir();
    const signatures = await writeSignatures(db);
    await stageRuleSet(set, db);
    await writeLoadedFirst(db, 'third-party', await readFile(THIRD_PARTY));

    const clamd = await startBareClamd(db);
    try {
      // clamd counts them all (the third party's second rule too) ...
      expect(await readFile(clamd.log, 'utf8')).toContain(`Loaded ${signatures + set.staged.loadedRuleCount + 1} signatures.`);
      // ... and not one fires, the canary included; the project's own credential-dumping sample passes unseen.
      const live = await proveRulesLive(set.staged.probes, (sample) => clamd.client.scanStream(oneChunk(sample)));
      expect(live.proven).toEqual([]);
      expect(live.dead.map((d) => d.answer)).toEqual(set.staged.probes.map(() => 'OK'));
      expect(await clamd.client.scanStream(oneChunk(await readFile(join(RULES, 'tests/samples/cred-mimikatz.txt'))))).toEqual({ status: 'clean' });
      // The only trace is libclamav's stderr.
      expect(clamd.stderr()).toContain('undefined identifier "pe"');
    } finally {
      await clamd.stop();
    }

    const error = await rejection(startClamd({ databaseDir: db, workDir: await freshDir() }), ScannerError);
    expect(error.code).toBe('SCANNER_START_FAILED');
    expect(error.message).toMatch(/LibClamAV Error: yyerror\(\): .*third-party-\d+\.yar line 20 undefined identifier "pe"/);
  });

  it('a rule that kills the rules after it without printing anything: clamd starts cleanly and the canary fires, but the probes find every later rule dead', async () => {
    const db = await freshDir();
    await writeSignatures(db);
    await writeFile(join(db, `${STAGED_PREFIX}all.yar`), canaryThenKillerThenRest(await readFile(SILENT_KILLER)));

    const clamd = await startClamd({ databaseDir: db, workDir: await freshDir() }); // no load problem printed
    try {
      expect(await clamd.client.scanStream(oneChunk(canarySample()))).toEqual({ status: 'found', signature: CANARY_SIGNATURE });
      const live = await proveRulesLive(set.staged.probes, (sample) => clamd.client.scanStream(oneChunk(sample)));
      expect(live.proven.map((p) => p.rule)).toEqual([CANARY_RULE]);
      expect(live.dead.map((d) => d.probe.rule).sort()).toEqual(set.rules.map((r) => r.name).filter((r) => r !== CANARY_RULE).sort());
    } finally {
      await clamd.stop();
    }
  });
});

describe('no YARA file reaches clamd without the rule loader', () => {
  it('refuses to start when the ClamAV database folder holds a YARA file, naming it and the rules folder', async () => {
    for (const name of ['apt-loader.yar', 'SITE-RULES.YARA']) {
      const clamavDb = await freshDir();
      await writeSignatures(clamavDb);
      await writeFile(join(clamavDb, name), await readFile(THIRD_PARTY));
      const workDir = await freshDir();
      const error = await rejection(startEngines({ clamavDb, rulesDir: DEFAULT_RULES_DIR, workDir, policy }), EngineError);
      expect(error.code).toBe('CLAMAV_DB_UNCHECKED_RULES');
      expect(error.message).toContain(name);
      expect(error.message).toContain('--rules');
      expect(await readdir(join(workDir, 'db'))).toEqual([]); // nothing staged, no clamd started
    }
  });

  it('refuses the same file in the rules folder (--rules): the loader names the import', async () => {
    const rulesDir = await freshDir();
    await writeFile(join(rulesDir, 'canary.yar'), await readFile(join(RULES, 'canary.yar')));
    await writeFile(join(rulesDir, 'apt-loader.yar'), await readFile(THIRD_PARTY));
    const error = await rejection(loadRuleSet(rulesDir), YaraRuleError);
    expect([error.code, error.file, error.line]).toEqual(['RULE_NOT_PORTABLE', 'apt-loader.yar', 7]);
  });

  it('refuses to start when a signature container holds a YARA file: libclamav loads none of it and warns', async () => {
    const clamavDb = await freshDir();
    const signatures = new Map([...renderTestSignatures('daily')].filter(([name]) => !name.endsWith('.yar')));
    signatures.set('site.yar', await readFile(THIRD_PARTY));
    await writeFile(join(clamavDb, 'daily.cud'), renderUnsignedDatabase('daily', signatures, 7, new Date()));
    const error = await rejection(startEngines({ clamavDb, rulesDir: DEFAULT_RULES_DIR, workDir: await freshDir(), policy }), ScannerError);
    expect(error.code).toBe('SCANNER_START_FAILED');
    expect(error.message).toContain('LibClamAV Warning: cli_loadyara: empty database file');
  });

});

describe('the kiosk proves every rule through its clamd', () => {
  it('fires each rule on its probe, the way drives are scanned, and records the count proven', async () => {
    const workDir = await freshDir();
    const engines = await startEngines({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, workDir, policy });
    try {
      expect(engines.info.yara?.ruleCount).toBe(engines.ruleSet.ruleCount);
      expect(engines.ruleSet.staged.probes).toHaveLength(engines.ruleSet.ruleCount);
      // clamd's folder holds the loader's files and the test signatures, no other YARA file.
      const staged = (await readdir(join(workDir, 'db'))).filter((f) => /\.yara?$/i.test(f)).sort();
      expect(staged).toEqual(engines.ruleSet.files.map((f) => `${STAGED_PREFIX}${f.name}`).sort());
      for (const probe of engines.ruleSet.staged.probes) {
        // The probe fires in clamd only (the full engine does not carry probes): the finding names clamd's view.
        const answer = await engines.scanner.scanStream(oneChunk(probe.sample));
        expect(answer.status === 'found' && answer.reason, probe.rule).toBe('YARA_MATCH');
        const facts = answer.status === 'found' ? parseYaraMatch(answer.signature) : null;
        expect({ rule: facts?.rule, clamavView: facts?.clamavView }, probe.rule).toEqual({ rule: probe.rule, clamavView: true });
      }
    } finally {
      await engines.stop();
    }
  });

  it('refuses to start when something in the ClamAV database silences a rule without a word (an .ign2 naming it)', async () => {
    const clamavDb = await freshDir();
    await writeSignatures(clamavDb);
    await writeFile(join(clamavDb, 'local.ign2'), 'Portcullis_Credential_Dumper\n');
    const error = await rejection(startEngines({ clamavDb, rulesDir: DEFAULT_RULES_DIR, workDir: await freshDir(), policy }), EngineError);
    expect(error.code).toBe('YARA_RULES_NOT_LIVE');
    expect(error.message).toMatch(/^clamd loaded the YARA rules but 1 of \d+ YARA rules did not fire on their probes: credential-dumping\.yar:\d+ Portcullis_Credential_Dumper \(answered OK\)/);
  });
});

describe('the probes themselves', () => {
  it('fire exactly their own rule in libyara too (each sample, the shipped set)', async () => {
    const dir = await freshDir();
    for (const f of set.staged.files) await writeFile(join(dir, f.name), f.bytes);
    const compiled = join(dir, 'rules.yarc');
    const c = await runTool('yarac', ['--fail-on-warnings', ...set.staged.files.map((f) => join(dir, f.name)), compiled], { timeoutMs: 30_000 });
    expect(c.stderr).toBe('');
    const samples = await freshDir();
    for (const p of set.staged.probes) await writeFile(join(samples, `${p.index}.bin`), p.sample);
    const y = await runTool('yara', ['-C', compiled, samples], { timeoutMs: 30_000 });
    const fired = y.stdout.trim().split('\n').map((line) => line.split(' ')).map(([rule, path]) => `${path?.split('/').pop() ?? ''} ${rule ?? ''}`).sort();
    expect(fired).toEqual(set.staged.probes.map((p) => `${p.index}.bin ${p.signature.replace(/^YARA\.|\.UNOFFICIAL$/g, '')}`).sort());
  });

  it('make the libclamav check refuse a rule set whose rules load and never match (RULE_NOT_LIVE, naming each dead rule)', async () => {
    const db = await freshDir();
    await writeFile(join(db, `${STAGED_PREFIX}all.yar`), canaryThenKillerThenRest(await readFile(SILENT_KILLER)));
    const error = await rejection(
      probeClamavRules(db, await freshDir(), set.staged.loadedRuleCount + 1, { clamscanPath: 'clamscan', timeoutMs: 30_000 }, set.staged.probes),
      YaraRuleError,
    );
    expect(error.code).toBe('RULE_NOT_LIVE');
    expect(error.problems.map((p) => p.rule).sort()).toEqual(set.rules.map((r) => r.name).filter((r) => r !== CANARY_RULE).sort());
    const first = set.rules.find((r) => r.name !== CANARY_RULE)!;
    expect([error.file, error.line]).toEqual([first.file, first.line]);
  });

  it('are not vacuous: samples made with another key fire nothing', async () => {
    const db = await freshDir();
    for (const f of set.staged.files) await writeFile(join(db, `${STAGED_PREFIX}${f.name}`), f.bytes);
    const other: LivenessProbe[] = [...instrumentRules(set.files, { k0: 11, k1: 12 }).probes];
    const error = await rejection(
      probeClamavRules(db, await freshDir(), set.staged.loadedRuleCount, { clamscanPath: 'clamscan', timeoutMs: 30_000 }, other),
      YaraRuleError,
    );
    expect(error.code).toBe('RULE_NOT_LIVE');
    expect(error.problems).toHaveLength(set.ruleCount);
  });
});
