/**
 * What 7-Zip makes of a file, asked of 7-Zip itself: the tool a Windows user
 * right-clicks is the judge of whether a file is an archive. 7-Zip opens a
 * file by its extension first, then by any signature it finds: at the start,
 * at a fixed offset (an ext2 superblock at 1080, a FAT boot sector's 55 AA at
 * 510), at the end (a DMG's `koly` trailer, a VHD footer), or anywhere in
 * the first 8 MiB (a 7z, zip, NSIS or CAB header). The kiosk's pure search
 * (embedded-archive.ts) follows the common cases; this module reads 7-Zip's
 * own answer (`7zz l -slt`, run in the sandbox by the extractor) and says
 * which image formats a file's bytes hold the signature of, so 7-Zip is
 * asked about those by name (a tar that is also an ext2 image opens as
 * ext2 once renamed `.img`). Pure.
 *
 * Layout of `7zz l -slt` (7-Zip 26.02): "--" then the archive's properties
 * (`Type = 7z`, `Offset = 512`), "--" again for an archive opened inside it,
 * then "----------" and one block of `Key = value` lines per item, blocks
 * separated by an empty line.
 */
import type { ContainerFormat } from './container-format.ts';

/** 7-Zip's type name (its `-t` switch) for each container format, where 7-Zip has one. */
export const SEVEN_ZIP_TYPES: Readonly<Record<ContainerFormat, string | null>> = {
  zip: 'zip', tar: 'tar', '7z': '7z', rar: 'Rar', cab: 'Cab', cpio: 'Cpio', ar: 'Ar', iso9660: 'Iso', xar: 'Xar', lha: 'Lzh',
  gzip: 'gzip', bzip2: 'bzip2', xz: 'xz', zstd: 'zstd', lz4: null, lzma: 'lzma', compress: 'Z', lzip: null,
  ole2: 'Compound', pdf: null,
};

export interface ListedArchive {
  readonly type: string; // 7-Zip's name of the format
  readonly offset: number; // bytes into the file where it starts
}

export interface ListedItem {
  readonly path: string;
  readonly folder: boolean;
  readonly size: number | null; // bytes, when 7-Zip lists one
  readonly anti: boolean; // a 7z "anti-item": a deletion marker
  readonly altStream: boolean; // an NTFS alternate data stream
}

export interface Listing {
  /** What 7-Zip opened, outermost first (a DMG, then the zip inside it); empty when it opened nothing. */
  readonly archives: readonly ListedArchive[];
  readonly items: readonly ListedItem[];
}

const PROPERTY = /^([A-Za-z][A-Za-z0-9 ]*) = (.*)$/;

/**
 * 7-Zip's listing as data. Item properties must be `Key = value` lines, each
 * key once per item: a name holding a line break (which could pose as
 * another item's line) makes the listing malformed, never quietly parsed.
 */
export function parseListing(stdout: string): Listing | { readonly problem: string } {
  const lines = stdout.split('\n').map((l) => l.replace(/\r$/, ''));
  const archives: ListedArchive[] = [];
  let at = lines.indexOf('--');
  if (at < 0) return { archives: [], items: [] };
  // The archives: blocks after "--" up to the items' "----------" line (or the end).
  const blocks: Array<{ type: string | null; offset: number }> = [];
  for (; at < lines.length; at++) {
    const line = lines[at]!;
    if (line === '----------') break;
    if (line === '--') {
      blocks.push({ type: null, offset: 0 });
      continue;
    }
    const current = blocks[blocks.length - 1];
    const m = PROPERTY.exec(line);
    if (current === undefined || m === null) continue;
    // The first Type and Offset of a block are the archive's (a comment below them may say anything).
    if (m[1] === 'Type' && current.type === null) current.type = m[2]!;
    else if (m[1] === 'Offset' && current.type !== null && current.offset === 0 && /^[0-9]+$/.test(m[2]!)) current.offset = Number(m[2]);
  }
  for (const b of blocks) if (b.type !== null) archives.push({ type: b.type, offset: b.offset });
  const items: ListedItem[] = [];
  let block = new Map<string, string>();
  const endItem = (): string | null => {
    if (block.size === 0) return null;
    const path = block.get('Path');
    if (path === undefined) return 'an item without a path';
    const size = block.get('Size');
    items.push({
      path,
      folder: block.get('Folder') === '+' || /^D/.test(block.get('Attributes') ?? ''),
      size: size !== undefined && /^[0-9]+$/.test(size) ? Number(size) : null,
      anti: block.get('Anti') === '+',
      altStream: block.get('Alternate Stream') === '+',
    });
    block = new Map();
    return null;
  };
  for (at++; at < lines.length; at++) {
    const line = lines[at]!;
    if (line === '') {
      const problem = endItem();
      if (problem !== null) return { problem };
      continue;
    }
    if (line === '----------') continue;
    const m = PROPERTY.exec(line);
    if (m === null) {
      // After the items, 7-Zip may print a summary of errors and warnings: no item property follows it.
      if (block.size === 0 && /^(Errors|Warnings|ERROR|WARNING|ERRORS|WARNINGS|Open |Archives with|Sub items)/.test(line)) break;
      return { problem: `7-Zip listed a line that is no item property (${JSON.stringify(line.slice(0, 60))}): a name with a line break` };
    }
    if (block.has(m[1]!)) return { problem: `7-Zip listed ${m[1]} twice for one item: a name with a line break` };
    block.set(m[1]!, m[2]!);
  }
  const problem = endItem();
  return problem === null ? { archives, items } : { problem };
}

