"""A guest keeps using its virtio-net across a live migration (tests/guest/net-migrate.c:
ARP requests for 10.0.2.2 from 10.0.2.15, counting the replies).  On the destination it
must get fresh replies through the migrated rings before it passes.

- `-netdev socket,connect=` to a peer this test serves: the source's and then the
  destination's connection reach it; the destination's first frames are the announce
  RARPs from the NIC's MAC, then the guest's ARP requests, which the peer answers.
- `-netdev user` (slirp): the destination's fresh NAT answers at once (its state is not
  migrated: docs/networking.md#migration).

QMP announce-self / HMP announce_self start the same announcement on demand: under the
qtest accelerator the test steps the virtual clock and sees the rounds' RARPs arrive as
paced.

A stream whose virtio-net section was tampered with (checksums made right again) is
refused by the destination, naming the device and what is wrong.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib

import pytest

from qmp import QMPError
from migration_util import (BUILD, SEN, Vm, decode_stream, migrate_and_ask_to_verify,
                            needs_kvm_guest)
from migration_util import vms  # noqa: F401 (the pytest fixture)
from test_migration_stream import device_record, finish, header

IMAGE = os.path.join(BUILD, "tests", "guest", "net-migrate.elf")
MAC = "52:54:00:12:34:77"
PEER_MAC = bytes.fromhex("525400eeeeee")
ETH_P_ARP, ETH_P_RARP = 0x0806, 0x8035
PASS_STATUS = 33

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")
with_guest = needs_kvm_guest(IMAGE, "this build migrates no device state")


def arp_reply(frame):
    """The answer to an ARP request for any address, from PEER_MAC; None otherwise."""
    if len(frame) < 42 or struct.unpack_from(">H", frame, 12)[0] != ETH_P_ARP:
        return None
    if struct.unpack_from(">H", frame, 20)[0] != 1:
        return None
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 2) + PEER_MAC + tpa + sha + spa
    return (sha + PEER_MAC + struct.pack(">H", ETH_P_ARP) + arp).ljust(60, b"\0")


class FramePeer:
    """The other end of -netdev socket,connect= (4-byte big-endian length, then the
    frame): every connection is served, each frame recorded with the index of the
    connection it came on, ARP requests answered."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.frames = []
        self.lock = threading.Lock()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            idx = len(self.conns)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, idx), daemon=True).start()

    def _serve(self, conn, idx):
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 4:
                n = struct.unpack_from(">I", buf)[0]
                if len(buf) < 4 + n:
                    break
                frame, buf = buf[4:4 + n], buf[4 + n:]
                with self.lock:
                    self.frames.append((idx, frame))
                reply = arp_reply(frame)
                if reply:
                    conn.sendall(struct.pack(">I", len(reply)) + reply)

    def on(self, idx):
        with self.lock:
            return [f for i, f in self.frames if i == idx]

    def close(self):
        self.listener.close()
        for c in self.conns:
            c.close()


def ethertype(frame):
    return struct.unpack_from(">H", frame, 12)[0]


def migrate_net_guest(vms, tmp_path, netdev):
    nic = ["-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={MAC}"]
    src = vms("src", *nic, guest=IMAGE)
    src.wait_line("net-migrate: exchanging", timeout=90)
    uri = f"unix:{tmp_path}/mig.sock"
    dst = vms("dst", *nic, "-incoming", uri, guest=IMAGE)
    migrate_and_ask_to_verify(src, dst, uri)
    assert dst.wait_exit(timeout=120) == PASS_STATUS, (dst.lines, dst.stderr_text())
    assert "net-migrate ok" in dst.lines
    assert not any(l.startswith("net-migrate: exchanging") for l in dst.lines), \
        "the destination's guest started over instead of continuing"
    return src, dst


