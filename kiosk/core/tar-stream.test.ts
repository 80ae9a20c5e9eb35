import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTarStream, TarStreamError } from './tar-stream.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-tar-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The stream the kiosk's extractor writes: bsdtar's pax output of a folder. */
function paxOf(files: Record<string, string | Buffer | { link: string }>): Buffer {
  const dir = mkdtempSync(join(work, 'src-'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    if (typeof content === 'object' && 'link' in content) symlinkSync(content.link, join(dir, name));
    else writeFileSync(join(dir, name), content);
  }
  const r = spawnSync('bsdtar', ['-cf', '-', '--format=pax', '-C', dir, ...Object.keys(files)], { maxBuffer: 1 << 30 });
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

async function* pieces(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  await Promise.resolve();
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function members(data: Uint8Array, pieceSize = 777): Promise<Array<{ kind: string; name: string; size: number; body: string }>> {
  const out = [];
  for await (const m of readTarStream(pieces(data, pieceSize))) {
    const parts: Buffer[] = [];
    for await (const p of m.body) parts.push(Buffer.from(p));
    out.push({ kind: m.kind, name: Buffer.from(m.name).toString('utf8'), size: m.size, body: Buffer.concat(parts).toString('latin1') });
  }
  return out;
}

/** A ustar header block with a correct checksum. */
function header(name: string, type: string, size: number, edit?: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'latin1');
  b.write('0000644\0', 100, 'latin1');
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b.write(type, 156, 'latin1');
  b.write('ustar\u000000', 257, 'latin1');
  edit?.(b);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

const END = Buffer.alloc(1024);
const pad = (data: Buffer): Buffer => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

describe('reading the extractor\'s tar stream', () => {
  it('gives every member of bsdtar\'s pax output with its name, kind and exact bytes, whatever the piece sizes', async () => {
    const big = Buffer.alloc(200_000, 0x61);
    const stream = paxOf({ 'a.txt': 'hello\n', 'deep/folder/b.bin': big, 'caf\u00e9 \u202e.txt': 'x', 'link': { link: 'a.txt' } });
    for (const size of [1, 512, 777, 1 << 20]) {
      const got = await members(stream, size);
      expect(got.map((m) => [m.kind, m.name, m.size])).toEqual([
        ['file', 'a.txt', 6],
        ['file', 'deep/folder/b.bin', big.length],
        ['file', 'caf\u00e9 \u202e.txt', 1],
        ['symlink', 'link', 0],
      ]);
      expect(got[1]!.body).toBe(big.toString('latin1'));
    }
  });

  it('skips the body a reader did not read and still finds the next member', async () => {
    const stream = paxOf({ 'one.txt': 'x'.repeat(5000), 'two.txt': 'second' });
    const names: string[] = [];
    for await (const m of readTarStream(pieces(stream, 100))) names.push(Buffer.from(m.name).toString());
    expect(names).toEqual(['one.txt', 'two.txt']);
  });

  it('uses the pax path and size over the ustar fields', async () => {
    const records = '31 path=long/name/from/pax.txt\n';
    const stream = Buffer.concat([header('PaxHeader/x', 'x', records.length), pad(Buffer.from(records)), header('short.txt', '0', 3), pad(Buffer.from('abc')), END]);
    expect((await members(stream)).map((m) => [m.name, m.body])).toEqual([['long/name/from/pax.txt', 'abc']]);
  });

  it('refuses a stream that is cut short, has a bad checksum, or lacks the end blocks', async () => {
    const good = paxOf({ 'a.txt': 'hello' });
    const badSum = Buffer.from(good);
    badSum[0] = badSum[0]! ^ 1;
    const cases = [good.subarray(0, 700), good.subarray(0, 512 + 1024), badSum, Buffer.concat([header('a.txt', '0', 5), pad(Buffer.from('hello'))])];
    for (const stream of cases) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
  });

  it('refuses data after the end blocks, a lone zero block, a global pax header and a non-ustar header', async () => {
    const file = Buffer.concat([header('a.txt', '0', 1), pad(Buffer.from('a'))]);
    const cases = [
      Buffer.concat([file, END, header('hidden.txt', '0', 1), pad(Buffer.from('h')), END]),
      Buffer.concat([Buffer.alloc(512), file, END]),
      Buffer.concat([header('g', 'g', 10), pad(Buffer.from('10 path=x\n')), file, END]),
      Buffer.concat([header('a.txt', '0', 1, (b) => b.write('gnutar', 257, 'latin1')), pad(Buffer.from('a')), END]),
    ];
    for (const stream of cases) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
  });

  it('refuses pax records whose lengths lie, and a directory that claims data', async () => {
    const liar = '99 path=x\n';
    const cases = [
      Buffer.concat([header('p', 'x', liar.length), pad(Buffer.from(liar)), header('a', '0', 0), END]),
      Buffer.concat([header('d/', '5', 3), pad(Buffer.from('abc')), END]),
    ];
    for (const stream of cases) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
  });

  it('marks a member with GNU sparse records as sparse', async () => {
    const records = '22 GNU.sparse.major=1\n';
    const stream = Buffer.concat([header('p', 'x', records.length), pad(Buffer.from(records)), header('s.bin', '0', 2), pad(Buffer.from('ab')), END]);
    const got = [];
    for await (const m of readTarStream(pieces(stream, 512))) got.push(m.sparse);
    expect(got).toEqual([true]);
  });
});

describe('reading tar archives found on a drive', () => {
  it('reads GNU tar\'s own format, long names included', async () => {
    const long = `${'deep/'.repeat(30)}file.txt`;
    const dir = mkdtempSync(join(work, 'gnu-'));
    mkdirSync(join(dir, long, '..'), { recursive: true });
    writeFileSync(join(dir, long), 'gnu');
    const r = spawnSync('tar', ['--format=gnu', '-cf', '-', '-C', dir, long]);
    expect(r.status).toBe(0);
    expect((await members(r.stdout)).map((m) => [m.name, m.body])).toEqual([[long, 'gnu']]);
  });

  it('refuses names two tools would read differently: a GNU long name with a pax path, a NUL in a pax value, a key twice, a global path', async () => {
    const file = (name: string): Buffer => Buffer.concat([header(name, '0', 1), pad(Buffer.from('a'))]);
    const gnu = (name: string, type: string, size: number): Buffer => header(name, type, size, (b) => b.write('ustar  \0', 257, 'latin1'));
    const longName = Buffer.from('readme.txt\0');
    const paxPath = '16 path=run.ps1\n';
    const cases = [
      Buffer.concat([gnu('././@LongLink', 'L', longName.length), pad(longName), header('p', 'x', paxPath.length), pad(Buffer.from(paxPath)), file('x'), END]),
      Buffer.concat([header('p', 'x', 24), pad(Buffer.from('24 path=readme.txt\0.ps1\n')), file('run.ps1'), END]),
      Buffer.concat([header('p', 'x', 22), pad(Buffer.from('11 path=a\n11 path=b\n')), file('x'), END]),
      Buffer.concat([header('g', 'g', paxPath.length), pad(Buffer.from(paxPath)), file('readme.txt'), END]),
    ];
    for (const stream of cases) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
  });
});
