import { describe, expect, it } from 'vitest';
import {
  destinationNameProblems, renamedCandidate, resolveInside, sameDestinationName, WINDOWS_MAX_PATH,
} from './destination-path.ts';

const ROOT = 'C:\\HMI\\Inbox';

describe('Windows destination names (path.win32 semantics)', () => {
  it.each([
    ['CON'], ['con.txt'], ['COM1.txt'], ['nul.tar.gz'], ['CONIN$'], ['conout$.log'], ['LPT9 .log'], ['aux'], ['docs/PRN.pdf'], ['COM\u00b9.bin'],
  ])('refuses the reserved device name %j', (name) => {
    expect(destinationNameProblems(name)).toContain('WINDOWS_RESERVED_NAME');
    expect(resolveInside(ROOT, name, 'win32').ok).toBe(false);
  });

  it('accepts names that only look like device names', () => {
    for (const name of ['console.txt', 'COM10', 'nulled.txt', 'conin.txt', 'LPT.txt']) expect(destinationNameProblems(name)).toEqual([]);
  });

  it('refuses alternate-data-stream syntax', () => {
    expect(destinationNameProblems('report.txt:hidden.exe')).toContain('STREAM_SYNTAX');
    expect(destinationNameProblems('file::$DATA')).toContain('STREAM_SYNTAX');
  });

  it('refuses trailing dots and spaces, which Windows strips silently', () => {
    expect(destinationNameProblems('setup.exe.')).toContain('TRAILING_DOT_OR_SPACE');
    expect(destinationNameProblems('setup.exe ')).toContain('TRAILING_DOT_OR_SPACE');
    expect(destinationNameProblems('folder./a.txt')).toContain('TRAILING_DOT_OR_SPACE');
  });

  it('refuses names not in NFC, and treats NFC and NFD spellings as the same destination', () => {
    const nfd = 'cafe\u0301.txt';
    expect(destinationNameProblems(nfd)).toContain('NOT_NFC');
    expect(sameDestinationName(nfd, 'caf\u00e9.txt')).toBe(true);
  });

  it('treats names that differ only in case as the same destination', () => {
    expect(sameDestinationName('README.txt', 'readme.TXT')).toBe(true);
    expect(sameDestinationName('README.txt', 'README.md')).toBe(false);
  });

  it.each([
    ['..\\evil.exe', 'BACKSLASH'],
    ['../evil.exe', 'DOT_COMPONENT'],
    ['a/../../evil.exe', 'DOT_COMPONENT'],
    ['/etc/passwd', 'ABSOLUTE'],
    ['C:\\Windows\\evil.dll', 'ABSOLUTE'],
    ['C:foo', 'ABSOLUTE'],
    ['\\\\server\\share\\x', 'UNC_OR_DEVICE_PATH'],
    ['//server/share/x', 'UNC_OR_DEVICE_PATH'],
    ['\\\\.\\PhysicalDrive0', 'UNC_OR_DEVICE_PATH'],
    ['\\\\?\\C:\\Windows\\x', 'UNC_OR_DEVICE_PATH'],
  ])('refuses the destination escape attempt %j', (name, problem) => {
    expect(destinationNameProblems(name)).toContain(problem);
    expect(resolveInside(ROOT, name, 'win32')).toMatchObject({ ok: false });
    expect(resolveInside('/srv/inbox', name, 'posix')).toMatchObject({ ok: false });
  });

  it('refuses 8.3 short-name shapes that could alias another file on NTFS', () => {
    expect(destinationNameProblems('PROGRA~1/x.txt')).toContain('SHORT_NAME_ALIAS');
    expect(destinationNameProblems('REPORT~12.PDF')).toContain('SHORT_NAME_ALIAS');
    expect(destinationNameProblems('backup~old.txt')).toEqual([]);
  });

  it('refuses anything inside the agent staging folder', () => {
    expect(destinationNameProblems('.portcullis-staging/x.part')).toContain('RESERVED_FOLDER');
    expect(destinationNameProblems('.PORTCULLIS-STAGING')).toContain('RESERVED_FOLDER');
  });

  it('resolves a safe name strictly inside the destination', () => {
    expect(resolveInside(ROOT, 'fw/plc.bin', 'win32')).toEqual({ ok: true, path: 'C:\\HMI\\Inbox\\fw\\plc.bin', components: ['fw', 'plc.bin'] });
    expect(resolveInside('/srv/inbox', 'fw/plc.bin', 'posix')).toEqual({ ok: true, path: '/srv/inbox/fw/plc.bin', components: ['fw', 'plc.bin'] });
  });

  it('refuses a full path longer than MAX_PATH instead of creating it', () => {
    const name = `${'a'.repeat(200)}/${'b'.repeat(60)}.txt`;
    expect(destinationNameProblems(name)).toEqual([]);
    const full = `${ROOT}\\${name.replace('/', '\\')}`;
    expect(full.length).toBeGreaterThan(WINDOWS_MAX_PATH);
    expect(resolveInside(ROOT, name, 'win32')).toEqual({ ok: false, problems: ['DESTINATION_TOO_LONG'] });
    const fits = 'a'.repeat(WINDOWS_MAX_PATH - ROOT.length - 1);
    expect(resolveInside(ROOT, fits, 'win32').ok).toBe(true);
    expect(resolveInside(ROOT, `${fits}x`, 'win32').ok).toBe(false);
  });

  it('refuses a relative destination root', () => {
    expect(resolveInside('Inbox', 'a.txt', 'win32')).toEqual({ ok: false, problems: ['ESCAPES_DESTINATION'] });
  });

  it('renames a clashing file the way Explorer does, keeping the whole extension', () => {
    expect(renamedCandidate('report.pdf', 1)).toBe('report (1).pdf');
    expect(renamedCandidate('backup.tar.gz', 2)).toBe('backup (2).tar.gz');
    expect(renamedCandidate('Makefile', 3)).toBe('Makefile (3)');
    expect(renamedCandidate('.profile', 1)).toBe('.profile (1)');
  });
});
