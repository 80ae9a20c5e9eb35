import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalize, keyIdOf, ManifestError, preAuthEncoding, publicKeyToPem, signManifest, verifyManifest,
  type ManifestErrorCode, type Statement,
} from './index.ts';
import { buildStatement } from '../kiosk/core/build-statement.ts';
import { testKey } from '../test/vectors/generate.ts';

const alpha = testKey('alpha');
const beta = testKey('beta');
const trust = { keys: [{ keyId: alpha.keyId, publicKey: alpha.publicKey }, { keyId: beta.keyId, publicKey: beta.publicKey }] };
const now = new Date('2026-03-01T10:00:00Z');

function statement(overrides: Partial<Parameters<typeof buildStatement>[0]> = {}): Statement {
  return buildStatement({
    kioskId: 'gate-1',
    keyId: alpha.keyId,
    operatorId: null,
    issuedAt: new Date('2026-03-01T08:00:00.750Z'),
    validitySeconds: 12 * 3600,
    scan: { id: 'scan-1', fileCount: 1, byteCount: 5 },
    media: { filesystem: 'vfat', volumeId: 'ABCD-1234', label: 'STICK', capacity: 1024, usb: null },
    engines: { clamav: null, yara: null },
    allowlist: null,
    policy: { id: 'default', digest: `sha256:${'a'.repeat(64)}` },
    approved: [{ path: 'b.txt', sha256: 'b'.repeat(64), blake3: 'c'.repeat(64), size: 5 }, { path: 'a.txt', sha256: 'd'.repeat(64), blake3: 'e'.repeat(64), size: 0 }],
    blocked: [],
    ...overrides,
  });
}

function codeOf(fn: () => unknown): ManifestErrorCode | 'OK' {
  try {
    fn();
    return 'OK';
  } catch (error) {
    if (error instanceof ManifestError) return error.code;
    throw error;
  }
}

