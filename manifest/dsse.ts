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
  const head = preAuthEncodingHead(payloadType, payload.length);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/**
 * Standard base64 with padding (RFC 4648 §4), and only its canonical form:
 * unused trailing bits must be zero, so every byte string has one encoding.
 * Decoded, then encoded again and compared: the encoder writes only the
 * canonical form (alphabet, padding, length a multiple of 4), so equality
 * holds exactly for canonical text. Linear in the length of `text`.
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return null;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

// Base64 characters decoded at a time (a multiple of 4): small enough that the pieces' strings stay in V8's young
// generation and are recycled, where multi-megabyte ones would each take fresh pages.
const BASE64_RANGE_CHARS = 64 * 1024;

/**
 * decodeBase64Strict over `text[start, end)` of ASCII bytes, written into
 * `out` from `offset`, which must have room for exactly the decoded length
 * (base64DecodedLength). A piece at a time, so no string of the whole text
 * is made. Each piece but the last must decode to 3 bytes per 4 characters
 * (no padding inside), and each must encode back to itself: together, the
 * whole text is canonical. False when it is not.
 */
export function decodeBase64StrictInto(text: Uint8Array, start: number, end: number, out: Uint8Array, offset: number): boolean {
  const length = base64DecodedLength(text, start, end);
  if (length === null || out.length - offset !== length) return false;
  const source = Buffer.from(text.buffer, text.byteOffset, text.length);
  const target = Buffer.from(out.buffer, out.byteOffset, out.length);
  let at = offset;
  for (let from = start; from < end; from += BASE64_RANGE_CHARS) {
    const to = Math.min(end, from + BASE64_RANGE_CHARS);
    const piece = source.toString('latin1', from, to);
    const expected = to < end ? ((to - from) / 4) * 3 : out.length - at;
    if (target.write(piece, at, expected, 'base64') !== expected) return false;
    if (target.toString('base64', at, at + expected) !== piece) return false;

    at += expected;
  }
  return at === out.length;
}

/** The length base64 `text[start, end)` decodes to, from its length and padding; null when it cannot be canonical. */
export function base64DecodedLength(text: Uint8Array, start: number, end: number): number | null {
  const chars = end - start;
  if (chars <= 0 || chars % 4 !== 0) return null;
  const pad = text[end - 1] === 0x3d ? (text[end - 2] === 0x3d ? 2 : 1) : 0;
  return (chars / 4) * 3 - pad;
}

/** The bytes PAE(payloadType, body) puts before the body. */
export function preAuthEncodingHead(payloadType: string, bodyLength: number): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  return new TextEncoder().encode(`DSSEv1 ${type.length} ${payloadType} ${bodyLength} `);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}
