/**
 * Starts the kiosk's scan engines and proves they work before any drive is
 * scanned: clamd from Debian with the ClamAV database and the YARA rules
 * staged side by side (one scan applies both, also inside archives; the only
 * YARA files clamd gets are the rule loader's), then a self-test through the
 * real socket: EICAR must be found (signatures loaded), the canary rule must
 * fire on its string, and every rule of the set must fire on its own probe
 * (yara/liveness.ts: all rules live, not only the canary). Anything else stops
 * start-up: a kiosk that cannot scan never says "clean".
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PortcullisError, type Predicate } from '../../manifest/index.ts';
import { classifyClamdSignature, type ClamdClient } from './clamav/client.ts';
import { ScannerError } from './clamav/errors.ts';
import type { ScanResult } from './clamav/protocol.ts';
import { SpoolScanner, spoolFolderProblem } from './clamav/spool.ts';
import { createExtractor, ExtractorError, proveExtractor } from './extractor.ts';
import { InspectionFolder } from './inspection-folder.ts';
import { startClamd, type ConnectedClamd, type RunningClamd } from './clamav/supervisor.ts';
import { EICAR, TEST_DATABASE_DESCRIPTION, writeTestDatabase } from './clamav/test-database.ts';
import { manifestTime } from '../core/build-statement.ts';
import { clamdFileLimit, type Policy } from '../core/policy.ts';
import type { Inspection, ScannerFailure, StreamScanner, StreamScanResult } from '../core/ports.ts';
import { canarySample } from './yara/canary.ts';
import { describeDeadRules, proveRulesLive } from './yara/liveness.ts';
import { loadRuleSet, stageRuleSet, type RuleSet } from './yara/rule-set.ts';
import { combineAnswers } from './yara-full/combine.ts';
import { startFullYara, type FullYaraEngine } from './yara-full/full-engine.ts';
import { TeeFiles } from './yara-full/tee-files.ts';


/**
 * CLAMAV_DB_UNCHECKED_RULES: the ClamAV database folder holds YARA files, which would reach clamd without the rule loader.
 * YARA_RULES_NOT_LIVE: a rule of the set did not fire on its probe through clamd.
 * SIGNATURES_OUTDATED: the databases are older than the policy allows (cli/scan-command.ts checks it).
 */
export type EngineErrorCode = 'ENGINE_NOT_READY' | 'CLAMAV_DB_MISSING' | 'CLAMAV_DB_UNCHECKED_RULES' | 'YARA_RULES_NOT_LIVE' | 'SIGNATURES_OUTDATED';
export class EngineError extends PortcullisError<EngineErrorCode> {}

export interface EngineOptions {
  /** ClamAV database folder; "test" generates the project's test database. */
  readonly clamavDb: string;
  readonly rulesDir: string;
  /** Kiosk-owned folder for clamd's config, socket, staged database and temp files. */
  readonly workDir: string;
  readonly policy: Policy;
  readonly disableCache?: boolean;
  /**
   * How file bytes reach the kiosk's own clamd: "spool" (default) writes them to a
   * kiosk-owned file clamd then SCANs; "instream" streams them over the socket.
   */
  readonly clamdTransport?: 'spool' | 'instream';
  readonly onStatus?: (line: string) => void;
  /** Where compiled YARA rule sets are kept by digest, so a restart does not recompile; default a private folder under the system's temporary folder. */
  readonly yaraCacheDir?: string;
}

export interface Engines {
  readonly scanner: StreamScanner;
  readonly info: Predicate['engines'];
  readonly ruleSet: RuleSet;
  /** The full YARA engine: every rule (the project's and the site's) on every file's and member's bytes. */
  readonly fullYara: FullYaraEngine;
  readonly databaseNote: string | null; // set when the test database is in use
  readonly clamd: RunningClamd | ConnectedClamd;
  /** How the scan opens archives and compressed files: the sandboxed extractor, proven at start, and its private folder. */
  readonly inspection: Inspection;
  classifyScannerError(error: unknown): ScannerFailure | null;
  stop(): Promise<void>;
}

