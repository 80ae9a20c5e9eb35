import { describe, expect, it } from 'vitest';
import { mountArgs, mountPointFor, remountArgs } from '../drive/mount.ts';
import { checkLayout, checkVolume, classifyVolume } from './volume-check.ts';

function sector(at: number, bytes: number[] | string, opts: { signature?: boolean; fatBpb?: boolean } = {}): Uint8Array {
  const s = new Uint8Array(512);
  if (opts.fatBpb) {
    s.set([0xeb, 0x58, 0x90], 0);
    s[11] = 0x00;
    s[12] = 0x02; // 512 bytes per sector
  }
  s.set(typeof bytes === 'string' ? [...bytes].map((c) => c.charCodeAt(0)) : bytes, at);
  if (opts.signature ?? true) {
    s[510] = 0x55;
    s[511] = 0xaa;
  }
  return s;
}

describe('classifyVolume', () => {
  it('recognises FAT and exFAT boot sectors', () => {
    expect(classifyVolume(sector(3, 'MSDOS5.0', { fatBpb: true }))).toBe('vfat');
    expect(classifyVolume(sector(3, 'EXFAT   '))).toBe('exfat');
  });

  it('recognises BitLocker before FAT: a BitLocker boot sector looks like FAT', () => {
    expect(classifyVolume(sector(3, '-FVE-FS-', { fatBpb: true }))).toBe('bitlocker');
  });

  it('recognises LUKS1/LUKS2 headers and NTFS', () => {
    expect(classifyVolume(sector(0, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0x00, 0x02], { signature: false }))).toBe('luks');
    expect(classifyVolume(sector(3, 'NTFS    '))).toBe('ntfs');
  });

  it('calls zeros and a short read unknown', () => {
    expect(classifyVolume(new Uint8Array(512))).toBe('unknown');
    expect(classifyVolume(new Uint8Array(3))).toBe('unknown');
  });
});

describe('checkVolume and checkLayout', () => {
  it('refuses encrypted volumes with VOLUME_ENCRYPTED and a message that says what to do', () => {
    const c = checkVolume('/dev/sdb1', sector(3, '-FVE-FS-', { fatBpb: true }));
    expect(c).toMatchObject({ ok: false, code: 'VOLUME_ENCRYPTED' });
    if (!c.ok) expect(c.message).toMatch(/BitLocker.*unencrypted drive/);
  });

  it('refuses an unknown filesystem and NTFS with VOLUME_UNKNOWN_FS', () => {
    expect(checkVolume('/dev/sdb1', new Uint8Array(512))).toMatchObject({ ok: false, code: 'VOLUME_UNKNOWN_FS' });
    expect(checkVolume('/dev/sdb1', sector(3, 'NTFS    '))).toMatchObject({ ok: false, code: 'VOLUME_UNKNOWN_FS' });
  });

  it('refuses a drive with no partition, and accepts one with a partition', () => {
    expect(checkLayout([{ device: '/dev/sdb', size: 1, partitionTableType: null, partitions: [] }])).toMatchObject({ ok: false, code: 'VOLUME_NO_PARTITION' });
    expect(checkLayout([])).toMatchObject({ ok: false, code: 'DEVICE_NO_STORAGE' });
    expect(checkLayout([{ device: '/dev/sdb', size: 1, partitionTableType: 'mbr', partitions: [{ device: '/dev/sdb1', mountpoint: null, label: null }] }])).toBeNull();
  });
});

describe('mount arguments', () => {
  it('mounts read-only with nosuid, nodev and noexec, owned by the kiosk user', () => {
    const args = mountArgs('/dev/sdb1', '/run/portcullis/media/sdb1', 'vfat', { uid: 990, gid: 990 });
    expect(args.slice(0, 2)).toEqual(['-t', 'vfat']);
    const options = args[3]!.split(',');
    expect(options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec', 'uid=990', 'gid=990']));
    expect(options).not.toContain('rw');
    expect(args.slice(-3)).toEqual(['--', '/dev/sdb1', '/run/portcullis/media/sdb1']);
  });

  it('keeps nosuid, nodev and noexec when remounting read-write for the manifest', () => {
    expect(remountArgs('/m/sdb1', true)).toEqual(['-o', 'remount,rw,nosuid,nodev,noexec,noatime', '--', '/m/sdb1']);
    expect(remountArgs('/m/sdb1', false)[1]).toMatch(/^remount,ro,/);
  });

  it('makes a mount folder name from safe characters only', () => {
    expect(mountPointFor('/run/pc', '/dev/sdb1')).toBe('/run/pc/sdb1');
    expect(mountPointFor('/run/pc', '/dev/../../etc')).toBe('/run/pc/______etc');
  });
});
