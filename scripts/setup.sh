#!/usr/bin/env bash
# Portcullis set-up: idempotent, non-interactive. Installs the Debian packages
# the project needs, a pinned Node.js 24 LTS from the npm registry when the
# running Node is older, and the npm dependencies (native addons built for that
# Node). Prints the Node binary directory as its last line on stdout.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
node_version="24.21.0"
node_min_major=24
# sha512 of the node-linux-<arch> registry tarballs at $node_version (npm dist.integrity).
declare -A node_integrity=(
  [x64]="sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=="
  [arm64]="sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g=="
)
# Debian packages: scanners (clamdscan is the scan bench's reference), the archive extractor
# and its sandbox (libarchive-tools, bubblewrap), filesystem tools, archivers the tests make
# hostile archives with, log receiver, browser for review tests, PostgreSQL for the central review.
debian_packages=(
  clamav clamav-daemon clamdscan yara libyara-dev
  libarchive-tools bubblewrap
  zstd lz4 xz-utils bzip2 7zip gcab poppler-utils nsis e2fsprogs
  dosfstools exfatprogs exfat-fuse fusefat mtools fuse3
  b3sum python3 python3-nacl make g++
  osslsigncode msitools wixl time debootstrap
  rsyslog rsyslog-gnutls chromium postgresql
)
# `--image` (./portcullis image ...): the kiosk disk image's build and QEMU test (docs/image.md).
image_packages=(
  mmdebstrap qemu-system-x86 qemu-utils e2fsprogs fdisk grub-efi-amd64-bin grub-pc-bin ovmf
)
[ "${1:-}" = --image ] && debian_packages+=("${image_packages[@]}")

log() { printf 'setup: %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for p in "${debian_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; run this script as root or install them with apt-get"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# Echoes the directory holding a node binary of at least $node_min_major.
ensure_node() {
  local sys
  sys="$(command -v node || true)"
  if [ -n "$sys" ] && [ "$(node_major "$sys")" -ge "$node_min_major" ] && [ -z "${PORTCULLIS_PINNED_NODE:-}" ]; then
    dirname "$(readlink -f "$sys")"; return 0
  fi
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) log "unsupported machine architecture $(uname -m)"; exit 1 ;;
  esac
  local prefix="$tools/node-v$node_version-linux-$arch"
  if [ ! -x "$prefix/bin/node" ]; then
    log "installing Node.js $node_version from the npm registry (node-linux-$arch)"
    command -v npm >/dev/null || { log "npm is needed to fetch Node.js $node_version"; exit 1; }
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$node_version" >/dev/null)
    local tgz="$tmp/node-linux-$arch-$node_version.tgz"
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [ "$got" != "${node_integrity[$arch]}" ]; then
      log "Node.js tarball integrity mismatch: expected ${node_integrity[$arch]}, got $got"; exit 1
    fi
    mkdir -p "$tmp/x" "$tools"
    tar xzf "$tgz" -C "$tmp/x"
    rm -rf "$prefix.partial" && mv "$tmp/x/package" "$prefix.partial" && mv "$prefix.partial" "$prefix"
  fi
  echo "$prefix/bin"
}

install_npm_dependencies() {
  local bindir="$1"
  local node="$bindir/node"
  local stamp="$root/node_modules/.portcullis-setup"
  local want
  want="$("$node" --version) $(sha256sum "$root/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing npm dependencies for Node $("$node" --version)"
  local npm_cli
  npm_cli="$(command -v npm)"
  # Native addons (better-sqlite3, usb) build against this Node's own headers:
  # their prebuilt downloads are unreachable here, so node-gyp compiles them.
  (cd "$root" && PATH="$bindir:$PATH" npm_config_nodedir="$(dirname "$bindir")" \
     "$node" "$(readlink -f "$npm_cli")" ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$stamp"
}

# The kiosk's full YARA engine: a small helper against Debian's libyara (kiosk/engines/yara-full/).
build_yara_helper() {
  local src="$root/kiosk/engines/yara-full/portcullis-yara.c" out="$tools/portcullis-yara"
  if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt /usr/lib/x86_64-linux-gnu/libyara.so ]; then return 0; fi
  log "building the YARA engine helper against libyara"
  mkdir -p "$tools"
  cc -O2 -Wall -Wextra -o "$out.partial" "$src" -lyara -lpthread >&2
  mv "$out.partial" "$out"
}

install_debian_packages
build_yara_helper
bindir="$(ensure_node)"
install_npm_dependencies "$bindir"
echo "$bindir"
