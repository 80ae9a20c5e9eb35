/**
 * Renders the kiosk's own clamd.conf (clamd.conf(5), ClamAV 1.4) from a typed
 * options object. Pure: no I/O. Every limit is written explicitly and none may
 * be 0, which clamd reads as "unlimited".
 */
import { ScannerError } from './errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** clamd's scan limits ("Limits" in clamd.conf(5)). */
export interface ClamdLimits {
  maxRecursion: number; // levels of nested containers (archive in archive ...)
  maxFiles: number; // files extracted from one scanned input
  maxScanSize: number; // bytes extracted and scanned from one input, in total
  maxFileSize: number; // bytes, per input and per extracted file; also clamd's StreamMaxLength
  maxScanTime: number; // ms per input
  maxEmbeddedPE: number; // bytes: larger files skip the embedded-PE search
  maxHTMLNormalize: number; // bytes
  maxHTMLNoTags: number; // bytes
  maxScriptNormalize: number; // bytes
  maxZipTypeRcg: number; // bytes
  maxPartitions: number; // partitions of a disk image
  maxIconsPE: number; // icons of a PE file
  maxRecHWP3: number; // recursive calls while parsing HWP3
  pcreMatchLimit: number; // PCRE match calls per match
  pcreRecMatchLimit: number; // PCRE recursive match calls per match
  pcreMaxFileSize: number; // bytes: larger files skip PCRE sub-signatures
}

export const DEFAULT_CLAMD_LIMITS: ClamdLimits = {
  maxRecursion: 10, // levels (upstream 17)
  maxFiles: 10_000, // files
  maxScanSize: 1024 * MiB, // bytes
  maxFileSize: 512 * MiB, // bytes
  maxScanTime: 120_000, // ms
  maxEmbeddedPE: 40 * MiB, // bytes
  maxHTMLNormalize: 40 * MiB, // bytes
  maxHTMLNoTags: 8 * MiB, // bytes
  maxScriptNormalize: 20 * MiB, // bytes
  maxZipTypeRcg: 1 * MiB, // bytes
  maxPartitions: 50, // partitions
  maxIconsPE: 100, // icons
  maxRecHWP3: 16, // calls
  pcreMatchLimit: 100_000, // calls
  pcreRecMatchLimit: 2_000, // calls
  pcreMaxFileSize: 512 * MiB, // bytes: as maxFileSize, so no input skips PCRE sub-signatures
};

export interface ClamdConfig {
  socketPath: string; // absolute; clamd's only listener
  socketMode: '600' | '660'; // octal permissions of the socket
  temporaryDirectory: string; // absolute; clamd writes each INSTREAM here before scanning
  databaseDirectory: string; // absolute
  logFile: string; // absolute
  pidFile: string | null; // absolute, or none
  /**
   * Account clamd switches to when started as root (ignored when not root), before it reads
   * DatabaseDirectory, uses TemporaryDirectory and binds LocalSocket; null keeps the starting user.
   */
  user: string | null;
  limits: ClamdLimits;
  disableCache: boolean; // true: no result cache (benchmarks; every scan does the full work)
  maxThreads: number; // concurrent scans
  maxQueue: number; // queued plus running scans
  readTimeout: number; // s: clamd waits this long for the next INSTREAM chunk
  commandReadTimeout: number; // s: clamd waits this long for a command after connect
  sendBufTimeout: number; // ms: clamd waits this long on a full send buffer
  idleTimeout: number; // s: an idle worker thread ends after this
  logFileMaxSize: number; // bytes before clamd rotates its log
  officialDatabaseOnly: boolean; // true: load only signed .cvd/.cld signatures
}

/** Paths are required; everything else has a default. */
export type ClamdConfigOptions = Pick<ClamdConfig, 'socketPath' | 'temporaryDirectory' | 'databaseDirectory' | 'logFile'> &
  Partial<Omit<ClamdConfig, 'socketPath' | 'temporaryDirectory' | 'databaseDirectory' | 'logFile' | 'limits'>> & {
    limits?: Partial<ClamdLimits>;
  };

