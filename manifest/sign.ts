/**
 * Signs a statement into a DSSE envelope. The payload is the statement's
 * canonical JSON (RFC 8785); the signature covers PAE(payloadType, payload).
 * The envelope itself is also written canonically, so identical inputs give
 * identical bytes (Ed25519 signatures are deterministic).
 */
import { sign } from 'node:crypto';
import { canonicalBytes, canonicalize } from './canonical-json.ts';
import { checkStatement } from './check-statement.ts';
import { encodeBase64, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding } from './dsse.ts';
import { ManifestError } from './errors.ts';
import type { SigningKey } from './keys.ts';
import type { Statement } from './statement.ts';

export function signManifest(statement: Statement, key: SigningKey): Uint8Array {
  const checked = checkStatement(statement);
  if (checked.predicate.kiosk.keyId !== key.keyId) {
    throw new ManifestError('SIGNER_MISMATCH', `predicate.kiosk.keyId is ${checked.predicate.kiosk.keyId} but the signing key is ${key.keyId}`);
  }
  const payload = canonicalBytes(checked);
  const signature = sign(null, preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload), key.privateKey);
  const envelope = {
    payload: encodeBase64(payload),
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    signatures: [{ keyid: key.keyId, sig: encodeBase64(signature) }],
  };
  return new TextEncoder().encode(canonicalize(envelope));
}
