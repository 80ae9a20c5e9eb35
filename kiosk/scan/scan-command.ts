/**
 * `portcullis-kiosk scan PATH`: starts and self-tests the engines, scans the
 * mounted drive (or a folder standing for one) and reports. Engine failure is
 * a rejected drive with the reason, never an approval.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PortcullisError } from '../../manifest/index.ts';
import { loadAllowlist, type Allowlist } from '../allowlist.ts';
import { DEFAULT_RULES_DIR, PRODUCTION_CLAMAV_DB, startEngines, type Engines } from '../engines.ts';
import { preferredBlake3 } from '../hash-file.ts';
import { loadPolicy, type LoadedPolicy } from '../policy.ts';
import { exitCodeFor, scanJson, scanText, type ScanSummaryInput } from './report.ts';
import { scanDrive, type ScanProgress, type ScanReport } from './scan-session.ts';

export interface ScanCommandOptions {
  readonly path: string;
  readonly json: boolean;
  readonly clamavDb?: string;
  readonly rulesDir?: string;
  readonly policyPath?: string;
  readonly allowlistDir?: string;
  readonly clamdSocket?: string;
  readonly workDir?: string;
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
  readonly signal?: AbortSignal;
}

/** The production database when it is there, else the built-in test database (with a warning). */
export async function defaultClamavDb(): Promise<string> {
  const names = await readdir(PRODUCTION_CLAMAV_DB).catch(() => [] as string[]);
  return names.some((n) => /\.(cvd|cld)$/.test(n)) ? PRODUCTION_CLAMAV_DB : 'test';
}

export interface ScanOutcome {
  readonly exitCode: number;
  readonly summary: ScanSummaryInput;
}

export async function runScan(options: ScanCommandOptions, withEngines?: (engines: Engines, summary: ScanSummaryInput) => Promise<void>): Promise<ScanOutcome> {
  const err = options.err ?? ((t: string) => process.stderr.write(`${t}\n`));
  const root = resolve(options.path);
  const policy: LoadedPolicy = await loadPolicy(options.policyPath);
  const allowlist: Allowlist = await loadAllowlist(options.allowlistDir);
  const clamavDb = options.clamavDb ?? (await defaultClamavDb());
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-kiosk-')));
  const notes: string[] = [];
  let engines: Engines | null = null;
  try {
    try {
      engines = await startEngines({
        clamavDb,
        rulesDir: options.rulesDir ?? DEFAULT_RULES_DIR,
        workDir,
        policy: policy.policy,
        ...(options.clamdSocket ? { clamdSocket: options.clamdSocket } : {}),
        onStatus: (line) => err(`engines: ${line}`),
      });
      if (engines.databaseNote) notes.push(engines.databaseNote.split('\n')[0]!);
    } catch (error) {
      if (!(error instanceof PortcullisError)) throw error;
      // Engines that cannot start or fail their self-test reject the drive, with the reason.
      const report: ScanReport = {
        decision: { verdict: 'rejected', files: [], driveReasons: [{ code: 'ENGINE_NOT_READY', detail: `${error.code}: ${error.message}` }] },
        stats: { files: 0, bytes: 0, entries: 0 },
        manifestFolderExtras: [],
        durations: { walkMs: 0, scanMs: 0, totalMs: 0 },
      };
      const summary = { root, report, engines: { clamav: null, yara: null }, policy: { id: policy.policy.id, digest: policy.digest }, allowlist: null, notes };
      return { exitCode: exitCodeFor('rejected'), summary };
    }
    let last = 0;
    const report = await scanDrive(root, {
      policy,
      allowlist,
      scanner: engines.scanner,
      blake3: preferredBlake3(),
      classifyScannerError: (e) => engines!.classifyScannerError(e),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p: ScanProgress) => {
        const t = Date.now();
        if (options.json || (t - last < 1000 && p.phase !== 'done')) return;
        last = t;
        err(`scan: ${p.phase} ${p.filesDone}/${p.filesTotal} files, ${(p.bytesDone / 1048576).toFixed(0)}/${(p.bytesTotal / 1048576).toFixed(0)} MiB${p.current ? ` ${p.current}` : ''}`);
      },
    });
    const summary: ScanSummaryInput = {
      root,
      report,
      engines: engines.info,
      policy: { id: policy.policy.id, digest: policy.digest },
      allowlist: { version: allowlist.version, digest: allowlist.digest },
      notes,
    };
    if (withEngines) await withEngines(engines, summary);
    return { exitCode: exitCodeFor(report.decision.verdict), summary };
  } finally {
    await engines?.stop();
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

export async function scanCommand(options: ScanCommandOptions): Promise<number> {
  const out = options.out ?? ((t: string) => process.stdout.write(`${t}\n`));
  const { exitCode, summary } = await runScan(options);
  out(options.json ? JSON.stringify(scanJson(summary), null, 2) : scanText(summary));
  return exitCode;
}
