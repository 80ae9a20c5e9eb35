/**
 * `portcullis-kiosk update init|import|status|rollback`: signed offline
 * updates of the kiosk's ClamAV databases, YARA rules, allowlist and policy
 * (docs/updates.md). An import, in order:
 *
 *  1. takes the update lock and a fresh staging folder holding the trusted
 *     TUF metadata (the newest imported set's, or the pinned root);
 *  2. verifies the repository on the drive with tuf-js (update/tuf-folder.ts):
 *     root rotations, signatures and thresholds, versions (rollback), expiry
 *     (freeze), and each target's length and hashes as it is copied off;
 *  3. checks each part as the kiosk uses it: ClamAV's own signature check
 *     (sigtool) and no database older than the active one; the policy and
 *     allowlist schemas; then the whole new set through the engines' start-up
 *     self-test (clamd loads the databases without a warning, EICAR found,
 *     the YARA rules compiled by the loader and every rule live);
 *  4. renames the staged set into place and switches the state file (one
 *     atomic step), keeping the previous set for `update rollback`;
 *  5. records UPDATE_IMPORTED in the audit log, or, if that record cannot be
 *     written, switches back: an update that is not on the record did not
 *     happen. Every refusal is recorded as UPDATE_REFUSED with its code.
 */
import { constants } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { displayText, PortcullisError } from '../../manifest/index.ts';
import { CLAMAV_HEADER_BYTES, parseClamavHeader, UPDATE_PARTS, type UpdatePartKind } from '../../manifest/update-repository.ts';
import { openAuditStore } from '../audit/store.ts';
import { AllowlistError, buildAllowlist } from '../core/allowlist.ts';
import { parsePolicy, PolicyError, type LoadedPolicy } from '../core/policy.ts';
import { policyLoosenings } from '../core/policy-changes.ts';
import { ageHours, clamavDowngrade, clamavFromTheFuture, describeAge, signaturesBuiltAt, UpdateError, type UpdatePart, type UpdateSet } from '../core/update-set.ts';
import { checkClamavDatabase } from '../engines/clamav/database-check.ts';
import { ScannerError } from '../engines/clamav/errors.ts';
import { EngineError, startEngines } from '../engines/engines.ts';
import { YaraRuleError } from '../engines/yara/errors.ts';
import { verifyRepository, type VerifiedRepository } from '../updates/tuf-folder.ts';
import { beginStaging, cleanUp, commitStaging, initUpdates, isInitialised, lockUpdates, markRecorded, pinnedRootPath, readSet, readState, rollBack, unrecordedImport, type Staging } from '../updates/update-store.ts';
import { KIOSK_DEFAULTS } from '../config.ts';
import { makeFolder } from './path-option.ts';
import { loadPolicy } from '../rules-files.ts';

export interface UpdateCommandOptions {
  /** The kiosk's updates folder (config `updatesDir`). */
  readonly updatesDir: string;
  /** Audit database; null: none (tests only). */
  readonly dbPath: string | null;
  /** The kiosk's own parts, which a set that does not carry one keeps using (and the engine check uses). */
  readonly clamavDb?: string;
  readonly rulesDir?: string;
  readonly policyPath?: string;
  readonly allowlistDir?: string;
  /** Scratch space for the engine check (printable ASCII path: clamd is told spool paths). */
  readonly workDir?: string;
  /** Accept ClamAV databases without Cisco's signature (.cud made with sigtool --unsigned): labs and tests. */
  readonly unsignedClamavDatabases?: boolean;
  readonly now?: () => Date;
  readonly out?: (line: string) => void;
  /** Called before each file of the repository is read: progress (tests pull the drive here). */
  readonly onRead?: (relativePath: string) => void | Promise<void>;
}

/** What an import did. */
export type ImportResult =
  | { readonly status: 'imported'; readonly generation: string; readonly previous: string | null; readonly set: UpdateSet }
  | { readonly status: 'unchanged'; readonly generation: string };

