#!/bin/sh
# Installs the Debian packages Sen's build, tests and demo need: only the missing ones,
# and nothing at all (not even apt-get update) when everything is present.
set -eu

PACKAGES="
  make gcc libc6-dev pkg-config meson ninja-build time
  libglib2.0-dev libjansson-dev libaio-dev zlib1g-dev libzstd-dev libseccomp-dev libslirp-dev
  liburing-dev
  python3 python3-pytest acpica-tools
  qemu-system-x86 qemu-utils seabios qemu-system-data
  busybox-static cpio patch kmod strace
  linux-source-6.1 xz-utils bc bison flex libelf-dev libssl-dev lz4
"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists on a fresh machine may be stale or absent: update only when needed.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >&2; then
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q --no-install-recommends $missing >&2
fi
