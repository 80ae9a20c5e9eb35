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
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  checkLine, clipOrNull, clipText, GENESIS_HASH, hashedRecordText, MAX_RECORD_BYTES, recordSchema,
  type LogEvent, type LogRecord,
} from '../manifest/agent-log.ts';
import { displayText, escapeForDisplay } from '../manifest/index.ts';
import { formatIssues, parse } from '../manifest/schema.ts';
import { AgentError } from './errors.ts';

// The log's format and chain check are the shared contract in manifest/agent-log.ts; this file writes it.
export {
  clipText, csvCell, EXPORT_COLUMNS, exportRow, formatExport, GENESIS_HASH, hashedRecordText, MAX_RECORD_BYTES, OUTCOMES, recordHash,
  recordSchema, verifyLogBytes, type ChainCheck, type ChainProblem, type DriveRef, type LogDigests, type LogEvent, type LogRecord, type Outcome,
} from '../manifest/agent-log.ts';

const LOCK_WAIT_MS = 10_000; // ms to wait for another writer's lock
const LOCK_STALE_MS = 30_000; // ms after which a lock whose owner is gone is taken over

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
