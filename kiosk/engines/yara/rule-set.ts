/**
 * The kiosk's YARA rule set: read once from rules/yara/, validated by the real
 * engines, digested, and staged into clamd's database directory, where clamd
 * applies the rules to every scanned stream (docs/yara-engine.md).
 *
 * The bytes read here are the bytes compiled and digested, and, with one
 * liveness probe per rule added (liveness.ts), the bytes loaded into
 * libclamav and staged: nothing re-reads the rules directory after validation.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CANARY_RULE, CANARY_SIGNATURE } from './canary.ts';
import { probeClamavRules } from './clamav-probe.ts';
import { ruleFromSignature, signatureForRule } from './clamav-signature.ts';
import { compareAscii, digestRuleFiles } from './digest.ts';
import { throwProblems, YaraRuleError } from './errors.ts';
import type { RuleProblem } from './errors.ts';
import { instrumentRules, randomProbeKey } from './liveness.ts';
import type { InstrumentedRuleSet, ProbeKey } from './liveness.ts';
import { checkRulePortability } from './portability.ts';
import type { Severity } from './portability.ts';
import { findIncludes, outlineRuleSource, RuleSourceError } from './rule-source.ts';
import type { RuleOutline } from './rule-source.ts';
import { compileWithYarac, yaracVersion } from './yarac.ts';

export interface RuleSetLimits {
  readonly maxFiles: number;
  readonly maxFileBytes: number; // bytes, per rule file
  readonly maxTotalBytes: number; // bytes, all rule files together
  readonly maxRules: number;
}

export const DEFAULT_RULE_SET_LIMITS: RuleSetLimits = {
  maxFiles: 64,
  maxFileBytes: 256 * 1024,
  maxTotalBytes: 2 * 1024 * 1024,
  maxRules: 1024,
};

export interface LoadRuleSetOptions {
  readonly limits?: Partial<RuleSetLimits>;
  readonly yaracPath?: string; // default "yarac" on PATH
  readonly clamscanPath?: string; // default "clamscan" on PATH
  readonly timeoutMs?: number; // ms per engine run, default 30 000
  readonly tmpDir?: string; // where private work directories go, default os.tmpdir()
  /** The liveness probes' key; default a fresh random one (tests pass a fixed key). */
  readonly probeKey?: ProbeKey;
}

export interface RuleInfo {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly isPrivate: boolean;
  readonly tags: readonly string[];
  /** clamd's FOUND name for this rule. */
  readonly signature: string;
  /** Undefined only for private rules (they are never reported). */
  readonly description: string | undefined;
  readonly author: string | undefined;
  readonly reference: string | undefined;
  readonly severity: Severity | undefined;
}

export interface RuleFile {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly sha256: string; // hex
  readonly rules: readonly string[];
}

export interface RuleSet {
  readonly files: readonly RuleFile[];
  readonly rules: readonly RuleInfo[];
  /** Every rule, private ones included: equals what libclamav counts as loaded. */
  readonly ruleCount: number;
  /** sha256 over the files, layout in digest.ts; goes into the manifest. */
  readonly digest: string;
  readonly canary: { readonly rule: string; readonly signature: string };
  /** Engine versions the set was validated with, e.g. { yarac: "4.2.3", clamav: "ClamAV 1.4.6" }. */
  readonly validatedWith: { readonly yarac: string; readonly clamav: string };
  /**
   * What `stageRuleSet` writes for clamd: the files with one liveness probe per
   * rule (liveness.ts), under a key drawn for this load. libclamav loaded
   * exactly these bytes and every probe fired; clamd must show the same.
   */
  readonly staged: InstrumentedRuleSet;
}

// Lowercase so names sort and compare the same everywhere, and cannot collide by case.
const RULE_FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,59}\.yar$/;
// Staged files carry this prefix so staging can find and replace its own files only.
export const STAGED_PREFIX = 'portcullis-';

/**
 * Reads `*.yar` from `dir` (sorted, bounded), compiles them with yarac,
 * checks the Portcullis/ClamAV subset and meta, adds one liveness probe per
 * rule and loads the result into libclamav once: every rule must load and
 * fire on its probe. Throws YaraRuleError naming file and line.
 */
