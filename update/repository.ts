/**
 * Makes and extends the offline TUF repository (spec 1.0, consistent
 * snapshots) from a folder of update parts. Each build publishes the whole
 * set found in --from as a new version of targets, snapshot and timestamp,
 * each signed by its role's key with its own expiry; versions only go up.
 * Files are written so that a build cut short leaves the previous version
 * readable: target files first, then targets, snapshot, and timestamp last
 * (the one file a client starts from), each by rename.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Metadata, MetaFile, MetadataKind, Root, Snapshot, TargetFile, Targets, Timestamp, type Key } from '@tufjs/models';
import { classifyTarget, parseClamavHeader, targetSetProblems, UPDATE_METADATA_FOLDER, UPDATE_ROLES, UPDATE_TARGETS_FOLDER, type UpdateRole } from '../manifest/update-repository.ts';
import { PublishError } from './errors.ts';
import { loadTrustedState, recordChain, recordRoot, recordVersions, type TrustedState } from './published.ts';
import { readRoleKey, requireRoleKey, signerOf, type RoleKey } from './role-keys.ts';

export const SPEC_VERSION = '1.0.31';

/** Days each role's metadata stays valid (docs/updates.md says how to choose them). */
export interface Expiry {
  readonly root: number;
  readonly targets: number;
  readonly snapshot: number;
  readonly timestamp: number;
}

export const DEFAULT_EXPIRY: Expiry = { root: 365, targets: 90, snapshot: 30, timestamp: 14 };

const DAY_MS = 86_400_000;

/** TUF's time format: whole seconds, UTC. */
function expiresIn(now: Date, days: number): string {
  return new Date(Math.floor(now.getTime() / 1000) * 1000 + days * DAY_MS).toISOString().replace('.000Z', 'Z');
}

/** The repository's current metadata, as read back from its folder. */
export interface RepositoryState {
  readonly root: Metadata<Root>;
  readonly targets: Metadata<Targets> | null;
  readonly snapshot: Metadata<Snapshot> | null;
  readonly timestamp: Metadata<Timestamp> | null;
}

const metadataDir = (repo: string): string => join(repo, UPDATE_METADATA_FOLDER);

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new PublishError('UPDATE_REPO_INVALID', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new PublishError('UPDATE_REPO_INVALID', `${path}: not JSON: ${(cause as Error).message}`, { cause });
  }
}

function metadataOf<T extends MetadataKind>(kind: T, data: Record<string, unknown>, path: string): Metadata<T extends MetadataKind.Root ? Root : T extends MetadataKind.Targets ? Targets : T extends MetadataKind.Snapshot ? Snapshot : Timestamp> {
  try {
    return (Metadata.fromJSON as (kind: MetadataKind, data: Record<string, unknown>) => ReturnType<typeof metadataOf<T>>)(kind, data);
  } catch (cause) {
    throw new PublishError('UPDATE_REPO_INVALID', `${path}: not ${kind} metadata: ${(cause as Error).message}`, { cause });
  }
}

/** The highest N of the N.root.json files, or 0 when there is none. */
async function latestRootVersion(repo: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(metadataDir(repo));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new PublishError('UPDATE_REPO_INVALID', `cannot read ${metadataDir(repo)}: ${(cause as Error).message}`, { cause });
  }
  return Math.max(0, ...names.map((n) => /^([1-9][0-9]{0,8})\.root\.json$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])));
}

