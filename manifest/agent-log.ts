/**
 * The HMI agent's log format, shared by the agent (which writes it) and the
 * kiosk's review (which imports it): one JSON record per line, each line the
 * RFC 8785 canonical JSON of its record, hash-chained (docs/agent.md, "The
 * log"). No I/O: bytes in, records and checks out.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from './canonical-json.ts';
import { sameHex } from './constant-time.ts';
import { csvCell } from './csv.ts';
import { formatIssues, integer, nullable, object, oneOf, parse, string } from './schema.ts';

export const GENESIS_HASH = '0'.repeat(64);
export const MAX_RECORD_BYTES = 256 * 1024; // bytes: a longer line is refused, never written

export const OUTCOMES = ['allowed', 'refused', 'changed', 'info', 'failed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface DriveRef {
  /** Where the drive was read from (drive letter or mount folder), escaped. */
  readonly mount: string;
  readonly filesystem: string | null;
  readonly volumeId: string | null;
  readonly label: string | null;
  readonly capacity: number | null; // bytes
}

/** The digests of the bytes the agent read; a digest its policy did not compute (did not check) is null. */
export interface LogDigests {
  readonly sha256: string | null;
  readonly blake3: string | null;
  readonly size: number; // bytes
}

/** What a caller records; the log adds seq, time, prev, hmi and hash. */
export interface LogEvent {
  readonly event: string;
  readonly outcome: Outcome;
  readonly code: string;
  readonly reason: string;
  readonly manifestDigest?: string | null;
  readonly keyId?: string | null;
  readonly drive?: DriveRef | null;
  /** A path on the drive, already escaped for display. */
  readonly path?: string | null;
  /** Where the file was written, escaped for display. */
  readonly destination?: string | null;
  readonly digests?: LogDigests | null;
}

const hex64 = string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' });
const MAX_TEXT = 8192; // UTF-16 code units per text field; longer drive-supplied text is clipped, never refused
const shortText = string({ max: MAX_TEXT });

/** Clips drive-supplied text so a hostile name can never make a record unwritable. */
export function clipText(text: string): string {
  if (text.length <= MAX_TEXT) return text;
  const note = ` ...(clipped, ${text.length} characters)`;
  let head = text.slice(0, MAX_TEXT - note.length);
  if (/[\ud800-\udbff]$/u.test(head)) head = head.slice(0, -1);
  return head + note;
}
export const clipOrNull = (text: string | null | undefined): string | null => (text === null || text === undefined ? null : clipText(text));

export const recordSchema = object({
  seq: integer({ min: 1 }),
  time: string({ pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, patternMessage: 'expected an ISO 8601 UTC time with milliseconds' }),
  prev: hex64,
  event: string({ min: 1, max: 64, pattern: /^[a-z][a-z0-9.-]*$/, patternMessage: 'expected an event name like file.imported' }),
  hmi: string({ min: 1, max: 256 }),
  manifestDigest: nullable(string({ pattern: /^sha256:[0-9a-f]{64}$/, patternMessage: 'expected sha256: and 64 hex characters' })),
  keyId: nullable(hex64),
  drive: nullable(
    object({
      mount: shortText,
      filesystem: nullable(shortText),
      volumeId: nullable(shortText),
      label: nullable(shortText),
      capacity: nullable(integer({ min: 0 })),
    }),
  ),
  path: nullable(shortText),
  destination: nullable(shortText),
  digests: nullable(object({ sha256: nullable(hex64), blake3: nullable(hex64), size: integer({ min: 0 }) })),
  outcome: oneOf(OUTCOMES),
  code: string({ min: 1, max: 64, pattern: /^[A-Z][A-Z0-9_]*$/, patternMessage: 'expected an upper-case code' }),
  reason: shortText,
  hash: hex64,
});

export type LogRecord = {
  seq: number;
  time: string;
  prev: string;
  event: string;
  hmi: string;
  manifestDigest: string | null;
  keyId: string | null;
  drive: DriveRef | null;
  path: string | null;
  destination: string | null;
  digests: LogDigests | null;
  outcome: Outcome;
  code: string;
  reason: string;
  hash: string;
};

/** The record hash: SHA-256 over the canonical JSON of every field but `hash`. */
export function recordHash(record: Omit<LogRecord, 'hash'> | LogRecord): string {
  const body: Record<string, unknown> = { ...record };
  delete body.hash;
  return createHash('sha256').update(canonicalize(body)).digest('hex');
}

