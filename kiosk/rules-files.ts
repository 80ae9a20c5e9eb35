/**
 * The kiosk's rules as files: the policy and the allowlist read from disk
 * (defaults in rules/), then parsed by the pure core. The engines' rule and
 * database folders are in config.ts with the other defaults.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AllowlistError, buildAllowlist, type Allowlist } from './core/allowlist.ts';
import { parsePolicy, PolicyError, type LoadedPolicy } from './core/policy.ts';
import { KIOSK_DEFAULTS } from './config.ts';

/** The default policy file and allowlist folder (rules/). */
export const DEFAULT_POLICY_PATH = KIOSK_DEFAULTS.policyPath;
export const DEFAULT_ALLOWLIST_DIR = KIOSK_DEFAULTS.allowlistDir;

export async function loadPolicy(path: string = KIOSK_DEFAULTS.policyPath): Promise<LoadedPolicy> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new PolicyError('POLICY_UNREADABLE', `cannot read the policy ${path}: ${(cause as Error).message}`, { cause });
  }
  return parsePolicy(bytes, path);
}

export async function loadAllowlist(dir: string = KIOSK_DEFAULTS.allowlistDir): Promise<Allowlist> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  } catch (cause) {
    throw new AllowlistError('ALLOWLIST_UNREADABLE', `cannot read the allowlist folder ${dir}: ${(cause as Error).message}`, { cause });
  }
  const files = await Promise.all(names.map(async (name) => ({ name, bytes: await readFile(join(dir, name)) })));
  return buildAllowlist(files);
}
