import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import { render } from 'ink-testing-library';
import React from 'react';
import { buildDriveImage } from '../support/image-builder.ts';
import { StationView } from '../../kiosk/station/ui.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_PATH } from '../../manifest/index.ts';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { readFileFromImage } from '../../kiosk/drive/image-access.ts';
import { runScan, type ScanCommandOptions, type ScanOutcome } from '../../kiosk/cli/scan-command.ts';
import { FixtureDeviceSource, loadDeviceFixture, withImageDrive } from '../../kiosk/drive/device-source.ts';
import { startStation, type StationOptions } from '../../kiosk/cli/run-command.ts';
import { waitForState } from '../../kiosk/station/station.ts';
import { FIXTURES_DIR, prepareDemo, runDemoStation } from '../demo/station-demo.ts';
import type { StationState } from '../../kiosk/core/station-state.ts';

let dir: string;
let demo: Awaited<ReturnType<typeof prepareDemo>>;
let pristine: string; // the demo image before any manifest was written

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'station-'));
  demo = await prepareDemo(join(dir, 'demo'));
  pristine = join(dir, 'pristine.img');
  await copyFile(demo.image, pristine);
});

async function imageCopy(name: string): Promise<string> {
  const path = join(dir, `${name}.img`);
  await copyFile(pristine, path);
  return path;
}

const fixture = async (name: string, id: string, image: string) => withImageDrive(await loadDeviceFixture(join(FIXTURES_DIR, `${name}.json`), id), image);

function recordingScan(): { scan: (o: ScanCommandOptions) => Promise<ScanOutcome>; outcomes: ScanOutcome[]; calls: number } {
  const r = {
    outcomes: [] as ScanOutcome[],
    calls: 0,
    scan: async (o: ScanCommandOptions) => {
      r.calls++;
      const outcome = await runScan(o);
      r.outcomes.push(outcome);
      return outcome;
    },
  };
  return r;
}

async function station(extra: Partial<StationOptions> & { source: FixtureDeviceSource }) {
  return startStation({ clamavDb: 'test', keyPath: demo.keyPath, allowlistDir: demo.allowlistDir, dbPath: join(dir, 'audit.db'), render: false, ...extra });
}

