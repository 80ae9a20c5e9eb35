/**
 * A strict reader for the tar stream the kiosk's extractor writes (bsdtar
 * `--format=pax`: POSIX.1-2001 pax extended headers before ustar headers).
 * Pure: bytes in, members out. The stream comes out of a sandbox that parsed
 * a hostile archive, so it is hostile too: every header checksum, length and
 * record is checked, anything unexpected throws TarStreamError, and sizes are
 * bounded.
 *
 * Layout (POSIX.1-2001 "pax Interchange Format"): 512-byte blocks; a header
 * block, the member's data padded to a block; a pax 'x' header's data is
 * records "<length> <key>=<value>\n" that apply to the next header; the
 * archive ends with two zero blocks.
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
    const joined = new Uint8Array(rest.length + step.value.length);
    joined.set(rest, 0);
    joined.set(step.value, rest.length);
    this.#buffer = joined;
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

function checksumOk(block: Uint8Array): boolean {
  const stored = number(block, 148, 8, 'header checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === stored;
}

interface PaxRecords {
  path?: Uint8Array;
  linkpath?: Uint8Array;
  size?: number;
  sparse: boolean;
}

/** Parses "<length> <key>=<value>\n" records; values are raw bytes. */
function parsePax(data: Uint8Array, into: PaxRecords): void {
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 10) throw new TarStreamError('pax record without a length');
    const length = Number(text(data.subarray(at, space)));
    if (!Number.isSafeInteger(length) || length <= space - at + 1 || at + length > data.length) throw new TarStreamError('pax record length out of range');
    const record = data.subarray(space + 1, at + length);
    if (record[record.length - 1] !== 0x0a) throw new TarStreamError('pax record not ended by a newline');
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarStreamError('pax record without a key');
    const key = text(record.subarray(0, eq));
    const value = record.subarray(eq + 1, record.length - 1);
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

/**
 * The members of a tar stream, in order. Throws TarStreamError on anything
 * malformed, including a stream that ends without the two zero blocks.
 */
export async function* readTarStream(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<TarMember> {
  const source = new ByteSource(chunks);
  try {
    let pax: PaxRecords = { sparse: false };
    let paxPending = false;
    for (;;) {
      const block = await source.exact(BLOCK);
      if (block === null) throw new TarStreamError('the stream ended without the end-of-archive blocks');
      if (block.every((b) => b === 0)) {
        const second = await source.exact(BLOCK);
        if (second === null || !second.every((b) => b === 0)) throw new TarStreamError('a lone zero block inside the stream');
        if (paxPending) throw new TarStreamError('a pax header with no member after it');
        if (!(await source.restIsZero())) throw new TarStreamError('data after the end-of-archive blocks');
        return;
      }
      if (!checksumOk(block)) throw new TarStreamError('header checksum mismatch');
      if (text(block.subarray(257, 263)) !== 'ustar\0' || text(block.subarray(263, 265)) !== '00') {
        throw new TarStreamError('not a POSIX ustar header');
      }
      const typeflag = String.fromCharCode(block[156]!);
      const headerSize = number(block, 124, 12, 'size');
      if (typeflag === 'x' || typeflag === 'g') {
        if (headerSize > MAX_PAX_BYTES) throw new TarStreamError(`a pax header of ${headerSize} bytes`);
        const data = await source.exact(Math.ceil(headerSize / BLOCK) * BLOCK);
        if (data === null) throw new TarStreamError('the stream ended inside a pax header');
        if (typeflag === 'g') throw new TarStreamError('a global pax header (not written by the extractor)');
        if (paxPending) throw new TarStreamError('two pax headers in a row');
        parsePax(data.subarray(0, headerSize), pax);
        paxPending = true;
        continue;
      }
      const prefix = field(block, 345, 155);
      const short = field(block, 0, 100);
      const name = pax.path ?? (prefix.length > 0 ? Buffer.concat([prefix, Buffer.from('/'), short]) : short.slice());
      if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new TarStreamError('a member name that is empty or too long');
      const kind = KINDS[typeflag] ?? 'other';
      const size = pax.size ?? headerSize;
      // Only regular files carry data in a stream bsdtar writes; anything else with data is malformed.
      const dataBytes = kind === 'file' ? size : headerSize;
      if (kind !== 'file' && dataBytes !== 0) throw new TarStreamError(`a ${kind} member with ${dataBytes} bytes of data`);
      const sparse = pax.sparse;
      pax = { sparse: false };
      paxPending = false;
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
      yield { kind, name, size: kind === 'file' ? size : 0, sparse, typeflag, body };
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
      }
    }
  } finally {
    await source.close();
  }
}
