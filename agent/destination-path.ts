/**
 * Where a file from a drive may be written on the HMI. The manifest's name
 * rules (manifest/names.ts: reserved device names, stream syntax, trailing
 * dots and spaces, NFC, case collisions) already hold for every subject; this
 * adds what only the destination side knows: the path flavour of the HMI
 * (path.win32 on Windows, path.posix elsewhere), the full-path length limit,
 * 8.3 short-name aliases, and a containment check of the resolved path.
 * Every check is re-done here, not trusted from the manifest: this is the
 * last gate before the HMI's disk.
 */
import { posix, win32 } from 'node:path';
import { collisionKey, pathProblems, type NameProblem } from '../manifest/index.ts';

export type PathFlavor = 'win32' | 'posix';

export const hostFlavor = (): PathFlavor => (process.platform === 'win32' ? 'win32' : 'posix');

/**
 * Longest full destination path accepted on Windows, in UTF-16 code units:
 * MAX_PATH (260) less the terminating NUL. Node itself would reach longer
 * paths through the \\?\ prefix, but Explorer and most HMI software cannot
 * open them, so longer paths are refused rather than created (docs/agent.md).
 */
export const WINDOWS_MAX_PATH = 259;
export const POSIX_MAX_PATH = 4095; // bytes, PATH_MAX less the NUL

export type DestinationProblem =
  | NameProblem
  /** UNC (\\server\share), device (\\.\, \\?\) or rooted path. */
  | 'UNC_OR_DEVICE_PATH'
  /** An 8.3 short-name form (NAME~1.EXT) that can alias another file on NTFS. */
  | 'SHORT_NAME_ALIAS'
  /** The full destination path is longer than the HMI's software can open. */
  | 'DESTINATION_TOO_LONG'
  /** The resolved path is not strictly inside the destination folder. */
  | 'ESCAPES_DESTINATION';

export const DESTINATION_PROBLEM_TEXT: Record<Exclude<DestinationProblem, NameProblem>, string> = {
  UNC_OR_DEVICE_PATH: 'the name is a UNC or device path (\\\\server\\share, \\\\.\\, \\\\?\\)',
  SHORT_NAME_ALIAS: 'a name component looks like an 8.3 short name (NAME~1.EXT) and could alias another file',
  DESTINATION_TOO_LONG: `the destination path would be longer than ${WINDOWS_MAX_PATH} characters`,
  ESCAPES_DESTINATION: 'the path would leave the destination folder',
};

// NTFS generates 8.3 aliases like PROGRA~1 or ABCDEF~12.TXT; a name of that shape could open a different file.
const SHORT_NAME = /~[0-9]+(\.[^.]*)?$/u;

/** The agent's staging folder inside the destination: no file may be imported into it. */
export const STAGING_FOLDER = '.portcullis-staging';

/** Problems with a relative drive path as a destination name; empty when it may be created. */
export function destinationNameProblems(relative: string): DestinationProblem[] {
  const problems = new Set<DestinationProblem>(pathProblems(relative));
  if (collisionKey(relative.split(/[\\/]/u)[0] ?? '') === collisionKey(STAGING_FOLDER)) problems.add('RESERVED_FOLDER');
  if (/^[\\/]{2}/u.test(relative) || /^[\\/]/u.test(relative)) problems.add('UNC_OR_DEVICE_PATH');
  for (const component of relative.split(/[\\/]/u)) {
    if (SHORT_NAME.test(component)) problems.add('SHORT_NAME_ALIAS');
  }
  return [...problems];
}

export type ResolvedDestination =
  | { readonly ok: true; readonly path: string; readonly components: readonly string[] }
  | { readonly ok: false; readonly problems: readonly DestinationProblem[] };

/**
 * Resolves a relative drive path (POSIX separators) inside `root` with the
 * given flavour's semantics and proves the result stays inside: the name
 * rules above, then resolve, then relative() back to the root must be a plain
 * descent. `root` must already be absolute in that flavour.
 */
export function resolveInside(root: string, relative: string, flavor: PathFlavor): ResolvedDestination {
  const path = flavor === 'win32' ? win32 : posix;
  const problems = destinationNameProblems(relative);
  if (problems.length > 0) return { ok: false, problems };
  if (!path.isAbsolute(root)) return { ok: false, problems: ['ESCAPES_DESTINATION'] };
  const components = relative.split('/');
  const base = path.resolve(root);
  const target = path.resolve(base, ...components);
  const back = path.relative(base, target);
  const escapes = back === '' || back === '..' || back.startsWith(`..${path.sep}`) || path.isAbsolute(back);
  // On Windows, relative() compares case-insensitively; also require the textual prefix.
  const prefix = base.endsWith(path.sep) ? base : base + path.sep;
  const inside = flavor === 'win32' ? target.toUpperCase().startsWith(prefix.toUpperCase()) : target.startsWith(prefix);
  if (escapes || !inside) return { ok: false, problems: ['ESCAPES_DESTINATION'] };
  const limit = flavor === 'win32' ? WINDOWS_MAX_PATH : POSIX_MAX_PATH;
  const length = flavor === 'win32' ? target.length : Buffer.byteLength(target);
  if (length > limit) return { ok: false, problems: ['DESTINATION_TOO_LONG'] };
  return { ok: true, path: target, components };
}

/** `name (1).ext`, `name (2).ext`, ...: the clash policy "rename" (the extension is everything after the first dot, like Explorer keeps .tar.gz). */
export function renamedCandidate(name: string, n: number): string {
  const dot = name.indexOf('.', 1);
  return dot === -1 ? `${name} (${n})` : `${name.slice(0, dot)} (${n})${name.slice(dot)}`;
}

/** Whether two names are the same entry on a case-insensitive, normalising-aware view (NFC/NFD, case). */
export function sameDestinationName(a: string, b: string): boolean {
  return collisionKey(a) === collisionKey(b);
}
