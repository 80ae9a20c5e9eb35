/**
 * `portcullis-kiosk review ...` and `siem send`: each command takes parsed
 * options and `{ stdout, stderr }`, and resolves to an exit code (0 ok,
 * 1 failure, 64 usage). `reviewCommand(argv)` and `siemCommand(argv)` parse
 * raw arguments for the CLI's composition root.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, watch } from 'node:fs';
import Database from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { PortcullisError } from '../../manifest/errors.ts';
import { displayText } from '../audit/store.ts';
import { EXIT } from '../core/exit-codes.ts';
import { openReviewStore, ReviewError } from '../review/review-store.ts';
import { startReviewServer, type ReviewServer } from '../review/server.ts';
import { kioskChainOf, kioskHeartbeat, openSiemSpool, SiemError, type SiemTarget } from '../review/siem.ts';
import { defaultKioskId } from './scan-command.ts';
import { UsageError } from '../core/errors.ts';

export const REVIEW_USAGE = `usage:
  portcullis-kiosk review --db AUDIT.db --review-db REVIEW.db [--host 127.0.0.1] [--port 8765] [--public-name NAME[:PORT]]...
  portcullis-kiosk review user add NAME --review-db REVIEW.db      (password read from stdin)
  portcullis-kiosk review token --review-db REVIEW.db [--ttl-minutes 15]
  portcullis-kiosk review import-agent-log FILE... --review-db REVIEW.db
  portcullis-kiosk siem send --db AUDIT.db --spool SPOOL.db --target HOST:PORT [--tls --ca FILE
                   [--cert FILE --key FILE] [--servername NAME]] [--review-db REVIEW.db] [--follow SECONDS] [--central [--kiosk-id ID]]
central review (PostgreSQL):
  portcullis-kiosk review --central --database URL --tls-cert FILE --tls-key FILE --client-ca FILE [--ingest-host H] [--ingest-port 6514]
                   [--host 127.0.0.1] [--port 8765] [--public-name NAME[:PORT]]...
  portcullis-kiosk review source add NAME... --kind kiosk|hmi [--site PLANT] --database URL      (also: source disable|enable NAME)
  portcullis-kiosk review user add NAME --database URL | review token --database URL`;

export interface TextSink {
  write(chunk: string): unknown;
}
export interface Streams {
  readonly stdout?: TextSink;
  readonly stderr?: TextSink;
}


async function run(streams: Streams, body: (out: TextSink) => Promise<number>): Promise<number> {
  const err = streams.stderr ?? process.stderr;
  try {
    return await body(streams.stdout ?? process.stdout);
  } catch (error) {
    if (error instanceof UsageError) {
      err.write(`portcullis-kiosk: ${error.message}\n\n${REVIEW_USAGE}\n`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      err.write(`portcullis-kiosk: ${error.code}: ${displayText(error.message)}\n`);
      return EXIT.FAILURE;
    }
    throw error;
  }
}

const need = (value: string | undefined, flag: string): string => {
  if (!value) throw new UsageError(`${flag} is required`);
  return value;
};

export interface ReviewServeOptions extends Streams {
  readonly db?: string;
  readonly reviewDb?: string;
  readonly host?: string;
  readonly port?: string | number;
  /** Names browsers use to reach the review through a TLS proxy (or with --host 0.0.0.0), as in their address bar. */
  readonly publicNames?: readonly string[];
}

export interface ServeHooks {
  /** Resolves when the server should stop (default: SIGINT or SIGTERM). */
  readonly until?: Promise<unknown>;
  readonly onListening?: (server: ReviewServer) => void;
}

const LOOPBACK = ['127.0.0.1', 'localhost', '::1', '[::1]'];
/** A host name, IPv4 address or [IPv6] address, and an optional port: what a browser sends as Host. */
const PUBLIC_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** `review`: serve the review page until stopped. */
export function reviewServeCommand(options: ReviewServeOptions & ServeHooks): Promise<number> {
  return run(options, async (out) => {
    const port = Number(options.port ?? 8765);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port: expected 0 to 65535');
    const publicNames = options.publicNames ?? [];
    for (const name of publicNames) {
      if (!PUBLIC_NAME.test(name)) throw new UsageError(`--public-name ${JSON.stringify(displayText(name))}: expected a host name or address with an optional :PORT, as in the browser's address bar (no scheme, no path)`);
    }
    const staff = openReviewStore(need(options.reviewDb, '--review-db'));
    try {
      const server = await startReviewServer({ auditDb: need(options.db, '--db'), staff, port, publicNames, ...(options.host ? { host: options.host } : {}) });
      out.write(`review at ${server.url}/ (read-only; sign in with a staff account or "review token")\n`);
      if (publicNames.length > 0) out.write(`also answering as ${publicNames.join(', ')}\n`);
      if (options.host && !LOOPBACK.includes(options.host)) {
        out.write('warning: listening beyond this machine and the review has no TLS: passwords and session cookies cross the network in clear unless a TLS proxy is in front; prefer 127.0.0.1 with a proxy on this machine, or an SSH tunnel\n');
      }
      options.onListening?.(server);
      await (options.until ?? new Promise((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      }));
      await server.close();
      return EXIT.OK;
    } finally {
      staff.close();
    }
  });
}