export async function loadRuleSet(dir: string, options: LoadRuleSetOptions = {}): Promise<RuleSet> {
  const limits = { ...DEFAULT_RULE_SET_LIMITS, ...options.limits };
  const timeoutMs = options.timeoutMs ?? 30_000;
  const yarac = { yaracPath: options.yaracPath ?? 'yarac', timeoutMs };
  const clamscan = { clamscanPath: options.clamscanPath ?? 'clamscan', timeoutMs };

  const read = await readRuleFiles(dir, limits);
  throwProblems(
    read.flatMap((f) =>
      findIncludes(latin1(f.bytes)).map((inc) => ({
        code: 'RULE_NOT_PORTABLE' as const,
        file: f.name,
        line: inc.line,
        message: `include "${inc.path}": includes are not allowed (every rule file is listed and digested on its own)`,
      })),
    ),
  );

  const workDir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'portcullis-yara-'));
  try {
    const yaracVer = await yaracVersion(yarac);
    const compiled = await compileWithYarac(read, join(workDir, 'yarac'), yarac);
    throwProblems(compiled.problems);

    const problems: RuleProblem[] = [];
    const outlines: { file: string; rules: readonly RuleOutline[] }[] = [];
    for (const f of read) {
      try {
        const outline = outlineRuleSource(latin1(f.bytes));
        problems.push(...checkRulePortability(f.name, outline));
        outlines.push({ file: f.name, rules: outline.rules });
      } catch (error) {
        if (!(error instanceof RuleSourceError)) throw error;
        problems.push({
          code: 'RULE_NOT_PORTABLE',
          file: f.name,
          line: error.line,
          message: `outside the Portcullis YARA subset: ${error.message}`,
        });
      }
    }
    throwProblems(problems);

    const rules = outlines.flatMap((o) => o.rules.map((r) => toRuleInfo(o.file, r)));
    if (rules.length > limits.maxRules) {
      throw new YaraRuleError('RULE_SET_TOO_LARGE', `${rules.length} rules in ${dir}, at most ${limits.maxRules} allowed`);
    }
    if (!rules.some((r) => r.name === CANARY_RULE && !r.isPrivate)) {
      throw new YaraRuleError(
        'RULE_CANARY_MISSING',
        `no rule ${CANARY_RULE} in ${dir}: restore rules/yara/canary.yar (the kiosk proves the rules are live with it)`,
      );
    }

    // Load the exact bytes clamd will get into libclamav, under the names clamd will see.
    const staged = instrumentRules(read, options.probeKey ?? randomProbeKey());
    const probeDb = join(workDir, 'clamav-db');
    await mkdir(probeDb, { mode: 0o700 });
    for (const f of staged.files) await writeFile(join(probeDb, STAGED_PREFIX + f.name), f.bytes, { flag: 'wx', mode: 0o600 });
    const probeWork = join(workDir, 'probe');
    await mkdir(probeWork, { mode: 0o700 });
    const probe = await probeClamavRules(probeDb, probeWork, staged.loadedRuleCount, clamscan, staged.probes);

    return {
      files: read.map((f) => ({
        name: f.name,
        bytes: f.bytes,
        sha256: createHash('sha256').update(f.bytes).digest('hex'),
        rules: rules.filter((r) => r.file === f.name).map((r) => r.name),
      })),
      rules,
      ruleCount: rules.length,
      digest: digestRuleFiles(read),
      canary: { rule: CANARY_RULE, signature: CANARY_SIGNATURE },
      validatedWith: { yarac: yaracVer, clamav: probe.engineVersion },
      staged,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** The rule a clamd FOUND signature names, when it is one of this set's rules. */
export function findRuleBySignature(set: RuleSet, signature: string): RuleInfo | undefined {
  const name = ruleFromSignature(signature);
  return name === undefined ? undefined : set.rules.find((r) => r.name === name && !r.isPrivate);
}

/**
 * Writes the validated, probed bytes (`set.staged`) into clamd's database
 * directory as `portcullis-<file>.yar` (each via a temporary name and rename),
 * then removes any other `portcullis-*.yar` left from an earlier set. clamd
 * must be (re)started afterwards and every probe scanned through it
 * (`proveRulesLive`).
 */
export async function stageRuleSet(set: RuleSet, databaseDir: string): Promise<string[]> {
  try {
    const staged: string[] = [];
    for (const f of set.staged.files) {
      const target = join(databaseDir, STAGED_PREFIX + f.name);
      // The temporary name does not end in a database extension, so clamd never loads it.
      const temp = join(databaseDir, `.${STAGED_PREFIX}${f.name}.${process.pid}.tmp`);
      const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        await handle.writeFile(f.bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      staged.push(target);
    }
    const keep = new Set(set.files.map((f) => STAGED_PREFIX + f.name));
    for (const entry of await readdir(databaseDir)) {
      if (entry.startsWith(STAGED_PREFIX) && /\.yara?$/.test(entry) && !keep.has(entry)) {
        await unlink(join(databaseDir, entry));
      }
    }
    return staged;
  } catch (error) {
    throw new YaraRuleError('RULE_STAGE_FAILED', `cannot stage YARA rules into ${databaseDir}: ${String(error)}`, {
      cause: error,
    });
  }
}

interface ReadRuleFile {
  readonly name: string;
  readonly bytes: Uint8Array;
}

async function readRuleFiles(dir: string, limits: RuleSetLimits): Promise<ReadRuleFile[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw new YaraRuleError('RULE_DIR_UNREADABLE', `cannot read rule directory ${dir}: ${String(error)}`, { cause: error });
  }
  const names = entries.filter((n) => /\.yara?$/i.test(n)).sort(compareAscii);
  if (names.length === 0) throw new YaraRuleError('RULE_SET_EMPTY', `no *.yar rule files in ${dir}`);
  if (names.length > limits.maxFiles) {
    throw new YaraRuleError('RULE_SET_TOO_LARGE', `${names.length} rule files in ${dir}, at most ${limits.maxFiles} allowed`);
  }
  const files: ReadRuleFile[] = [];
  let total = 0;
  for (const name of names) {
    const invalid = (why: string, line = 0): YaraRuleError =>
      new YaraRuleError('RULE_FILE_INVALID', `${name}: ${why}`, { file: name, line });
    // clamd would load a *.yara too; refuse it rather than leave it unvalidated or ignored.
    if (!RULE_FILE_NAME.test(name)) {
      throw invalid('rule file names are lowercase [a-z0-9._-], at most 64 characters, ending in .yar');
    }
    const path = join(dir, name);
    const info = await lstat(path);
    if (!info.isFile()) throw invalid('not a regular file (symlinks and directories are refused)');
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    let bytes: Buffer;
    try {
      const size = (await handle.stat()).size;
      if (size > limits.maxFileBytes) {
        throw new YaraRuleError('RULE_FILE_TOO_LARGE', `${name}: ${size} bytes, at most ${limits.maxFileBytes} allowed`, {
          file: name,
          line: 0,
        });
      }
      const buffer = Buffer.alloc(limits.maxFileBytes + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > limits.maxFileBytes) {
        throw new YaraRuleError('RULE_FILE_TOO_LARGE', `${name}: grew past ${limits.maxFileBytes} bytes while read`, {
          file: name,
          line: 0,
        });
      }
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
    const bad = firstNonTextByte(bytes);
    if (bad !== undefined) {
      throw invalid(`byte 0x${bad.byte.toString(16).padStart(2, '0')} at line ${bad.line}: rule files are printable ASCII`, bad.line);
    }
    total += bytes.length;
    if (total > limits.maxTotalBytes) {
      throw new YaraRuleError('RULE_SET_TOO_LARGE', `rule files in ${dir} exceed ${limits.maxTotalBytes} bytes together`);
    }
    files.push({ name, bytes: new Uint8Array(bytes) });
  }
  return files;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** First byte outside printable ASCII, tab, CR and LF (no NUL, no bidi tricks, no UTF-8). */
function firstNonTextByte(bytes: Uint8Array): { byte: number; line: number } | undefined {
  let line = 1;
  for (const b of bytes) {
    if (b === 0x0a) line++;
    else if (!(b === 0x09 || b === 0x0d || (b >= 0x20 && b <= 0x7e))) return { byte: b, line };
  }
  return undefined;
}

function toRuleInfo(file: string, r: RuleOutline): RuleInfo {
  const text = (key: string): string | undefined => {
    const v = r.meta.get(key)?.value;
    return typeof v === 'string' ? v : undefined;
  };
  return {
    name: r.name,
    file,
    line: r.line,
    isPrivate: r.isPrivate,
    tags: r.tags,
    signature: signatureForRule(r.name),
    description: text('description'),
    author: text('author'),
    reference: text('reference'),
    severity: text('severity') as Severity | undefined,
  };
}
