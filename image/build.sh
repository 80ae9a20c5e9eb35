#!/usr/bin/env bash
# Builds the kiosk's bootable disk image from Debian 12's packages and this
# checkout (docs/image.md). Run by `./portcullis image build [--out DIR]`, as
# root (mmdebstrap, chroot, file ownership). Two cached layers, each keyed by a
# hash of what goes into it, so a re-run reuses what has not changed:
#   1. the Debian root filesystem (packages.txt; about 8 minutes), a tarball in $CACHE;
#   2. the disk image: layer 1 + rootfs/ + the project + Node and the YARA helper (about a minute).
# Downloads nothing but Debian packages (the project's npm dependencies are the
# checkout's node_modules, installed from the npm registry by scripts/setup.sh).
#
# usage: build.sh OUT_DIR CACHE_DIR NODE_BIN_DIR [ROOT_HASH_FILE]
set -euo pipefail
out="$1" cache="$2" nodebin="$3" root_hash_file="${4:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(cd "$here/.." && pwd)"
suite=bookworm
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap, chroot and file ownership need it)"
for t in mmdebstrap mkfs.ext4 mkfs.vfat mmd mcopy sfdisk grub-mkstandalone; do
  command -v "$t" >/dev/null || die "$t is missing: run ./portcullis setup --image (scripts/setup.sh --image)"
