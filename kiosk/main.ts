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
import { DEFAULT_AUDIT_DB, loadKioskConfig, loadKioskConfigSync, type KioskConfig } from './config.ts';
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

/** Command line first, then the config file (--config or PORTCULLIS_KIOSK_CONFIG), then the environment. */
async function kioskSettings(values: KioskSettingValues): Promise<KioskSettings> {
  const configPath = configPathOf(values.config);
  const config: KioskConfig = configPath ? await loadKioskConfig(configPath) : {};
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
      const settings = await kioskSettings(values);
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
      const settings = await kioskSettings(values);
      await checkSettings(settings);
      if (values.watch) await requireFolder(values.watch, '--watch');
      const { runStation } = await import('./cli/run-command.ts');
      return runStation({
        ...(values.watch ? { watchFolder: values.watch } : {}),
        ...(values['device-policy'] ? { devicePolicyPath: values['device-policy'] } : {}),
        ...(values['report-only'] ? { reportOnly: true } : {}),
        ...settings,
      });
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
