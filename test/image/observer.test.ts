import { describe, expect, it } from 'vitest';
import { filesScanned, parseMountinfo, resultVerdict, screenKind, shownCode } from './observer.ts';

// Screens as the guest's observer read them off tty1 (/dev/vcsu1) in the QEMU test.
const bar = (right: string): string[] => [
  '┌──────────────────────────────────────────────────────────────────────────────┐',
  `│ PORTCULLIS media gate${right.padStart(56)} │`,
  '└──────────────────────────────────────────────────────────────────────────────┘',
];

describe('reading tty1 in the image test', () => {
  it('tells the station\'s screens apart by their title bar, with or without a status in the middle', () => {
    expect(screenKind([...bar('ready'), '', '  Plug in the USB drive to check.'])).toBe('ready');
    expect(screenKind([...bar('scanning'), '  Files 3 of 12'])).toBe('scanning');
    expect(screenKind([`│ PORTCULLIS media gate          signatures 0 days old          out of service │`])).toBe('out-of-service');
    expect(screenKind([`│ PORTCULLIS media gate          signatures 0 days old                   ready │`])).toBe('ready');
    expect(screenKind(['', '== Portcullis first boot: this kiosk signing key was made =='])).toBe('first-boot-key');
    expect(screenKind(['', ''])).toBe('blank');
    expect(screenKind(['something else'])).toBe('other');
  });

  it('reads the verdict, the files done and the code shown', () => {
    expect(resultVerdict(['  3 of 5 files may pass; 2 blocked (HMIs will refuse them):'])).toBe('partial');
    expect(resultVerdict(['  All 2 files may go onto plant equipment.'])).toBe('approved');
    expect(resultVerdict(['  Nothing on this drive may pass.'])).toBe('rejected');
    expect(resultVerdict(['  THE SCAN FAILED: this drive was NOT checked.'])).toBe('failed');
    expect(resultVerdict(['  Plug in the USB drive to check.'])).toBeNull();
    expect(filesScanned(['  Files 12 of 96    12.0 MiB of 96.0 MiB'])).toBe(12);
    expect(filesScanned(['  Files - of -'])).toBeNull();
    expect(shownCode(['  is a drive that is also a keyboard', '  (DEVICE_BADUSB)'])).toBe('DEVICE_BADUSB');
  });

  it('reads a mountinfo line of the station\'s mount (as seen in the guest)', () => {
    const m = parseMountinfo('311 283 8:1 / /run/portcullis/media/sda1 ro,nosuid,nodev,noexec,noatime shared:143 - vfat /dev/sda1 ro,uid=900,gid=900,fmask=0177,dmask=0077,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro');
    expect(m).toMatchObject({ mountPoint: '/run/portcullis/media/sda1', fsType: 'vfat', source: '/dev/sda1' });
    expect(m?.options).toEqual(['ro', 'nosuid', 'nodev', 'noexec', 'noatime']);
    expect(parseMountinfo('garbage')).toBeNull();
  });
});