/** Reads the repository at `repo`; null when it has no root yet (a new repository). */
export async function readRepository(repo: string): Promise<RepositoryState | null> {
  const rootVersion = await latestRootVersion(repo);
  if (rootVersion === 0) return null;
  const dir = metadataDir(repo);
  const rootPath = join(dir, `${rootVersion}.root.json`);
  const root = metadataOf(MetadataKind.Root, await readJson(rootPath), rootPath);
  const timestampPath = join(dir, 'timestamp.json');
  const hasTimestamp = await lstat(timestampPath).then(() => true, () => false);
  if (!hasTimestamp) return { root, targets: null, snapshot: null, timestamp: null };
  const timestamp = metadataOf(MetadataKind.Timestamp, await readJson(timestampPath), timestampPath);
  const snapshotPath = join(dir, `${timestamp.signed.snapshotMeta.version}.snapshot.json`);
  const snapshot = metadataOf(MetadataKind.Snapshot, await readJson(snapshotPath), snapshotPath);
  const targetsMeta = snapshot.signed.meta['targets.json'];
  if (!targetsMeta) throw new PublishError('UPDATE_REPO_INVALID', `${snapshotPath} lists no targets.json`);
  const targetsPath = join(dir, `${targetsMeta.version}.targets.json`);
  const targets = metadataOf(MetadataKind.Targets, await readJson(targetsPath), targetsPath);
  return { root, targets, snapshot, timestamp };
}

/** Writes `bytes` to `path` through a temporary file and a rename: readers see the old file or the new one. */
async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx', mode: 0o644 });
    const handle = await open(temp, 'r');
    await handle.sync().finally(() => handle.close());
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true });
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
}

const metadataBytes = (metadata: Metadata<Root | Targets | Snapshot | Timestamp>): string => `${JSON.stringify(metadata.toJSON(), null, 2)}\n`;

function checkRoleKey(root: Root, key: RoleKey): void {
  const role = root.roles[key.role];
  if (!role?.keyIDs.includes(key.keyId)) {
    throw new PublishError('UPDATE_KEY_MISMATCH', `the ${key.role} key in --keys (TUF key id ${key.keyId.slice(0, 16)}...) is not the ${key.role} key that the repository's root (version ${root.version}) names: use the keys this repository was made with, or keys rotate ${key.role} --repo`);
  }
}

/** A root naming one key per role, threshold 1. */
function newRoot(version: number, expires: string, keys: Readonly<Record<UpdateRole, RoleKey | { keyId: string; key: Key }>>): Root {
  const root = new Root({ version, expires, specVersion: SPEC_VERSION, consistentSnapshot: true });
  for (const role of UPDATE_ROLES) root.addKey(keys[role].key, role);
  return root;
}

/**
 * Writes the chain of roots into the repository: every version the
 * publisher's record holds that the folder lacks (a fresh folder, a drive),
 * and the newest as root.json too (the copy `update init` and `trust
 * pin-root` take). `fresh` is a root just signed: recorded in the keys folder
 * first, so the record is never behind what a repository carries.
 */
async function writeRoots(repo: string, keysDir: string, state: TrustedState, fresh: Metadata<Root> | null): Promise<void> {
  const dir = metadataDir(repo);
  await mkdir(dir, { recursive: true });
  if (state.adopted) await recordChain(keysDir, state);
  const chain = [...state.roots];
  if (fresh) {
    const bytes = Buffer.from(metadataBytes(fresh));
    await recordRoot(keysDir, fresh.signed.version, bytes);
    chain.push({ version: fresh.signed.version, bytes });
  }
  for (const { version, bytes } of chain) {
    const there = await readFile(join(dir, `${version}.root.json`)).catch(() => null);
    if (!there?.equals(bytes)) await writeAtomic(join(dir, `${version}.root.json`), bytes);
  }
  const newest = chain.at(-1);
  if (newest) await writeAtomic(join(dir, 'root.json'), newest.bytes);
}

interface SourceFile {
  readonly target: string; // target path, e.g. clamav/daily.cvd
  readonly path: string; // where it is in --from
}

