"""Multifd migration: pages over several extra connections (the `multifd` capability and
`multifd-channels` parameter, docs/migration.md; wire format in docs/migration-format.md).

RAM tests run on -accel qtest as in test_migration.py; a real vCPU dirtier verifies every
page on the destination; fake peers written here (a destination that drops a channel, a
source that sends a corrupt channel packet) check the failure paths.
"""
import os
import socket
import struct
import threading
import time

import pytest

from migration_util import (SEN, MiB, Vm, check_chunks, decode_stream, finish_precopy,
                            have_device_state, migrate_again_unthrottled, pattern,
                            start_slow_precopy, start_throttled_migration, write_chunks)
from migration_util import vms  # noqa: F401 (the pytest fixture)
from net_util import free_port
from qmp import QMPError
from test_migration_guest import DIRTIER, DIRTY_RING, dirtier, migrate_and_verify
from test_migration_stream import crc32c, header, ram_record

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")


def enable_multifd(*vms_, channels=None):
    for vm in vms_:
        vm.cmd("migrate-set-capabilities",
               capabilities=[{"capability": "multifd", "state": True}])
        if channels:
            vm.cmd("migrate-set-parameters", **{"multifd-channels": channels})


def uri_for(kind, tmp_path):
    if kind == "tcp":
        return f"tcp:127.0.0.1:{free_port()}"
    return f"unix:{tmp_path}/mfd.sock"


def test_capability_and_parameter_defaults(vms):
    vm = vms("vm")
    caps = {c["capability"]: c["state"] for c in vm.cmd("query-migrate-capabilities")}
    assert caps["multifd"] is False
    assert vm.cmd("query-migrate-parameters")["multifd-channels"] == 2  # QEMU's default
    enable_multifd(vm, channels=4)
    caps = {c["capability"]: c["state"] for c in vm.cmd("query-migrate-capabilities")}
    assert caps["multifd"] is True
    assert vm.cmd("query-migrate-parameters")["multifd-channels"] == 4
    with pytest.raises(QMPError, match="multifd-channels"):
        vm.cmd("migrate-set-parameters", **{"multifd-channels": 0})


@pytest.mark.parametrize("kind", ["tcp", "unix"])
@pytest.mark.parametrize("channels", [1, 3])
def test_ram_arrives_over_channels(vms, tmp_path, kind, channels):
    uri = uri_for(kind, tmp_path)
    src = vms("src")
    dst = vms("dst", "-incoming", uri)
    enable_multifd(src, dst, channels=channels)
    write_chunks(src, 11)
    src.cmd("migrate", uri=uri)
    info = src.wait_migration()
    assert info["status"] == "completed", info
    assert src.status() == "postmigrate"
    # The pages went over the channels, the main stream carried only the rest.
    assert info["ram"]["multifd-bytes"] >= MiB
    assert info["ram"]["transferred"] - info["ram"]["multifd-bytes"] < 64 * 1024
    assert info["ram"]["normal"] >= MiB // 4096
    assert dst.wait_migration()["status"] == "completed"
    assert dst.cmd("query-migrate")["ram"]["multifd-bytes"] > MiB
    check_chunks(dst, 11)
    out = src.cmd("human-monitor-command", **{"command-line": "info migrate"})
    assert " multifd: on" in out
    assert f"multifd bytes: {info['ram']['multifd-bytes'] >> 10} kbytes" in out
    assert dst.qtest.read(0x800000, 16384) == bytes(16384)


def test_pages_rewritten_between_passes_arrive_last(vms, tmp_path):
    """A slow link keeps the source in pre-copy while pages are rewritten (and some
    zeroed) many times: with several channels a page's older copy from an earlier pass
    must never land after its newer one."""
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    enable_multifd(src, dst, channels=4)
    start_slow_precopy(src, f"unix:{tmp_path}/m.sock", seed=7, size=8 * MiB)
    final = bytearray(pattern(7, 8 * MiB))
    for rnd in range(12):
        for i in range(8):
            off = i * MiB + (rnd % 4) * 4096
            data = bytes(4096) if (rnd + i) % 5 == 0 else pattern(1000 + rnd * 8 + i, 4096)
            src.qtest.write(0x1000000 + off, data)
            final[off:off + 4096] = data
        time.sleep(0.05)
    assert finish_precopy(src)["ram"]["dirty-sync-count"] >= 2
    assert dst.wait_migration()["status"] == "completed"
    assert dst.qtest.read(0x1000000, 8 * MiB) == bytes(final)


