/**
 * A small ClamAV signature database for tests, in ClamAV's own formats
 * (signatures.md: .hdb hash, .ndb body pattern, .yar YARA rule). No signatures
 * can be downloaded here, so tests and the demo use this one.
 *
 * Run: node kiosk/clamav/test-database.ts DIR [--daily VERSION]
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

/**
 * The EICAR anti-virus test file (68 bytes). Assembled at run time so that
 * this source file itself does not contain it.
 */
export const EICAR: Uint8Array = ascii(['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join(''));

/** Bytes that the .ndb body signature finds anywhere in any file. */
export const MALWARE_MARKER = 'PORTCULLIS-TEST-MALWARE';
/**
 * Bytes that the boot-code signature finds where boot code runs: starting in
 * the first 441 bytes of what is scanned (an MBR's code area, bytes 0-439, or a
 * volume boot sector's). EICAR cannot serve there: it is recognised by the MD5
 * and size of the whole 68-byte file (.hdb, as ClamAV's own Win.Test.EICAR_HDB-1
 * is), which no 512-byte sector is; the kiosk scans boot regions as raw sectors.
 */
export const BOOT_CODE_MARKER = 'PORTCULLIS-TEST-BOOTCODE';
/** Bytes that the test YARA rule finds anywhere in any file. */
export const YARA_MARKER = 'PORTCULLIS-TEST-YARA';

/** Signature names as clamd reports them (ClamAV appends ".UNOFFICIAL" outside signed databases). */
export const TEST_SIGNATURES = {
  eicar: 'Portcullis.Test.Eicar.UNOFFICIAL',
  marker: 'Portcullis.Test.Marker.UNOFFICIAL',
  bootCode: 'Portcullis.Test.BootCode.UNOFFICIAL',
  // ClamAV names YARA matches "YARA.<rule identifier>".
  yara: 'YARA.PortcullisTestRule.UNOFFICIAL',
} as const;

export interface TestDatabaseOptions {
  /**
   * Pack the signatures into `daily.cud` (ClamAV's unsigned database
   * container) with this version and build time, so that clamd's VERSION
   * answer carries a database version and time (the YARA rule stays a loose
   * file: clamd does not load YARA rules from containers). Loose files otherwise.
   */
  daily?: { version: number; builtAt: Date };
}

export interface TestDatabase {
  /** Absolute paths of the files written. */
  files: string[];
  /** What the database detects, for people. */
  description: string;
}

const BASE = 'portcullis-test';

/** The database files, by file name. Pure. */
export function renderTestSignatures(base = BASE): Map<string, Uint8Array> {
  const md5 = createHash('md5').update(EICAR).digest('hex');
  const hex = Buffer.from(MALWARE_MARKER, 'ascii').toString('hex');
  const boot = Buffer.from(BOOT_CODE_MARKER, 'ascii').toString('hex');
  return new Map([
    // .hdb: MD5:FileSize:MalwareName
    [`${base}.hdb`, ascii(`${md5}:${EICAR.byteLength}:${stripSuffix(TEST_SIGNATURES.eicar)}\n`)],
    // .ndb: MalwareName:TargetType:Offset:HexSignature (target 0 = any file, offset * = anywhere)
    [`${base}.ndb`, ascii(`${stripSuffix(TEST_SIGNATURES.marker)}:0:*:${hex}\n`)],
    // The boot-code pattern in a file of its own (one signature per file); offset "0,440": it starts anywhere from byte 0 to byte 440.
    [`${base}-boot.ndb`, ascii(`${stripSuffix(TEST_SIGNATURES.bootCode)}:0:0,440:${boot}\n`)],
    // .yar: a YARA rule; clamd reports a match as "YARA.<identifier>"
    [`${base}.yar`, ascii(`rule PortcullisTestRule\n{\n  strings:\n    $marker = "${YARA_MARKER}"\n  condition:\n    $marker\n}\n`)],
  ]);
}

export const TEST_DATABASE_DESCRIPTION = [
  'Portcullis test signatures (not for production):',
  `- ${TEST_SIGNATURES.eicar}: the 68-byte EICAR test file, by MD5 and size (.hdb)`,
  `- ${TEST_SIGNATURES.marker}: the bytes "${MALWARE_MARKER}" anywhere in a file (.ndb)`,
  `- ${TEST_SIGNATURES.bootCode}: the bytes "${BOOT_CODE_MARKER}" starting in the first 441 bytes, where an MBR or boot sector keeps its code (.ndb)`,
  `- ${TEST_SIGNATURES.yara}: the bytes "${YARA_MARKER}" anywhere in a file (YARA rule, .yar)`,
].join('\n');

/** Writes the test database into `dir` (created if missing). */
export async function writeTestDatabase(dir: string, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  let files = renderTestSignatures();
  if (options.daily !== undefined) {
    const { version, builtAt } = options.daily;
    const packable = new Map([...renderTestSignatures('daily')].filter(([name]) => !name.endsWith('.yar')));
    // clamd reads YARA rules only from loose files: inside a .cud/.cvd it loads an empty rule set.
    const loose = [...files].filter(([name]) => name.endsWith('.yar'));
    files = new Map([['daily.cud', renderUnsignedDatabase('daily', packable, version, builtAt)], ...loose]);
  }
  const written: string[] = [];
  for (const [name, bytes] of files) {
    const path = join(root, name);
    await writeFile(path, bytes);
    written.push(path);
  }
  const packed = options.daily === undefined ? '' : `\nPacked as daily.cud, version ${options.daily.version}.`;
  return { files: written, description: TEST_DATABASE_DESCRIPTION + packed };
}

/**
 * A ClamAV container database without a digital signature (.cud): a 512-byte
 * header "ClamAV-VDB:<build time>:<version>:<signatures>:<flevel>:<md5 of the
 * rest>:<dsig>:<builder>:<build time, Unix seconds>" padded with spaces,
 * followed by a gzip-compressed tar of the database files and a
 * "<name>.info" index (name:size:sha256 per file). Pure.
 */
export function renderUnsignedDatabase(
  name: string,
  files: ReadonlyMap<string, Uint8Array>,
  version: number,
  builtAt: Date,
): Uint8Array {
  if (!Number.isSafeInteger(version) || version < 1) throw new RangeError(`database version must be a positive integer, got ${version}`);
  const seconds = Math.floor(builtAt.getTime() / 1000);
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new RangeError('database build time must be a valid date after 1970');
  const signatures = [...files].reduce((count, [file, bytes]) => count + countSignatures(file, bytes), 0);
  const flevel = 1; // lowest functionality level: every ClamAV engine may load it
  const builder = 'portcullis';
  const fields = (md5: string, dsig: string): string =>
    ['ClamAV-VDB', formatBuildTime(builtAt), version, signatures, flevel, md5, dsig, builder, seconds].join(':');
  const info = [fields('X', 'X'), ...[...files].map(([file, bytes]) => `${file}:${bytes.byteLength}:${sha256(bytes)}`)].join('\n');
  const entries = new Map<string, Uint8Array>([
    ['COPYING', ascii('Portcullis test signatures, generated for tests; not for production use.\n')],
    [`${name}.info`, ascii(`${info}\n`)],
    ...files,
  ]);
  const body = gzipSync(renderTar(entries), { level: 9 });
  const header = fields(createHash('md5').update(body).digest('hex'), 'X');
  if (header.length > 512) throw new RangeError('database header longer than 512 bytes');
  return Buffer.concat([Buffer.from(header.padEnd(512, ' '), 'ascii'), body]);
}

// sigtool's build-time format: "%d %b %Y %H-%M %z", in UTC.
function formatBuildTime(date: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(date.getUTCDate())} ${months[date.getUTCMonth()] ?? ''} ${date.getUTCFullYear()} ${two(date.getUTCHours())}-${two(date.getUTCMinutes())} +0000`;
}

/** A POSIX ustar archive of regular files (mode 0644, owner 0, mtime 0). */
function renderTar(entries: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [name, data] of entries) {
    if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name longer than 100 bytes: ${name}`);
    const header = Buffer.alloc(512);
    const put = (offset: number, length: number, text: string): void => {
      header.write(text, offset, length, 'ascii');
    };
    const octal = (value: number, length: number): string => value.toString(8).padStart(length - 1, '0');
    put(0, 100, name);
    put(100, 8, octal(0o644, 8));
    put(108, 8, octal(0, 8));
    put(116, 8, octal(0, 8));
    put(124, 12, octal(data.byteLength, 12));
    put(136, 12, octal(0, 12));
    put(148, 8, '        '); // checksum field counts as spaces while summing
    put(156, 1, '0');
    put(257, 6, 'ustar');
    put(263, 2, '00');
    const checksum = header.reduce((sum, byte) => sum + byte, 0);
    put(148, 8, `${octal(checksum, 7)}\0 `);
    blocks.push(header, data, Buffer.alloc((512 - (data.byteLength % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // end of archive: two zero blocks
  return Buffer.concat(blocks);
}

// One signature per line in .hdb/.ndb files, one per rule in .yar files.
function countSignatures(file: string, bytes: Uint8Array): number {
  const pattern = file.endsWith('.yar') ? /^rule\s/ : /^[^#\s]/;
  return Buffer.from(bytes).toString('utf8').split('\n').filter((line) => pattern.test(line)).length;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function stripSuffix(name: string): string {
  return name.replace(/\.UNOFFICIAL$/, '');
}

async function main(argv: readonly string[]): Promise<number> {
  const [dir, flag, value] = argv;
  if (dir === undefined || (flag !== undefined && (flag !== '--daily' || !/^[1-9][0-9]{0,8}$/.test(value ?? '')))) {
    process.stderr.write('usage: node kiosk/clamav/test-database.ts DIR [--daily VERSION]\n');
    return 64;
  }
  const options: TestDatabaseOptions = flag === undefined ? {} : { daily: { version: Number(value), builtAt: new Date() } };
  const database = await writeTestDatabase(dir, options);
  process.stdout.write(`${database.description}\n${database.files.join('\n')}\n`);
  return 0;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
