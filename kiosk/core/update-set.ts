/**
 * The kiosk's update sets (pure): the error codes of `update init`, `import`
 * and `rollback`, the description each imported set keeps beside its files
 * (set.json), and what the station and `update status` read from it: each
 * part's version and age. The files themselves are handled in kiosk/update/.
 */
import { PortcullisError } from '../../manifest/index.ts';
import { array, boolean, formatIssues, integer, literal, nullable, object, oneOf, optional, parse, string, type Infer } from '../../manifest/schema.ts';
import { CLAMAV_CONTAINERS, CLAMAV_DATABASES, UPDATE_PARTS, type ClamavDatabaseName } from '../../manifest/update-repository.ts';

/**
 * Every refusal names one of these (docs/updates.md "Codes"); the audit log
 * keeps it unchanged. An import that is refused changes nothing.
 */
export type UpdateErrorCode =
  | 'UPDATE_NOT_INITIALISED' // no pinned root: run update init --root FILE
  | 'UPDATE_ALREADY_INITIALISED' // update init on a kiosk that has a pinned root
  | 'UPDATE_ROOT_INVALID' // the root given to init is not a self-signed TUF root
  | 'UPDATE_REPOSITORY_UNREADABLE' // PATH is not a repository folder
  | 'UPDATE_INCOMPLETE' // a file the repository names is missing, unreadable or cut short (drive pulled, copy cut)
  | 'UPDATE_SIGNATURE_INVALID' // metadata not signed by the keys the trusted root names (wrong key, root not cross-signed)
  | 'UPDATE_ROLLBACK' // a version older than the kiosk's (metadata, or a ClamAV database)
  | 'UPDATE_EXPIRED' // metadata past its expiry (freeze)
  | 'UPDATE_METADATA_INVALID' // metadata that does not fit together (mix-and-match) or cannot be read
  | 'UPDATE_TARGET_MISMATCH' // a file whose length or hashes differ from what was signed
  | 'UPDATE_TARGET_UNKNOWN' // a target outside the repository layout
  | 'UPDATE_PART_INVALID' // a part the kiosk's own checks refuse (policy, allowlist, YARA rules, a missing database)
  | 'UPDATE_CLAMAV_INVALID' // ClamAV's own check refuses a database (its signature, or loading it)
  | 'UPDATE_CLAMAV_UNSIGNED' // an unsigned .cud where the kiosk requires ClamAV-signed databases
  | 'UPDATE_ENGINES_FAILED' // the new set failed the engines' self-test (EICAR, every rule live)
  | 'UPDATE_DISK_FULL' // no room for the new set: nothing was changed
  | 'UPDATE_WRITE_FAILED' // the kiosk's updates folder could not be written
  | 'UPDATE_BUSY' // another import or rollback is running
  | 'UPDATE_NO_PREVIOUS'; // rollback without a previous set

export class UpdateError extends PortcullisError<UpdateErrorCode> {}

const time = string({ pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/, patternMessage: 'expected a UTC time' });
const sha256 = string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' });

const partSchema = object({
  kind: oneOf(UPDATE_PARTS),
  target: string({ min: 1, max: 128 }), // the target path in the repository, e.g. clamav/daily.cvd
  file: string({ min: 1, max: 64 }), // its name in the set's folder for that kind
  length: integer({ min: 0 }), // bytes
  sha256,
  // ClamAV databases only: from the container header, and whether ClamAV verified Cisco's signature on it.
  database: optional(oneOf(CLAMAV_DATABASES)),
  container: optional(oneOf(CLAMAV_CONTAINERS)),
  version: optional(integer({ min: 1 })),
  builtAt: optional(time),
  clamavSigned: optional(boolean()),
  // The policy's id, or the allowlist's name@version, as status shows them.
  label: optional(string({ max: 128 })),
});

/** How far in the future a database's build time may be before the kiosk's clock or the file is suspect. */
export const MAX_FUTURE_BUILD_HOURS = 24;

const roleSchema = object({ version: integer({ min: 1 }), expires: time });

