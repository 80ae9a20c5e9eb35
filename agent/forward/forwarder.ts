/**
 * The agent's forwarding of its log to a syslog receiver (the central
 * review over mutual TLS, or a local collector over plain TCP): every record
 * as one RFC 5424 message (manifest/syslog.ts) whose MSGID says what happened
 * and whose MSG is the record's line, byte for byte, so the receiver can
 * check its hash and its link to the record before.
 *
 * The log is the spool: it already holds every record durably, so nothing is
 * copied. A small state file says how far the log has been delivered (the
 * chain, by the hash of its record 1; the last seq; the byte offset after
 * it). A batch is read after that offset, sent, the connection half-closed,
 * and the state moves only when the receiver has closed its side cleanly,
 * which it does after storing the batch. A receiver that is away, a broken
 * connection, or a state file that cannot be written (a full disk) leaves the
 * state where it was: the batch is sent again later and the receiver counts
 * what it already has as duplicates. A new log (a reinstall, or a log begun
 * again after LOG_CORRUPT) has another record 1: it is forwarded from its
 * start as a new chain.
 */
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createHash } from 'node:crypto';
import { agentMessageId, agentSeverity, DEFAULT_SD_ID, formatSyslog, formatSyslogRecord, frameOctetCounting, SEVERITY } from '../../manifest/syslog.ts';
import type { Outcome } from '../../manifest/agent-log.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import { PortcullisError } from '../../manifest/errors.ts';
import { readLocalFile } from '../local-file.ts';

/** FORWARD_FAILED: a batch was not delivered (it stays in the log); FORWARD_CONFIG_INVALID: the forward settings are unusable. */
export type ForwardErrorCode = 'FORWARD_FAILED' | 'FORWARD_CONFIG_INVALID';
export class ForwardError extends PortcullisError<ForwardErrorCode> {}

export const FORWARD_BATCH = 2_000; // records per connection
const MAX_BATCH_BYTES = 16 * 1024 * 1024; // bytes of log read per batch
const CONNECT_TIMEOUT_MS = 10_000; // ms without progress before a connection is given up

export interface ForwardTarget {
  readonly host: string;
  readonly port: number;
  readonly transport: 'tcp' | 'tls';
  /** TLS: the CA that issued the receiver's certificate, this HMI's client certificate and key (PEM), the name to check. */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
  readonly timeoutMs?: number;
  /**
   * central (default): the central review answers a stored batch with `ACK n` (n: the messages it read) before it
   * closes; nothing else counts as delivered (under TLS 1.3 a refused client certificate can still look like a clean
   * close). syslog: a plain collector (rsyslog) that answers nothing: its clean close is all there is.
   */
  readonly protocol?: 'central' | 'syslog';
}

export interface ForwardState {
  readonly chain: string;
  readonly seq: number;
  readonly offset: number; // bytes of the log delivered
}

export interface ForwarderOptions {
  readonly logPath: string;
  readonly statePath: string;
  readonly hmi: string;
  readonly target: ForwardTarget;
  readonly sdId?: string;
  /** What the heartbeat reports besides the log's head (the trust store's sequence and keys). */
  readonly status?: () => Readonly<Record<string, unknown>>;
  readonly clock?: () => Date;
  /** Writes the state file (tests put a full disk here). */
  readonly writeState?: (path: string, data: string) => void;
}

export interface ForwardResult {
  readonly sent: number;
  /** Records in the log not yet delivered after this round. */
  readonly pending: number;
  readonly state: ForwardState;
}

const STATE_MAX_BYTES = 4096;
const HEX64 = /^[0-9a-f]{64}$/;

function readState(path: string): ForwardState | null {
  let text: string;
  try {
    text = readLocalFile(path, STATE_MAX_BYTES).toString('utf8');
  } catch {
    return null; // none yet, or unreadable: start from the log's beginning; the receiver drops what it has
  }
  try {
    const v = JSON.parse(text) as Partial<ForwardState>;
    if (typeof v.chain === 'string' && HEX64.test(v.chain) && Number.isSafeInteger(v.seq) && Number.isSafeInteger(v.offset) && v.seq! >= 0 && v.offset! >= 0) {
      return { chain: v.chain, seq: v.seq!, offset: v.offset! };
    }
  } catch {
    // a damaged state file: start again from the beginning
  }
  return null;
}

