/**
 * The central review's database: a PostgreSQL pool, the schema, enrolled
 * sources, staff accounts and one-time tokens (as in the single-kiosk review,
 * scrypt hashes and SHA-256 of tokens only), sign-in events, and the batch
 * transaction the receiver stores each connection's messages in.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { PortcullisError } from '../../../manifest/errors.ts';
import { displayText, escapeForDisplay } from '../../../manifest/names.ts';
import { hashPassword, ReviewError, TOKEN_TTL_MS, verifyPassword } from '../review-store.ts';
import { ingestBatch, type IngestResult, type Source } from './ingest.ts';
import { CENTRAL_SCHEMA, CENTRAL_SCHEMA_VERSION } from './schema.ts';

export type CentralErrorCode = 'CENTRAL_DB_FAILED' | 'CENTRAL_SOURCE_INVALID' | 'CENTRAL_SOURCE_EXISTS' | 'CENTRAL_SOURCE_UNKNOWN';
export class CentralError extends PortcullisError<CentralErrorCode> {}

const USERNAME = /^[a-z][a-z0-9._-]{1,31}$/;
/** A source's name: what its certificate's CN, its records and its syslog HOSTNAME all say. */
export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MIN_PASSWORD = 12; // characters

export interface SignInEvent {
  readonly event: 'SIGN_IN' | 'SIGN_IN_FAILED' | 'SIGN_IN_LOCKED' | 'SIGN_OUT' | 'TOKEN_USED' | 'TOKEN_FAILED';
  readonly username: string | null;
  readonly method: 'password' | 'token' | null;
  readonly address: string;
}

export interface CentralStore {
  readonly pool: pg.Pool;
  /** Enrols a source under its certificate's CN; `site` names its plant for the per-site views. */
  enrol(name: string, kind: 'kiosk' | 'hmi', site?: string): Promise<void>;
  setDisabled(name: string, disabled: boolean): Promise<void>;
  /** The enabled source with this name, or null. */
  source(name: string): Promise<Source | null>;
  /** Stores one connection's messages in one transaction; throws CENTRAL_DB_FAILED (nothing stored) when the database fails. */
  ingest(source: Source, frames: readonly Buffer[], address: string): Promise<IngestResult>;
  /** A refusal that is not about a message (an unknown certificate, a cut-off frame). */
  refuseConnection(sourceName: string, code: string, detail: string, bytes: Buffer): Promise<void>;
  addUser(username: string, password: string): Promise<void>;
  checkPassword(username: string, password: string): Promise<boolean>;
  issueToken(label: string, ttlMs?: number): Promise<{ token: string; expiresAt: string }>;
  useToken(token: string): Promise<boolean>;
  recordSignIn(event: SignInEvent): Promise<void>;
  close(): Promise<void>;
}