def test_exec_fd_file_refuse_multifd(vms, tmp_path):
    src = vms("src")
    enable_multifd(src)
    for uri in (f"exec:cat > {tmp_path}/x", "fd:0", f"file:{tmp_path}/y"):
        with pytest.raises(QMPError, match="multifd is not supported by current protocol"):
            src.cmd("migrate", uri=uri)
    assert src.status() == "running"


def test_destination_with_multifd_refuses_a_file_stream(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 17)
    src.cmd("migrate", uri=f"file:{tmp_path}/vm.mig")
    assert src.wait_migration()["status"] == "completed"
    dst = vms("dst", "-incoming", "defer")
    enable_multifd(dst)
    dst.cmd("migrate-incoming", uri=f"file:{tmp_path}/vm.mig")
    assert dst.wait_exit() == 1
    assert "multifd is not supported by current protocol" in dst.stderr_text()


@pytest.mark.parametrize("src_on, dst_on, message", [
    (True, False, "set the multifd capability on this destination too"),
    (False, True, "the source did not enable the multifd capability"),
])
def test_capability_on_one_side_only(vms, tmp_path, src_on, dst_on, message):
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    if src_on:
        enable_multifd(src)
    if dst_on:
        enable_multifd(dst)
    write_chunks(src, 12)
    src.cmd("migrate", uri=f"unix:{tmp_path}/m.sock")
    assert src.wait_migration()["status"] == "failed"
    assert src.status() == "running"
    assert dst.wait_exit() == 1
    assert message in dst.stderr_text()


def test_cancel_keeps_source_running_and_it_can_migrate_again(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 13)
    src.qtest.write(0x1000000, pattern(13, 4 * MiB))
    dst1 = start_throttled_migration(vms, src, f"unix:{tmp_path}/a.sock", settle=0.4,
                                     prepare=lambda dst: enable_multifd(src, dst, channels=3))
    assert src.cmd("query-migrate")["status"] == "active"
    src.cmd("migrate_cancel")
    assert src.wait_migration()["status"] == "cancelled"
    assert src.status() == "running"
    assert dst1.wait_exit() == 1
    assert "load of migration failed" in dst1.stderr_text()

    dst2 = migrate_again_unthrottled(vms, src, f"unix:{tmp_path}/b.sock",
                                     prepare=lambda dst: enable_multifd(dst, channels=3))
    assert dst2.wait_migration()["status"] == "completed"
    check_chunks(dst2, 13)


def test_cancel_right_after_migrate_never_hangs(vms, tmp_path):
    """Cancels landing while the channels connect or before any is busy."""
    src = vms("src")
    write_chunks(src, 16)
    enable_multifd(src, channels=4)
    for i in range(5):
        dst = vms(f"dst{i}", "-incoming", f"unix:{tmp_path}/c{i}.sock")
        enable_multifd(dst, channels=4)
        src.cmd("migrate", uri=f"unix:{tmp_path}/c{i}.sock")
        if i:
            time.sleep(0.002 * i)
        src.cmd("migrate_cancel")
        assert src.wait_migration(timeout=20)["status"] in ("cancelled", "completed")
        assert src.status() in ("running", "postmigrate")
        if src.status() == "postmigrate":
            break
        dst.kill()


def test_killed_destination_leaves_source_running(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 14)
    src.qtest.write(0x1000000, pattern(14, 4 * MiB))
    dst1 = start_throttled_migration(vms, src, f"unix:{tmp_path}/a.sock", settle=0.4,
                                     prepare=lambda dst: enable_multifd(src, dst))
    dst1.kill()
    info = src.wait_migration()
    assert info["status"] == "failed"
    assert "write to the migration stream failed" in info["error-desc"]
    assert src.status() == "running"

    dst2 = migrate_again_unthrottled(vms, src, f"unix:{tmp_path}/b.sock", prepare=enable_multifd)
    check_chunks(dst2, 14)


