/**
 * Benchmark: cost of YARA rules run by clamd (rules in its database
 * directory) against libyara (`yara -p N`) on a generated mixed corpus.
 * Reported as ratios, with absolute times for context.
 *
 *   node bench/yara-engines.ts [--mib 300] [--runs 3] [--threads 2] [--keep DIR]
 *
 * Needs the Debian packages yara, clamav and clamav-daemon. Generates the
 * corpus in a temporary directory (deterministic content) and removes it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { loadRuleSet, stageRuleSet } from '../kiosk/engines/yara/rule-set.ts';
import { compileWithYarac } from '../kiosk/engines/yara/yarac.ts';
import { runTool } from '../kiosk/engines/run-tool.ts';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '300' },
    runs: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    keep: { type: 'string' },
  },
});
const TOTAL_MIB = Number(args.mib);
const RUNS = Number(args.runs);
const THREADS = Number(args.threads);
const RULES = join(import.meta.dirname, '../rules/yara');
const MiB = 1024 * 1024;

// Deterministic pseudo-random bytes (xorshift32) so runs compare like with like.
function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

function logText(size: number, seed: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  let i = seed;
  while (n < size) {
    const line = `2026-11-23T08:${String(i % 60).padStart(2, '0')}:00Z HMI-${i % 7} tag=Line${i % 13}.Motor${i % 5}.Speed value=${(i * 7919) % 3000} quality=GOOD\r\n`;
    lines.push(line);
    n += line.length;
    i++;
  }
  return Buffer.from(lines.join('').slice(0, size));
}

async function generateCorpus(dir: string): Promise<{ files: number; bytes: number }> {
  const budget = TOTAL_MIB * MiB;
  const plan = [
    { share: 0.5, size: 4 * MiB, make: (s: number, k: number) => pseudoRandom(s, k + 1), ext: 'bin' },
    { share: 0.2, size: 128 * 1024, make: (s: number, k: number) => logText(s, k), ext: 'log' },
    {
      share: 0.15,
      size: 2 * MiB,
      make: (s: number, k: number) => {
        const b = pseudoRandom(s, k + 7);
        b.write('MZ', 0, 'ascii');
        b.write('kernel32.dll\0VirtualProtect\0GetProcAddress\0LoadLibraryA\0', 4096, 'ascii');
        return b;
      },
      ext: 'exe',
    },
    { share: 0.15, size: 2 * MiB, make: (s: number, k: number) => gzipSync(logText(s * 4, k)), ext: 'log.gz' },
  ];
  let files = 0;
  let bytes = 0;
  for (const [p, part] of plan.entries()) {
    const count = Math.max(1, Math.round((budget * part.share) / part.size));
    const sub = join(dir, `set${p}`);
    await mkdir(sub);
    for (let k = 0; k < count; k++) {
      const data = part.make(part.size, k);
      await writeFile(join(sub, `f${k}.${part.ext}`), data);
      files++;
      bytes += data.length;
    }
  }
  // A few files every engine must flag, so no run is "fast because broken".
  for (const sample of ['ps-cradle.ps1', 'cred-mimikatz.txt', 'shadow-delete.bat', 'canary-live.txt']) {
    await writeFile(join(dir, sample), await readFile(join(RULES, 'tests/samples', sample)));
    files++;
  }
  return { files, bytes };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out.sort();
}

async function timed(fn: () => Promise<number>): Promise<{ ms: number; hits: number }> {
  const t = process.hrtime.bigint();
  const hits = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, hits };
}

async function median(label: string, fn: () => Promise<number>): Promise<{ label: string; ms: number; hits: number }> {
  const runs: { ms: number; hits: number }[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await timed(fn));
  runs.sort((a, b) => a.ms - b.ms);
  const mid = runs[Math.floor(runs.length / 2)]!;
  return { label, ...mid };
}

// clamd INSTREAM (clamd(8)): "zINSTREAM\0", u32be-length chunks, zero-length chunk ends the stream.
async function instream(socket: string, data: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    const replies: Buffer[] = [];
    s.on('error', reject);
    s.on('data', (d: Buffer) => replies.push(d));
    s.on('end', () => resolve(Buffer.concat(replies).toString('utf8')));
    s.on('connect', () => {
      s.write('zINSTREAM\0');
      for (let o = 0; o < data.length; o += 1 * MiB) {
        const chunk = data.subarray(o, Math.min(data.length, o + MiB));
        const len = Buffer.alloc(4);
        len.writeUInt32BE(chunk.length);
        s.write(len);
        s.write(chunk);
      }
      s.end(Buffer.alloc(4));
    });
  });
}

async function startClamd(db: string, dir: string): Promise<{ socket: string; child: ChildProcess }> {
  const socket = join(dir, 'clamd.sock');
  const conf = join(dir, 'clamd.conf');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await writeFile(
    conf,
    [
      `LocalSocket ${socket}`,
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${join(dir, 'tmp')}`,
      'Foreground yes',
      'SelfCheck 0',
      `MaxThreads ${THREADS}`,
      'StreamMaxLength 100M',
      ...(process.getuid?.() === 0 ? ['User root'] : []),
      '',
    ].join('\n'),
  );
  const child = spawn('clamd', ['-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    try {
      if ((await instream(socket, Buffer.from('ping'))).includes('OK')) return { socket, child };
    } catch {
      // not listening yet
    }
  }
  child.kill('SIGKILL');
  throw new Error('clamd did not start');
}

async function stopClamd(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const work = args.keep ?? (await mkdtemp(join(tmpdir(), 'portcullis-bench-yara-')));
  try {
    const corpus = join(work, 'corpus');
    await mkdir(corpus, { recursive: true });
    const { files, bytes } = await generateCorpus(corpus);
    const paths = await listFiles(corpus);
    console.log(`corpus: ${files} files, ${(bytes / MiB).toFixed(0)} MiB; ${RUNS} runs each, median; ${THREADS} threads`);

    const set = await loadRuleSet(RULES);
    const compiled = await compileWithYarac(set.files, join(work, 'yarac'), { yaracPath: 'yarac', timeoutMs: 60_000 });
    const srcDir = join(work, 'yarac', 'src');
    const baseDb = join(work, 'db-base');
    const yaraDb = join(work, 'db-yara');
    // Baseline: one ClamAV-format test signature (no real databases here), as in the project's tests.
    const ndb = 'Portcullis.Test.Pattern:0:*:706f727463756c6c69732d746573742d7061747465726e\n';
    for (const d of [baseDb, yaraDb]) {
      await mkdir(d);
      await writeFile(join(d, 'portcullis-test.ndb'), ndb);
    }
    await stageRuleSet(set, yaraDb);

    const results: { label: string; ms: number; hits: number }[] = [];
    const countLines = (s: string, re: RegExp): number => s.split('\n').filter((l) => re.test(l)).length;
    const srcRules = set.files.map((f) => join(srcDir, f.name));

    results.push(
      await median(`yara -r -p ${THREADS} (source rules)`, async () => {
        const r = await runTool('yara', ['-r', '-p', String(THREADS), ...srcRules, corpus], { timeoutMs: 600_000 });
        return countLines(r.stdout, /^Portcullis_/);
      }),
    );
    results.push(
      await median(`yara -C -r -p ${THREADS} (compiled)`, async () => {
        const r = await runTool('yara', ['-C', '-r', '-p', String(THREADS), compiled.compiledPath, corpus], { timeoutMs: 600_000 });
        return countLines(r.stdout, /^Portcullis_/);
      }),
    );
    for (const [label, db] of [
      ['clamscan, test signature only', baseDb],
      ['clamscan, test signature + YARA rules', yaraDb],
    ] as const) {
      results.push(
        await median(label, async () => {
          const r = await runTool('clamscan', ['--no-summary', '--infected', '-r', `--database=${db}`, corpus], { timeoutMs: 600_000 });
          return countLines(r.stdout, /FOUND$/);
        }),
      );
    }
    // Load the corpus into memory once so clamd timings are engine time, not disk time.
    const contents = await Promise.all(paths.map((p) => readFile(p)));
    for (const [label, db] of [
      ['clamd INSTREAM, test signature only', baseDb],
      ['clamd INSTREAM, test signature + YARA rules', yaraDb],
    ] as const) {
      const clamdDir = join(work, `clamd-${label.includes('YARA') ? 'yara' : 'base'}`);
      const { socket, child } = await startClamd(db, clamdDir);
      try {
        results.push(
          await median(`${label} (${THREADS} streams)`, async () => {
            let next = 0;
            let hits = 0;
            const worker = async (): Promise<void> => {
              while (next < contents.length) {
                const data = contents[next++]!;
                if ((await instream(socket, data)).includes('FOUND')) hits++;
              }
            };
            await Promise.all(Array.from({ length: THREADS }, worker));
            return hits;
          }),
        );
      } finally {
        await stopClamd(child);
      }
    }
    const start = await timed(async () => {
      await loadRuleSet(RULES);
      return 0;
    });

    const base = (label: string): number => results.find((r) => r.label.startsWith(label))!.ms;
    console.log('\n| run | median ms | MiB/s | files flagged | ratio |');
    console.log('| --- | ---: | ---: | ---: | --- |');
    for (const r of results) {
      const ref = r.label.startsWith('clamd')
        ? base('clamd INSTREAM, test signature only')
        : r.label.startsWith('clamscan')
          ? base('clamscan, test signature only')
          : base('clamd INSTREAM, test signature only');
      const refName = r.label.startsWith('clamscan') ? 'clamscan base' : 'clamd base';
      console.log(
        `| ${r.label} | ${r.ms.toFixed(0)} | ${(bytes / MiB / (r.ms / 1000)).toFixed(0)} | ${r.hits} | ${(r.ms / ref).toFixed(2)}x ${refName} |`,
      );
    }
    console.log(`\nloadRuleSet (yarac + subset check + libclamav probe): ${start.ms.toFixed(0)} ms`);
    const size = (await stat(compiled.compiledPath)).size;
    console.log(`compiled rules: ${size} bytes; rule set ${set.digest}`);
  } finally {
    if (args.keep === undefined) await rm(work, { recursive: true, force: true });
  }
}

await main();
