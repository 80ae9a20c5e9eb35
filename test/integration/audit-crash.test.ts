/**
 * The audit store against a kiosk that dies: a real `node` child process
 * writes to a real SQLite file and is killed with SIGKILL (no exit handlers,
 * no close), then the parent reads what is on disk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { logCommand } from '../../kiosk/cli/log-command.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { beginInput, finishInput } from '../support/audit-log-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-audit-crash-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const STORE = pathToFileURL(join(import.meta.dirname, '../../kiosk/audit/store.ts')).href;
const FIXTURES = pathToFileURL(join(import.meta.dirname, '../support/audit-log-fixture.ts')).href;

/** Starts `node` on an ES module script; argv[1] is the database path. */
function child(script: string, db: string): ChildProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', script, db], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves once the child has printed `count` lines; rejects if it exits first. */
function linesFrom(proc: ChildProcess, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    proc.stdout!.on('data', (c: Buffer) => {
      text += c.toString();
      const lines = text.split('\n').filter(Boolean);
      if (lines.length >= count) resolve(lines);
    });
    proc.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before writing: ${err}`)));
  });
}

function killHard(proc: ChildProcess): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => {
    proc.once('exit', (_code, signal) => resolve(signal));
    proc.kill('SIGKILL');
  });
}

function run(argv: string[]): { code: number; out: string } {
  const out: string[] = [];
  const code = logCommand(argv, { stdout: { write: (c: string) => out.push(c) }, stderr: { write: () => true } });
  return { code, out: out.join('') };
}

describe('a kiosk killed with SIGKILL', () => {
  it('leaves a scan it had begun listed as interrupted, in a chain that still verifies', async () => {
    const db = join(work, 'begun.db');
    const proc = child(`
      const { openAuditStore } = await import(${JSON.stringify(STORE)});
      const { beginInput } = await import(${JSON.stringify(FIXTURES)});
      const store = openAuditStore(process.argv[1]);
      store.beginScan(beginInput('scan-killed', 0));
      process.stdout.write('started\\n');
      setInterval(() => {}, 60_000); // a scan that never ends
    `, db);
    expect(await linesFrom(proc, 1)).toEqual(['started']);
    expect(await killHard(proc)).toBe('SIGKILL');

    const verify = run(['verify', '--db', db]);
    expect(verify).toMatchObject({ code: 0 });
    expect(verify.out).toContain('audit log intact: 3 records');
    const listed = JSON.parse(run(['list', '--db', db, '--json']).out) as Array<{ scanId: string; status: string }>;
    expect(listed.map((s) => [s.scanId, s.status])).toEqual([['scan-killed', 'interrupted']]);
    expect(JSON.parse(run(['list', '--db', db, '--json', '--verdict', 'approved']).out)).toEqual([]);

    // The restarted kiosk records the interruption and carries on with the same chain.
    const store = openAuditStore(db);
    expect(store.recordInterruptedScans()).toEqual(['scan-killed']);
    store.beginScan(beginInput('scan-next', 5));
    store.finishScan(finishInput('scan-next', 5));
    expect(store.verifyChain()).toMatchObject({ ok: true, records: 9 }); // 3 before the kill, SCAN_INTERRUPTED, 5 for scan-next
    expect(store.getScan('scan-killed')?.status).toBe('interrupted');
    store.close();
  });

  it('never leaves half a scan outcome behind when killed while writing', async () => {
    const db = join(work, 'busy.db');
    // Writes scans with 300 files each as fast as it can; each outcome is one transaction.
    const proc = child(`
      const { openAuditStore } = await import(${JSON.stringify(STORE)});
      const { beginInput, finishInput, file } = await import(${JSON.stringify(FIXTURES)});
      const store = openAuditStore(process.argv[1]);
      for (let i = 0; ; i++) {
        const id = 'scan-' + i;
        store.beginScan(beginInput(id, i));
        const files = Array.from({ length: 300 }, (_, j) => file('f' + j + '.txt', 'clean', {}, 'a'));
        const base = finishInput(id, i);
        store.finishScan({ ...base, decision: { verdict: 'approved', files, driveReasons: [] }, report: { ...base.report, stats: { files: 300, bytes: 300 * 1234, entries: 300 } } });
        process.stdout.write(id + '\\n');
      }
    `, db);
    await linesFrom(proc, 3);
    await new Promise((r) => setTimeout(r, 37)); // somewhere in the middle of a later transaction
    expect(await killHard(proc)).toBe('SIGKILL');

    const store = openAuditStore(db, { readonly: true });
    try {
      const result = store.verifyChain();
      expect(result.ok).toBe(true);
      const scans = store.listScans();
      expect(scans.length).toBeGreaterThanOrEqual(3);
      for (const s of scans) {
        if (s.status === 'interrupted') expect(s.files).toBe(0);
        else expect([s.status, s.files]).toEqual(['approved', 300]);
      }
      expect(scans.filter((s) => s.status === 'interrupted').length).toBeLessThanOrEqual(1);
    } finally {
      store.close();
    }
  });
});
