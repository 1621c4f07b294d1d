"""pvpanic and -action panic= from the outside: the QMP events, run state and exit status
a guest panic gives, for Sen and for QEMU 7.2 (when installed) in the same run.

Two ways to panic: a qtest write of 1 to port 0x505 (no guest CPU, no KVM needed), and the
guest kit's pvpanic guest (tests/guest/pvpanic.c) on KVM, which reports a crash kernel
loaded, then panics, and passes only if it still runs afterwards (panic=none).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
GUEST = os.path.join(BUILD, "tests", "guest", "pvpanic.elf")
QEMU = shutil.which(os.environ.get("QEMU", "qemu-system-x86_64"))
QBOOT = "/usr/share/qemu/qboot.rom"
PASS_STATUS = 33

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")

VMMS = ["sen", pytest.param("qemu", marks=pytest.mark.skipif(
    not QEMU, reason="qemu-system-x86_64 is not installed (the reference)"))]


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


class Run:
    """A VMM with QMP on a socket; events are kept as 'NAME' or 'NAME action/reason'."""

    def __init__(self, argv, qmp_path):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.qmp = QMPClient.connect_unix(qmp_path)
        self.qmp.negotiate()

    def events(self, wait=0.3):
        """Every event so far, reading until the VMM is quiet for `wait` s or has closed."""
        got = list(self.qmp.events)
        self.qmp.events.clear()
        self.qmp.sock.settimeout(wait)
        try:
            while True:
                msg = self.qmp.recv()
                if "event" in msg:
                    got.append(msg)
        except (socket.timeout, EOFError, ConnectionError):
            pass
        finally:
            self.qmp.sock.settimeout(15.0)
        out = []
        for ev in got:
            data = ev.get("data", {})
            detail = data.get("action") or data.get("reason")
            out.append(ev["event"] + (f" {detail}" if detail else ""))
        return out

    def status(self):
        st = self.qmp.cmd("query-status")
        return st["status"], st["running"]

    def wait(self, timeout=30):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the VMM did not exit")
        return self.proc.returncode

    def output(self):
        return self.proc.stdout.read().decode("utf-8", "replace") if self.proc.stdout else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.qmp.close()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="pvpanic-", dir="/tmp")  # short: unix socket paths
    yield d
    shutil.rmtree(d, ignore_errors=True)


class QtestRun(Run):
    """The VMM under the qtest accelerator, connected to a qtest socket the test serves."""

    def __init__(self, vmm, extra, tmp):
        qtest_path, qmp_path = os.path.join(tmp, "qtest"), os.path.join(tmp, "qmp")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(qtest_path)
        listener.listen(1)
        listener.settimeout(20)
        binary = SEN if vmm == "sen" else QEMU
        argv = [binary, "-M", "pc", "-display", "none", "-nodefaults", "-qtest",
                f"unix:{qtest_path}", "-qmp", f"unix:{qmp_path},server=on,wait=off",
                "-device", "pvpanic"] + extra
        self.qtest = None
        try:
            proc_argv = argv
            super().__init__(proc_argv, qmp_path)
            self.qtest, _ = listener.accept()
        finally:
            listener.close()
        self.qtest.settimeout(20)
        self.qtest_buf = b""

    def qtest_cmd(self, line):
        self.qtest.sendall(line.encode() + b"\n")
        while b"\n" not in self.qtest_buf:
            data = self.qtest.recv(4096)
            if not data:
                return None  # the VMM exited (a panic that shuts down)
            self.qtest_buf += data
        reply, self.qtest_buf = self.qtest_buf.split(b"\n", 1)
        return reply.decode()

    def close(self):
        if self.qtest:
            self.qtest.close()
        super().close()


POWEROFF = ["GUEST_PANICKED poweroff", "SHUTDOWN guest-panic"]
# A VM kept after the shutdown (shutdown=pause) gets a STOP; one that exits does not.
POWEROFF_KEPT = POWEROFF + ["STOP"]
# QEMU 7.2 under qtest stops the VM at the panic at once (no vCPU thread to defer it
# from), so its STOP comes before the SHUTDOWN and the VM stays guest-panicked; from a
# vCPU (KVM, the guest tests below) the shutdown comes first, as in Sen.
QEMU_QTEST_POWEROFF = ["GUEST_PANICKED poweroff", "STOP", "SHUTDOWN guest-panic"]

# -action options -> (Sen's events after "outb 0x505 0x1", then: exit status or run
# state), and QEMU 7.2's under qtest where they differ.
PANIC_CASES = {
    "default": ([], POWEROFF, 0, QEMU_QTEST_POWEROFF, 0),
    "shutdown": (["-action", "panic=shutdown"], POWEROFF, 0, QEMU_QTEST_POWEROFF, 0),
    "exit-failure": (["-action", "panic=exit-failure"], POWEROFF, 1,
                     QEMU_QTEST_POWEROFF, 1),
    "pause": (["-action", "panic=pause"], ["GUEST_PANICKED pause", "STOP"],
              ("guest-panicked", False), None, None),
    "none": (["-action", "panic=none"], ["GUEST_PANICKED run"], ("running", True), None, None),
    "no-shutdown": (["-no-shutdown"], ["GUEST_PANICKED pause", "STOP"],
                    ("guest-panicked", False), None, None),
    "exit-failure-no-shutdown": (["-action", "panic=exit-failure,shutdown=pause"],
                                 POWEROFF_KEPT, ("shutdown", False), QEMU_QTEST_POWEROFF,
                                 ("guest-panicked", False)),
}


@pytest.mark.parametrize("vmm", VMMS)
@pytest.mark.parametrize("case", list(PANIC_CASES))
def test_qtest_panic(vmm, case, tmp):
    extra, want_events, then, qemu_events, qemu_then = PANIC_CASES[case]
    if vmm == "qemu" and qemu_events is not None:
        want_events, then = qemu_events, qemu_then
    run = QtestRun(vmm, extra, tmp)
    try:
        assert run.qtest_cmd("inb 0x505") == "OK 0x0003"
        run.qtest_cmd("outb 0x505 0x1")
        if isinstance(then, int):
            assert run.wait() == then, run.output()
            assert run.events() == want_events
        else:
            assert run.events() == want_events
            assert run.status() == then
    finally:
        run.close()


@pytest.mark.parametrize("vmm", VMMS)
def test_qtest_crash_loaded_runs_on(vmm, tmp):
    run = QtestRun(vmm, [], tmp)
    try:
        assert run.qtest_cmd("outb 0x505 0x2") == "OK"
        assert run.events() == ["GUEST_CRASHLOADED run"]
        assert run.status() == ("running", True)
    finally:
        run.close()


@pytest.mark.parametrize("vmm", VMMS)
def test_qtest_set_action_at_run_time(vmm, tmp):
    """set-action changes what the next panic does; the shutdown key is set last."""
    run = QtestRun(vmm, ["-action", "panic=pause"], tmp)
    try:
        run.qmp.cmd("set-action", panic="none")
        run.qtest_cmd("outb 0x505 0x1")
        assert run.events() == ["GUEST_PANICKED run"]
        run.qmp.cmd("set-action", panic="shutdown", shutdown="pause")
        run.qtest_cmd("outb 0x505 0x1")
        assert run.events() == ["GUEST_PANICKED pause", "STOP"]
        assert run.status() == ("guest-panicked", False)
        resp = run.qmp.execute("set-action", {"panic": "reboot"})
        assert resp["error"]["desc"] == "Parameter 'panic' does not accept value 'reboot'"
    finally:
        run.close()


def guest_argv(vmm, extra, qmp_path):
    common = ["-m", "64M", "-kernel", GUEST, "-device", "isa-debug-exit", "-device", "pvpanic",
              "-display", "none", "-nodefaults", "-serial", "stdio",
              "-qmp", f"unix:{qmp_path},server=on,wait=off"] + extra
    if vmm == "sen":
        return [SEN, "-M", "pc"] + common
    machine = ["-M", "pc"] + (["-bios", QBOOT] if os.path.exists(QBOOT) else [])
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities"] + machine + common


@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm is not usable here")
@pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built (guest kit)")
@pytest.mark.parametrize("vmm", VMMS)
@pytest.mark.parametrize("case", ["none", "pause", "default", "exit-failure-no-shutdown"])
def test_guest_panic(vmm, case, tmp):
    extra = {"none": ["-action", "panic=none"], "pause": ["-action", "panic=pause"],
             "default": [],
             "exit-failure-no-shutdown": ["-action", "panic=exit-failure,shutdown=pause"]}[case]
    run = Run(guest_argv(vmm, extra, os.path.join(tmp, "qmp")), os.path.join(tmp, "qmp"))
    crash = ["GUEST_CRASHLOADED run"]
    try:
        if case == "none":
            assert run.wait(60) == PASS_STATUS
            out = run.output()
            assert "still running after the panic" in out, out
            # Then isa-debug-exit: QEMU exits at once, Sen sends SHUTDOWN first.
            assert run.events()[:2] == crash + ["GUEST_PANICKED run"]
        elif case == "default":
            assert run.wait(60) == 0
            out = run.output()
            assert "crash loaded reported" in out and "still running" not in out, out
            assert run.events() == crash + POWEROFF  # the same for both VMMs
        else:
            end = time.monotonic() + 60
            while time.monotonic() < end and run.status()[0] == "running":
                time.sleep(0.05)
            if case == "pause":
                assert run.status() == ("guest-panicked", False)
                assert run.events() == crash + ["GUEST_PANICKED pause", "STOP"]
            else:
                assert run.status() == ("shutdown", False)
                assert run.events() == crash + POWEROFF_KEPT
            run.qmp.cmd("quit")
            run.wait()
            assert "still running" not in run.output()
    finally:
        run.close()
