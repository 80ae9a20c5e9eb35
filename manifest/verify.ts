/**
 * Verifies a manifest envelope: docs/manifest.md §"Verification" step by step.
 * Pure: bytes, trust anchors and the current time come in as arguments.
 * Returns the verified statement or throws a ManifestError with one code.
 */
import { createHash, verify as verifySignature, type KeyObject } from 'node:crypto';
import { canonicalize } from './canonical-json.ts';
import { checkStatement } from './check-statement.ts';
import { decodeBase64Strict, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding } from './dsse.ts';
import { ManifestError } from './errors.ts';
import { readCanonicalEnvelope, type ReadEnvelope } from './read-envelope.ts';
import { checkCanonicalStatement, readCanonicalStatement, type StatementSummary } from './read-statement.ts';
import { array, formatIssues, object, parse, string } from './schema.ts';
import { LIMITS, type Predicate, type Statement } from './statement.ts';

export interface TrustedKey {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /** The key is trusted only from this time on (inclusive). */
  readonly notBefore?: Date;
  /** The key is trusted only before this time (exclusive). */
  readonly notAfter?: Date;
}

export interface TrustAnchors {
  readonly keys: readonly TrustedKey[];
  /** Key ids never to accept again; revocation wins over trust. */
  readonly revokedKeyIds?: readonly string[];
}

export interface VerifyOptions {
  /** Allowed clock difference when checking issuedAt (not expiresAt). */
  readonly clockSkewSeconds?: number; // seconds, default 300
  readonly maxEnvelopeBytes?: number; // bytes, default LIMITS.maxEnvelopeBytes
  /**
   * Read the kiosk's canonical layout in one pass first (read-envelope.ts,
   * read-statement.ts; default true). false runs only the full steps: the
   * reference the one-pass readers are tested and measured against.
   */
  readonly onePass?: boolean;
}

export interface VerifiedManifest {
  readonly statement: Statement;
  /** Key id of the trusted key whose signature verified. */
  readonly keyId: string;
  /** "sha256:" + hex SHA-256 of the payload bytes: the manifest's identity in logs. */
  readonly payloadDigest: string;
}

const envelopeSchema = object({
  payload: string({ min: 1 }),
  payloadType: string(),
  signatures: array(
    object({
      keyid: string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' }),
      sig: string({ min: 1 }),
    }),
    { min: 1, max: LIMITS.maxSignatures },
  ),
});

const ED25519_SIGNATURE_BYTES = 64;

function decodeJson(bytes: Uint8Array, code: 'ENVELOPE_INVALID' | 'MANIFEST_SCHEMA', what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw new ManifestError(code, `${what} is not valid UTF-8`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ManifestError(code, `${what} is not valid JSON`, { cause });
  }
}

/** What verifyManifestSummary returns: verifyManifest's answer without the subjects themselves. */
export interface VerifiedSummary {
  readonly predicate: Predicate;
  readonly subjectCount: number;
  readonly keyId: string;
  readonly payloadDigest: string;
}

export function verifyManifest(bytes: Uint8Array, trust: TrustAnchors, now: Date, options: VerifyOptions = {}): VerifiedManifest {
  const v = verifyWith(bytes, trust, now, options, true);
  return { statement: v.statement!, keyId: v.keyId, payloadDigest: v.payloadDigest };
}

/**
 * verifyManifest's steps and answer (the same codes for the same bytes),
 * keeping no subject: for a check that needs only whether the manifest
 * verifies (the kiosk reading back what it wrote), in memory that does not
 * grow with the subjects.
 */
export function verifyManifestSummary(bytes: Uint8Array, trust: TrustAnchors, now: Date, options: VerifyOptions = {}): VerifiedSummary {
  const v = verifyWith(bytes, trust, now, options, false);
  return { predicate: v.predicate, subjectCount: v.subjectCount, keyId: v.keyId, payloadDigest: v.payloadDigest };
}