export const DEFAULT_CLAMD_SETTINGS = {
  socketMode: '600',
  pidFile: null,
  user: null,
  disableCache: false,
  maxThreads: 8, // scans
  maxQueue: 32, // scans
  readTimeout: 120, // s
  commandReadTimeout: 30, // s
  sendBufTimeout: 500, // ms
  idleTimeout: 30, // s
  logFileMaxSize: 16 * MiB, // bytes
  officialDatabaseOnly: false,
} as const satisfies Omit<ClamdConfig, 'socketPath' | 'temporaryDirectory' | 'databaseDirectory' | 'logFile' | 'limits'>;

// Upper bounds clamd 1.4 accepts without clamping (it cannot scan files over 2 GiB).
const MAX_FILE_SIZE = 2047 * MiB; // bytes
const MAX_SCAN_SIZE = 4095 * MiB; // bytes
// sockaddr_un.sun_path holds 108 bytes including the NUL.
const MAX_SOCKET_PATH = 107; // bytes

type Range = readonly [min: number, max: number];
const LIMIT_RANGES: Record<keyof ClamdLimits, Range> = {
  maxRecursion: [1, 64],
  maxFiles: [1, 1_000_000],
  maxScanSize: [1, MAX_SCAN_SIZE],
  maxFileSize: [1, MAX_FILE_SIZE],
  maxScanTime: [1_000, 3_600_000],
  maxEmbeddedPE: [1, MAX_FILE_SIZE],
  maxHTMLNormalize: [1, MAX_FILE_SIZE],
  maxHTMLNoTags: [1, MAX_FILE_SIZE],
  maxScriptNormalize: [1, MAX_FILE_SIZE],
  maxZipTypeRcg: [1, MAX_FILE_SIZE],
  maxPartitions: [1, 10_000],
  maxIconsPE: [1, 100_000],
  maxRecHWP3: [1, 1_000],
  pcreMatchLimit: [1, 100_000_000],
  pcreRecMatchLimit: [1, 100_000_000],
  pcreMaxFileSize: [1, MAX_FILE_SIZE],
};

const SETTING_RANGES = {
  maxThreads: [1, 256],
  maxQueue: [1, 4096],
  readTimeout: [1, 3_700], // s: the kiosk sets MaxScanTime (up to 3 600 s) plus a margin
  commandReadTimeout: [1, 600],
  sendBufTimeout: [1, 60_000],
  idleTimeout: [1, 3_600],
  logFileMaxSize: [MiB, 1024 * MiB],
} as const satisfies Record<string, Range>;

