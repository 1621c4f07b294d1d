#!/bin/bash
# Builds an uncompressed busybox initramfs (cpio newc) without root.
#
# Usage: mkinitramfs.sh [--applets] [--modules VMLINUZ] INIT OUTPUT
#   INIT              the file that becomes /init
#   --applets         add /etc/profile and a link for every busybox applet (the demo's
#                     shell wants them; the test image calls /bin/busybox by path, as each
#                     entry costs unpacking time under emulation)
#   --modules VMLINUZ add the virtio modules of a stock kernel extracted with dpkg -x
#                     (VMLINUZ is <root>/boot/vmlinuz-<version>; modules come from
#                     <root>/lib/modules/<version>) with their dependencies and a
#                     modules.dep, for busybox modprobe
# Uncompressed because inflating gzip costs ~40 s under CPL0 emulation (docs/test-kernel.md).
set -euo pipefail

tk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=${SEN_BUSYBOX:-/bin/busybox}
VIRTIO_MODULES="virtio_pci virtio_blk virtio_net virtio_rng virtio_console"

die() { echo "mkinitramfs: error: $*" >&2; exit 1; }

applets=0
vmlinuz=
while [ $# -gt 0 ]; do
	case "$1" in
	--applets) applets=1; shift ;;
	--modules) [ $# -ge 2 ] || die "--modules needs a path"; vmlinuz=$2; shift 2 ;;
	-*) die "unknown option '$1'" ;;
	*) break ;;
	esac
done
[ $# -eq 2 ] || die "usage: $0 [--applets] [--modules VMLINUZ] INIT OUTPUT"
init=$1 output=$2
[ -r "$init" ] || die "init script '$init' not found"
[ -x "$busybox" ] || die "$busybox not found (Debian package busybox-static)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Copies the named modules and, through `modinfo -F depends`, everything they need into
# $stage/lib/modules/$kver, then lets depmod write modules.dep there.
stage_modules() {
	local kver=${vmlinuz##*/vmlinuz-} root moddir m f dep
	local -a queue
	local -A seen
	[ -r "$vmlinuz" ] || die "kernel '$vmlinuz' not found"
	root=$(dirname "$(dirname "$vmlinuz")")
	moddir=$root/lib/modules/$kver
	[ -d "$moddir" ] || moddir=$root/usr/lib/modules/$kver
	[ -d "$moddir" ] || { echo "mkinitramfs: no modules for $kver; none added" >&2; return 0; }
	read -r -a queue <<<"$VIRTIO_MODULES"
	while [ ${#queue[@]} -gt 0 ]; do
		m=${queue[0]}
		queue=("${queue[@]:1}")
		[ -z "${seen[$m]:-}" ] || continue
		seen[$m]=1
		# File names may spell '_' as '-'.
		f=$(find "$moddir/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) | head -n1)
		[ -n "$f" ] || continue  # built in, or absent from this kernel
		mkdir -p "$stage/lib/modules/$kver/$(dirname "${f#"$moddir"/}")"
		cp "$f" "$stage/lib/modules/$kver/${f#"$moddir"/}"
		for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
			queue+=("$dep")
		done
	done
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ ! -f "$moddir/$f" ] || cp "$moddir/$f" "$stage/lib/modules/$kver/"
	done
	depmod -b "$stage" "$kver" || die "depmod failed for the modules of $kver"
}

cpio_list() {
	cat <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /tmp 1777 0 0
dir /bin 0755 0 0
file /bin/busybox $busybox 0755 0 0
file /init $init 0755 0 0
EOF
	if [ "$applets" = 1 ]; then
		printf 'dir %s 0755 0 0\n' /sbin /usr /usr/bin /usr/sbin /etc /root
		echo "file /etc/profile $tk/profile 0644 0 0"
		"$busybox" --list-full | while IFS= read -r applet; do
			[ "$applet" = bin/busybox ] || echo "slink /$applet /bin/busybox 0777 0 0"
		done
	fi
	if [ -d "$stage/lib/modules" ]; then
		echo "tree /lib/modules $stage/lib/modules"
	fi
}

[ -z "$vmlinuz" ] || stage_modules
cpio_list | python3 "$tk/mkcpio.py" - "$output"
