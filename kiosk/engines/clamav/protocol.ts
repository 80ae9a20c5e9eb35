/**
 * clamd's wire protocol, without I/O: command bytes, INSTREAM framing and the
 * strict parsing of answers. Reference: clamd(8), "COMMANDS" (z-prefixed
 * commands end with a NUL byte and are answered with one NUL-terminated line).
 */
import { ScannerError } from './errors.ts';

/** A z-prefixed command: `z<NAME>\0`. */
export function encodeCommand(name: 'PING' | 'VERSION' | 'INSTREAM'): Uint8Array {
  return new TextEncoder().encode(`z${name}\0`);
}

// A path clamd may be asked to SCAN: absolute, printable ASCII without spaces, so that
// its echo in the answer is unambiguous. The kiosk only ever names its own spool files.
const SCAN_PATH = /^\/[\x21-\x7e]{1,4000}$/;

/** Whether clamd may be asked to SCAN `path` (see SCAN_PATH); folders are checked with room for a file name. */
export function isScanPath(path: string): boolean {
  return SCAN_PATH.test(path);
}

/** `zSCAN <path>\0`, for a path the kiosk made itself (see SCAN_PATH). */
export function encodeScanCommand(path: string): Uint8Array {
  if (!SCAN_PATH.test(path)) {
    throw new ScannerError('SCANNER_CONFIG', `cannot ask clamd to SCAN ${JSON.stringify(path)}: only absolute printable ASCII paths without spaces`);
  }
  return new TextEncoder().encode(`zSCAN ${path}\0`);
}

/** clamd INSTREAM: each chunk is preceded by its length as a 4-byte big-endian unsigned integer. */
export function encodeChunkHeader(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 0xffff_ffff) {
    throw new RangeError(`INSTREAM chunk length ${length} is not a 32-bit unsigned integer`);
  }
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, length, false);
  return header;
}

/** clamd INSTREAM: a zero-length chunk ends the stream. */
export const END_OF_STREAM: Uint8Array = encodeChunkHeader(0);

export type ScanResult = { status: 'clean' } | { status: 'found'; signature: string };

export interface ClamdVersion {
  /** Engine version, e.g. "1.4.6". */
  engine: string;
  /** Version of the daily database (daily.cvd/.cld/.cud); null when clamd loaded none. */
  databaseVersion: number | null;
  /** Build time of that database as clamd prints it (ctime format, clamd's local time zone); null when absent. */
  databaseTime: string | null;
  /** The answer exactly as clamd sent it, without the NUL terminator. */
  raw: string;
}

// A signature name: printable ASCII without spaces, as in ClamAV's .hdb/.ndb/.ldb name fields.
const SIGNATURE = /^[\x21-\x7e]{1,256}$/;
const SCAN_FOUND = /^stream: (\S+) FOUND$/;
const STREAM_TOO_LONG = 'INSTREAM size limit exceeded. ERROR';
// clamd VERSION: "ClamAV <engine>" or "ClamAV <engine>/<daily version>/<daily build time>".
const VERSION = /^ClamAV ([0-9A-Za-z.+~_-]{1,64})(?:\/([0-9]{1,10})\/([\x20-\x7e]{1,64}))?$/;

/** Printable form of an untrusted answer for error messages: escaped and truncated. */
export function quoteAnswer(answer: string): string {
  const shown = answer.length > 120 ? `${answer.slice(0, 120)}...` : answer;
  return JSON.stringify(shown);
}

/**
 * Parses the answer to INSTREAM. Only exactly `stream: OK` is clean and only
 * exactly `stream: <NAME> FOUND` is a detection; `... ERROR` raises
 * SCANNER_ERROR (or SCANNER_STREAM_TOO_LONG) and anything else SCANNER_PROTOCOL.
 */
