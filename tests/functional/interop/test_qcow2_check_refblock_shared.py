"""check of a refcount block that something else uses too (a corrupt L1 or L2 entry points
at it).  qemu-img reports "ERROR refcount block N refcount=K" and -r all rebuilds the
refcount structure elsewhere (repairing the block's counts in place would change them under
whatever else reads it); sen-img did not notice.  Output and exit code must match qemu-img's
for check and -r all, and after -r all the data cluster case checks clean."""
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, check_both, needs_tools, run

pytestmark = needs_tools()


def be64(f, off):
    f.seek(off)
    return struct.unpack(">Q", f.read(8))[0]


def damaged(tmp_path, what):
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "16M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    with open(path, "r+b") as f:
        refblock = be64(f, be64(f, 48))
        l1 = be64(f, 40)
        if what == "l1":
            target = l1
        else:
            target = (be64(f, l1) & 0x00fffffffffffe00) + 8  # the L2 entry of guest 64k
        f.seek(target)
        f.write(struct.pack(">Q", (1 << 63) | refblock))
    return path


@pytest.mark.parametrize("what", ["l1", "l2"])
@pytest.mark.parametrize("args", [[], ["-r", "all"]], ids=["report", "all"])
def test_shared_refcount_block_like_qemu(tmp_path, what, args):
    path = damaged(tmp_path, what)
    out = check_both(tmp_path, path, args)
    assert "ERROR refcount block 0 refcount=2" in out["sen"][2], out["sen"]
    assert out["sen"] == out["qemu"]
    if what == "l2" and args:
        assert out["sen"][0] == 0
        run(QEMU_IMG, "check", tmp_path / "sen.qcow2")
        run(QEMU_IMG, "compare", tmp_path / "sen.qcow2", tmp_path / "qemu.qcow2")
