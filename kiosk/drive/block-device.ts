/**
 * Byte-addressed access to a volume: an image file, a block device or bytes in
 * memory. The FAT and exFAT parsers only see this interface, so they stay pure
 * and are tested on in-memory volumes as well as real images.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync, fsyncSync, constants } from 'node:fs';
import { MediaError } from './errors.ts';

export interface BlockDevice {
  /** Size of the device in bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; throws MEDIA_IO past the end. */
  read(offset: number, length: number): Uint8Array;
  /** Writes all of `bytes` at `offset`; read-only devices throw MEDIA_IO. */
  write(offset: number, bytes: Uint8Array): void;
}

function assertRange(size: number, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new MediaError('MEDIA_IO', `${what} of ${length} bytes at ${offset} is outside the ${size}-byte volume`);
  }
}

/** A device over bytes already in memory (tests, small crafted volumes). */
export function memoryBlockDevice(bytes: Uint8Array, options: { writable?: boolean } = {}): BlockDevice {
  return {
    size: bytes.length,
    read(offset, length) {
      assertRange(bytes.length, offset, length, 'read');
      return bytes.slice(offset, offset + length);
    },
    write(offset, data) {
      if (options.writable !== true) throw new MediaError('MEDIA_IO', 'write to a read-only in-memory volume');
      assertRange(bytes.length, offset, data.length, 'write');
      bytes.set(data, offset);
    },
  };
}

export interface FileBlockDevice extends BlockDevice {
  /** The open file descriptor (read-only opens hand it to the sandboxed volume reader as its standard input). */
  readonly fd: number;
  /** Flushes writes to stable storage (fsync). */
  sync(): void;
  close(): void;
}

/**
 * Opens an image file or block device. Read-only opens use O_RDONLY, so a
 * scan can never change the drive; O_NOFOLLOW refuses a symlink planted at the
 * path; O_NONBLOCK keeps a FIFO planted there (a watched folder takes whatever
 * is dropped in it) from blocking the kiosk until someone writes to it, and
 * anything but a regular file or a block device is refused.
 */
export function openFileBlockDevice(path: string, mode: 'read-only' | 'read-write'): FileBlockDevice {
  const flags = (mode === 'read-only' ? constants.O_RDONLY : constants.O_RDWR) | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (cause) {
    throw new MediaError('MEDIA_IO', `${path}: cannot open (${(cause as Error).message})`, { cause });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() && !stat.isBlockDevice()) throw new MediaError('MEDIA_IO', `${path}: not an image file or a block device`);
    return fdBlockDevice(fd, path, mode);
  } catch (cause) {
    closeSync(fd);
    throw cause;
  }
}

/**
 * A device over a descriptor opened elsewhere (the volume reader's standard
 * input in its sandbox). `name` only labels errors; close() closes `fd`.
 */
export function fdBlockDevice(fd: number, name: string, mode: 'read-only' | 'read-write'): FileBlockDevice {
  const stat = fstatSync(fd);
  const size = stat.isBlockDevice() ? blockDeviceSize(fd) : stat.size;
  let open = true;
  const checkOpen = (): void => {
    if (!open) throw new MediaError('MEDIA_IO', `${name}: device already closed`);
  };
  return {
    fd,
    size,
    read(offset, length) {
      checkOpen();
      assertRange(size, offset, length, `${name}: read`);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) throw new MediaError('MEDIA_IO', `${name}: unexpected end of data at ${offset + done}`);
        done += n;
      }
      return out;
    },
    write(offset, data) {
      checkOpen();
      if (mode === 'read-only') throw new MediaError('MEDIA_IO', `${name}: opened read-only`);
      assertRange(size, offset, data.length, `${name}: write`);
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, offset + done);
    },
    sync() {
      checkOpen();
      fsyncSync(fd);
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** A block device's size: fstat reports 0, so find the end by probing reads (no ioctl from Node). */
function blockDeviceSize(fd: number): number {
  const probe = new Uint8Array(1);
  let low = 0; // a readable offset + 1
  let high = 1;
  while (readSync(fd, probe, 0, 1, high - 1) === 1) {
    low = high;
    high *= 2;
    if (high > 2 ** 52) throw new MediaError('MEDIA_IO', 'block device size probe did not end');
  }
  // Invariant: byte low-1 is readable (or low = 0), byte high-1 is not.
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (readSync(fd, probe, 0, 1, mid - 1) === 1) low = mid;
    else high = mid;
  }
  return low;
}
