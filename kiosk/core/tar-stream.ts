/**
 * A strict reader for tar streams: archives found on a drive (POSIX ustar
 * and pax, GNU tar's format, pre-POSIX "v7" tar) and the pax stream the
 * kiosk's sandboxed 7-Zip extraction is repacked as. Pure: bytes in, members
 * out. The bytes are hostile, so every header checksum, length and record is
 * checked, sizes are bounded, and anything tools could read two ways throws
 * TarStreamError (the file is then not inspected, never passed):
 *
 * - a GNU long name and a pax path for one member (libarchive takes one, GNU
 *   tar and 7-Zip the other); a NUL inside a pax value; a key twice in one
 *   pax header; a global pax header that sets a path, link path or size
 *   (GNU tar applies it, libarchive ignores it);
 * - a lone zero block, or anything but zero bytes after the end-of-archive
 *   blocks (where `tar -i` would find more members);
 * - a directory, link or special member with a size in its header or a pax
 *   `size` (GNU tar reads the next header right after it, libarchive and
 *   7-Zip first skip that many bytes: a member only they see);
 * - a GNU volume header (`V`) or dump directory (`D`) carrying data (GNU tar
 *   skips it, 7-Zip extracts a `V` as a file);
 * - a pax record whose length is not decimal digits (`0x15`, `21.0`, `+21`:
 *   JavaScript's Number() reads them, libarchive and GNU tar refuse the
 *   record) or whose key holds anything but letters, digits, `.`, `_` and
 *   `-` (GNU tar reads " path" as `path`);
 * - anything but zero bytes in the padding after a member's data or an
 *   extended header's records, and in the unused tail of a ustar or v7
 *   header (room for a zip whose end record ends the file);
 * - multi-volume and old-GNU long-name members.
 *
 * Layout: POSIX.1-2001 (ustar and pax Interchange Format); GNU tar's manual,
 * "Basic Tar Format" (magic "ustar  \0", types L, K, S, D, V, M, N).
 */

const BLOCK = 512; // bytes
const MAX_PAX_BYTES = 1024 * 1024; // bytes of one pax header's records
const MAX_NAME_BYTES = 64 * 1024; // bytes of a member's path

export class TarStreamError extends Error {
  override readonly name = 'TarStreamError';
}

