/**
 * `portcullis-kiosk demo`: the whole gate on built-in defaults, no hardware.
 *  1. builds a real FAT32 drive image with clean, allowlisted, unknown-firmware,
 *     malicious and disguised files;
 *  2. the kiosk: a fresh signing key, clamd with the test database and the
 *     YARA rules, the scan, the signed manifest written onto the image,
 *     re-read and verified, the audit log;
 *  3. the HMI agent: trusts the kiosk's public key, imports from the drive
 *     into an inbox folder, copying only what the manifest vouches for;
 *  4. both logs' hash chains verified.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main as agentMain } from '../../agent/main.ts';
import { escapeForDisplay } from '../../manifest/index.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { manifestTime } from '../../kiosk/core/build-statement.ts';
import { EICAR } from '../../kiosk/engines/clamav/test-database.ts';
import { generateKeyFiles } from '../../kiosk/cli/keygen.ts';
import { readVolumeIdentity } from '../../kiosk/drive/identity.ts';
import { openImageReadOnly } from '../../kiosk/drive/image-access.ts';
import { buildDriveImage } from '../support/image-builder.ts';
import { makeFolder } from '../../kiosk/cli/path-option.ts';
import { scanTextLines } from '../../kiosk/scan/report.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Deterministic filler bytes for demo files. */
function patterned(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const FIRMWARE = patterned(256 * 1024, 7);

/** What the technician brings: a mix the gate must sort correctly. */
export const DEMO_FILES: ReadonlyArray<{ path: string; content: Uint8Array; expect: string }> = [
  { path: 'README.txt', content: text('Line 3 commissioning files, handed over by the integrator.\r\n'), expect: 'clean' },
  { path: 'hmi/recipes/recipe-42.csv', content: text('step,temp,time\r\n1,180,30\r\n2,200,45\r\n'), expect: 'clean' },
  { path: 'firmware/plc-cpu-v2.8.1.bin', content: FIRMWARE, expect: 'allowlisted: its hash is on the vendor allowlist' },
  { path: 'firmware/plc-cpu-v2.9.0-beta.bin', content: patterned(128 * 1024, 11), expect: 'blocked: firmware not on the allowlist' },
  { path: 'tools/update-notes.txt', content: EICAR, expect: 'blocked: malware (the EICAR test file)' },
  { path: 'tools/cleanup.txt', content: text('@echo off\r\nvssadmin.exe delete shadows /all /quiet\r\n'), expect: 'blocked: YARA rule (shadow-copy deletion)' },
  { path: 'docs/Manual.pdf', content: new Uint8Array([0x4d, 0x5a, 0x90, 0x00, ...patterned(4096, 3)]), expect: 'blocked: a program disguised as a PDF' },
];

export interface DemoOptions {
  readonly dir?: string;
  readonly out?: (line: string) => void;
  readonly now?: () => Date;
}

export interface DemoResult {
  readonly runDir: string;
  readonly verdict: string;
  readonly inbox: string[];
  readonly ok: boolean;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const out = options.out ?? ((line: string) => console.log(line));
  const now = options.now ?? (() => new Date());
  const runDir = resolve(options.dir ?? join(PROJECT_ROOT, 'var', 'demo', manifestTime(now()).replace(/:/g, '')));
  await makeFolder(runDir, '--dir', 0o755);
  out('Portcullis demo: a drive through the kiosk, then through the HMI agent');
  out(`  working folder: ${runDir}`);
  out('');

  // 1. The technician's drive: a real FAT32 image.
  const image = join(runDir, 'drive.img');
  await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 34, label: 'LINE3', volumeId: '1A2B-3C4D', files: DEMO_FILES.map((f) => ({ path: f.path, content: f.content })) });
  out(`1. drive image (FAT32, label LINE3): ${image}`);
  for (const f of DEMO_FILES) out(`     ${f.path.padEnd(34)} expected: ${f.expect}`);
  out('');

  // 2. The kiosk.
  const keys = await generateKeyFiles(join(runDir, 'kiosk-keys'));
  const allowlistDir = join(runDir, 'allowlist');
  await mkdir(allowlistDir, { recursive: true });
  await writeFile(join(allowlistDir, 'demo-vendor.json'), `${JSON.stringify({
    version: 'demo-1',
    owner: 'Demo PLC vendor (demo data)',
    entries: [{ vendor: 'Demo Automation', product: 'PLC CPU 1500', version: '2.8.1', file: 'plc-cpu-v2.8.1.bin', sha256: createHash('sha256').update(FIRMWARE).digest('hex'), source: 'demo: computed from the demo firmware' }],
  }, null, 2)}\n`);
  const auditDb = join(runDir, 'kiosk-audit.db');
  out(`2. kiosk: key ${keys.keyId.slice(0, 16)}..., ClamAV (test database) + YARA rules, scanning...`);
  const scan = await runScan({
    path: image, image: true, json: false, keyPath: keys.privateKeyPath, dbPath: auditDb, clamavDb: 'test', allowlistDir,
    kioskId: 'demo-kiosk', operatorId: 'T-1042', usb: { vendorId: '0781', productId: '5567', serial: 'DEMO0001' }, now,
    err: () => undefined,
  });
  let approved: string[] = []; // the manifest's subjects: the files the decision let pass (kiosk/approval/write-approval.ts)
  try {
    for (const line of scanTextLines(scan.summary)) out(`   ${line}`);
    if (scan.manifest !== null) {
      approved = [...scan.summary.report.decision.files].filter((f) => f.verdict !== 'blocked' && f.path !== null && f.digest !== null).map((f) => f.path!).sort();
    }
  } finally {
    scan.summary.report.close();
  }
  out('');

  // 3. The HMI agent: trusts the kiosk's key, imports through the manifest.
  const agentDir = join(runDir, 'hmi');
  const trust = join(agentDir, 'trust.json');
  const log = join(agentDir, 'agent-log.jsonl');
  const inbox = join(agentDir, 'inbox');
  await mkdir(inbox, { recursive: true });
  const agentOut: string[] = [];
  const io = { stdout: (t: string) => void agentOut.push(t), stderr: (t: string) => void agentOut.push(t), clock: now };
  const agent = (argv: string[]): Promise<number> => agentMain([...argv, '--hmi', 'demo-hmi'], io);
  if (await agent(['trust', 'add', keys.publicKeyPath, '--trust', trust, '--log', log, '--label', 'demo kiosk']) !== 0) {
    throw new Error(`agent trust add failed: ${agentOut.join('')}`);
  }
  const drive = await openImageReadOnly(image, join(runDir, 'hmi-drive-view'));
  let importCode: number;
  try {
    const identity = await readVolumeIdentity(image);
    const identityFile = join(agentDir, 'drive-identity.json');
    await writeFile(identityFile, JSON.stringify({ filesystem: identity.filesystem, volumeId: identity.volumeId, label: identity.label, capacity: identity.capacity }));
    agentOut.length = 0;
    importCode = await agent(['import', drive.root, '--to', inbox, '--trust', trust, '--identity', identityFile, '--log', log]);
  } finally {
    await drive.close();
  }
  out(`3. HMI agent: import into ${inbox} (exit ${importCode})`);
  for (const line of agentOut.join('').trimEnd().split('\n')) out(`   ${line}`);
  const arrived = await listFiles(inbox);
  out(`   inbox now holds: ${arrived.map(escapeForDisplay).join(', ') || '(nothing)'}`);
  out('');

  // 4. Both logs' chains.
  const store = openAuditStore(auditDb, { readonly: true });
  const chain = store.verifyChain();
  store.close();
  agentOut.length = 0;
  const agentChain = await agentMain(['log', 'verify', '--log', log], io);
  out(`4. kiosk audit log ${auditDb}: ${chain.ok ? `chain intact, ${chain.records} records` : 'CHAIN BROKEN'}`);
  out(`   agent log ${log}: ${agentChain === 0 ? 'chain intact' : 'CHAIN BROKEN'}`);
  out(`   review: ./portcullis kiosk log list --db ${auditDb}`);
  out(`           ./portcullis agent log export --log ${log} --format csv`);

  const ok = chain.ok && agentChain === 0 && scan.manifest !== null && JSON.stringify(arrived) === JSON.stringify(approved);
  out('');
  out(ok ? 'Demo complete: only the files the kiosk approved reached the HMI.' : 'Demo FAILED: see above.');
  return { runDir, verdict: scan.summary.report.decision.verdict, inbox: arrived, ok };
}
