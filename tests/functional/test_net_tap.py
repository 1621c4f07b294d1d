"""-netdev tap and bridge: a Sen VM inside a network namespace the test makes reaches a host-side
address on its TAP (the guest ARPs it; the namespace's kernel answers), and nothing of it
is visible outside that namespace.  Needs root and /dev/net/tun (skipped otherwise)."""
import os
import shutil
import subprocess
import sys
import threading
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


# -sandbox on: the tap's io_uring ring, made before the filter, still moves the frames
# (io_uring_enter is on the allow-list; a call off it would kill Sen with SIGSYS).
@pytest.mark.parametrize("sandbox", [[], ["-sandbox", "on"]], ids=["plain", "sandbox"])
def test_tap_reaches_host_address(netns, sandbox):
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
         "-device", "virtio-net-pci,netdev=n0"] + sandbox,
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


MQ = os.path.join(BUILD, "tests", "guest", "net-mq.elf")
QEMU = "qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"


def test_tap_multiqueue(netns):
    """queues=2 + mq=on: the guest sets its queue pairs through the control queue and the
    TAP steers only to the queues it uses (tests/guest/net-mq.c); QEMU runs the same
    guest as the check that the test, not Sen, is right."""
    tap = "sentapmq"
    sh("ip", "netns", "exec", netns, "ip", "tuntap", "add", "dev", tap, "mode", "tap",
       "multi_queue")
    sh("ip", "netns", "exec", netns, "ip", "addr", "add", "10.196.0.1/24", "dev", tap)
    sh("ip", "netns", "exec", netns, "ip", "link", "set", tap, "up")
    # The guest answers no ARP while it counts flows.
    sh("ip", "netns", "exec", netns, "ip", "neigh", "replace", "10.196.0.2", "lladdr",
       "52:54:00:12:34:56", "dev", tap, "nud", "permanent")
    append = "host_ip=0x0ac40001 guest_ip=0x0ac40002"
    netdev = f"tap,id=n0,ifname={tap},script=no,downscript=no,queues=2"
    nic = "virtio-net-pci,netdev=n0,mq=on,mac=52:54:00:12:34:56"
    vmms = [[SEN, "-M", "pc", "-nographic", "-netdev", netdev, "-device", nic]]
    if shutil.which(QEMU):
        vmms.append([QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc"] +
                    (["-bios", QBOOT] if os.path.exists(QBOOT) else []) +
                    ["-display", "none", "-netdev", netdev + ",vhost=off",
                     "-device", nic + ",disable-legacy=on"])
    # 32 flows (source ports) from inside the namespace, each time the guest asks.
    flows = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for port in range(40000, 40032):\n"
             "    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "    s2.bind(('10.196.0.1', port))\n"
             "    s2.sendto(b'flow', ('10.196.0.2', 5555))\n")
    for vmm in vmms:
        p = subprocess.Popen(
            ["ip", "netns", "exec", netns] + vmm + [
                "-m", "64M", "-kernel", MQ, "-append", append, "-device", "isa-debug-exit",
                "-nodefaults", "-serial", "stdio", "-no-reboot"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        killer = threading.Timer(90, p.kill)
        killer.start()
        out = []
        for line in p.stdout:
            out.append(line)
            if line.startswith("net-mq: send"):
                sh("ip", "netns", "exec", netns, sys.executable, "-c", flows)
        rc = p.wait()
        killer.cancel()
        out = "".join(out)
        assert rc == 33 and "net-mq ok" in out, (vmm[0], out)
        assert "ok: ARP request on pair 1 answered" in out
        assert "ok: 1 pair: 32 flows on rx queue 0, 0 on rx queue 2" in out
        assert "ok: ARP request 3 on pair 0 answered on rx queue 0" in out


def test_tap_multiqueue_errors(netns):
    sh("ip", "netns", "exec", netns, "ip", "tuntap", "add", "dev", "sentapsq", "mode", "tap")

    def fails(netdev, text):
        p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none",
                            "-nodefaults", "-accel", "qtest", "-netdev", netdev],
                           capture_output=True, text=True)
        assert p.returncode == 1 and text in p.stderr, p.stderr

    fails("tap,id=n0,queues=9", "-netdev tap,id=n0,queues=9: queues=9: want 1 to 8")
    fails("tap,id=n0,queues=0", "queues=0: want 1 to 8")
    fails("tap,id=n0,fd=0,queues=2", "fd= goes without ifname=, script= and queues=")
    # A TAP made without multi_queue cannot take a second queue.
    fails("tap,id=n0,ifname=sentapsq,script=no,queues=2",
          "could not configure /dev/net/tun (sentapsq): Invalid argument")
    # Without mq=on the NIC refuses a multiqueue netdev.
    sh("ip", "netns", "exec", netns, "ip", "tuntap", "add", "dev", "sentapm2", "mode", "tap",
       "multi_queue")
    p = subprocess.run(["ip", "netns", "exec", netns, SEN, "-display", "none", "-nodefaults",
                        "-accel", "qtest", "-netdev",
                        "tap,id=n0,ifname=sentapm2,script=no,downscript=no,queues=2",
                        "-device", "virtio-net-pci,netdev=n0"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "netdev=n0 has 2 queues: add mq=on" in p.stderr, p.stderr
