/**
 * A small client for QEMU's machine protocol (QMP) on a Unix socket: the
 * monitor through which the image test plugs USB devices in and out, presses
 * keys and powers the guest down. QMP: a greeting, `qmp_capabilities`, then
 * one JSON object per line each way; replies carry the request's `id`, and
 * asynchronous events (DEVICE_DELETED, SHUTDOWN) come in between.
 */
import { connect, type Socket } from 'node:net';

export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  readonly timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  readonly command: string;
  readonly qmpClass: string;
  constructor(command: string, qmpClass: string, message: string) {
    super(`QMP ${command}: ${qmpClass}: ${message}`);
    this.name = 'QmpError';
    this.command = command;
    this.qmpClass = qmpClass;
  }
}

export class Qmp {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, { command: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly events: QmpEvent[] = [];
  private readonly waiters = new Set<() => void>();

  private readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error(`QMP ${p.command}: the monitor closed (QEMU exited)`));
      this.pending.clear();
      for (const w of this.waiters) w();
    });
  }

  /** Connects to `path`, retrying while QEMU has not made the socket yet. */
  static async connect(path: string, timeoutMs = 30_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new Qmp(socket);
        await qmp.greeting();
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`QMP: cannot connect to ${path}: ${(error as Error).message}`, { cause: error });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private greetingResolve: (() => void) | null = null;
  private greeted = false;
  private greeting(): Promise<void> {
    if (this.greeted) return Promise.resolve();
    return new Promise((resolve) => { this.greetingResolve = resolve; });
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line === '') continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if ('QMP' in message) {
        this.greeted = true;
        this.greetingResolve?.();
      } else if ('event' in message) {
        this.events.push(message as unknown as QmpEvent);
        for (const w of this.waiters) w();
      } else if (typeof message.id === 'string') {
        const p = this.pending.get(message.id);
        if (!p) continue;
        this.pending.delete(message.id);
        if ('error' in message) {
          const e = message.error as { class: string; desc: string };
          p.reject(new QmpError(p.command, e.class, e.desc));
        } else {
          p.resolve(message.return);
        }
      }
    }
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = `q${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { command, resolve, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Resolves with the first event (already received or to come) that `match` accepts. */
  waitForEvent(match: (e: QmpEvent) => boolean, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(match);
        if (found) {
          done();
          resolve(found);
        } else if (this.socket.destroyed) {
          done();
          reject(new Error('QMP: the monitor closed before the event came'));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`QMP: no matching event in ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
