/**
 * The inspection of containers with the real sandboxed extractor (bwrap and
 * libarchive from Debian) and a stand-in scanner that calls any member
 * holding "EVIL" malware; clamd's part is proven in
 * test/integration/hostile-content.test.ts.
 */
import { loadPolicy } from '../rules-files.ts';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preferredBlake3 } from '../engines/hash-file.ts';
import { buildTar } from '../../test/fixtures/archives/tar.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { lz4, sevenZip as sevenZipOf } from '../../test/fixtures/archives/debian-tools.ts';
import { buildAllowlist, EMPTY_ALLOWLIST, type Allowlist } from '../core/allowlist.ts';
import { type Policy } from '../core/policy.ts';
import { detectContainer } from '../core/container-format.ts';
import { createExtractor, type Extractor } from '../engines/extractor.ts';
import { InspectionFolder } from '../engines/inspection-folder.ts';
import { inspectContainer, type HeldContainer } from './inspect-container.ts';
import type { StreamScanner } from './scan-session.ts';

const { policy: base } = await loadPolicy();
const work = mkdtempSync(join(tmpdir(), 'portcullis-inspect-'));
let folder: InspectionFolder;
beforeAll(async () => {
  folder = await InspectionFolder.create(join(work, 'inspect'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const scanner: StreamScanner = {
  engines: ['clamav', 'yara'],
  async scanStream(chunks) {
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(Buffer.from(c));
    return Buffer.concat(parts).includes('EVIL') ? { status: 'found', signature: 'Test.Evil', reason: 'MALWARE' } : { status: 'clean' };
  },
};

const text = (s: string): Uint8Array => Buffer.from(s);

async function inspect(bytes: Uint8Array, name: string, options: { policy?: Policy; allowlist?: Allowlist; extractor?: Extractor; exempt?: boolean } = {}): Promise<Array<[string, string]>> {
  const file = folder.create();
  writeSync(file.fd, bytes);
  closeSync(file.fd);
  const format = detectContainer(bytes);
  if (format === null) throw new Error(`${name} is not a container`);
  const held: HeldContainer = { path: file.path, size: bytes.length, format, chain: name, name, scope: 'files', exempt: options.exempt ?? false };
  try {
    const reasons = await inspectContainer(held, {
      inspection: { extractor: options.extractor ?? createExtractor(), folder },
      scanner,
      blake3: preferredBlake3(),
      policy: options.policy ?? base,
      allowlist: options.allowlist ?? EMPTY_ALLOWLIST,
    });
    return reasons.map((r) => [r.code, r.detail]);
  } finally {
    rmSync(file.path, { force: true });
  }
}

const PE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(64, 0x90)]);

describe('inspecting containers with the sandboxed extractor', () => {
  it('passes a zip of text files, and finds what is wrong in a member, naming it', async () => {
    expect(await inspect(await buildZip([{ name: 'a.txt', data: text('hello') }, { name: 'b/c.csv', data: text('1,2') }]), 'ok.zip')).toEqual([]);
    const found = await inspect(await buildZip([{ name: 'notes.txt', data: text('EVIL') }, { name: 'setup.exe', data: PE }]), 'tools/setup.zip');
    expect(found).toEqual(expect.arrayContaining([
      ['MALWARE', 'tools/setup.zip!/notes.txt: Test.Evil'],
      ['NOT_ALLOWLISTED', 'tools/setup.zip!/setup.exe: programs: this file\'s hash is not on the allowlist'],
    ]));
  });

  it('opens a zip inside a zip whatever its name, and a zip inside a .tar.gz', async () => {
    const inner = await buildZip([{ name: 'payload.txt', data: text('EVIL inside') }]);
    const outer = await buildZip([{ name: 'data.dat', data: inner }]);
    expect((await inspect(outer, 'a.zip')).map(([c, d]) => [c, d.split(':')[0]])).toContainEqual(['MALWARE', 'a.zip!/data.dat!/payload.txt']);
    const tgz = gzipSync(buildTar([{ name: 'inner.zip', data: inner }]));
    expect((await inspect(tgz, 'b.tar.gz')).map(([c, d]) => [c, d.split(':')[0]])).toContainEqual(['MALWARE', 'b.tar.gz!/b.tar!/inner.zip!/payload.txt']);
  });

  it('judges members by the same type rules as files on the drive, unless the container itself is allowlisted', async () => {
    const tgz = gzipSync(buildTar([{ name: 'run.bat', data: text('@echo off\n') }, { name: 'setup.exe', data: PE }]));
    expect((await inspect(tgz, 'kit.tar.gz')).map(([c]) => c).sort()).toEqual(['NOT_ALLOWLISTED', 'TYPE_NOT_ALLOWED']);
    expect(await inspect(tgz, 'kit.tar.gz', { exempt: true })).toEqual([]);
    // An allowlisted member's own members need no hash either.
    const kit = await buildZip([{ name: 'setup.exe', data: PE }]);
    const vendor = await buildZip([{ name: 'vendor-kit.zip', data: kit }]);
    const allowlist = buildAllowlist([{ name: 'v.json', bytes: text(JSON.stringify({ version: '1', owner: 't', entries: [{ vendor: 'V', product: 'kit', version: '1', file: 'vendor-kit.zip', sha256: createHash('sha256').update(kit).digest('hex'), source: 'test' }] })) }]);
    expect(await inspect(vendor, 'outer.zip', { allowlist })).toEqual([]);
  });

  it('blocks links, unsafe member names and sparse members', async () => {
    const tar = buildTar([{ name: 'link', symlink: '/etc/passwd' }, { name: '../escape.txt', data: text('x') }]);
    const codes = (await inspect(tar, 't.tar')).map(([c, d]) => `${c} ${d.split(':')[0]}`);
    expect(codes).toEqual(expect.arrayContaining(['NOT_REGULAR_FILE t.tar!/link', 'UNSAFE_NAME t.tar!/../escape.txt']));
  });

  it('does not open formats the policy leaves out, and says which setting', async () => {
    const found = await inspect(lz4(buildTar([{ name: 'a.txt', data: text('x') }])), 'a.tar.lz4');
    expect(found).toEqual([['NOT_INSPECTED', 'a.tar.lz4: lz4 content is not opened under this policy (archives.formats), so it cannot be inspected']]);
  });

  it('stops at the policy\'s nesting, member count, size and ratio limits, naming each setting', async () => {
    let nested: Uint8Array = text('deep');
    for (let i = 0; i < 4; i++) nested = await buildZip([{ name: `l${i}.zip`, data: nested }]);
    const shallow: Policy = { ...base, clamav: { ...base.clamav, maxRecursion: 2 } };
    expect((await inspect(nested, 'n.zip', { policy: shallow })).map(([c, d]) => `${c} ${/clamav\.maxRecursion/.test(d)}`)).toEqual(['LIMIT_EXCEEDED true']);

    const many = buildTar(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.txt`, data: text(`${i}`) })));
    const few: Policy = { ...base, clamav: { ...base.clamav, maxFilesPerArchive: 5 } };
    expect((await inspect(many, 'm.tar', { policy: few }))[0]?.[1]).toMatch(/clamav\.maxFilesPerArchive/);

    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect((await inspect(bomb, 'z.gz'))[0]?.[1]).toMatch(/archives\.maxCompressionRatio/);

    const small: Policy = { ...base, clamav: { ...base.clamav, maxEmbeddedFileBytes: 1024 * 1024 }, archives: { ...base.archives, maxCompressionRatio: 1_000_000 } };
    expect((await inspect(gzipSync(Buffer.alloc(2 * 1024 * 1024, 0x41)), 'big.txt.gz', { policy: small }))[0]?.[1]).toMatch(/clamav\.maxEmbeddedFileBytes/);
    // A member whose header declares too many bytes is stopped before a byte of it is read.
    const declared = await inspect(buildTar([{ name: 'big.txt', data: Buffer.alloc(2 * 1024 * 1024, 0x41) }]), 'declared.tar', { policy: small });
    expect(declared[0]?.[1]).toMatch(/2097152 bytes, over the policy's clamav\.maxEmbeddedFileBytes/);
    // Everything unpacked from one file counts against clamav.maxScanBytes, member after member.
    const total: Policy = { ...base, clamav: { ...base.clamav, maxScanBytes: 1024 * 1024 }, archives: { ...base.archives, maxCompressionRatio: 1_000_000 } };
    const two = buildTar([{ name: 'a.txt', data: Buffer.alloc(700 * 1024, 0x41) }, { name: 'b.txt', data: Buffer.alloc(700 * 1024, 0x42) }]);
    expect((await inspect(two, 'two.tar', { policy: total }))[0]?.[1]).toMatch(/clamav\.maxScanBytes/);
  });

  it('blocks a container the extractor cannot read in full, with libarchive\'s own words', async () => {
    const tgz = gzipSync(buildTar([{ name: 'a.txt', data: Buffer.alloc(100_000, 0x41) }]));
    const found = await inspect(tgz.subarray(0, tgz.length - 40), 'cut.tar.gz');
    expect(found.map(([c]) => c)).toContain('NOT_INSPECTED');
  });

  it('blocks a container whose extractor writes a malformed stream, or complains', async () => {
    const garbage: Extractor = {
      opens: () => true,
      open() {
        const out = new PassThrough();
        out.end(Buffer.alloc(700, 0x41));
        return { output: out, ended: Promise.resolve({ code: 0, signal: null, stderr: '', killed: false }), kill() {} };
      },
    };
    const sevenZip = sevenZipOf([['a.txt', text('x')]]);
    expect((await inspect(sevenZip, 'a.7z', { extractor: garbage })).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
    const complaining: Extractor = {
      opens: () => true,
      open() {
        const out = new PassThrough();
        out.end(text('plain content'));
        return { output: out, ended: Promise.resolve({ code: 0, signal: null, stderr: 'gzip: stdin: decompression OK, trailing garbage ignored', killed: false }), kill() {} };
      },
    };
    expect((await inspect(gzipSync(text('x')), 'a.txt.gz', { extractor: complaining })).map(([c]) => c)).toEqual(['NOT_INSPECTED']);
  });

  it('ends an extractor that outlives the policy\'s scan time', async () => {
    const hanging: Extractor = {
      opens: () => true,
      open() {
        const out = new PassThrough();
        let killed = false;
        let settle: (v: { code: number | null; signal: NodeJS.Signals | null; stderr: string; killed: boolean }) => void = () => undefined;
        const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; killed: boolean }>((r) => { settle = r; });
        return {
          output: out,
          ended,
          kill() {
            if (killed) return;
            killed = true;
            out.end();
            settle({ code: null, signal: 'SIGKILL', stderr: '', killed: true });
          },
        };
      },
    };
    const quick: Policy = { ...base, clamav: { ...base.clamav, maxScanSeconds: 1 } };
    const found = await inspect(gzipSync(text('x')), 'slow.gz', { policy: quick, extractor: hanging });
    expect(found.map(([c, d]) => `${c} ${/clamav\.maxScanSeconds/.test(d)}`)).toEqual(['LIMIT_EXCEEDED true']);
  });
});