class DroppingDestination:
    """Accepts the main connection and every channel, reads them all, and closes
    channel `victim` (by accept order) once it has received `after` bytes."""

    def __init__(self, path, channels, victim, after):
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(8)
        self.channels, self.victim, self.after = channels, victim, after
        self.dropped = threading.Event()
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _drain(self, conn, index):
        got = 0
        while True:
            try:
                data = conn.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            got += len(data)
            if index == self.victim and got >= self.after:
                conn.close()
                self.dropped.set()
                return

    def _run(self):
        for index in range(self.channels + 1):
            conn, _ = self.listener.accept()
            self.conns.append(conn)
            threading.Thread(target=self._drain, args=(conn, index), daemon=True).start()

    def close(self):
        for c in self.conns:
            c.close()
        self.listener.close()


def test_destination_dropping_one_channel_fails_cleanly(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 15)
    src.qtest.write(0x1000000, pattern(15, 8 * MiB))
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 4 * MiB})
    enable_multifd(src, channels=3)
    fake = DroppingDestination(str(tmp_path / "fake.sock"), 3, victim=2, after=256 * 1024)
    try:
        src.cmd("migrate", uri=f"unix:{tmp_path}/fake.sock")
        assert fake.dropped.wait(20)
        info = src.wait_migration()
        assert info["status"] == "failed", info
        assert "multifd channel" in info["error-desc"], info
        assert src.status() == "running"
    finally:
        fake.close()
    # And the same source migrates fine afterwards.
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/b.sock")
    enable_multifd(dst, channels=3)
    src.cmd("migrate", uri=f"unix:{tmp_path}/b.sock")
    assert src.wait_migration()["status"] == "completed"
    check_chunks(dst, 15)


# ---- a hand-made multifd source against a real destination ----

SESSION = 0x1122334455667788


def hello(channel, channels=2, session=SESSION, magic=b"SENMFD\r\n", version=1):
    return magic + struct.pack(">IQII", version, session, channel, channels)


class FakeSource:
    """Main stream and channels written by hand, with running CRC-32C per connection."""

    def __init__(self, path, channels=2, session=SESSION):
        self.path = path
        self.main = self._connect()
        self.crc = {}
        self.send("main", header(version=4) + struct.pack(">BIQ", 3, channels, session))
        self.chan = []

    def _connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.path)
        return s

    def open_channel(self, data):
        c = self._connect()
        self.chan.append(c)
        self.send(len(self.chan) - 1, data)

    def sock(self, who):
        return self.main if who == "main" else self.chan[who]

    def send(self, who, data):
        # A RAM record's page data is outside the checksum (docs/migration-format.md).
        self.crc[who] = crc32c(getattr(data, "covered", data), self.crc.get(who, 0xFFFFFFFF))
        try:
            self.sock(who).sendall(data)
        except OSError:
            pass  # the destination may already have given up: its exit status tells

    def checksum(self, who, data=b""):
        self.send(who, data)
        try:
            self.sock(who).sendall(struct.pack(">I", (~self.crc[who]) & 0xFFFFFFFF))
        except OSError:
            pass

    def close(self):
        for s in [self.main] + self.chan:
            s.close()


def fake_dst(vms, tmp_path):
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/f.sock")
    enable_multifd(dst)
    return dst


def device_record(vms, tmp_path):
    """The DEVICE record of a real source of the same machine (a hand-made stream
    cannot invent vCPU and device state), or b"" when this Sen has none."""
    donor = vms("donor")
    donor.cmd("migrate", uri=f"file:{tmp_path}/donor.mig")
    assert donor.wait_migration()["status"] == "completed"
    _, device = decode_stream((tmp_path / "donor.mig").read_bytes())
    if device is None:
        return b""
    return struct.pack(">BII", 2, len(device), (~crc32c(device)) & 0xFFFFFFFF) + device


