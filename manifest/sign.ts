/**
 * Signs a statement into a DSSE envelope. The payload is the statement's
 * canonical JSON (RFC 8785); the signature covers PAE(payloadType, payload).
 * The envelope itself is also written canonically, so identical inputs give
 * identical bytes (Ed25519 signatures are deterministic).
 */
import { sign } from 'node:crypto';
import { canonicalBytes, canonicalize } from './canonical-json.ts';
import { checkStatement } from './check-statement.ts';
import { encodeBase64, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding, preAuthEncodingHead } from './dsse.ts';
import { ManifestError } from './errors.ts';
import type { SigningKey } from './keys.ts';
import { checkCanonicalStatement } from './read-statement.ts';
import type { Statement } from './statement.ts';
import { checkStatementPayload } from './verify.ts';

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

/**
 * signManifest for a statement already written as canonical bytes, in
 * memory that does not grow with its subjects beyond those bytes: `pae` is
 * PAE(in-toto, payload) in one buffer with `payload` its tail (as
 * kiosk/core/build-statement.ts writes it), so nothing is copied to sign it.
 * The payload is checked first as a verifier checks it (one pass; the full
 * steps name what is wrong), and the envelope is written in the same
 * canonical form as signManifest's, its base64 a piece at a time.
 */
export function signStatementPae(pae: Uint8Array, payload: Uint8Array, key: SigningKey): Uint8Array {
  const head = preAuthEncodingHead(IN_TOTO_PAYLOAD_TYPE, payload.length);
  const tail = pae.byteOffset + head.length;
  if (pae.buffer !== payload.buffer || tail !== payload.byteOffset || pae.length !== head.length + payload.length || !head.every((b, i) => pae[i] === b)) {
    throw new TypeError('signStatementPae: pae is not PAE(in-toto, payload) with the payload as its tail');
  }
  const predicate = checkCanonicalStatement(payload)?.predicate ?? checkStatementPayload(payload).predicate;
  if (predicate.kiosk.keyId !== key.keyId) {
    throw new ManifestError('SIGNER_MISMATCH', `predicate.kiosk.keyId is ${predicate.kiosk.keyId} but the signing key is ${key.keyId}`);
  }
  return envelopeBytes(payload, key.keyId, sign(null, pae, key.privateKey));
}

const BASE64_PIECE_BYTES = 48 * 1024; // payload bytes encoded at a time (a multiple of 3: no padding inside)

/** The canonical envelope of one signature (as canonicalize writes it), base64 written straight into it. */
function envelopeBytes(payload: Uint8Array, keyId: string, signature: Uint8Array): Uint8Array {
  const head = '{"payload":"';
  const tail = `",${canonicalize({ payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ keyid: keyId, sig: encodeBase64(signature) }] }).slice(1)}`;
  const encoded = Math.ceil(payload.length / 3) * 4;
  const out = Buffer.allocUnsafe(head.length + encoded + tail.length);
  let at = out.write(head, 0, 'latin1');
  const source = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  for (let from = 0; from < payload.length; from += BASE64_PIECE_BYTES) {
    at += out.write(source.toString('base64', from, Math.min(payload.length, from + BASE64_PIECE_BYTES)), at, 'latin1');
  }
  at += out.write(tail, at, 'latin1');
  return new Uint8Array(out.buffer, out.byteOffset, at);
}
