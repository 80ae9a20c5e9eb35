/**
 * Assembles the manifest statement from a scan's outcome. Pure: the caller
 * supplies the clock reading, identities and per-file results.
 */
import {
  canonicalize, IN_TOTO_PAYLOAD_TYPE, preAuthEncodingHead, PREDICATE_TYPE, STATEMENT_TYPE, type BlockedFile, type MediaIdentity, type Predicate, type Statement,
} from '../../manifest/index.ts';

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

/** Everything in a statement but its files: what writeStatementPae needs besides the two sorted lists. */
export type StatementHead = Omit<StatementInput, 'approved' | 'blocked'>;

/** PAE(in-toto, payload) in one buffer, the payload (the canonical statement) its tail: manifest/sign.ts signStatementPae. */
export interface StatementPae {
  readonly pae: Uint8Array;
  readonly payload: Uint8Array;
  /** How many subjects and blocked entries it lists. */
  readonly subjects: number;
  readonly blocked: number;
}

const PAE_ROOM = 64; // bytes kept before the payload for the PAE head ("DSSEv1 28 application/vnd.in-toto+json N ")

/** Canonical JSON bytes appended to one growing buffer, with PAE_ROOM bytes free at its start. */
class CanonicalSink {
  #buf: Buffer;
  #end = PAE_ROOM;

  constructor(capacity: number) {
    this.#buf = Buffer.allocUnsafe(PAE_ROOM + Math.max(4096, capacity));
  }

  text(piece: string): void {
    const room = this.#buf.length - this.#end;
    if (piece.length * 3 > room) {
      const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#end + piece.length * 3));
      this.#buf.copy(grown, 0, 0, this.#end);
      this.#buf = grown;
    }
    this.#end += this.#buf.write(piece, this.#end, 'utf8');
  }

  /** The value's RFC 8785 form (manifest's canonicalize: the same checks, the same bytes). */
  value(v: unknown): void {
    this.text(canonicalize(v));
  }

  finish(subjects: number, blocked: number): StatementPae {
    const length = this.#end - PAE_ROOM;
    const head = preAuthEncodingHead(IN_TOTO_PAYLOAD_TYPE, length);
    this.#buf.set(head, PAE_ROOM - head.length);
    const pae = this.#buf.subarray(PAE_ROOM - head.length, this.#end);
    return { pae, payload: this.#buf.subarray(PAE_ROOM, this.#end), subjects, blocked };
  }
}

/** Thrown when a list given as sorted is not: the statement is then built in memory and sorted. */
class NotSorted extends Error {}

/**
 * The canonical statement buildStatement gives for the same input
 * (canonicalize(buildStatement(...)), byte for byte), written straight into
 * a PAE buffer as the files come: no statement object and no string of the
 * whole payload. `approved` must come sorted by path and `blocked` by path
 * (UTF-16 code units, as buildStatement sorts; equal paths in the order
 * given); a list that is not is sorted in memory instead (same bytes).
 * `capacity` is a guess of the payload's size in bytes (it grows as needed).
 */
export function writeStatementPae(head: StatementHead, approved: () => Iterable<ApprovedFile>, blocked: () => Iterable<BlockedFile>, capacity = 0): StatementPae {
  try {
    return writeSorted(head, approved(), blocked(), capacity);
  } catch (error) {
    if (!(error instanceof NotSorted)) throw error;
    const statement = buildStatement({ ...head, approved: [...approved()], blocked: [...blocked()] });
    const sink = new CanonicalSink(capacity);
    sink.value(statement);
    return sink.finish(statement.subject.length, statement.predicate.blocked.length);
  }
}

function writeSorted(head: StatementHead, approved: Iterable<ApprovedFile>, blocked: Iterable<BlockedFile>, capacity: number): StatementPae {
  const skeleton = buildStatement({ ...head, approved: [], blocked: [] });
  const p = skeleton.predicate;
  const sink = new CanonicalSink(capacity);
  // RFC 8785 member order: _type, predicate (allowlist, blocked, engines, expiresAt, issuedAt, kiosk, media, operator, policy, scan), predicateType, subject.
  sink.text(`{"_type":${canonicalize(skeleton._type)},"predicate":{"allowlist":`);
  sink.value(p.allowlist);
  sink.text(',"blocked":[');
  let last: string | null = null;
  let blockedCount = 0;
  for (const b of blocked) {
    if (last !== null && b.path < last) throw new NotSorted();
    if (blockedCount++ > 0) sink.text(',');
    last = b.path;
    sink.text(`{"path":${canonicalize(b.path)},"reasons":${canonicalize(b.reasons)}}`);
  }
  sink.text('],"engines":');
  sink.value(p.engines);
  sink.text(`,"expiresAt":${canonicalize(p.expiresAt)},"issuedAt":${canonicalize(p.issuedAt)},"kiosk":`);
  sink.value(p.kiosk);
  sink.text(',"media":');
  sink.value(p.media);
  sink.text(',"operator":');
  sink.value(p.operator);
  sink.text(',"policy":');
  sink.value(p.policy);
  sink.text(',"scan":');
  sink.value(p.scan);
  sink.text(`},"predicateType":${canonicalize(skeleton.predicateType)},"subject":[`);
  last = null;
  let subjects = 0;
  for (const f of approved) {
    if (last !== null && f.path < last) throw new NotSorted();
    if (subjects++ > 0) sink.text(',');
    last = f.path;
    sink.text(`{"annotations":{"size":${canonicalize(f.size)}},"digest":{"blake3":${canonicalize(f.blake3)},"sha256":${canonicalize(f.sha256)}},"name":${canonicalize(f.path)}}`);
  }
  sink.text(']}');
  return sink.finish(subjects, blockedCount);
}
