#!/bin/bash
# Builds Sen's small Linux test kernel and its two busybox initramfs images.
#
# Usage: scripts/build-test-kernel.sh [--cached-only]
#
# Source: Debian's linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz, or
# $SEN_LINUX_SOURCE).  Result, cached outside the build tree in
#   ${SEN_CACHE_DIR:-$HOME/.cache/sen}/test-kernel/<key>/
# where <key> hashes the config fragment, the patches, this script's version and the
# source tarball.  Prints the artifacts as KEY=PATH lines on stdout (progress goes to
# stderr):
#   VMLINUX=...  BZIMAGE=...  INITRAMFS_TEST=...  INITRAMFS_DEMO=...  CMDLINE_FILE=...
# --cached-only prints them if already built and exits 2 otherwise, building nothing.
# A second run with everything cached builds nothing.  Concurrent runs serialize on a
# lock, so the kernel is built once.  See docs/test-kernel.md.
set -euo pipefail

# Bump when a change to this script changes what it builds.
SCRIPT_VERSION=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tk=$here/test-kernel
src_tar=${SEN_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
busybox=${SEN_BUSYBOX:-/bin/busybox}
cache_root=${SEN_CACHE_DIR:-$HOME/.cache/sen}/test-kernel

log() { echo "build-test-kernel: $*" >&2; }
die() { log "error: $*"; exit 1; }

cached_only=0
case "${1:-}" in
"") ;;
--cached-only) cached_only=1 ;;
-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) die "unknown argument '$1' (try --help)" ;;
esac

[ -r "$src_tar" ] ||
	die "$src_tar not found: install Debian's linux-source-6.1 (apt-get install linux-source-6.1) or set SEN_LINUX_SOURCE"
[ -x "$busybox" ] ||
	die "$busybox not found: install busybox-static (apt-get install busybox-static) or set SEN_BUSYBOX"
if ! "$busybox" --list-full >/dev/null 2>&1 || ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox must be a statically linked busybox (Debian package busybox-static)"
fi

patches=("$tk"/[0-9][0-9][0-9][0-9]-*.patch)
[ -e "${patches[0]}" ] || die "no patches found in $tk"

# The tarball is identified by name and size: hashing 130 MB on every run would cost
# more than the whole cached path is allowed to.
kernel_key=$({
	echo "script-version $SCRIPT_VERSION"
	echo "source $(basename "$src_tar") $(stat -c %s "$src_tar")"
	cat "$tk/config.fragment" "${patches[@]}"
} | sha256sum | cut -c1-16)
initramfs_key=$({
	echo "script-version $SCRIPT_VERSION"
	cat "$tk/init-test" "$tk/init-demo" "$tk/profile" "$tk/mkcpio.py" "$tk/mkinitramfs.sh" \
		"$busybox"
} | sha256sum | cut -c1-16)

out=$cache_root/$kernel_key

print_artifacts() {
	echo "VMLINUX=$out/vmlinux"
	echo "BZIMAGE=$out/bzImage"
	echo "INITRAMFS_TEST=$out/initramfs-test.cpio"
	echo "INITRAMFS_DEMO=$out/initramfs-demo.cpio"
	echo "CMDLINE_FILE=$tk/cmdline"
}

kernel_done() { [ -f "$out/kernel.done" ]; }
initramfs_done() { [ "$(cat "$out/initramfs.key" 2>/dev/null)" = "$initramfs_key" ]; }

if kernel_done && initramfs_done; then
	print_artifacts
	exit 0
fi
if [ "$cached_only" = 1 ]; then
	log "not built yet (key $kernel_key): run $0 without --cached-only"
	exit 2
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
	log "another build is running; waiting for its lock"
	flock 9
fi

# --- the kernel -------------------------------------------------------------------------

# Every non-comment line of the fragment must hold in the final .config: a dependency we
# forgot would otherwise silently drop an option and cost minutes of boot time later.
verify_config() {
	local config=$1 bad=0 line name
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			if ! grep -qxF -- "$line" "$config"; then
				log "config: wanted '$line', got '$(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo "${line%%=*} missing")'"
				bad=1
			fi
			;;
		"# CONFIG_"*" is not set")
			name=${line#\# }
			name=${name%% *}
			if grep -qE "^$name=" "$config"; then
				log "config: wanted '$line', got '$(grep -E "^$name=" "$config")'"
				bad=1
			fi
			;;
		esac
	done <"$tk/config.fragment"
	return $bad
}

# Each patch marks what it changes with "sen-test-kernel"; check every patched file
# carries the mark, so a patch that applied somewhere unexpected is caught.
verify_patches() {
	local p f
	for p in "${patches[@]}"; do
		for f in $(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p"); do
			grep -q 'sen-test-kernel' "$f" || {
				log "patch $(basename "$p") did not take in $f"
				return 1
			}
		done
	done
}

build_kernel() {
	local work=$cache_root/$kernel_key.work ksrc jobs
	local -a kmake
	rm -rf "$work" "$out"
	mkdir -p "$work/out"
	log "extracting $src_tar into $work (about 30 s)"
	tar -xJf "$src_tar" -C "$work"
	ksrc=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux*' | head -n1)
	[ -n "$ksrc" ] || die "$src_tar holds no linux-* directory"
	cd "$ksrc"

	jobs=$(nproc)
	kmake=(nice -n 10 make -j"$jobs" KBUILD_BUILD_USER=sen KBUILD_BUILD_HOST=sen
		KBUILD_BUILD_TIMESTAMP="2024-01-01")
	log "configuring: tinyconfig + $tk/config.fragment"
	"${kmake[@]}" tinyconfig >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "make tinyconfig failed (log: $work/build.log)"; }
	scripts/kconfig/merge_config.sh -m .config "$tk/config.fragment" >>"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "merging config.fragment failed"; }
	"${kmake[@]}" olddefconfig >>"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "make olddefconfig failed"; }
	verify_config .config || die "some options of $tk/config.fragment did not take (see above)"

	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		patch -p1 -N --no-backup-if-mismatch -s <"$p" || die "patch $p does not apply to $src_tar"
	done
	verify_patches || die "patches did not take (see above)"

	log "building vmlinux and bzImage with $jobs jobs (4-6 min on 2 cores; log: $work/build.log)"
	local start=$SECONDS
	"${kmake[@]}" vmlinux bzImage >>"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; die "kernel build failed (log: $work/build.log)"; }
	log "kernel built in $((SECONDS - start)) s"
	grep -q '^CONFIG_PVH=y' .config || die "vmlinux has no PVH entry"

	cp vmlinux arch/x86/boot/bzImage System.map "$work/out/"
	cp .config "$work/out/config"
	cd /
	touch "$work/out/kernel.done"
	mv "$work/out" "$out"
	if [ -n "${SEN_KEEP_KERNEL_SRC:-}" ]; then
		log "kept the kernel tree in $ksrc"
	else
		rm -rf "$work"
	fi
}

# --- the initramfs images ----------------------------------------------------------------

build_initramfs() {
	log "building initramfs-test.cpio and initramfs-demo.cpio (uncompressed)"
	rm -f "$out/initramfs.key"
	"$tk/mkinitramfs.sh" "$tk/init-test" "$out/initramfs-test.cpio" ||
		die "could not build the test initramfs"
	"$tk/mkinitramfs.sh" --applets "$tk/init-demo" "$out/initramfs-demo.cpio" ||
		die "could not build the demo initramfs"
	echo "$initramfs_key" >"$out/initramfs.key"
}

kernel_done || build_kernel
initramfs_done || build_initramfs
print_artifacts
