/**
 * SIEM export: kiosk audit records and imported agent records as RFC 5424
 * syslog messages with structured data, sent over TCP with octet-counting
 * framing (RFC 6587 §3.4.1) or TLS (RFC 5425, same framing).
 *
 * Delivery goes through a spool, a SQLite file of its own: `collect` turns
 * the audit chain's records after the spool's high-water mark (the last
 * chain seq already spooled) into messages and moves the mark in the same
 * transaction, so each record is spooled exactly once; `deliver` sends the
 * spooled messages in order and deletes them only after the connection has
 * closed cleanly. A receiver that is down leaves them spooled for the next
 * run. Records past a chain break are not exported; the break itself is sent
 * once as CHAIN_BROKEN.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import Database from 'better-sqlite3';
import { PortcullisError } from '../../manifest/errors.ts';
import { agentMessageId, agentSeverity, formatSyslog, formatSyslogRecord, frameOctetCounting, SEVERITY, type FormatOptions, type SyslogMessage } from '../../manifest/syslog.ts';
import { kioskRecordBytes, LEDGER_COLUMNS, type LedgerTableName } from '../../manifest/audit-record.ts';
import { openAuditStore } from '../audit/store.ts';
import type { LogRecord } from '../../manifest/agent-log.ts';
import type { AgentRecord, SignInRecord, StaffStore } from './review-store.ts';

export type SiemErrorCode = 'SIEM_SPOOL_FAILED' | 'SIEM_SEND_FAILED' | 'SIEM_CONFIG_INVALID';
export class SiemError extends PortcullisError<SiemErrorCode> {}

const BATCH = 2_000; // chain records per collect step; messages per delivery connection
const CONNECT_TIMEOUT_MS = 10_000; // ms

// The wire format is shared with the agent and the central review (manifest/syslog.ts).
export { DEFAULT_SD_ID, formatSyslog, frameOctetCounting, SEVERITY, type FormatOptions, type SyslogMessage } from '../../manifest/syslog.ts';

type Row = Record<string, string | number | null>;

/** The kiosk's chain records in (after, upto] as messages, in chain order. */
export function kioskMessages(db: Database.Database, after: number, upto: number): Array<{ seq: number; message: SyslogMessage }> {
  const out: Array<{ seq: number; message: SyslogMessage }> = [];
  const kioskOf = db.prepare('SELECT kiosk_id FROM scans WHERE scan_id = ?').pluck();
  const kiosk = (scanId: unknown): string => String((kioskOf.get(scanId) as string | undefined) ?? 'kiosk');
  const app = 'portcullis-kiosk';
  for (const s of db.prepare(`SELECT s.*, d.usb_serial, d.usb_vendor_id, d.usb_product_id, d.label FROM scans s LEFT JOIN devices d ON d.scan_id = s.scan_id
      WHERE s.seq > ? AND s.seq <= ? ORDER BY s.seq`).all(after, upto) as Row[]) {
    out.push({ seq: Number(s.seq), message: { time: String(s.recorded_at), hostname: String(s.kiosk_id), appName: app, msgId: 'SCAN_STARTED', severity: SEVERITY.info,
      params: { seq: s.seq, hash: s.hash, scanId: s.scan_id, operator: s.operator_id, usbVendor: s.usb_vendor_id, usbProduct: s.usb_product_id, usbSerial: s.usb_serial, label: s.label },
      text: `scan ${String(s.scan_id)} started by ${String(s.operator_id ?? '-')}` } });
  }
  // A file row has no time of its own: it was written in the same transaction as its scan's result.
  for (const f of db.prepare(`SELECT f.*, (SELECT group_concat(x.code || ': ' || x.detail, ' | ') FROM reasons x WHERE x.file_seq = f.seq) AS why,
      (SELECT r.recorded_at FROM scan_results r WHERE r.scan_id = f.scan_id) AS recorded_at
      FROM files f WHERE f.seq > ? AND f.seq <= ? AND f.verdict = 'blocked' ORDER BY f.seq`).all(after, upto) as Row[]) {
    out.push({ seq: Number(f.seq), message: { time: String(f.recorded_at ?? new Date().toISOString()), hostname: kiosk(f.scan_id), appName: app, msgId: 'FILE_BLOCKED', severity: SEVERITY.warning,
      params: { seq: f.seq, hash: f.hash, scanId: f.scan_id, path: f.path, sha256: f.sha256, size: f.size, reasons: f.why },
      text: `file blocked: ${String(f.path)}: ${String(f.why ?? '')}` } });
  }
  for (const r of db.prepare('SELECT * FROM scan_results WHERE seq > ? AND seq <= ? ORDER BY seq').all(after, upto) as Row[]) {
    const verdict = String(r.verdict);
    const base = { time: String(r.recorded_at), hostname: kiosk(r.scan_id), appName: app };
    out.push({ seq: Number(r.seq), message: { ...base, msgId: 'SCAN_FINISHED', severity: verdict === 'approved' ? SEVERITY.info : SEVERITY.notice,
      params: { seq: r.seq, hash: r.hash, scanId: r.scan_id, verdict, files: r.file_count, bytes: r.byte_count, manifestDigest: r.manifest_digest, clamavDb: r.clamav_db_version, policy: r.policy_id },
      text: `scan ${String(r.scan_id)} finished: ${verdict}` } });
    if (r.manifest_digest !== null) {
      out.push({ seq: Number(r.seq), message: { ...base, msgId: 'MANIFEST_ISSUED', severity: SEVERITY.info,
        params: { seq: r.seq, hash: r.hash, scanId: r.scan_id, manifestDigest: r.manifest_digest, keyId: r.manifest_key_id, expiresAt: r.manifest_expires_at },
        text: `manifest ${String(r.manifest_digest)} issued for scan ${String(r.scan_id)}` } });
    }
  }
  for (const e of db.prepare('SELECT * FROM events WHERE seq > ? AND seq <= ? ORDER BY seq').all(after, upto) as Row[]) {
    const type = String(e.type);
    out.push({ seq: Number(e.seq), message: { time: String(e.recorded_at), hostname: e.scan_id === null ? 'kiosk' : kiosk(e.scan_id), appName: app, msgId: type,
      severity: type === 'ENGINE_FAILURE' || type === 'MANIFEST_WRITE_FAILED' ? SEVERITY.error : SEVERITY.notice,
      params: { seq: e.seq, hash: e.hash, scanId: e.scan_id, data: e.data }, text: `kiosk event ${type}` } });
  }
  out.sort((a, b) => a.seq - b.seq);
  return out;
}

