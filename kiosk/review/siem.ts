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
import { agentMessageId, agentSeverity, formatSyslog, frameOctetCounting, SEVERITY, type FormatOptions, type SyslogMessage } from '../../manifest/syslog.ts';
import { openAuditStore } from '../audit/store.ts';
import type { LogRecord } from '../../manifest/agent-log.ts';
import type { AgentRecord, StaffStore } from './review-store.ts';

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
  pending(): number;
  /** Sends every spooled message; resolves with how many were delivered. Throws SIEM_SEND_FAILED, keeping the rest spooled. */
  deliver(target: SiemTarget): Promise<number>;
  highWater(source: 'kiosk' | 'agent'): number;
  close(): void;
}

export interface SiemTarget {
  readonly host: string;
  readonly port: number;
  readonly transport: 'tcp' | 'tls';
  /** TLS: CA certificates (PEM) to trust, client certificate and key for mutual TLS, server name to check. */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
  readonly connectTimeoutMs?: number; // ms
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
        return { added, chainOk: check.ok };
      } finally {
        audit.close();
        store.close();
      }
    },
    pending() {
      return Number(db.prepare('SELECT count(*) FROM spool').pluck().get());
    },
    async deliver(target) {
      let delivered = 0;
      for (;;) {
        const batch = db.prepare('SELECT id, message FROM spool ORDER BY id LIMIT ?').all(BATCH) as Array<{ id: number; message: string }>;
        if (batch.length === 0) return delivered;
        await sendBatch(target, batch.map((b) => b.message));
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
    const closed = once(socket, 'close');
    const failed = once(socket, 'error');
    socket.end(Buffer.concat(messages.map(frameOctetCounting)));
    socket.resume(); // the receiver sends nothing; read to see its FIN
    const [hadError] = (await Promise.race([closed, failed.then(([e]) => Promise.reject(e instanceof Error ? e : new Error(String(e))))])) as [boolean];
    if (hadError) throw new Error('the connection closed with an error');
  } catch (cause) {
    socket.destroy();
    throw new SiemError('SIEM_SEND_FAILED', `${target.host}:${target.port}: sending failed (${(cause as Error).message}): the messages stay spooled and are sent again`, { cause });
  }
}
