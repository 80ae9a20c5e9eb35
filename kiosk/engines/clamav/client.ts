/**
 * A clamd client over a Unix socket. Each command here uses its own connection
 * (clamd answers a z-command with one NUL-terminated line, then closes); many
 * SCANs share sessions through `sessionPool()` (session.ts).
 * Fails closed: only clamd's exact `stream: OK` answer comes back as clean;
 * everything else is a detection or a `ScannerError`.
 */
import { createConnection, type Socket } from 'node:net';
import { ScannerError } from './errors.ts';
import { ClamdSessionPool } from './session.ts';
import {
  END_OF_STREAM,
  encodeChunkHeader,
  encodeCommand,
  parsePingAnswer,
  parseScanAnswer,
  parseVersionAnswer,
  quoteAnswer,
  type ClamdVersion,
  type ScanResult,
} from './protocol.ts';

export { classifyClamdSignature, type ClamdReason, type ClamdVersion, type ScanResult } from './protocol.ts';

export interface ClamdClientOptions {
  /** Absolute path of clamd's LocalSocket. */
  socketPath: string;
  /** ms: clamd must accept the connection, take data and answer short commands within this. */
  idleTimeoutMs?: number;
  /** ms: clamd must answer INSTREAM within this after the end of the stream (it scans meanwhile). */
  scanTimeoutMs?: number;
  /** bytes: clamd's StreamMaxLength when known; longer streams fail here before clamd refuses them. */
  maxStreamLength?: number | null;
  /** bytes: largest INSTREAM chunk sent; larger input chunks are split. */
  maxChunkLength?: number;
}

export const CLAMD_CLIENT_DEFAULTS = {
  idleTimeoutMs: 30_000, // ms
  scanTimeoutMs: 150_000, // ms: clamd's default MaxScanTime (120 s) plus a margin
  maxStreamLength: null, // unknown: clamd enforces its own StreamMaxLength
  maxChunkLength: 1024 * 1024, // bytes
} as const satisfies Required<Omit<ClamdClientOptions, 'socketPath'>>;

// bytes: no clamd answer is this long; a peer that sends more without a NUL is not clamd.
const MAX_ANSWER_LENGTH = 4096;

type Command = 'PING' | 'VERSION' | 'INSTREAM';

export class ClamdClient {
  readonly socketPath: string;
  readonly #idleTimeoutMs: number;
  readonly #scanTimeoutMs: number;
  readonly #maxStreamLength: number | null;
  readonly #maxChunkLength: number;

  constructor(options: ClamdClientOptions) {
    const merged = { ...CLAMD_CLIENT_DEFAULTS, ...definedOnly(options) };
    assertPositiveInteger('idleTimeoutMs', merged.idleTimeoutMs);
    assertPositiveInteger('scanTimeoutMs', merged.scanTimeoutMs);
    assertPositiveInteger('maxChunkLength', merged.maxChunkLength);
    if (merged.maxStreamLength !== null) assertPositiveInteger('maxStreamLength', merged.maxStreamLength);
    if (typeof options.socketPath !== 'string' || options.socketPath.length === 0) {
      throw new ScannerError('SCANNER_CONFIG', 'clamd client: socketPath must be a non-empty path');
    }
    this.socketPath = options.socketPath;
    this.#idleTimeoutMs = merged.idleTimeoutMs;
    this.#scanTimeoutMs = merged.scanTimeoutMs;
    this.#maxStreamLength = merged.maxStreamLength;
    this.#maxChunkLength = merged.maxChunkLength;
  }

