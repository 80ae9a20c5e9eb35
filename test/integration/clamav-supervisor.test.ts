/**
 * Starting, stopping, losing and connecting to the real clamd. Each test that
 * breaks clamd starts its own (about 0.1 s with the test database).
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScannerError } from '../../kiosk/engines/clamav/errors.ts';
import { connectClamd, startClamd } from '../../kiosk/engines/clamav/supervisor.ts';
import { scannerErrorCodeOf, startTestClamd, type TestClamd } from '../support/test-clamd.ts';
import { EICAR, TEST_SIGNATURES, writeTestDatabase } from '../../kiosk/engines/clamav/test-database.ts';

let scratch: string;
const started: TestClamd[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pc-sup-'));
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((clamd) => clamd.dispose()));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function testClamd(options: Parameters<typeof startTestClamd>[0] = {}): Promise<TestClamd> {
  const clamd = await startTestClamd(options);
  started.push(clamd);
  return clamd;
}

async function startError(promise: Promise<unknown>): Promise<ScannerError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ScannerError) return error;
    throw error;
  }
  throw new Error('expected startClamd to fail');
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startClamd', () => {
  it('reports the daily database version and build time clamd announces for a .cud database', async () => {
    const builtAt = new Date('2026-01-02T03:04:05Z');
    const clamd = await testClamd({ daily: { version: 4242, builtAt } });
    expect(clamd.version.databaseVersion).toBe(4242);
    expect(clamd.version.databaseTime).toBe('Fri Jan  2 03:04:05 2026'); // clamd runs with TZ=UTC
    expect(clamd.version.raw).toBe(`ClamAV ${clamd.version.engine}/4242/Fri Jan  2 03:04:05 2026`);
    expect(await clamd.client.scanStream(Readable.from([EICAR]))).toEqual({
      status: 'found',
      signature: TEST_SIGNATURES.eicar,
    });
  });

  it('writes the generated config, keeps the socket private and answers PING', async () => {
    const clamd = await testClamd();
    const config = await readFile(clamd.configPath, 'utf8');
    expect(config).toContain(`LocalSocket ${clamd.socketPath}`);
    expect(config).not.toMatch(/^TCPSocket/m);
    await clamd.client.ping();
    expect(processExists(clamd.pid)).toBe(true);
  });

  it('stops clamd cleanly: exit code 0, expected, socket removed, then SCANNER_UNAVAILABLE', async () => {
    const clamd = await testClamd();
    const exit = await clamd.stop();
    expect(exit).toMatchObject({ code: 0, signal: null, expected: true });
    expect(existsSync(clamd.socketPath)).toBe(false);
    expect(processExists(clamd.pid)).toBe(false);
    expect(await scannerErrorCodeOf(clamd.client.ping())).toBe('SCANNER_UNAVAILABLE');
  });

  it('ends a clamd left running on the same work directory (a crashed kiosk) and starts afresh', async () => {
    const first = await testClamd();
    const second = await startClamd({ databaseDir: join(first.baseDir, 'db'), workDir: join(first.baseDir, 'work') });
    try {
      expect(await first.exited).toMatchObject({ expected: false });
      expect(second.pid).not.toBe(first.pid);
      await second.client.ping();
    } finally {
      await second.stop();
    }
  });

  it('fails with SCANNER_START_FAILED quoting the log when the database directory is empty', async () => {
    const db = join(scratch, 'empty-db');
    await mkdir(db, { recursive: true });
    const error = await startError(startClamd({ databaseDir: db, workDir: join(scratch, 'work-empty') }));
    expect(error.code).toBe('SCANNER_START_FAILED');
    expect(error.message).toContain('No supported database files found');
  });

  it('fails with SCANNER_START_FAILED quoting libclamav when a rule in the database does not load (clamd itself would start)', async () => {
    const db = join(scratch, 'db-broken-rule');
    await writeTestDatabase(db);
    await writeFile(join(db, 'broken.yar'), 'rule Broken_Syntax\n{\n  strings:\n    $a = "portcullis-broken" nocase\n  condition\n    $a\n}\n');
    const workDir = join(scratch, 'work-broken-rule');
    const error = await startError(startClamd({ databaseDir: db, workDir }));
    expect(error.code).toBe('SCANNER_START_FAILED');
    expect(error.message).toMatch(/LibClamAV Error: yyerror\(\): .*broken\.yar line 6 syntax error/);
    expect(error.message).toContain('LibClamAV Warning: cli_loadyara: failed to parse or load 1 yara rules');
    // clamd was up when the lines were read: it is stopped, not left running.
    expect(await readFile(join(workDir, 'clamd.log'), 'utf8')).toMatch(/--- Stopped at /);
  });

  it('starts on a database older than 7 days: libclamav\'s age notice is not a load problem', async () => {
    const clamd = await testClamd({ daily: { version: 7, builtAt: new Date('2020-01-01T00:00:00Z') } });
    expect(clamd.version.databaseVersion).toBe(7);
    await clamd.client.ping();
  });

  it('fails with SCANNER_START_FAILED when the clamd binary does not exist', async () => {
    const db = join(scratch, 'db-missing-binary');
    await writeTestDatabase(db);
    const error = await startError(
      startClamd({ databaseDir: db, workDir: join(scratch, 'work-missing'), clamdPath: join(scratch, 'no-such-clamd') }),
    );
    expect(error.code).toBe('SCANNER_START_FAILED');
  });

  it('fails with SCANNER_START_FAILED and kills the process when clamd never answers PING', async () => {
    const db = join(scratch, 'db-hang');
    await writeTestDatabase(db);
    const pidFile = join(scratch, 'hang.pid');
    const fake = join(scratch, 'hanging-clamd.sh');
    await writeFile(fake, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 60\n`);
    await chmod(fake, 0o755);
    const started = Date.now();
    const error = await startError(
      startClamd({ databaseDir: db, workDir: join(scratch, 'work-hang'), clamdPath: fake, readyTimeoutMs: 500 }),
    );
    expect(error.code).toBe('SCANNER_START_FAILED');
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number(await readFile(pidFile, 'utf8'));
    expect(processExists(pid)).toBe(false);
  });

  it('refuses invalid limits with SCANNER_CONFIG before creating anything', async () => {
    const workDir = join(scratch, 'work-invalid');
    const error = await startError(startClamd({ databaseDir: scratch, workDir, limits: { maxRecursion: 0 } }));
    expect(error.code).toBe('SCANNER_CONFIG');
    expect(existsSync(workDir)).toBe(false);
  });

  const asRoot = process.getuid?.() === 0 && existsSync('/etc/passwd');
  it.runIf(asRoot)('switches clamd to the configured user when started as root', async () => {
    const passwd = await readFile('/etc/passwd', 'utf8');
    const entry = passwd.split('\n').find((line) => line.startsWith('nobody:'));
    expect(entry, 'this test needs the "nobody" account').toBeDefined();
    const uid = entry?.split(':')[2];
    const clamd = await testClamd({ user: 'nobody' });
    const status = await readFile(`/proc/${clamd.pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
    expect(await clamd.client.scanStream(Readable.from([EICAR]))).toEqual({
      status: 'found',
      signature: TEST_SIGNATURES.eicar,
    });
  });
});

describe('losing clamd', () => {
  it('fails a scan in progress with SCANNER_UNAVAILABLE when clamd is killed, and reports the exit as unexpected', async () => {
    const clamd = await testClamd();
    let sent = 0;
    async function* slowDrive(): AsyncGenerator<Uint8Array> {
      for (;;) {
        await sleep(2);
        sent += 1;
        if (sent === 20) process.kill(clamd.pid, 'SIGKILL');
        yield new Uint8Array(16 * 1024);
      }
    }
    expect(await scannerErrorCodeOf(clamd.client.scanStream(slowDrive()))).toBe('SCANNER_UNAVAILABLE');
    expect(sent).toBeGreaterThanOrEqual(20);
    const exit = await clamd.exited;
    expect(exit).toMatchObject({ signal: 'SIGKILL', expected: false });
  });

  it('fails with SCANNER_UNAVAILABLE when clamd is killed after the stream ended, while it scans', async () => {
    const clamd = await testClamd(); // default limits: the 128 MiB inflation below is scanned in full (about a second)
    const bomb = gzipSync(new Uint8Array(128 * 1024 * 1024));
    let killedAfterEnd = false;
    // eslint-disable-next-line @typescript-eslint/require-await -- a drive whose one read returns at once
    async function* drive(): AsyncGenerator<Uint8Array> {
      yield bomb;
      // Reached when the client asks for more: every byte is sent, clamd is inflating and scanning.
      setTimeout(() => {
        killedAfterEnd = true;
        process.kill(clamd.pid, 'SIGKILL');
      }, 100);
    }
    expect(await scannerErrorCodeOf(clamd.client.scanStream(drive()))).toBe('SCANNER_UNAVAILABLE');
    expect(killedAfterEnd).toBe(true);
  });

  it('fails with SCANNER_UNAVAILABLE when no clamd is running at the socket', async () => {
    expect(await scannerErrorCodeOf(connectClamd(join(scratch, 'nobody-home.sock')))).toBe('SCANNER_UNAVAILABLE');
  });
});

describe('connectClamd', () => {
  it('connects to a running clamd by its socket and reads the same version', async () => {
    const clamd = await testClamd();
    const connected = await connectClamd(clamd.socketPath);
    expect(connected.version).toEqual(clamd.version);
    expect(await connected.client.scanStream(Readable.from([EICAR]))).toEqual({
      status: 'found',
      signature: TEST_SIGNATURES.eicar,
    });
  });
});
