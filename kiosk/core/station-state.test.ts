import { describe, expect, it } from 'vitest';
import type { Decision } from './decide.ts';
import { initialState, reduce, resultView, type EngineStatus, type StationDrive, type StationEvent, type StationState } from './station-state.ts';

const engines: EngineStatus = { clamavDatabase: 'test', clamavDatabaseTime: '2026-01-01T00:00:00Z', ruleSet: null, note: null };
const A: StationDrive = { id: 'a', label: '0781:5567 SanDisk Cruzer Blade', refusal: null };
const B: StationDrive = { id: 'b', label: '0951:1666 Kingston DataTraveler', refusal: null };
const BAD: StationDrive = { id: 'bad', label: '03eb:2042 Generic USB Flash Disk', refusal: { code: 'DEVICE_BADUSB', message: 'possible BadUSB device' } };
const run = (state: StationState, ...events: StationEvent[]): StationState => events.reduce(reduce, state);
const idle = initialState(engines, false);
const approved = resultView({ verdict: 'approved', driveReasons: [], files: [] }, '2026-11-24T00:00:00Z');

describe('reduce', () => {
  it('starts scanning an inserted drive when no operator id is required', () => {
    expect(run(idle, { type: 'inserted', drive: A }).screen).toMatchObject({ kind: 'scanning', drive: A, operatorId: null });
  });

  it('asks for the badge first when policy requires it, then scans with that id', () => {
    let s = run(initialState(engines, true), { type: 'inserted', drive: A });
    expect(s.screen.kind).toBe('operator');
    s = run(s, { type: 'key', key: { input: '', return: true } });
    expect(s.screen.kind).toBe('operator'); // an empty badge is not accepted
    s = run(s, { type: 'key', key: { input: 'T-10' } }, { type: 'key', key: { input: '\u001b[2J' } }, { type: 'key', key: { input: '4 2x' } }, { type: 'key', key: { input: '', backspace: true } });
    expect(s.screen).toMatchObject({ kind: 'operator', badge: 'T-1042' });
    s = run(s, { type: 'key', key: { input: '', return: true } });
    expect(s.screen).toMatchObject({ kind: 'scanning', operatorId: 'T-1042' });
  });

  it('takes a badge reader that sends the id and Enter in one burst, and starts the scan with that id', () => {
    for (const burst of ['1234\r', '1234\n', '1234\r\n']) {
      const s = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: burst } });
      expect(s.screen).toMatchObject({ kind: 'scanning', operatorId: '1234' });
    }
    const typed = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: 'T-' } }, { type: 'key', key: { input: '1042\r' } });
    expect(typed.screen).toMatchObject({ kind: 'scanning', operatorId: 'T-1042' });
  });

  it('drops a burst holding an escape sequence whole, its Enter included', () => {
    const s = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: 'T-1' } }, { type: 'key', key: { input: '\u001b[2J42\r' } });
    expect(s.screen).toMatchObject({ kind: 'operator', badge: 'T-1' });
  });

  it('does not start a scan from a burst that is Enter alone on an empty badge', () => {
    const s = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: '\r\n' } });
    expect(s.screen).toMatchObject({ kind: 'operator', badge: '' });
  });

  it('puts the operator of the scan on its result', () => {
    const s = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: 'T-1042\r' } }, { type: 'finished', id: 'a', result: approved });
    expect(s.screen).toMatchObject({ kind: 'result', result: { operatorId: 'T-1042' } });
    const failed = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: 'T-7\r' } }, { type: 'failed', id: 'a', reason: { code: 'SCANNER_UNAVAILABLE', detail: 'gone' } });
    expect(failed.screen).toMatchObject({ kind: 'result', result: { operatorId: 'T-7', scanId: null } });
  });

  it('clears the badge on Esc and caps its length', () => {
    let s = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'key', key: { input: 'x'.repeat(100) } });
    expect(s.screen).toMatchObject({ badge: 'x'.repeat(32) });
    s = run(s, { type: 'key', key: { input: '', escape: true } });
    expect(s.screen).toMatchObject({ badge: '' });
  });

  it('shows a refused device without scanning it, and goes idle when it is removed', () => {
    const s = run(idle, { type: 'inserted', drive: BAD });
    expect(s.screen).toMatchObject({ kind: 'refused', drive: BAD });
    expect(run(s, { type: 'removed', id: 'bad' }).screen.kind).toBe('idle');
  });

  it('tracks progress with rate and time left, escaping the current name', () => {
    const base = { filesTotal: 10, bytesTotal: 10_000_000, filesDone: 0, bytesDone: 0, current: null };
    const s = run(idle, { type: 'inserted', drive: A },
      { type: 'progress', id: 'a', at: 1000, progress: { ...base, phase: 'scanning' } },
      { type: 'progress', id: 'a', at: 3000, progress: { ...base, phase: 'scanning', filesDone: 4, bytesDone: 4_000_000, current: 'a\u001b[31mb\r.txt' } });
    expect(s.screen.kind).toBe('scanning');
    if (s.screen.kind !== 'scanning') return;
    expect(s.screen.progress).toMatchObject({ bytesPerSecond: 2_000_000, secondsLeft: 3, current: 'a\\x1b[31mb\\x0d.txt' });
  });

  it('shows the result, then goes idle when the drive is removed', () => {
    const s = run(idle, { type: 'inserted', drive: A }, { type: 'finished', id: 'a', result: approved });
    expect(s.screen).toMatchObject({ kind: 'result', result: { verdict: 'approved' } });
    expect(run(s, { type: 'removed', id: 'a' }).screen.kind).toBe('idle');
  });

  it('says nothing was approved when the drive is pulled mid-scan, and ignores the late result', () => {
    let s = run(idle, { type: 'inserted', drive: A }, { type: 'removed', id: 'a' });
    expect(s.screen).toMatchObject({ kind: 'removed-mid-scan', drive: A });
    s = run(s, { type: 'finished', id: 'a', result: approved });
    expect(s.screen.kind).toBe('removed-mid-scan');
    expect(run(s, { type: 'key', key: { input: '', return: true } }).screen.kind).toBe('idle');
  });

  it('makes a second drive wait its turn, then scans it when the first is removed', () => {
    let s = run(idle, { type: 'inserted', drive: A }, { type: 'inserted', drive: B });
    expect(s.screen).toMatchObject({ kind: 'scanning', drive: A });
    expect(s.queue).toEqual([B]);
    s = run(s, { type: 'finished', id: 'a', result: approved }, { type: 'removed', id: 'a' });
    expect(s.screen).toMatchObject({ kind: 'scanning', drive: B });
    expect(s.queue).toEqual([]);
  });

  it('drops a waiting drive that is removed before its turn, and ignores a repeated insertion', () => {
    const s = run(idle, { type: 'inserted', drive: A }, { type: 'inserted', drive: B }, { type: 'inserted', drive: B }, { type: 'removed', id: 'b' });
    expect(s.queue).toEqual([]);
    expect(s.screen).toMatchObject({ kind: 'scanning', drive: A });
  });

  it('shows an engine failure as a failure, never as a verdict on the files', () => {
    const s = run(idle, { type: 'inserted', drive: A }, { type: 'failed', id: 'a', reason: { code: 'SCANNER_UNAVAILABLE', detail: 'clamd is down' } });
    expect(s.screen).toMatchObject({ kind: 'result', result: { verdict: 'rejected', engineFailure: { code: 'SCANNER_UNAVAILABLE' } } });
  });

  it('updates the engine status', () => {
    expect(run(idle, { type: 'engines', engines: { ...engines, ruleSet: 'sha256:ab (3 rules)' } }).engines.ruleSet).toBe('sha256:ab (3 rules)');
  });
});