  /** Resolves when clamd answers PING with PONG. */
  async ping(signal?: AbortSignal): Promise<void> {
    parsePingAnswer(await this.#shortCommand('PING', signal));
  }

  /** clamd's VERSION answer, parsed. */
  async version(signal?: AbortSignal): Promise<ClamdVersion> {
    return parseVersionAnswer(await this.#shortCommand('VERSION', signal));
  }

  /**
   * Scans the bytes of `chunks` with INSTREAM, pulling the next chunk only once
   * the previous one is in the socket (backpressure; chunks are not retained).
   * Errors thrown by `chunks` propagate unchanged.
   */
  async scanStream(chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ScanResult> {
    const connection = await this.#connect('INSTREAM', signal);
    const iterator = chunks[Symbol.asyncIterator]();
    let sourceEnded = false;
    let streamEnded = false; // the zero-length chunk is in the socket
    try {
      await connection.send([encodeCommand('INSTREAM')]);
      let streamed = 0; // bytes
      while (!connection.settled) {
        const next = await connection.whileOpen(iterator.next());
        if (next === undefined) break; // clamd answered (or failed) before the stream ended
        if (next.done === true) {
          sourceEnded = true;
          break;
        }
        const chunk: unknown = next.value;
        if (!(chunk instanceof Uint8Array)) throw new TypeError('scanStream: every chunk must be a Uint8Array');
        // clamd INSTREAM: a zero-length chunk ends the stream, so an empty input chunk is never sent.
        if (chunk.byteLength === 0) continue;
        streamed += chunk.byteLength;
        if (this.#maxStreamLength !== null && streamed > this.#maxStreamLength) {
          throw new ScannerError(
            'SCANNER_STREAM_TOO_LONG',
            `stream is longer than clamd's StreamMaxLength (${this.#maxStreamLength} bytes): file not scanned, block it`,
          );
        }
        for (let offset = 0; offset < chunk.byteLength && !connection.settled; offset += this.#maxChunkLength) {
          const piece = chunk.subarray(offset, offset + this.#maxChunkLength);
          await connection.send([encodeChunkHeader(piece.byteLength), piece]);
        }
      }
      if (sourceEnded) streamEnded = await connection.send([END_OF_STREAM]);
      connection.arm(this.#scanTimeoutMs, 'answer INSTREAM');
      const answer = await connection.answer;
      const result = parseScanAnswer(answer);
      if (!streamEnded) {
        // Only an ERROR may come before the end of the stream; a verdict then covers bytes clamd never got.
        throw new ScannerError(
          'SCANNER_PROTOCOL',
          `clamd at ${this.socketPath} answered ${quoteAnswer(answer)} before the stream ended: file not scanned, block it`,
        );
      }
      return result;
    } finally {
      connection.close();
      // Release the source without waiting: a hung drive must not hold up the error.
      if (!sourceEnded) Promise.resolve(iterator.return?.()).catch(() => undefined);
    }
  }

  /** A pool of clamd sessions for many SCANs (see session.ts), with this client's timeouts. */
  sessionPool(): ClamdSessionPool {
    return new ClamdSessionPool(this.socketPath, { idleTimeoutMs: this.#idleTimeoutMs, scanTimeoutMs: this.#scanTimeoutMs });
  }

  async #shortCommand(command: 'PING' | 'VERSION', signal: AbortSignal | undefined): Promise<string> {
    const connection = await this.#connect(command, signal);
    try {
      await connection.send([encodeCommand(command)]);
      connection.arm(this.#idleTimeoutMs, `answer ${command}`);
      return await connection.answer;
    } finally {
      connection.close();
    }
  }

  async #connect(command: Command, signal: AbortSignal | undefined): Promise<ClamdConnection> {
    if (signal?.aborted === true) throw abortedError(command, this.socketPath, signal);
    const connection = new ClamdConnection(this.socketPath, command, this.#idleTimeoutMs, signal);
    await connection.connected;
    return connection;
  }
}

/**
 * One connection for one command. `answer` settles exactly once: with the text
 * before clamd's NUL terminator, or with a ScannerError (connect failure,
 * dropped connection, idle timeout, abort, malformed answer).
 */
class ClamdConnection {
  readonly connected: Promise<void>;
  readonly answer: Promise<string>;
  #settled = false;
  readonly #socket: Socket;
  readonly #socketPath: string;
  readonly #command: Command;
  readonly #idleTimeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort: () => void;
  #isConnected = false;
  #received: Buffer[] = [];
  #receivedLength = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerMs = 0;
  #timerWhat = '';
  #resolveConnected: () => void = () => undefined;
  #resolveAnswer: (answer: string) => void = () => undefined;
  #rejectAll: (error: ScannerError) => void = () => undefined;

  constructor(socketPath: string, command: Command, idleTimeoutMs: number, signal: AbortSignal | undefined) {
    this.#socketPath = socketPath;
    this.#command = command;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#signal = signal;
    let rejectConnected: (error: ScannerError) => void = () => undefined;
    this.connected = new Promise<void>((resolve, reject) => {
      this.#resolveConnected = resolve;
      rejectConnected = reject;
    });
    this.answer = new Promise<string>((resolve, reject) => {
      this.#resolveAnswer = resolve;
      this.#rejectAll = (error) => {
        rejectConnected(error);
        reject(error);
      };
    });
    // Both are awaited by the client; these handlers only keep early failures from being "unhandled".
    this.connected.catch(() => undefined);
    this.answer.catch(() => undefined);

    this.#onAbort = () => this.#fail(abortedError(command, socketPath, signal));
    signal?.addEventListener('abort', this.#onAbort, { once: true });

    this.#socket = createConnection({ path: socketPath });
    this.arm(idleTimeoutMs, 'accept the connection');
    this.#socket.on('connect', () => {
      this.#isConnected = true;
      this.disarm();
      this.#resolveConnected();
    });
    this.#socket.on('data', (data: Buffer) => this.#onData(data));
    this.#socket.on('end', () => this.#onClosed(undefined));
    this.#socket.on('close', () => this.#onClosed(undefined));
    this.#socket.on('error', (error: Error) => this.#onClosed(error));
  }

  get settled(): boolean {
    return this.#settled;
  }

  /**
   * Writes the buffers in one go. Resolves true once they are in the socket,
   * false when the connection settled first (answered, failed or timed out).
   */
  send(buffers: readonly Uint8Array[]): Promise<boolean> {
    if (this.#settled) return Promise.resolve(false);
    this.arm(this.#idleTimeoutMs, `take ${this.#command} data`);
    const written = new Promise<boolean>((resolve) => {
      this.#socket.cork();
      buffers.forEach((buffer, index) => {
        const last = index === buffers.length - 1;
        this.#socket.write(
          buffer,
          last
            ? (error) => {
                if (error) this.#onClosed(error);
                else this.disarm();
                resolve(!error);
              }
            : undefined,
        );
      });
      this.#socket.uncork();
    });
    // A destroyed socket may never call back: settling the connection also ends the wait.
    const ended = this.answer.then(
      () => false,
      () => false,
    );
    return Promise.race([written, ended]);
  }

  /** Resolves with `work`'s value, or with undefined once the connection settles first (rejects if it failed). */
  async whileOpen<T>(work: Promise<T>): Promise<T | undefined> {
    return Promise.race([work, this.answer.then(() => undefined)]);
  }

  /** Starts (or restarts) the idle timer: clamd must make progress within `ms`. */
  arm(ms: number, what: string): void {
    this.disarm();
    if (this.#settled) return;
    this.#timerMs = ms;
    this.#timerWhat = what;
    this.#timer = setTimeout(() => {
      this.#fail(
        new ScannerError(
          'SCANNER_TIMEOUT',
          `clamd at ${this.#socketPath} did not ${what} within ${ms} ms: file not scanned, block it; check clamd's load and log`,
        ),
      );
    }, ms);
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    if (!this.#settled) {
      this.#fail(new ScannerError('SCANNER_UNAVAILABLE', `connection to clamd at ${this.#socketPath} closed by the client`));
    }
  }

  #onData(data: Buffer): void {
    if (this.#settled) return;
    if (this.#timer !== undefined) this.arm(this.#timerMs, this.#timerWhat); // progress
    this.#received.push(data);
    this.#receivedLength += data.byteLength;
    const all = Buffer.concat(this.#received, this.#receivedLength);
    const end = all.indexOf(0);
    if (end === -1) {
      if (all.byteLength > MAX_ANSWER_LENGTH) {
        this.#fail(this.#protocolError(`an answer longer than ${MAX_ANSWER_LENGTH} bytes without a NUL terminator`));
      }
      return;
    }
    if (end !== all.byteLength - 1) {
      this.#fail(this.#protocolError(`bytes after the NUL-terminated answer ${quoteAnswer(all.toString('latin1'))}`));
      return;
    }
    this.#settle();
    this.#resolveAnswer(all.toString('latin1', 0, end));
  }

  #onClosed(error: Error | undefined): void {
    if (this.#settled) return;
    if (this.#receivedLength > 0) {
      const partial = Buffer.concat(this.#received).toString('latin1');
      this.#fail(this.#protocolError(`an answer without a NUL terminator ${quoteAnswer(partial)}`));
      return;
    }
    const reason = error === undefined ? 'closed' : ((error as NodeJS.ErrnoException).code ?? error.message);
    const message = this.#isConnected
      ? `clamd at ${this.#socketPath} dropped the connection during ${this.#command} (${reason}): file not scanned, block it; check that clamd is running`
      : `cannot connect to clamd at ${this.#socketPath} (${reason}): file not scanned, block it; start clamd or check its LocalSocket`;
    this.#fail(new ScannerError('SCANNER_UNAVAILABLE', message, { cause: error }));
  }

  #protocolError(what: string): ScannerError {
    return new ScannerError(
      'SCANNER_PROTOCOL',
      `clamd at ${this.#socketPath} sent ${what} to ${this.#command}: file not scanned, block it`,
    );
  }

  #fail(error: ScannerError): void {
    if (this.#settled) return;
    this.#settle();
    this.#rejectAll(error);
  }

  #settle(): void {
    this.#settled = true;
    this.disarm();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#socket.destroy();
  }
}

function abortedError(command: Command, socketPath: string, signal: AbortSignal | undefined): ScannerError {
  return new ScannerError('SCAN_ABORTED', `${command} to clamd at ${socketPath} aborted: file not scanned`, {
    cause: signal?.reason,
  });
}

function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ScannerError('SCANNER_CONFIG', `clamd client: ${name} must be a positive integer, got ${String(value)}`);
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
