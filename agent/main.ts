/**
 * portcullis-agent: the composition root of the HMI agent. It parses the
 * command line, wires the real adapters (files, clock, drive sources,
 * notifier) into the pure core, and turns outcomes into exit codes. One
 * top-level catch turns typed errors into exit code 1 (64 for usage) and
 * anything else into "this is a bug" with context.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { displayText, ManifestError, PortcullisError, publicKeyFromPem, verifyManifest } from '../manifest/index.ts';
import { readDriveManifest } from './drive-check.ts';
import { formatIssues, parse } from '../manifest/schema.ts';
import { AuditLog, formatExport, verifyLogBytes } from './audit-log.ts';
import { parseIdentity, type DriveIdentity } from './drive-identity.ts';
import { drivelistSource, linuxIdentity, mountFolderSource, windowsLetterSource, type DriveSource } from './drive-sources.ts';
import { AgentError } from './errors.ts';
import { EXIT } from './exit-codes.ts';
import { DIGEST_CHOICES, type DigestChoice } from './file-digest.ts';
import { readLocalFile } from './local-file.ts';
import { lineNotifier, windowsMsgNotifier, type Notifier } from './notify.ts';
import { setupHmi } from './setup-hmi.ts';
import { readStoragePolicy, regExe } from './storage-policy.ts';
import { reportClass, type DriveReport } from './drive-report.ts';
import { importDrive } from './import-drive.ts';
import { verifyDrive } from './verify-drive.ts';
import {
  addKey, CLASH_POLICIES, keyStatus, labelSchema, loadTrustStore, makeStoreFolder, policyDigests, revokeKey, saveTrustStore, setPolicy, trustAnchorsOf, type ClashPolicy,
  type TrustPolicy, type TrustStore,
} from './trust-store.ts';
import { applyTrustUpdate, pinUpdateRoot, TrustUpdateError } from './trust-update.ts';
import { loadWatchConfig } from './watch-config.ts';
import { forwardLog } from './forward/forwarder.ts';
import { forwardUntil, trustStatus } from './forward/forward-config.ts';
import { runService, samePath } from './watch.ts';

export const USAGE = `usage: portcullis-agent <command> [options]

trust store (keys the agent accepts, revocations, local policy):
  trust add PEM --trust FILE [--label L] [--not-before T] [--not-after T]
  trust list --trust FILE [--json]
  trust revoke KEYID --trust FILE [--reason TEXT]
  trust policy --trust FILE [--max-age-hours N] [--destination DIR | --no-destination]
               [--clash refuse|rename|skip] [--media-binding required|optional]
               [--digests blake3|sha256|both]
  trust pin-root ROOT.json --trust FILE
  trust update PATH --trust FILE [--json]
                    (signed trust updates from a drive's update repository: docs/updates.md)

drives:
  verify DRIVE --trust FILE [--json] [--identity FILE]
  manifest DRIVE --trust FILE   (only the drive's manifest: genuine, trusted, current; reads no file, logs nothing)
  import DRIVE --to DIR --trust FILE [--json] [--identity FILE]
  watch --config FILE
  forward --config FILE     (forward the log once, as the service does: docs/review.md)

installation (the MSI runs it; install.ps1 does the same itself):
  setup --config FILE --destination DIR [--status-folder DIR] [--trust-bundle FILE]

log:
  log verify --log FILE [--json]
  log export --log FILE [--since T] --format json|csv

common options: --log FILE (default: portcullis-agent.log.jsonl beside the trust store),
  --hmi NAME (default: this computer's name)

exit codes: 0 all passed / done, 10 some files refused, 20 drive refused or nothing passed,
  1 failed (the message names the code), 64 usage error, 70 internal error (a bug)`;

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly clock?: () => Date;
}

/**
 * Writes to a standard stream that may not be there: a process started
 * without standard handles (an MSI custom action, a scheduled task) throws
 * EBADF on the first use of process.stdout or process.stderr, which had turned
 * a successful `setup` under msiexec into exit code 1. Its output is lost; the
 * exit code and the log still say what happened.
 */