async function until(check: () => boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the station on real filesystem images', () => {
  it('scans an inserted drive with the real engines, shows PARTIAL with the blocked files, writes the manifest, goes idle on removal', async () => {
    const source = new FixtureDeviceSource();
    const kinds: string[] = [];
    const s = await station({ source, onState: (st) => kinds.push(st.screen.kind) });
    const image = await imageCopy('insert');
    source.insert(await fixture('plain-stick', 'stick-1', image));
    const shown = await waitForState(s, (st) => st.screen.kind === 'result');
    expect(shown.screen.kind).toBe('result');
    if (shown.screen.kind !== 'result') return;
    const result = shown.screen.result;
    expect(result.verdict).toBe('partial');
    expect(result.engineFailure).toBeNull();
    expect(result.blocked.find((b) => b.display === 'tools/update-notes.txt')?.codes).toContain('MALWARE');
    expect(result.blocked.find((b) => b.display === 'docs/Manual.pdf')?.codes).toContain('TYPE_MISMATCH');
    expect(result.blocked.find((b) => b.display === 'tools/cleanup.txt')?.codes).toContain('YARA_MATCH');
    expect(result.blocked.some((b) => b.display === 'README.txt')).toBe(false);
    expect(result.expiresAt).not.toBeNull();
    expect(s.getState().engines.ruleSet).toMatch(/rules\)$/);
    expect((await readFileFromImage(image, MANIFEST_PATH)).length).toBeGreaterThan(0);
    source.remove('stick-1');
    await waitForState(s, (st) => st.screen.kind === 'idle');
    await s.stop();
    expect(kinds).toContain('scanning');
    const store = openAuditStore(join(dir, 'audit.db'), { readonly: true });
    expect(store.verifyChain().ok).toBe(true);
    store.close();
  });

  it('will not start without a signing key unless it is asked to report only, and then shows CHECKED with no manifest on the drive', async () => {
    const source = new FixtureDeviceSource();
    await expect(startStation({ clamavDb: 'test', allowlistDir: demo.allowlistDir, dbPath: join(dir, 'nokey.db'), render: false, source })).rejects.toMatchObject({ code: 'KEY_REQUIRED' });
    const s = await startStation({ clamavDb: 'test', allowlistDir: demo.allowlistDir, dbPath: join(dir, 'report-only.db'), render: false, source, reportOnly: true });
    const image = await imageCopy('report-only');
    source.insert(await fixture('plain-stick', 'stick-r', image));
    const shown = await waitForState(s, (st) => st.screen.kind === 'result');
    await s.stop();
    if (shown.screen.kind !== 'result') throw new Error(`screen ${shown.screen.kind}`);
    expect(shown.screen.result.verdict).toBe('partial');
    expect(shown.screen.result.signed).toBe(false);
    expect(shown.screen.result.expiresAt).toBeNull();
    await expect(readFileFromImage(image, MANIFEST_PATH)).rejects.toThrow();
  });

  it('refuses a keyboard-in-a-stick as BadUSB without scanning it, and logs the refusal', async () => {
    const source = new FixtureDeviceSource();
    const rec = recordingScan();
    const db = join(dir, 'badusb.db');
    const s = await station({ source, scan: rec.scan, dbPath: db });
    source.insert(await fixture('keyboard-stick', 'kbd', await imageCopy('badusb')));
    const shown = await waitForState(s, (st) => st.screen.kind === 'refused');
    expect(shown.screen.kind === 'refused' && shown.screen.drive.refusal?.code).toBe('DEVICE_BADUSB');
    await s.stop();
    expect(rec.calls).toBe(0);
    const store = openAuditStore(db, { readonly: true });
    expect(store.verifyChain().ok).toBe(true);
    store.close();
    const sqlite = new Database(db, { readonly: true });
    const rows = sqlite.prepare('SELECT type, data FROM events').all() as Array<{ type: string; data: string }>;
    sqlite.close();
    const refused = rows.find((r) => r.type === 'DEVICE_REFUSED');
    expect(refused?.data).toContain('DEVICE_BADUSB');
    expect(refused?.data).toContain('"class":3');
  });

  it('refuses a composite hub with an Ethernet adapter as BadUSB', async () => {
    const source = new FixtureDeviceSource();
    const rec = recordingScan();
    const s = await station({ source, scan: rec.scan, dbPath: null });
    source.insert(await fixture('composite-hub', 'hub', await imageCopy('hub')));
    const shown = await waitForState(s, (st) => st.screen.kind === 'refused');
    expect(shown.screen.kind === 'refused' && shown.screen.drive.refusal?.code).toBe('DEVICE_BADUSB');
    await s.stop();
    expect(rec.calls).toBe(0);
  });

  it('refuses a device on the deny list, and one missing from the allow list', async () => {
    for (const [devicePolicy, code] of [
      [{ id: 't', allow: [], deny: [{ vendorId: '0781', productId: '5567' }] }, 'DEVICE_DENIED'],
      [{ id: 't', allow: [{ vendorId: '0951' }], deny: [] }, 'DEVICE_NOT_ALLOWED'],
    ] as const) {
      const source = new FixtureDeviceSource();
      const rec = recordingScan();
      const s = await station({ source, scan: rec.scan, dbPath: null, devicePolicy: { id: devicePolicy.id, allow: [...devicePolicy.allow], deny: [...devicePolicy.deny] } });
      source.insert(await fixture('plain-stick', 'stick', await imageCopy(`policy-${code}`)));
      const shown = await waitForState(s, (st) => st.screen.kind === 'refused');
      expect(shown.screen.kind === 'refused' && shown.screen.drive.refusal?.code).toBe(code);
      await s.stop();
      expect(rec.calls).toBe(0);
    }
  });

  it('refuses a BitLocker volume and a volume with no filesystem, before any scan', async () => {
    const bitlocker = new Uint8Array(1024 * 1024);
    bitlocker.set([0xeb, 0x58, 0x90, ...new TextEncoder().encode('-FVE-FS-')], 0);
    bitlocker[510] = 0x55;
    bitlocker[511] = 0xaa;
    await mkdir(join(dir, 'raw'), { recursive: true });
    await writeFile(join(dir, 'raw', 'bitlocker.img'), bitlocker);
    await writeFile(join(dir, 'raw', 'blank.img'), new Uint8Array(1024 * 1024));
    for (const [name, code] of [['bitlocker', 'VOLUME_ENCRYPTED'], ['blank', 'VOLUME_UNKNOWN_FS']] as const) {
      const source = new FixtureDeviceSource();
      const rec = recordingScan();
      const s = await station({ source, scan: rec.scan, dbPath: null });
      source.insert(await fixture('plain-stick', name, join(dir, 'raw', `${name}.img`)));
      const shown = await waitForState(s, (st) => st.screen.kind === 'refused');
      expect(shown.screen.kind === 'refused' && shown.screen.drive.refusal?.code).toBe(code);
      await s.stop();
      expect(rec.calls).toBe(0);
    }
  });

  it('aborts the scan of a drive pulled mid-scan: REMOVED on screen, nothing approved, no manifest on the drive', async () => {
    const source = new FixtureDeviceSource();
    const rec = recordingScan();
    let pulled = false;
    const onState = (st: StationState): void => {
      // Pull the drive as soon as files are being read.
      if (!pulled && st.screen.kind === 'scanning' && st.screen.progress?.phase === 'scanning') {
        pulled = true;
        source.remove('stick-2');
      }
    };
    const s = await station({ source, scan: rec.scan, onState, dbPath: join(dir, 'pulled.db') });
    const image = await imageCopy('pulled');
    source.insert(await fixture('plain-stick', 'stick-2', image));
    await waitForState(s, (st) => st.screen.kind === 'removed-mid-scan');
    await until(() => rec.outcomes.length === 1);
    const outcome = rec.outcomes[0]!;
    expect(outcome.summary.report.decision.verdict).toBe('rejected');
    expect(outcome.summary.report.decision.driveReasons.map((r) => r.code)).toContain('SCAN_ABORTED');
    expect(outcome.manifest).toBeNull();
    await expect(readFileFromImage(image, MANIFEST_PATH)).rejects.toMatchObject({ code: 'MEDIA_NOT_FOUND' });
    expect(s.getState().screen.kind).toBe('removed-mid-scan');
    s.dispatch({ type: 'key', key: { input: '', return: true } });
    expect(s.getState().screen.kind).toBe('idle');
    await s.stop();
  });

  it('shows engines that fail after the self-check as a failure, not as a verdict on the files', async () => {
    const source = new FixtureDeviceSource();
    // The self-check proved the engines; then they fail at this drive (clamd gone, a rule no longer live).
    const failing = async (o: ScanCommandOptions): Promise<ScanOutcome> => {
      const outcome = await runScan(o);
      const decision = { verdict: 'rejected' as const, files: [], driveReasons: [{ code: 'ENGINE_NOT_READY' as const, detail: 'clamd did not answer PING' }] };
      return { ...outcome, summary: { ...outcome.summary, report: { ...outcome.summary.report, decision } } };
    };
    const s = await station({ source, scan: failing, dbPath: null });
    await waitForState(s, (st) => st.service.state === 'ready');
    source.insert(await fixture('plain-stick', 'stick-3', await imageCopy('engine')));
    const shown = await waitForState(s, (st) => st.screen.kind === 'result');
    expect(shown.screen.kind === 'result' && shown.screen.result.engineFailure?.code).toBe('ENGINE_NOT_READY');
    expect(shown.screen.kind === 'result' && shown.screen.result.verdict).toBe('rejected');
    await s.stop();
  });

  it('shows nothing for a drive pulled out while it was still being checked', async () => {
    const source = new FixtureDeviceSource();
    const rec = recordingScan();
    const kinds: string[] = [];
    const s = await station({ source, scan: rec.scan, dbPath: null, onState: (st) => kinds.push(st.screen.kind) });
    source.insert(await fixture('plain-stick', 'quick', await imageCopy('quick')));
    source.remove('quick');
    await new Promise((r) => setTimeout(r, 300));
    expect(s.getState().screen.kind).toBe('idle');
    expect(kinds.filter((k) => k !== 'idle')).toEqual([]);
    await s.stop();
    expect(rec.calls).toBe(0);
  });

  it('makes a second drive wait, then scans it after the first is removed', async () => {
    const source = new FixtureDeviceSource();
    const calls: string[] = [];
    const fake = (o: ScanCommandOptions): Promise<ScanOutcome> => {
      calls.push(o.path);
      return Promise.resolve({ exitCode: 0, scanId: 'x', removedOldManifest: false, manifest: null, summary: { root: o.path, engines: { clamav: null, yara: null }, policy: { id: 'p', digest: 'd' }, allowlist: null, notes: [], report: { decision: { verdict: 'approved', files: [], driveReasons: [] }, stats: { files: 0, bytes: 0, entries: 0 }, manifestFolderExtras: [], durations: { walkMs: 0, scanMs: 0, totalMs: 0 }, close: () => {} } } });
    };
    const s = await station({ source, scan: fake, dbPath: null });
    const first = await imageCopy('first');
    const second = await imageCopy('second');
    source.insert(await fixture('plain-stick', 'one', first));
    await waitForState(s, (st) => st.screen.kind === 'result');
    source.insert(await fixture('plain-stick', 'two', second));
    await waitForState(s, (st) => st.queue.length === 1);
    expect(calls).toEqual([first]);
    source.remove('one');
    await waitForState(s, (st) => st.screen.kind === 'result' && st.screen.drive.id === 'two');
    expect(calls).toEqual([first, second]);
    await s.stop();
  });
});

