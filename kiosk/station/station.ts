/**
 * The station: a device source reports insertions and removals; each device
 * is checked (BadUSB, allow/deny list, partitions, filesystem) before
 * anything is mounted; an accepted drive is scanned while the screen follows
 * the state machine in core/station-state.ts. A drive pulled mid-scan aborts
 * the scan through its AbortSignal and approves nothing. Everything it needs
 * from the world (the source, the mounter, the scan, the engines' status)
 * comes in through StationDeps: the command line wires the real ones
 * (cli/run-command.ts), tests their own.
 */
import { open } from 'node:fs/promises';
import { PortcullisError, type Predicate } from '../../manifest/index.ts';
import { openAuditStore } from '../audit/store.ts';
import type { Decision, DriveReason } from '../core/decide.ts';
import { checkDevice, describeDevice, StationError, usbIdentityOf, type DevicePolicy, type DeviceRecord, type PartitionRecord } from '../core/device.ts';
import type { DeviceSource, DeviceSourceEvent, MountAdapter, MountedVolume, ScanProgress, UsbIdentity, WritableSwitch } from '../core/ports.ts';
import { serviceChanged, type ServiceStatus } from '../core/self-check.ts';
import { initialState, reduce, resultView, type EngineStatus, type ResultView, type StationEvent, type StationState } from '../core/station-state.ts';
import { checkLayout, checkVolume, SECTOR_BYTES, type VolumeCheck } from '../core/volume-check.ts';
import type { StationStore } from './ui.ts';

/** One accepted drive: which volume to scan and how. */
interface Accepted {
  readonly record: DeviceRecord;
  readonly partition: PartitionRecord;
  /** The whole disk the partition is on (its MBR and GPT are scanned too). */
  readonly disk: string;
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
  const disk = record.drives.find((d) => d.partitions.includes(partition))?.device ?? partition.device;
  return { ok: true, accepted: { record, partition, disk, filesystem: volume.filesystem } };
}

function enginesFromScan(previous: EngineStatus, outcome: StationScanOutcome): EngineStatus {
  const c = outcome.engines.clamav;
  const y = outcome.engines.yara;
  return {
    clamavDatabase: c ? `${c.version}, database ${c.databaseVersion ?? 'unversioned'}` : previous.clamavDatabase,
    clamavDatabaseTime: c?.databaseTime ?? previous.clamavDatabaseTime,
    ruleSet: y ? `${y.ruleSetDigest.slice(0, 19)}... (${y.ruleCount} rules)` : previous.ruleSet,
    note: previous.note,
  };
}

export interface Station extends StationStore {
  /** Resolves when the station has stopped (every scan finished or aborted). */
  readonly done: Promise<void>;
  /** Runs the self-check now (it also runs at start and every `recheckMs`); resolves with its verdict. */
  recheck(): Promise<ServiceStatus>;
  stop(): Promise<void>;
}

/** The scan the station runs for one accepted drive (cli/run-command.ts wires the real one). */
export interface StationScanRequest {
  readonly path: string; // the mounted folder, or the image file
  readonly image: boolean;
  readonly usb: UsbIdentity | null;
  /** A real drive's mount, switched read-write only around writing the manifest. */
  readonly writable?: WritableSwitch;
  readonly device?: string;
  /** The whole disk behind `device`, for its MBR and GPT. */
  readonly disk?: string;
  readonly operatorId: string | null;
  readonly signal: AbortSignal;
  readonly onProgress: (progress: ScanProgress) => void;
}

export interface StationScanOutcome {
  readonly decision: Decision;
  readonly expiresAt: string | null;
  readonly scanId: string;
  readonly engines: Partial<Predicate['engines']>;
  /** Releases the scan's ledger once the result is read. */
  close(): void;
}

/** What the station needs from the world: passed in by the command line (cli/run-command.ts) or a test. */
export interface StationDeps {
  readonly source: DeviceSource;
  /** Mounts real partitions; required for devices that are not images. */
  readonly mounter?: MountAdapter;
  readonly devicePolicy: DevicePolicy;
  readonly operatorRequired: boolean;
  /** What the header shows about the engines before the first scan. */
  readonly engines: EngineStatus;
  readonly scan: (request: StationScanRequest) => Promise<StationScanOutcome>;
  /** Audit database for device events; null: none (tests). */
  readonly dbPath: string | null;
  readonly readSector?: (path: string) => Promise<Uint8Array>;
  readonly onState?: (state: StationState) => void;
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /** Called once the station has stopped (the command line releases its engines). */
  readonly onStop?: () => Promise<void>;
  /**
   * The self-check (core/self-check.ts): key, free space, signature age, engines. Without it the
   * station is ready at once (tests of the screens). With it the station starts "checking", takes no
   * drive until the check says ready, and checks again every `recheckMs` while no drive is scanned.
   */
  readonly selfCheck?: (onStep: (step: string) => void) => Promise<{ service: ServiceStatus; engines?: EngineStatus }>;
  readonly recheckMs?: number; // ms; default 60 000
}