export function writeIfPresent(stream: () => NodeJS.WriteStream, text: string): void {
  try {
    const s = stream();
    // A handle that is there but cannot be written reports EBADF later, as an 'error' event: never a crash.
    if (s.listenerCount('error') === 0) s.on('error', () => undefined);
    s.write(text);
  } catch {
    // no such stream
  }
}

const processIo: CliIo = {
  stdout: (text) => writeIfPresent(() => process.stdout, text),
  stderr: (text) => writeIfPresent(() => process.stderr, text),
};

class UsageError extends AgentError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** The commands `help COMMAND` and a usage error's hint know (the usage text's first words). */
const COMMANDS = ['trust', 'verify', 'manifest', 'import', 'watch', 'forward', 'setup', 'log'] as const;

/**
 * The usage lines of one command (`trust add`, or every `trust` subcommand
 * for `trust`), joined into one line for a usage error; null for no command.
 */
function synopsisOf(command: string | null): string | null {
  if (command === null) return null;
  const lines = USAGE.split('\n');
  const synopses: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith(`  ${command} `) && line !== `  ${command}`) continue;
    const parts = [line.trim()];
    // A long synopsis goes on in lines indented further that start with an option.
    for (let j = i + 1; j < lines.length && /^ {4,}\[/u.test(lines[j]!); j++) parts.push(lines[j]!.trim());
    synopses.push(parts.join(' '));
  }
  return synopses.length === 0 ? null : synopses.join(' | ');
}

/** The command (and subcommand) an argument list asks for, as the usage text names it, or null. */
function commandOf(argv: readonly string[]): string | null {
  const [first, second] = argv;
  if (first === 'trust' || first === 'log') return second !== undefined && synopsisOf(`${first} ${second}`) !== null ? `${first} ${second}` : first;
  return first !== undefined && (COMMANDS as readonly string[]).includes(first) ? first : null;
}

const common = {
  trust: { type: 'string' },
  log: { type: 'string' },
  hmi: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined || value === '') throw new UsageError(`missing ${what}`);
  return value;
}

function parseTime(text: string | undefined, option: string): Date | null {
  if (text === undefined) return null;
  // Accept ISO 8601 with an explicit zone only: a local time would mean different instants on different HMIs.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/u.test(text)) {
    throw new UsageError(`${option}: expected an ISO 8601 time such as 2026-03-01T00:00:00Z, got ${JSON.stringify(text)}`);
  }
  const time = new Date(text);
  if (Number.isNaN(time.getTime())) throw new UsageError(`${option}: not a real time: ${JSON.stringify(text)}`);
  return time;
}

function logFor(trustPath: string | undefined, values: { log?: string; hmi?: string }, io: CliIo): AuditLog {
  const path = values.log ?? (trustPath ? join(dirname(resolve(trustPath)), 'portcullis-agent.log.jsonl') : undefined);
  return new AuditLog(need(path, '--log FILE'), { hmi: values.hmi ?? hostname(), clock: io.clock });
}

/** bytes: small JSON and PEM files an administrator names (a drive identity, a kiosk key). */
const MAX_SMALL_FILE_BYTES = 64 * 1024;

const IDENTITY_EXAMPLE = '{"filesystem":"FAT32","volumeId":"1A2B-3C4D","label":"LINE3","capacity":8004304896}';

function readIdentity(path: string | undefined): DriveIdentity | null {
  if (path === undefined) return null;
  let text: string;
  try {
    text = readLocalFile(path, MAX_SMALL_FILE_BYTES).toString('utf8');
  } catch (cause) {
    throw new AgentError('IDENTITY_INVALID', `${path}: the drive identity file ${(cause as Error).message}: name a JSON file like ${IDENTITY_EXAMPLE}`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AgentError('IDENTITY_INVALID', `${path}: not valid JSON: give the drive identity as ${IDENTITY_EXAMPLE}`, { cause });
  }
  return parseIdentity(value, path);
}

/**
 * The kiosk public key file for `trust add`: a readable file holding an
 * Ed25519 public key in PEM form. A private key is refused on its own code,
 * without echoing any of it: it belongs on the kiosk only.
 */
function readKioskPublicKey(path: string): string {
  let pem: string;
  try {
    pem = readLocalFile(path, MAX_SMALL_FILE_BYTES).toString('utf8');
  } catch (cause) {
    throw new AgentError('KEY_FILE_INVALID', `${path}: the key file ${(cause as Error).message}: give the kiosk's public key, kiosk.pub.pem (made by portcullis-kiosk keygen)`, { cause });
  }
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/u.test(pem)) {
    throw new AgentError('KEY_IS_PRIVATE', `${path} is a private key, which never leaves the kiosk: give kiosk.pub.pem from the same folder instead (if this copy left the kiosk, treat the key as exposed: have security staff make a new one)`);
  }
  try {
    publicKeyFromPem(pem);
  } catch (cause) {
    throw new AgentError('KEY_FILE_INVALID', `${path} is not an Ed25519 public key in PEM form: give the kiosk's kiosk.pub.pem (made by portcullis-kiosk keygen)`, { cause });
  }
  return pem;
}

