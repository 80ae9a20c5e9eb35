import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../agent/audit-log.ts';
import { formatExport, verifyLogBytes } from '../../manifest/agent-log.ts';
import { hashPassword, openReviewStore, verifyPassword, type StaffStore } from './review-store.ts';
import { SCAN_A_MANIFEST, writeReviewFixture } from '../../test/support/review-fixture.ts';

describe('review store', () => {
  let dir: string;
  let store: StaffStore;
  let clock = Date.parse('2026-01-01T00:00:00Z');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'review-store-'));
    store = openReviewStore(join(dir, 'review.db'), { now: () => new Date(clock) });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores passwords as salted scrypt hashes and checks them', async () => {
    const a = await hashPassword('same password here');
    const b = await hashPassword('same password here');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('same password here', a)).toBe(true);
    expect(await verifyPassword('same password herE', a)).toBe(false);
  });

  it('adds staff users, refuses duplicates, bad names and short passwords', async () => {
    await store.addUser('carol', 'twelve chars!');
    expect(await store.checkPassword('carol', 'twelve chars!')).toBe(true);
    expect(await store.checkPassword('carol', 'twelve chars?')).toBe(false);
    expect(await store.checkPassword('nobody', 'twelve chars!')).toBe(false);
    await expect(store.addUser('carol', 'another password')).rejects.toMatchObject({ code: 'REVIEW_USER_EXISTS' });
    await expect(store.addUser('<b>', 'another password')).rejects.toMatchObject({ code: 'REVIEW_USER_INVALID' });
    await expect(store.addUser('dave', 'short')).rejects.toMatchObject({ code: 'REVIEW_USER_INVALID' });
  });

  it('accepts a one-time token once, and never after it expires', () => {
    const { token } = store.issueToken('t');
    expect(store.useToken(token)).toBe(true);
    expect(store.useToken(token)).toBe(false);
    const late = store.issueToken('t', 60_000);
    clock += 60_001;
    expect(store.useToken(late.token)).toBe(false);
    expect(store.useToken('not-a-token')).toBe(false);
  });

  it('imports an agent log once, keyed by HMI and seq, and finds it by manifest digest', () => {
    const { agentLog } = writeReviewFixture(dir);
    const bytes = readFileSync(agentLog);
    expect(store.importAgentLog(bytes)).toMatchObject({ format: 'jsonl', records: 4, added: 4, duplicates: 0 });
    expect(store.importAgentLog(bytes)).toMatchObject({ added: 0, duplicates: 4 });
    expect(store.agentRecordsFor(SCAN_A_MANIFEST).map((r) => [r.event, r.verified])).toEqual([
      ['drive.checked', 1], ['file.imported', 1], ['file.refused', 1], ['import.finished', 1],
    ]);
  });

  it('imports the agent\'s JSON export too, marked as unverified', () => {
    const { agentLog } = writeReviewFixture(dir);
    const check = verifyLogBytes(readFileSync(agentLog));
    if (!check.ok) throw new Error('fixture log broken');
    const exported = join(dir, 'export.json');
    writeFileSync(exported, formatExport(check.entries, 'json'));
    expect(store.importAgentLog(readFileSync(exported))).toMatchObject({ format: 'export-json', added: 4 });
    expect(store.agentRecords().every((r) => r.verified === 0)).toBe(true);
  });

  it('refuses a log whose chain is broken, and a record that differs from one already imported', () => {
    const { agentLog } = writeReviewFixture(dir);
    const lines = readFileSync(agentLog, 'utf8').split('\n');
    const edited = lines.map((l, i) => (i === 1 ? l.replace('firmware/plc.bin', 'firmware/evil.bin') : l)).join('\n');
    expect(() => store.importAgentLog(Buffer.from(edited))).toThrow(expect.objectContaining({ code: 'REVIEW_IMPORT_CHAIN_BROKEN' }));
    expect(store.agentRecords()).toEqual([]);
    store.importAgentLog(readFileSync(agentLog));
    const check = verifyLogBytes(readFileSync(agentLog));
    if (!check.ok) throw new Error('fixture log broken');
    const other = check.entries.map((r) => (r.seq === 2 ? { ...r, hash: 'e'.repeat(64) } : r));
    expect(() => store.importAgentLog(Buffer.from(formatExport(other, 'json')))).toThrow(expect.objectContaining({ code: 'REVIEW_IMPORT_CONFLICT' }));
    expect(() => store.importAgentLog(Buffer.from('[{"seq":1,"hmi":"HMI-1","hash":"x"}]'))).toThrow(expect.objectContaining({ code: 'REVIEW_IMPORT_INVALID' }));
  });

  it('imports a reinstalled HMI\'s new log as a new chain, kept apart, and the old one again as duplicates', () => {
    const { agentLog } = writeReviewFixture(dir);
    store.importAgentLog(readFileSync(agentLog));
    const fresh = join(dir, 'reinstalled.jsonl');
    let t = Date.parse('2025-03-05T08:00:00Z');
    const log = new AuditLog(fresh, { hmi: 'HMI-LINE3', clock: () => new Date((t += 1000)) });
    log.append({ event: 'agent.started', outcome: 'info', code: 'SERVICE_STARTED', reason: 'first start after the reinstall' });
    log.append({ event: 'trust.key-added', outcome: 'changed', code: 'TRUST_CHANGED', reason: 'trusted the kiosk key again' });
    expect(store.importAgentLog(readFileSync(fresh))).toMatchObject({ added: 2, duplicates: 0, newChains: ['HMI-LINE3'] });
    expect(store.importAgentLog(readFileSync(agentLog))).toMatchObject({ added: 0, duplicates: 4, newChains: [] });
    expect(store.agentRecords().filter((r) => r.hmi === 'HMI-LINE3' && r.seq === 1)).toHaveLength(2);
  });

  it('moves a review database from before log chains were told apart, and lets the old log claim its records', () => {
    store.close();
    const path = join(dir, 'old.db');
    const old = new Database(path);
    old.exec(`CREATE TABLE agent_records (
     id INTEGER PRIMARY KEY, hmi TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
     time TEXT NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
     manifest_digest TEXT, key_id TEXT, drive_label TEXT, path TEXT, destination TEXT,
     sha256 TEXT, size INTEGER, verified INTEGER NOT NULL, imported_at TEXT NOT NULL,
     UNIQUE (hmi, seq)) STRICT`);
    const { agentLog } = writeReviewFixture(dir);
    const check = verifyLogBytes(readFileSync(agentLog));
    if (!check.ok) throw new Error('fixture log broken');
    for (const r of check.entries) {
      old.prepare('INSERT INTO agent_records (hmi, seq, hash, time, event, outcome, code, reason, verified, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)')
        .run(r.hmi, r.seq, r.hash, r.time, r.event, r.outcome, r.code, r.reason, r.time);
    }
    old.close();
    store = openReviewStore(path);
    expect(store.agentRecords()).toHaveLength(4);
    expect(store.importAgentLog(readFileSync(agentLog))).toMatchObject({ added: 0, duplicates: 4, newChains: [] });
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare('SELECT DISTINCT log_chain FROM agent_records').pluck().all()).toEqual([check.entries[0]!.hash]);
    raw.close();
  });

  it('keeps the BLAKE3 an HMI logged, also when it is the only digest (agents check BLAKE3 by default)', () => {
    const logPath = join(dir, 'blake3-only.jsonl');
    let t = Date.parse('2026-03-01T08:00:00Z');
    const log = new AuditLog(logPath, { hmi: 'HMI-LINE5', clock: () => new Date((t += 1000)) });
    const drive = { mount: 'E:\\', filesystem: 'FAT32', volumeId: '1234-ABCD', label: 'STICK', capacity: 16_000_000_000 };
    log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest: SCAN_A_MANIFEST, drive,
      path: 'plc.bin', destination: 'plc.bin', digests: { sha256: null, blake3: 'e'.repeat(64), size: 7 } });
    log.append({ event: 'file.imported', outcome: 'allowed', code: 'IMPORTED', reason: 'hash matched while copying', manifestDigest: SCAN_A_MANIFEST, drive,
      path: 'hmi.bin', destination: 'hmi.bin', digests: { sha256: 'a'.repeat(64), blake3: 'f'.repeat(64), size: 9 } });
    expect(store.importAgentLog(readFileSync(logPath))).toMatchObject({ format: 'jsonl', added: 2 });
    expect(store.agentRecordsFor(SCAN_A_MANIFEST).map((r) => [r.path, r.sha256, r.blake3, r.size])).toEqual([
      ['plc.bin', null, 'e'.repeat(64), 7],
      ['hmi.bin', 'a'.repeat(64), 'f'.repeat(64), 9],
    ]);
    // The export's rows carry it too, so the review shows a digest for every import.
    const check = verifyLogBytes(readFileSync(logPath));
    if (!check.ok) throw new Error('log broken');
    const exported = formatExport(check.entries, 'json');
    const again = openReviewStore(join(dir, 'from-export.db'));
    again.importAgentLog(Buffer.from(exported));
    expect(again.agentRecords().map((r) => r.blake3).sort()).toEqual(['e'.repeat(64), 'f'.repeat(64)]);
    again.close();
  });

  it('adds the BLAKE3 column to a review database from before it', () => {
    store.close();
    const path = join(dir, 'no-blake3.db');
    store = openReviewStore(path);
    store.close();
    const raw = new Database(path);
    raw.exec('ALTER TABLE agent_records DROP COLUMN blake3');
    raw.close();
    store = openReviewStore(path);
    const { agentLog } = writeReviewFixture(dir);
    store.importAgentLog(readFileSync(agentLog));
    expect(store.agentRecords().filter((r) => r.event === 'file.imported').every((r) => r.blake3 === 'f'.repeat(64))).toBe(true);
  });

  it('calls a JSON file with nothing like an agent record in it the wrong file, not a broken chain', () => {
    for (const text of ['[{"seq":1}]', '[1,2]', '{"seq":1,"hmi":"x"}\n', 'SQLite format 3\u0000', 'date,operator\n2025-03-01,op-1\n']) {
      expect(() => store.importAgentLog(Buffer.from(text))).toThrow(expect.objectContaining({ code: 'REVIEW_IMPORT_NOT_AGENT_LOG' }));
    }
    expect(store.agentRecords()).toEqual([]);
  });
});
