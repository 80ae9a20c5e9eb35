/**
 * `portcullis-kiosk run`: the station as a program. Composes the station
 * (station/station.ts) with the real parts: the policy and device policy
 * from their files, the checks a station does before it starts (key, audit
 * log, work folder), one set of engines for its life, the scan command, the
 * USB source or a watched folder of images, the mounter, and the screen
 * (Ink on a terminal, text otherwise), until SIGTERM/SIGINT/SIGHUP.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { render, renderToString, type Instance } from 'ink';
import React from 'react';
import { openAuditStore } from '../audit/store.ts';
import { manifestTime } from '../core/build-statement.ts';
import { OPEN_DEVICE_POLICY, parseDevicePolicy, shownText, StationError, type DevicePolicy } from '../core/device.ts';
import { EXIT } from '../core/exit-codes.ts';
import type { DeviceSource, MountAdapter } from '../core/ports.ts';
import type { EngineStatus, StationState } from '../core/station-state.ts';
import { createMountAdapter } from '../drive/mount.ts';
import { createEngineCache } from '../engines/engines.ts';
import { loadPolicy } from '../rules-files.ts';
import { createStation, type Station } from '../station/station.ts';
import { SCREEN_COLUMNS, StationApp, StationView } from '../station/ui.ts';
import { KeyFileError, loadSigningKey } from './keygen.ts';
import { makeFolder, requireFolder } from './path-option.ts';
import { DEFAULT_AUDIT_DB, DEFAULT_CLAMAV_DB, runScan, type ScanCommandOptions, type ScanOutcome } from './scan-command.ts';

/** Where a real kiosk mounts drives: a folder the kiosk owns. */
export const DEFAULT_MOUNT_DIR = '/run/portcullis/media';
/** The test database's build time (engines/engines.ts writes it with this date). */
const TEST_DATABASE_TIME = '2026-01-01T00:00:00Z';

export interface StationOptions {
  /** Where insertions come from; default: the real USB source. */
  readonly source?: DeviceSource;
  /** Watch this folder for drive images instead of the USB bus (drive/image-folder-source.ts). */
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
  readonly keyPath?: string;
  /** Run without a key: drives are checked and logged, no approval is written, and the screen says so. */
  readonly reportOnly?: boolean;
  /** Audit database; null disables the log (tests only). */
  readonly dbPath?: string | null;
  readonly kioskId?: string;
  /** Working folder (keys, engine scratch). */
  readonly workDir?: string;
  /** Ink's streams; default process.stdout/stdin. */
  readonly stdout?: NodeJS.WriteStream;
  readonly stdin?: NodeJS.ReadStream;
  /** false: no screen (tests drive the state directly). */
  readonly render?: boolean;
  /** Stops a running station (default: SIGTERM/SIGINT). */
  readonly signal?: AbortSignal;
  readonly onState?: (state: StationState) => void;
  /** Called with every line that would otherwise disturb the screen (engine status). */
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /** The scan; replaceable in tests. */
  readonly scan?: (options: ScanCommandOptions) => Promise<ScanOutcome>;
  /** Called with the station once it runs (the demo inserts its drive). */
  readonly onStarted?: (station: Station, source: DeviceSource) => Promise<number | null>;
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

/** The station with the real parts, without its screen and without a process: for runStation and for tests. */
export async function startStation(options: StationOptions & { source: DeviceSource }): Promise<Station> {
  const policy = await loadPolicy(options.policyPath);
  const devicePolicy = options.devicePolicy ?? (options.devicePolicyPath ? await loadDevicePolicy(options.devicePolicyPath) : OPEN_DEVICE_POLICY);
  const clamavDb = options.clamavDb ?? DEFAULT_CLAMAV_DB;
  const dbPath = options.dbPath === undefined ? DEFAULT_AUDIT_DB : options.dbPath;
  const log = options.log ?? (() => undefined);
  const now = options.now ?? (() => new Date());
  // What every drive will need is checked before the station starts, not at the first drive.
  if (options.workDir) await makeFolder(options.workDir, '--work-dir', 0o700);
  // A station that cannot sign would show APPROVED for drives every HMI then refuses.
  if (options.keyPath) await loadSigningKey(options.keyPath);
  else if (!options.reportOnly) {
    throw new KeyFileError('KEY_REQUIRED', 'the station signs the approvals HMIs check and has no signing key: give --key FILE (or keyPath in the config file, or PORTCULLIS_KIOSK_KEY); --report-only runs a station that writes no approval');
  }
  if (dbPath !== null) {
    await makeFolder(dirname(dbPath), '--db');
    openAuditStore(dbPath).close();
  }
  const scan = options.scan ?? runScan;
  // One set of engines for the station's life: clamd with a production database
  // takes tens of seconds and about 1 GB to start, not something to do per drive.
  const engineDir = await mkdtemp(join(options.workDir ?? tmpdir(), 'portcullis-station-engines-'));
  const engineCache = createEngineCache(engineDir);
  return createStation({
    source: options.source,
    ...(options.mounter ? { mounter: options.mounter } : {}),
    devicePolicy,
    operatorRequired: policy.policy.operator.required,
    engines: await engineStatusFor(clamavDb),
    dbPath,
    log,
    now,
    ...(options.onState ? { onState: options.onState } : {}),
    async scan(request) {
      const outcome = await scan({
        path: request.path,
        image: request.image,
        json: true,
        clamavDb,
        usb: request.usb,
        ...(request.writable ? { writable: request.writable } : {}),
        ...(request.device ? { device: request.device } : {}),
        operatorId: request.operatorId,
        dbPath,
        signal: request.signal,
        now,
        err: log,
        out: log,
        onProgress: request.onProgress,
        ...(options.keyPath ? { keyPath: options.keyPath } : {}),
        ...(options.policyPath ? { policyPath: options.policyPath } : {}),
        ...(options.allowlistDir ? { allowlistDir: options.allowlistDir } : {}),
        ...(options.rulesDir ? { rulesDir: options.rulesDir } : {}),
        ...(options.kioskId ? { kioskId: options.kioskId } : {}),
        engineCache,
      });
      return {
        decision: outcome.summary.report.decision,
        expiresAt: outcome.manifest?.expiresAt ?? null,
        scanId: outcome.scanId,
        engines: outcome.summary.engines,
        close: () => outcome.summary.report.close(),
      };
    },
    async onStop() {
      await engineCache.invalidate();
      await rm(engineDir, { recursive: true, force: true });
    },
  });
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** `portcullis-kiosk run`; returns the exit code. */
export async function runStation(options: StationOptions = {}): Promise<number> {
  let stopHandler: (() => void) | null = null;
  let source = options.source;
  let stationOptions: StationOptions = options;
  if (!source && options.watchFolder) {
    await requireFolder(options.watchFolder, '--watch');
    const { createImageFolderSource } = await import('../drive/image-folder-source.ts');
    source = createImageFolderSource(resolve(options.watchFolder));
  }
  if (!source) {
    const { createUsbDeviceSource } = await import('../drive/usb-source.ts');
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
    const ended = await options.onStarted?.(station, source);
    if (ended !== undefined && ended !== null) return ended;
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