@with_guest
def test_socket_peer_keeps_exchanging(vms, tmp_path):
    peer = FramePeer()
    try:
        migrate_net_guest(vms, tmp_path, f"socket,id=n0,connect=127.0.0.1:{peer.port}")
        before, after = peer.on(0), peer.on(1)
        mac = bytes.fromhex(MAC.replace(":", ""))
        assert sum(ethertype(f) == ETH_P_ARP for f in before) >= 3
        # The destination announces first: QEMU's RARP (opcode 3, our MAC twice).
        rarps = [f for f in after if ethertype(f) == ETH_P_RARP]
        assert rarps, [f.hex() for f in after[:4]]
        # Only a transmit the source left pending (kicked as it stopped) may go first.
        assert ETH_P_RARP in [ethertype(f) for f in after[:2]]
        for f in rarps:
            assert len(f) == 60 and f[:6] == b"\xff" * 6 and f[6:12] == mac
            assert struct.unpack_from(">H", f, 20)[0] == 3
            assert f[22:28] == mac and f[32:38] == mac
        requests = [f for f in after if ethertype(f) == ETH_P_ARP]
        assert len(requests) >= 3 and all(f[6:12] == mac for f in requests)
    finally:
        peer.close()


@with_guest
def test_user_network_keeps_exchanging(vms, tmp_path):
    migrate_net_guest(vms, tmp_path, "user,id=n0")


def rarps(peer, idx=0, want=None, timeout=5.0):
    """The RARP frames the peer has from connection idx; with want, waits for that many."""
    end = time.monotonic() + timeout
    while True:
        got = [f for f in peer.on(idx) if ethertype(f) == ETH_P_RARP]
        if want is None or len(got) >= want or time.monotonic() > end:
            return got
        time.sleep(0.02)


def test_announce_self(vms):
    peer = FramePeer()
    try:
        vm = vms("a", "-netdev", f"socket,id=n0,connect=127.0.0.1:{peer.port}",
                 "-device", f"virtio-net-pci,netdev=n0,mac={MAC},id=nic0")
        ms = 1000 * 1000
        vm.cmd("announce-self", initial=10, max=25, rounds=4, step=10)
        vm.qtest.cmd("clock_step 0")
        assert len(rarps(peer, want=1)) == 1
        vm.qtest.cmd(f"clock_step {9 * ms}")
        time.sleep(0.2)
        assert len(rarps(peer)) == 1          # the second round is due at 10 ms
        vm.qtest.cmd(f"clock_step {1 * ms}")
        assert len(rarps(peer, want=2)) == 2
        vm.qtest.cmd(f"clock_step {20 * ms}")  # 30 ms: 10 + (10 + 10)
        assert len(rarps(peer, want=3)) == 3
        vm.qtest.cmd(f"clock_step {24 * ms}")
        time.sleep(0.2)
        assert len(rarps(peer)) == 3          # capped at max=25 ms: due at 55 ms
        vm.qtest.cmd(f"clock_step {1000 * ms}")
        got = rarps(peer, want=4)
        time.sleep(0.2)
        assert len(rarps(peer)) == 4
        mac = bytes.fromhex(MAC.replace(":", ""))
        assert all(f[6:12] == mac and f[22:28] == mac for f in got)

        hmp = "human-monitor-command"
        assert vm.cmd(hmp, **{"command-line": "announce_self nic0 id1"}) == ""
        vm.qtest.cmd(f"clock_step {2000 * ms}")
        assert len(rarps(peer, want=9)) == 9   # QEMU's default: five more
        out = vm.cmd(hmp, **{"command-line": "announce_self nope"})
        assert "interface 'nope' is not a NIC of this VM" in out, out

        def fails(text, **args):
            with pytest.raises(QMPError) as e:
                vm.cmd("announce-self", **args)
            assert text in e.value.desc, e.value.desc
        fails("Parameter 'step' expects a value between 1 and 10000",
              initial=10, max=25, rounds=4, step=0)
        fails("Parameter 'rounds' expects a value between 0 and 1000",
              initial=10, max=25, rounds=-1, step=1)
        fails("interface 'nic9' is not a NIC of this VM",
              initial=10, max=25, rounds=4, step=1, interfaces=["nic0", "nic9"])
        fails("Parameter 'max' is missing", initial=10, rounds=4, step=1)
        vm.qtest.cmd(f"clock_step {2000 * ms}")
        time.sleep(0.2)
        assert len(rarps(peer)) == 9           # the refused ones started nothing
    finally:
        peer.close()


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists(IMAGE), reason=f"{IMAGE} is not built")
@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                    reason="/dev/kvm is not usable here")
def test_announce_waits_while_paused(vms):
    """The rounds run on the virtual clock, as QEMU's virtio-net announce timer: a paused
    VM (-S) sends nothing and the main loop does not spin on the due round; cont sends
    it."""
    peer = FramePeer()
    try:
        vm = vms("a", "-S", "-netdev", f"socket,id=n0,connect=127.0.0.1:{peer.port}",
                 "-device", f"virtio-net-pci,netdev=n0,mac={MAC},id=nic0", guest=IMAGE)
        vm.cmd("announce-self", initial=10, max=25, rounds=2, step=10)
        before = cpu_seconds(vm.proc.pid)
        time.sleep(0.5)
        assert rarps(peer) == []
        # A loop spinning on the due timer burns a core (0.5 s here, less under load).
        assert cpu_seconds(vm.proc.pid) - before < 0.15
        vm.cmd("cont")
        assert len(rarps(peer, want=2)) == 2
    finally:
        peer.close()


