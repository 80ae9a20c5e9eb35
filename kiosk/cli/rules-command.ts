/**
 * `portcullis-kiosk rules check PATH... [--json]`: each rule file (a folder's
 * `.yar`/`.yara` files, recursively) compiled on its own by the kiosk's own
 * YARA engine (libyara), accepted or refused with the engine's own errors
 * (file:line). Rule sets as they are published: nothing is required of a
 * site file beyond compiling (the project's own rules are checked further at
 * every start: docs/yara-engine.md).
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { displayText } from '../../manifest/index.ts';
import { EXIT } from '../core/exit-codes.ts';
import { UsageError } from '../core/errors.ts';
import { checkRuleFiles } from '../engines/yara-full/helper.ts';

export interface RulesCheckResult {
  readonly files: ReadonlyArray<{ path: string; accepted: boolean; rules: number; errors: string[] }>;
}

const RULE_FILE = /\.yara?$/i;

async function ruleFilesUnder(path: string): Promise<string[]> {
  const info = await lstat(path);
  if (info.isFile()) return [path];
  if (!info.isDirectory()) return [];
  const out: string[] = [];
  for (const name of (await readdir(path)).sort()) {
    const child = join(path, name);
    const childInfo = await lstat(child);
    if (childInfo.isDirectory()) out.push(...(await ruleFilesUnder(child)));
    else if (childInfo.isFile() && RULE_FILE.test(name)) out.push(child);
  }
  return out;
}

export async function checkRules(paths: readonly string[]): Promise<RulesCheckResult> {
  const files: string[] = [];
  for (const p of paths) {
    const found = await ruleFilesUnder(p).catch((cause: unknown) => {
      throw new UsageError(`cannot read ${p}: ${(cause as Error).message}`);
    });
    files.push(...found);
  }
  const checks = await checkRuleFiles(files);
  return {
    files: checks.map((c) => ({
      path: c.path,
      accepted: c.accepted,
      rules: c.rules,
      errors: [...c.errors.map((e) => `${e.file}:${e.line}: ${e.message}`), ...(c.errorCount > c.errors.length ? [`${c.path}: and ${c.errorCount - c.errors.length} more error(s)`] : [])],
    })),
  };
}

export async function rulesCommand(argv: readonly string[], out: (line: string) => void = (l) => console.log(l)): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'check') throw new UsageError('rules needs a subcommand: rules check PATH... [--json]');
  const { values, positionals } = parseArgs({ args: [...rest], allowPositionals: true, strict: true, options: { json: { type: 'boolean', default: false } } });
  if (positionals.length === 0) throw new UsageError('rules check needs at least one PATH (a rule file or a folder of them)');
  const result = await checkRules(positionals);
  if (values.json) out(JSON.stringify(result));
  else {
    for (const f of result.files) {
      out(`${f.accepted ? 'accepted' : 'REFUSED '}  ${displayText(f.path)}  (${f.rules} rule${f.rules === 1 ? '' : 's'})`);
      for (const e of f.errors) out(`    ${displayText(e)}`);
    }
    const accepted = result.files.filter((f) => f.accepted);
    const share = result.files.length === 0 ? 0 : (100 * accepted.length) / result.files.length;
    out(`${accepted.length} of ${result.files.length} files accepted (${share.toFixed(1)}%), ${accepted.reduce((n, f) => n + f.rules, 0)} rules`);
  }
  return result.files.every((f) => f.accepted) ? EXIT.OK : EXIT.FAILURE;
}
