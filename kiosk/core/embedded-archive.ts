/**
 * Archives hidden inside other files. 7-Zip opens a file it does not
 * recognise at its start by searching it for archive headers (a 7z, tar,
 * CAB, RAR, xz, gzip, bzip2, zstd, ARJ or zip header at any offset), so a
 * PNG or PDF with a 7z inside is an archive to anyone who right-clicks it.
 * The kiosk searches every file it would pass for such headers, and blocks
 * one that holds a valid one (NOT_INSPECTED): its content was never opened.
 *
 * Pure. Each format's header is checked as its own reader would accept it
 * (signature plus a CRC, checksum or fields that random bytes almost never
 * satisfy), so ordinary compressed data (PDF streams, JPEG scans) does not
 * trip it. Fed the same chunks the scan reads, with a small carry between
 * chunks, so a header split across two reads is still seen.
 */
import { constants as zlib, crc32, inflateRawSync, zstdDecompressSync } from 'node:zlib';

export type EmbeddedFormat = '7z' | 'xz' | 'tar' | 'cab' | 'rar' | 'bzip2' | 'gzip' | 'zstd' | 'zip' | 'arj' | 'nsis' | 'ihex';

const WINDOW = 16 * 1024; // bytes a header check may look at past the signature (an ARJ header is at most 2,600)
/** 7-Zip looks for an archive at any offset below 8 MiB (measured with 7-Zip 26.02); past that nothing opens it. */
export const EMBEDDED_SEARCH_BYTES = 8 * 1024 * 1024 + WINDOW;
const MAX_DECODES = 64; // gzip and zstd candidates decoded per file; more look-alikes count as an archive

/** Whether compressed data decodes for as far as the bytes go (truncated is fine, broken is not). */
function decodes(decode: () => unknown): boolean {
  try {
    decode();
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    // Output beyond the bound means the data decodes: it is a stream.
    return code === 'ERR_BUFFER_TOO_LARGE';
  }
}
const TAR_BACK = 257; // the tar magic sits 257 bytes into its header

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');
const u16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const u32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const has = (b: Uint8Array, at: number, n: number): boolean => at >= 0 && at + n <= b.length;
const same = (b: Uint8Array, at: number, sig: Uint8Array): boolean => has(b, at, sig.length) && sig.every((x, i) => b[at + i] === x);

/** A header check: where the signature starts (`at`), whether a valid header of the format begins there. */
type Check = (b: Uint8Array, at: number, budget: { decodes: number }) => boolean;

const ZIP_METHODS = new Set([0, 1, 6, 8, 9, 12, 14, 93, 94, 95, 96, 97, 98, 99]);

