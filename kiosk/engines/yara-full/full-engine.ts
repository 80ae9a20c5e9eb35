/**
 * The kiosk's full YARA engine: every rule of the set (the project's and the
 * site's, rule-files.ts) compiled by libyara and run by the sandboxed helper
 * on the bytes the kiosk already holds (the spool file clamd scans), so the
 * drive is still read once. Started once per engine start:
 *
 *   read the files (bounded, digested) -> compile with libyara, one namespace
 *   per file (a compiled set is kept by digest, so a restart does not
 *   recompile) -> start the server -> prove it: it loaded exactly the rules
 *   compiled, evaluated every public rule on a probe file, and the canary
 *   fired on its own string.
 *
 * Fail closed: a set that does not compile is refused whole, naming every
 * file and line libyara refused; an engine error or time-out on a file blocks
 * that file (stable codes in the reason); an engine that dies or goes silent
 * rejects the drive.
 */
import { createHash } from 'node:crypto';
import { chmodSync, constants, existsSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatYaraMatch } from '../../core/yara-match.ts';
import type { StreamScanResult } from '../../core/ports.ts';
import { ScannerError } from '../clamav/errors.ts';
import { canarySample } from '../yara/canary.ts';
import { CANARY_RULE } from '../yara/canary.ts';
import { YaraRuleError, type RuleProblem } from '../yara/errors.ts';
import { checkRuleFiles, compileRuleSet, yaraHelperPath, YaraServer, YaraServerError, type CompiledSet, type InventoryRule, type ServeAnswer } from './helper.ts';
import { DEFAULT_FULL_RULE_SET_LIMITS, readFullRuleFiles, type FullRuleFile, type FullRuleSetLimits } from './rule-files.ts';

export interface FullYaraOptions {
  readonly rulesDir: string;
  /** Kiosk-owned folder: the compile sources, the probe file. */
  readonly workDir: string;
  /** Where compiled sets are kept by digest (kiosk-owned, 0700); default <workDir>/cache. */
  readonly cacheDir?: string;
  /** Folders whose files the engine is asked to scan (the spool). */
  readonly readable: readonly string[];
  readonly threads?: number; // default 2
  readonly timeoutSeconds: number; // libyara's limit per file
  readonly limits?: Partial<FullRuleSetLimits>;
  readonly helper?: string;
  readonly bwrapPath?: string | null;
  readonly onStatus?: (line: string) => void;
}

export interface FullYaraEngine {
  /** Every rule of the set, private and global ones included, as libyara counts them. */
  readonly ruleCount: number;
  readonly publicRules: number;
  readonly files: readonly FullRuleFile[];
  readonly digest: string;
  /** e.g. "libyara 4.2.3". */
  readonly engine: string;
  /** How long compiling took (0 when the compiled set was kept from an earlier start), and the start as a whole. */
  readonly timings: { readonly compileMs: number; readonly startMs: number; readonly cached: boolean };
  /** Scans one file the engine may read; a finding per matching rule. Throws ScannerError when the engine failed. */
  scanPath(path: string): Promise<StreamScanResult>;
  /** False once the engine died, went silent or was stopped: the engines must be started afresh. */
  alive(): boolean;
  stop(): void;
}

const MAX_RULES_REPORTED = 8; // YARA_MATCH reasons per file; one more says how many others matched

/** A kiosk-owned private folder (made if missing, refused if anyone else's). */
function privateFolder(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = lstatSync(dir);
  if (!info.isDirectory() || (info.mode & 0o077) !== 0 || info.uid !== process.getuid?.()) {
    throw new YaraRuleError('RULE_STAGE_FAILED', `${dir} is not a private folder of the kiosk: refusing to keep compiled rules there`);
  }
  return dir;
}

function key(ns: string, rule: string): string {
  return `${ns}\u0000${rule}`;
}

