/**
 * Deterministic manifest test vectors. Keys come from FIXED TEST-ONLY SEEDS
 * (never use them for anything else); Ed25519 is deterministic, so running
 * this again rebuilds every file byte for byte.
 *
 *   node test/vectors/generate.ts            write test/vectors/manifest/
 *   node test/vectors/generate.ts --check    exit 1 if any file differs
 */
import { createHash, sign } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalize } from '../../manifest/canonical-json.ts';
import { hashWasmBlake3 } from '../../manifest/digest.ts';
import { encodeBase64, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding } from '../../manifest/dsse.ts';
import type { ManifestErrorCode } from '../../manifest/errors.ts';
import { publicKeyToPem, signingKeyFromSeed, type SigningKey } from '../../manifest/keys.ts';
import { signManifest } from '../../manifest/sign.ts';
import { PREDICATE_TYPE, STATEMENT_TYPE, type Statement } from '../../manifest/statement.ts';

export const VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), 'manifest');

/** TEST-ONLY: seed = SHA-256("portcullis test vector key " + name). */
export function testKey(name: string): SigningKey {
  return signingKeyFromSeed(createHash('sha256').update(`portcullis test vector key ${name}`).digest());
}

export const KEY_NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'] as const;
type KeyName = (typeof KEY_NAMES)[number];
const keys = Object.fromEntries(KEY_NAMES.map((n) => [n, testKey(n)])) as Record<KeyName, SigningKey>;

/** The trust the verifier is given for every vector (docs/manifest.md §Test vectors). */
export const VECTOR_TRUST = {
  keys: [
    { name: 'alpha' },
    { name: 'beta' },
    { name: 'delta' },
    { name: 'epsilon', notBefore: '2025-01-01T00:00:00Z', notAfter: '2026-01-01T00:00:00Z' },
  ],
  revoked: ['delta'],
} as const;
export const VECTOR_NOW = '2026-01-15T12:00:00Z';

const hex = (label: string): string => createHash('sha256').update(label).digest('hex');

function subject(name: string, size = 1024): Statement['subject'][number] {
  return { name, digest: { blake3: hex(`blake3 ${name}`), sha256: hex(`sha256 ${name}`) }, annotations: { size } };
}

function baseStatement(key: SigningKey = keys.alpha): Statement {
  return {
    _type: STATEMENT_TYPE,
    subject: [subject('firmware/plc-cpu-v2.8.1.bin', 262144), subject('README.txt', 59)],
    predicateType: PREDICATE_TYPE,
    predicate: {
      kiosk: { id: 'gate-1', keyId: key.keyId },
      operator: { id: 'T-1042' },
      issuedAt: '2026-01-15T08:00:00Z',
      expiresAt: '2026-01-15T20:00:00Z',
      scan: { id: 'scan-0001', fileCount: 3, byteCount: 262203 + 4096 },
      media: {
        filesystem: 'vfat',
        volumeId: '1A2B-3C4D',
        label: 'LINE3',
        capacity: 8_004_304_896,
        usb: { vendorId: '0781', productId: '5567', serial: '4C530001230405117213' },
      },
      engines: {
        clamav: { version: 'ClamAV 1.4.3', databaseVersion: '27519', databaseTime: '2026-01-15T04:12:00Z' },
        yara: { engine: 'clamav-yara', ruleSetDigest: `sha256:${hex('rules')}`, ruleCount: 12 },
      },
      allowlist: { version: '2026.01', digest: `sha256:${hex('allowlist')}` },
      policy: { id: 'default', digest: `sha256:${hex('policy')}` },
      blocked: [{ path: 'tools/setup.pdf.exe', reasons: ['TYPE_MISMATCH', 'RISKY_TYPE'] }],
    },
  };
}

/** Builds an envelope by hand, so invalid vectors can break any one rule. */
function envelope(
  payload: Uint8Array,
  signers: SigningKey[],
  opts: { payloadType?: string; sigOver?: (pae: Uint8Array, payload: Uint8Array) => Uint8Array; extra?: Record<string, unknown> } = {},
): Uint8Array {
  const payloadType = opts.payloadType ?? IN_TOTO_PAYLOAD_TYPE;
  const pae = preAuthEncoding(payloadType, payload);
  const signed = opts.sigOver ? opts.sigOver(pae, payload) : pae;
  const env = {
    payload: encodeBase64(payload),
    payloadType,
    signatures: signers.map((k) => ({ keyid: k.keyId, sig: encodeBase64(sign(null, signed, k.privateKey)) })),
    ...opts.extra,
  };
  return new TextEncoder().encode(canonicalize(env));
}

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const canonical = (value: unknown): Uint8Array => enc(canonicalize(value));

