import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canarySample, CANARY_RULE, CANARY_SIGNATURE } from './canary.ts';
import { ruleFromSignature, signatureForRule } from './clamav-signature.ts';
import { throwProblems, YaraRuleError } from './errors.ts';
import { parseYaracDiagnostics } from './yarac.ts';

describe('clamd YARA signature names', () => {
  it('names a rule YARA.<rule>.UNOFFICIAL and reads the rule back', () => {
    expect(signatureForRule('Portcullis_Canary')).toBe('YARA.Portcullis_Canary.UNOFFICIAL');
    expect(ruleFromSignature('YARA.Portcullis_Canary.UNOFFICIAL')).toBe('Portcullis_Canary');
  });

  it.each(['Win.Test.EICAR_HDB-1', 'Portcullis.Test.Pattern.UNOFFICIAL', 'YARA.Bad-Name.UNOFFICIAL', 'YARA.Rule', 'YARA..UNOFFICIAL'])(
    'does not read %s as a YARA rule',
    (name) => {
      expect(ruleFromSignature(name)).toBeUndefined();
    },
  );
});

describe('the canary', () => {
  it('carries the exact string rules/yara/canary.yar matches', async () => {
    const rule = await readFile(join(import.meta.dirname, '../../../rules/yara/canary.yar'), 'utf8');
    const literal = /\$canary = "([^"]+)"/.exec(rule)?.[1];
    expect(literal).toBeDefined();
    expect(new TextDecoder().decode(canarySample())).toContain(literal);
    expect(rule).toContain(`rule ${CANARY_RULE}`);
    expect(CANARY_SIGNATURE).toBe(`YARA.${CANARY_RULE}.UNOFFICIAL`);
  });
});

describe('parseYaracDiagnostics', () => {
  it('reads file, line and rule from yarac 4 errors and warnings', () => {
    const stderr = [
      'error: d2.yar(3): duplicated identifier "A"',
      'warning: rule "B" in d2.yar(4): string "$b" may slow down scanning',
      'some other line',
    ].join('\n');
    expect(parseYaracDiagnostics(stderr)).toEqual([
      { code: 'RULE_COMPILE_ERROR', file: 'd2.yar', line: 3, message: 'error: duplicated identifier "A"' },
      { code: 'RULE_COMPILE_ERROR', file: 'd2.yar', line: 4, rule: 'B', message: 'warning: string "$b" may slow down scanning', warning: true },
    ]);
  });
});

describe('throwProblems', () => {
  it('names the first error, not a warning printed on an earlier line (yarac prints both)', () => {
    const problems = parseYaracDiagnostics(
      ['warning: rule "A" in a.yar(4): string "$a" may slow down scanning', 'error: rule "B" in a.yar(13): syntax error'].join('\n'),
    );
    const error: unknown = (() => {
      try {
        throwProblems(problems);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(YaraRuleError);
    expect((error as YaraRuleError).line).toBe(13);
    expect((error as YaraRuleError).message).toMatch(/^a\.yar:13: error: syntax error/);
    expect((error as YaraRuleError).problems).toHaveLength(2);
  });

  it('still refuses a file whose only problem is a warning, naming it', () => {
    const problems = parseYaracDiagnostics('warning: rule "A" in a.yar(4): string "$a" may slow down scanning');
    expect(() => throwProblems(problems)).toThrow(/^a\.yar:4: warning: /);
  });
});