export interface ReviewUserAddOptions extends Streams {
  readonly reviewDb?: string;
  readonly username?: string;
  /** Default: read from stdin (first line). */
  readonly password?: string;
}

/** `review user add NAME`: a staff account, password hashed with scrypt. */
export function reviewUserAddCommand(options: ReviewUserAddOptions): Promise<number> {
  return run(options, async (out) => {
    const username = need(options.username, 'NAME');
    const password = options.password ?? readFileSync(0, 'utf8').split(/\r?\n/)[0] ?? '';
    const staff = openReviewStore(need(options.reviewDb, '--review-db'));
    try {
      await staff.addUser(username, password);
    } finally {
      staff.close();
    }
    out.write(`staff user ${username} added\n`);
    return EXIT.OK;
  });
}

export interface ReviewTokenOptions extends Streams {
  readonly reviewDb?: string;
  readonly ttlMinutes?: string | number;
}

/** `review token`: print a one-time login token. */
export function reviewTokenCommand(options: ReviewTokenOptions): Promise<number> {
  return run(options, (out) => {
    const minutes = Number(options.ttlMinutes ?? 15);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw new UsageError('--ttl-minutes: expected 1 to 1440');
    const staff = openReviewStore(need(options.reviewDb, '--review-db'));
    try {
      const { token, expiresAt } = staff.issueToken('cli', minutes * 60_000);
      out.write(`${token}\n`);
      (options.stderr ?? process.stderr).write(`one-time review token, valid once until ${expiresAt}\n`);
    } finally {
      staff.close();
    }
    return Promise.resolve(EXIT.OK);
  });
}

export interface ReviewImportOptions extends Streams {
  readonly reviewDb?: string;
  readonly files?: readonly string[];
}

/** A file to import, read whole: a missing one, a folder or a device is named as such, never taken for a damaged log. */
function readImportFile(file: string): Buffer {
  const shown = displayText(file);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO given by mistake must not hang the import.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ReviewError('REVIEW_IMPORT_NOT_FOUND', `${shown}: no such file: check the path of the agent log`, { cause });
    throw new ReviewError('REVIEW_IMPORT_UNREADABLE', `${shown}: cannot open (${code ?? (cause as Error).message}): check its permissions`, { cause });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new ReviewError('REVIEW_IMPORT_UNREADABLE', `${shown}: not a regular file: give the agent log file itself`);
    return readFileSync(fd);
  } catch (cause) {
    if (cause instanceof ReviewError) throw cause;
    throw new ReviewError('REVIEW_IMPORT_UNREADABLE', `${shown}: cannot read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  } finally {
    closeSync(fd);
  }
}

/** `review import-agent-log FILE...`: agent JSON-lines logs (chain verified) or `log export --format json` files. */
export function reviewImportAgentLogCommand(options: ReviewImportOptions): Promise<number> {
  return run(options, (out) => {
    const files = options.files ?? [];
    if (files.length === 0) throw new UsageError('import-agent-log needs at least one FILE');
    // Every file is read before anything is imported: a wrong path imports nothing.
    const contents = files.map((file) => ({ file, bytes: readImportFile(file) }));
    const staff = openReviewStore(need(options.reviewDb, '--review-db'));
    try {
      for (const { file, bytes } of contents) {
        let result;
        try {
          result = staff.importAgentLog(bytes);
        } catch (error) {
          if (error instanceof ReviewError) throw new ReviewError(error.code, `${displayText(file)}: ${error.message}`, { cause: error });
          throw error;
        }
        out.write(`${displayText(file)}: ${result.format}, ${result.records} records from ${result.hmis.join(', ') || 'no HMI'}: ${result.added} new, ${result.duplicates} already imported${result.format === 'export-json' ? ' (an export carries no prev hashes: its chain could not be verified)' : ''}\n`);
        for (const hmi of result.newChains) out.write(`${displayText(file)}: HMI ${hmi} began a new log chain (a reinstall or a log begun again): its records are kept apart from its earlier chain's; find out which before relying on it\n`);
      }
    } finally {
      staff.close();
    }
    return Promise.resolve(EXIT.OK);
  });
}

