#!/usr/bin/env bash
# BIOS boot for the kiosk disk: GRUB's core.img (the same grub.cfg inside) in
# the GPT "BIOS boot" partition and GRUB's boot.img in the protective MBR,
# pointing at it. This is what grub-bios-setup does when it embeds core.img,
# done on the image file directly (grub-bios-setup wants to probe the host's
# own disks): the MBR's partition table is kept, the boot drive is the one the
# BIOS booted from, and core.img's first sector lists the sectors of the rest
# (no Reed-Solomon codes, as with grub-bios-setup --no-rs-codes).
# UEFI firmware boots the EFI partition instead.
#
# usage: bios-boot.sh DISK.img GRUB_CFG
set -euo pipefail
disk="$1" cfg="$2"
grubdir=/usr/lib/grub/i386-pc
bios_lba=2048 # first sector of partition 1, the BIOS boot partition (build.sh)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The BIOS drive GRUB starts from is hd0; the embedded grub.cfg finds its root partition through $prefix.
grub-mkimage -O i386-pc -p '(hd0,gpt3)/boot/grub' -c "$cfg" -o "$tmp/core.img" \
  biosdisk part_gpt ext2 linux regexp test echo normal configfile
python3 - "$disk" "$grubdir/boot.img" "$tmp/core.img" "$bios_lba" <<'PY'
import struct, sys
disk, boot_path, core_path, lba = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
boot = bytearray(open(boot_path, 'rb').read())
core = bytearray(open(core_path, 'rb').read())
core += bytes(-len(core) % 512)
sectors = len(core) // 512
assert len(boot) == 512 and sectors <= 2048, 'core.img must fit the 1 MiB BIOS boot partition'
with open(disk, 'r+b') as f:
    mbr = f.read(512)
    boot[0x03:0x5a] = mbr[0x03:0x5a]        # BPB area, as grub-bios-setup copies it
    boot[0x1b8:0x200] = mbr[0x1b8:0x200]    # disk signature, protective partition table, 55 AA
    boot[0x64] = 0xff                       # GRUB_BOOT_MACHINE_BOOT_DRIVE: the drive the BIOS booted
    boot[0x66:0x68] = b'\x90\x90'           # GRUB_BOOT_MACHINE_DRIVE_CHECK: hard disk, no floppy check
    struct.pack_into('<Q', boot, 0x5c, lba) # GRUB_BOOT_MACHINE_KERNEL_SECTOR: core.img's first sector
    # diskboot.img's blocklist, at the end of core.img's first sector: the rest of core.img,
    # loaded at segment 0x820 (GRUB_BOOT_I386_PC_KERNEL_SEG + one sector).
    struct.pack_into('<QHH', core, 512 - 12, lba + 1, sectors - 1, 0x820)
    struct.pack_into('<QHH', core, 512 - 24, 0, 0, 0)  # terminator
    f.seek(lba * 512); f.write(core)
    f.seek(0); f.write(boot)
PY
