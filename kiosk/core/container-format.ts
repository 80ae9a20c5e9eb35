/**
 * Which container a file's first bytes say it is: archives (many members)
 * and compression layers (one member). Pure. The kiosk opens a container
 * only by what its bytes are, never by its name: a zip named `.bin` is a zip.
 *
 * Magic numbers: PKWARE APPNOTE 6.3 (zip), POSIX.1-2001 ustar, 7-Zip's 7z
 * format, RAR 4/5, Microsoft CAB, RFC 1952 (gzip), bzip2, the .xz file
 * format 1.1, RFC 8878 (zstd), the LZ4 frame format 1.6, LZMA-alone (the
 * 13-byte header of `xz --format=lzma`), compress(1), cpio, ar, ISO 9660.
 */

/** Archive formats: members with names. */
export type ArchiveFormat = 'zip' | 'tar' | '7z' | 'rar' | 'cab' | 'cpio' | 'ar' | 'iso9660' | 'xar' | 'lha';
/** Compression layers: one unnamed member, the decompressed bytes. */
export type CompressionFormat = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'lz4' | 'lzma' | 'compress' | 'lzip';
export type ContainerFormat = ArchiveFormat | CompressionFormat;

export const ARCHIVE_FORMATS: readonly ArchiveFormat[] = ['zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha'];
export const COMPRESSION_FORMATS: readonly CompressionFormat[] = ['gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip'];
export const CONTAINER_FORMATS: readonly ContainerFormat[] = [...ARCHIVE_FORMATS, ...COMPRESSION_FORMATS];

/** Formats the kiosk's extractor (libarchive's bsdtar/bsdcat in a sandbox) can open. */
export const EXTRACTABLE_FORMATS: ReadonlySet<ContainerFormat> = new Set<ContainerFormat>([
  'zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha',
  'gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip',
]);

/** Bytes of a file's head the detection needs (ISO 9660's descriptor sits at 32 KiB). */
export const CONTAINER_SNIFF_BYTES = 0x8006;

export function isCompression(format: ContainerFormat): format is CompressionFormat {
  return (COMPRESSION_FORMATS as readonly string[]).includes(format);
}

function startsWith(head: Uint8Array, bytes: readonly number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) return false;
  return true;
}

const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));

/**
 * LZMA-alone (`.lzma`, `xz --format=lzma`) has no magic: a properties byte, a
 * dictionary size, an uncompressed size that is known or all ones, then the
 * range coder, whose first byte is always 0. Accepted as the tools accept it:
 * any properties byte lc + lp * 9 + pb * 45 < 225 (liblzma, libarchive,
 * 7-Zip), a dictionary size of the forms 7-Zip's CheckDicSize and liblzma's
 * auto-decoder take (2^n, 3 * 2^n, or all ones) and every encoder writes (4
 * KiB or more: xz, the LZMA SDK and 7-Zip round smaller ones up; `xz -d`
 * and libarchive refuse them), and a known size below 2^56 (7-Zip's bound;
 * liblzma's is 2^38). Smaller dictionaries would make a tar whose first
 * file has a two-letter name like "a0" look like an LZMA header too.
 */
function looksLzmaAlone(head: Uint8Array): boolean {
  if (head.length < 13 + 5) return false; // the header and the range coder's 5 start bytes
  if (head[0]! >= 9 * 5 * 5) return false;
  const dict = (head[1]! | (head[2]! << 8) | (head[3]! << 16) | (head[4]! << 24)) >>> 0;
  if (!saneDictionary(dict)) return false;
  const unknown = head.subarray(5, 13).every((b) => b === 0xff);
  if (!unknown && head[12] !== 0) return false;
  return head[13] === 0;
}

function saneDictionary(dict: number): boolean {
  if (dict === 0xffffffff) return true;
  for (let n = 12; n <= 31; n++) if (dict === 2 ** n) return true;
  for (let n = 11; n <= 30; n++) if (dict === 3 * 2 ** n) return true;
  return false;
}

