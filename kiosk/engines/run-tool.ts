/**
 * Runs one engine command-line tool (yarac, clamscan) with a time limit and
 * bounded output, never through a shell. The result says how it ended; the
 * caller decides what counts as success.
 */
import { execFile } from 'node:child_process';

export interface ToolResult {
  /** Exit code, or null when the process ended on a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export class ToolStartError extends Error {
  constructor(command: string, options: { cause: unknown }) {
    super(`cannot start ${command}`, options);
    this.name = 'ToolStartError';
  }
}

export function runTool(
  command: string,
  args: readonly string[],
  options: { timeoutMs: number; cwd?: string; maxOutputBytes?: number },
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: options.maxOutputBytes ?? 4 * 1024 * 1024, // bytes per stream
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, signal: null, stdout, stderr, timedOut: false });
          return;
        }
        const e = error as NodeJS.ErrnoException & { code?: unknown; signal?: NodeJS.Signals | null; killed?: boolean };
        if (typeof e.code === 'string') {
          // ENOENT, EACCES, ERR_CHILD_PROCESS_STDIO_MAXBUFFER: the tool did not run to an answer.
          reject(new ToolStartError(command, { cause: error }));
          return;
        }
        resolve({
          code: typeof e.code === 'number' ? e.code : null,
          signal: e.signal ?? null,
          stdout,
          stderr,
          timedOut: e.killed === true && e.signal === 'SIGKILL',
        });
      },
    );
  });
}
