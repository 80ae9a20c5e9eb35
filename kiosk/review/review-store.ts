/**
 * The review database: a SQLite file of its own (never the kiosk's audit
 * log, which stays append-only and hash-chained) holding staff accounts
 * (scrypt hashes), one-time login tokens (SHA-256 of the token only) and the
 * agent log records imported from the HMIs, keyed by (hmi, seq).
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import Database from 'better-sqlite3';
import { PortcullisError } from '../../manifest/errors.ts';
import { displayText, escapeForDisplay } from '../../manifest/names.ts';
import { formatIssues, integer, nullable, object, oneOf, parse, string } from '../../manifest/schema.ts';
import { OUTCOMES, verifyLogBytes, type LogRecord } from '../../manifest/agent-log.ts';

export const REVIEW_ERROR_CODES = [
  'REVIEW_OPEN_FAILED',
  'REVIEW_USER_INVALID',
  'REVIEW_USER_EXISTS',
  'REVIEW_IMPORT_NOT_FOUND',
  'REVIEW_IMPORT_UNREADABLE',
  'REVIEW_IMPORT_NOT_AGENT_LOG',
  'REVIEW_IMPORT_INVALID',
  'REVIEW_IMPORT_CHAIN_BROKEN',
  'REVIEW_IMPORT_CONFLICT',
  'REVIEW_PORT_IN_USE',
  'REVIEW_LISTEN_FAILED',
  'REVIEW_PUBLIC_NAME_NEEDED',
] as const;
export type ReviewErrorCode = (typeof REVIEW_ERROR_CODES)[number];
export class ReviewError extends PortcullisError<ReviewErrorCode> {}

/** scrypt parameters (RFC 7914): N = 2^15, r = 8 needs 32 MiB per hash, which is what makes it memory-hard. */
export const SCRYPT = { N: 32_768, r: 8, p: 1, keyLength: 32, maxmem: 96 * 1024 * 1024 } as const; // maxmem in bytes
export const TOKEN_TTL_MS = 15 * 60_000; // ms a one-time token stays valid
const USERNAME = /^[a-z][a-z0-9._-]{1,31}$/;
const MIN_PASSWORD = 12; // characters

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS staff (
     username TEXT PRIMARY KEY, password TEXT NOT NULL, created_at TEXT NOT NULL) STRICT`,
  `CREATE TABLE IF NOT EXISTS login_tokens (
     token_sha256 TEXT PRIMARY KEY, label TEXT NOT NULL, created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL, used_at TEXT) STRICT`,
  `CREATE TABLE IF NOT EXISTS agent_records (
     id INTEGER PRIMARY KEY, hmi TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
     time TEXT NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
     manifest_digest TEXT, key_id TEXT, drive_label TEXT, path TEXT, destination TEXT,
     sha256 TEXT, size INTEGER, verified INTEGER NOT NULL, imported_at TEXT NOT NULL,
     log_chain TEXT NOT NULL DEFAULT '', blake3 TEXT, UNIQUE (hmi, log_chain, seq)) STRICT`,
  'CREATE INDEX IF NOT EXISTS agent_records_manifest ON agent_records (manifest_digest)',
  // Sign-ins to the review (SR 2.8): kept here, sent to the SIEM and the central review by `siem send`.
  `CREATE TABLE IF NOT EXISTS sign_ins (
     id INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, username TEXT, method TEXT, address TEXT NOT NULL) STRICT`,
];

/** What happened at the review's door: a sign-in, a refused one, one refused because of the limits, a sign-out, a one-time token used or refused. */
export const SIGN_IN_EVENTS = ['SIGN_IN', 'SIGN_IN_FAILED', 'SIGN_IN_LOCKED', 'SIGN_OUT', 'TOKEN_USED', 'TOKEN_FAILED'] as const;
export type SignInEventName = (typeof SIGN_IN_EVENTS)[number];

export interface SignInEvent {
  readonly event: SignInEventName;
  /** The user name given (escaped; possibly no account's), or null for a token. */
  readonly username: string | null;
  readonly method: 'password' | 'token' | null;
  readonly address: string;
}

export interface SignInRecord extends SignInEvent {
  readonly id: number;
  readonly at: string;
}

export interface StaffStore {
  readonly path: string;
  addUser(username: string, password: string): Promise<void>;
  checkPassword(username: string, password: string): Promise<boolean>;
  /** Creates a one-time token and returns it; only its SHA-256 is stored. */
  issueToken(label: string, ttlMs?: number): { token: string; expiresAt: string };
  /** Consumes a token: true once, while it is unexpired. */
  useToken(token: string): boolean;
  importAgentLog(bytes: Uint8Array): AgentImportResult;
  agentRecordsFor(manifestDigest: string): AgentRecord[];
  agentRecords(filter?: { readonly manifestDigest?: string; readonly limit?: number }): AgentRecord[];
  /** Agent records after `afterId`, oldest first (the SIEM exporter's cursor). */
  agentRecordsAfter(afterId: number, limit: number): AgentRecord[];
  /** Records a sign-in event (fsynced like every write here). */
  recordSignIn(event: SignInEvent): void;
  /** Sign-in events after `afterId`, oldest first (the SIEM exporter's cursor). */
  signInsAfter(afterId: number, limit: number): SignInRecord[];
  close(): void;
}

export interface AgentRecord {
  readonly id: number;
  readonly hmi: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  readonly event: string;
  readonly outcome: string;
  readonly code: string;
  readonly reason: string;
  readonly manifestDigest: string | null;
  readonly keyId: string | null;
  readonly driveLabel: string | null;
  readonly path: string | null;
  readonly destination: string | null;
  readonly sha256: string | null;
  /** The file's BLAKE3 as the HMI logged it (agents check BLAKE3 by default, so often the only digest they log). */
  readonly blake3: string | null;
  readonly size: number | null;
  /** 1 when imported from the JSON-lines log whose chain was verified; 0 from an export (no prev hashes). */
  readonly verified: number;
  /** `verified` in words, as the page, the exports and the SIEM show it. */
  readonly chain: 'verified' | 'unverified';
}

export interface AgentImportResult {
  readonly format: 'jsonl' | 'export-json';
  readonly records: number;
  readonly added: number;
  readonly duplicates: number;
  readonly hmis: readonly string[];
  /** HMIs whose log in this import is a new chain (a reinstall, a log begun again): kept apart from their earlier chain. */
  readonly newChains: readonly string[];
}

const hex64 = string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' });
const text = string({ max: 8192 });
/** One row of `portcullis-agent log export --format json` (EXPORT_COLUMNS). */
const exportRowSchema = object({
  seq: integer({ min: 1 }),
  time: string({ pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, patternMessage: 'expected an ISO 8601 UTC time' }),
  hmi: string({ min: 1, max: 256 }),
  event: string({ min: 1, max: 64, pattern: /^[a-z][a-z0-9.-]*$/ }),
  outcome: oneOf(OUTCOMES),
  code: string({ min: 1, max: 64, pattern: /^[A-Z][A-Z0-9_]*$/ }),
  reason: text,
  manifestDigest: nullable(string({ pattern: /^sha256:[0-9a-f]{64}$/ })),
  keyId: nullable(hex64),
  driveMount: nullable(text),
  driveFilesystem: nullable(text),
  driveVolumeId: nullable(text),
  driveLabel: nullable(text),
  driveCapacity: nullable(integer({ min: 0 })),
  path: nullable(text),
  destination: nullable(text),
  sha256: nullable(hex64),
  blake3: nullable(hex64),
  size: nullable(integer({ min: 0 })),
  hash: hex64,
});

const safe = (s: string | null): string | null => (s === null ? null : displayText(s));

function scryptAsync(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, SCRYPT.keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** `scrypt$N$r$p$salt$hash` (base64url), so the parameters can be raised later without breaking old hashes. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: SCRYPT.maxmem });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (!N || !r || !p || expected.length !== SCRYPT.keyLength) return false;
  const key = await scryptAsync(password, Buffer.from(parts[4]!, 'base64url'), { N, r, p, maxmem: SCRYPT.maxmem });
  return timingSafeEqual(key, expected);
}

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

interface AgentRow {
  id: number; hmi: string; seq: number; hash: string; time: string; event: string; outcome: string; code: string; reason: string;
  manifest_digest: string | null; key_id: string | null; drive_label: string | null; path: string | null; destination: string | null;
  sha256: string | null; blake3: string | null; size: number | null; verified: number;
}

const toRecord = (r: AgentRow): AgentRecord => ({
  id: r.id, hmi: r.hmi, seq: r.seq, hash: r.hash, time: r.time, event: r.event, outcome: r.outcome, code: r.code, reason: r.reason,
  manifestDigest: r.manifest_digest, keyId: r.key_id, driveLabel: r.drive_label, path: r.path, destination: r.destination,
  sha256: r.sha256, blake3: r.blake3, size: r.size, verified: r.verified, chain: r.verified === 1 ? 'verified' : 'unverified',
});

type Incoming = Omit<AgentRecord, 'id' | 'chain'>;

const NOT_AGENT_LOG = 'not an agent log: expected the HMI\'s portcullis-agent.log.jsonl or the output of "portcullis-agent log export --format json"; check that you picked the right file';

/** Whether a parsed JSON value has the members every agent record and export row has (seq, hmi, hash). */
const looksLikeAgentRecord = (value: unknown): boolean =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && ['seq', 'hmi', 'hash'].every((key) => Object.hasOwn(value, key));

/** Whether any line of a JSON-lines text is something like an agent record: tells a damaged log from another kind of file. */
function hasAgentRecordLine(text: string): boolean {
  return text.split('\n').some((line) => {
    try {
      return looksLikeAgentRecord(JSON.parse(line));
    } catch {
      return false;
    }
  });
}

/**
 * Parses an agent log: JSON lines straight from the HMI (chain verified) or the JSON array of `log export`.
 * A file with nothing like an agent record in it is REVIEW_IMPORT_NOT_AGENT_LOG (the wrong file), not tampering;
 * an agent log whose chain does not verify is REVIEW_IMPORT_CHAIN_BROKEN.
 */
export function parseAgentLog(bytes: Uint8Array): { format: AgentImportResult['format']; records: Incoming[] } {
  const textContent = new TextDecoder('utf-8', { fatal: false }).decode(bytes).trimStart();
  if (textContent.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(textContent);
    } catch (cause) {
      throw new ReviewError('REVIEW_IMPORT_INVALID', `the agent export is not JSON (${(cause as Error).message})`, { cause });
    }
    if (!Array.isArray(value)) throw new ReviewError('REVIEW_IMPORT_INVALID', 'expected a JSON array of agent export rows');
    if (value.length > 0 && !value.some(looksLikeAgentRecord)) throw new ReviewError('REVIEW_IMPORT_NOT_AGENT_LOG', `a JSON array, but ${NOT_AGENT_LOG}`);
    const records = value.map((row, i): Incoming => {
      const checked = parse(exportRowSchema, row, `[${i}]`);
      if (!checked.ok) throw new ReviewError('REVIEW_IMPORT_INVALID', `agent export: ${formatIssues(checked.issues)}`);
      const r = checked.value;
      return {
        hmi: r.hmi, seq: r.seq, hash: r.hash, time: r.time, event: r.event, outcome: r.outcome, code: r.code, reason: r.reason,
        manifestDigest: r.manifestDigest, keyId: r.keyId, driveLabel: r.driveLabel, path: r.path, destination: r.destination,
        sha256: r.sha256, blake3: r.blake3, size: r.size, verified: 0,
      };
    });
    return { format: 'export-json', records };
  }
  const check = verifyLogBytes(bytes);
  if (!check.ok) {
    if (!hasAgentRecordLine(textContent)) throw new ReviewError('REVIEW_IMPORT_NOT_AGENT_LOG', NOT_AGENT_LOG);
    throw new ReviewError('REVIEW_IMPORT_CHAIN_BROKEN', `the agent log's chain is broken at line ${check.line} (${check.problem}: ${check.detail}): nothing was imported; keep the file as evidence`);
  }
  return {
    format: 'jsonl',
    records: check.entries.map((r: LogRecord): Incoming => ({
      hmi: r.hmi, seq: r.seq, hash: r.hash, time: r.time, event: r.event, outcome: r.outcome, code: r.code, reason: r.reason,
      manifestDigest: r.manifestDigest, keyId: r.keyId, driveLabel: r.drive?.label ?? null, path: r.path, destination: r.destination,
      sha256: r.digests?.sha256 ?? null, blake3: r.digests?.blake3 ?? null, size: r.digests?.size ?? null, verified: 1,
    })),
  };
}