def test_hand_made_stream_a_late_channel_cannot_undo_a_newer_page(vms, tmp_path):
    """The format as documented, encoded here.  Channel 1 sends pass 1's SYNC and then
    pass 2's copy of a page at once; channel 0 sends pass 1's (older) copy of the same
    page half a second later.  Channel 1 must wait at its SYNC until channel 0 got there,
    so the newer copy lands last."""
    device = device_record(vms, tmp_path)
    dst = fake_dst(vms, tmp_path)
    src = FakeSource(str(tmp_path / "f.sock"))
    old, new, other = pattern(21, 4096), pattern(22, 4096), pattern(23, 8192)
    src.open_channel(hello(1))
    src.open_channel(hello(0))
    sync = [struct.pack(">BQ", 4, n) for n in (1, 2)]
    src.send(0, ram_record(0x300000, 2, other))
    src.checksum(0, sync[0])
    src.send(0, ram_record(0x200000, 1, new))
    src.checksum(0, sync[1])
    src.checksum(0, b"\xff")
    time.sleep(0.5)
    src.send(1, ram_record(0x200000, 1, old))
    src.checksum(1, sync[0])
    src.checksum(1, sync[1])
    src.checksum(1, b"\xff")
    src.send("main", sync[0] + sync[1] + device)
    src.checksum("main", b"\xff")
    assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
    assert dst.qtest.read(0x200000, 4096) == new
    assert dst.qtest.read(0x300000, 8192) == other
    assert dst.cmd("query-migrate")["ram"]["multifd-bytes"] > 3 * 4096
    src.close()


@pytest.mark.parametrize("what, message", [
    ("type", "corrupt multifd channel: unknown packet type 0x42"),
    ("outside", "is not inside guest RAM"),
    ("checksum", "the migration stream is corrupt (checksum"),
    ("sync-order", "corrupt multifd channel: SYNC 2 after 0"),
])
def test_corrupt_channel_is_refused(vms, tmp_path, what, message):
    dst = fake_dst(vms, tmp_path)
    src = FakeSource(str(tmp_path / "f.sock"))
    src.open_channel(hello(0))
    src.open_channel(hello(1))
    page = pattern(23, 4096)
    if what == "type":
        src.send(0, b"\x42")
    elif what == "outside":
        src.send(0, ram_record(64 * MiB, 1, page))
    elif what == "checksum":
        src.send(0, ram_record(0x200000, 1, page))
        src.crc[0] ^= 1  # the SYNC's checksum will not match
        src.checksum(0, struct.pack(">BQ", 4, 1))
    elif what == "sync-order":
        src.checksum(0, struct.pack(">BQ", 4, 2))
    assert dst.wait_exit(timeout=30) == 1
    err = dst.stderr_text()
    assert "load of migration failed: multifd connection" in err and message in err, err
    src.close()


def test_source_closing_before_its_channels_is_refused(vms, tmp_path):
    dst = fake_dst(vms, tmp_path)
    src = FakeSource(str(tmp_path / "f.sock"))
    src.open_channel(hello(0))
    src.main.close()
    assert dst.wait_exit(timeout=30) == 1
    assert "before opening all its multifd channels" in dst.stderr_text()
    src.close()


# ---- the accept window: strays connecting while the destination waits for channels ----

def finish_two_channels(src, device):
    """Channels 0 and 1 of FakeSource src: one page each, SYNC 1, END; then main."""
    for ch, seed in ((0, 31), (1, 32)):
        src.open_channel(hello(ch))
        src.send(ch, ram_record(0x200000 + ch * 0x1000, 1, pattern(seed, 4096)))
        src.checksum(ch, struct.pack(">BQ", 4, 1))
        src.checksum(ch, b"\xff")
    src.send("main", struct.pack(">BQ", 4, 1) + device)
    src.checksum("main", b"\xff")


def check_two_channels(dst):
    assert dst.qtest.read(0x200000, 4096) == pattern(31, 4096)
    assert dst.qtest.read(0x201000, 4096) == pattern(32, 4096)


def stray(path, data=b""):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if data:
        s.sendall(data)
    return s


REFUSED = "refused a connection in the multifd accept window: "