const CHECKS: ReadonlyArray<{ format: EmbeddedFormat; signature: Buffer; check: Check }> = [
  {
    format: '7z', signature: Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]),
    // Major version 0 (7-Zip checks no minor version) and the start header's CRC-32 over its next 20 bytes.
    check: (b, at) => has(b, at, 32) && b[at + 6] === 0 && crc32(b.subarray(at + 12, at + 32)) === u32(b, at + 8),
  },
  {
    format: 'xz', signature: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
    // Stream flags (a reserved zero byte, a check type) and their CRC-32.
    check: (b, at) => has(b, at, 12) && b[at + 6] === 0 && b[at + 7]! <= 0x0f && crc32(b.subarray(at + 6, at + 8)) === u32(b, at + 8),
  },
  {
    format: 'tar', signature: ascii('ustar'),
    check: (b, at) => {
      const h = at - TAR_BACK;
      if (!has(b, h, 512)) return false;
      const magic = Buffer.from(b.subarray(at, at + 8)).toString('latin1');
      if (magic !== 'ustar\u000000' && magic !== 'ustar  \u0000') return false;
      const stored = parseInt(Buffer.from(b.subarray(h + 148, h + 156)).toString('latin1').replace(/[\0 ]+$/, '').trim(), 8);
      // The unsigned byte sum, or the historic signed one (7-Zip, GNU tar and libarchive take both).
      let sum = 0;
      let signed = 0;
      for (let i = 0; i < 512; i++) {
        const x = i >= 148 && i < 156 ? 0x20 : b[h + i]!;
        sum += x;
        signed += x > 127 ? x - 256 : x;
      }
      return sum === stored || signed === stored;
    },
  },
  {
    format: 'cab', signature: ascii('MSCF'),
    // Reserved fields zero, a cabinet of at least its header, format version 1.3.
    check: (b, at) => has(b, at, 36) && u32(b, at + 4) === 0 && u32(b, at + 12) === 0 && u32(b, at + 8) >= 36 && b[at + 24] === 3 && b[at + 25] === 1,
  },
  { format: 'rar', signature: ascii('Rar!\u001a\u0007'), check: (b, at) => has(b, at, 8) && (b[at + 6] === 0 || (b[at + 6] === 1 && b[at + 7] === 0)) },
  {
    format: 'bzip2', signature: ascii('BZh'),
    // A block size digit, a first block's magic (pi), not randomised, and an origPtr inside the block
    // (text that quotes the magic gives one in the millions; an empty stream carries nothing).
    check: (b, at) => {
      if (!has(b, at, 18) || b[at + 3]! < 0x31 || b[at + 3]! > 0x39 || !same(b, at + 4, Buffer.from([0x31, 0x41, 0x59, 0x26, 0x53, 0x59]))) return false;
      const bits = ((b[at + 14]! << 24) | (b[at + 15]! << 16) | (b[at + 16]! << 8) | b[at + 17]!) >>> 0;
      return bits >>> 31 === 0 && ((bits >>> 7) & 0xffffff) < (b[at + 3]! - 0x30) * 100_000;
    },
  },
  {
    format: 'gzip', signature: Buffer.from([0x1f, 0x8b, 0x08]),
    // RFC 1952: reserved flag bits zero, XFL 0, 2 or 4, a known OS, and deflate data that decodes (plain header fields only).
    check: (b, at, budget) =>
      has(b, at, 10) && (b[at + 3]! & 0xe0) === 0 && [0, 2, 4].includes(b[at + 8]!) && (b[at + 9]! <= 13 || b[at + 9] === 255) &&
      (budget.decodes++ >= MAX_DECODES || (b[at + 3]! & 0x1e) !== 0 ||
        decodes(() => inflateRawSync(b.subarray(at + 10), { finishFlush: zlib.Z_SYNC_FLUSH, maxOutputLength: 1024 * 1024 }))),
  },
  {
    format: 'zstd', signature: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
    // RFC 8878: the frame header's reserved bit zero, a window within limits, then a block header of a real type and size.
    check: (b, at, budget) => {
      if (!has(b, at, 5)) return false;
      const fhd = b[at + 4]!;
      if ((fhd & 0x08) !== 0) return false;
      const singleSegment = (fhd & 0x20) !== 0;
      let p = at + 5;
      if (!singleSegment) {
        if (!has(b, p, 1) || b[p]! >> 3 > 21) return false;
        p++;
      }
      p += [0, 1, 2, 4][fhd & 0x03]!; // dictionary id
      p += [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6]!; // frame content size
      if (!has(b, p, 3)) return false;
      const block = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
      if (((block >> 1) & 3) === 3 || block >> 3 > 128 * 1024) return false;
      return budget.decodes++ >= MAX_DECODES ||
        decodes(() => zstdDecompressSync(b.subarray(at), { finishFlush: zlib.ZSTD_e_flush, maxOutputLength: 1024 * 1024 }));
    },
  },
  {
    format: 'zip', signature: Buffer.from([0x50, 0x4b, 0x03, 0x04]),
    // A local header 7-Zip takes: any "version needed", a method it names, a name of sane length that is
    // not cut by a NUL followed by more name (7-Zip's IsArc_Zip allows control characters and trailing NULs).
    check: (b, at) => {
      if (!has(b, at, 30)) return false;
      const nameLength = u16(b, at + 26);
      if (!ZIP_METHODS.has(u16(b, at + 8)) || nameLength < 1 || nameLength > 1024 || !has(b, at + 30, nameLength)) return false;
      const nul = b.subarray(at + 30, at + 30 + nameLength).indexOf(0);
      if (nul === 0) return false;
      if (nul > 0) for (let i = nul; i < nameLength; i++) if (b[at + 30 + i] !== 0) return false;
      return true;
    },
  },
  {
    format: 'nsis', signature: Buffer.from([0xef, 0xbe, 0xad, 0xde, ...ascii('NullsoftInst')]),
    // NSIS's first header: flags (a few bits), the signature, then the header and archive sizes (7-Zip's NsisIn.cpp).
    check: (b, at) => has(b, at - 4, 28) && u32(b, at - 4) <= 0xff && u32(b, at + 16) > 0 && u32(b, at + 20) >= 28,
  },
  {
    format: 'arj', signature: Buffer.from([0x60, 0xea]),
    // The main header's size and its CRC-32.
    check: (b, at) => {
      if (!has(b, at, 4)) return false;
      const size = u16(b, at + 2);
      return size >= 30 && size <= 2600 && has(b, at + 4, size + 4) && crc32(b.subarray(at + 4, at + 4 + size)) === u32(b, at + 4 + size);
    },
  },
];

