/**
 * The kiosk's updates folder: the pinned TUF root, every imported set in a
 * generation folder of its own, and one small state file naming the active
 * set, the previous one (kept for one explicit step back) and the set whose
 * TUF metadata the next import is checked against. The state file is the
 * only thing an import or a rollback changes in place, by one atomic rename:
 * a kiosk that loses power mid-import keeps the set it had.
 *
 *   <dir>/root.json                 pinned by `update init` (the first trust)
 *   <dir>/state.json                {"formatVersion":1,"current":"g000002","previous":"g000001","trust":"g000002"}
 *   <dir>/generations/g000002/      set.json, tuf/{root,timestamp,snapshot,targets}.json,
 *                                   clamav/, yara/, allowlist/, policy/
 *   <dir>/staging/                  the import under way (removed at the next start of one)
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { displayText } from '../../manifest/index.ts';
import { formatIssues, literal, nullable, object, parse, string } from '../../manifest/schema.ts';
import { parseUpdateSet, UpdateError, type UpdateSet } from '../core/update-set.ts';
import { TRUSTED_FILES } from './tuf-folder.ts';

const GENERATION = /^g[0-9]{6}$/;
const generationName = string({ pattern: GENERATION, patternMessage: 'expected g and six digits' });
const stateSchema = object({ formatVersion: literal(1), current: nullable(generationName), previous: nullable(generationName), trust: nullable(generationName) });

export interface UpdateState {
  readonly current: string | null;
  readonly previous: string | null;
  /** The set whose TUF metadata the next import starts from: the newest ever imported (a rollback does not lower it). */
  readonly trust: string | null;
}

const EMPTY: UpdateState = { current: null, previous: null, trust: null };

export const pinnedRootPath = (dir: string): string => join(dir, 'root.json');
export const generationPath = (dir: string, generation: string): string => join(dir, 'generations', generation);

function writeFailed(what: string, cause: unknown): UpdateError {
  const errno = (cause as NodeJS.ErrnoException).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return new UpdateError('UPDATE_DISK_FULL', `no room to write ${what}: free space in the updates folder; nothing was changed`, { cause });
  return new UpdateError('UPDATE_WRITE_FAILED', `cannot write ${what} (${errno ?? (cause as Error).message})`, { cause });
}

async function syncPath(path: string, directory = false): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | (directory ? constants.O_DIRECTORY : 0));
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a small file by temporary file, fsync and rename, then fsyncs the folder. */
async function writeAtomic(path: string, folder: string, bytes: string): Promise<void> {
  const temp = join(folder, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx', mode: 0o644 });
    await syncPath(temp);
    await rename(temp, path);
    await syncPath(folder, true);
  } catch (cause) {
    await rm(temp, { force: true });
    throw writeFailed(path, cause);
  }
}

/** fsyncs every file and folder under `dir`, so a set is on disk before the state file names it. */
async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(path);
    else await syncPath(path);
  }
  await syncPath(dir, true);
}

/** Whether `update init` has pinned a root in `dir`. */
export async function isInitialised(dir: string): Promise<boolean> {
  return stat(pinnedRootPath(dir)).then((i) => i.isFile(), () => false);
}

/**
 * `update init --root FILE`: pins the repository's root (its keys and
 * thresholds), which every later import is verified against, rotations
 * included. Refuses a kiosk that already has one, and a file that is not a
 * root signed by its own root keys.
 */
