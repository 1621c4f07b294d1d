"""Firmware boot: SeaBIOS loads the guest kit's boot sector (tests/guest/mbr/mbr.S) from a
virtio-blk disk, raw and qcow2 with a backing file, under Sen and under QEMU 7.2 with the
same firmware; bootindex= picks the boot disk and -boot reboot-timeout reaches the
firmware.

SeaBIOS runs at CPL0, which this host's kvm_pvm emulates: one boot takes ~8-10 s here
under either VMM (the time goes to SeaBIOS's own loops, e.g. clearing low memory before
INT 19h), so each case boots once and the cases are kept few.
"""
import os
import shutil
import subprocess
import time

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
MBR = os.path.join(BUILD, "tests", "guest", "mbr.bin")
SEABIOS = "/usr/share/seabios/bios-256k.bin"
QEMU = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
TIMEOUT = 90
SECTOR1 = b"mbr: sector 1 read through INT 13h\r\n\0"
BOOT_LINES = ["Booting from Hard Disk", "mbr: running from the boot sector",
              "mbr: boot drive 0x80", "mbr: sector 1 read through INT 13h",
              "mbr: sector 2 holds the 0x5a pattern", "mbr ok"]

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(MBR),
                       reason=f"{MBR} is not built (guest kit disabled)"),
    pytest.mark.skipif(not os.path.exists(SEABIOS),
                       reason=f"{SEABIOS} is missing (Debian package seabios)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


def raw_disk(path, sector2=b"\x5a" * 512):
    with open(MBR, "rb") as f:
        mbr = f.read()
    assert len(mbr) == 512 and mbr[510:] == b"\x55\xaa", "mbr.bin is not a boot sector"
    with open(path, "wb") as f:
        f.write(mbr + SECTOR1.ljust(512, b"\0") + sector2)
        f.truncate(1 << 20)
    return path


def qcow2_disk(tmp_path):
    """Sectors 0-1 in the backing file, sector 2 (the 0x5a pattern) only in the overlay."""
    if not QEMU_IMG or not QEMU_IO:
        pytest.skip("qemu-img/qemu-io (Debian package qemu-utils) are not installed")
    base_raw = raw_disk(tmp_path / "base.raw", sector2=b"\0" * 512)
    base = tmp_path / "base.qcow2"
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", str(base_raw),
                    str(base)], check=True, capture_output=True)
    subprocess.run([QEMU_IMG, "create", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(overlay)], check=True, capture_output=True)
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -P 0x5a 1024 512", str(overlay)],
                   check=True, capture_output=True)
    return overlay


def vmm_cmd(vmm, disk=None, fmt="raw", extra=(), machine="pc"):
    common = ["-m", "64M", "-nodefaults", "-nographic", "-serial", "stdio", "-no-reboot",
              "-device", "isa-debug-exit", *extra]
    if disk:
        common += ["-drive", f"file={disk},format={fmt},if=none,id=d0"]
    if vmm == "sen":
        dev = ["-device", "virtio-blk-pci,drive=d0"] if disk else []
        return [SEN, "-M", machine] + common + dev
    if not QEMU:
        pytest.skip("qemu-system-x86_64 is not installed (set QEMU= to point at one)")
    # The same firmware file, and a modern-only virtio-blk like Sen's.
    dev = ["-device", "virtio-blk-pci,drive=d0,disable-legacy=on"] if disk else []
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", machine,
            "-bios", SEABIOS] + common + dev


def boot(cmd):
    start = time.monotonic()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    out = proc.stdout.decode(errors="replace")
    print(f"{cmd[0]}: exit {proc.returncode} after {elapsed:.1f} s")
    return proc.returncode, out, proc.stderr.decode(errors="replace")


def assert_lines_in_order(out, lines):
    pos = 0
    for line in lines:
        i = out.find(line, pos)
        assert i >= 0, f"missing {line!r} (after offset {pos}) in output:\n{out}"
        pos = i + len(line)


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_seabios_boots_mbr(tmp_path, vmm, fmt):
    disk = raw_disk(tmp_path / "disk.raw") if fmt == "raw" else qcow2_disk(tmp_path)
    status, out, err = boot(vmm_cmd(vmm, disk, fmt, ["-boot", "order=c,menu=off"]))
    # SeaBIOS's banner comes through its serial console (-nographic), then the MBR's lines.
    assert_lines_in_order(out, ["SeaBIOS (version"] + BOOT_LINES)
    assert "FAIL" not in out
    assert status == 33, f"exit status {status} (want 33: the MBR passed); stderr: {err}"


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_seabios_boots_mbr_on_q35(tmp_path, vmm):
    """-M q35: SeaBIOS finds the MCH and ICH9 LPC, programs MMCONFIG, skips SMM set-up
    (SMI_EN reads APMC_EN: no SMM, as QEMU says without SMM) and boots the disk."""
    disk = raw_disk(tmp_path / "disk.raw")
    status, out, err = boot(vmm_cmd(vmm, disk, "raw", ["-boot", "order=c,menu=off"],
                                    machine="q35"))
    assert_lines_in_order(out, ["SeaBIOS (version"] + BOOT_LINES)
    assert "FAIL" not in out
    assert status == 33, f"exit status {status} (want 33: the MBR passed); stderr: {err}"


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_bootindex_picks_the_disk(tmp_path, vmm):
    """Two disks, the first blank: SeaBIOS only tries the first disk unless bootindex=
    (fw_cfg bootorder) says otherwise, so the boot sector runs only if bootorder works.
    -boot menu=on shows SeaBIOS's menu prompt on the way."""
    blank = tmp_path / "blank.raw"
    with open(blank, "wb") as f:
        f.truncate(1 << 20)
    disk = raw_disk(tmp_path / "disk.raw")
    # The blank disk is d0, at the lower PCI slot.  The boot menu (fw_cfg BOOT_MENU and
    # etc/boot-menu-wait) shows its prompt for 100 ms first.
    cmd = vmm_cmd(vmm, blank, "raw", ["-boot", "menu=on,splash-time=100"])
    cmd += ["-drive", f"file={disk},format=raw,if=none,id=d1",
            "-device", "virtio-blk-pci,drive=d1,bootindex=1" +
            (",disable-legacy=on" if vmm == "qemu" else "")]
    status, out, err = boot(cmd)
    assert_lines_in_order(out, ["Press ESC for boot menu"] + BOOT_LINES)
    assert status == 33, f"exit status {status}; stderr: {err}"


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_failed_boot_reboots_after_timeout(tmp_path, vmm):
    """A disk without a boot signature does not boot; -boot reboot-timeout=0 (fw_cfg
    etc/boot-fail-wait) makes SeaBIOS reset at once, and -no-reboot makes that a clean
    exit instead of the default wait forever."""
    disk = raw_disk(tmp_path / "disk.raw")
    with open(disk, "r+b") as f:
        f.seek(510)
        f.write(b"\0\0")
    status, out, err = boot(vmm_cmd(vmm, disk, "raw", ["-boot", "reboot-timeout=0"]))
    assert_lines_in_order(out, ["Booting from Hard Disk", "not a bootable disk",
                                "No bootable device"])
    assert "mbr:" not in out
    assert status == 0, f"exit status {status}; stderr: {err}"
