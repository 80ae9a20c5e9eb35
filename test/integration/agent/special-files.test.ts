/**
 * Special files where the agent expects a regular file: a named pipe (FIFO)
 * as the manifest or as a listed file must be refused at once, never opened
 * and waited on (an open of a FIFO for reading blocks until a writer comes,
 * and a blocked synchronous open holds the whole thread: no signal handler,
 * no other drive). These run the agent in child processes, so that a hang
 * before the fix fails the test by its timeout instead of freezing the suite.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MANIFEST_PATH } from '../../../manifest/index.ts';
import { DEFAULT_IDENTITY, makeDrive, tempDir, writeTrust } from '../../support/agent-fixtures.ts';

const exec = promisify(execFile);
const BIN = join(import.meta.dirname, '../../../agent/bin/portcullis-agent.js');
const AGENT = join(import.meta.dirname, '../../../agent');

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** Runs the agent CLI; resolves with its exit code and output, or with code null when it had to be killed. */
async function agent(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; killed?: boolean; stdout: string; stderr: string };
    return { code: e.killed ? null : typeof e.code === 'number' ? e.code : null, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('named pipes where the agent expects a regular file', () => {
  it('refuses a manifest that is a named pipe with MANIFEST_UNREADABLE instead of waiting for a writer', async () => {
    const drive = await makeDrive({ files: { 'README.txt': 'hello' } });
    rmSync(join(drive.root, MANIFEST_PATH));
    mkfifo(join(drive.root, MANIFEST_PATH));
    const trust = writeTrust();
    const identity = join(tempDir('id'), 'identity.json');
    writeFileSync(identity, JSON.stringify(DEFAULT_IDENTITY));
    const run = await agent(['verify', drive.root, '--trust', trust, '--identity', identity, '--json']);
    expect(run.code).toBe(20);
    expect(JSON.parse(run.stdout)).toMatchObject({ approved: false, code: 'MANIFEST_UNREADABLE' });
  });

  it('goes on past a drive whose manifest is a named pipe to the next drive, and stops on SIGTERM', async () => {
    const mounts = tempDir('mounts');
    const piped = await makeDrive({ files: { 'a.txt': 'a' } }, join(mounts, 'a-piped'));
    rmSync(join(piped.root, MANIFEST_PATH));
    mkfifo(join(piped.root, MANIFEST_PATH));
    await makeDrive({ files: { 'b.txt': 'b' } }, join(mounts, 'b-good'));
    const home = tempDir('watch');
    writeTrust({ policy: { requireMediaBinding: false } }, join(home, 'trust.json'));
    const inbox = join(home, 'inbox');
    mkdirSync(inbox);
    const config = join(home, 'config.json');
    writeFileSync(config, JSON.stringify({
      formatVersion: 1, trust: 'trust.json', log: 'agent.log.jsonl', destination: 'inbox', source: 'mount-folders',
      mountFolders: [mounts], pollIntervalSeconds: 1, settleSeconds: 0, notify: 'log', requireStoragePolicy: false,
    }));
    const child = spawn(process.execPath, [BIN, 'watch', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const log = join(home, 'agent.log.jsonl');
    const finished = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"import.finished"')).length : 0);
    try {
      for (let i = 0; i < 300 && finished() < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(finished()).toBe(2); // both drives were processed: the pipe held nothing up
      expect(existsSync(join(inbox, 'b.txt'))).toBe(true);
      const codes = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; code: string; drive: { mount: string } | null });
      expect(codes.find((r) => r.event === 'drive.checked' && r.drive?.mount.endsWith('a-piped'))?.code).toBe('MANIFEST_UNREADABLE');
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a listed file that became a named pipe with FILE_NOT_REGULAR in both the async and the stage-thread reads', async () => {
    const dir = tempDir('fifo');
    const pipe = join(dir, 'listed.bin');
    mkfifo(pipe);
    const script = join(dir, 'read-pipe.ts');
    writeFileSync(script, [
      `import { FileHasher } from ${JSON.stringify(join(AGENT, 'file-digest.ts'))};`,
      `import { readVerified, readVerifiedSync } from ${JSON.stringify(join(AGENT, 'verified-copy.ts'))};`,
      `const expected = { size: 5, sha256: '0'.repeat(64), blake3: '0'.repeat(64) };`,
      `const sync = readVerifiedSync(${JSON.stringify(pipe)}, expected, await FileHasher.create('both'));`,
      `const async = await readVerified(${JSON.stringify(pipe)}, expected);`,
      `console.log(JSON.stringify({ sync: sync.ok ? 'ok' : sync.code, async: async.ok ? 'ok' : async.code }));`,
    ].join('\n'));
    const { stdout } = await exec(process.execPath, [script], { timeout: 20_000, killSignal: 'SIGKILL' });
    expect(JSON.parse(stdout)).toEqual({ sync: 'FILE_NOT_REGULAR', async: 'FILE_NOT_REGULAR' });
  });
});
