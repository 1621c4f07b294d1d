"""blockdev-add / blockdev-del and the lifetime of a node name, against QEMU 7.2.

A node name belongs to its node until the node closes: blockdev-del refuses a node a
device uses ("Node x is in use"), one another node references ("Block device x is in
use"), one opened inside another node's options ("Node x is not owned by the monitor")
and an unknown name; after a successful del the name is free at once, for a node of
another driver too.  The same QMP sequence runs in both VMMs and every answer (return
or error class + text) must match.  Skips without /dev/kvm (sen) or QEMU 7.2."""
import os
import shutil
import subprocess
import tempfile

import pytest

from vs_qemu import COMMON, NEEDS_SEN_AND_QEMU, QEMU_IMG, VMMS, run_steps, start_with_qmp

pytestmark = NEEDS_SEN_AND_QEMU



@pytest.fixture
def d():
    # unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="bnl", dir="/tmp")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", os.path.join(path, "b.qcow2"),
                    "1M"], check=True)
    for name in ("a.raw", "c.raw"):
        with open(os.path.join(path, name), "wb") as f:
            f.truncate(1 << 20)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def answers(d, name, base, steps):
    proc, c = start_with_qmp(d, name, base + COMMON + [
        "-blockdev", f"driver=file,filename={d}/b.qcow2,node-name=bf",
        "-blockdev", "driver=qcow2,file=bf,node-name=b0",
        "-device", "virtio-blk-pci,drive=b0,id=vd",
        "-drive", f"file={d}/c.raw,format=raw,if=none,id=d0"])

    def fill(args):
        args = {k: (v.replace("{d}", d) if isinstance(v, str) else v) for k, v in args.items()}
        if isinstance(args.get("file"), dict):
            args["file"] = {k: v.replace("{d}", d) for k, v in args["file"].items()}
        return args

    def shape(cmd, args, ret):
        if cmd == "query-named-block-nodes":  # in QEMU's order, newest first
            return [n["node-name"] for n in ret if not n["node-name"].startswith("#")]
        return ret

    return run_steps(proc, c, [(cmd, fill(args)) for cmd, args in steps], shape)


def add_file(name, path="{d}/a.raw"):
    return ("blockdev-add", {"driver": "file", "filename": path, "node-name": name})


def delete(name):
    return ("blockdev-del", {"node-name": name})


NODES = ("query-named-block-nodes", {})

SCENARIOS = {
    "referenced-then-free": [
        add_file("f0"),
        ("blockdev-add", {"driver": "raw", "file": "f0", "node-name": "r0"}),
        delete("f0"),                 # r0 references it
        add_file("r0"),               # the name is taken
        delete("r0"),
        add_file("r0"),               # free at once, for another driver too
        delete("f0"),                 # nothing references it any more
        delete("f0"),                 # gone
        NODES,
    ],
    "device-and-drive": [
        delete("b0"),                 # the device uses it
        delete("bf"),                 # b0 references it
        delete("d0"),                 # a -drive id is no node name
        delete("nosuch"),
        add_file("b0"),
        add_file("d0"),               # drive ids and node names share one name space
        add_file("e0"),
        delete("e0"),
        NODES,
    ],
    "child-opened-in-place": [
        ("blockdev-add", {"driver": "raw", "node-name": "x1",
                          "file": {"driver": "file", "filename": "{d}/a.raw",
                                   "node-name": "x1f"}}),
        delete("x1f"),                # not owned by the monitor
        delete("x1"),
        add_file("x1f"),              # the child closed with its parent
        add_file("x1"),
        NODES,
    ],
    "bad-adds": [
        ("blockdev-add", {"driver": "file", "filename": "{d}/a.raw"}),
        ("blockdev-add", {"driver": "file", "filename": "{d}/nosuch", "node-name": "n1"}),
        ("blockdev-add", {"driver": "file", "filename": "{d}/a.raw", "node-name": "n1",
                          "foo": 1}),
        ("blockdev-del", {}),
        add_file("n1"),               # the failed adds left the name free
        NODES,
    ],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_node_lifetime_like_qemu(d, scenario):
    steps = SCENARIOS[scenario]
    got = {name: answers(d, name, base, steps) for name, base in VMMS}
    for i, (s, q) in enumerate(zip(got["sen"], got["qemu"])):
        assert s == q, (i, steps[i], s, q)
    assert any(kind == "ok" for kind, _ in got["sen"][:-1]), got["sen"]
