import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePolicy, type Policy } from './policy.ts';
import { policyLoosenings } from './policy-changes.ts';

const base = parsePolicy(readFileSync(new URL('../../rules/policy/default.json', import.meta.url)), 'default.json').policy;
const changed = (change: (p: Policy) => void): Policy => {
  const copy = structuredClone<Policy>(base);
  change(copy);
  return copy;
};

describe('policyLoosenings', () => {
  it('finds nothing in the same policy, nor in one that only tightens', () => {
    expect(policyLoosenings(base, base)).toEqual([]);
    const tighter = changed((p) => {
      (p.limits as { maxFileBytes: number }).maxFileBytes = 1024;
      (p.manifest as { validityHours: number }).validityHours = 1;
      (p.types.allowed as unknown[]).splice(0, 1);
    });
    expect(policyLoosenings(base, tighter)).toEqual([]);
  });

  it('names each loosening by its field: an engine no longer required, a larger limit, a controlled class dropped', () => {
    const looser = changed((p) => {
      (p.yara as { required: boolean }).required = false;
      (p.limits as { maxDepth: number }).maxDepth = base.limits.maxDepth + 1;
      (p.controlled as unknown[]).splice(0, 1);
    });
    const lines = policyLoosenings(base, looser);
    expect(lines).toContain('yara.required: YARA is no longer required');
    expect(lines).toContain(`limits.maxDepth: raised from ${base.limits.maxDepth} to ${base.limits.maxDepth + 1}`);
    if (base.controlled[0]) expect(lines).toContain(`controlled.${base.controlled[0].name}: no longer controlled`);
    expect(lines).toHaveLength(base.controlled[0] ? 3 : 2);
  });
});
