"""A real virtio-net driver on a tap: the small test kernel (docs/test-kernel.md) with its
demo shell, in a network namespace the test makes, receives a TCP stream from the host
end of the TAP intact.  With the checksum/TSO offloads Linux negotiates, the host kernel
hands the TAP frames bigger than the MTU (the test checks the average frame is), which tap
reads straight into the driver's mergeable rx buffers.  The md5 of what the guest got
must be the md5 of what the host sent.  (A frame bigger than one buffer, which goes the
copying way, is covered by test-net's /net/tap-reads-into-lent-buffer.)

Slow here (suite 'slow', `make check-slow`): the boot runs at emulated CPL0 (1-3 minutes
on this host); the device side is covered in seconds by test-virtio-net (rx-direct) and
test_net_tap.py.
"""
import hashlib
import os
import subprocess
import time
import uuid

import pytest

from kernel_util import kernel, run, wait_for  # noqa: F401 (kernel: the pytest fixture)
from migration_util import SEN, Vm

BOOT_TIMEOUT = 600
TAP, HOST, GUEST = "sentcp0", "10.199.0.1", "10.199.0.2"
PORT = 5000
STREAM = 300000

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]


def sh(*args, check=True, **kw):
    return subprocess.run(args, capture_output=True, check=check, **kw)


@pytest.fixture
def netns():
    name = "sen-tcp-" + uuid.uuid4().hex[:8]
    if sh("ip", "netns", "add", name, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        for cmd in (("ip", "tuntap", "add", "dev", TAP, "mode", "tap"),
                    ("ip", "addr", "add", HOST + "/24", "dev", TAP),
                    ("ip", "link", "set", TAP, "up")):
            sh("ip", "netns", "exec", name, *cmd)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)



def tap_tx(ns):
    """(frames, bytes) the host has sent through the TAP to the guest."""
    out = sh("ip", "netns", "exec", ns, "cat", f"/sys/class/net/{TAP}/statistics/tx_packets",
             f"/sys/class/net/{TAP}/statistics/tx_bytes").stdout
    frames, nbytes = (int(v) for v in out.split())
    return frames, nbytes


def test_linux_receives_tcp_stream_through_tap(kernel, netns, tmp_path):
    data = bytes((i * 7 + i // 251) & 0xff for i in range(STREAM))
    src = tmp_path / "stream"
    src.write_bytes(data)
    nic = ["-initrd", kernel["INITRAMFS_DEMO"],
           "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
           "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:79"]
    vm = Vm(tmp_path, "vm", nic, guest=kernel["VMLINUX"], append=kernel["CMDLINE"],
            mem="128M", wrap=("ip", "netns", "exec", netns))
    try:
        vm.connect()
        wait_for(vm, lambda line: "built-in shell" in line, "the demo shell", BOOT_TIMEOUT)
        run(vm, f"ip addr add {GUEST}/24 dev eth0 && ip link set eth0 up", "eth0-up")
        run(vm, f"ping -c 1 -W 20 {HOST} >/dev/null && echo ping-ok", "ping-done")
        assert any(line.strip() == "ping-ok" for line in vm.lines), vm.lines[-10:]
        before = tap_tx(netns)
        vm.send_console(f"nc -l -p {PORT} | md5sum; echo nc-done\n".encode())
        time.sleep(5)  # the listener starts (each busybox command takes about a second)
        sent = None
        for _ in range(20):
            sent = sh("ip", "netns", "exec", netns, "busybox", "nc", "-w", "60", GUEST,
                      str(PORT), stdin=open(src, "rb"), check=False, timeout=300)
            if sent.returncode == 0:
                break
            time.sleep(2)  # refused: not listening yet
        assert sent.returncode == 0, sent.stderr
        wait_for(vm, lambda line: line.strip() == "nc-done", "nc-done", 300)
        want = hashlib.md5(data).hexdigest()
        assert any(line.startswith(want) for line in vm.lines), (want, vm.lines[-10:])
        frames, nbytes = (a - b for a, b in zip(tap_tx(netns), before))
        assert nbytes >= STREAM
        # More than 1514 bytes a frame on average: TSO frames bigger than the MTU went to
        # the guest, with their vnet headers, through the direct read.
        assert nbytes > 1514 * frames, (frames, nbytes)
    finally:
        vm.close()
