/**
 * Adapter: libyara's own compiler (Debian `yarac`) as the authority on YARA
 * syntax. Rule bytes are written to a private directory and compiled all
 * together, in one namespace, so a rule name used twice is an error. Every
 * warning is an error too (--fail-on-warnings: slow strings hurt clamd as much
 * as libyara), and ClamAV's 64-strings-per-rule limit is passed to yarac.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { YaraRuleError } from './errors.ts';
import type { RuleProblem } from './errors.ts';
import { CLAMAV_MAX_STRINGS_PER_RULE } from './portability.ts';
import { runTool, ToolStartError } from '../run-tool.ts';

export interface RuleBytes {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface YaracOptions {
  readonly yaracPath: string;
  readonly timeoutMs: number;
}

export interface YaracResult {
  /** Path of the compiled rules (yarac output), inside workDir. */
  readonly compiledPath: string;
  readonly problems: readonly RuleProblem[];
}

// yarac 4.x diagnostics: `error: FILE(LINE): MSG` or `warning: rule "R" in FILE(LINE): MSG`.
const DIAGNOSTIC = /^(error|warning): (?:rule "([^"]*)" in )?(.+)\((\d+)\): (.*)$/;

/** Parses yarac's stderr into problems naming file and line. */
export function parseYaracDiagnostics(stderr: string): RuleProblem[] {
  const problems: RuleProblem[] = [];
  for (const raw of stderr.split('\n')) {
    const m = DIAGNOSTIC.exec(raw.trim());
    if (m === null) continue;
    const [, level, rule, file, line, message] = m;
    const base = { code: 'RULE_COMPILE_ERROR' as const, file: file!, line: Number(line), message: `${level}: ${message!}` };
    const problem = rule === undefined ? base : { ...base, rule };
    problems.push(level === 'warning' ? { ...problem, warning: true } : problem);
  }
  return problems;
}

export async function yaracVersion(options: YaracOptions): Promise<string> {
  const r = await runYarac(['--version'], options);
  const version = r.stdout.trim();
  if (r.code !== 0 || !/^\d+\.\d+\.\d+/.test(version)) {
    throw new YaraRuleError('RULE_COMPILER_UNAVAILABLE', `${options.yaracPath} --version failed: ${r.stderr.trim()}`);
  }
  return version;
}

/** Compiles the given rule bytes with yarac in `workDir` (which the caller owns and removes). */
export async function compileWithYarac(
  files: readonly RuleBytes[],
  workDir: string,
  options: YaracOptions,
): Promise<YaracResult> {
  const srcDir = join(workDir, 'src');
  await mkdir(srcDir, { recursive: true, mode: 0o700 });
  for (const f of files) await writeFile(join(srcDir, f.name), f.bytes, { flag: 'wx', mode: 0o600 });
  const compiledPath = join(workDir, 'rules.yarc');
  const args = [
    '--fail-on-warnings',
    `--max-strings-per-rule=${CLAMAV_MAX_STRINGS_PER_RULE}`,
    // "./name" keeps a file name starting with "-" from reading as an option; diagnostics drop the "./".
    ...files.map((f) => `./${f.name}`),
    compiledPath,
  ];
  const r = await runYarac(args, options, srcDir);
  const problems = parseYaracDiagnostics(r.stderr).map((p) => ({ ...p, file: p.file.replace(/^\.\//, '') }));
  if (r.code === 0 && problems.length === 0) return { compiledPath, problems };
  if (problems.length === 0) {
    throw new YaraRuleError(
      r.timedOut ? 'RULE_COMPILER_UNAVAILABLE' : 'RULE_COMPILE_ERROR',
      `yarac failed (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal ?? '?'}`}) without a diagnostic: ${r.stderr.trim().slice(0, 500)}`,
    );
  }
  return { compiledPath, problems };
}

async function runYarac(args: readonly string[], options: YaracOptions, cwd?: string) {
  try {
    const r = await runTool(options.yaracPath, args, { timeoutMs: options.timeoutMs, ...(cwd === undefined ? {} : { cwd }) });
    if (r.timedOut) {
      throw new YaraRuleError('RULE_COMPILER_UNAVAILABLE', `${options.yaracPath} did not finish within ${options.timeoutMs} ms`);
    }
    return r;
  } catch (error) {
    if (error instanceof ToolStartError) {
      throw new YaraRuleError(
        'RULE_COMPILER_UNAVAILABLE',
        `cannot run ${options.yaracPath}: install the Debian package "yara" (scripts/setup.sh)`,
        { cause: error },
      );
    }
    throw error;
  }
}
