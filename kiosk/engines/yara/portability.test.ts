import { describe, expect, it } from 'vitest';
import { checkRulePortability } from './portability.ts';
import { outlineRuleSource } from './rule-source.ts';

const META = 'meta:\n description = "d"\n author = "Portcullis"\n reference = "r"\n severity = "low"\n';
const rule = (strings: string, condition = '$a', head = 'rule T'): string =>
  `${head}\n{\n${META}strings:\n ${strings}\ncondition:\n ${condition}\n}\n`;
const problems = (source: string): string[] => checkRulePortability('t.yar', outlineRuleSource(source)).map((p) => p.message);

describe('checkRulePortability accepts the portable subset', () => {
  it.each([
    ['nocase text', rule('$a = "portcullis" ascii wide nocase')],
    ['text without letters', rule('$a = "1234"')],
    ['hex with jumps and alternatives', rule('$a = { 4D 5A [2-4] ( 90 | 91 ) }')],
    ['regex without flags', rule('$a = /[Pp]ortcullis-[0-9]{1,4}/')],
    ['offsets, counts and integer reads', rule('$a = "ab" nocase', '#a > 2 and $a at 0 and @a[1] < 10 and uint16(0) == 0x5A4D and filesize < 1MB')],
    ['hexadecimal numbers up to 0x7FFFFFFF, decimal above', rule('$a = "ab" nocase', '$a and uint32(0) != 0x7FFFFFFF and uint32(4) != 3735928559')],
    ['for loops and N of', rule('$a1 = "ab" nocase\n $a2 = "cd" nocase', 'for any i in (1..#a1) : (@a1[i] < 100) and 1 of ($a*)')],
    ['a private helper rule without meta', `private rule H { strings: $h = "hh" nocase condition: $h }\n${rule('$a = "ab" nocase', '$a and H')}`],
  ])('%s', (_, source) => {
    expect(problems(source)).toEqual([]);
  });
});

describe('checkRulePortability refuses what ClamAV drops, ignores or crashes on', () => {
  it.each([
    ['an import', `import "math"\n${rule('$a = "ab" nocase')}`, /modules are not supported/],
    ['an include', `include "x.yar"\n${rule('$a = "ab" nocase')}`, /includes are not allowed/],
    ['a global rule', rule('$a = "ab" nocase', '$a', 'global rule T'), /global rules/],
    ['a rule without strings', `rule T\n{\n${META}condition:\n filesize > 1\n}\n`, /without strings/],
    ['the xor modifier', rule('$a = "ab" xor'), /"xor"/],
    ['the base64 modifier', rule('$a = "ab" base64'), /"base64"/],
    ['the private string modifier', rule('$a = "ab" nocase private'), /"private"/],
    ['a one-byte string', rule('$a = "a" nocase'), /at least 2 bytes/],
    ['a case-sensitive text string', rule('$a = "Portcullis"'), /must be nocase/],
    ['a /i regex', rule('$a = /abc/i'), /case-insensitive regex/],
    ['a nocase regex', rule('$a = /abc/ nocase'), /case-insensitive regex/],
    ['a wide regex', rule('$a = /abc/ wide'), /wide regular/],
    ['a hex string without two fixed bytes in a row', rule('$a = { 4D ?? 5A ?? 90 }'), /2 consecutive fixed bytes/],
    ['contains', rule('$a = "ab" nocase', '$a and "x" contains "y"'), /crashes clamd/],
    ['matches', rule('$a = "ab" nocase', '$a and "x" matches /y/'), /evaluates false/],
    ['none of', rule('$a = "ab" nocase\n $b = "cd" nocase', '$a and none of ($b)'), /"none"/],
    ['a big-endian read', rule('$a = "ab" nocase', '$a and uint32be(0) == 1'), /"uint32be"/],
    ['a match length', rule('$a = /ab+/', '!a[1] > 3'), /match length/],
    ['a count in a range', rule('$a = "ab" nocase', '#a in (0..10) > 1'), /in \(range\)/],
    ['a percentage of strings', rule('$a = "ab" nocase\n $b = "cd" nocase', '50% of them'), /% of/],
    ['a hexadecimal number ClamAV reads as negative', rule('$a = "ab" nocase', '$a and uint32(0) == 0x80000000'), /negative number; write it in decimal \(2147483648\)/],
  ])('%s', (_, source, message) => {
    expect(problems(source).join('\n')).toMatch(message);
  });

  it('reports the line of the offending string', () => {
    const found = checkRulePortability('t.yar', outlineRuleSource(rule('$ok = "ab" nocase\n $a = "ab" xor', '$ok and $a')));
    expect(found.map((p) => [p.code, p.line])).toEqual([
      ['RULE_NOT_PORTABLE', 10],
      ['RULE_NOT_PORTABLE', 10],
    ]);
  });
});

describe('checkRulePortability meta convention', () => {
  it('requires description, author, reference and severity on every public rule', () => {
    const found = checkRulePortability('t.yar', outlineRuleSource('rule T { strings: $a = "ab" nocase condition: $a }'));
    expect(found.filter((p) => p.code === 'RULE_META_INVALID')).toHaveLength(4);
  });

  it('refuses a severity outside low, medium, high, critical', () => {
    expect(problems(rule('$a = "ab" nocase').replace('"low"', '"severe"')).join()).toMatch(/severity must be one of/);
  });
});
