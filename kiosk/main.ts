/**
 * portcullis-kiosk: the composition root of the kiosk's command line. One
 * top-level catch turns typed errors into exit codes and anything else into
 * "this is a bug" with context.
 */
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { displayText, PortcullisError } from '../manifest/index.ts';
import { EXIT } from './core/exit-codes.ts';
import { DEFAULT_AUDIT_DB, KIOSK_DEFAULTS, loadKioskConfig, loadKioskConfigSync, type KioskConfig } from './config.ts';
import { makeFolder, PathError, requireFolder } from './cli/path-option.ts';
import { UsageError } from './core/errors.ts';
// Each command's modules are imported when it runs: the station alone (Ink, React) takes
// most of a second to load, which every `log`, `keygen` or usage error would pay.

const USAGE = `usage: portcullis-kiosk <command> [options]

commands:
  keygen --out DIR     create DIR/kiosk.key (mode 0600, never overwritten) and DIR/kiosk.pub.pem
  scan PATH [--image] [--key FILE] [--json] [--db FILE] [--kiosk-id ID] [--operator ID]
       [--usb VID:PID[:SERIAL]] [--clamav-db DIR|test] [--rules DIR] [--policy FILE]
       [--allowlist DIR] [--work-dir DIR] [--no-write] [--config FILE]
                       scan a mounted drive (or a folder, or an image with --image); with
                       a key, write the signed manifest onto an approved or partial drive
  run [--watch DIR] [--device-policy FILE] [--config FILE] [--key FILE] [--db FILE] [...]
      [--report-only]  the station: drive detection, device checks, the technician's screen;
                       it needs a key (--report-only: check and log, approve nothing)
  log verify|list|show|export --db FILE [...]
                       the audit log: verify its hash chain, list, show and export scans
  review --db AUDIT --review-db FILE [--host H] [--port P]
                       the security staff's web review (127.0.0.1:8765 by default);
                       review user add NAME | review token | review import-agent-log FILE...
  siem send --db AUDIT --spool FILE --target HOST:PORT [--tls --ca FILE] [--follow S]
                       RFC 5424 syslog of the audit log to the SIEM, spooled, none lost
  update init --root FILE [--updates DIR]
                       pin the update publisher's TUF root (once, when the kiosk is set up)
  update import PATH [--updates DIR] [--db FILE] [--config FILE]
                       verify the signed update repository at PATH (a drive's folder) and
                       switch to its ClamAV databases, YARA rules, allowlist and policy
  update status [--json] [--updates DIR]
                       the active set: each part's version and age; the previous set
  update rollback [--updates DIR] [--db FILE]
                       make the previous set active again (one step back, never silently)
  rules check PATH... [--json]
                       compile each YARA rule file (or every .yar/.yara under a folder) with
                       the kiosk's engine: accepted or refused, with the engine's errors
  help                 this text

exit codes: 0 ok / approved, 10 partial, 20 rejected, 1 failed, 64 usage error,
            70 internal error (a bug)`;

export { UsageError } from './core/errors.ts';

/** Options shared by `scan` and `run`: where the kiosk's key, log, databases and rules live. */
const KIOSK_SETTING_OPTIONS = {
  config: { type: 'string' },
  key: { type: 'string' },
  db: { type: 'string' },
  'kiosk-id': { type: 'string' },
  'clamav-db': { type: 'string' },
  rules: { type: 'string' },
  policy: { type: 'string' },
  allowlist: { type: 'string' },
  'work-dir': { type: 'string' },
  updates: { type: 'string' },
} as const;

type KioskSettingValues = { [K in keyof typeof KIOSK_SETTING_OPTIONS]?: string | undefined };

interface KioskSettings {
  keyPath?: string;
  dbPath?: string;
  kioskId?: string;
  clamavDb?: string;
  rulesDir?: string;
  policyPath?: string;
  allowlistDir?: string;
  workDir?: string;
}

/** The four parts an update set can carry, as the command line and the config file name them. */
type PartSettings = Pick<KioskSettings, 'clamavDb' | 'rulesDir' | 'policyPath' | 'allowlistDir'>;

/** Where a command's settings came from: the merged view, and the parts apart (an update set sits between). */
interface SettingSources {
  readonly settings: KioskSettings;
  readonly commandLineParts: PartSettings;
  readonly configParts: PartSettings;
  readonly updatesDir: string;
  readonly unsignedClamavDatabases: boolean;
}

