"""VM lifecycle from the outside: pidfile, daemonize, signals, -S, -no-reboot.

Runs real guests on KVM: the guest kit's images and a minimal spinning multiboot image
written here.  Skips when /dev/kvm is not usable.
"""
import os
import signal
import struct
import subprocess
import time

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
GUESTS = os.path.join(BUILD, "tests", "guest")

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


def multiboot_image(path, code):
    """A multiboot v1 image (a.out kludge) loading `code` at 1 MiB + 32 and jumping there."""
    load, magic, flags = 0x100000, 0x1BADB002, 1 << 16
    header = struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF,
                         load, load, load + 32 + len(code), 0, load + 32)
    with open(path, "wb") as f:
        f.write(header + code)
    return path


@pytest.fixture
def spin(tmp_path):
    return multiboot_image(tmp_path / "spin.img", bytes([0xEB, 0xFE]))  # jmp $


def sen_cmd(kernel, *extra):
    return [SEN, "-M", "pc", "-m", "32M", "-kernel", str(kernel), "-display", "none",
            "-nodefaults", *extra]


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def pid_alive(pid):
    """True while pid runs; a zombie counts as gone (the daemon's parent exited, so it is
    reaped by whoever adopted it, which may take a while under load)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_ends_running_vm_cleanly(spin, tmp_path, sig):
    pidfile = tmp_path / "sen.pid"
    proc = subprocess.Popen(sen_cmd(spin, "-pidfile", str(pidfile)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(pidfile.exists), "pidfile never appeared"
    assert int(pidfile.read_text()) == proc.pid
    time.sleep(0.2)  # let the vCPU spin in the guest
    assert proc.poll() is None, "a spinning guest must keep the VM running"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not pidfile.exists(), "the pidfile must be removed at exit"


def test_paused_with_S_runs_no_guest_code(tmp_path):
    # The guest would exit at once through isa-debug-exit; -S must keep it from running.
    image = multiboot_image(tmp_path / "exit.img",
                            bytes([0x66, 0xBA, 0x01, 0x05, 0xB0, 0x10, 0xEE, 0xF4]))
    proc = subprocess.Popen(sen_cmd(image, "-S", "-device", "isa-debug-exit"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None, "with -S the guest must not have run"
    proc.terminate()
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    # Without -S the same image exits with the guest's status: the test can fail.
    done = subprocess.run(sen_cmd(image, "-device", "isa-debug-exit"),
                          capture_output=True, timeout=30)
    assert done.returncode == 33


def test_daemonize_detaches_and_writes_pidfile(spin, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    t0 = time.monotonic()
    launcher = subprocess.run(sen_cmd(spin, "-daemonize", "-pidfile", str(pidfile)),
                              capture_output=True, timeout=30)
    assert launcher.returncode == 0, launcher.stderr
    assert time.monotonic() - t0 < 20
    assert pidfile.exists()
    pid = int(pidfile.read_text())
    try:
        assert pid_alive(pid), "the daemon must keep running the VM"
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(pid)), "the daemon did not exit on SIGTERM"
    assert wait_for(lambda: not pidfile.exists()), "the daemon must remove its pidfile"


def test_daemonize_reports_failure_to_launcher(spin, tmp_path):
    # The pidfile directory does not exist: the daemon fails after forking, and the
    # launcher must still exit 1 with the message.
    bad = tmp_path / "missing-dir" / "x.pid"
    launcher = subprocess.run(sen_cmd(spin, "-daemonize", "-pidfile", str(bad)),
                              capture_output=True, timeout=30, text=True)
    assert launcher.returncode == 1
    assert "-pidfile" in launcher.stderr


def test_no_reboot_turns_guest_reset_into_exit():
    image = os.path.join(GUESTS, "reset.elf")
    if not os.path.exists(image):
        pytest.skip("guest kit not built")
    # The reset guest passes only after a reset; with -no-reboot Sen must exit 0 instead.
    proc = subprocess.run(sen_cmd(image, "-no-reboot", "-device", "isa-debug-exit",
                                  "-serial", "stdio"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" not in proc.stdout
    # And without it the guest sees its reset and passes.
    proc = subprocess.run(sen_cmd(image, "-device", "isa-debug-exit", "-serial", "stdio"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 33, proc.stdout + proc.stderr


def test_debug_exit_ends_even_with_no_shutdown(tmp_path):
    image = multiboot_image(tmp_path / "exit.img",
                            bytes([0x66, 0xBA, 0x01, 0x05, 0xB0, 0x03, 0xEE, 0xF4]))
    proc = subprocess.run(sen_cmd(image, "-no-shutdown", "-device", "isa-debug-exit"),
                          capture_output=True, timeout=30)
    assert proc.returncode == 7  # (3 << 1) | 1


def test_emulation_failure_is_reported_and_stops(tmp_path):
    # popcnt eax, eax at CPL0: the kvm_pvm emulator cannot run it.  On hardware with
    # VT-x/AMD-V it runs natively and the guest then exits through isa-debug-exit.
    image = multiboot_image(tmp_path / "popcnt.img",
                            bytes([0xF3, 0x0F, 0xB8, 0xC0,
                                   0x66, 0xBA, 0x01, 0x05, 0xB0, 0x10, 0xEE, 0xF4]))
    proc = subprocess.run(sen_cmd(image, "-device", "isa-debug-exit"),
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 33:
        pytest.skip("this host's KVM runs popcnt at CPL0: no emulation failure to provoke")
    assert proc.returncode == 1, proc.stderr
    assert "emulation failure" in proc.stderr
    assert "RIP" in proc.stderr.upper()
