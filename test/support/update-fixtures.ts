/**
 * Update repositories for tests, made the way a site makes them: ClamAV
 * databases built by ClamAV's own sigtool (freshclam cannot run here, so
 * unsigned .cud containers stand in for Cisco's .cvd files; ClamAV loads and
 * checks them the same way except for Cisco's signature), a parts folder, the
 * publisher's keys and its build. Also the attacker's tools: metadata
 * re-signed with chosen keys and dates.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Metadata, MetadataKind, MetaFile, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { EICAR, MALWARE_MARKER } from '../../kiosk/engines/clamav/test-database.ts';
import { buildRepository, type BuildResult, type Expiry } from '../../update/repository.ts';
import { initRoleKeys, readRoleKey, signerOf, type RoleKey } from '../../update/role-keys.ts';
import type { UpdateRole } from '../../manifest/update-repository.ts';

const run = promisify(execFile);

export async function tempFolder(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `portcullis-${prefix}-`));
}

/** Test signatures as ClamAV source files: main finds EICAR (the engines' self-test needs it), daily the marker. */
function signatureFiles(database: 'main' | 'daily' | 'bytecode', extra: string): Map<string, string> {
  const md5 = createHash('md5').update(EICAR).digest('hex');
  const marker = Buffer.from(MALWARE_MARKER, 'ascii').toString('hex');
  if (database === 'main') return new Map([['main.hdb', `${md5}:${EICAR.byteLength}:Portcullis.Test.Eicar\n`]]);
  if (database === 'daily') return new Map([['daily.ndb', `Portcullis.Test.Marker:0:*:${marker}\n${extra}`]]);
  return new Map([['bytecode.ndb', `Portcullis.Test.Bytecode:0:*:${Buffer.from('PORTCULLIS-BYTECODE-TEST').toString('hex')}\n`]]);
}

/**
 * A ClamAV database container built by `sigtool --build NAME.cud --unsigned`
 * (a real .cud: header, gzip'd tar, .info index), written to `out`.
 */
export async function buildClamavDatabase(out: string, database: 'main' | 'daily' | 'bytecode', version: number, extraNdb = ''): Promise<string> {
  const work = await tempFolder('sigtool');
  try {
    await writeFile(join(work, 'COPYING'), 'Portcullis test signatures, built by sigtool for tests.\n');
    for (const [name, text] of signatureFiles(database, extraNdb)) await writeFile(join(work, name), text);
    // sigtool asks for the builder's name on stdin.
    const child = execFile('sigtool', [`--build=${database}.cud`, '--unsigned', `--cvd-version=${version}`, `--datadir=${work}`], { cwd: work });
    child.stdin?.end('portcullis-test\n');
    await new Promise<void>((resolve, reject) => {
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sigtool --build ${database} exited ${code}`))));
      child.on('error', reject);
    });
    await mkdir(out, { recursive: true });
    const path = join(out, `${database}.cud`);
    await copyFile(join(work, `${database}.cud`), path);
    return path;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface SourceOptions {
  readonly mainVersion?: number;
  readonly dailyVersion?: number;
  /** Copy the project's YARA rules into yara/ (the whole rule set, as a site publishes it). */
  readonly yara?: boolean;
  readonly policy?: Record<string, unknown> | null;
  readonly allowlist?: boolean;
  readonly hmiTrust?: string | null;
}

/** A publisher's parts folder: clamav/{main,daily}.cud and, as asked, yara/, policy/, allowlist/, hmi/. */
export async function makeSource(dir: string, options: SourceOptions = {}): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await buildClamavDatabase(join(dir, 'clamav'), 'main', options.mainVersion ?? 60);
  await buildClamavDatabase(join(dir, 'clamav'), 'daily', options.dailyVersion ?? 27_000);
  if (options.yara) {
    await mkdir(join(dir, 'yara'), { recursive: true });
    for (const name of ['canary.yar', 'autorun.yar']) await copyFile(new URL(`../../rules/yara/${name}`, import.meta.url), join(dir, 'yara', name));
  }
  if (options.policy) {
    await mkdir(join(dir, 'policy'), { recursive: true });
    await writeFile(join(dir, 'policy', 'policy.json'), JSON.stringify(options.policy, null, 2));
  }
  if (options.allowlist) {
    await mkdir(join(dir, 'allowlist'), { recursive: true });
    await copyFile(new URL('../../rules/allowlist/site.json', import.meta.url), join(dir, 'allowlist', 'site.json'));
  }
  if (options.hmiTrust) {
    await mkdir(join(dir, 'hmi'), { recursive: true });
    await writeFile(join(dir, 'hmi', 'trust.json'), options.hmiTrust);
  }
  return dir;
}

/** The project's default policy, parsed, for tests to change a field of. */
export async function defaultPolicy(): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(new URL('../../rules/policy/default.json', import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** A publisher: keys in `dir/keys`, the repository in `dir/repo`. */
export interface Publisher {
  readonly keys: string;
  readonly repo: string;
  build(from: string, options?: { expiry?: Partial<Expiry>; now?: Date }): Promise<BuildResult>;
  key(role: UpdateRole): Promise<RoleKey>;
}

export async function makePublisher(dir: string): Promise<Publisher> {
  const keys = join(dir, 'keys');
  const repo = join(dir, 'repo');
  await initRoleKeys(keys);
  return {
    keys,
    repo,
    build: (from, options = {}) => buildRepository({ from, repo, keysDir: keys, ...(options.expiry ? { expiry: options.expiry } : {}), ...(options.now ? { now: options.now } : {}) }),
    key: async (role) => (await readRoleKey(keys, role))!,
  };
}

type AnyMetadata = Metadata<Root | Targets | Snapshot | Timestamp>;

export async function readMetadata<T extends Root | Targets | Snapshot | Timestamp>(path: string, kind: MetadataKind): Promise<Metadata<T>> {
  const data = JSON.parse(await readFile(path, 'utf8')) as Record<string, never>;
  return (Metadata.fromJSON as (kind: MetadataKind, data: Record<string, never>) => Metadata<T>)(kind, data);
}

export async function writeMetadata(path: string, metadata: AnyMetadata): Promise<Buffer> {
  const bytes = Buffer.from(`${JSON.stringify(metadata.toJSON(), null, 2)}\n`);
  await writeFile(path, bytes);
  return bytes;
}

/** Signs `metadata` afresh with exactly `keys` (an attacker's or a wrong role's key). */
export function resign(metadata: AnyMetadata, keys: readonly RoleKey[]): void {
  metadata.signatures = {};
  for (const key of keys) metadata.sign(signerOf(key));
}

export function metaFileFor(version: number, bytes: Buffer): MetaFile {
  return new MetaFile({ version, length: bytes.length, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } });
}

export { MetadataKind };
export { run };
