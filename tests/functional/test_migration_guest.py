"""Migrating a running guest on KVM: the guest kit's dirtier (tests/guest/dirtier.c)
rewrites 24 MiB at CPL3 with a running checksum while Sen migrates it.

- Without device state in this build, the destination cannot resume the vCPUs, but the
  source side is fully checked: the stream written while the guest ran, replayed, must
  equal the memory a second migration from the stopped source sends (any page the dirty
  log missed would differ).
- With device state (include/sen/vmstate.h present), the guest verifies every page on the
  destination and exits with success, over tcp and unix, and across two network
  namespaces joined by a veth pair.
"""
import os
import shutil
import subprocess
import time

import pytest

from migration_util import (BUILD, SEN, Vm, decode_stream, have_device_state,
                            migrate_and_ask_to_verify)
from migration_util import vms  # noqa: F401 (the pytest fixture)
from net_util import free_port

DIRTIER = os.path.join(BUILD, "tests", "guest", "dirtier.elf")
MiB = 1 << 20

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(DIRTIER), reason=f"{DIRTIER} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]

needs_device_state = pytest.mark.skipif(
    not have_device_state(),
    reason="device and vCPU state (include/sen/vmstate.h, [vmstate]) has not landed: "
           "the destination cannot resume the guest")


def dirtier(vms, name, *args, rate=4000):
    return vms(name, *args, guest=DIRTIER, append=f"mb=24 rate={rate} wait=1")


# The dirty ring's smallest size here fills up every few dozen milliseconds at the
# dirtier's rate, so the vCPU thread's reaping is exercised as well as the sync's.
DIRTY_RING = ("-accel", "kvm,dirty-ring-size=256")


@pytest.mark.parametrize("log", ["bitmap", "dirty-ring"])
def test_stream_of_running_guest_equals_stopped_memory(vms, tmp_path, log):
    src = dirtier(vms, "src", *(DIRTY_RING if log == "dirty-ring" else ()))
    src.wait_line("dirtier: running")
    # 32 MiB/s: the first pass takes most of a second while the guest rewrites ~4000
    # pages/s, so later passes must pick up what the KVM dirty log reports.
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 32 * MiB, "downtime-limit": 100})
    src.cmd("migrate", uri=f"file:{tmp_path}/live.mig")
    info = src.wait_migration()
    assert info["status"] == "completed", info
    assert src.status() == "postmigrate"
    assert info["ram"]["dirty-sync-count"] >= 2
    # Pages re-sent after the guest rewrote them: more data pages than the area has.
    assert info["ram"]["normal"] > 24 * MiB // 4096, info

    src.cmd("migrate", uri=f"file:{tmp_path}/stopped.mig")
    assert src.wait_migration()["status"] == "completed"
    live, _ = decode_stream((tmp_path / "live.mig").read_bytes())
    stopped, _ = decode_stream((tmp_path / "stopped.mig").read_bytes())
    assert live.keys() == stopped.keys()
    for gpa in live:
        if live[gpa] != stopped[gpa]:
            a, b = live[gpa], stopped[gpa]
            bad = [hex(gpa + p) for p in range(0, len(a), 4096)
                   if a[p:p + 4096] != b[p:p + 4096]]
            pytest.fail(f"{len(bad)} pages differ from the stopped VM's memory: {bad[:8]}")


def test_auto_converge_throttles_a_fast_dirtier(vms, tmp_path):
    """40000 pages/s (160 MB/s) cannot converge over 16 MiB/s with 50 ms downtime;
    auto-converge throttles the vCPU until it does."""
    src = dirtier(vms, "src", rate=40000)
    src.wait_line("dirtier: running")
    src.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "auto-converge", "state": True}])
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 16 * MiB, "downtime-limit": 50,
                                         "cpu-throttle-initial": 50,
                                         "cpu-throttle-increment": 20})
    src.cmd("migrate", uri=f"file:{tmp_path}/ac.mig")
    throttled = 0
    end = time.monotonic() + 60
    while time.monotonic() < end:
        info = src.cmd("query-migrate")
        throttled = max(throttled, info.get("cpu-throttle-percentage", 0))
        if info["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert info["status"] == "completed", info
    assert throttled >= 50


def migrate_and_verify(src, dst, uri):
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 64 * MiB})
    migrate_and_ask_to_verify(src, dst, uri)
    assert dst.wait_exit(timeout=60) == 33, dst.lines
    assert "ok: every page holds a whole generation (0 bad)" in dst.lines


