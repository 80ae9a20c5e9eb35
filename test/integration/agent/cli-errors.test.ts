/**
 * Every portcullis-agent command with bad input: missing arguments, files
 * that do not exist, garbage, folders and named pipes where files belong,
 * unknown options. Whatever the mistake, the agent answers with the
 * documented exit code (1: the command failed, 64: usage), one line on
 * stderr that starts with the error's code, and never a stack trace.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../../agent/audit-log.ts';
import { main, USAGE } from '../../../agent/main.ts';
import { publicKeyToPem } from '../../../manifest/index.ts';
import { DEFAULT_IDENTITY, kioskKey, makeDrive, tempDir, writeTrust } from '../../support/agent-fixtures.ts';

const exec = promisify(execFile);
const BIN = join(import.meta.dirname, '../../../agent/bin/portcullis-agent.js');
const STACK = /\n\s+at /u;
/** The first line of an error: the program, the code, what went wrong and what to do. */
const ERROR_LINE = /^portcullis-agent: [A-Z][A-Z0-9_]+: \S.*$/u;

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) });
  return { code, out: out.join(''), err: err.join('') };
}

/** Files and folders every case can point at. */
interface Ground {
  readonly drive: string;
  readonly trust: string;
  readonly identity: string;
  readonly pub: string;
  readonly key: string;
  readonly garbage: string;
  readonly folder: string;
  readonly fifo: string;
  readonly missing: string;
  readonly dest: string;
  readonly log: string;
  readonly config: string;
  readonly configNoTrust: string;
  readonly configBadSchema: string;
  readonly identityBadSchema: string;
}

let g: Ground;

beforeAll(async () => {
  const dir = tempDir('cli-errors');
  const drive = await makeDrive({ files: { 'README.txt': 'hello' } });
  const file = (name: string, content: string | Uint8Array): string => {
    writeFileSync(join(dir, name), content);
    return join(dir, name);
  };
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  const fifo = join(dir, 'a-pipe');
  execFileSync('mkfifo', [fifo]);
  const dest = join(dir, 'inbox');
  mkdirSync(dest);
  const log = join(dir, 'good.log.jsonl');
  new AuditLog(log, { hmi: 'HMI-1' }).append({ event: 'agent.started', outcome: 'info', code: 'SERVICE_STARTED', reason: 'test' });
  const trust = writeTrust({}, join(dir, 'trust.json'));
  g = {
    drive: drive.root,
    trust,
    identity: file('identity.json', JSON.stringify(DEFAULT_IDENTITY)),
    pub: file('kiosk.pub.pem', publicKeyToPem(kioskKey.publicKey)),
    key: file('kiosk.key', kioskKey.privateKey.export({ type: 'pkcs8', format: 'pem' })),
    garbage: file('garbage.bin', Buffer.from([0x00, 0xff, 0x7b, 0x0a, 0x22, 0x1b, 0x5b, 0x32, 0x4a])),
    folder,
    fifo,
    missing: join(dir, 'does-not-exist'),
    dest,
    log,
    config: file('config.json', JSON.stringify({ formatVersion: 1, trust: 'trust.json', log: 'agent.log.jsonl', destination: 'inbox', source: 'mount-folders', mountFolders: ['mounts'] })),
    configNoTrust: file('config-no-trust.json', JSON.stringify({ formatVersion: 1, trust: 'nowhere/trust.json', log: 'agent.log.jsonl', destination: 'inbox' })),
    configBadSchema: file('config-bad.json', JSON.stringify({ formatVersion: 2, trust: 5 })),
    identityBadSchema: file('identity-bad.json', JSON.stringify({ filesystem: 'vfat' })),
  };
});

type Case = readonly [name: string, argv: () => string[], exit: 1 | 64];