def sections(blob):
    """The device-state blob's sections: name -> (offset of the payload, its length)."""
    assert blob[:8] == b"SENVMST\0"
    _fmt, count = struct.unpack_from("<II", blob, 8)
    pos, out = 16, {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<H", blob, pos)
        name = blob[pos + 2:pos + 2 + nl].decode()
        _version, length = struct.unpack_from("<II", blob, pos + 2 + nl)
        out[name] = (pos + 2 + nl + 8, length)
        pos += 2 + nl + 8 + length
    return out


def record(blob, start, length, name):
    """Offset of the data of top-level record name in the payload at start."""
    pos = start
    while pos < start + length:
        nl = blob[pos]
        (dl,) = struct.unpack_from("<I", blob, pos + 1 + nl)
        if blob[pos + 1:pos + 1 + nl] == name.encode():
            return pos + 1 + nl + 4
        pos += 1 + nl + 4 + dl
    raise AssertionError(f"no record {name}")


NET_ARGS = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]


@pytest.mark.parametrize("field,value,message", [
    ("curr_pairs", 2, "virtio-net-pci.0: the source uses 2 queue pairs, this device has 1"),
    ("uni", 65, "field 'uni' has 65 elements, at most 64"),
    ("announce_pending", 7, "announce_pending"),
])
def test_corrupt_virtio_net_section_refused(tmp_path, field, value, message):
    src = Vm(tmp_path, "src", NET_ARGS)
    try:
        src.connect()
        src.cmd("migrate", uri=f"file:{tmp_path}/good.mig")
        assert src.wait_migration()["status"] == "completed"
    finally:
        src.close()
    _, blob = decode_stream((tmp_path / "good.mig").read_bytes())
    # The stream must carry the device state: without it there is nothing to corrupt, and
    # a skip here would pass the very regression (device state gone) it should catch.
    assert blob is not None, "the migration stream has no device state section"
    blob = bytearray(blob[:-4])
    start, length = sections(blob)["virtio-net-pci.0"]
    blob[record(blob, start, length, field)] = value
    blob += struct.pack("<I", zlib.crc32(bytes(blob)))
    path = tmp_path / "bad.mig"
    path.write_bytes(finish(header() + device_record(bytes(blob))))
    # Deferred, so the load cannot end the process before the harness is connected.
    dst = Vm(tmp_path, "dst", NET_ARGS + ["-incoming", "defer"])
    try:
        dst.connect()
        dst.cmd("migrate-incoming", uri=f"file:{path}")
        assert dst.wait_exit() == 1
        err = dst.stderr_text()
        assert "load of migration failed: device state:" in err and message in err, err
    finally:
        dst.close()


# ---- multiqueue: every queue pair's state arrives ----

