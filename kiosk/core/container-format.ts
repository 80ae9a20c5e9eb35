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

/**
 * Archive formats: members with names. Two are documents that carry files:
 * an OLE2 compound file (legacy Office, whose streams 7-Zip lists and
 * extracts like files) and a PDF (whose attachments a reader saves).
 */
export type ArchiveFormat = 'zip' | 'tar' | '7z' | 'rar' | 'cab' | 'cpio' | 'ar' | 'iso9660' | 'xar' | 'lha' | 'ole2' | 'pdf';
/** Compression layers: one unnamed member, the decompressed bytes. */
export type CompressionFormat = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'lz4' | 'lzma' | 'compress' | 'lzip';
export type ContainerFormat = ArchiveFormat | CompressionFormat;

export const ARCHIVE_FORMATS: readonly ArchiveFormat[] = ['zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha', 'ole2', 'pdf'];
export const COMPRESSION_FORMATS: readonly CompressionFormat[] = ['gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip'];
export const CONTAINER_FORMATS: readonly ContainerFormat[] = [...ARCHIVE_FORMATS, ...COMPRESSION_FORMATS];

/** Formats the kiosk's extractor (libarchive's bsdtar/bsdcat in a sandbox) can open. */
export const EXTRACTABLE_FORMATS: ReadonlySet<ContainerFormat> = new Set<ContainerFormat>([
  'zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha', 'ole2', 'pdf',
  'gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip',
]);

/** Bytes of a file's head the detection needs (ISO 9660's descriptor sits at 32 KiB). */
export const CONTAINER_SNIFF_BYTES = 0x8006;

export function isCompression(format: ContainerFormat): format is CompressionFormat {
  return (COMPRESSION_FORMATS as readonly string[]).includes(format);
}

/**
 * Containers 7-Zip does not open at their first byte (it has no reader for
 * PDF or lz4, nor for lzip): to 7-Zip such a file is one to search for
 * archives inside, like any other unknown file.
 */
export function sevenZipSearches(format: ContainerFormat | null): boolean {
  return format === null || format === 'pdf' || format === 'lz4' || format === 'lzip';
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
  // Documents that carry files: an OLE2 compound file ([MS-CFB] 2.2), a PDF (ISO 32000 7.5.2).
  ['ole2', (h) => startsWith(h, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])],
  ['pdf', (h) => startsWith(h, ascii('%PDF-'))],
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

/** What a compression layer may carry beside its data, in bytes: room its decompressor skips in silence. */
export const LAYER_BOUNDS = {
  gzipExtra: 256, // FEXTRA: BGZF writes 6, dictzip a few hundred for small files
  gzipComment: 1024, // FCOMMENT
  skippableFrame: 64, // zstd and lz4 skippable frames: pzstd writes 4 (each frame's size)
} as const;

const u16le = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);

/**
 * A gzip member header's optional fields (RFC 1952 2.3.1) within bounds:
 * `gzip -d` skips FEXTRA and FCOMMENT without a word, so a zip or any other
 * file could ride there uninspected. `head` is the file's first bytes (64 KiB
 * or all of it). Null when the header is fine.
 */
export function gzipHeaderProblem(head: Uint8Array): string | null {
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b) return 'not a gzip header';
  const flags = head[3]!;
  let at = 10;
  if ((flags & 0x04) !== 0) {
    if (head.length < at + 2) return 'a gzip header cut short';
    const extra = u16le(head, at);
    if (extra > LAYER_BOUNDS.gzipExtra) return `a gzip FEXTRA field of ${extra} bytes (more than ${LAYER_BOUNDS.gzipExtra}: room for a file gzip skips unread)`;
    at += 2 + extra;
  }
  for (const [flag, field, bound] of [[0x08, 'FNAME', 1024], [0x10, 'FCOMMENT', LAYER_BOUNDS.gzipComment]] as const) {
    if ((flags & flag) === 0) continue;
    const end = head.indexOf(0, at);
    if (end < 0 || end - at > bound) return `a gzip ${field} field of more than ${bound} bytes (room for a file gzip skips unread)`;
    at = end + 1;
  }
  return null;
}

/** Reads `length` bytes at `position` of a file (fewer only at its end). */
export type ReadAt = (position: number, length: number) => Uint8Array;

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Walks a zstd stream frame by frame (RFC 8878 3.1: frame headers and block
 * headers only, nothing decoded): every skippable frame must be small
 * (`zstd -d` skips them in silence, so a zip could ride in one), and the
 * frames must tile the file. Legacy frames (v0.5 to v0.7) end the walk, as
 * their layout differs. Null when the stream is fine.
 */
export function zstdFramesProblem(read: ReadAt, size: number): string | null {
  let at = 0;
  while (at < size) {
    const magicBytes = read(at, 4);
    if (magicBytes.length < 4) return `a zstd stream cut short at byte ${at}`;
    const magic = u32le(magicBytes, 0);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      const lengthBytes = read(at + 4, 4);
      if (lengthBytes.length < 4) return `a zstd skippable frame cut short at byte ${at}`;
      const length = u32le(lengthBytes, 0);
      if (length > LAYER_BOUNDS.skippableFrame) return `a zstd skippable frame of ${length} bytes at byte ${at} (more than ${LAYER_BOUNDS.skippableFrame}: room for a file zstd skips unread)`;
      at += 8 + length;
      continue;
    }
    if (magic >= 0xfd2fb525 && magic <= 0xfd2fb527) return null; // legacy frame
    if (magic !== ZSTD_MAGIC) return `bytes at byte ${at} that are no zstd frame`;
    const fhd = read(at + 4, 1)[0];
    if (fhd === undefined) return `a zstd frame header cut short at byte ${at}`;
    const single = (fhd & 0x20) !== 0;
    let p = at + 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 0x03]! + [single ? 1 : 0, 2, 4, 8][fhd >> 6]!;
    for (;;) {
      const block = read(p, 3);
      if (block.length < 3) return `a zstd block header cut short at byte ${p}`;
      const header = block[0]! | (block[1]! << 8) | (block[2]! << 16);
      const type = (header >> 1) & 3;
      if (type === 3) return `a zstd block of the reserved type at byte ${p}`;
      p += 3 + (type === 1 ? 1 : header >>> 3);
      if ((header & 1) !== 0) break;
    }
    at = p + ((fhd & 0x04) !== 0 ? 4 : 0);
  }
  return at === size ? null : 'a zstd stream cut short';
}