function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined && v !== '')) as T;
}

/** The config file a command reads: --config, else PORTCULLIS_KIOSK_CONFIG (empty: none). */
function configPathOf(value: string | undefined): string | undefined {
  return value ?? (process.env.PORTCULLIS_KIOSK_CONFIG || undefined);
}

/** The audit log `log` reads without --db: the config's auditDb, else the one scan and run default to. */
function defaultAuditDb(configValue: string | undefined): string {
  const configPath = configPathOf(configValue);
  return (configPath ? loadKioskConfigSync(configPath).auditDb : undefined) ?? DEFAULT_AUDIT_DB;
}

/**
 * The settings' paths, checked before anything starts (no engine, no station):
 * folders that must exist, and the kiosk's own folders (the work folder, the
 * audit log's folder), made when missing.
 */
async function checkSettings(settings: KioskSettings): Promise<void> {
  if (settings.workDir) await makeFolder(settings.workDir, '--work-dir', 0o700);
  if (settings.rulesDir) await requireFolder(settings.rulesDir, '--rules');
  if (settings.allowlistDir) await requireFolder(settings.allowlistDir, '--allowlist');
  if (settings.clamavDb && settings.clamavDb !== 'test') await requireFolder(settings.clamavDb, '--clamav-db');
  if (settings.dbPath) await makeFolder(dirname(settings.dbPath), '--db');
}

/** `scan PATH`: a folder (a mounted drive) without --image, an image file or block device with it. */
async function checkScanPath(path: string, image: boolean): Promise<void> {
  const shown = displayText(path);
  const info = await stat(path).catch((cause: unknown) => {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new PathError('PATH_MISSING', `${shown}: ${code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file or folder' : `cannot be read (${code ?? (cause as Error).message})`}: name the mounted drive, or an image file with --image`, { cause });
  });
  if (image && info.isDirectory()) throw new UsageError(`${shown} is a folder: scan a mounted drive or a folder without --image; --image is for a FAT32/exFAT image file`);
  if (!image && !info.isDirectory()) {
    throw new UsageError(`${shown} is ${info.isFile() || info.isBlockDevice() ? 'a file' : 'not a folder'}: scan a mounted drive (a folder), or add --image to scan a FAT32/exFAT image file`);
  }
  if (image && !info.isFile() && !info.isBlockDevice()) throw new UsageError(`${shown} is not a file: --image takes a FAT32/exFAT image file`);
}

/**
 * The settings with their sources: command line first, then (for the four parts) the active
 * update set, then the config file (--config or PORTCULLIS_KIOSK_CONFIG), then the environment.
 */
async function settingSources(values: KioskSettingValues): Promise<SettingSources> {
  const configPath = configPathOf(values.config);
  const config: KioskConfig = configPath ? await loadKioskConfig(configPath) : {};
  return {
    settings: kioskSettings(values, config),
    commandLineParts: defined({ clamavDb: values['clamav-db'], rulesDir: values.rules, policyPath: values.policy, allowlistDir: values.allowlist }),
    configParts: defined({ clamavDb: config.clamavDb, rulesDir: config.rulesDir, policyPath: config.policyPath, allowlistDir: config.allowlistDir }),
    updatesDir: values.updates ?? config.updatesDir ?? KIOSK_DEFAULTS.updatesDir,
    unsignedClamavDatabases: config.unsignedClamavDatabases === true,
  };
}

/** The parts a one-shot command uses: the command line's, else the active update set's, else the config's. */
async function partsWithUpdates(sources: SettingSources): Promise<PartSettings> {
  const { activeSet, partsOf } = await import('./updates/update-store.ts');
  const active = await activeSet(sources.updatesDir);
  return { ...sources.configParts, ...(active ? partsOf(active) : {}), ...sources.commandLineParts };
}

