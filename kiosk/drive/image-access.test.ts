import { describe, expect, it } from 'vitest';
import { classifyEntries, findCaseClashes, hostNameProblem } from './image-access.ts';
import { NO_ATTRIBUTES, type VolumeEntry } from './volume.ts';

const entry = (names: string[], kind: 'file' | 'directory' = 'file'): VolumeEntry => ({ names, kind, size: 0, attributes: NO_ATTRIBUTES });

describe('hostNameProblem', () => {
  it.each([
    ['a/b', 'NAME_HAS_SLASH'],
    ['a\u0000b', 'NAME_HAS_NUL'],
    ['..', 'NAME_IS_DOT'],
    ['.', 'NAME_IS_DOT'],
    ['lone\ud800', 'NAME_NOT_UNICODE'],
    ['\u65e5'.repeat(86), 'NAME_TOO_LONG'],
  ])('reports %j as %s', (name, reason) => {
    expect(hostNameProblem(name)).toBe(reason);
  });

  it.each(['\u65e5'.repeat(85), 'rtl\u202etxt.exe', 'trailing ', 'CON', 'a\\b', 'ctl\u0001'])('lets %j through as itself', (name) => {
    expect(hostNameProblem(name)).toBeNull();
  });
});

describe('classifyEntries', () => {
  it('blocks everything under a folder whose name the host cannot hold', () => {
    const { representable, unrepresentable } = classifyEntries([entry(['..'], 'directory'), entry(['..', 'x.txt']), entry(['ok.txt'])]);
    expect(representable.map((e) => e.names.join('/'))).toEqual(['ok.txt']);
    expect(unrepresentable.map((e) => e.reason)).toEqual(['NAME_IS_DOT', 'PARENT_UNREPRESENTABLE']);
  });

  it('reports the second of two identical names', () => {
    const { unrepresentable } = classifyEntries([entry(['same']), entry(['same'])]);
    expect(unrepresentable).toEqual([{ names: ['same'], kind: 'file', reason: 'NAME_DUPLICATE' }]);
  });

  it('keeps names that differ only in case apart: the host folder is case-sensitive', () => {
    const { representable } = classifyEntries([entry(['README.TXT']), entry(['readme.txt'])]);
    expect(representable).toHaveLength(2);
  });
});

describe('findCaseClashes', () => {
  it('groups paths that differ only in case, at any depth', () => {
    const clashes = findCaseClashes([entry(['Docs'], 'directory'), entry(['Docs', 'a.txt']), entry(['DOCS'], 'directory'), entry(['DOCS', 'A.TXT']), entry(['b.txt'])]);
    expect(clashes).toEqual([
      ['Docs', 'DOCS'],
      ['Docs/a.txt', 'DOCS/A.TXT'],
    ]);
  });

  it('does not group NFC and NFD spellings, which the filesystems keep apart', () => {
    expect(findCaseClashes([entry(['caf\u00e9']), entry(['cafe\u0301'])])).toEqual([]);
  });
});
