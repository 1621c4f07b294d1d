"""Networking from the outside: HMP info network / hostfwd_add / hostfwd_remove on a
running sen, and bad -netdev/-nic input (exit 1, one message naming the option)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from qmp import QMPError  # noqa: E402
from test_qmp import Sen  # noqa: E402  (the spinning-guest launcher)
from net_util import free_port  # noqa: E402

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="net", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def hmp(c, line):
    return c.cmd("human-monitor-command", command_line=line)


def test_info_network_and_hostfwd(tmpdir_short):
    v = Sen(tmpdir_short, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
            "-nic", "user,mac=52:54:00:aa:bb:cc")
    try:
        c = v.client()
        info = hmp(c, "info network")
        assert "virtio-net-pci.0: index=0,type=nic,model=virtio-net-pci," \
               "macaddr=52:54:00:12:34:56" in info
        assert " \\ n0: index=0,type=user,net=10.0.2.0,restrict=off" in info
        assert "macaddr=52:54:00:aa:bb:cc" in info

        port = free_port(socket.SOCK_DGRAM)
        assert hmp(c, f"hostfwd_add n0 udp:127.0.0.1:{port}-:7") == ""
        # The port is taken now: a second rule for it cannot be set up.
        out = hmp(c, f"hostfwd_add n0 udp:127.0.0.1:{port}-:7")
        assert out.startswith("Error: Invalid host forwarding rule") and "Could not set up" in out
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
        probe.close()
        assert hmp(c, f"hostfwd_remove n0 udp:127.0.0.1:{port}") == ""
        assert "not found" in hmp(c, f"hostfwd_remove n0 udp:127.0.0.1:{port}")
        assert "Bad protocol name" in hmp(c, "hostfwd_add n0 sctp::1-:2")
        assert "not a user-mode network device" in hmp(c, "hostfwd_add nope tcp::1-:2")
    finally:
        v.kill()


def test_hmp_netdev_add_del(tmpdir_short):
    """HMP netdev_add/netdev_del (QEMU's), errors naming the command; and a hostfwd rule is
    the rule word itself even when the netdev id starts with the same letters."""
    v = Sen(tmpdir_short, "-netdev", "user,id=n0")
    try:
        c = v.client()
        assert hmp(c, "netdev_add user,id=tcp9,restrict=on") == ""
        assert "tcp9: index=0,type=user,net=10.0.2.0,restrict=on" in hmp(c, "info network")
        out = hmp(c, "hostfwd_remove tcp9 tcp")
        assert "invalid format: tcp (want" in out, out
        assert "Duplicate ID 'tcp9' for netdev" in hmp(c, "netdev_add user,id=tcp9")
        out = hmp(c, "netdev_add user,id=n5,=x")
        assert out.startswith("Error: netdev_add user,id=n5,=x: empty parameter name"), out
        out = hmp(c, "netdev_add vde,id=n6")
        assert "netdev_add vde,id=n6: Parameter 'type' does not accept value 'vde'" in out, out
        assert hmp(c, "netdev_del tcp9") == ""
        assert "tcp9" not in hmp(c, "info network")
        assert "Device 'tcp9' not found" in hmp(c, "netdev_del tcp9")
        assert "n5" not in hmp(c, "info network") and "n6" not in hmp(c, "info network")
    finally:
        v.kill()


BAD = [
    (["-netdev", "vde,id=n0"], "-netdev vde,id=n0: Parameter 'type' does not accept value 'vde'"),
    (["-netdev", "user,id=n0", "-netdev", "user,id=n0"], "Duplicate ID 'n0' for netdev"),
    (["-netdev", "user"], "-netdev user: Parameter 'id' is missing"),
    (["-netdev", "user,id=n0,hostfwd=tcp::22"],
     "Invalid host forwarding rule 'tcp::22' (Bad host port)"),
    (["-netdev", "user,id=n0,hostfwd=tcp::99999-:22"],
     "Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)"),
    (["-netdev", "user,id=n0,hostfwd=icmp::1-:2"], "(Bad protocol name)"),
    (["-netdev", "user,id=n0,bogus=1"], "-netdev user,id=n0,bogus=1: invalid parameter 'bogus'"),
    (["-netdev", "user,id=n0,net=10.0.2.0/24,dhcpstart=10.9.9.9"], "dhcpstart= is not in"),
    (["-device", "virtio-net-pci,netdev=nope"], "netdev=nope: no -netdev with that id"),
    (["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
      "-device", "virtio-net-pci,netdev=n0"], "netdev=n0: already in use"),
    (["-nic", "user,model=e1000"], "unsupported NIC model 'e1000'"),
    (["-netdev", "socket,id=n0"], "exactly one of listen=, connect=, mcast= or udp="),
    (["-netdev", "socket,id=n0,udp=127.0.0.1:5000"],
     "-netdev socket,id=n0,udp=127.0.0.1:5000: udp= needs localaddr=host:port"),
    (["-netdev", "socket,id=n0,udp=127.0.0.1:5000,localaddr=127.0.0.1:x"],
     "localaddr=127.0.0.1:x: bad port"),
    (["-netdev", "socket,id=n0,connect=127.0.0.1:5000,localaddr=127.0.0.1"],
     "localaddr= goes only with mcast= or udp="),
    (["-netdev", "socket,id=n0,fd=3"], "-netdev socket,id=n0,fd=3: fd= is not supported"),
    (["-netdev", "tap,id=n0,fds=3:4"],
     "-netdev tap,id=n0,fds=3:4: fds= is not supported: Sen opens the queues itself"),
    (["-netdev", "tap,id=n0,vhostfds=5:6"], "vhostfds= is not supported: there is no vhost-net"),
    (["-netdev", "tap,id=n0,vhostforce=on"], "vhostforce= is not supported"),
    (["-netdev", "bridge,id=n0,helper=/usr/lib/qemu/qemu-bridge-helper"],
     "helper= is not supported: Sen creates and attaches the TAP itself"),
    (["-netdev", "user,id=n0,smb=/tmp"], "-netdev user,id=n0,smb=/tmp: smb= is not supported"),
    (["-netdev", "user,id=n0,guestfwd=tcp:10.0.2.100:1234-cmd:cat"],
     "guestfwd= is not supported"),
    (["-nic", "user,tftp-server-name=tftp.example"], "tftp-server-name= is not supported"),
    (["-netdev", "socket,id=n0,connect=127.0.0.1:1"], "cannot connect to 127.0.0.1:1"),
    (["-netdev", "socket,id=n0,mcast=10.0.0.1:5000"], "not a multicast address"),
    (["-device", "virtio-net-pci,mac=01:00:00:00:00:01"], "multicast address"),
]


@pytest.mark.parametrize("args,text", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(args, text, tmp_path):
    p = subprocess.run([SEN, "-M", "pc", "-m", "32M", "-display", "none", "-nodefaults",
                        *args], capture_output=True, cwd=tmp_path, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, err
    assert text in err
    assert err.count("\n") == 1, err


def test_qmp_link_rx_filter_netdev_del(tmpdir_short):
    v = Sen(tmpdir_short, "-netdev", "user,id=n0", "-device",
            "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:00:00:42")
    try:
        c = v.client()
        f = c.cmd("query-rx-filter")
        assert len(f) == 1 and f[0]["name"] == "nic0"
        assert f[0]["main-mac"] == "52:54:00:00:00:42"
        assert f[0]["promiscuous"] is True  # reset state, until a driver says otherwise
        assert f[0]["multicast"] == "normal" and f[0]["broadcast-allowed"] is True
        # cmd() has a parameter called name: these go through execute().
        assert c.execute("query-rx-filter", {"name": "nic0"})["return"] == f
        r = c.execute("query-rx-filter", {"name": "nope"})
        assert r["error"]["class"] == "DeviceNotFound"

        assert c.execute("set_link", {"name": "nic0", "up": False}) == {"return": {}}
        assert "nic0: index=0,type=nic" in hmp(c, "info network")
        assert "(link down)" in hmp(c, "info network")
        assert c.execute("set_link", {"name": "nic0", "up": True}) == {"return": {}}
        assert "(link down)" not in hmp(c, "info network")
        r = c.execute("set_link", {"name": "nope", "up": True})
        assert r["error"]["class"] == "DeviceNotFound"

        c.cmd("netdev_del", id="n0")
        info = hmp(c, "info network")
        assert "n0" not in info and "nic0" in info
        with pytest.raises(QMPError) as e:
            c.cmd("netdev_del", id="n0")
        assert e.value.cls == "DeviceNotFound"
    finally:
        v.kill()


def test_qmp_netdev_add(tmpdir_short):
    v = Sen(tmpdir_short, "-netdev", "user,id=n0")
    try:
        c = v.client()
        port = free_port(socket.SOCK_DGRAM)
        c.cmd("netdev_add", type="user", id="n1", restrict=True,
              hostfwd=[{"str": f"udp:127.0.0.1:{port}-:7"}],
              dnssearch=[{"str": "example.org"}, {"str": "sen.test"}])
        info = hmp(c, "info network")
        assert "n1: index=0,type=user,net=10.0.2.0,restrict=on" in info, info
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError):  # the hostfwd rule holds the port
            probe.bind(("127.0.0.1", port))
        probe.close()
        c.cmd("netdev_add", type="hubport", id="h1", hubid=3)
        assert "h1: index=0,type=hubport,hubid=3" in hmp(c, "info network")

        def fails(args, text):
            with pytest.raises(QMPError) as e:
                c.cmd("netdev_add", **args)
            assert e.value.cls == "GenericError", e.value.desc
            assert text in e.value.desc, e.value.desc

        before = hmp(c, "info network")
        fails({"type": "user", "id": "n1"}, "Duplicate ID 'n1' for netdev")
        fails({"type": "vde", "id": "n2"}, "Parameter 'type' does not accept value 'vde'")
        fails({"id": "n2"}, "Parameter 'type' is missing")
        fails({"type": "user"}, "Parameter 'id' is missing")
        fails({"type": "user", "id": "n2", "bogus": 1}, "Parameter 'bogus' is unexpected")
        fails({"type": "user", "id": "n2", "restrict": "yes"},
              "Invalid parameter type for 'restrict', expected: boolean")
        fails({"type": "user", "id": "2bad"}, "Parameter 'id' expects an identifier")
        fails({"type": "user", "id": "n2", "hostfwd": [{"str": "tcp::99999-:22"}]},
              "Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)")
        fails({"type": "tap", "id": "n2", "vhost": True}, "vhost=on is not supported")
        fails({"type": "bridge", "id": "n2", "br": "nosuchbr0"},
              "netdev_add bridge,id=n2: bridge 'nosuchbr0' does not exist")
        fails({"type": "socket", "id": "n2"},
              "exactly one of listen=, connect=, mcast= or udp=")
        fails({"type": "socket", "id": "n2", "fd": "3"}, "Parameter 'fd' is unexpected")
        fails({"type": "hubport", "id": "n2", "hubid": 1, "netdev": "nope"},
              "netdev=nope: no such netdev")
        # A refused netdev_add leaves nothing behind.
        assert hmp(c, "info network") == before

        c.cmd("netdev_del", id="n1")
        assert "n1:" not in hmp(c, "info network")
        c.cmd("netdev_add", type="socket", id="n1", listen=f"127.0.0.1:{free_port()}")
        assert "n1: index=0,type=socket" in hmp(c, "info network")

        schema = {i["name"]: i for i in c.cmd("query-qmp-schema")}
        cmd = schema["netdev_add"]
        assert cmd["arg-type"] == "Netdev"
        assert schema["Netdev"]["tag"] == "type"
        assert {"case": "user", "type": "NetdevUserOptions"} in schema["Netdev"]["variants"]
    finally:
        v.kill()
