/**
 * `portcullis-kiosk run [--demo]`: the station. A device source reports
 * insertions and removals; each device is checked (BadUSB, allow/deny list,
 * partitions, filesystem) before anything is mounted; an accepted drive is
 * scanned with `runScan` (engines, manifest, audit log) while the Ink screen
 * follows the state machine in state.ts. A drive pulled mid-scan aborts the
 * scan through its AbortSignal and approves nothing. `--demo` runs the same
 * station on the fixture source with the demo drive image, and ends by itself.
 */
import { loadPolicy } from '../rules-files.ts';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { render, renderToString, type Instance } from 'ink';
import React from 'react';
import { PortcullisError } from '../../manifest/index.ts';
import { openAuditStore } from '../audit/store.ts';
import { manifestTime } from '../core/build-statement.ts';
import { DEMO_FILES, PROJECT_ROOT } from '../demo.ts';
import { EXIT } from '../core/exit-codes.ts';
import { generateKeyFiles, loadSigningKey } from '../cli/keygen.ts';
import { createEngineCache } from '../engines/engines.ts';
import { buildDriveImage } from '../../test/support/image-builder.ts';
import { makeFolder, requireFolder } from '../cli/path-option.ts';

import type { DriveReason } from '../core/decide.ts';
import { DEFAULT_AUDIT_DB, DEFAULT_CLAMAV_DB, runScan, type ScanCommandOptions, type ScanOutcome } from '../cli/scan-command.ts';
import { checkDevice, describeDevice, OPEN_DEVICE_POLICY, parseDevicePolicy, shownText, StationError, usbIdentityOf, type DevicePolicy, type DeviceRecord, type PartitionRecord } from './device.ts';
import { FixtureDeviceSource, loadDeviceFixture, withImageDrive, type DeviceSource, type DeviceSourceEvent } from './device-source.ts';
import { createMountAdapter, type MountAdapter, type MountedVolume } from './mount.ts';
import { initialState, reduce, resultView, type EngineStatus, type ResultView, type StationEvent, type StationState } from './state.ts';
import { SCREEN_COLUMNS, StationApp, StationView, type StationStore } from './ui.ts';
import { checkLayout, checkVolume, SECTOR_BYTES, type VolumeCheck } from './volume-check.ts';

/** Where a real kiosk mounts drives: a folder the kiosk owns. */
export const DEFAULT_MOUNT_DIR = '/run/portcullis/media';
export const FIXTURES_DIR = new URL('./fixtures/', import.meta.url).pathname;
/** The test database's build time (kiosk/engines.ts writes it with this date). */
const TEST_DATABASE_TIME = '2026-01-01T00:00:00Z';

export interface StationOptions {
  /** Fixture source, the demo drive image, the test database, a fresh key; ends by itself. */
  readonly demo?: boolean;
  /** Where insertions come from; default: the real USB source (or the fixture source in demo mode). */
  readonly source?: DeviceSource;
  /** Watch this folder for drive images instead of the USB bus (image-folder-source.ts). */
  readonly watchFolder?: string;
  /** Mounts real partitions; required for devices that are not images. */
  readonly mounter?: MountAdapter;
  readonly devicePolicy?: DevicePolicy;
  /** JSON file with the device allow/deny list (devicePolicySchema). */
  readonly devicePolicyPath?: string;
  readonly policyPath?: string;
  readonly allowlistDir?: string;
  readonly rulesDir?: string;
  readonly clamavDb?: string;
  readonly clamdSocket?: string;
  readonly keyPath?: string;
  /** Audit database; null disables the log (tests only). */
  readonly dbPath?: string | null;
  readonly kioskId?: string;
  /** Working folder (demo image, keys, engine scratch). */
  readonly workDir?: string;
  /** Ink's streams; default process.stdout/stdin. */
  readonly stdout?: NodeJS.WriteStream;
  readonly stdin?: NodeJS.ReadStream;
  /** false: no screen (tests drive the state directly). */
  readonly render?: boolean;
  /** Stops a running station (default: SIGTERM/SIGINT). */
  readonly signal?: AbortSignal;
  /** Demo: how long the result stays before the simulated removal. */
  readonly demoPauseMs?: number; // ms
  readonly onState?: (state: StationState) => void;
  /** Called with every line that would otherwise disturb the screen (engine status). */
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /** The scan; replaceable in tests. */
  readonly scan?: (options: ScanCommandOptions) => Promise<ScanOutcome>;
}

