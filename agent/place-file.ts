/**
 * Placing a verified staged file at its name in the destination, and taking
 * it back: the destination root and every folder below it are recorded when
 * first used and checked again before each link, parent folders are created
 * one at a time (never through a link or junction), the clash policy is
 * applied by the case- and normalisation-blind name, and the name is given
 * with link(), which never replaces anything (docs/agent.md "Copy-mediation").
 */
import { linkSync, lstatSync, mkdirSync, renameSync, unlinkSync, type BigIntStats } from 'node:fs';
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { collisionKey, escapeForDisplay } from '../manifest/index.ts';
import { DESTINATION_PROBLEM_TEXT, destinationNameProblems, renamedCandidate, resolveInside, type PathFlavor } from './destination-path.ts';
import { AgentError, type FileRefusalCode } from './errors.ts';
import { fileIdentity, type StagedCopy } from './stage-file.ts';
import type { ClashPolicy } from './trust-store.ts';

/** A file the import linked into the destination, as a group's commit may have to take it back. */
export interface Placed {
  readonly finalPath: string;
  readonly folder: string;
  /** `dev:ino` of the file named: it is removed again only while that name still holds this file. */
  readonly identity: string;
}

/**
 * Takes a placed file's name back, only while the name still holds the file
 * the agent placed: a folder swapped for a link since then would otherwise
 * turn the unlink onto a file of the same name somewhere else.
 */
export async function removePlaced(placed: Placed): Promise<void> {
  if (identityAt(placed.finalPath) !== placed.identity) return;
  await unlink(placed.finalPath).catch(() => undefined);
}


/**
 * A folder's identity: device and inode (on Windows the volume serial and the
 * file id, which libuv reports in their place), as exact integers.
 */
interface FolderIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

/** The destination root as the import found it: its path and the identity every later check compares with. */
export interface DestinationRoot {
  readonly root: string;
  readonly identity: FolderIdentity;
}

/** Checks the destination root: absolute, an existing real folder (not a symlink or junction); records its identity. */
export async function checkDestinationRoot(destination: string): Promise<DestinationRoot> {
  const root = resolve(destination);
  let stats: BigIntStats;
  try {
    stats = await lstat(root, { bigint: true });
  } catch (cause) {
    throw new AgentError('DESTINATION_INVALID', `${root}: the destination folder does not exist or cannot be read (${(cause as Error).message}): create it or name another with --to`, { cause });
  }
  if (!stats.isDirectory()) throw new AgentError('DESTINATION_INVALID', `${root}: the destination is not a folder (or is a symbolic link or junction): name a real folder`);
  return { root, identity: { dev: stats.dev, ino: stats.ino } };
}


/** Where a staged file was placed, or why not. */
export type Placement =
  | { readonly ok: true; readonly finalPath: string; readonly folder: string; readonly relative: string }
  | { readonly ok: false; readonly outcome: 'refused' | 'skipped'; readonly code: FileRefusalCode; readonly reason: string };

/**
 * The destination's folder listings during one import: each folder is read
 * once, keyed by the case-insensitive, NFC/NFD-blind name (collisionKey), and
 * kept current with the import's own links and folders, instead of a listing
 * per file. link() still refuses an exact name that appeared meanwhile
 * (EEXIST, and on case-insensitive NTFS any case variant too), so a name
 * added by another program during the import is never overwritten.
 */
export class FolderNames {
  private readonly listings = new Map<string, Promise<Map<string, string> | null>>();
  /**
   * Folders checked to be real folders (lstat: not a link or junction) when this import first used them,
   * the destination root among them, with the identity every later check compares with (changedFolder).
   */
  readonly folders = new Map<string, FolderIdentity>();

  constructor(destination: DestinationRoot) {
    this.folders.set(destination.root, destination.identity);
  }

  private listing(dir: string): Promise<Map<string, string> | null> {
    let listing = this.listings.get(dir);
    if (!listing) {
      listing = readdir(dir).then(
        (names) => new Map(names.map((n) => [collisionKey(n), n])),
        (error: unknown) => {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
          this.listings.delete(dir); // not remembered: asked again next time
          throw error;
        },
      );
      this.listings.set(dir, listing);
    }
    return listing;
  }

  /** The existing entry in `dir` that is the same name as `name`, or null. */
  async find(dir: string, name: string): Promise<string | null> {
    return (await this.listing(dir))?.get(collisionKey(name)) ?? null;
  }

