/**
 * Per-rule liveness probes: the proof that every rule of the set is live in
 * the engine that scans drives, not only the canary (docs/yara-engine.md,
 * "Every rule proven live").
 *
 * Why: libclamav can load a YARA rule, count it, and never match it. A rule
 * that fails to parse after it referenced its strings, or a rule using
 * `matches`, kills every YARA rule loaded after it, and the second case
 * prints nothing at all (measured with ClamAV 1.4.6). A count or a canary
 * cannot see that; a probe per rule can.
 *
 * How: each rule is staged with its condition widened to
 *   (<original condition>) or (<probe condition for this rule>)
 * where the probe condition reads only the first 16 bytes of the file: a fixed
 * marker, a key drawn at random for each engine start, and the rule's index.
 * The probe sample for rule i is exactly those bytes (plus padding), so it
 * makes rule i fire and no other rule's probe. No string is added (that
 * would change `all of them`, `N of them` and ClamAV's 64-string limit), and
 * an "or" can only make a rule fire more often: a probe can cause a block,
 * never a miss, and only on a file that carries this start's key. A private
 * rule is never reported, so it gets a public companion rule that fires only
 * on its sample and only when the private rule is true.
 *
 * The staged text keeps every line where it was (insertions add no line
 * breaks), so libclamav's messages about staged files name the source lines.
 */
import { randomBytes } from 'node:crypto';
import { signatureForRule } from './clamav-signature.ts';
import { outlineRuleSource } from './rule-source.ts';

/** Bytes 00 50 4C 50 ("\0PLP") at offset 0: no file format starts with them, and the NUL keeps the sample binary. */
export const PROBE_MARKER = 0x504c5000;
/**
 * bytes: 16 read by the probe conditions, then zeros. libclamav's uint8/16/32
 * reads fail on a file's last byte (measured: `uint8(15)` is false for a
 * 16-byte file), so the read bytes must not end the file.
 */
export const PROBE_SAMPLE_BYTES = 32;
/** Companion rules for private rules are named with this prefix and the rule's index. */
export const COMPANION_PREFIX = 'Portcullis_Probe_';

/**
 * Two 31-bit values. ClamAV 1.4.6 never matches `uint32(x) == 0x...` for a
 * hexadecimal constant of 0x80000000 or more, so the key stays below that
 * and is written in decimal.
 */
export interface ProbeKey {
  readonly k0: number;
  readonly k1: number;
}

export interface RuleSource {
  readonly name: string;
  /** Printable ASCII rule source (the loader refuses anything else). */
  readonly bytes: Uint8Array;
}

export interface LivenessProbe {
  /** The rule this probe proves live. */
  readonly rule: string;
  readonly file: string;
  readonly line: number;
  readonly isPrivate: boolean;
  /** Position of the rule in the set (files in order, rules in file order); the sample carries it. */
  readonly index: number;
  /** The FOUND name the engine must give the sample: the rule's own, or its companion's for a private rule. */
  readonly signature: string;
  /** The file that must make the rule fire. */
  readonly sample: Uint8Array;
}

export interface InstrumentedRuleSet {
  /** The rule files as staged: same names, conditions widened, companions added. */
  readonly files: readonly RuleSource[];
  /** One per rule, in set order. */
  readonly probes: readonly LivenessProbe[];
  /** Rules libclamav counts as loaded from `files`: the set's rules plus one companion per private rule. */
  readonly loadedRuleCount: number;
}

export function randomProbeKey(): ProbeKey {
  const bytes = randomBytes(8);
  return { k0: bytes.readUInt32LE(0) & 0x7fff_ffff, k1: bytes.readUInt32LE(4) & 0x7fff_ffff };
}

/** The probe sample for rule `index`: marker, key, index (u32 little-endian each), then zeros. */
export function probeSample(key: ProbeKey, index: number): Uint8Array {
  assertProbeKey(key);
  if (!Number.isInteger(index) || index < 0 || index > 0x7fff_ffff) throw new RangeError(`probe index ${index} out of range`);
  const sample = new Uint8Array(PROBE_SAMPLE_BYTES);
  const view = new DataView(sample.buffer);
  view.setUint32(0, PROBE_MARKER, true);
  view.setUint32(4, key.k0, true);
  view.setUint32(8, key.k1, true);
  view.setUint32(12, index, true);
  return sample;
}

/** The condition that is true exactly for `probeSample(key, index)` (YARA's uint32 is little-endian). */
export function probeCondition(key: ProbeKey, index: number): string {
  assertProbeKey(key);
  return `uint32(0) == ${PROBE_MARKER} and uint32(4) == ${key.k0} and uint32(8) == ${key.k1} and uint32(12) == ${index}`;
}

/**
 * The staged form of `files` with one probe per rule. Pure. The files must
 * already have passed the loader (yarac, the subset check): source this
 * outline reader cannot follow throws.
 */
