import { describe, expect, it } from 'vitest';
import { MediaError } from './errors.ts';
import { encodeFailure, encodeListing, parseChildReport, parseRequest, type ChildRequest } from './volume-listing.ts';
import { NO_ATTRIBUTES, type VolumeEntry } from './volume.ts';

const REQUEST: ChildRequest = { mode: 'list', limits: { maxEntries: 10, maxDepth: 3, maxTotalBytes: 1000 } };
const DEVICE = 4 * 1024 * 1024; // bytes
const IDENTITY = { filesystem: 'fat32', volumeId: '1234-ABCD', label: 'USB', capacity: 1024 } as const;

const entry = (names: string[], kind: 'file' | 'directory' = 'file', size = 0, extra: Partial<VolumeEntry> = {}): VolumeEntry => ({ names, kind, size, attributes: NO_ATTRIBUTES, ...extra });

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return error instanceof MediaError ? error.code : `not a MediaError: ${String(error)}`;
  }
  return 'no error';
}

describe('the volume reader report', () => {
  it('carries names exactly, lone surrogates, NUL, slashes and all, with attributes and 8.3 aliases', () => {
    const entries = [
      entry(['Docs'], 'directory', 0, { attributes: { ...NO_ATTRIBUTES, hidden: true, system: true } }),
      entry(['Docs', 'lone\ud800.txt'], 'file', 3, { shortName: 'LONE_~1.TXT' }),
      entry(['Docs', 'sub'], 'directory'),
      entry(['Docs', 'sub', 'a\u0000/b'], 'file', 1, { attributes: { readonly: true, hidden: false, system: false, archive: true } }),
      entry(['top.txt'], 'file', 7),
    ];
    const report = parseChildReport(encodeListing(IDENTITY, entries), REQUEST, DEVICE);
    expect(report).toEqual({ ok: true, listing: { identity: IDENTITY, entries } });
  });

  it('gives a reader refusal back by its code', () => {
    expect(parseChildReport(encodeFailure('MEDIA_CORRUPT', 'folder x loops back'), REQUEST, DEVICE)).toEqual({ ok: false, code: 'MEDIA_CORRUPT', message: 'folder x loops back' });
  });

  it('keeps the identity alone in identity mode', () => {
    expect(parseChildReport(encodeListing(IDENTITY, null), { ...REQUEST, mode: 'identity' }, DEVICE)).toEqual({ ok: true, listing: { identity: IDENTITY, entries: [] } });
  });

  it('names the first fault by its path', () => {
    const text = JSON.stringify({ v: 1, identity: IDENTITY, entries: [[-1, 'a', 'd', 0, '', null], [0, 'b', 'x', 0, '', null]] });
    expect(() => parseChildReport(text, REQUEST, DEVICE)).toThrow(/entries\[1\]\[2\]: expected "f" or "d"/);
  });

  // Every line must be refused as a broken report: MEDIA_TOOL_FAILED, never a listing.
  const ok = { v: 1, identity: IDENTITY, entries: [[-1, 'a', 'd', 0, '', null], [0, 'b.txt', 'f', 5, 'a', 'B.TXT']] };
  const BAD: Array<[string, string]> = [
    ['not JSON', 'not json'],
    ['two documents', `${JSON.stringify(ok)}${JSON.stringify(ok)}`],
    ['an array', '[]'],
    ['null', 'null'],
    ['another version', JSON.stringify({ ...ok, v: 2 })],
    ['an extra key', JSON.stringify({ ...ok, extra: true })],
    ['no entries', JSON.stringify({ v: 1, identity: IDENTITY })],
    ['no identity', JSON.stringify({ v: 1, entries: [] })],
    ['an unknown filesystem', JSON.stringify({ ...ok, identity: { ...IDENTITY, filesystem: 'ntfs' } })],
    ['a lower-case volume id', JSON.stringify({ ...ok, identity: { ...IDENTITY, volumeId: '1234-abcd' } })],
    ['an exFAT volume without a serial', JSON.stringify({ ...ok, identity: { ...IDENTITY, filesystem: 'exfat', volumeId: null }, entries: [] })],
    ['a label over 11 units', JSON.stringify({ ...ok, identity: { ...IDENTITY, label: 'x'.repeat(12) } })],
    ['a capacity beyond the device', JSON.stringify({ ...ok, identity: { ...IDENTITY, capacity: DEVICE + 1 } })],
    ['an identity key too many', JSON.stringify({ ...ok, identity: { ...IDENTITY, serial: 1 } })],
    ['entries over the bound', JSON.stringify({ ...ok, entries: Array.from({ length: 11 }, (_, i) => [-1, `f${i}`, 'f', 0, '', null]) })],
    ['an entry with five fields', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 0, '']] })],
    ['a parent after the entry', JSON.stringify({ ...ok, entries: [[1, 'a', 'f', 0, '', null], [-1, 'd', 'd', 0, '', null]] })],
    ['an entry its own parent', JSON.stringify({ ...ok, entries: [[0, 'a', 'd', 0, '', null]] })],
    ['a parent below -1', JSON.stringify({ ...ok, entries: [[-2, 'a', 'f', 0, '', null]] })],
    ['a file as a parent', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 0, '', null], [0, 'b', 'f', 0, '', null]] })],
    ['deeper than the bound', JSON.stringify({ ...ok, entries: [[-1, 'a', 'd', 0, '', null], [0, 'b', 'd', 0, '', null], [1, 'c', 'd', 0, '', null], [2, 'd', 'f', 0, '', null]] })],
    ['a name that is a number', JSON.stringify({ ...ok, entries: [[-1, 7, 'f', 0, '', null]] })],
    ['a name of 261 units', JSON.stringify({ ...ok, entries: [[-1, 'x'.repeat(261), 'f', 0, '', null]] })],
    ['a negative size', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', -1, '', null]] })],
    ['a fractional size', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 1.5, '', null]] })],
    ['a size beyond the device', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', DEVICE + 1, '', null]] })],
    ['a folder with a size', JSON.stringify({ ...ok, entries: [[-1, 'a', 'd', 1, '', null]] })],
    ['attributes out of order', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 0, 'hr', null]] })],
    ['an unknown attribute', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 0, 'x', null]] })],
    ['an 8.3 alias on exFAT', JSON.stringify({ ...ok, identity: { ...IDENTITY, filesystem: 'exfat' }, entries: [[-1, 'a', 'f', 0, '', 'A']] })],
    ['an empty 8.3 alias', JSON.stringify({ ...ok, entries: [[-1, 'a', 'f', 0, '', '']] })],
    ['an error code the reader never raises', encodeFailure('MEDIA_FULL' as never, 'x')],
    ['an error beside a listing', JSON.stringify({ ...ok, error: { code: 'MEDIA_CORRUPT', message: 'x' } })],
    ['an error without a message', JSON.stringify({ v: 1, error: { code: 'MEDIA_CORRUPT' } })],
    ['a message that is not a string', JSON.stringify({ v: 1, error: { code: 'MEDIA_CORRUPT', message: 1 } })],
  ];

  it('accepts the well-formed report the bad ones are made from', () => {
    expect(parseChildReport(JSON.stringify(ok), REQUEST, DEVICE).ok).toBe(true);
  });

  it.each(BAD)('refuses %s as a broken report', (_, text) => {
    expect(codeOf(() => parseChildReport(text, REQUEST, DEVICE))).toBe('MEDIA_TOOL_FAILED');
  });

  it('refuses a listing that does not follow the walk order when encoding it', () => {
    expect(() => encodeListing(IDENTITY, [entry(['a', 'b'])])).toThrow(/does not follow its folder/);
    expect(() => encodeListing(IDENTITY, [entry(['a'], 'directory'), entry(['c'], 'directory'), entry(['a', 'b'])])).toThrow(/does not follow its folder/);
  });

  it('refuses a request it does not understand', () => {
    expect(parseRequest(JSON.stringify(REQUEST))).toEqual(REQUEST);
    expect(() => parseRequest(JSON.stringify({ ...REQUEST, mode: 'write' }))).toThrow(/not a request/);
    expect(() => parseRequest(undefined)).toThrow(/not a request/);
  });
});
