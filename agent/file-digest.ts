/**
 * Which of a subject's digests the agent computes and checks. Every manifest
 * lists both SHA-256 and BLAKE3 (docs/manifest.md §4); a verifier checks at
 * least one it supports over the bytes it keeps (§6.4). The agent checks
 * BLAKE3 by default (its SIMD WebAssembly build is faster than SHA-256 on
 * CPUs without SHA extensions, common in HMIs), SHA-256 or both when the trust
 * store's policy says so (`policy.digests`), and names the digest it did not
 * check in the file's record (a null digest, and the reason).
 */
import { createHash, type Hash } from 'node:crypto';
import { wasmBlake3, type Blake3Factory, type Blake3Hasher } from '../manifest/digest.ts';

export const DIGEST_CHOICES = ['blake3', 'sha256', 'both'] as const;
export type DigestChoice = (typeof DIGEST_CHOICES)[number];
export const DEFAULT_DIGEST_CHOICE: DigestChoice = 'blake3';

/** The digests of the bytes read: a digest that was not computed is null (not checked). */
export interface ReadDigest {
  readonly sha256: string | null;
  readonly blake3: string | null;
  readonly size: number; // bytes
}

type DigestName = 'sha256' | 'blake3';
const NAMES: Readonly<Record<DigestName, string>> = { sha256: 'SHA-256', blake3: 'BLAKE3' };

/** The digests a choice computes, in the manifest's order of mention. */
export function checkedDigests(choice: DigestChoice): readonly DigestName[] {
  return choice === 'both' ? ['sha256', 'blake3'] : [choice];
}

/** The digests a choice leaves unchecked. */
export function uncheckedDigests(choice: DigestChoice): readonly DigestName[] {
  return choice === 'both' ? [] : [choice === 'sha256' ? 'blake3' : 'sha256'];
}

/** "SHA-256", "BLAKE3", "SHA-256 and BLAKE3". */
export function digestNames(names: readonly DigestName[]): string {
  return names.map((n) => NAMES[n]).join(' and ');
}

/**
 * What a passed file's reason says it matched, and what it did not check:
 * "size and BLAKE3 match (SHA-256 not checked: policy digests blake3)".
 */
export function matchedText(choice: DigestChoice, verb: 'match' | 'matched'): string {
  const checked = checkedDigests(choice);
  const what = checked.length === 2 ? `size, ${digestNames(checked)}` : `size and ${digestNames(checked)}`;
  return `${what} ${verb}${uncheckedNote(choice)}`;
}

/** " (SHA-256 not checked: policy digests blake3)", or nothing when both were checked. */
export function uncheckedNote(choice: DigestChoice): string {
  const unchecked = uncheckedDigests(choice);
  return unchecked.length === 0 ? '' : ` (${digestNames(unchecked)} not checked: policy digests ${choice})`;
}

/** One pass over a file's bytes with the chosen digests only. */
export class FileHasher {
  readonly choice: DigestChoice;
  private readonly sha256: Hash | null;
  private readonly blake3: Blake3Hasher | null;
  private size = 0;
  private finished = false;

  private constructor(choice: DigestChoice, blake3: Blake3Hasher | null) {
    this.choice = choice;
    this.sha256 = choice === 'blake3' ? null : createHash('sha256');
    this.blake3 = blake3;
  }

  static async create(choice: DigestChoice, blake3: Blake3Factory = wasmBlake3): Promise<FileHasher> {
    return new FileHasher(choice, choice === 'sha256' ? null : await blake3());
  }

  update(chunk: Uint8Array): void {
    if (this.finished) throw new Error('FileHasher: update after finish');
    this.sha256?.update(chunk);
    this.blake3?.update(chunk);
    this.size += chunk.length;
  }

  finish(): ReadDigest {
    this.finished = true;
    return { sha256: this.sha256?.digest('hex') ?? null, blake3: this.blake3?.digestHex() ?? null, size: this.size };
  }
}
