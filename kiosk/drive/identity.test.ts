import { describe, expect, it } from 'vitest';
import { MediaError } from './errors.ts';
import { decodeBlkidEncoded, formatVolumeId, identityFromBlkid, parseBlkidUdev, sniffFilesystem } from './identity.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof MediaError ? error.code : 'not a MediaError';
  }
  return undefined;
}

describe('formatVolumeId', () => {
  it('shows a 32-bit id as upper-case XXXX-XXXX with leading zeros', () => {
    expect(formatVolumeId(0xdeadbeef)).toBe('DEAD-BEEF');
    expect(formatVolumeId(0x00000a0b)).toBe('0000-0A0B');
  });
});

describe('sniffFilesystem', () => {
  it('finds nothing in a sector without the boot signature', () => {
    expect(sniffFilesystem(new Uint8Array(512))).toBeNull();
  });
});

describe('parseBlkidUdev', () => {
  it('reads KEY=value lines', () => {
    const fields = parseBlkidUdev('ID_FS_UUID=1234-ABCD\nID_FS_TYPE=vfat\n');
    expect(fields.get('ID_FS_TYPE')).toBe('vfat');
  });

  it('refuses a line that is not KEY=value', () => {
    expect(codeOf(() => parseBlkidUdev('ID_FS_TYPE=vfat\nnonsense\n'))).toBe('MEDIA_TOOL_FAILED');
  });

  it('skips the tail of a raw label that held a newline', () => {
    const fields = parseBlkidUdev('ID_FS_LABEL=a\nb\u001b\nID_FS_LABEL_ENC=a\\x0ab\\x1b\nID_FS_TYPE=vfat\n');
    expect(fields.get('ID_FS_LABEL_ENC')).toBe('a\\x0ab\\x1b');
    expect(fields.get('ID_FS_TYPE')).toBe('vfat');
  });

  it('refuses a label posing as a field that blkid prints later', () => {
    expect(codeOf(() => parseBlkidUdev('ID_FS_LABEL=x\nID_FS_TYPE=exfat\nID_FS_TYPE=vfat\n'))).toBe('MEDIA_TOOL_FAILED');
  });

  it('refuses a key given twice', () => {
    expect(codeOf(() => parseBlkidUdev('ID_FS_TYPE=vfat\nID_FS_TYPE=exfat\n'))).toBe('MEDIA_TOOL_FAILED');
  });
});

describe('decodeBlkidEncoded', () => {
  it('turns \\xNN escapes back into bytes', () => {
    expect([...decodeBlkidEncoded('A\\x01B\\x1b\\x5c\\xe9')]).toEqual([0x41, 0x01, 0x42, 0x1b, 0x5c, 0xe9]);
  });

  it('refuses a backslash that is not a \\xNN escape', () => {
    expect(codeOf(() => decodeBlkidEncoded('a\\qb'))).toBe('MEDIA_TOOL_FAILED');
  });
});

describe('identityFromBlkid', () => {
  const fields = (entries: Record<string, string>): ReadonlyMap<string, string> => new Map(Object.entries(entries));

  it('keeps control characters of a FAT label instead of dropping them', () => {
    const identity = identityFromBlkid(
      fields({ ID_FS_TYPE: 'vfat', ID_FS_VERSION: 'FAT32', ID_FS_UUID: 'DEAD-BEEF', ID_FS_LABEL_ENC: 'A\\x01B\\x1b\\x90\\x20\\x20' }),
      1000,
    );
    expect(identity).toEqual({ filesystem: 'fat32', volumeId: 'DEAD-BEEF', label: 'A\u0001B\u001b\u00c9', capacity: 1000 });
  });

  it('decodes an exFAT label as UTF-8', () => {
    const identity = identityFromBlkid(fields({ ID_FS_TYPE: 'exfat', ID_FS_UUID: '1234-5678', ID_FS_LABEL_ENC: 'caf\\xc3\\xa9' }), 1);
    expect(identity.label).toBe('caf\u00e9');
  });

  it('refuses a label field with an unescaped space, which blkid never prints', () => {
    expect(codeOf(() => identityFromBlkid(fields({ ID_FS_TYPE: 'exfat', ID_FS_LABEL_ENC: 'a b' }), 1))).toBe('MEDIA_TOOL_FAILED');
  });

  it('refuses a filesystem that is neither FAT nor exFAT', () => {
    expect(codeOf(() => identityFromBlkid(fields({ ID_FS_TYPE: 'ntfs' }), 1))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('refuses a volume id that is not XXXX-XXXX', () => {
    expect(codeOf(() => identityFromBlkid(fields({ ID_FS_TYPE: 'exfat', ID_FS_UUID: '$(reboot)' }), 1))).toBe('MEDIA_TOOL_FAILED');
  });
});
