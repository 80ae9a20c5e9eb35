/**
 * Which names on a FAT or exFAT volume a Linux folder can hold as themselves.
 * Shared by the sandboxed volume reader (it extracts only those) and the
 * kiosk (it derives the same split from the reader's listing and checks the
 * extraction against it): no other imports, so the reader's child loads little.
 */
import type { VolumeEntry } from './volume.ts';

/** Why a name on the volume cannot appear as itself in a Linux folder. */
export type UnrepresentableReason =
  | 'NAME_HAS_SLASH' // "/" is a path separator on Linux
  | 'NAME_HAS_NUL'
  | 'NAME_IS_DOT' // "." or ".." would point elsewhere
  | 'NAME_NOT_UNICODE' // an unpaired UTF-16 surrogate has no UTF-8 form
  | 'NAME_TOO_LONG' // more than 255 bytes in UTF-8 (NAME_MAX)
  | 'NAME_DUPLICATE' // the same name twice in one folder
  | 'PARENT_UNREPRESENTABLE';

export interface UnrepresentableEntry {
  readonly names: readonly string[];
  readonly kind: 'file' | 'directory';
  readonly reason: UnrepresentableReason;
}

/** Why `name` cannot be a Linux file name as it is, or null. */
export function hostNameProblem(name: string): Exclude<UnrepresentableReason, 'NAME_DUPLICATE' | 'PARENT_UNREPRESENTABLE'> | null {
  if (name.includes('/')) return 'NAME_HAS_SLASH';
  if (name.includes('\u0000')) return 'NAME_HAS_NUL';
  if (name === '.' || name === '..' || name === '') return 'NAME_IS_DOT';
  if (!name.isWellFormed()) return 'NAME_NOT_UNICODE';
  if (Buffer.byteLength(name, 'utf8') > 255) return 'NAME_TOO_LONG';
  return null;
}

/** Splits entries into those a host folder can hold as themselves and those it cannot. */
export function classifyEntries<E extends Pick<VolumeEntry, 'names' | 'kind'>>(entries: readonly E[]): { representable: E[]; unrepresentable: UnrepresentableEntry[] } {
  const representable: E[] = [];
  const unrepresentable: UnrepresentableEntry[] = [];
  const blockedFolders = new Set<string>();
  const seen = new Set<string>();
  for (const entry of entries) {
    const parent = JSON.stringify(entry.names.slice(0, -1));
    const self = JSON.stringify(entry.names);
    const name = entry.names[entry.names.length - 1] ?? '';
    let reason: UnrepresentableReason | null = blockedFolders.has(parent) ? 'PARENT_UNREPRESENTABLE' : hostNameProblem(name);
    if (reason === null && seen.has(self)) reason = 'NAME_DUPLICATE';
    seen.add(self);
    if (reason === null) {
      representable.push(entry);
    } else {
      unrepresentable.push({ names: entry.names, kind: entry.kind, reason });
      if (entry.kind === 'directory') blockedFolders.add(self);
    }
  }
  return { representable, unrepresentable };
}
