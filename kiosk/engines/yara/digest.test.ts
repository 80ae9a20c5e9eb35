import { describe, expect, it } from 'vitest';
import { digestRuleFiles } from './digest.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const B = enc('rule B { strings: $b = "bb" nocase condition: $b }\n');

describe('digestRuleFiles', () => {
  it('matches the vector computed independently from the documented layout (Python hashlib)', () => {
    expect(digestRuleFiles([{ name: 'b.yar', bytes: B }, { name: 'a.yar', bytes: enc('') }])).toBe(
      'sha256:5ad43d0ae299d2e1f527c17ac2866c7711608250b1a7e7f3c586b8198cc58340',
    );
  });

  it('does not depend on the order files are given in', () => {
    const a = { name: 'a.yar', bytes: enc('x') };
    const b = { name: 'b.yar', bytes: B };
    expect(digestRuleFiles([a, b])).toBe(digestRuleFiles([b, a]));
  });

  it('changes when one byte or one file name changes', () => {
    const base = digestRuleFiles([{ name: 'b.yar', bytes: B }]);
    const flipped = Uint8Array.from(B);
    flipped[0] = flipped[0]! ^ 1;
    expect(digestRuleFiles([{ name: 'b.yar', bytes: flipped }])).not.toBe(base);
    expect(digestRuleFiles([{ name: 'c.yar', bytes: B }])).not.toBe(base);
  });

  it('keeps a name/content boundary shift from colliding', () => {
    expect(digestRuleFiles([{ name: 'ab', bytes: enc('c') }])).not.toBe(digestRuleFiles([{ name: 'a', bytes: enc('bc') }]));
  });
});