export function instrumentRules(files: readonly RuleSource[], key: ProbeKey): InstrumentedRuleSet {
  const outlines = files.map((f) => ({ file: f, source: latin1(f.bytes), rules: outlineRuleSource(latin1(f.bytes)).rules }));
  const taken = new Set(outlines.flatMap((o) => o.rules.map((r) => r.name)));
  const probes: LivenessProbe[] = [];
  const staged: RuleSource[] = [];
  let index = 0;
  let companions = 0;
  for (const { file, source, rules } of outlines) {
    const inserts: { at: number; text: string }[] = [];
    for (const rule of rules) {
      const first = rule.condition[0];
      const last = rule.condition[rule.condition.length - 1];
      if (first === undefined || last === undefined) throw new RangeError(`${file.name}:${rule.line}: rule ${rule.name} has no condition`);
      inserts.push({ at: first.offset, text: '(' }, { at: last.offset + last.text.length, text: `) or (${probeCondition(key, index)})` });
      const sample = probeSample(key, index);
      let signature = signatureForRule(rule.name);
      if (rule.isPrivate) {
        let companion = `${COMPANION_PREFIX}${index}`;
        while (taken.has(companion)) companion += '_';
        taken.add(companion);
        companions++;
        // On the rule's own last line, right after it: no line moves, and the companion sits
        // before any later rule that references the private one (clamd reports the first match).
        const hex = Buffer.from(sample.subarray(0, 16)).toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1 ');
        inserts.push({ at: rule.end, text: ` rule ${companion} { strings: $p = { ${hex} } condition: $p at 0 and ${rule.name} }` });
        signature = signatureForRule(companion);
      }
      probes.push({ rule: rule.name, file: file.name, line: rule.line, isPrivate: rule.isPrivate, index, signature, sample });
      index++;
    }
    staged.push({ name: file.name, bytes: new Uint8Array(Buffer.from(splice(source, inserts), 'latin1')) });
  }
  return { files: staged, probes, loadedRuleCount: index + companions };
}

/** A clamd-style answer for one sample. */
export type ProbeAnswer = { readonly status: 'clean' } | { readonly status: 'found'; readonly signature: string };

export interface DeadRule {
  readonly probe: LivenessProbe;
  /** What the engine answered instead: "OK" or the signature it named. */
  readonly answer: string;
}

export interface LivenessResult {
  readonly proven: readonly LivenessProbe[];
  readonly dead: readonly DeadRule[];
}

/**
 * Scans every probe's sample with `scan` (at most `concurrency` at once) and
 * sorts the rules into proven (the engine named exactly the probe's
 * signature) and dead (anything else). A scan that throws rejects the whole
 * proof: an engine that cannot answer proves nothing.
 */
export async function proveRulesLive(
  probes: readonly LivenessProbe[],
  scan: (sample: Uint8Array) => Promise<ProbeAnswer>,
  concurrency = 4,
): Promise<LivenessResult> {
  const answers: ProbeAnswer[] = new Array<ProbeAnswer>(probes.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < probes.length) {
      const i = next++;
      answers[i] = await scan(probes[i]!.sample);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, probes.length)) }, worker));
  const proven: LivenessProbe[] = [];
  const dead: DeadRule[] = [];
  probes.forEach((probe, i) => {
    const answer = answers[i]!;
    if (answer.status === 'found' && answer.signature === probe.signature) proven.push(probe);
    else dead.push({ probe, answer: answer.status === 'clean' ? 'OK' : answer.signature });
  });
  return { proven, dead };
}

/** "2 of 15 YARA rules did not fire on their probes: a.yar:3 Rule_A (answered OK), ..." (the first 10 named). */
export function describeDeadRules(dead: readonly DeadRule[], total: number): string {
  const named = dead.slice(0, 10).map((d) => `${d.probe.file}:${d.probe.line} ${d.probe.rule} (answered ${d.answer})`);
  const more = dead.length > 10 ? `, and ${dead.length - 10} more` : '';
  return `${dead.length} of ${total} YARA rules did not fire on their probes: ${named.join(', ')}${more}`;
}

function assertProbeKey(key: ProbeKey): void {
  for (const v of [key.k0, key.k1]) {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fff_ffff) throw new RangeError(`probe key word ${v} is not a 31-bit integer`);
  }
}

/** `source` with each text inserted at its offset (offsets into the original; equal offsets keep their order). */
function splice(source: string, inserts: readonly { at: number; text: string }[]): string {
  const sorted = inserts.map((ins, order) => ({ ...ins, order })).sort((a, b) => a.at - b.at || a.order - b.order);
  let out = '';
  let from = 0;
  for (const { at, text } of sorted) {
    out += source.slice(from, at) + text;
    from = at;
  }
  return out + source.slice(from);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
