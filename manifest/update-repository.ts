/**
 * The offline update repository's layout: the contract between the publisher
 * (`portcullis-update build`), the kiosk (`update import`) and the HMI agent
 * (`trust update`). A TUF repository (theupdateframework.io spec 1.0) carried
 * on a drive or in a folder:
 *
 *   <repo>/metadata/N.root.json, timestamp.json, N.snapshot.json, N.targets.json
 *   <repo>/targets/<folder>/<sha256>.<name>        (consistent snapshots)
 *
 * Which target paths exist and what each one is, and ClamAV's database header
 * (the first 512 bytes of a .cvd/.cld/.cud), live here. No I/O.
 */

import { componentProblems } from './names.ts';

/** The repository's two folders, relative to its root. */
export const UPDATE_METADATA_FOLDER = 'metadata';
export const UPDATE_TARGETS_FOLDER = 'targets';

/** The TUF roles every repository has, each with its own Ed25519 key. */
export const UPDATE_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type UpdateRole = (typeof UPDATE_ROLES)[number];

/** ClamAV's databases as freshclam fetches them. */
export const CLAMAV_DATABASES = ['main', 'daily', 'bytecode'] as const;
export type ClamavDatabaseName = (typeof CLAMAV_DATABASES)[number];
/** .cvd: signed by Cisco; .cld: freshclam's incrementally updated copy (its .info signed); .cud: unsigned (sigtool --unsigned). */
export const CLAMAV_CONTAINERS = ['cvd', 'cld', 'cud'] as const;
export type ClamavContainer = (typeof CLAMAV_CONTAINERS)[number];

/** What one target of the repository is, from its path. */
export type UpdateTarget =
  | { readonly kind: 'clamav'; readonly path: string; readonly database: ClamavDatabaseName; readonly container: ClamavContainer; readonly file: string }
  | { readonly kind: 'yara'; readonly path: string; readonly file: string }
  | { readonly kind: 'allowlist'; readonly path: string; readonly file: string }
  | { readonly kind: 'policy'; readonly path: string; readonly file: string }
  | { readonly kind: 'hmi-trust'; readonly path: string; readonly file: string };

export type UpdatePartKind = UpdateTarget['kind'];

/** The parts a set can carry, in the order status shows them. */
export const UPDATE_PARTS: readonly UpdatePartKind[] = ['clamav', 'yara', 'allowlist', 'policy', 'hmi-trust'];

// File names a kiosk keeps in its own folders: lowercase, no path, no leading dot.
const PLAIN_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The policy and the HMI trust store each have one fixed target path. */
export const POLICY_TARGET = 'policy/policy.json';
export const HMI_TRUST_TARGET = 'hmi/trust.json';

/**
 * What the target at `path` is, or null for a path outside the layout (the
 * kiosk and the agent refuse a repository holding one: a newer publisher's
 * format needs a newer reader).
 */
export function classifyTarget(path: string): UpdateTarget | null {
  const slash = path.indexOf('/');
  if (slash < 1 || path.indexOf('/', slash + 1) !== -1) return null;
  const folder = path.slice(0, slash);
  const file = path.slice(slash + 1);
  // A plain name that is also no Windows device name (con.yar, nul.json): the same file names reach HMIs' tools.
  if (!PLAIN_NAME.test(file) || componentProblems(file).length > 0) return null;
  switch (folder) {
    case 'clamav': {
      const m = /^(main|daily|bytecode)\.(cvd|cld|cud)$/.exec(file);
      return m ? { kind: 'clamav', path, database: m[1] as ClamavDatabaseName, container: m[2] as ClamavContainer, file } : null;
    }
    case 'yara':
      return file.endsWith('.yar') ? { kind: 'yara', path, file } : null;
    case 'allowlist':
      return file.endsWith('.json') ? { kind: 'allowlist', path, file } : null;
    case 'policy':
      return path === POLICY_TARGET ? { kind: 'policy', path, file } : null;
    case 'hmi':
      return path === HMI_TRUST_TARGET ? { kind: 'hmi-trust', path, file } : null;
    default:
      return null;
  }
}

/**
 * Problems with a repository's set of target paths as a whole: unknown paths,
 * one ClamAV database in two containers (main.cvd and main.cld). Empty when
 * the set is well formed.
 */
export function targetSetProblems(paths: readonly string[]): string[] {
  const problems: string[] = [];
  const databases = new Map<string, string>();
  for (const path of paths) {
    const target = classifyTarget(path);
    if (target === null) {
      problems.push(`${JSON.stringify(path)} is not a target this format knows (clamav/{main,daily,bytecode}.{cvd,cld,cud}, yara/*.yar, allowlist/*.json, ${POLICY_TARGET}, ${HMI_TRUST_TARGET})`);
      continue;
    }
    if (target.kind !== 'clamav') continue;
    const other = databases.get(target.database);
    if (other !== undefined) problems.push(`the ClamAV database ${target.database} is there twice (${other} and ${path}): keep one`);
    databases.set(target.database, path);
  }
  return problems;
}

/** ClamAV's container header: "ClamAV-VDB:<time>:<version>:<signatures>:<flevel>:<md5>:<dsig>:<builder>:<unix time>", padded to 512 bytes. */
export interface ClamavHeader {
  readonly version: number;
  readonly builtAt: Date;
  readonly signatures: number;
  readonly functionalityLevel: number;
  readonly builder: string;
  /** The digital signature field: "X" when the container is unsigned. */
  readonly signed: boolean;
}

export const CLAMAV_HEADER_BYTES = 512;

/**
 * Parses a ClamAV database header (libclamav cvd.c: cl_cvdparse). Returns a
 * reason instead of a header when the bytes are not one.
 */
export function parseClamavHeader(bytes: Uint8Array): { ok: true; header: ClamavHeader } | { ok: false; reason: string } {
  if (bytes.length < CLAMAV_HEADER_BYTES) return { ok: false, reason: `shorter than ClamAV's ${CLAMAV_HEADER_BYTES}-byte header (${bytes.length} bytes)` };
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, CLAMAV_HEADER_BYTES)).trimEnd();
  if (!text.startsWith('ClamAV-VDB:')) return { ok: false, reason: 'no "ClamAV-VDB:" header: not a ClamAV database container' };
  if (!/^[\x20-\x7e]*$/.test(text)) return { ok: false, reason: 'the header holds bytes that are not printable ASCII' };
  const fields = text.split(':');
  if (fields.length < 9) return { ok: false, reason: `the header has ${fields.length} fields, ClamAV writes 9` };
  const number = (i: number): number | null => (/^[0-9]{1,12}$/.test(fields[i] ?? '') ? Number(fields[i]) : null);
  const version = number(2);
  const signatures = number(3);
  const functionalityLevel = number(4);
  const seconds = number(8);
  if (version === null || version < 1) return { ok: false, reason: `version ${JSON.stringify(fields[2])} is not a positive number` };
  if (signatures === null || functionalityLevel === null) return { ok: false, reason: 'the signature count or functionality level is not a number' };
  if (seconds === null) return { ok: false, reason: `the build time ${JSON.stringify(fields[8])} is not Unix seconds` };
  const dsig = fields[6] ?? '';
  return { ok: true, header: { version, builtAt: new Date(seconds * 1000), signatures, functionalityLevel, builder: fields[7] ?? '', signed: dsig !== 'X' && dsig !== '' } };
}

/** Where an update repository sits on an update drive: the folder the publisher's repository is copied to. */
export const UPDATE_FOLDER_ON_DRIVE = 'portcullis-update';