describe('a hostile name on a real drive', () => {
  it('is blocked and shown inert on the result screen: no ESC, CR or bidi override reaches the terminal', async () => {
    const image = join(dir, 'hostile.img');
    await buildDriveImage(image, { filesystem: 'exfat', sizeMiB: 4, label: 'HOSTILE', hostileNames: true, files: [
      { path: 'notes\u001b[2J\u001b[31m\rred.txt', content: 'x' },
      { path: 'invoice\u202etxt.exe', content: 'y' },
      { path: 'ok.txt', content: 'fine' },
    ] });
    const source = new FixtureDeviceSource();
    const s = await station({ source, dbPath: null });
    source.insert(await fixture('plain-stick', 'hostile', image));
    const shown = await waitForState(s, (st) => st.screen.kind === 'result');
    await s.stop();
    expect(shown.screen.kind === 'result' && shown.screen.result.verdict).toBe('partial');
    const { lastFrame, unmount } = render(React.createElement(StationView, { state: shown, now: new Date() }));
    const frame = lastFrame() ?? '';
    unmount();
    expect(frame).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(frame).toContain('notes\\x1b[2J');
    expect(frame).toContain('invoice\\u{202e}txt.exe');
  });
});

describe('portcullis-kiosk run --demo', () => {
  it('inserts the demo drive, shows the scan and the PARTIAL result on the screen, removes it and ends by itself', async () => {
    const out = Object.assign(new EventEmitter(), { columns: 80, rows: 25, isTTY: false, frames: [] as string[], write(chunk: string) { out.frames.push(chunk); return true; } });
    const stdin = Object.assign(new PassThrough(), { isTTY: false });
    const code = await runDemoStation({ workDir: join(dir, 'run-demo'), demoPauseMs: 0, stdout: out as unknown as NodeJS.WriteStream, stdin: stdin as unknown as NodeJS.ReadStream });
    expect(code).toBe(0);
    const text = out.frames.join('');
    expect(text).toContain('Plug in the USB drive');
    expect(text).toContain('Safe to remove the drive.');
    expect(text).toMatch(/malware found/);
    expect(text).toContain('Starting the scan engines');
    expect(text).toContain('\u2588'); // the large verdict
    const store = openAuditStore(join(dir, 'run-demo', 'kiosk-audit.db'), { readonly: true });
    expect(store.verifyChain().ok).toBe(true);
    expect(store.listScans().length).toBe(1);
    store.close();
  });
});
