/**
 * Reads a file an administrator names on the command line or in the watch
 * configuration (trust store, configuration, key, drive identity, log). Only
 * a regular file is read: a named pipe would block the open and then the
 * read until a writer came (a synchronous open holds the whole thread, signal
 * handlers included), and a folder or device is not the file asked for. The
 * path may be a symlink (an administrator's choice); what it leads to is
 * checked, opened without blocking and checked again by fstat. A file larger
 * than the caller's bound is refused, never read whole.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { entryKindOf } from '../manifest/index.ts';

/** An error with a reason a person can act on and, where the system gave one, its errno code (ENOENT, EACCES). */
export class LocalFileError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'LocalFileError';
  }
}

const KIND_TEXT = { directory: 'a folder', symlink: 'a symbolic link', device: 'a device', fifo: 'a named pipe', socket: 'a socket', other: 'a special file' } as const;

function notRegular(stats: Stats): LocalFileError | null {
  const kind = entryKindOf(stats);
  return kind === 'file' ? null : new LocalFileError(`is ${KIND_TEXT[kind]}, not a file`, 'ENOTREG');
}

function systemError(error: unknown): LocalFileError {
  const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
  const text = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' || code === 'EPERM' ? 'cannot be read (permission denied)' : code === 'ENOTDIR' ? 'does not exist (a part of the path is not a folder)' : `cannot be read (${code})`;
  return new LocalFileError(text, code, { cause: error });
}

/** The file's bytes; throws LocalFileError ("does not exist", "is a folder, not a file", "is larger than ..."). */
export function readLocalFile(path: string, maxBytes: number): Buffer {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw systemError(error);
  }
  const before = notRegular(stats);
  if (before) throw before;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw systemError(error);
  }
  try {
    const opened = fstatSync(fd);
    const after = notRegular(opened);
    if (after) throw after;
    if (opened.size > maxBytes) throw new LocalFileError(`is larger than ${maxBytes} bytes (${opened.size})`, 'EFBIG');
    const bytes = Buffer.allocUnsafe(opened.size + 1); // one byte more than fstat said: a file that grows is seen
    let total = 0;
    while (total < bytes.length) {
      const n = readSync(fd, bytes, total, bytes.length - total, null);
      if (n === 0) break;
      total += n;
    }
    if (total > opened.size) throw new LocalFileError('changed while it was read: try again', 'EAGAIN');
    return bytes.subarray(0, total);
  } catch (error) {
    throw error instanceof LocalFileError ? error : systemError(error);
  } finally {
    closeSync(fd);
  }
}
