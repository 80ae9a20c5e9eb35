/**
 * Adapter: loads a directory of staged rule files into the real libclamav
 * (`clamscan -d DIR`) and scans the canary and every rule's probe sample,
 * before clamd ever sees them. This catches what neither yarac nor the
 * subset check can: a rule ClamAV skips (it only logs a warning), a database
 * it refuses ("Malformed database": clamd would not start), a rule that
 * crashes the engine, and rules that load and never match (liveness.ts).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canarySample, CANARY_SIGNATURE } from './canary.ts';
import { YaraRuleError } from './errors.ts';
import { describeDeadRules, proveRulesLive } from './liveness.ts';
import type { LivenessProbe, ProbeAnswer } from './liveness.ts';
import { runTool, ToolStartError } from '../run-tool.ts';

export interface ClamavProbeOptions {
  readonly clamscanPath: string;
  readonly timeoutMs: number;
}

export interface ClamavProbeResult {
  /** "Known viruses" as counted by libclamav: every loaded YARA rule, private ones included. */
  readonly loadedSignatures: number;
  /** e.g. "ClamAV 1.4.6". */
  readonly engineVersion: string;
}

// Scanned before the canary: a rule that crashes libclamav does so when no
// earlier rule has matched the data (measured with "contains"), so the probe
// needs inputs no rule matches, text and binary.
const BENIGN_TEXT = 'Portcullis rule probe: a plain text file that no rule may match.\n';
const BENIGN_BINARY = Uint8Array.from({ length: 512 }, (_, i) => (i * 37 + 11) & 0xff);

/**
 * Scans two benign samples, the canary and each probe's sample with only `databaseDir` loaded, in
 * one clamscan run. `workDir` is a private directory the caller owns. Throws
 * RULE_ENGINE_REJECTED unless libclamav loads exactly `expectedSignatures`
 * rules without a warning, finds nothing in the benign samples and reports
 * the canary signature, and RULE_NOT_LIVE (naming the first dead rule's file
 * and line) unless every probe's sample is reported as its probe's signature.
 */
export async function probeClamavRules(
  databaseDir: string,
  workDir: string,
  expectedSignatures: number,
  options: ClamavProbeOptions,
  probes: readonly LivenessProbe[] = [],
): Promise<ClamavProbeResult> {
  const benignText = join(workDir, 'benign.txt');
  const benignBinary = join(workDir, 'benign.bin');
  const canary = join(workDir, 'canary.txt');
  await writeFile(benignText, BENIGN_TEXT, { flag: 'wx', mode: 0o600 });
  await writeFile(benignBinary, BENIGN_BINARY, { flag: 'wx', mode: 0o600 });
  await writeFile(canary, canarySample(), { flag: 'wx', mode: 0o600 });
  const probePaths = new Map<Uint8Array, string>();
  for (const probe of probes) {
    const path = join(workDir, `probe-${probe.index}.bin`);
    await writeFile(path, probe.sample, { flag: 'wx', mode: 0o600 });
    probePaths.set(probe.sample, path);
  }
  let r;
  try {
    r = await runTool(options.clamscanPath, [`--database=${databaseDir}`, benignText, benignBinary, canary, ...probePaths.values()], {
      timeoutMs: options.timeoutMs,
    });
  } catch (error) {
    if (error instanceof ToolStartError) {
      throw new YaraRuleError(
        'RULE_COMPILER_UNAVAILABLE',
        `cannot run ${options.clamscanPath}: install the Debian package "clamav" (scripts/setup.sh)`,
        { cause: error },
      );
    }
    throw error;
  }
  const reject = (why: string): never => {
    throw new YaraRuleError('RULE_ENGINE_REJECTED', `libclamav rejected the YARA rules: ${why}; fix the rules before clamd loads them`);
  };
  if (r.timedOut) reject(`clamscan did not finish within ${options.timeoutMs} ms`);
  if (r.signal !== null) reject(`clamscan crashed (${r.signal}) loading the rules or scanning the canary`);
  // libclamav reports skipped rules only as log lines; any of them means a rule is not live.
  const engineLines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(LibClamAV (Error|Warning)|ERROR|WARNING)/.test(l));
  if (engineLines.length > 0) reject(engineLines.slice(0, 6).join(' | '));
  for (const benign of [benignText, benignBinary]) {
    if (!r.stdout.includes(`${benign}: OK`)) reject(`a rule matched a benign probe sample (${r.stdout.trim().split('\n')[0] ?? ''})`);
  }
  // clamscan prints "<path>: OK" or "<path>: <NAME> FOUND" per file; a file it did not answer for is dead.
  const answers = new Map<string, ProbeAnswer>();
  for (const line of r.stdout.split('\n')) {
    const found = /^(.+): (\S+) FOUND$/.exec(line);
    if (found !== null) answers.set(found[1]!, { status: 'found', signature: found[2]! });
    else if (line.endsWith(': OK')) answers.set(line.slice(0, -': OK'.length), { status: 'clean' });
  }
  const live = await proveRulesLive(probes, (sample) => {
    const answer = answers.get(probePaths.get(sample) ?? '');
    return Promise.resolve(answer ?? { status: 'found', signature: '(no answer)' });
  });
  const firstDead = live.dead[0];
  if (firstDead !== undefined) {
    throw new YaraRuleError(
      'RULE_NOT_LIVE',
      `libclamav loaded the YARA rules but ${describeDeadRules(live.dead, probes.length)}; ` +
        'a rule loaded before a dead one can cause this (docs/yara-engine.md, "Every rule proven live")',
      {
        file: firstDead.probe.file,
        line: firstDead.probe.line,
        problems: live.dead.map(({ probe, answer }) => ({
          code: 'RULE_NOT_LIVE' as const,
          file: probe.file,
          line: probe.line,
          rule: probe.rule,
          message: `rule ${probe.rule} did not fire on its probe (libclamav answered ${answer})`,
        })),
      },
    );
  }
  if (r.code !== 1 || !r.stdout.includes(`${canary}: ${CANARY_SIGNATURE} FOUND`)) {
    reject(`the canary was not reported as ${CANARY_SIGNATURE} (exit ${r.code ?? '?'}: ${r.stdout.trim().split('\n')[0] ?? ''})`);
  }
  const known = /^Known viruses: (\d+)$/m.exec(r.stdout);
  const engine = /^Engine version: (\S+)$/m.exec(r.stdout);
  if (known === null || engine === null) reject('clamscan printed no scan summary');
  const loadedSignatures = Number(known![1]);
  if (loadedSignatures !== expectedSignatures) {
    reject(`${loadedSignatures} rule(s) loaded, ${expectedSignatures} expected`);
  }
  return { loadedSignatures, engineVersion: `ClamAV ${engine![1]!}` };
}