/** The parts a kiosk copies (the HMIs' trust store is checked by TUF but not kept). */
const KIOSK_KINDS: ReadonlySet<UpdatePartKind> = new Set(['clamav', 'yara', 'allowlist', 'policy']);

function record(options: UpdateCommandOptions, type: string, data: Record<string, unknown>): void {
  if (options.dbPath === null) return;
  const store = openAuditStore(options.dbPath, options.now ? { now: options.now } : {});
  try {
    store.recordEvent(type, data);
  } finally {
    store.close();
  }
}

const MAX_ROOT_BYTES = 4 * 1024 * 1024; // bytes, as the import reads metadata

/** The root file, often on the update drive itself: a regular file of at most 4 MiB, never waited on (a FIFO). */
async function readRootFile(path: string): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
    if (info.size > MAX_ROOT_BYTES) throw Object.assign(new Error(`${info.size} bytes, more than a root can be`), { code: 'ETOOBIG' });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * An import whose set became active but whose audit record was never written
 * (the kiosk stopped in that instant): recorded now, marked late, before
 * anything else changes the updates folder.
 */
async function recordLate(options: UpdateCommandOptions): Promise<void> {
  const pending = await unrecordedImport(options.updatesDir);
  if (pending === null) return;
  const { set } = pending;
  record(options, 'UPDATE_IMPORTED', { source: set.source, generation: pending.generation, late: true, note: 'recorded late: the kiosk stopped after switching to this set and before recording it', tuf: set.tuf, parts: set.parts, signaturesBuiltAt: signaturesBuiltAt(set), yara: set.yara, loosened: set.loosened ?? [] });
  await markRecorded(options.updatesDir, pending.generation);
}

/** `update init --root FILE`: pins the publisher's root; recorded as UPDATE_ROOT_PINNED. */
export async function updateInit(options: UpdateCommandOptions, rootFile: string): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readRootFile(rootFile);
  } catch (cause) {
    throw new UpdateError('UPDATE_ROOT_INVALID', `cannot read ${displayText(rootFile)} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}): give the repository's metadata/root.json`, { cause });
  }
  const { createHash } = await import('node:crypto');
  const digest = createHash('sha256').update(bytes).digest('hex');
  await makeFolder(options.updatesDir, '--updates', 0o755);
  const root = await initUpdates(options.updatesDir, bytes);
  record(options, 'UPDATE_ROOT_PINNED', { updatesDir: options.updatesDir, rootVersion: root.version, rootExpires: root.expires, rootSha256: digest, keyIds: root.keyIds });
  const out = options.out ?? console.log;
  out(`pinned root version ${root.version} (sha256 ${digest}) in ${options.updatesDir}`);
  out('Compare that sha256 with the one the publisher read out for metadata/root.json: they must be equal.');
  for (const [role, ids] of Object.entries(root.keyIds)) out(`  ${role.padEnd(9)} ${ids.join(', ')}`);
}

/** Maps an engine start failure on the new set to the part it blames. */
function engineFailure(error: unknown): UpdateError {
  const detail = error instanceof PortcullisError ? `${error.code}: ${error.message}` : String(error);
  if (error instanceof YaraRuleError) return new UpdateError('UPDATE_PART_INVALID', `the set's YARA rules: ${displayText(detail)}; nothing was changed`, { cause: error });
  if (error instanceof ScannerError && error.code === 'SCANNER_START_FAILED') return new UpdateError('UPDATE_CLAMAV_INVALID', `clamd does not load the set's databases cleanly: ${displayText(detail)}; nothing was changed`, { cause: error });
  if (error instanceof EngineError && error.code === 'CLAMAV_DB_MISSING') return new UpdateError('UPDATE_PART_INVALID', `${displayText(detail)}: a set without ClamAV databases needs the kiosk's own (--clamav-db); nothing was changed`, { cause: error });
  return new UpdateError('UPDATE_ENGINES_FAILED', `the new set fails the engines' self-test: ${displayText(detail)}; nothing was changed`, { cause: error });
}

