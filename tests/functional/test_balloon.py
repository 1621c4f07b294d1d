"""virtio-balloon end to end: the guest kit's balloon driver (tests/guest/balloon.c) under
Sen, driven with QMP `balloon`, `query-balloon` and the BALLOON_CHANGE event, while the test
watches Sen's resident memory: inflating by N MiB must give about N MiB back to the host,
for the default private RAM (MADV_DONTNEED) and a shared memfd (hole punching).
The same guest runs under QEMU too (when installed), which shows the driver is right.
Skips when /dev/kvm is not usable or the guest kit is not built.
"""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from qmp import QMPClient, QMPError

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
GUEST = os.path.join(BUILD, "tests", "guest", "balloon.elf")
QBOOT = "/usr/share/qemu/qboot.rom"
MiB = 1 << 20
RAM_MIB = 256
INFLATE_MIB = 48
PASS_STATUS = (0x10 << 1) | 1

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built (guest kit)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


class Vm:
    """A VMM running the balloon guest: serial lines collected, QMP connected."""

    def __init__(self, cmd, sock):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.qmp = QMPClient.connect_unix(sock)
        self.qmp.negotiate()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def wait_line(self, prefix, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
                if "FAIL" in line:
                    pytest.fail("guest failed: " + "\n".join(self.lines))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        pytest.fail(f"no '{prefix}' from the guest; output:\n" + "\n".join(self.lines))

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait_actual(self, want, timeout=60):
        """Waits for a BALLOON_CHANGE event reporting `want` bytes."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ev = self.qmp.wait_event("BALLOON_CHANGE", timeout=max(0.1, end - time.monotonic()))
            if ev["data"]["actual"] == want:
                return
        pytest.fail(f"no BALLOON_CHANGE with actual={want}; output:\n" + "\n".join(self.lines))

    def finish(self, timeout=60):
        try:
            status = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.qmp.close()
        self.reader.join(timeout=5)
        return status


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="balloon", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def sen_cmd(sock, extra):
    return [SEN, "-M", "pc", "-m", f"{RAM_MIB}M", "-kernel", GUEST,
            "-device", "isa-debug-exit", "-display", "none", "-nodefaults", "-serial", "stdio",
            "-qmp", f"unix:{sock},server=on,wait=off"] + extra


def drive_balloon(vm, check_rss, final_event=True):
    """Inflate by INFLATE_MIB, check the host got it, deflate, let the guest pass.
    QEMU throttles BALLOON_CHANGE to one a second and exits with the guest before the last
    one is sent: final_event=False skips waiting for it."""
    vm.wait_line("balloon: ready")
    assert vm.qmp.cmd("query-balloon") == {"actual": RAM_MIB * MiB}
    if check_rss:  # Sen only: QEMU shows statistics through qom-get, not here
        info = vm.qmp.cmd("human-monitor-command", command_line="info balloon")
        assert info.startswith(f"balloon: actual={RAM_MIB}\r\n"), info
        # The guest's stats buffer: free memory = the test region (tests/guest/balloon.c).
        assert f"stat-free-memory={80 * MiB}\r\n" in info, info
        assert "stat-total-memory=" in info, info
    before = vm.rss_kib()
    target = (RAM_MIB - INFLATE_MIB) * MiB
    vm.qmp.cmd("balloon", value=target)
    vm.wait_actual(target)
    vm.wait_line("balloon: inflated to %d pages" % (INFLATE_MIB * 256))
    assert vm.qmp.cmd("query-balloon") == {"actual": target}
    after = vm.rss_kib()
    if check_rss:
        freed = (before - after) / 1024
        print(f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: {freed:.1f} MiB freed "
              f"by inflating {INFLATE_MIB} MiB")
        assert freed >= INFLATE_MIB * 0.8, f"only {freed:.1f} MiB of {INFLATE_MIB} came back"
    vm.qmp.cmd("balloon", value=RAM_MIB * MiB)
    if final_event:
        vm.wait_actual(RAM_MIB * MiB)
    vm.wait_line("balloon ok")
    assert vm.finish() == PASS_STATUS, "\n".join(vm.lines)


@pytest.mark.parametrize("backend", [
    [],  # the default: private anonymous RAM with THP, freed with MADV_DONTNEED
    ["-object", f"memory-backend-memfd,id=r,size={RAM_MIB}M", "-machine", "memory-backend=r"],
], ids=["default-ram", "memfd"])
def test_inflate_gives_memory_back(sockdir, backend):
    sock = os.path.join(sockdir, "qmp")
    vm = Vm(sen_cmd(sock, ["-device", "virtio-balloon-pci"] + backend), sock)
    drive_balloon(vm, check_rss=True)


def test_free_page_reporting(sockdir):
    sock = os.path.join(sockdir, "qmp")
    vm = Vm(sen_cmd(sock, ["-device", "virtio-balloon-pci,free-page-reporting=on"]), sock)
    vm.wait_line("balloon: dirtied")
    # The guest checks the reported pages read back as zero: the host discarded them.
    vm.wait_line("balloon: reported 16 MiB free")
    drive_balloon(vm, check_rss=True)


def test_qmp_errors(sockdir):
    sock = os.path.join(sockdir, "qmp")
    vm = Vm(sen_cmd(sock, ["-S"]), sock)
    try:
        for cmd, args in (("query-balloon", None), ("balloon", {"value": MiB})):
            with pytest.raises(QMPError) as e:
                vm.qmp.cmd(cmd, **(args or {}))
            assert e.value.cls == "DeviceNotActive"
            assert e.value.desc == "No balloon device has been activated"
    finally:
        vm.proc.kill()
        vm.finish()

    vm = Vm(sen_cmd(sock, ["-S", "-device", "virtio-balloon-pci"]), sock)
    try:
        with pytest.raises(QMPError) as e:
            vm.qmp.cmd("balloon", value=0)
        assert "expects a size" in e.value.desc
        # More than the RAM means all of it: nothing to give.
        vm.qmp.cmd("balloon", value=1 << 50)
        assert vm.qmp.cmd("query-balloon") == {"actual": RAM_MIB * MiB}
    finally:
        vm.proc.kill()
        vm.finish()


def test_one_balloon_only():
    proc = subprocess.run([SEN, "-S", "-display", "none", "-nodefaults",
                           "-device", "virtio-balloon-pci", "-device", "virtio-balloon-pci",
                           "-accel", "qtest"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert b"Only one balloon device is supported" in proc.stderr


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU not installed")
def test_guest_driver_under_qemu(sockdir):
    """The reference: the same guest and QMP dialogue against QEMU's virtio-balloon."""
    sock = os.path.join(sockdir, "qmp")
    machine = ["-M", "pc"] + (["-bios", QBOOT] if os.path.exists(QBOOT) else [])
    cmd = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities"] + \
        machine + ["-m", f"{RAM_MIB}M", "-kernel", GUEST, "-device", "isa-debug-exit",
                   "-display", "none", "-nodefaults", "-serial", "stdio",
                   "-device", "virtio-balloon-pci,free-page-reporting=on,disable-legacy=on",
                   "-qmp", f"unix:{sock},server=on,wait=off"]
    vm = Vm(cmd, sock)
    vm.wait_line("balloon: reported 16 MiB free")
    drive_balloon(vm, check_rss=False, final_event=False)
