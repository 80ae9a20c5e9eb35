import { describe, expect, it } from 'vitest';
import { formatYaraMatch, parseYaraMatch, type YaraMatchFacts } from './yara-match.ts';

const facts: YaraMatchFacts = {
  rule: 'APT_Loader_1', namespace: 'site/apt/Loader.yara', description: 'Detects the loader | stage two\n(packed)', reference: 'https://intel.example.org/x',
  severity: '80', strings: [{ id: '$a', count: 12, offsets: [0x1f0, 0x400, 0x800] }, { id: '$b', count: 1, offsets: [0x2200] }],
};

describe('a YARA match explained in one line', () => {
  it('writes rule, namespace, description, reference and offsets, and reads them back', () => {
    const line = formatYaraMatch(facts);
    expect(line).toBe('APT_Loader_1 [site/apt/Loader.yara] | Detects the loader / stage two (packed) | reference: https://intel.example.org/x | severity: 80 | strings: $a at 0x1f0, 0x400, 0x800 (12 matches); $b at 0x2200');
    expect(parseYaraMatch(line)).toEqual({ ...facts, description: 'Detects the loader / stage two (packed)' });
  });

  it('reads a member\'s detail with its path in front, and says "no description" when there is none', () => {
    const line = `a.zip!/b: c.exe: ${formatYaraMatch({ ...facts, description: null, reference: null, severity: null, strings: [] })}`;
    expect(parseYaraMatch(line)).toEqual({ rule: 'APT_Loader_1', namespace: 'site/apt/Loader.yara', description: null, reference: null, severity: null, strings: [], member: 'a.zip!/b: c.exe' });
  });

  it('is not fooled by a ClamAV signature name or other text', () => {
    expect(parseYaraMatch('Portcullis.Test.Eicar.UNOFFICIAL')).toBeNull();
    expect(parseYaraMatch('x [y] | z | unknown: field')).toBeNull();
  });
});
