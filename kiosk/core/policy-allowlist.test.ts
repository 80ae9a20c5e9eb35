import { loadAllowlist } from '../rules-files.ts';
import { loadPolicy } from '../rules-files.ts';
import { describe, expect, it } from 'vitest';
import { buildAllowlist } from './allowlist.ts';
import { parsePolicy } from './policy.ts';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

describe('policy', () => {
  it('loads the shipped default with a digest of its bytes', async () => {
    const loaded = await loadPolicy();
    expect(loaded.policy.id).toBe('default');
    expect(loaded.policy.manifest.validityHours).toBe(12);
    expect(loaded.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('names the bad field of an invalid policy by dot-path', async () => {
    const { policy } = await loadPolicy();
    const bad = { ...policy, limits: { ...policy.limits, maxDepth: 0 }, extra: true };
    expect(() => parsePolicy(enc(bad), 'bad.json')).toThrow(/limits\.maxDepth: expected an integer from 1 to 64/);
    expect(() => parsePolicy(enc(bad), 'bad.json')).toThrow(/extra: unknown field/);
    try {
      parsePolicy(enc(bad), 'bad.json');
    } catch (error) {
      expect(error).toMatchObject({ code: 'POLICY_INVALID' });
    }
  });
});

describe('allowlist', () => {
  const file = (entries: unknown[]) => ({ name: 'v.json', bytes: enc({ version: '1', owner: 'o', entries }) });
  const entry = { vendor: 'V', product: 'P', version: '1', file: 'f.bin', source: 's' };

  it('finds an entry by either hash but refuses one whose other hash contradicts it', () => {
    const list = buildAllowlist([file([{ ...entry, sha256: 'a'.repeat(64), blake3: 'b'.repeat(64) }])]);
    expect(list.lookup({ sha256: 'a'.repeat(64), blake3: 'b'.repeat(64) })?.file).toBe('f.bin');
    expect(list.lookup({ sha256: 'a'.repeat(64), blake3: 'c'.repeat(64) })).toBeNull();
    expect(list.lookup({ sha256: 'd'.repeat(64), blake3: 'e'.repeat(64) })).toBeNull();
  });

  it('refuses an entry with no hash at all, naming it', () => {
    expect(() => buildAllowlist([file([entry])])).toThrow(/entries\[0\]: needs sha256 or blake3/);
  });

  it('changes its digest when any byte of a list changes', () => {
    const a = buildAllowlist([file([{ ...entry, sha256: 'a'.repeat(64) }])]);
    const b = buildAllowlist([file([{ ...entry, sha256: 'a'.repeat(63) + 'b' }])]);
    expect(a.digest).not.toBe(b.digest);
  });

  it('loads the shipped folder', async () => {
    const list = await loadAllowlist();
    expect(list.version).toMatch(/^site@/);
  });
});
