/**
 * The kiosk's own settings file (`--config FILE`, or PORTCULLIS_KIOSK_CONFIG):
 * where its key, audit log, databases, rules, policy and allowlist live, and
 * its name. Checked by a strict schema; command-line options override it.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PortcullisError } from '../manifest/index.ts';
import { boolean, formatIssues, object, optional, parse, string, type Infer } from '../manifest/schema.ts';

const path = string({ min: 1, max: 4096 });

export const kioskConfigSchema = object({
  kioskId: optional(string({ min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, patternMessage: 'expected letters, digits, ".", "_" or "-"' })),
  keyPath: optional(path), // the kiosk's private signing key (mode 0600)
  auditDb: optional(path), // the SQLite audit log
  clamavDb: optional(path), // ClamAV database folder, or "test"
  rulesDir: optional(path),
  policyPath: optional(path),
  allowlistDir: optional(path),
  workDir: optional(path), // kiosk-owned scratch space; keep it on tmpfs (the spool files clamd scans are written here)
  updatesDir: optional(path), // signed offline updates: the pinned root and the imported sets (docs/updates.md)
  unsignedClamavDatabases: optional(boolean()), // accept .cud databases (sigtool --unsigned): labs and tests only
});

export type KioskConfig = Infer<typeof kioskConfigSchema>;

export class ConfigError extends PortcullisError<'CONFIG_INVALID' | 'CONFIG_UNREADABLE'> {}

/**
 * The audit log a kiosk command uses when neither --db nor the config's
 * `auditDb` names one: `var/kiosk/audit.db` in the checkout. `scan`, `run`
 * and `log` all take it from here, so they read and write the same log.
 */
export const DEFAULT_AUDIT_DB = resolve(dirname(fileURLToPath(import.meta.url)), '../var/kiosk/audit.db');

/**
 * The kiosk's defaults in one place: what a setting is when neither the
 * command line, the config file nor the environment names it.
 */
export const KIOSK_DEFAULTS = {
  policyPath: fileURLToPath(new URL('../rules/policy/default.json', import.meta.url)),
  allowlistDir: fileURLToPath(new URL('../rules/allowlist/', import.meta.url)),
  rulesDir: fileURLToPath(new URL('../rules/yara/', import.meta.url)),
  clamavDb: '/var/lib/clamav', // Debian's ClamAV database folder; "test" is the project's test database
  auditDb: DEFAULT_AUDIT_DB,
  updatesDir: resolve(dirname(fileURLToPath(import.meta.url)), '../var/kiosk/updates'),
} as const;

/** Where the YARA rules are read from unless --rules says otherwise. */
export const DEFAULT_RULES_DIR = KIOSK_DEFAULTS.rulesDir;
/** The production ClamAV database folder. */
export const PRODUCTION_CLAMAV_DB = KIOSK_DEFAULTS.clamavDb;

/** Reads and checks a config file; relative paths in it are relative to the file. */
export async function loadKioskConfig(file: string): Promise<KioskConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw unreadable(file, cause);
  }
  return parseKioskConfig(text, file);
}

/** The same, synchronously (for the log commands, which are synchronous). */
export function loadKioskConfigSync(file: string): KioskConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw unreadable(file, cause);
  }
  return parseKioskConfig(text, file);
}

function unreadable(file: string, cause: unknown): ConfigError {
  return new ConfigError('CONFIG_UNREADABLE', `cannot read the kiosk config ${file}: ${(cause as Error).message}`, { cause });
}

function parseKioskConfig(text: string, file: string): KioskConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `${file}: not JSON: ${(cause as Error).message}`, { cause });
  }
  const result = parse(kioskConfigSchema, value);
  if (!result.ok) throw new ConfigError('CONFIG_INVALID', `${file}: ${formatIssues(result.issues)}`);
  const base = dirname(resolve(file));
  const at = (p: string | undefined): string | undefined => (p === undefined || p === 'test' ? p : resolve(base, p));
  const c = result.value;
  return {
    ...c,
    ...(c.keyPath ? { keyPath: at(c.keyPath) } : {}),
    ...(c.auditDb ? { auditDb: at(c.auditDb) } : {}),
    ...(c.clamavDb ? { clamavDb: at(c.clamavDb) } : {}),
    ...(c.rulesDir ? { rulesDir: at(c.rulesDir) } : {}),
    ...(c.policyPath ? { policyPath: at(c.policyPath) } : {}),
    ...(c.allowlistDir ? { allowlistDir: at(c.allowlistDir) } : {}),
    ...(c.workDir ? { workDir: at(c.workDir) } : {}),
    ...(c.updatesDir ? { updatesDir: at(c.updatesDir) } : {}),
  };
}
