import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decodeCodepage850 } from './codepage-850.ts';

describe('decodeCodepage850', () => {
  it('decodes every high byte the way glibc iconv decodes CP850', () => {
    const high = Uint8Array.from({ length: 128 }, (_, i) => 0x80 + i);
    const expected = execFileSync('iconv', ['-f', 'CP850', '-t', 'UTF-8'], { input: high }).toString('utf8');
    expect(decodeCodepage850(high)).toBe(expected);
  });

  it('keeps ASCII and control bytes as they are, for the caller to escape', () => {
    expect(decodeCodepage850(Uint8Array.of(0x41, 0x01, 0x1b, 0x7e))).toBe('A\u0001\u001b~');
  });
});