describe('resultView', () => {
  it('marks a decision rejected by a scanner failure as an engine failure', () => {
    const d: Decision = { verdict: 'rejected', driveReasons: [{ code: 'ENGINE_NOT_READY', detail: 'no database' }], files: [] };
    expect(resultView(d, null).engineFailure?.code).toBe('ENGINE_NOT_READY');
  });

  it('marks a drive rejected because the work folder failed as not checked, not as a bad drive', () => {
    const d: Decision = { verdict: 'rejected', driveReasons: [{ code: 'WORK_FOLDER_FAILED', detail: 'full' }], files: [] };
    expect(resultView(d, null).engineFailure?.code).toBe('WORK_FOLDER_FAILED');
    const bad: Decision = { verdict: 'rejected', driveReasons: [{ code: 'NO_FILES', detail: 'empty' }], files: [] };
    expect(resultView(bad, null).engineFailure).toBeNull();
  });

  it('lists blocked files with their reason codes once each, and drops the expiry of a rejected drive', () => {
    const d: Decision = {
      verdict: 'rejected',
      driveReasons: [{ code: 'NO_FILES', detail: 'no file on the drive may pass' }],
      files: [{ path: 'x.exe', display: 'x.exe', size: 1, digest: null, verdict: 'blocked', reasons: [{ code: 'MALWARE', detail: 'Eicar' }, { code: 'MALWARE', detail: 'Other' }], allowlistEntry: null, controlledClass: null }],
    };
    const v = resultView(d, '2026-11-24T00:00:00Z');
    expect(v.blocked).toEqual([{ display: 'x.exe', codes: ['MALWARE'] }]);
    expect(v.engineFailure).toBeNull();
    expect(v.expiresAt).toBeNull();
    expect(v.signed).toBe(false);
  });

  it('keeps a YARA match\'s rule description for the technician (the rule name when there is none)', () => {
    const detail = 'APT_Loader_1 [site/apt/loader.yara] | Detects the Foo loader | strings: $a at 0x10';
    const d: Decision = {
      verdict: 'rejected',
      driveReasons: [],
      files: [
        { path: 'a.exe', display: 'a.exe', size: 1, digest: null, verdict: 'blocked', reasons: [{ code: 'MALWARE', detail: 'Eicar' }, { code: 'YARA_MATCH', detail }], allowlistEntry: null, controlledClass: null },
        { path: 'b.exe', display: 'b.exe', size: 1, digest: null, verdict: 'blocked', reasons: [{ code: 'YARA_MATCH', detail: 'Bare_Rule [site/x.yar] | no description' }], allowlistEntry: null, controlledClass: null },
      ],
    };
    expect(resultView(d, null).blocked).toEqual([
      { display: 'a.exe', codes: ['MALWARE', 'YARA_MATCH'], yara: 'Detects the Foo loader' },
      { display: 'b.exe', codes: ['YARA_MATCH'], yara: 'Bare_Rule' },
    ]);
  });

  it('calls a drive signed only when an approval with an expiry was written', () => {
    const d: Decision = { verdict: 'approved', driveReasons: [], files: [] };
    expect(resultView(d, '2026-11-24T00:00:00Z').signed).toBe(true);
    expect(resultView(d, null).signed).toBe(false);
  });
});

