import { describe, expect, it } from 'vitest';
import { fatCaseKey, fatNameProblem, mtoolsKeepsName } from './fat-mtools.ts';

describe('fatNameProblem', () => {
  it.each([
    ['a?b', 'forbidden'],
    ['a\\b', 'forbidden'],
    ['tab\there', 'control'],
    ['.', 'reserved'],
  ])('refuses %j as a FAT long name', (name, why) => {
    expect(fatNameProblem(name)).toContain(why);
  });

  it.each(['CON', 'trailing space ', '\u202eexe.txt', ' leading'])('allows %j, which a long name can hold', (name) => {
    expect(fatNameProblem(name)).toBeNull();
  });
});

describe('mtoolsKeepsName', () => {
  it.each(['README.TXT', 'readme.txt', 'Long file name.txt', '.portcullis', 'manifest.dsse.json'])('trusts mtools with %j', (name) => {
    expect(mtoolsKeepsName(name)).toBe(true);
  });

  it.each(['caf\u00e9.txt', 'cafe\u0301.txt', 'emoji\u{1F600}', 'trailing space ', 'CON', 'aux.txt', 'dot.'])('routes %j around mtools', (name) => {
    expect(mtoolsKeepsName(name)).toBe(false);
  });
});

describe('fatCaseKey', () => {
  it('makes names that differ only in case equal', () => {
    expect(fatCaseKey('ReadMe.txt')).toBe(fatCaseKey('README.TXT'));
    expect(fatCaseKey('caf\u00e9')).toBe(fatCaseKey('CAF\u00c9'));
  });

  it('keeps NFC and NFD spellings apart, as FAT does', () => {
    expect(fatCaseKey('caf\u00e9')).not.toBe(fatCaseKey('cafe\u0301'));
  });
});
