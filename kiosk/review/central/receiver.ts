/**
 * The central review's syslog receiver: RFC 5425 (TLS) with octet-counted
 * frames, mutual TLS only. A source proves its name with a client
 * certificate from the site's CA whose subject CN is an enrolled source; it
 * sends a batch and half-closes; the receiver stores the whole batch in one
 * transaction and only then answers `ACK n` (n: the messages it read) and
 * closes its side. The kiosk's `siem send --central` and the agent's
 * forwarder count a batch delivered only on that answer: a bare close is not
 * one (under TLS 1.3 a refused client certificate can look like a clean close). A connection that breaks, sends
 * a cut-off or unframeable message, or is stored unsuccessfully is dropped
 * without that close: the sender keeps the batch and sends it again, and
 * what was already stored counts as duplicates, never twice.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { MAX_MESSAGE_BYTES, OctetFrameReader } from '../../../manifest/syslog.ts';
import type { CentralStore } from './store.ts';
import type { IngestResult } from './ingest.ts';

export const MAX_BATCH_MESSAGES = 10_000; // messages per connection; the senders send at most 2 000
export const MAX_BATCH_BYTES = 64 * 1024 * 1024; // bytes per connection
const IDLE_MS = 30_000; // ms without a byte before a connection is dropped
const MAX_CONNECTIONS = 256;

export interface ReceiverOptions {
  readonly store: CentralStore;
  readonly host?: string; // default 127.0.0.1
  readonly port?: number; // default 6514 (RFC 5425); 0 picks a free port
  /** The receiver's certificate and key, and the site CA that issued the sources' client certificates (PEM). */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer };
  readonly idleMs?: number;
  /** Called after each connection (tests, the serve command's log). */
  readonly onBatch?: (event: { source: string; result?: IngestResult; refused?: string }) => void;
}

export interface Receiver {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const { store } = options;
  const sockets = new Set<TLSSocket>();
  const server = createServer({
    cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca,
    requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
    allowHalfOpen: true, // the sender's half-close ends the batch; ours, after the commit, acknowledges it
  }, (socket) => void handle(socket));
  server.maxConnections = MAX_CONNECTIONS;

  async function handle(socket: TLSSocket): Promise<void> {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a reset by the peer: the batch is simply not stored
    socket.setTimeout(options.idleMs ?? IDLE_MS, () => socket.destroy());
    const name = String(socket.getPeerCertificate().subject?.CN ?? '');
    const address = socket.remoteAddress ?? '-';
    const source = await store.source(name).catch(() => null);
    if (!source) {
      await store.refuseConnection(name || '(no CN)', 'INGEST_SOURCE_UNKNOWN', `a certificate from the site CA for ${name || 'no CN'}, which is not an enrolled (or is a disabled) source, from ${address}`, Buffer.alloc(0)).catch(() => undefined);
      options.onBatch?.({ source: name, refused: 'INGEST_SOURCE_UNKNOWN' });
      socket.destroy();
      return;
    }
    if (socket.destroyed) return; // reset while the source was looked up: nothing was read
    const reader = new OctetFrameReader(MAX_MESSAGE_BYTES);
    const frames: Buffer[] = [];
    let bytes = 0;
    let failed: { code: string; detail: string; bytes: Buffer } | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (failed) return;
      bytes += chunk.length;
      frames.push(...reader.push(chunk));
      if (reader.failed) failed = { ...reader.failed, code: `INGEST_${reader.failed.code}`, bytes: chunk.subarray(0, 512) };
      else if (frames.length > MAX_BATCH_MESSAGES || bytes > MAX_BATCH_BYTES) failed = { code: 'INGEST_BATCH_TOO_LARGE', detail: `more than ${MAX_BATCH_MESSAGES} messages or ${MAX_BATCH_BYTES} bytes in one connection`, bytes: Buffer.alloc(0) };
      if (failed) {
        const f = failed;
        void store.refuseConnection(source.name, f.code, f.detail, f.bytes).catch(() => undefined).finally(() => {
          options.onBatch?.({ source: source.name, refused: f.code });
          socket.destroy();
        });
      }
    });
    // The sender's half-close ends the batch; a reset, a timeout or our own drop ends the connection without it.
    const finished = await new Promise<boolean>((resolve) => {
      socket.once('end', () => resolve(true));
      socket.once('close', () => resolve(false));
    });
    if (!finished || failed) return; // broken before the sender finished: nothing stored, the sender tries again
    if (reader.pendingBytes > 0) {
      await store.refuseConnection(source.name, 'INGEST_FRAME_TRUNCATED', `the connection ended inside a message (${reader.pendingBytes} bytes of it): nothing of this batch was stored`, Buffer.alloc(0)).catch(() => undefined);
      options.onBatch?.({ source: source.name, refused: 'INGEST_FRAME_TRUNCATED' });
      socket.destroy();
      return;
    }
    try {
      const result = await store.ingest(source, frames, address);
      options.onBatch?.({ source: source.name, result });
      socket.end(`ACK ${frames.length}\n`); // the acknowledgement: stored
    } catch {
      options.onBatch?.({ source: source.name, refused: 'CENTRAL_DB_FAILED' });
      socket.destroy();
    }
  }

  server.listen(options.port ?? 6514, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
