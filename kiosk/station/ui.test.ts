import { render } from 'ink-testing-library';
import React from 'react';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from 'ink-testing-library';
import { initialState, reduce, type EngineStatus, type ResultView, type StationDrive, type StationEvent, type StationState } from '../core/station-state.ts';
import { bigText, StationApp, StationView, type StationStore } from './ui.ts';

const h = React.createElement;
const NOW = new Date('2026-11-23T12:00:00Z');
const engines: EngineStatus = { clamavDatabase: 'Portcullis TEST database', clamavDatabaseTime: '2026-01-01T00:00:00Z', ruleSet: 'sha256:3f2a9c0e1b7d... (14 rules)', note: null };
const drive: StationDrive = { id: 'a', label: '0781:5567 SanDisk Cruzer Blade (serial 4C530001230517115272)', refusal: null };
const idle = initialState(engines, false);
const HOSTILE = 'evil\u001b[2J\u001b[H\u001b[31mred\r\u202eexe.pdf';

function frame(state: StationState): string {
  const { lastFrame } = render(h(StationView, { state, now: NOW }));
  return lastFrame() ?? '';
}

/** Nothing a terminal would act on: no ESC, CR, other C0/C1 controls or bidi overrides. */
function expectInert(text: string): void {
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
}

function expectFits(text: string): void {
  const lines = text.split('\n');
  expect(lines.length).toBeLessThanOrEqual(25);
  for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
}

const run = (state: StationState, ...events: StationEvent[]): StationState => events.reduce(reduce, state);
const partial: ResultView = {
  verdict: 'partial', engineFailure: null, driveReasons: [], blockedCount: 4, passing: 3, total: 7, expiresAt: '2026-11-24T00:00:00Z', signed: true, scanId: null, operatorId: null,
  blocked: [
    { display: 'tools/update-notes.txt', codes: ['MALWARE'] },
    { display: 'docs/Manual.pdf', codes: ['TYPE_MISMATCH'] },
    { display: 'firmware/plc-cpu-v2.9.0-beta.bin', codes: ['NOT_ALLOWLISTED'] },
    { display: HOSTILE, codes: ['UNSAFE_NAME', 'RISKY_TYPE'] },
  ],
};

afterEach(() => cleanup());

