"""ACPI S3 over QMP: the guest (tests/guest/acpi-s3.c) writes \\_S3_'s SLP_TYP with SLP_EN
-> SUSPEND event, query-status "suspended" (cont and stop change nothing) -> a wake-up
(QMP system_wakeup, HMP system_wakeup, the power button, or the RTC alarm the guest
armed) -> WAKEUP event, and the guest's real-mode stub at the FACS waking vector reports
through COM1 and isa-debug-exit.  system_wakeup on a VM that is not suspended is an error.

Runs under Sen and, as the reference, under QEMU 7.2 with SeaBIOS (which resumes a
-kernel guest from S3; qboot does not).  The power button as a wake source is Sen's
(ACPI 4.8.3.1): QEMU 7.2 does not wake on system_powerdown, so that case is Sen only.
"""
import os
import subprocess

import pytest

from qmp import QMPClient, QMPError
from test_acpi import Console, guest_command

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
IMAGE = os.path.join(BUILD, "tests", "guest", "acpi-s3.elf")
SEABIOS = "/usr/share/seabios/bios-256k.bin"
PASS_STATUS = (0x10 << 1) | 1

pytestmark = [
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not os.path.exists(IMAGE),
                       reason=f"{IMAGE} is not built (guest kit disabled?)"),
]


def vmm_command(vmm, qmp_path, host_wake, paused=False):
    # SeaBIOS resumes a -kernel guest from S3 under QEMU; qboot does not.
    return guest_command(vmm, IMAGE, "cpus=1 ram_mb=64 token=0x5e4 host_wake=%d" % host_wake,
                         ["-no-reboot", "-qmp", "unix:%s,server=on,wait=off" % qmp_path] +
                         (["-S"] if paused else []), qemu_bios=SEABIOS, bios_required=True)


def assert_suspended(c):
    st = c.cmd("query-status")
    assert (st["running"], st["status"]) == (False, "suspended"), st


def start(vmm, tmp_path, host_wake, paused=False):
    qmp_path = tmp_path / "qmp.sock"
    proc = subprocess.Popen(vmm_command(vmm, qmp_path, host_wake, paused),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    return proc, Console(proc), qmp_path


def finish(proc, console):
    try:
        assert proc.wait(timeout=60) == PASS_STATUS, "\n".join(console.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console.thread.join(5)
    out = "\n".join(console.lines)
    assert "acpi-s3: resumed at the waking vector, RAM kept" in out, out
    assert "FAIL:" not in out, out


@pytest.mark.parametrize("vmm,how", [("sen", "qmp"), ("sen", "hmp"), ("sen", "powerdown"),
                                     ("qemu", "qmp")])
def test_host_wakes_suspended_guest(vmm, how, tmp_path):
    proc, console, qmp_path = start(vmm, tmp_path, host_wake=1)
    try:
        with QMPClient.connect_unix(qmp_path) as c:
            c.negotiate()
            c.wait_event("SUSPEND", timeout=60)
            assert_suspended(c)
            # Only a wake-up ends the sleep: cont and stop are no-ops, as in QEMU.
            assert c.cmd("cont") == {}
            assert c.cmd("stop") == {}
            assert_suspended(c)
            try:
                if how == "qmp":
                    assert c.cmd("system_wakeup") == {}
                elif how == "hmp":
                    assert c.cmd("human-monitor-command", command_line="system_wakeup") == ""
                else:
                    assert c.cmd("system_powerdown") == {}
                c.wait_event("WAKEUP", timeout=30)
            except (EOFError, ConnectionResetError):
                # The VMM closed the monitor after the wake-up was sent (seen once with
                # QEMU): finish() below still requires the guest's PASS status and its
                # "resumed at the waking vector" line, and shows the console otherwise.
                pass
    finally:
        if proc.poll() is None and not console.wait_for("PASS", 60):
            proc.kill()
    finish(proc, console)


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_rtc_alarm_wakes_guest(vmm, tmp_path):
    proc, console, qmp_path = start(vmm, tmp_path, host_wake=0)
    try:
        with QMPClient.connect_unix(qmp_path) as c:
            c.negotiate()
            c.wait_event("SUSPEND", timeout=60)
            c.wait_event("WAKEUP", timeout=30)
    finally:
        if proc.poll() is None and not console.wait_for("PASS", 60):
            proc.kill()
    finish(proc, console)


@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_system_wakeup_refused_when_not_suspended(vmm, tmp_path):
    proc, console, qmp_path = start(vmm, tmp_path, host_wake=1, paused=True)
    try:
        with QMPClient.connect_unix(qmp_path) as c:
            c.negotiate()
            with pytest.raises(QMPError) as e:
                c.cmd("system_wakeup")
            assert e.value.cls == "GenericError"
            assert e.value.desc == "Unable to wake up: guest is not in suspended state"
            assert c.cmd("query-status")["status"] == "prelaunch"
            c.cmd("quit")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
