"""ACPI power button end to end: QMP system_powerdown -> POWERDOWN event -> the guest
(tests/guest/acpi.c with powerdown=1) takes the SCI, sees PWRBTN_STS, writes S5 -> the
VMM reports SHUTDOWN (guest-shutdown) and exits with status 0.

Runs under Sen and, as the reference, under QEMU 7.2 (-M pc with qboot, whose PIIX4 PM
sits at the same ports).  Skips when /dev/kvm, the guest image or QEMU is missing.
"""
import os
import shutil
import subprocess
import threading
import time

import pytest

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
IMAGE = os.path.join(BUILD, "tests", "guest", "acpi.elf")
QBOOT = "/usr/share/qemu/qboot.rom"

pytestmark = [
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not os.path.exists(IMAGE),
                       reason=f"{IMAGE} is not built (guest kit disabled?)"),
]


def guest_command(vmm, image, append, extra, qemu_bios=QBOOT, bios_required=False):
    """Sen or QEMU on -M pc running the guest-kit image with COM1 on stdio and
    isa-debug-exit.  QEMU boots through qemu_bios when it exists (skips when it does not
    and bios_required); skips when the VMM is missing."""
    common = ["-m", "64M", "-kernel", image, "-append", append, "-device", "isa-debug-exit",
              "-serial", "stdio", "-nodefaults"] + extra
    if vmm == "sen":
        if not os.access(SEN, os.X_OK):
            pytest.skip(f"{SEN} is not built")
        return [SEN, "-M", "pc", "-nographic"] + common
    qemu = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
    if not qemu:
        pytest.skip("qemu-system-x86_64 is not installed")
    if bios_required and not os.path.exists(qemu_bios):
        pytest.skip(f"QEMU needs {qemu_bios} here")
    machine = ["-M", "pc"] + (["-bios", qemu_bios] if os.path.exists(qemu_bios) else [])
    return [qemu, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-display", "none"] + \
        machine + common


def vmm_command(vmm, qmp_path, smp):
    return guest_command(vmm, IMAGE, "cpus=%d ram_mb=64 token=0x5e4 powerdown=1" % smp,
                         ["-smp", str(smp), "-qmp", "unix:%s,server=on,wait=off" % qmp_path])


class Console:
    """Collects the guest's serial output in a thread so the test can wait for a line."""

    def __init__(self, proc):
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for raw in proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.cond.notify_all()

    def wait_for(self, prefix, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while not any(l.startswith(prefix) for l in self.lines):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
@pytest.mark.parametrize("smp,how", [(1, "qmp"), (4, "qmp"), (1, "hmp")])
def test_system_powerdown_powers_off_through_s5(vmm, smp, how, tmp_path):
    qmp_path = tmp_path / "qmp.sock"
    proc = subprocess.Popen(vmm_command(vmm, qmp_path, smp), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    console = Console(proc)
    try:
        assert console.wait_for("waiting for the power button", 60), \
            "guest never armed the button:\n" + "\n".join(console.lines)
        assert not [l for l in console.lines if l.startswith("FAIL:")], console.lines
        with QMPClient.connect_unix(qmp_path) as c:
            c.negotiate()
            if how == "qmp":
                assert c.cmd("system_powerdown") == {}
            else:
                assert c.cmd("human-monitor-command", command_line="system_powerdown") == ""
            c.wait_event("POWERDOWN")
            ev = c.wait_event("SHUTDOWN", timeout=30)
            assert ev["data"] == {"guest": True, "reason": "guest-shutdown"}
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console.thread.join(5)
    out = "\n".join(console.lines)
    assert "ok: SCI with PWRBTN_STS" in out, out
    assert "ok: PWRBTN_STS cleared by writing 1" in out, out
    assert "powering off: SLP_TYP 0 + SLP_EN" in out, out
    assert "FAIL:" not in out, out