export async function initUpdates(dir: string, rootBytes: Uint8Array): Promise<{ version: number; expires: string; keyIds: Record<string, readonly string[]> }> {
  let root: Metadata<Root>;
  try {
    root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(Buffer.from(rootBytes).toString('utf8')) as Record<string, never>);
    root.verifyDelegate(MetadataKind.Root, root); // signed by a threshold of its own root keys
  } catch (cause) {
    throw new UpdateError('UPDATE_ROOT_INVALID', `not a TUF root signed by its own root keys (${displayText((cause as Error).message)}): give the repository's metadata/root.json (or its 1.root.json)`, { cause });
  }
  // The folder itself, not its parents: the command line makes those (cli/path-option.ts; a recursive mkdir loops under /proc).
  await mkdir(dir, { mode: 0o755 }).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw writeFailed(dir, cause);
  });
  if (await isInitialised(dir)) {
    throw new UpdateError('UPDATE_ALREADY_INITIALISED', `${displayText(dir)} already has a pinned root: a new root reaches this kiosk through an import (a root rotation), never by init`);
  }
  await writeAtomic(pinnedRootPath(dir), dir, Buffer.from(rootBytes).toString('utf8'));
  const keyIds = Object.fromEntries(Object.entries(root.signed.roles).map(([role, r]) => [role, r.keyIDs]));
  return { version: root.signed.version, expires: root.signed.expires, keyIds };
}

function requireInitialised(dir: string, initialised: boolean): void {
  if (!initialised) {
    throw new UpdateError('UPDATE_NOT_INITIALISED', `${displayText(dir)} has no pinned update root: run "portcullis-kiosk update init --root root.json" with the publisher's root first (docs/updates.md)`);
  }
}

export async function readState(dir: string): Promise<UpdateState> {
  let text: string;
  try {
    text = await readFile(join(dir, 'state.json'), 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
    throw new UpdateError('UPDATE_WRITE_FAILED', `cannot read ${join(dir, 'state.json')}: ${(cause as Error).message}`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new UpdateError('UPDATE_WRITE_FAILED', `${join(dir, 'state.json')}: not JSON: ${(cause as Error).message}`, { cause });
  }
  const result = parse(stateSchema, value);
  if (!result.ok) throw new UpdateError('UPDATE_WRITE_FAILED', `${join(dir, 'state.json')}: ${formatIssues(result.issues)}`);
  return { current: result.value.current, previous: result.value.previous, trust: result.value.trust };
}

async function writeState(dir: string, state: UpdateState): Promise<void> {
  await writeAtomic(join(dir, 'state.json'), dir, `${JSON.stringify({ formatVersion: 1, ...state })}\n`);
}

export async function readSet(dir: string, generation: string): Promise<UpdateSet> {
  const path = join(generationPath(dir, generation), 'set.json');
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new UpdateError('UPDATE_WRITE_FAILED', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  return parseUpdateSet(value, path);
}

/** The active set, if any: its folder and its description. */
export interface ActiveSet {
  readonly generation: string;
  readonly folder: string;
  readonly set: UpdateSet;
}

export async function activeSet(dir: string): Promise<ActiveSet | null> {
  const state = await readState(dir);
  if (state.current === null) return null;
  return { generation: state.current, folder: generationPath(dir, state.current), set: await readSet(dir, state.current) };
}

/** The folders and files the engines and the scan use from a set: only the parts it carries. */
export interface SetParts {
  readonly clamavDb?: string;
  readonly rulesDir?: string;
  readonly allowlistDir?: string;
  readonly policyPath?: string;
}

export function partsOf(active: ActiveSet): SetParts {
  const has = (kind: string): boolean => active.set.parts.some((p) => p.kind === kind);
  return {
    ...(has('clamav') ? { clamavDb: join(active.folder, 'clamav') } : {}),
    ...(has('yara') ? { rulesDir: join(active.folder, 'yara') } : {}),
    ...(has('allowlist') ? { allowlistDir: join(active.folder, 'allowlist') } : {}),
    ...(has('policy') ? { policyPath: join(active.folder, 'policy', 'policy.json') } : {}),
  };
}

/** Held while an import or a rollback runs: a folder made exclusively, with the holder's pid. */
export async function lockUpdates(dir: string): Promise<() => Promise<void>> {
  const lock = join(dir, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await mkdir(lock, { mode: 0o700 });
      await writeFile(join(lock, 'pid'), String(process.pid));
      return () => rm(lock, { recursive: true, force: true });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw writeFailed(lock, cause);
      const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => 'NaN'));
      const alive = Number.isSafeInteger(pid) && pid > 0 && (() => {
        try {
          process.kill(pid, 0);
          return true;
        } catch (error) {
          return (error as NodeJS.ErrnoException).code === 'EPERM';
        }
      })();
      if (alive) throw new UpdateError('UPDATE_BUSY', `another update import or rollback is running (pid ${pid}): wait for it to finish`);
      await rm(lock, { recursive: true, force: true }); // left by a kiosk that stopped mid-import
    }
  }
  throw new UpdateError('UPDATE_BUSY', `cannot take the update lock ${lock}`);
}

