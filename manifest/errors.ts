/**
 * Errors shared by every Portcullis module: one base class carrying a stable
 * `code` (goes into audit logs unchanged; tests assert it), a message for
 * people, and an optional cause. Each domain narrows `code` to a closed union.
 */
export class PortcullisError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Every code `verifyManifest`, `signManifest` and the schema can raise. */
export const MANIFEST_ERROR_CODES = [
  'MANIFEST_TOO_LARGE',
  'ENVELOPE_INVALID',
  'PAYLOAD_TYPE_UNSUPPORTED',
  'PAYLOAD_NOT_CANONICAL',
  'KEY_UNTRUSTED',
  'KEY_REVOKED',
  'SIGNATURE_INVALID',
  'SIGNER_MISMATCH',
  'MANIFEST_VERSION',
  'MANIFEST_SCHEMA',
  'SUBJECT_UNSAFE',
  'MANIFEST_NOT_YET_VALID',
  'MANIFEST_EXPIRED',
  'KEY_INVALID',
] as const;

export type ManifestErrorCode = (typeof MANIFEST_ERROR_CODES)[number];

export class ManifestError extends PortcullisError<ManifestErrorCode> {}
