/**
 * The agent's walk of a drive: lstat only (a symlink is reported, never
 * followed), names read as raw bytes (a name that is not UTF-8 is reported
 * escaped, never lost or "fixed"), bounded in entry count and depth, and
 * confined to the drive's own device. It only lists; what may pass is
 * decided against the manifest (drive-check.ts).
 */
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { displayNameBytes, entryKindOf, MANIFEST_FOLDER, nameFromBytes, type EntryKind } from '../manifest/index.ts';

export type { EntryKind } from '../manifest/index.ts';

export interface DriveEntry {
  /** Relative POSIX path as text, or null when a name is not UTF-8. */
  readonly path: string | null;
  /** Safe to show and log: escaped, invalid UTF-8 bytes as \xNN. */
  readonly display: string;
  /** Absolute path as raw bytes, to open names that are not UTF-8. */
  readonly rawPath: Buffer;
  readonly kind: EntryKind;
  readonly size: number; // bytes, from lstat (0 unless a regular file)
  readonly dev: number;
  readonly ino: number;
  /** Under the drive's .portcullis folder (any case). */
  readonly inManifestFolder: boolean;
}

export interface WalkLimits {
  readonly maxEntries: number; // files, folders and other entries in all
  readonly maxDepth: number; // folder levels below the root
}

/** Bounds for HMI drives: the manifest's own limits (100 000 subjects, 64 levels) with headroom for folders. */
export const DEFAULT_WALK_LIMITS: WalkLimits = { maxEntries: 250_000, maxDepth: 64 };

export type WalkResult =
  | { readonly ok: true; readonly entries: DriveEntry[]; readonly rootDev: number }
  | { readonly ok: false; readonly code: 'DRIVE_LIMIT_EXCEEDED' | 'DRIVE_UNREADABLE'; readonly reason: string };

const SEP = Buffer.from('/');

/** lstat calls under way at once: one at a time, a folder of 20 000 entries took a second of round trips through libuv's thread pool. */
const LSTAT_CONCURRENCY = 32;

/** lstat of each path, in order; a failure is returned in its place (the walk reports the first one by name order). */
async function lstatAll(paths: readonly Buffer[]): Promise<Array<Stats | Error>> {
  const out = new Array<Stats | Error>(paths.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      out[i] = await lstat(paths[i]!).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    }
  };
  await Promise.all(Array.from({ length: Math.min(LSTAT_CONCURRENCY, paths.length) }, worker));
  return out;
}

/** Walks `root` breadth-first in byte order of names; stops at the first bound crossed (the drive is then refused). */
export async function walkDrive(root: string, limits: WalkLimits = DEFAULT_WALK_LIMITS, signal?: AbortSignal): Promise<WalkResult> {
  let rootStats: Stats;
  try {
    rootStats = await lstat(root);
  } catch (error) {
    return { ok: false, code: 'DRIVE_UNREADABLE', reason: `cannot read the drive (${(error as Error).message})` };
  }
  if (!rootStats.isDirectory()) return { ok: false, code: 'DRIVE_UNREADABLE', reason: 'the drive path is not a folder (or is a symlink)' };
  const entries: DriveEntry[] = [];
  let count = 0;
  const queue: Array<{ abs: Buffer; rel: Buffer; depth: number; inManifest: boolean }> = [
    { abs: Buffer.from(root), rel: Buffer.alloc(0), depth: 0, inManifest: false },
  ];
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const dir = queue.shift()!;
    let names: Buffer[];
    try {
      names = await readdir(dir.abs, { encoding: 'buffer' });
    } catch (error) {
      return { ok: false, code: 'DRIVE_UNREADABLE', reason: `cannot read folder ${displayNameBytes(dir.rel) || '(root)'} (${(error as Error).message})` };
    }
    names.sort((a, b) => Buffer.compare(a, b));
    if (count + names.length > limits.maxEntries) {
      return { ok: false, code: 'DRIVE_LIMIT_EXCEEDED', reason: `more than ${limits.maxEntries} files and folders on the drive` };
    }
    count += names.length;
    const paths = names.map((name) => Buffer.concat([dir.abs, SEP, name]));
    const looked = await lstatAll(paths);
    for (const [i, name] of names.entries()) {
      const abs = paths[i]!;
      const rel = dir.rel.length === 0 ? name : Buffer.concat([dir.rel, SEP, name]);
      const stats = looked[i]!;
      if (stats instanceof Error) {
        return { ok: false, code: 'DRIVE_UNREADABLE', reason: `cannot read ${displayNameBytes(rel)} (${stats.message})` };
      }
      // Everything on the drive is on the drive's own device: anything else is a folder that leads off it
      // (another volume mounted there, or a folder swapped for a link while the drive was listed).
      if (stats.dev !== rootStats.dev) {
        return { ok: false, code: 'DRIVE_UNREADABLE', reason: `${displayNameBytes(rel)} is on another device than the drive (a volume mounted in it, or a folder swapped for a link while it was read): the drive is refused whole` };
      }
      const kind = entryKindOf(stats);
      const inManifest = dir.inManifest || (dir.depth === 0 && name.toString('latin1').toLowerCase() === MANIFEST_FOLDER);
      if (kind === 'directory') {
        if (dir.depth + 1 >= limits.maxDepth) {
          return { ok: false, code: 'DRIVE_LIMIT_EXCEEDED', reason: `folders nested deeper than ${limits.maxDepth} levels at ${displayNameBytes(rel)}` };
        }
        queue.push({ abs, rel, depth: dir.depth + 1, inManifest });
      }
      const shown = nameFromBytes(rel);
      entries.push({
        path: shown.text,
        display: shown.display,
        rawPath: abs,
        kind,
        size: kind === 'file' ? stats.size : 0,
        dev: stats.dev,
        ino: stats.ino,
        inManifestFolder: inManifest,
      });
    }
  }
  return { ok: true, entries, rootDev: rootStats.dev };
}
