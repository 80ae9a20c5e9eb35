/**
 * The station's self-check (issue 19.2, issue 20.3), with the real engines,
 * keys, audit log and filesystems: before it takes a drive the station proves
 * its signing key, its free space, the age of its signatures and its engines.
 * A missing database, a key that cannot be used, a full disk or signatures
 * older than the site's limit put it OUT OF SERVICE: the screen names the
 * problem and the fix, a drive plugged in waits unread, nothing is scanned,
 * and the audit log says so. Fixed (an update imported, the key's mode
 * corrected), the next check puts it back in service without a restart.
 */
import { execFileSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { render } from 'ink-testing-library';
import React from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importUpdate, updateInit, type UpdateCommandOptions } from '../../kiosk/cli/update-command.ts';
import { runScan, type ScanCommandOptions, type ScanOutcome } from '../../kiosk/cli/scan-command.ts';
import { runStation, startStation, type StationOptions } from '../../kiosk/cli/run-command.ts';
import type { StationState } from '../../kiosk/core/station-state.ts';
import { FixtureDeviceSource, loadDeviceFixture, withImageDrive } from '../../kiosk/drive/device-source.ts';
import { waitForState, type Station } from '../../kiosk/station/station.ts';
import { StationView } from '../../kiosk/station/ui.ts';
import { FIXTURES_DIR, prepareDemo } from '../demo/station-demo.ts';
import { defaultPolicy, makePublisher, makeSource, tempFolder, type Publisher } from '../support/update-fixtures.ts';
import { rm } from 'node:fs/promises';

let dir: string;
let demo: Awaited<ReturnType<typeof prepareDemo>>;
let publisher: Publisher;

beforeAll(async () => {
  dir = await tempFolder('self-check');
  demo = await prepareDemo(join(dir, 'demo'));
  publisher = await makePublisher(join(dir, 'publisher'));
  await publisher.build(await makeSource(join(dir, 'source')));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A station that counts its scans; everything real unless the test says otherwise. */
async function station(extra: Partial<StationOptions>): Promise<{ station: Station; source: FixtureDeviceSource; scans: () => number; dbPath: string }> {
  const source = new FixtureDeviceSource();
  let scans = 0;
  const scan = (o: ScanCommandOptions): Promise<ScanOutcome> => {
    scans++;
    return runScan(o);
  };
  const dbPath = join(dir, `audit-${++n}.db`);
  const s = await startStation({ source, keyPath: demo.keyPath, allowlistDir: demo.allowlistDir, dbPath, render: false, scan, recheckMs: 3_600_000, ...extra });
  return { station: s, source, scans: () => scans, dbPath };
}

async function insertDemoDrive(source: FixtureDeviceSource, id: string): Promise<void> {
  const image = join(dir, `${id}.img`);
  await copyFile(demo.image, image);
  source.insert(await withImageDrive(await loadDeviceFixture(join(FIXTURES_DIR, 'plain-stick.json'), id), image));
}

function screenText(state: StationState, now = new Date()): string {
  const { lastFrame, unmount } = render(React.createElement(StationView, { state, now }));
  const text = lastFrame() ?? '';
  unmount();
  return text;
}

function serviceEvents(dbPath: string): { type: string; data: { problems?: { code: string }[]; warnings?: { code: string }[] } }[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare("SELECT type, data FROM events WHERE type LIKE 'STATION_%' ORDER BY seq").all() as { type: string; data: string }[]).map((r) => ({ type: r.type, data: JSON.parse(r.data) as { problems?: { code: string }[] } }));
  } finally {
    db.close();
  }
}

const outOfService = (st: StationState): boolean => st.service.state === 'out-of-service';

