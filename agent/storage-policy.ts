/**
 * Is the removable-storage policy in force? install.ps1 (or a GPO) sets
 * "All Removable Storage classes: Deny all access", i.e. the REG_DWORD
 * Deny_All = 1 under STORAGE_POLICY_KEY, so that interactive users reach USB
 * drives only through the agent. Without it the agent still mediates, but a
 * user can open a drive in Explorer and bypass it: the service checks the
 * value at start-up and every few minutes, and records each change once
 * (docs/agent.md "Service mode").
 *
 * The parser is pure; reg.exe is an adapter (`RegRunner`), replaced in tests.
 */
import { execFile } from 'node:child_process';
import type { AuditSink } from './audit-log.ts';
import { systemTool } from './drive-identity.ts';
import type { StoragePolicyCode } from './errors.ts';
import type { Notifier } from './notify.ts';

export const STORAGE_POLICY_KEY = 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\RemovableStorageDevices';
export const STORAGE_POLICY_VALUE = 'Deny_All';
export const STORAGE_POLICY_CHECK_MS = 5 * 60_000; // ms between checks while the service runs
const REG_TIMEOUT_MS = 10_000; // ms before a hung reg.exe counts as a failed check

/** What reg.exe printed and how it exited. */
export interface RegOutput {
  /** The exit code; null when it was killed (e.g. by the timeout). */
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs reg.exe with these arguments; rejects only when it could not be run at all. */
export type RegRunner = (args: readonly string[]) => Promise<RegOutput>;

export interface StoragePolicyReading {
  readonly inForce: boolean;
  /** What was found, for the log: "Deny_All = 1", "Deny_All is not set ...". */
  readonly detail: string;
}

/**
 * `reg query KEY /v Deny_All /reg:64`: the 64-bit view, whatever the
 * bitness of the process (policies live there; a 32-bit view would show
 * WOW6432Node).
 */
export function regQueryArguments(): string[] {
  return ['query', STORAGE_POLICY_KEY, '/v', STORAGE_POLICY_VALUE, '/reg:64'];
}

// One value line of `reg query`: name, type, data, separated by blanks (four spaces
// in English builds, but only the separator is relied on). Names and type names
// are not translated; the header line and error messages are.
const VALUE_LINE = /^\s*(\S+)\s+(REG_[A-Z_0-9]+)\s*(.*?)\s*$/u;

/** Interprets reg.exe's answer. Only a single REG_DWORD Deny_All of exactly 1 is "in force". */
export function parseStoragePolicy(output: RegOutput): StoragePolicyReading {
  if (output.exitCode !== 0) {
    const said = firstLine(output.stderr) || firstLine(output.stdout);
    // reg.exe exits 1 both for a missing value or key and for access denied; both mean not in force.
    const what = output.exitCode === 1 ? `${STORAGE_POLICY_VALUE} is not set or cannot be read` : `reg.exe ended with ${output.exitCode === null ? 'no exit code (killed)' : `exit code ${output.exitCode}`}`;
    return { inForce: false, detail: `${what}${said ? ` (reg.exe: ${said})` : ''}` };
  }
  const lines = output.stdout
    .split(/\r?\n/u)
    .map((line) => VALUE_LINE.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[1]?.toLowerCase() === STORAGE_POLICY_VALUE.toLowerCase());
  if (lines.length !== 1) return { inForce: false, detail: `expected 1 ${STORAGE_POLICY_VALUE} line in reg.exe's answer, got ${lines.length}` };
  const [, , type, data] = lines[0]!;
  if (type !== 'REG_DWORD') return { inForce: false, detail: `${STORAGE_POLICY_VALUE} is ${type}, not REG_DWORD: Windows ignores it` };
  if (!/^0x[0-9a-f]{1,8}$/iu.test(data ?? '')) return { inForce: false, detail: `${STORAGE_POLICY_VALUE} has unreadable data ${JSON.stringify(data)}` };
  const value = Number.parseInt(data!.slice(2), 16);
  return value === 1 ? { inForce: true, detail: `${STORAGE_POLICY_VALUE} = 1` } : { inForce: false, detail: `${STORAGE_POLICY_VALUE} = ${value}, not 1` };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/u).map((l) => l.trim()).find((l) => l !== '')?.slice(0, 200) ?? '';
}