@pytest.mark.parametrize("what, data, message", [
    ("silent", b"", None),
    ("garbage", b"GET / HTTP/1.0\r\nHost: x\r\nUser-Agent: scan\r\n\r\n",
     "not a Sen multifd channel (bad magic)"),
    ("version", b"SENMFD\r\n" + struct.pack(">IQII", 9, SESSION, 0, 2),
     "multifd channel version 9 is not supported"),
    ("session", hello(0, session=SESSION + 1), "belongs to another migration"),
    ("count", hello(0, channels=3), "belongs to another migration"),
    ("id", hello(2), "multifd channel id 2 is out of range"),
    ("short", b"SENMFD", "closed before sending a whole greeting"),
])
def test_stray_connection_does_not_stall_or_fail_the_migration(vms, tmp_path, what, data,
                                                                message):
    """A stray that sends nothing, garbage or a wrong greeting connects before the
    source's channels: it is refused on its own and the migration completes."""
    device = device_record(vms, tmp_path)
    dst = fake_dst(vms, tmp_path)
    path = str(tmp_path / "f.sock")
    src = FakeSource(path)
    strays = [stray(path, data)]
    if what == "short":
        strays[0].close()
    time.sleep(0.2)  # the stray is in the window before the real channels
    finish_two_channels(src, device)
    assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
    check_two_channels(dst)
    err = dst.stderr_text()
    if message:
        assert REFUSED in err and message in err, err
    else:
        assert REFUSED not in err, err  # silent, and gone with the window
    src.close()
    for s in strays:
        s.close()


def test_repeated_channel_id_is_refused_and_the_first_kept(vms, tmp_path):
    device = device_record(vms, tmp_path)
    dst = fake_dst(vms, tmp_path)
    path = str(tmp_path / "f.sock")
    src = FakeSource(path)
    src.open_channel(hello(0))
    time.sleep(0.2)
    dup = stray(path, hello(0))
    time.sleep(0.2)
    src.send(0, ram_record(0x200000, 1, pattern(31, 4096)))
    src.checksum(0, struct.pack(">BQ", 4, 1))
    src.checksum(0, b"\xff")
    src.open_channel(hello(1))
    src.send(1, ram_record(0x201000, 1, pattern(32, 4096)))
    src.checksum(1, struct.pack(">BQ", 4, 1))
    src.checksum(1, b"\xff")
    src.send("main", struct.pack(">BQ", 4, 1) + device)
    src.checksum("main", b"\xff")
    assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
    check_two_channels(dst)
    assert REFUSED + "multifd channel id 0 is repeated" in dst.stderr_text()
    dup.settimeout(5)
    try:
        assert dup.recv(1) == b""  # closed by the destination
    except ConnectionResetError:
        pass  # closed with the greeting unread: also closed
    src.close()
    dup.close()


def test_silent_connection_is_closed_at_the_greeting_deadline(vms, tmp_path):
    """A connection that never greets holds no descriptor beyond the deadline (5 s),
    and the source's channels coming after it still complete the migration."""
    device = device_record(vms, tmp_path)
    dst = fake_dst(vms, tmp_path)
    path = str(tmp_path / "f.sock")
    src = FakeSource(path)
    silent = stray(path)
    silent.settimeout(10)
    start = time.monotonic()
    assert silent.recv(1) == b""
    assert 4 <= time.monotonic() - start < 10
    assert REFUSED + "no greeting within 5 s" in dst.stderr_text()
    assert dst.cmd("query-migrate")["status"] == "active"
    finish_two_channels(src, device)
    assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
    check_two_channels(dst)
    src.close()
    silent.close()


