/**
 * Service mode. A DriveWatcher polls a DriveSource and reports arrivals and
 * removals (chokidar on mount roots only makes the next poll come sooner; the
 * poll is the source of truth). The service handles one drive at a time:
 * re-reads the trust store (so changes apply without a restart), imports into
 * the destination, logs, and tells the HMI user. A drive that carries a signed
 * update repository has its trust update applied first. Removing a drive aborts its
 * import; nothing partial is left (import-drive.ts). On Windows the service also
 * checks, at start and every few minutes, that the removable-storage deny
 * policy is in force, and logs each change (storage-policy.ts).
 */
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { stat } from 'node:fs/promises';
import { join, resolve, win32 } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MANIFEST_PATH, PortcullisError } from '../manifest/index.ts';
import { UPDATE_FOLDER_ON_DRIVE, UPDATE_METADATA_FOLDER } from '../manifest/update-repository.ts';
import type { AuditSink } from './audit-log.ts';
import { driveRef } from './drive-identity.ts';
import type { DriveInfo, DriveSource } from './drive-sources.ts';
import { AgentError } from './errors.ts';
import type { HmiMessage, Notifier } from './notify.ts';
import { driveName, StatusFolder, summarize } from './operator-status.ts';
import { StoragePolicyMonitor, type StoragePolicyReading } from './storage-policy.ts';
import type { DriveReport } from './drive-report.ts';
import { importDrive } from './import-drive.ts';
import { loadTrustStore, type TrustStore } from './trust-store.ts';
import { applyTrustUpdate, updatesFolder } from './trust-update.ts';

export interface DriveWatcherOptions {
  readonly source: DriveSource;
  readonly intervalMs: number;
  readonly onArrive: (drive: DriveInfo) => void;
  readonly onRemove: (drive: DriveInfo) => void;
  readonly onError: (error: unknown) => void;
}

/** Polls a source and diffs by key. The first poll reports every drive already present as arrived. */
export class DriveWatcher {
  private readonly options: DriveWatcherOptions;
  private present = new Map<string, DriveInfo>();
  private timer: NodeJS.Timeout | null = null;
  private chokidar: FSWatcher | null = null;
  private polling: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(options: DriveWatcherOptions) {
    this.options = options;
  }

  /** One poll; concurrent calls coalesce into one more poll after the running one. */
  poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return this.polling;
    }
    this.polling = (async () => {
      do {
        this.again = false;
        await this.pollOnce();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    let drives: DriveInfo[];
    try {
      drives = await this.options.source.list();
    } catch (error) {
      this.options.onError(error);
      return;
    }
    const now = new Map(drives.map((d) => [d.key, d]));
    for (const [key, drive] of this.present) if (!now.has(key)) this.options.onRemove(drive);
    for (const [key, drive] of now) if (!this.present.has(key)) this.options.onArrive(drive);
    this.present = now;
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      void this.poll().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
      });
    };
    tick();
    const folders = this.options.source.watchFolders ?? [];
    if (folders.length > 0) {
      // depth 0: only drives (subfolders) coming and going matter, not their content.
      this.chokidar = chokidarWatch([...folders], { depth: 0, ignoreInitial: true, persistent: true });
      const nudge = (): void => void this.poll();
      this.chokidar.on('addDir', nudge).on('unlinkDir', nudge).on('error', (e) => this.options.onError(e));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.chokidar?.close();
    await this.polling;
  }
}

export interface ServiceOptions {
  readonly source: DriveSource;
  readonly trustPath: string;
  /** From the watch config; null takes the trust store's policy destination. */
  readonly destination: string | null;
  readonly log: AuditSink;
  readonly notifier: Notifier;
  readonly intervalMs: number;
  readonly settleMs: number;
  readonly clock?: () => Date;
  /** Called after each drive with its report (tests, the CLI's console output). */
  readonly onReport?: (report: DriveReport) => void;
  /** Windows: the removable-storage policy check (storage-policy.ts); absent or null elsewhere. */
  readonly storagePolicy?: StoragePolicyCheck | null;
  /** Lines for the watch output (the service's stdout). */
  readonly say?: (line: string) => void;
  /** The folder users may read for the current state and each drive's report (operator-status.ts); null: none. */
  readonly statusFolder?: string | null;
}

