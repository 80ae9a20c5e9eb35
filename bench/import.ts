/**
 * The agent's verified import against a plain copy of the same files, same run.
 *
 *   node bench/import.ts [--mib 3072] [--work-dir DIR] [--runs 5] [--agent CMD] [--keep-cache]
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
 * e.g. the single executable from `node agent/sea/build.ts`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { buildStatement, type ApprovedFile } from '../kiosk/build-statement.ts';
import { hashFile } from '../kiosk/hash-file.ts';
import { MANIFEST_PATH, signManifest } from '../manifest/index.ts';
import { DEFAULT_IDENTITY, DEFAULT_MEDIA, kioskKey, writeTrust } from '../test/agent/fixtures.ts';
import { median } from './median.ts';
import { buildTree } from './tree.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '3072' },
    'work-dir': { type: 'string' },
    runs: { type: 'string', default: '5' },
    agent: { type: 'string' },
    'keep-cache': { type: 'boolean', default: false },
  },
});

const work = mkdtempSync(join(values['work-dir'] ?? tmpdir(), 'bench-import-'));
const drive = join(work, 'drive');
const tree = await buildTree(drive, Number(values.mib));

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
const trust = writeTrust({}, join(work, 'trust.json'));
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
function seconds(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}
const times = { agent: [] as number[], copy: [] as number[] };
for (let run = 0; run < Number(values.runs); run++) {
  const copyDest = join(work, `copy-${run}`);
  settle();
  times.copy.push(seconds(() => {
    execFileSync('cp', ['-r', drive, copyDest]);
    execFileSync('sync', ['-f', copyDest]);
  }));
  rmSync(copyDest, { recursive: true, force: true });
  const importDest = join(work, `import-${run}`);
  execFileSync('mkdir', [importDest]);
  settle();
  let status: number | null = null;
  const s = seconds(() => {
    const r = spawnSync(agentCommand[0]!, [...agentCommand.slice(1), 'import', drive, '--to', importDest, '--trust', trust, '--identity', identity, '--log', join(work, 'agent.log.jsonl')], { stdio: ['ignore', 'ignore', 'inherit'] });
    status = r.status;
  });
  if (status !== 0) throw new Error(`agent import exited ${String(status)}`);
  times.agent.push(s);
  rmSync(importDest, { recursive: true, force: true });
}
rmSync(work, { recursive: true, force: true });

const mib = tree.bytes / 1048576;
const line = (name: string, xs: number[]): string =>
  `${name.padEnd(27)} median ${median(xs).toFixed(2).padStart(6)} s  ${(mib / median(xs)).toFixed(0).padStart(5)} MiB/s   best ${Math.min(...xs).toFixed(2)} s   runs ${xs.map((x) => x.toFixed(1)).join(' ')}`;
console.log(`tree: ${tree.files} files, ${mib.toFixed(0)} MiB; ${process.version}; agent: ${agentCommand.join(' ')}`);
console.log(dropCaches ? 'page cache written back and dropped before each run, then the drive read in again' : 'page cache kept between runs (not root, or --keep-cache): runs drift as the disk tires');
console.log(line('plain copy (cp -r + sync)', times.copy));
console.log(line('agent import (verified)', times.agent));
const pairs = times.agent.map((a, i) => a / times.copy[i]!);
console.log(`import / plain copy, run by run: ${pairs.map((r) => r.toFixed(2)).join(' ')}`);
console.log(`import / plain copy = ${median(pairs).toFixed(2)}x (median of the runs), ${(Math.min(...times.agent) / Math.min(...times.copy)).toFixed(2)}x best against best (target <= 1.25x)`);