export const updateSetSchema = object({
  formatVersion: literal(1),
  generation: string({ pattern: /^g[0-9]{6}$/, patternMessage: 'expected g and six digits' }),
  importedAt: time,
  /** Where it came from, display-safe (the drive's folder). */
  source: string({ max: 4096 }),
  tuf: object({ root: roleSchema, targets: roleSchema, snapshot: roleSchema, timestamp: roleSchema }),
  parts: array(partSchema, { max: 256 }),
  /** The parts the engines proved together at import: the rule set's digest and rule count. */
  yara: nullable(object({ ruleSetDigest: string({ max: 128 }), ruleCount: integer({ min: 0 }) })),
  /** What the set lets through that the one before did not (core/policy-changes.ts), said at import and by status. */
  loosened: optional(array(string({ max: 300 }), { max: 64 })),
});

export type UpdateSet = Infer<typeof updateSetSchema>;
export type UpdatePart = UpdateSet['parts'][number];

export function parseUpdateSet(value: unknown, where: string): UpdateSet {
  const result = parse(updateSetSchema, value);
  if (!result.ok) throw new UpdateError('UPDATE_WRITE_FAILED', `${where}: not a set description this kiosk wrote: ${formatIssues(result.issues)}`);
  return result.value;
}

/** The ClamAV database of a set, by name. */
export function clamavPart(set: UpdateSet, database: ClamavDatabaseName): UpdatePart | null {
  return set.parts.find((p) => p.kind === 'clamav' && p.database === database) ?? null;
}

/**
 * When the set's signatures were built: the newest ClamAV database (daily,
 * normally), which is what freshclam's and the station's "age" mean.
 */
export function signaturesBuiltAt(set: UpdateSet): string | null {
  const times = set.parts.filter((p) => p.kind === 'clamav' && p.builtAt).map((p) => p.builtAt!);
  return times.length === 0 ? null : times.reduce((a, b) => (a > b ? a : b));
}

/** Whole hours (rounded down) from `since` to `now`; null when unknown. */
export function ageHours(since: string | null, now: Date): number | null {
  if (since === null) return null;
  const ms = now.getTime() - Date.parse(since);
  return Number.isNaN(ms) ? null : Math.floor(ms / 3_600_000);
}

/** "3 days", "5 hours": how old, for people. */
export function describeAge(hours: number | null): string {
  if (hours === null) return 'age unknown';
  if (hours < 0) return 'built in the future (check the kiosk\'s clock)';
  if (hours < 48) return `${hours} hour${hours === 1 ? '' : 's'} old`;
  const days = Math.floor(hours / 24);
  return `${days} days old`;
}

/**
 * ClamAV databases may not go back: each database the new set carries must
 * be at least the version of the same database in the active set. Returns
 * the first problem, or null.
 */
export function clamavDowngrade(active: UpdateSet | null, next: readonly UpdatePart[]): string | null {
  if (active === null) return null;
  for (const part of next) {
    if (part.kind !== 'clamav' || part.database === undefined || part.version === undefined) continue;
    const current = clamavPart(active, part.database);
    if (current?.version !== undefined && part.version < current.version) {
      return `the ClamAV ${part.database} database version ${part.version} is older than the active set's version ${current.version}`;
    }
    // A higher version built earlier contradicts itself: freshness is counted from the build time.
    if (current?.builtAt !== undefined && part.builtAt !== undefined && Date.parse(part.builtAt) < Date.parse(current.builtAt)) {
      return `the ClamAV ${part.database} database was built ${part.builtAt}, before the active set's (built ${current.builtAt})`;
    }
  }
  return null;
}

/**
 * A database built more than a day after `now`: its age would read as fresh
 * for as long as that lasts (a freeze hidden in a header), or the kiosk's
 * clock is wrong. Returns the problem, or null.
 */
export function clamavFromTheFuture(next: readonly UpdatePart[], now: Date): string | null {
  for (const part of next) {
    if (part.kind !== 'clamav' || part.builtAt === undefined) continue;
    if (Date.parse(part.builtAt) - now.getTime() > MAX_FUTURE_BUILD_HOURS * 3_600_000) {
      return `the ClamAV ${part.database ?? part.file} database says it was built ${part.builtAt}, later than now (${now.toISOString()}) by more than ${MAX_FUTURE_BUILD_HOURS} hours: its age could not be judged (check the kiosk's clock)`;
    }
  }
  return null;
}
