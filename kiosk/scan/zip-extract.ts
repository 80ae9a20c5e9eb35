/**
 * The kiosk's own extraction of a zip, from the central directory it has
 * checked (zip-structure.ts): each entry's data is read where the checked
 * directory and local header say, inflated with zlib (stored and deflated
 * entries: what Windows and every common tool write), and its CRC-32 and
 * size are compared with the directory as it comes out. So what the kiosk
 * inspects is exactly the directory's view, the one Windows Explorer and
 * 7-Zip extract, and nothing a parser could be tricked into showing instead.
 * Any other method, a folder entry with data, a CRC or size that does not
 * match: the archive is not inspected (ZipExtractError).
 */
import { createReadStream } from 'node:fs';
import { createInflateRaw, crc32 } from 'node:zlib';
import type { TarMember, TarMemberKind } from '../core/tar-stream.ts';
import { decodeDosName, type ZipListing } from '../core/zip-structure.ts';

export class ZipExtractError extends Error {
  override readonly name = 'ZipExtractError';
}

const METHOD_NAMES: Readonly<Record<number, string>> = {
  1: 'shrink', 6: 'implode', 9: 'deflate64', 12: 'bzip2', 14: 'lzma', 93: 'zstd', 95: 'xz', 96: 'jpeg', 97: 'wavpack', 98: 'ppmd', 99: 'AES',
};
const UNIX_HOST = 3; // "version made by" high byte: the attributes' high 16 bits are a Unix mode
const S_IFMT = 0o170000;
const DOS_DIRECTORY = 0x10;

/** What an entry is: from its name (a trailing slash) and its attributes, which must not disagree. */
function entryKind(e: ZipListing, name: Uint8Array): { kind: TarMemberKind; typeflag: string } {
  const slash = name[name.length - 1] === 0x2f;
  const unixType = e.madeBy >>> 8 === UNIX_HOST ? (e.externalAttributes >>> 16) & S_IFMT : 0;
  const dosDirectory = (e.externalAttributes & DOS_DIRECTORY) !== 0;
  const unixDirectory = unixType === 0o040000;
  if (slash || dosDirectory || unixDirectory) {
    // 7-Zip takes the attribute, Explorer and libarchive the name: they must agree, and a folder holds no data.
    if (!slash || e.size !== 0 || e.packed > 2) throw new ZipExtractError(`${shownName(name)}: a folder entry with data, or a file marked as a folder`);
    return { kind: 'directory', typeflag: '5' };
  }
  if (unixType === 0o120000) return { kind: 'symlink', typeflag: '2' };
  if (unixType !== 0 && unixType !== 0o100000) return { kind: 'other', typeflag: `unix mode ${unixType.toString(8)}` };
  return { kind: 'file', typeflag: '0' };
}

function shownName(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name).toString('utf8')).slice(1, -1).slice(0, 200);
}

/** The entry's bytes as they are stored in the archive, in pieces. */
async function* storedBytes(path: string, e: ZipListing): AsyncGenerator<Uint8Array> {
  if (e.packed === 0) return;
  yield* createReadStream(path, { start: e.dataStart, end: e.dataStart + e.packed - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
}

/** The entry's content: stored or inflated, checked against its CRC-32 and size as it ends. */
async function* content(path: string, e: ZipListing, name: Uint8Array): AsyncGenerator<Uint8Array> {
  let crc = 0;
  let size = 0;
  const check = (chunk: Uint8Array): Uint8Array => {
    crc = crc32(chunk, crc);
    size += chunk.length;
    if (size > e.size) throw new ZipExtractError(`${shownName(name)} unpacks to more than the ${e.size} bytes its directory entry says`);
    return chunk;
  };
  if (e.method === 0) {
    if (e.packed !== e.size) throw new ZipExtractError(`${shownName(name)}: a stored entry whose packed and unpacked sizes differ`);
    for await (const chunk of storedBytes(path, e)) yield check(chunk);
  } else {
    const inflate = createInflateRaw({ chunkSize: 256 * 1024 });
    const input = storedBytes(path, e);
    // Feed the compressed bytes as the output is read, so a bomb is stopped by the reader's limits, not memory.
    const feeding = (async () => {
      try {
        for await (const chunk of input) {
          if (!inflate.write(chunk)) await new Promise<void>((resolve) => inflate.once('drain', resolve));
          if (inflate.destroyed) return;
        }
        inflate.end();
      } catch (error) {
        inflate.destroy(error instanceof Error ? error : new Error(String(error)));
      }
    })();
    try {
      for await (const chunk of inflate as AsyncIterable<Buffer>) yield check(chunk);
    } catch (error) {
      if (error instanceof ZipExtractError) throw error;
      throw new ZipExtractError(`${shownName(name)}: its deflated data is broken (${(error as Error).message})`);
    } finally {
      inflate.destroy();
      await input.return(undefined);
      await feeding;
    }
  }
  if (size !== e.size) throw new ZipExtractError(`${shownName(name)} unpacks to ${size} bytes, not the ${e.size} its directory entry says`);
  if ((crc >>> 0) !== (e.crc >>> 0)) throw new ZipExtractError(`${shownName(name)}: its content does not match the CRC-32 of its directory entry`);
}

/**
 * The zip's members in directory order, in the shape of tar members. The
 * names are UTF-8 bytes: taken as they are when flagged UTF-8, else read in
 * the DOS code page as Windows does. Throws ZipExtractError (through the
 * iteration) on anything the kiosk does not open.
 */
export function* zipMembers(path: string, listing: readonly ZipListing[]): Generator<TarMember> {
  for (const e of listing) {
    const name = e.utf8Name ? e.name : Buffer.from(decodeDosName(e.name), 'utf8');
    const { kind, typeflag } = entryKind(e, name);
    if (kind === 'file' && e.method !== 0 && e.method !== 8) {
      throw new ZipExtractError(`${shownName(name)}: compression method ${e.method}${METHOD_NAMES[e.method] ? ` (${METHOD_NAMES[e.method]})` : ''} is not one the kiosk opens (stored, deflate)`);
    }
    const body: AsyncIterable<Uint8Array> = kind === 'file' ? { [Symbol.asyncIterator]: () => content(path, e, name) } : { async *[Symbol.asyncIterator]() {} };
    yield { kind, name, size: kind === 'file' ? e.size : 0, sparse: false, typeflag, body };
  }
}
