/**
 * What the FAT and exFAT readers have in common: a walk of the directory tree
 * with names exactly as stored (UTF-16 code units in a JS string, unpaired
 * surrogates and control characters included) and attributes the host's own
 * filesystem cannot show.
 */

import { MediaError } from './errors.ts';

export type FilesystemKind = 'fat12' | 'fat16' | 'fat32' | 'exfat';

export interface FileAttributes {
  readonly readonly: boolean;
  readonly hidden: boolean;
  readonly system: boolean;
  readonly archive: boolean;
}

export interface VolumeEntry {
  /** Names from the root down, exactly as the volume stores them. */
  readonly names: readonly string[];
  readonly kind: 'file' | 'directory';
  /** File length in bytes; 0 for directories. */
  readonly size: number;
  readonly attributes: FileAttributes;
  /** FAT 8.3 alias ("LONGFI~1.TXT"); absent on exFAT. */
  readonly shortName?: string;
}

/** Bounds on a walk of a hostile volume (DESIGN: bound file count and depth). */
export interface WalkLimits {
  maxEntries: number; // files and folders together
  maxDepth: number; // folders below the root
}

export const DEFAULT_WALK_LIMITS: WalkLimits = {
  maxEntries: 100_000,
  maxDepth: 64,
};

/** A volume opened by one of the readers. */
export interface VolumeReader<Entry extends VolumeEntry = VolumeEntry> {
  readonly filesystem: FilesystemKind;
  /** Bytes per allocation unit. */
  readonly clusterSize: number;
  /** Every file and folder, parents before children, in on-disk order. */
  walk(limits?: Partial<WalkLimits>): Entry[];
  /** A file's bytes in order, in chunks of at most one cluster run. */
  fileChunks(entry: Entry): Generator<Uint8Array>;
  /** Free space counted from the allocation structures (not a cached hint). */
  freeBytes(): number;
}

/** Joins names into the relative POSIX path the kiosk and manifest use. */
export function entryPath(entry: Pick<VolumeEntry, 'names'>): string {
  return entry.names.join('/');
}

export const NO_ATTRIBUTES: FileAttributes = { readonly: false, hidden: false, system: false, archive: false };

/** Reads a whole file into memory (small files: manifests, receipts). */
export function readWholeFile<Entry extends VolumeEntry>(volume: VolumeReader<Entry>, entry: Entry): Uint8Array {
  const out = new Uint8Array(entry.size);
  let at = 0;
  for (const chunk of volume.fileChunks(entry)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Who owns each cluster, for one walk of a volume: every cluster of a file or
 * folder may belong to it alone (FAT and exFAT specifications: a chain is one
 * file's). A cluster claimed twice is a cross-link, MEDIA_CORRUPT: two files
 * sharing one chain would let a small image list many large files (33 MiB
 * extracted as 440 MB), and a folder running into another's clusters lists
 * the same entries twice. Holds one bit per cluster (at most 128 Mi clusters
 * get this far: the FAT that maps them is bounded at 512 MiB).
 */
export function createClusterClaims(lastCluster: number): (clusters: Iterable<number>, what: string) => void {
  const owned = new Uint8Array((lastCluster >>> 3) + 1);
  return (clusters, what) => {
    for (const cluster of clusters) {
      const at = cluster >>> 3;
      const bit = 1 << (cluster & 7);
      const byte = owned[at] ?? 0;
      if ((byte & bit) !== 0) throw new MediaError('MEDIA_CORRUPT', `${what}: cluster ${cluster} belongs to another file or folder too (cross-linked)`);
      owned[at] = byte | bit;
    }
  };
}

/**
 * Lists a volume's tree depth-first within `limits`, for both readers: a
 * folder deeper than maxDepth or more than maxEntries entries is
 * MEDIA_LIMIT_EXCEEDED, and a folder whose first cluster was already listed
 * (a loop a hostile image can build) is MEDIA_CORRUPT.
 */
export function walkBounded<E extends VolumeEntry & { readonly firstCluster: number }>(
  rootCluster: number,
  children: (folder: E | undefined) => Iterable<E>,
  limits: Partial<WalkLimits> = {},
): E[] {
  const { maxEntries, maxDepth } = { ...DEFAULT_WALK_LIMITS, ...limits };
  const out: E[] = [];
  const seen = new Set<number>([rootCluster]);
  const visit = (folder: E | undefined): void => {
    for (const entry of children(folder)) {
      if (entry.names.length > maxDepth) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `folders nest deeper than ${maxDepth}`);
      out.push(entry);
      if (out.length > maxEntries) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `more than ${maxEntries} entries`);
      if (entry.kind === 'directory') {
        if (seen.has(entry.firstCluster)) {
          throw new MediaError('MEDIA_CORRUPT', `folder ${entry.names.join('/')} loops back to cluster ${entry.firstCluster}`);
        }
        seen.add(entry.firstCluster);
        visit(entry);
      }
    }
  };
  visit(undefined);
  return out;
}