/** Out of service for `code`: a drive plugged in waits, unread; the screen says why and what to do. */
async function expectOutOfService(s: Station, source: FixtureDeviceSource, scans: () => number, code: string, id: string): Promise<string> {
  const state = await waitForState(s, outOfService);
  if (state.service.state !== 'out-of-service') throw new Error('not out of service');
  expect(state.service.problems.map((p) => p.code)).toContain(code);
  await insertDemoDrive(source, id);
  await waitForState(s, (st) => st.queue.length === 1);
  await new Promise((r) => setTimeout(r, 300));
  expect(s.getState().screen.kind).toBe('idle');
  expect(scans()).toBe(0);
  const text = screenText(s.getState(), s.now());
  expect(text).toContain('out of service');
  expect(text).toMatch(/█/); // the banner
  expect(text).toContain('OUT OF SERVICE: this kiosk checks no drive until this is fixed.');
  expect(text).toContain(`${code}: `);
  expect(text).toContain('Fix: ');
  expect(text).toContain('1 drive is plugged in: NOT read, NOT checked. Remove it.');
  for (const l of text.split('\n')) expect(l.length, l).toBeLessThanOrEqual(80);
  expect(text.split('\n').length).toBeLessThanOrEqual(25);
  return text.replace(/\s+/g, ' '); // what the screen says, as one line (problems wrap over two rows)
}

