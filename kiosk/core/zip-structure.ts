/**
 * The kiosk's structural check of a zip archive before it is opened: a zip
 * has two tables of contents (a local header before each entry's data, and
 * the central directory at the end), and tools disagree on which they read.
 * Windows Explorer, 7-Zip and libarchive on a file read the central
 * directory; streaming extractors read the local headers. An archive passes
 * only when both say the same thing, so whatever tool opens it at the HMI
 * finds exactly the members the kiosk inspected:
 *
 * - exactly one end record, ending the file; no split archive; a ZIP64 end
 *   record consistent with it (APPNOTE 6.3.10, 4.3.14-16);
 * - the central directory right before the end record(s), and every entry
 *   in it read to its end;
 * - each entry's local header where the directory says, with the same name,
 *   method and flags, and the same sizes and CRC (or a data descriptor
 *   holding them, 4.3.9);
 * - the entries' local header + data + descriptor spans tile the file from
 *   byte 0 to the central directory with no gap (where a hidden entry could
 *   sit) and no overlap (a non-recursive bomb, Fifield 2019);
 * - no encrypted entry (flag bits 0, 6, 13: content the engines cannot read);
 * - declared sizes within the policy's limits, and no entry compressed more
 *   than the policy's ratio (checked again on the real bytes when extracted).
 *
 * Pure apart from the `read` callback. Layout: PKWARE APPNOTE.TXT 6.3.x.
 */

import { decodeCodepage850 } from './codepage-850.ts';

export interface ZipStructureLimits {
  readonly maxEntries: number; // entries in this archive
  readonly maxEntryBytes: number; // bytes unpacked of one entry
  readonly maxTotalBytes: number; // bytes unpacked of all entries together
  readonly maxRatio: number; // unpacked : packed, entries of 1 MiB or more
}

/** Names the policy settings in limit messages. */
export interface ZipLimitNames {
  readonly maxEntries: string;
  readonly maxEntryBytes: string;
  readonly maxTotalBytes: string;
  readonly maxRatio: string;
}

export interface ZipFinding {
  readonly code: 'NOT_INSPECTED' | 'ENCRYPTED' | 'LIMIT_EXCEEDED';
  readonly detail: string;
}

/** Reads `length` bytes at `position` of the archive (fewer only at its end). */
export type ReadAt = (position: number, length: number) => Uint8Array;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const EOCD_BYTES = 22;
const MAX_COMMENT = 0xffff;
const RATIO_FLOOR = 1024 * 1024; // bytes: small entries may compress well without being bombs
const ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000; // encrypted, strong encryption, central directory encrypted
const COMPARED_FLAGS = ENCRYPTION_FLAGS | 0x0008 | 0x0800; // encryption bits, data descriptor, UTF-8 names
const MAX_CENTRAL_BYTES = 64 * 1024 * 1024; // bytes of central directory read at once

class Finding extends Error {
  readonly code: ZipFinding['code'];
  constructor(code: ZipFinding['code'], detail: string) {
    super(detail);
    this.code = code;
  }
}

const contradiction = (detail: string): Finding => new Finding('NOT_INSPECTED', `the zip archive contradicts itself: ${detail}`);

class View {
  readonly bytes: Uint8Array;
  readonly #data: DataView;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(at: number, n: number): void {
    if (at < 0 || at + n > this.bytes.length) throw contradiction('a record runs past its end (truncated)');
  }
  u16(at: number): number {
    this.#need(at, 2);
    return this.#data.getUint16(at, true);
  }
  u32(at: number): number {
    this.#need(at, 4);
    return this.#data.getUint32(at, true);
  }
  u64(at: number): number {
    this.#need(at, 8);
    const v = this.#data.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw contradiction('a 64-bit field beyond any real file');
    return Number(v);
  }
  slice(at: number, n: number): Uint8Array {
    this.#need(at, n);
    return this.bytes.subarray(at, at + n);
  }
}

interface CentralEntry {
  readonly name: Uint8Array;
  readonly display: string;
  readonly flags: number;
  readonly method: number;
  readonly crc: number;
  readonly packed: number;
  readonly unpacked: number;
  readonly localOffset: number;
  readonly zip64: boolean;
  readonly madeBy: number; // "version made by": its high byte is the host system (3: Unix)
  readonly externalAttributes: number;
  readonly unicodeName: Uint8Array | null; // the Info-ZIP Unicode Path field (0x7075), when present and current
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function shown(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name).toString('latin1')).slice(1, -1).slice(0, 200);
}