/** The station without its screen and without a process: for the command line and for tests. */
export async function createStation(deps: StationDeps): Promise<Station> {
  const now = deps.now ?? (() => new Date());
  const log = deps.log ?? (() => undefined);
  const dbPath = deps.dbPath;
  let state = initialState(deps.engines, deps.operatorRequired, deps.selfCheck ? { state: 'checking', step: 'starting' } : undefined);
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
    deps.onState?.(state);
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
      // ... and after a self-check under way (it may restart the engines).
      previousScan = previousScan.then(() => checking?.catch(() => undefined)).then(() => {
        if (drive) return scanOne(id, drive, operatorId, abort.signal);
        dispatch({ type: 'failed', id, reason: { code: 'SCANNER_ERROR', detail: 'the drive was not checked before scanning (a bug)' } });
        return Promise.resolve();
      });
    }
  }

  async function scanOne(id: string, drive: Accepted, operatorId: string | null, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    if (state.service.state !== 'ready') {
      // The self-check found a problem after this drive was taken: it is not scanned.
      const why = state.service.state === 'out-of-service' ? state.service.problems.map((p) => p.code).join(', ') : 'self-check not finished';
      dispatch({ type: 'failed', id, reason: { code: 'ENGINE_NOT_READY', detail: `the station is out of service (${why}): the drive was not scanned` } });
      return;
    }
    let mounted: MountedVolume | null = null;
    try {
      let path = drive.partition.device;
      if (!drive.partition.image) {
        if (!deps.mounter) throw new StationError('MOUNT_FAILED', 'no mount adapter configured for real drives');
        mounted = await deps.mounter.mount(drive.partition.device, drive.filesystem);
        path = mounted.path;
      }
      const outcome = await deps.scan({
        path,
        image: drive.partition.image === true,
        usb: usbIdentityOf(drive.record),
        // A real drive stays mounted read-only except around writing the manifest.
        ...(mounted ? { writable: mounted, device: drive.partition.device, disk: drive.disk } : {}),
        operatorId,
        signal,
        onProgress: (progress) => dispatch({ type: 'progress', id, progress, at: Date.now() }),
      });
      let result: ResultView;
      try {
        if (signal.aborted) return; // pulled mid-scan: the screen already says nothing was approved
        result = resultView(outcome.decision, outcome.expiresAt, { scanId: outcome.scanId, operatorId });
      } finally {
        outcome.close();
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

  // Every change of service (ready, out of service, and which problems) goes into the audit log.
  let recorded: ServiceStatus | null = null;
  const recordService = (service: ServiceStatus): void => {
    if (service.state === 'checking' || (recorded !== null && !serviceChanged(recorded, service))) return;
    recorded = service;
    if (dbPath === null) return;
    try {
      const store = openAuditStore(dbPath);
      try {
        if (service.state === 'ready') store.recordEvent('STATION_IN_SERVICE', { warnings: service.warnings });
        else store.recordEvent('STATION_OUT_OF_SERVICE', { problems: service.problems, warnings: service.warnings });
      } finally {
        store.close();
      }
    } catch (error) {
      log(`audit: cannot record the station's service state: ${(error as Error).message}`);
    }
  };

  let checking: Promise<ServiceStatus> | null = null;
  const recheck = (): Promise<ServiceStatus> => {
    if (!deps.selfCheck) return Promise.resolve(state.service);
    // One check at a time, and none while a drive is scanned (the check may restart the engines).
    checking ??= previousScan.then(() => deps.selfCheck!((step) => {
      if (state.service.state === 'checking') dispatch({ type: 'service', service: { state: 'checking', step } });
    })).then(
      (result) => {
        if (result.engines) dispatch({ type: 'engines', engines: result.engines });
        return result.service;
      },
      (error: unknown): ServiceStatus => ({ state: 'out-of-service', problems: [{ code: 'SELF_CHECK_FAILED', what: `the self-check itself failed (a bug): ${(error as Error).message}`, fix: 'call maintenance' }], warnings: [] }),
    ).then((service) => {
      recordService(service);
      dispatch({ type: 'service', service });
      checking = null;
      return service;
    });
    return checking;
  };
  const timer = deps.selfCheck ? setInterval(() => {
    if (!running) void recheck();
  }, deps.recheckMs ?? 60_000) : null;
  timer?.unref();

  const onSourceEvent = (event: DeviceSourceEvent): void => {
    if (event.type === 'detach') {
      present.delete(event.id);
      accepted.delete(event.id);
      dispatch({ type: 'removed', id: event.id });
      return;
    }
    const record = event.device;
    present.add(record.id);
    admitDevice(record, deps.devicePolicy, deps.readSector).then((admission) => {
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
  await deps.source.start(onSourceEvent);
  void recheck();

  const station: Station = {
    getState: () => state,
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    dispatch,
    now,
    done,
    recheck,
    async stop() {
      if (stopped) return done;
      if (timer) clearInterval(timer);
      running?.abort.abort();
      running = null;
      stopped = true;
      await deps.source.stop();
      await previousScan.catch(() => undefined);
      await checking?.catch(() => undefined);
      await deps.onStop?.();
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