/**
 * Why an archive's item list cannot be extracted as it is listed: two items
 * with one path (7-Zip's extraction overwrites the first, or renames it, so
 * the user may get the one the kiosk did not keep), a path that is a file
 * and a folder, in any letter case (Windows folds case); anti-items (deletion
 * markers); alternate data streams. Null when every item has a path of its own.
 */
export function listingProblem(items: readonly ListedItem[]): string | null {
  const seen = new Map<string, boolean>(); // folded path -> is a folder
  for (const item of items) {
    if (item.anti) return `an anti-item (a deletion marker) for ${JSON.stringify(item.path.slice(0, 80))}`;
    if (item.altStream || item.path.includes(':')) return `an alternate data stream (${JSON.stringify(item.path.slice(0, 80))})`;
    const folded = item.path.replace(/\\/g, '/').replace(/\/+$/, '').normalize('NFC').toUpperCase();
    const before = seen.get(folded);
    if (before !== undefined && !(before && item.folder)) return `two items named ${JSON.stringify(item.path.slice(0, 80))} (in some letter case): 7-Zip extracts only one of them under that name`;
    seen.set(folded, item.folder || before === true);
  }
  return null;
}

/**
 * The bytes the items unpack to, as listed: what an extraction of them
 * writes (7-Zip checks each item's size as it unpacks it). An item listed
 * without a size (a folder, an OLE2 storage) counts for none.
 */
export function listedBytes(items: readonly ListedItem[]): number {
  let total = 0;
  for (const item of items) if (!item.folder) total += item.size ?? 0;
  return total;
}

const startsAt = (bytes: Uint8Array, at: number, sig: readonly number[]): boolean =>
  at >= 0 && at + sig.length <= bytes.length && sig.every((b, i) => bytes[at + i] === b);
const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));

/**
 * Formats 7-Zip opens by a signature at a fixed offset from the start
 * (`7zz i`, 7-Zip 26.02): [7-Zip type, offset, signature]. 7-Zip tries them
 * first for a file named after them (`.img` is ext2, FAT, NTFS, ISO, UDF,
 * APFS and Android's LP).
 */
const FIXED_OFFSET_SIGNATURES: ReadonlyArray<readonly [string, number, readonly number[]]> = [
  ['Ext', 1080, [0x53, 0xef]],
  ['FAT', 510, [0x55, 0xaa]],
  ['MBR', 510, [0x55, 0xaa]],
  ['NTFS', 3, ascii('NTFS    ')],
  ['HFS', 1024, ascii('BD')],
  ['HFS', 1024, [0x48, 0x2b, 0x00, 0x04]],
  ['HFS', 1024, [0x48, 0x58, 0x00, 0x05]],
  ['APFS', 32, ascii('NXSB')],
  ['GPT', 512, ascii('EFI PART')],
  ['Iso', 32769, ascii('CD001')],
  ['Udf', 32768, [0x00, ...ascii('BEA01'), 0x01]],
  ['LP', 4096, [0x67, 0x44, 0x6c, 0x61]],
  ['CramFS', 16, ascii('Compressed ROMFS')],
  ['VDI', 64, [0x7f, 0x10, 0xda, 0xbe]],
];

/** Bytes of a file's head the fixed-offset signatures reach (ISO 9660's at 32 KiB). */
export const IMAGE_SIGNATURE_HEAD_BYTES = 32769 + 5;
/** Bytes of a file's tail the trailers need (a DMG `koly` block, a VHD footer). */
export const IMAGE_SIGNATURE_TAIL_BYTES = 512;

/**
 * The disk-image formats whose signature bytes sit where 7-Zip looks for
 * them in this file: at a fixed offset of `head` (the file's first bytes),
 * or in `tail` (its last bytes) for the formats 7-Zip opens backwards from
 * the end (DMG, VHD). Bytes in the right place are not yet an image (two
 * bytes at 1080 come by chance): 7-Zip is then asked whether it opens the
 * file as each of these.
 */
export function imageFormatsToAsk(head: Uint8Array, tail: Uint8Array): string[] {
  const types = new Set<string>();
  for (const [type, offset, sig] of FIXED_OFFSET_SIGNATURES) if (startsAt(head, offset, sig)) types.add(type);
  const trailer = tail.length - IMAGE_SIGNATURE_TAIL_BYTES;
  if (startsAt(tail, trailer, ascii('koly'))) types.add('Dmg');
  if (startsAt(tail, trailer, ascii('conectix')) || startsAt(tail, trailer + 1, ascii('conectix'))) types.add('VHD');
  return [...types];
}

/** The reason a file is blocked when 7-Zip opens it as something it is not. */
export function openedAsReason(chain: string | null, opened: ListedArchive | string, own: string | null): { readonly code: 'NOT_INSPECTED'; readonly detail: string } {
  const what = typeof opened === 'string'
    ? `7-Zip opens it as a ${opened} archive when it is named so (as a .${opened.toLowerCase()} or .img file)`
    : `7-Zip opens it as a ${opened.type} archive${opened.offset > 0 ? ` at byte ${opened.offset}` : ''}`;
  const besides = own === null ? '' : ` besides the ${own} the kiosk opened`;
  return { code: 'NOT_INSPECTED', detail: `${chain === null ? '' : `${chain}: `}${what}${besides}: what it holds that way was not inspected` };
}
