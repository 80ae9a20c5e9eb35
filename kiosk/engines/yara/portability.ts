/**
 * The Portcullis YARA subset: rules that libyara and ClamAV's YARA support
 * evaluate the same way. Each refusal below was measured against ClamAV 1.4.6
 * and YARA 4.2.3 (docs/yara-engine.md, "What ClamAV's YARA support lacks"):
 * ClamAV skips such a rule with only a log line, refuses to start, silently
 * evaluates it differently, or crashes clamd on the first scan.
 */
import type { RuleProblem } from './errors.ts';
import { decodeTextLiteral, longestFixedHexRun } from './rule-source.ts';
import type { RuleOutline, RuleSourceOutline, StringDeclaration } from './rule-source.ts';

/** ClamAV: "There is a maximum of 64 strings per YARA rule." */
export const CLAMAV_MAX_STRINGS_PER_RULE = 64;

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const REQUIRED_META = ['description', 'author', 'reference', 'severity'] as const;

/** Condition identifiers ClamAV's YARA parser rejects, ignores or crashes on. */
const UNPORTABLE_IDENTIFIERS: ReadonlyMap<string, string> = new Map([
  ['contains', 'crashes clamd (SIGSEGV) on the first scanned stream'],
  ['matches', 'is accepted by clamd but always evaluates false'],
  ['icontains', 'is not in ClamAV\'s YARA grammar'],
  ['startswith', 'is not in ClamAV\'s YARA grammar'],
  ['istartswith', 'is not in ClamAV\'s YARA grammar'],
  ['endswith', 'is not in ClamAV\'s YARA grammar'],
  ['iendswith', 'is not in ClamAV\'s YARA grammar'],
  ['iequals', 'is not in ClamAV\'s YARA grammar'],
  ['defined', 'is not in ClamAV\'s YARA grammar'],
  ['none', 'is not in ClamAV\'s YARA grammar (write "not any of")'],
  ['entrypoint', 'is deprecated and not evaluated by ClamAV'],
  ['uint8be', 'is not in ClamAV\'s YARA grammar'],
  ['uint16be', 'is not in ClamAV\'s YARA grammar'],
  ['uint32be', 'is not in ClamAV\'s YARA grammar'],
  ['int8be', 'is not in ClamAV\'s YARA grammar'],
  ['int16be', 'is not in ClamAV\'s YARA grammar'],
  ['int32be', 'is not in ClamAV\'s YARA grammar'],
]);

/** String modifiers ClamAV's YARA grammar does not have (the rule is skipped). */
const UNPORTABLE_MODIFIERS: ReadonlyMap<string, string> = new Map([
  ['xor', 'is not in ClamAV\'s YARA grammar'],
  ['base64', 'is not in ClamAV\'s YARA grammar'],
  ['base64wide', 'is not in ClamAV\'s YARA grammar'],
  ['private', 'is not in ClamAV\'s YARA grammar'],
]);

/**
 * Checks one file's outline against the Portcullis subset and the meta
 * convention. Returns every problem found (empty: the file is portable).
 */
export function checkRulePortability(file: string, outline: RuleSourceOutline): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const add = (line: number, message: string, rule?: string, code: RuleProblem['code'] = 'RULE_NOT_PORTABLE'): void => {
    problems.push(rule === undefined ? { code, file, line, message } : { code, file, line, rule, message });
  };
  for (const i of outline.imports) {
    add(i.line, `import "${i.module}": YARA modules are not supported by ClamAV; remove the import`);
  }
  for (const i of outline.includes) {
    add(i.line, `include "${i.path}": includes are not allowed (every rule file is listed and digested on its own)`);
  }
  for (const rule of outline.rules) checkRule(rule, add);
  return problems;
}

type Add = (line: number, message: string, rule?: string, code?: RuleProblem['code']) => void;

function checkRule(rule: RuleOutline, add: Add): void {
  const r = rule.name;
  if (rule.isGlobal) add(rule.line, `rule ${r}: global rules are not supported by ClamAV`, r);
  if (rule.strings.length === 0) {
    add(rule.line, `rule ${r}: ClamAV skips rules without strings; add at least one string the condition uses`, r);
  }
  if (rule.strings.length > CLAMAV_MAX_STRINGS_PER_RULE) {
    add(rule.line, `rule ${r}: ${rule.strings.length} strings, ClamAV allows at most ${CLAMAV_MAX_STRINGS_PER_RULE}`, r);
  }
  for (const s of rule.strings) checkString(r, s, add);
  checkCondition(rule, add);
  if (!rule.isPrivate) checkMeta(rule, add);
}