@needs_device_state
@pytest.mark.parametrize("kind", ["tcp", "unix", "tcp-dirty-ring"])
def test_dirtier_verifies_on_destination(vms, tmp_path, kind):
    if kind.startswith("tcp"):
        uri = f"tcp:127.0.0.1:{free_port()}"
    else:
        uri = f"unix:{tmp_path}/m.sock"
    ring = DIRTY_RING if kind.endswith("dirty-ring") else ()
    src = dirtier(vms, "src", *ring)
    src.wait_line("dirtier: running")
    dst = dirtier(vms, "dst", *ring, "-incoming", uri)
    migrate_and_verify(src, dst, uri)


@needs_device_state
def test_q35_split_irqchip_migrates_and_must_match(vms, tmp_path):
    """-M q35,kernel-irqchip=split: KVM holds only the LAPICs and the IOAPIC is Sen's
    device; the guest still verifies on the destination.  A destination without split
    refuses the stream, naming the mismatch."""
    machine = ("-M", "q35,kernel-irqchip=split")
    src = dirtier(vms, "src", *machine)
    src.wait_line("dirtier: running")
    uri = f"unix:{tmp_path}/m.sock"
    dst = dirtier(vms, "dst", *machine, "-incoming", uri)
    migrate_and_verify(src, dst, uri)

    src2 = dirtier(vms, "src2", *machine)
    src2.wait_line("dirtier: running")
    bad = dirtier(vms, "bad", "-M", "q35", "-incoming", f"unix:{tmp_path}/bad.sock")
    src2.cmd("migrate", uri=f"unix:{tmp_path}/bad.sock")
    src2.wait_migration()
    assert bad.wait_exit(timeout=30) != 0
    err = bad.stderr_text()
    assert "kernel-irqchip=split" in err or "ioapic" in err, err


def netns(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair: 10.77.0.1 and 10.77.0.2."""
    if not shutil.which("ip") or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 (ip netns) for two network namespaces")
    tag = f"senmig{os.getpid()}"
    a, b = f"{tag}a", f"{tag}b"
    steps = [["netns", "add", a], ["netns", "add", b],
             ["link", "add", f"{tag}0", "type", "veth", "peer", "name", f"{tag}1"],
             ["link", "set", f"{tag}0", "netns", a], ["link", "set", f"{tag}1", "netns", b],
             ["-n", a, "addr", "add", "10.77.0.1/24", "dev", f"{tag}0"],
             ["-n", b, "addr", "add", "10.77.0.2/24", "dev", f"{tag}1"],
             ["-n", a, "link", "set", f"{tag}0", "up"], ["-n", b, "link", "set", f"{tag}1", "up"],
             ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"]]
    try:
        for s in steps:
            r = netns(*s)
            if r.returncode:
                pytest.skip(f"ip {' '.join(s)} failed here: {r.stderr.strip()}")
        yield a, b
    finally:
        netns("netns", "del", a)
        netns("netns", "del", b)


@needs_device_state
def test_dirtier_between_network_namespaces(tmp_path, two_hosts):
    a, b = two_hosts
    made = []
    try:
        src = Vm(tmp_path, "src", [], guest=DIRTIER, append="mb=24 rate=4000 wait=1",
                 wrap=["ip", "netns", "exec", a])
        made.append(src)
        dst = Vm(tmp_path, "dst", ["-incoming", "tcp:10.77.0.2:4446"], guest=DIRTIER,
                 append="mb=24 rate=4000 wait=1", wrap=["ip", "netns", "exec", b])
        made.append(dst)
        src.connect()
        dst.connect()
        src.wait_line("dirtier: running")
        migrate_and_verify(src, dst, "tcp:10.77.0.2:4446")
    finally:
        for vm in made:
            vm.close()
