/**
 * Starts and stops the kiosk's own clamd (Debian's clamav-daemon binary) with
 * a generated clamd.conf, and connects to one that is already running.
 *
 * Work directory layout (root-owned apart from run/ and tmp/ when `user` is set):
 *   clamd.conf   generated on every start
 *   clamd.log    clamd's log
 *   run/clamd.sock
 *   tmp/         clamd writes each INSTREAM here before scanning it (mode 0700)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClamdClient, type ClamdClientOptions, type ClamdVersion } from './client.ts';
import { renderClamdConfig, resolveClamdConfig, type ClamdConfigOptions, type ClamdLimits } from './config.ts';
import { ScannerError } from './errors.ts';

export interface StartClamdOptions {
  /** Directory holding the signature databases (.cvd/.cld/.cud/.hdb/.ndb/.yar ...). */
  databaseDir: string;
  /** Directory for clamd's config, socket, log and temporary files; created if missing. */
  workDir: string;
  limits?: Partial<ClamdLimits>;
  /** Path of the clamd binary. */
  clamdPath?: string;
  /** ms: clamd must answer PING within this after start (loading real databases takes tens of seconds). */
  readyTimeoutMs?: number;
  /** true: no result cache (benchmarks). */
  disableCache?: boolean;
  /** Account clamd switches to when this process is root; null keeps the current user. */
  user?: string | null;
  /** Further clamd.conf settings (threads, timeouts); paths and limits come from the options above. */
  settings?: Omit<ClamdConfigOptions, 'socketPath' | 'temporaryDirectory' | 'databaseDirectory' | 'logFile' | 'limits' | 'user' | 'disableCache'>;
  /** Client timeouts; the client's maxStreamLength is clamd's StreamMaxLength. */
  client?: Pick<ClamdClientOptions, 'idleTimeoutMs' | 'scanTimeoutMs' | 'maxChunkLength'>;
}

export interface ClamdExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when `stop()` asked for it. */
  expected: boolean;
  /** Last lines of clamd's log and output. */
  logTail: string;
}

export interface ConnectedClamd {
  socketPath: string;
  client: ClamdClient;
  version: ClamdVersion;
}

export interface RunningClamd extends ConnectedClamd {
  pid: number;
  configPath: string;
  logPath: string;
  /** Terminates clamd (SIGTERM, then SIGKILL after `graceMs`) and resolves when it has exited. */
  stop(graceMs?: number): Promise<ClamdExit>;
  /** Resolves when clamd exits for any reason; `expected` is false when it was not `stop()`. Never rejects. */
  exited: Promise<ClamdExit>;
}

export const START_CLAMD_DEFAULTS = {
  clamdPath: '/usr/sbin/clamd',
  readyTimeoutMs: 120_000, // ms
  stopGraceMs: 10_000, // ms
} as const;

// Inherited from a systemd unit, these would make clamd take over the unit's sockets or notifications.
const SYSTEMD_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET'];
const OUTPUT_TAIL = 16 * 1024; // bytes of clamd's stdout/stderr kept for error messages

/**
 * A line clamd writes to stderr while it loads its databases that means
 * something was not loaded as written: libclamav's own errors and warnings
 * (a YARA rule it skipped, a signature it could not parse; they appear
 * nowhere else, and clamd starts anyway) and clamd's. Measured with ClamAV
 * 1.4.6 (docs/yara-engine.md).
 */
const LOAD_PROBLEM = /^(LibClamAV (Error|Warning)|ERROR|WARNING):/;
/**
 * The one warning that is not about loading: libclamav's notice that the
 * newest database is more than 7 days old (kiosks update offline, and the
 * manifest records the database's time).
 */
const DATABASE_AGE_NOTICE: ReadonlySet<string> = new Set([
  'LibClamAV Warning: **************************************************',
  'LibClamAV Warning: ***  The virus database is older than 7 days!  ***',
  'LibClamAV Warning: ***   Please update it as soon as possible.    ***',
]);
const MAX_LOAD_PROBLEMS = 20; // lines quoted in the error