/** Runs `work` with an AbortSignal that SIGINT/SIGTERM trip; handlers are removed afterwards. */
async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** `trust pin-root ROOT.json` and `trust update PATH` (agent/trust-update.ts). */
async function trustUpdateCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  const now = (io.clock ?? (() => new Date()))();
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true, options: common });
  const trustPath = need(values.trust, '--trust FILE');
  if (positionals.length !== 1) throw new UsageError(sub === 'pin-root' ? 'trust pin-root needs exactly one ROOT.json (the update repository\'s metadata/root.json)' : 'trust update needs exactly one PATH: the update repository\'s folder on the drive');
  makeStoreFolder(trustPath);
  const log = logFor(trustPath, values, io);
  if (sub === 'pin-root') {
    let bytes: Buffer;
    try {
      bytes = readLocalFile(positionals[0]!, MAX_ROOT_BYTES);
    } catch (cause) {
      throw new TrustUpdateError('UPDATE_ROOT_INVALID', `${positionals[0]!}: the root file ${(cause as Error).message}`, { cause });
    }
    const root = await pinUpdateRoot(trustPath, bytes, log);
    io.stdout(`pinned update root version ${root.version} (sha256 ${createHash('sha256').update(bytes).digest('hex')}): compare it with the publisher's\n`);
    return EXIT.OK;
  }
  const result = await applyTrustUpdate({ trustPath, repository: positionals[0]!, log, now });
  if (values.json) {
    io.stdout(`${JSON.stringify({ status: result.status, versions: result.versions, added: result.added, revoked: result.revoked, policyChanged: result.policyChanged, sequence: result.store.sequence }, null, 2)}\n`);
  } else if (result.status === 'unchanged') {
    io.stdout(`already up to date (targets version ${result.versions.targets}): nothing was changed\n`);
  } else {
    io.stdout(`applied the trust update (targets version ${result.versions.targets}): ${result.store.keys.length} keys, ${result.store.revoked.length} revoked, trust store sequence ${result.store.sequence}\n`);
    for (const id of result.added) io.stdout(`  trusted ${id}\n`);
    for (const id of result.revoked) io.stdout(`  revoked ${id}\n`);
    if (result.policyChanged) io.stdout(`  policy: ${JSON.stringify(result.store.policy)}\n`);
  }
  return EXIT.OK;
}

/** bytes: a TUF root with a few keys is a few KiB. */
const MAX_ROOT_BYTES = 1024 * 1024;

