#!/bin/sh
# Runs inside the image's root filesystem (chroot) after rootfs/ and the
# project were copied in: the kiosk user, which services run, the root
# account, the initramfs. Called by build.sh; every step is idempotent.
set -eu
ROOT_HASH="${1:-}"

# The kiosk user: fixed ids, named in etc/fstab (work folder) and etc/sudoers.d.
getent group portcullis >/dev/null || groupadd --system --gid 900 portcullis
getent passwd portcullis >/dev/null || useradd --system --uid 900 --gid 900 --home-dir /var/lib/portcullis \
  --no-create-home --shell /usr/sbin/nologin --comment 'Portcullis kiosk' portcullis

echo portcullis-kiosk > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tportcullis-kiosk\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
# An empty machine-id: systemd makes a transient one at each boot (root is read-only).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id && ln -s /etc/machine-id /var/lib/dbus/machine-id
# Mount point of the persistent partition (portcullis-data.service).
mkdir -p /var/lib/portcullis

# Services: the station and what it needs; nothing that listens, updates or logs in on a screen.
systemctl set-default multi-user.target
systemctl enable portcullis-data.service portcullis-usbguard-firstboot.service usbguard.service \
  portcullis-firstboot.service portcullis-kiosk.service
# Debian's own clamd and freshclam: the kiosk starts its own clamd with its own
# configuration and database (docs/scanning.md); nothing is downloaded at the gate.
systemctl mask clamav-daemon.service clamav-daemon.socket clamav-freshclam.service
# No getty on any virtual terminal (the serial console keeps its own), no Ctrl+Alt+Del reboot.
systemctl mask getty@tty1.service autovt@.service getty-static.service ctrl-alt-del.target
# logind stays for the power button (a clean shutdown closes the audit log); its
# state folder must exist on the read-only root. USBGuard is driven by its rules,
# not over D-Bus.
mkdir -p /var/lib/systemd/linger
systemctl mask usbguard-dbus.service
# Timers that would write to the read-only root or reach the network.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
            man-db.timer dpkg-db-backup.timer systemd-timesyncd.service; do
  systemctl mask "$unit" 2>/dev/null || true
done

# Root: no password (locked) unless the build was given a hash for the maintenance console.
if [ -n "$ROOT_HASH" ]; then usermod -p "$ROOT_HASH" root; else passwd -l root >/dev/null; fi

# USBGuard refuses a configuration or policy others may read.
chmod 0600 /etc/usbguard/usbguard-daemon.conf /etc/usbguard/rules.conf
visudo -c -q -f /etc/sudoers.d/portcullis-mount
update-initramfs -u -k all >/dev/null