export interface ReviewStoreOptions {
  readonly now?: () => Date;
}

/**
 * Review databases made before log chains were told apart keyed agent records by (hmi, seq), so a
 * reinstalled HMI's new log could never be imported (REVIEW_IMPORT_CONFLICT). The table is rebuilt
 * keyed by (hmi, log_chain, seq); old rows get the chain '' until a log with their record 1 claims them.
 */
function migrateLogChains(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('agent_records')").pluck().all() as string[];
  if (columns.includes('log_chain')) return;
  db.transaction(() => {
    db.exec(`CREATE TABLE agent_records_chained (
     id INTEGER PRIMARY KEY, hmi TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
     time TEXT NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
     manifest_digest TEXT, key_id TEXT, drive_label TEXT, path TEXT, destination TEXT,
     sha256 TEXT, size INTEGER, verified INTEGER NOT NULL, imported_at TEXT NOT NULL,
     log_chain TEXT NOT NULL DEFAULT '', UNIQUE (hmi, log_chain, seq)) STRICT`);
    db.exec(`INSERT INTO agent_records_chained (id, hmi, seq, hash, time, event, outcome, code, reason, manifest_digest, key_id, drive_label, path, destination, sha256, size, verified, imported_at)
      SELECT id, hmi, seq, hash, time, event, outcome, code, reason, manifest_digest, key_id, drive_label, path, destination, sha256, size, verified, imported_at FROM agent_records`);
    db.exec('DROP TABLE agent_records');
    db.exec('ALTER TABLE agent_records_chained RENAME TO agent_records');
    db.exec('CREATE INDEX IF NOT EXISTS agent_records_manifest ON agent_records (manifest_digest)');
  })();
}