const MSGID_OF_TABLE: Record<LedgerTableName, string> = { scans: 'SCAN_STARTED', devices: 'DEVICE', files: 'FILE_CHECKED', reasons: 'REASON', scan_results: 'SCAN_FINISHED', events: 'EVENT' };

/** The hash of the kiosk chain's record 1: the chain's name at the central review. */
export function kioskChainOf(db: Database.Database): string | null {
  for (const table of Object.keys(LEDGER_COLUMNS)) {
    const hash = db.prepare(`SELECT hash FROM ${table} WHERE seq = 1`).pluck().get() as string | undefined;
    if (hash !== undefined) return hash;
  }
  return null;
}

/**
 * Every ledger row in (after, upto] as a record message for the central
 * review: the row as the kiosk hashed it is the MSG (manifest/audit-record.ts),
 * so the central checks each hash and link itself; nothing is left out and
 * nothing is verified here first (the central says what is broken).
 */
export function centralMessages(db: Database.Database, after: number, upto: number, chain: string, kioskId: string): Array<{ seq: number; message: Buffer; blocked: boolean }> {
  const out: Array<{ seq: number; message: Buffer; blocked: boolean }> = [];
  const timeOf = db.prepare('SELECT recorded_at FROM scans WHERE scan_id = ?').pluck();
  for (const table of Object.keys(LEDGER_COLUMNS) as LedgerTableName[]) {
    for (const row of db.prepare(`SELECT * FROM ${table} WHERE seq > ? AND seq <= ? ORDER BY seq`).all(after, upto) as Row[]) {
      const { seq, prev_hash: prev, hash, ...content } = row;
      const blocked = table === 'files' && content.verdict === 'blocked';
      const scanId = content.scan_id ?? null;
      const msgId = blocked ? 'FILE_BLOCKED' : table === 'events' ? String(content.type) : MSGID_OF_TABLE[table];
      const severity = blocked ? SEVERITY.warning : table === 'scan_results' && content.verdict !== 'approved' ? SEVERITY.notice : SEVERITY.info;
      const time = String(content.recorded_at ?? (scanId === null ? null : (timeOf.get(scanId) as string | undefined)) ?? new Date().toISOString());
      // Every message is the kiosk's own (the certificate's CN); a scan naming another kiosk is for the central review to refuse.
      const hostname = kioskId;
      const body = kioskRecordBytes(table, Number(seq), String(prev), String(hash), content);
      out.push({ seq: Number(seq), blocked, message: formatSyslogRecord({ time, hostname, appName: 'portcullis-kiosk', msgId, severity,
        params: { seq: Number(seq), hash: String(hash), chain, table, scanId: scanId === null ? null : String(scanId), verdict: content.verdict ?? null, path: content.path ?? null, sha256: content.sha256 ?? null } }, body) });
    }
  }
  out.sort((a, b) => a.seq - b.seq);
  return out;
}