const u32le = (head: Uint8Array, at: number): number =>
  (head[at]! | (head[at + 1]! << 8) | (head[at + 2]! << 16) | (head[at + 3]! << 24)) >>> 0;

/**
 * A zstd or lz4 stream may open with skippable frames (RFC 8878 3.1.2; the LZ4
 * frame format's 0x184D2A5? frames): `zstd -d`, `lz4 -d`, libarchive and GNU
 * tar skip them. What follows the last one the head shows decides; a frame
 * that runs past the head leaves zstd, the format that defines them.
 */
function afterSkippableFrames(head: Uint8Array): 'zstd' | 'lz4' | null {
  let at = 0;
  while (head.length >= at + 8 && (u32le(head, at) & 0xfffffff0) === 0x184d2a50) {
    at += 8 + u32le(head, at + 4);
    if (at + 4 > head.length) return 'zstd';
  }
  if (at === 0) return null;
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd], at)) return 'zstd';
  if (startsWith(head, [0x04, 0x22, 0x4d, 0x18], at) || startsWith(head, [0x02, 0x21, 0x4c, 0x18], at)) return 'lz4';
  return 'zstd';
}

/**
 * A tar header the way libarchive's tar bidder and GNU tar take one, with or
 * without the ustar magic (pre-POSIX v7 tar has none; GNU's is "ustar  \0"):
 * a header checksum that matches the block's unsigned (or historic signed)
 * byte sum with the checksum field counted as spaces, a type flag that is NUL,
 * a digit or a letter, and numeric fields that are octal digits padded with
 * spaces or NULs, or base-256. An all-zero block is an end marker, not a header.
 */
