/**
 * The manifest payload: an in-toto Statement v1 whose subjects are the files
 * the agent may let through and whose predicate records how the kiosk decided.
 * docs/manifest.md holds the normative field table; this schema implements it.
 */
import { KEY_ID_PATTERN } from './keys.ts';
import { isDisplaySafe, pathProblems } from './names.ts';
import { array, integer, literal, nullable, object, string, type Infer, type Schema } from './schema.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'https://portcullis.dev/manifest/v1';
/** Any version of the project's predicate, to tell "newer version" from "foreign". */
export const PREDICATE_TYPE_FAMILY = /^https:\/\/portcullis\.dev\/manifest\/v[0-9]+$/;

export const LIMITS = {
  maxEnvelopeBytes: 64 * 1024 * 1024, // bytes
  maxSubjects: 100_000,
  maxBlocked: 100_000,
  maxSignatures: 16,
  maxValiditySeconds: 31 * 24 * 3600, // seconds
} as const;

const hex64 = string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' });
const prefixedSha256 = string({
  pattern: /^sha256:[0-9a-f]{64}$/,
  patternMessage: 'expected "sha256:" and 64 lowercase hex characters',
});
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const timestamp = string({
  pattern: RFC3339_UTC,
  patternMessage: 'expected a UTC time as YYYY-MM-DDTHH:MM:SSZ',
  refine: (v) => {
    const time = new Date(v);
    return !Number.isNaN(time.getTime()) && time.toISOString() === v.replace('Z', '.000Z') ? null : 'not a real calendar time';
  },
});
/** Free text that is safe to show: no control, bidi or invisible characters. */
function text(max: number, min = 1): Schema<string> {
  return string({
    min,
    max,
    refine: (v) => (isDisplaySafe(v) ? null : 'contains control or text-direction characters (escape it first)'),
  });
}
const identifier = string({
  min: 1,
  max: 64,
  pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  patternMessage: 'expected letters, digits, ".", "_" or "-", starting with a letter or digit',
});
const reasonCode = string({ pattern: /^[A-Z][A-Z0-9_]{1,47}$/, patternMessage: 'expected an upper-case code like MALWARE' });

const subjectName = string({
  min: 1,
  refine: (v) => {
    const problems = pathProblems(v);
    return problems.length === 0 ? null : `unsafe name (${problems.join(', ')})`;
  },
});

const filesystemName = string({ min: 1, max: 32, pattern: /^[a-z0-9][a-z0-9._-]*$/, patternMessage: 'expected a lower-case filesystem name like vfat or exfat' });
const usbId = string({ pattern: /^[0-9a-f]{4}$/, patternMessage: 'expected 4 lowercase hex digits' });
const keyId = string({ pattern: KEY_ID_PATTERN, patternMessage: 'expected 64 lowercase hex characters' });
const text64 = text(64);
const text64OrEmpty = text(64, 0);
const text128 = text(128);
const blockedPath = text(4096);

/**
 * The leaf rules of the schemas below, by name, for the one-pass reader
 * (read-statement.ts): it checks each value with the very rule the schema
 * applies to it.
 */
export const LEAF_RULES = {
  hex64, prefixedSha256, timestamp, identifier, reasonCode, subjectName, filesystemName, usbId, keyId, text64, text64OrEmpty, text128, blockedPath,
} as const;

export const subjectSchema = object({
  name: subjectName,
  digest: object({ blake3: hex64, sha256: hex64 }),
  annotations: object({ size: integer({ min: 0 }) }),
});

export const mediaSchema = object({
  filesystem: filesystemName,
  volumeId: nullable(text64),
  label: nullable(text64OrEmpty),
  capacity: nullable(integer({ min: 0 })),
  usb: nullable(
    object({
      vendorId: usbId,
      productId: usbId,
      serial: nullable(text128),
    }),
  ),
});

export const predicateSchema = object({
  kiosk: object({ id: identifier, keyId }),
  operator: nullable(object({ id: text64 })),
  issuedAt: timestamp,
  expiresAt: timestamp,
  scan: object({ id: identifier, fileCount: integer({ min: 0 }), byteCount: integer({ min: 0 }) }),
  media: mediaSchema,
  engines: object({
    clamav: nullable(object({ version: text64, databaseVersion: nullable(text64), databaseTime: nullable(timestamp) })),
    yara: nullable(object({ engine: text64, ruleSetDigest: prefixedSha256, ruleCount: integer({ min: 0 }) })),
  }),
  allowlist: nullable(object({ version: text64, digest: prefixedSha256 })),
  policy: object({ id: identifier, digest: prefixedSha256 }),
  blocked: array(object({ path: blockedPath, reasons: array(reasonCode, { min: 1, max: 16 }) }), { max: LIMITS.maxBlocked }),
});

export const statementSchema = object({
  _type: literal(STATEMENT_TYPE),
  subject: array(subjectSchema, { min: 1, max: LIMITS.maxSubjects }),
  predicateType: literal(PREDICATE_TYPE),
  predicate: predicateSchema,
});

export type Subject = Infer<typeof subjectSchema>;
export type MediaIdentity = Infer<typeof mediaSchema>;
export type Predicate = Infer<typeof predicateSchema>;
export type Statement = Infer<typeof statementSchema>;
export type BlockedFile = Predicate['blocked'][number];