/** The parts in --from: every file must be a target of the format (manifest/update-repository.ts). */
export async function readSource(from: string): Promise<SourceFile[]> {
  let folders: string[];
  try {
    folders = (await readdir(from)).sort();
  } catch (cause) {
    throw new PublishError('UPDATE_SOURCE_INVALID', `cannot read --from ${from}: ${(cause as Error).message}`, { cause });
  }
  const files: SourceFile[] = [];
  for (const folder of folders) {
    const folderPath = join(from, folder);
    const info = await lstat(folderPath);
    if (!info.isDirectory()) throw new PublishError('UPDATE_SOURCE_INVALID', `${folderPath}: --from holds only the folders clamav/, yara/, allowlist/, policy/ and hmi/`);
    for (const name of (await readdir(folderPath)).sort()) {
      const path = join(folderPath, name);
      const target = `${folder}/${name}`;
      if (!classifyTarget(target)) throw new PublishError('UPDATE_SOURCE_INVALID', `${path}: ${targetSetProblems([target])[0] ?? 'not a target'}`);
      if (!(await lstat(path)).isFile()) throw new PublishError('UPDATE_SOURCE_INVALID', `${path}: not a regular file (links are not followed)`);
      files.push({ target, path });
    }
  }
  const problems = targetSetProblems(files.map((f) => f.target));
  if (problems.length > 0) throw new PublishError('UPDATE_SOURCE_INVALID', `--from ${from}: ${problems.join('; ')}`);
  if (files.length === 0) throw new PublishError('UPDATE_SOURCE_INVALID', `--from ${from} holds no parts: put the ClamAV databases in clamav/, site rules in yara/, the allowlist in allowlist/, the policy as policy/policy.json, the HMI trust store as hmi/trust.json`);
  return files;
}

/** Checks one part as the publisher can (the kiosk and the agent check each fully at import). */
async function checkPart(file: SourceFile, bytes: Buffer, checkClamav: (path: string) => Promise<string | null>): Promise<Record<string, string | number | boolean>> {
  const target = classifyTarget(file.target)!;
  const bad = (why: string): PublishError => new PublishError('UPDATE_SOURCE_INVALID', `${file.path}: ${why}`);
  switch (target.kind) {
    case 'clamav': {
      const parsed = parseClamavHeader(bytes);
      if (!parsed.ok) throw bad(parsed.reason);
      const problem = await checkClamav(file.path);
      if (problem !== null) throw bad(problem);
      return { version: parsed.header.version, builtAt: parsed.header.builtAt.toISOString().replace('.000Z', 'Z') };
    }
    case 'allowlist':
    case 'policy':
    case 'hmi-trust':
      try {
        JSON.parse(bytes.toString('utf8'));
      } catch (cause) {
        throw bad(`not JSON: ${(cause as Error).message}`);
      }
      return {};
    case 'yara':
      if (bytes.includes(0)) throw bad('a YARA rule file is text; this one holds NUL bytes');
      return {};
  }
}

export interface BuildOptions {
  readonly from: string;
  readonly repo: string;
  readonly keysDir: string;
  readonly now?: Date;
  readonly expiry?: Partial<Expiry>;
  /** ClamAV's own check of a database file (sigtool --info): null when good, else why not. */
  readonly checkClamav?: (path: string) => Promise<string | null>;
}

export interface BuildResult {
  readonly created: boolean; // a new repository (root version 1 written)
  readonly versions: Readonly<Record<UpdateRole, number>>;
  readonly expires: Readonly<Record<UpdateRole, string>>;
  readonly targets: readonly { path: string; length: number; sha256: string; custom: Record<string, unknown> }[];
}

