/**
 * DSSE (Dead Simple Signing Envelope) v1: the pre-authentication encoding and
 * strict base64. Spec: github.com/secure-systems-lab/dsse, envelope.md and
 * protocol.md.
 */

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/**
 * PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, where
 * LEN is the byte length in ASCII decimal without leading zeros.
 */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

// Alphabet and padding only; the length and the canonical form are checked below. A single character
// class, not a repeated group: a grouped pattern recurses in the regex engine and overflowed the stack
// on the multi-megabyte payload of a drive with tens of thousands of files.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Standard base64 with padding (RFC 4648 §4), and only its canonical form:
 * unused trailing bits must be zero, so every byte string has one encoding.
 * Linear in the length of `text`.
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !BASE64_CHARS.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return null;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}
