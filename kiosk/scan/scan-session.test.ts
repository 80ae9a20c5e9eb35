/**
 * The scan session's read loop around a scanner double: each file's chunks
 * come from one reused buffer, so what the scanner and the zip check keep must
 * be copies, and a buffer a scanner stopped reading from must never be handed
 * to the next file. The real scanner is in test/integration/scan.test.ts.
 */
import { loadPolicy } from '../rules-files.ts';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAllowlist } from '../core/allowlist.ts';
import { preferredBlake3 } from '../engines/hash-file.ts';
import { parsePolicy, type LoadedPolicy } from '../core/policy.ts';
import { CHUNK_BYTES, scanDrive, type StreamScanner, type StreamScanResult } from './scan-session.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { simplePdf } from '../../test/fixtures/hostile/documents.ts';
import { createExtractor } from '../engines/extractor.ts';
import { InspectionFolder } from '../engines/inspection-folder.ts';

const work = mkdtempSync(join(tmpdir(), 'scan-session-'));
let policy: LoadedPolicy;

beforeAll(async () => {
  policy = await loadPolicy();
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Files of 2.5 chunks with distinct bytes each, so a chunk of one file inside another shows. */
function drive(count: number): { root: string; files: Map<string, Buffer> } {
  const root = mkdtempSync(join(work, 'drive-'));
  mkdirSync(join(root, 'data'));
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const content = Buffer.alloc(CHUNK_BYTES * 2 + CHUNK_BYTES / 2, i + 1);
    content.write(`file ${i}`, 0);
    writeFileSync(join(root, 'data', `f${i}.txt`), content);
    files.set(`data/f${i}.txt`, content);
  }
  return { root, files };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('the read buffer is reused between files', () => {
  it('gives every file its own bytes: the scanner sees and the manifest hashes each file exactly', async () => {
    const { root, files } = drive(12);
    const seen = new Map<string, string>();
    const scanner: StreamScanner = {
      engines: ['clamav', 'yara'],
      async scanStream(chunks): Promise<StreamScanResult> {
        const hash = createHash('sha256');
        let first: string | null = null;
        for await (const chunk of chunks) {
          first ??= Buffer.from(chunk.subarray(0, 8)).toString('latin1');
          hash.update(chunk);
          await new Promise((resolve) => setImmediate(resolve)); // let the other files' reads interleave
        }
        seen.set(first ?? '', hash.digest('hex'));
        return { status: 'clean' };
      },
    };
    const report = await scanDrive(root, {
      policy, allowlist: buildAllowlist([]), scanner, blake3: preferredBlake3(), classifyScannerError: () => null,
    });
    expect([...report.decision.files]).toHaveLength(files.size);
    for (const file of report.decision.files) {
      const content = files.get(file.display);
      expect(file.digest?.sha256, file.display).toBe(sha256(content ?? new Uint8Array()));
      expect(seen.get(content?.subarray(0, 8).toString('latin1') ?? ''), file.display).toBe(file.digest?.sha256);
    }
  });

  it('does not hand a buffer the scanner stopped reading from to another file', async () => {
    const { root, files } = drive(8);
    const kept: Array<{ head: string; chunk: Uint8Array }> = [];
    const scanner: StreamScanner = {
      engines: ['clamav', 'yara'],
      async scanStream(chunks): Promise<StreamScanResult> {
        const iterator = chunks[Symbol.asyncIterator]();
        const step = await iterator.next();
        if (step.done === true) return { status: 'clean' };
        const chunk = step.value;
        const head = Buffer.from(chunk.subarray(0, 8)).toString('latin1');
        if (head.startsWith('file 3')) {
          // Answer early and keep the chunk without copying it: a scanner that breaks the
          // contract must still not see another file's bytes appear in it.
          kept.push({ head, chunk });
          void iterator.return?.();
          return { status: 'found', signature: 'Test.Early', reason: 'MALWARE' };
        }
        while (!(await iterator.next()).done);
        return { status: 'clean' };
      },
    };
    // One file at a time, so a buffer given back would be the very next file's.
    const base = structuredClone(policy.policy);
    base.concurrency = 1;
    const serial = parsePolicy(new TextEncoder().encode(JSON.stringify(base)), 'serial.json');
    await scanDrive(root, {
      policy: serial, allowlist: buildAllowlist([]), scanner, blake3: preferredBlake3(), classifyScannerError: () => null,
    });
    expect(kept).toHaveLength(1);
    const original = files.get('data/f3.txt') ?? Buffer.alloc(0);
    expect(Buffer.from(kept[0]?.chunk ?? new Uint8Array()).equals(original.subarray(0, CHUNK_BYTES))).toBe(true);
  });
});

describe('a failure outside the scanner', () => {
  it('stops the other files and waits for them before the scan fails: nothing is still read afterwards', async () => {
    const { root } = drive(12);
    let inFlight = 0;
    let started = 0;
    const scanner: StreamScanner = {
      engines: ['clamav', 'yara'],
      async scanStream(chunks): Promise<StreamScanResult> {
        inFlight++;
        started++;
        try {
          for await (const chunk of chunks) {
            void chunk;
            await new Promise((resolve) => setTimeout(resolve, 5)); // slow enough for the failure to land mid-read
          }
          return { status: 'clean' };
        } finally {
          inFlight--;
        }
      },
    };
    const allowlist = buildAllowlist([]);
    let lookups = 0;
    const failing = { ...allowlist, lookup: (d: { sha256: string; blake3: string }) => {
      if (++lookups === 1) throw new Error('the ledger could not be written');
      return allowlist.lookup(d);
    } };
    await expect(scanDrive(root, {
      policy, allowlist: failing, scanner, blake3: preferredBlake3(), classifyScannerError: () => null,
    })).rejects.toThrow('the ledger could not be written');
    expect(started).toBeGreaterThan(1);
    expect(inFlight).toBe(0);
  });
});

describe('a file that changes while it is read', () => {
  // The walk listed each file's size; the bytes read must end exactly there.
  type When = 'before-open' | 'after-first-chunk';
  async function scanWhile(when: When, change: (path: string) => void, size: number) {
    const root = mkdtempSync(join(work, 'changing-'));
    const path = join(root, 'plc.txt');
    writeFileSync(path, Buffer.alloc(size, 0x41));
    let changed = false;
    const scanner: StreamScanner = {
      engines: ['clamav', 'yara'],
      async scanStream(chunks): Promise<StreamScanResult> {
        for await (const chunk of chunks) {
          if (when === 'after-first-chunk' && !changed && chunk.byteLength > 0) {
            change(path);
            changed = true;
          }
        }
        return { status: 'clean' };
      },
    };
    const report = await scanDrive(root, {
      policy, allowlist: buildAllowlist([]), scanner, blake3: preferredBlake3(), classifyScannerError: () => null,
      onProgress: (p) => {
        // Called as the file is taken up, before it is opened.
        if (when === 'before-open' && p.phase === 'scanning' && p.current !== null && !changed) {
          change(path);
          changed = true;
        }
      },
    });
    expect(changed).toBe(true);
    const [file] = report.decision.files;
    return { codes: file?.reasons.map((r) => r.code) ?? [], digest: file?.digest ?? null };
  }
  const grow = (p: string): void => appendFileSync(p, 'x');
  const shrink = (p: string): void => truncateSync(p, 10);

  it.each([
    ['before-open', 'grows by one byte', 1000, grow],
    ['before-open', 'shrinks', 1000, shrink],
    ['before-open', 'grows by one byte', CHUNK_BYTES, grow],
    ['after-first-chunk', 'grows by one byte', CHUNK_BYTES * 2, grow],
    ['after-first-chunk', 'shrinks', CHUNK_BYTES * 2, shrink],
    ['after-first-chunk', 'grows by one byte', CHUNK_BYTES, grow],
  ] as const)('blocks a file that, %s, %s (%i bytes listed), with no digest', async (when, _what, size, change) => {
    expect(await scanWhile(when, change, size)).toEqual({ codes: ['SCAN_ERROR'], digest: null });
  });

  it('hashes exactly the listed bytes of a small file that grows after its only read', async () => {
    // One read of the listed size plus one byte saw the whole file and its end; what was
    // scanned is what is hashed, and the agent refuses the longer file it later finds.
    const result = await scanWhile('after-first-chunk', grow, 1000);
    expect(result.codes).toEqual([]);
    expect(result.digest).toMatchObject({ sha256: sha256(Buffer.alloc(1000, 0x41)) });
  });

  it('passes a file that stays as listed, of every size around a chunk', async () => {
    for (const size of [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1]) {
      const result = await scanWhile('before-open', () => undefined, size);
      expect(result.codes, `size ${size}`).toEqual([]);
      expect(result.digest, `size ${size}`).toMatchObject({ sha256: sha256(Buffer.alloc(size, 0x41)) });
    }
  });
});

describe('what the read loop keeps for the inspection', () => {
  const clean: StreamScanner = {
    engines: ['clamav', 'yara'],
    async scanStream(chunks): Promise<StreamScanResult> {
      for await (const chunk of chunks) void chunk;
      return { status: 'clean' };
    },
  };

  it('finds a zip appended to a PDF whatever the chunk its end record falls in, and lets the same PDF alone pass', async () => {
    const zip = await buildZip([{ name: 'setup.exe', data: Buffer.from('MZ hidden program') }]);
    const root = mkdtempSync(join(work, 'poly-'));
    const pdf = (size: number): Buffer => {
      const b = Buffer.alloc(size, 0x20);
      b.write('%PDF-1.4\n', 0);
      return b;
    };
    // The zip's last 22 bytes fall wholly in the second chunk, across the boundary, or wholly in the first.
    const sizes = [CHUNK_BYTES + 10 - zip.length, CHUNK_BYTES - zip.length + 11, CHUNK_BYTES - 100 - zip.length];
    sizes.forEach((size, i) => writeFileSync(join(root, `poly-${i}.pdf`), Buffer.concat([pdf(size), zip])));
    const real = Buffer.from(simplePdf(['Line 3 manual']));
    writeFileSync(join(root, 'plain.pdf'), Buffer.concat([real, Buffer.alloc(CHUNK_BYTES + 500 - real.length, 0x20)]));
    const folder = await InspectionFolder.create(join(work, 'poly-inspect'));
    const report = await scanDrive(root, { policy, allowlist: buildAllowlist([]), scanner: clean, blake3: preferredBlake3(), classifyScannerError: () => null, inspection: { extractor: createExtractor(), folder } });
    const byName = new Map([...report.decision.files].map((f) => [f.display, f.reasons.map((r) => r.code)]));
    for (let i = 0; i < sizes.length; i++) expect(byName.get(`poly-${i}.pdf`), `poly-${i}.pdf`).toEqual(['NOT_INSPECTED']);
    expect(byName.get('plain.pdf')).toEqual([]);
  });

  it('blocks a container when the scan has no inspection to open it with', async () => {
    const root = mkdtempSync(join(work, 'noinspect-'));
    writeFileSync(join(root, 'a.zip'), await buildZip([{ name: 'a.txt', data: Buffer.from('x') }]));
    const report = await scanDrive(root, { policy, allowlist: buildAllowlist([]), scanner: clean, blake3: preferredBlake3(), classifyScannerError: () => null });
    expect([...report.decision.files].map((f) => f.reasons.map((r) => r.code))).toEqual([['NOT_INSPECTED']]);
  });
});

describe('the second red-team round: whole files, empty files and the drive\'s deadline', () => {
  const counting = (): StreamScanner & { calls: number } => {
    const scanner = {
      engines: ['clamav', 'yara'] as const,
      calls: 0,
      async scanStream(chunks: AsyncIterable<Uint8Array>): Promise<StreamScanResult> {
        scanner.calls++;
        for await (const chunk of chunks) void chunk;
        return { status: 'clean' };
      },
    };
    return scanner;
  };
  const scan = async (root: string, scanner: StreamScanner, more: { scanDeadlineMs?: number } = {}) =>
    scanDrive(root, { policy, allowlist: buildAllowlist([]), scanner, blake3: preferredBlake3(), classifyScannerError: () => null, ...more });

  it('blocks a .log that is text for its first 4 KiB and then a program, and passes the same lines alone', async () => {
    const root = mkdtempSync(join(work, 'text-'));
    const lines = Buffer.from('2026-12-07 08:00:01 pump 3 pressure 4.2 bar ok\r\n'.repeat(100)).subarray(0, 4096);
    writeFileSync(join(root, 'pump3.log'), Buffer.concat([lines, Buffer.from('MZ'), Buffer.alloc(2000)]));
    writeFileSync(join(root, 'config.yaml'), Buffer.concat([lines, Buffer.from([0x7f, 0x46, 0x57, 0x00]), Buffer.alloc(64, 0x9c)]));
    writeFileSync(join(root, 'long.log'), Buffer.concat([lines, lines, lines]));
    const report = await scan(root, counting());
    const codes = new Map([...report.decision.files].map((f) => [f.display, f.reasons.map((r) => r.code)]));
    expect(codes.get('pump3.log')).toEqual(['TYPE_MISMATCH']);
    expect(codes.get('config.yaml')).toEqual(['TYPE_MISMATCH']);
    expect(codes.get('long.log')).toEqual([]);
  });

  it('does not send an empty file to the scanner, and passes it', async () => {
    const root = mkdtempSync(join(work, 'empty-'));
    writeFileSync(join(root, 'empty.txt'), '');
    writeFileSync(join(root, 'notes.txt'), 'notes\n');
    const scanner = counting();
    const report = await scan(root, scanner);
    expect(scanner.calls).toBe(1);
    expect([...report.decision.files].map((f) => [f.display, f.verdict])).toEqual([['empty.txt', 'clean'], ['notes.txt', 'clean']]);
  });

  it('rejects the drive with LIMIT_EXCEEDED naming limits.maxScanMinutes when the scan outlasts its deadline, and scans within it', async () => {
    const root = mkdtempSync(join(work, 'slow-'));
    for (let i = 0; i < 3; i++) writeFileSync(join(root, `notes-${i}.txt`), `shift ${i} notes\n`);
    const stuck: StreamScanner = {
      engines: ['clamav', 'yara'],
      async scanStream(chunks, signal): Promise<StreamScanResult> {
        for await (const chunk of chunks) void chunk;
        await new Promise((_, reject) => signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true }));
        return { status: 'clean' };
      },
    };
    const late = await scan(root, stuck, { scanDeadlineMs: 300 });
    expect(late.decision.verdict).toBe('rejected');
    expect(late.decision.driveReasons.map((r) => r.code)).toEqual(['LIMIT_EXCEEDED']);
    expect(late.decision.driveReasons[0]?.detail).toContain('limits.maxScanMinutes');
    const inTime = await scan(root, counting(), { scanDeadlineMs: 60_000 });
    expect(inTime.decision.driveReasons).toEqual([]);
  });
});
