#!/usr/bin/env bash
# Runs the Windows single executable (portcullis-agent.exe) for real under
# Wine: verify, import and log verify of a kiosk-signed drive, with Windows
# paths. Debian 12's Wine 8 cannot start Node 24 (V8 needs
# MEM_RESERVE_PLACEHOLDER), so Wine 10 comes from Debian trixie in a
# debootstrap chroot under var/wine-trixie (from Debian's own mirror; the
# first run downloads about 200 MB and takes about two minutes, later runs
# reuse it). Run by the test suite (test/integration/agent/windows-wine.test.ts). Needs
# root (chroot, mounts).
#
#   scripts/windows-smoke.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$root/var"
node="$("$root/scripts/setup.sh" | tail -n 1)/node"
chroot_dir="$root/var/wine-trixie"
work="$root/var/wine-work"
fail() { printf 'windows-smoke: FAIL: %s\n' "$*" >&2; exit 1; }

# Mounts left by an interrupted run go first (never delete through them).
umount "$chroot_dir/work" 2>/dev/null || true
umount "$chroot_dir/proc" 2>/dev/null || true

# A chroot is good when debootstrap finished (it removes its own debootstrap/ folder last) and Wine is
# there. /usr/bin/wine is a link to /etc/alternatives/wine, an absolute link that resolves only inside the
# chroot, so it is followed there: the test from outside (-x on the host's path) always failed, and the
# chroot was fetched again on every run.
chroot_ok() {
  [ -x "$chroot_dir/bin/sh" ] && [ ! -e "$chroot_dir/debootstrap" ] &&
    chroot "$chroot_dir" /bin/sh -c 'test -x /usr/bin/wine && test -x /usr/lib/wine/wine64 && test -x "$(readlink -f /usr/bin/wine)"' 2>/dev/null
}
if chroot_ok; then
  printf 'windows-smoke: reusing the Wine chroot %s\n' "$chroot_dir" >&2
else
  # One retry: a mirror hiccup should not fail the suite; a second failure does.
  for attempt in 1 2; do
    printf 'windows-smoke: building the Wine chroot %s (debootstrap of Debian trixie, attempt %d)\n' "$chroot_dir" "$attempt" >&2
    rm -rf "$chroot_dir"
    if debootstrap --variant=minbase --include=wine64,wine trixie "$chroot_dir" http://deb.debian.org/debian > "$root/var/debootstrap.log" 2>&1 && chroot_ok; then break; fi
    [ "$attempt" -eq 2 ] && { tail -n 20 "$root/var/debootstrap.log" >&2; fail "debootstrap of Debian trixie (for Wine 10) failed twice"; }
  done
fi

"$node" "$root/agent/sea/build.ts" --target win-x64 --out "$root/var/sea" >&2
rm -rf "$work" && mkdir -p "$work/xdg" && chmod 700 "$work/xdg"
"$node" "$root/test/support/windows-smoke-fixture.ts" "$work"
cp "$root/var/sea/portcullis-agent.exe" "$work/"

