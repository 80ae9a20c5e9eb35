/**
 * The agent's verified import against a plain copy of the same files, same run.
 *
 *   node bench/import.ts [--mib 3072] [--work-dir DIR] [--runs 5] [--agent CMD] [--keep-cache]
 *                        [--digests blake3|sha256|both] [--files N [--file-bytes B]]
 *
 * The drive is a generated tree (bench/tree.ts) with a manifest signed the way
 * the kiosk signs it. Both sides read the drive from page cache and write to
 * the same filesystem; both end with the data on disk: the agent fsyncs each
 * file before it links it into place, the plain copy is `cp -r` then `sync`.
 * Runs alternate (copy, then import), each from the same memory state (see
 * settle()); each import is compared with the copy just before it, and the
 * median of those ratios is the result. The best of each is shown too.
 * Target: import <= 1.25x.
 *
 * `--agent` runs another build of the agent instead of `node agent/bin/...`,
 * e.g. the single executable from `node agent/sea/build.ts`. `--agent-before
 * CMD` imports with a second build in each round too (an older commit's
 * executable): before and after on the same tree, same run.
 *
 * Each round also runs bench/bare-copy.ts: the per-byte work of any copy that
 * hashes what it copies (read into the process, the same digests the agent
 * checks, write, one sync), without the agent's checks, names and log.
 * bare / copy is the floor the import's ratio can approach on this machine;
 * import / bare is what the agent adds (target: within 1.10x).
 *
 * `--digests` sets the trust store's policy.digests for the import and the
 * same digests for the bare copy (default blake3, the agent's default).
 *
 * `--files N` replaces the mixed tree with N small files of B bytes (default
 * 2 048) in folders of 200, an engineering drive of many small files
 * (issue 23: 100 000 of them, at most 2x the copy and 200 MiB peak RSS). Each
 * side's peak RSS (GNU time %M) is printed beside its time.
 *
 * On a VM whose balloon driver reports freed memory to the host (Linux free
 * page reporting), memory freed by dropping the page cache is handed back to
 * the host every few seconds, and a run that fills the page cache from it
 * pays a host fault per page: the same copy took 2.7 s or 8 s depending on
 * when reporting last ran. So, when root, the bench holds reporting back
 * while it runs (page_reporting_order set to the highest order the kernel
 * accepts) and restores the setting at the end; `--keep-page-reporting`
 * leaves it alone. Those host faults cost both sides alike and so pull the
 * ratio towards 1: holding them back is the harder test for the import.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { DIGEST_CHOICES, type DigestChoice } from '../agent/file-digest.ts';
import { buildStatement, type ApprovedFile } from '../kiosk/core/build-statement.ts';
import { hashFile } from '../kiosk/engines/hash-file.ts';
import { MANIFEST_PATH, signManifest } from '../manifest/index.ts';
import { DEFAULT_IDENTITY, DEFAULT_MEDIA, kioskKey, writeTrust } from '../test/support/agent-fixtures.ts';
import { median } from './median.ts';
import { buildTree, filler } from './tree.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '3072' },
    'work-dir': { type: 'string' },
    runs: { type: 'string', default: '5' },
    agent: { type: 'string' },
    'keep-cache': { type: 'boolean', default: false },
    'keep-page-reporting': { type: 'boolean', default: false },
    digests: { type: 'string', default: 'blake3' },
    files: { type: 'string' },
    'agent-before': { type: 'string' },
    'file-bytes': { type: 'string', default: '2048' },
  },
});
if (!(DIGEST_CHOICES as readonly string[]).includes(values.digests)) throw new Error(`--digests: expected ${DIGEST_CHOICES.join(', ')}`);
const digests = values.digests as DigestChoice;

const PAGE_REPORTING_ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';

/** Holds back free page reporting (see above); returns how to restore it, or null when it is not there or not ours to change. */
function holdPageReporting(): { readonly note: string; restore(): void } | null {
  if (values['keep-page-reporting'] || process.getuid?.() !== 0 || !existsSync(PAGE_REPORTING_ORDER)) return null;
  const before = readFileSync(PAGE_REPORTING_ORDER, 'utf8').trim();
  for (let order = 20; order > Number(before); order--) {
    try {
      writeFileSync(PAGE_REPORTING_ORDER, String(order));
    } catch {
      continue; // above the kernel's highest page order
    }
    const ours = String(order);
    return {
      note: `free page reporting held back (page_reporting_order ${before} -> ${order}, restored at the end)`,
      // Only if it is still the value this run wrote: a run started meanwhile restores its own.
      restore: () => {
        if (readFileSync(PAGE_REPORTING_ORDER, 'utf8').trim() === ours) writeFileSync(PAGE_REPORTING_ORDER, before);
      },
    };
  }
  return null;
}
const pageReporting = holdPageReporting();
process.on('exit', () => pageReporting?.restore());
for (const [signal, code] of [['SIGHUP', 129], ['SIGINT', 130], ['SIGTERM', 143]] as const) process.on(signal, () => process.exit(code));