done
# The kiosk's full YARA engine is a small helper against libyara that scripts/setup.sh
# builds into .tools/ (kiosk/engines/yara-full/); the image takes that binary, as it
# takes the checkout's Node (libyara9 itself is in the image, through yara).
yara_helper="$project/.tools/portcullis-yara"
[ -x "$yara_helper" ] || die "$yara_helper is missing: run ./portcullis setup (scripts/setup.sh builds the kiosk's YARA helper)"
mkdir -p "$cache" "$out"

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | tr -s ' \n' ' '; }
hash_files() { (cd "$1" && find "${@:2}" -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16; }

# ---- layer 1: the Debian root filesystem --------------------------------------
base_key="$( { echo "$suite 1"; packages; } | sha256sum | cut -c1-16)"
base="$cache/debian-$suite-$base_key.tar"
if [ ! -f "$base" ]; then
  log "layer 1: mmdebstrap $suite ($(packages | wc -w) packages) -> $base"
  started=$SECONDS
  # minbase + the listed packages; no documentation, manuals or translations
  # (copyright files stay); apt's lists are dropped at the end.
  mmdebstrap --variant=minbase --mode=root --format=tar --components=main \
    --include="$(packages | tr ' ' ',' | sed 's/,$//')" \
    --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" apt-get clean' --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    "$suite" "$base.partial" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" >&2
  mv "$base.partial" "$base"
  log "layer 1 done in $((SECONDS - started)) s"
fi

# ---- layer 2: the disk image ----------------------------------------------------
# What goes into the image from the checkout: the whole project as committed
# (git HEAD: work in progress in the working tree never reaches an image), but
# its tests. The kiosk's import graph reaches beyond kiosk/ (its demo drives the
# agent and builds drive images with test/support/), so nothing else is cut.
project_key="$(cd "$project" && git rev-parse 'HEAD^{tree}' | cut -c1-16)"
node_version="$("$nodebin/node" --version)"
modules_key="$(cat "$project/node_modules/.portcullis-setup" 2>/dev/null || echo none)"
root_hash=""
[ -z "$root_hash_file" ] || root_hash="$(head -n 1 "$root_hash_file")"
image_key="$( { echo "$base_key"; hash_files "$here" rootfs packages.txt build.sh customize.sh grub.cfg bios-boot.sh; echo "$project_key $node_version $modules_key"; sha256sum < "$yara_helper"; echo "$root_hash"; } | sha256sum | cut -c1-16)"
final="$cache/image-$image_key"
uuid_from() { printf '%s' "$1" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-a\4-\5/'; }
# A fixed layout, the same in every image, so that an update rewrites the
# system partitions in place and keeps the persistent partition after them
# (docs/image.md "Updating"): BIOS boot 1 MiB, EFI 64 MiB, root 2 GiB, with
# fixed partition ids (the kernel finds its root by this one; USB storage is not
# in the initramfs, so no drive can offer the same id in its place).
esp_mib=64
root_mib=2048
root_partuuid=7b4e1f3a-59c2-4d8e-a6f1-2c9d0e5b8a13
esp_partuuid=3f9a2c71-0d4e-4b6a-9e85-61c7d2f04b92
bios_partuuid=c2d8e6b0-7a1f-4c39-8d52-9e4b0f3a7c61
disk_guid="$(uuid_from "disk $image_key")"
# The kernel command line: read-only root found by its partition id (USB storage
# is not in the initramfs, so no drive can stand in for it), consoles on the
# serial port only (tty1 is the station's), no USB device authorized before
# USBGuard has decided (etc/usbguard/), no screen blanking, no GPT auto-mounts.
cmdline="root=PARTUUID=$root_partuuid ro console=ttyS0,115200 usbcore.authorized_default=0 consoleblank=0 systemd.gpt_auto=0 loglevel=4"

if [ ! -f "$final/image.json" ]; then
  log "layer 2: image $image_key (base $base_key, project $project_key, Node $node_version)"
  started=$SECONDS
  work="$cache/work-$image_key"
  rm -rf "$work" && mkdir -p "$work/root"
  trap 'rm -rf "$work"' EXIT
  tar -C "$work/root" -xf "$base"

  # The image's own files, then the project and its runtime under /opt/portcullis.
  cp -a --no-preserve=ownership "$here/rootfs/." "$work/root/"
  chmod 0440 "$work/root/etc/sudoers.d/portcullis-mount"
  opt="$work/root/opt/portcullis"
  mkdir -p "$opt/node/bin"
  (cd "$project" && git archive --format=tar HEAD) | tar -x -C "$opt" --exclude='*.test.ts'
  [ -z "$(cd "$project" && git status --porcelain --untracked-files=no)" ] ||
    log "note: uncommitted changes are not in the image: it holds the project as committed (git HEAD)"
  cp -a "$project/node_modules" "$opt/node_modules"
  # Only the runtime dependencies (the native addons were built for this Node by scripts/setup.sh).
  (cd "$opt" && PATH="$nodebin:$PATH" npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  rm -f "$opt/node_modules/.portcullis-setup" "$opt/node_modules/.package-lock.json"
  install -m 0755 "$nodebin/node" "$opt/node/bin/node"
  # Where kiosk/engines/yara-full/helper.ts looks for it: .tools/ beside the project.
  install -D -m 0755 "$yara_helper" "$opt/.tools/portcullis-yara"
  chown -R 0:0 "$opt" && chmod -R u=rwX,go=rX "$opt"
  chmod 0755 "$opt/kiosk/bin/portcullis-kiosk.js"
  printf '{ "image": "%s", "project": "%s", "node": "%s", "built": "%s" }\n' "$image_key" "$project_key" "$node_version" "$(date -u +%FT%TZ)" > "$opt/IMAGE.json"

  # In the chroot: users, services, root account, initramfs.
  for fs in proc sys dev; do mount --rbind "/$fs" "$work/root/$fs"; done
  trap 'for fs in dev sys proc; do umount -R "$work/root/$fs" 2>/dev/null || true; done; rm -rf "$work"' EXIT
  install -m 0755 "$here/customize.sh" "$work/root/customize.sh"
  chroot "$work/root" /customize.sh "$root_hash" >&2
  rm -f "$work/root/customize.sh"
  for fs in dev sys proc; do umount -R "$work/root/$fs"; done
  trap 'rm -rf "$work"' EXIT

  kernel="$(readlink -f "$work/root/vmlinuz")" initrd="$(readlink -f "$work/root/initrd.img")"
  cp "$kernel" "$work/vmlinuz" && cp "$initrd" "$work/initrd.img"

  # Root filesystem: ext4 made from the folder (no mount), about a quarter free.
  used_mib=$(du -sm "$work/root" | cut -f1)
  [ "$used_mib" -lt $((root_mib * 85 / 100)) ] || die "the root filesystem needs ${used_mib} MiB: more than 85% of its fixed ${root_mib} MiB"
  mkfs.ext4 -q -L PCROOT -U "$(uuid_from "rootfs $image_key")" -E root_owner=0:0 -d "$work/root" "$work/root.ext4" "${root_mib}M"

  # EFI system partition: GRUB as one EFI program with its configuration inside,
  # written with mtools (no mount). It boots the root partition of its own disk.
  sed -e "s|@CMDLINE@|$cmdline|" "$here/grub.cfg" > "$work/grub.cfg"
  grub-mkstandalone -O x86_64-efi --locales= --fonts= --themes= -o "$work/BOOTX64.EFI" "boot/grub/grub.cfg=$work/grub.cfg"
  mkfs.vfat -F 32 -s 1 -n PCEFI -i 50435546 -C "$work/esp.vfat" $((esp_mib * 1024)) >/dev/null
  MTOOLS_SKIP_CHECK=1 mmd -i "$work/esp.vfat" ::/EFI ::/EFI/BOOT
  MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp.vfat" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

  # The disk: GPT with BIOS boot, EFI and root partitions; the persistent data
  # partition is made at first boot in the free space of the disk it is written to.
  disk="$work/portcullis-kiosk.img"
  disk_mib=$((1 + 1 + esp_mib + root_mib + 1))
  truncate -s "${disk_mib}M" "$disk"
  sfdisk --quiet "$disk" <<SFDISK
label: gpt
label-id: $disk_guid
first-lba: 2048
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=$bios_partuuid, name=bios
start=4096, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_partuuid, name=EFI
start=$((4096 + esp_mib * 2048)), size=$((root_mib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_partuuid, name=portcullis-root
SFDISK
  dd if="$work/esp.vfat" of="$disk" bs=1M seek=2 conv=notrunc,sparse status=none
  dd if="$work/root.ext4" of="$disk" bs=1M seek=$((2 + esp_mib)) conv=notrunc,sparse status=none
  "$here/bios-boot.sh" "$disk" "$work/grub.cfg" >&2

  cat > "$work/image.json" <<JSON
{
  "key": "$image_key",
  "baseKey": "$base_key",
  "projectKey": "$project_key",
  "node": "$node_version",
  "debian": "$suite",
  "kernel": "$(basename "$kernel")",
  "cmdline": "$cmdline",
  "rootPartuuid": "$root_partuuid",
  "rootMiB": $root_mib,
  "rootUsedMiB": $used_mib,
  "diskMiB": $disk_mib,
  "systemMiB": { "from": 1, "count": $((disk_mib - 2)) },
  "built": "$(date -u +%FT%TZ)",
  "buildSeconds": $((SECONDS - started))
}
JSON
  mkdir -p "$final.partial"
  mv "$disk" "$work/vmlinuz" "$work/initrd.img" "$work/image.json" "$final.partial/"
  rm -rf "$final" && mv "$final.partial" "$final"
  rm -rf "$work"
  trap - EXIT
  log "layer 2 done in $((SECONDS - started)) s: $final"
fi

# The result where it was asked for (hard links: the cache and --out share the bytes when they can).
if [ "$(readlink -f "$out")" != "$(readlink -f "$final")" ]; then
  for f in portcullis-kiosk.img vmlinuz initrd.img image.json; do
    rm -f "$out/$f"
    ln "$final/$f" "$out/$f" 2>/dev/null || cp --sparse=always "$final/$f" "$out/$f"
  done
fi
echo "$final"
