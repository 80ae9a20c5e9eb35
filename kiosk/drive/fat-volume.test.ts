import { describe, expect, it } from 'vitest';
import { MediaError } from './errors.ts';
import { parseFatBootSector, shortNameChecksum } from './fat-volume.ts';

/** A FAT boot sector with a BPB; the FAT type follows from `totalSectors`. */
function bootSector(fields: { totalSectors: number; fat32?: boolean; rootEntries?: number; bootSig?: number; bytesPerSector?: number; fatSectors?: number }): Uint8Array {
  const s = new Uint8Array(512);
  const v = new DataView(s.buffer);
  s.set([0xeb, 0x58, 0x90], 0);
  v.setUint16(11, fields.bytesPerSector ?? 512, true);
  s[13] = 1; // sectors per cluster
  v.setUint16(14, 32, true); // reserved
  s[16] = 2; // FATs
  const fat32 = fields.fat32 ?? true;
  v.setUint16(17, fat32 ? 0 : (fields.rootEntries ?? 512), true);
  v.setUint32(32, fields.totalSectors, true);
  const fatSectors = fields.fatSectors ?? 1024;
  if (fat32) {
    v.setUint32(36, fatSectors, true);
    v.setUint32(44, 2, true); // root cluster
    s[66] = fields.bootSig ?? 0x29;
    v.setUint32(67, 0xdeadbeef, true);
    s.set(new TextEncoder().encode('MY LABEL   '), 71);
  } else {
    v.setUint16(22, fatSectors, true);
    s[38] = fields.bootSig ?? 0x29;
    v.setUint32(39, 0x12345678, true);
    s.set(new TextEncoder().encode('NO NAME    '), 43);
  }
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof MediaError ? error.code : 'not a MediaError';
  }
  return undefined;
}

describe('parseFatBootSector', () => {
  it('decides FAT32 from 65,525 clusters and FAT16 from one fewer (spec 3.5)', () => {
    const overhead = 32 + 2 * 1024; // reserved + two FATs; FAT32 has no fixed root
    expect(parseFatBootSector(bootSector({ totalSectors: overhead + 65525 })).kind).toBe('fat32');
    const fat16 = parseFatBootSector(bootSector({ totalSectors: 32 + 2 * 1024 + 32 + 65524, fat32: false, rootEntries: 512 }));
    expect(fat16.kind).toBe('fat16');
    expect(fat16.clusterCount).toBe(65524);
  });

  it('decides FAT12 below 4,085 clusters', () => {
    const boot = parseFatBootSector(bootSector({ totalSectors: 32 + 2 * 16 + 32 + 4084, fat32: false, fatSectors: 16 }));
    expect(boot.kind).toBe('fat12');
  });

  it('reads the volume id and label of a FAT32 boot sector', () => {
    const boot = parseFatBootSector(bootSector({ totalSectors: 32 + 2048 + 70000 }));
    expect(boot.volumeId).toBe(0xdeadbeef);
    expect(boot.bootLabel).toBe('MY LABEL');
  });

  it('reports no volume id when the extended boot signature is missing', () => {
    const boot = parseFatBootSector(bootSector({ totalSectors: 32 + 2048 + 70000, bootSig: 0 }));
    expect(boot.volumeId).toBeNull();
    expect(boot.bootLabel).toBeNull();
  });

  it('rejects a sector without the 0x55AA signature', () => {
    const s = bootSector({ totalSectors: 70000 });
    s[511] = 0;
    expect(codeOf(() => parseFatBootSector(s))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects a sector size that is not 512..4096', () => {
    expect(codeOf(() => parseFatBootSector(bootSector({ totalSectors: 70000, bytesPerSector: 500 })))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects a FAT too small to map its clusters', () => {
    expect(codeOf(() => parseFatBootSector(bootSector({ totalSectors: 32 + 2 * 8 + 70000, fatSectors: 8 })))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects a volume whose metadata leaves no data region', () => {
    expect(codeOf(() => parseFatBootSector(bootSector({ totalSectors: 100 })))).toBe('MEDIA_UNRECOGNIZED');
  });
});

describe('shortNameChecksum', () => {
  // Checksums mtools 4.0.32 wrote into long-name slots for these 8.3 names.
  it.each([
    ['HIDDEN~1   ', 0x4d],
    ['LONGFI~1TXT', 0xd4],
    ['______~1   ', 0xd3],
  ])('gives %j the checksum mtools wrote (0x%s)', (name, expected) => {
    expect(shortNameChecksum(new TextEncoder().encode(name))).toBe(expected);
  });
});
