"""Block node names against QEMU 7.2: a node-name names one node whatever named it
(-blockdev, -drive node-name=, file.node-name=), drive ids share that name space, and
query-named-block-nodes / `info block -n` list every node, -blockdev nodes no device uses
included, in QEMU's order (newest first).  Skips without /dev/kvm (sen) or QEMU 7.2."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from vs_qemu import NEEDS_SEN_AND_QEMU, QEMU, QEMU_IMG, SEN, start_with_qmp

pytestmark = NEEDS_SEN_AND_QEMU

VMMS = (("sen", [SEN, "-M", "pc", "-m", "32M"]), ("qemu", [QEMU, "-M", "none"]))
COMMON = ["-display", "none", "-nodefaults", "-S"]


@pytest.fixture
def d():
    # unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="bnn", dir="/tmp")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", os.path.join(path, "b.qcow2"),
                    "1M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b",
                    os.path.join(path, "b.qcow2"), "-F", "qcow2",
                    os.path.join(path, "t.qcow2")], check=True)
    with open(os.path.join(path, "a.raw"), "wb") as f:
        f.truncate(1 << 20)
    yield path
    shutil.rmtree(path, ignore_errors=True)


DUPLICATES = [
    (["-blockdev", "driver=file,filename={d}/a.raw,node-name=x",
      "-blockdev", "driver=file,filename={d}/a.raw,node-name=x"],
     "Duplicate nodes with node-name='x'"),
    (["-blockdev", "driver=file,filename={d}/a.raw,node-name=x",
      "-drive", "file={d}/a.raw,format=raw,node-name=x,if=none"],
     "Duplicate nodes with node-name='x'"),
    (["-blockdev", "driver=raw,node-name=x,file.driver=file,file.filename={d}/a.raw,"
      "file.node-name=x"], "Duplicate nodes with node-name='x'"),
    (["-drive", "file={d}/a.raw,format=raw,id=y,if=none,node-name=x,file.node-name=x"],
     "Duplicate nodes with node-name='x'"),
    (["-blockdev", "driver=file,filename={d}/a.raw,node-name=x",
      "-drive", "file={d}/a.raw,format=raw,id=x,if=none"],
     "Device name 'x' conflicts with an existing node name"),
    (["-drive", "file={d}/a.raw,format=raw,id=y,if=none,node-name=y"],
     "Device name 'y' conflicts with an existing node name"),
]


@pytest.mark.parametrize("argv,why", DUPLICATES, ids=[w + str(i) for i, (_, w) in
                                                      enumerate(DUPLICATES)])
def test_duplicate_node_names_refused_like_qemu(d, argv, why):
    for name, base in VMMS:
        p = subprocess.run(base + COMMON + [a.replace("{d}", d) for a in argv],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 1, (name, p.returncode, p.stderr)
        assert why in p.stderr, (name, p.stderr)


HMP = ("info block -n", "info block -n f0", "info block -n q0", "info block -n -v f0",
       "info block -n nosuch", "info block")


def query_both(d):
    """An unused -blockdev qcow2 over a -blockdev file node (its backing chain opened by
    the qcow2 node) and one -drive, in both VMMs."""
    argv = ["-blockdev", f"driver=file,filename={d}/t.qcow2,node-name=f0",
            "-blockdev", "driver=qcow2,file=f0,node-name=q0",
            "-drive", f"file={d}/a.raw,format=raw,if=none,id=d0"]
    out = {}
    for name, base in VMMS:
        proc, c = start_with_qmp(d, name, base + argv + COMMON)
        try:
            out[name] = (c.cmd("query-named-block-nodes"),
                         c.cmd("query-named-block-nodes", flat=True),
                         [c.cmd("human-monitor-command", command_line=line) for line in HMP])
        finally:
            proc.kill()
            proc.communicate()
    return out["sen"], out["qemu"]


def shape(nodes):
    """What must agree, in list order: generated names differ by design (#blockNNN)."""
    return [(n["node-name"] if not n["node-name"].startswith("#") else "#",
             n["drv"], n["file"], n["ro"], n["backing_file_depth"],
             n.get("backing_file"), "backing-image" in n["image"], n["image"]["format"],
             n["image"]["virtual-size"]) for n in nodes]


def generic_names(text):
    return re.sub(r"#block\d+", "#block", text).replace(
        "    Removable device: not locked, tray closed\r\n", "")


def test_named_nodes_list_unused_blockdevs_like_qemu(d):
    (snodes, sflat, shmp), (qnodes, qflat, qhmp) = query_both(d)
    names = [n["node-name"] for n in snodes]
    assert "q0" in names and "f0" in names, names
    assert shape(snodes) == shape(qnodes)
    assert shape(sflat) == shape(qflat)
    assert sorted(snodes[0]) == sorted(qnodes[0])  # the same members
    for s, q, line in zip(shmp, qhmp, HMP):
        assert generic_names(s) == generic_names(q), line
    assert shmp[0].count("\r\n\r\n") == len(snodes) - 1
    assert "q0: " in shmp[2] and "Backing file:     " in shmp[2]
    assert "Images:\r\nimage: " in shmp[3]
    assert shmp[4] == ""