/** Merges defaults into `options` and validates the result; throws SCANNER_CONFIG listing every problem by dot-path. */
export function resolveClamdConfig(options: ClamdConfigOptions): ClamdConfig {
  const config: ClamdConfig = {
    ...DEFAULT_CLAMD_SETTINGS,
    ...definedOnly(options),
    socketPath: options.socketPath,
    temporaryDirectory: options.temporaryDirectory,
    databaseDirectory: options.databaseDirectory,
    logFile: options.logFile,
    limits: { ...DEFAULT_CLAMD_LIMITS, ...definedOnly(options.limits ?? {}) },
  };
  const problems: string[] = [];
  for (const key of ['socketPath', 'temporaryDirectory', 'databaseDirectory', 'logFile'] as const) {
    checkPath(problems, key, config[key]);
  }
  if (config.pidFile !== null) checkPath(problems, 'pidFile', config.pidFile);
  if (typeof config.socketPath === 'string' && Buffer.byteLength(config.socketPath) > MAX_SOCKET_PATH) {
    problems.push(`socketPath: at most ${MAX_SOCKET_PATH} bytes (Unix socket address), got ${Buffer.byteLength(config.socketPath)}`);
  }
  if (config.socketMode !== '600' && config.socketMode !== '660') {
    problems.push(`socketMode: expected "600" or "660", got ${JSON.stringify(config.socketMode)}`);
  }
  if (config.user !== null && (typeof config.user !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(config.user))) {
    problems.push(`user: expected a POSIX user name or null, got ${JSON.stringify(config.user)}`);
  }
  for (const key of ['disableCache', 'officialDatabaseOnly'] as const) {
    if (typeof config[key] !== 'boolean') problems.push(`${key}: expected true or false, got ${JSON.stringify(config[key])}`);
  }
  for (const [key, range] of Object.entries(SETTING_RANGES)) {
    checkInteger(problems, key, config[key as keyof typeof SETTING_RANGES], range);
  }
  for (const [key, range] of Object.entries(LIMIT_RANGES)) {
    checkInteger(problems, `limits.${key}`, config.limits[key as keyof ClamdLimits], range);
  }
  const { limits } = config;
  if (Number.isInteger(limits.maxFileSize) && Number.isInteger(limits.maxScanSize) && limits.maxFileSize > limits.maxScanSize) {
    problems.push(`limits.maxFileSize: must not exceed limits.maxScanSize (${limits.maxScanSize}), got ${limits.maxFileSize}`);
  }
  if (Number.isInteger(config.maxQueue) && Number.isInteger(config.maxThreads) && config.maxQueue < config.maxThreads) {
    problems.push(`maxQueue: must be at least maxThreads (${config.maxThreads}), got ${config.maxQueue}`);
  }
  if (problems.length > 0) {
    throw new ScannerError('SCANNER_CONFIG', `invalid clamd configuration: ${problems.join('; ')}`);
  }
  return config;
}

