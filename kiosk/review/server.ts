/**
 * The review server for security staff: node:http on 127.0.0.1 unless told
 * otherwise, read-only over the kiosk's audit database, behind a login
 * (scrypt-hashed staff passwords or a one-time token). Sessions are random
 * ids in an HttpOnly, SameSite=Strict cookie; the page runs under a strict
 * Content-Security-Policy (script-src 'self', no inline code) and renders
 * every drive-supplied value with textContent. The Host header is checked so
 * a DNS-rebinding page cannot reach the API through the browser.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { PortcullisError } from '../../manifest/errors.ts';
import { formatIssues, object, optional, parse, string } from '../../manifest/schema.ts';
import { CSV_COLUMNS, parseFilter, scanCsvRows } from '../audit/export.ts';
import { csvRecord } from '../audit/csv.ts';
import { getScan, listScans, scanIds, type ScanFilter } from '../audit/queries.ts';
import type { VerifyResult } from '../audit/chain.ts';
import { displayText, openAuditStore, type AuditStore } from '../audit/store.ts';
import { LoginThrottle, type LoginLimits } from './login-limits.ts';
import { APP_CSS, APP_HTML, APP_JS, LOGIN_FAILED_HTML, LOGIN_HTML, LOGIN_LOCKED_HTML } from './page.ts';
import { ReviewError, type AgentRecord, type SignInEvent, type StaffStore } from './review-store.ts';
import type { CentralStore } from './central/store.ts';
import {
  centralActivity, centralAgentRecordsFor, centralAlerts, centralChainState, centralDailyStats, centralGetScan, centralHealth, centralListScans,
  centralManifestOf, centralScanIds, filePath, hmiEventsWithoutManifest,
} from './central/queries.ts';

export const SESSION_COOKIE = 'portcullis_review';
const SESSION_IDLE_MS = 30 * 60_000; // ms without a request before a session ends
const SESSION_MAX_MS = 8 * 60 * 60_000; // ms a session lives at most
const LOGIN_BODY_MAX = 4096; // bytes
const MAX_LIMIT = 1000; // scans per list request
const CHART_DAYS = 30; // days in the default chart window
const CHAIN_RECHECK_MS = 5 * 60_000; // ms after which the chain state is verified again

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');

export interface ReviewServerOptions {
  /** The kiosk's audit database (the single-kiosk review); absent with `central`. */
  readonly auditDb?: string;
  /** The single-kiosk review's accounts and imported agent records; absent with `central`. */
  readonly staff?: StaffStore;
  /** The central review: every source's records, accounts and sign-ins in PostgreSQL (central/store.ts). */
  readonly central?: CentralStore;
  readonly host?: string; // default 127.0.0.1
  /**
   * Names browsers reach the review by besides the listening address, exactly as in their address bar
   * (`review.plant.example`, `review.plant.example:8443`): behind a TLS reverse proxy, or with `host` 0.0.0.0.
   * The Host and Origin checks accept them. Required when `host` is every address (0.0.0.0, ::).
   */
  readonly publicNames?: readonly string[];
  readonly port?: number; // default 8765; 0 picks a free port
  readonly now?: () => Date;
  /** Sign-in limits (default LOGIN_LIMITS: 5 per account, 20 per address, in 10 minutes). */
  readonly loginLimits?: LoginLimits;
}

export interface ReviewServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

interface Session {
  readonly user: string;
  readonly created: number;
  seen: number;
}

class HttpError extends PortcullisError<'BAD_REQUEST' | 'NOT_FOUND' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'METHOD_NOT_ALLOWED'> {}
const STATUS = { BAD_REQUEST: 400, UNAUTHORIZED: 401, FORBIDDEN: 403, NOT_FOUND: 404, METHOD_NOT_ALLOWED: 405 } as const;

