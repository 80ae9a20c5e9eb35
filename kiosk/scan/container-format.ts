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
import { constants as zlibConstants, crc32, inflateRawSync, zstdDecompressSync } from 'node:zlib';

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

/**
 * Bytes at the start of a file 7-Zip searches for an archive that does not
 * start at byte 0, when nothing opens at byte 0 (a PNG, a PDF, text):
 * 7-Zip 26.02 opens a 7z, zip, ustar tar, gzip, bzip2, xz, zstd or cab found
 * at any offset below 8 MiB ("Offset = ..."), so a picture or a text file
 * carries an archive the kiosk never opened. Twice the measured window.
 */
export const ARCHIVE_SEARCH_BYTES = 16 * 1024 * 1024;

/** An archive found after byte 0 of a file. */
export interface EmbeddedArchive {
  readonly format: ContainerFormat;
  readonly offset: number;
}

/** Bytes after a candidate's start the checks may look at: a zstd block is at most 128 KiB. */
const LOOKAHEAD = 128 * 1024 + 64;
/** gzip and zstd candidates decoded per file; random data has about one in 16 MiB. */
const MAX_DECODES = 64;

/** The CRC-32 (ISO-HDLC, as zip, gzip, xz and 7z use it) of `bytes`. */
function crc32Of(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

/** A gzip member header (RFC 1952 2.3.1) whose deflate data decodes for as far as the bytes go. */
function gzipAt(b: Uint8Array): boolean {
  if (b.length < 18) return false;
  const flags = b[3]!;
  if ((flags & 0xe0) !== 0 || ![0, 2, 4].includes(b[8]!) || (b[9]! > 13 && b[9] !== 255)) return false;
  let at = 10;
  if (flags & 0x04) at += 2 + (b[at]! | (b[at + 1]! << 8)); // FEXTRA
  for (const bit of [0x08, 0x10]) if (flags & bit) { while (at < b.length && b[at] !== 0) at++; at++; } // FNAME, FCOMMENT
  if (flags & 0x02) at += 2; // FHCRC
  if (at >= b.length) return false;
  return decodes(() => inflateRawSync(b.subarray(at), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 1024 * 1024 }));
}

/** A zstd frame header (RFC 8878 3.1.1.1) with a sane window and first block, whose blocks decode for as far as the bytes go. */
function zstdAt(b: Uint8Array): boolean {
  if (b.length < 8) return false;
  const descriptor = b[4]!;
  if ((descriptor & 0x08) !== 0) return false; // reserved bit
  const singleSegment = (descriptor & 0x20) !== 0;
  if (!singleSegment && (b[5]! >> 3) > 31 - 10) return false; // window exponent
  return decodes(() => zstdDecompressSync(b, { finishFlush: zlibConstants.ZSTD_e_flush, maxOutputLength: 1024 * 1024 }));
}

/**
 * A bzip2 stream with a first block (an empty stream carries nothing):
 * "BZh1".."BZh9", the block magic 0x314159265359, its CRC, then a block
 * that is not randomised and whose origPtr fits the block size. Text that
 * quotes the magic fails here: its next bytes give an origPtr in the millions.
 */
function bzip2At(b: Uint8Array): boolean {
  if (b.length < 20 || b[3]! < 0x31 || b[3]! > 0x39 || !startsWith(b, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4)) return false;
  const bits = (b[14]! << 24) | (b[15]! << 16) | (b[16]! << 8) | b[17]!; // randomised (1), origPtr (24), then the used map
  const randomised = bits >>> 31;
  const origPtr = (bits >>> 7) & 0xffffff;
  return randomised === 0 && origPtr < (b[3]! - 0x30) * 100_000;
}

function decodes(decode: () => unknown): boolean {
  try {
    decode();
    return true;
  } catch (error) {
    // Output beyond the bound means the data decodes: it is an archive.
    return error instanceof RangeError;
  }
}

/** The checks for an archive starting at `b[0]`, by format: each stricter than its magic, as 7-Zip opens only what parses. */
const EMBEDDED: ReadonlyArray<readonly [ContainerFormat, readonly number[], (b: Uint8Array) => boolean]> = [
  // 7z: signature, version 0.x, and the start header's CRC over the next-header fields.
  ['7z', [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], (b) => b.length >= 32 && b[6] === 0 && u32le(b, 8) === crc32Of(b.subarray(12, 32))],
  // xz: magic, stream flags, and their CRC-32 (.xz file format 1.1, 2.1.1).
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], (b) => b.length >= 12 && b[6] === 0 && b[7]! <= 0x0f && u32le(b, 8) === crc32Of(b.subarray(6, 8))],
  ['bzip2', ascii('BZh'), bzip2At],
  ['gzip', [0x1f, 0x8b, 0x08], gzipAt],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd], zstdAt],
  // Microsoft cabinet: reserved fields zero, version 1.3, a sane size and file table, at least one folder and file.
  ['cab', [...ascii('MSCF'), 0, 0, 0, 0], (b) => b.length >= 36 && u32le(b, 12) === 0 && u32le(b, 20) === 0 && b[24] === 3 && b[25] === 1 && u32le(b, 8) >= 36 && u32le(b, 16) < u32le(b, 8) && (b[26]! | b[27]! << 8) > 0 && (b[28]! | b[29]! << 8) > 0],
  // RAR 4 (marker, then the main header, type 0x73) and RAR 5 (marker, then a header CRC and size).
  ['rar', ascii('Rar!\x1a\x07'), (b) => (startsWith(b, [0x00], 6) && b[9] === 0x73) || (startsWith(b, [0x01, 0x00], 6) && b.length >= 13)],
  // Zip local header: a version a zip tool writes, a known method, a name of printable length with no NUL.
  ['zip', [0x50, 0x4b, 0x03, 0x04], (b) => {
    if (b.length < 31 || b[5] !== 0 || b[4]! > 63 || ![0, 8, 9, 12, 14, 93, 95, 98, 99].includes(b[8]! | (b[9]! << 8))) return false;
    const nameLength = b[26]! | (b[27]! << 8);
    return nameLength > 0 && nameLength <= 1024 && 30 + nameLength <= b.length && !b.subarray(30, 30 + nameLength).includes(0);
  }],
];

