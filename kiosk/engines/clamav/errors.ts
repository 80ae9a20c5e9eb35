import { PortcullisError } from '../../../manifest/errors.ts';

/**
 * Every code the clamd adapter raises. All of them mean "not scanned": the
 * kiosk treats each as a blocked file, never as clean.
 */
export const SCANNER_ERROR_CODES = [
  /** clamd cannot be reached, or the connection dropped before an answer. */
  'SCANNER_UNAVAILABLE',
  /** clamd made no progress (connect, accept data, answer) for the idle timeout. */
  'SCANNER_TIMEOUT',
  /** clamd's answer is not one this client knows exactly. */
  'SCANNER_PROTOCOL',
  /** clamd answered `... ERROR`. */
  'SCANNER_ERROR',
  /** The stream is longer than clamd's StreamMaxLength (clamd said so, or the client knew the limit). */
  'SCANNER_STREAM_TOO_LONG',
  /** The caller's AbortSignal fired. */
  'SCAN_ABORTED',
  /** clamd could not be started, exited, or did not get ready. */
  'SCANNER_START_FAILED',
  /** A clamd option (limits, paths) is invalid. */
  'SCANNER_CONFIG',
] as const;

export type ScannerErrorCode = (typeof SCANNER_ERROR_CODES)[number];

export class ScannerError extends PortcullisError<ScannerErrorCode> {}