const filterText = optional(string({ max: 512 }));
const FILTER_SHAPE = { since: filterText, until: filterText, verdict: filterText, operator: filterText, serial: filterText, file: filterText };
const listQuery = object({ ...FILTER_SHAPE, limit: optional(string({ pattern: /^[0-9]{1,6}$/, patternMessage: 'expected a number' })) });
const exportQuery = object({
  ...FILTER_SHAPE,
  format: string({ pattern: /^(csv|json)$/, patternMessage: 'expected csv or json' }),
  records: optional(string({ pattern: /^(scans|agent)$/, patternMessage: 'expected scans or agent' })),
});

/** Columns of the HMI-record export: the agent record, the scan it belongs to, and whether its chain was verified. */
export const AGENT_CSV_COLUMNS = [
  'scan_id', 'manifest_digest', 'hmi', 'seq', 'time', 'event', 'outcome', 'code', 'reason', 'drive_label',
  'path', 'destination', 'sha256', 'blake3', 'size', 'hash', 'chain',
] as const;

function agentJsonRow(scanId: string, r: AgentRecord): Record<string, string | number | null> {
  return {
    scanId, manifestDigest: r.manifestDigest, hmi: r.hmi, seq: r.seq, time: r.time, event: r.event, outcome: r.outcome, code: r.code, reason: r.reason,
    driveLabel: r.driveLabel, path: r.path, destination: r.destination, sha256: r.sha256, blake3: r.blake3, size: r.size, hash: r.hash, chain: r.chain,
  };
}

function agentCsvRow(scanId: string, r: AgentRecord): string {
  const cells = [scanId, r.manifestDigest, r.hmi, r.seq, r.time, r.event, r.outcome, r.code, r.reason, r.driveLabel, r.path, r.destination, r.sha256, r.blake3, r.size, r.hash, r.chain];
  return csvRecord(cells.map((c) => (typeof c === 'string' ? displayText(c) : c)));
}
const chartQuery = object({ since: filterText, until: filterText });
const emptyQuery = object({});
const loginForm = object({ username: optional(string({ max: 64 })), password: optional(string({ max: 1024 })), token: optional(string({ max: 128 })) });

/** The query string as a plain object; a repeated parameter is refused rather than guessed at. */
function queryObject(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (Object.hasOwn(out, key)) throw new HttpError('BAD_REQUEST', `${key}: given more than once`);
    out[key] = value;
  }
  return out;
}

function checked<T>(schema: Parameters<typeof parse<T>>[0], value: unknown): T {
  const result = parse(schema, value);
  if (!result.ok) throw new HttpError('BAD_REQUEST', formatIssues(result.issues));
  return result.value;
}

function toFilter(q: { since?: string; until?: string; verdict?: string; operator?: string; serial?: string; file?: string; limit?: string }, defaultLimit?: number): ScanFilter {
  try {
    const filter = parseFilter(q, defaultLimit);
    if (filter.limit !== undefined && filter.limit > MAX_LIMIT) return { ...filter, limit: MAX_LIMIT };
    return filter;
  } catch (error) {
    if (error instanceof PortcullisError && error.code === 'USAGE') throw new HttpError('BAD_REQUEST', error.message.replaceAll('--', ''));
    throw error;
  }
}