export async function startFullYara(options: FullYaraOptions): Promise<FullYaraEngine> {
  const started = performance.now();
  const status = options.onStatus ?? (() => undefined);
  const limits = { ...DEFAULT_FULL_RULE_SET_LIMITS, ...options.limits };
  const helper = options.helper ?? yaraHelperPath();
  const { files, digest } = await readFullRuleFiles(options.rulesDir, limits);
  if (!files.some((f) => f.origin === 'project' && f.name === 'canary.yar')) {
    throw new YaraRuleError('RULE_CANARY_MISSING', `no canary.yar in ${options.rulesDir}: restore rules/yara/canary.yar (the kiosk proves the rules are live with it)`);
  }
  const work = privateFolder(options.workDir);
  const cache = privateFolder(options.cacheDir ?? join(work, 'cache'));
  // The compiled set is kept under the digest of the files and of the helper that compiled it (a new libyara recompiles).
  const helperDigest = existsSync(helper) ? createHash('sha256').update(readFileSync(helper)).digest('hex').slice(0, 16) : 'missing';
  const stem = join(cache, `${digest.slice('sha256:'.length)}-${helperDigest}`);
  let compiled: CompiledSet;
  let compileMs = 0;
  let cached = false;
  if (existsSync(`${stem}.yarc`) && existsSync(`${stem}.json`)) {
    compiled = JSON.parse(readFileSync(`${stem}.json`, 'utf8')) as CompiledSet;
    cached = true;
  } else {
    status(`compiling ${files.length} YARA rule files with libyara`);
    const t = performance.now();
    compiled = await compileFiles(files, join(work, 'sources'), `${stem}.yarc.partial`, helper);
    compileMs = Math.round(performance.now() - t);
    writeFileSync(`${stem}.json.partial`, JSON.stringify(compiled), { mode: 0o600 });
    renameSync(`${stem}.json.partial`, `${stem}.json`);
    renameSync(`${stem}.yarc.partial`, `${stem}.yarc`);
  }
  if (compiled.rules.length > limits.maxRules) throw new YaraRuleError('RULE_SET_TOO_LARGE', `${compiled.rules.length} rules, at most ${limits.maxRules} allowed`);
  const inventory = new Map(compiled.rules.map((r) => [key(r.ns, r.rule), r]));
  const namespaces = new Set(files.map((f) => f.namespace));
  // Every rule libyara compiled is in a namespace of one of the files read: nothing else got in.
  const stray = compiled.rules.find((r) => !namespaces.has(r.ns));
  if (stray) throw new YaraRuleError('RULE_ENGINE_REJECTED', `libyara compiled a rule ${stray.rule} in namespace ${stray.ns}, which no rule file has`);

  status(`starting the YARA engine (${compiled.rules.length} rules)`);
  const probeDir = privateFolder(join(work, 'probe'));
  const server = await YaraServer.start(`${stem}.yarc`, {
    helper,
    threads: options.threads ?? 2,
    timeoutSeconds: options.timeoutSeconds,
    readable: [...options.readable, probeDir],
    ...(options.bwrapPath !== undefined ? { bwrapPath: options.bwrapPath } : {}),
  });
  try {
    // The server loaded exactly what was compiled.
    if (server.ready.rules !== compiled.rules.length || server.ready.public !== compiled.publicRules) {
      throw new YaraRuleError('RULE_NOT_LIVE', `the YARA engine loaded ${server.ready.rules} rules (${server.ready.public} public), but ${compiled.rules.length} (${compiled.publicRules} public) were compiled`);
    }
    // Every public rule evaluated on a file, and the canary fired on its string: the rules are live in this engine.
    const probe = join(probeDir, 'canary.bin');
    await writeFile(probe, canarySample(), { mode: 0o600 });
    const answer = await server.scan(probe, true).catch((error: unknown) => {
      throw new YaraRuleError('RULE_NOT_LIVE', `the YARA engine failed its start-up probe: ${String(error)}`);
    });
    await rm(probe, { force: true });
    if (!answer.ok) throw new YaraRuleError('RULE_NOT_LIVE', `the YARA engine failed its start-up probe: ${answer.error}`);
    if (answer.evaluated !== compiled.publicRules) {
      throw new YaraRuleError('RULE_NOT_LIVE', `the YARA engine evaluated ${String(answer.evaluated)} of the ${compiled.publicRules} public rules on its probe: rules were lost`);
    }
    if (!answer.matches.some((m) => m.rule === CANARY_RULE && m.ns === 'portcullis/canary.yar')) {
      throw new YaraRuleError('RULE_NOT_LIVE', `the canary rule ${CANARY_RULE} did not fire on its string in the YARA engine: the rules are not live`);
    }
  } catch (error) {
    server.close();
    throw error;
  }

  return {
    ruleCount: compiled.rules.length,
    publicRules: compiled.publicRules,
    files,
    digest,
    engine: `libyara ${server.ready.libyara}`,
    timings: { compileMs, startMs: Math.round(performance.now() - started), cached },
    async scanPath(path) {
      let answer: ServeAnswer;
      try {
        answer = await server.scan(path);
      } catch (error) {
        if (error instanceof YaraServerError) {
          throw new ScannerError(error.code === 'YARA_ENGINE_TIMEOUT' ? 'SCANNER_TIMEOUT' : 'SCANNER_ERROR', `${error.code}: ${error.message}`, { cause: error });
        }
        throw error;
      }
      return resultOf(answer, inventory, options.timeoutSeconds);
    },
    alive: () => server.failure === null,
    stop: () => server.close(),
  };
}