describe('verifyManifest', () => {
  it('returns the statement it was given, subjects sorted by name and times at whole seconds', () => {
    const result = verifyManifest(signManifest(statement(), alpha), trust, now);
    expect(result.statement.subject.map((s) => s.name)).toEqual(['a.txt', 'b.txt']);
    expect(result.statement.predicate.issuedAt).toBe('2026-03-01T08:00:00Z');
    expect(result.statement.predicate.expiresAt).toBe('2026-03-01T20:00:00Z');
    expect(result.keyId).toBe(alpha.keyId);
  });

  it('refuses an envelope larger than the configured limit before parsing it', () => {
    const bytes = signManifest(statement(), alpha);
    expect(codeOf(() => verifyManifest(bytes, trust, now, { maxEnvelopeBytes: bytes.length - 1 }))).toBe('MANIFEST_TOO_LARGE');
    expect(codeOf(() => verifyManifest(bytes, trust, now, { maxEnvelopeBytes: bytes.length }))).toBe('OK');
  });

  it('verifies the manifest of a drive with 50 000 files (a multi-megabyte payload)', () => {
    const approved = Array.from({ length: 50_000 }, (_, i) => ({ path: `projects/p${i % 40}/part-${i}.dat`, sha256: 'b'.repeat(64), blake3: 'c'.repeat(64), size: i }));
    const envelope = signManifest(statement({ approved, scan: { id: 'scan-1', fileCount: approved.length, byteCount: 0 } }), alpha);
    expect(envelope.length).toBeGreaterThan(10 * 1024 * 1024);
    expect(verifyManifest(envelope, trust, now).statement.subject).toHaveLength(50_000);
  });

  it('refuses base64 that is not in canonical padded form, whatever its length', () => {
    const env = JSON.parse(Buffer.from(signManifest(statement(), alpha)).toString('utf8')) as { payload: string };
    const mutate = (payload: string) => codeOf(() => verifyManifest(Buffer.from(JSON.stringify({ ...env, payload })), trust, now));
    expect(mutate(env.payload)).toBe('OK');
    expect(mutate(env.payload.replace(/=+$/u, ''))).not.toBe('OK'); // padding dropped
    expect(mutate(`${env.payload.slice(0, 8)}\n${env.payload.slice(8)}`)).not.toBe('OK'); // line break inside
    expect(mutate(`-${env.payload.slice(1)}`)).not.toBe('OK'); // URL-safe alphabet
  });

  it('accepts expiry exactly one second before and refuses it at the instant', () => {
    const bytes = signManifest(statement(), alpha);
    expect(codeOf(() => verifyManifest(bytes, trust, new Date('2026-03-01T19:59:59Z')))).toBe('OK');
    expect(codeOf(() => verifyManifest(bytes, trust, new Date('2026-03-01T20:00:00Z')))).toBe('MANIFEST_EXPIRED');
  });

  it('allows the configured clock skew before issuedAt and no more', () => {
    const bytes = signManifest(statement(), alpha);
    expect(codeOf(() => verifyManifest(bytes, trust, new Date('2026-03-01T07:59:00Z'), { clockSkewSeconds: 60 }))).toBe('OK');
    expect(codeOf(() => verifyManifest(bytes, trust, new Date('2026-03-01T07:58:59Z'), { clockSkewSeconds: 60 }))).toBe('MANIFEST_NOT_YET_VALID');
  });

  it('refuses a revoked key even when it is also listed as trusted', () => {
    const bytes = signManifest(statement(), alpha);
    expect(codeOf(() => verifyManifest(bytes, { ...trust, revokedKeyIds: [alpha.keyId] }, now))).toBe('KEY_REVOKED');
  });

  it('refuses a manifest when the trust store is empty', () => {
    expect(codeOf(() => verifyManifest(signManifest(statement(), alpha), { keys: [] }, now))).toBe('KEY_UNTRUSTED');
  });

  it('refuses to sign a statement naming another key', () => {
    expect(codeOf(() => signManifest(statement(), beta))).toBe('SIGNER_MISMATCH');
  });

  it('signs over the DSSE pre-authentication encoding, checked with the openssl command line', () => {
    const bytes = signManifest(statement(), alpha);
    const env = JSON.parse(new TextDecoder().decode(bytes)) as { payload: string; payloadType: string; signatures: Array<{ sig: string }> };
    const dir = mkdtempSync(join(tmpdir(), 'pae-'));
    writeFileSync(join(dir, 'pae.bin'), preAuthEncoding(env.payloadType, Buffer.from(env.payload, 'base64')));
    writeFileSync(join(dir, 'sig.bin'), Buffer.from(env.signatures[0]!.sig, 'base64'));
    writeFileSync(join(dir, 'key.pem'), publicKeyToPem(alpha.publicKey));
    const out = execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(dir, 'key.pem'), '-rawin', '-in', join(dir, 'pae.bin'), '-sigfile', join(dir, 'sig.bin')], { encoding: 'utf8' });
    expect(out).toMatch(/Signature Verified Successfully/);
  });

  it('computes key ids as SHA-256 of the DER public key, as openssl does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyid-'));
    writeFileSync(join(dir, 'key.pem'), publicKeyToPem(alpha.publicKey));
    const der = execFileSync('openssl', ['pkey', '-pubin', '-in', join(dir, 'key.pem'), '-outform', 'DER']);
    const sum = execFileSync('sha256sum', { input: der, encoding: 'utf8' }).split(' ')[0];
    expect(keyIdOf(alpha.publicKey)).toBe(sum);
  });

  it('encodes PAE as DSSEv1, lengths in decimal and single spaces', () => {
    const pae = new TextDecoder().decode(preAuthEncoding('application/vnd.in-toto+json', new TextEncoder().encode('{}')));
    expect(pae).toBe('DSSEv1 28 application/vnd.in-toto+json 2 {}');
  });
});

describe('canonicalize', () => {
  it('sorts keys by UTF-16 code units and escapes like RFC 8785', () => {
    expect(canonicalize({ b: 1, a: [true, null, 'x\u0001\n"'], '\u00e9': 0, Z: -0 })).toBe('{"Z":0,"a":[true,null,"x\\u0001\\n\\""],"b":1,"é":0}');
  });

  it('refuses numbers that are not safe integers', () => {
    expect(() => canonicalize({ a: 1.5 })).toThrow(TypeError);
    expect(() => canonicalize({ a: 2 ** 60 })).toThrow(TypeError);
  });
});
