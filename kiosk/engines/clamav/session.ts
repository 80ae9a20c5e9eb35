/**
 * clamd sessions (`zIDSESSION`) for the spool's SCAN commands: a drive of
 * tens of thousands of small files otherwise costs a connection per file on
 * both sides. Each session carries one command at a time; an idle session
 * waits in the pool for the next file.
 *
 * Answers in a session are `<id>: <answer>\0`, the id counting the session's
 * commands from 1; an answer with any other id, or any bytes with no command
 * waiting, breaks the session. Only a session whose last answer was a verdict
 * (OK or FOUND) goes back to the pool.
 *
 * clamd watches a session with its ReadTimeout, also while a scan runs: when
 * it fires, clamd writes `COMMAND READ TIMED OUT` (no NUL), drops the scan's
 * result and may still write `<id>: <path>: OK`. Seeing that text while a
 * command waits is therefore a final SCANNER_TIMEOUT, whatever follows (the
 * kiosk sets ReadTimeout above MaxScanTime, so a scan hits MaxScanTime first).
 * An idle session would meet the same timeout, so the pool never reuses one
 * idle for longer than `maxIdleMs`, well under any ReadTimeout. A scan sent
 * on a reused session that is closed before any byte of its answer arrives
 * is sent once more on a fresh session: the file is scanned again, never
 * assumed clean.
 */
import { createConnection, type Socket } from 'node:net';
import { ScannerError } from './errors.ts';
import { encodeScanCommand, parseFileScanAnswer, quoteAnswer, type ScanResult } from './protocol.ts';

const MAX_ANSWER_LENGTH = 4096; // bytes without a NUL: not clamd

export interface SessionTimeouts {
  readonly idleTimeoutMs: number; // ms: connect
  readonly scanTimeoutMs: number; // ms: the answer to one SCAN
  readonly maxIdleMs?: number; // ms: an idle session older than this is ended, not reused
}

const DEFAULT_MAX_IDLE_MS = 10_000; // ms: clamd's ReadTimeout is at least 120 s in the kiosk's config
const TIMED_OUT = 'COMMAND READ TIMED OUT';

export class ClamdSessionPool {
  readonly #socketPath: string;
  readonly #timeouts: SessionTimeouts;
  readonly #idle: ClamdSession[] = [];
  #closed = false;

  constructor(socketPath: string, timeouts: SessionTimeouts) {
    this.#socketPath = socketPath;
    this.#timeouts = timeouts;
  }

  /** Sessions waiting for a command (for tests and diagnostics). */
  get idleCount(): number {
    return this.#idle.length;
  }

