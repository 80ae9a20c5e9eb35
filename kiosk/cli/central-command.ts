/**
 * The central review's commands (docs/review.md "Central review"):
 *
 *   review --central --database URL --tls-cert F --tls-key F --client-ca F [--ingest-host H] [--ingest-port 6514] [--host --port --public-name]
 *   review source add NAME... --kind kiosk|hmi [--site PLANT] --database URL
 *   review source disable|enable NAME --database URL
 *   review user add NAME --database URL       (password read from stdin)
 *   review token --database URL [--ttl-minutes N]
 *
 * The same page and API as the single-kiosk review, over every enrolled
 * source, with the receiver that takes their records over mutual TLS.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { displayText } from '../../manifest/names.ts';
import { EXIT } from '../core/exit-codes.ts';
import { UsageError } from '../core/errors.ts';
import { startReceiver } from '../review/central/receiver.ts';
import { CentralError, openCentralStore } from '../review/central/store.ts';
import { startReviewServer, type ReviewServer } from '../review/server.ts';
import type { Receiver } from '../review/central/receiver.ts';

export interface CentralStreams {
  readonly stdout?: { write(chunk: string): unknown };
  readonly stderr?: { write(chunk: string): unknown };
  readonly until?: Promise<unknown>;
  readonly onListening?: (server: ReviewServer, receiver: Receiver | null) => void;
}

const need = (value: string | undefined, flag: string): string => {
  if (!value) throw new UsageError(`${flag} is required`);
  return value;
};

function pemFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new CentralError('CENTRAL_SOURCE_INVALID', `${flag} ${displayText(path)}: cannot read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}): name the PEM file`, { cause });
  }
}

function port(value: string | undefined, flag: string, fallback: number): number {
  const n = Number(value ?? fallback);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag}: expected 0 to 65535`);
  return n;
}

/** `review --central ...`, `review source ...`, and `review user add|token` with --database. Resolves to an exit code; throws UsageError and PortcullisError for the caller's handler. */
export async function centralCommand(argv: readonly string[], streams: CentralStreams = {}): Promise<number> {
  try {
    return await central(argv, streams);
  } catch (error) {
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(error.message);
    throw error;
  }
}

async function central(argv: readonly string[], streams: CentralStreams): Promise<number> {
  const out = streams.stdout ?? process.stdout;
  const [first, second] = argv;
  if (first === 'source') {
    const { values, positionals } = parseArgs({ args: argv.slice(2), allowPositionals: true, strict: true, options: { database: { type: 'string' }, kind: { type: 'string' }, site: { type: 'string' } } });
    if (positionals.length === 0) throw new UsageError(`review source ${second ?? ''} needs at least one NAME`);
    if (second !== 'add' && second !== 'disable' && second !== 'enable') throw new UsageError('review source needs add, disable or enable');
    if (second === 'add' && values.kind !== 'kiosk' && values.kind !== 'hmi') throw new UsageError('--kind: expected kiosk or hmi');
    const store = await openCentralStore(need(values.database, '--database'));
    try {
      for (const name of positionals) {
        if (second === 'add') {
          if (values.kind !== 'kiosk' && values.kind !== 'hmi') throw new UsageError('--kind: expected kiosk or hmi');
          await store.enrol(name, values.kind, values.site);
          out.write(`source ${name} (${values.kind}${values.site ? `, site ${values.site}` : ''}) enrolled: its client certificate's CN must be ${name}\n`);
        } else if (second === 'disable' || second === 'enable') {
          await store.setDisabled(name, second === 'disable');
          out.write(`source ${name} ${second}d\n`);
        } else {
          throw new UsageError('review source needs add, disable or enable');
        }
      }
    } finally {
      await store.close();
    }
    return EXIT.OK;
  }
  if (first === 'user' && second === 'add') {
    const { values, positionals } = parseArgs({ args: argv.slice(2), allowPositionals: true, strict: true, options: { database: { type: 'string' } } });
    if (positionals.length !== 1) throw new UsageError('review user add needs exactly one NAME');
    const password = readFileSync(0, 'utf8').split(/\r?\n/)[0] ?? '';
    const store = await openCentralStore(need(values.database, '--database'));
    try {
      await store.addUser(positionals[0]!, password);
    } finally {
      await store.close();
    }
    out.write(`staff user ${positionals[0]!} added to the central review\n`);
    return EXIT.OK;
  }
  if (first === 'token') {
    const { values } = parseArgs({ args: argv.slice(1), strict: true, options: { database: { type: 'string' }, 'ttl-minutes': { type: 'string' } } });
    const minutes = Number(values['ttl-minutes'] ?? 15);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw new UsageError('--ttl-minutes: expected 1 to 1440');
    const store = await openCentralStore(need(values.database, '--database'));
    try {
      const { token, expiresAt } = await store.issueToken('cli', minutes * 60_000);
      out.write(`${token}\n`);
      (streams.stderr ?? process.stderr).write(`one-time central review token, valid once until ${expiresAt}\n`);
    } finally {
      await store.close();
    }
    return EXIT.OK;
  }
  const { values } = parseArgs({
    args: [...argv], strict: true,
    options: {
      central: { type: 'boolean' }, database: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'public-name': { type: 'string', multiple: true },
      'ingest-host': { type: 'string' }, 'ingest-port': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'client-ca': { type: 'string' },
      'no-ingest': { type: 'boolean' },
    },
  });
  const webPort = port(values.port, '--port', 8765);
  const ingestPort = port(values['ingest-port'], '--ingest-port', 6514);
  const tls = values['no-ingest'] ? null : {
    cert: pemFile(need(values['tls-cert'], '--tls-cert'), '--tls-cert'),
    key: pemFile(need(values['tls-key'], '--tls-key'), '--tls-key'),
    ca: pemFile(need(values['client-ca'], '--client-ca'), '--client-ca'),
  };
  const store = await openCentralStore(need(values.database, '--database'));
  let receiver: Receiver | null = null;
  try {
    receiver = tls ? await startReceiver({ store, tls, port: ingestPort, host: values['ingest-host'] ?? '127.0.0.1' }) : null;
    const server = await startReviewServer({ central: store, port: webPort, ...(values.host ? { host: values.host } : {}), publicNames: values['public-name'] ?? [] });
    out.write(`central review at ${server.url}/ (sign in with a staff account or "review token --database")\n`);
    if (receiver) out.write(`receiving records on ${values['ingest-host'] ?? '127.0.0.1'}:${receiver.port} (TLS, client certificates from --client-ca whose CN is an enrolled source)\n`);
    streams.onListening?.(server, receiver);
    await (streams.until ?? new Promise((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    }));
    await server.close();
    return EXIT.OK;
  } finally {
    await receiver?.close();
    await store.close();
  }
}