/** The kiosk id a database's scans name (the HOSTNAME of its messages that belong to no scan). */
function kioskOfDb(db: Database.Database): string {
  return (db.prepare('SELECT kiosk_id FROM scans ORDER BY seq DESC LIMIT 1').pluck().get() as string | undefined) ?? 'kiosk';
}

/** A review sign-in event as a message (SR 2.8): refused and locked sign-ins are warnings. */
export function signInMessage(e: SignInRecord, hostname: string): SyslogMessage {
  const warn = e.event === 'SIGN_IN_FAILED' || e.event === 'SIGN_IN_LOCKED' || e.event === 'TOKEN_FAILED';
  return { time: e.at, hostname, appName: 'portcullis-kiosk', msgId: e.event, severity: warn ? SEVERITY.warning : SEVERITY.notice,
    params: { id: e.id, user: e.username, method: e.method, address: e.address },
    text: `review ${e.event.toLowerCase().replaceAll('_', ' ')}${e.username === null ? '' : ` for ${e.username}`} from ${e.address}` };
}

/** The kiosk's state for the central's health view: its chain head, its engines and rules as the last scan recorded them. */
export function kioskHeartbeat(db: Database.Database, chain: string, kioskId: string, format: FormatOptions = {}): string {
  const head = db.prepare('SELECT seq, hash FROM chain_head WHERE id = 1').get() as { seq: number; hash: string } | undefined;
  const last = db.prepare(`SELECT r.clamav_version, r.clamav_db_version, r.clamav_db_time, r.yara_rule_set_digest, r.yara_rule_count, r.policy_id, r.allowlist_version, r.finished_at
    FROM scan_results r JOIN scans s ON s.scan_id = r.scan_id ORDER BY r.seq DESC LIMIT 1`).get() as Row | undefined;
  return formatSyslog({ time: new Date().toISOString(), hostname: kioskId, appName: 'portcullis-kiosk', msgId: 'HEARTBEAT', severity: SEVERITY.info,
    params: { chain, headSeq: head?.seq ?? 0, headHash: head?.hash ?? null },
    text: JSON.stringify({ clamavVersion: last?.clamav_version ?? null, clamavDb: last?.clamav_db_version ?? null, clamavDbTime: last?.clamav_db_time ?? null,
      yaraRules: last?.yara_rule_set_digest ?? null, yaraRuleCount: last?.yara_rule_count ?? null, policy: last?.policy_id ?? null, allowlist: last?.allowlist_version ?? null, lastScan: last?.finished_at ?? null }) }, format);
}

/** One imported agent record as a message; its MSGID says what happened (manifest/syslog.ts: a trust change is TRUST_CHANGED). */
export function agentMessage(r: AgentRecord): SyslogMessage {
  return {
    time: r.time, hostname: r.hmi, appName: 'portcullis-agent', msgId: agentMessageId({ event: r.event, outcome: r.outcome as LogRecord['outcome'] }),
    severity: agentSeverity({ event: r.event, outcome: r.outcome as LogRecord['outcome'] }),
    params: { seq: r.seq, hash: r.hash, event: r.event, outcome: r.outcome, code: r.code, manifestDigest: r.manifestDigest, path: r.path, destination: r.destination, sha256: r.sha256, chain: r.chain },
    // An export carries no prev hashes: its records cannot be told from edited ones, and the SIEM must see that.
    text: `${r.event} ${r.outcome} ${r.code}: ${r.reason}${r.chain === 'verified' ? '' : ' (unverified: imported from an export whose chain cannot be checked)'}`,
  };
}

