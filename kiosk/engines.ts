/**
 * Starts the kiosk's scan engines and proves they work before any drive is
 * scanned: clamd from Debian with the ClamAV database and the YARA rules
 * staged side by side (one scan applies both, also inside archives),
 * then a self-test through the real socket: EICAR must be found (signatures
 * loaded) and the canary rule must fire (YARA rules live). Anything else stops
 * start-up: a kiosk that cannot scan never says "clean".
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PortcullisError, type Predicate } from '../manifest/index.ts';
import { classifyClamdSignature, type ClamdClient } from './clamav/client.ts';
import { ScannerError } from './clamav/errors.ts';
import type { ScanResult } from './clamav/protocol.ts';
import { SpoolScanner, spoolFolderProblem } from './clamav/spool.ts';
import { createExtractor, ExtractorError, proveExtractor } from './scan/extractor.ts';
import { InspectionFolder, type Inspection } from './scan/inspect-container.ts';
import { connectClamd, startClamd, type ConnectedClamd, type RunningClamd } from './clamav/supervisor.ts';
import { EICAR, TEST_DATABASE_DESCRIPTION, writeTestDatabase } from './clamav/test-database.ts';
import { manifestTime } from './build-statement.ts';
import { clamdFileLimit, type Policy } from './policy.ts';
import type { ScannerFailure, StreamScanner, StreamScanResult } from './scan/scan-session.ts';
import { canarySample } from './yara/canary.ts';
import { loadRuleSet, stageRuleSet, type RuleSet } from './yara/rule-set.ts';
import { fileURLToPath } from 'node:url';

export const DEFAULT_RULES_DIR = fileURLToPath(new URL('../rules/yara/', import.meta.url));
export const PRODUCTION_CLAMAV_DB = '/var/lib/clamav';

export type EngineErrorCode = 'ENGINE_NOT_READY' | 'CLAMAV_DB_MISSING';
export class EngineError extends PortcullisError<EngineErrorCode> {}

export interface EngineOptions {
  /** ClamAV database folder; "test" generates the project's test database. */
  readonly clamavDb: string;
  readonly rulesDir: string;
  /** Kiosk-owned folder for clamd's config, socket, staged database and temp files. */
  readonly workDir: string;
  readonly policy: Policy;
  /** Use an already running clamd on this socket instead of starting one (its database must hold the staged rules). */
  readonly clamdSocket?: string;
  readonly disableCache?: boolean;
  /**
   * How file bytes reach the kiosk's own clamd: "spool" (default) writes them to a
   * kiosk-owned file clamd then SCANs; "instream" streams them over the socket.
   * A clamd named by `clamdSocket` always gets INSTREAM.
   */
  readonly clamdTransport?: 'spool' | 'instream';
  readonly onStatus?: (line: string) => void;
}

export interface Engines {
  readonly scanner: StreamScanner;
  readonly info: Predicate['engines'];
  readonly ruleSet: RuleSet;
  readonly databaseNote: string | null; // set when the test database is in use
  readonly clamd: RunningClamd | ConnectedClamd;
  /** How the scan opens archives and compressed files: the sandboxed extractor, proven at start, and its private folder. */
  readonly inspection: Inspection;
  classifyScannerError(error: unknown): ScannerFailure | null;
  stop(): Promise<void>;
}

const DB_EXTENSIONS = /\.(cvd|cld|cud|hdb|hsb|hdu|hsu|mdb|msb|mdu|msu|ndb|ndu|ldb|ldu|idb|cdb|crb|fp|sfp|ign|ign2|ftm|pdb|gdb|wdb|cfg|cat|crtdb|info|yar|yara|pwdb)$/;

/** Links (or copies) the signature files into the staging folder clamd reads. */
async function stageDatabase(from: string, to: string): Promise<number> {
  const names = (await readdir(from)).filter((n) => DB_EXTENSIONS.test(n) && !n.startsWith('.'));
  for (const name of names) {
    const source = join(from, name);
    const target = join(to, name);
    try {
      await link(source, target);
    } catch {
      try {
        await symlink(resolve(source), target);
      } catch {
        await copyFile(source, target, constants.COPYFILE_EXCL);
      }
    }
  }
  return names.length;
}

