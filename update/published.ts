/**
 * The publisher's own record of what it has published, kept beside the role
 * keys (never in the repository folder, which travels on drives and comes
 * back from them):
 *
 *   <keys>/published/N.root.json     every root version this publisher signed, byte for byte
 *   <keys>/published/versions.json   {"formatVersion":1,"targets":N,"snapshot":N,"timestamp":N}
 *
 * Every command that extends a repository starts from this record, as a TUF
 * client starts from its trusted root (spec §5.3): the repository's roots
 * must be these files, or later versions that verify from them; its current
 * targets, snapshot and timestamp must be signed by the keys the trusted root
 * names. A repository someone changed (a root naming keys of their own, a
 * version pushed to the top of the number range, an older copy put back) is
 * refused before anything is signed. A keys folder without a record (made
 * before it existed) adopts a repository once, and only one whose chain of
 * roots verifies and whose newest root names exactly the keys in the folder.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { UPDATE_METADATA_FOLDER } from '../manifest/update-repository.ts';
import { PublishError } from './errors.ts';
import type { RoleKey } from './role-keys.ts';

export const PUBLISHED_FOLDER = 'published';
const MAX_ROOT_VERSION = 999_999_999; // N.root.json names up to nine digits
const MAX_METADATA_BYTES = 4 * 1024 * 1024; // bytes: as the kiosk and the agent read them

export interface PublishedVersions {
  readonly targets: number;
  readonly snapshot: number;
  readonly timestamp: number;
}

/** What the publisher may build on: its trusted root chain and the highest versions published. */
export interface TrustedState {
  /** Every root version, oldest first, as bytes; empty for a repository not yet made. */
  readonly roots: readonly { version: number; bytes: Buffer }[];
  /** The newest root, or null when there is none yet. */
  readonly root: Metadata<Root> | null;
  /** The highest version of each role ever published here (the record, or the repository's verified ones, whichever is higher). */
  readonly versions: PublishedVersions;
  /** The keys folder had no record and took the repository's (verified) chain as its own. */
  readonly adopted: boolean;
}

const ZERO: PublishedVersions = { targets: 0, snapshot: 0, timestamp: 0 };

const invalid = (message: string, cause?: unknown): PublishError => new PublishError('UPDATE_REPO_INVALID', message, cause === undefined ? undefined : { cause });

/** Reads a file of at most MAX_METADATA_BYTES, never through a link. */
async function readBounded(path: string): Promise<Buffer | null> {
  const info = await lstat(path).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw invalid(`cannot read ${path}: ${(cause as Error).message}`, cause);
  });
  if (info === null) return null;
  if (!info.isFile()) throw invalid(`${path} is not a regular file (links are not followed)`);
  if (info.size > MAX_METADATA_BYTES) throw invalid(`${path} is ${info.size} bytes: larger than any metadata this publisher writes`);
  return readFile(path);
}

function parseRoot(bytes: Buffer, where: string): Metadata<Root> {
  try {
    return Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString('utf8')) as Record<string, never>);
  } catch (cause) {
    throw invalid(`${where}: not TUF root metadata: ${(cause as Error).message}`, cause);
  }
}

/** The N.root.json files in a folder, by version. */
async function rootFiles(folder: string): Promise<Map<number, Buffer>> {
  const names = await readdir(folder).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
    throw invalid(`cannot read ${folder}: ${(cause as Error).message}`, cause);
  });
  const roots = new Map<number, Buffer>();
  for (const name of names) {
    const m = /^([1-9][0-9]{0,8})\.root\.json$/.exec(name);
    if (!m) continue;
    const bytes = await readBounded(join(folder, name));
    if (bytes) roots.set(Number(m[1]), bytes);
  }
  return roots;
}

/**
 * Walks a chain of roots from `trusted` (spec §5.3.4): each next version
 * signed by a threshold of the previous root's root keys and of its own, with
 * the version its file name says. Returns the roots taken, in order.
 */
function walkRoots(trusted: Metadata<Root>, candidates: ReadonlyMap<number, Buffer>, where: string): { version: number; bytes: Buffer; root: Metadata<Root> }[] {
  const taken: { version: number; bytes: Buffer; root: Metadata<Root> }[] = [];
  let current = trusted;
  for (let version = trusted.signed.version + 1; version <= MAX_ROOT_VERSION; version++) {
    const bytes = candidates.get(version);
    if (!bytes) break;
    const next = parseRoot(bytes, `${where}/${version}.root.json`);
    try {
      current.verifyDelegate(MetadataKind.Root, next);
      next.verifyDelegate(MetadataKind.Root, next);
    } catch (cause) {
      throw invalid(`${where}/${version}.root.json is not signed by the root keys of version ${current.signed.version} and its own (${(cause as Error).message}): someone other than the root key's holder made it; do not use this repository folder`, cause);
    }
    if (next.signed.version !== version) throw invalid(`${where}/${version}.root.json says it is version ${next.signed.version}`);
    taken.push({ version, bytes, root: next });
    current = next;
  }
  const beyond = [...candidates.keys()].filter((v) => v > current.signed.version);
  if (beyond.length > 0) throw invalid(`${where} holds root version ${Math.min(...beyond)} but no version ${current.signed.version + 1}: a chain of roots has no gaps; do not use this repository folder`);
  return taken;
}