const CASES: readonly Case[] = [
  ['no command at all', () => [], 64],
  ['an unknown command', () => ['frobnicate'], 64],
  ['an option where the command belongs', () => ['--bogus'], 64],
  ['help with an unknown option', () => ['help', '--bogus'], 64],
  ['help for an unknown command', () => ['help', 'frobnicate'], 64],

  ['trust without a subcommand', () => ['trust'], 64],
  ['an unknown trust subcommand', () => ['trust', 'frob', '--trust', g.trust], 64],
  ['trust add without arguments', () => ['trust', 'add'], 64],
  ['trust add without --trust', () => ['trust', 'add', g.pub], 64],
  ['trust add with two key files', () => ['trust', 'add', g.pub, g.pub, '--trust', g.trust], 64],
  ['trust add of a key file that does not exist', () => ['trust', 'add', g.missing, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust add of a folder', () => ['trust', 'add', g.folder, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust add of a named pipe', () => ['trust', 'add', g.fifo, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust add of garbage', () => ['trust', 'add', g.garbage, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust add of the kiosk\'s private key', () => ['trust', 'add', g.key, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust add with a malformed --not-before', () => ['trust', 'add', g.pub, '--trust', join(tempDir('t'), 'trust.json'), '--not-before', 'yesterday'], 64],
  ['trust add with --not-after before --not-before', () => ['trust', 'add', g.pub, '--trust', join(tempDir('t'), 'trust.json'), '--not-before', '2026-02-01T00:00:00Z', '--not-after', '2026-01-01T00:00:00Z'], 64],
  ['trust add with a label the store cannot hold', () => ['trust', 'add', g.pub, '--trust', join(tempDir('t'), 'trust.json'), '--label', 'gate/1\u001b[2J'], 64],
  ['trust add with an unknown option', () => ['trust', 'add', g.pub, '--trust', join(tempDir('t'), 'trust.json'), '--bogus'], 64],
  ['trust add into a store that is a folder', () => ['trust', 'add', g.pub, '--trust', g.folder], 1],
  ['trust add into a store that is garbage', () => ['trust', 'add', g.pub, '--trust', g.garbage], 1],
  ['trust add into a store that is a named pipe', () => ['trust', 'add', g.pub, '--trust', g.fifo], 1],
  ['trust add of a key already trusted', () => ['trust', 'add', g.pub, '--trust', g.trust], 1],
  ['trust add into a folder that cannot be made', () => ['trust', 'add', g.pub, '--trust', join(g.garbage, 'sub', 'trust.json')], 1],
  ['trust list without --trust', () => ['trust', 'list'], 64],
  ['trust list with a positional argument', () => ['trust', 'list', 'extra', '--trust', g.trust], 64],
  ['trust list of a store that does not exist', () => ['trust', 'list', '--trust', g.missing], 1],
  ['trust list of a folder', () => ['trust', 'list', '--trust', g.folder], 1],
  ['trust list of garbage', () => ['trust', 'list', '--trust', g.garbage], 1],
  ['trust list of a named pipe', () => ['trust', 'list', '--trust', g.fifo], 1],
  ['trust revoke without a key id', () => ['trust', 'revoke', '--trust', g.trust], 64],
  ['trust revoke of something that is not a key id', () => ['trust', 'revoke', 'not-a-key', '--trust', g.trust], 64],
  ['trust revoke in a garbage store', () => ['trust', 'revoke', 'a'.repeat(64), '--trust', g.garbage], 1],
  ['trust policy with a positional argument', () => ['trust', 'policy', 'extra', '--trust', g.trust], 64],
  ['trust policy with hours that are not a number', () => ['trust', 'policy', '--trust', g.trust, '--max-age-hours', 'twelve'], 64],
  ['trust policy with zero hours', () => ['trust', 'policy', '--trust', g.trust, '--max-age-hours', '0'], 64],
  ['trust policy with too many hours', () => ['trust', 'policy', '--trust', g.trust, '--max-age-hours', '9999'], 64],
  ['trust policy with an unknown clash policy', () => ['trust', 'policy', '--trust', g.trust, '--clash', 'overwrite'], 64],
  ['trust policy with an unknown media binding', () => ['trust', 'policy', '--trust', g.trust, '--media-binding', 'sometimes'], 64],
  ['trust policy with unknown digests', () => ['trust', 'policy', '--trust', g.trust, '--digests', 'md5'], 64],
  ['setup without --config', () => ['setup', '--destination', g.dest], 64],
  ['setup without --destination', () => ['setup', '--config', join(g.dest, 'config.json')], 64],
  ['setup with a positional argument', () => ['setup', 'extra', '--config', join(g.dest, 'config.json'), '--destination', g.dest], 64],
  ['trust policy with both --destination and --no-destination', () => ['trust', 'policy', '--trust', g.trust, '--destination', g.dest, '--no-destination'], 64],
  ['trust policy on a garbage store', () => ['trust', 'policy', '--trust', g.garbage, '--clash', 'skip'], 1],
  ['trust pin-root without a root file', () => ['trust', 'pin-root', '--trust', join(tempDir('t'), 'trust.json')], 64],
  ['trust pin-root without --trust', () => ['trust', 'pin-root', g.garbage], 64],
  ['trust pin-root with an unknown option', () => ['trust', 'pin-root', g.garbage, '--trust', join(tempDir('t'), 'trust.json'), '--bogus'], 64],
  ['trust pin-root of a file that does not exist', () => ['trust', 'pin-root', g.missing, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust pin-root of garbage', () => ['trust', 'pin-root', g.garbage, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust pin-root of a folder', () => ['trust', 'pin-root', g.folder, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust pin-root of a named pipe', () => ['trust', 'pin-root', g.fifo, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust pin-root of a trust store (not a TUF root)', () => ['trust', 'pin-root', g.trust, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust update without a PATH', () => ['trust', 'update', '--trust', g.trust], 64],
  ['trust update with two PATHs', () => ['trust', 'update', g.folder, g.drive, '--trust', g.trust], 64],
  ['trust update without --trust', () => ['trust', 'update', g.folder], 64],
  ['trust update with no root pinned', () => ['trust', 'update', g.folder, '--trust', join(tempDir('t'), 'trust.json')], 1],
  ['trust update into a folder that cannot be made', () => ['trust', 'update', g.folder, '--trust', join(g.garbage, 'sub', 'trust.json')], 1],

  ['verify without a drive', () => ['verify'], 64],
  ['verify without --trust', () => ['verify', g.drive], 64],
  ['verify of two drives', () => ['verify', g.drive, g.drive, '--trust', g.trust], 64],
  ['verify with --to', () => ['verify', g.drive, '--trust', g.trust, '--to', g.dest], 64],
  ['verify with an unknown option', () => ['verify', g.drive, '--trust', g.trust, '--bogus'], 64],
  ['verify of a drive path that does not exist', () => ['verify', g.missing, '--trust', g.trust], 1],
  ['verify of a file instead of a drive', () => ['verify', g.garbage, '--trust', g.trust], 1],
  ['verify with a trust store that does not exist', () => ['verify', g.drive, '--trust', g.missing], 1],
  ['verify with a garbage trust store', () => ['verify', g.drive, '--trust', g.garbage], 1],
  ['verify with an identity file that does not exist', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.missing], 1],
  ['verify with a garbage identity file', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.garbage], 1],
  ['verify with a folder as the identity file', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.folder], 1],
  ['verify with a named pipe as the identity file', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.fifo], 1],
  ['verify with an identity file of the wrong shape', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.identityBadSchema], 1],
  ['verify with a folder as the log', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.identity, '--log', g.folder], 1],
  ['verify with a log in a folder that does not exist', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.identity, '--log', join(g.missing, 'x.log')], 1],
  ['verify with a garbage log', () => ['verify', g.drive, '--trust', g.trust, '--identity', g.identity, '--log', g.garbage], 1],

  ['import without --to', () => ['import', g.drive, '--trust', g.trust], 64],
  ['import into a folder that does not exist', () => ['import', g.drive, '--trust', g.trust, '--to', g.missing], 1],
  ['import into a file', () => ['import', g.drive, '--trust', g.trust, '--to', g.garbage], 1],
  ['import of a drive path that does not exist', () => ['import', g.missing, '--trust', g.trust, '--to', g.dest], 1],
  ['import with a garbage identity file', () => ['import', g.drive, '--trust', g.trust, '--to', g.dest, '--identity', g.garbage], 1],
  ['import with an unknown option', () => ['import', g.drive, '--trust', g.trust, '--to', g.dest, '--force'], 64],

  ['watch without --config', () => ['watch'], 64],
  ['watch with a positional argument', () => ['watch', 'now', '--config', g.config], 64],
  ['watch with an unknown option', () => ['watch', '--config', g.config, '--bogus'], 64],
  ['watch with a configuration that does not exist', () => ['watch', '--config', g.missing], 1],
  ['watch with a folder as the configuration', () => ['watch', '--config', g.folder], 1],
  ['watch with a named pipe as the configuration', () => ['watch', '--config', g.fifo], 1],
  ['watch with a garbage configuration', () => ['watch', '--config', g.garbage], 1],
  ['watch with a configuration of the wrong shape', () => ['watch', '--config', g.configBadSchema], 1],
  ['watch with a configuration whose trust store does not exist', () => ['watch', '--config', g.configNoTrust], 1],

  ['log without a subcommand', () => ['log'], 64],
  ['an unknown log subcommand', () => ['log', 'frob', '--log', g.log], 64],
  ['log verify without --log', () => ['log', 'verify'], 64],
  ['log verify with a positional argument', () => ['log', 'verify', 'extra', '--log', g.log], 64],
  ['log verify with an unknown option', () => ['log', 'verify', '--log', g.log, '--bogus'], 64],
  ['log verify of a log that does not exist', () => ['log', 'verify', '--log', g.missing], 1],
  ['log verify of a folder', () => ['log', 'verify', '--log', g.folder], 1],
  ['log verify of a named pipe', () => ['log', 'verify', '--log', g.fifo], 1],
  ['log verify of garbage', () => ['log', 'verify', '--log', g.garbage], 1],
  ['log export without --format', () => ['log', 'export', '--log', g.log], 64],
  ['log export in an unknown format', () => ['log', 'export', '--log', g.log, '--format', 'xml'], 64],
  ['log export with a malformed --since', () => ['log', 'export', '--log', g.log, '--format', 'csv', '--since', 'last week'], 64],
  ['log export of a log that does not exist', () => ['log', 'export', '--log', g.missing, '--format', 'csv'], 1],
  ['log export of garbage', () => ['log', 'export', '--log', g.garbage, '--format', 'json'], 1],
];

describe('portcullis-agent with bad input', () => {
  it.each(CASES)('answers %s with its exit code, one line naming the error\'s code, and no stack trace', async (_name, argv, exit) => {
    const r = await run(argv());
    expect(r.out + r.err).not.toMatch(STACK);
    expect({ code: r.code, err: r.err.split('\n').filter(Boolean).length }).toEqual({ code: exit, err: 1 });
    expect(r.err.trimEnd()).toMatch(ERROR_LINE);
    if (exit === 64) expect(r.err).toMatch(/^portcullis-agent: USAGE: /u);
  });

  it('covers every command and subcommand the usage text names', () => {
    const commands = [...USAGE.matchAll(/^ {2}((?:trust|log) [a-z-]+|verify|import|watch)\b/gmu)].map((m) => m[1]!);
    expect(commands.length).toBeGreaterThanOrEqual(9);
    for (const command of [...commands, 'help', 'trust', 'log']) {
      const words = command.split(' ');
      expect({ command, tried: CASES.some(([, argv]) => argv().slice(0, words.length).join(' ') === command) }).toEqual({ command, tried: true });
    }
  });

  it('refuses the kiosk\'s private key with KEY_IS_PRIVATE and writes no trust store', async () => {
    const store = join(tempDir('t'), 'trust.json');
    const r = await run(['trust', 'add', g.key, '--trust', store]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^portcullis-agent: KEY_IS_PRIVATE: /u);
    expect(r.err).not.toContain('PRIVATE KEY-----'); // nothing of the key is echoed
    expect(existsSync(store)).toBe(false);
  });

  it('creates the trust store and its folder when trust add names a folder that does not exist yet', async () => {
    const store = join(tempDir('t'), 'new', 'folder', 'trust.json');
    const r = await run(['trust', 'add', g.pub, '--trust', store, '--label', 'gate 1']);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
    const list = await run(['trust', 'list', '--trust', store, '--json']);
    expect(JSON.parse(list.out)).toMatchObject({ keys: [{ keyId: kioskKey.keyId, status: 'trusted' }] });
    const log = await run(['log', 'verify', '--log', join(store, '..', 'portcullis-agent.log.jsonl')]);
    expect(log.code).toBe(0);
  });

  it('says DRIVE_NOT_FOUND, not NO_MANIFEST, for a drive path that does not exist', async () => {
    const r = await run(['verify', g.missing, '--trust', g.trust]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^portcullis-agent: DRIVE_NOT_FOUND: /u);
  });

  it('prints the usage and exits 0 for help, help COMMAND and COMMAND --help', async () => {
    for (const argv of [['help'], ['--help'], ['help', 'verify'], ['verify', '--help'], ['trust', 'add', '--help'], ['log', '-h']]) {
      const r = await run(argv);
      expect({ argv, code: r.code, err: r.err }).toEqual({ argv, code: 0, err: '' });
      expect(r.out).toMatch(/^usage: portcullis-agent /u);
    }
  });

  it('answers the same way as a real process, with no stack trace on either stream', async () => {
    const tries: Array<[string[], number]> = [
      [['verify', g.missing, '--trust', g.trust], 1],
      [['trust', 'add', g.key, '--trust', join(tempDir('t'), 'trust.json')], 1],
      [['log', 'verify', '--log', g.fifo], 1],
      [['watch', '--config', g.garbage], 1],
      [['import', g.drive, '--trust', g.trust], 64],
    ];
    for (const [argv, exit] of tries) {
      const result = await exec(process.execPath, [BIN, ...argv], { timeout: 20_000, killSignal: 'SIGKILL' }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      expect({ argv, code: result.code }).toEqual({ argv, code: exit });
      expect(result.stdout + result.stderr).not.toMatch(STACK);
      expect(result.stderr.trimEnd()).toMatch(ERROR_LINE);
    }
  });
});
