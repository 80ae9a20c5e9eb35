/**
 * Paths where the kiosk must fail closed: no approval without its audit
 * record, and no scan with a missing signature database.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MANIFEST_PATH } from '../../manifest/index.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { generateKeyFiles } from '../../kiosk/cli/keygen.ts';
import { DEFAULT_CLAMAV_DB, runScan } from '../../kiosk/cli/scan-command.ts';

const quiet = { out: () => undefined, err: () => undefined };

function drive(): string {
  const root = join(mkdtempSync(join(tmpdir(), 'fail-closed-')), 'drive');
  mkdirSync(root);
  writeFileSync(join(root, 'README.txt'), 'fine\n');
  return root;
}

describe('the kiosk fails closed', () => {
  it('takes the manifest off the drive again when the scan outcome cannot be recorded', async () => {
    const root = drive();
    const keys = await generateKeyFiles(join(root, '..', 'keys'));
    const db = join(root, '..', 'audit.db');
    openAuditStore(db).close();
    // Make the outcome's final write fail, as a full or broken disk would.
    const raw = new Database(db);
    raw.exec("CREATE TRIGGER test_refuse_outcome BEFORE INSERT ON scan_results BEGIN SELECT RAISE(ABORT, 'disk trouble'); END");
    raw.close();
    await expect(runScan({ path: root, json: true, keyPath: keys.privateKeyPath, dbPath: db, clamavDb: 'test', ...quiet })).rejects.toThrow(/disk trouble/);
    expect(existsSync(join(root, MANIFEST_PATH))).toBe(false);
  });

  it('rejects every drive when the ClamAV database folder is empty, writing nothing', async () => {
    const root = drive();
    const keys = await generateKeyFiles(join(root, '..', 'keys'));
    const emptyDb = mkdtempSync(join(tmpdir(), 'no-signatures-'));
    const outcome = await runScan({ path: root, json: true, keyPath: keys.privateKeyPath, dbPath: null, clamavDb: emptyDb, ...quiet });
    expect(outcome.summary.report.decision.verdict).toBe('rejected');
    expect(outcome.summary.report.decision.driveReasons[0]?.detail).toMatch(/CLAMAV_DB_MISSING/);
    expect(existsSync(join(root, MANIFEST_PATH))).toBe(false);
  });

  it('uses the production database by default, never the test one', () => {
    expect(DEFAULT_CLAMAV_DB).toBe('/var/lib/clamav');
  });
});
