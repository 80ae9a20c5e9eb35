import { describe, expect, it } from 'vitest';
import { MediaError } from '../../kiosk/drive/errors.ts';
import { parseVolumeId, planDriveImage, type DriveImageSpec } from './image-builder.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof MediaError ? error.code : 'not a MediaError';
  }
  return undefined;
}

const base: DriveImageSpec = { filesystem: 'fat32', sizeMiB: 33, label: 'TEST', files: [] };

describe('planDriveImage', () => {
  it('creates parent folders before the files in them', () => {
    const plan = planDriveImage({ ...base, files: [{ path: 'a/b/c.txt', content: 'x' }] });
    expect(plan.items.map((item) => `${item.kind}:${item.names.join('/')}`)).toEqual(['directory:a', 'directory:a/b', 'file:a/b/c.txt']);
  });

  it('fills a sized file with its pattern across chunk boundaries', () => {
    const plan = planDriveImage({ ...base, files: [{ path: 'p.bin', size: 1024 * 1024 + 5, fill: 'abc' }] });
    const bytes = Buffer.concat([...(plan.items[0]?.chunks() ?? [])]);
    expect(bytes.length).toBe(1024 * 1024 + 5);
    expect(bytes.every((b, i) => b === 'abc'.charCodeAt(i % 3))).toBe(true);
  });

  it('refuses a FAT32 image smaller than 33 MiB', () => {
    expect(codeOf(() => planDriveImage({ ...base, sizeMiB: 32 }))).toBe('MEDIA_SPEC_INVALID');
  });

  it('refuses an exFAT image smaller than 3 MiB', () => {
    expect(codeOf(() => planDriveImage({ ...base, filesystem: 'exfat', sizeMiB: 2 }))).toBe('MEDIA_SPEC_INVALID');
  });

  it('refuses a FAT label with a character FAT labels cannot hold', () => {
    expect(codeOf(() => planDriveImage({ ...base, label: 'A.B' }))).toBe('MEDIA_SPEC_INVALID');
    expect(codeOf(() => planDriveImage({ ...base, label: 'TWELVE CHARS' }))).toBe('MEDIA_SPEC_INVALID');
  });

  it('refuses two files whose names differ only in case', () => {
    const files = [
      { path: 'README.TXT', content: '1' },
      { path: 'readme.txt', content: '2' },
    ];
    expect(codeOf(() => planDriveImage({ ...base, files }))).toBe('MEDIA_SPEC_INVALID');
  });

  it('plans a case-only clash when hostile names are asked for', () => {
    const files = [
      { path: 'README.TXT', content: '1' },
      { path: 'readme.txt', content: '2' },
    ];
    expect(planDriveImage({ ...base, files, hostileNames: true }).items).toHaveLength(2);
  });

  it.each(['a/../b', 'a//b', './x'])('refuses the path %j', (path) => {
    expect(codeOf(() => planDriveImage({ ...base, files: [{ path, content: '' }] }))).toMatch(/MEDIA_(SPEC_INVALID|NAME_UNSUPPORTED)/);
  });

  it('refuses a control character in a name unless hostile names are asked for', () => {
    const files = [{ path: 'bell\u0007.txt', content: '' }];
    expect(codeOf(() => planDriveImage({ ...base, files }))).toBe('MEDIA_NAME_UNSUPPORTED');
    expect(codeOf(() => planDriveImage({ ...base, files, hostileNames: true }))).toBeUndefined();
  });

  it('refuses a file placed where a file already is a folder', () => {
    const files = [
      { path: 'a', content: '' },
      { path: 'a/b', content: '' },
    ];
    expect(codeOf(() => planDriveImage({ ...base, files }))).toBe('MEDIA_SPEC_INVALID');
  });

  it('refuses a name longer than 255 UTF-16 units even for hostile names', () => {
    expect(codeOf(() => planDriveImage({ ...base, hostileNames: true, files: [{ path: 'x'.repeat(256), content: '' }] }))).toBe('MEDIA_NAME_UNSUPPORTED');
  });
});

describe('parseVolumeId', () => {
  it('accepts XXXX-XXXX, XXXXXXXX and numbers', () => {
    expect(parseVolumeId('DEAD-BEEF')).toBe(0xdeadbeef);
    expect(parseVolumeId('deadbeef')).toBe(0xdeadbeef);
    expect(parseVolumeId(7)).toBe(7);
  });

  it.each(['DEAD-BEE', 'XYZW-1234', '1234-5678-9'])('refuses %j', (value) => {
    expect(codeOf(() => parseVolumeId(value))).toBe('MEDIA_SPEC_INVALID');
  });

  it('refuses a number beyond 32 bits', () => {
    expect(codeOf(() => parseVolumeId(2 ** 32))).toBe('MEDIA_SPEC_INVALID');
  });
});