/** Command line first, then the config file, then the environment. */
function kioskSettings(values: KioskSettingValues, config: KioskConfig): KioskSettings {
  const merged: Record<keyof KioskSettings, string | undefined> = {
    keyPath: values.key ?? config.keyPath ?? process.env.PORTCULLIS_KIOSK_KEY,
    dbPath: values.db ?? config.auditDb,
    kioskId: values['kiosk-id'] ?? config.kioskId,
    clamavDb: values['clamav-db'] ?? config.clamavDb,
    rulesDir: values.rules ?? config.rulesDir,
    policyPath: values.policy ?? config.policyPath,
    allowlistDir: values.allowlist ?? config.allowlistDir,
    workDir: values['work-dir'] ?? config.workDir,
  };
  // Only settings that were given: an absent one keeps the command's own default.
  return Object.fromEntries(Object.entries(merged).filter(([, v]) => v));
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'keygen': {
      const { values } = parseArgs({ args: rest, options: { out: { type: 'string' } }, strict: true });
      if (!values.out) throw new UsageError('keygen needs --out DIR');
      const { generateKeyFiles } = await import('./cli/keygen.ts');
      const key = await generateKeyFiles(values.out);
      console.log(`key id ${key.keyId}`);
      console.log(`private key ${key.privateKeyPath} (mode 0600: keep it on the kiosk)`);
      console.log(`public key  ${key.publicKeyPath} (give it to the HMI agents: portcullis-agent trust add)`);
      return EXIT.OK;
    }
    case 'scan': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        strict: true,
        options: {
          ...KIOSK_SETTING_OPTIONS,
          json: { type: 'boolean', default: false },
          image: { type: 'boolean', default: false },
          operator: { type: 'string' },
          usb: { type: 'string' },
          'no-write': { type: 'boolean', default: false },
        },
      });
      if (positionals.length !== 1) throw new UsageError('scan needs exactly one PATH (the mounted drive, or an image with --image)');
      const { parseUsb, scanCommand } = await import('./cli/scan-command.ts');
      const usb = values.usb ? parseUsb(values.usb) : null;
      const sources = await settingSources(values);
      const settings: KioskSettings = { ...sources.settings, ...(await partsWithUpdates(sources)) };
      // Bad input is refused here, before the audit log records a scan or an engine starts.
      await checkScanPath(positionals[0]!, values.image);
      await checkSettings(settings);
      return scanCommand({
        path: positionals[0]!,
        image: values.image,
        json: values.json,
        noWrite: values['no-write'],
        ...settings,
        ...(values.operator ? { operatorId: values.operator } : {}),
        ...(usb ? { usb } : {}),
      });
    }
    case 'run': {
      const { values } = parseArgs({
        args: rest,
        strict: true,
        options: {
          ...KIOSK_SETTING_OPTIONS,
          watch: { type: 'string' },
          'device-policy': { type: 'string' },
          'report-only': { type: 'boolean' },
        },
      });
      const sources = await settingSources(values);
      await checkSettings(sources.settings);
      if (values.watch) await requireFolder(values.watch, '--watch');
      const { runStation } = await import('./cli/run-command.ts');
      // The station reads the active update set at every self-check: an import applies without a restart.
      const others: KioskSettings = { ...sources.settings };
      for (const part of ['clamavDb', 'rulesDir', 'policyPath', 'allowlistDir'] as const) delete others[part];
      return runStation({
        ...(values.watch ? { watchFolder: values.watch } : {}),
        ...(values['device-policy'] ? { devicePolicyPath: values['device-policy'] } : {}),
        ...(values['report-only'] ? { reportOnly: true } : {}),
        ...others,
        ...sources.commandLineParts,
        configuredParts: sources.configParts,
        updatesDir: sources.updatesDir,
      });
    }
    case 'update':
      return updateCommand(rest);
    case 'rules': {
      const { rulesCommand } = await import('./cli/rules-command.ts');
      return rulesCommand(rest);
    }
    case 'log': {
      const { logCommand } = await import('./cli/log-command.ts');
      return logCommand(rest, {}, { db: defaultAuditDb });
    }
    case 'review': {
      const { reviewCommand } = await import('./cli/review-command.ts');
      return reviewCommand(rest);
    }
    case 'siem': {
      const { siemCommand } = await import('./cli/review-command.ts');
      return siemCommand(rest);
    }
    case 'demo':
      // The demos run both programs with test data: they are the project's harness, not the kiosk's.
      throw new UsageError('the demo is ./portcullis demo (the kiosk and the HMI agent) or ./portcullis demo station (the station\'s screen)');
    case undefined:
      console.error(USAGE); // a usage error: the text goes where errors go
      return EXIT.USAGE;
    case 'help':
    case '--help':
      console.log(USAGE);
      return EXIT.OK;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** `update init|import|status|rollback` (docs/updates.md). */
