#!/bin/sh
# Fetches Debian's stock x86-64 kernel (the package linux-image-amd64 currently points
# at), unpacks it into a cache outside the build tree and prints the path of its vmlinuz.
# Idempotent: once unpacked, it prints the cached path without touching the network.
#
#   SEN_CACHE_DIR   cache root (default ~/.cache/sen); the kernel lands in
#                   $SEN_CACHE_DIR/test-guest/<version>/boot/vmlinuz-<version>
#   SEN_TEST_GUEST_VERSION  use this package version (e.g. 6.1.0-56-amd64) instead of
#                   asking apt which one linux-image-amd64 depends on
set -eu

cache="${SEN_CACHE_DIR:-$HOME/.cache/sen}/test-guest"

version="${SEN_TEST_GUEST_VERSION:-}"
if [ -z "$version" ]; then
    # Already unpacked? Then no apt at all (offline runs, CI caches).
    for dir in "$cache"/*/; do
        [ -d "$dir" ] || continue
        v=$(basename "$dir")
        if [ -f "$dir/boot/vmlinuz-$v" ]; then
            version="$v"
        fi
    done
fi
if [ -z "$version" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
    if [ -z "$pkg" ]; then
        echo "build-test-guest: cannot find the kernel package linux-image-amd64 depends" \
             "on (run apt-get update?)" >&2
        exit 1
    fi
    version=${pkg#linux-image-}
fi

dest="$cache/$version"
vmlinuz="$dest/boot/vmlinuz-$version"
if [ -f "$vmlinuz" ]; then
    echo "$vmlinuz"
    exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
chmod 755 "$tmp" # apt's _apt user writes the download here when run as root
(cd "$tmp" && apt-get download "linux-image-$version" >&2)
deb=$(ls "$tmp"/linux-image-"$version"_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    echo "build-test-guest: apt-get download linux-image-$version produced no .deb" >&2
    exit 1
fi
# Unpack next to the final place and rename, so an interrupted run leaves no half tree.
dpkg -x "$deb" "$tmp/root"
if [ ! -f "$tmp/root/boot/vmlinuz-$version" ]; then
    echo "build-test-guest: $deb has no boot/vmlinuz-$version" >&2
    exit 1
fi
rm -rf "$dest"
mv "$tmp/root" "$dest"
echo "$vmlinuz"
