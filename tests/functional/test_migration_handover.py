"""The hand-over at the end of a live migration over a socket (docs/migration.md,
"Shared storage" and "When the destination fails at the end"): the source has stopped,
sent everything and let go of its images; it waits for the destination to say it took
the VM.  A destination that dies or refuses the state at that point must leave the
source running with its images active and writable, able to migrate again.

Both VMs open the same qcow2 file; the writes are savevm's (snapshot table, refcounts,
L1/L2, VM-state clusters).  No guest CPU is needed (-accel qtest); qemu-img is the
oracle for the image.
"""
import os
import signal
import socket
import threading
import time

import pytest

from migration_util import SEN, MiB, pattern
from migration_util import QEMU_IMG, qcow2, drive, hmp, image_check, snapshot_tags
from migration_util import vms  # noqa: F401 (the pytest fixture)

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed"),
]

RAM_AT = 0x1000000


def quit_vm(vm):
    vm.cmd("quit")
    assert vm.wait_exit() == 0, vm.stderr_text()


def wait_until_dead(pid, timeout=10.0):
    """Until pid has exited (a zombie or reaped): its files are closed by then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} still alive {timeout} s after SIGKILL")


class AckSwallowingProxy:
    """Relays a source's main stream to a real destination.  The first byte the
    destination sends back (its hand-over answer, after it read the whole stream, loaded
    it and took the images) is not passed on: the destination is killed right then, and
    the source's connection closed, as if it had died a moment before answering."""

    def __init__(self, listen_path, dst_path, dst_pid):
        self.dst_path, self.dst_pid = dst_path, dst_pid
        self.killed = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(listen_path)
        self.listener.listen(1)
        self.socks = [self.listener]
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass

    def _run(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        up = socket.socket(socket.AF_UNIX)
        up.connect(self.dst_path)
        self.socks += [conn, up]
        threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()
        try:
            answer = up.recv(1)
        except OSError:
            answer = b""
        if answer:
            os.kill(self.dst_pid, signal.SIGKILL)
            # A dead destination has closed its files and so released its image locks;
            # SIGKILL only starts that, and the source takes its images back as soon as
            # the connection closes.
            wait_until_dead(self.dst_pid)
            self.killed.set()
        # shutdown, not only close: the relaying thread still blocks in recv on it.
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def close(self):
        for s in self.socks:
            s.close()


def source_with_snapshot(vms, disk, *extra):
    """A source that wrote RAM and a snapshot ("before") to the shared image."""
    src = vms("src", *drive(disk), *extra)
    src.qtest.write(RAM_AT, pattern(1, 2 * MiB))
    assert hmp(src, "savevm before") == ""
    return src


def check_source_took_back(src, disk, error):
    """The migration failed with `error`; the source runs, its RAM is intact, and it
    writes its image again (a snapshot with new RAM)."""
    info = src.wait_migration()
    assert info["status"] == "failed", info
    assert error in info["error-desc"], info
    assert src.status() == "running"
    assert src.qtest.read(RAM_AT, 2 * MiB) == pattern(1, 2 * MiB)
    src.qtest.write(RAM_AT, pattern(2, 4 * MiB))
    assert hmp(src, "savevm after") == ""
    assert "before" in hmp(src, "info snapshots")


def migrate_again(vms, src, disk, tmp_path, *extra):
    """The same source migrates to a fresh destination, which writes the image too; the
    image is checked once both have quit (a running VM's image is checked only after)."""
    uri = f"unix:{tmp_path}/again.sock"
    dst = vms("dst2", *drive(disk), *extra, "-incoming", uri)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    assert src.status() == "postmigrate"
    assert dst.qtest.read(RAM_AT, 4 * MiB) == pattern(2, 4 * MiB)
    assert hmp(dst, "savevm end") == ""
    quit_vm(dst)
    quit_vm(src)
    image_check(disk)
    assert snapshot_tags(disk) == ["before", "after", "end"]
    return dst


def test_destination_refusing_the_device_state_leaves_the_source_running(vms, tmp_path):
    """The destination lacks a device the source has: it reads the whole stream, fails
    on the device state (after the source let go of its images) and exits 1."""
    disk = qcow2(tmp_path)
    uri = f"unix:{tmp_path}/mig.sock"
    src = source_with_snapshot(vms, disk, "-device", "virtio-rng-pci")
    dst = vms("dst", *drive(disk), "-incoming", uri)
    src.cmd("migrate", uri=uri)
    assert dst.wait_exit() == 1
    assert "device state" in dst.stderr_text(), dst.stderr_text()
    check_source_took_back(src, disk, "closed the connection before it took over")
    migrate_again(vms, src, disk, tmp_path, "-device", "virtio-rng-pci")


def test_destination_dying_before_its_answer_leaves_the_source_running(vms, tmp_path):
    """The destination loaded everything and took the images, but is killed before its
    answer reaches the source."""
    disk = qcow2(tmp_path)
    src = source_with_snapshot(vms, disk)
    dst = vms("dst", *drive(disk), "-incoming", f"unix:{tmp_path}/dst.sock")
    proxy = AckSwallowingProxy(str(tmp_path / "proxy.sock"), str(tmp_path / "dst.sock"),
                               dst.proc.pid)
    try:
        src.cmd("migrate", uri=f"unix:{tmp_path}/proxy.sock")
        assert proxy.killed.wait(30), "the destination never answered"
        assert dst.wait_exit() == -signal.SIGKILL
        check_source_took_back(src, disk, "closed the connection before it took over")
    finally:
        proxy.close()
    migrate_again(vms, src, disk, tmp_path)


def test_cancel_while_waiting_for_the_answer_takes_the_vm_back(vms, tmp_path):
    """A destination that never answers (it reads the whole stream and then nothing):
    the source waits, stopped, until migrate_cancel, then runs and writes again."""
    disk = qcow2(tmp_path)
    src = source_with_snapshot(vms, disk)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "mute.sock"))
    listener.listen(1)
    got = []

    def swallow():
        conn, _ = listener.accept()
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            got.append(data)
        conn.close()
    reader = threading.Thread(target=swallow, daemon=True)
    reader.start()
    try:
        src.cmd("migrate", uri=f"unix:{tmp_path}/mute.sock")
        # Whole stream sent (it ends with END and the checksum), no answer: waiting.
        for _ in range(500):
            if src.status() == "finish-migrate" and b"".join(got)[-5:-4] == b"\xff":
                break
            threading.Event().wait(0.02)
        assert src.status() == "finish-migrate"
        assert src.cmd("query-migrate")["status"] == "active"
        src.cmd("migrate_cancel")
        info = src.wait_migration()
        assert info["status"] == "cancelled", info
        assert src.status() == "running"
        reader.join(10)
    finally:
        listener.close()
    src.qtest.write(RAM_AT, pattern(2, 4 * MiB))
    assert hmp(src, "savevm after") == ""
    migrate_again(vms, src, disk, tmp_path)