/** One accepted drive: which volume to scan and how. */
interface Accepted {
  readonly record: DeviceRecord;
  readonly partition: PartitionRecord;
  readonly filesystem: 'vfat' | 'exfat';
}

async function readFirstSector(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const buffer = new Uint8Array(SECTOR_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SECTOR_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Every check before mounting: device, layout, volume. */
export async function admitDevice(record: DeviceRecord, policy: DevicePolicy, readSector: (path: string) => Promise<Uint8Array> = readFirstSector): Promise<{ ok: true; accepted: Accepted } | { ok: false; code: string; message: string }> {
  const device = checkDevice(record, policy);
  if (!device.ok) return device;
  const layout = checkLayout(record.drives);
  if (layout && !layout.ok) return layout;
  const partitions = record.drives.flatMap((d) => d.partitions);
  if (partitions.length !== 1) {
    return { ok: false, code: 'VOLUME_UNKNOWN_FS', message: `the drive has ${partitions.length} partitions: the kiosk checks drives with exactly one FAT32 or exFAT partition.` };
  }
  const partition = partitions[0]!;
  let volume: VolumeCheck;
  try {
    volume = checkVolume(partition.device, await readSector(partition.device));
  } catch (error) {
    return { ok: false, code: 'VOLUME_UNREADABLE', message: `${partition.device} cannot be read: ${(error as Error).message}. Try the drive again or use another one.` };
  }
  if (!volume.ok) return volume;
  return { ok: true, accepted: { record, partition, filesystem: volume.filesystem } };
}

async function engineStatusFor(clamavDb: string): Promise<EngineStatus> {
  if (clamavDb === 'test') {
    return { clamavDatabase: 'Portcullis TEST database', clamavDatabaseTime: TEST_DATABASE_TIME, ruleSet: null, note: 'test database: EICAR and test patterns only, not real signatures' };
  }
  // The newest signature file's time stands for the database's age until clamd reports its own.
  const names = await readdir(clamavDb).catch(() => [] as string[]);
  let newest: Date | null = null;
  for (const name of names.filter((n) => /\.(cvd|cld)$/.test(n))) {
    const t = (await stat(join(clamavDb, name)).catch(() => null))?.mtime ?? null;
    if (t && (!newest || t > newest)) newest = t;
  }
  return { clamavDatabase: names.length > 0 ? clamavDb : `missing (${clamavDb})`, clamavDatabaseTime: newest ? manifestTime(newest) : null, ruleSet: null, note: names.length > 0 ? null : 'no ClamAV database: every drive will be refused until one is imported' };
}

function enginesFromScan(previous: EngineStatus, outcome: ScanOutcome): EngineStatus {
  const c = outcome.summary.engines.clamav;
  const y = outcome.summary.engines.yara;
  return {
    clamavDatabase: c ? `${c.version}, database ${c.databaseVersion ?? 'unversioned'}` : previous.clamavDatabase,
    clamavDatabaseTime: c?.databaseTime ?? previous.clamavDatabaseTime,
    ruleSet: y ? `${y.ruleSetDigest.slice(0, 19)}... (${y.ruleCount} rules)` : previous.ruleSet,
    note: previous.note,
  };
}

/** `--device-policy FILE`: the device allow/deny list, checked strictly; errors name the file. */
export async function loadDevicePolicy(path: string): Promise<DevicePolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    throw new StationError('DEVICE_POLICY_UNREADABLE', `cannot read the device policy ${shownText(path)} (${why}): check --device-policy`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new StationError('DEVICE_POLICY_INVALID', `${shownText(path)}: not JSON (${(cause as Error).message}): correct the device policy file`, { cause });
  }
  return parseDevicePolicy(value, shownText(path));
}

/** The demo drive (kiosk/demo.ts's files) as a FAT32 image, a key and the demo allowlist. */
export async function prepareDemo(dir: string): Promise<{ image: string; keyPath: string; allowlistDir: string }> {
  await makeFolder(dir, '--work-dir', 0o755);
  const image = join(dir, 'drive.img');
  await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 34, label: 'LINE3', volumeId: '1A2B-3C4D', files: DEMO_FILES.map((f) => ({ path: f.path, content: f.content })) });
  const keys = await generateKeyFiles(join(dir, 'kiosk-keys'));
  const allowlistDir = join(dir, 'allowlist');
  await mkdir(allowlistDir, { recursive: true });
  const firmware = DEMO_FILES.find((f) => f.path === 'firmware/plc-cpu-v2.8.1.bin')!.content;
  await writeFile(join(allowlistDir, 'demo-vendor.json'), `${JSON.stringify({
    version: 'demo-1',
    owner: 'Demo PLC vendor (demo data)',
    entries: [{ vendor: 'Demo Automation', product: 'PLC CPU 1500', version: '2.8.1', file: 'plc-cpu-v2.8.1.bin', sha256: createHash('sha256').update(firmware).digest('hex'), source: 'demo: computed from the demo firmware' }],
  }, null, 2)}\n`);
  return { image, keyPath: keys.privateKeyPath, allowlistDir };
}