export interface StoragePolicyCheck {
  /** False when the watch configuration opted out (requireStoragePolicy: false). */
  readonly required: boolean;
  readonly read: () => Promise<StoragePolicyReading>;
  readonly intervalMs?: number; // ms between checks; default STORAGE_POLICY_CHECK_MS
}

/** The destination a drive goes to: config and policy must agree when both are set. */
export function chooseDestination(configured: string | null, trust: TrustStore): string {
  const policy = trust.policy.destination;
  if (configured && policy && !samePath(configured, policy)) {
    throw new AgentError('DESTINATION_INVALID', `the configuration says ${configured} but the trust store's policy says ${policy}: make them agree`);
  }
  const chosen = configured ?? policy;
  if (!chosen) throw new AgentError('DESTINATION_INVALID', 'no destination folder: set "destination" in the configuration or the trust store policy');
  return chosen;
}

export function samePath(a: string, b: string): boolean {
  if (process.platform === 'win32') return win32.resolve(a).toUpperCase() === win32.resolve(b).toUpperCase();
  return resolve(a) === resolve(b);
}

/**
 * The summary the HMI user is shown at the end of a drive, in plain words:
 * what was copied, what was not and why (the first few), and where the full
 * per-file report is. The code of a refused drive is kept for staff.
 */
export function messageFor(report: DriveReport, drive = report.drive, reportPath: string | null = null): HmiMessage {
  const { state, text } = summarize(report, drive);
  const full = reportPath === null ? '' : ` Full list: ${reportPath}`;
  if (!report.approved) return { level: 'refused', title: 'Portcullis: drive refused', text: `${text} (${report.code})${full}` };
  if (state === 'refused') return { level: 'refused', title: 'Portcullis: nothing imported', text: `${text}${full}` };
  if (state === 'done') return { level: 'ok', title: 'Portcullis: drive imported', text: `${text}${full}` };
  return { level: 'partial', title: 'Portcullis: drive partly imported', text: `${text}${full}` };
}

/** The notice when a drive is seen, before anything is read from it. */
export function noticeFor(drive: DriveInfo): HmiMessage {
  return { level: 'info', title: `Portcullis: checking drive ${driveName({ mount: drive.mount, label: drive.identity?.label ?? null })}`, text: 'Do not remove the drive until the result appears.' };
}

/**
 * A drive carrying an update repository (`portcullis-update/` at its root,
 * docs/updates.md) on an HMI with a pinned update root: the trust update on it
 * is applied, and the HMI user told the result. Returns true when the drive
 * carries no manifest, so there is nothing to import from it.
 */
async function applyUpdateOnDrive(drive: DriveInfo, options: ServiceOptions): Promise<boolean> {
  const repository = join(drive.mount, UPDATE_FOLDER_ON_DRIVE);
  const carriesUpdate = await stat(join(repository, UPDATE_METADATA_FOLDER)).then((i) => i.isDirectory(), () => false);
  if (!carriesUpdate || !(await stat(join(updatesFolder(options.trustPath), 'root.json')).then(() => true, () => false))) return false;
  try {
    const result = await applyTrustUpdate({ trustPath: options.trustPath, repository, log: options.log, now: (options.clock ?? (() => new Date()))() });
    await options.notifier.notify(result.status === 'unchanged'
      ? { level: 'info', title: 'Portcullis: trust already up to date', text: 'The update on this drive was applied before. You may remove the drive.' }
      : { level: 'ok', title: 'Portcullis: trust updated', text: `Kiosk keys and policy updated from the signed update on this drive (${result.store.keys.length} keys, ${result.store.revoked.length} revoked). You may remove the drive.` });
  } catch (error) {
    // Refused (and logged by applyTrustUpdate): the trust store is as it was.
    const code = error instanceof PortcullisError ? String(error.code) : 'INTERNAL_ERROR';
    await options.notifier.notify({ level: 'refused', title: 'Portcullis: trust update refused', text: `${code}: the update on this drive was not applied; nothing was changed. Call security staff.` });
  }
  return !(await stat(join(drive.mount, MANIFEST_PATH)).then(() => true, () => false));
}