describe('screens', () => {
  it('idle: instructions, ClamAV database age and rule set', () => {
    const f = frame(idle);
    expect(f).toContain('Plug in the USB drive');
    expect(f).toMatch(/ClamAV database: Portcullis TEST database \(built 2026-01-01, 326 days old\)/);
    expect(f).toContain('YARA rule set:   sha256:3f2a9c0e1b7d... (14 rules)');
    expectFits(f);
  });

  it('operator: asks for the badge and echoes what is typed', () => {
    const f = frame(run(initialState(engines, true), { type: 'inserted', drive }, { type: 'key', key: { input: 'T-1042' } }));
    expect(f).toContain('Policy requires your badge');
    expect(f).toContain('Badge / ID: T-1042_');
    expectFits(f);
  });

  it('scanning: starting engines, then device, progress bar, files and bytes, rate, time left, current file', () => {
    const s = run(idle, { type: 'inserted', drive });
    expect(frame(s)).toContain('Starting the scan engines');
    const base = { filesTotal: 40, bytesTotal: 40 * 1024 * 1024, current: null };
    const f = frame(run(s,
      { type: 'progress', id: 'a', at: 0, progress: { ...base, phase: 'scanning', filesDone: 0, bytesDone: 0 } },
      { type: 'progress', id: 'a', at: 2000, progress: { ...base, phase: 'scanning', filesDone: 10, bytesDone: 10 * 1024 * 1024, current: 'hmi/recipes/recipe-42.csv' } }));
    expect(f).toContain('0781:5567 SanDisk Cruzer Blade');
    expect(f).toMatch(/\[#{15}\.{45}\] {2}25%/);
    expect(f).toContain('Files 10 of 40    10.0 MiB of 40.0 MiB');
    expect(f).toContain('Rate 5.0 MiB/s    Time left 0:06');
    expect(f).toContain('Now: hmi/recipes/recipe-42.csv');
    expect(f).toContain('Do NOT remove the drive');
    expectFits(f);
  });

  it('scanning: a hostile current file name cannot move the cursor, clear the screen or recolour', () => {
    const f = frame(run(idle, { type: 'inserted', drive },
      { type: 'progress', id: 'a', at: 0, progress: { phase: 'scanning', filesTotal: 2, bytesTotal: 2, filesDone: 0, bytesDone: 0, current: HOSTILE } }));
    expectInert(f);
    expect(f).toContain('Now: evil\\x1b[2J\\x1b[H\\x1b[31mred\\x0d\\u{202e}exe.pdf');
  });

  it('result: a large PARTIAL, blocked files in plain language, expiry and safe to remove; hostile names inert', () => {
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: partial }));
    for (const row of bigText('PARTIAL')) expect(f).toContain(row.trimEnd());
    expect(f).toContain('3 of 7 files may pass; 4 blocked');
    expect(f).toMatch(/x tools\/update-notes\.txt\s+malware found/);
    expect(f).toMatch(/x docs\/Manual\.pdf\s+content does not match its name/);
    expect(f).toMatch(/program\/firmware not on approved list/);
    expect(f).toContain('Approval valid until 2026-11-24 00:00 UTC.');
    expect(f).toContain('Safe to remove the drive.');
    expectInert(f);
    expectFits(f);
  });

  it('result: the expiry in the kiosk\'s local time and in UTC, the scan id and the operator', () => {
    const result: ResultView = { ...partial, scanId: '3f1c2a9e-7b4d-4c1e-9a0b-5d6e7f809a1b', operatorId: 'T-1042' };
    const { lastFrame } = render(h(StationView, { state: run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result }), now: NOW, timeZone: 'Europe/Berlin' }));
    const f = lastFrame() ?? '';
    expect(f).toContain('Approval valid until 2026-11-24 01:00 CET (2026-11-24 00:00 UTC).');
    expect(f).toContain('Scan 3f1c2a9e-7b4d-4c1e-9a0b-5d6e7f809a1b, operator T-1042');
    expectFits(f);
    const utc = render(h(StationView, { state: run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result }), now: NOW, timeZone: 'UTC' })).lastFrame() ?? '';
    expect(utc).toContain('Approval valid until 2026-11-24 00:00 UTC.');
  });

  it('result: a failed scan names the operator even without a scan id', () => {
    const f = frame(run(initialState(engines, true), { type: 'inserted', drive }, { type: 'key', key: { input: 'T-7\r' } }, { type: 'failed', id: 'a', reason: { code: 'SCANNER_UNAVAILABLE', detail: 'clamd is not answering' } }));
    expect(f).toContain('Operator T-7');
    expectFits(f);
  });

  it('result: drive reasons, many blocked files and drives waiting still fit 25 rows', () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ display: `bad-${i}.exe`, codes: ['NOT_ALLOWLISTED' as const] }));
    const result: ResultView = {
      ...partial, verdict: 'rejected', expiresAt: null, blocked: many, blockedCount: many.length, total: 30, passing: 0, scanId: '3f1c2a9e-7b4d-4c1e-9a0b-5d6e7f809a1b', operatorId: 'T-1042',
      driveReasons: [{ code: 'NO_FILES', detail: 'no file on the drive may pass' }, { code: 'LIMIT_EXCEEDED', detail: 'too many files' }, { code: 'MEDIA_FULL', detail: 'no room' }],
    };
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'inserted', drive: { id: 'b', label: 'b', refusal: null } }, { type: 'finished', id: 'a', result }));
    expectFits(f);
    expect(f).toContain('NO_FILES');
    expect(f).toMatch(/\.\.\. and \d+ more blocked files/);
    expect(f).toContain('Scan 3f1c2a9e-7b4d-4c1e-9a0b-5d6e7f809a1b');
    expect(f).toContain('Safe to remove the drive.');
    expect(f).toContain('1 more drive waiting');
  });

  it('result: a large APPROVED, and a large REJECTED with the reason', () => {
    const a = frame(run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { ...partial, verdict: 'approved', blocked: [], passing: 7 } }));
    for (const row of bigText('APPROVED')) expect(a).toContain(row.trimEnd());
    expect(a).toContain('All 7 files may go onto plant equipment.');
    const r = frame(run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { ...partial, verdict: 'rejected', expiresAt: null, signed: false, driveReasons: [{ code: 'NO_FILES', detail: 'no file on the drive may pass' }] } }));
    for (const row of bigText('REJECTED')) expect(r).toContain(row.trimEnd());
    expect(r).toContain('NO_FILES: no file on the drive may pass');
    expect(r).not.toContain('valid until');
  });

  it('result on a report-only station: CHECKED, never APPROVED or PARTIAL, and it says the HMIs will refuse the drive', () => {
    for (const verdict of ['approved', 'partial'] as const) {
      const f = frame(run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { ...partial, verdict, expiresAt: null, signed: false } }));
      for (const row of bigText('CHECKED')) expect(f).toContain(row.trimEnd());
      for (const word of ['APPROVED', 'PARTIAL']) for (const row of bigText(word)) expect(f).not.toContain(row.trimEnd());
      expect(f).toContain('NO approval was written');
      expect(f).toContain('HMIs will refuse every file on this drive. 3 of 7 files would have passed.');
      expect(f).not.toContain('may go onto plant equipment');
      expect(f).not.toContain('valid until');
      expectFits(f);
    }
  });

  it('result: more blocked files than fit are counted, never overflowing 25 rows', () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ display: `bad-${i}.exe`, codes: ['NOT_ALLOWLISTED' as const] }));
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { ...partial, blocked: many, blockedCount: many.length, total: 33 } }));
    expect(f).toContain('... and 23 more blocked files');
    expectFits(f);
  });

  it('engine failure: shown as FAILED / not checked, never as a verdict', () => {
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'failed', id: 'a', reason: { code: 'SCANNER_UNAVAILABLE', detail: 'clamd is not answering' } }));
    for (const row of bigText('FAILED')) expect(f).toContain(row.trimEnd());
    expect(f).toContain('this drive was NOT checked');
    expect(f).toContain('SCANNER_UNAVAILABLE: clamd is not answering');
    for (const row of bigText('APPROVED')) expect(f).not.toContain(row.trimEnd());
    expectFits(f);
  });

  it('refused device: REFUSED with the reason, not mounted', () => {
    const bad: StationDrive = { id: 'k', label: '03eb:2042 Generic USB Flash Disk', refusal: { code: 'DEVICE_BADUSB', message: '03eb:2042 Generic USB Flash Disk is a drive that is also a keyboard/mouse (HID, class 0x03): possible BadUSB device, not mounted. Hand it to security.' } };
    const f = frame(run(idle, { type: 'inserted', drive: bad }));
    for (const row of bigText('REFUSED')) expect(f).toContain(row.trimEnd());
    expect(f).toContain('possible BadUSB device');
    expect(f).toContain('(DEVICE_BADUSB)');
    expect(f).toContain('not mounted and nothing on it was read');
    expectFits(f);
  });

  it('drive pulled mid-scan: REMOVED, nothing approved', () => {
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'removed', id: 'a' }));
    for (const row of bigText('REMOVED')) expect(f).toContain(row.trimEnd());
    expect(f).toContain('NOTHING was approved');
    expect(f).not.toContain('Safe to remove');
    expectFits(f);
  });

  it('a second drive: the screen says it waits its turn', () => {
    const f = frame(run(idle, { type: 'inserted', drive }, { type: 'inserted', drive: { id: 'b', label: 'other', refusal: null } }));
    expect(f).toContain('1 more drive waiting: scanned next, in turn.');
  });

  it('a hostile device label is inert', () => {
    const f = frame(run(idle, { type: 'inserted', drive: { id: 'x', label: `0781:5567 ${HOSTILE}`, refusal: null } }));
    expectInert(f);
  });
});