/** Review databases made before agents logged BLAKE3 alone kept only each record's SHA-256: the column is added, empty for old rows. */
function migrateBlake3(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('agent_records')").pluck().all() as string[];
  if (!columns.includes('blake3')) db.exec('ALTER TABLE agent_records ADD COLUMN blake3 TEXT');
}

/** Opens (creating when needed) the review database. */
export function openReviewStore(path: string, options: ReviewStoreOptions = {}): StaffStore {
  const now = options.now ?? (() => new Date());
  let db: Database.Database;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    for (const statement of SCHEMA) db.exec(statement);
    migrateLogChains(db);
    migrateBlake3(db);
  } catch (cause) {
    throw new ReviewError('REVIEW_OPEN_FAILED', `${path}: cannot open the review database (${(cause as Error).message})`, { cause });
  }
  // A fixed hash to compare against for unknown users, so a wrong user name costs as long as a wrong password.
  let dummyHash: Promise<string> | null = null;
  const insertAgent = db.prepare(`INSERT INTO agent_records (hmi, seq, hash, time, event, outcome, code, reason, manifest_digest, key_id,
    drive_label, path, destination, sha256, blake3, size, verified, imported_at, log_chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  return {
    path,
    async addUser(username, password) {
      if (!USERNAME.test(username)) throw new ReviewError('REVIEW_USER_INVALID', `user name ${JSON.stringify(escapeForDisplay(username))}: expected 2 to 32 characters a-z 0-9 . _ - starting with a letter`);
      if (password.length < MIN_PASSWORD) throw new ReviewError('REVIEW_USER_INVALID', `the password must have at least ${MIN_PASSWORD} characters`);
      const hashed = await hashPassword(password);
      const result = db.prepare('INSERT OR IGNORE INTO staff (username, password, created_at) VALUES (?, ?, ?)').run(username, hashed, now().toISOString());
      if (result.changes === 0) throw new ReviewError('REVIEW_USER_EXISTS', `user ${username} already exists`);
    },
    async checkPassword(username, password) {
      const row = db.prepare('SELECT password FROM staff WHERE username = ?').get(username) as { password: string } | undefined;
      if (!row) {
        dummyHash ??= hashPassword('not a password of anyone');
        await verifyPassword(password, await dummyHash);
        return false;
      }
      return verifyPassword(password, row.password);
    },
    issueToken(label, ttlMs = TOKEN_TTL_MS) {
      const token = randomBytes(32).toString('base64url');
      const created = now();
      const expiresAt = new Date(created.getTime() + ttlMs).toISOString();
      db.prepare('INSERT INTO login_tokens (token_sha256, label, created_at, expires_at) VALUES (?, ?, ?, ?)').run(sha256(token), safe(label) ?? '', created.toISOString(), expiresAt);
      return { token, expiresAt };
    },
    useToken(token) {
      if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
      // One UPDATE both checks and consumes: two logins racing with one token cannot both win.
      const result = db.prepare('UPDATE login_tokens SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL AND expires_at > ?')
        .run(now().toISOString(), sha256(token), now().toISOString());
      return result.changes === 1;
    },
    importAgentLog(bytes) {
      const { format, records } = parseAgentLog(bytes);
      const importedAt = now().toISOString();
      let added = 0;
      let duplicates = 0;
      const newChains: string[] = [];
      // A log's chain is named by its record 1's hash: a reinstalled HMI's new log is another chain, kept apart.
      const chainOf = new Map(records.filter((r) => r.seq === 1).map((r) => [safe(r.hmi)!, r.hash]));
      db.transaction(() => {
        for (const [hmi, chain] of chainOf) {
          // Records imported before chains were told apart: claimed by the log whose record 1 they hold.
          db.prepare(`UPDATE agent_records SET log_chain = ? WHERE hmi = ? AND log_chain = ''
            AND EXISTS (SELECT 1 FROM agent_records WHERE hmi = ? AND log_chain = '' AND seq = 1 AND hash = ?)`).run(chain, hmi, hmi, chain);
          const known = db.prepare('SELECT count(*) FROM agent_records WHERE hmi = ? AND log_chain = ?').pluck().get(hmi, chain) as number;
          const others = db.prepare('SELECT count(*) FROM agent_records WHERE hmi = ? AND log_chain <> ?').pluck().get(hmi, chain) as number;
          if (known === 0 && others > 0) newChains.push(hmi);
        }
        for (const r of records) {
          const hmi = safe(r.hmi)!;
          const chain = chainOf.get(hmi) ?? '';
          // Without its record 1 (an export cut by --since) a record's chain is unknown: it is checked against every chain of the HMI.
          const existing = (chain === ''
            ? db.prepare('SELECT hash, verified, log_chain FROM agent_records WHERE hmi = ? AND seq = ?').all(hmi, r.seq)
            : db.prepare('SELECT hash, verified, log_chain FROM agent_records WHERE hmi = ? AND log_chain = ? AND seq = ?').all(hmi, chain, r.seq)) as Array<{ hash: string; verified: number; log_chain: string }>;
          if (existing.length > 0) {
            const same = existing.find((e) => e.hash === r.hash);
            if (!same) {
              throw new ReviewError('REVIEW_IMPORT_CONFLICT', `HMI ${hmi} record ${r.seq}: already imported with another hash in the same log chain: one of the two logs was altered; nothing was imported`);
            }
            if (r.verified === 1 && same.verified === 0) db.prepare('UPDATE agent_records SET verified = 1 WHERE hmi = ? AND log_chain = ? AND seq = ?').run(hmi, same.log_chain, r.seq);
            duplicates++;
            continue;
          }
          insertAgent.run(hmi, r.seq, r.hash, r.time, r.event, r.outcome, r.code, safe(r.reason), r.manifestDigest, r.keyId, safe(r.driveLabel),
            safe(r.path), safe(r.destination), r.sha256, r.blake3, r.size, r.verified, importedAt, chain);
          added++;
        }
      })();
      return { format, records: records.length, added, duplicates, hmis: [...new Set(records.map((r) => safe(r.hmi)!))], newChains };
    },
    agentRecordsFor(manifestDigest) {
      return (db.prepare('SELECT * FROM agent_records WHERE manifest_digest = ? ORDER BY time, hmi, seq').all(manifestDigest) as AgentRow[]).map(toRecord);
    },
    agentRecords(filter = {}) {
      const limit = filter.limit ?? 500;
      const rows = filter.manifestDigest !== undefined
        ? db.prepare('SELECT * FROM agent_records WHERE manifest_digest = ? ORDER BY time DESC, id DESC LIMIT ?').all(filter.manifestDigest, limit)
        : db.prepare('SELECT * FROM agent_records ORDER BY time DESC, id DESC LIMIT ?').all(limit);
      return (rows as AgentRow[]).map(toRecord);
    },
    agentRecordsAfter(afterId, limit) {
      return (db.prepare('SELECT * FROM agent_records WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as AgentRow[]).map(toRecord);
    },
    recordSignIn(event) {
      db.prepare('INSERT INTO sign_ins (at, event, username, method, address) VALUES (?, ?, ?, ?, ?)')
        .run(now().toISOString(), event.event, event.username === null ? null : safe(event.username.slice(0, 64)), event.method, safe(event.address) ?? '-');
    },
    signInsAfter(afterId, limit) {
      return db.prepare('SELECT id, at, event, username, method, address FROM sign_ins WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as SignInRecord[];
    },
    close() {
      db.close();
    },
  };
}
