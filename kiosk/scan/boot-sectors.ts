/**
 * A drive's boot regions through the engines: the MBR, the GPT and each
 * volume's boot sectors (core/boot-regions.ts says which, the adapter reads
 * them) are scanned one region at a time, each as a stream of its own, by the
 * same scanner as the files. The outcome is a drive reason or none
 * (judgeBootRegions) and one result per region for the audit log. Fails
 * closed: regions that cannot be read are BOOT_SECTORS_UNCHECKED, an engine
 * that fails on them is that engine's failure, never a clean drive.
 */
import { createHash } from 'node:crypto';
import { PortcullisError } from '../../manifest/index.ts';
import { judgeBootRegions, type BootRegionBytes, type BootRegionResult } from '../core/boot-regions.ts';
import type { DriveReason } from '../core/decide.ts';
import type { ScannerFailure, StreamScanner } from '../core/ports.ts';

export interface BootCheck {
  readonly results: readonly BootRegionResult[];
  /** Why the drive may not pass because of its boot regions; null: every region scanned clean. */
  readonly reason: DriveReason | null;
}

/** One region as the one chunk of a stream. */
function once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      let given = false;
      return {
        next: (): Promise<IteratorResult<Uint8Array>> => {
          if (given) return Promise.resolve({ done: true, value: undefined });
          given = true;
          return Promise.resolve({ done: false, value: bytes });
        },
      };
    },
  };
}

export async function checkBootSectors(
  read: () => readonly BootRegionBytes[] | Promise<readonly BootRegionBytes[]>,
  scanner: StreamScanner,
  classifyScannerError: (error: unknown) => ScannerFailure | null,
  signal?: AbortSignal,
): Promise<BootCheck> {
  let regions: readonly BootRegionBytes[];
  try {
    regions = await read();
  } catch (error) {
    if (!(error instanceof PortcullisError)) throw error;
    return { results: [], reason: { code: 'BOOT_SECTORS_UNCHECKED', detail: `the boot sectors could not be read (${error.code}: ${error.message}); nothing on the drive may pass` } };
  }
  const results: BootRegionResult[] = [];
  for (const { region, device, bytes } of regions) {
    if (signal?.aborted) return { results, reason: { code: 'SCAN_ABORTED', detail: 'the scan stopped while the boot sectors were scanned' } };
    const base = { name: region.name, device, offset: region.offset, length: region.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    try {
      const answer = await scanner.scanStream(once(bytes), signal);
      results.push(answer.status === 'clean' ? { ...base, result: 'clean' } : { ...base, result: 'found', signature: answer.signature, finding: answer.reason });
    } catch (error) {
      if (signal?.aborted) return { results, reason: { code: 'SCAN_ABORTED', detail: 'the scan stopped while the boot sectors were scanned' } };
      const failure = classifyScannerError(error);
      if (!failure) throw error;
      return { results, reason: { code: failure.code, detail: `scanning ${region.name} of ${device}: ${failure.detail}` } };
    }
  }
  return { results, reason: judgeBootRegions(results) };
}