/** `portcullis-update build`: a new version of the repository holding exactly the parts in --from. */
export async function buildRepository(options: BuildOptions): Promise<BuildResult> {
  const now = options.now ?? new Date();
  const expiry = { ...DEFAULT_EXPIRY, ...options.expiry };
  const checkClamav = options.checkClamav ?? (() => Promise.resolve(null));
  const sources = await readSource(options.from);
  const targetsKey = await requireRoleKey(options.keysDir, 'targets', 'the targets key signs the list of parts');
  const snapshotKey = await requireRoleKey(options.keysDir, 'snapshot', 'the snapshot key signs the version of the list');
  const timestampKey = await requireRoleKey(options.keysDir, 'timestamp', 'the timestamp key signs the repository\'s freshness');
  const heldRoot = await readRoleKey(options.keysDir, 'root');
  // What to build on: the publisher's own record in the keys folder, never the folder's word alone (published.ts).
  const state = await loadTrustedState(options.repo, options.keysDir, [targetsKey, snapshotKey, timestampKey, ...(heldRoot ? [heldRoot] : [])]);
  let root: Metadata<Root>;
  let fresh: Metadata<Root> | null = null;
  if (state.root === null) {
    // A new repository: root version 1 names the four keys and is signed by the root key.
    const rootKey = heldRoot ?? await requireRoleKey(options.keysDir, 'root', 'a new repository\'s root is signed by the root key (bring it from where it is kept offline)');
    root = new Metadata(newRoot(1, expiresIn(now, expiry.root), { root: rootKey, targets: targetsKey, snapshot: snapshotKey, timestamp: timestampKey }));
    root.sign(signerOf(rootKey));
    fresh = root;
  } else {
    root = state.root;
    if (new Date(root.signed.expires) <= now) {
      throw new PublishError('UPDATE_REPO_INVALID', `the repository's root (version ${root.signed.version}) expired on ${root.signed.expires}: renew it with keys renew-root (needs the root key)`);
    }
  }
  for (const key of [targetsKey, snapshotKey, timestampKey]) checkRoleKey(root.signed, key);

  // Target files: consistent snapshots name each by its SHA-256, so a new version never overwrites an old file.
  const targets = new Targets({ version: state.versions.targets + 1, expires: expiresIn(now, expiry.targets), specVersion: SPEC_VERSION });
  const listed: { path: string; length: number; sha256: string; custom: Record<string, unknown> }[] = [];
  for (const source of sources) {
    const bytes = await readFile(source.path);
    const custom = await checkPart(source, bytes, checkClamav);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const sha512 = createHash('sha512').update(bytes).digest('hex');
    const [folder, file] = source.target.split('/') as [string, string];
    const stored = join(options.repo, UPDATE_TARGETS_FOLDER, folder, `${sha256}.${file}`);
    await mkdir(dirname(stored), { recursive: true });
    // A stored file is kept only if it is these bytes (the folder may have come back changed).
    const same = await lstat(stored).then(async (i) => i.isFile() && i.size === bytes.length && createHash('sha256').update(await readFile(stored)).digest('hex') === sha256, () => false);
    if (!same) {
      const temp = `${stored}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        // The bytes checked and hashed above, never a second read of the source (a drive may answer differently).
        await writeFile(temp, bytes, { flag: 'wx', mode: 0o644 });
        await rename(temp, stored);
      } catch (cause) {
        await rm(temp, { force: true });
        throw new PublishError('UPDATE_WRITE_FAILED', `cannot write ${stored} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
      }
    }
    targets.addTarget(new TargetFile({ path: source.target, length: bytes.length, hashes: { sha256, sha512 }, ...(Object.keys(custom).length > 0 ? { unrecognizedFields: { custom } } : {}) }));
    listed.push({ path: source.target, length: bytes.length, sha256, custom });
  }
  const targetsMd = new Metadata(targets);
  targetsMd.sign(signerOf(targetsKey));
  const targetsBytes = metadataBytes(targetsMd);

  const snapshot = new Snapshot({
    version: state.versions.snapshot + 1,
    expires: expiresIn(now, expiry.snapshot),
    specVersion: SPEC_VERSION,
    meta: { 'targets.json': metaFileOf(targets.version, targetsBytes) },
  });
  const snapshotMd = new Metadata(snapshot);
  snapshotMd.sign(signerOf(snapshotKey));
  const snapshotBytes = metadataBytes(snapshotMd);

  const timestamp = new Timestamp({
    version: state.versions.timestamp + 1,
    expires: expiresIn(now, expiry.timestamp),
    specVersion: SPEC_VERSION,
    snapshotMeta: metaFileOf(snapshot.version, snapshotBytes),
  });
  const timestampMd = new Metadata(timestamp);
  timestampMd.sign(signerOf(timestampKey));

  const dir = metadataDir(options.repo);
  await mkdir(dir, { recursive: true });
  await writeRoots(options.repo, options.keysDir, state, fresh);
  await writeAtomic(join(dir, `${targets.version}.targets.json`), targetsBytes);
  await writeAtomic(join(dir, `${snapshot.version}.snapshot.json`), snapshotBytes);
  await writeAtomic(join(dir, 'timestamp.json'), metadataBytes(timestampMd));
  await recordVersions(options.keysDir, { targets: targets.version, snapshot: snapshot.version, timestamp: timestamp.version });
  await prune(options.repo, targets.version, snapshot.version, new Set(listed.map((t) => `${t.path.split('/')[0]!}/${t.sha256}.${t.path.split('/')[1]!}`)));

  return {
    created: state.root === null,
    versions: { root: root.signed.version, targets: targets.version, snapshot: snapshot.version, timestamp: timestamp.version },
    expires: { root: root.signed.expires, targets: targets.expires, snapshot: snapshot.expires, timestamp: timestamp.expires },
    targets: listed,
  };
}

