/**
 * The audit chain checked by an independent implementation written from
 * kiosk/audit/README.md alone (Python standard library): the documented
 * byte layout is the one the store writes.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tamper, writeSampleLog } from '../support/audit-log-fixture.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';

const SCRIPT = join(import.meta.dirname, '../../kiosk/audit/verify_audit_chain.py');
const python = spawnSync('python3', ['--version']).status === 0;
const work = mkdtempSync(join(tmpdir(), 'portcullis-audit-indep-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function independent(db: string): { status: number | null; out: string } {
  const r = spawnSync('python3', [SCRIPT, db], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('independent chain check (python3)', () => {
  // python3 is installed by scripts/setup.sh: without it the independent check fails, it is not skipped.
  it('has python3 to run the independent checker', () => {
    expect(python, 'python3 is missing: run ./portcullis setup').toBe(true);
  });

  it('agrees with the store on an intact log, head included', () => {
    const db = join(work, 'sample.db');
    writeSampleLog(db);
    const store = openAuditStore(db, { readonly: true });
    const ours = store.verifyChain();
    store.close();
    if (!ours.ok) throw new Error('the sample must verify');
    const theirs = independent(db);
    expect(theirs).toEqual({ status: 0, out: `intact: ${ours.records} records; head ${ours.head.seq} ${ours.head.hash}\n` });
  });

  it('finds the same edited row the store finds', () => {
    const db = join(work, 'edited.db');
    copyFileSync(join(work, 'sample.db'), db);
    tamper(db, (d) => d.exec("UPDATE devices SET label = 'PLANT8' WHERE scan_id = 'scan-a'"));
    const seq = (() => {
      const store = openAuditStore(db, { readonly: true });
      const r = store.verifyChain();
      store.close();
      return r.ok ? null : r.first.seq;
    })();
    expect(seq).not.toBeNull();
    expect(independent(db)).toEqual({ status: 1, out: `BROKEN: devices seq ${seq}: hash mismatch\n` });
  });
});