function trustCommand(args: string[], io: CliIo): number {
  const [sub, ...rest] = args;
  const now = (io.clock ?? (() => new Date()))();
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      ...common,
      label: { type: 'string' },
      'not-before': { type: 'string' },
      'not-after': { type: 'string' },
      reason: { type: 'string' },
      'max-age-hours': { type: 'string' },
      destination: { type: 'string' },
      'no-destination': { type: 'boolean' },
      clash: { type: 'string' },
      'media-binding': { type: 'string' },
      digests: { type: 'string' },
    },
  });
  if (sub === undefined) throw new UsageError('trust needs a subcommand: add, list, revoke, policy, pin-root or update');
  if (!['add', 'list', 'revoke', 'policy'].includes(sub)) throw new UsageError(`unknown trust command ${JSON.stringify(sub)}`);
  const trustPath = need(values.trust, '--trust FILE');
  const change = (store: TrustStore, event: string, reason: string, keyId: string | null): number => {
    makeStoreFolder(trustPath); // "creates the store if missing": its folder too, before the log beside it
    const log = logFor(trustPath, values, io);
    // Log first: a change that cannot be logged is not made.
    log.append({ event, outcome: 'changed', code: 'TRUST_CHANGED', reason: `${reason} (trust store sequence ${store.sequence})`, keyId });
    try {
      saveTrustStore(trustPath, store);
    } catch (error) {
      log.append({ event: 'trust.change-failed', outcome: 'failed', code: 'TRUST_STORE_INVALID', reason: `writing the trust store failed: ${(error as Error).message}`, keyId });
      throw error;
    }
    return EXIT.OK;
  };
  switch (sub) {
    case 'add': {
      if (positionals.length !== 1) throw new UsageError('trust add needs exactly one PEM file');
      const pemPath = positionals[0]!;
      const notBefore = parseTime(values['not-before'], '--not-before');
      const notAfter = parseTime(values['not-after'], '--not-after');
      if (notBefore && notAfter && notBefore >= notAfter) throw new UsageError('--not-before must be earlier than --not-after');
      if (values.label !== undefined) {
        const label = parse(labelSchema, values.label, '--label');
        if (!label.ok) throw new UsageError(formatIssues(label.issues));
      }
      const pem = readKioskPublicKey(pemPath);
      const store = loadTrustStore(trustPath, { allowMissing: true, now });
      const { store: next, entry } = addKey(store, { pem, label: values.label ?? null, notBefore, notAfter }, now);
      change(next, 'trust.key-added', `trusted kiosk key ${entry.keyId}${entry.label ? ` (${entry.label})` : ''}, from ${entry.notBefore ?? 'now'} until ${entry.notAfter ?? 'revoked'}`, entry.keyId);
      io.stdout(`trusted ${entry.keyId}${entry.label ? ` (${entry.label})` : ''}\n`);
      return EXIT.OK;
    }
    case 'revoke': {
      if (positionals.length !== 1) throw new UsageError('trust revoke needs exactly one KEYID');
      const id = positionals[0]!;
      const store = loadTrustStore(trustPath, { allowMissing: true, now });
      const next = revokeKey(store, id, now, values.reason ?? null);
      change(next, 'trust.key-revoked', `revoked kiosk key ${id}${values.reason ? `: ${values.reason}` : ''}`, id);
      io.stdout(`revoked ${id}\n`);
      return EXIT.OK;
    }
    case 'policy': {
      if (positionals.length !== 0) throw new UsageError('trust policy takes no positional arguments');
      const patch: Partial<TrustPolicy> = {};
      if (values['max-age-hours'] !== undefined) {
        if (!/^\d{1,4}$/u.test(values['max-age-hours'])) throw new UsageError('--max-age-hours: expected a whole number of hours');
        patch.maxManifestAgeHours = Number(values['max-age-hours']);
      }
      if (values.destination !== undefined && values['no-destination']) throw new UsageError('--destination and --no-destination exclude each other');
      if (values.destination !== undefined) patch.destination = resolve(values.destination);
      if (values['no-destination']) patch.destination = null;
      if (values.clash !== undefined) {
        if (!(CLASH_POLICIES as readonly string[]).includes(values.clash)) throw new UsageError(`--clash: expected ${CLASH_POLICIES.join(', ')}`);
        patch.clash = values.clash as ClashPolicy;
      }
      if (values['media-binding'] !== undefined) {
        if (values['media-binding'] !== 'required' && values['media-binding'] !== 'optional') throw new UsageError('--media-binding: expected required or optional');
        patch.requireMediaBinding = values['media-binding'] === 'required';
      }
      if (values.digests !== undefined) {
        if (!(DIGEST_CHOICES as readonly string[]).includes(values.digests)) throw new UsageError(`--digests: expected ${DIGEST_CHOICES.join(', ')}`);
        patch.digests = values.digests as DigestChoice;
      }
      const store = loadTrustStore(trustPath, { allowMissing: true, now });
      const next = setPolicy(store, patch, now);
      change(next, 'trust.policy-changed', `policy is now ${JSON.stringify(next.policy)}`, null);
      io.stdout(`policy: ${JSON.stringify(next.policy)}\n`);
      return EXIT.OK;
    }
    case 'list': {
      if (positionals.length !== 0) throw new UsageError('trust list takes no positional arguments');
      const store = loadTrustStore(trustPath);
      if (values.json) {
        const keys = store.keys.map((k) => ({ keyId: k.keyId, label: k.label, status: keyStatus(store, k, now), notBefore: k.notBefore, notAfter: k.notAfter, addedAt: k.addedAt }));
        io.stdout(`${JSON.stringify({ formatVersion: store.formatVersion, sequence: store.sequence, updatedAt: store.updatedAt, keys, revoked: store.revoked, policy: store.policy }, null, 2)}\n`);
        return EXIT.OK;
      }
      io.stdout(`trust store ${trustPath} (format ${store.formatVersion}, sequence ${store.sequence}, updated ${store.updatedAt})\n`);
      if (store.keys.length === 0) io.stdout('  no kiosk keys: every drive is refused (KEY_UNTRUSTED)\n');
      for (const k of store.keys) {
        const period = `${k.notBefore ?? '-'} .. ${k.notAfter ?? '-'}`;
        io.stdout(`  ${k.keyId}  ${keyStatus(store, k, now).padEnd(13)}  ${period}  ${k.label ?? ''}\n`);
      }
      for (const r of store.revoked.filter((r) => !store.keys.some((k) => k.keyId === r.keyId))) {
        io.stdout(`  ${r.keyId}  revoked        (not a trusted key)  ${r.reason ?? ''}\n`);
      }
      const p = store.policy;
      const digests = p.digests === undefined ? `${policyDigests(store)} (default)` : p.digests;
      io.stdout(`policy: max manifest age ${p.maxManifestAgeHours} h, destination ${p.destination ?? '(any: import --to / watch config)'}, clash ${p.clash}, media binding ${p.requireMediaBinding ? 'required' : 'optional'}, digests checked ${digests}\n`);
      return EXIT.OK;
    }
    default:
      throw new UsageError(`unknown trust command ${JSON.stringify(sub ?? '')}`);
  }
}