export interface SiemSpool {
  readonly path: string;
  /** Spools what is new in the audit database (and the review database's agent records); returns how many messages were added. */
  collect(source: { readonly auditDb: string; readonly staff?: StaffStore }): { added: number; chainOk: boolean };
  /**
   * Spools every ledger row after the central mark as a record message for the central review (centralMessages), and
   * the review database's sign-in events after theirs. Returns how many were added and whether a blocked file was among them.
   */
  collectCentral(source: { readonly auditDb: string; readonly staff?: StaffStore; readonly kioskId: string }): { added: number; blocked: number };
  pending(): number;
  /** Sends every spooled message; resolves with how many were delivered. Throws SIEM_SEND_FAILED, keeping the rest spooled. */
  deliver(target: SiemTarget): Promise<number>;
  highWater(source: 'kiosk' | 'agent' | 'central' | 'sign-in'): number;
  close(): void;
}

export interface SiemTarget {
  readonly host: string;
  readonly port: number;
  readonly transport: 'tcp' | 'tls';
  /** TLS: CA certificates (PEM) to trust, client certificate and key for mutual TLS, server name to check. */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
  readonly connectTimeoutMs?: number; // ms
  /** central: the central review's receiver, which answers a stored batch with `ACK n`; syslog (default): a SIEM that answers nothing. */
  readonly protocol?: 'central' | 'syslog';
  /** Messages sent after the spooled ones on every connection and never spooled (the central's heartbeat). */
  readonly heartbeat?: () => string;
}

