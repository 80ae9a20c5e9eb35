/**
 * Peak memory of a kiosk scan that writes the signed manifest (`scan --key`)
 * beside the same scan writing nothing (`--no-write`), same tree, same run:
 * the difference is what signing, writing, reading back and verifying the
 * manifest cost. Each scan is the real CLI in a fresh process with the
 * kiosk's V8 flags (its bin's shebang), clamd with the test database; peak
 * RSS from GNU time (%M).
 *
 *   node bench/approval-memory.ts [--counts 10000,100000] [--runs 1] [--repo DIR]
 *
 * The tree is small text files in 500 folders (bench/scan.ts --memory's).
 * `--repo` runs the kiosk of another checkout (e.g. an older commit unpacked
 * with `git archive`, node_modules linked) on the same trees: before and after
 * in one run. Target (issue 23): `scan --key` of 100 000 files at most 200 MiB.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './median.ts';

const { values } = parseArgs({
  options: { counts: { type: 'string', default: '10000,100000' }, runs: { type: 'string', default: '1' }, repo: { type: 'string' } },
});
const repos = [resolve(import.meta.dirname, '..'), ...(values.repo ? [resolve(values.repo)] : [])];

/** One scan by the CLI of `repo`; its peak RSS (MiB), wall time (s) and exit code. */
function scan(repo: string, root: string, work: string, args: readonly string[]): { rss: number; seconds: number; exit: number | null } {
  const timeFile = join(work, 'time.txt');
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', timeFile, join(repo, 'kiosk/bin/portcullis-kiosk.js'), 'scan', root, '--clamav-db', 'test', '--json',
    '--db', join(work, `audit-${Math.random().toString(16).slice(2)}.db`), '--policy', join(work, 'policy.json'), ...args], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 28 });
  const seconds = (performance.now() - started) / 1000;
  const rss = Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) / 1024;
  if (r.status !== 0 && r.status !== 10) throw new Error(`scan exited ${String(r.status)}: ${r.stderr.toString().slice(-2000)}`);
  return { rss, seconds, exit: r.status };
}

const work = mkdtempSync(join(tmpdir(), 'bench-approval-'));
try {
  const policy = JSON.parse(readFileSync(join(repos[0]!, 'rules/policy/default.json'), 'utf8')) as { limits: { maxEntries: number } };
  policy.limits.maxEntries = Math.max(policy.limits.maxEntries, 1_000_000);
  writeFileSync(join(work, 'policy.json'), JSON.stringify(policy));
  execFileSync(join(repos[0]!, 'kiosk/bin/portcullis-kiosk.js'), ['keygen', '--out', join(work, 'key')], { stdio: 'ignore' });
  const key = join(work, 'key/kiosk.key');
  console.log(`${process.version}; ${values.runs} run(s) per row, medians; peak RSS of the whole scan (GNU time %M), kiosk CLI in a fresh process`);
  for (const count of values.counts.split(',').map(Number)) {
    const root = join(work, `tree-${count}`);
    for (let i = 0; i < count; i++) {
      const dir = join(root, `d${i % 500}`);
      if (i < 500) mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`);
    }
    for (const repo of repos) {
      const rows = { key: [] as number[], none: [] as number[], keySeconds: [] as number[], noneSeconds: [] as number[] };
      for (let run = 0; run < Number(values.runs); run++) {
        const none = scan(repo, root, work, ['--no-write']);
        const withKey = scan(repo, root, work, ['--key', key]);
        rows.none.push(none.rss);
        rows.noneSeconds.push(none.seconds);
        rows.key.push(withKey.rss);
        rows.keySeconds.push(withKey.seconds);
      }
      const manifest = readFileSync(join(root, '.portcullis/manifest.dsse.json')).length / 1048576;
      console.log(`${String(count).padStart(7)} files, ${repo === repos[0] ? 'this checkout' : repo}: scan --key ${median(rows.key).toFixed(0)} MiB peak RSS (${median(rows.keySeconds).toFixed(1)} s), `
        + `--no-write ${median(rows.none).toFixed(0)} MiB (${median(rows.noneSeconds).toFixed(1)} s): the manifest (${manifest.toFixed(1)} MiB envelope) adds ${(median(rows.key) - median(rows.none)).toFixed(0)} MiB`);
    }
    rmSync(root, { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