function checkString(r: string, s: StringDeclaration, add: Add): void {
  for (const m of s.modifiers) {
    const why = UNPORTABLE_MODIFIERS.get(m);
    if (why !== undefined) add(s.line, `rule ${r}: string ${s.id}: modifier "${m}" ${why}`, r);
  }
  switch (s.kind) {
    case 'text': {
      const bytes = decodeTextLiteral(s.literal, s.line);
      if (bytes.length < 2) add(s.line, `rule ${r}: string ${s.id}: ClamAV needs at least 2 bytes`, r);
      // clamd lowercases HTML- and text-typed files before YARA sees them.
      if (!s.modifiers.includes('nocase') && /[A-Za-z]/.test(bytes)) {
        add(s.line, `rule ${r}: string ${s.id}: text strings must be nocase (clamd lowercases HTML and text before YARA)`, r);
      }
      break;
    }
    case 'regex': {
      const flags = s.literal.slice(s.literal.lastIndexOf('/') + 1);
      if (flags.includes('i') || s.modifiers.includes('nocase')) {
        add(s.line, `rule ${r}: string ${s.id}: ClamAV ignores case-insensitive regex flags; write [Aa] classes instead`, r);
      }
      if (s.modifiers.includes('wide')) {
        add(s.line, `rule ${r}: string ${s.id}: ClamAV skips rules with wide regular expressions`, r);
      }
      break;
    }
    case 'hex':
      if (longestFixedHexRun(s.literal) < 2) {
        add(s.line, `rule ${r}: string ${s.id}: ClamAV needs 2 consecutive fixed bytes in a hex string (else clamd refuses to start)`, r);
      }
      break;
  }
}

function checkCondition(rule: RuleOutline, add: Add): void {
  const r = rule.name;
  const c = rule.condition;
  for (let i = 0; i < c.length; i++) {
    const t = c[i]!;
    const after = c[i + 1];
    if (t.kind === 'identifier') {
      const why = UNPORTABLE_IDENTIFIERS.get(t.text);
      if (why !== undefined) add(t.line, `rule ${r}: condition: "${t.text}" ${why}`, r);
    }
    if (t.kind === 'length-id') add(t.line, `rule ${r}: condition: match length (${t.text}) is not in ClamAV's YARA grammar`, r);
    // Measured: ClamAV 1.4.6 reads 0x80000000 and above as negative 32-bit numbers (== never true, filesize < 0x80000000 false).
    if (t.kind === 'number' && /^0x/i.test(t.text) && Number.parseInt(t.text.slice(2), 16) >= 0x8000_0000) {
      add(t.line, `rule ${r}: condition: ClamAV reads ${t.text} as a negative number; write it in decimal (${Number.parseInt(t.text.slice(2), 16)})`, r);
    }
    if (t.kind === 'count-id' && after?.kind === 'identifier' && after.text === 'in') {
      add(t.line, `rule ${r}: condition: "${t.text} in (range)" is not in ClamAV's YARA grammar`, r);
    }
    if (t.kind === 'punct' && t.text === '%' && after?.kind === 'identifier' && after.text === 'of') {
      add(t.line, `rule ${r}: condition: "N% of" is not in ClamAV's YARA grammar`, r);
    }
  }
}

function checkMeta(rule: RuleOutline, add: Add): void {
  const r = rule.name;
  for (const key of REQUIRED_META) {
    const m = rule.meta.get(key);
    if (m === undefined || typeof m.value !== 'string' || m.value.trim() === '') {
      add(rule.line, `rule ${r}: meta "${key}" must be a non-empty text value`, r, 'RULE_META_INVALID');
    }
  }
  const severity = rule.meta.get('severity');
  if (severity !== undefined && !(SEVERITIES as readonly unknown[]).includes(severity.value)) {
    add(severity.line, `rule ${r}: meta severity must be one of ${SEVERITIES.join(', ')}`, r, 'RULE_META_INVALID');
  }
}