/** clamd.conf text for `options` (defaults merged, validated). */
export function renderClamdConfig(options: ClamdConfigOptions): string {
  const c = resolveClamdConfig(options);
  const l = c.limits;
  const yes = (value: boolean): string => (value ? 'yes' : 'no');
  const lines: string[] = [
    '# clamd.conf generated by Portcullis (kiosk/clamav/config.ts); regenerated on every start, do not edit.',
    '# clamd.conf(5) takes no trailing comments: units are given on the line above each value.',
    '',
    '# Listener: one Unix socket; no TCPSocket/TCPAddr lines, so clamd opens no network listener.',
    `LocalSocket ${c.socketPath}`,
    `LocalSocketMode ${c.socketMode}`,
    'FixStaleSocket yes',
    '',
    '# Process: stays in the foreground as the supervisor\'s child.',
    'Foreground yes',
    ...(c.user === null
      ? ['# No User line: clamd keeps the account that started it.']
      : [
          '# Started as root, clamd opens LogFile, then switches to this account before loading databases and binding LocalSocket; ignored when not root.',
          `User ${c.user}`,
        ]),
    ...(c.pidFile === null ? [] : [`PidFile ${c.pidFile}`]),
    `TemporaryDirectory ${c.temporaryDirectory}`,
    `DatabaseDirectory ${c.databaseDirectory}`,
    `OfficialDatabaseOnly ${yes(c.officialDatabaseOnly)}`,
    '# Database reloads only on restart, so the versions in a manifest hold for the whole session.',
    'SelfCheck 0',
    'ConcurrentDatabaseReload no',
    'ExitOnOOM yes',
    '',
    '# Logging: own file in the work directory, no syslog.',
    `LogFile ${c.logFile}`,
    'LogFileUnlock no',
    '# bytes',
    `LogFileMaxSize ${c.logFileMaxSize}`,
    'LogRotate yes',
    'LogTime yes',
    'LogClean no',
    'LogVerbose no',
    'LogSyslog no',
    '# Answers stay "stream: <NAME> FOUND" (no hash and size appended): the client parses them strictly.',
    'ExtendedDetectionInfo no',
    '',
    '# Connections and threads.',
    '# scans',
    `MaxThreads ${c.maxThreads}`,
    '# scans',
    `MaxQueue ${c.maxQueue}`,
    '# s',
    `ReadTimeout ${c.readTimeout}`,
    '# s',
    `CommandReadTimeout ${c.commandReadTimeout}`,
    '# ms',
    `SendBufTimeout ${c.sendBufTimeout}`,
    '# s',
    `IdleTimeout ${c.idleTimeout}`,
    'AllowAllMatchScan no',
    'FollowDirectorySymlinks no',
    'FollowFileSymlinks no',
    '',
    '# Cache of clean results by MD5: disabled for benchmarks.',
    `DisableCache ${yes(c.disableCache)}`,
    '',
    '# Formats: all parsers on.',
    'ScanArchive yes',
    'ScanPE yes',
    'ScanELF yes',
    'ScanOLE2 yes',
    'ScanPDF yes',
    'ScanSWF yes',
    'ScanXMLDOCS yes',
    'ScanHWP3 yes',
    'ScanOneNote yes',
    'ScanHTML yes',
    'ScanMail yes',
    'ScanImage yes',
    'Bytecode yes',
    'BytecodeSecurity TrustSigned',
    'BytecodeUnsigned no',
    '',
    '# Alerts: limits and encryption are detections ("Heuristics.Limits.Exceeded.*", "Heuristics.Encrypted.*"), never clean.',
    'HeuristicAlerts yes',
    'HeuristicScanPrecedence no',
    'AlertExceedsMax yes',
    'AlertEncrypted yes',
    'AlertEncryptedArchive yes',
    'AlertEncryptedDoc yes',
    '# Office macros are a policy matter (they pass only with an allowlisted hash): "Heuristics.OLE2.ContainsMacros".',
    'AlertOLE2Macros yes',
    '# A program ClamAV cannot parse was not looked into: "Heuristics.Broken.Executable".',
    'AlertBrokenExecutables yes',
    '',
    '# Limits. None is 0 (unlimited). StreamMaxLength equals MaxFileSize: a longer stream is refused, never cut.',
    '# levels',
    `MaxRecursion ${l.maxRecursion}`,
    '# files',
    `MaxFiles ${l.maxFiles}`,
    '# bytes',
    `MaxScanSize ${l.maxScanSize}`,
    '# bytes',
    `MaxFileSize ${l.maxFileSize}`,
    '# bytes',
    `StreamMaxLength ${l.maxFileSize}`,
    '# ms',
    `MaxScanTime ${l.maxScanTime}`,
    '# bytes',
    `MaxEmbeddedPE ${l.maxEmbeddedPE}`,
    '# bytes',
    `MaxHTMLNormalize ${l.maxHTMLNormalize}`,
    '# bytes',
    `MaxHTMLNoTags ${l.maxHTMLNoTags}`,
    '# bytes',
    `MaxScriptNormalize ${l.maxScriptNormalize}`,
    '# bytes',
    `MaxZipTypeRcg ${l.maxZipTypeRcg}`,
    '# partitions',
    `MaxPartitions ${l.maxPartitions}`,
    '# icons',
    `MaxIconsPE ${l.maxIconsPE}`,
    '# calls',
    `MaxRecHWP3 ${l.maxRecHWP3}`,
    '# calls',
    `PCREMatchLimit ${l.pcreMatchLimit}`,
    '# calls',
    `PCRERecMatchLimit ${l.pcreRecMatchLimit}`,
    '# bytes',
    `PCREMaxFileSize ${l.pcreMaxFileSize}`,
  ];
  return `${lines.join('\n')}\n`;
}

function checkPath(problems: string[], key: string, value: unknown): void {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    problems.push(`${key}: expected an absolute path, got ${JSON.stringify(value)}`);
  } else if (/[\x00-\x1f\x7f]/.test(value) || value.trim() !== value) {
    // A newline would start a new clamd.conf directive; edge whitespace is trimmed by clamd.
    problems.push(`${key}: must not contain control characters or leading/trailing spaces, got ${JSON.stringify(value)}`);
  }
}

function checkInteger(problems: string[], key: string, value: unknown, [min, max]: Range): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    problems.push(`${key}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
