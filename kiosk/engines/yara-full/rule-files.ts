/**
 * The full rule set the kiosk's libyara engine runs: the project's own rules
 * (`*.yar` directly in the rules folder, also run by clamd: yara/rule-set.ts)
 * and the site's rule sets as they are published, anywhere under the rules
 * folder's `site/` (folders, any letter case, `.yar` or `.yara`). Each file is
 * compiled in a namespace of its own (`portcullis/<name>`, `site/<path>`), so
 * the same rule name in two files is two rules and a site file's global rule
 * governs that file only. Limits are sized for public sets of 20,000+ rules.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { compareAscii, digestRuleFiles } from '../yara/digest.ts';
import { YaraRuleError } from '../yara/errors.ts';

export interface FullRuleSetLimits {
  readonly maxFiles: number;
  readonly maxFileBytes: number; // bytes, per rule file
  readonly maxTotalBytes: number; // bytes, every rule file together
  readonly maxRules: number;
  readonly maxDepth: number; // folders below site/
}

export const DEFAULT_FULL_RULE_SET_LIMITS: FullRuleSetLimits = {
  maxFiles: 20_000,
  maxFileBytes: 16 * 1024 * 1024,
  maxTotalBytes: 512 * 1024 * 1024,
  maxRules: 200_000,
  maxDepth: 8,
};

/** The site's rule sets, under the rules folder. */
export const SITE_FOLDER = 'site';

export interface FullRuleFile {
  /** Name in the digest and in messages: `canary.yar`, `site/signature-base/APT_X.yara`. */
  readonly name: string;
  /** The namespace its rules are compiled in. */
  readonly namespace: string;
  readonly origin: 'project' | 'site';
  readonly path: string; // absolute, for the compiler
  readonly bytes: Uint8Array;
}

export interface FullRuleFiles {
  readonly files: readonly FullRuleFile[];
  /** digest.ts's layout over every file: the manifest's rule-set digest. */
  readonly digest: string;
}

const RULE_FILE = /\.yara?$/i;
const PROJECT_FILE = /^[a-z0-9][a-z0-9._-]{0,59}\.yar$/;

/** Reads the rule files under `dir` once, bounded; the bytes read are the bytes digested (the compiler gets the same files). */
export async function readFullRuleFiles(dir: string, limits: FullRuleSetLimits = DEFAULT_FULL_RULE_SET_LIMITS): Promise<FullRuleFiles> {
  const found: { name: string; path: string; origin: 'project' | 'site' }[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw new YaraRuleError('RULE_DIR_UNREADABLE', `cannot read rule directory ${dir}: ${String(error)}`, { cause: error });
  }
  for (const name of entries.filter((n) => RULE_FILE.test(n)).sort(compareAscii)) {
    // The project's rules keep their strict names (yara/rule-set.ts refuses others with the same words).
    if (PROJECT_FILE.test(name)) found.push({ name, path: join(dir, name), origin: 'project' });
  }
  const walk = async (folder: string, rel: string, depth: number): Promise<void> => {
    if (depth > limits.maxDepth) throw new YaraRuleError('RULE_SET_TOO_LARGE', `${rel}: folders deeper than ${limits.maxDepth} levels under ${SITE_FOLDER}/`);
    for (const name of (await readdir(folder)).sort(compareAscii)) {
      const path = join(folder, name);
      const relName = `${rel}/${name}`;
      const info = await lstat(path);
      if (info.isDirectory()) await walk(path, relName, depth + 1);
      else if (RULE_FILE.test(name)) {
        if (!info.isFile()) throw new YaraRuleError('RULE_FILE_INVALID', `${relName}: not a regular file (links are not followed)`, { file: relName, line: 0 });
        if (!/^[\x21-\x7e][\x20-\x7e]*$/.test(relName)) throw new YaraRuleError('RULE_FILE_INVALID', `${JSON.stringify(relName)}: rule file paths are printable ASCII`, { file: relName, line: 0 });
        found.push({ name: relName, path, origin: 'site' });
      }
      if (found.length > limits.maxFiles) throw new YaraRuleError('RULE_SET_TOO_LARGE', `more than ${limits.maxFiles} rule files in ${dir}`);
    }
  };
  const site = join(dir, SITE_FOLDER);
  const siteInfo = await lstat(site).catch(() => null);
  if (siteInfo !== null) {
    if (!siteInfo.isDirectory()) throw new YaraRuleError('RULE_FILE_INVALID', `${site}: not a folder`, { file: SITE_FOLDER, line: 0 });
    await walk(site, SITE_FOLDER, 1);
  }
  if (found.length === 0) throw new YaraRuleError('RULE_SET_EMPTY', `no rule files in ${dir}`);
  const files: FullRuleFile[] = [];
  let total = 0;
  for (const f of found) {
    const bytes = await readBounded(f.path, f.name, limits.maxFileBytes);
    total += bytes.length;
    if (total > limits.maxTotalBytes) throw new YaraRuleError('RULE_SET_TOO_LARGE', `rule files in ${dir} exceed ${limits.maxTotalBytes} bytes together`);
    files.push({ name: f.name, namespace: f.origin === 'project' ? `portcullis/${f.name}` : f.name, origin: f.origin, path: f.path, bytes });
  }
  return { files, digest: digestRuleFiles(files) };
}

async function readBounded(path: string, name: string, max: number): Promise<Uint8Array> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buffer = Buffer.alloc(max + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, got, buffer.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got > max) throw new YaraRuleError('RULE_FILE_TOO_LARGE', `${name}: more than ${max} bytes`, { file: name, line: 0 });
    }
    return new Uint8Array(buffer.subarray(0, got));
  } finally {
    await handle.close();
  }
}
