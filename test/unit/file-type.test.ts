import { describe, expect, it } from 'vitest';
import { checkType, extensionsOf, sniffContent } from '../../kiosk/scan/file-type.ts';

const bytes = (...parts: Array<string | number[]>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

describe('type checks', () => {
  it('recognises programs, documents and text by their first bytes', () => {
    expect(sniffContent(bytes('MZ', [0x90, 0]))).toBe('pe');
    expect(sniffContent(bytes([0x7f], 'ELF'))).toBe('elf');
    expect(sniffContent(bytes('%PDF-1.7'))).toBe('pdf');
    expect(sniffContent(bytes([0x4c, 0, 0, 0, 1, 0x14, 2, 0]))).toBe('lnk');
    expect(sniffContent(bytes('PK', [3, 4]))).toBe('zip');
    expect(sniffContent(bytes('step,temp\n1,180\n'))).toBe('text');
    expect(sniffContent(bytes([0xff, 0xfe], 'h', [0], 'i', [0]))).toBe('text');
    expect(sniffContent(bytes([1, 2, 0, 3]))).toBe('binary');
  });

  it('reads extensions outermost last and ignores a leading dot', () => {
    expect(extensionsOf('dir/Report.PDF.exe')).toEqual(['.pdf', '.exe']);
    expect(extensionsOf('.bashrc')).toEqual([]);
    expect(extensionsOf('.config.json')).toEqual(['.json']);
    expect(extensionsOf('Makefile')).toEqual([]);
  });

  it('flags a program named like a document', () => {
    expect(checkType('invoice.pdf', bytes('MZ', [0x90, 0])).findings.map((f) => f.code)).toEqual(['TYPE_MISMATCH']);
    expect(checkType('notes.txt', bytes([0x7f], 'ELF')).findings).toHaveLength(1);
  });

  it('flags a document whose content is something else', () => {
    expect(checkType('manual.pdf', bytes('PK', [3, 4])).findings).toHaveLength(1);
    expect(checkType('photo.png', bytes('%PDF-')).findings).toHaveLength(1);
  });

  it('flags a double extension disguising a program', () => {
    const result = checkType('report.pdf.exe', bytes('MZ', [0x90, 0]));
    expect(result.findings.map((f) => f.detail).join()).toMatch(/double extension \.pdf\.exe/);
  });

  it('accepts honest files, an empty file and unknown extensions', () => {
    expect(checkType('setup.exe', bytes('MZ', [0x90, 0])).findings).toEqual([]);
    expect(checkType('manual.pdf', bytes('%PDF-1.4')).findings).toEqual([]);
    expect(checkType('recipe.csv', bytes('a,b\n')).findings).toEqual([]);
    expect(checkType('empty.txt', new Uint8Array()).findings).toEqual([]);
    expect(checkType('plc.bin', bytes([1, 2, 3, 0])).findings).toEqual([]);
    expect(checkType('version.1.2.txt', bytes('1.2')).findings).toEqual([]);
  });
});
