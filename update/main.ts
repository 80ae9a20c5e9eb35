/**
 * portcullis-update: the publisher of offline updates, run on a connected
 * workstation (docs/updates.md). It keeps the four TUF role keys and makes or
 * extends the repository that travels on a drive to the kiosks (ClamAV
 * databases, YARA rules, allowlist, policy) and to the HMIs (their trust
 * store). One top-level catch turns typed errors into exit codes.
 */
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { displayText, PortcullisError } from '../manifest/index.ts';
import { UPDATE_ROLES, type UpdateRole } from '../manifest/update-repository.ts';
import { UsageError } from './errors.ts';
import { initRoleKeys, readRoleKey, requireRoleKey, rotateRoleKey } from './role-keys.ts';
import { loadTrustedState } from './published.ts';
import { buildRepository, DEFAULT_EXPIRY, readRepository, writeNextRoot, type Expiry } from './repository.ts';

const EXIT = { OK: 0, FAILURE: 1, USAGE: 64, BUG: 70 } as const;

const USAGE = `usage: portcullis-update <command> [options]

commands:
  keys init --keys DIR         make the four role keys (root, targets, snapshot, timestamp;
                               Ed25519, mode 0600, never overwritten) in DIR
  build --from DIR --repo OUT --keys DIR [--root-days N] [--targets-days N]
        [--snapshot-days N] [--timestamp-days N]
                               make OUT, or add a new version to it, holding exactly the parts in
                               DIR: clamav/{main,daily,bytecode}.{cvd,cld,cud}, yara/*.yar,
                               allowlist/*.json, policy/policy.json, hmi/trust.json
  keys rotate ROLE --keys DIR --repo OUT
                               a new key for ROLE, and a new root naming it, signed by the current
                               root key (and by the new one when ROLE is root); then run build
  keys renew-root --keys DIR --repo OUT [--root-days N]
                               a new root version with the same keys and a later expiry
  show --repo OUT [--keys DIR] the repository's versions, expiry dates and parts (with --keys:
                               checked against the publisher's record in DIR/published)
  help                         this text

Expiry defaults (days): root ${DEFAULT_EXPIRY.root}, targets ${DEFAULT_EXPIRY.targets}, snapshot ${DEFAULT_EXPIRY.snapshot}, timestamp ${DEFAULT_EXPIRY.timestamp}.
Keep the root key offline: only a new repository, keys rotate and keys renew-root need it.
exit codes: 0 done, 1 failed (the message names the error code), 64 usage error, 70 internal error`;

function days(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]{0,3}$/.test(value)) throw new UsageError(`${option} takes a number of days from 1 to 9999, got ${JSON.stringify(value)}`);
  return Number(value);
}

function required(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`${what} is required`);
  return value;
}