describe('the station\'s self-check', () => {
  it('a missing signature database: OUT OF SERVICE (SIGNATURES_MISSING), the drive waits unread; an update imported puts it in service, no restart, and the drive is scanned', async () => {
    const emptyDb = join(dir, 'empty-clamav');
    await mkdir(emptyDb, { recursive: true });
    const updatesDir = join(dir, 'updates-missing');
    const kiosk: UpdateCommandOptions = { updatesDir, dbPath: join(dir, 'updates-missing-audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(publisher.repo, 'metadata', 'root.json'));
    const { station: s, source, scans, dbPath } = await station({ configuredParts: { clamavDb: emptyDb }, updatesDir });
    const text = await expectOutOfService(s, source, scans, 'SIGNATURES_MISSING', 'missing-db');
    expect(text).toContain('Fix: import a signed update from the update drive: portcullis-kiosk update import PATH');
    expect(text).toContain('no signatures'); // the header

    await importUpdate(kiosk, publisher.repo);
    expect((await s.recheck()).state).toBe('ready');
    const result = await waitForState(s, (st) => st.screen.kind === 'result');
    expect(result.screen.kind === 'result' && result.screen.result.verdict).toBe('partial');
    expect(scans()).toBe(1);
    expect(screenText(s.getState())).toMatch(/signatures 0 days old/);
    await s.stop();
    expect(serviceEvents(dbPath).map((e) => e.type)).toEqual(['STATION_OUT_OF_SERVICE', 'STATION_IN_SERVICE']);
    expect(serviceEvents(dbPath)[0]!.data.problems!.map((p) => p.code)).toEqual(['SIGNATURES_MISSING']);
  });

  it('a signing key that cannot be used: OUT OF SERVICE (KEY_PERMISSIONS, KEY_UNREADABLE); corrected, in service', async () => {
    const keyDir = join(dir, 'loose-key');
    await mkdir(keyDir, { recursive: true });
    const keyPath = join(keyDir, 'kiosk.key');
    await copyFile(demo.keyPath, keyPath);
    await chmod(keyPath, 0o644);
    const { station: s, source, scans } = await station({ clamavDb: 'test', keyPath });
    const text = await expectOutOfService(s, source, scans, 'KEY_PERMISSIONS', 'loose-key');
    expect(text).toContain('Fix: restore the kiosk\'s key file (mode 0600)');
    await chmod(keyPath, 0o600);
    expect((await s.recheck()).state).toBe('ready');
    await waitForState(s, (st) => st.screen.kind === 'result');
    await s.stop();

    const missing = await station({ clamavDb: 'test', keyPath: join(keyDir, 'gone.key') });
    await expectOutOfService(missing.station, missing.source, missing.scans, 'KEY_UNREADABLE', 'gone-key');
    await missing.station.stop();
  });

  it('a full disk: OUT OF SERVICE (STATION_DISK_FULL) while the work folder has less room than the policy asks', async () => {
    const small = join(dir, 'small-work');
    await mkdir(small, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', small]);
    try {
      const { station: s, source, scans } = await station({ clamavDb: 'test', workDir: small });
      const text = await expectOutOfService(s, source, scans, 'STATION_DISK_FULL', 'full-disk');
      expect(text).toMatch(/only [0-9]+ MiB free for the work folder/);
      await s.stop();
    } finally {
      execFileSync('umount', [small]);
    }
  });

  it('signatures older than the policy allows: OUT OF SERVICE (SIGNATURES_OUTDATED), or in service with a warning where the policy says warn; the age is in the header', async () => {
    const updatesDir = join(dir, 'updates-old');
    const kiosk: UpdateCommandOptions = { updatesDir, dbPath: join(dir, 'updates-old-audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(publisher.repo, 'metadata', 'root.json'));
    await importUpdate(kiosk, publisher.repo);
    const later = (): Date => new Date(Date.now() + 9 * 86_400_000); // nine days after the databases were built
    const outdated = await station({ updatesDir, now: later });
    const text = await expectOutOfService(outdated.station, outdated.source, outdated.scans, 'SIGNATURES_OUTDATED', 'old-db');
    expect(text).toMatch(/SIGNATURES_OUTDATED: the ClamAV signatures are 9 days old; the site's policy allows 7 days/);
    expect(text).toMatch(/signatures 9 days old/);
    await outdated.station.stop();

    const policyPath = join(dir, 'warn-policy.json');
    await writeFile(policyPath, JSON.stringify({ ...(await defaultPolicy()), signatures: { maxAgeHours: 168, whenOutdated: 'warn' } }));
    const warned = await station({ updatesDir, now: later, policyPath });
    const ready = await waitForState(warned.station, (st) => st.service.state === 'ready');
    expect(ready.service.state === 'ready' && ready.service.warnings.map((w) => w.code)).toEqual(['SIGNATURES_OUTDATED']);
    const idle = screenText(ready, later());
    expect(idle).toContain('Plug in the USB drive');
    expect(idle).toContain('WARNING SIGNATURES_OUTDATED');
    await insertDemoDrive(warned.source, 'warned');
    await waitForState(warned.station, (st) => st.screen.kind === 'result');
    expect(warned.scans()).toBe(1);
    await warned.station.stop();
    expect(serviceEvents(warned.dbPath)).toMatchObject([{ type: 'STATION_IN_SERVICE', data: { warnings: [{ code: 'SIGNATURES_OUTDATED' }] } }]);
  });

  it('says "starting" until the first check is done, and takes no drive before', async () => {
    const { station: s } = await station({ clamavDb: 'test' });
    const first = s.getState();
    expect(first.service.state).toBe('checking');
    expect(screenText(first)).toContain('Self-check before the first drive');
    await waitForState(s, (st) => st.service.state === 'ready');
    await s.stop();
  });

  it('a one-shot scan with signatures older than the policy allows approves nothing (ENGINE_NOT_READY: SIGNATURES_OUTDATED)', async () => {
    const image = join(dir, 'one-shot.img');
    await copyFile(demo.image, image);
    const outcome = await runScan({ path: image, image: true, json: true, clamavDb: 'test', keyPath: demo.keyPath, allowlistDir: demo.allowlistDir, dbPath: null, now: () => new Date(Date.now() + 8 * 86_400_000), err: () => undefined, out: () => undefined });
    try {
      expect(outcome.summary.report.decision.verdict).toBe('rejected');
      expect(outcome.summary.report.decision.driveReasons[0]).toMatchObject({ code: 'ENGINE_NOT_READY', detail: expect.stringMatching(/^SIGNATURES_OUTDATED: the ClamAV signatures are 8 days old/) as string });
      expect(outcome.manifest).toBeNull();
    } finally {
      outcome.summary.report.close();
    }
  });

  it('portcullis-kiosk run on a pipe (not a terminal) writes the OUT OF SERVICE screen once it is known', async () => {
    const keyPath = join(dir, 'loose-key-2.key');
    await copyFile(demo.keyPath, keyPath);
    await chmod(keyPath, 0o644);
    const watch = join(dir, 'watched');
    await mkdir(watch, { recursive: true });
    let text = '';
    const stdout = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
    stdout.on('data', (d: Buffer) => { text += d.toString(); });
    const controller = new AbortController();
    const running = runStation({ watchFolder: watch, keyPath, clamavDb: 'test', dbPath: join(dir, 'pipe-audit.db'), stdout, signal: controller.signal });
    for (let i = 0; i < 400 && !text.includes('KEY_PERMISSIONS'); i++) await new Promise((r) => setTimeout(r, 25));
    controller.abort();
    expect(await running).toBe(0);
    expect(text).toContain('starting');
    expect(text).toContain('OUT OF SERVICE: this kiosk checks no drive until this is fixed.');
    expect(text).toContain('KEY_PERMISSIONS: the signing key cannot be used');
  });
});

