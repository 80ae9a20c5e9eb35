import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildRawZip } from '../../test/fixtures/archives/zip-raw.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { pythonZip64 } from '../../test/fixtures/archives/debian-tools.ts';
import { checkZipStructure, endsWithZip, ZIP_TAIL_BYTES, type ZipStructureLimits } from './zip-structure.ts';

const LIMITS: ZipStructureLimits = { maxEntries: 1000, maxEntryBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, maxRatio: 100 };
const NAMES = { maxEntries: 'clamav.maxFilesPerArchive', maxEntryBytes: 'clamav.maxEmbeddedFileBytes', maxTotalBytes: 'clamav.maxScanBytes', maxRatio: 'archives.maxCompressionRatio' };

function check(zip: Uint8Array, limits: ZipStructureLimits = LIMITS): { code: string; detail: string } | null {
  const result = checkZipStructure((position, length) => zip.subarray(position, position + length), zip.length, limits, NAMES);
  return 'finding' in result ? result.finding : null;
}

const text = (s: string): Uint8Array => Buffer.from(s);

/** Asserts the check's finding: its code, and a detail matching `detail`. */
function expectFinding(found: { code: string; detail: string } | null, code: string, detail: RegExp): void {
  expect(found?.code).toBe(code);
  expect(found?.detail).toMatch(detail);
}

/** A zip Python writes to a pipe: every entry with a data descriptor (flag bit 3). */
function pythonStreamedZip(): Uint8Array {
  const script = [
    'import sys, zipfile',
    'class Pipe:',
    '    def __init__(self): self.data = bytearray()',
    '    def write(self, b): self.data += b; return len(b)',
    '    def flush(self): pass',
    'p = Pipe()',
    'with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:',
    '    for i in range(3):',
    '        with z.open(f"part-{i}.txt", "w") as w: w.write(b"line\\n" * 500)',
    'sys.stdout.buffer.write(bytes(p.data))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', script], { maxBuffer: 1 << 26 });
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

describe('the zip structure check', () => {
  it('lists the entries of a well-formed zip as its central directory names them', async () => {
    const zip = await buildZip([{ name: 'a.txt', data: text('hello') }, { name: 'dir/b.bin', data: Buffer.alloc(5000, 1), method: 'store' }]);
    const result = checkZipStructure((p, n) => zip.subarray(p, p + n), zip.length, LIMITS, NAMES);
    expect('entries' in result ? result.entries.map((e) => [Buffer.from(e.name).toString(), e.size]) : result).toEqual([['a.txt', 5], ['dir/b.bin', 5000]]);
  });

  it('passes well-formed zips: stored and deflated, ZIP64, data descriptors, empty', async () => {
    expect(check(await buildZip([{ name: 'a.txt', data: text('hello') }, { name: 'dir/b.bin', data: Buffer.alloc(5000, 1), method: 'store' }]))).toBeNull();
    expect(check(pythonZip64([['eicar.txt', text('x'.repeat(100))], ['b.txt', text('b')]]))).toBeNull();
    expect(check(pythonStreamedZip())).toBeNull();
    expect(check(buildRawZip([{ name: 'z.txt', data: text('z'), zip64: true }], { zip64End: true }))).toBeNull();
    expect(check(await buildZip([]))).toBeNull();
  });

  it('finds an entry that only the local headers show (a shadow entry for streaming extractors)', () => {
    const zip = buildRawZip([{ name: 'visible.txt', data: text('ok') }, { name: 'shadow.exe', data: text('MZ hidden'), inCentralDirectory: false }]);
    expectFinding(check(zip), 'NOT_INSPECTED', /belong to no entry/);
    const first = buildRawZip([{ name: 'shadow.exe', data: text('MZ hidden'), inCentralDirectory: false }, { name: 'visible.txt', data: text('ok') }]);
    expectFinding(check(first), 'NOT_INSPECTED', /before visible\.txt belong to no entry/);
  });

  it('finds a local header whose name differs from the central directory\'s', () => {
    const zip = buildRawZip([{ name: 'report.pdf', localName: 'report.exe', data: text('x') }]);
    expectFinding(check(zip), 'NOT_INSPECTED', /local header names report\.exe/);
  });

  it('finds entries that share their data (a non-recursive bomb)', () => {
    const zip = buildRawZip([{ name: 'a.txt', data: text('shared bytes') }], { aliases: [{ name: 'b.txt', of: 0 }, { name: 'c.txt', of: 0 }] });
    expect(check(zip)?.code).toBe('LIMIT_EXCEEDED');
  });

  it('finds an encrypted entry', () => {
    const zip = buildRawZip([{ name: 'secret.txt', data: text('top secret'), password: 'pw' }]);
    expectFinding(check(zip), 'ENCRYPTED', /secret\.txt/);
  });

  it('finds a truncated archive and bytes appended after the end record', async () => {
    const zip = await buildZip([{ name: 'a.txt', data: Buffer.alloc(4000, 0x41), method: 'store' }, { name: 'b.txt', data: text('b') }]);
    for (const cut of [10, 2000, zip.length - 30, zip.length - 1]) expect(check(zip.subarray(0, cut))?.code, `cut at ${cut}`).toBe('NOT_INSPECTED');
    expect(check(Buffer.concat([zip, text('appended')]))?.code).toBe('NOT_INSPECTED');
  });

  it('finds an archive appended to an archive, and passes a stored inner zip whose end record shows', async () => {
    const one = await buildZip([{ name: 'a.txt', data: text('a') }]);
    const two = await buildZip([{ name: 'b.exe', data: text('MZ') }]);
    expect(check(Buffer.concat([one, two]))?.code).toBe('NOT_INSPECTED');
    expect(check(await buildZip([{ name: 'inner.zip', data: one, method: 'store' }]))).toBeNull();
  });

  it('checks declared sizes against the policy, naming the setting', async () => {
    const zip = await buildZip([{ name: 'big.txt', data: Buffer.alloc(3 * 1024 * 1024, 0x41) }]);
    expectFinding(check(zip, { ...LIMITS, maxEntryBytes: 1024 * 1024 }), 'LIMIT_EXCEEDED', /clamav\.maxEmbeddedFileBytes/);
    expectFinding(check(zip, { ...LIMITS, maxTotalBytes: 1024 * 1024 }), 'LIMIT_EXCEEDED', /clamav\.maxScanBytes/);
    expectFinding(check(zip), 'LIMIT_EXCEEDED', /archives\.maxCompressionRatio/); // zeros-like data compresses ~1000:1
    const many = await buildZip(Array.from({ length: 5 }, (_, i) => ({ name: `f${i}.txt`, data: text(`${i}`) })));
    expectFinding(check(many, { ...LIMITS, maxEntries: 4 }), 'LIMIT_EXCEEDED', /clamav\.maxFilesPerArchive/);
  });

  it('finds a data descriptor that disagrees with the central directory', () => {
    const zip = Buffer.from(pythonStreamedZip());
    // The first descriptor follows the first entry's data: flip a byte of its CRC.
    const at = zip.indexOf(Buffer.from([0x50, 0x4b, 0x07, 0x08]));
    expect(at).toBeGreaterThan(0);
    zip[at + 4] = zip[at + 4]! ^ 0xff;
    expectFinding(check(zip), 'NOT_INSPECTED', /data descriptor/);
  });
});