/** A deep copy with every string escaped for display (a tampered database may hold anything). */
export function escapedJson(value: unknown): unknown {
  if (typeof value === 'string') return displayText(value);
  if (Array.isArray(value)) return value.map(escapedJson);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [displayText(k), escapedJson(v)]));
  return value;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > LOGIN_BODY_MAX) throw new HttpError('BAD_REQUEST', `the request body exceeds ${LOGIN_BODY_MAX} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface DailyStats {
  readonly since: string;
  readonly until: string;
  readonly days: ReadonlyArray<{ day: string; scans: number; blockedScans: number; rejected: number; blockedFiles: number }>;
  readonly topReasons: ReadonlyArray<{ code: string; count: number }>;
}

/** Scans, scans with blocks and blocked files per UTC day, and the most frequent reason codes, over [since, until). */
export function dailyStats(db: Database.Database, since: Date | undefined, until: Date | undefined): DailyStats {
  const latest = db.prepare('SELECT max(started_at) FROM scans').pluck().get() as string | null;
  const end = until ?? new Date(Date.parse(`${(latest ?? new Date().toISOString()).slice(0, 10)}T00:00:00Z`) + 86_400_000);
  const start = since ?? new Date(end.getTime() - CHART_DAYS * 86_400_000);
  const range = [start.toISOString(), end.toISOString()];
  const scans = db.prepare(`SELECT substr(s.started_at, 1, 10) AS day, count(*) AS scans,
      sum(CASE WHEN r.verdict IN ('partial', 'rejected') THEN 1 ELSE 0 END) AS blocked,
      sum(CASE WHEN r.verdict = 'rejected' THEN 1 ELSE 0 END) AS rejected
    FROM scans s LEFT JOIN scan_results r ON r.scan_id = s.scan_id
    WHERE s.started_at >= ? AND s.started_at < ? GROUP BY day`).all(...range) as Array<{ day: string; scans: number; blocked: number; rejected: number }>;
  const files = db.prepare(`SELECT substr(s.started_at, 1, 10) AS day, count(*) AS n FROM scans s JOIN files f ON f.scan_id = s.scan_id
    WHERE s.started_at >= ? AND s.started_at < ? AND f.verdict = 'blocked' GROUP BY day`).all(...range) as Array<{ day: string; n: number }>;
  const reasons = db.prepare(`SELECT x.code AS code, count(*) AS count FROM scans s JOIN reasons x ON x.scan_id = s.scan_id
    WHERE s.started_at >= ? AND s.started_at < ? GROUP BY x.code ORDER BY count DESC, code LIMIT 8`).all(...range) as Array<{ code: string; count: number }>;
  const byDay = new Map(scans.map((s) => [s.day, s]));
  const blockedFiles = new Map(files.map((f) => [f.day, f.n]));
  const days: Array<DailyStats['days'][number]> = [];
  for (let t = Date.parse(`${range[0]!.slice(0, 10)}T00:00:00Z`); t < end.getTime(); t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    const s = byDay.get(day);
    days.push({ day, scans: s?.scans ?? 0, blockedScans: s?.blocked ?? 0, rejected: s?.rejected ?? 0, blockedFiles: blockedFiles.get(day) ?? 0 });
  }
  return { since: range[0]!, until: range[1]!, days, topReasons: reasons.map((r) => ({ code: displayText(r.code), count: r.count })) };
}

/** 0.0.0.0 or :: (in any spelling): the address that means every address of the machine. */
function isEveryAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIPv4(bare)) return bare === '0.0.0.0';
  return isIPv6(bare) && new URL(`http://[${bare}]/`).hostname === '[::]';
}

/** Why the server could not listen, with what to do about it. */
function listenError(cause: unknown, host: string, port: number): ReviewError {
  const code = (cause as NodeJS.ErrnoException).code;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE') return new ReviewError('REVIEW_PORT_IN_USE', `${where} is already in use (another review server?): choose another --port`, { cause });
  if (code === 'EACCES') return new ReviewError('REVIEW_LISTEN_FAILED', `${where}: not allowed to listen there (ports below 1024 need privileges): choose a --port above 1023`, { cause });
  if (code === 'EADDRNOTAVAIL') return new ReviewError('REVIEW_LISTEN_FAILED', `${where}: ${host} is not an address of this machine: check --host`, { cause });
  return new ReviewError('REVIEW_LISTEN_FAILED', `${where}: cannot listen (${code ?? (cause as Error).message}): check --host and --port`, { cause });
}