/** Runs the service until `signal` aborts. Returns when every started import has ended. */
export async function runService(options: ServiceOptions, signal: AbortSignal): Promise<void> {
  const clock = options.clock ?? (() => new Date());
  const active = new Map<string, AbortController>();
  let queue: Promise<void> = Promise.resolve();

  const logInfo = (event: string, code: string, reason: string, drive: DriveInfo | null, outcome: 'info' | 'failed' = 'info'): void => {
    options.log.append({ event, outcome, code, reason, drive: drive ? driveRef(drive.mount, drive.identity) : null });
  };

  const status = options.statusFolder ? new StatusFolder({ folder: options.statusFolder, clock, say: options.say }) : null;

  const handle = async (drive: DriveInfo, controller: AbortController): Promise<void> => {
    const described = { mount: drive.mount, label: drive.identity?.label ?? null };
    try {
      if (options.settleMs > 0) await sleep(options.settleMs, undefined, { signal: controller.signal }).catch(() => undefined);
      if (controller.signal.aborted) return;
      // Told before the first byte is read: the user must not pull the drive while it is checked.
      status?.checking(described);
      await options.notifier.notify(noticeFor(drive));
      // An update drive: the signed trust update on it is applied first (trust-update.ts).
      if (await applyUpdateOnDrive(drive, options)) return;
      const trust = loadTrustStore(options.trustPath);
      const destination = chooseDestination(options.destination, trust);
      const report = await importDrive({
        drive: drive.mount,
        identity: drive.identity,
        trust,
        now: clock(),
        destination,
        clash: trust.policy.clash,
        log: options.log,
        signal: controller.signal,
        onProgress: status ? (p) => status.progress(described, p) : undefined,
      });
      options.onReport?.(report);
      const reportPath = status?.finished(described, report) ?? null;
      await options.notifier.notify(messageFor(report, driveName(described), reportPath));
    } catch (error) {
      const code: string = error instanceof PortcullisError ? String(error.code) : 'INTERNAL_ERROR';
      const reason = error instanceof Error ? error.message : String(error);
      try {
        logInfo('watch.error', code, reason, drive, 'failed');
      } catch {
        // the log itself failed: the notice below is all that is left
      }
      status?.failed(described, code);
      await options.notifier.notify({ level: 'error', title: 'Portcullis: drive not processed', text: `${code}: nothing was imported. Call security staff.` });
    } finally {
      active.delete(drive.key);
    }
  };

  const watcher = new DriveWatcher({
    source: options.source,
    intervalMs: options.intervalMs,
    onArrive: (drive) => {
      try {
        logInfo('drive.arrived', 'DRIVE_ARRIVED', `drive noticed by ${options.source.name}`, drive);
      } catch {
        // the import below logs again and fails closed if the log is still unwritable
      }
      const controller = new AbortController();
      active.set(drive.key, controller);
      queue = queue.then(() => handle(drive, controller));
    },
    onRemove: (drive) => {
      active.get(drive.key)?.abort();
      try {
        logInfo('drive.removed', 'DRIVE_REMOVED', 'the drive went away', drive);
      } catch {
        // nothing to fail closed on: the drive is gone
      }
    },
    onError: (error) => {
      try {
        logInfo('watch.error', 'SOURCE_FAILED', `listing drives failed: ${error instanceof Error ? error.message : String(error)}`, null, 'failed');
      } catch {
        // logged nowhere; the next poll tries again
      }
    },
  });

  logInfo('agent.started', 'SERVICE_STARTED', `watching drives with ${options.source.name}`, null);
  // The policy is checked before the first drive, then every few minutes while drives are handled.
  const policy = options.storagePolicy
    ? new StoragePolicyMonitor({ ...options.storagePolicy, log: options.log, notifier: options.notifier, say: options.say ?? (() => undefined) })
    : null;
  await policy?.start();
  watcher.start();
  await new Promise<void>((done) => {
    if (signal.aborted) done();
    else signal.addEventListener('abort', () => done(), { once: true });
  });
  await watcher.stop();
  await policy?.stop();
  for (const controller of active.values()) controller.abort();
  await queue;
  logInfo('agent.stopped', 'SERVICE_STOPPED', 'the service is stopping', null);
}
