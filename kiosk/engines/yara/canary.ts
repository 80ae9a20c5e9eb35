/**
 * The start-up canary: rules/yara/canary.yar matches only this fixed string.
 * Scanning `canarySample()` through the real clamd must report
 * `CANARY_SIGNATURE`; anything else means the YARA rules are not live and the
 * kiosk must not scan (fail closed).
 */
import { signatureForRule } from './clamav-signature.ts';

export const CANARY_RULE = 'Portcullis_Canary';
export const CANARY_SIGNATURE = signatureForRule(CANARY_RULE);

// Assembled from parts so this source file does not itself trip the rule.
const CANARY_TEXT = ['PORTCULLIS', 'YARA', 'CANARY', '6b1f0e9c'].join('-');

/** A small text file carrying the canary string (fresh copy on each call). */
export function canarySample(): Uint8Array {
  return new TextEncoder().encode(`Portcullis start-up check. ${CANARY_TEXT}\n`);
}
