/**
 * The real clamd (Debian's clamav-daemon) with the project's test signature
 * database, started once for this file with small limits so bombs stay quick.
 * Every detection and limit is checked through both ways the kiosk hands
 * clamd a file's bytes: INSTREAM over the socket, and a spool file clamd SCANs.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClamdClient, classifyClamdSignature, type ScanResult } from '../../kiosk/engines/clamav/client.ts';
import { SpoolScanner } from '../../kiosk/engines/clamav/spool.ts';
import { scannerErrorCodeOf, startTestClamd, type TestClamd } from '../support/test-clamd.ts';
import { EICAR, MALWARE_MARKER, TEST_SIGNATURES, YARA_MARKER } from '../../kiosk/engines/clamav/test-database.ts';
import {
  cleanZip,
  eicarZip,
  encryptedZip,
  manyFilesZip,
  manyZeroEntriesZip,
  nestZip,
  zeroBombGzip,
  zeroBombZip,
} from '../fixtures/archives/corpus.ts';
import { buildZip } from '../fixtures/archives/zip.ts';

const MiB = 1024 * 1024;
const LIMITS = {
  maxRecursion: 5, // levels
  maxFiles: 100, // files
  maxFileSize: 16 * MiB, // bytes (and StreamMaxLength)
  maxScanSize: 64 * MiB, // bytes
};
const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

let clamd: TestClamd;
let spool: SpoolScanner;

beforeAll(async () => {
  clamd = await startTestClamd({ limits: LIMITS, disableCache: true });
  spool = await SpoolScanner.create(join(clamd.baseDir, 'spool'), clamd.client);
});

afterAll(async () => {
  await clamd?.dispose();
});

/** `bytes` as chunks of `size` bytes, like a drive read loop. */
function chunksOf(bytes: Uint8Array, size = 64 * 1024): AsyncIterable<Uint8Array> {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < bytes.byteLength; offset += size) yield bytes.subarray(offset, offset + size);
    })(),
  );
}

type Transport = 'instream' | 'spool';
const TRANSPORTS: readonly Transport[] = ['instream', 'spool'];

function scanBy(transport: Transport, bytes: Uint8Array, size?: number): Promise<ScanResult> {
  return transport === 'instream' ? clamd.client.scanStream(chunksOf(bytes, size)) : spool.scan(chunksOf(bytes, size));
}

function scan(bytes: Uint8Array, size?: number): Promise<ScanResult> {
  return scanBy('instream', bytes, size);
}

function reasonOf(result: ScanResult): string {
  return result.status === 'found' ? classifyClamdSignature(result.signature) : 'clean';
}

describe.each(TRANSPORTS)('clamd finds the test signatures (%s)', (transport) => {
  const scan = (bytes: Uint8Array, size?: number): Promise<ScanResult> => scanBy(transport, bytes, size);

  it('finds EICAR sent as one chunk', async () => {
    const result = await scan(EICAR);
    expect(result).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
    expect(reasonOf(result)).toBe('MALWARE');
  });

  it('finds EICAR sent one byte per chunk', async () => {
    expect(await scan(EICAR, 1)).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
  });

  it('finds EICAR in a zip under an innocent name', async () => {
    const renamed = await buildZip([{ name: 'invoice.pdf', data: EICAR }]);
    expect(await scan(renamed)).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
  });

  it('finds EICAR in a zip and in a zip inside a zip', async () => {
    expect(await scan(await eicarZip())).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
    expect(await scan(await nestZip(await eicarZip(), 1))).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
  });

  it('finds the body marker in the middle of a larger file, across a chunk boundary', async () => {
    const file = new Uint8Array(3 * MiB).fill(0x41);
    file.set(ascii(MALWARE_MARKER), 64 * 1024 - 10); // straddles the first 64 KiB chunk boundary
    expect(await scan(file)).toEqual({ status: 'found', signature: TEST_SIGNATURES.marker });
  });

  it('reports a YARA rule match as YARA_MATCH', async () => {
    const result = await scan(ascii(`report ${YARA_MARKER} end`));
    expect(result).toEqual({ status: 'found', signature: TEST_SIGNATURES.yara });
    expect(reasonOf(result)).toBe('YARA_MATCH');
  });
});