/** Characters of report text gathered before each write. */
const REPORT_BATCH_CHARS = 64 * 1024;

function printReport(report: DriveReport, json: boolean, io: CliIo): void {
  if (json) {
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const head = report.approved
    ? `APPROVED: manifest ${report.manifestDigest}, kiosk ${report.kiosk}, key ${report.keyId?.slice(0, 16)}..., issued ${report.issuedAt}, expires ${report.expiresAt}`
    : `REFUSED ${report.code}: ${report.reason}`;
  io.stdout(`${report.mode} ${report.drive}: ${head}\n`);
  if (!report.approved) {
    io.stdout('nothing may pass from this drive\n');
    return;
  }
  // Written in batches: a write per line cost a third of a second at the end of an import of 20 000 files.
  let batch = '';
  for (const f of report.files) {
    const where = f.destination ? ` -> ${f.destination}` : '';
    batch += f.outcome === 'refused' || f.outcome === 'skipped' ? `  ${f.outcome.padEnd(9)} ${f.path}  ${f.code}: ${f.reason}\n` : `  ${f.outcome.padEnd(9)} ${f.path}${where}\n`;
    if (batch.length >= REPORT_BATCH_CHARS) {
      io.stdout(batch);
      batch = '';
    }
  }
  if (batch !== '') io.stdout(batch);
  const c = report.counts;
  io.stdout(report.mode === 'verify' ? `${c.permitted} permitted, ${c.refused} refused\n` : `${c.imported} imported, ${c.skipped} skipped, ${c.refused} refused\n`);
}

const EXIT_BY_CLASS = { all: EXIT.OK, some: EXIT.PARTIAL, none: EXIT.REFUSED } as const;

async function driveCommand(command: 'verify' | 'import', args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { ...common, to: { type: 'string' }, identity: { type: 'string' } },
  });
  if (positionals.length !== 1) throw new UsageError(`${command} needs exactly one DRIVE`);
  const drive = resolve(positionals[0]!);
  const trustPath = need(values.trust, '--trust FILE');
  if (command === 'verify' && values.to !== undefined) throw new UsageError('verify takes no --to (it writes nothing)');
  const to = command === 'import' ? resolve(need(values.to, '--to DIR')) : null;
  const now = (io.clock ?? (() => new Date()))();
  const trust = loadTrustStore(trustPath);
  const identity = readIdentity(values.identity);
  const log = logFor(trustPath, values, io);
  const report = await withInterrupt(async (signal) => {
    if (to === null) return verifyDrive({ drive, trust, now, identity, log, signal });
    if (trust.policy.destination !== null && !samePath(to, trust.policy.destination)) {
      throw new AgentError('DESTINATION_INVALID', `--to ${to}: the trust store's policy allows imports only into ${trust.policy.destination}`);
    }
    return importDrive({ drive, trust, now, identity, log, signal, destination: to, clash: trust.policy.clash });
  });
  printReport(report, values.json ?? false, io);
  return EXIT_BY_CLASS[reportClass(report)];
}