const hexValue = (b: Uint8Array, at: number): number => {
  const digit = (c: number | undefined): number => (c === undefined ? -1 : c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);
  const hi = digit(b[at]);
  const lo = digit(b[at + 1]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
};

/**
 * An Intel HEX image at the start of a file, as 7-Zip's IsArc_IHex takes
 * one: ":" and records of hex digits (a count, an address, a type 0 to 5,
 * the data, a checksum that sums to zero), three of them or up to the end
 * record. 7-Zip opens such a text file as an archive and extracts the
 * binary it describes, whatever the file is named.
 */
export function looksIntelHex(b: Uint8Array): boolean {
  let at = 0;
  for (let record = 0; record < 3; record++) {
    if (b[at] !== 0x3a) return false;
    at++;
    const count = hexValue(b, at);
    const type = hexValue(b, at + 6);
    if (count < 0 || type < 0 || type > 5) return false;
    let sum = 0;
    for (let i = 0; i < count + 5; i++) {
      const v = hexValue(b, at + 2 * i);
      if (v < 0) return false;
      sum += v;
    }
    if ((sum & 0xff) !== 0) return false;
    if (type === 1) return count === 0;
    at += 2 * (count + 5);
    while (b[at] === 0x0d || b[at] === 0x0a) at++;
    if (at >= b.length) return record > 0; // the file ends after whole records
  }
  return true;
}

/** The reason a file with a hidden archive is blocked. */
export function hiddenArchiveReason(found: { readonly format: string; readonly offset: number }): { readonly code: 'NOT_INSPECTED'; readonly detail: string } {
  if (found.format === 'ihex') return { code: 'NOT_INSPECTED', detail: 'an Intel HEX image (7-Zip opens it as an archive and extracts the binary it describes): what it holds was not inspected' };
  return { code: 'NOT_INSPECTED', detail: `a ${found.format} archive is hidden inside it at byte ${found.offset} (7-Zip opens it): what it holds was not inspected` };
}

/** Searches a stream of chunks for an embedded archive header; `found` is the first one. */
export class EmbeddedArchiveFinder {
  #carry: Uint8Array = new Uint8Array(0);
  #carryStart = 0; // offset in the file of #carry[0]
  #checkedUpTo = 0; // signatures starting before this file offset were checked
  #found: { format: EmbeddedFormat; offset: number } | null = null;
  #seen = 0; // bytes pushed
  readonly #budget = { decodes: 0 };

  get found(): { readonly format: EmbeddedFormat; readonly offset: number } | null {
    return this.#found;
  }

  /** `chunk` follows the previous one in the file (each is valid only during the call). */
  push(chunk: Uint8Array): void {
    if (this.#found !== null || this.#seen >= EMBEDDED_SEARCH_BYTES) return;
    chunk = chunk.subarray(0, EMBEDDED_SEARCH_BYTES - this.#seen);
    if (this.#seen === 0 && looksIntelHex(chunk.subarray(0, WINDOW))) {
      this.#found = { format: 'ihex', offset: 0 };
      return;
    }
    this.#seen += chunk.length;
    const buffer = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const limit = Math.max(0, buffer.length - WINDOW); // a signature before this can be checked in full now
    this.#search(buffer, limit);
    // Keep what a later check needs: unchecked signatures, and a tar header's bytes before its magic.
    const keepFrom = Math.max(0, limit - TAR_BACK);
    this.#carry = Buffer.from(buffer.subarray(keepFrom));
    this.#carryStart += keepFrom;
    this.#checkedUpTo = this.#carryStart + (limit - keepFrom);
  }

  /** Checks what is left at the end of the stream. */
  finish(): void {
    if (this.#found === null) this.#search(this.#carry, this.#carry.length);
  }

  #search(buffer: Uint8Array, limit: number): void {
    const view = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const from = Math.max(0, this.#checkedUpTo - this.#carryStart);
    let best: { format: EmbeddedFormat; offset: number } | null = null;
    for (const { format, signature, check } of CHECKS) {
      for (let at = view.indexOf(signature, from); at >= 0 && at < limit; at = view.indexOf(signature, at + 1)) {
        if (check(buffer, at, this.#budget)) {
          const offset = this.#carryStart + (format === 'tar' ? at - TAR_BACK : format === 'nsis' ? at - 4 : at); // where the archive starts
          if (best === null || offset < best.offset) best = { format, offset };
          break;
        }
      }
    }
    if (best !== null) this.#found = best;
  }
}
