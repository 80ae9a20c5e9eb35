/**
 * ClamdClient against fake servers on real Unix sockets: the answers and
 * failures a real clamd does not produce on demand (garbage, silence, early
 * answers). Real-clamd behaviour is in test/integration/clamav*.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClamdClient, type ClamdClientOptions } from './client.ts';
import { ScannerError } from './errors.ts';
import { scannerErrorCodeOf } from '../../../test/support/test-clamd.ts';

let dir: string;
let servers: Server[] = [];
let sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-clamd-client-'));
});

afterEach(async () => {
  for (const socket of sockets) socket.destroy(); // server.close() waits for every connection to end
  sockets = [];
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  servers = [];
  await rm(dir, { recursive: true, force: true });
});

interface Fake {
  socketPath: string;
  connections: number;
  client(options?: Omit<ClamdClientOptions, 'socketPath'>): ClamdClient;
}

async function fakeClamd(onConnection: (socket: Socket) => void): Promise<Fake> {
  const socketPath = join(dir, `fake-${servers.length}.sock`);
  const fake: Fake = {
    socketPath,
    connections: 0,
    client: (options = {}) => new ClamdClient({ idleTimeoutMs: 2_000, scanTimeoutMs: 2_000, ...options, socketPath }),
  };
  const server = createServer((socket) => {
    fake.connections += 1;
    sockets.push(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return fake;
}

interface Instream {
  command: string;
  frames: number[];
  data: Buffer;
  ended: boolean;
}

/** Reads `zINSTREAM\0` and its frames as clamd does; calls `onEnd` after the zero-length chunk. */
function readInstream(socket: Socket, onEnd: (stream: Instream) => void): Instream {
  const stream: Instream = { command: '', frames: [], data: Buffer.alloc(0), ended: false };
  let pending = Buffer.alloc(0);
  const parts: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    if (stream.command === '') {
      const nul = pending.indexOf(0);
      if (nul === -1) return;
      stream.command = pending.toString('latin1', 0, nul);
      pending = pending.subarray(nul + 1);
    }
    while (!stream.ended && pending.byteLength >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.byteLength < 4 + length) return;
      stream.frames.push(length);
      parts.push(pending.subarray(4, 4 + length));
      pending = pending.subarray(4 + length);
      if (length === 0) {
        stream.ended = true;
        stream.data = Buffer.concat(parts);
        onEnd(stream);
      }
    }
  });
  return stream;
}