function metaFileOf(version: number, bytes: string): MetaFile {
  const data = Buffer.from(bytes, 'utf8');
  return new MetaFile({ version, length: data.length, hashes: { sha256: createHash('sha256').update(data).digest('hex') } });
}

/**
 * Old targets and snapshot versions and the target files no current version
 * names: a client only ever reads the newest, and the repository travels on a
 * drive. Every N.root.json stays (a client walks the chain of roots).
 */
async function prune(repo: string, targetsVersion: number, snapshotVersion: number, keep: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(metadataDir(repo))) {
    const m = /^([0-9]+)\.(targets|snapshot)\.json$/.exec(name);
    if (m && Number(m[1]) !== (m[2] === 'targets' ? targetsVersion : snapshotVersion)) await rm(join(metadataDir(repo), name), { force: true });
  }
  const targetsDir = join(repo, UPDATE_TARGETS_FOLDER);
  for (const folder of await readdir(targetsDir)) {
    for (const name of await readdir(join(targetsDir, folder))) {
      if (!keep.has(`${folder}/${name}`)) await rm(join(targetsDir, folder, name), { force: true });
    }
  }
}

/**
 * A new root version: `keys` replaces the key of each role named in it, and
 * the new root is signed by the current root key(s) (so clients that trust
 * the old root accept it: cross-signed) and, when the root key changes, by
 * the new root key as well. Also renews the root's expiry.
 */
export async function writeNextRoot(options: { repo: string; keysDir: string; replace: Partial<Record<UpdateRole, RoleKey>>; oldRootKey: RoleKey; now?: Date; rootDays?: number }): Promise<Metadata<Root>> {
  const state = await loadTrustedState(options.repo, options.keysDir, [options.oldRootKey]);
  if (!state.root) throw new PublishError('UPDATE_REPO_INVALID', `${options.repo} has no root yet: run build first`);
  const now = options.now ?? new Date();
  const current = state.root.signed;
  checkRoleKey(current, options.oldRootKey);
  const keys = {} as Record<UpdateRole, { keyId: string; key: Key }>;
  for (const role of UPDATE_ROLES) {
    const replacement = options.replace[role];
    if (replacement) {
      keys[role] = replacement;
      continue;
    }
    const keyId = current.roles[role]?.keyIDs[0];
    const key = keyId === undefined ? undefined : current.keys[keyId];
    if (!keyId || !key) throw new PublishError('UPDATE_REPO_INVALID', `the root names no ${role} key`);
    keys[role] = { keyId, key };
  }
  const next = new Metadata(newRoot(current.version + 1, expiresIn(now, options.rootDays ?? DEFAULT_EXPIRY.root), keys));
  next.sign(signerOf(options.oldRootKey));
  const newRootKey = options.replace.root;
  if (newRootKey) next.sign(signerOf(newRootKey));
  await writeRoots(options.repo, options.keysDir, state, next);
  return next;
}
