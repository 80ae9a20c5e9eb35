/**
 * The one-pass reader of the envelope as the kiosk writes it (docs/manifest.md
 * §3: canonical, members in the order payload, payloadType, signatures):
 * §6 steps 2 to 4 over its bytes, the payload decoded straight into the buffer
 * that PAE signs (no string of the whole envelope or payload is made, no copy
 * for PAE). Like read-statement.ts it only accepts: any other envelope, even
 * a valid one the spec allows (members in another order, whitespace, escapes),
 * makes it answer null and the verifier runs the full steps, which decide
 * the code and the message as they always did.
 */
import { decodeBase64StrictInto, base64DecodedLength, IN_TOTO_PAYLOAD_TYPE, preAuthEncodingHead } from './dsse.ts';
import { LIMITS } from './statement.ts';

export interface EnvelopeSignature {
  readonly keyid: string;
  readonly sig: string;
}

export interface ReadEnvelope {
  readonly payloadType: string;
  readonly signatures: readonly EnvelopeSignature[];
  /** The decoded payload bytes. */
  readonly payload: Uint8Array;
  /** PAE(payloadType, payload): the payload is its tail (one buffer). */
  readonly pae: Uint8Array;
}

const utf8 = new TextEncoder();
const HEAD = utf8.encode('{"payload":"');
const AFTER_PAYLOAD = utf8.encode(`","payloadType":${JSON.stringify(IN_TOTO_PAYLOAD_TYPE)},"signatures":[`);
const KEYID = utf8.encode('{"keyid":"');
const SIG = utf8.encode('","sig":"');
const QUOTE = 0x22;

function matches(b: Uint8Array, at: number, piece: Uint8Array): boolean {
  if (at + piece.length > b.length) return false;
  for (let i = 0; i < piece.length; i++) if (b[at + i] !== piece[i]) return false;
  return true;
}

function isBase64Char(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f || c === 0x3d;
}

/** The envelope's parts when its bytes are the kiosk's canonical layout with a canonical base64 payload; null otherwise. */
export function readCanonicalEnvelope(bytes: Uint8Array): ReadEnvelope | null {
  if (!matches(bytes, 0, HEAD)) return null;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const payloadStart = HEAD.length;
  const payloadEnd = view.indexOf(QUOTE, payloadStart);
  if (payloadEnd === -1) return null;
  let at = payloadEnd;
  if (!matches(bytes, at, AFTER_PAYLOAD)) return null;
  at += AFTER_PAYLOAD.length;
  const signatures: EnvelopeSignature[] = [];
  for (;;) {
    if (signatures.length === LIMITS.maxSignatures || !matches(bytes, at, KEYID)) return null;
    at += KEYID.length;
    for (let i = at; i < at + 64; i++) {
      const c = bytes[i];
      if (c === undefined || !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return null;
    }
    const keyid = view.toString('latin1', at, at + 64);
    at += 64;
    if (!matches(bytes, at, SIG)) return null;
    at += SIG.length;
    const sigStart = at;
    while (at < bytes.length && isBase64Char(bytes[at]!)) at++;
    if (at === sigStart || bytes[at] !== QUOTE || bytes[at + 1] !== 0x7d) return null;
    signatures.push({ keyid, sig: view.toString('latin1', sigStart, at) });
    at += 2;
    if (bytes[at] === 0x2c) {
      at++;
      continue;
    }
    if (bytes[at] !== 0x5d || bytes[at + 1] !== 0x7d || at + 2 !== bytes.length) return null;
    break;
  }
  const length = base64DecodedLength(bytes, payloadStart, payloadEnd);
  if (length === null) return null;
  const head = preAuthEncodingHead(IN_TOTO_PAYLOAD_TYPE, length);
  const pae = new Uint8Array(head.length + length);
  pae.set(head, 0);
  if (!decodeBase64StrictInto(bytes, payloadStart, payloadEnd, pae, head.length)) return null;
  return { payloadType: IN_TOTO_PAYLOAD_TYPE, signatures, payload: pae.subarray(head.length), pae };
}
