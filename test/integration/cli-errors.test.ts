/**
 * Every `portcullis-kiosk` subcommand with bad input (missing arguments,
 * nonexistent files, garbage files, folders where files are expected and the
 * other way round, unknown flags): the kiosk answers with its own message
 * (exit 1: one line naming the error code and what to do; exit 64: the usage
 * text), never a stack trace, never exit 70, and never after starting the
 * scan engines. Each case runs the real CLI in its own process.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyFiles } from '../../kiosk/cli/keygen.ts';

const MAIN = join(import.meta.dirname, '../../kiosk/main.ts');
const PUBLISHER = join(import.meta.dirname, '../../update/main.ts');
const CASE_TIMEOUT_MS = 20_000; // a case that hangs (a busy loop, a server that started) fails
const STACK = /\n\s+at /;

const work = mkdtempSync(join(tmpdir(), 'cli-errors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Fixtures: made once, before the cases are listed (they are plain files and folders).
const at = (name: string): string => join(work, name);
const MISSING = at('does-not-exist');
const FOLDER = at('drive');
mkdirSync(FOLDER);
writeFileSync(join(FOLDER, 'README.txt'), 'commissioning notes\n');
const EMPTY_FOLDER = at('empty-folder');
mkdirSync(EMPTY_FOLDER);
const GARBAGE = at('garbage.bin');
writeFileSync(GARBAGE, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 197 + 13) % 256)));
chmodSync(GARBAGE, 0o600);
const EMPTY_FILE = at('empty.txt');
writeFileSync(EMPTY_FILE, '');
const BAD_JSON = at('bad.json');
writeFileSync(BAD_JSON, '{"id": "plant", ');
const WRONG_SCHEMA = at('wrong-schema.json');
writeFileSync(WRONG_SCHEMA, '{"id": 5, "allow": "everything"}');
const NON_AUDIT_DB = at('notes.db');
{
  const db = new Database(NON_AUDIT_DB);
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('not an audit log')");
  db.close();
}
const CONFIG_MISSING_DB = at('kiosk-config.json');
writeFileSync(CONFIG_MISSING_DB, JSON.stringify({ auditDb: 'no-such-folder/audit.db' }));
const KEYS = at('keys');
const keys = generateKeyFiles(KEYS);
// Updates: a publisher's keys and repository, a kiosk with its root pinned, and one with none.
const UPDATE_KEYS = at('update-keys');
const UPDATE_REPO = at('update-repo');
const PINNED = at('pinned-updates');
// One pinned kiosk per import case: imports take the kiosk's update lock, and the cases run at once.
const PINNED_IMPORT = [1, 2, 3, 4, 5].map((i) => at(`pinned-updates-${i}`));
const UNPINNED = at('unpinned-updates');
const KEYS_OTHER = at('update-keys-other');
const REPO_GARBAGE_ROOT = at('repo-garbage-root');
mkdirSync(join(REPO_GARBAGE_ROOT, 'metadata'), { recursive: true });
writeFileSync(join(REPO_GARBAGE_ROOT, 'metadata', '1.root.json'), '{"signed": {"_type": "root"');
const REPO_GARBAGE = at('repo-garbage');
mkdirSync(join(REPO_GARBAGE, 'metadata'), { recursive: true });
writeFileSync(join(REPO_GARBAGE, 'metadata', 'timestamp.json'), '{"signed": "not metadata"');
const updates = (async () => {
  const { makePublisher, makeSource } = await import('../support/update-fixtures.ts');
  const { initUpdates } = await import('../../kiosk/updates/update-store.ts');
  const { initRoleKeys } = await import('../../update/role-keys.ts');
  await initRoleKeys(KEYS_OTHER);
  const publisher = await makePublisher(at('publisher'));
  await publisher.build(await makeSource(at('update-source')));
  cpSync(publisher.repo, UPDATE_REPO, { recursive: true });
  cpSync(publisher.keys, UPDATE_KEYS, { recursive: true });
  for (const folder of [PINNED, ...PINNED_IMPORT]) await initUpdates(folder, readFileSync(join(UPDATE_REPO, 'metadata', 'root.json')));
})();
const REVIEW_DB = at('review.db');

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function kiosk(args: readonly string[], options: { stdin?: string; env?: Record<string, string>; main?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.main ?? MAIN, ...args], {
      cwd: work,
      env: { ...process.env, PORTCULLIS_KIOSK_CONFIG: '', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: CASE_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** 64: usage error; 1: failure whose one-line message names `code`. */
  readonly exit: 1 | 64;
  readonly code?: string;
  readonly stdin?: string;
  readonly env?: Record<string, string>;
  readonly skip?: string | false;
  /** The publisher (portcullis-update) instead of the kiosk. */
  readonly publisher?: true;
}

