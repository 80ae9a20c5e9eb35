/**
 * The station's self-check (pure): before it says "ready", and again every
 * minute, the station proves its signing key, the free space it needs, the
 * age of its signature database and its engines (clamd loaded, every rule
 * live). This file turns those facts into the station's service status; the
 * command line gathers them (cli/run-command.ts). Out of service, no drive
 * is scanned, and the screen names each problem and its fix.
 */
import type { Policy } from './policy.ts';
import { ageHours, describeAge } from './update-set.ts';

/** One reason the station cannot (or should not) take drives, with what a person does about it. */
export interface ServiceProblem {
  readonly code: string;
  readonly what: string;
  readonly fix: string;
}

export type ServiceStatus =
  | { readonly state: 'checking'; readonly step: string }
  | { readonly state: 'ready'; readonly warnings: readonly ServiceProblem[] }
  | { readonly state: 'out-of-service'; readonly problems: readonly ServiceProblem[]; readonly warnings: readonly ServiceProblem[] };

export const READY: ServiceStatus = { state: 'ready', warnings: [] };

/** The policy's freshness and self-check settings, with their defaults (rules/policy/default.json). */
export interface StationChecks {
  /** hours: the newest ClamAV database may be at most this old. */
  readonly maxSignatureAgeHours: number;
  readonly whenOutdated: 'out-of-service' | 'warn';
  readonly minFreeWorkBytes: number; // bytes free in the work folder
  readonly minFreeAuditBytes: number; // bytes free beside the audit log
}

export const DEFAULT_STATION_CHECKS: StationChecks = {
  maxSignatureAgeHours: 7 * 24,
  whenOutdated: 'out-of-service',
  minFreeWorkBytes: 256 * 1024 * 1024,
  minFreeAuditBytes: 64 * 1024 * 1024,
};

const MIB = 1024 * 1024;

export function stationChecksOf(policy: Policy): StationChecks {
  return {
    maxSignatureAgeHours: policy.signatures?.maxAgeHours ?? DEFAULT_STATION_CHECKS.maxSignatureAgeHours,
    whenOutdated: policy.signatures?.whenOutdated ?? DEFAULT_STATION_CHECKS.whenOutdated,
    minFreeWorkBytes: (policy.station?.minFreeWorkMiB ?? DEFAULT_STATION_CHECKS.minFreeWorkBytes / MIB) * MIB,
    minFreeAuditBytes: (policy.station?.minFreeAuditMiB ?? DEFAULT_STATION_CHECKS.minFreeAuditBytes / MIB) * MIB,
  };
}

/** What the command line found out; each part optional where a check could not be reached. */
export interface SelfCheckFacts {
  /** The signing key: loaded, refused (its code and message), or none (a report-only station). */
  readonly key: { readonly ok: true } | { readonly ok: false; readonly code: string; readonly message: string } | 'report-only';
  /** Free space where the station writes; null bytes: the folder could not be examined. */
  readonly space: readonly { readonly what: 'work folder' | 'audit log'; readonly path: string; readonly freeBytes: number | null; readonly needBytes: number }[];
  /** The signature database: when its newest file was built, or why there is none. */
  readonly signatures: { readonly builtAt: string | null; readonly source: string } | { readonly missing: string };
  /** The engines' start-up self-test, when it ran. */
  readonly engines: { readonly ok: true } | { readonly ok: false; readonly code: string; readonly message: string } | 'not-checked';
  /** The policy could not be read: nothing else can be judged. */
  readonly policyProblem?: { readonly code: string; readonly message: string };
}

const UPDATE_FIX = 'import a signed update from the update drive: portcullis-kiosk update import PATH (docs/updates.md)';

function formatMiB(bytes: number): string {
  return `${Math.floor(bytes / MIB)} MiB`;
}

/** The station's service status from the facts, the policy's checks and the time. Pure. */
export function assessService(facts: SelfCheckFacts, checks: StationChecks, now: Date): ServiceStatus {
  const problems: ServiceProblem[] = [];
  const warnings: ServiceProblem[] = [];
  if (facts.policyProblem) {
    problems.push({ code: facts.policyProblem.code, what: facts.policyProblem.message, fix: 'correct the policy file, or import a signed update carrying the site\'s policy' });
  }
  if (facts.key !== 'report-only' && !facts.key.ok) {
    problems.push({ code: facts.key.code, what: `the signing key cannot be used: ${facts.key.message}`, fix: 'restore the kiosk\'s key file (mode 0600), or make a new key (portcullis-kiosk keygen) and add it to every HMI' });
  }
  for (const s of facts.space) {
    if (s.freeBytes === null) {
      problems.push({ code: 'STATION_DISK_UNREADABLE', what: `the ${s.what} ${s.path} cannot be examined`, fix: 'check that the folder exists and the kiosk may write it' });
    } else if (s.freeBytes < s.needBytes) {
      problems.push({ code: 'STATION_DISK_FULL', what: `only ${formatMiB(s.freeBytes)} free for the ${s.what} (${s.path}); the station needs ${formatMiB(s.needBytes)}`, fix: `free space on that disk${s.what === 'audit log' ? ' (export and archive the audit log, never delete it)' : ''}` });
    }
  }
  if ('missing' in facts.signatures) {
    problems.push({ code: 'SIGNATURES_MISSING', what: `no ClamAV signature database: ${facts.signatures.missing}`, fix: UPDATE_FIX });
  } else {
    const hours = ageHours(facts.signatures.builtAt, now);
    const limit = checks.maxSignatureAgeHours;
    if (hours === null) {
      problems.push({ code: 'SIGNATURES_AGE_UNKNOWN', what: `the build time of the ClamAV signatures in ${facts.signatures.source} cannot be read`, fix: UPDATE_FIX });
    } else if (hours > limit) {
      const problem = { code: 'SIGNATURES_OUTDATED', what: `the ClamAV signatures are ${describeAge(hours)}; the site's policy allows ${limit < 48 ? `${limit} hours` : `${Math.floor(limit / 24)} days`}`, fix: UPDATE_FIX };
      (checks.whenOutdated === 'warn' ? warnings : problems).push(problem);
    }
  }
  if (facts.engines !== 'not-checked' && !facts.engines.ok) {
    problems.push({ code: facts.engines.code, what: `the scan engines failed their self-test: ${facts.engines.message}`, fix: 'call maintenance: the kiosk\'s log (journalctl -u portcullis-kiosk) has the details' });
  }
  return problems.length > 0 ? { state: 'out-of-service', problems, warnings } : { state: 'ready', warnings };
}

/** Whether two statuses differ in a way the audit log records (state, or the codes named). */
export function serviceChanged(a: ServiceStatus, b: ServiceStatus): boolean {
  if (a.state !== b.state) return true;
  const codes = (s: ServiceStatus): string => (s.state === 'checking' ? '' : [...(s.state === 'out-of-service' ? s.problems : []), ...s.warnings].map((p) => p.code).sort().join(','));
  return codes(a) !== codes(b);
}

/**
 * For a one-shot scan: the refusal when the signatures are older than the
 * policy allows and the policy says out of service; null when they are in
 * date, their build time is unknown (the station's self-check names that),
 * or the policy only warns.
 */
export function outdatedSignatures(builtAt: string | null, checks: StationChecks, now: Date): string | null {
  const hours = ageHours(builtAt, now);
  if (hours === null || hours <= checks.maxSignatureAgeHours || checks.whenOutdated !== 'out-of-service') return null;
  return `the ClamAV signatures are ${describeAge(hours)}; the site's policy allows ${checks.maxSignatureAgeHours} hours: import a signed update (docs/updates.md)`;
}