/** The chain's name: the hash of record 1 (or of its bytes, when record 1 is not a record). */
function chainOf(firstLine: Buffer): string {
  try {
    const hash = (JSON.parse(firstLine.toString('utf8')) as { hash?: unknown }).hash;
    if (typeof hash === 'string' && HEX64.test(hash)) return hash;
  } catch {
    // not JSON: named by its bytes, and the receiver refuses it by name
  }
  return createHash('sha256').update(firstLine).digest('hex');
}

function readBytes(fd: number, from: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, from + done);
    if (n === 0) break;
    done += n;
  }
  return buffer.subarray(0, done);
}

interface Line {
  readonly bytes: Buffer;
  readonly end: number; // offset after its line end
}

/** Whole lines of the log from `offset`, at most `max` of them; also the first line (the chain's record 1). */
function readLines(path: string, offset: number, max: number): { first: Buffer | null; lines: Line[]; size: number; more: boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { first: null, lines: [], size: 0, more: false };
    throw new ForwardError('FORWARD_FAILED', `${path}: cannot read the log to forward it (${(cause as Error).message})`, { cause });
  }
  try {
    const size = fstatSync(fd).size;
    const head = readBytes(fd, 0, Math.min(size, 512 * 1024));
    const firstEnd = head.indexOf(0x0a);
    const first = firstEnd === -1 ? null : head.subarray(0, firstEnd);
    if (offset > size) return { first, lines: [], size, more: false };
    const chunk = readBytes(fd, offset, Math.min(size - offset, MAX_BATCH_BYTES));
    const lines: Line[] = [];
    let start = 0;
    while (lines.length < max) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break; // a line still being written, or the batch's byte limit
      lines.push({ bytes: chunk.subarray(start, nl), end: offset + nl + 1 });
      start = nl + 1;
    }
    return { first, lines, size, more: (lines.at(-1)?.end ?? offset) < size };
  } finally {
    closeSync(fd);
  }
}

/** One record line as a message; a line that is not a record still goes, under the seq it should have, for the receiver to refuse by name. */
function messageFor(line: Buffer, expectedSeq: number, chain: string, hmi: string, sdId: string, now: Date): Buffer {
  let r: { seq?: unknown; time?: unknown; hash?: unknown; event?: unknown; outcome?: unknown; code?: unknown; manifestDigest?: unknown; path?: unknown } = {};
  try {
    r = JSON.parse(line.toString('utf8')) as typeof r;
  } catch {
    // sent as it is
  }
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const event = str(r.event) ?? 'unknown';
  const outcome = (str(r.outcome) ?? 'failed') as Outcome;
  const time = str(r.time) ?? now.toISOString();
  return formatSyslogRecord({
    time: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(time) ? time : now.toISOString(), hostname: hmi, appName: 'portcullis-agent',
    msgId: agentMessageId({ event, outcome }), severity: agentSeverity({ event, outcome }),
    params: { seq: typeof r.seq === 'number' ? r.seq : expectedSeq, hash: str(r.hash), chain, event, outcome, code: str(r.code), manifestDigest: str(r.manifestDigest), path: str(r.path) },
  }, line, { sdId });
}

/** One connection: write every frame, half-close, and wait for the receiver to close its side (its acknowledgement). */
export async function deliver(target: ForwardTarget, frames: readonly Buffer[]): Promise<void> {
  const timeout = target.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const where = `${target.host}:${target.port}`;
  let socket: Socket;
  try {
    socket = await new Promise<Socket>((resolve, reject) => {
      const s: Socket = target.transport === 'tls'
        ? tlsConnect({ host: target.host, port: target.port, ...target.tls, rejectUnauthorized: true }, () => resolve(s))
        : netConnect({ host: target.host, port: target.port }, () => resolve(s));
      s.setTimeout(timeout, () => s.destroy(new Error(`no progress for ${timeout} ms`)));
      s.once('error', reject);
    });
  } catch (cause) {
    throw new ForwardError('FORWARD_FAILED', `${where}: cannot connect (${(cause as Error).message}): the records stay in the log and go later`, { cause });
  }
  try {
    const answer: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      if (answer.reduce((n, b) => n + b.length, 0) < 64) answer.push(chunk);
    });
    const closed = once(socket, 'close');
    const failed = once(socket, 'error');
    socket.end(Buffer.concat(frames));
    const [hadError] = (await Promise.race([closed, failed.then(([e]) => Promise.reject(e instanceof Error ? e : new Error(String(e))))])) as [boolean];
    if (hadError) throw new Error('the connection closed with an error');
    const said = Buffer.concat(answer).toString('latin1');
    if ((target.protocol ?? 'central') === 'central' && said !== `ACK ${frames.length}\n`) {
      throw new Error(said === '' ? 'the receiver closed without acknowledging the batch' : `the receiver answered ${JSON.stringify(said.slice(0, 40))}`);
    }
  } catch (cause) {
    socket.destroy();
    throw new ForwardError('FORWARD_FAILED', `${where}: the batch was not acknowledged (${(cause as Error).message}): it is sent again`, { cause });
  }
}

