/**
 * The functions a V8 CPU profile (`node --cpu-prof`, or NODE_OPTIONS=--cpu-prof
 * for the agent's single executable) spent most self time in, and with
 * `--callers NAME` who called NAME (four frames up), to read before/after
 * profiles side by side.
 *
 *   node bench/profile-summary.ts FILE.cpuprofile [--top 25] [--callers lstatSync]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, callers: { type: 'string' } } });
if (positionals.length !== 1) throw new Error('usage: node bench/profile-summary.ts FILE.cpuprofile [--top N] [--callers NAME]');
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const selfMicros = new Map<number, number>();
profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const nameOf = (n: ProfileNode): string => n.callFrame.functionName || '(anonymous)';
const ms = (micros: number): string => (micros / 1000).toFixed(0).padStart(7);

const rows = new Map<string, number>();
for (const n of profile.nodes) {
  const key = `${nameOf(n)} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`;
  rows.set(key, (rows.get(key) ?? 0) + (selfMicros.get(n.id) ?? 0));
}
const total = [...rows.values()].reduce((a, b) => a + b, 0);
console.log(`${ms(total)} ms sampled in all (idle included)`);
if (values.callers === undefined) {
  for (const [key, micros] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`${ms(micros)} ms  ${key}`);
} else {
  // Time in NAME and below it, by the chain of callers above it.
  const inclusive = (id: number): number => (selfMicros.get(id) ?? 0) + (byId.get(id)?.children ?? []).reduce((sum, c) => sum + inclusive(c), 0);
  const chains = new Map<string, number>();
  for (const n of profile.nodes) {
    if (nameOf(n) !== values.callers) continue;
    const chain: string[] = [];
    for (let id = parentOf.get(n.id), k = 0; id !== undefined && k < 4; id = parentOf.get(id), k++) chain.push(nameOf(byId.get(id)!));
    const key = chain.join(' < ');
    chains.set(key, (chains.get(key) ?? 0) + inclusive(n.id));
  }
  for (const [key, micros] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`${ms(micros)} ms  ${values.callers} < ${key}`);
}
