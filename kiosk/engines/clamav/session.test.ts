/**
 * clamd sessions against fake servers on real Unix sockets: the answers and
 * endings a real clamd does not produce on demand. Real-clamd sessions are in
 * test/integration/clamav-spool.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClamdSessionPool } from './session.ts';
import { scannerErrorCodeOf } from '../../../test/support/test-clamd.ts';

let dir: string;
let servers: Server[] = [];
let sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-clamd-session-'));
});

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets = [];
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  servers = [];
  await rm(dir, { recursive: true, force: true });
});

interface Command {
  connection: number; // 1-based
  text: string; // without the NUL
  socket: Socket;
}

/** A fake clamd that hands each NUL-terminated command to `onCommand`. */
async function fakeClamd(onCommand: (command: Command, reply: (text: string) => void) => void): Promise<{ pool: (timeouts?: Partial<{ idleTimeoutMs: number; scanTimeoutMs: number; maxIdleMs: number }>) => ClamdSessionPool; connections: () => number; commands: Command[] }> {
  const socketPath = join(dir, `fake-${servers.length}.sock`);
  let connections = 0;
  const commands: Command[] = [];
  const server = createServer((socket) => {
    const connection = ++connections;
    sockets.push(socket);
    socket.on('error', () => undefined);
    let pending = '';
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      for (let nul = pending.indexOf('\0'); nul !== -1; nul = pending.indexOf('\0')) {
        const command = { connection, text: pending.slice(0, nul), socket };
        pending = pending.slice(nul + 1);
        commands.push(command);
        onCommand(command, (text) => socket.write(text));
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    pool: (timeouts = {}) => new ClamdSessionPool(socketPath, { idleTimeoutMs: 2_000, scanTimeoutMs: 2_000, ...timeouts }),
    connections: () => connections,
    commands,
  };
}

/** Answers like clamd in a session: `<id>: <path>: OK`, counting per connection. */
function sessionClamd(answer: (path: string) => string = () => 'OK'): Parameters<typeof fakeClamd>[0] {
  const ids = new Map<number, number>();
  return (command, reply) => {
    if (command.text === 'zIDSESSION' || command.text === 'zEND') return;
    const id = (ids.get(command.connection) ?? 0) + 1;
    ids.set(command.connection, id);
    const path = command.text.slice('zSCAN '.length);
    reply(`${id}: ${path}: ${answer(path)}\0`);
  };
}

describe('clamd sessions', () => {
  it('sends many SCANs over one connection, numbered from 1, after zIDSESSION', async () => {
    const fake = await fakeClamd(sessionClamd((path) => (path.endsWith('3') ? 'Test.Sig FOUND' : 'OK')));
    const pool = fake.pool();
    const results = [];
    for (let i = 1; i <= 4; i++) results.push(await pool.scanFile(`/spool/f${i}`));
    expect(results).toEqual([{ status: 'clean' }, { status: 'clean' }, { status: 'found', signature: 'Test.Sig' }, { status: 'clean' }]);
    expect(fake.connections()).toBe(1);
    expect(fake.commands.map((c) => c.text)).toEqual(['zIDSESSION', 'zSCAN /spool/f1', 'zSCAN /spool/f2', 'zSCAN /spool/f3', 'zSCAN /spool/f4']);
  });

  it('opens one session per scan under way and keeps them for the next files', async () => {
    const fake = await fakeClamd(sessionClamd());
    const pool = fake.pool();
    await Promise.all([pool.scanFile('/spool/a'), pool.scanFile('/spool/b'), pool.scanFile('/spool/c')]);
    expect(fake.connections()).toBe(3);
    expect(pool.idleCount).toBe(3);
    await Promise.all([pool.scanFile('/spool/d'), pool.scanFile('/spool/e')]);
    expect(fake.connections()).toBe(3);
  });

  it('fails with SCANNER_PROTOCOL when the answer, with the right id, names another file', async () => {
    const fake = await fakeClamd((command, reply) => {
      if (command.text.startsWith('zSCAN ')) reply('1: /spool/b.spool: OK\0');
    });
    expect(await scannerErrorCodeOf(fake.pool().scanFile('/spool/a.spool'))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_PROTOCOL on an answer with another id, and does not reuse that session', async () => {
    let first = true;
    const fake = await fakeClamd((command, reply) => {
      if (!command.text.startsWith('zSCAN ')) return;
      const path = command.text.slice('zSCAN '.length);
      reply(first ? `2: ${path}: OK\0` : `1: ${path}: OK\0`);
      first = false;
    });
    const pool = fake.pool();
    expect(await scannerErrorCodeOf(pool.scanFile('/spool/a'))).toBe('SCANNER_PROTOCOL');
    expect(await pool.scanFile('/spool/b')).toEqual({ status: 'clean' });
    expect(fake.connections()).toBe(2);
  });

  it('drops a session that sends bytes with no command waiting', async () => {
    const fake = await fakeClamd((command, reply) => {
      if (!command.text.startsWith('zSCAN ')) return;
      reply(`1: ${command.text.slice('zSCAN '.length)}: OK\0`);
      if (command.connection === 1) setTimeout(() => reply('2: /spool/ghost: OK\0'), 20);
    });
    const pool = fake.pool();
    expect(await pool.scanFile('/spool/a')).toEqual({ status: 'clean' });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(pool.idleCount).toBe(1); // still listed, but no longer usable
    expect(await pool.scanFile('/spool/b')).toEqual({ status: 'clean' });
    expect(fake.connections()).toBe(2);
  });

  it('sends the scan once more on a fresh session when a reused one is closed before answering', async () => {
    const fake = await fakeClamd((command, reply) => {
      if (!command.text.startsWith('zSCAN ')) return;
      const path = command.text.slice('zSCAN '.length);
      if (command.connection === 1 && path === '/spool/second') {
        command.socket.destroy(); // clamd gone from under an idle session
        return;
      }
      reply(`1: ${path}: Test.Sig FOUND\0`);
    });
    const pool = fake.pool();
    await pool.scanFile('/spool/first');
    expect(await pool.scanFile('/spool/second')).toEqual({ status: 'found', signature: 'Test.Sig' });
    expect(fake.connections()).toBe(2);
    expect(fake.commands.filter((c) => c.text === 'zSCAN /spool/second')).toHaveLength(2);
  });

  it('takes COMMAND READ TIMED OUT during a scan as SCANNER_TIMEOUT, even when an OK follows', async () => {
    // clamd's ReadTimeout fired mid-scan: it drops the result, yet may still write "<id>: <path>: OK".
    const fake = await fakeClamd((command) => {
      if (command.text.startsWith('zSCAN ')) command.socket.end(`COMMAND READ TIMED OUT\n1: ${command.text.slice('zSCAN '.length)}: OK\0`);
    });
    const pool = fake.pool();
    expect(await scannerErrorCodeOf(pool.scanFile('/spool/a'))).toBe('SCANNER_TIMEOUT');
    expect(fake.connections()).toBe(1); // not sent again
    expect(pool.idleCount).toBe(0);
  });

  it('does not reuse a session clamd timed out while it was idle', async () => {
    const fake = await fakeClamd((command, reply) => {
      if (!command.text.startsWith('zSCAN ')) return;
      reply(`1: ${command.text.slice('zSCAN '.length)}: OK\0`);
      if (command.connection === 1) setTimeout(() => command.socket.end('COMMAND READ TIMED OUT\n'), 20);
    });
    const pool = fake.pool();
    await pool.scanFile('/spool/a');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await pool.scanFile('/spool/b')).toEqual({ status: 'clean' });
    expect(fake.connections()).toBe(2);
    expect(fake.commands.filter((c) => c.text === 'zSCAN /spool/b')).toHaveLength(1);
  });

  it('ends a session idle for longer than maxIdleMs instead of reusing it', async () => {
    const fake = await fakeClamd(sessionClamd());
    const pool = fake.pool({ maxIdleMs: 30 });
    await pool.scanFile('/spool/a');
    await new Promise((resolve) => setTimeout(resolve, 80));
    await pool.scanFile('/spool/b');
    expect(fake.connections()).toBe(2);
    expect(fake.commands.filter((c) => c.connection === 1).map((c) => c.text)).toEqual(['zIDSESSION', 'zSCAN /spool/a', 'zEND']);
  });

  it('ends the session after an ERROR answer instead of pooling it', async () => {
    const fake = await fakeClamd(sessionClamd((path) => (path === '/spool/bad' ? 'Access denied. ERROR' : 'OK')));
    const pool = fake.pool();
    expect(await scannerErrorCodeOf(pool.scanFile('/spool/bad'))).toBe('SCANNER_ERROR');
    expect(pool.idleCount).toBe(0);
    expect(await pool.scanFile('/spool/good')).toEqual({ status: 'clean' });
    expect(fake.connections()).toBe(2);
  });

  it('refuses at once, opening nothing, when the signal is already aborted', async () => {
    const fake = await fakeClamd(sessionClamd());
    const controller = new AbortController();
    controller.abort();
    expect(await scannerErrorCodeOf(fake.pool().scanFile('/spool/a', controller.signal))).toBe('SCAN_ABORTED');
    expect(fake.connections()).toBe(0);
  });

  it('does not send again when a fresh session ends before answering: SCANNER_UNAVAILABLE', async () => {
    const fake = await fakeClamd((command) => {
      if (command.text.startsWith('zSCAN ')) command.socket.destroy();
    });
    expect(await scannerErrorCodeOf(fake.pool().scanFile('/spool/a'))).toBe('SCANNER_UNAVAILABLE');
    expect(fake.connections()).toBe(1);
  });

  it('fails with SCANNER_PROTOCOL when the connection ends in the middle of an answer', async () => {
    const fake = await fakeClamd((command) => {
      if (command.text.startsWith('zSCAN ')) command.socket.end('1: /spool/a: O');
    });
    expect(await scannerErrorCodeOf(fake.pool().scanFile('/spool/a'))).toBe('SCANNER_PROTOCOL');
  });

  it('fails with SCANNER_TIMEOUT when clamd does not answer in time, and with SCAN_ABORTED when aborted', async () => {
    const fake = await fakeClamd(() => undefined);
    expect(await scannerErrorCodeOf(fake.pool({ scanTimeoutMs: 100 }).scanFile('/spool/a'))).toBe('SCANNER_TIMEOUT');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect(await scannerErrorCodeOf(fake.pool().scanFile('/spool/a', controller.signal))).toBe('SCAN_ABORTED');
  });

  it('fails with SCANNER_UNAVAILABLE when nothing listens', async () => {
    const pool = new ClamdSessionPool(join(dir, 'missing.sock'), { idleTimeoutMs: 500, scanTimeoutMs: 500 });
    expect(await scannerErrorCodeOf(pool.scanFile('/spool/a'))).toBe('SCANNER_UNAVAILABLE');
  });

  it('ends idle sessions with zEND on close, and refuses later scans', async () => {
    const fake = await fakeClamd(sessionClamd());
    const pool = fake.pool();
    await pool.scanFile('/spool/a');
    pool.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fake.commands.at(-1)?.text).toBe('zEND');
    expect(await scannerErrorCodeOf(pool.scanFile('/spool/b'))).toBe('SCANNER_UNAVAILABLE');
  });
});
