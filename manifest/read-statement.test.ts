/**
 * The one-pass readers (read-envelope.ts, read-statement.ts) held against the
 * full steps they stand in for: on mutated payloads and envelopes, signed so
 * that they reach the payload checks, verifyManifest must answer exactly as
 * it does with onePass: false (the same statement, or the same code and
 * message), verifyManifestSummary the same without the subjects, and the
 * statement reader must accept every payload the full steps accept.
 */
import { sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildStatement } from '../kiosk/core/build-statement.ts';
import { testKey } from '../test/vectors/generate.ts';
import { canonicalize } from './canonical-json.ts';
import { encodeBase64, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding } from './dsse.ts';
import { ManifestError } from './errors.ts';
import { readCanonicalEnvelope } from './read-envelope.ts';
import { readCanonicalStatement } from './read-statement.ts';
import type { Statement } from './statement.ts';
import { verifyManifest, verifyManifestSummary } from './verify.ts';

const alpha = testKey('alpha');
const trust = { keys: [{ keyId: alpha.keyId, publicKey: alpha.publicKey }] };
const now = new Date('2026-03-01T10:00:00Z');
const utf8 = new TextEncoder();

/** Deterministic xorshift, so a failure repeats from its seed. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const digest = (c: string): string => c.repeat(64);

/** Statements covering each optional shape: nulls, every object filled, escapes and non-ASCII in text, blocked entries. */
function statements(): Statement[] {
  const base = {
    kioskId: 'gate-1', keyId: alpha.keyId, operatorId: null, issuedAt: new Date('2026-03-01T08:00:00Z'), validitySeconds: 12 * 3600,
    scan: { id: 'scan-1', fileCount: 3, byteCount: 5 },
    media: { filesystem: 'vfat', volumeId: null, label: null, capacity: null, usb: null },
    engines: { clamav: null, yara: null }, allowlist: null, policy: { id: 'default', digest: `sha256:${digest('a')}` },
    approved: [{ path: 'b.txt', sha256: digest('b'), blake3: digest('c'), size: 5 }, { path: 'a/x.bin', sha256: digest('d'), blake3: digest('e'), size: 0 }],
    blocked: [],
  };
  return [
    buildStatement(base),
    buildStatement({
      ...base,
      operatorId: 'T-1042 "night shift"',
      media: { filesystem: 'exfat', volumeId: '1A2B-3C4D', label: '', capacity: 8_004_304_896, usb: { vendorId: '0781', productId: '5567', serial: 'SER\\IAL é' } },
      engines: {
        clamav: { version: 'ClamAV 1.4.3', databaseVersion: '27519', databaseTime: '2026-01-15T04:12:00Z' },
        yara: { engine: 'clamav-yara', ruleSetDigest: `sha256:${digest('f')}`, ruleCount: 12 },
      },
      allowlist: { version: '2026.01', digest: `sha256:${digest('1')}` },
      approved: [
        { path: 'Projekte/Überdruck Prüfung.zap17', sha256: digest('2'), blake3: digest('3'), size: 9_007_199_254_740_991 },
        { path: 'fab/😀 line/α.txt', sha256: digest('4'), blake3: digest('5'), size: 10 },
        { path: 'x', sha256: digest('6'), blake3: digest('7'), size: 1 },
      ],
      blocked: [
        { path: 'invoice\\u{202e}fdp.exe', reasons: ['UNSAFE_NAME'] },
        { path: 'tools/"quoted".exe', reasons: ['RISKY_TYPE', 'YARA_MATCH'] },
        { path: 'AUX.txt', reasons: ['UNSAFE_NAME'] },
      ],
    }),
    buildStatement({ ...base, engines: { clamav: { version: 'v', databaseVersion: null, databaseTime: null }, yara: null }, media: { ...base.media, usb: { vendorId: 'abcd', productId: '0000', serial: null } } }),
  ];
}

/** An envelope as the kiosk writes it, around any payload bytes, signed by alpha. */
function envelopeOf(payload: Uint8Array): Uint8Array {
  const sig = sign(null, preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload), alpha.privateKey);
  return utf8.encode(canonicalize({ payload: encodeBase64(payload), payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ keyid: alpha.keyId, sig: encodeBase64(sig) }] }));
}

