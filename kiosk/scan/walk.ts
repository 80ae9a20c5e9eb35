/**
 * The safe walk of a mounted drive: lstat only, never follows a symlink,
 * reads names as raw bytes (a name that is not UTF-8 is still reported, not
 * lost), and stops at the policy's bounds. Yields one entry per thing found;
 * the caller decides what may pass.
 */
import { lstat, readdir } from 'node:fs/promises';
import { entryKindOf, MANIFEST_FOLDER, nameFromBytes, type EntryKind } from '../../manifest/index.ts';

export type { EntryKind } from '../../manifest/index.ts';

export interface WalkEntry {
  /** Relative POSIX path as decoded text, or null when a name is not UTF-8. */
  readonly path: string | null;
  /** Safe to show: escaped, and with invalid UTF-8 bytes as \xNN. */
  readonly display: string;
  /** Absolute path as raw bytes, for opening files whose names are not UTF-8. */
  readonly rawPath: Buffer;
  readonly kind: EntryKind;
  readonly size: number; // bytes, from lstat
  readonly depth: number; // 1 for entries in the root
  /** Identity of the file the walk saw, to check that the file opened later is the same one. */
  readonly ino: number;
  readonly dev: number;
}

export interface WalkLimits {
  readonly maxEntries: number; // files, folders and other entries in all
  readonly maxDepth: number; // folder levels below the root
  readonly maxTotalBytes: number; // bytes of regular files in all
}

export type WalkStop =
  | { readonly code: 'LIMIT_EXCEEDED'; readonly detail: string }
  | { readonly code: 'WALK_ERROR'; readonly detail: string };

export interface WalkEvents {
  /** Entries under the root's `.portcullis/`, reported apart: never subjects. */
  readonly onManifestFolderEntry?: (entry: WalkEntry) => void;
  /** A folder deeper than maxDepth: its content is not walked. */
  readonly onTooDeep?: (entry: WalkEntry) => void;
  /** A folder that could not be read. */
  readonly onUnreadable?: (entry: WalkEntry, error: Error) => void;
}

const SLASH = Buffer.from('/');

/**
 * Walks `root` depth-first in byte order of names. Returns when done or when
 * a drive-level bound is crossed (then `stop` is set and the walk is partial:
 * the drive must be rejected).
 */
export async function* walkDrive(
  root: string,
  limits: WalkLimits,
  events: WalkEvents = {},
  signal?: AbortSignal,
): AsyncGenerator<WalkEntry, WalkStop | null> {
  let entries = 0;
  let bytes = 0;
  const rootRaw = Buffer.from(root);
  // Stack of folders to read: raw absolute path, raw relative path, depth.
  const stack: Array<{ abs: Buffer; rel: Buffer; depth: number }> = [{ abs: rootRaw, rel: Buffer.alloc(0), depth: 0 }];
  while (stack.length > 0) {
    signal?.throwIfAborted();
    const dir = stack.pop()!;
    let names: Buffer[];
    try {
      names = await readdir(dir.abs, { encoding: 'buffer' });
    } catch (error) {
      if (dir.depth === 0) return { code: 'WALK_ERROR', detail: `cannot read the drive's root folder: ${(error as Error).message}` };
      const entry = await describe(dir.abs, dir.rel, dir.depth);
      events.onUnreadable?.(entry, error as Error);
      continue;
    }
    names.sort((a, b) => Buffer.compare(a, b));
    const subfolders: Array<{ abs: Buffer; rel: Buffer; depth: number }> = [];
    for (const name of names) {
      entries++;
      if (entries > limits.maxEntries) {
        return { code: 'LIMIT_EXCEEDED', detail: `more than ${limits.maxEntries} files and folders on the drive, the policy's limits.maxEntries` };
      }
      const abs = Buffer.concat([dir.abs, SLASH, name]);
      const rel = dir.rel.length === 0 ? name : Buffer.concat([dir.rel, SLASH, name]);
      const entry = await describe(abs, rel, dir.depth + 1);
      const inManifestFolder = dir.depth === 0 ? name.toString('latin1').toLowerCase() === MANIFEST_FOLDER : isUnderManifestFolder(rel);
      if (inManifestFolder) {
        events.onManifestFolderEntry?.(entry);
        if (entry.kind === 'directory' && entry.depth < limits.maxDepth) subfolders.push({ abs, rel, depth: dir.depth + 1 });
        continue;
      }
      if (entry.kind === 'directory') {
        if (entry.depth >= limits.maxDepth) events.onTooDeep?.(entry);
        else subfolders.push({ abs, rel, depth: dir.depth + 1 });
        yield entry;
        continue;
      }
      if (entry.kind === 'file') {
        bytes += entry.size;
        if (bytes > limits.maxTotalBytes) {
          return { code: 'LIMIT_EXCEEDED', detail: `more than ${limits.maxTotalBytes} bytes of files on the drive, the policy's limits.maxTotalBytes` };
        }
      }
      yield entry;
    }
    // Reverse so the stack pops folders in name order.
    for (const sub of subfolders.reverse()) stack.push(sub);
  }
  return null;
}

function isUnderManifestFolder(rel: Buffer): boolean {
  const first = rel.subarray(0, rel.indexOf(SLASH) === -1 ? rel.length : rel.indexOf(SLASH));
  return first.toString('latin1').toLowerCase() === MANIFEST_FOLDER;
}

async function describe(abs: Buffer, rel: Buffer, depth: number): Promise<WalkEntry> {
  const stats = await lstat(abs);
  const name = nameFromBytes(rel);
  return {
    path: name.text,
    display: name.display,
    rawPath: abs,
    kind: entryKindOf(stats),
    size: stats.isFile() ? stats.size : 0,
    depth,
    ino: stats.ino,
    dev: stats.dev,
  };
}
