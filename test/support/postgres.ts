/**
 * A throwaway PostgreSQL cluster for tests and the bench: Debian's
 * postgresql 15 (scripts/setup.sh installs it), initdb into a temporary
 * folder, the server on a free loopback port and a unix socket in that
 * folder, stopped and deleted afterwards. PostgreSQL refuses to run as root,
 * so as root the cluster belongs to `nobody` and its commands run through
 * runuser.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../integration/rsyslog-harness.ts';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const NOBODY = 65534;

export interface TestPostgres {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** A connection string for pg and for `--database`. */
  readonly url: string;
  readonly dir: string;
  stop(): void;
}

export interface PostgresOptions {
  /** Extra server settings (`-c name=value`), e.g. for the bench's larger shared_buffers. */
  readonly settings?: Readonly<Record<string, string>>;
  /** Keep fsync on (the bench's ingestion rate must count it); tests turn it off. */
  readonly durable?: boolean;
}

/** Starts a cluster; throws naming the missing package when postgresql is not installed. */
export async function startPostgres(options: PostgresOptions = {}): Promise<TestPostgres> {
  if (!existsSync(join(PG_BIN, 'initdb'))) throw new Error(`${PG_BIN}/initdb is missing: run ./portcullis setup (Debian package postgresql)`);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pg-'));
  const asRoot = process.getuid?.() === 0;
  chmodSync(dir, 0o700);
  if (asRoot) chownSync(dir, NOBODY, NOBODY);
  const run = (command: string, args: string[]): void => {
    const argv = asRoot ? ['-u', 'nobody', '--', join(PG_BIN, command), ...args] : args;
    execFileSync(asRoot ? 'runuser' : join(PG_BIN, command), argv, { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  };
  const data = join(dir, 'data');
  const user = 'portcullis';
  run('initdb', ['-D', data, '-U', user, '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: dir,
    ...(options.durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...options.settings,
  };
  const serverOptions = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(' ');
  run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', serverOptions, '-w', '-t', '60', 'start']);
  let stopped = false;
  return {
    host: '127.0.0.1', port, user, database: 'postgres', dir,
    url: `postgres://${user}@127.0.0.1:${port}/postgres`,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
