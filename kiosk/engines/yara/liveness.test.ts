import { describe, expect, it } from 'vitest';
import {
  describeDeadRules,
  instrumentRules,
  PROBE_MARKER,
  PROBE_SAMPLE_BYTES,
  probeCondition,
  probeSample,
  proveRulesLive,
  randomProbeKey,
  type LivenessProbe,
  type ProbeAnswer,
} from './liveness.ts';
import { outlineRuleSource } from './rule-source.ts';

const KEY = { k0: 1, k1: 2 };
const SOURCE = [
  'rule A',
  '{',
  '  strings:',
  '    $a = "aaaaa" nocase',
  '  condition:',
  '    $a and #a > 1 // two at least',
  '}',
  'private rule P { strings: $p = "ppppp" nocase condition: $p }',
  'rule B { strings: $b = "bbbbb" nocase condition: P or $b }',
  '',
].join('\n');
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const file = (name: string, source: string) => ({ name, bytes: new Uint8Array(Buffer.from(source, 'latin1')) });

describe('probe samples and conditions', () => {
  it('lays a sample out as marker, key and index (u32 little-endian), then zeros no probe reads', () => {
    const sample = probeSample({ k0: 0x0102_0304, k1: 0x7fff_ffff }, 7);
    expect(sample).toHaveLength(PROBE_SAMPLE_BYTES);
    expect(Buffer.from(sample.subarray(0, 16)).toString('hex')).toBe('00504c50' + '04030201' + 'ffffff7f' + '07000000');
    expect(sample.subarray(16).every((b) => b === 0)).toBe(true);
    expect(new DataView(sample.buffer).getUint32(0, true)).toBe(PROBE_MARKER);
  });

  it('writes the condition in decimal (ClamAV never matches a hex constant of 0x80000000 or more)', () => {
    expect(probeCondition({ k0: 0x7fff_ffff, k1: 5 }, 3)).toBe(
      'uint32(0) == 1347178496 and uint32(4) == 2147483647 and uint32(8) == 5 and uint32(12) == 3',
    );
  });

  it('refuses key words over 31 bits and negative indexes', () => {
    expect(() => probeSample({ k0: 0x8000_0000, k1: 0 }, 0)).toThrow(RangeError);
    expect(() => probeCondition({ k0: 0, k1: 1.5 }, 0)).toThrow(RangeError);
    expect(() => probeSample(KEY, -1)).toThrow(RangeError);
  });

  it('draws a fresh 31-bit key each time', () => {
    const keys = Array.from({ length: 8 }, randomProbeKey);
    for (const k of keys) for (const v of [k.k0, k.k1]) expect(v >= 0 && v <= 0x7fff_ffff && Number.isInteger(v)).toBe(true);
    expect(new Set(keys.map((k) => `${k.k0}:${k.k1}`)).size).toBe(8);
  });
});

