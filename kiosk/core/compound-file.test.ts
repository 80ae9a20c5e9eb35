import { describe, expect, it } from 'vitest';
import { windowsInstaller } from '../../test/fixtures/archives/debian-tools.ts';
import { buildCompoundFile } from '../../test/fixtures/office/ole2.ts';
import { macroWorkbook, plainWorkbook } from '../../test/fixtures/office/vba.ts';
import { compoundRootClass, encryptedStream, isInstallerClass, missingStreamProblem } from './compound-file.ts';

const reader = (data: Uint8Array) => (position: number, length: number): Uint8Array => data.subarray(position, position + length);

describe('the root class of an OLE2 compound file', () => {
  it('names a Windows Installer package built by wixl as an installer, whatever it is called', () => {
    const msi = windowsInstaller(Buffer.from('MZ a program'));
    const clsid = compoundRootClass(reader(msi));
    expect(clsid).toBe('000c1084-0000-0000-c000-000000000046');
    expect(isInstallerClass(clsid)).toBe(true);
  });

  it('names a workbook\'s root class as no installer, and reads nothing from bytes that are no compound file', () => {
    for (const workbook of [plainWorkbook(), macroWorkbook()]) {
      const clsid = compoundRootClass(reader(workbook));
      expect(clsid).not.toBeNull();
      expect(isInstallerClass(clsid)).toBe(false);
    }
    expect(compoundRootClass(reader(Buffer.from('%PDF-1.4\n'.repeat(100))))).toBeNull();
    const cut = buildCompoundFile([{ name: 'WordDocument', data: Buffer.alloc(100) }]).subarray(0, 600);
    expect(compoundRootClass(reader(cut))).toBeNull();
  });
});

describe('the streams a legacy Office document is made of', () => {
  it('requires WordDocument in a .doc, Workbook or Book in a .xls, PowerPoint Document in a .ppt, in any letter case', () => {
    expect(missingStreamProblem('.doc', ['[1]CompObj', 'WordDocument', '1Table'])).toBeNull();
    expect(missingStreamProblem('.doc', ['worddocument'])).toBeNull();
    expect(missingStreamProblem('.doc', ['setup.exe', 'run.ps1'])).toMatch(/no WordDocument stream/);
    expect(missingStreamProblem('.xls', ['Book'])).toBeNull();
    expect(missingStreamProblem('.xls', ['WordDocument'])).toMatch(/Workbook or Book/);
    expect(missingStreamProblem('.ppt', ['PowerPoint Document', 'Current User'])).toBeNull();
    expect(missingStreamProblem('.ppt', [])).toMatch(/PowerPoint Document/);
    expect(missingStreamProblem('.bin', ['anything'])).toBeNull();
    expect(missingStreamProblem(undefined, [])).toBeNull();
  });

  it('names the stream of an encrypted package', () => {
    expect(encryptedStream(['EncryptionInfo', 'EncryptedPackage', '[6]DataSpaces'])).toBe('EncryptedPackage');
    expect(encryptedStream(['WordDocument'])).toBeNull();
  });
});
