/**
 * The volume reader's own process: the FAT and exFAT readers run here, inside
 * the sandbox volume-sandbox.ts starts (nobody, no network, no capabilities,
 * nothing of the kiosk's but this code, read-only), never in the kiosk.
 *
 *   node volume-child.ts '{"mode":"extract","limits":{...}}'  < image
 *
 * Standard input is the drive image, opened read-only by the kiosk. In
 * extract mode the files go into /out (the only writable folder, bound by the
 * kiosk), each created new (O_EXCL, O_NOFOLLOW), and only those whose names
 * a Linux folder can hold as themselves (host-names.ts): the kiosk checks the
 * folder against the listing afterwards. Standard output is one JSON report
 * (volume-listing.ts); exit 0 with a listing, 2 with a MediaError the reader
 * raised; anything else is a crash, which the kiosk refuses the drive for.
 */
import { closeSync, constants, mkdirSync, openSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fdBlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import { classifyEntries } from './host-names.ts';
import { identifyVolume } from './identity.ts';
import { openVolume } from './open-volume.ts';
import { CHILD_ERROR_CODES, encodeFailure, encodeListing, parseRequest, type ChildErrorCode, type ChildRequest } from './volume-listing.ts';
import type { VolumeEntry, VolumeReader } from './volume.ts';

const OUT = '/out';
const FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function extract(volume: VolumeReader, entries: readonly VolumeEntry[], request: ChildRequest): void {
  const total = entries.reduce((sum, entry) => sum + entry.size, 0);
  if (total > request.limits.maxTotalBytes) {
    throw new MediaError('MEDIA_LIMIT_EXCEEDED', `the volume holds ${total} bytes of files, more than the ${request.limits.maxTotalBytes} allowed`);
  }
  const space = statfsSync(OUT);
  if (total > space.bavail * space.bsize) {
    throw new MediaError('MEDIA_LIMIT_EXCEEDED', `the kiosk's work folder has ${space.bavail * space.bsize} bytes free, extraction needs ${total}`);
  }
  // Only names a host folder holds as themselves: no "/", "..", NUL or bad UTF-16 reaches join().
  for (const entry of classifyEntries(entries).representable) {
    const target = join(OUT, ...entry.names);
    if (entry.kind === 'directory') {
      mkdirSync(target, { mode: 0o700 });
      continue;
    }
    const fd = openSync(target, FILE_FLAGS, 0o600);
    try {
      for (const chunk of volume.fileChunks(entry)) {
        for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done);
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Reads the volume on standard input as `argv[0]` asks; returns the report and the exit code. */
export function runVolumeChild(argv: readonly string[]): { report: string; exitCode: number } {
  const request = parseRequest(argv[0]);
  const device = fdBlockDevice(0, 'the drive image', 'read-only');
  try {
    const volume = openVolume(device);
    const identity = identifyVolume(device);
    if (request.mode === 'identity') return { report: encodeListing(identity, null), exitCode: 0 };
    const entries = volume.walk(request.limits);
    if (request.mode === 'extract') extract(volume, entries, request);
    return { report: encodeListing(identity, entries), exitCode: 0 };
  } catch (error) {
    // The readers' own refusals go back by code; anything else is a crash (exit 1, stack on stderr).
    if (error instanceof MediaError && (CHILD_ERROR_CODES as readonly string[]).includes(error.code)) {
      return { report: encodeFailure(error.code as ChildErrorCode, error.message), exitCode: 2 };
    }
    throw error;
  } finally {
    device.close();
  }
}

if (import.meta.main) {
  const { report, exitCode } = runVolumeChild(process.argv.slice(2));
  process.stdout.write(report);
  process.exitCode = exitCode;
}
