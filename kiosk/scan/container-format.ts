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

/** LZMA-alone has no magic: a properties byte, a dictionary size, and a size that is known or all ones. */
function looksLzmaAlone(head: Uint8Array): boolean {
  if (head.length < 13) return false;
  const props = head[0]!;
  if (props >= 9 * 5 * 5) return false; // lc + lp * 9 + pb * 45, each in range
  const dict = (head[1]! | (head[2]! << 8) | (head[3]! << 16) | (head[4]! << 24)) >>> 0;
  // xz and lzma(1) write a power of two or 2^n + 2^(n-1), at least 4 KiB.
  const powerish = dict >= 4096 && (((dict & (dict - 1)) === 0) || (((dict & (dict - 1)) & ((dict & (dict - 1)) - 1)) === 0));
  if (!powerish) return false;
  const unknown = head.subarray(5, 13).every((b) => b === 0xff);
  // A known size is at most 2^38 here (the high bytes zero): a real stream, not random bytes.
  const knownSmall = head[10] === 0 && head[11] === 0 && head[12] === 0;
  return props === 0x5d && (unknown || knownSmall);
}

/** The container format `head` (a file's first bytes) shows, or null for anything else. */
export function detectContainer(head: Uint8Array): ContainerFormat | null {
  // Zip: a local header, an empty archive's end record, or a split archive's marker before a local header.
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (startsWith(head, [0x50, 0x4b, 0x07, 0x08]) || startsWith(head, [0x50, 0x4b, 0x30, 0x30])) return 'zip';
  if (startsWith(head, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return '7z';
  if (startsWith(head, ascii('Rar!\x1a\x07'))) return 'rar';
  if (startsWith(head, ascii('MSCF')) && startsWith(head, [0, 0, 0, 0], 4)) return 'cab';
  if (startsWith(head, [0x1f, 0x8b, 0x08])) return 'gzip';
  if (startsWith(head, ascii('BZh')) && head.length > 3 && head[3]! >= 0x31 && head[3]! <= 0x39) return 'bzip2';
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (startsWith(head, [0x04, 0x22, 0x4d, 0x18])) return 'lz4';
  if (startsWith(head, [0x1f, 0x9d])) return 'compress';
  if (startsWith(head, ascii('LZIP'))) return 'lzip';
  if (startsWith(head, ascii('xar!'))) return 'xar';
  if (startsWith(head, ascii('!<arch>\n'))) return 'ar';
  if (startsWith(head, ascii('070707')) || startsWith(head, ascii('070701')) || startsWith(head, ascii('070702'))) return 'cpio';
  if (startsWith(head, [0xc7, 0x71]) || startsWith(head, [0x71, 0xc7])) return 'cpio';
  if (startsWith(head, ascii('ustar'), 257)) return 'tar';
  if (startsWith(head, ascii('CD001'), 0x8001)) return 'iso9660';
  if (head.length >= 7 && head[2] === 0x2d && head[3] === 0x6c && head[4] === 0x68 && head[6] === 0x2d) return 'lha'; // "-lh?-"
  if (looksLzmaAlone(head)) return 'lzma';
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