  /** Records a name the import itself created in `dir` (a linked file or a new folder). */
  async add(dir: string, name: string): Promise<void> {
    const listing = await this.listing(dir);
    if (listing) listing.set(collisionKey(name), name);
    else this.listings.delete(dir);
  }

  /** A folder the import just created: known to be empty. */
  created(dir: string): void {
    this.listings.set(dir, Promise.resolve(new Map()));
  }

  /** Forgets a folder's listing (another program changed it: read it again). */
  forget(dir: string): void {
    this.listings.delete(dir);
  }
}

/**
 * Which folder from the destination root down to `root/actual...` is no
 * longer the one this import recorded when it first used it (null: none).
 * Each level is lstat-ed, so a link or junction is not taken for a folder,
 * and must have the device and inode recorded: a folder swapped for a link
 * or junction, or moved away and replaced, at any depth, the root included,
 * is found (docs/agent.md "Copy-mediation").
 */
function changedFolder(names: FolderNames, root: string, actual: readonly string[]): string | null {
  let dir = root;
  for (let depth = 0; depth <= actual.length; depth++) {
    if (depth > 0) dir = join(dir, actual[depth - 1]!);
    const recorded = names.folders.get(dir);
    let stats: BigIntStats | undefined;
    try {
      stats = lstatSync(dir, { bigint: true, throwIfNoEntry: false });
    } catch {
      stats = undefined; // ENOTDIR, EACCES: not the folder it was
    }
    if (recorded === undefined || stats === undefined || !stats.isDirectory() || stats.dev !== recorded.dev || stats.ino !== recorded.ino) {
      return depth === 0 ? 'the destination folder' : escapeForDisplay(actual.slice(0, depth).join('/'));
    }
  }
  return null;
}

const folderChanged = (which: string): string =>
  `${which} at the destination is no longer the folder this import started with (moved, or replaced by a link or junction): nothing was written through it`;

type Parents = { ok: true; dir: string; actual: string[] } | { ok: false; code: 'DESTINATION_CLASH' | 'DESTINATION_UNSAFE'; reason: string };

/** Walks/creates the parent folders inside root, reusing an existing folder of the same name; refuses anything but real folders. */
async function ensureParents(names: FolderNames, root: string, folders: readonly string[]): Promise<Parents> {
  let dir = root;
  const actual: string[] = [];
  for (const folder of folders) {
    const existing = await names.find(dir, folder);
    const name = existing ?? folder;
    const next = join(dir, name);
    if (existing === null) {
      // Never make a folder through a link: every folder above must still be the one recorded.
      const changed = changedFolder(names, root, actual);
      if (changed !== null) return { ok: false, code: 'DESTINATION_UNSAFE', reason: folderChanged(changed) };
      try {
        mkdirSync(next);
        names.created(next);
        await names.add(dir, name);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        names.forget(dir); // made by someone else meanwhile
      }
    }
    if (!names.folders.has(next)) {
      const stats = lstatSync(next, { bigint: true });
      if (!stats.isDirectory()) return { ok: false, code: 'DESTINATION_CLASH', reason: `${escapeForDisplay([...actual, name].join('/'))} at the destination is not a folder` };
      names.folders.set(next, { dev: stats.dev, ino: stats.ino });
    }
    actual.push(name);
    dir = next;
  }
  return { ok: true, dir, actual };
}

/** The refusal or skip for a name already at the destination, under policy refuse or skip. */
export function clashResult(policy: 'refuse' | 'skip', there: string): Placement {
  return policy === 'refuse'
    ? { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: `${there} is already at the destination; policy: refuse (nothing is overwritten)` }
    : { ok: false, outcome: 'skipped', code: 'DESTINATION_CLASH', reason: `${there} is already at the destination; policy: skip (the existing file is kept)` };
}

/** The existing entry at a relative path (same name by case and normalisation), without creating anything. */
export async function existingAt(names: FolderNames, root: string, components: readonly string[]): Promise<string | null> {
  let dir = root;
  const actual: string[] = [];
  for (const component of components) {
    const found = await names.find(dir, component).catch(() => null);
    if (found === null) return null;
    actual.push(found);
    dir = join(dir, found);
  }
  return actual.join('/');
}

/** The identity (`dev:ino`) of what is at `path` now, not following a link; null when nothing can be read there. */
function identityAt(path: string): string | null {
  try {
    const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    return stats === undefined || !stats.isFile() ? null : fileIdentity(stats);
  } catch {
    return null;
  }
}