describe('screens of the self-check', () => {
  const problems = [
    { code: 'KEY_PERMISSIONS', what: 'the signing key cannot be used: /etc/portcullis/keys/kiosk.key is readable by group or others (mode 644); run chmod 600 on it', fix: 'restore the kiosk\'s key file (mode 0600), or make a new key (portcullis-kiosk keygen) and add it to every HMI' },
    { code: 'STATION_DISK_FULL', what: 'only 12 MiB free for the work folder (/run/portcullis/work); the station needs 256 MiB', fix: 'free space on that disk' },
    { code: 'SIGNATURES_OUTDATED', what: 'the ClamAV signatures are 9 days old; the site\'s policy allows 7 days', fix: 'import a signed update from the update drive: portcullis-kiosk update import PATH (docs/updates.md)' },
  ];

  it('out of service: the banner, each problem with its fix, waiting drives told to go; 80x25 with three problems and drives plugged in', () => {
    const down = run(initialState(engines, false, { state: 'out-of-service', problems, warnings: [] }), { type: 'inserted', drive }, { type: 'inserted', drive: { ...drive, id: 'b' } });
    const f = frame(down);
    expect(f).toContain('out of service');
    expect(bigText('OUT OF SERVICE')[0]!.length).toBeLessThanOrEqual(78);
    expect(f).toContain('OUT OF SERVICE: this kiosk checks no drive until this is fixed.');
    expect(f).toContain('KEY_PERMISSIONS: ');
    expect(f).toContain('2 drives are plugged in: NOT read, NOT checked. Remove them.');
    expect(f).toMatch(/\.\.\. and 1 more \(the audit log has them: STATION_OUT_OF_SERVICE\)|SIGNATURES_OUTDATED/);
    expect(f).not.toContain('Plug in the USB drive');
    expectFits(f);
    const one = frame(initialState(engines, false, { state: 'out-of-service', problems: [problems[2]!], warnings: [] }));
    expect(one.replace(/\s+/g, ' ')).toContain('Fix: import a signed update from the update drive: portcullis-kiosk update import PATH (docs/updates.md)');
    expectFits(one);
  });

  it('the header names the signatures\' age on every screen, in red when the policy finds them too old', () => {
    expect(frame(idle)).toMatch(/PORTCULLIS media gate +signatures 326 days old +ready/);
    expect(frame(run(idle, { type: 'inserted', drive }))).toMatch(/signatures 326 days old +scanning/);
    expect(frame(initialState({ ...engines, clamavDatabaseTime: null }, false))).toContain('signature age unknown');
  });

  it('starting: says what is being checked and that drives wait; ready with a warning shows it on the idle screen', () => {
    const f = frame(run(initialState(engines, false, { state: 'checking', step: 'the scan engines: loading the signatures, proving every rule live' }), { type: 'inserted', drive }));
    expect(f).toContain('starting');
    expect(f).toContain('Now: the scan engines: loading the signatures, proving every rule live');
    expect(f).toContain('Drives plugged in now wait, unread, until the check is done.');
    expectFits(f);
    const warned = frame(initialState(engines, false, { state: 'ready', warnings: [problems[2]!] }));
    expect(warned).toContain('Plug in the USB drive');
    expect(warned).toContain('WARNING SIGNATURES_OUTDATED');
    expectFits(warned);
  });
});