/** Forwards what the log holds past the state, batch by batch, then a heartbeat. Throws FORWARD_FAILED when a batch did not go (the state stays). */
export async function forwardLog(options: ForwarderOptions): Promise<ForwardResult> {
  const clock = options.clock ?? (() => new Date());
  const sdId = options.sdId ?? DEFAULT_SD_ID;
  const write = options.writeState ?? ((path: string, data: string) => writeFileAtomic(path, data));
  let state = readState(options.statePath);
  let sent = 0;
  for (;;) {
    const peek = readLines(options.logPath, 0, 0);
    if (peek.first === null) return { sent, pending: 0, state: state ?? { chain: '0'.repeat(64), seq: 0, offset: 0 } };
    const chain = chainOf(peek.first);
    // Another log than the one the state is about, a shorter one, or one whose delivered part no longer ends
    // where it did (edited in place): start at its beginning; the receiver keeps what it has once and shows what changed.
    if (!state || state.chain !== chain || state.offset > peek.size || !endsLine(options.logPath, state.offset)) state = { chain, seq: 0, offset: 0 };
    const { lines, more } = readLines(options.logPath, state.offset, FORWARD_BATCH);
    const heartbeat = !more ? [heartbeatFrame(options, chain, state.seq + lines.length, lines.at(-1)?.bytes ?? null, sdId, clock())] : [];
    if (lines.length === 0) {
      await deliver(options.target, heartbeat);
      return { sent, pending: 0, state };
    }
    const frames = lines.map((line, i) => frameOctetCounting(messageFor(line.bytes, state!.seq + i + 1, chain, options.hmi, sdId, clock())));
    await deliver(options.target, [...frames, ...heartbeat]);
    const next: ForwardState = { chain, seq: state.seq + lines.length, offset: lines.at(-1)!.end };
    try {
      write(options.statePath, `${JSON.stringify(next)}\n`);
    } catch (cause) {
      throw new ForwardError('FORWARD_FAILED', `${options.statePath}: the forwarding state cannot be written (${(cause as Error).message}): the batch was delivered and is sent again later; the receiver keeps it once`, { cause });
    }
    state = next;
    sent += lines.length;
    if (!more) return { sent, pending: 0, state };
  }
}

/** Whether the byte before `offset` is a line end (or offset is 0). */
function endsLine(path: string, offset: number): boolean {
  if (offset === 0) return true;
  try {
    const fd = openSync(path, 'r');
    try {
      return readBytes(fd, offset - 1, 1)[0] === 0x0a;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function heartbeatFrame(options: ForwarderOptions, chain: string, headSeq: number, lastLine: Buffer | null, sdId: string, now: Date): Buffer {
  let headHash: string | null;
  try {
    const hash = lastLine ? (JSON.parse(lastLine.toString('utf8')) as { hash?: unknown }).hash : null;
    headHash = typeof hash === 'string' ? hash : null;
  } catch {
    headHash = null;
  }
  const status = options.status?.() ?? {};
  return frameOctetCounting(formatSyslog({
    time: now.toISOString(), hostname: options.hmi, appName: 'portcullis-agent', msgId: 'HEARTBEAT', severity: SEVERITY.info,
    params: { chain, headSeq, headHash: headHash ?? undefined },
    text: JSON.stringify(status),
  }, { sdId }));
}
