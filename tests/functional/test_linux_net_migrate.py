"""A real virtio-net driver across a live migration: the small test kernel
(docs/test-kernel.md) with its demo shell configures eth0 as 10.0.2.15 on a -netdev
socket link to a peer this test serves, the VM migrates, and on the destination:

- Sen's announce RARPs arrive, and Linux, which negotiated VIRTIO_NET_F_GUEST_ANNOUNCE,
  sends gratuitous ARPs for 10.0.2.15 (it saw VIRTIO_NET_S_ANNOUNCE and acked it with
  VIRTIO_NET_CTRL_ANNOUNCE_ACK; unacked, the bit would stay set and later rounds would not
  ask again);
- arping 10.0.2.2 gets the peer's replies through the migrated rings.

Slow here (suite 'slow', `make check-slow`): each boot runs at emulated CPL0 (1-3 minutes
on this host); the device side is covered in seconds by test-virtio-net and
test_net_migrate.py.
"""
import os

import pytest

from kernel_util import kernel, run, wait_for  # noqa: F401 (kernel: the pytest fixture)
from migration_util import SEN, Vm, have_device_state
from test_net_migrate import ETH_P_RARP, FramePeer, ethertype

MAC = "52:54:00:12:34:78"
ETH_P_ARP = 0x0806
BOOT_TIMEOUT = 600

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not have_device_state(), reason="this build migrates no device state"),
]



def test_linux_guest_announces_and_keeps_its_network(kernel, tmp_path):
    peer = FramePeer()
    nic = ["-initrd", kernel["INITRAMFS_DEMO"],
           "-netdev", f"socket,id=n0,connect=127.0.0.1:{peer.port}",
           "-device", f"virtio-net-pci,netdev=n0,mac={MAC}"]
    vms = []
    try:
        src = Vm(tmp_path, "src", nic, guest=kernel["VMLINUX"], append=kernel["CMDLINE"],
                 mem="128M")
        vms.append(src)
        src.connect()
        wait_for(src, lambda l: "built-in shell" in l, "the demo shell", BOOT_TIMEOUT)
        run(src, "ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up", "eth0-up")

        uri = f"unix:{tmp_path}/mig.sock"
        dst = Vm(tmp_path, "dst", nic + ["-incoming", uri], guest=kernel["VMLINUX"],
                 append=kernel["CMDLINE"], mem="128M")
        vms.append(dst)
        dst.connect()
        src.cmd("migrate", uri=uri)
        assert src.wait_migration(timeout=300)["status"] == "completed"
        assert dst.wait_migration(timeout=300)["status"] == "completed"
        run(dst, "arping -c 2 -I eth0 10.0.2.2", "arping-done")
        assert any("Received 2 response(s)" in l for l in dst.lines), dst.lines[-10:]

        mac = bytes.fromhex(MAC.replace(":", ""))
        after = peer.on(1)
        assert sum(ethertype(f) == ETH_P_RARP and f[6:12] == mac for f in after) == 5
        # Gratuitous ARPs (from and for 10.0.2.15; the arping asks for 10.0.2.2), one per
        # announce request the driver saw: a second request needs the first one acked.
        garp = [f for f in after if ethertype(f) == ETH_P_ARP and
                f[28:32] == bytes([10, 0, 2, 15]) and f[38:42] == bytes([10, 0, 2, 15])]
        assert len(garp) >= 2, [f.hex() for f in after]
    finally:
        for vm in vms:
            vm.close()
        peer.close()