/** Reads the ZIP64 extended-information extra field (0x0001) over the saturated fields, in APPNOTE order. */
function zip64Fields(extra: View, fields: { unpacked: number; packed: number; offset: number }, where: string): typeof fields & { found: boolean; unicodePath: Uint8Array | null } {
  let at = 0;
  let found = false;
  let unicodePath: Uint8Array | null = null;
  const out = { ...fields };
  while (at + 4 <= extra.bytes.length) {
    const id = extra.u16(at);
    const length = extra.u16(at + 2);
    if (at + 4 + length > extra.bytes.length) throw contradiction(`${where}: an extra field runs past its end`);
    if (id === 0x0001) {
      if (found) throw contradiction(`${where}: two ZIP64 extra fields`);
      found = true;
      let f = at + 4;
      const end = at + 4 + length;
      const take = (): number => {
        if (f + 8 > end) throw contradiction(`${where}: a ZIP64 extra field too short for its saturated sizes`);
        const v = extra.u64(f);
        f += 8;
        return v;
      };
      if (fields.unpacked === 0xffffffff) out.unpacked = take();
      if (fields.packed === 0xffffffff) out.packed = take();
      if (fields.offset === 0xffffffff) out.offset = take();
    } else if (id === 0x7075) {
      // Info-ZIP Unicode Path: version 1, the CRC-32 of the name field it stands for, then the name in UTF-8.
      if (unicodePath !== null) throw contradiction(`${where}: two Unicode Path extra fields`);
      if (length < 5 || extra.bytes[at + 4] !== 1) throw contradiction(`${where}: a Unicode Path extra field of an unknown version`);
      unicodePath = extra.slice(at + 9, length - 5);
    }
    at += 4 + length;
  }
  if (at !== extra.bytes.length) throw contradiction(`${where}: trailing bytes in the extra fields`);
  return { ...out, found, unicodePath };
}

/** An entry as the central directory lists it, checked against its local header: what the kiosk extracts. */
export interface ZipListing {
  readonly name: Uint8Array;
  readonly utf8Name: boolean; // flag bit 11: the name is UTF-8 (else the DOS code page, as Windows reads it)
  readonly size: number; // bytes unpacked
  readonly packed: number; // bytes of compressed data
  readonly method: number;
  readonly crc: number;
  readonly dataStart: number; // offset of the compressed data in the archive
  readonly madeBy: number;
  readonly externalAttributes: number;
}

/**
 * Checks a zip of `size` bytes. Returns the first finding that stops it from
 * being opened, or, when its structure holds and its declared sizes fit, its
 * entries in central-directory order.
 */
export function checkZipStructure(read: ReadAt, size: number, limits: ZipStructureLimits, names: ZipLimitNames): { finding: ZipFinding } | { entries: ZipListing[] } {
  try {
    return { entries: check(read, size, limits, names) };
  } catch (error) {
    if (error instanceof Finding) return { finding: { code: error.code, detail: error.message } };
    throw error;
  }
}