/** Reads the policy through `run`; never rejects: a failure to read is "not in force". */
export async function readStoragePolicy(run: RegRunner): Promise<StoragePolicyReading> {
  try {
    return parseStoragePolicy(await run(regQueryArguments()));
  } catch (error) {
    return { inForce: false, detail: `reg.exe could not be run: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** The real reg.exe, by full path (never looked up on PATH), no shell. */
export const regExe: RegRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile(systemTool('reg.exe'), [...args], { windowsHide: true, timeout: REG_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error === null) resolve({ exitCode: 0, stdout, stderr });
      // A number is reg.exe's own exit code; anything else (ENOENT, EACCES) means it never ran.
      else if (typeof error.code === 'number') resolve({ exitCode: error.code, stdout, stderr });
      else if (error.killed) resolve({ exitCode: null, stdout, stderr });
      else reject(new Error(`${systemTool('reg.exe')}: ${error.message}`, { cause: error }));
    });
  });

export interface StoragePolicyMonitorOptions {
  /** False: the configuration opted out (`requireStoragePolicy: false`); logged once, never checked. */
  readonly required: boolean;
  readonly read: () => Promise<StoragePolicyReading>;
  readonly log: AuditSink;
  readonly notifier: Notifier;
  /** A line for the watch output (the service's stdout). */
  readonly say: (line: string) => void;
  readonly intervalMs?: number; // ms between checks; default STORAGE_POLICY_CHECK_MS
}

/**
 * Checks at start and then every `intervalMs`; logs and tells only changes:
 * the first reading, then each time the policy goes off or comes back on.
 * A reading whose record cannot be written is reported again at the next check.
 */
export class StoragePolicyMonitor {
  private readonly options: StoragePolicyMonitorOptions;
  /** What the log last recorded; null before the first record. */
  private recorded: boolean | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(options: StoragePolicyMonitorOptions) {
    this.options = options;
  }

  /** One check: reads, and records the reading if it differs from the last one recorded. */
  async check(): Promise<StoragePolicyReading> {
    const reading = await this.options.read();
    if (reading.inForce === this.recorded) return reading;
    const first = this.recorded === null;
    const code: StoragePolicyCode = reading.inForce ? 'STORAGE_POLICY_ON' : 'STORAGE_POLICY_OFF';
    const reason = reading.inForce
      ? `the removable-storage deny policy is in force (${reading.detail})`
      : `the removable-storage deny policy is NOT in force (${reading.detail}): interactive users may open USB drives directly, bypassing the agent; set Deny_All = 1 (install.ps1 or GPO) and restart the HMI`;
    try {
      this.options.log.append({ event: 'agent.storage-policy', outcome: reading.inForce ? 'info' : 'failed', code, reason });
    } catch {
      this.options.say(`portcullis-agent: ${code}: ${reason} (the log could not record it; trying again at the next check)`);
      return reading;
    }
    this.recorded = reading.inForce;
    this.options.say(`portcullis-agent: ${reading.inForce ? '' : 'WARNING: '}${code}: ${reason}`);
    if (!reading.inForce) {
      await this.options.notifier.notify({ level: 'error', title: 'Portcullis: USB lock is off', text: `${code}: removable storage is not locked on this HMI (${reading.detail}). Tell the administrator; drives are still checked.` });
    } else if (!first) {
      await this.options.notifier.notify({ level: 'ok', title: 'Portcullis: USB lock is back on', text: `${code}: removable storage is locked again on this HMI.` });
    }
    return reading;
  }

  /** The first check (awaited), then one every intervalMs until stop(). Opted out: one record, no checks. */
  async start(): Promise<void> {
    if (!this.options.required) {
      const reason = 'requireStoragePolicy is false in the watch configuration: the removable-storage deny policy is not checked (a pilot only)';
      try {
        this.options.log.append({ event: 'agent.storage-policy', outcome: 'info', code: 'STORAGE_POLICY_NOT_REQUIRED', reason });
      } catch {
        // the warning below is still shown; drive imports fail closed on their own if the log stays unwritable
      }
      this.options.say(`portcullis-agent: WARNING: STORAGE_POLICY_NOT_REQUIRED: ${reason}`);
      return;
    }
    try {
      await this.check();
    } catch {
      // a notifier that throws must not stop the service; the record was written first
    }
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.check().then(
        () => undefined,
        () => undefined, // check() does not reject; a notifier that throws must not stop the schedule
      );
      void this.running.finally(() => {
        this.running = null;
        if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs ?? STORAGE_POLICY_CHECK_MS);
      });
    };
    if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs ?? STORAGE_POLICY_CHECK_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
