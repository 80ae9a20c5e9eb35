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

describe('members tools read two ways (second red-team round)', () => {
  const file = (name: string, data = 'a', edit?: (b: Buffer) => void): Buffer => Buffer.concat([header(name, '0', data.length, edit), pad(Buffer.from(data))]);
  const paxHeader = (records: string): Buffer => Buffer.concat([header('PaxHeader', 'x', records.length), pad(Buffer.from(records))]);
  const gnu = (name: string, type: string, size: number): Buffer => header(name, type, size, (b) => b.write('ustar  \0', 257, 'latin1'));
  /** A pre-POSIX header: no magic, no version. */
  const v7 = (name: string, size: number): Buffer => header(name, '0', size, (b) => b.fill(0, 257, 265));

  it('refuses a directory, link or special member with a pax size or a header size, and reads them without one', async () => {
    const hidden = file('drawing.dwg', 'AC1032\0');
    const sized = [
      Buffer.concat([paxHeader('13 size=1024\n'), header('docs/', '5', 0), hidden, END]),
      Buffer.concat([paxHeader('13 size=1024\n'), header('link', '2', 0, (b) => b.write('target', 157, 'latin1')), hidden, END]),
      Buffer.concat([paxHeader('12 size=512\n'), header('fifo', '6', 0), hidden, END]),
      Buffer.concat([header('hard', '1', 512, (b) => b.write('drawing.dwg', 157, 'latin1')), pad(Buffer.from('x')), hidden, END]),
    ];
    for (const stream of sized) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
    const plain = Buffer.concat([paxHeader('10 size=0\n'), header('docs/', '5', 0), header('link', '2', 0, (b) => b.write('target', 157, 'latin1')), hidden, END]);
    expect((await members(plain)).map((m) => [m.kind, m.name])).toEqual([['directory', 'docs/'], ['symlink', 'link'], ['file', 'drawing.dwg']]);
  });

  it('refuses a GNU volume header or dump directory that carries data, and skips an empty one', async () => {
    for (const type of ['V', 'D']) {
      await expect(members(Buffer.concat([gnu('run.ps1', type, 6), pad(Buffer.from('calc\r\n')), file('readme.txt'), END]))).rejects.toBeInstanceOf(TarStreamError);
    }
    expect((await members(Buffer.concat([gnu('LABEL', 'V', 0), file('readme.txt'), END]))).map((m) => m.name)).toEqual(['readme.txt']);
  });

  it('refuses a pax record length that is not decimal digits (0x15, 21.0, +21) and takes the digits', async () => {
    for (const length of ['0x15', '21.0', '+21', ' 21']) {
      const record = `${length} path=readme.txt\n`;
      await expect(members(Buffer.concat([paxHeader(record), file('run.ps1'), END]))).rejects.toBeInstanceOf(TarStreamError);
    }
    expect((await members(Buffer.concat([paxHeader('19 path=readme.txt\n'), file('run.ps1'), END]))).map((m) => m.name)).toEqual(['readme.txt']);
  });

  it('refuses a pax key with a blank or other characters no key has, and takes dotted keys', async () => {
    /** One pax record with its length counted right (the key and value as raw latin1 bytes). */
    const rec = (key: string, value: string): string => {
      const body = ` ${key}=${value}\n`;
      let n = body.length + 1;
      while (String(n).length + body.length !== n) n++;
      return `${n}${body}`;
    };
    for (const key of [' path', 'path ', 'p\u00e4th', ' size', 'pa/th']) {
      const raw = Buffer.from(rec(key, 'run.ps1'), 'latin1');
      await expect(members(Buffer.concat([header('PaxHeader', 'x', raw.length), pad(raw), file('readme.txt'), END]))).rejects.toBeInstanceOf(TarStreamError);
    }
    const fine = paxHeader(rec('SCHILY.xattr.user.origin_url', 'x-y') + rec('path', 'notes.txt'));
    expect((await members(Buffer.concat([fine, file('readme.txt'), END]))).map((m) => m.name)).toEqual(['notes.txt']);
  });

  it('refuses bytes other than zero in member padding, extended-header padding and unused header space', async () => {
    const zip = Buffer.from('PK\u0005\u0006 a zip end record would sit here', 'latin1');
    const paddedMember = Buffer.concat([header('readme.txt', '0', 1), Buffer.from('x'), zip, Buffer.alloc(511 - zip.length), END]);
    const record = '19 path=readme.txt\n';
    const paddedPax = Buffer.concat([header('PaxHeader', 'x', record.length), Buffer.from(record), zip, Buffer.alloc(512 - record.length - zip.length), file('run.ps1'), END]);
    const name = Buffer.from('readme.txt\0');
    const paddedLong = Buffer.concat([gnu('././@LongLink', 'L', name.length), name, zip, Buffer.alloc(512 - name.length - zip.length), file('x', 'a'), END]);
    const v7Tail = Buffer.concat([v7('readme.txt', 1).fill(0x41, 300, 400), pad(Buffer.from('a')), END]);
    const ustarTail = Buffer.concat([file('readme.txt', 'a', (b) => b.write('PK', 500, 'latin1')), END]);
    for (const stream of [paddedMember, paddedPax, paddedLong, ustarTail]) await expect(members(stream)).rejects.toBeInstanceOf(TarStreamError);
    await expect(members(v7Tail)).rejects.toBeInstanceOf(TarStreamError);
    expect((await members(Buffer.concat([v7('readme.txt', 1), pad(Buffer.from('a')), END]))).map((m) => m.name)).toEqual(['readme.txt']);
    // GNU tar --format=v7 writes devmajor and devminor there, and only those.
    const dir = mkdtempSync(join(work, 'v7-'));
    writeFileSync(join(dir, 'notes.txt'), 'v7');
    const gnuV7 = spawnSync('tar', ['--format=v7', '-cf', '-', '-C', dir, 'notes.txt']);
    expect(gnuV7.status).toBe(0);
    expect(gnuV7.stdout.subarray(329, 345).toString('latin1')).toMatch(/^0+\0/);
    expect((await members(gnuV7.stdout)).map((m) => m.name)).toEqual(['notes.txt']);
  });
});