class StrayInjectingProxy:
    """Relays a real source's connections to the destination; right after relaying the
    main stream it opens a silent and a garbage connection to the destination, so both
    sit in the accept window ahead of the real channels.

    The main stream's end is passed on only after the channels are relayed: a source's
    channels are connected to the destination before it can finish and close the main
    stream, and the proxy's sleeps must not reorder that (the destination then rightly
    fails: "closed the migration stream before opening all its multifd channels")."""

    def __init__(self, listen_path, dst_path, channels):
        self.dst_path = dst_path
        self.channels = channels
        self.relayed = 0
        self.all_relayed = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(listen_path)
        self.listener.listen(8)
        self.socks = [self.listener]
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _pump(a, b, before_end=None):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        if before_end:
            before_end.wait(30)
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self):
        first = True
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(self.dst_path)
            self.socks += [conn, up]
            threading.Thread(target=self._pump,
                             args=(conn, up, self.all_relayed if first else None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
            if not first:
                self.relayed += 1
                if self.relayed == self.channels:
                    self.all_relayed.set()
            if first:
                first = False
                time.sleep(0.3)  # the destination reads the header and MULTIFD record
                self.socks.append(stray(self.dst_path))
                self.socks.append(stray(self.dst_path, b"\x16\x03\x01" + bytes(64)))
                time.sleep(0.2)

    def close(self):
        for s in self.socks:
            s.close()


def cpu_seconds(pid):
    """User + system CPU time the process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_source_gone_while_a_stray_greets_in_pieces_waits_without_spinning(vms, tmp_path):
    """The source closes its main stream while a stray holds part of a greeting: the
    window waits for that greeting until its deadline, sleeping rather than polling the
    hung-up stream in a loop, then fails as the source gave up."""
    dst = fake_dst(vms, tmp_path)
    path = str(tmp_path / "f.sock")
    src = FakeSource(path)
    partial = stray(path, b"SENMFD")
    time.sleep(0.3)  # pending, with part of its greeting
    src.main.close()
    time.sleep(0.2)  # the hang-up is seen
    before = cpu_seconds(dst.proc.pid)
    time.sleep(3)  # the stray's 5 s deadline is still ahead
    assert cpu_seconds(dst.proc.pid) - before < 0.5
    assert dst.wait_exit(timeout=30) == 1
    err = dst.stderr_text()
    assert "before opening all its multifd channels" in err, err
    assert REFUSED + "no greeting within 5 s" in err, err
    partial.close()
    src.close()


def test_real_migration_with_strays_in_the_accept_window(vms, tmp_path):
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/d.sock")
    enable_multifd(src, dst, channels=3)
    write_chunks(src, 17)
    proxy = StrayInjectingProxy(str(tmp_path / "p.sock"), str(tmp_path / "d.sock"), 3)
    try:
        src.cmd("migrate", uri=f"unix:{tmp_path}/p.sock")
        info = src.wait_migration()
        assert info["status"] == "completed", info
        assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
        check_chunks(dst, 17)
        assert REFUSED + "not a Sen multifd channel" in dst.stderr_text()
    finally:
        proxy.close()


# ---- multifd-channels on both sides ----

@pytest.mark.parametrize("src_channels, dst_channels", [(3, 2), (2, 4)])
def test_channel_count_must_match(vms, tmp_path, src_channels, dst_channels):
    """As in QEMU, multifd-channels is set on both sides; the destination uses its own
    and refuses a source with another count, naming both, and the source keeps running."""
    uri = f"unix:{tmp_path}/m.sock"
    src = vms("src")
    dst = vms("dst", "-incoming", uri)
    enable_multifd(src, channels=src_channels)
    enable_multifd(dst, channels=dst_channels)
    write_chunks(src, 18)
    src.cmd("migrate", uri=uri)
    assert dst.wait_exit() == 1
    assert (f"the source uses {src_channels} multifd channels but this destination's "
            f"multifd-channels is {dst_channels} (set the same value on both sides)"
            in dst.stderr_text())
    assert src.wait_migration()["status"] == "failed"
    assert src.status() == "running"
    check_chunks(src, 18)


# ---- a real guest ----

needs_guest = pytest.mark.skipif(
    not os.path.exists(DIRTIER) or not os.access("/dev/kvm", os.R_OK | os.W_OK) or
    not have_device_state(),
    reason="needs the dirtier guest, a usable /dev/kvm and device state")


@needs_guest
@pytest.mark.parametrize("kind", ["tcp", "unix", "tcp-dirty-ring"])
def test_dirtier_verifies_on_destination(vms, tmp_path, kind):
    uri = uri_for(kind.split("-")[0], tmp_path)
    ring = DIRTY_RING if kind.endswith("dirty-ring") else ()
    src = dirtier(vms, "src", *ring)
    src.wait_line("dirtier: running")
    dst = dirtier(vms, "dst", *ring, "-incoming", uri)
    enable_multifd(src, dst, channels=3)
    migrate_and_verify(src, dst, uri)