describe('StationApp', () => {
  function store(state: StationState): StationStore & { events: StationEvent[] } {
    let current = state;
    const listeners = new Set<() => void>();
    const events: StationEvent[] = [];
    return {
      events,
      getState: () => current,
      subscribe: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      dispatch: (e) => {
        events.push(e);
        current = reduce(current, e);
        for (const l of listeners) l();
      },
      now: () => NOW,
    };
  }

  it('takes a badge reader that sends the id and Enter in one burst', async () => {
    const s = store(run(initialState(engines, true), { type: 'inserted', drive }));
    const app = render(h(StationApp, { store: s }));
    await new Promise((r) => setTimeout(r, 50));
    app.stdin.write('1234\r');
    await new Promise((r) => setTimeout(r, 50));
    expect(s.getState().screen).toMatchObject({ kind: 'scanning', operatorId: '1234' });
  });

  it('below 80x25 says "terminal too small (need 80x25)", and shows the station again when resized', async () => {
    const s = store(run(idle, { type: 'inserted', drive }));
    const app = render(h(StationApp, { store: s }));
    const resize = async (columns: number, rows: number): Promise<string> => {
      Object.defineProperty(app.stdout, 'columns', { value: columns, configurable: true });
      Object.defineProperty(app.stdout, 'rows', { value: rows, configurable: true });
      app.stdout.emit('resize');
      await new Promise((r) => setTimeout(r, 50));
      return app.lastFrame() ?? '';
    };
    for (const [columns, rows] of [[79, 25], [80, 24], [40, 10]] as const) {
      const f = await resize(columns, rows);
      expect(f).toContain('terminal too small (need 80x25)');
      expect(f).not.toContain('PORTCULLIS media gate');
      for (const l of f.split('\n')) expect(l.length).toBeLessThanOrEqual(columns);
    }
    const f = await resize(80, 25);
    expect(f).not.toContain('terminal too small');
    expect(f).toContain('Starting the scan engines');
    expectFits(f);
  });

  it('takes the badge from the keyboard and redraws on every state change', async () => {
    const s = store(run(initialState(engines, true), { type: 'inserted', drive }));
    const app = render(h(StationApp, { store: s }));
    await new Promise((r) => setTimeout(r, 50));
    app.stdin.write('T-7');
    await new Promise((r) => setTimeout(r, 50));
    expect(app.lastFrame()).toContain('Badge / ID: T-7_');
    app.stdin.write('\r');
    await new Promise((r) => setTimeout(r, 50));
    expect(s.getState().screen).toMatchObject({ kind: 'scanning', operatorId: 'T-7' });
    expect(app.lastFrame()).toContain('Operator: T-7');
  });
});