export interface Station extends StationStore {
  /** Resolves when the station has stopped (every scan finished or aborted). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** The station without its screen and without a process: for runStation and for tests. */
export async function startStation(options: StationOptions & { source: DeviceSource }): Promise<Station> {
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => undefined);
  const policy = await loadPolicy(options.policyPath);
  const devicePolicy = options.devicePolicy ?? (options.devicePolicyPath ? await loadDevicePolicy(options.devicePolicyPath) : OPEN_DEVICE_POLICY);
  const clamavDb = options.clamavDb ?? DEFAULT_CLAMAV_DB;
  const dbPath = options.dbPath === undefined ? DEFAULT_AUDIT_DB : options.dbPath;
  // What every drive will need is checked before the station starts, not at the first drive.
  if (options.workDir) await makeFolder(options.workDir, '--work-dir', 0o700);
  if (options.keyPath) await loadSigningKey(options.keyPath);
  if (dbPath !== null) {
    await makeFolder(dirname(dbPath), '--db');
    openAuditStore(dbPath).close();
  }
  const scan = options.scan ?? runScan;
  // One set of engines for the station's life: clamd with a production database
  // takes tens of seconds and about 1 GB to start, not something to do per drive.
  const engineDir = await mkdtemp(join(options.workDir ?? tmpdir(), 'portcullis-station-engines-'));
  const engineCache = createEngineCache(engineDir);
  let state = initialState(await engineStatusFor(clamavDb), policy.policy.operator.required);
  const listeners = new Set<() => void>();
  const accepted = new Map<string, Accepted>();
  const present = new Set<string>(); // attached and not detached since
  let running: { id: string; abort: AbortController } | null = null;
  let previousScan: Promise<void> = Promise.resolve();
  let stopped = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => { resolveDone = r; });

  const dispatch = (event: StationEvent): void => {
    if (stopped) return;
    state = reduce(state, event);
    options.onState?.(state);
    for (const l of listeners) l();
    effects();
  };

  // Every insertion goes into the audit log with its device record; a refusal with its code.
  const recordDevice = (type: 'DEVICE_ACCEPTED' | 'DEVICE_REFUSED', record: DeviceRecord, extra: Record<string, unknown>): void => {
    if (dbPath === null) return;
    try {
      const store = openAuditStore(dbPath);
      try {
        store.recordEvent(type, {
          ...extra,
          device: {
            id: record.id, usb: usbIdentityOf(record), manufacturer: record.manufacturer, product: record.product, deviceClass: record.deviceClass, interfaces: record.interfaces,
            children: record.children.map((c) => ({ usb: usbIdentityOf(c), manufacturer: c.manufacturer, product: c.product, interfaces: c.interfaces })),
            drives: record.drives,
          },
        });
      } finally {
        store.close();
      }
    } catch (error) {
      log(`audit: cannot record ${type}: ${(error as Error).message}`);
    }
  };

  function effects(): void {
    const screen = state.screen;
    // The drive being scanned is no longer on screen (removed): stop its scan.
    if (running && !(screen.kind === 'scanning' && screen.drive.id === running.id)) {
      running.abort.abort();
      running = null;
    }
    if (screen.kind === 'scanning' && !running) {
      const drive = accepted.get(screen.drive.id);
      const abort = new AbortController();
      running = { id: screen.drive.id, abort };
      const id = screen.drive.id;
      const operatorId = screen.operatorId;
      // One scan at a time: a new one waits for an aborted one to clean up.
      previousScan = previousScan.then(() => {
        if (drive) return scanOne(id, drive, operatorId, abort.signal);
        dispatch({ type: 'failed', id, reason: { code: 'SCANNER_ERROR', detail: 'the drive was not checked before scanning (a bug)' } });
        return Promise.resolve();
      });
    }
  }

  async function scanOne(id: string, drive: Accepted, operatorId: string | null, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    let mounted: MountedVolume | null = null;
    try {
      let path = drive.partition.device;
      if (!drive.partition.image) {
        if (!options.mounter) throw new StationError('MOUNT_FAILED', 'no mount adapter configured for real drives');
        mounted = await options.mounter.mount(drive.partition.device, drive.filesystem);
        path = mounted.path;
      }
      const outcome = await scan({
        path,
        image: drive.partition.image === true,
        json: true,
        clamavDb,
        usb: usbIdentityOf(drive.record),
        // A real drive stays mounted read-only except around writing the manifest.
        ...(mounted ? { writable: mounted, device: drive.partition.device } : {}),
        operatorId,
        dbPath,
        signal,
        now,
        err: log,
        out: log,
        onProgress: (progress) => dispatch({ type: 'progress', id, progress, at: Date.now() }),
        ...(options.keyPath ? { keyPath: options.keyPath } : {}),
        ...(options.policyPath ? { policyPath: options.policyPath } : {}),
        ...(options.allowlistDir ? { allowlistDir: options.allowlistDir } : {}),
        ...(options.rulesDir ? { rulesDir: options.rulesDir } : {}),
        ...(options.clamdSocket ? { clamdSocket: options.clamdSocket } : {}),
        ...(options.kioskId ? { kioskId: options.kioskId } : {}),
        engineCache,
      });
      let result: ResultView;
      try {
        if (signal.aborted) return; // pulled mid-scan: the screen already says nothing was approved
        result = resultView(outcome.summary.report.decision, outcome.manifest?.expiresAt ?? null, { scanId: outcome.scanId, operatorId });
      } finally {
        outcome.summary.report.close();
      }
      dispatch({ type: 'engines', engines: enginesFromScan(state.engines, outcome) });
      dispatch({ type: 'finished', id, result });
    } catch (error) {
      if (signal.aborted) return;
      const reason: DriveReason = error instanceof PortcullisError
        ? { code: 'SCANNER_ERROR', detail: `${error.code}: ${error.message}` }
        : { code: 'SCANNER_ERROR', detail: `unexpected error (a bug): ${(error as Error).message}` };
      log(`scan failed: ${reason.detail}`);
      dispatch({ type: 'failed', id, reason });
    } finally {
      await mounted?.unmount().catch((e: unknown) => log(`unmount: ${(e as Error).message}`));
    }
  }

  const onSourceEvent = (event: DeviceSourceEvent): void => {
    if (event.type === 'detach') {
      present.delete(event.id);
      accepted.delete(event.id);
      dispatch({ type: 'removed', id: event.id });
      return;
    }
    const record = event.device;
    present.add(record.id);
    admitDevice(record, devicePolicy).then((admission) => {
      // Pulled out while it was being checked: nothing to show.
      if (!present.has(record.id)) return;
      const label = describeDevice(record);
      if (admission.ok) {
        accepted.set(record.id, admission.accepted);
        recordDevice('DEVICE_ACCEPTED', record, { filesystem: admission.accepted.filesystem, partition: admission.accepted.partition.device });
        dispatch({ type: 'inserted', drive: { id: record.id, label, refusal: null } });
      } else {
        recordDevice('DEVICE_REFUSED', record, { code: admission.code, message: admission.message });
        dispatch({ type: 'inserted', drive: { id: record.id, label, refusal: { code: admission.code, message: admission.message } } });
      }
    }, (error: unknown) => {
      dispatch({ type: 'inserted', drive: { id: record.id, label: describeDevice(record), refusal: { code: 'VOLUME_UNREADABLE', message: `the device could not be checked: ${(error as Error).message}` } } });
    });
  };
  await options.source.start(onSourceEvent);

  const station: Station = {
    getState: () => state,
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    dispatch,
    now,
    done,
    async stop() {
      if (stopped) return done;
      running?.abort.abort();
      running = null;
      stopped = true;
      await options.source.stop();
      await previousScan.catch(() => undefined);
      await engineCache.invalidate();
      await rm(engineDir, { recursive: true, force: true });
      resolveDone();
      return done;
    },
  };
  return station;
}

