/**
 * A real clamd with the test signature database in a fresh temporary
 * directory, for integration tests and demos: start once per test file,
 * dispose after.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScannerError, type ScannerErrorCode } from '../../kiosk/engines/clamav/errors.ts';
import { startClamd, type RunningClamd, type StartClamdOptions } from '../../kiosk/engines/clamav/supervisor.ts';
import { writeTestDatabase, type TestDatabaseOptions } from '../../kiosk/engines/clamav/test-database.ts';

export interface TestClamd extends RunningClamd {
  /** Temporary directory holding db/ and work/. */
  baseDir: string;
  /** Stops clamd and deletes the temporary directory. */
  dispose(): Promise<void>;
}

export type TestClamdOptions = Omit<StartClamdOptions, 'databaseDir' | 'workDir'> & TestDatabaseOptions;

export async function startTestClamd(options: TestClamdOptions = {}): Promise<TestClamd> {
  // Short base path: the socket path must fit in a Unix socket address (107 bytes).
  const baseDir = await mkdtemp(join(tmpdir(), 'pc-clamd-'));
  try {
    // clamd switched to another user must still reach db/, work/run/ and work/tmp/ (mkdtemp makes 0700).
    if (options.user !== undefined && options.user !== null) await chmod(baseDir, 0o755);
    const { daily, ...start } = options;
    await writeTestDatabase(join(baseDir, 'db'), daily === undefined ? {} : { daily });
    const clamd = await startClamd({ readyTimeoutMs: 30_000, ...start, databaseDir: join(baseDir, 'db'), workDir: join(baseDir, 'work') });
    return {
      ...clamd,
      baseDir,
      dispose: async () => {
        await clamd.stop();
        await rm(baseDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}

/** The ScannerError code a promise rejects with, or 'no error'; any other error is rethrown (tests assert codes). */
export async function scannerErrorCodeOf(promise: Promise<unknown>): Promise<ScannerErrorCode | 'no error'> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    if (error instanceof ScannerError) return error.code;
    throw error;
  }
}
