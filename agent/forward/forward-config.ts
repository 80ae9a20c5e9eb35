/**
 * The `forward` section of the service's configuration (watch --config) and
 * the `forward` command: where the log goes (the central review over mutual
 * TLS, or a local collector over plain TCP), with which certificates, and
 * how often. Paths are relative to the configuration file's folder.
 *
 *   "forward": { "target": "review.plant.local:6514", "ca": "site-ca.pem", "cert": "hmi-17.pem", "key": "hmi-17.key",
 *                "state": "forward-state.json", "intervalSeconds": 30 }
 */
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { integer, object, oneOf, optional, string } from '../../manifest/schema.ts';
import { readLocalFile } from '../local-file.ts';
import { loadTrustStore } from '../trust-store.ts';
import { ForwardError, forwardLog, type ForwarderOptions, type ForwardResult, type ForwardTarget } from './forwarder.ts';

const pathString = string({ min: 1, max: 1024 });

export const forwardConfigSchema = object({
  /** HOST:PORT of the receiver. */
  target: string({ min: 3, max: 300, pattern: /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, patternMessage: 'expected HOST:PORT' }),
  /** tls (default; required by the central review) or tcp (a collector on this machine or its segment). */
  transport: optional(oneOf(['tls', 'tcp'] as const)),
  /** central (default): the receiver acknowledges each stored batch; syslog: a plain collector that answers nothing. */
  protocol: optional(oneOf(['central', 'syslog'] as const)),
  /** TLS: the CA that issued the receiver's certificate; this HMI's client certificate (CN = its HMI name) and key. */
  ca: optional(pathString),
  cert: optional(pathString),
  key: optional(pathString),
  servername: optional(string({ min: 1, max: 253 })),
  /** How far the log has been delivered (default: forward-state.json beside the configuration). */
  state: optional(pathString),
  intervalSeconds: optional(integer({ min: 1, max: 3600 })), // seconds between rounds
});

/** The section as the schema checked it. */
export interface ForwardSection {
  readonly target: string;
  readonly transport?: 'tls' | 'tcp';
  readonly protocol?: 'central' | 'syslog';
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
  readonly state?: string;
  readonly intervalSeconds?: number;
}

export interface ForwardConfig {
  readonly target: ForwardTarget;
  readonly statePath: string;
  readonly intervalMs: number;
}

const PEM_MAX = 64 * 1024; // bytes

/** Resolves a parsed `forward` section against the configuration file's path; reads the PEM files. */
export function resolveForwardConfig(section: ForwardSection, configPath: string): ForwardConfig {
  const base = dirname(resolve(configPath));
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(section.target)!;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw new ForwardError('FORWARD_CONFIG_INVALID', `forward.target ${section.target}: the port must be 1 to 65535`);
  const transport = section.transport ?? 'tls';
  const pem = (value: string | undefined, field: string): Buffer => {
    if (!value) throw new ForwardError('FORWARD_CONFIG_INVALID', `forward.${field} is needed for TLS: name the PEM file`);
    try {
      return readLocalFile(resolve(base, value), PEM_MAX);
    } catch (cause) {
      throw new ForwardError('FORWARD_CONFIG_INVALID', `forward.${field} ${resolve(base, value)}: the file ${(cause as Error).message}`, { cause });
    }
  };
  return {
    target: {
      host: match[1]!.replace(/^\[|\]$/g, ''), port, transport, protocol: section.protocol ?? 'central',
      ...(transport === 'tls' ? { tls: { ca: pem(section.ca, 'ca'), cert: pem(section.cert, 'cert'), key: pem(section.key, 'key'), ...(section.servername ? { servername: section.servername } : {}) } } : {}),
    },
    statePath: resolve(base, section.state ?? 'forward-state.json'),
    intervalMs: (section.intervalSeconds ?? 30) * 1000,
  };
}


/** What the heartbeat tells the central review about this HMI's trust store: its sequence, the keys it trusts and those it revoked. */
export function trustStatus(trustPath: string): Record<string, unknown> {
  try {
    const store = loadTrustStore(trustPath);
    return { trustSequence: store.sequence, trustUpdatedAt: store.updatedAt, trustedKeys: store.keys.map((k) => k.keyId), revokedKeys: store.revoked.map((r) => r.keyId) };
  } catch (error) {
    return { trustError: (error as Error).message.slice(0, 300) };
  }
}

/** Forwards every `intervalMs` (and when `kick` is called) until `signal` aborts; a failed round is said and retried. */
export async function forwardUntil(options: ForwarderOptions, intervalMs: number, signal: AbortSignal, say: (line: string) => void): Promise<void> {
  while (!signal.aborted) {
    try {
      const result: ForwardResult = await forwardLog(options);
      if (result.sent > 0) say(`portcullis-agent: forwarded ${result.sent} record(s) (log at seq ${result.state.seq})`);
    } catch (error) {
      say(`portcullis-agent: ${(error as ForwardError).code ?? 'FORWARD_FAILED'}: ${(error as Error).message}`);
    }
    await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
  }
}
