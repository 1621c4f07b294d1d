"""-kernel bzImage with -bios: SeaBIOS + QEMU's linuxboot_dma.bin load the small test
kernel (docs/test-kernel.md) and its initramfs from fw_cfg, under Sen and under QEMU 7.2
with the same command line, up to the test init's marker line.

Slow here (suite 'slow', `make check-slow`): SeaBIOS, the bzImage's decompression and the
kernel's boot all run at emulated CPL0, ~1.5 min per boot on this host under either VMM;
the fw_cfg items themselves are checked in seconds by tests/qtest/fw-cfg-test.c
(/fw_cfg/kernel) and the firmware path by test_firmware_kernel.py (multiboot).
"""
import os
import shutil
import subprocess

import pytest

from kernel_util import kernel  # noqa: F401 (the pytest fixture)

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
SEABIOS = "/usr/share/seabios/bios-256k.bin"
ROM = "/usr/share/qemu/linuxboot_dma.bin"
QEMU = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
MARKER = b"SEN-TEST-INIT-OK"
BOOT_TIMEOUT = 600

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(SEABIOS),
                       reason=f"{SEABIOS} is missing (Debian package seabios)"),
    pytest.mark.skipif(not os.path.exists(ROM),
                       reason=f"{ROM} is missing (Debian package qemu-system-data)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_bzimage_through_seabios(kernel, vmm):
    args = ["-M", "pc", "-m", "256M", "-nodefaults", "-nographic", "-serial", "stdio",
            "-no-reboot", "-device", "isa-debug-exit", "-bios", SEABIOS,
            "-kernel", kernel["BZIMAGE"], "-initrd", kernel["INITRAMFS_TEST"],
            "-append", kernel["CMDLINE"]]
    if vmm == "sen":
        cmd = [SEN] + args
    else:
        if not QEMU:
            pytest.skip("qemu-system-x86_64 is not installed")
        cmd = [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities"] + args
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=BOOT_TIMEOUT)
    out = p.stdout
    assert b"SeaBIOS (version" in out and b"Booting from ROM" in out, out[-2000:]
    assert f"Command line: {kernel['CMDLINE']}".encode() in out, out[-4000:]
    assert b"Freeing initrd memory" in out, out[-4000:]
    assert MARKER in out, out[-4000:]
