/**
 * Review at scale: a year of a busy gate (200 scans a day, 200 files each,
 * about 15 million chained records) written into an audit database, then
 * the review server's list, filter, detail, chart and export answers timed
 * over HTTP on 127.0.0.1.
 *
 *   node bench/review.ts [--days 365] [--scans-per-day 200] [--files-per-scan 200] [--db FILE] [--keep] [--verify]
 *
 * Rows are written straight into the store's tables with the store's own
 * record hash (chain.ts), one transaction per day and synchronous=OFF, so
 * the generated chain verifies; the kiosk itself writes one fsynced
 * transaction per scan. An existing --db is reused as it is.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { canonicalize } from '../manifest/canonical-json.ts';
import { recordHash, type RowContent } from '../kiosk/audit/chain.ts';
import { openAuditStore } from '../kiosk/audit/store.ts';
import { openReviewStore } from '../kiosk/review/review-store.ts';
import { startReviewServer } from '../kiosk/review/server.ts';

const { values } = parseArgs({
  options: {
    days: { type: 'string', default: '365' },
    'scans-per-day': { type: 'string', default: '200' },
    'files-per-scan': { type: 'string', default: '200' },
    db: { type: 'string' },
    keep: { type: 'boolean', default: false },
    verify: { type: 'boolean', default: false },
  },
});
const days = Number(values.days);
const scansPerDay = Number(values['scans-per-day']);
const filesPerScan = Number(values['files-per-scan']);
const dir = mkdtempSync(join(tmpdir(), 'bench-review-'));
const dbPath = values.db ?? join(dir, 'audit.db');
const START = Date.parse('2025-01-01T00:00:00Z');
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

function generate(): void {
  openAuditStore(dbPath).close(); // creates the schema and the first record
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // a benchmark fixture: no fsync per day
  db.pragma('cache_size = -4000000'); // KiB: keeps the digest indexes in memory; random-key inserts crawl otherwise
  const head = db.prepare('SELECT seq, hash FROM chain_head WHERE id = 1').get() as { seq: number; hash: string };
  let seq = head.seq;
  let prev = head.hash;
  const statements = new Map<string, Database.Statement>();
  const append = (table: string, row: RowContent): number => {
    seq += 1;
    const hash = recordHash(table, seq, prev, row);
    const columns = Object.keys(row);
    const key = `${table}:${columns.join(',')}`;
    let statement = statements.get(key);
    if (!statement) {
      const names = ['seq', 'prev_hash', 'hash', ...columns];
      statement = db.prepare(`INSERT INTO ${table} (${names.join(',')}) VALUES (${names.map(() => '?').join(',')})`);
      statements.set(key, statement);
    }
    statement.run(seq, prev, hash, ...Object.values(row));
    prev = hash;
    return seq;
  };
  const operators = ['op-1', 'op-2', 'op-3', 'op-4', 'op-5', 'op-6', 'op-7', 'op-8'];
  const started = process.hrtime.bigint();
  for (let day = 0; day < days; day++) {
    db.transaction(() => {
      for (let n = 0; n < scansPerDay; n++) {
        const scanId = `d${day}-s${n}`;
        const t = START + day * 86_400_000 + 6 * 3_600_000 + n * 240_000;
        const iso = (ms: number): string => new Date(ms).toISOString();
        append('scans', { recorded_at: iso(t), scan_id: scanId, kiosk_id: 'gate-1', operator_id: operators[n % operators.length]!, started_at: iso(t) });
        append('devices', { scan_id: scanId, usb_vendor_id: '0781', usb_product_id: '5567', usb_serial: `SER-${(day * 7 + n) % 5000}`, manufacturer: 'SanDisk', product: 'Cruzer', filesystem: 'vfat', volume_id: 'ABCD-1234', label: `LINE${n % 12}`, capacity: 16_000_000_000 });
        const infected = n % 50 === 0; // one drive in 50 brings malware
        let blocked = 0;
        for (let f = 0; f < filesPerScan; f++) {
          const bad = infected && f < 3;
          const fileSeq = append('files', { scan_id: scanId, path: `project/line${n % 12}/unit${f}.s7p`, size: 10_000 + f, sha256: hex(`${scanId}/${f}`), blake3: hex(`b${scanId}/${f}`), verdict: bad ? 'blocked' : 'clean' });
          if (bad) {
            blocked++;
            append('reasons', { scan_id: scanId, level: 'file', file_seq: fileSeq, code: 'MALWARE', detail: 'Win.Test.EICAR_HDB-1' });
          }
        }
        const verdict = blocked > 0 ? 'partial' : 'approved';
        append('scan_results', {
          recorded_at: iso(t + 60_000), scan_id: scanId, finished_at: iso(t + 60_000), verdict,
          clamav_version: 'ClamAV 1.4.3', clamav_db_version: '27512', clamav_db_time: '2025-02-28T09:00:00Z', yara_engine: 'yara 4.5.2',
          yara_rule_set_digest: `sha256:${hex('rules')}`, yara_rule_count: 42, policy_id: 'default', policy_digest: `sha256:${hex('policy')}`,
          allowlist_version: null, allowlist_digest: null, file_count: filesPerScan, byte_count: filesPerScan * 10_000, entry_count: filesPerScan,
          walk_ms: 40, scan_ms: 50_000, total_ms: 50_040, manifest_folder_extras: canonicalize([]),
          manifest_digest: `sha256:${hex(`m${scanId}`)}`, manifest_key_id: hex('key'), manifest_expires_at: iso(t + 86_400_000).replace('.000Z', 'Z'),
        });
      }
      db.prepare('UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1').run(seq, prev);
    })();
    if (day % 30 === 29) process.stderr.write(`  ${day + 1} days, ${seq} records, ${Math.round(seq / seconds(started))} records/s\n`);
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  console.log(`generated ${days} days x ${scansPerDay} scans x ${filesPerScan} files: ${seq} records in ${seconds(started).toFixed(1)} s`);
}

async function measure(): Promise<void> {
  const staff = openReviewStore(join(dir, 'review.db'));
  const server = await startReviewServer({ auditDb: dbPath, staff, port: 0 });
  const { token } = staff.issueToken('bench');
  const login = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}`, redirect: 'manual' });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const lastDay = new Date(START + (days - 1) * 86_400_000).toISOString().slice(0, 10);
  const midDay = new Date(START + Math.floor(days / 2) * 86_400_000).toISOString().slice(0, 10);
  const monthStart = new Date(START + Math.max(0, days - 30) * 86_400_000).toISOString().slice(0, 10);
  const cases: Array<[string, string]> = [
    ['list newest 50', '/api/scans'],
    ['list newest 200', '/api/scans?limit=200'],
    ['filter verdict=partial (200)', '/api/scans?verdict=partial&limit=200'],
    ['filter operator (200)', '/api/scans?operator=op-3&limit=200'],
    ['filter serial', '/api/scans?serial=SER-1234&limit=200'],
    ['filter one day', `/api/scans?since=${midDay}&until=${midDay}&limit=200`],
    ['filter file hash', `/api/scans?file=sha256:${hex(`d${Math.floor(days / 2)}-s7/9`)}`],
    ['filter file name fragment', '/api/scans?file=unit199.s7p&limit=50'],
    ['filter file name, one day', `/api/scans?file=unit199.s7p&since=${lastDay}&until=${lastDay}`],
    ['scan detail (200 files)', `/api/scans/d${Math.floor(days / 2)}-s0`],
    ['chart, last 30 days', '/api/stats/daily'],
    ['export CSV, one day', `/api/export?format=csv&since=${lastDay}&until=${lastDay}`],
    ['export JSON, one day', `/api/export?format=json&since=${lastDay}&until=${lastDay}`],
    ['export CSV, last 30 days', `/api/export?format=csv&since=${monthStart}&until=${lastDay}`],
  ];
  if (values.verify) cases.push(['chain verify (whole log)', '/api/chain?wait=1']);
  console.log('\n| request | ms | bytes |\n| --- | ---: | ---: |');
  for (const [name, path] of cases) {
    const start = process.hrtime.bigint();
    const response = await fetch(`${server.url}${path}`, { headers: { cookie } });
    const body = await response.arrayBuffer();
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${Buffer.from(body).toString()}`);
    console.log(`| ${name} | ${(seconds(start) * 1000).toFixed(0)} | ${body.byteLength} |`);
  }
  await server.close();
  staff.close();
}

try {
  if (!values.db || !existsSync(dbPath)) generate();
  await measure();
} finally {
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