/** `manifest DRIVE`: the drive's manifest checked against the trust store at this time (docs/manifest.md §6); no file is read, nothing is logged. */
function manifestCommand(args: string[], io: CliIo): number {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { trust: { type: 'string' } } });
  if (positionals.length !== 1) throw new UsageError('manifest needs exactly one DRIVE');
  const trust = loadTrustStore(need(values.trust, '--trust FILE'));
  const read = readDriveManifest(resolve(positionals[0]!));
  if (!read.ok) {
    io.stdout(`refused: ${read.code}: ${displayText(read.reason)}\n`);
    return EXIT.REFUSED;
  }
  try {
    const m = verifyManifest(read.bytes, trustAnchorsOf(trust), (io.clock ?? (() => new Date()))());
    const p = m.statement.predicate;
    io.stdout(`genuine: ${m.payloadDigest}, signed by ${m.keyId} (kiosk ${p.kiosk.id}), ${m.statement.subject.length} files may pass, ${p.blocked.length} blocked, issued ${p.issuedAt}, valid until ${p.expiresAt}\n`);
    return EXIT.OK;
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    io.stdout(`refused: ${error.code}: ${displayText(error.message)}\n`);
    return EXIT.REFUSED;
  }
}

function logCommand(args: string[], io: CliIo): number {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: { log: { type: 'string' }, json: { type: 'boolean' }, since: { type: 'string' }, format: { type: 'string' } },
  });
  if (sub === undefined) throw new UsageError('log needs a subcommand: verify or export');
  if (sub !== 'verify' && sub !== 'export') throw new UsageError(`unknown log command ${JSON.stringify(sub)}`);
  if (positionals.length !== 0) throw new UsageError(`log ${sub} takes no positional arguments`);
  const path = need(values.log, '--log FILE');
  // Usage first: a mistyped option is named before the log is read.
  const format = sub === 'export' ? need(values.format, '--format json|csv') : null;
  if (format !== null && format !== 'json' && format !== 'csv') throw new UsageError('--format: expected json or csv');
  const since = sub === 'export' ? parseTime(values.since, '--since') : null;
  let bytes: Uint8Array;
  try {
    bytes = readLocalFile(path, bufferConstants.MAX_LENGTH);
  } catch (cause) {
    throw new AgentError('LOG_UNREADABLE', `${path}: the log ${(cause as Error).message}: name the agent's log (portcullis-agent.log.jsonl beside the trust store)`, { cause });
  }
  const check = verifyLogBytes(bytes);
  const broken = (c: Extract<typeof check, { ok: false }>): string =>
    `${path}: line ${c.line}: ${c.problem}: ${c.detail}; keep the file as evidence, and compare its head with the last export or the SIEM (docs/agent.md "The log")`;
  switch (sub) {
    case 'verify': {
      if (values.json) io.stdout(`${JSON.stringify(check.ok ? { ok: true, records: check.records, head: check.head } : check, null, 2)}\n`);
      if (!check.ok) {
        if (!values.json) io.stdout(`BROKEN at line ${check.line}: ${check.problem}: ${check.detail} (${check.records} records before it verify)\n`);
        io.stderr(`portcullis-agent: LOG_CHAIN_BROKEN: ${displayText(broken(check))}\n`);
        return EXIT.FAILURE;
      }
      if (!values.json) {
        io.stdout(`intact: ${check.records} records${check.head ? `, head seq ${check.head.seq} hash ${check.head.hash}` : ''}\n`);
        io.stdout('compare the head with the one from the last export: records cut from the end leave no trace in the file\n');
      }
      return EXIT.OK;
    }
    case 'export': {
      if (!check.ok) throw new AgentError('LOG_CHAIN_BROKEN', `${broken(check)}; nothing was exported`);
      const records = since ? check.entries.filter((r) => Date.parse(r.time) >= since.getTime()) : check.entries;
      io.stdout(formatExport(records, format as 'json' | 'csv'));
      return EXIT.OK;
    }
    default:
      throw new UsageError(`unknown log command ${JSON.stringify(sub ?? '')}`);
  }
}

