/**
 * The trust store: which kiosk keys this HMI accepts (each with an optional
 * validity period), which key ids are revoked, and the local policy. A JSON
 * file, schema-checked on every load, replaced atomically on every change.
 *
 * Format version 1 (docs/agent.md "Trust store"). Two fields are reserved so
 * that a later version can require the store to be signed by a security-staff
 * key with rollback protection: `sequence` grows by one on every change (a
 * signed version remembers the highest it has accepted and refuses lower), and
 * `signature` must be null here (a later version puts a detached DSSE
 * signature over the canonical JSON of the store without `signature`).
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { keyIdOf, KEY_ID_PATTERN, publicKeyFromPem, publicKeyToPem, type TrustAnchors, type TrustedKey } from '../manifest/index.ts';
import { array, boolean, formatIssues, integer, nullable, object, oneOf, optional, parse, string, type Infer } from '../manifest/schema.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { AgentError } from './errors.ts';
import { DEFAULT_DIGEST_CHOICE, DIGEST_CHOICES, type DigestChoice } from './file-digest.ts';
import { LocalFileError, readLocalFile } from './local-file.ts';

export const TRUST_FORMAT_VERSION = 1;
export const CLASH_POLICIES = ['refuse', 'rename', 'skip'] as const;
export type ClashPolicy = (typeof CLASH_POLICIES)[number];

const MAX_KEYS = 256;
/** bytes: far more than a store at its limits (256 keys, 4 096 revocations) takes. */
const MAX_STORE_BYTES = 4 * 1024 * 1024;
const MAX_REVOKED = 4096;
export const MAX_MANIFEST_AGE_HOURS = 31 * 24; // hours: the manifest format's own ceiling

const time = string({
  pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/,
  patternMessage: 'expected a UTC time as YYYY-MM-DDTHH:MM:SSZ',
  refine: (v) => (new Date(v).toISOString() === v.replace('Z', '.000Z') ? null : 'not a real calendar time'),
});
const keyId = string({ pattern: KEY_ID_PATTERN, patternMessage: 'expected 64 lowercase hex characters' });
export const labelSchema = string({ min: 1, max: 64, pattern: /^[\p{L}\p{N} ._()-]+$/u, patternMessage: 'expected letters, digits, spaces and . _ ( ) -' });

export const policySchema = object({
  /** hours: refuse a manifest issued longer ago than this, even if it has not expired. */
  maxManifestAgeHours: integer({ min: 1, max: MAX_MANIFEST_AGE_HOURS }),
  /** The only folder imports may go to; null lets `import --to` and the watch config choose. */
  destination: nullable(string({ min: 1, max: 1024 })),
  /** What to do when a file of the same name is already at the destination. Never overwrite. */
  clash: oneOf(CLASH_POLICIES),
  /** Refuse a drive unless its identity can be read and matches the manifest's media. */
  requireMediaBinding: boolean(),
  /**
   * Which of each file's listed digests are computed and checked: blake3 (the default when absent), sha256, or
   * both. Absent in stores written before it existed, and left out until an administrator sets it, so an older
   * agent can still read the store.
   */
  digests: optional(oneOf(DIGEST_CHOICES)),
});

const keySchema = object({
  keyId,
  label: nullable(labelSchema),
  publicKey: string({
    min: 1,
    max: 4096,
    pattern: /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$/u,
    patternMessage: 'expected an SPKI PEM public key',
  }),
  notBefore: nullable(time),
  notAfter: nullable(time),
  addedAt: time,
});

export const trustStoreSchema = object({
  formatVersion: integer({ min: 1 }),
  /** Grows by one on every change: the future rollback check compares it. */
  sequence: integer({ min: 0 }),
  updatedAt: time,
  keys: array(keySchema, { max: MAX_KEYS }),
  revoked: array(object({ keyId, revokedAt: time, reason: nullable(string({ min: 1, max: 256 })) }), { max: MAX_REVOKED }),
  policy: policySchema,
  /** Reserved for a detached signature by a security-staff key; must be null in format 1. */
  signature: nullable(object({ keyid: keyId, sig: string({ min: 1, max: 1024 }) })),
});

export type TrustStore = Infer<typeof trustStoreSchema>;
export type TrustPolicy = TrustStore['policy'];
export type TrustKeyEntry = TrustStore['keys'][number];