const upd = (args: readonly string[]): readonly string[] => ['update', ...args, '--db', at('update-audit.db')];

const scanOk = [FOLDER, '--db', at('scan-audit.db'), '--clamav-db', 'test'];

const CASES: readonly Case[] = [
  // the command itself
  { name: 'no command', args: [], exit: 64 },
  { name: 'an unknown command', args: ['frobnicate'], exit: 64 },
  { name: 'an unknown flag instead of a command', args: ['--bogus'], exit: 64 },

  // keygen
  { name: 'keygen without --out', args: ['keygen'], exit: 64 },
  { name: 'keygen with --out and no value', args: ['keygen', '--out'], exit: 64 },
  { name: 'keygen with an unknown flag', args: ['keygen', '--out', at('k1'), '--bogus'], exit: 64 },
  { name: 'keygen with a stray argument', args: ['keygen', 'keys', '--out', at('k2')], exit: 64 },
  { name: 'keygen onto an existing file', args: ['keygen', '--out', GARBAGE], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'keygen under a file', args: ['keygen', '--out', join(GARBAGE, 'keys')], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'keygen into /proc, where nothing can be made', args: ['keygen', '--out', '/proc/portcullis-keys'], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'keygen deep under /proc', args: ['keygen', '--out', '/proc/portcullis/a/b/keys'], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'keygen where a key already is', args: ['keygen', '--out', KEYS], exit: 1, code: 'KEY_EXISTS' },
  { name: 'keygen into a folder where no file can be made', args: ['keygen', '--out', '/proc'], exit: 1, code: 'KEY_WRITE_FAILED' },

  // scan
  { name: 'scan without a PATH', args: ['scan'], exit: 64 },
  { name: 'scan with two PATHs', args: ['scan', FOLDER, EMPTY_FOLDER], exit: 64 },
  { name: 'scan with an unknown flag', args: ['scan', ...scanOk, '--bogus'], exit: 64 },
  { name: 'scan of a path that does not exist', args: ['scan', MISSING, '--db', at('scan-audit.db')], exit: 1, code: 'PATH_MISSING' },
  { name: 'scan of a folder with --image', args: ['scan', FOLDER, '--image', '--db', at('scan-audit.db')], exit: 64 },
  { name: 'scan of a regular file without --image', args: ['scan', GARBAGE, '--db', at('scan-audit.db')], exit: 64 },
  { name: 'scan of a garbage file as an image', args: ['scan', GARBAGE, '--image', '--db', at('scan-audit.db'), '--clamav-db', 'test'], exit: 1 },
  { name: 'scan of an empty file as an image', args: ['scan', EMPTY_FILE, '--image', '--db', at('scan-audit.db'), '--clamav-db', 'test'], exit: 1 },
  { name: 'scan with a --key that does not exist', args: ['scan', ...scanOk, '--key', MISSING], exit: 1, code: 'KEY_UNREADABLE' },
  { name: 'scan with a --key that is a folder', args: ['scan', ...scanOk, '--key', KEYS], exit: 1 },
  { name: 'scan with a --key that is garbage', args: ['scan', ...scanOk, '--key', GARBAGE], exit: 1 },
  { name: 'scan with a --policy that is not JSON', args: ['scan', ...scanOk, '--policy', BAD_JSON], exit: 1, code: 'POLICY_INVALID' },
  { name: 'scan with a --policy that is a folder', args: ['scan', ...scanOk, '--policy', FOLDER], exit: 1 },
  { name: 'scan with a --policy that does not exist', args: ['scan', ...scanOk, '--policy', MISSING], exit: 1 },
  { name: 'scan with an --allowlist that is a file', args: ['scan', ...scanOk, '--allowlist', GARBAGE], exit: 1 },
  { name: 'scan with an --allowlist that does not exist', args: ['scan', ...scanOk, '--allowlist', MISSING], exit: 1 },
  { name: 'scan with --rules that do not exist', args: ['scan', ...scanOk, '--rules', MISSING], exit: 1, code: 'PATH_MISSING' },
  { name: 'scan with --rules that are a file', args: ['scan', ...scanOk, '--rules', GARBAGE], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'scan with a --clamav-db that does not exist', args: ['scan', FOLDER, '--db', at('scan-audit.db'), '--clamav-db', MISSING], exit: 1, code: 'PATH_MISSING' },
  { name: 'scan with a --clamav-db that is a file', args: ['scan', FOLDER, '--db', at('scan-audit.db'), '--clamav-db', GARBAGE], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'scan with a --work-dir under a file', args: ['scan', ...scanOk, '--work-dir', join(GARBAGE, 'work')], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'scan with a --work-dir that is a file', args: ['scan', ...scanOk, '--work-dir', GARBAGE], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'scan with a --db that is a folder', args: ['scan', FOLDER, '--db', EMPTY_FOLDER, '--clamav-db', 'test'], exit: 1 },
  { name: 'scan with a --db that is garbage', args: ['scan', FOLDER, '--db', GARBAGE, '--clamav-db', 'test'], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'scan with a --db that is another SQLite database', args: ['scan', FOLDER, '--db', NON_AUDIT_DB, '--clamav-db', 'test'], exit: 1, code: 'AUDIT_NOT_AN_AUDIT_LOG' },
  { name: 'scan with a --db under /proc', args: ['scan', FOLDER, '--db', '/proc/portcullis/audit.db', '--clamav-db', 'test'], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'scan with a malformed --usb', args: ['scan', ...scanOk, '--usb', 'usb-stick'], exit: 64 },
  { name: 'scan with a --config that does not exist', args: ['scan', ...scanOk, '--config', MISSING], exit: 1, code: 'CONFIG_UNREADABLE' },
  { name: 'scan with a --config that is not JSON', args: ['scan', ...scanOk, '--config', BAD_JSON], exit: 1, code: 'CONFIG_INVALID' },
  { name: 'scan with a --config that is a folder', args: ['scan', ...scanOk, '--config', FOLDER], exit: 1, code: 'CONFIG_UNREADABLE' },
  { name: 'scan with a bad PORTCULLIS_KIOSK_CONFIG', args: ['scan', ...scanOk], env: { PORTCULLIS_KIOSK_CONFIG: WRONG_SCHEMA }, exit: 1, code: 'CONFIG_INVALID' },

  // run (the station): refused before it starts
  { name: 'run with an unknown flag', args: ['run', '--bogus'], exit: 64 },
  { name: 'run with a stray argument', args: ['run', 'now'], exit: 64 },
  { name: 'run with a --work-dir that is a file', args: ['run', '--watch', EMPTY_FOLDER, '--work-dir', GARBAGE, '--db', at('run-audit.db')], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'run with a --work-dir under a file', args: ['run', '--watch', EMPTY_FOLDER, '--work-dir', join(GARBAGE, 'work'), '--db', at('run-audit.db')], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'run with a --work-dir under /proc', args: ['run', '--watch', EMPTY_FOLDER, '--work-dir', '/proc/portcullis-work', '--db', at('run-audit.db')], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'run with a --device-policy that is not JSON', args: ['run', '--watch', EMPTY_FOLDER, '--device-policy', BAD_JSON, '--db', at('run-audit.db')], exit: 1, code: 'DEVICE_POLICY_INVALID' },
  { name: 'run with a --device-policy of the wrong shape', args: ['run', '--watch', EMPTY_FOLDER, '--device-policy', WRONG_SCHEMA, '--db', at('run-audit.db')], exit: 1, code: 'DEVICE_POLICY_INVALID' },
  { name: 'run with a --device-policy that does not exist', args: ['run', '--watch', EMPTY_FOLDER, '--device-policy', MISSING, '--db', at('run-audit.db')], exit: 1, code: 'DEVICE_POLICY_UNREADABLE' },
  { name: 'run with a --device-policy that is a folder', args: ['run', '--watch', EMPTY_FOLDER, '--device-policy', FOLDER, '--db', at('run-audit.db')], exit: 1, code: 'DEVICE_POLICY_UNREADABLE' },
  { name: 'run with a --watch folder that does not exist', args: ['run', '--watch', MISSING, '--db', at('run-audit.db')], exit: 1, code: 'PATH_MISSING' },
  { name: 'run with a --watch folder that is a file', args: ['run', '--watch', GARBAGE, '--db', at('run-audit.db')], exit: 1, code: 'PATH_NOT_A_FOLDER' },
  // A --key that is given but cannot be used starts the station OUT OF SERVICE (test/integration/station-self-check.test.ts).
  { name: 'run with a --policy that is not JSON', args: ['run', '--watch', EMPTY_FOLDER, '--policy', BAD_JSON, '--db', at('run-audit.db')], exit: 1, code: 'POLICY_INVALID' },
  { name: 'run with --rules that do not exist', args: ['run', '--watch', EMPTY_FOLDER, '--rules', MISSING, '--db', at('run-audit.db')], exit: 1, code: 'PATH_MISSING' },
  { name: 'run with a --db that is another SQLite database', args: ['run', '--watch', EMPTY_FOLDER, '--report-only', '--db', NON_AUDIT_DB], exit: 1, code: 'AUDIT_NOT_AN_AUDIT_LOG' },
  { name: 'run without a signing key', args: ['run', '--watch', EMPTY_FOLDER, '--db', at('run-audit.db')], env: { PORTCULLIS_KIOSK_KEY: '' }, exit: 1, code: 'KEY_REQUIRED' },
  { name: 'run with a --work-dir under /proc', args: ['run', '--work-dir', '/proc/portcullis-demo'], exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'run --demo (the demo station is ./portcullis demo station)', args: ['run', '--demo'], exit: 64 },
  { name: 'run with a --config that is not JSON', args: ['run', '--config', BAD_JSON], exit: 1, code: 'CONFIG_INVALID' },
  {
    name: 'run on a machine without a USB bus',
    args: ['run', '--db', at('run-audit.db'), '--clamav-db', 'test', '--report-only'],
    exit: 1,
    code: 'USB_UNAVAILABLE',
    skip: existsSync('/sys/bus/usb/devices') && 'this machine has a USB bus: the station would start',
  },

  // update (signed offline updates)
  { name: 'update without a command', args: ['update'], exit: 64 },
  { name: 'update with an unknown command', args: ['update', 'apply'], exit: 64 },
  { name: 'update init without --root', args: upd(['init', '--updates', at('u-init-1')]), exit: 64 },
  { name: 'update init with a stray argument', args: upd(['init', 'root.json', '--updates', at('u-init-2')]), exit: 64 },
  { name: 'update init with an option it does not take', args: upd(['init', '--root', MISSING, '--clamav-db', 'test']), exit: 64 },
  { name: 'update init with a --root that does not exist', args: upd(['init', '--root', MISSING, '--updates', at('u-init-3')]), exit: 1, code: 'UPDATE_ROOT_INVALID' },
  { name: 'update init with a --root that is garbage', args: upd(['init', '--root', GARBAGE, '--updates', at('u-init-4')]), exit: 1, code: 'UPDATE_ROOT_INVALID' },
  { name: 'update init with a --root that is a folder', args: upd(['init', '--root', FOLDER, '--updates', at('u-init-5')]), exit: 1, code: 'UPDATE_ROOT_INVALID' },
  { name: 'update init with a --root that is other JSON', args: upd(['init', '--root', WRONG_SCHEMA, '--updates', at('u-init-6')]), exit: 1, code: 'UPDATE_ROOT_INVALID' },
  { name: 'update init where a root is pinned already (pinned)', args: upd(['init', '--root', join(UPDATE_REPO, 'metadata', 'root.json'), '--updates', PINNED]), exit: 1, code: 'UPDATE_ALREADY_INITIALISED' },
  { name: 'update init with --updates under /proc (pinned)', args: upd(['init', '--root', join(UPDATE_REPO, 'metadata', 'root.json'), '--updates', '/proc/portcullis/updates']), exit: 1, code: 'PATH_UNWRITABLE' },
  { name: 'update import without a PATH', args: upd(['import', '--updates', PINNED]), exit: 64 },
  { name: 'update import with two PATHs', args: upd(['import', FOLDER, EMPTY_FOLDER, '--updates', PINNED]), exit: 64 },
  { name: 'update import with an unknown flag', args: upd(['import', FOLDER, '--bogus']), exit: 64 },
  { name: 'update import with an option it does not take', args: upd(['import', FOLDER, '--key', GARBAGE]), exit: 64 },
  { name: 'update import on a kiosk with no pinned root', args: upd(['import', UPDATE_REPO, '--updates', UNPINNED]), exit: 1, code: 'UPDATE_NOT_INITIALISED' },
  { name: 'update import of a folder that does not exist (pinned)', args: upd(['import', MISSING, '--updates', PINNED_IMPORT[0]!]), exit: 1, code: 'UPDATE_REPOSITORY_UNREADABLE' },
  { name: 'update import of a file (pinned)', args: upd(['import', GARBAGE, '--updates', PINNED_IMPORT[1]!]), exit: 1, code: 'UPDATE_REPOSITORY_UNREADABLE' },
  { name: 'update import of a folder that is not a repository (pinned)', args: upd(['import', FOLDER, '--updates', PINNED_IMPORT[2]!]), exit: 1, code: 'UPDATE_REPOSITORY_UNREADABLE' },
  { name: 'update import of garbage metadata (pinned)', args: upd(['import', REPO_GARBAGE, '--updates', PINNED_IMPORT[3]!]), exit: 1, code: 'UPDATE_METADATA_INVALID' },
  { name: 'update import with --updates that is a file', args: upd(['import', UPDATE_REPO, '--updates', GARBAGE]), exit: 1, code: 'UPDATE_NOT_INITIALISED' },
  { name: 'update import with a --config that is not JSON', args: upd(['import', UPDATE_REPO, '--config', BAD_JSON]), exit: 1, code: 'CONFIG_INVALID' },
  { name: 'update import with a --work-dir that is a file (pinned)', args: upd(['import', UPDATE_REPO, '--updates', PINNED_IMPORT[4]!, '--work-dir', GARBAGE]), exit: 1, code: 'PATH_NOT_A_FOLDER' },
  { name: 'update status with a stray argument', args: ['update', 'status', 'now'], exit: 64 },
  { name: 'update status with an option it does not take', args: ['update', 'status', '--db', at('x.db')], exit: 64 },
  { name: 'update status with a --policy that is not JSON', args: ['update', 'status', '--updates', UNPINNED, '--policy', BAD_JSON], exit: 1, code: 'POLICY_INVALID' },
  { name: 'update rollback with a stray argument', args: upd(['rollback', 'g000001']), exit: 64 },
  { name: 'update rollback on a kiosk with no pinned root', args: upd(['rollback', '--updates', UNPINNED]), exit: 1, code: 'UPDATE_NOT_INITIALISED' },
  { name: 'update rollback with nothing imported (pinned)', args: upd(['rollback', '--updates', PINNED]), exit: 1, code: 'UPDATE_NO_PREVIOUS' },

  // portcullis-update, the publisher
  { name: 'publisher: no command', args: [], exit: 64, publisher: true },
  { name: 'publisher: an unknown command', args: ['publish'], exit: 64, publisher: true },
  { name: 'publisher: keys without --keys', args: ['keys', 'init'], exit: 64, publisher: true },
  { name: 'publisher: keys with an unknown command', args: ['keys', 'delete', '--keys', at('pk-1')], exit: 64, publisher: true },
  { name: 'publisher: keys init with a stray argument', args: ['keys', 'init', 'now', '--keys', at('pk-2')], exit: 64, publisher: true },
  { name: 'publisher: keys init where keys are already (pinned)', args: ['keys', 'init', '--keys', UPDATE_KEYS], exit: 1, code: 'UPDATE_KEYS_EXIST', publisher: true },
  { name: 'publisher: keys init under a file', args: ['keys', 'init', '--keys', join(GARBAGE, 'keys')], exit: 1, code: 'UPDATE_WRITE_FAILED', publisher: true },
  { name: 'publisher: keys rotate without a ROLE (pinned)', args: ['keys', 'rotate', '--keys', UPDATE_KEYS, '--repo', UPDATE_REPO], exit: 64, publisher: true },
  { name: 'publisher: keys rotate of an unknown role (pinned)', args: ['keys', 'rotate', 'mirror', '--keys', UPDATE_KEYS, '--repo', UPDATE_REPO], exit: 64, publisher: true },
  { name: 'publisher: keys rotate without --repo', args: ['keys', 'rotate', 'timestamp', '--keys', UPDATE_KEYS], exit: 64, publisher: true },
  { name: 'publisher: keys rotate of a folder with no repository', args: ['keys', 'rotate', 'timestamp', '--keys', at('pk-3'), '--repo', EMPTY_FOLDER], exit: 64, publisher: true },
  { name: 'publisher: keys renew-root without the root key (pinned)', args: ['keys', 'renew-root', '--keys', EMPTY_FOLDER, '--repo', UPDATE_REPO], exit: 1, code: 'UPDATE_KEY_MISSING', publisher: true },
  { name: 'publisher: keys renew-root with a bad --root-days', args: ['keys', 'renew-root', '--keys', UPDATE_KEYS, '--repo', UPDATE_REPO, '--root-days', 'forever'], exit: 64, publisher: true },
  { name: 'publisher: build without --from', args: ['build', '--repo', at('pr-1'), '--keys', UPDATE_KEYS], exit: 64, publisher: true },
  { name: 'publisher: build with a stray argument', args: ['build', 'now', '--from', FOLDER, '--repo', at('pr-2'), '--keys', UPDATE_KEYS], exit: 64, publisher: true },
  { name: 'publisher: build with a bad --timestamp-days', args: ['build', '--from', FOLDER, '--repo', at('pr-3'), '--keys', UPDATE_KEYS, '--timestamp-days', '0'], exit: 64, publisher: true },
  { name: 'publisher: build from a folder that does not exist', args: ['build', '--from', MISSING, '--repo', at('pr-4'), '--keys', UPDATE_KEYS], exit: 1, code: 'UPDATE_SOURCE_INVALID', publisher: true },
  { name: 'publisher: build from a folder of other files', args: ['build', '--from', FOLDER, '--repo', at('pr-5'), '--keys', UPDATE_KEYS], exit: 1, code: 'UPDATE_SOURCE_INVALID', publisher: true },
  { name: 'publisher: build from an empty folder', args: ['build', '--from', EMPTY_FOLDER, '--repo', at('pr-6'), '--keys', UPDATE_KEYS], exit: 1, code: 'UPDATE_SOURCE_INVALID', publisher: true },
  { name: 'publisher: build without the keys (pinned)', args: ['build', '--from', at('update-source'), '--repo', at('pr-7'), '--keys', EMPTY_FOLDER], exit: 1, code: 'UPDATE_KEY_MISSING', publisher: true },
  { name: 'publisher: build onto a repository made with other keys (pinned)', args: ['build', '--from', at('update-source'), '--repo', UPDATE_REPO, '--keys', KEYS_OTHER], exit: 1, code: 'UPDATE_KEY_MISMATCH', publisher: true },
  { name: 'publisher: build with garbage metadata in --repo', args: ['build', '--from', at('update-source'), '--repo', REPO_GARBAGE_ROOT, '--keys', UPDATE_KEYS], exit: 1, code: 'UPDATE_REPO_INVALID', publisher: true },
  { name: 'publisher: show of a folder with no repository', args: ['show', '--repo', EMPTY_FOLDER], exit: 64, publisher: true },

  // demo
  // The demos are the project's harness (./portcullis demo), not kiosk commands.
  { name: 'demo (it is ./portcullis demo)', args: ['demo', '--dir', GARBAGE], exit: 64 },

  // log
  { name: 'log without a command', args: ['log'], exit: 64 },
  { name: 'log with an unknown command', args: ['log', 'frobnicate'], exit: 64 },
  { name: 'log verify with an unknown flag', args: ['log', 'verify', '--db', NON_AUDIT_DB, '--bogus'], exit: 64 },
  { name: 'log verify of a log that does not exist', args: ['log', 'verify', '--db', MISSING], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log verify of a garbage file', args: ['log', 'verify', '--db', GARBAGE], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log verify of an empty file', args: ['log', 'verify', '--db', EMPTY_FILE], exit: 1, code: 'AUDIT_SCHEMA_OUTDATED' },
  { name: 'log verify of a folder', args: ['log', 'verify', '--db', FOLDER], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log verify of another SQLite database', args: ['log', 'verify', '--db', NON_AUDIT_DB], exit: 1, code: 'AUDIT_NOT_AN_AUDIT_LOG' },
  { name: 'log verify with a malformed --anchor', args: ['log', 'verify', '--db', NON_AUDIT_DB, '--anchor', 'yesterday'], exit: 64 },
  { name: 'log verify of the default log named by the config, missing', args: ['log', 'verify'], env: { PORTCULLIS_KIOSK_CONFIG: CONFIG_MISSING_DB }, exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log list of another SQLite database', args: ['log', 'list', '--db', NON_AUDIT_DB], exit: 1, code: 'AUDIT_NOT_AN_AUDIT_LOG' },
  { name: 'log list with a malformed --since', args: ['log', 'list', '--db', NON_AUDIT_DB, '--since', 'last week'], exit: 64 },
  { name: 'log list with --limit 0', args: ['log', 'list', '--db', NON_AUDIT_DB, '--limit', '0'], exit: 64 },
  { name: 'log list with an unknown --verdict', args: ['log', 'list', '--db', NON_AUDIT_DB, '--verdict', 'clean'], exit: 64 },
  { name: 'log show without a SCAN_ID', args: ['log', 'show', '--db', NON_AUDIT_DB], exit: 64 },
  { name: 'log show of a log that does not exist', args: ['log', 'show', 'x', '--db', MISSING], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log export without --format', args: ['log', 'export', '--db', NON_AUDIT_DB], exit: 64 },
  { name: 'log export with an unknown --format', args: ['log', 'export', '--db', NON_AUDIT_DB, '--format', 'xml'], exit: 64 },
  { name: 'log export of a garbage file', args: ['log', 'export', '--db', GARBAGE, '--format', 'csv'], exit: 1, code: 'AUDIT_OPEN_FAILED' },
  { name: 'log export of a folder', args: ['log', 'export', '--db', FOLDER, '--format', 'json'], exit: 1, code: 'AUDIT_OPEN_FAILED' },

  // review and its subcommands
  { name: 'review without --review-db', args: ['review', '--db', NON_AUDIT_DB], exit: 64 },
  { name: 'review with an unknown flag', args: ['review', '--bogus'], exit: 64 },
  { name: 'review with a bad --port', args: ['review', '--db', NON_AUDIT_DB, '--review-db', REVIEW_DB, '--port', 'eighty'], exit: 64 },
  { name: 'review of an audit log that does not exist', args: ['review', '--db', MISSING, '--review-db', at('review-a.db'), '--port', '0'], exit: 1 },
  { name: 'review of a garbage audit log', args: ['review', '--db', GARBAGE, '--review-db', at('review-b.db'), '--port', '0'], exit: 1 },
  { name: 'review of another SQLite database as the audit log', args: ['review', '--db', NON_AUDIT_DB, '--review-db', at('review-c.db'), '--port', '0'], exit: 1 },
  { name: 'review with a garbage --review-db', args: ['review', '--db', NON_AUDIT_DB, '--review-db', GARBAGE, '--port', '0'], exit: 1 },
  { name: 'review with a --review-db that is a folder', args: ['review', '--db', NON_AUDIT_DB, '--review-db', FOLDER, '--port', '0'], exit: 1 },
  { name: 'review user add without a NAME', args: ['review', 'user', 'add', '--review-db', REVIEW_DB], exit: 64 },
  { name: 'review user with an unknown subcommand', args: ['review', 'user', 'remove', 'alice', '--review-db', REVIEW_DB], exit: 64 },
  { name: 'review user add into a garbage --review-db', args: ['review', 'user', 'add', 'alice', '--review-db', GARBAGE], stdin: 'correct horse battery staple\n', exit: 1 },
  { name: 'review user add with an empty password', args: ['review', 'user', 'add', 'alice', '--review-db', at('review-d.db')], stdin: '\n', exit: 1 },
  { name: 'review token without --review-db', args: ['review', 'token'], exit: 64 },
  { name: 'review token with a bad --ttl-minutes', args: ['review', 'token', '--review-db', REVIEW_DB, '--ttl-minutes', 'soon'], exit: 64 },
  { name: 'review token from a garbage --review-db', args: ['review', 'token', '--review-db', GARBAGE], exit: 1 },
  { name: 'review token from a --review-db that is a folder', args: ['review', 'token', '--review-db', FOLDER], exit: 1 },
  { name: 'review import-agent-log without a FILE', args: ['review', 'import-agent-log', '--review-db', REVIEW_DB], exit: 64 },
  { name: 'review import-agent-log of a file that does not exist', args: ['review', 'import-agent-log', MISSING, '--review-db', at('review-e.db')], exit: 1 },
  { name: 'review import-agent-log of a garbage file', args: ['review', 'import-agent-log', GARBAGE, '--review-db', at('review-f.db')], exit: 1 },
  { name: 'review import-agent-log of a folder', args: ['review', 'import-agent-log', FOLDER, '--review-db', at('review-g.db')], exit: 1 },
  { name: 'review import-agent-log into a garbage --review-db', args: ['review', 'import-agent-log', EMPTY_FILE, '--review-db', GARBAGE], exit: 1 },

  // siem
  { name: 'siem without a command', args: ['siem'], exit: 64 },
  { name: 'siem with an unknown command', args: ['siem', 'receive'], exit: 64 },
  { name: 'siem send without --target', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-a.db')], exit: 64 },
  { name: 'siem send with a malformed --target', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-b.db'), '--target', 'siem.example'], exit: 64 },
  { name: 'siem send with an unknown flag', args: ['siem', 'send', '--bogus'], exit: 64 },
  { name: 'siem send with a bad --follow', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-c.db'), '--target', '127.0.0.1:9', '--follow', 'often'], exit: 64 },
  { name: 'siem send of an audit log that does not exist', args: ['siem', 'send', '--db', MISSING, '--spool', at('spool-d.db'), '--target', '127.0.0.1:9'], exit: 1 },
  { name: 'siem send of a garbage audit log', args: ['siem', 'send', '--db', GARBAGE, '--spool', at('spool-e.db'), '--target', '127.0.0.1:9'], exit: 1 },
  { name: 'siem send of another SQLite database', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-f.db'), '--target', '127.0.0.1:9'], exit: 1 },
  { name: 'siem send with a garbage --spool', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', GARBAGE, '--target', '127.0.0.1:9'], exit: 1 },
  { name: 'siem send with --tls and a --ca that does not exist', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-g.db'), '--target', '127.0.0.1:9', '--tls', '--ca', MISSING], exit: 1, code: 'SIEM_CONFIG_INVALID' },
  { name: 'siem send with --tls and a --ca that is a folder', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-h.db'), '--target', '127.0.0.1:9', '--tls', '--ca', FOLDER], exit: 1, code: 'SIEM_CONFIG_INVALID' },
  { name: 'siem send with --tls and a --cert that does not exist', args: ['siem', 'send', '--db', NON_AUDIT_DB, '--spool', at('spool-i.db'), '--target', '127.0.0.1:9', '--tls', '--ca', EMPTY_FILE, '--cert', MISSING], exit: 1, code: 'SIEM_CONFIG_INVALID' },
];

describe.concurrent('portcullis-kiosk with bad input', () => {
  it.for(CASES)('$name: exits $exit with its own message, no stack trace', async (c) => {
    if (c.skip) {
      console.warn(`skipped: ${c.name}: ${c.skip}`);
      return;
    }
    if (c.name.startsWith('keygen where a key')) await keys;
    if (c.name.includes('(pinned)') || c.publisher) await updates;
    const r = await kiosk(c.args, { ...(c.stdin === undefined ? {} : { stdin: c.stdin }), ...(c.env ? { env: c.env } : {}), ...(c.publisher ? { main: PUBLISHER } : {}) });
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.signal, `killed after ${CASE_TIMEOUT_MS} ms:\n${output}`).toBeNull();
    expect(output).not.toMatch(STACK);
    expect(output).not.toMatch(/internal error \(this is a bug/);
    // Bad input is refused before the scan engines start.
    expect(output).not.toMatch(/^engines: /m);
    expect(r.code, output).toBe(c.exit);
    if (c.exit === 1) {
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^portcullis-(?:kiosk(?: log)?|update): [A-Z][A-Z0-9_]+: \S/);
      if (c.code) expect(lines[0]!.split(': ')[1]).toBe(c.code);
    } else {
      expect(r.stderr).toMatch(/usage:/);
    }
  });
});

describe('portcullis-kiosk help', () => {
  it.for([['help'], ['--help']])('%s prints the usage and exits 0', async (args) => {
    const r = await kiosk(args);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: portcullis-kiosk <command>/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(STACK);
  });
});

describe('a database that is not an audit log', () => {
  it('is left byte for byte as it was by log list, log verify and scan', async () => {
    const before = readFileSync(NON_AUDIT_DB);
    const mtime = statSync(NON_AUDIT_DB).mtimeMs;
    expect((await kiosk(['log', 'list', '--db', NON_AUDIT_DB])).code).toBe(1);
    expect((await kiosk(['log', 'verify', '--db', NON_AUDIT_DB])).code).toBe(1);
    expect((await kiosk(['scan', FOLDER, '--db', NON_AUDIT_DB, '--clamav-db', 'test'])).code).toBe(1);
    expect(readFileSync(NON_AUDIT_DB).equals(before)).toBe(true);
    expect(statSync(NON_AUDIT_DB).mtimeMs).toBe(mtime);
    expect(existsSync(`${NON_AUDIT_DB}-wal`)).toBe(false);
  });
});