export async function startClamd(options: StartClamdOptions): Promise<RunningClamd> {
  const workDir = resolve(options.workDir);
  const clamdPath = options.clamdPath ?? START_CLAMD_DEFAULTS.clamdPath;
  const readyTimeoutMs = options.readyTimeoutMs ?? START_CLAMD_DEFAULTS.readyTimeoutMs;
  const user = options.user ?? null;
  const runDir = join(workDir, 'run');
  const tmpDir = join(workDir, 'tmp');
  const configPath = join(workDir, 'clamd.conf');
  const logPath = join(workDir, 'clamd.log');
  const socketPath = join(runDir, 'clamd.sock');
  const configOptions: ClamdConfigOptions = {
    ...options.settings,
    socketPath,
    temporaryDirectory: tmpDir,
    databaseDirectory: resolve(options.databaseDir),
    logFile: logPath,
    user,
    disableCache: options.disableCache ?? false,
    limits: options.limits ?? {},
  };
  const config = resolveClamdConfig(configOptions); // validates before anything touches the disk
  await mkdir(workDir, { recursive: true, mode: 0o755 });
  await mkdir(runDir, { recursive: true, mode: 0o755 });
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  if (user !== null && process.getuid?.() === 0) {
    // clamd switches to `user` before it loads databases, binds the socket and writes temporary files;
    // databaseDir and the work directory's parents must be readable by that user.
    const { uid, gid } = await lookUpUser(user);
    await chown(runDir, uid, gid);
    await chown(tmpDir, uid, gid);
  }
  // A clamd left running by a crashed kiosk holds the socket and the log lock: end it first.
  await stopLeftoverClamd(configPath);
  await writeFile(configPath, renderClamdConfig(configOptions), { mode: 0o644 });

  const env: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC' }; // VERSION's database time and log times in UTC
  for (const name of SYSTEMD_VARIABLES) delete env[name];
  const child = spawn(clamdPath, ['--config-file', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const watch = child.pid === undefined ? null : watchForKioskDeath(child.pid);
  child.once('exit', () => {
    if (watch?.pid !== undefined) {
      try {
        process.kill(-watch.pid, 'SIGKILL'); // the shell and its cat
      } catch {
        // already gone
      }
    }
    watch?.stdin?.destroy();
  });
  // In the foreground clamd copies its log to stdout; libclamav's own errors go only to stderr.
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (data: Buffer) => {
    output.stdout = (output.stdout + data.toString('utf8')).slice(-OUTPUT_TAIL);
  });
  // Until clamd answers, every stderr line is read for load problems (clamd loads its databases before it listens).
  const load = { reading: true, partial: '', problems: [] as string[], count: 0 };
  const readLoadLines = (text: string): void => {
    const lines = (load.partial + text).split('\n');
    load.partial = (lines.pop() ?? '').slice(-4096);
    for (const raw of lines) {
      const line = raw.trim();
      if (!LOAD_PROBLEM.test(line) || DATABASE_AGE_NOTICE.has(line)) continue;
      load.count++;
      if (load.problems.length < MAX_LOAD_PROBLEMS) load.problems.push(line);
    }
  };
  child.stderr.on('data', (data: Buffer) => {
    const text = data.toString('utf8');
    output.stderr = (output.stderr + text).slice(-OUTPUT_TAIL);
    if (load.reading) readLoadLines(text);
  });

  let stopping = false;
  let spawnError: Error | undefined;
  const exited = new Promise<ClamdExit>((resolveExit) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      void readLogTail(logPath, output).then((logTail) => resolveExit({ code, signal, expected: stopping, logTail }));
    };
    child.once('error', (error) => {
      spawnError = error;
      if (child.pid === undefined) finish(null, null); // never started: no 'exit' follows
    });
    child.once('exit', finish);
  });

  const client = new ClamdClient({ ...options.client, socketPath, maxStreamLength: config.limits.maxFileSize });
  const stop = async (graceMs: number = START_CLAMD_DEFAULTS.stopGraceMs): Promise<ClamdExit> => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    }
    return exited;
  };

  const ready = await waitUntilReady(client, exited, readyTimeoutMs);
  if (ready !== true) {
    await stop(1_000);
    const exit = await exited;
    const why =
      ready === 'timeout'
        ? `did not answer PING within ${readyTimeoutMs} ms`
        : spawnError !== undefined
          ? `could not be run (${(spawnError as NodeJS.ErrnoException).code ?? spawnError.message})`
          : `exited during start (code ${String(exit.code)}, signal ${String(exit.signal)})`;
    throw new ScannerError(
      'SCANNER_START_FAILED',
      `clamd ${clamdPath} ${why}; no scanning is possible. Log ${logPath}:\n${exit.logTail}`,
      { cause: spawnError },
    );
  }
  let version: ClamdVersion;
  try {
    version = await client.version();
  } catch (error) {
    await stop();
    throw error;
  }
  // Anything libclamav could not load was written before clamd listened, so it has been read by now.
  load.reading = false;
  readLoadLines('\n');
  if (load.count > 0) {
    await stop();
    const more = load.count > load.problems.length ? `\n... and ${load.count - load.problems.length} more` : '';
    throw new ScannerError(
      'SCANNER_START_FAILED',
      `clamd ${clamdPath} reported ${load.count} problem(s) while loading the databases in ${configOptions.databaseDirectory}: ` +
        `some signatures or YARA rules may not be live, so no scanning is possible; fix or remove what these lines name:\n${load.problems.join('\n')}${more}`,
    );
  }
  return { socketPath, configPath, logPath, client, pid: child.pid ?? -1, version, stop, exited };
}

