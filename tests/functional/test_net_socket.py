"""Two Sen VMs on a -netdev socket private network (TCP listen/connect, UDP point to point
with udp=/localaddr=, and UDP multicast when the host allows it) exchange Ethernet frames:
each runs the guest-kit net-peer image, which passes only after hearing a frame from the
other VM's MAC."""
import os
import socket
import subprocess
import time

import pytest

from net_util import free_port

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
IMAGE = os.path.join(BUILD, "tests", "guest", "net-peer.elf")
PASS_STATUS = 33

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(IMAGE), reason="guest kit not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


def start(netdev, mac):
    return subprocess.Popen(
        [SEN, "-M", "pc", "-m", "64M", "-kernel", IMAGE, "-append", "token=0x5e4",
         "-device", "isa-debug-exit", "-display", "none", "-nodefaults", "-serial", "stdio",
         "-no-reboot", "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={mac}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out.decode(errors="replace") + err.decode(errors="replace")


def stop(*procs):
    """Kills whichever of the VMs (None for one never started) is still running."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.communicate()


def check_pair(a, b, mac_a, mac_b):
    ra, oa = finish(a)
    rb, ob = finish(b)
    assert ra == PASS_STATUS and "net-peer ok" in oa, oa
    assert rb == PASS_STATUS and "net-peer ok" in ob, ob
    assert f"heard the peer {mac_b}" in oa
    assert f"heard the peer {mac_a}" in ob


def test_listen_connect():
    port = free_port()
    a = start(f"socket,id=n0,listen=127.0.0.1:{port}", "52:54:00:00:00:0a")
    b = None
    try:
        # connect= needs the listener: retry until the first VM listens.
        for _ in range(100):
            b = start(f"socket,id=n0,connect=127.0.0.1:{port}", "52:54:00:00:00:0b")
            try:
                b.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                break
            if b.returncode == PASS_STATUS:
                break  # connected, exchanged and finished within the wait
            assert "cannot connect" in b.stderr.read().decode(), "second VM failed otherwise"
            b = None
        assert b is not None, "the listening VM never accepted"
        check_pair(a, b, "52:54:00:00:00:0a", "52:54:00:00:00:0b")
    finally:
        stop(a, b)


def test_udp():
    """udp=+localaddr=: each VM binds its own port and sends to the other's."""
    pa, pb = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    a = start(f"socket,id=n0,udp=127.0.0.1:{pb},localaddr=127.0.0.1:{pa}",
              "52:54:00:00:00:0e")
    b = start(f"socket,id=n0,udp=127.0.0.1:{pa},localaddr=127.0.0.1:{pb}",
              "52:54:00:00:00:0f")
    try:
        check_pair(a, b, "52:54:00:00:00:0e", "52:54:00:00:00:0f")
    finally:
        stop(a, b)


def test_mcast():
    port = free_port()
    net = f"socket,id=n0,mcast=230.0.0.1:{port}"
    a = start(net, "52:54:00:00:00:0c")
    time.sleep(0.2)
    if a.poll() is not None:
        rc, out = finish(a)
        if "cannot join" in out:
            pytest.skip("this host does not allow joining a multicast group: " + out.strip())
        pytest.fail(out)
    b = start(net, "52:54:00:00:00:0d")
    try:
        check_pair(a, b, "52:54:00:00:00:0c", "52:54:00:00:00:0d")
    finally:
        stop(a, b)
