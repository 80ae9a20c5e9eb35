/**
 * A YARA match explained, as one line: the reason detail of a YARA_MATCH in
 * the scan report, the audit record and the review page, and where the
 * technician's screen finds the rule's description. Pure; the format is
 * stable (docs/yara-engine.md, "Matches explained"):
 *
 *   <rule> [<namespace>] | <description> | reference: <reference> | strings: $a at 0x1f0, 0x400 (3 matches); $b at 0x2200
 *
 * Fields after the description are optional and labelled; free text has `|`
 * replaced and control characters removed, and is bounded.
 */

export interface YaraMatchFacts {
  readonly rule: string;
  readonly namespace: string;
  readonly description: string | null;
  readonly reference: string | null;
  readonly severity: string | null;
  /** Matched strings, each with its first offsets (bytes from the file's start) and its count. */
  readonly strings: ReadonlyArray<{ readonly id: string; readonly count: number; readonly offsets: readonly number[] }>;
  /** Set when ClamAV's own YARA matched in its view of the file (decoded macros, normalised text): no offsets. */
  readonly clamavView?: boolean;
}

const NO_DESCRIPTION = 'no description';
const FREE_TEXT_CHARS = 300;

function clean(text: string, max = FREE_TEXT_CHARS): string {
   
  const plain = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').replace(/\|/g, '/').replace(/\s+/g, ' ').trim();
  return plain.length > max ? `${plain.slice(0, max - 3)}...` : plain;
}

export function formatYaraMatch(f: YaraMatchFacts): string {
  const parts = [`${clean(f.rule, 128).replace(/ /g, '_')} [${clean(f.namespace, 256).replace(/[[\]]/g, '_')}]`, f.description ? clean(f.description) : NO_DESCRIPTION];
  if (f.reference) parts.push(`reference: ${clean(f.reference)}`);
  if (f.severity) parts.push(`severity: ${clean(f.severity, 32)}`);
  if (f.strings.length > 0) {
    parts.push(`strings: ${f.strings.map((s) => `${clean(s.id, 64)} at ${s.offsets.map((o) => `0x${o.toString(16)}`).join(', ')}${s.count > s.offsets.length ? ` (${s.count} matches)` : ''}`).join('; ')}`);
  }
  if (f.clamavView === true) parts.push('in ClamAV\'s view of the file (no offsets)');
  return parts.join(' | ');
}

/**
 * The facts of a detail `formatYaraMatch` wrote, or null for any other text (a ClamAV signature name).
 * A member's detail starts with its path in the container (`a.zip!/b.exe: `): that is `member`.
 */
export function parseYaraMatch(detail: string): (YaraMatchFacts & { readonly member?: string }) | null {
  const whole = parseOne(detail);
  if (whole !== null) return whole;
  for (let at = detail.indexOf(': '); at !== -1; at = detail.indexOf(': ', at + 1)) {
    const facts = parseOne(detail.slice(at + 2));
    if (facts !== null) return { ...facts, member: detail.slice(0, at) };
  }
  return null;
}

function parseOne(detail: string): YaraMatchFacts | null {
  const parts = detail.split(' | ');
  const head = /^(\S+) \[([^\]]*)\]$/.exec(parts[0] ?? '');
  if (head === null || parts.length < 2) return null;
  let reference: string | null = null;
  let severity: string | null = null;
  let clamavView = false;
  const strings: { id: string; count: number; offsets: number[] }[] = [];
  for (const part of parts.slice(2)) {
    if (part.startsWith('reference: ')) reference = part.slice('reference: '.length);
    else if (part.startsWith('severity: ')) severity = part.slice('severity: '.length);
    else if (part.startsWith('strings: ')) {
      for (const s of part.slice('strings: '.length).split('; ')) {
        const m = /^(\S+) at ((?:0x[0-9a-f]+(?:, )?)+)(?: \((\d+) matches\))?$/.exec(s);
        if (m === null) return null;
        const offsets = m[2]!.split(', ').map((o) => parseInt(o, 16));
        strings.push({ id: m[1]!, offsets, count: m[3] === undefined ? offsets.length : Number(m[3]) });
      }
    } else if (part.startsWith('in ClamAV')) clamavView = true;
    else return null;
  }
  const description = parts[1] === NO_DESCRIPTION ? null : parts[1]!;
  return { rule: head[1]!, namespace: head[2]!, description, reference, severity, strings, ...(clamavView ? { clamavView } : {}) };
}
