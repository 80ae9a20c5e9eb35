/** The manifest contract, imported by both the kiosk and the agent. No I/O. */
export { MANIFEST_ERROR_CODES, ManifestError, PortcullisError, type ManifestErrorCode } from './errors.ts';
export { canonicalBytes, canonicalize } from './canonical-json.ts';
export { decodeBase64Strict, encodeBase64, IN_TOTO_PAYLOAD_TYPE, preAuthEncoding, preAuthEncodingHead } from './dsse.ts';
export {
  generateSigningKey, KEY_ID_PATTERN, keyIdOf, publicKeyFromPem, publicKeyToPem, signingKeyFromPem, signingKeyFromSeed,
  signingKeyToPem, type SigningKey,
} from './keys.ts';
export {
  collisionKey, componentProblems, decodeNameBytes, displayNameBytes, displayText, escapeForDisplay, findCollisions, isDisplaySafe, MANIFEST_FOLDER, NAME_PROBLEM_TEXT, nameFromBytes,
  pathProblems, type NameProblem,
} from './names.ts';
export { checkStatement } from './check-statement.ts';
export {
  LIMITS, PREDICATE_TYPE, STATEMENT_TYPE, type BlockedFile, type MediaIdentity, type Predicate, type Statement,
  type Subject,
} from './statement.ts';
export { signManifest, signStatementPae } from './sign.ts';
export { verifyManifest, verifyManifestSummary, type TrustAnchors, type TrustedKey, type VerifiedManifest, type VerifiedSummary, type VerifyOptions } from './verify.ts';
export { entryKindOf, type EntryKind, type StatKind } from './entry-kind.ts';
export { EnginePool } from './engine-pool.ts';
export { DualDigest, hashWasmBlake3, wasmBlake3, type Blake3Factory, type Blake3Hasher, type FileDigest } from './digest.ts';

/** Where the envelope lives on a drive, relative to its root. */
export const MANIFEST_PATH = '.portcullis/manifest.dsse.json';
/** The human-readable receipt beside it. */
export const RECEIPT_PATH = '.portcullis/receipt.txt';
