/**
 * The central review's commands with bad input: each ends with one line
 * naming a code (exit 1) or the usage (exit 64), never a stack trace.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reviewCommand, siemCommand } from './review-command.ts';

async function run(argv: string[], command = reviewCommand): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await command(argv, { stdout: { write: () => true }, stderr: { write: (c: string) => (err += c) } });
  return { code, err };
}

describe('central review commands with bad input', () => {
  it.each([
    [['--central'], 'database'],
    [['--central', '--database', 'postgres://x@127.0.0.1:1/x'], '--tls-cert'],
    [['source', 'add', '--database', 'postgres://x@127.0.0.1:1/x'], 'NAME'],
    [['source', 'add', 'kiosk-1', '--database', 'postgres://x@127.0.0.1:1/x', '--colour', 'red'], 'colour'],
    [['--central', '--database', 'postgres://x@127.0.0.1:1/x', '--port', '99999'], '--port'],
  ])('review %j exits 64 naming %s', async (argv, word) => {
    const { code, err } = await run(argv);
    expect(code).toBe(64);
    expect(err).toContain(word);
    expect(err).not.toMatch(/\n\s+at /);
  });

  it('names a database it cannot reach (CENTRAL_DB_FAILED), and a bad kind before trying it', async () => {
    const unreachable = await run(['source', 'add', 'kiosk-1', '--kind', 'kiosk', '--database', 'postgres://x@127.0.0.1:1/x']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.err).toMatch(/^portcullis-kiosk: CENTRAL_DB_FAILED: .*check --database/);
    const kind = await run(['source', 'add', 'kiosk-1', '--kind', 'server', '--database', 'postgres://x@127.0.0.1:1/x']);
    expect(kind.code).toBe(64);
    expect(kind.err).toContain('--kind: expected kiosk or hmi');
  });

  it('refuses siem send --central without a client certificate', async () => {
    const spool = join(tmpdir(), `central-command-${process.pid}.db`);
    const { code, err } = await run(['send', '--central', '--db', 'a.db', '--spool', spool, '--target', '127.0.0.1:6514'], siemCommand);
    expect(code).toBe(64);
    expect(err).toContain('--central needs --tls');
    expect(existsSync(spool)).toBe(false); // refused before anything was written
  });
});