export type TarMemberKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarMember {
  readonly kind: TarMemberKind;
  /** The member's path as raw bytes (pax `path` when present, else ustar prefix/name). */
  readonly name: Uint8Array;
  /** bytes of content (0 for anything but files) */
  readonly size: number;
  /** Sparse members (GNU.sparse.* records) store a map, not the file's bytes. */
  readonly sparse: boolean;
  /** The typeflag byte, for messages about kinds the kiosk does not take. */
  readonly typeflag: string;
  /**
   * The member's content in pieces (each valid until the next is pulled).
   * Read it before asking for the next member, or it is skipped.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteSource {
  readonly #chunks: AsyncIterator<Uint8Array>;
  #buffer: Uint8Array = new Uint8Array(0);
  #offset = 0;
  #done = false;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.#chunks = chunks[Symbol.asyncIterator]();
  }

  get buffered(): number {
    return this.#buffer.length - this.#offset;
  }

  /** Fills the buffer; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#done) return false;
    const step = await this.#chunks.next();
    if (step.done === true) {
      this.#done = true;
      return false;
    }
    const rest = this.#buffer.subarray(this.#offset);
    if (rest.length === 0) {
      // Nothing left over: take the chunk as it is (the source never reuses a chunk it has given).
      this.#buffer = step.value;
    } else {
      const joined = new Uint8Array(rest.length + step.value.length);
      joined.set(rest, 0);
      joined.set(step.value, rest.length);
      this.#buffer = joined;
    }
    this.#offset = 0;
    return true;
  }

  /** Exactly `n` bytes (a copy), or null when the stream ends first at a block boundary with nothing read. */
  async exact(n: number): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (!(await this.#fill())) {
        if (this.buffered === 0) return null;
        throw new TarStreamError(`the stream ended inside a block (${this.buffered} of ${n} bytes)`);
      }
    }
    const out = this.#buffer.slice(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  /** Up to `n` bytes already available (reading more when none are), as a view; empty at the end. */
  async upTo(n: number): Promise<Uint8Array> {
    if (this.buffered === 0 && !(await this.#fill())) return new Uint8Array(0);
    const take = Math.min(n, this.buffered);
    const out = this.#buffer.subarray(this.#offset, this.#offset + take);
    this.#offset += take;
    return out;
  }

  /** Whether only zero bytes remain. */
  async restIsZero(): Promise<boolean> {
    for (;;) {
      for (let i = this.#offset; i < this.#buffer.length; i++) if (this.#buffer[i] !== 0) return false;
      this.#offset = this.#buffer.length;
      if (!(await this.#fill())) return true;
    }
  }

  async close(): Promise<void> {
    await this.#chunks.return?.();
  }
}

function field(block: Uint8Array, at: number, length: number): Uint8Array {
  const raw = block.subarray(at, at + length);
  const nul = raw.indexOf(0);
  return nul < 0 ? raw : raw.subarray(0, nul);
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

/** An octal number field (NUL- or space-terminated), or base-256 when the first byte has its high bit set. */
function number(block: Uint8Array, at: number, length: number, what: string): number {
  const raw = block.subarray(at, at + length);
  if ((raw[0]! & 0x80) !== 0) {
    if (raw[0] !== 0x80) throw new TarStreamError(`${what}: negative or oversized base-256 number`);
    let value = 0;
    for (let i = 1; i < raw.length; i++) {
      value = value * 256 + raw[i]!;
      if (!Number.isSafeInteger(value)) throw new TarStreamError(`${what}: number too large`);
    }
    return value;
  }
  const digits = text(raw).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw new TarStreamError(`${what}: not an octal number (${JSON.stringify(digits)})`);
  const value = parseInt(digits, 8);
  if (!Number.isSafeInteger(value)) throw new TarStreamError(`${what}: number too large`);
  return value;
}

/** The header checksum: unsigned, or signed as some old tars wrote it (GNU tar accepts both). */
function checksumOk(block: Uint8Array): boolean {
  const stored = number(block, 148, 8, 'header checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

type HeaderFormat = 'posix' | 'gnu' | 'v7';

function headerFormat(block: Uint8Array): HeaderFormat {
  const magic = text(block.subarray(257, 265));
  if (magic === 'ustar\u000000') return 'posix';
  if (magic === 'ustar  \u0000') return 'gnu';
  if (block.subarray(257, 265).every((b) => b === 0)) return 'v7';
  throw new TarStreamError('not a ustar, GNU or v7 tar header');
}

/** The data of a GNU long-name member ('L', 'K'): the name, NUL-terminated. */
function longName(data: Uint8Array): Uint8Array {
  const nul = data.indexOf(0);
  const name = nul < 0 ? data : data.subarray(0, nul);
  if (nul >= 0 && data.subarray(nul).some((b) => b !== 0)) throw new TarStreamError('bytes after the NUL of a GNU long name');
  return name.slice();
}

interface PaxRecords {
  path?: Uint8Array;
  linkpath?: Uint8Array;
  size?: number;
  sparse: boolean;
}

/** Parses "<length> <key>=<value>\n" records; values are raw bytes. */
function parsePax(data: Uint8Array, into: PaxRecords): void {
  const seen = new Set<string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 10) throw new TarStreamError('pax record without a length');
    // POSIX.1-2001 pax: "%d %s=%s\n", the length in decimal digits only (Number() would take 0x15, 21.0 and +21).
    const digits = text(data.subarray(at, space));
    if (!/^[0-9]+$/.test(digits)) throw new TarStreamError(`pax record length ${JSON.stringify(digits)} is not decimal digits`);
    const length = parseInt(digits, 10);
    if (length <= space - at + 1 || at + length > data.length) throw new TarStreamError('pax record length out of range');
    const record = data.subarray(space + 1, at + length);
    if (record[record.length - 1] !== 0x0a) throw new TarStreamError('pax record not ended by a newline');
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarStreamError('pax record without a key');
    const key = text(record.subarray(0, eq));
    // Keys are names like path, size, SCHILY.xattr.user.x; GNU tar reads " path" (a blank after the length) as path.
    if (!/^[A-Za-z0-9._-]+$/.test(key)) throw new TarStreamError(`the pax key ${JSON.stringify(key.slice(0, 40))} holds characters no key has`);
    const value = record.subarray(eq + 1, record.length - 1);
    if (seen.has(key)) throw new TarStreamError(`the pax key ${JSON.stringify(key.slice(0, 40))} twice in one header`);
    seen.add(key);
    if (value.includes(0)) throw new TarStreamError(`a NUL byte inside the pax value of ${JSON.stringify(key.slice(0, 40))}`);
    if (key === 'path') into.path = value.slice();
    else if (key === 'linkpath') into.linkpath = value.slice();
    else if (key === 'size') {
      const digits = text(value);
      if (!/^[0-9]{1,16}$/.test(digits)) throw new TarStreamError('pax size is not a decimal number');
      into.size = Number(digits);
      if (!Number.isSafeInteger(into.size)) throw new TarStreamError('pax size too large');
    } else if (key.startsWith('GNU.sparse.')) into.sparse = true;
    at += length;
  }
}

const KINDS: Readonly<Record<string, TarMemberKind>> = { '0': 'file', '\0': 'file', '7': 'file', '5': 'directory', '2': 'symlink', '1': 'hardlink' };
/** Types that name a special file: no data, judged NOT_REGULAR_FILE. */
const SPECIAL_TYPES = new Set(['3', '4', '6']);

/**
 * The members of a tar stream, in order. Throws TarStreamError on anything
 * malformed, including a stream that ends without the two zero blocks.
 */
export async function* readTarStream(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<TarMember> {
  const source = new ByteSource(chunks);
  const readData = async (size: number, what: string): Promise<Uint8Array> => {
    const data = await source.exact(Math.ceil(size / BLOCK) * BLOCK);
    if (data === null) throw new TarStreamError(`the stream ended inside ${what}`);
    if (!isZero(data.subarray(size))) throw new TarStreamError(`bytes other than zero in the padding after ${what}`);
    return data.subarray(0, size);
  };
  try {
    let pax: PaxRecords = { sparse: false };
    let paxPending = false;
    let gnuName: Uint8Array | null = null;
    let gnuLink: Uint8Array | null = null;
    for (;;) {
      const block = await source.exact(BLOCK);
      if (block === null) throw new TarStreamError('the stream ended without the end-of-archive blocks');
      if (block.every((b) => b === 0)) {
        const second = await source.exact(BLOCK);
        if (second === null || !second.every((b) => b === 0)) throw new TarStreamError('a lone zero block inside the stream');
        if (paxPending || gnuName !== null || gnuLink !== null) throw new TarStreamError('an extended header with no member after it');
        if (!(await source.restIsZero())) throw new TarStreamError('data after the end-of-archive blocks');
        return;
      }
      if (!checksumOk(block)) throw new TarStreamError('header checksum mismatch');
      const format = headerFormat(block);
      // What no field uses: the rest of a v7 header after its link name (GNU tar --format=v7 fills in only
      // devmajor and devminor there), a ustar header's last 12 bytes.
      if (format === 'v7' && !(isZero(block.subarray(257, 329)) && isZero(block.subarray(345)))) throw new TarStreamError('bytes other than zero after the fields of a v7 tar header');
      if (format === 'posix' && !isZero(block.subarray(500))) throw new TarStreamError('bytes other than zero in the unused end of a ustar header');
      const typeflag = String.fromCharCode(block[156]!);
      const headerSize = number(block, 124, 12, 'size');
      if (format !== 'v7' && (typeflag === 'x' || typeflag === 'g')) {
        if (headerSize > MAX_PAX_BYTES) throw new TarStreamError(`a pax header of ${headerSize} bytes`);
        const data = await readData(headerSize, 'a pax header');
        if (typeflag === 'g') {
          const global: PaxRecords = { sparse: false };
          parsePax(data, global);
          if (global.path !== undefined || global.linkpath !== undefined || global.size !== undefined || global.sparse) {
            throw new TarStreamError('a global pax header that sets a path, link or size (GNU tar applies it, libarchive ignores it)');
          }
          continue;
        }
        if (paxPending) throw new TarStreamError('two pax headers in a row');
        parsePax(data, pax);
        paxPending = true;
        continue;
      }
      if (format === 'gnu' && (typeflag === 'L' || typeflag === 'K')) {
        if (headerSize > MAX_NAME_BYTES) throw new TarStreamError(`a GNU long name of ${headerSize} bytes`);
        const name = longName(await readData(headerSize, 'a GNU long name'));
        if (typeflag === 'L') {
          if (gnuName !== null) throw new TarStreamError('two GNU long names in a row');
          gnuName = name;
        } else {
          if (gnuLink !== null) throw new TarStreamError('two GNU long link names in a row');
          gnuLink = name;
        }
        continue;
      }
      if (format === 'gnu' && (typeflag === 'M' || typeflag === 'N')) throw new TarStreamError(`a GNU ${typeflag === 'M' ? 'multi-volume' : 'old long-name'} member`);
      if (gnuName !== null && pax.path !== undefined) {
        throw new TarStreamError('a member named by both a GNU long name and a pax path (tools disagree on which counts)');
      }
      const prefix = format === 'posix' ? field(block, 345, 155) : new Uint8Array(0);
      const short = field(block, 0, 100);
      const name = pax.path ?? gnuName ?? (prefix.length > 0 ? Buffer.concat([prefix, Buffer.from('/'), short]) : short.slice());
      if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new TarStreamError('a member name that is empty or too long');
      // GNU dump-directory and volume-label members name no file: skipped when empty, refused when they carry data (7-Zip extracts a V as a file).
      const skipped = format === 'gnu' && (typeflag === 'D' || typeflag === 'V');
      const sparseType = format === 'gnu' && typeflag === 'S';
      const kind: TarMemberKind = sparseType ? 'file' : KINDS[typeflag] ?? 'other';
      if (kind === 'other' && !SPECIAL_TYPES.has(typeflag) && !skipped) throw new TarStreamError(`a member of unknown type ${JSON.stringify(typeflag)}`);
      const size = pax.size ?? headerSize;
      // Only regular files carry data. A folder, link or special member with a size in either place is read
      // two ways: GNU tar reads the next header right after it, libarchive and 7-Zip skip the size first.
      if (kind !== 'file' && (headerSize !== 0 || (pax.size ?? 0) !== 0)) {
        throw new TarStreamError(`a ${skipped ? `GNU ${typeflag === 'V' ? 'volume header' : 'dump directory'}` : kind === 'other' ? `special member (type ${JSON.stringify(typeflag)})` : kind} member with a size (${headerSize} in its header${pax.size === undefined ? '' : `, ${pax.size} in its pax header`})`);
      }
      const dataBytes = kind === 'file' ? size : 0;
      const sparse = pax.sparse || sparseType;
      pax = { sparse: false };
      paxPending = false;
      gnuName = null;
      gnuLink = null;
      let left = dataBytes;
      const body: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          while (left > 0) {
            const piece = await source.upTo(Math.min(left, 1024 * 1024));
            if (piece.length === 0) throw new TarStreamError('the stream ended inside a member');
            left -= piece.length;
            yield piece;
          }
        },
      };
      if (!skipped) yield { kind, name, size: kind === 'file' ? size : 0, sparse, typeflag, body };
      // Whatever the consumer left unread is skipped, then the padding.
      while (left > 0) {
        const piece = await source.upTo(Math.min(left, 1024 * 1024));
        if (piece.length === 0) throw new TarStreamError('the stream ended inside a member');
        left -= piece.length;
      }
      const padding = (BLOCK - (dataBytes % BLOCK)) % BLOCK;
      if (padding > 0) {
        const pad = await source.exact(padding);
        if (pad === null) throw new TarStreamError('the stream ended inside padding');
        if (!isZero(pad)) throw new TarStreamError('bytes other than zero in the padding after a member');
      }
    }
  } finally {
    await source.close();
  }
}
