"""-kernel with -bios: the firmware loads the kernel, as on QEMU's pc.  SeaBIOS runs
QEMU's multiboot_dma.bin option ROM (fw_cfg genroms/, first in bootorder), which reads the
kernel, the multiboot information and the command line from fw_cfg's kernel items and
enters the guest kit's hello test.  The same command line runs under Sen and QEMU 7.2.

One boot takes ~5-8 s on this host (SeaBIOS runs emulated); Sen's default for -kernel,
the direct boot, is covered by the guest suite.
"""
import os
import shutil
import subprocess

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
HELLO = os.path.join(BUILD, "tests", "guest", "hello.elf")
SEABIOS = "/usr/share/seabios/bios-256k.bin"
MB_ROM = "/usr/share/qemu/multiboot_dma.bin"
QEMU = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
TIMEOUT = 90

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(HELLO),
                       reason=f"{HELLO} is not built (guest kit disabled)"),
    pytest.mark.skipif(not os.path.exists(SEABIOS),
                       reason=f"{SEABIOS} is missing (Debian package seabios)"),
    pytest.mark.skipif(not os.path.exists(MB_ROM),
                       reason=f"{MB_ROM} is missing (Debian package qemu-system-data)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


def vmm_cmd(vmm, extra):
    common = ["-M", "pc", "-m", "64M", "-nodefaults", "-nographic", "-serial", "stdio",
              "-no-reboot", "-device", "isa-debug-exit", "-bios", SEABIOS, *extra]
    if vmm == "sen":
        return [SEN] + common
    if not QEMU:
        pytest.skip("qemu-system-x86_64 is not installed (set QEMU= to point at one)")
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities"] + common


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_multiboot_kernel_through_seabios(vmm):
    append = "token=0x5e4 ram_mb=64"
    p = subprocess.run(vmm_cmd(vmm, ["-kernel", HELLO, "-append", append]),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    pos = 0
    # The firmware ran first, then the kernel it loaded: multiboot, the -append text after
    # the kernel's path (multiboot's convention), an e820 map from the firmware.
    for line in ["SeaBIOS (version", "Hello from the Sen guest kit",
                 "boot protocol: multiboot", f'command line: "{HELLO} {append}"',
                 "ok: got a memory map", "ok: command line token=0x5e4 arrived intact",
                 "PASS"]:
        i = out.find(line, pos)
        assert i >= 0, f"missing {line!r} in output:\n{out}\nstderr: {err}"
        pos = i + len(line)
    assert "FAIL" not in out
    assert p.returncode == 33, f"exit status {p.returncode}; stderr {err}"


def test_pvh_only_kernel_refused_with_bios():
    """QEMU boots a PVH-only ELF through its pvh.bin ROM; Sen says it does not (yet)."""
    pvh = os.path.join(BUILD, "tests", "guest", "hello-pvh.elf")
    if not os.path.exists(pvh):
        pytest.skip(f"{pvh} is not built")
    p = subprocess.run([SEN, "-M", "pc", "-accel", "qtest", "-display", "none", "-bios",
                        SEABIOS, "-kernel", pvh], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    assert p.returncode == 1
    assert (f"could not load kernel '{pvh}': with -bios, Sen boots a Linux bzImage or a "
            "multiboot kernel through the firmware (a PVH-only ELF needs QEMU's pvh.bin"
            in p.stderr.decode())
