/**
 * `portcullis-kiosk scan`: one drive from insertion to verdict. Order matters:
 *  1. open the drive (folder or image) and record SCAN_STARTED in the audit log;
 *  2. remove any old manifest first, so a stale approval never survives this scan
 *     (a scan killed midway leaves no manifest at all);
 *  3. start and self-test the engines, scan every file once;
 *  4. approved or partial: sign, write, re-read and verify the manifest;
 *     a write that fails turns the drive rejected;
 *  5. record the whole outcome in one audit transaction.
 */
import { loadAllowlist } from '../rules-files.ts';
import { loadPolicy } from '../rules-files.ts';
import { DEFAULT_RULES_DIR, PRODUCTION_CLAMAV_DB } from '../config.ts';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PortcullisError, type SigningKey } from '../../manifest/index.ts';
import { type Allowlist } from '../core/allowlist.ts';
import { DEFAULT_AUDIT_DB } from '../config.ts';
import { DriveError, openFolderTarget, openImageTarget, type DriveTarget, type UsbIdentity, type WritableSwitch } from '../drive/drive-target.ts';
import { writeApproval, type IssuedManifest } from '../approval/write-approval.ts';
import { openAuditStore, type AuditStore } from '../audit/store.ts';
import { EngineError, startEngines, type EngineCache, type Engines } from '../engines/engines.ts';
import { outdatedSignatures, stationChecksOf } from '../core/self-check.ts';
import { preferredBlake3 } from '../engines/hash-file.ts';
import { loadSigningKey } from './keygen.ts';
import { makeFolder } from './path-option.ts';
import { type LoadedPolicy } from '../core/policy.ts';
import { blockPassing, ENGINE_FAILURES, type Decision, type DriveReason } from '../core/decide.ts';
import { ScanLedgerError } from '../scan/ledger.ts';
import { exitCodeFor, scanJsonLines, scanTextLines, type ScanSummaryInput } from '../scan/report.ts';
import { scanDrive, type ScanProgress, type ScanReport } from '../scan/scan-session.ts';
import { checkBootSectors, type BootCheck } from '../scan/boot-sectors.ts';
import { readBootRegions, type BootSectorSource } from '../drive/boot-sectors.ts';

export interface ScanCommandOptions {
  readonly path: string;
  /** PATH is a FAT32/exFAT image file rather than a mounted folder. */
  readonly image?: boolean;
  readonly json: boolean;
  readonly clamavDb?: string;
  readonly rulesDir?: string;
  readonly policyPath?: string;
  readonly allowlistDir?: string;
  readonly workDir?: string;
  /** The kiosk's private key; without it (or with noWrite) nothing is written to the drive. */
  readonly keyPath?: string;
  readonly noWrite?: boolean;
  /** Audit database; null disables the log (tests only). */
  readonly dbPath?: string | null;
  readonly kioskId?: string;
  readonly operatorId?: string | null;
  readonly usb?: UsbIdentity | null;
  /** A read-only mount (the station's): made writable only around removing and writing the manifest. */
  readonly writable?: WritableSwitch | null;
  /** The block device behind a mounted PATH, to read the volume's identity and boot sectors from. */
  readonly device?: string | null;
  /** The whole disk `device` is a partition of (the station's /dev/sdX), to read its MBR and GPT from. */
  readonly disk?: string | null;
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: ScanProgress) => void;
  /** Engines kept between scans (the station); without it each scan starts and stops its own. */
  readonly engineCache?: EngineCache;
  readonly now?: () => Date;
}

/** The default audit log, shared with `log` and `run` (kiosk/config.ts). */
export { DEFAULT_AUDIT_DB };

/**
 * The ClamAV database a kiosk uses unless told otherwise: the production one.
 * The project's test database (EICAR and test patterns only) is never a silent
 * fallback: it must be asked for with `--clamav-db test`. A kiosk without a
 * production database rejects every drive (CLAMAV_DB_MISSING), never approves.
 */
export const DEFAULT_CLAMAV_DB = PRODUCTION_CLAMAV_DB;

export function defaultKioskId(): string {
  const id = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return id.length > 0 ? id : 'kiosk';
}

export interface ScanOutcome {
  readonly exitCode: number;
  /** The caller reads the files from `summary.report.decision` and then calls `summary.report.close()`. */
  readonly summary: ScanSummaryInput;
  readonly manifest: IssuedManifest | null;
  readonly scanId: string;
  readonly removedOldManifest: boolean;
}

function rejectWith(decision: Decision, reason: DriveReason): Decision {
  return {
    verdict: 'rejected',
    driveReasons: [...decision.driveReasons, reason],
    files: blockPassing(decision.files, `not approved: ${reason.code}`),
  };
}