function sourceFor(name: string, mountFolders: readonly string[]): DriveSource {
  const identify = process.platform === 'linux' ? linuxIdentity : () => Promise.resolve(null);
  switch (name) {
    case 'drivelist':
      return drivelistSource(identify);
    case 'mount-folders':
      return mountFolderSource(mountFolders, identify);
    case 'windows-letters':
      return windowsLetterSource();
    default: {
      if (process.platform === 'win32') return windowsLetterSource();
      if (mountFolders.length > 0) return mountFolderSource(mountFolders, identify);
      return drivelistSource(identify);
    }
  }
}

async function watchCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { config: { type: 'string' } } });
  if (positionals.length !== 0) throw new UsageError('watch takes no positional arguments');
  const config = loadWatchConfig(need(values.config, '--config FILE'));
  loadTrustStore(config.trust); // refuse to start on a broken trust store
  const log = new AuditLog(config.log, { hmi: config.hmiName ?? hostname(), clock: io.clock });
  const lines = lineNotifier((line) => io.stdout(`${line}\n`));
  const useMsg = config.notify === 'msg' || (config.notify === 'auto' && process.platform === 'win32');
  const notifier: Notifier = useMsg ? windowsMsgNotifier(lines) : lines;
  const source = sourceFor(config.source, config.mountFolders);
  io.stdout(`portcullis-agent: watching drives (${source.name}); stop with Ctrl+C or by stopping the service\n`);
  // The removable-storage deny policy exists only on Windows: elsewhere there is nothing to check.
  const storagePolicy = process.platform === 'win32' ? { required: config.requireStoragePolicy, read: () => readStoragePolicy(regExe) } : null;
  if (storagePolicy === null) io.stdout('portcullis-agent: removable-storage policy not checked (not Windows)\n');
  const forward = config.forward;
  await withInterrupt((signal) => Promise.all([
    forward ? forwardUntil({ logPath: config.log, statePath: forward.statePath, hmi: config.hmiName ?? hostname(), target: forward.target, status: () => trustStatus(config.trust), clock: io.clock }, forward.intervalMs, signal, (line) => io.stdout(`${line}\n`)) : null,
    runService(
      {
        source,
        trustPath: config.trust,
        destination: config.destination,
        log,
        notifier,
        intervalMs: config.pollIntervalMs,
        settleMs: config.settleMs,
        clock: io.clock,
        onReport: (r) => printReport(r, false, io),
        storagePolicy,
        say: (line) => io.stdout(`${line}\n`),
        statusFolder: config.statusFolder,
      },
      signal,
    ),
  ]));
  if (forward) {
    // The stop was logged after the last round: one more, so the central review hears it (a failure waits for the next start).
    await forwardLog({ logPath: config.log, statePath: forward.statePath, hmi: config.hmiName ?? hostname(), target: forward.target, status: () => trustStatus(config.trust), clock: io.clock })
      .catch((error: unknown) => io.stdout(`portcullis-agent: ${(error as Error).message}\n`));
  }
  return EXIT.OK;
}