function limitsFromPolicy(policy: Policy) {
  const c = policy.clamav;
  return {
    maxRecursion: c.maxRecursion,
    maxFiles: c.maxFilesPerArchive,
    maxScanSize: c.maxScanBytes,
    maxFileSize: clamdFileLimit(policy),
    maxScanTime: c.maxScanSeconds * 1000,
    pcreMaxFileSize: clamdFileLimit(policy),
  };
}

/** clamd prints the database time in ctime format, local time; the manifest wants RFC 3339 UTC. */
function databaseTime(text: string | null): string | null {
  if (text === null) return null;
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? null : manifestTime(time);
}

export async function startEngines(options: EngineOptions): Promise<Engines> {
  const status = options.onStatus ?? (() => undefined);
  const workDir = resolve(options.workDir);
  // The spool's files are named to clamd in a SCAN command: say so now, before clamd is started.
  const spoolProblem = !options.clamdSocket && options.clamdTransport !== 'instream' ? spoolFolderProblem(join(workDir, 'spool')) : null;
  if (spoolProblem !== null) throw new ScannerError('SCANNER_CONFIG', `the work folder's spool ${spoolProblem}`);
  const stagedDb = join(workDir, 'db');
  await rm(stagedDb, { recursive: true, force: true });
  await mkdir(stagedDb, { recursive: true, mode: 0o755 });

  status(`compiling YARA rules in ${options.rulesDir}`);
  const ruleSet = await loadRuleSet(options.rulesDir, { tmpDir: workDir });

  let databaseNote: string | null = null;
  if (options.clamavDb === 'test') {
    await writeTestDatabase(stagedDb, { daily: { version: 1, builtAt: new Date('2026-01-01T00:00:00Z') } });
    databaseNote = `ClamAV is using the Portcullis TEST database (EICAR and test patterns only), not real signatures.\n${TEST_DATABASE_DESCRIPTION}`;
  } else {
    const count = await stageDatabase(options.clamavDb, stagedDb).catch((cause: unknown) => {
      throw new EngineError('CLAMAV_DB_MISSING', `cannot read the ClamAV database folder ${options.clamavDb}: ${(cause as Error).message}`, { cause });
    });
    if (count === 0) throw new EngineError('CLAMAV_DB_MISSING', `no ClamAV database files in ${options.clamavDb}: import a signed signature update first`);
  }
  await stageRuleSet(ruleSet, stagedDb);

  let clamd: RunningClamd | ConnectedClamd;
  if (options.clamdSocket) {
    status(`connecting to clamd at ${options.clamdSocket}`);
    clamd = await connectClamd(options.clamdSocket);
  } else {
    status('starting clamd (loading signatures)');
    clamd = await startClamd({
      databaseDir: stagedDb,
      workDir: join(workDir, 'clamd'),
      limits: limitsFromPolicy(options.policy),
      disableCache: options.disableCache ?? false,
      // clamd watches a session with ReadTimeout even while it scans: keep it above MaxScanTime,
      // so a slow file ends as that limit (this file blocked), not as a dropped session.
      settings: { readTimeout: options.policy.clamav.maxScanSeconds + 60 },
      client: { idleTimeoutMs: options.policy.clamav.idleTimeoutSeconds * 1000, scanTimeoutMs: (options.policy.clamav.maxScanSeconds + 30) * 1000 },
    });
  }
  let spool: SpoolScanner | null = null;
  const stop = async (): Promise<void> => {
    spool?.close();
    if ('stop' in clamd) await clamd.stop();
  };
  // Our own clamd reads the kiosk's spool files; a clamd started by someone else gets INSTREAM,
  // as it may not be able to read (or even see) the kiosk's folders.
  const client: ClamdClient = clamd.client;
  const scanBytes = (chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ScanResult> =>
    spool ? spool.scan(chunks, signal) : client.scanStream(chunks, signal);

  let inspection: Inspection;
  try {
    if ('stop' in clamd && options.clamdTransport !== 'instream') spool = await SpoolScanner.create(join(workDir, 'spool'), client);
    status('self-test: the sandboxed archive extractor');
    const folder = await InspectionFolder.create(join(workDir, 'inspect'));
    const extractor = createExtractor();
    await proveExtractor(extractor, () => folder.create()).catch((error: unknown) => {
      throw new EngineError('ENGINE_NOT_READY', error instanceof ExtractorError ? error.message : `the archive extractor failed its start-up check: ${String(error)}`, { cause: error });
    });
    inspection = { extractor, folder };
    status('self-test: EICAR and the YARA canary through clamd');
    const eicar = await scanBytes(oneChunk(EICAR));
    if (eicar.status !== 'found' || classifyClamdSignature(eicar.signature) !== 'MALWARE') {
      throw new EngineError('ENGINE_NOT_READY', `ClamAV did not detect the EICAR test file (answer: ${JSON.stringify(eicar)}): its signatures are not loaded`);
    }
    const canary = await scanBytes(oneChunk(canarySample()));
    if (canary.status !== 'found' || canary.signature !== ruleSet.canary.signature) {
      throw new EngineError('ENGINE_NOT_READY', `the YARA canary rule did not fire through clamd (answer: ${JSON.stringify(canary)}): the rules are not live`);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const scanner: StreamScanner = {
    engines: ['clamav', 'yara'],
    async scanStream(chunks, signal): Promise<StreamScanResult> {
      const result = await scanBytes(chunks, signal);
      if (result.status === 'clean') return result;
      return { status: 'found', signature: result.signature, reason: classifyClamdSignature(result.signature) };
    },
  };
  return {
    scanner,
    ruleSet,
    databaseNote,
    clamd,
    inspection,
    info: {
      clamav: {
        version: `ClamAV ${clamd.version.engine}`,
        databaseVersion: clamd.version.databaseVersion === null ? null : String(clamd.version.databaseVersion),
        databaseTime: databaseTime(clamd.version.databaseTime),
      },
      yara: { engine: `ClamAV ${clamd.version.engine} YARA`, ruleSetDigest: ruleSet.digest, ruleCount: ruleSet.ruleCount },
    },
    classifyScannerError(error: unknown): ScannerFailure | null {
      if (!(error instanceof ScannerError)) return null;
      switch (error.code) {
        case 'SCANNER_STREAM_TOO_LONG':
          return null; // this file only: it is blocked with SCAN_ERROR
        case 'SCAN_ABORTED':
          return { code: 'SCAN_ABORTED', detail: error.message };
        case 'SCANNER_UNAVAILABLE':
        case 'SCANNER_TIMEOUT':
        case 'SCANNER_PROTOCOL':
          return { code: error.code, detail: error.message };
        default:
          return { code: 'SCANNER_ERROR', detail: `${error.code}: ${error.message}` };
      }
    },
    stop,
  };
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  await Promise.resolve();
  yield bytes;
}

/**
 * Engines kept between scans (the station): started once for a given
 * configuration, checked with PING before each reuse, and dropped after a
 * scanner failure so the next drive gets freshly started, self-tested engines.
 */
export interface EngineCache {
  get(options: Omit<EngineOptions, 'workDir'>): Promise<Engines>;
  /** Stops and forgets the current engines (after a failure, or at shutdown). */
  invalidate(): Promise<void>;
}

export function createEngineCache(workDir: string): EngineCache {
  let current: Promise<Engines> | null = null;
  let key = '';
  const invalidate = async (): Promise<void> => {
    const running = current;
    current = null;
    const engines = running ? await running.catch(() => null) : null;
    await engines?.stop();
  };
  return {
    async get(options) {
      // clamd's limits come from the policy, so a changed policy means new engines.
      const want = JSON.stringify([options.clamavDb, options.rulesDir, options.clamdSocket ?? null, options.policy, options.disableCache ?? false, options.clamdTransport ?? 'spool']);
      if (current && want === key) {
        const engines = await current.catch(() => null);
        if (engines && (await engines.clamd.client.ping().then(() => true, () => false))) return engines;
      }
      await invalidate();
      key = want;
      const starting = startEngines({ ...options, workDir });
      current = starting;
      starting.catch(() => { if (current === starting) current = null; });
      return starting;
    },
    invalidate,
  };
}