const work = mkdtempSync(join(values['work-dir'] ?? tmpdir(), 'bench-import-'));
const drive = join(work, 'drive');
const tree = values.files === undefined ? await buildTree(drive, Number(values.mib)) : buildSmallFiles(drive, Number(values.files), Number(values['file-bytes']));

/** N files of `size` bytes (distinct, poorly compressible), 200 to a folder. */
function buildSmallFiles(root: string, files: number, size: number): { files: number; bytes: number } {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `p${Math.floor(i / 200)}`);
    if (i % 200 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `part-${i}.dat`), filler(size, i + 1));
  }
  return { files, bytes: files * size };
}

// Sign the tree as the kiosk would (hashes by the kiosk's own hasher).
const approved: ApprovedFile[] = [];
for (const entry of readdirSync(drive, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue;
  const path = join(entry.parentPath, entry.name);
  const d = await hashFile(path);
  approved.push({ path: relative(drive, path), sha256: d.sha256, blake3: d.blake3, size: d.size });
}
const statement = buildStatement({
  kioskId: 'bench', keyId: kioskKey.keyId, operatorId: 'bench', issuedAt: new Date(Date.now() - 60_000), validitySeconds: 3600,
  scan: { id: 'bench', fileCount: approved.length, byteCount: tree.bytes }, media: DEFAULT_MEDIA,
  engines: { clamav: null, yara: null }, allowlist: null, policy: { id: 'bench', digest: `sha256:${'0'.repeat(64)}` },
  approved, blocked: [],
});
execFileSync('mkdir', ['-p', join(drive, '.portcullis')]);
writeFileSync(join(drive, MANIFEST_PATH), signManifest(statement, kioskKey));
const trust = writeTrust({ policy: { digests } }, join(work, 'trust.json'));
const identity = join(work, 'identity.json');
writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
const agentCommand = values.agent ? [values.agent] : [process.execPath, join(import.meta.dirname, '../agent/bin/portcullis-agent.js')];

/**
 * Each run starts from the same memory state: written-back and dropped page
 * cache (when root and not --keep-cache), then the drive and the agent's own
 * code read back in. Without this the runs drift: on this VM a copy took 9 s
 * after a fresh start and 20-28 s a few runs later with the same tree.
 */
const dropCaches = !values['keep-cache'] && process.getuid?.() === 0;
function settle(): void {
  execFileSync('sync');
  if (dropCaches) writeFileSync('/proc/sys/vm/drop_caches', '3');
  execFileSync('sh', ['-c', `find "${drive}" -type f -exec cat {} + > /dev/null`]); // the drive from page cache for both alike
  spawnSync(agentCommand[0]!, [...agentCommand.slice(1), 'help'], { stdio: 'ignore' }); // and the agent's code
}
/** Busy CPU time of the whole machine so far (/proc/stat: all but idle and iowait), in seconds. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/u).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
}

/**
 * Runs one side under /usr/bin/time: its wall time, its own CPU time (user and system, children
 * included), and the CPU time the rest of the machine used meanwhile (kernel writeback threads, and
 * other people's work on a shared machine: what makes wall times on 2 cores drift).
 */
function measure(command: string, args: readonly string[]): { wall: number; cpu: number; rest: number; rss: number } {
  const out = join(work, 'time.txt');
  const busy = machineBusySeconds();
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', out, command, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const wall = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(r.status)}`);
  const [user, sys, rssKiB] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number];
  return { wall, cpu: user + sys, rest: Math.max(0, machineBusySeconds() - busy - user - sys), rss: rssKiB / 1024 };
}
const times = { agent: [] as number[], copy: [] as number[], bare: [] as number[], before: [] as number[] };
const cpu = { agent: [] as number[], copy: [] as number[], bare: [] as number[], before: [] as number[] };
const rss = { agent: [] as number[], copy: [] as number[], bare: [] as number[], before: [] as number[] };
const rest: number[] = [];
const record = (side: keyof typeof times, m: { wall: number; cpu: number; rest: number; rss: number }): void => {
  times[side].push(m.wall);
  cpu[side].push(m.cpu);
  rss[side].push(m.rss);
  rest.push(m.rest / m.wall);
};
for (let run = 0; run < Number(values.runs); run++) {
  const copyDest = join(work, `copy-${run}`);
  settle();
  record('copy', measure('sh', ['-c', 'cp -r "$1" "$2" && sync -f "$2"', 'copy', drive, copyDest]));
  rmSync(copyDest, { recursive: true, force: true });
  const bareDest = join(work, `bare-${run}`);
  settle();
  record('bare', measure(process.execPath, [join(import.meta.dirname, 'bare-copy.ts'), drive, bareDest, '--digests', digests]));
  rmSync(bareDest, { recursive: true, force: true });
  const importDest = join(work, `import-${run}`);
  execFileSync('mkdir', [importDest]);
  settle();
  record('agent', measure(agentCommand[0]!, [...agentCommand.slice(1), 'import', drive, '--to', importDest, '--trust', trust, '--identity', identity, '--log', join(work, 'agent.log.jsonl')]));
  rmSync(importDest, { recursive: true, force: true });
  if (values['agent-before']) {
    execFileSync('mkdir', [importDest]);
    settle();
    record('before', measure(values['agent-before'], ['import', drive, '--to', importDest, '--trust', trust, '--identity', identity, '--log', join(work, 'before.log.jsonl')]));
    rmSync(importDest, { recursive: true, force: true });
  }
}
rmSync(work, { recursive: true, force: true });