/** A client for a clamd that is already running (e.g. under systemd), checked with PING and VERSION. */
export async function connectClamd(
  socketPath: string,
  options: Omit<ClamdClientOptions, 'socketPath'> = {},
  signal?: AbortSignal,
): Promise<ConnectedClamd> {
  const client = new ClamdClient({ ...options, socketPath });
  await client.ping(signal);
  return { socketPath, client, version: await client.version(signal) };
}

/** Polls PING until PONG (true), clamd exits ('exited') or the time is up ('timeout'). */
async function waitUntilReady(
  client: ClamdClient,
  exited: Promise<ClamdExit>,
  timeoutMs: number,
): Promise<true | 'exited' | 'timeout'> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (!hasExited && Date.now() < deadline) {
    const attempt = AbortSignal.timeout(Math.max(1, Math.min(5_000, deadline - Date.now())));
    try {
      await client.ping(attempt);
      return true;
    } catch (error) {
      // Until clamd has loaded its databases the socket does not exist or refuses connections.
      if (!(error instanceof ScannerError)) throw error;
    }
    await Promise.race([sleep(100), exited]);
  }
  return hasExited ? 'exited' : 'timeout';
}

async function readLogTail(logPath: string, output: { stdout: string; stderr: string }): Promise<string> {
  let log = '';
  try {
    const handle = await open(logPath, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 8 * 1024);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      log = buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    // No log yet (clamd failed before opening it): its stdout has the same lines.
  }
  const tail = (text: string, lines: number): string => text.trimEnd().split('\n').slice(-lines).join('\n');
  const parts = [log.trim() !== '' ? tail(log, 20) : tail(output.stdout, 20)];
  if (output.stderr.trim() !== '') parts.push(`--- clamd stderr ---\n${tail(output.stderr, 10)}`);
  return parts.filter((part) => part !== '').join('\n');
}

/** Terminates any process started as `... --config-file <configPath>` (Linux /proc), SIGKILL after 5 s. */
async function stopLeftoverClamd(configPath: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return; // no procfs: nothing to find
  }
  const leftovers: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue; // exited meanwhile, or not ours to read
    }
    const flag = argv.indexOf('--config-file');
    if (flag > 0 && argv[flag + 1] === configPath) leftovers.push(Number(entry));
  }
  for (const pid of leftovers) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 5_000;
  while (leftovers.some(isAlive) && Date.now() < deadline) await sleep(50);
  for (const pid of leftovers.filter(isAlive)) signal(pid, 'SIGKILL');
}

/**
 * Ends clamd when the kiosk dies without stopping it (SIGKILL, a crash, power
 * to the process only): a shell waits for end-of-file on a pipe whose writing
 * end only this process holds, then sends clamd SIGTERM. It is killed as soon
 * as clamd exits, so it never signals a pid that has been reused.
 */
function watchForKioskDeath(clamdPid: number): ChildProcess | null {
  try {
    // Its own process group, so that killing it also ends the `cat` it runs (never left behind holding the pipe).
    const watch = spawn('/bin/sh', ['-c', 'cat > /dev/null; kill -TERM "$0" 2> /dev/null', String(clamdPid)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watch.on('error', () => undefined); // without /bin/sh the kiosk still works; only this safety net is missing
    watch.unref();
    (watch.stdin as unknown as { unref?: () => void } | null)?.unref?.(); // the pipe must not keep the kiosk's event loop alive
    return watch;
  } catch {
    return null;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lookUpUser(user: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) {
      return { uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new ScannerError('SCANNER_CONFIG', `clamd user ${JSON.stringify(user)} does not exist in /etc/passwd: create it or set user to null`);
}