export interface SiemSendOptions extends Streams {
  readonly db?: string;
  readonly spool?: string;
  readonly reviewDb?: string;
  readonly target?: string;
  readonly tls?: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
  readonly sdId?: string;
  /** Repeat every N seconds until `until` resolves (or a signal); default: once. */
  readonly follow?: string | number;
  readonly until?: Promise<unknown>;
  /** To the central review: every ledger row as a record, a heartbeat, and sign-ins; the receiver's ACK required. */
  readonly central?: boolean;
  /** The kiosk's id, as its scans record it and its client certificate's CN says (default: as `scan` chooses it, from the host name). */
  readonly kioskId?: string;
}

/** A PEM file for the TLS connection: a missing or unreadable one is named, with its flag. */
function readTlsFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    throw new SiemError('SIEM_CONFIG_INVALID', `${flag} ${displayText(path)}: cannot read (${why}): name the PEM file`, { cause });
  }
}

function parseTarget(options: SiemSendOptions): SiemTarget {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(need(options.target, '--target'));
  if (!match || Number(match[2]) > 65535) throw new UsageError('--target: expected HOST:PORT');
  const host = match[1]!.replace(/^\[|\]$/g, '');
  if (!options.tls) return { host, port: Number(match[2]), transport: 'tcp' };
  return {
    host, port: Number(match[2]), transport: 'tls',
    tls: {
      ca: readTlsFile(need(options.ca, '--ca'), '--ca'),
      ...(options.cert ? { cert: readTlsFile(options.cert, '--cert') } : {}),
      ...(options.key ? { key: readTlsFile(options.key, '--key') } : {}),
      ...(options.servername ? { servername: options.servername } : {}),
    },
  };
}

/** `siem send`: spool what is new, then deliver everything spooled. Exit 1 when the receiver could not be reached (the messages stay spooled). */
export function siemSendCommand(options: SiemSendOptions): Promise<number> {
  return run(options, async (out) => {
    const target = parseTarget(options);
    const auditDb = need(options.db, '--db');
    if (options.central && (!options.tls || !options.cert || !options.key)) throw new UsageError('--central needs --tls, --ca, --cert and --key: the central review takes only client certificates from the site CA');
    const spool = openSiemSpool(need(options.spool, '--spool'), options.sdId ? { format: { sdId: options.sdId } } : {});
    const staff = options.reviewDb ? openReviewStore(options.reviewDb) : undefined;
    const follow = options.follow === undefined ? 0 : Number(options.follow);
    const kioskId = options.kioskId ?? defaultKioskId();
    const centralTarget: SiemTarget | null = options.central ? { ...target, protocol: 'central', heartbeat: () => heartbeatOf(auditDb, kioskId) } : null;
    if (!Number.isFinite(follow) || follow < 0) throw new UsageError('--follow: expected seconds');
    let stop = false;
    const stopped = new AbortController();
    void (options.until ?? (follow > 0 ? new Promise((resolve) => process.once('SIGTERM', resolve)) : Promise.resolve())).then(() => {
      stop = true;
      stopped.abort();
    });
    try {
      for (;;) {
        let added: number;
        if (centralTarget) {
          added = spool.collectCentral({ auditDb, kioskId, ...(staff ? { staff } : {}) }).added;
        } else {
          const collected = spool.collect({ auditDb, ...(staff ? { staff } : {}) });
          added = collected.added;
          if (!collected.chainOk) out.write('warning: the audit chain is broken: CHAIN_BROKEN was spooled and nothing past the break is exported\n');
        }
        let failed = false;
        try {
          const sent = await spool.deliver(centralTarget ?? target);
          out.write(`siem: ${added} spooled, ${sent} sent, ${spool.pending()} pending\n`);
        } catch (error) {
          if (!(error instanceof PortcullisError) || follow === 0) throw error;
          failed = true;
          (options.stderr ?? process.stderr).write(`siem: ${error.code}: ${error.message}\n`);
        }
        if (follow === 0 || stop) return failed ? EXIT.FAILURE : EXIT.OK;
        // A new record (a blocked file) goes at once: the audit database's WAL changing ends the wait early.
        await waitForChange(auditDb, follow * 1000, stopped.signal);
        if (stop) return EXIT.OK;
      }
    } finally {
      staff?.close();
      spool.close();
    }
  });
}