/** What verifyManifestSummary answers, and what verifyManifest answers put the same way. */
function summaryOutcome(bytes: Uint8Array, summary: boolean): string {
  try {
    const v = summary ? verifyManifestSummary(bytes, trust, now) : verifyManifest(bytes, trust, now, { onePass: false });
    const predicate = 'predicate' in v ? v.predicate : v.statement.predicate;
    const count = 'subjectCount' in v ? v.subjectCount : v.statement.subject.length;
    return `OK ${v.keyId} ${v.payloadDigest} ${count} ${JSON.stringify(predicate)}`;
  } catch (error) {
    if (error instanceof ManifestError) return `${error.code}: ${error.message}`;
    throw error;
  }
}

/** What verifyManifest answers, as text: the statement or the code and message. */
function outcome(bytes: Uint8Array, onePass: boolean): string {
  try {
    const v = verifyManifest(bytes, trust, now, { onePass });
    return `OK ${v.keyId} ${v.payloadDigest} ${JSON.stringify(v.statement)}`;
  } catch (error) {
    if (error instanceof ManifestError) return `${error.code}: ${error.message}`;
    throw error;
  }
}

const BYTES = [...'"\\ {}[],:019-.eEafFnut/'].map((c) => c.charCodeAt(0)).concat([0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xa9, 0xed, 0xa0, 0xff, 0xef, 0xbb, 0xbf, 0x0a]);
const VALUES: unknown[] = ['', 'a', 'A'.repeat(70), 'a/../b', 'CON', 'x\u0000', 'é', '\ud800', '2026-02-30T00:00:00Z', '2026-03-01T09:00:00Z', 0, 1, -1, 1.5, 2 ** 53, null, true, [], {}, ['MALWARE'], `sha256:${digest('0')}`];

/** Payload bytes changed at random: bytes, pieces of the layout, values, members, number and string spellings. */
function mutate(statement: Statement, next: () => number): Uint8Array {
  const text = canonicalize(statement);
  const bytes = utf8.encode(text);
  const at = Math.floor(next() * bytes.length);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  switch (Math.floor(next() * 9)) {
    case 0: { // one byte replaced
      const out = bytes.slice();
      out[at] = pick(BYTES);
      return out;
    }
    case 1: // one byte inserted
      return new Uint8Array([...bytes.subarray(0, at), pick(BYTES), ...bytes.subarray(at)]);
    case 2: // a range removed
      return new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(Math.min(bytes.length, at + 1 + Math.floor(next() * 40)))]);
    case 3: { // a range repeated
      const end = Math.min(bytes.length, at + 1 + Math.floor(next() * 200));
      return new Uint8Array([...bytes.subarray(0, end), ...bytes.subarray(at, end), ...bytes.subarray(end)]);
    }
    case 4: { // a character spelled as a \u escape, or "/" as \/
      const i = text.indexOf('"', at);
      if (i < 0 || i + 1 >= text.length) return bytes;
      const c = text[i + 1]!;
      const escape = c === '/' ? '\\/' : `\\u${c.charCodeAt(0).toString(16).padStart(4, next() < 0.5 ? '0' : '0').toUpperCase()}`;
      return utf8.encode(text.slice(0, i + 1) + (next() < 0.5 ? escape : escape.toLowerCase()) + text.slice(i + 2));
    }
    case 5: { // a number respelled
      const m = /\d+/u.exec(text.slice(at));
      if (!m) return bytes;
      const i = at + m.index;
      return utf8.encode(text.slice(0, i) + pick(['0', '-0', `${m[0]}.0`, `${m[0]}e0`, `0${m[0]}`, `-${m[0]}`, '9007199254740992', '9007199254740991']) + text.slice(i + m[0].length));
    }
    default: { // a value, a member or a subject changed in the tree, written canonically or not
      const tree = JSON.parse(text) as Record<string, unknown>;
      const paths: Array<[Record<string, unknown> | unknown[], string | number]> = [];
      const walk = (node: unknown): void => {
        if (node === null || typeof node !== 'object') return;
        for (const [k, v] of Object.entries(node)) {
          paths.push([node as Record<string, unknown>, Array.isArray(node) ? Number(k) : k]);
          walk(v);
        }
      };
      walk(tree);
      const [parent, key] = pick(paths);
      const r = next();
      if (r < 0.5) (parent as Record<string, unknown>)[key] = pick(VALUES);
      else if (r < 0.65 && !Array.isArray(parent)) delete parent[key as string];
      else if (r < 0.8 && !Array.isArray(parent)) parent[`${String(key)}x`] = 1;
      else if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]));
      else parent[key as string] = structuredClone(parent[key as string]);
      const subjects = tree.subject as Array<{ name: string }> | undefined;
      const first = Array.isArray(subjects) ? subjects[0] : undefined;
      if (next() < 0.1 && first && typeof first.name === 'string') subjects!.push({ ...first, name: first.name.toUpperCase() }); // a case-only collision
      try {
        return utf8.encode(next() < 0.8 ? canonicalize(tree) : JSON.stringify(tree, null, next() < 0.5 ? 0 : 1));
      } catch {
        return utf8.encode(JSON.stringify(tree));
      }
    }
  }
}