async function readVersions(keysDir: string): Promise<PublishedVersions | null> {
  const path = join(keysDir, PUBLISHED_FOLDER, 'versions.json');
  const bytes = await readBounded(path).catch((cause: unknown) => {
    throw new PublishError('UPDATE_KEY_UNREADABLE', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  });
  if (bytes === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new PublishError('UPDATE_KEY_UNREADABLE', `${path}: not JSON: ${(cause as Error).message}`, { cause });
  }
  const v = value as Record<string, unknown>;
  const ok = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (v.formatVersion !== 1 || !ok(v.targets) || !ok(v.snapshot) || !ok(v.timestamp)) {
    throw new PublishError('UPDATE_KEY_UNREADABLE', `${path}: not the publisher's record of versions ({"formatVersion":1,"targets":N,"snapshot":N,"timestamp":N})`);
  }
  return { targets: v.targets, snapshot: v.snapshot, timestamp: v.timestamp };
}

type RoleMetadata = Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/**
 * The version of one role's metadata in the repository, once its signature
 * verifies with the trusted root; 0 when the file is not there. A file whose
 * signature does not verify is refused: someone changed it.
 */
async function verifiedVersion(roots: readonly Metadata<Root>[], path: string, kind: MetadataKind.Targets | MetadataKind.Snapshot | MetadataKind.Timestamp): Promise<{ version: number; metadata: RoleMetadata } | null> {
  const bytes = await readBounded(path);
  if (bytes === null) return null;
  let metadata: RoleMetadata;
  try {
    metadata = (Metadata.fromJSON as (k: MetadataKind, d: Record<string, never>) => RoleMetadata)(kind, JSON.parse(bytes.toString('utf8')) as Record<string, never>);
  } catch (cause) {
    throw invalid(`${path}: not TUF ${kind} metadata: ${(cause as Error).message}`, cause);
  }
  // Signed by the role's key in the newest root, or in an earlier one (a key rotated since, before the next build).
  const signer = [...roots].reverse().find((root) => {
    try {
      root.verifyDelegate(kind, metadata);
      return true;
    } catch {
      return false;
    }
  });
  if (!signer) throw invalid(`${path} is not signed by the ${kind} key of any root version this publisher signed: someone changed the repository; build into a fresh folder (the record in the keys folder carries the versions on)`);
  if (!Number.isSafeInteger(metadata.signed.version) || metadata.signed.version >= Number.MAX_SAFE_INTEGER - 1) throw invalid(`${path}: version ${metadata.signed.version} is out of range`);
  return { version: metadata.signed.version, metadata };
}

/** The repository's current targets, snapshot and timestamp versions, each verified. */
async function repositoryVersions(repo: string, root: readonly Metadata<Root>[]): Promise<PublishedVersions> {
  const dir = join(repo, UPDATE_METADATA_FOLDER);
  const timestamp = await verifiedVersion(root, join(dir, 'timestamp.json'), MetadataKind.Timestamp);
  if (timestamp === null) return ZERO;
  const snapshotVersion = (timestamp.metadata as Metadata<Timestamp>).signed.snapshotMeta.version;
  const snapshot = await verifiedVersion(root, join(dir, `${snapshotVersion}.snapshot.json`), MetadataKind.Snapshot);
  const targetsVersion = snapshot === null ? null : (snapshot.metadata as Metadata<Snapshot>).signed.meta['targets.json']?.version ?? null;
  const targets = targetsVersion === null ? null : await verifiedVersion(root, join(dir, `${targetsVersion}.targets.json`), MetadataKind.Targets);
  return { timestamp: timestamp.version, snapshot: snapshot?.version ?? 0, targets: targets?.version ?? 0 };
}

/** Whether `root` names exactly `key` (and threshold 1) for its role: the only shape this publisher writes. */
export function namesExactly(root: Root, key: RoleKey): boolean {
  const role = root.roles[key.role];
  return role !== undefined && role.threshold === 1 && role.keyIDs.length === 1 && role.keyIDs[0] === key.keyId;
}

/**
 * The publisher's trusted state for `repo`, from the record in `keysDir`
 * (adopting the repository's verified chain when there is no record yet and
 * its newest root names exactly the `held` keys). Nothing is written here.
 */
export async function loadTrustedState(repo: string, keysDir: string, held: readonly RoleKey[]): Promise<TrustedState> {
  const recordDir = join(keysDir, PUBLISHED_FOLDER);
  const recorded = await rootFiles(recordDir).catch((error: unknown) => {
    if (error instanceof PublishError) throw new PublishError('UPDATE_KEY_UNREADABLE', error.message, { cause: error });
    throw error;
  });
  const inRepo = await rootFiles(join(repo, UPDATE_METADATA_FOLDER));
  const where = join(repo, UPDATE_METADATA_FOLDER);
  let chain: { version: number; bytes: Buffer; root: Metadata<Root> }[];
  let adopted = false;
  if (recorded.size > 0) {
    // The record's own chain, checked as any chain is (a record damaged on disk is not trusted either).
    const first = recorded.get(1);
    if (!first) throw new PublishError('UPDATE_KEY_UNREADABLE', `${recordDir} has no 1.root.json: the record of published roots is incomplete; restore the keys folder from its backup`);
    const one = parseRoot(first, `${recordDir}/1.root.json`);
    try {
      one.verifyDelegate(MetadataKind.Root, one);
    } catch (cause) {
      throw new PublishError('UPDATE_KEY_UNREADABLE', `${recordDir}/1.root.json is not signed by its own root key: restore the keys folder from its backup`, { cause });
    }
    chain = [{ version: 1, bytes: first, root: one }, ...walkRoots(one, recorded, recordDir)];
    // Each root the repository holds must be the one this publisher signed; newer ones must verify from it.
    for (const [version, bytes] of inRepo) {
      const mine = recorded.get(version);
      if (mine && !mine.equals(bytes)) {
        throw invalid(`${where}/${version}.root.json differs from the root version ${version} this publisher signed (kept in ${recordDir}): someone changed the repository; do not use this folder, build into a fresh one`);
      }
    }
    chain.push(...walkRoots(chain.at(-1)!.root, inRepo, where));
  } else if (inRepo.size > 0) {
    // No record yet (a keys folder from before it existed): adopt the repository's chain once, if it is ours.
    const first = inRepo.get(1);
    if (!first) throw invalid(`${where} has no 1.root.json: the chain of roots must start at version 1`);
    const one = parseRoot(first, `${where}/1.root.json`);
    try {
      one.verifyDelegate(MetadataKind.Root, one);
    } catch (cause) {
      throw invalid(`${where}/1.root.json is not signed by its own root key: not a repository this publisher made`, cause);
    }
    chain = [{ version: 1, bytes: first, root: one }, ...walkRoots(one, inRepo, where)];
    const newest = chain.at(-1)!.root.signed;
    if (held.length === 0) throw new PublishError('UPDATE_KEY_MISSING', `${keysDir} has no record of this repository (${PUBLISHED_FOLDER}/) and no role key to check it against: run build with the keys it was made with, once`);
    const strangers = held.filter((k) => !namesExactly(newest, k));
    if (strangers.length > 0) {
      throw new PublishError('UPDATE_KEY_MISMATCH', `the repository's root (version ${newest.version}) does not name exactly the ${strangers.map((k) => k.role).join(', ')} key${strangers.length === 1 ? '' : 's'} in ${keysDir}: use the keys this repository was made with, or keys rotate ROLE`);
    }
    adopted = true;
  } else {
    return { roots: [], root: null, versions: (await readVersions(keysDir)) ?? ZERO, adopted: false };
  }
  const root = chain.at(-1)!.root;
  const fromRepo = await repositoryVersions(repo, chain.map((c) => c.root));
  const fromRecord = (await readVersions(keysDir)) ?? ZERO;
  const versions = {
    targets: Math.max(fromRecord.targets, fromRepo.targets),
    snapshot: Math.max(fromRecord.snapshot, fromRepo.snapshot),
    timestamp: Math.max(fromRecord.timestamp, fromRepo.timestamp),
  };
  return { roots: chain.map(({ version, bytes }) => ({ version, bytes })), root, versions, adopted };
}

async function writeAtomic(folder: string, name: string, bytes: Uint8Array | string): Promise<void> {
  const temp = join(folder, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx', mode: 0o600 });
    const handle = await open(temp, 'r');
    await handle.sync().finally(() => handle.close());
    await rename(temp, join(folder, name));
  } catch (cause) {
    await rm(temp, { force: true });
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot write ${join(folder, name)} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
}

/** Records a root version this publisher signed (before it is written to the repository). */
export async function recordRoot(keysDir: string, version: number, bytes: Uint8Array | string): Promise<void> {
  const folder = join(keysDir, PUBLISHED_FOLDER);
  await mkdir(folder, { recursive: true, mode: 0o700 }).catch((cause: unknown) => {
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot make ${folder} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  });
  await writeAtomic(folder, `${version}.root.json`, bytes);
}

/** Records the versions just published (after the repository's files are written). */
export async function recordVersions(keysDir: string, versions: PublishedVersions): Promise<void> {
  const folder = join(keysDir, PUBLISHED_FOLDER);
  await mkdir(folder, { recursive: true, mode: 0o700 }).catch((cause: unknown) => {
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot make ${folder} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  });
  await writeAtomic(folder, 'versions.json', `${JSON.stringify({ formatVersion: 1, ...versions })}\n`);
}

/** Adopts a verified chain into a keys folder without a record. */
export async function recordChain(keysDir: string, state: TrustedState): Promise<void> {
  for (const { version, bytes } of state.roots) await recordRoot(keysDir, version, bytes);
  await recordVersions(keysDir, state.versions);
}