function verifyWith(
  bytes: Uint8Array, trust: TrustAnchors, now: Date, options: VerifyOptions, keepSubjects: boolean,
): VerifiedSummary & { readonly statement: Statement | null } {
  const maxBytes = options.maxEnvelopeBytes ?? LIMITS.maxEnvelopeBytes;
  const skewMs = (options.clockSkewSeconds ?? 300) * 1000;
  if (Number.isNaN(now.getTime())) throw new TypeError('verifyManifest: now is not a valid time');

  // Step 1: bound the input before parsing anything.
  if (bytes.length > maxBytes) {
    throw new ManifestError('MANIFEST_TOO_LARGE', `the envelope is ${bytes.length} bytes; the limit is ${maxBytes}`);
  }

  // Steps 2-4: the envelope's members, its payload type, the payload in canonical base64.
  const onePass = options.onePass ?? true;
  const envelope = (onePass ? readCanonicalEnvelope(bytes) : null) ?? readEnvelopeFully(bytes);

  // Step 5: pick signatures by trusted, unrevoked key ids valid at `now`.
  const revoked = new Set(trust.revokedKeyIds ?? []);
  const candidates: Array<{ key: TrustedKey; sig: Uint8Array }> = [];
  let sawRevoked = false;
  let sawOutOfPeriod = false;
  for (const [i, entry] of envelope.signatures.entries()) {
    if (revoked.has(entry.keyid)) {
      sawRevoked = true;
      continue;
    }
    const anchors = trust.keys.filter((k) => k.keyId === entry.keyid);
    if (anchors.length === 0) continue;
    // A key listed more than once is trusted when any of its periods covers now.
    const key = anchors.find((k) => !(k.notBefore && now < k.notBefore) && !(k.notAfter && now >= k.notAfter));
    if (!key) {
      sawOutOfPeriod = true;
      continue;
    }
    const sig = decodeBase64Strict(entry.sig);
    if (!sig || sig.length !== ED25519_SIGNATURE_BYTES) {
      throw new ManifestError('SIGNATURE_INVALID', `signatures[${i}].sig: expected ${ED25519_SIGNATURE_BYTES} bytes in canonical base64`);
    }
    candidates.push({ key, sig });
  }
  if (candidates.length === 0) {
    const ids = envelope.signatures.map((s) => s.keyid).join(', ');
    if (sawRevoked) throw new ManifestError('KEY_REVOKED', `signed by revoked key ${ids}: do not transfer; rescan at the kiosk`);
    const why = sawOutOfPeriod ? 'outside the period the trust store allows it' : 'not in the trust store';
    throw new ManifestError('KEY_UNTRUSTED', `signed by key ${ids}, ${why}: do not transfer; rescan at a trusted kiosk`);
  }

  // Step 6: Ed25519 over PAE(payloadType, payload bytes), never a re-serialization.
  const valid = candidates.find((c) => verifySignature(null, envelope.pae, c.key.publicKey, c.sig));
  if (!valid) throw new ManifestError('SIGNATURE_INVALID', 'the signature does not match the manifest: do not transfer; rescan at the kiosk');

  // Steps 7-10: canonical JSON, versions, schema, subject names and collisions, time window shape.
  const payload = envelope.payload;
  let statement: Statement | null = null;
  let summary: StatementSummary | null = null;
  if (onePass && keepSubjects) statement = readCanonicalStatement(payload);
  else if (onePass) summary = checkCanonicalStatement(payload);
  if (statement === null && summary === null) statement = checkStatementPayload(payload);
  const predicate = statement?.predicate ?? summary!.predicate;
  const subjectCount = statement?.subject.length ?? summary!.subjectCount;

  // Step 11: the predicate names the key that signed it.
  if (predicate.kiosk.keyId !== valid.key.keyId) {
    throw new ManifestError('SIGNER_MISMATCH', `predicate.kiosk.keyId is ${predicate.kiosk.keyId} but the manifest was signed by ${valid.key.keyId}`);
  }

  // Step 12: time. Clock skew is allowed for issuedAt only; expiry is strict.
  const issuedAt = Date.parse(predicate.issuedAt);
  const expiresAt = Date.parse(predicate.expiresAt);
  if (now.getTime() + skewMs < issuedAt) {
    throw new ManifestError('MANIFEST_NOT_YET_VALID', `issued at ${predicate.issuedAt}, later than now (${now.toISOString()}): check this computer's clock`);
  }
  if (now.getTime() >= expiresAt) {
    throw new ManifestError('MANIFEST_EXPIRED', `expired at ${predicate.expiresAt}: do not transfer; rescan at the kiosk`);
  }

  const payloadDigest = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
  return { statement, predicate, subjectCount, keyId: valid.key.keyId, payloadDigest };
}

/** Steps 2-4 in full: JSON.parse, the envelope's schema, its payload type, strict base64. */
function readEnvelopeFully(bytes: Uint8Array): ReadEnvelope {
  // Step 2: the envelope is strict JSON with exactly payload, payloadType, signatures.
  const envelopeResult = parse(envelopeSchema, decodeJson(bytes, 'ENVELOPE_INVALID', 'the envelope'));
  if (!envelopeResult.ok) throw new ManifestError('ENVELOPE_INVALID', formatIssues(envelopeResult.issues));
  const envelope = envelopeResult.value;

  // Step 3: only in-toto statements are accepted.
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new ManifestError('PAYLOAD_TYPE_UNSUPPORTED', `payloadType: expected ${IN_TOTO_PAYLOAD_TYPE}, got ${JSON.stringify(envelope.payloadType)}`);
  }

  // Step 4: payload and signatures are canonical standard base64.
  const payload = decodeBase64Strict(envelope.payload);
  if (!payload) throw new ManifestError('ENVELOPE_INVALID', 'payload: expected canonical standard base64 with padding');
  return { payloadType: envelope.payloadType, signatures: envelope.signatures, payload, pae: preAuthEncoding(envelope.payloadType, payload) };
}

/** Steps 7-10 in full: JSON.parse, canonicalize and compare bytes, then checkStatement; throws the step's ManifestError. */
export function checkStatementPayload(payload: Uint8Array): Statement {
  // Step 7: the signed payload is UTF-8 JSON in RFC 8785 canonical form.
  const value = decodeJson(payload, 'MANIFEST_SCHEMA', 'the payload');
  let canonical: string;
  try {
    canonical = canonicalize(value);
  } catch (cause) {
    throw new ManifestError('MANIFEST_SCHEMA', `the payload holds a value canonical JSON cannot: ${(cause as Error).message}`, { cause });
  }
  if (canonical !== new TextDecoder().decode(payload)) {
    throw new ManifestError('PAYLOAD_NOT_CANONICAL', 'the payload is not in RFC 8785 canonical form (duplicate keys, whitespace or key order)');
  }

  // Steps 8-10: versions, schema, subject names and collisions, time window shape.
  return checkStatement(value);
}