/** The first `bytes` bytes of a file. */
async function readHead(path: string, bytes: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function files(dir: string): Promise<{ name: string; bytes: Buffer }[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (name) => ({ name, bytes: await readFile(join(dir, name)) })));
}

/** The hashes an allowlist's files list (already checked by buildAllowlist, or the kiosk's own). */
function allowlistHashes(files: readonly { bytes: Buffer }[]): Set<string> {
  const hashes = new Set<string>();
  for (const file of files) {
    try {
      const entries = (JSON.parse(file.bytes.toString('utf8')) as { entries?: { sha256?: string; blake3?: string }[] }).entries ?? [];
      for (const e of entries) hashes.add(`${e.sha256 ?? ''}/${e.blake3 ?? ''}`);
    } catch {
      // an allowlist in force that does not parse lists nothing
    }
  }
  return hashes;
}

/** Step 3: each part checked as the kiosk will use it; returns the set's parts and its proven rule set. */
async function checkParts(options: UpdateCommandOptions, staging: Staging, verified: VerifiedRepository): Promise<{ parts: UpdatePart[]; yara: UpdateSet['yara']; loosened: string[] }> {
  const parts: UpdatePart[] = [];
  const has = (kind: UpdatePartKind): boolean => verified.targets.some((t) => t.target.kind === kind);
  for (const t of verified.targets) {
    const base = { kind: t.target.kind, target: t.target.path, file: t.target.file, length: t.length, sha256: t.sha256 };
    if (t.target.kind !== 'clamav') {
      parts.push(base);
      continue;
    }
    const { database, container } = t.target;
    const header = parseClamavHeader(await readHead(t.path, CLAMAV_HEADER_BYTES)); // the header only: a database can be hundreds of MB
    if (!header.ok) throw new UpdateError('UPDATE_CLAMAV_INVALID', `${t.target.path}: ${header.reason}; nothing was changed`);
    if (container === 'cud' && !options.unsignedClamavDatabases) {
      throw new UpdateError('UPDATE_CLAMAV_UNSIGNED', `${t.target.path} is an unsigned ClamAV database (.cud): this kiosk takes only Cisco-signed .cvd/.cld files (run freshclam with "ScriptedUpdates no" on the workstation), unless its config sets unsignedClamavDatabases; nothing was changed`);
    }
    const check = await checkClamavDatabase(t.path, container);
    if (!check.ok) throw new UpdateError('UPDATE_CLAMAV_INVALID', `${t.target.path}: ${check.reason}; nothing was changed`);
    parts.push({ ...base, database, container, version: header.header.version, builtAt: header.header.builtAt.toISOString().replace('.000Z', 'Z'), clamavSigned: check.check.signed });
  }
  if (has('clamav')) {
    for (const needed of ['main', 'daily'] as const) {
      if (!parts.some((p) => p.database === needed)) throw new UpdateError('UPDATE_PART_INVALID', `the set carries ClamAV databases but no ${needed} database: publish main and daily together (bytecode too, as freshclam fetches it); nothing was changed`);
    }
  }
  const downgrade = clamavDowngrade(staging.active?.set ?? null, parts);
  if (downgrade !== null) throw new UpdateError('UPDATE_ROLLBACK', `${downgrade}: use the newest databases; nothing was changed`);
  const future = clamavFromTheFuture(parts, (options.now ?? (() => new Date()))());
  if (future !== null) throw new UpdateError('UPDATE_CLAMAV_INVALID', `${future}; nothing was changed`);

  const label = (kind: UpdatePartKind, text: string): void => {
    for (const [i, p] of parts.entries()) if (p.kind === kind) parts[i] = { ...p, label: text.slice(0, 128) };
  };
  let policy: LoadedPolicy;
  if (has('policy')) {
    const path = join(staging.setDir, 'policy', 'policy.json');
    try {
      policy = parsePolicy(await readFile(path), 'policy/policy.json');
    } catch (error) {
      if (error instanceof PolicyError) throw new UpdateError('UPDATE_PART_INVALID', `${displayText(error.message)}; nothing was changed`, { cause: error });
      throw error;
    }
    label('policy', `policy ${policy.policy.id}`);
  } else {
    policy = await loadPolicy(options.policyPath ?? KIOSK_DEFAULTS.policyPath);
  }
  // What the set lets through that the parts in force did not: said plainly, never refused (the site decides its policy).
  const activeHas = (kind: UpdatePartKind): boolean => staging.active?.set.parts.some((p) => p.kind === kind) ?? false;
  const loosened: string[] = [];
  // A set that leaves a part out hands it back to the kiosk's configured one: compared too (the site's may have been stricter).
  if (has('policy') || activeHas('policy')) {
    const before = await loadPolicy(activeHas('policy') ? join(staging.active!.folder, 'policy', 'policy.json') : options.policyPath ?? KIOSK_DEFAULTS.policyPath).catch(() => null);
    if (before) loosened.push(...policyLoosenings(before.policy, policy.policy).map((l) => (has('policy') ? l : `${l} (the set carries no policy: the kiosk's configured one applies)`)));
  }
  let newFiles: { name: string; bytes: Buffer }[] | null = null;
  if (has('allowlist')) {
    try {
      newFiles = await files(join(staging.setDir, 'allowlist'));
      const allowlist = buildAllowlist(newFiles);
      label('allowlist', `allowlist ${allowlist.version}, ${allowlist.entryCount} entries`);
    } catch (error) {
      if (error instanceof AllowlistError) throw new UpdateError('UPDATE_PART_INVALID', `the set's allowlist: ${displayText(error.message)}; nothing was changed`, { cause: error });
      throw error;
    }
  }
  if (has('allowlist') || activeHas('allowlist')) {
    const configured = options.allowlistDir ?? KIOSK_DEFAULTS.allowlistDir;
    const before = allowlistHashes(await files(activeHas('allowlist') ? join(staging.active!.folder, 'allowlist') : configured).catch(() => []));
    const after = allowlistHashes(newFiles ?? await files(configured).catch(() => []));
    const fresh = [...after].filter((h) => !before.has(h));
    if (fresh.length > 0) loosened.push(`allowlist: ${fresh.length} hash${fresh.length === 1 ? '' : 'es'} allowed that the allowlist in force did not list${has('allowlist') ? '' : ' (the set carries no allowlist: the kiosk\'s configured one applies)'}`);
  }

  // The whole set through the engines' start-up self-test, as the station will start them.
  const workDir = await mkdtemp(join(options.workDir ?? tmpdir(), 'portcullis-update-check-'));
  try {
    let engines;
    try {
      engines = await startEngines({
        clamavDb: has('clamav') ? join(staging.setDir, 'clamav') : options.clamavDb ?? KIOSK_DEFAULTS.clamavDb,
        rulesDir: has('yara') ? join(staging.setDir, 'yara') : options.rulesDir ?? KIOSK_DEFAULTS.rulesDir,
        workDir,
        policy: policy.policy,
      });
    } catch (error) {
      throw engineFailure(error);
    }
    const yara = { ruleSetDigest: engines.info.yara?.ruleSetDigest ?? '', ruleCount: engines.info.yara?.ruleCount ?? 0 };
    await engines.stop();
    const rulesBefore = staging.active?.set.yara?.ruleCount;
    if (rulesBefore !== undefined && yara.ruleCount < rulesBefore) loosened.push(`yara: ${yara.ruleCount} rules, the set in force had ${rulesBefore}${has('yara') ? '' : ' (the set carries no rules: the kiosk\'s configured ones apply)'}`);
    return { parts, yara: has('yara') ? yara : null, loosened };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** `update import PATH`. Throws an UpdateError (recorded as UPDATE_REFUSED) when anything is wrong; then nothing changed. */
export async function importUpdate(options: UpdateCommandOptions, repository: string): Promise<ImportResult> {
  const now = options.now ?? (() => new Date());
  const dir = options.updatesDir;
  const source = displayText(resolve(repository));
  try {
    if (!(await isInitialised(dir))) {
      throw new UpdateError('UPDATE_NOT_INITIALISED', `${displayText(dir)} has no pinned update root: run "portcullis-kiosk update init --root root.json" with the publisher's root first (docs/updates.md)`);
    }
    const release = await lockUpdates(dir);
    try {
      await recordLate(options);
      const staging = await beginStaging(dir);
      try {
        const verified = await verifyRepository({ repository, metadataDir: staging.metadataDir, targetDir: staging.setDir, scratch: staging.scratch, kinds: KIOSK_KINDS, ...(options.onRead ? { onRead: options.onRead } : {}) });
        const { current, trust } = staging.state;
        if (verified.unchanged && current !== null && current === trust) {
          record(options, 'UPDATE_UNCHANGED', { source, generation: current, timestampVersion: verified.roles.timestamp.version });
          return { status: 'unchanged', generation: current };
        }
        const { parts, yara, loosened } = await checkParts(options, staging, verified);
        const importedAt = now().toISOString();
        const commit = await commitStaging(dir, staging, (generation) => ({ formatVersion: 1, generation, importedAt, source, tuf: verified.roles, parts, yara, ...(loosened.length > 0 ? { loosened: loosened.map((l) => l.slice(0, 300)).slice(0, 64) } : {}) }));
        const set = await readSet(dir, commit.generation);
        try {
          record(options, 'UPDATE_IMPORTED', { source, generation: commit.generation, previous: commit.before.current, tuf: verified.roles, parts: set.parts, signaturesBuiltAt: signaturesBuiltAt(set), yara, loosened });
        } catch (error) {
          await commit.revert();
          throw error;
        }
        await markRecorded(dir, commit.generation);
        if (loosened.length > 0) {
          const out = options.out ?? console.log;
          out(`the new set lets more through than the one before it (in the audit log with UPDATE_IMPORTED, and in update status):`);
          for (const line of loosened) out(`  LOOSENED ${displayText(line)}`);
        }
        return { status: 'imported', generation: commit.generation, previous: commit.before.current, set };
      } finally {
        await cleanUp(dir).catch(() => undefined);
      }
    } finally {
      await release();
    }
  } catch (error) {
    const code = error instanceof PortcullisError ? String((error as PortcullisError).code) : 'INTERNAL_ERROR';
    try {
      record(options, 'UPDATE_REFUSED', { source, code, message: error instanceof Error ? error.message : String(error) });
    } catch (auditError) {
      // Nothing was changed either way; the person at the console must know the log lacks this refusal.
      if (error instanceof Error && !code.startsWith('AUDIT_')) error.message += `; and the refusal could not be recorded in the audit log (${(auditError as Error).message})`;
    }
    throw error;
  }
}

/** `update rollback`: back to the previous set, once; recorded as UPDATE_ROLLED_BACK. */
export async function rollbackUpdate(options: UpdateCommandOptions): Promise<{ from: string; to: string }> {
  if (!(await isInitialised(options.updatesDir))) {
    throw new UpdateError('UPDATE_NOT_INITIALISED', `${displayText(options.updatesDir)} has no pinned update root: nothing was ever imported`);
  }
  const release = await lockUpdates(options.updatesDir);
  try {
    await recordLate(options);
    const done = await rollBack(options.updatesDir);
    try {
      record(options, 'UPDATE_ROLLED_BACK', { from: done.from, to: done.to });
    } catch (error) {
      await done.revert();
      throw error;
    }
    await cleanUp(options.updatesDir);
    return { from: done.from, to: done.to };
  } finally {
    await release();
  }
}

/** One line per part of a set, for status. */
function partLines(set: UpdateSet, now: Date): string[] {
  const lines: string[] = [];
  for (const kind of UPDATE_PARTS) {
    const parts = set.parts.filter((p) => p.kind === kind);
    if (parts.length === 0) continue;
    if (kind === 'clamav') {
      for (const p of parts) {
        lines.push(`  clamav     ${p.file.padEnd(14)} version ${String(p.version ?? '?').padEnd(7)} built ${p.builtAt ?? '?'} (${describeAge(ageHours(p.builtAt ?? null, now))}), ${p.clamavSigned ? 'ClamAV signature verified' : 'unsigned (.cud)'}`);
      }
    } else if (kind === 'yara') {
      lines.push(`  yara       ${parts.length} rule file${parts.length === 1 ? '' : 's'}${set.yara ? `, ${set.yara.ruleCount} rules proven live, ${set.yara.ruleSetDigest}` : ''}`);
    } else {
      for (const p of parts) lines.push(`  ${kind.padEnd(10)} ${p.file.padEnd(14)} ${p.label ? `${p.label}, ` : ''}sha256:${p.sha256.slice(0, 16)}...`);
    }
  }
  return lines;
}

export interface UpdateStatus {
  readonly updatesDir: string;
  readonly initialised: boolean;
  readonly current: UpdateSet | null;
  readonly previous: UpdateSet | null;
  readonly signaturesBuiltAt: string | null;
  readonly signaturesAgeHours: number | null;
  /** The active policy's limit and what it does when passed. */
  readonly maxAgeHours: number;
  readonly whenOutdated: string;
  /** The active set's import is not yet on the audit record (the kiosk stopped in between). */
  readonly unrecorded: boolean;
}

/** `update status`: the active set (each part's version and age), the previous one, and the freshness limit. */
export async function updateStatus(options: UpdateCommandOptions, signatures: { maxAgeHours: number; whenOutdated: string }): Promise<UpdateStatus> {
  const initialised = await isInitialised(options.updatesDir);
  const state = initialised ? await readState(options.updatesDir) : { current: null, previous: null, trust: null };
  const current = state.current ? await readSet(options.updatesDir, state.current) : null;
  const previous = state.previous ? await readSet(options.updatesDir, state.previous) : null;
  const builtAt = current ? signaturesBuiltAt(current) : null;
  const unrecorded = initialised && (await unrecordedImport(options.updatesDir)) !== null;
  return { updatesDir: options.updatesDir, initialised, current, previous, signaturesBuiltAt: builtAt, signaturesAgeHours: ageHours(builtAt, (options.now ?? (() => new Date()))()), ...signatures, unrecorded };
}

export function statusLines(status: UpdateStatus, now: Date): string[] {
  const lines = [`updates folder ${status.updatesDir}: ${status.initialised ? `root pinned (${pinnedRootPath(status.updatesDir)})` : 'no root pinned: run update init --root FILE'}`];
  if (!status.current) {
    lines.push('active set: none imported (the kiosk uses its configured ClamAV database, rules, allowlist and policy)');
  } else {
    const c = status.current;
    lines.push(`active set ${c.generation}: imported ${c.importedAt} (${describeAge(ageHours(c.importedAt, now)).replace(' old', ' ago')}) from ${c.source}`);
    lines.push(`  repository: targets version ${c.tuf.targets.version}, timestamp version ${c.tuf.timestamp.version} (signed until ${c.tuf.timestamp.expires}), root version ${c.tuf.root.version}`);
    lines.push(...partLines(c, now));
    for (const line of c.loosened ?? []) lines.push(`  LOOSENED at import: ${displayText(line)}`);
    if (status.unrecorded) lines.push('  NOT YET ON THE AUDIT RECORD: the kiosk stopped between switching to this set and recording it; the next update import or rollback records it (marked late)');
    const limit = `${status.maxAgeHours} hours`;
    const outdated = status.signaturesAgeHours !== null && status.signaturesAgeHours > status.maxAgeHours;
    lines.push(`signatures: ${describeAge(status.signaturesAgeHours)}; the policy's limit is ${limit}${outdated ? `: OUTDATED (the station ${status.whenOutdated === 'warn' ? 'warns' : 'is out of service'})` : ''}`);
  }
  lines.push(status.previous ? `previous set ${status.previous.generation} (imported ${status.previous.importedAt}): "update rollback" makes it active again` : 'previous set: none');
  return lines;
}

