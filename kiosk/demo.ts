/**
 * `portcullis-kiosk demo`: the main job on built-in defaults, no hardware.
 * Builds a small demo drive folder, signs a manifest for it with a freshly
 * generated kiosk key, writes it where the agent looks, re-reads and verifies
 * it, and shows that a tampered envelope is refused.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  escapeForDisplay, MANIFEST_PATH, ManifestError, publicKeyFromPem, signManifest, verifyManifest,
} from '../manifest/index.ts';
import { buildStatement, manifestTime, type ApprovedFile } from './build-statement.ts';
import { hashFile } from './hash-file.ts';
import { generateKeyFiles, loadSigningKey } from './keygen.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const DEMO_FILES: ReadonlyArray<{ path: string; content: () => Uint8Array }> = [
  { path: 'README.txt', content: () => new TextEncoder().encode('Line 3 commissioning files, handed over by the integrator.\n') },
  { path: 'firmware/plc-cpu-v2.8.1.bin', content: () => patterned(256 * 1024, 7) },
  { path: 'projects/line3-packaging.zap17', content: () => patterned(64 * 1024, 11) },
  { path: 'hmi/recipes/recipe-42.csv', content: () => new TextEncoder().encode('step,temp,time\n1,180,30\n2,200,45\n') },
];

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

export interface DemoOptions {
  readonly dir?: string;
  readonly out?: (line: string) => void;
  readonly now?: () => Date;
}

export async function runDemo(options: DemoOptions = {}): Promise<{ runDir: string; verified: boolean }> {
  const out = options.out ?? ((line: string) => console.log(line));
  const now = options.now ?? (() => new Date());
  const runDir = resolve(options.dir ?? join(PROJECT_ROOT, 'var', 'demo', manifestTime(now()).replace(/:/g, '')));
  const drive = join(runDir, 'drive');
  out(`Portcullis demo: manifest contract (sign on the kiosk, verify as the agent would)`);
  out(`  working folder: ${runDir}`);

  const approved: ApprovedFile[] = [];
  for (const file of DEMO_FILES) {
    const full = join(drive, file.path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, file.content());
    const digest = await hashFile(full);
    approved.push({ path: file.path, sha256: digest.sha256, blake3: digest.blake3, size: digest.size });
  }
  out(`  demo drive: ${approved.length} files in ${drive}`);

  const keys = await generateKeyFiles(join(runDir, 'keys'));
  const key = await loadSigningKey(keys.privateKeyPath);
  out(`  kiosk key: ${keys.keyId} (private ${keys.privateKeyPath}, public ${keys.publicKeyPath})`);

  const statement = buildStatement({
    kioskId: 'demo-kiosk',
    keyId: key.keyId,
    operatorId: 'demo-operator',
    issuedAt: now(),
    validitySeconds: 12 * 3600,
    scan: { id: randomUUID(), fileCount: approved.length, byteCount: approved.reduce((n, f) => n + f.size, 0) },
    media: { filesystem: 'dir', volumeId: null, label: 'DEMO', capacity: null, usb: null },
    engines: { clamav: null, yara: null },
    allowlist: null,
    policy: { id: 'demo-unscanned', digest: `sha256:${'0'.repeat(64)}` },
    approved,
    blocked: [],
  });
  const envelope = signManifest(statement, key);
  const manifestFile = join(drive, MANIFEST_PATH);
  await mkdir(dirname(manifestFile), { recursive: true });
  await writeFile(manifestFile, envelope);
  out(`  manifest written: ${manifestFile} (${envelope.length} bytes)`);

  // Verify as the agent does: bytes from the drive, the pinned public key, the clock.
  const trust = { keys: [{ keyId: keys.keyId, publicKey: publicKeyFromPem(await readFile(keys.publicKeyPath, 'utf8')) }] };
  const verified = verifyManifest(await readFile(manifestFile), trust, now());
  out(`  verified: signed by ${verified.keyId}, manifest ${verified.payloadDigest}`);
  out(`  valid ${verified.statement.predicate.issuedAt} to ${verified.statement.predicate.expiresAt}; files it lets through:`);
  for (const s of verified.statement.subject) {
    out(`    ${escapeForDisplay(s.name)}  ${s.annotations.size} bytes  blake3 ${s.digest.blake3.slice(0, 16)}...`);
  }

  // And refuses a tampered one: one flipped byte inside the signed payload.
  const tampered = Buffer.from(envelope);
  const at = tampered.indexOf('"payload":"') + 20;
  tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41;
  try {
    verifyManifest(tampered, trust, now());
    out('  tampered manifest: ACCEPTED (this is a bug)');
    return { runDir, verified: false };
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    out(`  tampered manifest: refused with ${error.code}`);
  }
  out('Note: this step signs without scanning; the scanning kiosk replaces it (docs/manifest.md, README).');
  return { runDir, verified: true };
}
