import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRawZip } from '../../test/fixtures/archives/zip-raw.ts';
import { buildZip } from '../../test/fixtures/archives/zip.ts';
import { zipMembers, ZipExtractError } from './zip-extract.ts';
import { checkZipStructure, type ZipListing } from '../core/zip-structure.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-zip-extract-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

const LIMITS = { maxEntries: 1000, maxEntryBytes: 1 << 30, maxTotalBytes: 1 << 30, maxRatio: 1_000_000 };
const NAMES = { maxEntries: 'a', maxEntryBytes: 'b', maxTotalBytes: 'c', maxRatio: 'd' };

function held(zip: Uint8Array): { path: string; listing: ZipListing[] } {
  const path = join(work, `z${n++}.zip`);
  writeFileSync(path, zip);
  const checked = checkZipStructure((p, l) => zip.subarray(p, p + l), zip.length, LIMITS, NAMES);
  if (!('entries' in checked)) throw new Error(checked.finding.detail);
  return { path, listing: checked.entries };
}

async function extract(path: string, listing: ZipListing[]): Promise<Array<[string, string, string]>> {
  const out: Array<[string, string, string]> = [];
  for (const m of zipMembers(path, listing)) {
    const parts: Buffer[] = [];
    for await (const c of m.body) parts.push(Buffer.from(c));
    out.push([m.kind, Buffer.from(m.name).toString('utf8'), Buffer.concat(parts).toString('latin1')]);
  }
  return out;
}

describe('the kiosk\'s own zip extraction', () => {
  it('gives stored and deflated members exactly, folders as folders, DOS names in the DOS code page', async () => {
    const big = 'line of text\n'.repeat(50_000);
    const { path, listing } = held(await buildZip([{ name: 'a.txt', data: Buffer.from('hello') }, { name: 'dir/', data: new Uint8Array(0), method: 'store' }, { name: 'dir/big.log', data: Buffer.from(big) }]));
    expect(await extract(path, listing)).toEqual([['file', 'a.txt', 'hello'], ['directory', 'dir/', ''], ['file', 'dir/big.log', big]]);
    const dos = buildRawZip([{ name: 'x', data: Buffer.from('y'), method: 'store' }]);
    const at = Buffer.from(dos).indexOf('x'); // name byte in the local header, then in the central directory
    const patched = Buffer.from(dos);
    patched[at] = 0x82;
    patched[Buffer.from(dos).indexOf('x', at + 1)] = 0x82;
    const d = held(patched);
    expect((await extract(d.path, d.listing))[0]![1]).toBe('é');
  });

  it('refuses content that does not match its CRC-32, and methods it does not open', async () => {
    const zip = Buffer.from(buildRawZip([{ name: 'a.txt', data: Buffer.from('original'), method: 'store' }]));
    const { path, listing } = held(zip);
    writeFileSync(path, Buffer.from(zip.toString('latin1').replace('original', 'modified'), 'latin1'));
    await expect(extract(path, listing)).rejects.toBeInstanceOf(ZipExtractError);
    const bzip = held(buildRawZip([{ name: 'b.txt', data: Buffer.from('whatever'), method: { raw: 12 } }]));
    await expect(extract(bzip.path, bzip.listing)).rejects.toThrow(/method 12 \(bzip2\)/);
  });

  it('refuses a folder entry that carries data', async () => {
    const { path, listing } = held(buildRawZip([{ name: 'folder/', data: Buffer.from('hidden bytes'), method: 'store' }]));
    await expect(extract(path, listing)).rejects.toBeInstanceOf(ZipExtractError);
  });
});