/** The kiosk's heartbeat for the central review, read fresh each connection. */
function heartbeatOf(auditDb: string, kioskId: string): string {
  const db = new Database(auditDb, { readonly: true, fileMustExist: true });
  try {
    return kioskHeartbeat(db, kioskChainOf(db) ?? '0'.repeat(64), kioskId);
  } finally {
    db.close();
  }
}

/** Waits `ms`, or less when the audit database or its WAL changes (a scan was recorded). */
async function waitForChange(auditDb: string, ms: number, stop: AbortSignal): Promise<void> {
  const controller = new AbortController();
  if (stop.aborted) return;
  const onStop = (): void => controller.abort();
  stop.addEventListener('abort', onStop, { once: true });
  const watchers = [auditDb, `${auditDb}-wal`].flatMap((path) => {
    try {
      return [watch(path, { persistent: false }, () => setTimeout(() => controller.abort(), 100))];
    } catch {
      return []; // no WAL yet
    }
  });
  try {
    await sleep(ms, undefined, { signal: controller.signal }).catch(() => undefined);
  } finally {
    stop.removeEventListener('abort', onStop);
    for (const w of watchers) w.close();
  }
}

/** `review ...` from raw arguments. */
export function reviewCommand(argv: readonly string[], streams: Streams & ServeHooks = {}): Promise<number> {
  return run(streams, () => {
    const [first, second, ...rest] = argv;
    try {
      // The central review: any of its flags, or a source command.
      if (first === 'source' || argv.includes('--central') || argv.includes('--database') || argv.some((a) => a.startsWith('--database='))) {
        return import('./central-command.ts').then(({ centralCommand }) => centralCommand(argv, streams));
      }
      if (first === 'user' && second === 'add') {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true, options: { 'review-db': { type: 'string' } } });
        if (positionals.length !== 1) throw new UsageError('review user add needs exactly one NAME');
        return reviewUserAddCommand({ ...streams, reviewDb: values['review-db'], username: positionals[0] });
      }
      if (first === 'token') {
        const { values } = parseArgs({ args: argv.slice(1), strict: true, options: { 'review-db': { type: 'string' }, 'ttl-minutes': { type: 'string' } } });
        return reviewTokenCommand({ ...streams, reviewDb: values['review-db'], ttlMinutes: values['ttl-minutes'] });
      }
      if (first === 'import-agent-log') {
        const { values, positionals } = parseArgs({ args: argv.slice(1), allowPositionals: true, strict: true, options: { 'review-db': { type: 'string' } } });
        return reviewImportAgentLogCommand({ ...streams, reviewDb: values['review-db'], files: positionals });
      }
      const { values } = parseArgs({
        args: [...argv], strict: true,
        options: { db: { type: 'string' }, 'review-db': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'public-name': { type: 'string', multiple: true } },
      });
      return reviewServeCommand({ ...streams, db: values.db, reviewDb: values['review-db'], host: values.host, port: values.port, ...(values['public-name'] ? { publicNames: values['public-name'] } : {}) });
    } catch (error) {
      if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(error.message);
      throw error;
    }
  });
}

/** `siem send ...` from raw arguments. */
export function siemCommand(argv: readonly string[], streams: Streams = {}): Promise<number> {
  return run(streams, () => {
    const [command, ...rest] = argv;
    if (command !== 'send') throw new UsageError('siem needs a command: send');
    try {
      const { values } = parseArgs({
        args: rest, strict: true,
        options: {
          db: { type: 'string' }, spool: { type: 'string' }, 'review-db': { type: 'string' }, target: { type: 'string' }, tls: { type: 'boolean' },
          ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, servername: { type: 'string' }, 'sd-id': { type: 'string' }, follow: { type: 'string' },
          central: { type: 'boolean' }, 'kiosk-id': { type: 'string' },
        },
      });
      return siemSendCommand({ ...streams, ...values, reviewDb: values['review-db'], sdId: values['sd-id'], kioskId: values['kiosk-id'] });
    } catch (error) {
      if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(error.message);
      throw error;
    }
  });
}