describe.each(TRANSPORTS)('clamd on archives at and past its limits (%s)', (transport) => {
  const scan = (bytes: Uint8Array, size?: number): Promise<ScanResult> => scanBy(transport, bytes, size);

  it(`finds EICAR ${LIMITS.maxRecursion - 1} zip levels deep, just inside MaxRecursion`, async () => {
    expect(await scan(await nestZip(await eicarZip(), LIMITS.maxRecursion - 2))).toEqual({
      status: 'found',
      signature: TEST_SIGNATURES.eicar,
    });
  });

  it(`reports LIMIT_EXCEEDED for EICAR ${LIMITS.maxRecursion} zip levels deep, past MaxRecursion`, async () => {
    const result = await scan(await nestZip(await eicarZip(), LIMITS.maxRecursion - 1));
    expect(result).toEqual({ status: 'found', signature: 'Heuristics.Limits.Exceeded.MaxRecursion' });
    expect(reasonOf(result)).toBe('LIMIT_EXCEEDED');
  });

  it('reports ENCRYPTED for an encrypted zip even when its content is harmless', async () => {
    const result = await scan(await encryptedZip());
    expect(result).toEqual({ status: 'found', signature: 'Heuristics.Encrypted.Zip' });
    expect(reasonOf(result)).toBe('ENCRYPTED');
  });

  it('reports LIMIT_EXCEEDED for a gzip of 256 MiB of zeros (MaxFileSize)', async () => {
    const result = await scan(zeroBombGzip(256 * MiB));
    expect(result).toEqual({ status: 'found', signature: 'Heuristics.Limits.Exceeded.MaxFileSize' });
  });

  it('reports LIMIT_EXCEEDED for a zip whose entries together inflate past MaxScanSize', async () => {
    const bomb = await manyZeroEntriesZip(6, 15 * MiB); // 90 MiB in entries under MaxFileSize each
    expect(await scan(bomb)).toEqual({ status: 'found', signature: 'Heuristics.Limits.Exceeded.MaxScanSize' });
  });

  it('reports LIMIT_EXCEEDED for a zip with more entries than MaxFiles', async () => {
    expect(await scan(await manyFilesZip(LIMITS.maxFiles + 50))).toEqual({
      status: 'found',
      signature: 'Heuristics.Limits.Exceeded.MaxFiles',
    });
  });

  // KNOWN GAP in ClamAV 1.4 (cli_unzip: "trimming output size to maxfilesize"): a zip entry that inflates past
  // MaxFileSize is cut to MaxFileSize and the rest is never scanned, with no Heuristics.Limits.Exceeded alert.
  // These two tests pin that behaviour; the kiosk bounds inflated zip entry sizes itself. If they start failing,
  // ClamAV has closed the gap.
  it('KNOWN GAP: answers clean for a zip of one 256 MiB entry of zeros (no limit alert)', async () => {
    expect(await scan(await zeroBombZip(256 * MiB))).toEqual({ status: 'clean' });
  });

  it('KNOWN GAP: misses the marker placed after MaxFileSize inside one zip entry, yet finds it before', async () => {
    const marker = ascii(MALWARE_MARKER);
    expect(await scan(await zeroBombZip(LIMITS.maxFileSize - 1024, marker))).toEqual({
      status: 'found',
      signature: TEST_SIGNATURES.marker,
    });
    expect(await scan(await zeroBombZip(LIMITS.maxFileSize + 1024, marker))).toEqual({ status: 'clean' });
  });
});