function chunksOf(...chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  return Readable.from(chunks);
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('ClamdClient over INSTREAM', () => {
  it('sends every byte in length-prefixed chunks no larger than maxChunkLength, then a zero-length chunk', async () => {
    let seen: Instream | undefined;
    const fake = await fakeClamd((socket) => {
      readInstream(socket, (stream) => {
        seen = stream;
        socket.end('stream: OK\0');
      });
    });
    const big = new Uint8Array(2_500_000).map((_, i) => i % 251);
    const result = await fake.client({ maxChunkLength: 1_000_000 }).scanStream(chunksOf(bytes('abc'), big, bytes('z')));
    expect(result).toEqual({ status: 'clean' });
    expect(seen?.command).toBe('zINSTREAM');
    expect(seen?.frames).toEqual([3, 1_000_000, 1_000_000, 500_000, 1, 0]);
    expect(seen?.data.equals(Buffer.concat([bytes('abc'), big, bytes('z')]))).toBe(true);
  });

  it('never sends an empty input chunk, which clamd would read as the end of the stream', async () => {
    let seen: Instream | undefined;
    const fake = await fakeClamd((socket) => {
      readInstream(socket, (stream) => {
        seen = stream;
        socket.end('stream: OK\0');
      });
    });
    await fake.client().scanStream(chunksOf(bytes('head'), new Uint8Array(0), bytes('tail')));
    expect(seen?.frames).toEqual([4, 4, 0]);
    expect(seen?.data.toString()).toBe('headtail');
  });

  it('returns the signature of a FOUND answer', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: Portcullis.Test.Eicar.UNOFFICIAL FOUND\0'));
    });
    expect(await fake.client().scanStream(chunksOf(bytes('x')))).toEqual({
      status: 'found',
      signature: 'Portcullis.Test.Eicar.UNOFFICIAL',
    });
  });

  it('fails with SCANNER_PROTOCOL when the server answers garbage', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('HELLO WORLD\0'));
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_PROTOCOL when the answer has no NUL terminator', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK'));
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_PROTOCOL when bytes follow the answer', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK\0stream: OK\0'));
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_PROTOCOL when the server streams an endless answer', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.write('A'.repeat(10_000)));
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_PROTOCOL when "stream: OK" comes before the stream ended', async () => {
    const fake = await fakeClamd((socket) => {
      socket.once('data', () => socket.end('stream: OK\0'));
    });
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield bytes('first');
      await sleep(100);
      yield bytes('second, never scanned');
    }
    expect(await scannerErrorCodeOf(fake.client().scanStream(slow()))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_ERROR when the server answers ERROR', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end("stream: Can't allocate memory ERROR\0"));
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_ERROR');
  });

  it('fails with SCANNER_STREAM_TOO_LONG when the server refuses the stream part-way', async () => {
    const fake = await fakeClamd((socket) => {
      socket.once('data', () => socket.end('INSTREAM size limit exceeded. ERROR\0'));
    });
    async function* slow(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 20; i++) {
        await sleep(10);
        yield new Uint8Array(64 * 1024);
      }
    }
    expect(await scannerErrorCodeOf(fake.client().scanStream(slow()))).toBe('SCANNER_STREAM_TOO_LONG');
  });

  it('stops before sending more than maxStreamLength bytes', async () => {
    let received = 0;
    const fake = await fakeClamd((socket) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
      });
    });
    const code = await scannerErrorCodeOf(
      fake.client({ maxStreamLength: 100_000 }).scanStream(chunksOf(new Uint8Array(60_000), new Uint8Array(60_000))),
    );
    expect(code).toBe('SCANNER_STREAM_TOO_LONG');
    await sleep(50);
    expect(received).toBeLessThan(100_000);
  });

  it('fails with SCANNER_TIMEOUT when the server never answers', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => undefined);
    });
    const started = Date.now();
    expect(await scannerErrorCodeOf(fake.client({ scanTimeoutMs: 200 }).scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('fails with SCANNER_TIMEOUT when the server stops reading the stream', async () => {
    const fake = await fakeClamd((socket) => {
      socket.pause();
    });
    const code = await scannerErrorCodeOf(fake.client({ idleTimeoutMs: 200 }).scanStream(chunksOf(...Array.from({ length: 64 }, () => new Uint8Array(256 * 1024)))));
    expect(code).toBe('SCANNER_TIMEOUT');
  });

  it('does not time out while the source itself is slow', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK\0'));
    });
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield bytes('a');
      await sleep(400);
      yield bytes('b');
    }
    expect(await fake.client({ idleTimeoutMs: 100 }).scanStream(slow())).toEqual({ status: 'clean' });
  });

  it('fails with SCANNER_UNAVAILABLE when the server drops the connection without answering', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.destroy());
    });
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_UNAVAILABLE');
  });

  it('fails with SCAN_ABORTED when the signal fires mid-stream, and releases the source', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK\0'));
    });
    const controller = new AbortController();
    let released = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          await sleep(5);
          yield bytes('data');
        }
      } finally {
        released = true;
      }
    }
    setTimeout(() => controller.abort(new Error('operator pulled the drive')), 50);
    expect(await scannerErrorCodeOf(fake.client().scanStream(endless(), controller.signal))).toBe('SCAN_ABORTED');
    await sleep(20);
    expect(released).toBe(true);
  });

  it('fails with SCANNER_UNAVAILABLE as soon as the server drops the connection, while the source is stalled', async () => {
    const fake = await fakeClamd((socket) => {
      socket.once('data', () => setTimeout(() => socket.destroy(), 20));
    });
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield bytes('first');
      await sleep(5_000); // a drive that stops answering
      yield bytes('late');
    }
    const started = Date.now();
    expect(await scannerErrorCodeOf(fake.client().scanStream(stalled()))).toBe('SCANNER_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('fails with SCAN_ABORTED at once when the signal fires while the source is stalled', async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK\0'));
    });
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield bytes('first');
      await new Promise(() => undefined); // never settles
    }
    const started = Date.now();
    expect(await scannerErrorCodeOf(fake.client().scanStream(stalled(), AbortSignal.timeout(50)))).toBe('SCAN_ABORTED');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('does not connect when the signal has already fired', async () => {
    const fake = await fakeClamd((socket) => socket.end('stream: OK\0'));
    expect(await scannerErrorCodeOf(fake.client().scanStream(chunksOf(bytes('x')), AbortSignal.abort()))).toBe('SCAN_ABORTED');
    await sleep(20);
    expect(fake.connections).toBe(0);
  });

  it("passes the source's own error through unchanged", async () => {
    const fake = await fakeClamd((socket) => {
      readInstream(socket, () => socket.end('stream: OK\0'));
    });
    const failure = new Error('read error on /media/usb/file.bin');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield bytes('part');
      await sleep(1);
      throw failure;
    }
    await expect(fake.client().scanStream(failing())).rejects.toBe(failure);
  });
});