export function looksTarHeader(head: Uint8Array): boolean {
  if (head.length < 512) return false;
  const block = head.subarray(0, 512);
  if (block.every((b) => b === 0)) return false;
  const type = block[156]!;
  const typeOk = type === 0 || (type >= 0x30 && type <= 0x39) || (type >= 0x41 && type <= 0x5a) || (type >= 0x61 && type <= 0x7a);
  if (!typeOk) return false;
  // mode, uid, gid, size, mtime, devmajor, devminor (POSIX.1-1988 10.1.1)
  for (const [at, width] of [[100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [329, 8], [337, 8]] as const) {
    if (!numericField(block, at, width)) return false;
  }
  const stored = octalValue(block, 148, 8);
  if (stored === null) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** libarchive's validate_number_field: base-256 (or empty), else spaces, octal digits, then only spaces or NULs. */
function numericField(block: Uint8Array, at: number, width: number): boolean {
  const marker = block[at]!;
  if (marker === 0x80 || marker === 0xff || marker === 0) return true;
  let i = at;
  const end = at + width;
  while (i < end && block[i] === 0x20) i++;
  while (i < end && block[i]! >= 0x30 && block[i]! <= 0x37) i++;
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return false;
  return true;
}

/** An octal field's value: leading spaces, at least one digit, then spaces or NULs only; null otherwise. */
function octalValue(block: Uint8Array, at: number, width: number): number | null {
  let i = at;
  const end = at + width;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < end && block[i]! >= 0x30 && block[i]! <= 0x37; i++, digits++) value = value * 8 + (block[i]! - 0x30);
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return null;
  return digits > 0 ? value : null;
}

/** Each format's test on a file's head, in the order a single answer prefers them. */
const DETECTORS: ReadonlyArray<readonly [ContainerFormat, (head: Uint8Array) => boolean]> = [
  // Zip: a local header, an empty archive's end record, or a split archive's marker before a local header.
  ['zip', (h) => startsWith(h, [0x50, 0x4b, 0x03, 0x04]) || startsWith(h, [0x50, 0x4b, 0x05, 0x06]) || startsWith(h, [0x50, 0x4b, 0x07, 0x08]) || startsWith(h, [0x50, 0x4b, 0x30, 0x30])],
  ['7z', (h) => startsWith(h, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ['rar', (h) => startsWith(h, ascii('Rar!\x1a\x07'))],
  ['cab', (h) => startsWith(h, ascii('MSCF')) && startsWith(h, [0, 0, 0, 0], 4)],
  ['gzip', (h) => startsWith(h, [0x1f, 0x8b, 0x08])],
  ['bzip2', (h) => startsWith(h, ascii('BZh')) && h.length > 3 && h[3]! >= 0x31 && h[3]! <= 0x39],
  ['xz', (h) => startsWith(h, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  // zstd frames, legacy frames v0.5 to v0.7 (zstd 1.5's CLI still decodes them), and skippable frames before a zstd frame.
  ['zstd', (h) => startsWith(h, [0x28, 0xb5, 0x2f, 0xfd]) || (h.length >= 4 && h[0]! >= 0x25 && h[0]! <= 0x27 && startsWith(h, [0xb5, 0x2f, 0xfd], 1)) || afterSkippableFrames(h) === 'zstd'],
  // LZ4 frames, legacy frames (`lz4 -l`), and skippable frames before one.
  ['lz4', (h) => startsWith(h, [0x04, 0x22, 0x4d, 0x18]) || startsWith(h, [0x02, 0x21, 0x4c, 0x18]) || afterSkippableFrames(h) === 'lz4'],
  ['compress', (h) => startsWith(h, [0x1f, 0x9d])],
  ['lzip', (h) => startsWith(h, ascii('LZIP'))],
  ['xar', (h) => startsWith(h, ascii('xar!'))],
  ['ar', (h) => startsWith(h, ascii('!<arch>\n'))],
  ['cpio', (h) => startsWith(h, ascii('070707')) || startsWith(h, ascii('070701')) || startsWith(h, ascii('070702')) || startsWith(h, [0xc7, 0x71]) || startsWith(h, [0x71, 0xc7])],
  // ustar and GNU magic ("ustar\0" / "ustar  \0"), or any header a tar reader takes (v7 tar has no magic).
  ['tar', (h) => startsWith(h, ascii('ustar'), 257) || looksTarHeader(h)],
  ['iso9660', (h) => startsWith(h, ascii('CD001'), 0x8001)],
  ['lha', (h) => h.length >= 7 && h[2] === 0x2d && h[3] === 0x6c && h[4] === 0x68 && h[6] === 0x2d], // "-lh?-"
  ['lzma', looksLzmaAlone],
];

/**
 * Every container format `head` (a file's first bytes) passes the test of, in
 * order of preference. More than one means the tools may disagree on what the
 * file is: libarchive bids its LZMA filter before the tar format, so a tar
 * whose first name is an LZMA-alone header reads as an empty stream there.
 */
export function detectContainers(head: Uint8Array): ContainerFormat[] {
  return DETECTORS.filter(([, test]) => test(head)).map(([format]) => format);
}

/** The container format `head` (a file's first bytes) shows, or null for anything else. */
export function detectContainer(head: Uint8Array): ContainerFormat | null {
  for (const [format, test] of DETECTORS) if (test(head)) return format;
  return null;
}

/** Extensions a compression layer adds, and what the layer's content is called once removed. */
const LAYER_SUFFIXES: ReadonlyArray<readonly [string, string]> = [
  ['.tgz', '.tar'], ['.taz', '.tar'], ['.tbz', '.tar'], ['.tbz2', '.tar'], ['.txz', '.tar'], ['.tzst', '.tar'], ['.tlz', '.tar'],
  ['.gz', ''], ['.bz2', ''], ['.xz', ''], ['.zst', ''], ['.lz4', ''], ['.lzma', ''], ['.z', ''], ['.lz', ''],
];

/**
 * The name of a compression layer's content: `logs.tar.gz` -> `logs.tar`,
 * `a.tgz` -> `a.tar`, `notes.gz` -> `notes`; a name without a known suffix
 * keeps its name (its content is then named as the layer itself was).
 */
export function layerContentName(name: string): string {
  const lower = name.toLowerCase();
  for (const [suffix, replacement] of LAYER_SUFFIXES) {
    if (lower.endsWith(suffix) && name.length > suffix.length && name[name.length - suffix.length - 1] !== '/') {
      return name.slice(0, name.length - suffix.length) + replacement;
    }
  }
  return name;
}
