/**
 * Runs an external tool (mkfs, mtools, losetup, mount) with no standard input,
 * a fixed environment and a time limit. A tool that asks a question (mtools on
 * a name clash) reads end-of-file instead of hanging the kiosk.
 */
import { spawn } from 'node:child_process';
import { MediaError } from './errors.ts';

export interface ToolResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ToolOptions {
  env?: Record<string, string>;
  timeoutMs?: number; // ms; default 60 s
  /** How stdout is decoded: 'latin1' keeps every byte as one character. Default 'utf8'. */
  encoding?: 'utf8' | 'latin1';
}

const MAX_OUTPUT = 1024 * 1024; // bytes kept per stream

/** The environment every tool gets: predictable locale, UTC, no user configuration. */
export function toolEnvironment(extra: Record<string, string> = {}): Record<string, string> {
  return {
    // mkfs.*, losetup and blkid live in sbin, which a non-login PATH may lack.
    PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/local/sbin:/usr/sbin:/sbin`,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TZ: 'UTC',
    ...extra,
  };
}

/** Runs `command` and reports how it ended; throws MEDIA_TOOL_FAILED only when it cannot start. */
export function runTool(command: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? toolEnvironment(),
      timeout: options.timeoutMs ?? 60_000,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLength = 0;
    let errLength = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      if (outLength < MAX_OUTPUT) out.push(chunk);
      outLength += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (errLength < MAX_OUTPUT) err.push(chunk);
      errLength += chunk.length;
    });
    child.on('error', (cause) => {
      reject(new MediaError('MEDIA_TOOL_FAILED', `${command} could not start: ${cause.message}`, { cause }));
    });
    child.on('close', (exitCode, signal) => {
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString(options.encoding ?? 'utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** Runs `command` and throws MEDIA_TOOL_FAILED, with its stderr, unless it exits 0. */
export async function runToolOrThrow(command: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  const result = await runTool(command, args, options);
  if (result.exitCode !== 0) {
    const how = result.signal !== null ? `killed by ${result.signal}` : `exit ${result.exitCode}`;
    throw new MediaError('MEDIA_TOOL_FAILED', `${command} ${args.join(' ')}: ${how}: ${result.stderr.trim().slice(0, 500)}`);
  }
  return result;
}