/** ClamAV's own check of a .cvd/.cld (its digital signature): `sigtool --info`, as on the kiosk. */
export function sigtoolCheck(path: string): Promise<string | null> {
  if (path.endsWith('.cud')) return Promise.resolve(null); // unsigned by construction: nothing for sigtool to verify
  return new Promise((resolve) => {
    execFile('sigtool', [`--info=${path}`], { timeout: 120_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (error === null) return resolve(null);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return resolve('sigtool is not installed (Debian: apt-get install clamav): it checks ClamAV\'s signature on each database before it is published');
      const why = `${stderr}\n${stdout}`.split('\n').map((l) => l.trim()).find((l) => /error|verif/i.test(l)) ?? `sigtool exited with ${String(code)}`;
      resolve(`ClamAV's own check (sigtool --info) refuses it: ${why}`);
    });
  });
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const out = (line: string): void => console.log(line);
  switch (command) {
    case 'keys': {
      const [sub, ...args] = rest;
      const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { keys: { type: 'string' }, repo: { type: 'string' }, 'root-days': { type: 'string' } } });
      const keysDir = required(values.keys, `keys ${sub ?? ''} --keys DIR`);
      if (sub === 'init') {
        if (positionals.length > 0 || values.repo || values['root-days']) throw new UsageError('keys init takes only --keys DIR');
        const keys = await initRoleKeys(keysDir);
        for (const k of keys) out(`${k.role.padEnd(9)} ${k.keyId}  ${keysDir}/${k.role}.key`);
        out('Keep root.key offline (only a new repository, keys rotate and keys renew-root need it); see docs/updates.md.');
        return EXIT.OK;
      }
      const repo = required(values.repo, `keys ${sub ?? ''} --repo OUT`);
      const rootDays = days(values['root-days'], '--root-days');
      if (sub === 'rotate') {
        const role = positionals[0] as UpdateRole | undefined;
        if (positionals.length !== 1 || !role || !UPDATE_ROLES.includes(role)) throw new UsageError(`keys rotate takes one ROLE: ${UPDATE_ROLES.join(', ')}`);
        const heldRoot = await readRoleKey(keysDir, 'root');
        // Checked before any key file changes: the repository must be the one the publisher's record names.
        if (!(await loadTrustedState(repo, keysDir, heldRoot ? [heldRoot] : [])).root) throw new UsageError(`${repo} has no repository yet: run build first`);
        const rootKey = heldRoot ?? await requireRoleKey(keysDir, 'root', 'a new root is signed by the root key (bring it from where it is kept offline)');
        // The current root key signs the new root; when the root key itself is rotated, the old one signs it.
        const currentRoot = role === 'root' ? null : rootKey;
        const { old, next, retiredPath } = await rotateRoleKey(keysDir, role);
        const root = await writeNextRoot({ repo, keysDir, replace: { [role]: next }, oldRootKey: currentRoot ?? old, ...(rootDays ? { rootDays } : {}) });
        out(`${role} key ${next.keyId} replaces ${old.keyId} (kept in ${retiredPath})`);
        out(`root version ${root.signed.version} written: run build to sign the next version with the new key`);
        return EXIT.OK;
      }
      if (sub === 'renew-root') {
        if (positionals.length > 0) throw new UsageError('keys renew-root takes no arguments');
        const rootKey = await requireRoleKey(keysDir, 'root', 'a new root is signed by the root key (bring it from where it is kept offline)');
        const root = await writeNextRoot({ repo, keysDir, replace: {}, oldRootKey: rootKey, ...(rootDays ? { rootDays } : {}) });
        out(`root version ${root.signed.version} written, valid until ${root.signed.expires}`);
        return EXIT.OK;
      }
      throw new UsageError(`unknown keys command ${JSON.stringify(sub ?? '')}: init, rotate ROLE, renew-root`);
    }
    case 'build': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        strict: true,
        options: {
          from: { type: 'string' }, repo: { type: 'string' }, keys: { type: 'string' },
          'root-days': { type: 'string' }, 'targets-days': { type: 'string' }, 'snapshot-days': { type: 'string' }, 'timestamp-days': { type: 'string' },
        },
      });
      if (positionals.length > 0) throw new UsageError('build takes no arguments: --from DIR --repo OUT --keys DIR');
      const expiry: Partial<Expiry> = Object.fromEntries(Object.entries({
        root: days(values['root-days'], '--root-days'),
        targets: days(values['targets-days'], '--targets-days'),
        snapshot: days(values['snapshot-days'], '--snapshot-days'),
        timestamp: days(values['timestamp-days'], '--timestamp-days'),
      }).filter(([, v]) => v !== undefined));
      const result = await buildRepository({
        from: required(values.from, 'build --from DIR'),
        repo: required(values.repo, 'build --repo OUT'),
        keysDir: required(values.keys, 'build --keys DIR'),
        expiry,
        checkClamav: sigtoolCheck,
      });
      out(`${result.created ? 'new repository' : 'repository'} ${values.repo}: targets version ${result.versions.targets}, timestamp version ${result.versions.timestamp} (root ${result.versions.root})`);
      for (const role of UPDATE_ROLES) out(`  ${role.padEnd(9)} version ${String(result.versions[role]).padEnd(4)} expires ${result.expires[role]}`);
      for (const t of result.targets) out(`  ${t.path.padEnd(28)} ${String(t.length).padStart(11)} bytes  sha256:${t.sha256.slice(0, 16)}...${'version' in t.custom ? `  version ${String(t.custom.version)}` : ''}`);
      out('Copy the whole folder onto the update drive; the timestamp\'s expiry is how long it may take to reach every kiosk and HMI.');
      return EXIT.OK;
    }
    case 'show': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true, options: { repo: { type: 'string' }, keys: { type: 'string' } } });
      if (positionals.length > 0) throw new UsageError('show takes only --repo OUT [--keys DIR]');
      const repo = required(values.repo, 'show --repo OUT');
      const state = await readRepository(repo);
      if (!state) throw new UsageError(`${repo} has no repository: run build first`);
      if (values.keys) {
        // Checked as build would check it: against the publisher's record beside the keys.
        const trusted = await loadTrustedState(repo, values.keys, []);
        out(`checked against the record in ${values.keys}/published: roots 1 to ${trusted.roots.length}, published up to targets ${trusted.versions.targets}, snapshot ${trusted.versions.snapshot}, timestamp ${trusted.versions.timestamp}`);
      } else {
        out('(read from the folder as it is, not checked: add --keys DIR to check it against the publisher\'s record)');
      }
      out(`root      version ${state.root.signed.version}, expires ${state.root.signed.expires}`);
      for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
        const md = state[role];
        out(`${role.padEnd(9)} ${md ? `version ${md.signed.version}, expires ${md.signed.expires}` : 'none yet'}`);
      }
      for (const [path, t] of Object.entries(state.targets?.signed.targets ?? {})) out(`  ${path.padEnd(28)} ${String(t.length).padStart(11)} bytes`);
      return EXIT.OK;
    }
    case undefined:
      console.error(USAGE);
      return EXIT.USAGE;
    case 'help':
    case '--help':
      out(USAGE);
      return EXIT.OK;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`portcullis-update: ${error.message}\n\n${USAGE}`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      console.error(`portcullis-update: ${error.code}: ${displayText(error.message)}`);
      return EXIT.FAILURE;
    }
    console.error('portcullis-update: internal error (this is a bug; please report it with the text below)');
    console.error(error);
    return EXIT.BUG;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