describe.each(TRANSPORTS)('clamd on harmless input (%s)', (transport) => {
  const scan = (bytes: Uint8Array, size?: number): Promise<ScanResult> => scanBy(transport, bytes, size);

  it('answers clean for a harmless text file and a harmless zip', async () => {
    expect(await scan(ascii('Portcullis: plant maintenance notes\n'.repeat(1000)))).toEqual({ status: 'clean' });
    expect(await scan(await cleanZip())).toEqual({ status: 'clean' });
  });

  it('answers clean for an empty stream', async () => {
    expect(await scan(new Uint8Array(0))).toEqual({ status: 'clean' });
  });

  it('scans streams at the same time and keeps their answers apart', async () => {
    const big = new Uint8Array(8 * MiB).fill(0x20);
    const [marked, plain, eicar] = await Promise.all([
      scan(Buffer.concat([big, ascii(MALWARE_MARKER)]), 256 * 1024),
      scan(big, 256 * 1024),
      scan(EICAR),
    ]);
    expect(marked).toEqual({ status: 'found', signature: TEST_SIGNATURES.marker });
    expect(plain).toEqual({ status: 'clean' });
    expect(eicar).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
  });
});

describe('streams longer than StreamMaxLength', () => {
  it('fails with SCANNER_STREAM_TOO_LONG before sending when the client knows the limit', async () => {
    expect(await scannerErrorCodeOf(scan(new Uint8Array(LIMITS.maxFileSize + 1)))).toBe('SCANNER_STREAM_TOO_LONG');
  });

  it('fails with SCANNER_STREAM_TOO_LONG when clamd itself refuses the stream', async () => {
    const unaware = new ClamdClient({ socketPath: clamd.socketPath }); // maxStreamLength unknown
    expect(await scannerErrorCodeOf(unaware.scanStream(chunksOf(new Uint8Array(LIMITS.maxFileSize + 1024 * 1024))))).toBe(
      'SCANNER_STREAM_TOO_LONG',
    );
  });

  it('scans a stream of exactly StreamMaxLength bytes', async () => {
    expect(await scan(new Uint8Array(LIMITS.maxFileSize))).toEqual({ status: 'clean' });
  });
});

describe('spool files larger than MaxFileSize', () => {
  // With SCAN clamd opens the file itself, so StreamMaxLength does not apply: its MaxFileSize alert must.
  it('reports LIMIT_EXCEEDED for a spool file of MaxFileSize + 1 bytes', async () => {
    const result = await spool.scan(chunksOf(new Uint8Array(LIMITS.maxFileSize + 1), 1024 * 1024));
    expect(result).toEqual({ status: 'found', signature: 'Heuristics.Limits.Exceeded.MaxFileSize' });
  });

  it('scans a spool file of exactly MaxFileSize bytes', async () => {
    expect(await spool.scan(chunksOf(new Uint8Array(LIMITS.maxFileSize), 1024 * 1024))).toEqual({ status: 'clean' });
  });
});

describe('clamd after failed streams', () => {
  it('still answers after a stream was aborted and another one failed at its source', async () => {
    const controller = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield new Uint8Array(1024);
      }
    }
    setTimeout(() => controller.abort(), 50);
    expect(await scannerErrorCodeOf(clamd.client.scanStream(slow(), controller.signal))).toBe('SCAN_ABORTED');
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
      await new Promise((resolve) => setTimeout(resolve, 1));
      throw new Error('EIO');
    }
    await expect(clamd.client.scanStream(broken())).rejects.toThrow('EIO');
    await clamd.client.ping();
    expect(await scan(EICAR)).toEqual({ status: 'found', signature: TEST_SIGNATURES.eicar });
  });

  it('reports the engine version and no database version for loose signature files', async () => {
    const version = await clamd.client.version();
    expect(version.engine).toMatch(/^\d+\.\d+\.\d+/);
    expect(version.databaseVersion).toBeNull();
    expect(version.databaseTime).toBeNull();
    expect(version.raw).toBe(`ClamAV ${version.engine}`);
  });
});