const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EXDEV', 'ENOSYS', 'EOPNOTSUPP', 'EINVAL']);

/**
 * Puts the verified staging file at its name under the clash policy, never
 * replacing anything: link() fails with EEXIST instead of overwriting, so a
 * file that appears between the check and the move is never clobbered.
 *
 * Runs inside the group commit, one file at a time, with synchronous calls
 * (each is quicker than an asynchronous call's round trip would be).
 * `relative` must have passed resolveInside already (importOne checks it).
 */
export async function placeFile(names: FolderNames, root: string, relative: string, staging: string, staged: StagedCopy, clash: ClashPolicy, flavor: PathFlavor): Promise<Placement> {
  const components = relative.split('/');
  const fileName = components.at(-1)!;
  const parents = await ensureParents(names, root, components.slice(0, -1));
  if (!parents.ok) return { ok: false, outcome: 'refused', code: parents.code, reason: parents.reason };
  for (let attempt = 0; attempt < 1000; attempt++) {
    let name = fileName;
    const existing = await names.find(parents.dir, fileName);
    if (existing !== null) {
      const there = escapeForDisplay([...parents.actual, existing].join('/'));
      if (clash === 'refuse') return clashResult('refuse', there);
      if (clash === 'skip') return clashResult('skip', there);
      name = '';
      for (let n = 1 + attempt; n < 1000; n++) {
        const candidate = renamedCandidate(fileName, n);
        if (destinationNameProblems(candidate).length === 0 && (await names.find(parents.dir, candidate)) === null) {
          name = candidate;
          break;
        }
      }
      if (name === '') return { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: 'no free "name (n)" left for a renamed copy' };
    }
    const rel = [...parents.actual, name].join('/');
    // `relative` itself was resolved by the caller; a name that differs (existing folders' spelling, a rename) is checked here.
    const checked = rel === relative ? { ok: true as const } : resolveInside(root, rel, flavor);
    if (!checked.ok) return { ok: false, outcome: 'refused', code: 'DESTINATION_UNSAFE', reason: checked.problems.map((p) => (p in DESTINATION_PROBLEM_TEXT ? DESTINATION_PROBLEM_TEXT[p as keyof typeof DESTINATION_PROBLEM_TEXT] : p)).join('; ') };
    const finalPath = join(parents.dir, name);
    // Each folder was recorded when first used; check the whole chain again now, so a folder swapped for a
    // link or junction during a long import, at any depth, is refused instead of written through.
    const changed = changedFolder(names, root, parents.actual);
    if (changed !== null) return { ok: false, outcome: 'refused', code: 'DESTINATION_UNSAFE', reason: folderChanged(changed) };
    try {
      linkSync(staging, finalPath); // the staging name is removed by the caller
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') {
        names.forget(parents.dir); // appeared meanwhile: read the folder again and apply the policy again
        continue;
      }
      if (!NO_LINK.has(code)) throw error;
      // Volumes without hard links (FAT): check, then rename; docs/agent.md names this narrow race.
      try {
        lstatSync(finalPath);
        names.forget(parents.dir);
        continue;
      } catch (missing) {
        if ((missing as NodeJS.ErrnoException).code !== 'ENOENT') throw missing;
      }
      renameSync(staging, finalPath);
    }
    // The name must hold the file that was written and hashed: a staged file swapped before the link is taken back.
    if (identityAt(finalPath) !== staged.identity) {
      const moved = changedFolder(names, root, parents.actual);
      if (moved !== null) {
        // The name may have gone through a link elsewhere: nothing is removed by a path that now leads elsewhere.
        return {
          ok: false, outcome: 'refused', code: 'DESTINATION_UNSAFE',
          reason: `${moved} at the destination changed while the file was named (moved, or replaced by a link or junction): a copy may be where it leads and was not removed; check the destination and who can write to it`,
        };
      }
      try {
        unlinkSync(finalPath); // the name this link just made, holding bytes that were never hashed
      } catch {
        // already gone
      }
      return { ok: false, outcome: 'refused', code: 'COPY_FAILED', reason: 'the staged copy was replaced before it was named (not the file written and hashed): it was removed again; check who can write to the destination' };
    }
    await names.add(parents.dir, name);
    return { ok: true, finalPath, folder: parents.dir, relative: rel }; // the folder is fsynced with the file's record (DecisionLog)
  }
  return { ok: false, outcome: 'refused', code: 'DESTINATION_CLASH', reason: 'the destination name kept changing' };
}
