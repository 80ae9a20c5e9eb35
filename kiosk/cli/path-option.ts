/**
 * Paths a person names on the command line or in the kiosk config (--out,
 * --dir, --work-dir, --rules, --watch, ...), checked before anything starts,
 * so a typo is one line with a stable code and what to do, never a stack
 * trace, a scan that starts its engines first, or a folder made in the wrong
 * place. Folders are made one level at a time: Node's recursive mkdir loops
 * forever where the kernel answers ENOENT for a parent that exists (/proc).
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { displayText, PortcullisError } from '../../manifest/index.ts';

export type PathErrorCode = 'PATH_MISSING' | 'PATH_NOT_A_FOLDER' | 'PATH_UNWRITABLE';
export class PathError extends PortcullisError<PathErrorCode> {}

const shown = (path: string): string => displayText(path);

function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code ?? e.message;
}

async function statOrNull(path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw error;
  }
}

/** A folder that must already exist (`what` names the option, e.g. "--work-dir"). */
export async function requireFolder(path: string, what: string): Promise<void> {
  const info = await statOrNull(path).catch((error: unknown) => {
    throw new PathError('PATH_MISSING', `${what} ${shown(path)}: cannot be read (${reason(error)}): check the path and its permissions`, { cause: error });
  });
  if (!info) throw new PathError('PATH_MISSING', `${what} ${shown(path)}: no such folder: check the path, or create the folder first`);
  if (!info.isDirectory()) throw new PathError('PATH_NOT_A_FOLDER', `${what} ${shown(path)}: is a file, not a folder: name a folder`);
}

/**
 * A folder the command may make: kept when it exists, else made with its
 * missing parents, each new one with `mode`. Refuses a file at the path
 * (PATH_NOT_A_FOLDER) and a place where nothing can be made (PATH_UNWRITABLE).
 */
export async function makeFolder(path: string, what: string, mode = 0o700): Promise<void> {
  const target = resolve(path);
  const missing: string[] = [];
  let existing: string | null = null;
  for (let p = target; ; p = dirname(p)) {
    const info = await statOrNull(p).catch((error: unknown) => {
      throw new PathError('PATH_UNWRITABLE', `${what} ${shown(path)}: ${shown(p)} cannot be read (${reason(error)}): choose another folder`, { cause: error });
    });
    if (info) {
      if (!info.isDirectory()) {
        if (p === target) throw new PathError('PATH_NOT_A_FOLDER', `${what} ${shown(path)}: is a file, not a folder: name a folder (it is made when missing)`);
        throw new PathError('PATH_UNWRITABLE', `${what} ${shown(path)}: cannot be made: ${shown(p)} is a file, not a folder: choose another folder`);
      }
      existing = p;
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break;
  }
  if (existing === null) throw new PathError('PATH_UNWRITABLE', `${what} ${shown(path)}: no part of it exists: choose another folder`);
  for (const p of missing.reverse()) {
    try {
      await mkdir(p, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && (await statOrNull(p))?.isDirectory()) continue; // made meanwhile
      throw new PathError('PATH_UNWRITABLE', `${what} ${shown(path)}: cannot make ${shown(p)} (${reason(error)}): choose a folder this account can write`, { cause: error });
    }
  }
}