/** An import under way: tuf-js's metadata folder, the set's files, and scratch space, all under staging/. */
export interface Staging {
  readonly folder: string;
  readonly metadataDir: string;
  readonly setDir: string;
  readonly scratch: string;
  readonly state: UpdateState;
  /** The set active when the import began (its ClamAV versions bound the new ones). */
  readonly active: ActiveSet | null;
}

/**
 * Starts an import: a fresh staging folder whose tuf/ holds the trusted
 * metadata to verify against (the trust set's, or the pinned root alone).
 */
export async function beginStaging(dir: string): Promise<Staging> {
  requireInitialised(dir, await isInitialised(dir));
  const state = await readState(dir);
  const folder = join(dir, 'staging');
  await rm(folder, { recursive: true, force: true });
  const setDir = join(folder, 'set');
  const metadataDir = join(setDir, 'tuf');
  const scratch = join(folder, 'scratch');
  try {
    await mkdir(metadataDir, { recursive: true, mode: 0o755 });
    await mkdir(scratch, { recursive: true, mode: 0o700 });
    if (state.trust === null) {
      await copyFile(pinnedRootPath(dir), join(metadataDir, 'root.json'));
    } else {
      const from = join(generationPath(dir, state.trust), 'tuf');
      for (const name of TRUSTED_FILES) await copyFile(join(from, name), join(metadataDir, name)).catch((cause: unknown) => {
        if (name === 'root.json' || (cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
      });
    }
  } catch (cause) {
    await rm(folder, { recursive: true, force: true });
    if (cause instanceof UpdateError) throw cause;
    throw writeFailed(folder, cause);
  }
  const active = state.current === null ? null : { generation: state.current, folder: generationPath(dir, state.current), set: await readSet(dir, state.current) };
  return { folder, metadataDir, setDir, scratch, state, active };
}

async function nextGeneration(dir: string): Promise<string> {
  const names = await readdir(join(dir, 'generations')).catch(() => [] as string[]);
  const highest = Math.max(0, ...names.filter((n) => GENERATION.test(n)).map((n) => Number(n.slice(1))));
  return `g${String(highest + 1).padStart(6, '0')}`;
}

export interface Commit {
  readonly generation: string;
  readonly before: UpdateState;
  readonly after: UpdateState;
  /** Puts the state back as it was (the audit record could not be written). */
  revert(): Promise<void>;
}

/**
 * Makes the staged set the active one: its files are fsynced, the folder is
 * renamed to the next generation, and the state file is replaced (the one
 * atomic step). The set that was active becomes the previous one.
 */
export async function commitStaging(dir: string, staging: Staging, describe: (generation: string) => UpdateSet): Promise<Commit> {
  const generation = await nextGeneration(dir);
  // Checked before it is written: a description the kiosk could not read back would leave it with an unreadable active set.
  const set = parseUpdateSet(JSON.parse(JSON.stringify(describe(generation))), `the new set ${generation}`);
  try {
    await rm(staging.scratch, { recursive: true, force: true });
    await writeFile(join(staging.setDir, 'set.json'), `${JSON.stringify(set, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
    // Until the import is on the record: a kiosk stopped between the switch and the audit record finds it here (unrecordedImport).
    await writeFile(join(staging.setDir, UNRECORDED), `${JSON.stringify(set)}\n`, { flag: 'wx', mode: 0o644 });
    await syncTree(staging.setDir);
    await mkdir(join(dir, 'generations'), { recursive: true, mode: 0o755 });
    await rename(staging.setDir, generationPath(dir, generation));
    await syncPath(join(dir, 'generations'), true);
  } catch (cause) {
    await rm(generationPath(dir, generation), { recursive: true, force: true });
    throw writeFailed(`the new set ${generation}`, cause);
  }
  const before = staging.state;
  const after: UpdateState = { current: generation, previous: before.current, trust: generation };
  await writeState(dir, after).catch(async (error: unknown) => {
    await rm(generationPath(dir, generation), { recursive: true, force: true });
    throw error;
  });
  return { generation, before, after, revert: () => writeState(dir, before) };
}

const UNRECORDED = '.unrecorded';

/**
 * The active set, when its import switched the state but stopped before its
 * audit record was written (a crash in that instant): its description, for
 * the record to be written late. Null when every import is on the record.
 */
export async function unrecordedImport(dir: string): Promise<{ generation: string; set: UpdateSet } | null> {
  const state = await readState(dir);
  if (state.current === null) return null;
  const marker = join(generationPath(dir, state.current), UNRECORDED);
  const text = await readFile(marker, 'utf8').catch(() => null);
  if (text === null) return null;
  return { generation: state.current, set: parseUpdateSet(JSON.parse(text), marker) };
}

/** The import of `generation` is on the record: its marker goes. */
export async function markRecorded(dir: string, generation: string): Promise<void> {
  await rm(join(generationPath(dir, generation), UNRECORDED), { force: true });
  await syncPath(generationPath(dir, generation), true).catch(() => undefined);
}

/** Removes the staging folder and every generation the state no longer names. */
export async function cleanUp(dir: string): Promise<void> {
  await rm(join(dir, 'staging'), { recursive: true, force: true });
  const state = await readState(dir);
  const keep = new Set([state.current, state.previous, state.trust].filter((g) => g !== null));
  for (const name of await readdir(join(dir, 'generations')).catch(() => [] as string[])) {
    if (!keep.has(name)) await rm(join(dir, 'generations', name), { recursive: true, force: true });
  }
}

async function rootVersion(path: string): Promise<string> {
  return readFile(path, 'utf8').then((t) => {
    const version = (JSON.parse(t) as { signed?: { version?: unknown } }).signed?.version;
    return typeof version === 'number' ? String(version) : '?';
  }, () => '?');
}

/**
 * `update rollback`: the previous set becomes the active one again, once
 * (there is no previous of the previous). The set rolled back from is kept
 * only for its TUF metadata, so an older repository is still refused.
 */
export async function rollBack(dir: string): Promise<{ from: string; to: string; before: UpdateState; after: UpdateState; revert(): Promise<void> }> {
  requireInitialised(dir, await isInitialised(dir));
  const before = await readState(dir);
  if (before.current === null || before.previous === null) {
    throw new UpdateError('UPDATE_NO_PREVIOUS', before.current === null ? 'no set has been imported: there is nothing to roll back' : `there is no previous set to go back to (the active set ${before.current} is the only one kept): import the set you want instead`);
  }
  await readSet(dir, before.previous); // it must be readable before it becomes the active one
  // Never back past a revocation: the previous set's targets must still verify under the newest trusted root.
  // A targets key rotated out since (it was lost, or signed what it should not have) takes its sets with it.
  const trusted = join(generationPath(dir, before.trust ?? before.current), 'tuf', 'root.json');
  const previousTargets = join(generationPath(dir, before.previous), 'tuf', 'targets.json');
  try {
    const root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(trusted, 'utf8')) as Record<string, never>);
    const targets = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await readFile(previousTargets, 'utf8')) as Record<string, never>);
    root.verifyDelegate(MetadataKind.Targets, targets);
  } catch (cause) {
    throw new UpdateError('UPDATE_ROLLBACK', `the previous set ${before.previous} was signed by a targets key that the trusted root (now version ${await rootVersion(trusted)}) no longer names: a revoked key's set is never put back; import the set wanted instead`, { cause });
  }
  const after: UpdateState = { current: before.previous, previous: null, trust: before.trust };
  await writeState(dir, after);
  return { from: before.current, to: before.previous, before, after, revert: () => writeState(dir, before) };
}