MQ_IMAGE = os.path.join(BUILD, "tests", "guest", "net-mq.elf")
MQ_TAP = "sentapmqm"
MQ_FLOWS = ("import socket\n"
            "for port in range(40000, 40032):\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "    s.bind(('10.196.0.1', port))\n"
            "    s.sendto(b'flow', ('10.196.0.2', 5555))\n")


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True)


@pytest.fixture
def mq_netns():
    """A network namespace holding a multi-queue TAP at 10.196.0.1 (the guest is .2)."""
    name = "sen-mqm-" + uuid.uuid4().hex[:8]
    r = sh("ip", "netns", "add", name)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: " + r.stderr.strip())
    try:
        for cmd in (("ip", "tuntap", "add", "dev", MQ_TAP, "mode", "tap", "multi_queue"),
                    ("ip", "addr", "add", "10.196.0.1/24", "dev", MQ_TAP),
                    ("ip", "link", "set", MQ_TAP, "up"),
                    ("ip", "neigh", "replace", "10.196.0.2", "lladdr", "52:54:00:12:34:56",
                     "dev", MQ_TAP, "nud", "permanent")):
            r = sh("ip", "netns", "exec", name, *cmd)
            if r.returncode != 0:
                pytest.skip(f"cannot set up a multi-queue TAP: {' '.join(cmd)}: "
                            f"{r.stderr.strip()}")
        yield name
    finally:
        sh("ip", "netns", "del", name)


@needs_kvm_guest(MQ_IMAGE, "this build migrates no device state")
def test_multiqueue_pairs_keep_working_after_migration(vms, tmp_path, mq_netns):
    """virtio-net with mq=on on a queues=2 TAP (tests/guest/net-mq.c, migrate=1): the
    guest uses both pairs, is migrated, and on the destination an ARP request on each
    pair is answered, the TAP's flows arrive on both rx queues, and the control queue
    still switches pairs: the state of every queue pair (and the pair count) arrived."""
    wrap = ("ip", "netns", "exec", mq_netns)
    nic = ["-netdev", f"tap,id=n0,ifname={MQ_TAP},script=no,downscript=no,queues=2",
           "-device", "virtio-net-pci,netdev=n0,mq=on,mac=52:54:00:12:34:56"]
    append = "host_ip=0x0ac40001 guest_ip=0x0ac40002 migrate=1"
    src = vms("src", *nic, guest=MQ_IMAGE, append=append, wrap=wrap)
    src.wait_line("net-mq: migrate", timeout=90)
    uri = f"unix:{tmp_path}/mig.sock"
    dst = vms("dst", *nic, "-incoming", uri, guest=MQ_IMAGE, append=append, wrap=wrap)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    # The source's TAP queues go with it, so the TAP steers to the destination's only.
    src.cmd("quit")
    src.wait_exit()
    filt = dst.cmd("query-rx-filter")
    assert len(filt) == 1 and filt[0]["main-mac"] == "52:54:00:12:34:56", filt
    dst.send_console(b"v")
    sent = 0
    end = time.monotonic() + 90
    while dst.proc.poll() is None and time.monotonic() < end:
        # The guest asks for flows twice (2 pairs, then 1 pair): each time it prints so.
        asks = sum(l.startswith("net-mq: send") for l in dst.lines)
        if asks > sent:
            r = sh(*wrap, sys.executable, "-c", MQ_FLOWS)
            assert r.returncode == 0, r.stderr
            sent += 1
        time.sleep(0.05)
    assert dst.wait_exit(timeout=10) == PASS_STATUS, (dst.lines, dst.stderr_text())
    out = "\n".join(dst.lines)
    assert "net-mq ok" in out
    assert not any(l.startswith("net-mq: migrate") for l in dst.lines), \
        "the destination's guest started over instead of continuing"
    for pair in (0, 1):
        assert f"ok: after the migration: ARP request on pair {pair} answered" in out, out
    assert "ok: 2 pairs: " in out and "ok: 1 pair: 32 flows on rx queue 0, 0 on rx queue 2" \
        in out, out
