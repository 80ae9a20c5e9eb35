/**
 * `portcullis-kiosk run`: the station as a program. Composes the station
 * (station/station.ts) with the real parts: the policy and device policy
 * from their files, the checks a station does before it starts (key, audit
 * log, work folder), one set of engines for its life, the scan command, the
 * USB source or a watched folder of images, the mounter, and the screen
 * (Ink on a terminal, text otherwise), until SIGTERM/SIGINT/SIGHUP.
 */
import { mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { render, renderToString, type Instance } from 'ink';
import React from 'react';
import { PortcullisError } from '../../manifest/index.ts';
import { openAuditStore } from '../audit/store.ts';
import { OPEN_DEVICE_POLICY, parseDevicePolicy, shownText, StationError, type DevicePolicy } from '../core/device.ts';
import { EXIT } from '../core/exit-codes.ts';
import type { LoadedPolicy } from '../core/policy.ts';
import type { DeviceSource, MountAdapter } from '../core/ports.ts';
import { assessService, DEFAULT_STATION_CHECKS, stationChecksOf, type SelfCheckFacts, type ServiceStatus } from '../core/self-check.ts';
import type { EngineStatus, StationState } from '../core/station-state.ts';
import { signaturesBuiltAt } from '../core/update-set.ts';
import { createMountAdapter } from '../drive/mount.ts';
import { readDatabaseTime } from '../engines/clamav/database-check.ts';
import { createEngineCache } from '../engines/engines.ts';
import { activeSet, partsOf, type SetParts } from '../updates/update-store.ts';
import { DEFAULT_RULES_DIR } from '../config.ts';
import { loadPolicy } from '../rules-files.ts';
import { createStation, type Station } from '../station/station.ts';
import { SCREEN_COLUMNS, StationApp, StationView } from '../station/ui.ts';
import { KeyFileError, loadSigningKey } from './keygen.ts';
import { makeFolder, requireFolder } from './path-option.ts';
import { DEFAULT_AUDIT_DB, DEFAULT_CLAMAV_DB, runScan, type ScanCommandOptions, type ScanOutcome } from './scan-command.ts';

/** Where a real kiosk mounts drives: a folder the kiosk owns. */
export const DEFAULT_MOUNT_DIR = '/run/portcullis/media';

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
  /** The parts given on the command line: they win over the active update set's. */
  readonly policyPath?: string;
  readonly allowlistDir?: string;
  readonly rulesDir?: string;
  readonly clamavDb?: string;
  /** The parts named by the config file: used where the active update set carries none. */
  readonly configuredParts?: SetParts;
  /** The kiosk's updates folder (docs/updates.md): its active set supplies the parts it carries. */
  readonly updatesDir?: string;
  /** ms between self-checks once running (default 60 000). */
  readonly recheckMs?: number;
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

/** The parts the station uses now: the command line's, else the active update set's, else the config's, else the defaults. */
interface CurrentParts {
  readonly clamavDb: string;
  readonly rulesDir: string;
  readonly policyPath: string | undefined;
  readonly allowlistDir: string | undefined;
  /** The active set's generation and when its signatures were built; null without an update set. */
  readonly generation: string | null;
  readonly setSignaturesBuiltAt: string | null;
}

async function currentParts(options: StationOptions): Promise<CurrentParts> {
  const active = options.updatesDir ? await activeSet(options.updatesDir) : null;
  const set: SetParts = active ? partsOf(active) : {};
  const configured = options.configuredParts ?? {};
  const pick = (key: keyof SetParts): string | undefined => options[key] ?? set[key] ?? configured[key];
  return {
    clamavDb: pick('clamavDb') ?? DEFAULT_CLAMAV_DB,
    rulesDir: pick('rulesDir') ?? DEFAULT_RULES_DIR,
    policyPath: pick('policyPath'),
    allowlistDir: pick('allowlistDir'),
    generation: active?.generation ?? null,
    setSignaturesBuiltAt: active && set.clamavDb && !options.clamavDb ? signaturesBuiltAt(active.set) : null,
  };
}

/** Free bytes for an unprivileged writer on the filesystem holding `path`; null when it cannot be examined. */
async function freeBytes(path: string): Promise<number | null> {
  try {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function codeOf(error: unknown): { code: string; message: string } {
  return error instanceof PortcullisError ? { code: String((error as PortcullisError).code), message: error.message } : { code: 'INTERNAL_ERROR', message: (error as Error).message };
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
  let parts = await currentParts(options);
  const policy = await loadPolicy(parts.policyPath);
  const devicePolicy = options.devicePolicy ?? (options.devicePolicyPath ? await loadDevicePolicy(options.devicePolicyPath) : OPEN_DEVICE_POLICY);
  const dbPath = options.dbPath === undefined ? DEFAULT_AUDIT_DB : options.dbPath;
  const log = options.log ?? (() => undefined);
  const now = options.now ?? (() => new Date());
  // What every drive will need is checked before the station starts, not at the first drive.
  if (options.workDir) await makeFolder(options.workDir, '--work-dir', 0o700);
  // A station that cannot sign would show APPROVED for drives every HMI then refuses. A key that is
  // configured but cannot be used is the self-check's: the screen says OUT OF SERVICE and why.
  if (!options.keyPath && !options.reportOnly) {
    throw new KeyFileError('KEY_REQUIRED', 'the station signs the approvals HMIs check and has no signing key: give --key FILE (or keyPath in the config file, or PORTCULLIS_KIOSK_KEY); --report-only runs a station that writes no approval');
  }
  if (dbPath !== null) {
    await makeFolder(dirname(dbPath), '--db');
    openAuditStore(dbPath).close();
  }
  const scan = options.scan ?? runScan;
  // One set of engines for the station's life: clamd with a production database
  // takes tens of seconds and about 1 GB to start, not something to do per drive.
  const workRoot = options.workDir ?? tmpdir();
  const engineDir = await mkdtemp(join(workRoot, 'portcullis-station-engines-'));
  const engineCache = createEngineCache(engineDir);

  /**
   * The self-check (core/self-check.ts): the parts in use now (an import may have changed them),
   * the policy, the key, free space, the signatures' age, and the engines proven with those parts
   * (the engine cache starts them once and PINGs them after; a new set starts new ones).
   */
  const selfCheck = async (step: (text: string) => void): Promise<{ service: ServiceStatus; engines: EngineStatus }> => {
    step('reading the update set and the policy');
    let loaded: LoadedPolicy | null = null;
    let policyProblem: SelfCheckFacts['policyProblem'];
    try {
      parts = await currentParts(options);
      loaded = await loadPolicy(parts.policyPath);
    } catch (error) {
      policyProblem = codeOf(error);
    }
    const checks = loaded ? stationChecksOf(loaded.policy) : DEFAULT_STATION_CHECKS;
    step('the signing key');
    const key: SelfCheckFacts['key'] = options.keyPath
      ? await loadSigningKey(options.keyPath).then(() => ({ ok: true as const }), (error: unknown) => ({ ok: false as const, ...codeOf(error) }))
      : 'report-only';
    step('free space');
    const space: SelfCheckFacts['space'] = [
      { what: 'work folder', path: workRoot, freeBytes: await freeBytes(workRoot), needBytes: checks.minFreeWorkBytes },
      ...(dbPath === null ? [] : [{ what: 'audit log' as const, path: dirname(dbPath), freeBytes: await freeBytes(dirname(dbPath)), needBytes: checks.minFreeAuditBytes }]),
    ];
    step('the signature database');
    const signatures: SelfCheckFacts['signatures'] = parts.clamavDb === 'test'
      ? { builtAt: now().toISOString(), source: 'the test database (made at every start)' }
      : parts.setSignaturesBuiltAt !== null
        ? { builtAt: parts.setSignaturesBuiltAt, source: `update set ${parts.generation ?? ''}` }
        : await readDatabaseTime(parts.clamavDb).then((r) => ('missing' in r ? r : { builtAt: r.builtAt, source: parts.clamavDb }));
    let engines: SelfCheckFacts['engines'] = 'not-checked';
    let status: EngineStatus = { clamavDatabase: 'missing' in signatures ? `missing (${parts.clamavDb})` : parts.generation ? `update set ${parts.generation}` : parts.clamavDb === 'test' ? 'Portcullis TEST database' : parts.clamavDb, clamavDatabaseTime: 'missing' in signatures ? null : signatures.builtAt, ruleSet: null, note: parts.clamavDb === 'test' ? 'test database: EICAR and test patterns only, not real signatures' : null };
    const diskFull = space.some((s) => s.freeBytes === null || s.freeBytes < s.needBytes);
    if (loaded && !('missing' in signatures) && !diskFull) {
      step('the scan engines: loading the signatures, proving every rule live');
      try {
        const running = await engineCache.get({ clamavDb: parts.clamavDb, rulesDir: parts.rulesDir, policy: loaded.policy });
        engines = { ok: true };
        const c = running.info.clamav;
        const y = running.info.yara;
        status = {
          ...status,
          clamavDatabase: c ? `${c.version}, database ${c.databaseVersion ?? 'unversioned'}` : status.clamavDatabase,
          ruleSet: y ? `${y.ruleSetDigest.slice(0, 19)}... (${y.ruleCount} rules)` : null,
        };
      } catch (error) {
        engines = { ok: false, ...codeOf(error) };
      }
    }
    const facts: SelfCheckFacts = { key, space, signatures, engines, ...(policyProblem ? { policyProblem } : {}) };
    return { service: assessService(facts, checks, now()), engines: status };
  };

  return createStation({
    source: options.source,
    ...(options.mounter ? { mounter: options.mounter } : {}),
    devicePolicy,
    operatorRequired: policy.policy.operator.required,
    engines: { clamavDatabase: null, clamavDatabaseTime: null, ruleSet: null, note: null },
    dbPath,
    log,
    now,
    selfCheck,
    ...(options.recheckMs ? { recheckMs: options.recheckMs } : {}),
    ...(options.onState ? { onState: options.onState } : {}),
    async scan(request) {
      // The parts the last self-check proved: the same the engine cache holds.
      const outcome = await scan({
        path: request.path,
        image: request.image,
        json: true,
        clamavDb: parts.clamavDb,
        rulesDir: parts.rulesDir,
        usb: request.usb,
        ...(request.writable ? { writable: request.writable } : {}),
        ...(request.device ? { device: request.device } : {}),
        ...(request.disk ? { disk: request.disk } : {}),
        operatorId: request.operatorId,
        dbPath,
        signal: request.signal,
        now,
        err: log,
        out: log,
        onProgress: request.onProgress,
        ...(options.keyPath ? { keyPath: options.keyPath } : {}),
        ...(parts.policyPath ? { policyPath: parts.policyPath } : {}),
        ...(parts.allowlistDir ? { allowlistDir: parts.allowlistDir } : {}),
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
      const service = st.service.state === 'checking' ? 'checking' : `${st.service.state}:${[...(st.service.state === 'out-of-service' ? st.service.problems : []), ...st.service.warnings].map((p) => p.code).join(',')}`;
      const key = `${screen.kind}|${screen.kind === 'idle' ? '' : screen.drive.id}|${st.queue.length}|${screen.kind === 'scanning' ? screen.progress?.phase ?? 'starting' : ''}|${service}`;
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