/** A JSON string as canonical JSON writes it (RFC 8785: JSON.stringify's escaping; well-formed Unicode only). */
function jsonText(value: string): string {
  if (!value.isWellFormed()) throw new TypeError('canonical JSON strings must be well-formed Unicode');
  return JSON.stringify(value);
}
const jsonTextOrNull = (value: string | null): string => (value === null ? 'null' : jsonText(value));
function jsonInteger(value: number | null): string {
  if (value === null) return 'null';
  if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds safe integers only, got ${value}`);
  return Object.is(value, -0) ? '0' : String(value);
}

/**
 * The record hash and the record's canonical JSON line, written field by
 * field in canonical (sorted) key order: the generic canonicalize() was most
 * of the cost of logging an import of many small files. Equal to
 * canonicalize(body) for the hash and canonicalize({ ...body, hash }) for the
 * line (tests compare them on hostile values).
 */
export function hashedRecordText(body: Omit<LogRecord, 'hash'>): { hash: string; text: string } {
  const { digests: g, drive: v } = body;
  const head = `{"code":${jsonText(body.code)},"destination":${jsonTextOrNull(body.destination)},"digests":${
    g === null ? 'null' : `{"blake3":${jsonTextOrNull(g.blake3)},"sha256":${jsonTextOrNull(g.sha256)},"size":${jsonInteger(g.size)}}`
  },"drive":${
    v === null
      ? 'null'
      : `{"capacity":${jsonInteger(v.capacity)},"filesystem":${jsonTextOrNull(v.filesystem)},"label":${jsonTextOrNull(v.label)},"mount":${jsonText(v.mount)},"volumeId":${jsonTextOrNull(v.volumeId)}}`
  },"event":${jsonText(body.event)}`;
  const tail = `,"hmi":${jsonText(body.hmi)},"keyId":${jsonTextOrNull(body.keyId)},"manifestDigest":${jsonTextOrNull(body.manifestDigest)},"outcome":${jsonText(body.outcome)},"path":${jsonTextOrNull(body.path)},"prev":${jsonText(body.prev)},"reason":${jsonText(body.reason)},"seq":${jsonInteger(body.seq)},"time":${jsonText(body.time)}}`;
  const hash = createHash('sha256').update(head + tail).digest('hex');
  return { hash, text: `${head},"hash":"${hash}"${tail}` };
}

export const EDITED_TEXT = 'its hash does not match its content';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks one line's bytes: UTF-8, JSON, the schema, its own hash, and that
 * the bytes are exactly the record's canonical JSON (RFC 8785), as every
 * line is written. A line that parses to a record whose hash matches but is
 * spelled differently (a duplicate member, whose last value JSON.parse keeps
 * and a reader or grep may not; spaces; another member order; escapes; bytes
 * that are not UTF-8 but decode leniently to the same text) is not what the
 * agent wrote. Returns the record or what is wrong.
 */
export function checkLine(bytes: Uint8Array): LogRecord | string {
  let line: string;
  try {
    line = strictUtf8.decode(bytes);
  } catch {
    return 'not valid UTF-8';
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  const checked = parse(recordSchema, value);
  if (!checked.ok) return formatIssues(checked.issues);
  const record = checked.value as LogRecord;
  const { hash, ...body } = record;
  let canonical: { hash: string; text: string };
  try {
    canonical = hashedRecordText(body); // equal to canonicalize() of the record, field by field
  } catch {
    return 'it holds a value canonical JSON cannot encode';
  }
  if (!sameHex(canonical.hash, hash)) return EDITED_TEXT;
  if (canonical.text !== line) {
    return 'not in canonical form (a duplicate or reordered member, spaces or escapes that the agent never writes): it was written by something else';
  }
  return record;
}

export type ChainProblem = 'TRUNCATED' | 'MALFORMED' | 'EDITED' | 'DELETED' | 'REORDERED' | 'CHAIN_BROKEN';

export type ChainCheck =
  | { readonly ok: true; readonly records: number; readonly head: { seq: number; hash: string } | null; readonly entries: LogRecord[] }
  | {
      readonly ok: false;
      readonly records: number;
      /** 1-based line number of the first broken record. */
      readonly line: number;
      readonly seq: number | null;
      readonly problem: ChainProblem;
      readonly detail: string;
    };

/**
 * Checks a whole log: every line parses, every hash matches its record,
 * seq counts up by one from 1 and every prev is the previous hash. Names the
 * first broken record. Records deleted from the end cannot be seen from the
 * file alone: compare the head with one exported earlier (docs/agent.md).
 */
export function verifyLogBytes(bytes: Uint8Array): ChainCheck {
  if (bytes.length === 0) return { ok: true, records: 0, head: null, entries: [] };
  const endsClean = bytes[bytes.length - 1] === 0x0a;
  // Split the bytes, not decoded text: each line is checked byte for byte against its canonical form.
  const lines: Buffer[] = [];
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, endsClean ? bytes.length - 1 : bytes.length);
  for (let start = 0; ;) {
    const end = all.indexOf(0x0a, start);
    lines.push(all.subarray(start, end === -1 ? all.length : end));
    if (end === -1) break;
    start = end + 1;
  }
  const parsed = lines.map((line) => checkLine(line));
  const seqs = parsed.map((p, i) => (typeof p === 'string' ? seqOf(lines[i]!.toString('utf8')) : p.seq));
  const entries: LogRecord[] = [];
  let prevHash = GENESIS_HASH;
  let expected = 1;
  for (let i = 0; i < parsed.length; i++) {
    const lineNo = i + 1;
    const entry = parsed[i]!;
    if (i === parsed.length - 1 && !endsClean) {
      return { ok: false, records: i, line: lineNo, seq: seqs[i] ?? null, problem: 'TRUNCATED', detail: `line ${lineNo} is cut off (no line end): the log was truncated or a write was interrupted` };
    }
    if (typeof entry === 'string') {
      const edited = entry === EDITED_TEXT;
      return { ok: false, records: i, line: lineNo, seq: seqs[i] ?? null, problem: edited ? 'EDITED' : 'MALFORMED', detail: `line ${lineNo}${seqs[i] ? ` (seq ${seqs[i]})` : ''}: ${edited ? 'the record was changed after it was written' : entry}` };
    }
    if (entry.seq !== expected) {
      const laterHasExpected = seqs.slice(i + 1).includes(expected);
      if (entry.seq > expected && !laterHasExpected) {
        const missing = entry.seq - expected === 1 ? `record ${expected} is` : `records ${expected} to ${entry.seq - 1} are`;
        return { ok: false, records: i, line: lineNo, seq: entry.seq, problem: 'DELETED', detail: `line ${lineNo}: ${missing} missing before seq ${entry.seq}` };
      }
      return { ok: false, records: i, line: lineNo, seq: entry.seq, problem: 'REORDERED', detail: `line ${lineNo}: found seq ${entry.seq} where seq ${expected} belongs (records moved or repeated)` };
    }
    if (!sameHex(entry.prev, prevHash)) {
      return { ok: false, records: i, line: lineNo, seq: entry.seq, problem: 'CHAIN_BROKEN', detail: `line ${lineNo} (seq ${entry.seq}) does not follow the record before it: an earlier record was replaced` };
    }
    entries.push(entry);
    prevHash = entry.hash;
    expected++;
  }
  const last = entries.at(-1);
  return { ok: true, records: entries.length, head: last ? { seq: last.seq, hash: last.hash } : null, entries };
}

function seqOf(line: string): number | null {
  try {
    const value = JSON.parse(line) as { seq?: unknown };
    return typeof value.seq === 'number' && Number.isSafeInteger(value.seq) ? value.seq : null;
  } catch {
    return null;
  }
}

/** Columns of `log export`, in order. */
export const EXPORT_COLUMNS = [
  'seq', 'time', 'hmi', 'event', 'outcome', 'code', 'reason', 'manifestDigest', 'keyId',
  'driveMount', 'driveFilesystem', 'driveVolumeId', 'driveLabel', 'driveCapacity',
  'path', 'destination', 'sha256', 'blake3', 'size', 'hash',
] as const;

type ExportRow = Record<(typeof EXPORT_COLUMNS)[number], string | number | null>;

export function exportRow(r: LogRecord): ExportRow {
  return {
    seq: r.seq, time: r.time, hmi: r.hmi, event: r.event, outcome: r.outcome, code: r.code, reason: r.reason,
    manifestDigest: r.manifestDigest, keyId: r.keyId,
    driveMount: r.drive?.mount ?? null, driveFilesystem: r.drive?.filesystem ?? null, driveVolumeId: r.drive?.volumeId ?? null,
    driveLabel: r.drive?.label ?? null, driveCapacity: r.drive?.capacity ?? null,
    path: r.path, destination: r.destination,
    sha256: r.digests?.sha256 ?? null, blake3: r.digests?.blake3 ?? null, size: r.digests?.size ?? null,
    hash: r.hash,
  };
}

/** One CSV cell: the formula-safe writer both programs share (manifest/csv.ts). */
export { csvCell };

export function formatExport(records: readonly LogRecord[], format: 'json' | 'csv'): string {
  const rows = records.map(exportRow);
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  const lines = [EXPORT_COLUMNS.join(',')];
  for (const row of rows) lines.push(EXPORT_COLUMNS.map((c) => csvCell(row[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
