import { describe, expect, it } from 'vitest';
import { assessService, DEFAULT_STATION_CHECKS, outdatedSignatures, serviceChanged, type SelfCheckFacts } from './self-check.ts';

const NOW = new Date('2026-12-08T12:00:00Z');
const good: SelfCheckFacts = {
  key: { ok: true },
  space: [{ what: 'work folder', path: '/run/portcullis/work', freeBytes: 1024 ** 3, needBytes: 256 * 1024 ** 2 }, { what: 'audit log', path: '/var/lib/portcullis', freeBytes: 1024 ** 3, needBytes: 64 * 1024 ** 2 }],
  signatures: { builtAt: '2026-12-07T06:00:00Z', source: 'update set g000004' },
  engines: { ok: true },
};
const codes = (facts: SelfCheckFacts, checks = DEFAULT_STATION_CHECKS): string[] => {
  const s = assessService(facts, checks, NOW);
  return s.state === 'out-of-service' ? s.problems.map((p) => p.code) : [];
};

describe('assessService', () => {
  it('is ready when the key, the space, the signatures and the engines are good', () => {
    expect(assessService(good, DEFAULT_STATION_CHECKS, NOW)).toEqual({ state: 'ready', warnings: [] });
    expect(assessService({ ...good, key: 'report-only' }, DEFAULT_STATION_CHECKS, NOW).state).toBe('ready');
  });

  it('is out of service for each problem, naming every one with a fix', () => {
    const all = assessService({
      key: { ok: false, code: 'KEY_PERMISSIONS', message: 'kiosk.key is readable by group or others' },
      space: [{ what: 'work folder', path: '/run/portcullis/work', freeBytes: 10 * 1024 ** 2, needBytes: 256 * 1024 ** 2 }, { what: 'audit log', path: '/gone', freeBytes: null, needBytes: 1 }],
      signatures: { missing: 'no database files in /var/lib/clamav' },
      engines: { ok: false, code: 'YARA_RULES_NOT_LIVE', message: 'rule X did not fire' },
      policyProblem: { code: 'POLICY_INVALID', message: 'policy.json: limits: missing' },
    }, DEFAULT_STATION_CHECKS, NOW);
    expect(all.state).toBe('out-of-service');
    if (all.state !== 'out-of-service') return;
    expect(all.problems.map((p) => p.code)).toEqual(['POLICY_INVALID', 'KEY_PERMISSIONS', 'STATION_DISK_FULL', 'STATION_DISK_UNREADABLE', 'SIGNATURES_MISSING', 'YARA_RULES_NOT_LIVE']);
    for (const p of all.problems) expect(p.fix.length).toBeGreaterThan(10);
    expect(all.problems[2]!.what).toBe('only 10 MiB free for the work folder (/run/portcullis/work); the station needs 256 MiB');
  });

  it('counts the signatures\' age from their build time against the policy\'s limit: out of service, or a warning', () => {
    const old = { ...good, signatures: { builtAt: '2026-11-30T11:00:00Z', source: 'x' } }; // 8 days and an hour
    expect(codes(old)).toEqual(['SIGNATURES_OUTDATED']);
    const s = assessService(old, DEFAULT_STATION_CHECKS, NOW);
    expect(s.state === 'out-of-service' && s.problems[0]!.what).toBe('the ClamAV signatures are 8 days old; the site\'s policy allows 7 days');
    expect(codes({ ...good, signatures: { builtAt: '2026-12-01T12:00:00Z', source: 'x' } })).toEqual([]); // exactly 7 days: still in date
    const warn = assessService(old, { ...DEFAULT_STATION_CHECKS, whenOutdated: 'warn' }, NOW);
    expect(warn.state).toBe('ready');
    expect(warn.state === 'ready' && warn.warnings.map((w) => w.code)).toEqual(['SIGNATURES_OUTDATED']);
    expect(codes({ ...good, signatures: { builtAt: null, source: '/var/lib/clamav' } })).toEqual(['SIGNATURES_AGE_UNKNOWN']);
    expect(codes({ ...good, signatures: { builtAt: '2026-12-08T06:00:00Z', source: 'x' } }, { ...DEFAULT_STATION_CHECKS, maxSignatureAgeHours: 4 })).toEqual(['SIGNATURES_OUTDATED']);
  });

  it('tells a change worth recording from the same verdict again', () => {
    const a = assessService(good, DEFAULT_STATION_CHECKS, NOW);
    const b = assessService({ ...good, key: { ok: false, code: 'KEY_UNREADABLE', message: 'gone' } }, DEFAULT_STATION_CHECKS, NOW);
    const c = assessService({ ...good, key: { ok: false, code: 'KEY_UNREADABLE', message: 'still gone' } }, DEFAULT_STATION_CHECKS, NOW);
    expect(serviceChanged(a, b)).toBe(true);
    expect(serviceChanged(b, c)).toBe(false);
    expect(serviceChanged(b, assessService({ ...good, signatures: { missing: 'x' }, key: { ok: false, code: 'KEY_UNREADABLE', message: 'gone' } }, DEFAULT_STATION_CHECKS, NOW))).toBe(true);
  });

  it('refuses a one-shot scan only when the signatures are past the limit and the policy says out of service', () => {
    expect(outdatedSignatures('2026-11-30T11:00:00Z', DEFAULT_STATION_CHECKS, NOW)).toMatch(/^the ClamAV signatures are 8 days old; the site's policy allows 168 hours/);
    expect(outdatedSignatures('2026-12-07T11:00:00Z', DEFAULT_STATION_CHECKS, NOW)).toBeNull();
    expect(outdatedSignatures('2026-11-30T11:00:00Z', { ...DEFAULT_STATION_CHECKS, whenOutdated: 'warn' }, NOW)).toBeNull();
    expect(outdatedSignatures(null, DEFAULT_STATION_CHECKS, NOW)).toBeNull();
  });
});

