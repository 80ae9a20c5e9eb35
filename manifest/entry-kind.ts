/**
 * What a directory entry on a drive is, from its lstat. Shared by the
 * kiosk's and the agent's walks, which both refuse anything but regular
 * files and folders. Pure: takes the stat result, touches nothing.
 */
export type EntryKind = 'file' | 'directory' | 'symlink' | 'device' | 'fifo' | 'socket' | 'other';

/** The type tests of node:fs Stats (from lstat: a symbolic link is itself, never its target). */
export interface StatKind {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}

export function entryKindOf(stats: StatKind): EntryKind {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isBlockDevice() || stats.isCharacterDevice()) return 'device';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  return 'other';
}