describe('ClamdClient PING and VERSION', () => {
  it('accepts PONG and parses VERSION', async () => {
    const fake = await fakeClamd((socket) => {
      socket.once('data', (data: Buffer) => {
        socket.end(data.toString() === 'zPING\0' ? 'PONG\0' : 'ClamAV 1.4.6/27000/Sun Nov 22 09:00:00 2026\0');
      });
    });
    await fake.client().ping();
    expect(await fake.client().version()).toMatchObject({ engine: '1.4.6', databaseVersion: 27000 });
  });

  it('fails PING and VERSION with SCANNER_PROTOCOL on garbage', async () => {
    const fake = await fakeClamd((socket) => {
      socket.once('data', () => socket.end('\u0001\u0002garbage\0'));
    });
    expect(await scannerErrorCodeOf(fake.client().ping())).toBe('SCANNER_PROTOCOL');
    expect(await scannerErrorCodeOf(fake.client().version())).toBe('SCANNER_PROTOCOL');
  });

  it('fails PING with SCANNER_TIMEOUT when the server says nothing', async () => {
    const fake = await fakeClamd(() => undefined);
    expect(await scannerErrorCodeOf(fake.client({ idleTimeoutMs: 150 }).ping())).toBe('SCANNER_TIMEOUT');
  });
});

describe('ClamdClient without a server', () => {
  it('fails with SCANNER_UNAVAILABLE when the socket does not exist', async () => {
    const client = new ClamdClient({ socketPath: join(dir, 'missing.sock') });
    expect(await scannerErrorCodeOf(client.ping())).toBe('SCANNER_UNAVAILABLE');
    expect(await scannerErrorCodeOf(client.scanStream(chunksOf(bytes('x'))))).toBe('SCANNER_UNAVAILABLE');
  });

  it('fails with SCANNER_UNAVAILABLE when the path is not a listening socket', async () => {
    const path = join(dir, 'stale.sock');
    await writeFile(path, 'not a socket');
    expect(await scannerErrorCodeOf(new ClamdClient({ socketPath: path }).version())).toBe('SCANNER_UNAVAILABLE');
  });

  it('refuses invalid options with SCANNER_CONFIG', () => {
    expect(() => new ClamdClient({ socketPath: '/x.sock', idleTimeoutMs: 0 })).toThrow(ScannerError);
    expect(() => new ClamdClient({ socketPath: '' })).toThrow(ScannerError);
  });
});