/** Starts the review server; resolves once it listens. */
export async function startReviewServer(options: ReviewServerOptions): Promise<ReviewServer> {
  const host = options.host ?? '127.0.0.1';
  const publicNames = (options.publicNames ?? []).map((name) => name.toLowerCase());
  if (isEveryAddress(host) && publicNames.length === 0) {
    // Remote browsers would send the machine's name or address as Host, which the DNS-rebinding check cannot guess.
    throw new ReviewError('REVIEW_PUBLIC_NAME_NEEDED', `--host ${host} listens on every address, but a browser there is answered only under a name the review knows: add --public-name NAME[:PORT] as browsers will type it (and put a TLS proxy in front), or keep 127.0.0.1 and use an SSH tunnel`);
  }
  const now = options.now ?? (() => new Date());
  const central = options.central ?? null;
  if (!central && (!options.auditDb || !options.staff)) throw new ReviewError('REVIEW_OPEN_FAILED', 'the review needs an audit database and a review database, or a central database');
  const auditDb = options.auditDb ?? '';
  // The store checks the schema version; a second read-only handle serves the chart's aggregate queries.
  const audit: AuditStore | null = central ? null : openAuditStore(auditDb, { readonly: true });
  const db = central ? null : new Database(auditDb, { readonly: true, fileMustExist: true });
  const staff = options.staff;
  /** Sign-ins, failures, locks, sign-outs and tokens, in the review database or the central one (SR 2.8); a log that fails does not open the door. */
  const recordSignIn = async (event: SignInEvent): Promise<void> => {
    if (central) await central.recordSignIn(event);
    else staff!.recordSignIn(event);
  };
  const data = {
    listScans: (f: ScanFilter) => (central ? centralListScans(central.pool, f) : Promise.resolve(listScans(db!, f))),
    getScan: (id: string, file: string | null) => (central ? centralGetScan(central.pool, id, file) : Promise.resolve(getScan(db!, id, file))),
    scanIds: (f: ScanFilter) => (central ? centralScanIds(central.pool, f) : Promise.resolve(scanIds(db!, f))),
    manifestOf: (id: string) => (central ? centralManifestOf(central.pool, id)
      : Promise.resolve((db!.prepare('SELECT manifest_digest FROM scan_results WHERE scan_id = ?').pluck().get(id) as string | null | undefined) ?? null)),
    agentRecordsFor: (digest: string): Promise<readonly AgentRecord[]> => (central ? centralAgentRecordsFor(central.pool, digest) : Promise.resolve(staff!.agentRecordsFor(digest))),
    dailyStats: (since?: Date, until?: Date) => (central ? centralDailyStats(central.pool, since, until) : Promise.resolve(dailyStats(db!, since, until))),
  };
  const sessions = new Map<string, Session>(); // key: SHA-256 of the cookie value
  const throttle = new LoginThrottle(options.loginLimits, () => now().getTime());
  let allowedHosts: Set<string> = new Set();

  // The chain state: verified in a worker thread, cached, re-verified when older than CHAIN_RECHECK_MS.
  let chain: { result: VerifyResult | { error: string }; checkedAt: string; at: number } | null = null;
  let checking: Promise<void> | null = null;
  let worker: Worker | null = null;
  const checkChain = (): Promise<void> => {
    checking ??= new Promise<void>((resolve) => {
      const w = new Worker(new URL('./chain-worker.ts', import.meta.url), { workerData: { auditDb } });
      worker = w;
      let settled = false;
      const done = (result: VerifyResult | { error: string }): void => {
        if (settled) return;
        settled = true;
        chain = { result, checkedAt: now().toISOString(), at: Date.now() };
        checking = null;
        worker = null;
        resolve();
      };
      w.once('message', (m: { ok: true; result: VerifyResult } | { ok: false; error: string }) => done(m.ok ? m.result : { error: m.error }));
      w.once('error', (error: Error) => done({ error: error.message }));
      w.once('exit', (code: number) => done({ error: `the verification stopped (exit code ${code})` }));
    });
    return checking;
  };

  const allowedOrigin = (origin: string): boolean => {
    const match = /^https?:\/\/([^/]+)$/.exec(origin);
    return match !== null && allowedHosts.has(match[1]!.toLowerCase());
  };

  const sessionKey = (id: string): string => createHash('sha256').update(id).digest('hex');
  const sessionOf = (req: IncomingMessage): { key: string; session: Session } | null => {
    const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (!id) return null;
    const key = sessionKey(id);
    const session = sessions.get(key);
    const t = now().getTime();
    if (!session || t - session.seen > SESSION_IDLE_MS || t - session.created > SESSION_MAX_MS) {
      sessions.delete(key);
      return null;
    }
    session.seen = t;
    return { key, session };
  };

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string | string[]> = {}): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, value: unknown): void => send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
  const redirect = (res: ServerResponse, to: string, extra: Record<string, string | string[]> = {}): void => {
    res.writeHead(303, { location: to, 'content-length': 0, ...extra });
    res.end();
  };

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? '')) throw new HttpError('BAD_REQUEST', 'expected a form');
    const form = checked(loginForm, Object.fromEntries(new URLSearchParams(await readBody(req))));
    const address = req.socket.remoteAddress ?? 'unknown';
    let user: string | null = null;
    const auth = central ?? staff!;
    if (form.token) {
      // A valid token always signs in, locked out or not: it cannot be guessed, and it is the way in while an account is locked.
      user = (await auth.useToken(form.token.trim())) ? 'token' : null;
      if (user === null) throttle.failedWithoutPassword(address);
      await recordSignIn({ event: user === null ? 'TOKEN_FAILED' : 'TOKEN_USED', username: null, method: 'token', address });
    } else if (form.username && form.password) {
      // Counted before the slow check, so concurrent guesses cannot get past the limit.
      const attempt = throttle.beginPassword(address, form.username);
      if (!attempt.ok) {
        await recordSignIn({ event: 'SIGN_IN_LOCKED', username: form.username, method: 'password', address });
        send(res, 429, 'text/html; charset=utf-8', LOGIN_LOCKED_HTML, { 'retry-after': String(Math.ceil(attempt.retryAfterMs / 1000)) });
        return;
      }
      if (await auth.checkPassword(form.username, form.password)) {
        attempt.ticket.succeeded();
        user = form.username;
      }
      await recordSignIn({ event: user === null ? 'SIGN_IN_FAILED' : 'SIGN_IN', username: form.username, method: 'password', address });
    } else {
      throttle.failedWithoutPassword(address);
      await recordSignIn({ event: 'SIGN_IN_FAILED', username: form.username ?? null, method: null, address });
    }
    if (user === null) {
      send(res, 401, 'text/html; charset=utf-8', LOGIN_FAILED_HTML);
      return;
    }
    const id = randomBytes(32).toString('base64url');
    const t = now().getTime();
    sessions.set(sessionKey(id), { user, created: t, seen: t });
    redirect(res, '/', { 'set-cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_MS / 1000}` });
  }

  async function exportScans(res: ServerResponse, filter: ScanFilter, format: 'csv' | 'json', records: 'scans' | 'agent'): Promise<void> {
    const stamp = now().toISOString().slice(0, 19).replaceAll(':', '');
    res.writeHead(200, {
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
      'content-disposition': `attachment; filename="portcullis-${records === 'agent' ? 'hmi-records' : 'scans'}-${stamp}.${format}"`,
    });
    const write = async (chunk: string): Promise<void> => {
      if (!res.write(chunk)) await once(res, 'drain');
    };
    await write(format === 'csv' ? csvRecord(records === 'agent' ? AGENT_CSV_COLUMNS : CSV_COLUMNS) : '[');
    let first = true;
    let n = 0;
    for (const id of await data.scanIds(filter)) {
      if (++n % 20 === 0) await new Promise((resolve) => setImmediate(resolve)); // let other requests in
      if (records === 'agent') {
        // The HMI records of the scan's manifest, each with its chain state (an export's cannot be checked).
        const digest = await data.manifestOf(id);
        for (const r of typeof digest === 'string' ? await data.agentRecordsFor(digest) : []) {
          await write(format === 'csv' ? agentCsvRow(id, r) : `${first ? '\n' : ',\n'}${JSON.stringify(escapedJson(agentJsonRow(id, r)))}`);
          first = false;
        }
        continue;
      }
      const scan = await data.getScan(id, filter.file ?? null);
      if (!scan) continue;
      await write(format === 'csv' ? scanCsvRows(scan) : `${first ? '\n' : ',\n'}${JSON.stringify(escapedJson(scan))}`);
      first = false;
    }
    if (format === 'json') await write(first ? ']\n' : '\n]\n');
    res.end();
  }

  async function api(res: ServerResponse, url: URL, user: string): Promise<void> {
    const q = queryObject(url);
    const path = url.pathname;
    if (path === '/api/me') {
      checked(emptyQuery, q);
      return json(res, 200, { user, central: central !== null });
    }
    if (path === '/api/scans') {
      const filter = toFilter(checked(listQuery, q), 50);
      return json(res, 200, { scans: escapedJson(await data.listScans(filter)) });
    }
    if (path.startsWith('/api/central/')) {
      if (!central) throw new HttpError('NOT_FOUND', 'this is a single-kiosk review: the site views are on the central review');
      return centralApi(res, path, q);
    }
    const detail = /^\/api\/scans\/([^/]{1,200})$/.exec(path);
    if (detail) {
      checked(emptyQuery, q);
      let scanId: string;
      try {
        scanId = decodeURIComponent(detail[1]!);
      } catch {
        throw new HttpError('BAD_REQUEST', 'malformed scan id');
      }
      const scan = await data.getScan(scanId, null);
      if (!scan) throw new HttpError('NOT_FOUND', 'no such scan');
      const agent = scan.manifest ? await data.agentRecordsFor(scan.manifest.digest) : [];
      return json(res, 200, { scan: escapedJson(scan), agent: escapedJson(agent) });
    }
    if (path === '/api/chain') {
      const { wait } = checked(object({ wait: optional(string({ pattern: /^1$/, patternMessage: 'expected 1' })) }), q);
      if (central) return json(res, 200, escapedJson(await centralChainState(central.pool, now())));
      if (!chain || Date.now() - chain.at > CHAIN_RECHECK_MS) {
        const running = checkChain();
        if (wait === '1' || !chain) await (wait === '1' ? running : Promise.race([running, new Promise((r) => setTimeout(r, 1000))]));
      }
      if (!chain) return json(res, 200, { state: 'checking' });
      return json(res, 200, { state: 'checked', checkedAt: chain.checkedAt, ...(escapedJson(chain.result) as object) });
    }
    if (path === '/api/export') {
      const { format, records, ...rest } = checked(exportQuery, q);
      return exportScans(res, toFilter(rest), format as 'csv' | 'json', (records ?? 'scans') as 'scans' | 'agent');
    }
    if (path === '/api/stats/daily') {
      const range = toFilter(checked(chartQuery, q));
      return json(res, 200, escapedJson(await data.dailyStats(range.since, range.until)));
    }
    if (path === '/api/agent') {
      const { manifest } = checked(object({ manifest: optional(string({ pattern: /^sha256:[0-9a-f]{64}$/, patternMessage: 'expected sha256: and 64 hex characters' })) }), q);
      if (central) return json(res, 200, { records: escapedJson(manifest === undefined ? await hmiEventsWithoutManifest(central.pool, { limit: 200 }) : await centralAgentRecordsFor(central.pool, manifest)) });
      return json(res, 200, { records: escapedJson(staff!.agentRecords(manifest === undefined ? {} : { manifestDigest: manifest })) });
    }
    throw new HttpError('NOT_FOUND', 'no such API');
  }

  /** The site views only the central review has: health, HMI events without a manifest, a file's path, alerts, activity. */
  async function centralApi(res: ServerResponse, path: string, q: Record<string, string>): Promise<void> {
    const pool = central!.pool;
    if (path === '/api/central/health') {
      checked(emptyQuery, q);
      return json(res, 200, { sources: escapedJson(await centralHealth(pool, now())) });
    }
    if (path === '/api/central/hmi-events') {
      const range = toFilter(checked(listQuery, q), 200);
      return json(res, 200, { records: escapedJson(await hmiEventsWithoutManifest(pool, { ...(range.since ? { since: range.since } : {}), ...(range.until ? { until: range.until } : {}), limit: range.limit ?? 200 })) });
    }
    if (path === '/api/central/file') {
      const { hash } = checked(object({ hash: string({ pattern: /^(?:(?:sha256|blake3):)?[0-9a-fA-F]{64}$/, patternMessage: 'expected a SHA-256 or BLAKE3 digest (64 hex characters, optionally sha256: or blake3:)' }) }), q);
      return json(res, 200, escapedJson(await filePath(pool, hash)));
    }
    if (path === '/api/central/alerts') {
      checked(emptyQuery, q);
      return json(res, 200, escapedJson(await centralAlerts(pool)));
    }
    if (path === '/api/central/activity') {
      const range = toFilter(checked(chartQuery, q));
      return json(res, 200, escapedJson(await centralActivity(pool, range.since, range.until)));
    }
    throw new HttpError('NOT_FOUND', 'no such API');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
    res.setHeader('x-content-type-options', 'nosniff');
    // same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with the page's own POSTs (Fetch, "append a request `Origin` header").
    res.setHeader('referrer-policy', 'same-origin');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cache-control', 'no-store');
    // DNS rebinding: only answer to the names this server is reached by.
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) throw new HttpError('FORBIDDEN', 'unexpected Host header');
    const url = new URL(req.url ?? '/', 'http://review.invalid');
    const method = req.method ?? 'GET';
    if (method === 'POST') {
      // Login and logout CSRF: a browser names the page a POST comes from (Origin; "null" for a sandboxed
      // frame, a data: URL or a redirect chain) and says whether it is this site (Sec-Fetch-Site).
      // Only this server's own pages may post; a client that sends neither (curl) is not a browser page.
      const origin = req.headers.origin;
      if (origin !== undefined && !allowedOrigin(origin)) throw new HttpError('FORBIDDEN', 'cross-origin request');
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') throw new HttpError('FORBIDDEN', 'cross-site request');
      if (url.pathname === '/login') return login(req, res);
      if (url.pathname === '/logout') {
        const current = sessionOf(req);
        if (current) {
          sessions.delete(current.key);
          await recordSignIn({ event: 'SIGN_OUT', username: current.session.user, method: null, address: req.socket.remoteAddress ?? 'unknown' });
        }
        return redirect(res, '/login', { 'set-cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
      }
      throw new HttpError('METHOD_NOT_ALLOWED', 'the review is read-only');
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError('METHOD_NOT_ALLOWED', 'the review is read-only');
    if (url.pathname === '/login') return send(res, 200, 'text/html; charset=utf-8', LOGIN_HTML);
    if (url.pathname === '/app.css') return send(res, 200, 'text/css; charset=utf-8', APP_CSS);
    const current = sessionOf(req);
    if (!current) {
      if (url.pathname.startsWith('/api/')) throw new HttpError('UNAUTHORIZED', 'sign in first');
      return redirect(res, '/login');
    }
    if (url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', APP_HTML);
    if (url.pathname === '/app.js') return send(res, 200, 'text/javascript; charset=utf-8', APP_JS);
    if (url.pathname.startsWith('/api/')) return api(res, url, current.session.user);
    throw new HttpError('NOT_FOUND', 'not found');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof HttpError) return json(res, STATUS[error.code], { error: error.message, code: error.code });
      process.stderr.write(`portcullis-kiosk review: internal error (a bug): ${error instanceof Error ? error.stack : String(error)}\n`);
      json(res, 500, { error: 'internal error', code: 'INTERNAL' });
    });
  });
  const requestedPort = options.port ?? 8765;
  try {
    server.listen(requestedPort, host);
    await once(server, 'listening');
  } catch (cause) {
    audit?.close();
    db?.close();
    throw listenError(cause, host, requestedPort);
  }
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  if (!central) void checkChain();
  allowedHosts = new Set([`${hostPart}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, ...publicNames]);
  return {
    url: `http://${hostPart}:${port}`,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await worker?.terminate();
      audit?.close();
      db?.close();
    },
  };
}
