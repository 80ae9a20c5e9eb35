/**
 * Assembles the manifest statement from a scan's outcome. Pure: the caller
 * supplies the clock reading, identities and per-file results.
 */
import { PREDICATE_TYPE, STATEMENT_TYPE, type BlockedFile, type MediaIdentity, type Predicate, type Statement } from '../../manifest/index.ts';

export interface ApprovedFile {
  readonly path: string; // relative POSIX path, NFC, already checked safe
  readonly sha256: string;
  readonly blake3: string;
  readonly size: number; // bytes
}

export interface StatementInput {
  readonly kioskId: string;
  readonly keyId: string;
  readonly operatorId: string | null;
  readonly issuedAt: Date;
  readonly validitySeconds: number; // seconds, from policy
  readonly scan: Predicate['scan'];
  readonly media: MediaIdentity;
  readonly engines: Predicate['engines'];
  readonly allowlist: Predicate['allowlist'];
  readonly policy: Predicate['policy'];
  readonly approved: readonly ApprovedFile[];
  readonly blocked: readonly BlockedFile[];
}

/** RFC 3339 UTC at whole seconds, the manifest's only time format. */
export function manifestTime(time: Date): string {
  return new Date(Math.floor(time.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

const byPath = (a: { path: string } | { name: string }, b: { path: string } | { name: string }): number => {
  const x = 'path' in a ? a.path : a.name;
  const y = 'path' in b ? b.path : b.name;
  return x < y ? -1 : x > y ? 1 : 0;
};

export function buildStatement(input: StatementInput): Statement {
  const issued = Math.floor(input.issuedAt.getTime() / 1000) * 1000;
  return {
    _type: STATEMENT_TYPE,
    subject: [...input.approved].sort(byPath).map((f) => ({
      name: f.path,
      digest: { blake3: f.blake3, sha256: f.sha256 },
      annotations: { size: f.size },
    })),
    predicateType: PREDICATE_TYPE,
    predicate: {
      kiosk: { id: input.kioskId, keyId: input.keyId },
      operator: input.operatorId === null ? null : { id: input.operatorId },
      issuedAt: manifestTime(new Date(issued)),
      expiresAt: manifestTime(new Date(issued + input.validitySeconds * 1000)),
      scan: input.scan,
      media: input.media,
      engines: input.engines,
      allowlist: input.allowlist,
      policy: input.policy,
      blocked: [...input.blocked].sort(byPath),
    },
  };
}
