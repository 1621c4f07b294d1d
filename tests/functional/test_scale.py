"""Scale: `-smp 288 -m 1T` starts, every vCPU checks in with a distinct x2APIC id, the
last page of the 1 TiB is real RAM, and Sen's peak RSS stays tiny (sparse RAM: nothing is
spent until touched).  The guest is tests/guest/smp-scale.c; the same guest under QEMU
(q35, which allows 288 vCPUs) is the reference.  Skips when /dev/kvm is not usable or
KVM allows fewer vCPUs.
"""
import fcntl
import os
import shutil
import subprocess

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
GUEST = os.path.join(BUILD, "tests", "guest", "smp-scale.elf")
QBOOT = "/usr/share/qemu/qboot.rom"
CPUS = 288
PASS_STATUS = (0x10 << 1) | 1
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_MAX_VCPUS = 66

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built (guest kit)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not os.access("/usr/bin/time", os.X_OK),
                       reason="needs GNU time (/usr/bin/time) for the peak RSS"),
]


def kvm_max_vcpus():
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS)
    finally:
        os.close(fd)


def run_guest(cmd, timeout=300):
    """Runs cmd under GNU time; returns (status, output lines, peak RSS in KiB)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "SCALE-RSS %M", *cmd],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out = proc.stdout.decode(errors="replace").splitlines()
    rss = 0
    for line in proc.stderr.decode(errors="replace").splitlines():
        if line.startswith("SCALE-RSS "):
            rss = int(line.split()[1])
    return proc.returncode, out, rss


def check_output(status, out):
    text = "\n".join(out)
    assert status == PASS_STATUS, text
    assert f"ok: {CPUS} of {CPUS} cpus checked in" in out, text
    assert f"smp-scale ok: {CPUS} cpus, highest x2APIC id {CPUS - 1}" in out, text
    assert "PASS" in out and not any("FAIL" in l for l in out), text


def test_288_vcpus_and_1t_sparse():
    if kvm_max_vcpus() < CPUS:
        pytest.skip(f"KVM allows {kvm_max_vcpus()} vCPUs here, fewer than {CPUS}")
    status, out, rss = run_guest([SEN, "-M", "pc", "-smp", str(CPUS), "-m", "1T",
                                  "-kernel", GUEST, "-append", f"cpus={CPUS}",
                                  "-device", "isa-debug-exit", "-display", "none",
                                  "-nodefaults", "-serial", "stdio"])
    check_output(status, out)
    # 3 GiB below the PCI hole, the rest from 4 GiB: the top is 1 TiB + 1 GiB.
    assert "memory map: RAM up to 0x10040000000" in out, "\n".join(out)
    assert "ok: RAM at 0x1003ffff000 reads back what was written" in out, "\n".join(out)
    print(f"sen -smp {CPUS} -m 1T: peak RSS {rss / 1024:.1f} MiB")
    assert rss < 128 * 1024, f"peak RSS {rss} KiB for a sparse 1 TiB guest"


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU not installed")
def test_guest_under_qemu():
    """The reference: QEMU's q35 (its pc stops at 255 vCPUs) with the same guest."""
    machine = ["-M", "q35"] + (["-bios", QBOOT] if os.path.exists(QBOOT) else [])
    status, out, _ = run_guest(["qemu-system-x86_64", "-enable-kvm", "-cpu",
                                "host,-arch-capabilities"] + machine +
                               ["-smp", str(CPUS), "-m", "64M", "-kernel", GUEST,
                                "-append", f"cpus={CPUS}", "-device", "isa-debug-exit",
                                "-display", "none", "-nodefaults", "-serial", "stdio"])
    check_output(status, out)
