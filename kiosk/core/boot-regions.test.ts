import { describe, expect, it } from 'vitest';
import { BOOT_LIMITS, checkGptEntries, crc32, diskBootRegions, judgeBootRegions, volumeBootRegion, type BootRegionResult, type RegionPlan } from './boot-regions.ts';

/** Why a plan was refused ('' when it was not). */
const refusal = (plan: RegionPlan): string => (plan.ok ? '' : plan.detail);

const MiB = 1024 * 1024;

function put32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
}
function put64(b: Uint8Array, at: number, v: number): void {
  const d = new DataView(b.buffer, b.byteOffset);
  d.setUint32(at, v % 0x1_0000_0000, true);
  d.setUint32(at + 4, Math.floor(v / 0x1_0000_0000), true);
}

/** The first 8 KiB of a GPT disk with `sector`-byte sectors: protective MBR, header at LBA 1 with correct CRCs. */
function gptHead(options: { sector?: 512 | 4096; entries?: number; entrySize?: number; entriesLba?: number; headerSize?: number; myLba?: number } = {}): { head: Uint8Array; entries: Uint8Array } {
  const s = options.sector ?? 512;
  const head = new Uint8Array(8192);
  head[446 + 4] = 0xee;
  head[510] = 0x55;
  head[511] = 0xaa;
  const h = head.subarray(s, s + s);
  h.set(new TextEncoder().encode('EFI PART'), 0);
  put32(h, 8, 0x00010000);
  const headerSize = options.headerSize ?? 92;
  put32(h, 12, headerSize);
  put64(h, 24, options.myLba ?? 1);
  put64(h, 72, options.entriesLba ?? 2);
  const count = options.entries ?? 128;
  const size = options.entrySize ?? 128;
  put32(h, 80, count);
  put32(h, 84, size);
  const entries = new Uint8Array(Math.min(count * size, 1 * MiB));
  if (entries.length >= 128) entries.set(new TextEncoder().encode('partition one'), 56);
  put32(h, 88, crc32(entries));
  put32(h, 16, crc32(h.subarray(0, Math.min(headerSize, s))));
  return { head, entries };
}

