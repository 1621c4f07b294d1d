#!/bin/bash
# `make demo`: boots Linux under Sen with an interactive shell on the serial console.
#
# Usage: scripts/demo.sh [BUILD_DIR]      (default: build)
#   extra Sen arguments may be given in $SEN_DEMO_ARGS, e.g. "-device virtio-rng-pci"
#
# With VT-x/AMD-V it boots the stock Debian kernel (scripts/build-test-guest.sh) with a
# busybox initramfs that loads the virtio modules.  Without, KVM emulates guest kernel
# code (kvm_pvm) and a stock kernel cannot boot, so it boots the small test kernel
# (scripts/build-test-kernel.sh) instead.  Quit with Ctrl-A x, or `reboot -f` in the guest.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tk=$src/scripts/test-kernel
build=${1:-$src/build}
sen=$build/sen
cache_dir=${SEN_CACHE_DIR:-$HOME/.cache/sen}

die() { echo "demo: error: $*" >&2; exit 1; }

[ -x "$sen" ] || die "$sen not found: build Sen first (make)"
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	die "/dev/kvm is not accessible: Sen needs KVM"
fi

# shellcheck disable=SC2086  # SEN_DEMO_ARGS is a list of words on purpose
run_sen() {
	echo "demo: starting Sen; quit with Ctrl-A x (or 'reboot -f' in the guest)" >&2
	# -sandbox on: the demo runs confined to Sen's system call allow-list (docs/security.md).
	exec "$sen" -M pc -nographic -no-reboot -sandbox on "$@" ${SEN_DEMO_ARGS:-}
}

if grep -qwE 'vmx|svm' /proc/cpuinfo; then
	out=$("$src/scripts/build-test-guest.sh") ||
		die "could not fetch the stock Debian kernel (scripts/build-test-guest.sh)"
	vmlinuz=
	while IFS= read -r line; do
		value=${line#*=}
		[[ -f "$value" && "$(basename "$value")" == vmlinuz* ]] && vmlinuz=$value
	done <<<"$out"
	[ -n "$vmlinuz" ] || die "scripts/build-test-guest.sh printed no vmlinuz path"
	mkdir -p "$cache_dir/demo"
	initrd=$cache_dir/demo/initramfs-$(basename "$vmlinuz").cpio
	"$tk/mkinitramfs.sh" --applets --modules "$vmlinuz" "$tk/init-demo" "$initrd"
	echo "demo: booting the stock Debian kernel $(basename "$vmlinuz")" >&2
	run_sen -m 512M -smp 2 -kernel "$vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 reboot=k"
else
	echo "demo: this host has no hardware virtualization (no vmx/svm in /proc/cpuinfo)," \
		"so KVM emulates guest kernel code and a stock kernel cannot boot: booting" \
		"Sen's small test kernel instead (docs/test-kernel.md; ~30 s to the shell)." >&2
	out=$("$src/scripts/build-test-kernel.sh") || die "could not build the test kernel"
	declare -A art
	while IFS='=' read -r key value; do
		art[$key]=$value
	done <<<"$out"
	run_sen -m 256M -kernel "${art[VMLINUX]}" -initrd "${art[INITRAMFS_DEMO]}" \
		-append "$(cat "${art[CMDLINE_FILE]}")"
fi
