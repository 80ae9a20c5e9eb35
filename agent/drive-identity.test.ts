import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkMediaBinding, cimCommand, parseBootSector, parseCimVolume } from './drive-identity.ts';
import { DEFAULT_IDENTITY, DEFAULT_MEDIA, tempDir } from '../test/support/agent-fixtures.ts';

function bootSector(image: string): Uint8Array {
  const fd = openSync(image, 'r');
  const sector = Buffer.alloc(512);
  readSync(fd, sector, 0, 512, 0);
  closeSync(fd);
  return sector;
}

describe('checkMediaBinding', () => {
  it('accepts a drive whose filesystem, volume id, label and capacity match', () => {
    expect(checkMediaBinding(DEFAULT_MEDIA, DEFAULT_IDENTITY, true)).toEqual({ ok: true, checked: ['filesystem', 'volumeId', 'label', 'capacity'] });
  });

  it.each([
    ['volumeId', { volumeId: '9999-0000' }],
    ['label', { label: 'OTHER' }],
    ['capacity', { capacity: 16_000_000_000 }],
    ['filesystem', { filesystem: 'exFAT' }],
  ])('refuses a drive whose %s differs, even when binding is optional', (_field, change) => {
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, ...change }, false).ok).toBe(false);
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, ...change }, true).ok).toBe(false);
  });

  it('fails closed when binding is required but the drive identity is unknown', () => {
    expect(checkMediaBinding(DEFAULT_MEDIA, null, true).ok).toBe(false);
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, capacity: null }, true).ok).toBe(false);
    expect(checkMediaBinding(DEFAULT_MEDIA, null, false).ok).toBe(true);
  });

  it('refuses a manifest that binds no volume id when binding is required', () => {
    expect(checkMediaBinding({ ...DEFAULT_MEDIA, volumeId: null }, DEFAULT_IDENTITY, true).ok).toBe(false);
  });

  it('tells an identity that could not be read, a manifest that binds nothing, a field the drive cannot tell and a real mismatch apart', () => {
    expect(checkMediaBinding(DEFAULT_MEDIA, null, true)).toMatchObject({ ok: false, problem: 'IDENTITY_UNREADABLE' });
    expect(checkMediaBinding({ ...DEFAULT_MEDIA, volumeId: null }, DEFAULT_IDENTITY, true)).toMatchObject({ ok: false, problem: 'MANIFEST_UNBOUND' });
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, capacity: null }, true)).toMatchObject({ ok: false, problem: 'FIELD_UNKNOWN' });
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, volumeId: '9999-0000' }, false)).toMatchObject({ ok: false, problem: 'MISMATCH' });
  });

  it('compares volume ids without regard to case or dash, and labels in their escaped form', () => {
    expect(checkMediaBinding(DEFAULT_MEDIA, { ...DEFAULT_IDENTITY, volumeId: '1a2b3c4d' }, true).ok).toBe(true);
    const media = { ...DEFAULT_MEDIA, label: 'A\\x1bB' };
    expect(checkMediaBinding(media, { ...DEFAULT_IDENTITY, label: 'A\u001bB' }, true).ok).toBe(true);
  });
});

describe('parseBootSector', () => {
  it('reads the FAT32 volume id and size that mkfs.fat wrote', () => {
    const image = join(tempDir('fat'), 'fat32.img');
    execFileSync('truncate', ['-s', '40M', image]);
    execFileSync('mkfs.fat', ['-F', '32', '-i', '1A2B3C4D', '-n', 'LINE3', image], { stdio: 'ignore' });
    expect(parseBootSector(bootSector(image))).toEqual({ filesystem: 'fat32', volumeId: '1A2B-3C4D', capacity: 40 * 1024 * 1024 });
  });

  it('tells FAT16 from FAT32 by cluster count', () => {
    const image = join(tempDir('fat'), 'fat16.img');
    execFileSync('truncate', ['-s', '16M', image]);
    execFileSync('mkfs.fat', ['-F', '16', '-i', 'DEADBEEF', image], { stdio: 'ignore' });
    expect(parseBootSector(bootSector(image))).toMatchObject({ filesystem: 'fat16', volumeId: 'DEAD-BEEF' });
  });

  it('reads the exFAT serial and volume length', () => {
    const image = join(tempDir('exfat'), 'exfat.img');
    execFileSync('truncate', ['-s', '8M', image]);
    execFileSync('mkfs.exfat', ['-L', 'LINE3', image], { stdio: 'ignore' });
    // exfatprogs picks a random serial; util-linux blkid reads it independently.
    const serial = execFileSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', image]).toString().trim();
    expect(serial).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    expect(parseBootSector(bootSector(image))).toEqual({ filesystem: 'exfat', volumeId: serial, capacity: 8 * 1024 * 1024 });
  });

  it('returns null for a sector that is neither FAT nor exFAT', () => {
    expect(parseBootSector(new Uint8Array(512))).toBeNull();
  });
});

describe('Windows CIM identity', () => {
  it('parses Win32_LogicalDisk output and formats the serial like the kiosk', () => {
    const facts = parseCimVolume('{"DeviceID":"E:","DriveType":2,"FileSystem":"FAT32","VolumeName":"LINE3","VolumeSerialNumber":"1A2B3C4D","Size":8004288512}');
    expect(facts).toEqual({ letter: 'E', removable: true, identity: { filesystem: 'FAT32', volumeId: '1A2B-3C4D', label: 'LINE3', capacity: null } });
    expect(parseCimVolume('{"DeviceID":"C:","DriveType":3,"FileSystem":"NTFS","VolumeName":"","VolumeSerialNumber":"00000000","Size":1}')?.removable).toBe(false);
    expect(parseCimVolume('not json')).toBeNull();
  });

  it('builds the PowerShell command only for a single drive letter', () => {
    expect(cimCommand('E').at(-1)).toContain("DeviceID='E:'");
    expect(() => cimCommand("E:'; Remove-Item C:\\ -Recurse; '")).toThrow();
  });
});