describe('reduce: the service status (core/self-check.ts)', () => {
  const checking = initialState(engines, false, { state: 'checking', step: 'starting' });
  const down = { state: 'out-of-service' as const, problems: [{ code: 'SIGNATURES_MISSING', what: 'no database', fix: 'import an update' }], warnings: [] };
  const ready = { state: 'ready' as const, warnings: [] };

  it('keeps drives waiting, unread, while the station is checking or out of service', () => {
    const s = run(checking, { type: 'inserted', drive: A }, { type: 'inserted', drive: B });
    expect(s.screen.kind).toBe('idle');
    expect(s.queue.map((d) => d.id)).toEqual(['a', 'b']);
    const out = run(s, { type: 'service', service: down }, { type: 'inserted', drive: BAD });
    expect(out.screen.kind).toBe('idle');
    expect(out.queue.map((d) => d.id)).toEqual(['a', 'b', 'bad']);
    expect(run(out, { type: 'removed', id: 'a' }).queue.map((d) => d.id)).toEqual(['b', 'bad']);
  });

  it('takes the first waiting drive once the station is ready', () => {
    const s = run(checking, { type: 'inserted', drive: A }, { type: 'inserted', drive: B }, { type: 'service', service: ready });
    expect(s.screen).toMatchObject({ kind: 'scanning', drive: { id: 'a' } });
    expect(s.queue.map((d) => d.id)).toEqual(['b']);
  });

  it('going out of service sends a drive waiting for its badge back to wait, and takes no next drive after a result', () => {
    const badge = run(initialState(engines, true), { type: 'inserted', drive: A }, { type: 'service', service: down });
    expect(badge.screen.kind).toBe('idle');
    expect(badge.queue.map((d) => d.id)).toEqual(['a']);
    const done = run(idle, { type: 'inserted', drive: A }, { type: 'inserted', drive: B }, { type: 'finished', id: 'a', result: approved }, { type: 'service', service: down }, { type: 'removed', id: 'a' });
    expect(done.screen.kind).toBe('idle');
    expect(done.queue.map((d) => d.id)).toEqual(['b']);
  });
});