export async function runScan(options: ScanCommandOptions): Promise<ScanOutcome> {
  const err = options.err ?? ((t: string) => process.stderr.write(`${t}\n`));
  const now = options.now ?? (() => new Date());
  const scanId = randomUUID();
  const kioskId = options.kioskId ?? defaultKioskId();
  const policy: LoadedPolicy = await loadPolicy(options.policyPath);
  const allowlist: Allowlist = await loadAllowlist(options.allowlistDir);
  const key: SigningKey | null = options.keyPath && !options.noWrite ? await loadSigningKey(options.keyPath) : null;
  const operatorId = options.operatorId ?? null;
  if (policy.policy.operator.required && operatorId === null) {
    throw new PortcullisError('OPERATOR_REQUIRED', `policy ${policy.policy.id} requires the operator's id (--operator)`);
  }
  const clamavDb = options.clamavDb ?? DEFAULT_CLAMAV_DB;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-kiosk-')));
  const notes: string[] = [];
  let audit: AuditStore | null = null;
  let target: DriveTarget | null = null;
  let engines: Engines | null = null;
  let unreturned: ScanReport | null = null; // a report (and its ledger) not yet handed to the caller
  try {
    const dbPath = options.dbPath === undefined ? DEFAULT_AUDIT_DB : options.dbPath;
    if (dbPath !== null) {
      await makeFolder(dirname(dbPath), '--db'); // not mkdir recursive: it loops forever under /proc
      audit = openAuditStore(dbPath);
      audit.recordInterruptedScans();
    }
    target = options.image
      ? await openImageTarget(resolve(options.path), join(workDir, 'media'), options.usb ?? null, options.signal ? { signal: options.signal } : {})
      : await openFolderTarget(resolve(options.path), { usb: options.usb ?? null, writable: options.writable ?? null, device: options.device ?? null, ...(options.signal ? { signal: options.signal } : {}) });
    audit?.beginScan({ scanId, kioskId, operatorId, device: { usb: target.media.usb, filesystem: target.media.filesystem, volumeId: target.media.volumeId, label: target.media.label, capacity: target.media.capacity }, startedAt: now() });

    // A stale approval must not survive a new scan, whatever its outcome.
    const removedOldManifest = key ? await target.removeManifest() : false;
    if (removedOldManifest) notes.push('an earlier manifest on the drive was removed before scanning');
    if (!key && !options.noWrite) notes.push('no kiosk key given (--key): report only, no manifest written');

    let report: ScanReport;
    let engineInfo: ScanSummaryInput['engines'] = { clamav: null, yara: null };
    // The boot sectors, where the kiosk holds a device or an image: a folder has none.
    const bootSource: BootSectorSource | null = options.image
      ? { disk: null, volume: resolve(options.path) }
      : options.device ? { disk: options.disk ?? null, volume: options.device } : null;
    let boot: BootCheck | null = null;
    try {
      const engineOptions = {
        clamavDb,
        rulesDir: options.rulesDir ?? DEFAULT_RULES_DIR,
        policy: policy.policy,
        onStatus: (line: string) => { if (!options.json) err(`engines: ${line}`); },
      };
      engines = options.engineCache
        ? await options.engineCache.get(engineOptions)
        : await startEngines({ ...engineOptions, workDir: join(workDir, 'engines') });
      engineInfo = engines.info;
      // The policy's freshness limit holds for a one-shot scan too (the station checks it before each drive).
      const stale = outdatedSignatures(engineInfo.clamav?.databaseTime ?? null, stationChecksOf(policy.policy), now());
      if (stale !== null) throw new EngineError('SIGNATURES_OUTDATED', stale);
      if (engines.databaseNote) notes.push(engines.databaseNote.split('\n')[0]!);
      const running = engines;
      if (bootSource) {
        const bootStarted = Date.now();
        boot = await checkBootSectors(() => readBootRegions(bootSource), running.scanner, (e) => running.classifyScannerError(e), options.signal);
        audit?.recordEvent('BOOT_SECTORS_SCANNED', { disk: bootSource.disk, volume: bootSource.volume, regions: boot.results, reason: boot.reason, ms: Date.now() - bootStarted }, { scanId });
        notes.push(`boot sectors: ${boot.results.map((r) => `${r.name} ${r.result === 'clean' ? 'clean' : `${r.finding ?? 'found'} ${r.signature ?? ''}`}`).join(', ') || 'none read'}${boot.reason ? ` (${boot.reason.code})` : ''}`);
      } else {
        notes.push('boot sectors: not read (a folder has none; the station and --image read them)');
      }
      let last = 0;
      report = await scanDrive(target.root, {
        policy,
        allowlist,
        scanner: running.scanner,
        inspection: running.inspection,
        blake3: preferredBlake3(),
        classifyScannerError: (e) => running.classifyScannerError(e),
        unseen: target.unseen,
        ledgerDir: workDir,
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (p: ScanProgress) => {
          options.onProgress?.(p);
          const t = Date.now();
          if (options.json || (t - last < 1000 && p.phase !== 'done')) return;
          last = t;
          err(`scan: ${p.phase} ${p.filesDone}/${p.filesTotal} files, ${(p.bytesDone / 1048576).toFixed(1)}/${(p.bytesTotal / 1048576).toFixed(1)} MiB${p.current ? ` ${p.current}` : ''}`);
        },
      });
    } catch (error) {
      if (!(error instanceof PortcullisError)) throw error;
      // Engines that cannot start or fail their self-test, or a work folder that fails
      // under the scan's ledger, reject the drive, with the reason.
      const reason: DriveReason = error instanceof ScanLedgerError
        ? { code: 'WORK_FOLDER_FAILED', detail: error.message }
        : { code: 'ENGINE_NOT_READY', detail: `${error.code}: ${error.message}` };
      report = {
        decision: { verdict: 'rejected', files: [], driveReasons: [reason] },
        stats: { files: 0, bytes: 0, entries: 0 },
        manifestFolderExtras: [],
        durations: { walkMs: 0, scanMs: 0, totalMs: 0 },
        close: () => {},
      };
    }

    // Boot code the engines objected to, or could not check, rejects the drive whatever its files are.
    if (boot?.reason) report = { ...report, decision: rejectWith(report.decision, boot.reason) };
    unreturned = report;
    // Engines that failed during this scan are not reused for the next drive.
    if (options.engineCache && report.decision.driveReasons.some((r) => r.code !== 'SCAN_ABORTED' && ENGINE_FAILURES.has(r.code))) {
      await options.engineCache.invalidate();
    }
    let decision = report.decision;
    let manifest: IssuedManifest | null = null;
    if (key && decision.verdict !== 'rejected') {
      try {
        manifest = await writeApproval(target, {
          decision,
          key,
          kioskId,
          operatorId,
          scan: { id: scanId, fileCount: report.stats.files, byteCount: report.stats.bytes },
          engines: engineInfo,
          allowlist: { version: allowlist.version, digest: allowlist.digest },
          policy: { id: policy.policy.id, digest: policy.digest },
          validityHours: policy.policy.manifest.validityHours,
          now: now(),
        });
        notes.push(`manifest written and verified: ${manifest.digest}, valid until ${manifest.expiresAt}`);
      } catch (error) {
        if (!(error instanceof DriveError)) throw error;
        decision = rejectWith(decision, { code: error.code === 'MEDIA_FULL' ? 'MEDIA_FULL' : 'MANIFEST_WRITE_FAILED', detail: error.message });
        audit?.recordEvent('MANIFEST_WRITE_FAILED', { code: error.code, detail: error.message }, { scanId });
      }
    }
    const finalReport: ScanReport = { ...report, decision };
    const summary: ScanSummaryInput = {
      root: target.description,
      report: finalReport,
      engines: engineInfo,
      policy: { id: policy.policy.id, digest: policy.digest },
      allowlist: { version: allowlist.version, digest: allowlist.digest },
      notes,
    };
    try {
      audit?.finishScan({
        scanId,
        decision,
        report: finalReport,
        engines: engineInfo,
        policy: summary.policy,
        allowlist: summary.allowlist,
        manifest: manifest ? { digest: manifest.digest, keyId: manifest.keyId, expiresAt: manifest.expiresAt } : null,
        finishedAt: now(),
      });
    } catch (error) {
      // An approval that is not on the record must not exist: take the manifest off the drive again.
      if (manifest) await target.removeManifest();
      throw error;
    }
    if (dbPath !== null) notes.push(`audit log: ${dbPath} (scan ${scanId})`);
    unreturned = null; // the caller closes it (ScanSummaryInput.report.close)
    return { exitCode: exitCodeFor(decision.verdict), summary, manifest, scanId, removedOldManifest };
  } finally {
    unreturned?.close();
    if (!options.engineCache) await engines?.stop();
    await target?.close();
    audit?.close();
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

const OUTPUT_BATCH_CHARS = 64 * 1024; // characters of report per write

export async function scanCommand(options: ScanCommandOptions): Promise<number> {
  const out = options.out ?? ((t: string) => process.stdout.write(`${t}\n`));
  const { exitCode, summary } = await runScan(options);
  try {
    // Written in batches of whole lines as the files are read from the ledger: never the whole report at once.
    let batch: string[] = [];
    let size = 0;
    for (const piece of options.json ? scanJsonLines(summary) : scanTextLines(summary)) {
      batch.push(piece);
      size += piece.length;
      if (size >= OUTPUT_BATCH_CHARS) {
        out(batch.join('\n'));
        batch = [];
        size = 0;
      }
    }
    if (batch.length > 0) out(batch.join('\n'));
  } finally {
    summary.report.close();
  }
  return exitCode;
}

/** Parses --usb VID:PID[:SERIAL]. */
export function parseUsb(text: string): UsbIdentity {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.{1,128}))?$/.exec(text);
  if (!m) throw new PortcullisError('USAGE', `--usb expects VID:PID[:SERIAL] in hex, got ${JSON.stringify(text)}`);
  return { vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase(), serial: m[3] ?? null };
}