export const DEFAULT_POLICY: TrustPolicy = {
  maxManifestAgeHours: 24,
  destination: null,
  clash: 'refuse',
  requireMediaBinding: true,
};

/** Whole-second UTC time, the store's only time format. */
export function storeTime(time: Date): string {
  return new Date(Math.floor(time.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function emptyTrustStore(now: Date): TrustStore {
  return { formatVersion: TRUST_FORMAT_VERSION, sequence: 0, updatedAt: storeTime(now), keys: [], revoked: [], policy: { ...DEFAULT_POLICY }, signature: null };
}

const invalid = (path: string, message: string): AgentError => new AgentError('TRUST_STORE_INVALID', `${path}: ${message}`);

/** Checks a parsed store beyond its schema: version, signature, keys that match their ids, no duplicates. */
export function checkTrustStore(value: unknown, where = 'trust store'): TrustStore {
  const result = parse(trustStoreSchema, value);
  if (!result.ok) throw invalid(where, formatIssues(result.issues));
  const store = result.value;
  if (store.formatVersion !== TRUST_FORMAT_VERSION) {
    throw invalid(where, `formatVersion ${store.formatVersion} is not supported by this agent (it reads ${TRUST_FORMAT_VERSION}): update the agent`);
  }
  if (store.signature !== null) throw invalid(where, 'signature: signed trust stores need a newer agent (format 1 requires null)');
  const seen = new Set<string>();
  store.keys.forEach((k, i) => {
    if (seen.has(k.keyId)) throw invalid(where, `keys[${i}].keyId: listed twice`);
    seen.add(k.keyId);
    let actual: string;
    try {
      actual = keyIdOf(publicKeyFromPem(k.publicKey));
    } catch (cause) {
      throw new AgentError('TRUST_STORE_INVALID', `${where}: keys[${i}].publicKey: not an Ed25519 public key`, { cause });
    }
    if (actual !== k.keyId) throw invalid(where, `keys[${i}].keyId: does not match its public key (which has key id ${actual})`);
    if (k.notBefore && k.notAfter && k.notBefore >= k.notAfter) throw invalid(where, `keys[${i}]: notBefore must be earlier than notAfter`);
  });
  return store;
}

/** Loads and checks a store from disk. A missing file is TRUST_STORE_INVALID unless `allowMissing` (then an empty store). */
export function loadTrustStore(path: string, options: { allowMissing?: boolean; now?: Date } = {}): TrustStore {
  let text: string;
  try {
    text = readLocalFile(path, MAX_STORE_BYTES).toString('utf8');
  } catch (cause) {
    if (cause instanceof LocalFileError && cause.code === 'ENOENT' && options.allowMissing) return emptyTrustStore(options.now ?? new Date());
    const advice = cause instanceof LocalFileError && cause.code === 'ENOENT' ? ': create it with "portcullis-agent trust add KIOSK.pub.pem --trust FILE", or name the right file' : '';
    throw new AgentError('TRUST_STORE_INVALID', `${path}: the trust store ${(cause as Error).message}${advice}`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AgentError('TRUST_STORE_INVALID', `${path}: not valid JSON: this is not a trust store (or it was damaged); restore it from a backup or create one with "trust add"`, { cause });
  }
  return checkTrustStore(value, path);
}

/**
 * Creates the folder a new trust store (and the log beside it) will be
 * written in, one level at a time: Node's recursive mkdir loops forever on a
 * path it cannot create under /proc. Throws TRUST_STORE_INVALID naming the
 * folder when it cannot be made.
 */
export function makeStoreFolder(path: string): void {
  const folder = dirname(resolve(path));
  const missing: string[] = [];
  try {
    for (let at = folder; statSync(at, { throwIfNoEntry: false }) === undefined; at = dirname(at)) {
      missing.push(at);
      if (dirname(at) === at) break;
    }
    for (const level of missing.reverse()) mkdirSync(level);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    throw new AgentError('TRUST_STORE_INVALID', `${folder}: cannot create the trust store's folder (${code}): name a trust store in a folder this account can create or write`, { cause });
  }
}

/** Writes the store atomically (temp file, fsync, rename). */
export function saveTrustStore(path: string, store: TrustStore): void {
  checkTrustStore(store, path);
  writeFileAtomic(path, `${JSON.stringify(store, null, 2)}\n`);
}

/** Every change bumps the sequence and the time; the caller saves. */
function changed(store: TrustStore, now: Date, patch: Partial<TrustStore>): TrustStore {
  return { ...store, ...patch, sequence: store.sequence + 1, updatedAt: storeTime(now) };
}

export interface AddKeyInput {
  readonly pem: string;
  readonly label?: string | null;
  readonly notBefore?: Date | null;
  readonly notAfter?: Date | null;
}

export function addKey(store: TrustStore, input: AddKeyInput, now: Date): { store: TrustStore; entry: TrustKeyEntry } {
  const publicKey = publicKeyFromPem(input.pem);
  const id = keyIdOf(publicKey);
  if (store.revoked.some((r) => r.keyId === id)) {
    throw new AgentError('TRUST_CHANGE_REFUSED', `key ${id} is revoked; a revoked key is never trusted again: have security staff issue a new kiosk key`);
  }
  if (store.keys.some((k) => k.keyId === id)) throw new AgentError('TRUST_CHANGE_REFUSED', `key ${id} is already trusted`);
  if (store.keys.length >= MAX_KEYS) throw new AgentError('TRUST_CHANGE_REFUSED', `the trust store holds at most ${MAX_KEYS} keys`);
  const entry: TrustKeyEntry = {
    keyId: id,
    label: input.label ?? null,
    publicKey: publicKeyToPem(publicKey),
    notBefore: input.notBefore ? storeTime(input.notBefore) : null,
    notAfter: input.notAfter ? storeTime(input.notAfter) : null,
    addedAt: storeTime(now),
  };
  return { store: changed(store, now, { keys: [...store.keys, entry] }), entry };
}

export function revokeKey(store: TrustStore, id: string, now: Date, reason: string | null = null): TrustStore {
  if (!KEY_ID_PATTERN.test(id)) throw new AgentError('USAGE', `${JSON.stringify(id)} is not a key id (64 lowercase hex characters)`);
  if (store.revoked.some((r) => r.keyId === id)) throw new AgentError('TRUST_CHANGE_REFUSED', `key ${id} is already revoked`);
  if (store.revoked.length >= MAX_REVOKED) throw new AgentError('TRUST_CHANGE_REFUSED', `the trust store holds at most ${MAX_REVOKED} revocations`);
  // The key stays listed (so `trust list` shows what was revoked); revocation wins over trust.
  return changed(store, now, { revoked: [...store.revoked, { keyId: id, revokedAt: storeTime(now), reason }] });
}

export function setPolicy(store: TrustStore, patch: Partial<TrustPolicy>, now: Date): TrustStore {
  const policy = { ...store.policy, ...patch };
  const result = parse(policySchema, policy, 'policy');
  if (!result.ok) throw new AgentError('USAGE', formatIssues(result.issues));
  return changed(store, now, { policy: result.value });
}

/** The digests the policy has the agent check for every file (docs/agent.md "Trust store"). */
export function policyDigests(store: TrustStore): DigestChoice {
  return store.policy.digests ?? DEFAULT_DIGEST_CHOICE;
}

/** The verifier's view: keys with their periods, and the revoked ids. */
export function trustAnchorsOf(store: TrustStore): TrustAnchors {
  const keys: TrustedKey[] = store.keys.map((k) => ({
    keyId: k.keyId,
    publicKey: publicKeyFromPem(k.publicKey),
    ...(k.notBefore ? { notBefore: new Date(k.notBefore) } : {}),
    ...(k.notAfter ? { notAfter: new Date(k.notAfter) } : {}),
  }));
  return { keys, revokedKeyIds: store.revoked.map((r) => r.keyId) };
}

export type KeyStatus = 'trusted' | 'revoked' | 'not-yet-valid' | 'expired';

export function keyStatus(store: TrustStore, key: TrustKeyEntry, now: Date): KeyStatus {
  if (store.revoked.some((r) => r.keyId === key.keyId)) return 'revoked';
  if (key.notBefore && now < new Date(key.notBefore)) return 'not-yet-valid';
  if (key.notAfter && now >= new Date(key.notAfter)) return 'expired';
  return 'trusted';
}