const mib = tree.bytes / 1048576;
const line = (name: string, side: keyof typeof times): string => {
  const xs = times[side];
  return `${name.padEnd(27)} median ${median(xs).toFixed(2).padStart(6)} s  ${(mib / median(xs)).toFixed(0).padStart(5)} MiB/s   best ${Math.min(...xs).toFixed(2)} s   runs ${xs.map((x) => x.toFixed(1)).join(' ')}   CPU ${median(cpu[side]).toFixed(2)} s   peak RSS ${median(rss[side]).toFixed(0)} MiB`;
};
console.log(`tree: ${tree.files} files, ${mib.toFixed(0)} MiB; ${process.version}; agent: ${agentCommand.join(' ')}; digests checked: ${digests}`);
console.log(dropCaches ? 'page cache written back and dropped before each run, then the drive read in again' : 'page cache kept between runs (not root, or --keep-cache): runs drift as the disk tires');
console.log(pageReporting?.note ?? 'free page reporting left as it is (not root, not a VM that reports, or --keep-page-reporting)');
console.log(line('plain copy (cp -r + sync)', 'copy'));
console.log(line('bare hashing copy (floor)', 'bare'));
console.log(line('agent import (verified)', 'agent'));
if (values['agent-before']) console.log(`${line('agent import, --agent-before', 'before')}   (${values['agent-before']})`);
console.log(`the rest of the machine (writeback, other work) was busy ${(median(rest) * 100).toFixed(0)}% of one core during the runs (median; runs ${rest.map((x) => (x * 100).toFixed(0)).join(' ')}%): on 2 cores, more than a few % makes the CPU-bound sides slower`);
const ratios = (xs: number[], ys: number[]): number[] => xs.map((x, i) => x / ys[i]!);
const pairs = ratios(times.agent, times.copy);
console.log(`import / plain copy, run by run: ${pairs.map((r) => r.toFixed(2)).join(' ')}`);
console.log(`bare hashing copy / plain copy = ${median(ratios(times.bare, times.copy)).toFixed(2)}x; import / bare hashing copy = ${median(ratios(times.agent, times.bare)).toFixed(2)}x (medians of the runs; target <= 1.10x)`);
console.log(`import / plain copy = ${median(pairs).toFixed(2)}x (median of the runs), ${(Math.min(...times.agent) / Math.min(...times.copy)).toFixed(2)}x best against best (target <= 1.25x; 2x for --files 100000)`);
if (values['agent-before']) console.log(`--agent-before import / plain copy = ${median(ratios(times.before, times.copy)).toFixed(2)}x (median of the runs)`);
