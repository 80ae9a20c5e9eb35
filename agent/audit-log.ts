/**
 * The agent's local decision log: append-only JSON lines, one record per
 * decision, each chained to the one before by SHA-256 (docs/agent.md "Log").
 *
 *   hash = SHA-256( RFC 8785 canonical JSON of the record without `hash` )
 *   prev = the previous record's hash; 64 zeros for the first record
 *
 * Each append takes a lock file (the service and an administrator's CLI may
 * share one log), re-reads the last record so the chain continues from what is
 * really on disk, writes one line and fsyncs it. A record that cannot be
 * written throws LOG_WRITE_FAILED and the caller fails closed. Like USBGuard's
 * audit, a decision is only "allowed" once its record is committed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalize, displayText, escapeForDisplay } from '../manifest/index.ts';
import { csvCell } from '../manifest/csv.ts';
import { integer, nullable, object, oneOf, parse, formatIssues, string } from '../manifest/schema.ts';
import { AgentError } from './errors.ts';

export const GENESIS_HASH = '0'.repeat(64);
export const MAX_RECORD_BYTES = 256 * 1024; // bytes: a longer line is refused, never written
const LOCK_WAIT_MS = 10_000; // ms to wait for another writer's lock
const LOCK_STALE_MS = 30_000; // ms after which a lock whose owner is gone is taken over

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

export interface LogDigests {
  readonly sha256: string;
  readonly blake3: string;
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
const clipOrNull = (text: string | null | undefined): string | null => (text === null || text === undefined ? null : clipText(text));

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
  digests: nullable(object({ sha256: hex64, blake3: hex64, size: integer({ min: 0 }) })),
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
    g === null ? 'null' : `{"blake3":${jsonText(g.blake3)},"sha256":${jsonText(g.sha256)},"size":${jsonInteger(g.size)}}`
  },"drive":${
    v === null
      ? 'null'
      : `{"capacity":${jsonInteger(v.capacity)},"filesystem":${jsonTextOrNull(v.filesystem)},"label":${jsonTextOrNull(v.label)},"mount":${jsonText(v.mount)},"volumeId":${jsonTextOrNull(v.volumeId)}}`
  },"event":${jsonText(body.event)}`;
  const tail = `,"hmi":${jsonText(body.hmi)},"keyId":${jsonTextOrNull(body.keyId)},"manifestDigest":${jsonTextOrNull(body.manifestDigest)},"outcome":${jsonText(body.outcome)},"path":${jsonTextOrNull(body.path)},"prev":${jsonText(body.prev)},"reason":${jsonText(body.reason)},"seq":${jsonInteger(body.seq)},"time":${jsonText(body.time)}}`;
  const hash = createHash('sha256').update(head + tail).digest('hex');
  return { hash, text: `${head},"hash":"${hash}"${tail}` };
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export interface AuditLogOptions {
  /** The HMI's name in every record (default: the computer name). */
  readonly hmi: string;
  readonly clock?: () => Date;
}

export interface AuditSink {
  append(event: LogEvent): LogRecord;
  /** All of `events` or none, durable together (a group commit); sinks without it get one append per event. */
  appendMany?(events: readonly LogEvent[]): LogRecord[];
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** An append-only, hash-chained JSON-lines log file. */
export class AuditLog implements AuditSink {
  readonly path: string;
  private readonly hmi: string;
  private readonly clock: () => Date;

  constructor(path: string, options: AuditLogOptions) {
    this.path = path;
    this.hmi = escapeForDisplay(options.hmi).slice(0, 256) || 'unknown';
    this.clock = options.clock ?? (() => new Date());
  }

  /** Appends one record and fsyncs it; throws LOG_WRITE_FAILED or LOG_CORRUPT, never loses a record silently. */
  append(event: LogEvent): LogRecord {
    return this.appendMany([event])[0]!;
  }

  /**
   * Appends records as one group: one lock, one write, one fsync (a group
   * commit, so an import of many files does not pay an fsync per file). All
   * or nothing: if the write or the fsync fails, the file is cut back to its
   * old length so the chain stays whole, and LOG_WRITE_FAILED is thrown.
   */
  appendMany(events: readonly LogEvent[]): LogRecord[] {
    if (events.length === 0) return [];
    const unlock = this.lock();
    try {
      let fd: number;
      try {
        fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | (constants.O_NONBLOCK ?? 0), 0o600);
      } catch (cause) {
        throw new AgentError('LOG_WRITE_FAILED', `${this.path}: cannot open the log (${(cause as Error).message}): the operation was stopped`, { cause });
      }
      try {
        if (!fstatSync(fd).isFile()) throw new AgentError('LOG_WRITE_FAILED', `${this.path}: the log is not a regular file (a folder, pipe or device): the operation was stopped; name a log file with --log`);
        let last = readLastRecord(fd, this.path);
        const records: LogRecord[] = [];
        const lines: Buffer[] = [];
        for (const event of events) {
          const { record, text } = this.makeRecord(event, last);
          const line = Buffer.from(`${text}\n`, 'utf8');
          if (line.length > MAX_RECORD_BYTES) throw new AgentError('LOG_WRITE_FAILED', `a log record of ${line.length} bytes exceeds ${MAX_RECORD_BYTES}`);
          records.push(record);
          lines.push(line);
          last = record;
        }
        const bytes = Buffer.concat(lines);
        const before = fstatSync(fd).size;
        try {
          let done = 0;
          while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
          fsyncSync(fd);
        } catch (cause) {
          try {
            ftruncateSync(fd, before); // no half-written group: the chain ends where it ended before
          } catch {
            // the next append finds the torn line and refuses with LOG_CORRUPT rather than extend it
          }
          throw new AgentError('LOG_WRITE_FAILED', `${this.path}: writing a record failed (${(cause as Error).message}): the operation was stopped`, { cause });
        }
        return records;
      } finally {
        closeSync(fd);
      }
    } finally {
      unlock();
    }
  }

