import { describe, expect, it } from 'vitest';
import { buildAllowlist, EMPTY_ALLOWLIST } from '../../kiosk/allowlist.ts';
import { loadPolicy } from '../../kiosk/policy.ts';
import { decide, type EngineName, type Observation, type Reason } from '../../kiosk/scan/decide.ts';
import { extensionsOf } from '../../kiosk/scan/file-type.ts';

const { policy } = await loadPolicy();
const both = new Set<EngineName>(['clamav', 'yara']);

function obs(path: string, extra: Partial<Observation> = {}): Observation {
  return {
    path,
    display: path,
    size: 10,
    digest: { sha256: 'a'.repeat(64), blake3: 'b'.repeat(64) },
    extensions: extensionsOf(path),
    contentKind: 'text',
    reasons: [],
    cleanBy: both,
    ...extra,
  };
}

const allowlist = buildAllowlist([{
  name: 'vendor.json',
  bytes: new TextEncoder().encode(JSON.stringify({
    version: '1', owner: 'test', entries: [{ vendor: 'V', product: 'P', version: '1', file: 'cpu.bin', sha256: 'c'.repeat(64), source: 'test' }],
  })),
}]);

describe('decide', () => {
  it('approves a drive whose every file both engines called clean', () => {
    const d = decide([obs('a.txt'), obs('b.csv')], EMPTY_ALLOWLIST, policy, []);
    expect(d.verdict).toBe('approved');
    expect(d.files.map((f) => f.verdict)).toEqual(['clean', 'clean']);
  });

  it('blocks a file that a required engine never called clean, even with no finding', () => {
    const d = decide([obs('a.txt', { cleanBy: new Set(['clamav']) }), obs('b.txt')], EMPTY_ALLOWLIST, policy, []);
    expect(d.verdict).toBe('partial');
    expect(d.files[0]!.reasons.map((r) => r.code)).toEqual(['SCAN_ERROR']);
  });

  it('lets a controlled file pass only when its hash is on the allowlist', () => {
    const listed = obs('firmware/cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) } });
    const unknown = obs('firmware/other.bin');
    const d = decide([listed, unknown], allowlist, policy, []);
    expect(d.files.map((f) => [f.verdict, f.controlledClass, f.reasons.map((r) => r.code)])).toEqual([
      ['allowlisted', 'firmware', []],
      ['blocked', 'firmware', ['NOT_ALLOWLISTED']],
    ]);
  });

  it('never lets the allowlist override malware', () => {
    const reasons: Reason[] = [{ code: 'MALWARE', detail: 'Eicar-Test-Signature' }];
    const d = decide([obs('cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) }, reasons, cleanBy: new Set() }), obs('x.txt')], allowlist, policy, []);
    expect(d.files[0]!.verdict).toBe('blocked');
  });

  it('rejects the whole drive on a drive-level reason', () => {
    const d = decide([obs('a.txt')], EMPTY_ALLOWLIST, policy, [{ code: 'SCANNER_UNAVAILABLE', detail: 'clamd is down' }]);
    expect(d.verdict).toBe('rejected');
  });

  it('rejects an empty drive and a drive where nothing may pass', () => {
    expect(decide([], EMPTY_ALLOWLIST, policy, []).driveReasons.map((r) => r.code)).toEqual(['NO_FILES']);
    const blocked = obs('run.lnk', { reasons: [{ code: 'RISKY_TYPE', detail: '.lnk' }] });
    expect(decide([blocked], EMPTY_ALLOWLIST, policy, []).verdict).toBe('rejected');
  });

  it('blocks a file that was not read in full', () => {
    const d = decide([obs('a.txt', { digest: null, cleanBy: new Set() }), obs('b.txt')], EMPTY_ALLOWLIST, policy, []);
    expect(d.files[0]!.reasons.map((r) => r.code)).toEqual(['SCAN_ERROR']);
  });
});

describe('decide after an engine failure', () => {
  it('reports nothing as clean or allowlisted once the engines failed mid-scan', () => {
    const listed = obs('firmware/cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) } });
    const d = decide([obs('a.txt'), listed], allowlist, policy, [{ code: 'SCANNER_UNAVAILABLE', detail: 'clamd died' }]);
    expect(d.verdict).toBe('rejected');
    expect(d.files.map((f) => [f.verdict, f.reasons.map((r) => r.code)])).toEqual([
      ['blocked', ['SCAN_ERROR']],
      ['blocked', ['SCAN_ERROR']],
    ]);
  });

  it('keeps clean verdicts when the drive is rejected for a reason that is not the engines', () => {
    const d = decide([obs('a.txt')], EMPTY_ALLOWLIST, policy, [{ code: 'LIMIT_EXCEEDED', detail: 'too many files' }]);
    expect(d.files[0]!.verdict).toBe('clean');
    expect(d.verdict).toBe('rejected');
  });
});