function fatBootSector(reserved: number, bytesPerSector = 512): Uint8Array {
  const s = new Uint8Array(512);
  s.set([0xeb, 0x58, 0x90], 0);
  s.set(new TextEncoder().encode('mkfs.fat'), 3);
  s[11] = bytesPerSector & 0xff;
  s[12] = bytesPerSector >> 8;
  s[13] = 1;
  s[14] = reserved & 0xff;
  s[15] = reserved >> 8;
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

function exfatBootSector(shift: number): Uint8Array {
  const s = new Uint8Array(512);
  s.set([0xeb, 0x76, 0x90], 0);
  s.set(new TextEncoder().encode('EXFAT   '), 3);
  s[108] = shift;
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

describe('crc32', () => {
  it('is the IEEE CRC-32 GPT uses (check value of "123456789")', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('diskBootRegions', () => {
  it('plans LBA 0 alone on an MBR disk', () => {
    const head = new Uint8Array(8192);
    head[446 + 4] = 0x0c; // FAT32 LBA
    const plan = diskBootRegions(head, 64 * MiB);
    expect(plan).toMatchObject({ ok: true, regions: [{ name: 'mbr', source: 'disk', offset: 0, length: 512 }] });
    expect(plan.ok && plan.gptEntriesCrc).toBeFalsy();
  });

  it('plans the protective MBR, the GPT header and the entry array the header points to', () => {
    const { head, entries } = gptHead();
    const plan = diskBootRegions(head, 64 * MiB);
    expect(plan).toMatchObject({
      ok: true,
      regions: [
        { name: 'mbr', offset: 0, length: 512 },
        { name: 'gpt-header', offset: 512, length: 512 },
        { name: 'gpt-entries', offset: 1024, length: 16384 },
      ],
    });
    if (!plan.ok || plan.gptEntriesCrc === undefined) throw new Error('no entries CRC');
    expect(checkGptEntries(entries.subarray(0, 16384), plan.gptEntriesCrc)).toBeNull();
    const changed = entries.slice(0, 16384);
    changed[0] = 1;
    expect(checkGptEntries(changed, plan.gptEntriesCrc)).toMatch(/CRC/);
  });

  it('finds the GPT header of a 4096-byte-sector disk at byte 4096 and plans whole sectors', () => {
    const { head } = gptHead({ sector: 4096, entriesLba: 2, entries: 128 });
    expect(diskBootRegions(head, 64 * MiB)).toMatchObject({
      ok: true,
      regions: [{ name: 'mbr', length: 4096 }, { name: 'gpt-header', offset: 4096, length: 4096 }, { name: 'gpt-entries', offset: 8192, length: 16384 }],
    });
  });

  it('refuses a protective MBR without a GPT header, and a header firmware would not take', () => {
    const head = new Uint8Array(8192);
    head[446 + 4] = 0xee;
    expect(refusal(diskBootRegions(head, 64 * MiB))).toMatch(/no GPT header/);
    const bad = gptHead().head;
    bad[512 + 40] = (bad[512 + 40] ?? 0) ^ 0xff; // inside the CRC'd header
    expect(refusal(diskBootRegions(bad, 64 * MiB))).toMatch(/wrong CRC/);
    expect(refusal(diskBootRegions(gptHead({ headerSize: 600 }).head, 64 * MiB))).toMatch(/header size of 600/);
    expect(refusal(diskBootRegions(gptHead({ myLba: 7 }).head, 64 * MiB))).toMatch(/at LBA 7/);
    expect(refusal(diskBootRegions(gptHead({ entrySize: 100 }).head, 64 * MiB))).toMatch(/entry size of 100/);
    expect(refusal(diskBootRegions(gptHead({ entries: 0 }).head, 64 * MiB))).toMatch(/no partition entries/);
  });

  it('bounds the entry array and keeps it inside the disk', () => {
    const huge = gptHead({ entries: 100_000 }).head;
    expect(refusal(diskBootRegions(huge, 64 * MiB))).toContain(`${BOOT_LIMITS.maxGptEntriesBytes} bytes`);
    expect(refusal(diskBootRegions(gptHead({ entriesLba: 2 ** 40 }).head, 64 * MiB))).toMatch(/outside the disk/);
    expect(refusal(diskBootRegions(gptHead({ entriesLba: 1 }).head, 64 * MiB))).toMatch(/outside the disk/);
    expect(refusal(diskBootRegions(gptHead().head, 4096))).toMatch(/outside the disk/);
  });

  it('refuses a disk smaller than a sector', () => {
    expect(diskBootRegions(new Uint8Array(100), 100)).toMatchObject({ ok: false });
  });
});

describe('volumeBootRegion', () => {
  it('plans a FAT volume\'s reserved sectors and an exFAT volume\'s two boot regions', () => {
    expect(volumeBootRegion(fatBootSector(32), 64 * MiB)).toMatchObject({ ok: true, regions: [{ name: 'volume-boot', source: 'volume', offset: 0, length: 32 * 512 }] });
    expect(volumeBootRegion(fatBootSector(1, 4096), 64 * MiB)).toMatchObject({ ok: true, regions: [{ length: 4096 }] });
    expect(volumeBootRegion(exfatBootSector(9), 64 * MiB)).toMatchObject({ ok: true, regions: [{ length: 24 * 512 }] });
    expect(volumeBootRegion(exfatBootSector(12), 64 * MiB)).toMatchObject({ ok: true, regions: [{ length: 24 * 4096 }] });
  });

  it('takes the first sector of anything else', () => {
    expect(volumeBootRegion(new Uint8Array(512), 64 * MiB)).toMatchObject({ ok: true, regions: [{ length: 512 }] });
  });

  it('refuses reserved sectors past the bound or the volume, no reserved sectors, and an exFAT sector shift out of range', () => {
    expect(refusal(volumeBootRegion(fatBootSector(65_535, 4096), 1024 * MiB))).toContain(`${BOOT_LIMITS.maxVolumeBootBytes} bytes`);
    expect(refusal(volumeBootRegion(fatBootSector(0), 64 * MiB))).toMatch(/0 reserved/);
    expect(refusal(volumeBootRegion(fatBootSector(64), 16 * 1024))).toMatch(/past the end/);
    expect(refusal(volumeBootRegion(exfatBootSector(13), 64 * MiB))).toMatch(/2\^13/);
    expect(volumeBootRegion(new Uint8Array(100), 100)).toMatchObject({ ok: false });
  });
});

describe('judgeBootRegions', () => {
  const region = (result: Partial<BootRegionResult>): BootRegionResult => ({ name: 'mbr', device: '/dev/sdb', offset: 0, length: 512, sha256: '0'.repeat(64), result: 'clean', ...result });

  it('has no reason when every region came back clean', () => {
    expect(judgeBootRegions([region({}), region({ name: 'volume-boot', device: '/dev/sdb1' })])).toBeNull();
  });

  it('refuses a drive whose boot code an engine matched, naming the region and signature', () => {
    const reason = judgeBootRegions([region({}), region({ name: 'volume-boot', device: '/dev/sdb1', result: 'found', finding: 'MALWARE', signature: 'Boot.Test' })]);
    expect(reason?.code).toBe('BOOT_CODE_INFECTED');
    expect(reason?.detail).toContain('volume boot sectors of /dev/sdb1: Boot.Test');
    expect(judgeBootRegions([region({ result: 'found', finding: 'YARA_MATCH', signature: 'YARA.x' })])?.code).toBe('BOOT_CODE_INFECTED');
  });

  it('calls a region the engines could not inspect unchecked, and no regions at all unchecked', () => {
    expect(judgeBootRegions([region({ result: 'found', finding: 'LIMIT_EXCEEDED', signature: 'Heuristics.Limits' })])?.code).toBe('BOOT_SECTORS_UNCHECKED');
    expect(judgeBootRegions([])?.code).toBe('BOOT_SECTORS_UNCHECKED');
  });
});
