/**
 * The kiosk's own decompression-bomb check for ZIP archives, where ClamAV
 * stays silent: a zip entry larger than clamd's MaxFileSize is skipped without
 * a Heuristics.Limits.Exceeded alert, at any nesting level (ClamAV issue
 * Cisco-Talos/clamav#633, reproduced with ClamAV 1.4 in test/integration/scan.test.ts).
 *
 * Fed the same chunks the scan reads (no second read). Small archives are
 * kept whole and inspected recursively (nested zips are inflated with a
 * capped output); large ones keep only their tail for the central directory.
 * Pure apart from zlib. ZIP layout: PKWARE APPNOTE.TXT 6.3.x.
 */
import { inflateRawSync } from 'node:zlib';

export interface ZipLimits {
  readonly maxEntryBytes: number; // bytes: clamd's MaxFileSize for embedded files
  readonly maxTotalBytes: number; // bytes: clamd's MaxScanSize, all levels together
  readonly maxEntries: number; // entries, all levels together
  readonly maxDepth: number; // nesting levels
  readonly maxRatio: number; // uncompressed / compressed, for entries over 1 MiB
  readonly inspectMaxBytes: number; // bytes: archives up to this size are inspected in full
}

export interface ZipFinding {
  readonly code: 'LIMIT_EXCEEDED';
  readonly detail: string;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const TAIL_BYTES = 4 * 1024 * 1024; // bytes kept of a large archive: holds the central directory of 10 000+ entries
const RATIO_FLOOR = 1024 * 1024; // bytes: small entries may compress well without being bombs

interface Entry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

class Exceeded extends Error {}

function u16(b: Buffer, at: number): number {
  if (at + 2 > b.length) throw new Exceeded('the archive is truncated');
  return b.readUInt16LE(at);
}
function u32(b: Buffer, at: number): number {
  if (at + 4 > b.length) throw new Exceeded('the archive is truncated');
  return b.readUInt32LE(at);
}
function u64(b: Buffer, at: number): number {
  if (at + 8 > b.length) throw new Exceeded('the archive is truncated');
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** Finds the end-of-central-directory record: the last 22..65557 bytes. */
function findEocd(b: Buffer): number {
  for (let at = b.length - 22; at >= Math.max(0, b.length - 22 - 0xffff); at--) {
    if (b.readUInt32LE(at) === SIG_EOCD) return at;
  }
  return -1;
}

/**
 * Reads the central directory. `base` is the offset of `b`'s first byte in the
 * whole file (non-zero when only the tail is kept).
 */
function readCentralDirectory(b: Buffer, base: number): Entry[] | null {
  const eocd = findEocd(b);
  if (eocd < 0) return null;
  let count = u16(b, eocd + 10);
  let cdSize = u32(b, eocd + 12);
  let cdOffset = u32(b, eocd + 16);
  // ZIP64: the locator sits just before the EOCD and points at the 64-bit record.
  if (eocd >= 20 && b.readUInt32LE(eocd - 20) === SIG_EOCD64_LOCATOR) {
    const at = u64(b, eocd - 20 + 8) - base;
    if (at < 0 || u32(b, at) !== SIG_EOCD64) throw new Exceeded('the ZIP64 directory is outside the part of the archive the kiosk can check');
    count = u64(b, at + 32);
    cdSize = u64(b, at + 40);
    cdOffset = u64(b, at + 48);
  }
  let p = cdOffset - base;
  if (p < 0 || p + cdSize > b.length) throw new Exceeded('the central directory is too large or misplaced to check');
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    if (u32(b, p) !== SIG_CENTRAL) throw new Exceeded('the central directory is malformed');
    const flags = u16(b, p + 8);
    const method = u16(b, p + 10);
    let compressedSize = u32(b, p + 20);
    let size = u32(b, p + 24);
    const nameLength = u16(b, p + 28);
    const extraLength = u16(b, p + 30);
    const commentLength = u16(b, p + 32);
    let localOffset = u32(b, p + 42);
    const name = b.subarray(p + 46, p + 46 + nameLength).toString('latin1');
    // ZIP64 extended information (0x0001) holds the fields saturated at 0xffffffff, in this order.
    let x = p + 46 + nameLength;
    const extraEnd = x + extraLength;
    while (x + 4 <= extraEnd) {
      const id = u16(b, x);
      const len = u16(b, x + 2);
      if (id === 0x0001) {
        let f = x + 4;
        if (size === 0xffffffff) { size = u64(b, f); f += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(b, f); f += 8; }
        if (localOffset === 0xffffffff) { localOffset = u64(b, f); }
      }
      x += 4 + len;
    }
    entries.push({ name, method, flags, compressedSize, size, localOffset });
    p = extraEnd + commentLength;
  }
  return entries;
}

interface Budget {
  entries: number;
  bytes: number;
}

function checkLevel(b: Buffer, base: number, whole: boolean, depth: number, path: string, limits: ZipLimits, budget: Budget): void {
  const entries = readCentralDirectory(b, base);
  if (entries === null) return; // not a readable zip: ClamAV's own parser decides
  budget.entries += entries.length;
  if (budget.entries > limits.maxEntries) throw new Exceeded(`more than ${limits.maxEntries} entries in the archive`);
  for (const e of entries) {
    const where = `${path}${e.name}`;
    budget.bytes += e.size;
    if (e.size > limits.maxEntryBytes) {
      throw new Exceeded(`${where} unpacks to ${e.size} bytes, over the ${limits.maxEntryBytes}-byte limit ClamAV would silently skip`);
    }
    if (budget.bytes > limits.maxTotalBytes) throw new Exceeded(`the archive unpacks to more than ${limits.maxTotalBytes} bytes`);
    if (e.size >= RATIO_FLOOR && e.size > limits.maxRatio * Math.max(1, e.compressedSize)) {
      throw new Exceeded(`${where} compresses ${Math.round(e.size / Math.max(1, e.compressedSize))}:1, over the ${limits.maxRatio}:1 limit (decompression bomb)`);
    }
  }
  if (!whole) return;
  // Entries sharing bytes are a non-recursive bomb (Fifield 2019): data ranges must not overlap.
  const sorted = [...entries].sort((x, y) => x.localOffset - y.localOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (sorted[i]!.localOffset < prev.localOffset + 30 + prev.compressedSize) throw new Exceeded('archive entries overlap (a decompression bomb)');
  }
  for (const e of entries) {
    if ((e.flags & 1) !== 0 || (e.method !== 0 && e.method !== 8)) continue; // encrypted or other methods: ClamAV reports these
    const local = e.localOffset - base;
    if (u32(b, local) !== SIG_LOCAL) throw new Exceeded(`${path}${e.name}: local header missing`);
    const dataAt = local + 30 + u16(b, local + 26) + u16(b, local + 28);
    const data = b.subarray(dataAt, dataAt + e.compressedSize);
    if (data.length !== e.compressedSize) throw new Exceeded(`${path}${e.name}: the archive is truncated`);
    // Only nested zips are unpacked here; everything else is ClamAV's job.
    const head = e.method === 0 ? data.subarray(0, 4) : null;
    const looksZip = e.name.toLowerCase().endsWith('.zip') || (head !== null && head.length === 4 && head.readUInt32LE(0) === SIG_LOCAL);
    if (!looksZip) continue;
    if (depth + 1 > limits.maxDepth) throw new Exceeded(`archives nested deeper than ${limits.maxDepth} levels`);
    if (e.size > limits.inspectMaxBytes) throw new Exceeded(`${path}${e.name}: a nested archive too large to check (${e.size} bytes)`);
    let inner: Buffer;
    try {
      inner = e.method === 0 ? Buffer.from(data) : inflateRawSync(data, { maxOutputLength: e.size + 1 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new Exceeded(`${path}${e.name} unpacks to more than its declared ${e.size} bytes`);
      continue; // corrupt data: ClamAV's parser reports it
    }
    if (inner.length !== e.size) throw new Exceeded(`${path}${e.name} unpacks to ${inner.length} bytes, not its declared ${e.size}`);
    checkLevel(inner, 0, true, depth + 1, `${path}${e.name}/`, limits, budget);
  }
}

/** Watches one file's chunks; `finish()` returns the findings. */
export class ZipBombCheck {
  private readonly limits: ZipLimits;
  private readonly size: number;
  private readonly whole: boolean;
  private readonly chunks: Buffer[] = [];
  private seen = 0;

  constructor(size: number, limits: ZipLimits) {
    this.size = size;
    this.limits = limits;
    this.whole = size <= limits.inspectMaxBytes;
  }

  push(chunk: Uint8Array): void {
    const start = this.seen;
    this.seen += chunk.length;
    if (this.whole) {
      this.chunks.push(Buffer.from(chunk)); // a copy: the reader reuses its buffer
      return;
    }
    // Keep only what falls in the file's last TAIL_BYTES.
    const tailStart = Math.max(0, this.size - TAIL_BYTES);
    if (this.seen <= tailStart) return;
    const from = Math.max(0, tailStart - start);
    this.chunks.push(Buffer.from(chunk.subarray(from))); // a copy: the reader reuses its buffer
  }

  finish(): ZipFinding[] {
    const data = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    const base = this.whole ? 0 : this.seen - data.length;
    try {
      checkLevel(data, base, this.whole, 1, '', this.limits, { entries: 0, bytes: 0 });
      return [];
    } catch (error) {
      if (error instanceof Exceeded) return [{ code: 'LIMIT_EXCEEDED', detail: error.message }];
      throw error;
    }
  }
}

/** Whether a file's first bytes are a ZIP local header (the check applies). */
export function isZipHead(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}