mkdir -p "$chroot_dir/work"
cleanup() {
  chroot "$chroot_dir" env -i PATH=/usr/bin:/bin WINEPREFIX=/work/prefix wineserver -k 2>/dev/null || true
  chroot "$chroot_dir" env -i PATH=/usr/bin:/bin WINEPREFIX=/work/msi-prefix wineserver -k 2>/dev/null || true
  umount "$chroot_dir/work" 2>/dev/null || true
  umount "$chroot_dir/proc" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$chroot_dir/proc"
mount --bind "$work" "$chroot_dir/work"

# Z: is Wine's view of the chroot's /, so Z:\work is $work. LANG=C.UTF-8: Wine decodes the
# host's file names as UTF-8 (in the C locale it would mangle every non-ASCII name).
agent() {
  chroot "$chroot_dir" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 XDG_RUNTIME_DIR=/work/xdg WINEPREFIX=/work/prefix WINEDEBUG=-all \
    wine /work/portcullis-agent.exe "$@" 2>> "$work/stderr.txt"
}
common=(--trust 'Z:\work\trust.json' --identity 'Z:\work\identity.json' --log 'Z:\work\agent.log.jsonl' --json)

set +e
agent help > "$work/help.txt"; help_rc=$?
agent verify 'Z:\work\drive' "${common[@]}" > "$work/verify.json"; verify_rc=$?
agent import 'Z:\work\drive' --to 'Z:\work\inbox' "${common[@]}" > "$work/import.json"; import_rc=$?
agent log verify --log 'Z:\work\agent.log.jsonl' > "$work/log-verify.txt"; log_rc=$?
set -e

# Wine's notes about its missing 32-bit half are not the agent's; anything else on stderr is shown.
grep -v 'syswow64\\rundll32.exe\|XDG_RUNTIME_DIR\|wine32\|multiarch\|i386\|configuration directory' "$work/stderr.txt" >&2 || true
[ "$help_rc" -eq 0 ] && grep -q '^usage: portcullis-agent' "$work/help.txt" || fail "help exited $help_rc"
[ "$verify_rc" -eq 10 ] || fail "verify exited $verify_rc, expected 10 (one unlisted file refused)"
[ "$import_rc" -eq 10 ] || fail "import exited $import_rc, expected 10"
[ "$log_rc" -eq 0 ] || fail "log verify exited $log_rc"
"$node" -e '
  const fs = require("fs");
  const v = JSON.parse(fs.readFileSync(process.argv[1] + "/verify.json", "utf8"));
  const i = JSON.parse(fs.readFileSync(process.argv[1] + "/import.json", "utf8"));
  const codes = (r) => Object.fromEntries(r.files.map((f) => [f.path, f.code]));
  const want = { "HMI/Ünïcode näme.txt": "PERMITTED", "PLC/Line 3/project.ap17": "PERMITTED", "README.txt": "PERMITTED", "extra.exe": "FILE_UNLISTED" };
  const got = codes(v);
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error("verify: " + JSON.stringify(got));
  const imported = Object.entries(codes(i)).filter(([, c]) => c === "IMPORTED").map(([p]) => p).sort();
  if (imported.join("|") !== "HMI/Ünïcode näme.txt|PLC/Line 3/project.ap17|README.txt") throw new Error("import: " + JSON.stringify(codes(i)));
' "$work"
for f in 'README.txt' 'PLC/Line 3/project.ap17' 'HMI/Ünïcode näme.txt'; do
  cmp -s "$work/drive/$f" "$work/inbox/$f" || fail "$f differs between the drive and the inbox"
done
[ ! -e "$work/inbox/extra.exe" ] || fail "the unlisted extra.exe reached the inbox"
"$node" --input-type=module -e '
  const { verifyLogBytes } = await import(process.argv[1] + "/agent/audit-log.ts");
  const { readFileSync } = await import("node:fs");
  const r = verifyLogBytes(readFileSync(process.argv[2] + "/agent.log.jsonl"));
  if (!r.ok) { console.error(JSON.stringify(r)); process.exit(1); }
' "$root" "$work" || fail "the log written on Windows does not verify on Linux"
echo "windows-smoke: portcullis-agent.exe under $(chroot "$chroot_dir" wine --version): help, verify, import (byte-identical, unlisted file kept out) and log verify all as expected"

# The MSI (agent/windows/build-msi.ts) under Wine's msiexec, silently, in a fresh prefix. Wine has no .NET,
# so WinSW cannot run and no service can be started here: the wrapper is a stand-in file. So (1) the MSI as
# shipped, which starts the service, must fail and roll its files back; (2) the same MSI built not to start
# it installs the files, registers the service, runs the set-up custom action (trust store from TRUSTBUNDLE,
# configuration with DESTINATION) and writes the policy; (3) its uninstall removes the service, the files and
# the policy values, and keeps the data folder (configuration, trust store, log: evidence).
msi_work="$work/msi"
mkdir -p "$msi_work"
printf 'stand-in for WinSW: Wine cannot run the real one\r\n' > "$msi_work/wrapper.exe"
wrapper_sha="$(sha256sum "$msi_work/wrapper.exe" | cut -c1-64)"
"$node" "$root/agent/windows/build-msi.ts" --agent-exe "$work/portcullis-agent.exe" --service-wrapper "$msi_work/wrapper.exe" --service-wrapper-sha256 "$wrapper_sha" --out "$msi_work/shipped.msi" > /dev/null
"$node" "$root/agent/windows/build-msi.ts" --agent-exe "$work/portcullis-agent.exe" --service-wrapper "$msi_work/wrapper.exe" --service-wrapper-sha256 "$wrapper_sha" --out "$msi_work/no-start.msi" --no-start-service > /dev/null
cp "$work/trust.json" "$msi_work/bundle-trust.json"
msi() {
  chroot "$chroot_dir" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 XDG_RUNTIME_DIR=/work/xdg WINEPREFIX=/work/msi-prefix WINEDEBUG=-all \
    wine "$@" 2>> "$work/msi-stderr.txt"
}
drive_c="$work/msi-prefix/drive_c"
set +e
msi msiexec /i 'Z:\work\msi\shipped.msi' /qn 'TRUSTBUNDLE=Z:\work\msi\bundle-trust.json' /l*v 'Z:\work\msi\shipped.log'; shipped_rc=$?
set -e
[ "$shipped_rc" -ne 0 ] || fail "the shipped MSI installed although its service cannot start under Wine"
[ ! -e "$drive_c/Program Files/Portcullis/portcullis-agent.exe" ] || fail "a failed install left portcullis-agent.exe behind (no rollback)"
rm -rf "$work/msi-prefix"
set +e
msi msiexec /i 'Z:\work\msi\no-start.msi' /qn 'TRUSTBUNDLE=Z:\work\msi\bundle-trust.json' 'DESTINATION=C:\Plant\Inbox' /l*v 'Z:\work\msi\install.log'; install_rc=$?
msi reg query 'HKLM\System\CurrentControlSet\Services\PortcullisAgent' > "$msi_work/service.txt"; service_rc=$?
msi reg query 'HKLM\Software\Policies\Microsoft\Windows\RemovableStorageDevices' /v Deny_All > "$msi_work/policy.txt"; policy_rc=$?
set -e
[ "$install_rc" -eq 0 ] || fail "msiexec /i of the MSI exited $install_rc (see $msi_work/install.log)"
cmp -s "$work/portcullis-agent.exe" "$drive_c/Program Files/Portcullis/portcullis-agent.exe" || fail "the installed portcullis-agent.exe differs from the one built"
for f in portcullis-agent-service.exe portcullis-agent-service.xml status-tray.ps1; do [ -f "$drive_c/Program Files/Portcullis/$f" ] || fail "$f was not installed"; done
[ "$service_rc" -eq 0 ] && grep -qi 'ImagePath.*portcullis-agent-service.exe' "$msi_work/service.txt" && grep -qi 'ObjectName.*LocalSystem' "$msi_work/service.txt" && grep -qiE 'Start[[:space:]]+REG_DWORD[[:space:]]+0x2' "$msi_work/service.txt" ||
  fail "the service PortcullisAgent is not registered as an automatic LocalSystem service running portcullis-agent-service.exe"
[ "$policy_rc" -eq 0 ] && grep -qiE 'Deny_All[[:space:]]+REG_DWORD[[:space:]]+0x1' "$msi_work/policy.txt" || fail "the removable-storage deny policy was not set"
[ -d "$drive_c/Plant/Inbox" ] && [ -d "$drive_c/Portcullis/Status" ] || fail "the destination (DESTINATION) or the status folder was not created"
"$node" -e '
  const fs = require("fs");
  const data = process.argv[1] + "/ProgramData/Portcullis/";
  const config = JSON.parse(fs.readFileSync(data + "config.json", "utf8"));
  if (config.destination !== String.raw`C:\Plant\Inbox` || config.statusFolder !== String.raw`C:\Portcullis\Status`) throw new Error("config: " + JSON.stringify(config));
  const trust = JSON.parse(fs.readFileSync(data + "trust.json", "utf8"));
  const bundle = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  if (JSON.stringify(trust.keys.map((k) => k.keyId)) !== JSON.stringify(bundle.keys.map((k) => k.keyId))) throw new Error("trust store differs from the bundle");
' "$drive_c" "$msi_work/bundle-trust.json" || fail "the set-up custom action did not write the configuration and trust store from the properties"
set +e
msi msiexec /x 'Z:\work\msi\no-start.msi' /qn /l*v 'Z:\work\msi\uninstall.log'; uninstall_rc=$?
msi reg query 'HKLM\System\CurrentControlSet\Services\PortcullisAgent' > /dev/null; service_after=$?
msi reg query 'HKLM\Software\Policies\Microsoft\Windows\RemovableStorageDevices' /v Deny_All > /dev/null; policy_after=$?
set -e
[ "$uninstall_rc" -eq 0 ] || fail "msiexec /x exited $uninstall_rc (see $msi_work/uninstall.log)"
[ ! -e "$drive_c/Program Files/Portcullis" ] || fail "the uninstall left $(ls "$drive_c/Program Files/Portcullis" | tr '\n' ' ')in Program Files\Portcullis"
[ "$service_after" -ne 0 ] || fail "the uninstall left the service PortcullisAgent registered"
[ "$policy_after" -ne 0 ] || fail "the uninstall left Deny_All behind"
[ -f "$drive_c/ProgramData/Portcullis/portcullis-agent.log.jsonl" ] && [ -f "$drive_c/ProgramData/Portcullis/trust.json" ] || fail "the uninstall removed the data folder (the log is evidence)"
echo "windows-smoke: portcullis-agent.msi under Wine msiexec /qn: the shipped MSI fails closed and rolls back when its service cannot start; built not to start it, it installs the files and the LocalSystem service, sets the policy, writes the trust store and configuration from TRUSTBUNDLE and DESTINATION, and its uninstall removes the service, files and policy and keeps the data"