/** Opens (creating when needed) the SIEM spool. */
export function openSiemSpool(path: string, options: { readonly format?: FormatOptions } = {}): SiemSpool {
  const format = options.format ?? {};
  let db: Database.Database;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, source_seq INTEGER NOT NULL, message TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS high_water (source TEXT PRIMARY KEY, seq INTEGER NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, spooled_at TEXT NOT NULL) STRICT;`);
  } catch (cause) {
    throw new SiemError('SIEM_SPOOL_FAILED', `${path}: cannot open the SIEM spool (${(cause as Error).message})`, { cause });
  }
  const getMark = db.prepare('SELECT seq FROM high_water WHERE source = ?').pluck();
  const setMark = db.prepare('INSERT INTO high_water (source, seq) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET seq = excluded.seq');
  const add = db.prepare('INSERT INTO spool (source, source_seq, message) VALUES (?, ?, ?)');
  const mark = (source: string): number => Number((getMark.get(source) as number | undefined) ?? 0);

  return {
    path,
    highWater: mark,
    collect(source) {
      const store = openAuditStore(source.auditDb, { readonly: true });
      const audit = new Database(source.auditDb, { readonly: true, fileMustExist: true });
      try {
        const check = store.verifyChain();
        // Only verified records leave: a break stops the export at the record before it.
        const limit = check.ok ? check.head.seq : check.records;
        let added = 0;
        db.transaction(() => {
          if (!check.ok) {
            const key = `${check.first.code}:${check.first.table}:${check.first.seq ?? check.first.rowid ?? ''}`;
            if (db.prepare('INSERT OR IGNORE INTO alerts (key, spooled_at) VALUES (?, ?)').run(key, new Date().toISOString()).changes === 1) {
              const message: SyslogMessage = { time: new Date().toISOString(), hostname: 'kiosk', appName: 'portcullis-kiosk', msgId: 'CHAIN_BROKEN', severity: SEVERITY.alert,
                params: { code: check.first.code, table: check.first.table, seq: check.first.seq, rowid: check.first.rowid, verified: check.records },
                text: `audit chain broken at ${check.first.table} ${String(check.first.seq ?? '')}: ${check.first.code}: ${check.first.reason}` };
              add.run('alert', 0, formatSyslog(message, format));
              added++;
            }
          }
        })();
        // Each step spools a slice and moves the mark in one transaction: a crash between steps repeats nothing.
        for (let after = mark('kiosk'); after < limit;) {
          const upto = Math.min(limit, after + BATCH);
          db.transaction(() => {
            for (const { seq, message } of kioskMessages(audit, after, upto)) {
              add.run('kiosk', seq, formatSyslog(message, format));
              added++;
            }
            setMark.run('kiosk', upto);
          })();
          after = upto;
        }
        if (source.staff) {
          for (;;) {
            const records = source.staff.agentRecordsAfter(mark('agent'), BATCH);
            if (records.length === 0) break;
            db.transaction(() => {
              for (const r of records) {
                add.run('agent', r.id, formatSyslog(agentMessage(r), format));
                added++;
              }
              setMark.run('agent', records.at(-1)!.id);
            })();
          }
        }
        if (source.staff) {
          for (;;) {
            const events = source.staff.signInsAfter(mark('sign-in'), BATCH);
            if (events.length === 0) break;
            const host = kioskOfDb(audit);
            db.transaction(() => {
              for (const e of events) {
                add.run('sign-in', e.id, formatSyslog(signInMessage(e, host), format));
                added++;
              }
              setMark.run('sign-in', events.at(-1)!.id);
            })();
          }
        }
        return { added, chainOk: check.ok };
      } finally {
        audit.close();
        store.close();
      }
    },
    collectCentral(source) {
      const audit = new Database(source.auditDb, { readonly: true, fileMustExist: true });
      try {
        const chain = kioskChainOf(audit);
        const head = Number(audit.prepare('SELECT seq FROM chain_head WHERE id = 1').pluck().get() ?? 0);
        let added = 0;
        let blocked = 0;
        for (let after = mark('central'); chain !== null && after < head;) {
          const upto = Math.min(head, after + BATCH);
          db.transaction(() => {
            for (const m of centralMessages(audit, after, upto, chain, source.kioskId)) {
              add.run('central', m.seq, m.message.toString('utf8'));
              added++;
              if (m.blocked) blocked++;
            }
            setMark.run('central', upto);
          })();
          after = upto;
        }
        if (source.staff) {
          for (const e of source.staff.signInsAfter(mark('sign-in'), BATCH)) {
            db.transaction(() => {
              add.run('sign-in', e.id, formatSyslog(signInMessage(e, source.kioskId), format));
              setMark.run('sign-in', e.id);
            })();
            added++;
          }
        }
        return { added, blocked };
      } finally {
        audit.close();
      }
    },
    pending() {
      return Number(db.prepare('SELECT count(*) FROM spool').pluck().get());
    },
    async deliver(target) {
      let delivered = 0;
      for (;;) {
        const batch = db.prepare('SELECT id, message FROM spool ORDER BY id LIMIT ?').all(BATCH) as Array<{ id: number; message: string }>;
        if (batch.length === 0) {
          if (delivered === 0 && target.heartbeat) await sendBatch(target, [target.heartbeat()]);
          return delivered;
        }
        await sendBatch(target, [...batch.map((b) => b.message), ...(target.heartbeat ? [target.heartbeat()] : [])]);
        // Deleted only after the receiver closed the connection cleanly: a failed send leaves the batch for the next run.
        db.prepare('DELETE FROM spool WHERE id <= ?').run(batch.at(-1)!.id);
        delivered += batch.length;
      }
    },
    close() {
      db.close();
    },
  };
}

/** One connection: write every frame, half-close, and wait for the receiver to close its side. */
async function sendBatch(target: SiemTarget, messages: readonly string[]): Promise<void> {
  const timeout = target.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  let socket: Socket;
  const connected = new Promise<Socket>((resolve, reject) => {
    const s: Socket = target.transport === 'tls'
      ? tlsConnect({ host: target.host, port: target.port, ...target.tls, rejectUnauthorized: true }, () => resolve(s))
      : netConnect({ host: target.host, port: target.port }, () => resolve(s));
    s.setTimeout(timeout, () => s.destroy(new Error(`no progress for ${timeout} ms`)));
    s.once('error', reject);
  });
  try {
    socket = await connected;
  } catch (cause) {
    throw new SiemError('SIEM_SEND_FAILED', `${target.host}:${target.port}: cannot connect (${(cause as Error).message}): the messages stay spooled`, { cause });
  }
  try {
    const answer: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      if (answer.length < 4) answer.push(chunk);
    });
    const closed = once(socket, 'close');
    const failed = once(socket, 'error');
    socket.end(Buffer.concat(messages.map(frameOctetCounting)));
    socket.resume(); // a SIEM sends nothing; read to see its FIN (the central review's ACK)
    const [hadError] = (await Promise.race([closed, failed.then(([e]) => Promise.reject(e instanceof Error ? e : new Error(String(e))))])) as [boolean];
    if (hadError) throw new Error('the connection closed with an error');
    // The central review acknowledges a stored batch; a bare close is not that (a refused client certificate under TLS 1.3 can look like one).
    const said = Buffer.concat(answer).toString('latin1');
    if (target.protocol === 'central' && said !== `ACK ${messages.length}\n`) throw new Error(said === '' ? 'the central review closed without acknowledging the batch' : `the receiver answered ${JSON.stringify(said.slice(0, 40))}`);
  } catch (cause) {
    socket.destroy();
    throw new SiemError('SIEM_SEND_FAILED', `${target.host}:${target.port}: sending failed (${(cause as Error).message}): the messages stay spooled and are sent again`, { cause });
  }
}
