/**
 * Verifying a manifest of many subjects in a fresh process: the agent's single
 * executable (`portcullis-agent manifest DRIVE`: read, verify, nothing else),
 * beside the floor every verifier pays (process start, reading the file,
 * base64, Ed25519 over the payload) and the full steps the one-pass readers
 * replaced (verifyManifest with onePass: false), each in a fresh process.
 *
 *   node bench/manifest-check.ts [--subjects 100000] [--runs 5] [--exe var/sea/portcullis-agent]
 *
 * The manifest is signed as the kiosk signs it (sorted subjects, names of
 * four components). Target (issue 23): 100 000 subjects verified in at most
 * 1 s in a fresh single-executable process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, verify } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildStatement, type ApprovedFile } from '../kiosk/core/build-statement.ts';
import { decodeBase64Strict, IN_TOTO_PAYLOAD_TYPE, MANIFEST_PATH, preAuthEncoding, signManifest, verifyManifest } from '../manifest/index.ts';
import { DEFAULT_MEDIA, kioskKey, writeTrust } from '../test/support/agent-fixtures.ts';
import { median } from './median.ts';

const { values } = parseArgs({
  options: {
    subjects: { type: 'string', default: '100000' }, runs: { type: 'string', default: '5' }, exe: { type: 'string', default: 'var/sea/portcullis-agent' },
    child: { type: 'string' }, file: { type: 'string' },
  },
});

/** In a child: one measured step on the envelope file, its milliseconds on stdout. */
function child(mode: string, file: string): void {
  const trust = { keys: [{ keyId: kioskKey.keyId, publicKey: kioskKey.publicKey }] };
  const started = performance.now();
  const bytes = readFileSync(file);
  if (mode === 'floor') {
    // What any verifier does whatever its JSON handling: find the two strings, strict base64, Ed25519 over PAE.
    const text = bytes.toString('latin1');
    const payloadStart = text.indexOf('"payload":"') + 11;
    const payload = decodeBase64Strict(text.slice(payloadStart, text.indexOf('"', payloadStart)))!;
    const sigStart = text.indexOf('"sig":"') + 7;
    const sig = decodeBase64Strict(text.slice(sigStart, text.indexOf('"', sigStart)))!;
    if (!verify(null, preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload), kioskKey.publicKey, sig)) throw new Error('floor: signature does not verify');
  } else {
    verifyManifest(bytes, trust, new Date(), { onePass: mode === 'one-pass' });
  }
  console.log((performance.now() - started).toFixed(1));
}

if (values.child && values.file) {
  child(values.child, values.file);
} else {
  const count = Number(values.subjects);
  const runs = Number(values.runs);
  const exe = resolve(values.exe);
  const work = mkdtempSync(join(tmpdir(), 'bench-manifest-'));
  try {
    const approved: ApprovedFile[] = [];
    for (let i = 0; i < count; i++) {
      const h = createHash('sha256').update(String(i)).digest('hex');
      approved.push({ path: `projects/line${i % 40}/d${i % 1000}/part-${i}.dat`, sha256: h, blake3: createHash('sha256').update(h).digest('hex'), size: 1000 + i });
    }
    const statement = buildStatement({
      kioskId: 'bench', keyId: kioskKey.keyId, operatorId: 'bench', issuedAt: new Date(Date.now() - 60_000), validitySeconds: 3600,
      scan: { id: 'bench', fileCount: count, byteCount: 0 }, media: DEFAULT_MEDIA, engines: { clamav: null, yara: null }, allowlist: null,
      policy: { id: 'bench', digest: `sha256:${'0'.repeat(64)}` }, approved, blocked: [],
    });
    const drive = join(work, 'drive');
    mkdirSync(join(drive, '.portcullis'), { recursive: true });
    const file = join(drive, MANIFEST_PATH);
    writeFileSync(file, signManifest(statement, kioskKey));
    const trust = writeTrust({}, join(work, 'trust.json'));

    /** Median wall time (ms), CPU time (s) and peak RSS (MiB) of a command over the runs, each a fresh process. */
    const measure = (command: string, args: readonly string[]): { ms: number; cpu: number; rss: number } => {
      const ms: number[] = [];
      const cpu: number[] = [];
      const rss: number[] = [];
      for (let i = 0; i < runs; i++) {
        const out = join(work, 'time.txt');
        const t = performance.now();
        const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', out, command, ...args], { encoding: 'utf8' });
        ms.push(performance.now() - t);
        if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(r.status)}: ${r.stdout}${r.stderr}`);
        const [user, sys, kib] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number];
        cpu.push(user + sys);
        rss.push(kib / 1024);
      }
      return { ms: median(ms), cpu: median(cpu), rss: median(rss) };
    };
    /** Median of the step's own milliseconds, each in a fresh Node process (TypeScript sources). */
    const step = (mode: string): number => median(Array.from({ length: runs }, () => Number(execFileSync(process.execPath, [import.meta.filename, '--child', mode, '--file', file], { encoding: 'utf8' }).trim())));

    const envelopeMiB = readFileSync(file).length / 1048576;
    console.log(`${count} subjects, envelope ${envelopeMiB.toFixed(1)} MiB; ${process.version}; ${runs} runs each, medians; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    const node0 = measure(process.execPath, ['-e', '0']);
    const help = measure(exe, ['help']);
    const check = measure(exe, ['manifest', drive, '--trust', trust]);
    const row = (name: string, m: { ms: number; cpu: number; rss: number }): string => `${name.padEnd(48)} ${m.ms.toFixed(0).padStart(6)} ms  ${m.cpu.toFixed(2)} CPU-s  ${m.rss.toFixed(0).padStart(4)} MiB peak RSS`;
    console.log(row('node -e 0', node0));
    console.log(row('single executable: help (start-up)', help));
    console.log(row('single executable: manifest DRIVE (target 1 s)', check));
    const floor = step('floor');
    const onePass = step('one-pass');
    const full = step('full');
    console.log(`in a fresh node process, the call alone: read + strict base64 + Ed25519 (floor) ${floor.toFixed(0)} ms; verifyManifest one pass ${onePass.toFixed(0)} ms (${(onePass / floor).toFixed(2)}x the floor); full steps (before) ${full.toFixed(0)} ms (${(full / onePass).toFixed(2)}x the one pass)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
