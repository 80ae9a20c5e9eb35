/**
 * Comparison of secrets and digests in time that does not depend on where
 * they first differ (the lengths, which are public, may show).
 */
import { timingSafeEqual } from 'node:crypto';

/** Whether two strings (hex digests, tokens) are equal, compared in constant time. */
export function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