function mutate(fn: (s: Statement) => void, key: SigningKey = keys.alpha): Uint8Array {
  const s = structuredClone(baseStatement(key));
  fn(s);
  return envelope(canonical(s), [key]);
}

function withSubjects(names: string[]): Uint8Array {
  return mutate((s) => {
    s.subject = names.map((n) => subject(n));
  });
}

function patchEnvelope(bytes: Uint8Array, fn: (env: Record<string, unknown>) => void): Uint8Array {
  const env = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  fn(env);
  return enc(canonicalize(env));
}

export interface ValidVector {
  readonly name: string;
  readonly description: string;
  readonly bytes: Uint8Array;
  readonly signers: KeyName[];
  /** Rebuildable with signManifest (one signature). */
  readonly fromSigner: boolean;
}

export interface InvalidVector {
  readonly name: string;
  readonly description: string;
  readonly bytes: Uint8Array;
  readonly code: ManifestErrorCode;
  readonly now?: string;
}

export function buildVectors(): { valid: ValidVector[]; invalid: InvalidVector[] } {
  const minimal: Statement = {
    ...baseStatement(),
    subject: [subject('update.bin', 0)],
    predicate: {
      ...baseStatement().predicate,
      operator: null,
      media: { filesystem: 'exfat', volumeId: null, label: null, capacity: null, usb: null },
      engines: { clamav: null, yara: null },
      allowlist: null,
      blocked: [],
    },
  };
  const unicode: Statement = {
    ...baseStatement(keys.beta),
    subject: [
      subject('Projekte/Überdruckventil Prüfung.zap17'),
      subject('配方/温度曲线.csv'),
      subject('docs/naïve café — notes.txt'),
      subject('émoji/✅ approved 🏭.txt'),
    ],
    predicate: {
      ...baseStatement(keys.beta).predicate,
      blocked: [
        { path: 'invoice\\u{202e}fdp.exe', reasons: ['UNSAFE_NAME'] },
        { path: 'AUX.txt', reasons: ['UNSAFE_NAME'] },
        { path: 'autorun.inf', reasons: ['RISKY_TYPE', 'YARA_MATCH'] },
      ],
    },
  };
  const full = baseStatement();
  const valid: ValidVector[] = [
    { name: 'full', description: 'every optional field present, one blocked file', bytes: signManifest(full, keys.alpha), signers: ['alpha'], fromSigner: true },
    { name: 'minimal', description: 'nulls wherever allowed, one empty file', bytes: signManifest(minimal, keys.alpha), signers: ['alpha'], fromSigner: true },
    { name: 'unicode-names', description: 'non-ASCII NFC names, escaped hostile names in blocked', bytes: signManifest(unicode, keys.beta), signers: ['beta'], fromSigner: true },
    {
      name: 'extra-untrusted-signature',
      description: 'a signature by an unknown key first, then a valid trusted one: unknown key ids are ignored',
      bytes: envelope(canonical(full), [keys.gamma, keys.alpha]),
      signers: ['gamma', 'alpha'],
      fromSigner: false,
    },
  ];

  const good = signManifest(full, keys.alpha);
  const goodPayload = canonical(full);
  const invalid: InvalidVector[] = [
    { name: 'not-json', description: 'the file is not JSON', bytes: enc('this is not a manifest\n'), code: 'ENVELOPE_INVALID' },
    { name: 'envelope-array', description: 'the envelope is a JSON array', bytes: enc('[]'), code: 'ENVELOPE_INVALID' },
    { name: 'envelope-extra-field', description: 'an unknown envelope field', bytes: patchEnvelope(good, (e) => { e.comment = 'hi'; }), code: 'ENVELOPE_INVALID' },
    { name: 'envelope-no-signatures', description: 'an empty signatures list', bytes: patchEnvelope(good, (e) => { e.signatures = []; }), code: 'ENVELOPE_INVALID' },
    { name: 'payload-urlsafe-base64', description: 'payload in URL-safe base64 without padding', bytes: patchEnvelope(good, (e) => { e.payload = Buffer.from(goodPayload).toString('base64url'); }), code: 'ENVELOPE_INVALID' },
    { name: 'keyid-uppercase', description: 'a key id in upper-case hex', bytes: patchEnvelope(good, (e) => { (e.signatures as Array<{ keyid: string }>)[0]!.keyid = keys.alpha.keyId.toUpperCase(); }), code: 'ENVELOPE_INVALID' },
    { name: 'payload-type-json', description: 'payloadType application/json', bytes: envelope(goodPayload, [keys.alpha], { payloadType: 'application/json' }), code: 'PAYLOAD_TYPE_UNSUPPORTED' },
    { name: 'key-untrusted', description: 'signed by a key not in the trust store', bytes: signManifest(baseStatement(keys.gamma), keys.gamma), code: 'KEY_UNTRUSTED' },
    { name: 'key-revoked', description: 'signed by a trusted key that is also revoked', bytes: signManifest(baseStatement(keys.delta), keys.delta), code: 'KEY_REVOKED' },
    { name: 'key-outside-period', description: 'signed by a trusted key whose trust ended before now', bytes: signManifest(baseStatement(keys.epsilon), keys.epsilon), code: 'KEY_UNTRUSTED' },
    { name: 'signature-bit-flip', description: 'one bit of the signature flipped', bytes: patchEnvelope(good, (e) => {
      const sig = Buffer.from((e.signatures as Array<{ sig: string }>)[0]!.sig, 'base64');
      sig[10]! ^= 0x01;
      (e.signatures as Array<{ sig: string }>)[0]!.sig = sig.toString('base64');
    }), code: 'SIGNATURE_INVALID' },
    { name: 'payload-changed', description: 'a subject digest changed after signing', bytes: patchEnvelope(good, (e) => {
      const changed = structuredClone(full);
      changed.subject[0]!.digest.sha256 = hex('evil');
      e.payload = encodeBase64(canonical(changed));
    }), code: 'SIGNATURE_INVALID' },
    { name: 'signature-short', description: 'a 63-byte signature', bytes: patchEnvelope(good, (e) => {
      (e.signatures as Array<{ sig: string }>)[0]!.sig = Buffer.alloc(63, 1).toString('base64');
    }), code: 'SIGNATURE_INVALID' },
    { name: 'signed-without-pae', description: 'signature over the raw payload instead of PAE', bytes: envelope(goodPayload, [keys.alpha], { sigOver: (_pae, payload) => payload }), code: 'SIGNATURE_INVALID' },
    { name: 'payload-type-not-signed', description: 'payloadType changed after signing (PAE binds it)', bytes: envelope(goodPayload, [keys.alpha], { sigOver: (_pae, payload) => preAuthEncoding('application/json', payload) }), code: 'SIGNATURE_INVALID' },
    { name: 'payload-whitespace', description: 'a correctly signed payload that is not canonical JSON (indented)', bytes: envelope(enc(JSON.stringify(full, null, 2)), [keys.alpha]), code: 'PAYLOAD_NOT_CANONICAL' },
    { name: 'payload-duplicate-key', description: 'a correctly signed payload with a duplicated predicateType key', bytes: envelope(enc(new TextDecoder().decode(goodPayload).replace('"predicateType":', '"predicateType":"https://example.com/other","predicateType":')), [keys.alpha]), code: 'PAYLOAD_NOT_CANONICAL' },
    { name: 'payload-not-utf8', description: 'the signed payload is not UTF-8', bytes: envelope(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]), [keys.alpha]), code: 'MANIFEST_SCHEMA' },
    { name: 'payload-fractional-size', description: 'a subject size of 1.5', bytes: envelope(enc(new TextDecoder().decode(goodPayload).replace('"size":262144', '"size":1.5')), [keys.alpha]), code: 'MANIFEST_SCHEMA' },
    { name: 'statement-v0.1', description: 'an in-toto Statement v0.1', bytes: mutate((s) => { (s as { _type: string })._type = 'https://in-toto.io/Statement/v0.1'; }), code: 'MANIFEST_VERSION' },
    { name: 'predicate-v2', description: 'a future predicate version', bytes: mutate((s) => { (s as { predicateType: string }).predicateType = 'https://portcullis.dev/manifest/v2'; }), code: 'MANIFEST_VERSION' },
    { name: 'predicate-extra-field', description: 'an unknown predicate field', bytes: mutate((s) => { (s.predicate as Record<string, unknown>).approvedBy = 'me'; }), code: 'MANIFEST_SCHEMA' },
    { name: 'predicate-missing-expiry', description: 'no expiresAt', bytes: mutate((s) => { delete (s.predicate as Partial<Statement['predicate']>).expiresAt; }), code: 'MANIFEST_SCHEMA' },
    { name: 'digest-uppercase', description: 'a sha256 digest in upper-case hex', bytes: mutate((s) => { s.subject[0]!.digest.sha256 = s.subject[0]!.digest.sha256.toUpperCase(); }), code: 'MANIFEST_SCHEMA' },
    { name: 'digest-short', description: 'a blake3 digest of 62 hex characters', bytes: mutate((s) => { s.subject[0]!.digest.blake3 = s.subject[0]!.digest.blake3.slice(2); }), code: 'MANIFEST_SCHEMA' },
    { name: 'digest-missing-blake3', description: 'a subject with only sha256', bytes: mutate((s) => { delete (s.subject[0]!.digest as Partial<{ blake3: string }>).blake3; }), code: 'MANIFEST_SCHEMA' },
    { name: 'no-subjects', description: 'an empty subject list', bytes: mutate((s) => { s.subject = []; }), code: 'MANIFEST_SCHEMA' },
    { name: 'blocked-path-escape-sequence', description: 'a raw terminal escape in a blocked path', bytes: mutate((s) => { s.predicate.blocked[0]!.path = 'evil\u001b[2J.exe'; }), code: 'MANIFEST_SCHEMA' },
    { name: 'validity-too-long', description: 'valid for 40 days', bytes: mutate((s) => { s.predicate.expiresAt = '2026-02-24T08:00:00Z'; }), code: 'MANIFEST_SCHEMA' },
    { name: 'expiry-before-issue', description: 'expiresAt before issuedAt', bytes: mutate((s) => { s.predicate.expiresAt = '2026-01-15T07:00:00Z'; }), code: 'MANIFEST_SCHEMA' },
    { name: 'time-not-utc', description: 'issuedAt with a time-zone offset', bytes: mutate((s) => { s.predicate.issuedAt = '2026-01-15T09:00:00+01:00'; }), code: 'MANIFEST_SCHEMA' },
    { name: 'subject-absolute', description: 'a subject name starting with /', bytes: withSubjects(['/etc/passwd']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-drive-letter', description: 'a subject name with a drive letter', bytes: withSubjects(['C:/Windows/System32/evil.dll']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-dot-dot', description: 'a subject climbing out with ..', bytes: withSubjects(['firmware/../../Windows/evil.dll']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-backslash', description: 'a subject with a backslash separator', bytes: withSubjects(['firmware\\evil.dll']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-nul', description: 'a subject with a NUL character', bytes: withSubjects(['report.pdf\u0000.exe']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-control', description: 'a subject with an escape character', bytes: withSubjects(['a\u001b[31mred.txt']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-rtl-override', description: 'a subject with a right-to-left override', bytes: withSubjects(['invoice\u202efdp.exe']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-reserved-name', description: 'a subject named like a Windows device', bytes: withSubjects(['logs/aux.txt']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-reserved-superscript', description: 'COM¹ is a Windows device too', bytes: withSubjects(['COM\u00b9.bin']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-stream-syntax', description: 'alternate-data-stream syntax', bytes: withSubjects(['readme.txt:payload.exe']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-trailing-dot', description: 'a trailing dot Windows would strip', bytes: withSubjects(['setup.exe.']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-trailing-space', description: 'a trailing space Windows would strip', bytes: withSubjects(['firmware /update.bin']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-not-nfc', description: 'a decomposed (NFD) name', bytes: withSubjects(['Pru\u0308fung.txt']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-too-long', description: 'a 256-character component', bytes: withSubjects([`${'a'.repeat(252)}.bin`]), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-duplicate', description: 'the same name twice', bytes: withSubjects(['a.txt', 'a.txt']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-case-collision', description: 'names equal but for case', bytes: withSubjects(['Setup.exe', 'setup.EXE']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-file-and-folder', description: 'a name used as file and as folder', bytes: withSubjects(['firmware', 'FIRMWARE/update.bin']), code: 'SUBJECT_UNSAFE' },
    { name: 'subject-manifest-folder', description: 'a subject inside .portcullis', bytes: withSubjects(['.portcullis/manifest.dsse.json']), code: 'SUBJECT_UNSAFE' },
    { name: 'signer-mismatch', description: 'predicate names alpha, signed by beta', bytes: envelope(goodPayload, [keys.beta]), code: 'SIGNER_MISMATCH' },
    { name: 'expired', description: 'verified after expiresAt', bytes: good, code: 'MANIFEST_EXPIRED', now: '2026-01-15T20:00:00Z' },
    { name: 'not-yet-valid', description: 'verified more than 5 minutes before issuedAt', bytes: good, code: 'MANIFEST_NOT_YET_VALID', now: '2026-01-15T07:54:59Z' },
  ];
  return { valid, invalid };
}

/**
 * File-check vectors (docs/manifest.md §6.4): one manifest whose subjects
 * are files of `files/`, each listed with its true digests and size or with
 * exactly one of them wrong, and what a verifier must decide for each file by
 * the digests it checks.
 */
export type FileCheckOutcome = 'OK' | 'FILE_HASH_MISMATCH' | 'FILE_SIZE_MISMATCH';
export interface FileCheckVector {
  readonly name: string;
  readonly description: string;
  readonly bytes: Uint8Array;
  /** What the subject lists instead of the file's own values. */
  readonly listed?: { readonly sha256?: string; readonly blake3?: string; readonly size?: number };
  /** By the digests a verifier checks: SHA-256 only, BLAKE3 only, both. */
  readonly expected: { readonly sha256: FileCheckOutcome; readonly blake3: FileCheckOutcome; readonly both: FileCheckOutcome };
}

/** 5 000 bytes of the BLAKE3 test-vector input pattern (byte i is i mod 251): several 1 KiB chunks. */
const patternBytes = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);

export function fileCheckVectors(): FileCheckVector[] {
  const wrong = hex('a digest of no file in these vectors');
  const sizeWrong = enc('the size listed for this file is one byte too large\n');
  return [
    { name: 'both-right.bin', description: 'listed with its true size and both digests', bytes: patternBytes, expected: { sha256: 'OK', blake3: 'OK', both: 'OK' } },
    { name: 'empty.bin', description: 'an empty file listed with its true digests', bytes: new Uint8Array(0), expected: { sha256: 'OK', blake3: 'OK', both: 'OK' } },
    {
      name: 'sha256-wrong.bin', description: 'true size and BLAKE3, a SHA-256 of other bytes', bytes: enc('the SHA-256 listed for this file is wrong\n'),
      listed: { sha256: wrong }, expected: { sha256: 'FILE_HASH_MISMATCH', blake3: 'OK', both: 'FILE_HASH_MISMATCH' },
    },
    {
      name: 'blake3-wrong.bin', description: 'true size and SHA-256, a BLAKE3 of other bytes', bytes: enc('the BLAKE3 listed for this file is wrong\n'),
      listed: { blake3: wrong }, expected: { sha256: 'OK', blake3: 'FILE_HASH_MISMATCH', both: 'FILE_HASH_MISMATCH' },
    },
    {
      name: 'both-wrong.bin', description: 'true size, both digests of other bytes (same length)', bytes: enc('both digests listed for this file are wrong\n'),
      listed: { sha256: wrong, blake3: wrong }, expected: { sha256: 'FILE_HASH_MISMATCH', blake3: 'FILE_HASH_MISMATCH', both: 'FILE_HASH_MISMATCH' },
    },
    {
      name: 'size-wrong.bin', description: 'true digests, a size one byte larger: the size is checked whatever the digests', bytes: sizeWrong,
      listed: { size: sizeWrong.length + 1 }, expected: { sha256: 'FILE_SIZE_MISMATCH', blake3: 'FILE_SIZE_MISMATCH', both: 'FILE_SIZE_MISMATCH' },
    },
  ];
}

/** The manifest of the file-check vectors, signed by alpha: its subjects as each vector lists them. */
export async function fileCheckManifest(): Promise<Uint8Array> {
  const subjects: Statement['subject'] = [];
  for (const v of fileCheckVectors()) {
    const blake3 = await hashWasmBlake3();
    blake3.update(v.bytes);
    subjects.push({
      name: v.name,
      digest: { blake3: v.listed?.blake3 ?? blake3.digestHex(), sha256: v.listed?.sha256 ?? createHash('sha256').update(v.bytes).digest('hex') },
      annotations: { size: v.listed?.size ?? v.bytes.length },
    });
  }
  subjects.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const base = baseStatement();
  return signManifest({ ...base, subject: subjects, predicate: { ...base.predicate, blocked: [] } }, keys.alpha);
}

export function keyIdOfName(name: KeyName): string {
  return keys[name].keyId;
}

/** Every file of the vector folder, path relative to it, with its bytes. */
export async function renderVectorFiles(): Promise<Map<string, Uint8Array>> {
  const { valid, invalid } = buildVectors();
  const fileChecks = fileCheckVectors();
  const fileManifest = await fileCheckManifest();
  valid.push({ name: 'file-checks', description: 'the manifest of the file-check vectors (fileChecks, §6.4)', bytes: fileManifest, signers: ['alpha'], fromSigner: true });
  const files = new Map<string, Uint8Array>();
  for (const name of KEY_NAMES) files.set(`keys/${name}.pub.pem`, enc(publicKeyToPem(keys[name].publicKey)));
  for (const v of valid) files.set(`valid/${v.name}.dsse.json`, v.bytes);
  for (const v of invalid) files.set(`invalid/${v.name}.dsse.json`, v.bytes);
  for (const v of fileChecks) files.set(`files/${v.name}`, v.bytes);
  const index = {
    comment: 'Portcullis manifest test vectors. Keys derive from fixed TEST-ONLY seeds (test/vectors/generate.ts). See docs/manifest.md §Test vectors.',
    now: VECTOR_NOW,
    clockSkewSeconds: 300,
    trust: {
      keys: VECTOR_TRUST.keys.map((k) => ({ ...k, file: `keys/${k.name}.pub.pem`, keyId: keys[k.name].keyId })),
      revokedKeyIds: VECTOR_TRUST.revoked.map((n) => keys[n].keyId),
    },
    valid: valid.map((v) => ({
      file: `valid/${v.name}.dsse.json`,
      description: v.description,
      keyId: keys[v.signers[v.signers.length - 1]!].keyId,
      payloadDigest: `sha256:${createHash('sha256').update(Buffer.from((JSON.parse(new TextDecoder().decode(v.bytes)) as { payload: string }).payload, 'base64')).digest('hex')}`,
    })),
    invalid: invalid.map((v) => ({ file: `invalid/${v.name}.dsse.json`, description: v.description, code: v.code, ...(v.now ? { now: v.now } : {}) })),
    fileChecks: {
      comment: 'docs/manifest.md §6.4: the expected decision for each file by the digests a verifier checks (sha256 only, blake3 only, both); OK means the file may pass.',
      manifest: 'valid/file-checks.dsse.json',
      files: fileChecks.map((v) => ({ subject: v.name, file: `files/${v.name}`, description: v.description, expected: v.expected })),
    },
  };
  files.set('vectors.json', enc(`${JSON.stringify(index, null, 2)}\n`));
  return files;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out;
}

/** Names of files that differ from (or are missing in, or extra on) disk. */
export async function diffVectorFiles(dir = VECTOR_DIR): Promise<string[]> {
  const want = await renderVectorFiles();
  const differ: string[] = [];
  for (const [rel, bytes] of want) {
    const have = await readFile(join(dir, rel)).catch(() => null);
    if (!have || !Buffer.from(bytes).equals(have)) differ.push(rel);
  }
  for (const rel of await listFiles(dir)) if (!want.has(rel)) differ.push(rel);
  return differ;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const differ = await diffVectorFiles();
    if (differ.length > 0) {
      console.error(`vectors differ from the generator: ${differ.join(', ')}`);
      process.exitCode = 1;
    } else console.log('vectors match the generator');
  } else {
    await rm(VECTOR_DIR, { recursive: true, force: true });
    const files = await renderVectorFiles();
    for (const [rel, bytes] of files) {
      await mkdir(dirname(join(VECTOR_DIR, rel)), { recursive: true });
      await writeFile(join(VECTOR_DIR, rel), bytes);
    }
    console.log(`wrote ${files.size} files to ${VECTOR_DIR}`);
  }
}