/** Compiles the exact bytes read (written to a private folder) and maps the compiler's messages back to the files' names. */
async function compileFiles(files: readonly FullRuleFile[], dir: string, out: string, helper: string): Promise<CompiledSet> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  const byPath = new Map<string, string>();
  const sources = files.map((f, i) => {
    const path = join(dir, `${i}.yar`);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for (let at = 0; at < f.bytes.length; ) at += writeSync(fd, f.bytes, at);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o400);
    byPath.set(path, f.name);
    return { namespace: f.namespace, path };
  });
  const named = (file: string): string => byPath.get(file) ?? file;
  try {
    return await compileRuleSet(sources, out, { helper });
  } catch (error) {
    if (!(error instanceof YaraRuleError) || error.code !== 'RULE_COMPILE_ERROR') throw error;
    // libyara stops at the first file with an error: check every file on its own, so no error hides behind another.
    const checks = await checkRuleFiles(sources.map((s) => s.path), { helper });
    const problems: RuleProblem[] = checks.flatMap((c) => c.errors.map((e) => ({ code: 'RULE_COMPILE_ERROR' as const, file: named(c.path), line: e.line, message: e.message })));
    const all = problems.length > 0 ? problems : error.problems.map((p) => ({ ...p, file: named(p.file) }));
    const first = all[0];
    const files = new Set(all.map((p) => p.file)).size;
    throw new YaraRuleError('RULE_COMPILE_ERROR', `${first?.file ?? '?'}:${first?.line ?? 0}: ${first?.message ?? 'libyara refused the rule set'}${all.length > 1 ? ` (and ${all.length - 1} more error(s), in ${files} file(s) in all: portcullis-kiosk rules check lists them)` : ''}`, {
      file: first?.file ?? '', line: first?.line ?? 0, problems: all,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function text(meta: InventoryRule['meta'] | undefined, name: string): string | null {
  const v = meta?.[name];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
}

/** The engine's answer for one file as the scan's result: one YARA_MATCH per matching rule, with its meta and offsets. */
export function resultOf(answer: ServeAnswer, inventory: ReadonlyMap<string, InventoryRule>, timeoutSeconds: number): StreamScanResult {
  if (!answer.ok) {
    if (answer.error === 'YARA_SCAN_TIMEOUT') {
      return { status: 'found', reason: 'LIMIT_EXCEEDED', signature: `YARA_SCAN_TIMEOUT: the YARA engine did not finish this file within the policy's clamav.maxScanSeconds (${timeoutSeconds} s)` };
    }
    return { status: 'found', reason: 'NOT_INSPECTED', signature: `${answer.error}: the YARA engine could not scan this file in full (libyara error ${String(answer.libyara ?? '?')})` };
  }
  if (answer.matches.length === 0) return { status: 'clean' };
  const found = answer.matches.slice(0, MAX_RULES_REPORTED).map((m) => {
    const meta = inventory.get(key(m.ns, m.rule))?.meta;
    return {
      reason: 'YARA_MATCH' as const,
      signature: formatYaraMatch({
        rule: m.rule, namespace: m.ns, description: text(meta, 'description'), reference: text(meta, 'reference'), severity: text(meta, 'severity'),
        strings: m.strings.map((s) => ({ id: s.id, count: s.count, offsets: s.offsets.slice(0, 3) })),
      }),
    };
  });
  const more = answer.matchCount - found.length;
  if (more > 0) found.push({ reason: 'YARA_MATCH', signature: `and ${more} more YARA rule(s) matched` });
  const [first, ...rest] = found;
  return { status: 'found', reason: first!.reason, signature: first!.signature, ...(rest.length > 0 ? { more: rest } : {}) };
}