function check(read: ReadAt, size: number, limits: ZipStructureLimits, names: ZipLimitNames): ZipListing[] {
  if (size < EOCD_BYTES) throw contradiction('too short to hold an end record (truncated)');
  const tailStart = Math.max(0, size - EOCD_BYTES - MAX_COMMENT);
  const tail = new View(read(tailStart, size - tailStart));
  // The end record is the one whose comment runs exactly to the end of the file.
  let eocd = -1;
  for (let at = tail.bytes.length - EOCD_BYTES; at >= 0; at--) {
    if (tail.u32(at) === SIG_EOCD && at + EOCD_BYTES + tail.u16(at + 20) === tail.bytes.length) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw contradiction('no end-of-central-directory record ends the file (truncated, or data appended)');
  // Another end-record signature before this one is no contradiction by itself (a stored inner zip
  // carries its own); an archive appended to another fails the tiling of entries below.
  const eocdAt = tailStart + eocd;
  // A comment holding zip records is a second table of contents some tools take (libarchive looks for the last
  // end record in the file's last bytes): refuse it, so every reader sees the one directory the kiosk checks.
  const comment = tail.bytes.subarray(eocd + EOCD_BYTES);
  for (const sig of [SIG_LOCAL, SIG_CENTRAL, SIG_EOCD, SIG_EOCD64, SIG_EOCD64_LOCATOR, SIG_DESCRIPTOR]) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(sig);
    if (Buffer.from(comment).indexOf(b) >= 0) throw contradiction('its comment holds zip records (a second table of contents)');
  }
  const disk = tail.u16(eocd + 4);
  const cdDisk = tail.u16(eocd + 6);
  let entriesHere = tail.u16(eocd + 8);
  let count = tail.u16(eocd + 10);
  let cdSize = tail.u32(eocd + 12);
  let cdOffset = tail.u32(eocd + 16);
  let endOfCentral = eocdAt; // where the central directory must end
  const locatorAt = eocdAt - 20;
  const hasLocator = locatorAt >= 0 && new View(read(locatorAt, 4)).u32(0) === SIG_EOCD64_LOCATOR;
  if (hasLocator) {
    const locator = new View(read(locatorAt, 20));
    const eocd64At = locator.u64(8);
    if (locator.u32(4) !== 0 || locator.u32(16) !== 1) throw new Finding('NOT_INSPECTED', 'a split (multi-disk) zip archive: the kiosk opens only whole archives');
    if (eocd64At + 56 > locatorAt) throw contradiction('the ZIP64 end record is not before its locator');
    // Its fixed part only: the record must end where the locator starts, and nothing else is read.
    const record = new View(read(eocd64At, 56));
    if (record.u32(0) !== SIG_EOCD64) throw contradiction('the ZIP64 locator points at no ZIP64 end record');
    // The record's own size field counts from after itself (12 bytes); nothing may sit between it and the locator.
    if (record.u64(4) + 12 !== locatorAt - eocd64At) throw contradiction('bytes between the ZIP64 end record and its locator');
    if (locatorAt - eocd64At !== 56) throw contradiction('a ZIP64 end record with an extensible data sector (not written by any common tool)');
    if (record.u32(16) !== 0 || record.u32(20) !== 0) throw new Finding('NOT_INSPECTED', 'a split (multi-disk) zip archive: the kiosk opens only whole archives');
    const sat = (v: number, max: number, v64: number, what: string): number => {
      if (v !== max && v !== v64) throw contradiction(`the end record and the ZIP64 end record disagree on ${what}`);
      return v64;
    };
    entriesHere = sat(entriesHere, 0xffff, record.u64(24), 'the entry count');
    count = sat(count, 0xffff, record.u64(32), 'the entry count');
    cdSize = sat(cdSize, 0xffffffff, record.u64(40), 'the directory size');
    cdOffset = sat(cdOffset, 0xffffffff, record.u64(48), 'the directory offset');
    endOfCentral = eocd64At;
  } else {
    if (disk !== 0 || cdDisk !== 0) throw new Finding('NOT_INSPECTED', 'a split (multi-disk) zip archive: the kiosk opens only whole archives');
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) throw contradiction('saturated end-record fields without a ZIP64 end record');
  }
  if (entriesHere !== count) throw new Finding('NOT_INSPECTED', 'a split (multi-disk) zip archive: the kiosk opens only whole archives');
  if (count > limits.maxEntries) throw new Finding('LIMIT_EXCEEDED', `${count} entries in one archive, over the policy's ${names.maxEntries} (${limits.maxEntries})`);
  if (cdOffset + cdSize !== endOfCentral) throw contradiction('bytes between the central directory and the end record, or a directory that does not end there');
  if (cdSize > MAX_CENTRAL_BYTES) throw new Finding('LIMIT_EXCEEDED', `a central directory of ${cdSize} bytes`);

  const central = new View(read(cdOffset, cdSize));
  if (central.bytes.length !== cdSize) throw contradiction('the central directory runs past the end of the file (truncated)');
  const entries: CentralEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (central.u32(p) !== SIG_CENTRAL) throw contradiction(`central directory entry ${i + 1} is not where the one before it ends`);
    const flags = central.u16(p + 8);
    const method = central.u16(p + 10);
    const crc = central.u32(p + 16);
    const nameLength = central.u16(p + 28);
    const extraLength = central.u16(p + 30);
    const commentLength = central.u16(p + 32);
    if (central.u16(p + 34) !== 0) throw new Finding('NOT_INSPECTED', 'a split (multi-disk) zip archive: the kiosk opens only whole archives');
    const name = central.slice(p + 46, nameLength);
    const display = shown(name);
    const extra = new View(central.slice(p + 46 + nameLength, extraLength));
    const fields = zip64Fields(extra, { unpacked: central.u32(p + 24), packed: central.u32(p + 20), offset: central.u32(p + 42) }, display);
    entries.push({
      name, display, flags, method, crc, packed: fields.packed, unpacked: fields.unpacked, localOffset: fields.offset, zip64: fields.found,
      madeBy: central.u16(p + 4), externalAttributes: central.u32(p + 38), unicodeName: fields.unicodePath,
    });
    p += 46 + nameLength + extraLength + commentLength;
  }
  if (p !== cdSize) throw contradiction('bytes after the last central directory entry');

  let total = 0;
  for (const e of entries) {
    if ((e.flags & ENCRYPTION_FLAGS) !== 0) throw new Finding('ENCRYPTED', `${e.display} is encrypted: its content cannot be inspected`);
    if (e.unpacked > limits.maxEntryBytes) {
      throw new Finding('LIMIT_EXCEEDED', `${e.display} unpacks to ${e.unpacked} bytes, over the policy's ${names.maxEntryBytes} (${limits.maxEntryBytes} bytes)`);
    }
    total += e.unpacked;
    if (total > limits.maxTotalBytes) throw new Finding('LIMIT_EXCEEDED', `the archive unpacks to more than the policy's ${names.maxTotalBytes} (${limits.maxTotalBytes} bytes)`);
    if (e.unpacked >= RATIO_FLOOR && e.unpacked > limits.maxRatio * Math.max(1, e.packed)) {
      throw new Finding('LIMIT_EXCEEDED', `${e.display} compresses ${Math.round(e.unpacked / Math.max(1, e.packed))}:1, over the policy's ${names.maxRatio} (${limits.maxRatio}:1): a decompression bomb`);
    }
  }

  // Entries that start at the same local header share their data whatever their names: a bomb, before any name check.
  const offsets = new Set<number>();
  for (const e of entries) {
    if (offsets.has(e.localOffset)) throw new Finding('LIMIT_EXCEEDED', 'archive entries overlap (a decompression bomb or a disguised entry)');
    offsets.add(e.localOffset);
  }
  // Every entry's span, from its local header to the end of its data (and descriptor).
  const spans = entries.map((e) => ({ entry: e, start: e.localOffset, ...localSpan(read, e, cdOffset) }));
  spans.sort((a, b) => a.start - b.start);
  let expected = 0;
  for (const s of spans) {
    if (s.start < expected) throw new Finding('LIMIT_EXCEEDED', 'archive entries overlap (a decompression bomb or a disguised entry)');
    if (s.start > expected) throw contradiction(`${s.start - expected} bytes before ${s.entry.display} belong to no entry (where a hidden entry can sit)`);
    expected = s.end;
  }
  if (expected !== cdOffset) throw contradiction(`${cdOffset - expected} bytes between the last entry and the central directory belong to no entry (where a hidden entry can sit)`);
  const dataStarts = new Map(spans.map((sp) => [sp.entry, sp.dataStart]));
  return entries.map((e) => ({
    name: e.name, utf8Name: (e.flags & 0x0800) !== 0, size: e.unpacked, packed: e.packed, method: e.method, crc: e.crc,
    dataStart: dataStarts.get(e)!, madeBy: e.madeBy, externalAttributes: e.externalAttributes,
  }));
}