  /** `SCAN <path>` in a session; the answer must name `path` exactly (see parseFileScanAnswer). */
  async scanFile(path: string, signal?: AbortSignal): Promise<ScanResult> {
    const command = encodeScanCommand(path);
    if (this.#closed) throw new ScannerError('SCANNER_UNAVAILABLE', `the clamd session pool for ${this.#socketPath} is closed`);
    if (signal?.aborted === true) throw aborted(this.#socketPath, signal);
    let session = this.#takeIdle();
    const reused = session !== null;
    session ??= await ClamdSession.open(this.#socketPath, this.#timeouts.idleTimeoutMs, signal);
    let answer: string;
    try {
      try {
        answer = await session.send(command, this.#timeouts.scanTimeoutMs, signal);
      } catch (error) {
        if (!(reused && error instanceof SessionEnded && !this.#closed)) throw error;
        // clamd ended the idle session as the command went out: once more on a new one.
        session.end();
        session = await ClamdSession.open(this.#socketPath, this.#timeouts.idleTimeoutMs, signal);
        answer = await session.send(command, this.#timeouts.scanTimeoutMs, signal);
      }
    } catch (error) {
      session.end(); // never back to the pool after a failure
      throw error;
    }
    let result: ScanResult;
    try {
      result = parseFileScanAnswer(path, answer);
    } catch (error) {
      session.end(); // after an ERROR clamd may still send a line for this id
      throw error;
    }
    if (!this.#closed && session.usable) this.#idle.push(session);
    else session.end();
    return result;
  }

  /** Ends every idle session; later scans fail. */
  close(): void {
    this.#closed = true;
    for (const session of this.#idle.splice(0)) session.end();
  }

  #takeIdle(): ClamdSession | null {
    const maxIdleMs = this.#timeouts.maxIdleMs ?? DEFAULT_MAX_IDLE_MS;
    for (;;) {
      const session = this.#idle.pop();
      if (session === undefined) return null;
      if (session.usable && session.idleMs() <= maxIdleMs) return session;
      session.end();
    }
  }
}

/** The session closed before any byte of the answer arrived (clamd may have timed it out). */
class SessionEnded extends ScannerError {}

class ClamdSession {
  readonly #socket: Socket;
  readonly #socketPath: string;
  #nextId = 1;
  #received = '';
  #idleSince = performance.now(); // ms
  #broken: ScannerError | null = null;
  #waiting: { id: number; resolve: (answer: string) => void; reject: (error: ScannerError) => void } | null = null;

  private constructor(socket: Socket, socketPath: string) {
    this.#socket = socket;
    this.#socketPath = socketPath;
    socket.on('data', (data: Buffer) => this.#onData(data.toString('latin1')));
    socket.on('end', () => this.#onClosed(undefined));
    socket.on('close', () => this.#onClosed(undefined));
    socket.on('error', (error: Error) => this.#onClosed(error));
  }

  static async open(socketPath: string, idleTimeoutMs: number, signal: AbortSignal | undefined): Promise<ClamdSession> {
    if (signal?.aborted === true) throw aborted(socketPath, signal);
    const socket = createConnection({ path: socketPath });
    await new Promise<void>((resolve, reject) => {
      const fail = (error: ScannerError): void => {
        cleanup();
        socket.destroy();
        reject(error);
      };
      const onError = (error: Error): void =>
        fail(new ScannerError('SCANNER_UNAVAILABLE', `cannot connect to clamd at ${socketPath} (${(error as NodeJS.ErrnoException).code ?? error.message}): file not scanned, block it; start clamd or check its LocalSocket`, { cause: error }));
      const onAbort = (): void => fail(aborted(socketPath, signal));
      const timer = setTimeout(() => fail(new ScannerError('SCANNER_TIMEOUT', `clamd at ${socketPath} did not accept the connection within ${idleTimeoutMs} ms: file not scanned, block it`)), idleTimeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      socket.once('connect', () => {
        cleanup();
        resolve();
      });
      socket.once('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    const session = new ClamdSession(socket, socketPath);
    socket.write('zIDSESSION\0');
    return session;
  }

  /** ms since the last answer (or since the session opened). */
  idleMs(): number {
    return performance.now() - this.#idleSince;
  }

  get usable(): boolean {
    return this.#broken === null && this.#waiting === null && !this.#socket.destroyed;
  }

  /** Sends one command and resolves with its answer, without the `<id>: ` prefix. */
  send(command: Uint8Array, timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
    if (!this.usable) return Promise.reject(this.#broken ?? new SessionEnded('SCANNER_UNAVAILABLE', this.#endedText()));
    if (signal?.aborted === true) return Promise.reject(aborted(this.#socketPath, signal));
    const id = this.#nextId++;
    return new Promise<string>((resolve, reject) => {
      const onAbort = (): void => this.#break(aborted(this.#socketPath, signal));
      const timer = setTimeout(() => {
        this.#break(new ScannerError('SCANNER_TIMEOUT', `clamd at ${this.#socketPath} did not answer SCAN within ${timeoutMs} ms: file not scanned, block it; check clamd's load and log`));
      }, timeoutMs);
      const done = (): void => {
        this.#idleSince = performance.now();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiting = null;
      };
      this.#waiting = {
        id,
        resolve: (answer) => {
          done();
          resolve(answer);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#socket.write(command);
    });
  }

  /** Ends an idle session politely. */
  end(): void {
    if (this.#broken === null && !this.#socket.destroyed) this.#socket.end('zEND\0');
    this.#broken ??= new SessionEnded('SCANNER_UNAVAILABLE', this.#endedText());
  }

  #onData(text: string): void {
    this.#received += text;
    if (this.#received.includes(TIMED_OUT)) {
      // clamd gave up on the session: a waiting scan's result was dropped, whatever line follows.
      this.#break(
        this.#waiting === null
          ? new SessionEnded('SCANNER_UNAVAILABLE', this.#endedText())
          : new ScannerError('SCANNER_TIMEOUT', `clamd at ${this.#socketPath} ended the session with its ReadTimeout during a scan: file not scanned, block it; ReadTimeout must be above MaxScanTime`),
      );
      return;
    }
    for (;;) {
      const nul = this.#received.indexOf('\0');
      if (nul === -1) break;
      const line = this.#received.slice(0, nul);
      this.#received = this.#received.slice(nul + 1);
      const waiting = this.#waiting;
      const prefix = waiting === null ? null : `${waiting.id}: `;
      if (waiting === null || prefix === null || !line.startsWith(prefix)) {
        this.#break(this.#protocolError(`${quoteAnswer(line)} with ${waiting === null ? 'no command waiting' : `command ${waiting.id} waiting`}`));
        return;
      }
      waiting.resolve(line.slice(prefix.length));
    }
    if (this.#received.length > MAX_ANSWER_LENGTH) this.#break(this.#protocolError(`an answer longer than ${MAX_ANSWER_LENGTH} bytes without a NUL terminator`));
  }

  #onClosed(error: Error | undefined): void {
    if (this.#broken !== null) return;
    if (this.#received.length > 0) {
      this.#break(this.#protocolError(`an answer without a NUL terminator ${quoteAnswer(this.#received)}`));
      return;
    }
    // Nothing of an answer arrived: clamd ended the session (idle timeout, stop, crash).
    this.#break(new SessionEnded('SCANNER_UNAVAILABLE', this.#endedText(error)));
  }

  #endedText(error?: Error): string {
    const reason = error === undefined ? 'closed' : ((error as NodeJS.ErrnoException).code ?? error.message);
    return `clamd at ${this.#socketPath} ended the session (${reason}): file not scanned, block it; check that clamd is running`;
  }

  #protocolError(what: string): ScannerError {
    return new ScannerError('SCANNER_PROTOCOL', `clamd at ${this.#socketPath} sent ${what} in a session: file not scanned, block it`);
  }

  #break(error: ScannerError): void {
    if (this.#broken === null) this.#broken = error;
    this.#socket.destroy();
    this.#waiting?.reject(error);
  }
}

function aborted(socketPath: string, signal: AbortSignal | undefined): ScannerError {
  return new ScannerError('SCAN_ABORTED', `SCAN to clamd at ${socketPath} aborted: file not scanned`, { cause: signal?.reason });
}