const DB_EXTENSIONS = /\.(cvd|cld|cud|hdb|hsb|hdu|hsu|mdb|msb|mdu|msu|ndb|ndu|ldb|ldu|idb|cdb|crb|fp|sfp|ign|ign2|ftm|pdb|gdb|wdb|cfg|cat|crtdb|info|pwdb)$/;
// libclamav loads these as YARA rules (any letter case). In clamd's folder only the rule loader's files may have them:
// one unchecked rule can leave every YARA rule loaded after it counted and dead (docs/yara-engine.md).
const YARA_FILE = /\.yara?$/i;

/**
 * Links (or copies) the signature files into the staging folder clamd reads.
 * A YARA file in the folder is refused before anything is staged: site rules
 * go through the rule loader (--rules). YARA inside a .cvd/.cld/.cud is not
 * loaded by libclamav 1.4 and makes it warn, which fails clamd's start.
 */
async function stageDatabase(from: string, to: string): Promise<number> {
  const entries = await readdir(from);
  const yara = entries.filter((n) => YARA_FILE.test(n));
  if (yara.length > 0) {
    throw new EngineError(
      'CLAMAV_DB_UNCHECKED_RULES',
      `the ClamAV database folder ${from} holds YARA rules (${yara.slice(0, 5).join(', ')}${yara.length > 5 ? ', ...' : ''}), which would reach clamd unchecked: ` +
        'move site rules into the kiosk\'s rules folder (--rules DIR), where they are compiled, checked against the ClamAV subset and proven live at every start',
    );
  }
  const names = entries.filter((n) => DB_EXTENSIONS.test(n) && !n.startsWith('.'));
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
  const spoolProblem = options.clamdTransport !== 'instream' ? spoolFolderProblem(join(workDir, 'spool')) : null;
  if (spoolProblem !== null) throw new ScannerError('SCANNER_CONFIG', `the work folder's spool ${spoolProblem}`);
  const stagedDb = join(workDir, 'db');
  await rm(stagedDb, { recursive: true, force: true });
  await mkdir(stagedDb, { recursive: true, mode: 0o755 });

  status(`compiling YARA rules in ${options.rulesDir}`);
  const ruleSet = await loadRuleSet(options.rulesDir, { tmpDir: workDir });

  let databaseNote: string | null = null;
  if (options.clamavDb === 'test') {
    // Generated at every start, so its build time is now: the station's age check sees a fresh database.
    const test = await writeTestDatabase(stagedDb, { daily: { version: 1, builtAt: new Date() } });
    // The test database's loose YARA rule serves tests of a bare clamd; the kiosk's clamd gets the rule loader's files only.
    for (const file of test.files.filter((f) => YARA_FILE.test(f))) await rm(file);
    const description = TEST_DATABASE_DESCRIPTION.split('\n').filter((line) => !line.includes('YARA')).join('\n');
    databaseNote = `ClamAV is using the Portcullis TEST database (EICAR and test patterns only), not real signatures.\n${description}`;
  } else {
    const count = await stageDatabase(options.clamavDb, stagedDb).catch((cause: unknown) => {
      if (cause instanceof EngineError) throw cause;
      throw new EngineError('CLAMAV_DB_MISSING', `cannot read the ClamAV database folder ${options.clamavDb}: ${(cause as Error).message}`, { cause });
    });
    if (count === 0) throw new EngineError('CLAMAV_DB_MISSING', `no ClamAV database files in ${options.clamavDb}: import a signed signature update first`);
  }
  await stageRuleSet(ruleSet, stagedDb);

  status('starting clamd (loading signatures)');
  // Fails (SCANNER_START_FAILED) on any libclamav error or warning while loading, quoting the lines.
  const clamd: RunningClamd | ConnectedClamd = await startClamd({
    databaseDir: stagedDb,
    workDir: join(workDir, 'clamd'),
    limits: limitsFromPolicy(options.policy),
    disableCache: options.disableCache ?? false,
    // clamd watches a session with ReadTimeout even while it scans: keep it above MaxScanTime,
    // so a slow file ends as that limit (this file blocked), not as a dropped session.
    settings: { readTimeout: options.policy.clamav.maxScanSeconds + 60 },
    client: { idleTimeoutMs: options.policy.clamav.idleTimeoutSeconds * 1000, scanTimeoutMs: (options.policy.clamav.maxScanSeconds + 30) * 1000 },
  });
  let spool: SpoolScanner | null = null;
  let fullYara: FullYaraEngine | null = null;
  let tee: TeeFiles | null = null;
  const stop = async (): Promise<void> => {
    spool?.close();
    fullYara?.stop();
    if ('stop' in clamd) await clamd.stop();
  };
  // clamd reads the kiosk's spool files, or gets the bytes by INSTREAM when asked (clamdTransport).
  const client: ClamdClient = clamd.client;
  const scanBytes = (chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ScanResult> =>
    spool ? spool.scan(chunks, signal) : client.scanStream(chunks, signal);
  // Both engines on the same bytes: the spool file clamd scans, or (INSTREAM) a private copy written as the bytes stream by.
  const scanBoth = async (chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<StreamScanResult> => {
    const full = fullYara!;
    if (spool) {
      const both = await spool.scanWith(chunks, signal, (path) => full.scanPath(path));
      return combineAnswers(both.clamd, both.alongside!, ruleSet);
    }
    const both = await tee!.scanWith(chunks, (teed) => client.scanStream(teed, signal), (path) => full.scanPath(path));
    return combineAnswers(both.first, both.second, ruleSet);
  };

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
    // The full YARA engine reads the spool (or its own copies under INSTREAM) in its sandbox.
    if (!spool) tee = await TeeFiles.create(join(workDir, 'yara-spool'));
    fullYara = await startFullYara({
      rulesDir: options.rulesDir,
      workDir: join(workDir, 'yara'),
      ...(options.yaraCacheDir !== undefined ? { cacheDir: options.yaraCacheDir } : { cacheDir: join(tmpdir(), `portcullis-yara-cache-${process.getuid?.() ?? 0}`) }),
      readable: [spool?.dir ?? tee!.dir],
      timeoutSeconds: options.policy.clamav.maxScanSeconds,
      onStatus: status,
    });
    status('self-test: EICAR and the YARA canary through clamd');
    const eicar = await scanBytes(oneChunk(EICAR));
    if (eicar.status !== 'found' || classifyClamdSignature(eicar.signature) !== 'MALWARE') {
      throw new EngineError('ENGINE_NOT_READY', `ClamAV did not detect the EICAR test file (answer: ${JSON.stringify(eicar)}): its signatures are not loaded`);
    }
    const canary = await scanBytes(oneChunk(canarySample()));
    if (canary.status !== 'found' || canary.signature !== ruleSet.canary.signature) {
      throw new EngineError('ENGINE_NOT_READY', `the YARA canary rule did not fire through clamd (answer: ${JSON.stringify(canary)}): the rules are not live`);
    }
    // Every rule, not only the canary: one probe sample per rule, scanned the way drives are.
    const probes = ruleSet.staged.probes;
    status(`self-test: ${probes.length} YARA rule probes through clamd`);
    const live = await proveRulesLive(probes, (sample) => scanBytes(oneChunk(sample)));
    if (live.dead.length > 0 || live.proven.length !== ruleSet.ruleCount) {
      throw new EngineError(
        'YARA_RULES_NOT_LIVE',
        `clamd loaded the YARA rules but ${describeDeadRules(live.dead, probes.length)}; they would never match, so no drive is scanned (docs/yara-engine.md)`,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const scanner: StreamScanner = {
    engines: ['clamav', 'yara'],
    scanStream: scanBoth,
  };
  return {
    scanner,
    ruleSet,
    fullYara: fullYara,
    databaseNote,
    clamd,
    inspection,
    info: {
      clamav: {
        version: `ClamAV ${clamd.version.engine}`,
        databaseVersion: clamd.version.databaseVersion === null ? null : String(clamd.version.databaseVersion),
        databaseTime: databaseTime(clamd.version.databaseTime),
      },
      // Every rule of the set runs in libyara (proven evaluated at start); the project's also in clamd (each proven by its probe).
      yara: { engine: `${fullYara.engine} + ClamAV ${clamd.version.engine} YARA`, ruleSetDigest: fullYara.digest, ruleCount: fullYara.ruleCount },
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
      const want = JSON.stringify([options.clamavDb, options.rulesDir, options.policy, options.disableCache ?? false, options.clamdTransport ?? 'spool']);
      if (current && want === key) {
        const engines = await current.catch(() => null);
        if (engines && engines.fullYara.alive() && (await engines.clamd.client.ping().then(() => true, () => false))) return engines;
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
