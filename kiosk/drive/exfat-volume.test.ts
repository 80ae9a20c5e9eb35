import { describe, expect, it } from 'vitest';
import { MediaError } from './errors.ts';
import { exfatBootChecksum, exfatNameHash, exfatNameProblem, expandUpcaseTable, parseExfatBootSector } from './exfat-volume.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof MediaError ? error.code : 'not a MediaError';
  }
  return undefined;
}

/** The boot sector mkfs.exfat (exfatprogs 1.2) writes for an 8 MiB volume, serial 0x12345678. */
function bootSector(): Uint8Array {
  const s = new Uint8Array(512);
  const v = new DataView(s.buffer);
  s.set([0xeb, 0x76, 0x90], 0);
  s.set(new TextEncoder().encode('EXFAT   '), 3);
  v.setBigUint64(72, 16384n, true); // VolumeLength
  v.setUint32(80, 2048, true); // FatOffset
  v.setUint32(84, 16, true); // FatLength
  v.setUint32(88, 4096, true); // ClusterHeapOffset
  v.setUint32(92, 1536, true); // ClusterCount
  v.setUint32(96, 5, true); // root cluster
  v.setUint32(100, 0x12345678, true);
  v.setUint16(104, 0x0100, true);
  s[108] = 9;
  s[109] = 3;
  s[110] = 1;
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

/** Up-case map: identity, a-z to A-Z, é to É (enough for the names below). */
function upcase(): Uint16Array {
  const map = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (let c = 0x61; c <= 0x7a; c += 1) map[c] = c - 0x20;
  map[0xe9] = 0xc9;
  return map;
}

describe('parseExfatBootSector', () => {
  it('reads the geometry and serial of a boot sector', () => {
    const boot = parseExfatBootSector(bootSector());
    expect(boot).toMatchObject({ bytesPerSector: 512, sectorsPerCluster: 8, clusterCount: 1536, rootCluster: 5, volumeSerial: 0x12345678 });
  });

  it('rejects a non-zero MustBeZero field (a FAT BPB in disguise)', () => {
    const s = bootSector();
    s[20] = 1;
    expect(codeOf(() => parseExfatBootSector(s))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects a cluster heap that runs past the volume', () => {
    const s = bootSector();
    new DataView(s.buffer).setUint32(92, 100_000, true);
    expect(codeOf(() => parseExfatBootSector(s))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects a root cluster outside the heap', () => {
    const s = bootSector();
    new DataView(s.buffer).setUint32(96, 1, true);
    expect(codeOf(() => parseExfatBootSector(s))).toBe('MEDIA_UNRECOGNIZED');
  });

  it('rejects clusters larger than 32 MiB', () => {
    const s = bootSector();
    s[109] = 17;
    expect(codeOf(() => parseExfatBootSector(s))).toBe('MEDIA_UNRECOGNIZED');
  });
});

describe('exfatBootChecksum', () => {
  it('ignores VolumeFlags and PercentInUse, which change without a new checksum', () => {
    const region = new Uint8Array(512 * 12);
    region.set(bootSector());
    const before = exfatBootChecksum(region, 512);
    region[106] = 0x02; // VolumeDirty
    region[112] = 57;
    expect(exfatBootChecksum(region, 512)).toBe(before);
    region[100] = (region[100] ?? 0) ^ 1; // the serial does count
    expect(exfatBootChecksum(region, 512)).not.toBe(before);
  });
});

describe('exfatNameHash', () => {
  // Hashes exfat-fuse 1.3.0 wrote into stream extension entries.
  it.each([
    ['README.TXT', 0xeb26],
    ['readme.txt', 0xeb26],
    ['caf\u00e9.txt', 0x6c06],
    ['cafe\u0301.txt', 0x8b2b],
    ['emoji\u{1F600}.txt', 0x62e8],
  ])('hashes %j as exfat-fuse does', (name, expected) => {
    expect(exfatNameHash(name, upcase())).toBe(expected);
  });
});

describe('expandUpcaseTable', () => {
  it('maps an 0xFFFF run to identity and stores the other values in order', () => {
    const bytes = new Uint8Array(new Uint16Array([0xffff, 0x61, 0x41, 0x42]).buffer);
    const map = expandUpcaseTable(bytes);
    expect(map[0x60]).toBe(0x60);
    expect(map[0x61]).toBe(0x41);
    expect(map[0x62]).toBe(0x42);
    expect(map[0x63]).toBe(0x63);
  });
});

describe('exfatNameProblem', () => {
  it.each([
    ['', 'empty'],
    ['..', 'reserved'],
    ['a\u0001b', 'control'],
    ['a:b', 'forbidden'],
    ['x'.repeat(256), 'at most 255'],
  ])('refuses %j', (name, why) => {
    expect(exfatNameProblem(name)).toContain(why);
  });

  it.each(['trailing space ', 'trailing dot.', 'CON', 'rtl\u202etxt.exe', 'cafe\u0301.txt', 'emoji\u{1F600}'])('allows %j, which exFAT can hold', (name) => {
    expect(exfatNameProblem(name)).toBeNull();
  });
});