describe('one-pass manifest readers against the full steps', () => {
  it('accept every statement the full steps accept, and the same statement', () => {
    for (const s of statements()) {
      const envelope = envelopeOf(utf8.encode(canonicalize(s)));
      expect(readCanonicalEnvelope(envelope)).not.toBeNull();
      expect(outcome(envelope, true)).toBe(outcome(envelope, false));
      expect(outcome(envelope, true)).toMatch(/^OK /u);
    }
  });

  it('answer exactly as the full steps on 4 000 mutated payloads, accepting all the full steps accept', () => {
    const next = random(2323);
    const all = statements();
    let accepted = 0;
    const differ: string[] = [];
    const declined: string[] = [];
    for (let n = 0; n < 4_000; n++) {
      const payload = mutate(all[n % all.length]!, next);
      const envelope = envelopeOf(payload);
      const full = outcome(envelope, false);
      if (outcome(envelope, true) !== full) differ.push(Buffer.from(payload).toString('latin1'));
      if (summaryOutcome(envelope, true) !== summaryOutcome(envelope, false)) differ.push(`summary: ${Buffer.from(payload).toString('latin1')}`);
      if (full.startsWith('OK ')) {
        accepted++;
        if (readCanonicalStatement(payload) === null) declined.push(Buffer.from(payload).toString('latin1'));
      }
    }
    expect(differ).toEqual([]);
    expect(declined).toEqual([]);
    expect(accepted).toBeGreaterThan(100); // mutations that stay valid (other names, sizes, times) exercise the accepting side
  });

  it('answer exactly as the full steps on 3 000 mutated envelopes', () => {
    const next = random(4242);
    const envelopes = statements().map((s) => envelopeOf(utf8.encode(canonicalize(s))));
    const differ: string[] = [];
    let accepted = 0;
    for (let n = 0; n < 3_000; n++) {
      const good = envelopes[n % envelopes.length]!;
      const text = Buffer.from(good).toString('latin1');
      const at = Math.floor(next() * good.length);
      let bad: string;
      switch (Math.floor(next() * 6)) {
        case 0: bad = text.slice(0, at) + String.fromCharCode(BYTES[Math.floor(next() * BYTES.length)]!) + text.slice(at + 1); break;
        case 1: bad = text.slice(0, at) + String.fromCharCode(BYTES[Math.floor(next() * BYTES.length)]!) + text.slice(at); break;
        case 2: bad = text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 8)); break;
        case 3: { // the payload's last characters before the padding (unused bits), or its padding
          const end = text.indexOf('","payloadType"');
          const i = end - 1 - Math.floor(next() * 3);
          bad = text.slice(0, i) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=-_'[Math.floor(next() * 47)] + text.slice(i + 1);
          break;
        }
        case 4: { // members reordered, spaced or escaped: still the same envelope to JSON.parse
          const e = JSON.parse(text) as { payload: string; payloadType: string; signatures: unknown[] };
          const forms = [
            JSON.stringify({ payloadType: e.payloadType, payload: e.payload, signatures: e.signatures }),
            JSON.stringify(e, null, 1),
            text.replace('"payload":"', '"payload":"\\u0065').replace(/"payload":"\\u0065(.)/u, (_m, c: string) => (c === 'e' ? '"payload":"\\u0065' : `"payload":"${c}`)),
            text.replace('"sig":"', '"sig":"\\/'),
            text.replace(']}', ',{"keyid":"' + 'a'.repeat(64) + '","sig":"AAAA"}]}'),
            `${text} `,
            `${text}x`,
            `${text}}`,
            `${text}\u0000`,
          ];
          bad = forms[Math.floor(next() * forms.length)]!;
          break;
        }
        default: bad = text;
      }
      const bytes = Buffer.from(bad, 'latin1');
      const full = outcome(bytes, false);
      if (full.startsWith('OK ')) accepted++;
      if (outcome(bytes, true) !== full) differ.push(bad.slice(0, 200));
    }
    expect(differ).toEqual([]);
    expect(accepted).toBeGreaterThan(100);
  });
});
