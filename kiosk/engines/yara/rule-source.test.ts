import { describe, expect, it } from 'vitest';
import { decodeTextLiteral, findIncludes, longestFixedHexRun, outlineRuleSource, RuleSourceError, tokenizeRuleSource } from './rule-source.ts';

const SOURCE = `// header comment
import "pe"
/* block
   comment */
private rule Helper { strings: $h = "helper" nocase condition: $h }

rule Sample : tag_one tag_two
{
  meta:
    description = "a \\"quoted\\" description"
    severity = "high"
    score = -5
    enabled = true
  strings:
    $text = "a\\x41b" ascii wide nocase
    $hex = { 4D 5A [2-4] ( 90 | 91 ) ?? 00 }   // trailing comment
    $re = /ab[0-9]{1,3}\\/c/is
    $x = "xored" xor(1-3)
  condition:
    Helper and #text > 1 and @hex[1] < 0x100 and !re[1] == 4 and filesize < 2MB
}
`;

describe('outlineRuleSource', () => {
  const outline = outlineRuleSource(SOURCE);

  it('lists imports and both rules with their lines', () => {
    expect(outline.imports).toEqual([{ module: 'pe', line: 2 }]);
    expect(outline.rules.map((r) => [r.name, r.line, r.isPrivate])).toEqual([
      ['Helper', 5, true],
      ['Sample', 7, false],
    ]);
  });

  it('reads tags and typed meta values, decoding escapes', () => {
    const r = outline.rules[1]!;
    expect(r.tags).toEqual(['tag_one', 'tag_two']);
    expect(r.meta.get('description')?.value).toBe('a "quoted" description');
    expect(r.meta.get('score')?.value).toBe(-5);
    expect(r.meta.get('enabled')?.value).toBe(true);
    expect(r.meta.get('severity')?.line).toBe(11);
  });

  it('reads each string kind with its modifiers and line, dropping modifier arguments', () => {
    const s = outline.rules[1]!.strings;
    expect(s.map((x) => [x.id, x.kind, x.line, x.modifiers])).toEqual([
      ['$text', 'text', 15, ['ascii', 'wide', 'nocase']],
      ['$hex', 'hex', 16, []],
      ['$re', 'regex', 17, []],
      ['$x', 'text', 18, ['xor']],
    ]);
    expect(s[2]!.literal).toBe('/ab[0-9]{1,3}\\/c/is');
  });

  it('keeps condition tokens with their kinds', () => {
    const kinds = outline.rules[1]!.condition.map((t) => `${t.kind}:${t.text}`);
    expect(kinds).toContain('count-id:#text');
    expect(kinds).toContain('offset-id:@hex');
    expect(kinds).toContain('length-id:!re');
    expect(kinds).toContain('number:2MB');
    expect(kinds).toContain('number:0x100');
  });

  it('throws RuleSourceError with the line of an unterminated string', () => {
    expect(() => outlineRuleSource('rule A {\n strings:\n  $a = "open\n condition: $a }')).toThrow(RuleSourceError);
    try {
      outlineRuleSource('rule A {\n strings:\n  $a = "open\n condition: $a }');
    } catch (e) {
      expect((e as RuleSourceError).line).toBe(3);
    }
  });

  it('throws on a rule that is never closed', () => {
    expect(() => outlineRuleSource('rule A { strings: $a = "abc" condition: $a')).toThrow(/not closed/);
  });
});

describe('tokenizeRuleSource', () => {
  it('reads "!=" as an operator and "!a" as a match length', () => {
    const t = tokenizeRuleSource('#a != 1 and !a[1] > 2');
    expect(t.map((x) => x.kind)).toEqual(['count-id', 'punct', 'number', 'identifier', 'length-id', 'punct', 'number', 'punct', 'punct', 'number']);
  });

  it('reads a regex after "matches" and YARA\'s backslash division elsewhere', () => {
    expect(tokenizeRuleSource('"x" matches /a\\/b/').map((x) => x.kind)).toEqual(['text', 'identifier', 'regex']);
    expect(tokenizeRuleSource('filesize \\ 2 % 3').map((x) => x.text)).toEqual(['filesize', '\\', '2', '%', '3']);
  });
});

describe('findIncludes', () => {
  it('finds include directives with their lines before any compiler runs', () => {
    expect(findIncludes('// x\ninclude "/etc/passwd"\nrule A { condition: true }')).toEqual([{ path: '/etc/passwd', line: 2 }]);
  });
});

describe('longestFixedHexRun', () => {
  it.each([
    ['{ 4D 5A 90 00 }', 4],
    ['{ 4D ?? 5A ?? 90 }', 1],
    ['{ 4D 5A ?? 90 }', 2],
    ['{ 4? 5A 90 }', 2],
    ['{ (4D | 5A) 90 }', 1],
    ['{ 4D [2-4] 5A 90 // note\n 00 }', 3],
    ['{ 4D ~5A 90 00 }', 2],
  ])('%s has a longest fixed run of %i bytes', (hex, run) => {
    expect(longestFixedHexRun(hex)).toBe(run);
  });
});

describe('decodeTextLiteral', () => {
  it('decodes escapes to bytes', () => {
    expect(decodeTextLiteral('"a\\x00\\n\\\\\\""', 1)).toBe('a\x00\n\\"');
  });
  it('refuses an unknown escape', () => {
    expect(() => decodeTextLiteral('"\\q"', 4)).toThrow(RuleSourceError);
  });
});
