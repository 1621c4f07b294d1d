"""-netdev tap and bridge: a Sen VM inside a network namespace the test makes reaches a host-side
address on its TAP (the guest ARPs it; the namespace's kernel answers), and nothing of it
is visible outside that namespace.  Needs root and /dev/net/tun (skipped otherwise)."""
import os
import subprocess
import uuid

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
IMAGE = os.path.join(BUILD, "tests", "guest", "net-arp.elf")

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(IMAGE), reason="guest kit not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    name = "sen-net-" + uuid.uuid4().hex[:8]
    r = sh("ip", "netns", "add", name, check=False)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: " + r.stderr.strip())
    yield name
    sh("ip", "netns", "del", name, check=False)


def test_tap_reaches_host_address(netns):
    tap = "sentap0"
    # The namespace makes the TAP itself (persistent, owned by nobody in particular), so
    # it exists with its address before the guest starts; Sen attaches to it by name.
    sh("ip", "netns", "exec", netns, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
    sh("ip", "netns", "exec", netns, "ip", "addr", "add", "10.199.0.1/24", "dev", tap)
    sh("ip", "netns", "exec", netns, "ip", "link", "set", tap, "up")
    p = subprocess.run(
        ["ip", "netns", "exec", netns, SEN, "-M", "pc", "-m", "64M", "-kernel", IMAGE,
         "-append", "host_ip=0x0ac70001 guest_ip=0x0ac70002", "-device", "isa-debug-exit",
         "-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot",
         "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
         "-device", "virtio-net-pci,netdev=n0"],
        capture_output=True, text=True, timeout=90)
    out = p.stdout + p.stderr
    assert p.returncode == 33 and "net-arp ok" in out, out
    assert "ok: ARP reply from the host address" in out
    # Nothing leaked: the TAP and its address exist only inside the namespace.
    assert tap not in sh("ip", "link", "show").stdout
    assert "10.199.0.1" not in sh("ip", "addr", "show").stdout


def test_tap_errors(netns):
    p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none", "-nodefaults",
                        "-netdev", "tap,id=n0,vhost=on"], capture_output=True, text=True)
    assert p.returncode == 1 and "vhost=on is not supported" in p.stderr
    p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none", "-nodefaults",
                        "-netdev", "tap,id=n0,fd=987"], capture_output=True, text=True)
    assert p.returncode == 1 and "fd=987: not an open file descriptor" in p.stderr
    # Without CAP_NET_ADMIN (as nobody) the TAP cannot be made: a clear error, no crash.
    p = subprocess.run(["ip", "netns", "exec", netns, "setpriv", "--reuid=65534",
                        "--regid=65534", "--clear-groups", "--inh-caps=-all", SEN,
                        "-display", "none", "-nodefaults", "-accel", "qtest",
                        "-netdev", "tap,id=n0,ifname=sentap9,script=no"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    # Which step fails depends on /dev/net/tun's mode: opening it or creating the TAP.
    assert p.stderr.startswith("sen: -netdev tap,id=n0,ifname=sentap9,script=no: could not ")
    assert ("open /dev/net/tun: Permission denied" in p.stderr or
            "configure /dev/net/tun (sentap9): Operation not permitted" in p.stderr), p.stderr


PEER = os.path.join(BUILD, "tests", "guest", "net-peer.elf")


def sen_in(netns, image, append, netdev, mac, env):
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, SEN, "-M", "pc", "-m", "64M", "-kernel", image,
         "-append", append, "-device", "isa-debug-exit", "-display", "none", "-nodefaults",
         "-serial", "stdio", "-no-reboot", "-netdev", netdev,
         "-device", f"virtio-net-pci,netdev=n0,mac={mac}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_bridge_two_vms_and_host(netns, tmp_path):
    br = "br-sen"
    sh("ip", "netns", "exec", netns, "ip", "link", "add", br, "type", "bridge")
    sh("ip", "netns", "exec", netns, "ip", "addr", "add", "10.198.0.1/24", "dev", br)
    sh("ip", "netns", "exec", netns, "ip", "link", "set", br, "up")
    acl = tmp_path / "bridge.conf"
    acl.write_text(f"allow {br}\n")
    env = dict(os.environ, SEN_BRIDGE_CONF=str(acl))
    netdev = f"bridge,id=n0,br={br}"
    vms = [sen_in(netns, PEER, "token=1", netdev, "52:54:00:00:01:0a", env),
           sen_in(netns, PEER, "token=2", netdev, "52:54:00:00:01:0b", env),
           sen_in(netns, IMAGE, "host_ip=0x0ac60001 guest_ip=0x0ac60002", netdev,
                  "52:54:00:00:01:0c", env)]
    outs = []
    for p in vms:
        try:
            out, _ = p.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outs.append((p.returncode, out))
    for rc, out in outs:
        assert rc == 33, out
    assert "heard the peer 52:54:00:00:01:0b" in outs[0][1]
    assert "heard the peer 52:54:00:00:01:0a" in outs[1][1]
    assert "ok: ARP reply from the host address" in outs[2][1]
    assert br not in sh("ip", "link", "show").stdout
    assert "10.198.0.1" not in sh("ip", "addr", "show").stdout

    # A missing bridge, and a bridge the ACL does not allow.
    p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none", "-nodefaults",
                        "-netdev", "bridge,id=n0,br=nosuchbr"], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 1 and "bridge 'nosuchbr' does not exist" in p.stderr
    acl.write_text(f"allow all\ndeny {br}\n")
    p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none", "-nodefaults",
                        "-netdev", netdev], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and f"access denied by {acl}" in p.stderr