/** Where an entry's data starts and its local header, data and descriptor end; checks the local header against the directory. */
function localSpan(read: ReadAt, e: CentralEntry, limit: number): { dataStart: number; end: number } {
  if (e.localOffset + 30 > limit) throw contradiction(`${e.display}: its local header is not before the central directory`);
  const fixed = new View(read(e.localOffset, 30));
  if (fixed.u32(0) !== SIG_LOCAL) throw contradiction(`${e.display}: no local header where the central directory says`);
  const flags = fixed.u16(6);
  const method = fixed.u16(8);
  const nameLength = fixed.u16(26);
  const extraLength = fixed.u16(28);
  const variable = new View(read(e.localOffset + 30, nameLength + extraLength));
  const name = variable.slice(0, nameLength);
  if (!sameBytes(name, e.name)) throw contradiction(`the local header names ${shown(name)} where the central directory names ${e.display}`);
  if (method !== e.method) throw contradiction(`${e.display}: compression method ${method} in its local header, ${e.method} in the central directory`);
  // Encryption, descriptor and UTF-8-name flags change how the entry is read: both tables must agree on them.
  if (((flags ^ e.flags) & COMPARED_FLAGS) !== 0) {
    throw contradiction(`${e.display}: different flags in its local header and the central directory`);
  }
  if ((flags & ENCRYPTION_FLAGS) !== 0) throw new Finding('ENCRYPTED', `${e.display} is encrypted: its content cannot be inspected`);
  const hasDescriptor = (flags & 0x0008) !== 0;
  const extra = new View(variable.slice(nameLength, extraLength));
  const local = zip64Fields(extra, { unpacked: fixed.u32(22), packed: fixed.u32(18), offset: 0 }, e.display);
  // A Unicode Path field gives the member another name in tools that honour it (7-Zip, Info-ZIP): both headers
  // must carry the same one, and it must be the name itself.
  if (!sameOptionalBytes(local.unicodePath, e.unicodeName)) throw contradiction(`${e.display}: different Unicode Path fields in its local header and the central directory`);
  if (e.unicodeName !== null && !sameBytes(e.unicodeName, (e.flags & 0x0800) !== 0 ? e.name : Buffer.from(decodeDosName(e.name), 'utf8'))) {
    throw contradiction(`${e.display}: a Unicode Path field names it ${shown(e.unicodeName)}, another name than its own`);
  }
  const dataStart = e.localOffset + 30 + nameLength + extraLength;
  let end = dataStart + e.packed;
  if (end > limit) throw contradiction(`${e.display}: its data runs into the central directory (truncated)`);
  if (!hasDescriptor) {
    if (fixed.u32(14) !== e.crc || local.packed !== e.packed || local.unpacked !== e.unpacked) {
      throw contradiction(`${e.display}: different sizes or CRC in its local header and the central directory`);
    }
    return { dataStart, end };
  }
  // APPNOTE 4.3.9: an optional signature, CRC-32, then sizes of 4 bytes (8 with ZIP64).
  const wide = e.zip64 || local.found;
  const probe = new View(read(end, 4 + 4 + (wide ? 16 : 8)));
  let at = 0;
  if (probe.bytes.length >= 4 && probe.u32(0) === SIG_DESCRIPTOR) at = 4;
  const crc = probe.u32(at);
  const packed = wide ? probe.u64(at + 4) : probe.u32(at + 4);
  const unpacked = wide ? probe.u64(at + 12) : probe.u32(at + 8);
  if (crc !== e.crc || packed !== e.packed || unpacked !== e.unpacked) {
    throw contradiction(`${e.display}: its data descriptor disagrees with the central directory`);
  }
  end += at + 4 + (wide ? 16 : 8);
  if (end > limit) throw contradiction(`${e.display}: its data descriptor runs into the central directory`);
  return { dataStart, end };
}

function sameOptionalBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a === null || b === null ? a === b : sameBytes(a, b);
}

/**
 * A name without the UTF-8 flag, as Windows and 7-Zip read it: in the DOS
 * code page (code page 437 for the bytes below 0x80 is ASCII; the kiosk shows
 * the upper half as code page 850 does, which every Western DOS code page
 * shares for letters). The extension, always ASCII in practice, reads the same
 * in every code page.
 */
export function decodeDosName(name: Uint8Array): string {
  return decodeCodepage850(name);
}

/** Bytes of a file's tail that hold any zip end record (22 bytes and a comment of up to 64 KiB). */
export const ZIP_TAIL_BYTES = EOCD_BYTES + MAX_COMMENT;

/**
 * Whether a zip archive ends this file, give or take some trailing bytes
 * (`tail` is its last bytes, `size` its size): an end record with the
 * fields of a whole archive (disk numbers 0, the same entry counts), whose
 * directory fits before it and, when the tail holds it, starts with a
 * central header, or that a ZIP64 locator precedes. A file that is
 * something else at its head (a PDF, an image) with a zip at its end is a
 * polyglot: renamed to .zip, Explorer, 7-Zip, Python and bsdtar open it as
 * an archive, trailing bytes or not.
 *
 * `exact`: only an end record whose comment runs exactly to the file's end.
 * That is the check for a container the kiosk opens itself (a tar, a gzip or
 * zstd stream, a 7z): an honest one may hold a zip whose end record is
 * followed by the container's own bytes (padding, a trailer), while a zip
 * hidden in its padding, a gzip FEXTRA field or a zstd skippable frame ends
 * the file with its comment.
 */
export function endsWithZip(tail: Uint8Array, size: number, options: { readonly exact?: boolean } = {}): boolean {
  if (tail.length < EOCD_BYTES) return false;
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const base = size - tail.length; // offset of tail[0] in the file
  for (let at = tail.length - EOCD_BYTES; at >= 0; at--) {
    if (view.getUint32(at, true) !== SIG_EOCD) continue;
    if (options.exact === true && at + EOCD_BYTES + view.getUint16(at + 20, true) !== tail.length) continue;
    if (view.getUint16(at + 4, true) !== 0 || view.getUint16(at + 6, true) !== 0) continue;
    const count = view.getUint16(at + 10, true);
    if (view.getUint16(at + 8, true) !== count) continue;
    if (at >= 20 && view.getUint32(at - 20, true) === SIG_EOCD64_LOCATOR) return true;
    const cdSize = view.getUint32(at + 12, true);
    if (cdSize > base + at) continue;
    const cdStart = at - cdSize;
    if (cdStart >= 0 && count > 0 && view.getUint32(cdStart, true) !== SIG_CENTRAL) continue;
    return true;
  }
  return false;
}
