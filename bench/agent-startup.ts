/**
 * Start-up time and peak memory of the agent's single executable, against
 * plain `node -e 0` (the floor any Node program pays) and the same agent run
 * from its TypeScript sources, same run.
 *
 *   node bench/agent-startup.ts [--runs 20] [--exe PATH]
 *
 * Without --exe the Linux executable is built first (agent/sea/build.ts).
 * Peak RSS comes from GNU time (%M). The Windows executable is the same
 * bundle in node.exe; its numbers need a Windows machine.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSea } from '../agent/sea/build.ts';
import { DEFAULT_IDENTITY, makeDrive, tempDir, writeTrust } from '../test/support/agent-fixtures.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, exe: { type: 'string' } } });
const runs = Number(values.runs);
const exe = values.exe ?? (await buildSea({ targets: ['linux-x64'], out: tempDir('bench-sea'), log: () => undefined }))[0]!.path;

const files: Record<string, Buffer> = {};
for (let i = 0; i < 20; i++) files[`plc/part-${i}.bin`] = Buffer.alloc(64 * 1024, i);
const drive = await makeDrive({ files });
const trust = writeTrust();
const identity = join(tempDir('id'), 'identity.json');
writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
const log = join(tempDir('log'), 'agent.log.jsonl');
const verify = ['verify', drive.root, '--trust', trust, '--identity', identity, '--log', log];
const script = [process.execPath, join(import.meta.dirname, '../agent/bin/portcullis-agent.js')];

/** Median wall time (ms) and median peak RSS (MiB) of a command over `runs` runs. */
function measure(command: string[]): { ms: number; rssMiB: number } {
  const ms: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    // GNU time writes "%M" (peak RSS, KiB) to the file given with -o; the command's own exit code is kept.
    const rssFile = join(tempDir('rss'), 'rss');
    try {
      execFileSync('/usr/bin/time', ['-f', '%M', '-o', rssFile, ...command], { stdio: 'ignore' });
    } catch (error) {
      if ((error as { status?: number }).status === undefined) throw error;
    }
    ms.push(performance.now() - t);
    rss.push(Number(execFileSync('tail', ['-n1', rssFile], { encoding: 'utf8' })) / 1024);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { ms: median(ms), rssMiB: median(rss) };
}

const rows: Array<[string, string[]]> = [
  ['node -e 0 (floor)', [process.execPath, '-e', '0']],
  ['single executable: help', [exe, 'help']],
  ['TypeScript sources: help', [...script, 'help']],
  ['single executable: verify 20 files', [exe, ...verify]],
  ['TypeScript sources: verify 20 files', [...script, ...verify]],
];
const floor = measure(rows[0]![1]);
console.log(`${process.version}, ${runs} runs each, medians; executable ${exe}`);
for (const [name, command] of rows) {
  const m = name.startsWith('node -e') ? floor : measure(command);
  console.log(`${name.padEnd(38)} ${m.ms.toFixed(0).padStart(5)} ms (${(m.ms / floor.ms).toFixed(2)}x floor)  ${m.rssMiB.toFixed(0).padStart(4)} MiB peak RSS`);
}