describe('instrumentRules', () => {
  const result = instrumentRules([file('a.yar', SOURCE)], KEY);
  const staged = text(result.files[0]!.bytes);

  it('widens each condition with its probe and adds a companion right after a private rule, on the same line', () => {
    expect(staged.split('\n')).toEqual([
      'rule A',
      '{',
      '  strings:',
      '    $a = "aaaaa" nocase',
      '  condition:',
      `    ($a and #a > 1) or (${probeCondition(KEY, 0)}) // two at least`,
      '}',
      `private rule P { strings: $p = "ppppp" nocase condition: ($p) or (${probeCondition(KEY, 1)}) }` +
        ' rule Portcullis_Probe_1 { strings: $p = { 00 50 4C 50 01 00 00 00 02 00 00 00 01 00 00 00 } condition: $p at 0 and P }',
      `rule B { strings: $b = "bbbbb" nocase condition: (P or $b) or (${probeCondition(KEY, 2)}) }`,
      '',
    ]);
  });

  it('keeps every rule on its source line, so libclamav messages name the rule file lines', () => {
    const before = outlineRuleSource(SOURCE).rules.map((r) => [r.name, r.line]);
    const after = outlineRuleSource(staged).rules.map((r) => [r.name, r.line]);
    expect(after).toEqual([...before.slice(0, 2), ['Portcullis_Probe_1', 8], ...before.slice(2)]);
  });

  it('has one probe per rule, the private one reported through its companion, and counts the companions as loaded', () => {
    expect(result.probes.map((p) => [p.rule, p.file, p.line, p.index, p.isPrivate, p.signature])).toEqual([
      ['A', 'a.yar', 1, 0, false, 'YARA.A.UNOFFICIAL'],
      ['P', 'a.yar', 8, 1, true, 'YARA.Portcullis_Probe_1.UNOFFICIAL'],
      ['B', 'a.yar', 9, 2, false, 'YARA.B.UNOFFICIAL'],
    ]);
    expect(result.probes.map((p) => Buffer.from(p.sample).equals(Buffer.from(probeSample(KEY, p.index))))).toEqual([true, true, true]);
    expect(result.loadedRuleCount).toBe(4);
  });

  it('numbers rules across files in order and never reuses a rule name for a companion', () => {
    const r = instrumentRules(
      [file('a.yar', 'rule Portcullis_Probe_1 { strings: $a = "aaaaa" nocase condition: $a }\n'), file('b.yar', 'private rule Q { strings: $q = "qqqqq" nocase condition: $q }\n')],
      KEY,
    );
    expect(r.probes.map((p) => [p.file, p.index, p.signature])).toEqual([
      ['a.yar', 0, 'YARA.Portcullis_Probe_1.UNOFFICIAL'],
      ['b.yar', 1, 'YARA.Portcullis_Probe_1_.UNOFFICIAL'],
    ]);
    expect(text(r.files[1]!.bytes)).toContain('rule Portcullis_Probe_1_ {');
  });

  it('changes nothing but the insertions: removing them gives the original bytes back', () => {
    const stripped = staged
      .replace(/ rule Portcullis_Probe_\d+ \{[^}]*\{[^}]*\}[^}]*\}/g, '')
      .replace(/\) or \(uint32\(0\) == \d+ and uint32\(4\) == \d+ and uint32\(8\) == \d+ and uint32\(12\) == \d+\)/g, '')
      .replace(/condition:(\s*)\(/g, 'condition:$1');
    expect(stripped).toBe(SOURCE);
  });
});

describe('proveRulesLive', () => {
  const probes = instrumentRules([file('a.yar', SOURCE)], KEY).probes;
  const answerFor = (answers: Record<number, ProbeAnswer>) => (sample: Uint8Array): Promise<ProbeAnswer> =>
    Promise.resolve(answers[new DataView(sample.buffer, sample.byteOffset).getUint32(12, true)]!);

  it('proves a rule only when the engine names exactly its probe signature', async () => {
    const live = await proveRulesLive(
      probes,
      answerFor({
        0: { status: 'found', signature: 'YARA.A.UNOFFICIAL' },
        1: { status: 'found', signature: 'YARA.B.UNOFFICIAL' }, // B fires too on P's sample; P itself is not proven
        2: { status: 'clean' },
      }),
    );
    expect(live.proven.map((p) => p.rule)).toEqual(['A']);
    expect(live.dead.map((d) => [d.probe.rule, d.answer])).toEqual([
      ['P', 'YARA.B.UNOFFICIAL'],
      ['B', 'OK'],
    ]);
  });

  it('rejects when a scan fails: an engine that cannot answer proves nothing', async () => {
    await expect(proveRulesLive(probes, () => Promise.reject(new Error('clamd went away')))).rejects.toThrow('clamd went away');
  });

  it('keeps at most `concurrency` scans in flight and answers in probe order', async () => {
    const many: LivenessProbe[] = Array.from({ length: 20 }, (_, i) => ({ ...probes[0]!, index: i, rule: `R${i}`, signature: `YARA.R${i}.UNOFFICIAL`, sample: probeSample(KEY, i) }));
    let inFlight = 0;
    let most = 0;
    const live = await proveRulesLive(
      many,
      async (sample) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
        return { status: 'found', signature: `YARA.R${new DataView(sample.buffer).getUint32(12, true)}.UNOFFICIAL` };
      },
      3,
    );
    expect(most).toBe(3);
    expect(live.proven.map((p) => p.rule)).toEqual(many.map((p) => p.rule));
  });

  it('names the dead rules with file and line, at most ten', () => {
    const dead = Array.from({ length: 12 }, (_, i) => ({ probe: { ...probes[0]!, rule: `R${i}`, line: i + 1 }, answer: 'OK' }));
    const message = describeDeadRules(dead, 14);
    expect(message).toMatch(/^12 of 14 YARA rules did not fire on their probes: a\.yar:1 R0 \(answered OK\), /);
    expect(message).toContain('a.yar:10 R9 (answered OK), and 2 more');
    expect(message).not.toContain('R10');
  });
});