describe('a zip at the end of another file', () => {
  it('is found after any head, and not in files that merely contain the signature', async () => {
    const zip = await buildZip([{ name: 'a.txt', data: text('x') }]);
    const tailOf = (file: Uint8Array): Uint8Array => file.subarray(Math.max(0, file.length - ZIP_TAIL_BYTES));
    const poly = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(100_000, 0x20), zip]);
    expect(endsWithZip(tailOf(poly), poly.length)).toBe(true);
    expect(endsWithZip(tailOf(zip), zip.length)).toBe(true);
    const mention = Buffer.concat([Buffer.from('text that mentions PK'), Buffer.from([5, 6]), Buffer.alloc(30, 0x41)]);
    expect(endsWithZip(tailOf(mention), mention.length)).toBe(false);
    const cut = poly.subarray(0, poly.length - 20);
    expect(endsWithZip(tailOf(cut), cut.length)).toBe(false);
  });

  it('is found in a container only when its comment runs to the end of the file (exact)', async () => {
    const zip = await buildZip([{ name: 'a.txt', data: text('x') }]);
    const tailOf = (file: Uint8Array): Uint8Array => file.subarray(Math.max(0, file.length - ZIP_TAIL_BYTES));
    // A tar holding a zip as its last member: the zip's end record, then tar padding and end blocks.
    const member = Buffer.concat([Buffer.alloc(512, 0x20), zip, Buffer.alloc(1024 + 512 - (zip.length % 512))]);
    expect(endsWithZip(tailOf(member), member.length)).toBe(true);
    expect(endsWithZip(tailOf(member), member.length, { exact: true })).toBe(false);
    // The same zip whose comment covers what follows it (a zip in tar padding, a gzip FEXTRA field).
    const covering = Buffer.from(zip);
    const rest = Buffer.alloc(1536);
    covering.writeUInt16LE(rest.length, covering.length - 2);
    const hidden = Buffer.concat([Buffer.alloc(512, 0x20), covering, rest]);
    expect(endsWithZip(tailOf(hidden), hidden.length, { exact: true })).toBe(true);
    expect(endsWithZip(tailOf(zip), zip.length, { exact: true })).toBe(true);
  });

  it('is found with bytes after it and with a ZIP64 end record, as the tools that open it allow', async () => {
    const zip = await buildZip([{ name: 'a.txt', data: text('x') }]);
    const tailOf = (file: Uint8Array): Uint8Array => file.subarray(Math.max(0, file.length - ZIP_TAIL_BYTES));
    const trailing = Buffer.concat([Buffer.from('%PDF-1.4\n'), zip, Buffer.from('\n%%EOF trailer bytes\n')]);
    expect(endsWithZip(tailOf(trailing), trailing.length)).toBe(true);
    const zip64 = Buffer.concat([Buffer.from('%PDF-1.4\n'), buildRawZip([{ name: 'z.txt', data: text('z'), zip64: true }], { zip64End: true })]);
    expect(endsWithZip(tailOf(zip64), zip64.length)).toBe(true);
  });
});