/**
 * Searches a file's bytes, pushed in order, for an archive that starts after
 * byte 0 the way 7-Zip finds one (ARCHIVE_SEARCH_BYTES): the formats above,
 * and a tar header carrying the ustar magic (7-Zip does not search for v7
 * tar, LZMA-alone or lz4). Pure and bounded: it keeps at most LOOKAHEAD bytes
 * between pushes and decodes at most that much of a gzip or zstd candidate.
 * A file that opens at byte 0 as its own format in 7-Zip (a program, an
 * OLE2 document, a container) is searched no further there; which files to
 * search is the caller's choice.
 */
export class EmbeddedArchiveSearch {
  #window = new Uint8Array(0); // bytes not yet searched as candidate starts, and the lookahead behind them
  #windowAt = 0; // file offset of #window[0]
  #seen = 0;
  #found: EmbeddedArchive | null = null;
  #decodes = MAX_DECODES; // gzip and zstd candidates still to be decoded
  readonly limit: number; // bytes of the file searched for a start

  constructor(limit = ARCHIVE_SEARCH_BYTES) {
    this.limit = limit;
  }

  /** The next bytes of the file. */
  push(chunk: Uint8Array): void {
    const start = this.#seen;
    this.#seen += chunk.length;
    if (this.#found !== null || this.#windowAt >= this.limit) return;
    // Only bytes a candidate or its lookahead can use are kept.
    const useful = chunk.subarray(0, Math.max(0, Math.min(chunk.length, this.limit + LOOKAHEAD - start)));
    const joined = new Uint8Array(this.#window.length + useful.length);
    joined.set(this.#window);
    joined.set(useful, this.#window.length);
    const checkable = joined.length - LOOKAHEAD;
    if (checkable > 0) this.#search(joined, checkable);
    const keepFrom = Math.max(0, checkable);
    this.#window = joined.slice(keepFrom);
    this.#windowAt += keepFrom;
  }

  /** The file has ended: the last bytes are searched with what follows them. The first archive found, or null. */
  end(): EmbeddedArchive | null {
    if (this.#found === null && this.#windowAt < this.limit) this.#search(this.#window, this.#window.length);
    this.#window = new Uint8Array(0);
    return this.#found;
  }

  /** The first archive found so far, or null. */
  get found(): EmbeddedArchive | null {
    return this.#found;
  }

  /** Checks every candidate start in `bytes[0, count)` (with the rest of `bytes` behind it). */
  #search(bytes: Uint8Array, count: number): void {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const last = Math.min(count, this.limit - this.#windowAt);
    const first: { at: number; format: ContainerFormat | null } = { at: Infinity, format: null };
    const consider = (at: number, format: ContainerFormat): void => {
      if (at < first.at && this.#windowAt + at > 0) Object.assign(first, { at, format });
    };
    for (const [f, magic, accepts] of EMBEDDED) {
      const needle = Uint8Array.from(magic);
      for (let at = buffer.indexOf(needle); at >= 0 && at < Math.min(last, first.at); at = buffer.indexOf(needle, at + 1)) {
        // A file of many gzip or zstd look-alikes must not buy unbounded decoding: past the budget, a candidate counts.
        const decoded = f === 'gzip' || f === 'zstd';
        if (decoded && this.#decodes-- <= 0) consider(at, f);
        else if (accepts(bytes.subarray(at, at + LOOKAHEAD))) consider(at, f);
      }
    }
    const ustar = Uint8Array.from(ascii('ustar'));
    for (let m = buffer.indexOf(ustar, 257); m >= 0 && m - 257 < Math.min(last, first.at); m = buffer.indexOf(ustar, m + 1)) {
      if (looksTarHeader(bytes.subarray(m - 257, m - 257 + 512))) consider(m - 257, 'tar');
    }
    if (first.format !== null) this.#found = { format: first.format, offset: this.#windowAt + first.at };
  }
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
