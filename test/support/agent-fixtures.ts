/**
 * Test fixtures for the agent: real drive folders in temp dirs with
 * kiosk-style manifests (kiosk/build-statement.ts + manifest/signManifest),
 * trust stores written through the agent's own code, and a memory log.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildStatement, type ApprovedFile } from '../../kiosk/core/build-statement.ts';
import {
  DualDigest, MANIFEST_PATH, publicKeyToPem, signManifest, wasmBlake3, type BlockedFile, type MediaIdentity, type SigningKey,
  type Statement,
} from '../../manifest/index.ts';
import type { AuditSink, LogEvent, LogRecord } from '../../agent/audit-log.ts';
import { AgentError } from '../../agent/errors.ts';
import { addKey, emptyTrustStore, revokeKey, saveTrustStore, type TrustPolicy, type TrustStore } from '../../agent/trust-store.ts';
import { testKey } from '../vectors/generate.ts';

export const kioskKey: SigningKey = testKey('alpha');
export const otherKey: SigningKey = testKey('beta');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `agent-${prefix}-`));
}

export const DEFAULT_MEDIA: MediaIdentity = {
  filesystem: 'vfat',
  volumeId: '1A2B-3C4D',
  label: 'LINE3',
  capacity: 8_004_304_896,
  usb: { vendorId: '0781', productId: '5567', serial: '4C530001230405117213' },
};

/** The identity a drive with DEFAULT_MEDIA reports, as the agent reads it. */
export const DEFAULT_IDENTITY = { filesystem: 'FAT32', volumeId: '1A2B-3C4D', label: 'LINE3', capacity: 8_004_304_896 };

export async function digestOf(content: Uint8Array): Promise<ApprovedFile & { path: string }> {
  const d = await DualDigest.create(wasmBlake3);
  d.update(content);
  const r = d.finish();
  return { path: '', sha256: r.sha256, blake3: r.blake3, size: r.size };
}

export interface DriveSpec {
  /** Files on the drive, by relative POSIX path. */
  readonly files: Record<string, string | Uint8Array>;
  /** Paths on the drive that the manifest does not list (default: none). */
  readonly unlisted?: readonly string[];
  /** Extra subjects listed but not written to the drive. */
  readonly listedOnly?: Record<string, string | Uint8Array>;
  readonly blocked?: readonly BlockedFile[];
  readonly key?: SigningKey;
  readonly issuedAt?: Date;
  readonly validitySeconds?: number; // seconds
  readonly media?: Partial<MediaIdentity>;
  /**
   * Digests the manifest lists instead of the files' own, by path (the rest of the
   * subject stays true): a manifest signed with one digest right and the other wrong.
   */
  readonly listedDigests?: Record<string, { readonly sha256?: string; readonly blake3?: string }>;
}

export interface Drive {
  readonly root: string;
  readonly statement: Statement;
  readonly envelope: Uint8Array;
}

/** A drive folder with files and a manifest the kiosk would have written for it. */
export async function makeDrive(spec: DriveSpec, root = tempDir('drive')): Promise<Drive> {
  const approved: ApprovedFile[] = [];
  for (const [path, content] of Object.entries(spec.files)) {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), bytes);
    if (!spec.unlisted?.includes(path)) approved.push({ ...(await digestOf(bytes)), ...spec.listedDigests?.[path], path });
  }
  for (const [path, content] of Object.entries(spec.listedOnly ?? {})) {
    approved.push({ ...(await digestOf(typeof content === 'string' ? Buffer.from(content) : content)), path });
  }
  const key = spec.key ?? kioskKey;
  const statement = buildStatement({
    kioskId: 'gate-1',
    keyId: key.keyId,
    operatorId: 'T-1042',
    issuedAt: spec.issuedAt ?? new Date(Date.now() - 60_000),
    validitySeconds: spec.validitySeconds ?? 12 * 3600,
    scan: { id: 'scan-0001', fileCount: Object.keys(spec.files).length, byteCount: 0 },
    media: { ...DEFAULT_MEDIA, ...spec.media },
    engines: { clamav: null, yara: null },
    allowlist: null,
    policy: { id: 'default', digest: `sha256:${createHash('sha256').update('policy').digest('hex')}` },
    approved,
    blocked: spec.blocked ?? [],
  });
  const envelope = signManifest(statement, key);
  mkdirSync(join(root, '.portcullis'), { recursive: true });
  writeFileSync(join(root, MANIFEST_PATH), envelope);
  writeFileSync(join(root, '.portcullis/receipt.txt'), 'approved by gate-1\n');
  return { root, statement, envelope };
}

export interface TrustSpec {
  readonly keys?: ReadonlyArray<{ key: SigningKey; notBefore?: Date; notAfter?: Date }>;
  readonly revoked?: readonly string[];
  readonly policy?: Partial<TrustPolicy>;
}

export function makeTrust(spec: TrustSpec = {}): TrustStore {
  const now = new Date();
  let store = emptyTrustStore(now);
  for (const k of spec.keys ?? [{ key: kioskKey }]) {
    store = addKey(store, { pem: publicKeyToPem(k.key.publicKey), label: 'gate 1', notBefore: k.notBefore ?? null, notAfter: k.notAfter ?? null }, now).store;
  }
  for (const id of spec.revoked ?? []) store = revokeKey(store, id, now);
  return { ...store, policy: { ...store.policy, ...spec.policy } };
}

export function writeTrust(spec: TrustSpec = {}, path = join(tempDir('trust'), 'trust.json')): string {
  saveTrustStore(path, makeTrust(spec));
  return path;
}

/** An AuditSink that keeps events in memory (and can be told to fail). */
export class MemoryLog implements AuditSink {
  readonly events: LogEvent[] = [];
  failAfter = Number.POSITIVE_INFINITY;

  /** Sizes of the groups appended with appendMany, in order. */
  readonly groups: number[] = [];

  append(event: LogEvent): LogRecord {
    if (this.events.length >= this.failAfter) throw new AgentError('LOG_WRITE_FAILED', 'disk full (test)');
    this.events.push(event);
    return { ...event, seq: this.events.length } as unknown as LogRecord;
  }

  /** All or nothing, as AuditLog: a group that would pass failAfter is refused whole. */
  appendMany(events: readonly LogEvent[]): LogRecord[] {
    if (this.events.length + events.length > this.failAfter) throw new AgentError('LOG_WRITE_FAILED', 'disk full (test)');
    this.groups.push(events.length);
    return events.map((e) => this.append(e));
  }
}