async function updateCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: { ...KIOSK_SETTING_OPTIONS, root: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const only = (allowed: readonly string[]): void => {
    const extra = Object.keys(values).filter((k) => !allowed.includes(k) && !(k === 'json' && values.json === false));
    if (extra.length > 0) throw new UsageError(`update ${sub ?? ''} does not take --${extra.join(', --')}`);
  };
  const sources = await settingSources(values);
  const { importUpdate, rollbackUpdate, statusLines, updateInit, updateStatus } = await import('./cli/update-command.ts');
  const dbPath = sources.settings.dbPath ?? DEFAULT_AUDIT_DB;
  const base = { updatesDir: sources.updatesDir, dbPath, unsignedClamavDatabases: sources.unsignedClamavDatabases, ...sources.configParts, ...sources.commandLineParts, ...(sources.settings.workDir ? { workDir: sources.settings.workDir } : {}) };
  switch (sub) {
    case 'init': {
      only(['config', 'updates', 'db', 'root']);
      if (positionals.length > 0) throw new UsageError('update init takes no argument: --root FILE');
      if (!values.root) throw new UsageError('update init needs --root FILE (the publisher\'s metadata/root.json)');
      await makeFolder(dirname(dbPath), '--db');
      await updateInit(base, values.root);
      return EXIT.OK;
    }
    case 'import': {
      only(['config', 'updates', 'db', 'clamav-db', 'rules', 'policy', 'allowlist', 'work-dir']);
      if (positionals.length !== 1) throw new UsageError('update import needs exactly one PATH: the update repository\'s folder (holding metadata/ and targets/)');
      await checkSettings(sources.settings);
      const result = await importUpdate({ ...base, out: (line) => console.log(line) }, positionals[0]!);
      if (result.status === 'unchanged') {
        console.log(`already up to date: the active set ${result.generation} is this repository's newest version; nothing was changed`);
        return EXIT.OK;
      }
      console.log(`imported set ${result.generation}${result.previous ? ` (the previous set ${result.previous} is kept: update rollback returns to it)` : ''}`);
      for (const p of result.set.parts) console.log(`  ${p.target.padEnd(28)} ${p.version !== undefined ? `version ${p.version}, built ${p.builtAt ?? '?'}` : `sha256:${p.sha256.slice(0, 16)}...`}`);
      return EXIT.OK;
    }
    case 'status': {
      only(['config', 'updates', 'json', 'policy']);
      if (positionals.length > 0) throw new UsageError('update status takes no argument');
      const parts = await partsWithUpdates(sources);
      const { loadPolicy } = await import('./rules-files.ts');
      const { stationChecksOf } = await import('./core/self-check.ts');
      const checks = stationChecksOf((await loadPolicy(parts.policyPath)).policy);
      const status = await updateStatus(base, { maxAgeHours: checks.maxSignatureAgeHours, whenOutdated: checks.whenOutdated });
      if (values.json) console.log(JSON.stringify(status, null, 2));
      else for (const line of statusLines(status, new Date())) console.log(line);
      return EXIT.OK;
    }
    case 'rollback': {
      only(['config', 'updates', 'db']);
      if (positionals.length > 0) throw new UsageError('update rollback takes no argument');
      const done = await rollbackUpdate(base);
      console.log(`rolled back: set ${done.to} is active again (set ${done.from} is no longer used; an older repository is still refused)`);
      return EXIT.OK;
    }
    default:
      throw new UsageError(sub === undefined ? 'update needs a command: init, import, status or rollback' : `unknown update command ${JSON.stringify(sub)}: init, import, status or rollback`);
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof PortcullisError && error.code === 'USAGE') || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`portcullis-kiosk: ${error.message}\n\n${USAGE}`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      // One line: the code, then the message (a message from a path or a drive is escaped).
      console.error(`portcullis-kiosk: ${error.code}: ${displayText(error.message)}`);
      return EXIT.FAILURE;
    }
    console.error('portcullis-kiosk: internal error (this is a bug; please report it with the text below)');
    console.error(error);
    return EXIT.BUG;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
