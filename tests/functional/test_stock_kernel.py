"""Boots the stock Debian kernel (scripts/build-test-guest.sh) to a busybox init under Sen.

Suite 'slow' (`make check-slow`): it needs VT-x or AMD-V.  Under kvm_pvm, where guest
kernel code is emulated, a stock kernel uses instructions the emulator lacks and cannot
boot at all (docs/test-kernel.md), so the test skips there and says why.
"""
import os
import subprocess
import time

import pytest

MARKER = b"SEN-TEST-INIT-OK"
BOOT_TIMEOUT = 120          # seconds; a stock kernel boots in a few seconds on hardware
FETCH_TIMEOUT = 900

SOURCE_DIR = os.environ.get(
    "SEN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("SEN_BUILD_DIR", "")
TK_DIR = os.path.join(SOURCE_DIR, "scripts", "test-kernel")
CMDLINE = "console=ttyS0 panic=-1 reboot=k"


def has_hardware_virtualization():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and {"vmx", "svm"} & set(line.split()):
                    return True
    except OSError:
        pass
    return False


def stock_kernel_path(stdout):
    """build-test-guest.sh prints the vmlinuz path, alone or as KEY=PATH."""
    for line in reversed(stdout.decode().splitlines()):
        value = line.split("=", 1)[-1].strip()
        if value and os.path.isfile(value) and "vmlinuz" in os.path.basename(value):
            return value
    return None


def test_stock_debian_kernel_boots(tmp_path, capsys):
    if not has_hardware_virtualization():
        pytest.skip("no hardware virtualization (vmx/svm) on this host: "
                    "a stock kernel cannot boot under kvm_pvm")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not accessible")
    sen = os.path.join(BUILD_DIR, "sen")
    if not BUILD_DIR or not os.access(sen, os.X_OK):
        pytest.skip(f"no sen binary in SEN_BUILD_DIR '{BUILD_DIR}'")
    script = os.path.join(SOURCE_DIR, "scripts", "build-test-guest.sh")
    if not os.access(script, os.X_OK):
        pytest.skip(f"{script} is missing")
    res = subprocess.run([script], capture_output=True, timeout=FETCH_TIMEOUT)
    if res.returncode != 0:
        # The package comes from the Debian archive: no network is a reason to skip.
        pytest.skip("could not fetch the stock Debian kernel: "
                    + res.stderr.decode(errors="replace").strip()[-500:])
    vmlinuz = stock_kernel_path(res.stdout)
    assert vmlinuz, f"build-test-guest.sh printed no vmlinuz path: {res.stdout!r}"

    initrd = str(tmp_path / "initramfs-stock.cpio")
    subprocess.run([os.path.join(TK_DIR, "mkinitramfs.sh"), "--modules", vmlinuz,
                    os.path.join(TK_DIR, "init-test"), initrd], check=True)

    serial = tmp_path / "serial.log"
    argv = [sen, "-M", "pc", "-m", "512M", "-smp", "2", "-nographic", "-nodefaults",
            "-serial", "stdio", "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
            "-append", CMDLINE]
    start = time.monotonic()
    with open(serial, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=BOOT_TIMEOUT)
            status = f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            status = f"killed after {BOOT_TIMEOUT} s"
    elapsed = time.monotonic() - start
    log = serial.read_bytes()
    with capsys.disabled():
        print(f"\nstock kernel under Sen: {status} after {elapsed:.1f} s")
    report = (f"\n$ {' '.join(argv)}\n{status}\n--- last serial lines ---\n"
              + "\n".join(log.decode(errors="replace").splitlines()[-60:])
              + "\n--- stderr ---\n" + err.decode(errors="replace")[-4000:])
    assert MARKER in log, "init never printed the marker" + report
    assert proc.returncode == 0, "Sen did not exit cleanly" + report