const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** Connects and creates or checks the schema. `database` is a PostgreSQL connection string. */
export async function openCentralStore(database: string, options: { readonly now?: () => Date; readonly max?: number } = {}): Promise<CentralStore> {
  const now = options.now ?? (() => new Date());
  const pool = new pg.Pool({ connectionString: database, max: options.max ?? 8, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined); // an idle client's error: the next query reports it
  try {
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock(2246)'); // two reviews starting together do not race on the schema
      for (const statement of CENTRAL_SCHEMA) await client.query(statement);
      const version = await client.query<{ version: number }>('SELECT max(version) AS version FROM central_schema');
      const have = version.rows[0]?.version ?? null;
      if (have === null) await client.query('INSERT INTO central_schema (version) VALUES ($1)', [CENTRAL_SCHEMA_VERSION]);
      else if (have > CENTRAL_SCHEMA_VERSION) throw new Error(`the database has schema version ${have}, newer than this review's ${CENTRAL_SCHEMA_VERSION}: upgrade Portcullis`);
      await client.query('SELECT pg_advisory_unlock(2246)');
    } finally {
      client.release();
    }
  } catch (cause) {
    await pool.end().catch(() => undefined);
    throw new CentralError('CENTRAL_DB_FAILED', `cannot open the central review database (${(cause as Error).message}): check --database and that PostgreSQL is running`, { cause });
  }
  let dummyHash: Promise<string> | null = null;
  const q = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> => {
    try {
      return await pool.query<R>(sql, params);
    } catch (cause) {
      throw new CentralError('CENTRAL_DB_FAILED', `the central review database failed (${(cause as Error).message})`, { cause });
    }
  };

  return {
    pool,
    async enrol(name, kind, site = 'site') {
      if (!SOURCE_NAME.test(name)) throw new CentralError('CENTRAL_SOURCE_INVALID', `source name ${JSON.stringify(escapeForDisplay(name))}: expected 1 to 64 letters, digits, . _ - (the CN of its certificate)`);
      if (!SOURCE_NAME.test(site)) throw new CentralError('CENTRAL_SOURCE_INVALID', `site ${JSON.stringify(escapeForDisplay(site))}: expected 1 to 64 letters, digits, . _ -`);
      const result = await q('INSERT INTO sources (name, kind, enrolled_at, site) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING', [name, kind, now().toISOString(), site]);
      if (result.rowCount === 0) throw new CentralError('CENTRAL_SOURCE_EXISTS', `source ${name} is already enrolled`);
    },
    async setDisabled(name, disabled) {
      const result = await q('UPDATE sources SET disabled = $2 WHERE name = $1', [name, disabled]);
      if (result.rowCount === 0) throw new CentralError('CENTRAL_SOURCE_UNKNOWN', `no source ${displayText(name)} is enrolled`);
    },
    async source(name) {
      const result = await q<{ id: number; name: string; kind: 'kiosk' | 'hmi' }>('SELECT id, name, kind FROM sources WHERE name = $1 AND NOT disabled', [name]);
      return result.rows[0] ?? null;
    },
    async ingest(source, frames, address) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (cause) {
        throw new CentralError('CENTRAL_DB_FAILED', `cannot reach the database (${(cause as Error).message})`, { cause });
      }
      try {
        await client.query('BEGIN');
        const result = await ingestBatch(client, source, frames, now());
        await client.query('UPDATE sources SET last_address = $2 WHERE id = $1', [source.id, address]);
        await client.query('COMMIT');
        return result;
      } catch (cause) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new CentralError('CENTRAL_DB_FAILED', `storing a batch from ${source.name} failed (${(cause as Error).message}): nothing of it was stored; the source sends it again`, { cause });
      } finally {
        client.release();
      }
    },
    async refuseConnection(sourceName, code, detail, bytes) {
      const at = now().toISOString();
      await q(`INSERT INTO refusals (source_id, source_name, code, detail, frame_sha256, excerpt, first_at, last_at)
        VALUES ((SELECT id FROM sources WHERE name = $1), $1, $2, $3, $4, $5, $6, $6)
        ON CONFLICT (source_name, frame_sha256, code) DO UPDATE SET last_at = excluded.last_at, times = refusals.times + 1`,
      [displayText(sourceName).slice(0, 256), code, displayText(detail), sha256(Buffer.concat([Buffer.from(code), bytes.subarray(0, 4096)])), displayText(bytes.subarray(0, 512).toString('utf8')), at]);
    },
    async addUser(username, password) {
      if (!USERNAME.test(username)) throw new ReviewError('REVIEW_USER_INVALID', `user name ${JSON.stringify(escapeForDisplay(username))}: expected 2 to 32 characters a-z 0-9 . _ - starting with a letter`);
      if (password.length < MIN_PASSWORD) throw new ReviewError('REVIEW_USER_INVALID', `the password must have at least ${MIN_PASSWORD} characters`);
      const result = await q('INSERT INTO staff (username, password, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [username, await hashPassword(password), now().toISOString()]);
      if (result.rowCount === 0) throw new ReviewError('REVIEW_USER_EXISTS', `user ${username} already exists`);
    },
    async checkPassword(username, password) {
      const row = (await q<{ password: string }>('SELECT password FROM staff WHERE username = $1', [username])).rows[0];
      if (!row) {
        dummyHash ??= hashPassword('not a password of anyone');
        await verifyPassword(password, await dummyHash);
        return false;
      }
      return verifyPassword(password, row.password);
    },
    async issueToken(label, ttlMs = TOKEN_TTL_MS) {
      const token = randomBytes(32).toString('base64url');
      const created = now();
      const expiresAt = new Date(created.getTime() + ttlMs).toISOString();
      await q('INSERT INTO login_tokens (token_sha256, label, created_at, expires_at) VALUES ($1, $2, $3, $4)', [sha256(token), displayText(label), created.toISOString(), expiresAt]);
      return { token, expiresAt };
    },
    async useToken(token) {
      if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
      const t = now().toISOString();
      const result = await q('UPDATE login_tokens SET used_at = $1 WHERE token_sha256 = $2 AND used_at IS NULL AND expires_at > $1', [t, sha256(token)]);
      return result.rowCount === 1;
    },
    async recordSignIn(event) {
      await q('INSERT INTO sign_ins (at, event, username, method, address) VALUES ($1, $2, $3, $4, $5)',
        [now().toISOString(), event.event, event.username === null ? null : displayText(event.username).slice(0, 64), event.method, displayText(event.address)]);
    },
    async close() {
      await pool.end();
    },
  };
}
