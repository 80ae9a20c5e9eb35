/**
 * The service's configuration file (`watch --config FILE`): JSON, closed
 * schema, paths relative to the file's folder. docs/agent.md shows an example.
 */
import { dirname, resolve } from 'node:path';
import { array, boolean, formatIssues, integer, literal, nullable, object, oneOf, optional, parse, string } from '../manifest/schema.ts';
import { AgentError } from './errors.ts';
import { readLocalFile } from './local-file.ts';
import { forwardConfigSchema, resolveForwardConfig, type ForwardConfig } from './forward/forward-config.ts';

export const DRIVE_SOURCES = ['auto', 'drivelist', 'mount-folders', 'windows-letters'] as const;
export type DriveSourceName = (typeof DRIVE_SOURCES)[number];

const pathString = string({ min: 1, max: 1024 });

export const watchConfigSchema = object({
  formatVersion: literal(1),
  /** The trust store (keys, revocations, policy). */
  trust: pathString,
  /** The hash-chained decision log. */
  log: pathString,
  /** Where imports go; null takes the trust store's policy.destination. */
  destination: optional(nullable(pathString)),
  /** The name in every log record; default: the computer name. */
  hmiName: optional(nullable(string({ min: 1, max: 64 }))),
  /** How drives are noticed; auto: windows-letters on Windows, else drivelist plus mountFolders. */
  source: optional(oneOf(DRIVE_SOURCES)),
  /** Folders whose subfolders are mounted drives (Linux: /media/USER); watched with chokidar. */
  mountFolders: optional(array(pathString, { max: 16 })),
  pollIntervalSeconds: optional(integer({ min: 1, max: 60 })), // seconds between drive polls
  settleSeconds: optional(integer({ min: 0, max: 60 })), // seconds to wait after a drive appears before reading it
  /**
   * The folder the HMI user may read (not the log): the current state (status.txt, status.json) and each
   * drive's report with every file's outcome in plain words (operator-status.ts); null or absent: none.
   */
  statusFolder: optional(nullable(pathString)),
  /** How the HMI user is told: msg (Windows msg.exe), log (a log line), auto. */
  notify: optional(oneOf(['auto', 'msg', 'log'] as const)),
  /**
   * Windows: check that the removable-storage deny policy is in force (default
   * true). false only for a pilot HMI where the policy is knowingly off; the
   * service then logs STORAGE_POLICY_NOT_REQUIRED at every start.
   */
  requireStoragePolicy: optional(boolean()),
  /** Where the log is forwarded (the central review, or a collector): forward/forward-config.ts; absent: not forwarded. */
  forward: optional(nullable(forwardConfigSchema)),
});

export interface WatchConfig {
  readonly trust: string;
  readonly log: string;
  readonly destination: string | null;
  readonly hmiName: string | null;
  readonly source: DriveSourceName;
  readonly mountFolders: readonly string[];
  readonly pollIntervalMs: number;
  readonly settleMs: number;
  readonly notify: 'auto' | 'msg' | 'log';
  readonly statusFolder: string | null;
  readonly requireStoragePolicy: boolean;
  readonly forward: ForwardConfig | null;
}

const MAX_CONFIG_BYTES = 64 * 1024; // bytes

export function loadWatchConfig(path: string): WatchConfig {
  let text: string;
  try {
    text = readLocalFile(path, MAX_CONFIG_BYTES).toString('utf8');
  } catch (cause) {
    throw new AgentError('CONFIG_INVALID', `${path}: the configuration ${(cause as Error).message}: name the service's config.json (see agent/windows/config.example.json)`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AgentError('CONFIG_INVALID', `${path}: not valid JSON (${(cause as Error).message}): fix the configuration file`, { cause });
  }
  const result = parse(watchConfigSchema, value);
  if (!result.ok) throw new AgentError('CONFIG_INVALID', `${path}: ${formatIssues(result.issues)}`);
  const c = result.value;
  const base = dirname(resolve(path));
  return {
    trust: resolve(base, c.trust),
    log: resolve(base, c.log),
    destination: c.destination ? resolve(base, c.destination) : null,
    hmiName: c.hmiName ?? null,
    source: c.source ?? 'auto',
    mountFolders: (c.mountFolders ?? []).map((f) => resolve(base, f)),
    pollIntervalMs: (c.pollIntervalSeconds ?? 2) * 1000,
    settleMs: (c.settleSeconds ?? 2) * 1000,
    notify: c.notify ?? 'auto',
    statusFolder: c.statusFolder ? resolve(base, c.statusFolder) : null,
    requireStoragePolicy: c.requireStoragePolicy ?? true,
    forward: c.forward ? resolveForwardConfig(c.forward, path) : null,
  };
}