export function parseScanAnswer(answer: string): ScanResult {
  if (answer === 'stream: OK') return { status: 'clean' };
  const found = SCAN_FOUND.exec(answer);
  const signature = found?.[1];
  if (signature !== undefined && SIGNATURE.test(signature)) return { status: 'found', signature };
  throw answerError('INSTREAM', answer);
}

/**
 * Parses the answer to `SCAN <path>` of one file. Only exactly `<path>: OK` is
 * clean and only exactly `<path>: <NAME> FOUND` is a detection; an answer naming
 * another path, `... ERROR` (such as a file clamd cannot open) or anything else
 * is an error.
 */
export function parseFileScanAnswer(path: string, answer: string): ScanResult {
  const prefix = `${path}: `;
  if (answer.startsWith(prefix)) {
    const rest = answer.slice(prefix.length);
    if (rest === 'OK') return { status: 'clean' };
    const found = /^(\S+) FOUND$/.exec(rest)?.[1];
    if (found !== undefined && SIGNATURE.test(found)) return { status: 'found', signature: found };
  }
  throw answerError('SCAN', answer);
}

/** Parses the answer to PING: exactly `PONG`. */
export function parsePingAnswer(answer: string): void {
  if (answer !== 'PONG') throw answerError('PING', answer);
}

/** Parses the answer to VERSION (see `ClamdVersion`). */
export function parseVersionAnswer(answer: string): ClamdVersion {
  const match = VERSION.exec(answer);
  if (match === null) throw answerError('VERSION', answer);
  const [, engine = '', dbVersion, dbTime] = match;
  return {
    engine,
    databaseVersion: dbVersion === undefined ? null : Number(dbVersion),
    databaseTime: dbTime ?? null,
    raw: answer,
  };
}

/** The error for an answer that is not the expected one: clamd's own ERROR, or a protocol violation. */
export function answerError(command: string, answer: string): ScannerError {
  if (answer === STREAM_TOO_LONG) {
    return new ScannerError(
      'SCANNER_STREAM_TOO_LONG',
      `clamd refused the ${command} stream as longer than its StreamMaxLength: file not scanned, block it`,
    );
  }
  if (answer.endsWith(' ERROR')) {
    return new ScannerError('SCANNER_ERROR', `clamd answered ${command} with an error ${quoteAnswer(answer)}: file not scanned, block it`);
  }
  return new ScannerError(
    'SCANNER_PROTOCOL',
    `clamd answered ${command} with ${quoteAnswer(answer)}, which is not a known answer: file not scanned, block it`,
  );
}

/** How the kiosk reports a clamd detection. */
export type ClamdReason = 'LIMIT_EXCEEDED' | 'ENCRYPTED' | 'YARA_MATCH' | 'MALWARE' | 'MACRO' | 'NOT_INSPECTED';

/**
 * Maps a clamd signature name to the kiosk's reason code. ClamAV names its
 * limit alerts `Heuristics.Limits.Exceeded.<Limit>` (AlertExceedsMax), its
 * encryption alerts `Heuristics.Encrypted.<Format>` (AlertEncrypted*), and
 * matches of YARA rules loaded from the database `YARA.<rule>` (plus
 * `.UNOFFICIAL` outside signed .cvd files).
 */
export function classifyClamdSignature(name: string): ClamdReason {
  if (name.startsWith('Heuristics.Limits.Exceeded.')) return 'LIMIT_EXCEEDED';
  if (name.startsWith('Heuristics.Encrypted.')) return 'ENCRYPTED';
  // AlertOLE2Macros: reported only when no signature matched (HeuristicScanPrecedence no), so the rest was scanned.
  if (name.startsWith('Heuristics.OLE2.ContainsMacros')) return 'MACRO'; // e.g. Heuristics.OLE2.ContainsMacros.VBA
  // AlertBrokenExecutables: ClamAV could not parse the program, so it could not look inside it.
  if (name.startsWith('Heuristics.Broken.')) return 'NOT_INSPECTED';
  if (name.startsWith('YARA.')) return 'YARA_MATCH';
  return 'MALWARE';
}