/** `forward --config FILE`: one round of the service's forwarding (forward/forwarder.ts); exit 1 when the receiver did not take it. */
async function forwardCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { config: { type: 'string' } } });
  if (positionals.length !== 0) throw new UsageError('forward takes no positional arguments');
  const config = loadWatchConfig(need(values.config, '--config FILE'));
  if (!config.forward) throw new AgentError('CONFIG_INVALID', `${values.config}: no "forward" section: say where the log goes (docs/review.md)`);
  const result = await forwardLog({ logPath: config.log, statePath: config.forward.statePath, hmi: config.hmiName ?? hostname(), target: config.forward.target, status: () => trustStatus(config.trust), clock: io.clock });
  io.stdout(`forwarded ${result.sent} record(s); the log is delivered up to seq ${result.state.seq}\n`);
  return EXIT.OK;
}

function setupCommand(args: string[], io: CliIo): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { config: { type: 'string' }, destination: { type: 'string' }, 'status-folder': { type: 'string' }, 'trust-bundle': { type: 'string' }, hmi: { type: 'string' } },
  });
  if (positionals.length !== 0) throw new UsageError('setup takes no positional arguments');
  const config = resolve(need(values.config, '--config FILE'));
  const destination = resolve(need(values.destination, '--destination DIR'));
  // An empty value is what an installer passes for a property nobody set: the same as none.
  const trustBundle = values['trust-bundle'] ? resolve(values['trust-bundle']) : null;
  setupHmi({
    config, destination, trustBundle,
    statusFolder: values['status-folder'] ? resolve(values['status-folder']) : null,
    now: (io.clock ?? (() => new Date()))(),
    log: (trustPath) => logFor(trustPath, values, io),
    say: (line) => io.stdout(`${displayText(line)}\n`),
  });
  return EXIT.OK;
}

/** `help`, `help COMMAND`, `--help`/`-h` anywhere: the usage on stdout, exit 0; `help` with anything else is a usage error. */
function helpAsked(argv: readonly string[]): boolean {
  const [command, ...rest] = argv;
  if (command === 'help') {
    if (rest.length > 1 || (rest[0] !== undefined && !(COMMANDS as readonly string[]).includes(rest[0]))) {
      throw new UsageError(`help takes at most one command name (${COMMANDS.join(', ')}), got ${JSON.stringify(rest.join(' '))}`);
    }
    return true;
  }
  return argv.includes('--help') || argv.includes('-h');
}

async function run(argv: string[], io: CliIo): Promise<number> {
  if (helpAsked(argv)) {
    io.stdout(`${USAGE}\n`);
    return EXIT.OK;
  }
  const [command, ...rest] = argv;
  switch (command) {
    case 'trust':
      return rest[0] === 'pin-root' || rest[0] === 'update' ? trustUpdateCommand(rest, io) : trustCommand(rest, io);
    case 'verify':
    case 'import':
      return driveCommand(command, rest, io);
    case 'manifest':
      return manifestCommand(rest, io);
    case 'watch':
      return watchCommand(rest, io);
    case 'forward':
      return forwardCommand(rest, io);
    case 'setup':
      return setupCommand(rest, io);
    case 'log':
      return logCommand(rest, io);
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/**
 * Every error is one line: the code, what went wrong and what to do. Text
 * that came from a file or a drive (a JSON parser's excerpt, a path) is
 * escaped, so it cannot break the line or drive the terminal.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    const parseError = error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS');
    if (parseError || (error instanceof AgentError && error.code === 'USAGE')) {
      const synopsis = synopsisOf(commandOf(argv));
      const hint = synopsis === null ? 'run "portcullis-agent help" for the commands' : `usage: ${synopsis} (all commands: portcullis-agent help)`;
      io.stderr(`portcullis-agent: USAGE: ${displayText((error as Error).message)}; ${hint}\n`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      io.stderr(`portcullis-agent: ${error.code}: ${displayText(error.message)}\n`);
      return EXIT.FAILURE;
    }
    io.stderr('portcullis-agent: internal error (this is a bug; please report it with the text below)\n');
    io.stderr(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT.BUG;
  }
}

// No top-level await: the single executable bundles this file as CommonJS (agent/sea/).
if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