/** Resolves when `predicate` holds for the station's state. */
export function waitForState(station: StationStore, predicate: (state: StationState) => boolean, timeoutMs = 120_000): Promise<StationState> {
  return new Promise((resolvePromise, reject) => {
    if (predicate(station.getState())) {
      resolvePromise(station.getState());
      return;
    }
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`station: state not reached in ${timeoutMs} ms (screen ${station.getState().screen.kind})`));
    }, timeoutMs);
    const unsubscribe = station.subscribe(() => {
      if (!predicate(station.getState())) return;
      clearTimeout(timer);
      unsubscribe();
      resolvePromise(station.getState());
    });
  });
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** `portcullis-kiosk run [--demo]`; returns the exit code. */
export async function runStation(options: StationOptions = {}): Promise<number> {
  let stopHandler: (() => void) | null = null;
  let source = options.source;
  let stationOptions: StationOptions = options;
  let demoDevice: DeviceRecord | null = null;
  if (options.demo) {
    const dir = resolve(options.workDir ?? join(PROJECT_ROOT, 'var', 'demo-station', manifestTime(new Date()).replace(/:/g, '')));
    const demo = await prepareDemo(dir);
    demoDevice = await withImageDrive(await loadDeviceFixture(join(FIXTURES_DIR, 'plain-stick.json'), 'demo-stick'), demo.image);
    source ??= new FixtureDeviceSource();
    stationOptions = {
      clamavDb: 'test',
      keyPath: demo.keyPath,
      allowlistDir: demo.allowlistDir,
      dbPath: join(dir, 'kiosk-audit.db'),
      kioskId: 'demo-kiosk',
      ...options,
    };
  }
  if (!source && options.watchFolder) {
    await requireFolder(options.watchFolder, '--watch');
    const { createImageFolderSource } = await import('./image-folder-source.ts');
    source = createImageFolderSource(resolve(options.watchFolder));
  }
  if (!source) {
    const { createUsbDeviceSource } = await import('./usb-source.ts');
    source = createUsbDeviceSource();
    // A real kiosk mounts under a folder it owns (docs/station.md), as the station's own user.
    stationOptions = { mounter: createMountAdapter({ baseDir: DEFAULT_MOUNT_DIR, who: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } }), ...stationOptions };
  }
  const station = await startStation({ ...stationOptions, source });
  let ink: Instance | null = null;
  let unsubscribe: (() => void) | null = null;
  const stdout = options.stdout ?? process.stdout;
  if (options.render !== false && !stdout.isTTY) {
    // Not a terminal (a pipe, a log, CI): each new screen is written once, as text.
    let lastKey = '';
    const write = (): void => {
      const st = station.getState();
      const screen = st.screen;
      const key = `${screen.kind}|${screen.kind === 'idle' ? '' : screen.drive.id}|${st.queue.length}|${screen.kind === 'scanning' ? screen.progress?.phase ?? 'starting' : ''}`;
      if (key === lastKey) return;
      lastKey = key;
      stdout.write(`${renderToString(React.createElement(StationView, { state: st, now: station.now() }), { columns: SCREEN_COLUMNS })}\n\n`);
    };
    write();
    unsubscribe = station.subscribe(write);
  } else if (options.render !== false) {
    ink = render(React.createElement(StationApp, { store: station }), {
      stdout,
      stdin: options.stdin ?? process.stdin,
      exitOnCtrlC: false, // the kiosk keeps running; systemd stops it
      patchConsole: false,
    });
  }
  try {
    if (demoDevice && source instanceof FixtureDeviceSource) {
      const device = demoDevice;
      source.insert(device);
      const final = await waitForState(station, (s) => ['result', 'refused', 'removed-mid-scan'].includes(s.screen.kind), 300_000);
      await new Promise((r) => setTimeout(r, options.demoPauseMs ?? 4000));
      source.remove(device.id);
      await waitForState(station, (s) => s.screen.kind === 'idle');
      const verdict = final.screen.kind === 'result' ? final.screen.result.verdict : null;
      // The demo drive holds blocked files beside clean ones: partial is the right answer.
      return verdict === 'partial' ? EXIT.OK : EXIT.FAILURE;
    }
    // Stop signals stay handled (repeats ignored) until the clean-up below is done: a second
    // SIGTERM (a service manager signals the whole group; the launcher forwards one too) must not
    // kill the kiosk with a drive mounted and clamd running.
    await new Promise<void>((resolveStop) => {
      const stop = (): void => resolveStop();
      options.signal?.addEventListener('abort', stop, { once: true });
      if (!options.signal) for (const name of STOP_SIGNALS) process.on(name, stop);
      stopHandler = stop;
    });
    return EXIT.OK;
  } finally {
    await station.stop();
    unsubscribe?.();
    ink?.unmount();
    if (stopHandler) for (const name of STOP_SIGNALS) process.off(name, stopHandler);
  }
}