  /** A record and its line (canonical JSON), continuing the chain after `last`. */
  private makeRecord(event: LogEvent, last: LogRecord | null): { record: LogRecord; text: string } {
    const body: Omit<LogRecord, 'hash'> = {
      seq: (last?.seq ?? 0) + 1,
      time: this.clock().toISOString(),
      prev: last?.hash ?? GENESIS_HASH,
      event: event.event,
      hmi: this.hmi,
      manifestDigest: event.manifestDigest ?? null,
      keyId: event.keyId ?? null,
      drive: event.drive
        ? { ...event.drive, mount: clipText(event.drive.mount), label: clipOrNull(event.drive.label), volumeId: clipOrNull(event.drive.volumeId), filesystem: clipOrNull(event.drive.filesystem) }
        : null,
      path: clipOrNull(event.path),
      destination: clipOrNull(event.destination),
      digests: event.digests ?? null,
      outcome: event.outcome,
      code: event.code,
      reason: clipText(displayText(event.reason)),
    };
    const { hash, text } = hashedRecordText(body);
    const record: LogRecord = { ...body, hash };
    const checked = parse(recordSchema, record);
    if (!checked.ok) throw new AgentError('LOG_WRITE_FAILED', `refusing to write a malformed log record: ${formatIssues(checked.issues)}`);
    return { record, text };
  }

  /** A lock file beside the log, created exclusively; a lock left by a dead process is taken over. */
  private lock(): () => void {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(lockPath, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return () => {
          try {
            unlinkSync(lockPath);
          } catch {
            // already gone: nothing to release
          }
        };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') {
          throw new AgentError('LOG_WRITE_FAILED', `${this.path}: the log's folder ${dirname(this.path)} does not exist: create it, or name a log in an existing folder with --log`, { cause: error });
        }
        if (code !== 'EEXIST') {
          throw new AgentError('LOG_WRITE_FAILED', `${lockPath}: cannot take the log lock (${(error as Error).message}): check that this account may write in the log's folder`, { cause: error });
        }
      }
      if (lockIsStale(lockPath)) {
        try {
          unlinkSync(lockPath);
        } catch {
          // another process took it over first
        }
        continue;
      }
      if (Date.now() > deadline) throw new AgentError('LOG_WRITE_FAILED', `${lockPath}: the log stayed locked for ${LOCK_WAIT_MS} ms`);
      sleepSync(20);
    }
  }
}

function lockIsStale(lockPath: string): boolean {
  try {
    const age = Date.now() - statSync(lockPath).mtimeMs;
    if (age > LOCK_STALE_MS) return true;
    const fd = openSync(lockPath, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)); // a pipe planted as the lock must not block
    const buffer = Buffer.alloc(32);
    const n = readSync(fd, buffer, 0, 32, 0);
    closeSync(fd);
    const pid = Number(buffer.subarray(0, n).toString());
    if (!Number.isSafeInteger(pid) || pid <= 0) return age > 1000;
    try {
      process.kill(pid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false;
  }
}

/** Reads and checks the last record so an append continues the chain; null for an empty log. */
function readLastRecord(fd: number, path: string): LogRecord | null {
  const size = fstatSync(fd).size;
  if (size === 0) return null;
  const tail = Buffer.alloc(1);
  readSync(fd, tail, 0, 1, size - 1);
  if (tail[0] !== 0x0a) throw new AgentError('LOG_CORRUPT', `${path}: the last record is torn (no line end): run "portcullis-agent log verify", keep the file as evidence and start a new log`);
  // Read backwards in chunks until the line end before the last line.
  let start = size - 1;
  let chunks: Buffer[] = [];
  const chunkSize = 64 * 1024;
  for (;;) {
    if (start === 0) break;
    const from = Math.max(0, start - chunkSize);
    const chunk = Buffer.alloc(start - from);
    readSync(fd, chunk, 0, chunk.length, from);
    const nl = chunk.lastIndexOf(0x0a);
    if (nl !== -1) {
      chunks = [chunk.subarray(nl + 1), ...chunks];
      break;
    }
    chunks = [chunk, ...chunks];
    start = from;
    if (size - start > MAX_RECORD_BYTES) throw new AgentError('LOG_CORRUPT', `${path}: the last line is longer than any record can be`);
  }
  const problem = checkLine(Buffer.concat(chunks));
  if (typeof problem === 'string') throw new AgentError('LOG_CORRUPT', `${path}: the last record does not verify (${problem}): run "portcullis-agent log verify"`);
  return problem;
}

const EDITED_TEXT = 'its hash does not match its content';
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
function checkLine(bytes: Uint8Array): LogRecord | string {
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
