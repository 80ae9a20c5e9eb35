/**
 * The central review at site scale: a year of a 40-kiosk, 2 000-HMI site in
 * PostgreSQL, ingestion through the real receiver, and the page's answers
 * timed over HTTP.
 *
 *   node bench/central.ts [--scans 200000] [--files-per-scan 50] [--agent-records 5000000] [--kiosks 40] [--hmis 2000]
 *                         [--ingest 200000] [--runs 20] [--database URL] [--keep]
 *
 * 1. A throwaway cluster (test/support/postgres.ts, fsync on), unless --database names one.
 * 2. Ingestion, measured: --ingest records (half kiosk ledger rows, half agent records, each with its real
 *    hash chain) sent by 4 sources at once through the receiver over mutual TLS in batches of 2 000, each
 *    batch checked (hashes, links, duplicates) and stored in one transaction, as the forwarders send them.
 *    Once into the empty database and once more (other sources) after the year is loaded.
 * 3. The year, generated: --scans scans spread over 365 days and the kiosks, --files-per-scan files each
 *    (2 % blocked, each with a reason; 1 % firmware from a pool of 5 000 shared hashes), a device and a
 *    result per scan, and --agent-records HMI records (drive checked, 8 files imported, import finished,
 *    for manifests the kiosks issued), written with COPY through psql with the secondary indexes dropped
 *    and built again afterwards. Their record hashes are random: the year measures the queries; step 2
 *    measures the checking.
 * 4. Each request of the page --runs times after one warm-up, median and p95.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { hashedRecordText, GENESIS_HASH, type LogRecord } from '../manifest/agent-log.ts';
import { kioskRecordBytes, recordHash } from '../manifest/audit-record.ts';
import { formatSyslogRecord, frameOctetCounting } from '../manifest/syslog.ts';
import { deliver } from '../agent/forward/forwarder.ts';
import { startReceiver } from '../kiosk/review/central/receiver.ts';
import { openCentralStore } from '../kiosk/review/central/store.ts';
import { startReviewServer } from '../kiosk/review/server.ts';
import { makeSitePki } from '../test/support/site-pki.ts';
import { PG_BIN, startPostgres } from '../test/support/postgres.ts';

const { values } = parseArgs({
  options: {
    scans: { type: 'string', default: '200000' },
    'files-per-scan': { type: 'string', default: '50' },
    'agent-records': { type: 'string', default: '5000000' },
    kiosks: { type: 'string', default: '40' },
    hmis: { type: 'string', default: '2000' },
    ingest: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '20' },
    database: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const SCANS = Number(values.scans);
const FILES = Number(values['files-per-scan']);
const AGENT = Number(values['agent-records']);
const KIOSKS = Number(values.kiosks);
const HMIS = Number(values.hmis);
const INGEST = Number(values.ingest);
const RUNS = Number(values.runs);
const YEAR = Date.parse('2025-01-01T00:00:00Z');
const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'bench-central-'));
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const t0 = (): number => performance.now();
const secs = (from: number): string => ((performance.now() - from) / 1000).toFixed(1);

// A fast deterministic generator for the year's hex and choices.
let state = 0x9e3779b9;
const rnd = (): number => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 4294967296;
};
const hex64 = (): string => {
  let s = '';
  for (let i = 0; i < 8; i++) s += (Math.floor(rnd() * 4294967296) >>> 0).toString(16).padStart(8, '0');
  return s;
};
const FIRMWARE = Array.from({ length: 5000 }, hex64);
const kioskName = (k: number): string => `kiosk-${String(k + 1).padStart(2, '0')}`;
const hmiName = (h: number): string => `hmi-${String(h + 1).padStart(4, '0')}`;

/** The machine's load average: on a shared machine, what else was running moves every number here. */
const load = (): string => `load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`;
say(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${load()}`);
const pg = values.database ? null : await startPostgres({ durable: true, settings: { shared_buffers: '2GB', maintenance_work_mem: '1GB', max_wal_size: '16GB', work_mem: '64MB', effective_cache_size: '12GB', max_parallel_workers_per_gather: '2' } });
const url = values.database ?? pg!.url;
const store = await openCentralStore(url);
const version = (await store.pool.query<{ v: string }>('SELECT current_setting(\'server_version\') AS v')).rows[0]!.v;
say(`PostgreSQL ${version}${pg ? ' (throwaway cluster, fsync on, shared_buffers 2GB)' : ''}`);

// ---- 2. ingestion through the receiver ----
const pki = makeSitePki(join(dir, 'pki'));
const receiver = await startReceiver({ store, port: 0, tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca } });

/** `n` records of one source as frames, in batches of 2 000: a kiosk's ledger rows or an HMI's log lines, with their real chain. */
function sourceFrames(kind: 'kiosk' | 'hmi', name: string, n: number): Buffer[][] {
  const frames: Buffer[] = [];
  let prev = GENESIS_HASH;
  let chain = '';
  for (let seq = 1; seq <= n; seq++) {
    const time = new Date(YEAR + seq * 1000).toISOString();
    let hash: string;
    let body: Buffer;
    if (kind === 'kiosk') {
      const scan = `ing-${Math.floor(seq / 52)}`;
      const row: Record<string, string | number | null> = seq % 52 === 0
        ? { recorded_at: time, scan_id: scan, kiosk_id: name, operator_id: 'op-1', started_at: time }
        : { scan_id: scan, path: `dir/file-${seq}.bin`, size: 1000 + seq, sha256: hex64(), blake3: hex64(), verdict: 'clean', controlled_class: null, allowlist_vendor: null, allowlist_product: null, allowlist_version: null, allowlist_file: null, allowlist_source: null };
      const table = seq % 52 === 0 ? 'scans' : 'files';
      hash = recordHash(table, seq, prev, row);
      body = kioskRecordBytes(table, seq, prev, hash, row);
    } else {
      const r: Omit<LogRecord, 'hash'> = { seq, time, prev, event: 'file.imported', hmi: name, manifestDigest: `sha256:${hex64()}`, keyId: null, drive: null, path: `firmware/f${seq}.bin`, destination: `D:\\in\\f${seq}.bin`, digests: { sha256: hex64(), blake3: null, size: 4096 }, outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying' };
      const text = hashedRecordText(r);
      hash = text.hash;
      body = Buffer.from(text.text);
    }
    if (seq === 1) chain = hash;
    frames.push(frameOctetCounting(formatSyslogRecord({ time, hostname: name, appName: kind === 'kiosk' ? 'portcullis-kiosk' : 'portcullis-agent', msgId: kind === 'kiosk' ? 'FILE_CHECKED' : 'FILE_IMPORTED', severity: 6, params: { seq, hash, chain } }, body)));
    prev = hash;
  }
  const batches: Buffer[][] = [];
  for (let i = 0; i < frames.length; i += 2000) batches.push(frames.slice(i, i + 2000));
  return batches;
}

async function ingest(label: string, prefix: string): Promise<void> {
  if (INGEST === 0) return;
  const names = [`${prefix}-kiosk-a`, `${prefix}-kiosk-b`, `${prefix}-hmi-a`, `${prefix}-hmi-b`];
  for (const [i, n] of names.entries()) await store.enrol(n, i < 2 ? 'kiosk' : 'hmi');
  const per = Math.ceil(INGEST / names.length);
  const work = names.map((n, i) => ({ name: n, batches: sourceFrames(i < 2 ? 'kiosk' : 'hmi', n, per) }));
  const started = t0();
  await Promise.all(work.map(async ({ name, batches }) => {
    const pem = pki.client(name);
    for (const batch of batches) await deliver({ host: '127.0.0.1', port: receiver.port, transport: 'tls', tls: { ca: pki.ca, cert: pem.cert, key: pem.key, servername: 'localhost' }, timeoutMs: 120_000 }, batch);
  }));
  const seconds = (performance.now() - started) / 1000;
  const held = Number((await store.pool.query<{ n: string }>(`SELECT count(*) AS n FROM records r JOIN chains c ON c.id = r.chain_id JOIN sources s ON s.id = c.source_id WHERE s.name LIKE $1`, [`${prefix}-%`])).rows[0]!.n);
  say(`ingestion (${label}): ${held} records from 4 sources in ${seconds.toFixed(1)} s: ${Math.round(held / seconds)} records/s (batches of 2 000 over mutual TLS, hashes and links checked, one transaction per batch)`);
}

await ingest('empty database', 'ing1');

// ---- 3. the year, by COPY ----
/** COPY rows into `table` through psql's stdin. */
async function copy(table: string, columns: string[], rows: (write: (cells: Array<string | number | null>) => Promise<void>) => Promise<void>): Promise<number> {
  const child = spawn(join(PG_BIN, 'psql'), [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `COPY ${table} (${columns.join(', ')}) FROM STDIN (FORMAT csv)`], { stdio: ['pipe', 'inherit', 'inherit'] });
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  let chunk = '';
  let n = 0;
  const cell = (v: string | number | null): string => (v === null ? '' : typeof v === 'number' ? String(v) : /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v === '' ? '""' : v);
  const write = async (cells: Array<string | number | null>): Promise<void> => {
    chunk += `${cells.map(cell).join(',')}\n`;
    n++;
    if (chunk.length > 1 << 20) {
      if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once('drain', r));
      chunk = '';
    }
  };
  await rows(write);
  child.stdin.end(chunk);
  if ((await done) !== 0) throw new Error(`COPY ${table} failed`);
  return n;
}

const SECONDARY = ['k_scans_started', 'k_scans_operator', 'k_devices_scan', 'k_devices_serial', 'k_files_scan', 'k_files_sha256', 'k_files_blake3', 'k_reasons_scan', 'k_results_manifest', 'k_events_scan', 'a_records_manifest', 'a_records_sha256', 'a_records_blake3', 'a_records_time', 'a_records_no_manifest', 'records_link'];
const definitions = (await store.pool.query<{ indexname: string; indexdef: string }>('SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1)', [SECONDARY])).rows;
const yearStart = t0();
for (const d of definitions) await store.pool.query(`DROP INDEX ${d.indexname}`);
await store.pool.query("ALTER TABLE records DROP CONSTRAINT records_pkey, DROP CONSTRAINT records_chain_id_fkey");

// Sources and chains: chain id = source id for the year's sources.
const base = Number((await store.pool.query<{ m: string }>('SELECT coalesce(max(id), 0) AS m FROM sources')).rows[0]!.m);
await copy('sources', ['id', 'name', 'kind', 'enrolled_at', 'last_seen', 'status'], async (w) => {
  for (let k = 0; k < KIOSKS; k++) await w([base + 1 + k, kioskName(k), 'kiosk', '2025-01-01T00:00:00Z', new Date().toISOString(), JSON.stringify({ headSeq: 0, body: { clamavDbTime: new Date().toISOString() } })]);
  for (let h = 0; h < HMIS; h++) await w([base + 1 + KIOSKS + h, hmiName(h), 'hmi', '2025-01-01T00:00:00Z', new Date().toISOString(), JSON.stringify({ headSeq: 0, body: { trustSequence: 3, trustedKeys: [] } })]);
});
await store.pool.query(`SELECT setval('sources_id_seq', (SELECT max(id) FROM sources))`);
const chainBase = Number((await store.pool.query<{ m: string }>('SELECT coalesce(max(id), 0) AS m FROM chains')).rows[0]!.m);
await copy('chains', ['id', 'source_id', 'genesis', 'number', 'first_seen'], async (w) => {
  for (let s = 0; s < KIOSKS + HMIS; s++) await w([chainBase + 1 + s, base + 1 + s, hex64(), 1, '2025-01-01T00:00:00Z']);
});
await store.pool.query(`SELECT setval('chains_id_seq', (SELECT max(id) FROM chains))`);

const kioskSeq = new Array<number>(KIOSKS).fill(0);
const scanTime = (i: number): number => YEAR + Math.floor((i / SCANS) * 365 * DAY) + Math.floor(rnd() * 60_000);
const manifestOf = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;
const REASONS = ['MALWARE', 'YARA_MATCH', 'TYPE_MISMATCH', 'NOT_ALLOWLISTED', 'MACRO', 'NOT_INSPECTED'];
const counts = { scans: 0, files: 0, reasons: 0, records: 0, agent: 0 };

// Every table of a scan in one pass would need five psql streams at once; instead each table is its own pass over the same seeded choices.
interface ScanPlan { kiosk: number; chain: number; time: number; blocked: number[]; }
const plans: ScanPlan[] = [];
for (let i = 0; i < SCANS; i++) {
  const blocked: number[] = [];
  for (let f = 0; f < FILES; f++) if (rnd() < 0.02) blocked.push(f);
  plans.push({ kiosk: i % KIOSKS, chain: chainBase + 1 + (i % KIOSKS), time: scanTime(i), blocked });
}
const seqOf: Array<{ scan: number; device: number; files: number; reasons: number; result: number }> = plans.map((p) => {
  const s = kioskSeq[p.kiosk]!;
  kioskSeq[p.kiosk] = s + 3 + FILES + p.blocked.length;
  return { scan: s + 1, device: s + 2, files: s + 3, reasons: s + 3 + FILES, result: s + 3 + FILES + p.blocked.length };
});
const fileHash = (i: number, f: number): string => ((i * 31 + f) % 100 === 0 ? FIRMWARE[(i + f) % FIRMWARE.length]! : (i * 1000 + f).toString(16).padStart(64, 'f'));

let step = t0();
counts.scans = await copy('k_scans', ['chain_id', 'seq', 'source_id', 'scan_id', 'kiosk_id', 'operator_id', 'started_at', 'started_text', 'recorded_at'], async (w) => {
  for (let i = 0; i < SCANS; i++) {
    const p = plans[i]!;
    const t = new Date(p.time).toISOString();
    await w([p.chain, seqOf[i]!.scan, base + 1 + p.kiosk, `s${i}`, kioskName(p.kiosk), `op-${i % 300}`, t, t, t]);
  }
});
await copy('k_devices', ['chain_id', 'seq', 'scan_id', 'usb_vendor_id', 'usb_product_id', 'usb_serial', 'manufacturer', 'product', 'filesystem', 'volume_id', 'label', 'capacity'], async (w) => {
  for (let i = 0; i < SCANS; i++) await w([plans[i]!.chain, seqOf[i]!.device, `s${i}`, '0781', '5567', `SER${i % 20000}`, 'SanDisk', 'Cruzer Blade', 'vfat', '1234-ABCD', `LINE${i % 12}`, 16_000_000_000]);
});
await copy('k_results', ['chain_id', 'seq', 'scan_id', 'recorded_at', 'finished_at', 'verdict', 'clamav_version', 'clamav_db_version', 'clamav_db_time', 'yara_engine', 'yara_rule_set_digest', 'yara_rule_count', 'policy_id', 'policy_digest', 'allowlist_version', 'allowlist_digest', 'file_count', 'byte_count', 'entry_count', 'walk_ms', 'scan_ms', 'total_ms', 'manifest_folder_extras', 'manifest_digest', 'manifest_key_id', 'manifest_expires_at'], async (w) => {
  for (let i = 0; i < SCANS; i++) {
    const p = plans[i]!;
    const t = new Date(p.time + 60_000).toISOString();
    const verdict = i % 100 === 7 ? 'rejected' : p.blocked.length > 0 ? 'partial' : 'approved';
    await w([p.chain, seqOf[i]!.result, `s${i}`, t, t, verdict, 'ClamAV 1.4.6', '27600', new Date(p.time - 3600_000).toISOString(), 'yara 4.5.2', `sha256:${'c'.repeat(64)}`, 42, 'default', `sha256:${'d'.repeat(64)}`, 'site@2025.1', null, FILES, FILES * 100_000, FILES, 10, 2000, 2010, '[]', verdict === 'rejected' ? null : manifestOf(i), verdict === 'rejected' ? null : 'ab'.repeat(32), new Date(p.time + 8 * DAY).toISOString()]);
  }
});
say(`year: scans, devices, results: ${counts.scans} scans in ${secs(step)} s`);
step = t0();
counts.files = await copy('k_files', ['chain_id', 'seq', 'scan_id', 'path', 'size', 'sha256', 'blake3', 'verdict', 'controlled_class'], async (w) => {
  for (let i = 0; i < SCANS; i++) {
    const p = plans[i]!;
    for (let f = 0; f < FILES; f++) {
      const h = fileHash(i, f);
      const blocked = p.blocked.includes(f);
      await w([p.chain, seqOf[i]!.files + f, `s${i}`, `projects/line${f % 12}/part-${f}${(i * 31 + f) % 100 === 0 ? '.bin' : '.pdf'}`, 10_000 + f, h, h.split('').reverse().join(''), blocked ? 'blocked' : (i * 31 + f) % 100 === 0 ? 'allowlisted' : 'clean', (i * 31 + f) % 100 === 0 ? 'firmware' : null]);
    }
  }
});
counts.reasons = await copy('k_reasons', ['chain_id', 'seq', 'scan_id', 'level', 'file_seq', 'code', 'detail'], async (w) => {
  for (let i = 0; i < SCANS; i++) {
    const p = plans[i]!;
    for (const [j, f] of p.blocked.entries()) await w([p.chain, seqOf[i]!.reasons + j, `s${i}`, 'file', seqOf[i]!.files + f, REASONS[(i + f) % REASONS.length]!, 'found by the bench']);
  }
});
say(`year: ${counts.files} files and ${counts.reasons} reasons in ${secs(step)} s`);

// The HMI records: imports of drives the kiosks approved, 10 records each.
step = t0();
const imports = Math.floor(AGENT / 10);
const hmiSeq = new Array<number>(HMIS).fill(0);
const agentPlan = (n: number): { hmi: number; scan: number; seq: number; time: number } => {
  const hmi = n % HMIS;
  const scan = Math.floor(rnd() * SCANS);
  const seq = hmiSeq[hmi]!;
  hmiSeq[hmi] = seq + 10;
  return { hmi, scan, seq, time: plans[scan]!.time + 2 * 3600_000 + (n % 3600) * 1000 };
};
const importPlans = Array.from({ length: imports }, (_, n) => agentPlan(n));
counts.agent = await copy('a_records', ['chain_id', 'seq', 'source_id', 'hmi', 'time', 'event', 'outcome', 'code', 'reason', 'manifest_digest', 'key_id', 'drive_label', 'path', 'destination', 'sha256', 'size'], async (w) => {
  for (const a of importPlans) {
    const chain = chainBase + 1 + KIOSKS + a.hmi;
    const src = base + 1 + KIOSKS + a.hmi;
    const m = manifestOf(a.scan);
    const at = (k: number): string => new Date(a.time + k * 1000).toISOString();
    await w([chain, a.seq + 1, src, hmiName(a.hmi), at(0), 'drive.checked', 'allowed', 'APPROVED', 'manifest verified', m, 'ab'.repeat(32), `LINE${a.scan % 12}`, null, null, null, null]);
    for (let f = 0; f < 8; f++) await w([chain, a.seq + 2 + f, src, hmiName(a.hmi), at(1 + f), 'file.imported', 'allowed', 'IMPORTED', 'hash matched while copying', m, null, `LINE${a.scan % 12}`, `projects/line${f}/part-${f}.pdf`, `D:\\Line\\part-${f}.pdf`, fileHash(a.scan, f), 10_000 + f]);
    await w([chain, a.seq + 10, src, hmiName(a.hmi), at(10), 'import.finished', 'info', 'DONE', '8 imported', m, null, `LINE${a.scan % 12}`, null, null, null, null]);
  }
});
say(`year: ${counts.agent} HMI records in ${secs(step)} s`);

// The chain rows of everything above (random hashes: the queries need them, step 2 measured their checking).
step = t0();
counts.records = await copy('records', ['chain_id', 'seq', 'hash', 'prev', 'msg_id', 'time', 'received_at', 'link'], async (w) => {
  const now = new Date().toISOString();
  for (let k = 0; k < KIOSKS; k++) {
    for (let s = 1; s <= kioskSeq[k]!; s++) await w([chainBase + 1 + k, s, hex64(), hex64(), 'FILE_CHECKED', null, now, 'ok']);
  }
  for (let h = 0; h < HMIS; h++) {
    for (let s = 1; s <= hmiSeq[h]!; s++) await w([chainBase + 1 + KIOSKS + h, s, hex64(), hex64(), 'FILE_IMPORTED', null, now, 'ok']);
  }
});
say(`year: ${counts.records} chain records in ${secs(step)} s`);
step = t0();
await store.pool.query('ALTER TABLE records ADD PRIMARY KEY (chain_id, seq), ADD CONSTRAINT records_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES chains');
for (const d of definitions) await store.pool.query(d.indexdef);
// The chains' counts, which ingestion keeps as it goes, set once for the generated year.
await store.pool.query(`UPDATE chains c SET records = x.n, max_seq = x.m FROM (SELECT chain_id, count(*) AS n, max(seq) AS m FROM records GROUP BY chain_id) x
  WHERE c.id = x.chain_id AND c.id > $1 AND c.id <= $2`, [chainBase, chainBase + KIOSKS + HMIS]);
await store.pool.query('ANALYZE');
const size = (await store.pool.query<{ s: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS s')).rows[0]!.s;
say(`year: keys and indexes built, analysed in ${secs(step)} s; the whole year loaded in ${secs(yearStart)} s; database ${size}`);

await ingest('after the year', 'ing2');

// ---- 4. the page's answers ----
await store.addUser('bench', 'bench password long enough');
const server = await startReviewServer({ central: store, port: 0 });
const login = await fetch(`${server.url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=bench&password=bench+password+long+enough' });
const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
/** A firmware hash the year holds: a file row where fileHash took it from the shared pool, in one of the last scans. */
const someHash = ((): string => {
  for (let i = SCANS - 1; i >= 0; i--) for (let f = 0; f < FILES; f++) if ((i * 31 + f) % 100 === 0) return fileHash(i, f);
  return FIRMWARE[0]!;
})();
const uniqueHash = fileHash(SCANS - 3, 5);
const lastDay = new Date(YEAR + 364 * DAY).toISOString().slice(0, 10);
const requests: Array<[string, string]> = [
  ['list newest 50', '/api/scans?limit=50'],
  ['list newest 200', '/api/scans?limit=200'],
  ['filter verdict=rejected (200)', '/api/scans?verdict=rejected&limit=200'],
  ['filter verdict=partial (200)', '/api/scans?verdict=partial&limit=200'],
  ['filter operator (200)', '/api/scans?operator=op-42&limit=200'],
  ['filter serial', '/api/scans?serial=SER123&limit=200'],
  ['filter one day', `/api/scans?since=${lastDay}&until=${lastDay}&limit=200`],
  ['filter file hash, a file seen once', `/api/scans?file=sha256:${uniqueHash}&limit=200`],
  ['filter file hash, shared firmware', `/api/scans?file=${someHash}&limit=200`],
  ['filter file name fragment, last 30 days', `/api/scans?file=part-7.pdf&since=${new Date(YEAR + 335 * DAY).toISOString().slice(0, 10)}&limit=200`],
  ['scan detail', `/api/scans/${encodeURIComponent(`${kioskName((SCANS - 1) % KIOSKS)}/s${SCANS - 1}`)}`],
  ['chart, last 30 days', '/api/stats/daily'],
  ['hash search across the site (file path)', `/api/central/file?hash=${someHash}`],
  ['hosts\' health', '/api/central/health'],
  ['HMI events without a manifest', '/api/central/hmi-events'],
  ['alerts', '/api/central/alerts'],
  ['activity, last 30 days', '/api/central/activity'],
];
say(`\n${load()}\n| request | median ms | p95 ms | bytes |\n| --- | ---: | ---: | ---: |`);
for (const [name, path] of requests) {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i <= RUNS; i++) {
    const start = performance.now();
    const reply = await fetch(`${server.url}${path}`, { headers: { cookie } });
    const body = await reply.arrayBuffer();
    if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${Buffer.from(body).toString()}`);
    if (i > 0) times.push(performance.now() - start);
    bytes = body.byteLength;
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)]!;
  say(`| ${name} | ${at(0.5).toFixed(0)} | ${at(0.95).toFixed(0)} | ${bytes} |`);
}
say(load());
await server.close();
await receiver.close();
await store.close();
if (!values.keep) {
  pg?.stop();
  rmSync(dir, { recursive: true, force: true });
} else {
  say(`kept: ${url} (${pg?.dir ?? ''})`);
}
