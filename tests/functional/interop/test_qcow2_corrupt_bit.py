"""The corrupt bit after check, against qemu-img 7.2: a repair (-r leaks, -r all) that
leaves nothing wrong clears it, so the image opens read/write again; a check without -r
leaves it, and so does a repair that cannot fix what it found (-r leaks of a refcount
error).  Sen never cleared it, so
an image marked corrupt stayed unusable read/write after `sen-img check -r all`."""
import json
import shutil
import struct
import subprocess

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()


def corrupt_flag(path):
    out = subprocess.run([QEMU_IMG, "info", "--output=json", "-U", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["format-specific"]["data"]["corrupt"]


def marked_sound(path):
    """A healthy image whose header says corrupt (as an overlap check leaves it)."""
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "4M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x5a 0 64k", path)
    with open(path, "r+b") as f:
        f.seek(72)
        bits = struct.unpack(">Q", f.read(8))[0]
        f.seek(72)
        f.write(struct.pack(">Q", bits | 2))


def marked_with_refcount_corruption(path):
    """Marked corrupt, and the data cluster's refcount 0 while the L2 table uses it: a
    corruption -r leaks does not repair and -r all does."""
    marked_sound(path)
    with open(path, "r+b") as f:
        f.seek(40)
        l1 = struct.unpack(">Q", f.read(8))[0]
        f.seek(48)
        reftable = struct.unpack(">Q", f.read(8))[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2)
        data = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(reftable)
        refblock = struct.unpack(">Q", f.read(8))[0]
        f.seek(refblock + 2 * (data >> 16))   # 16-bit refcounts, 64 KiB clusters
        assert struct.unpack(">H", f.read(2))[0] == 1
        f.seek(refblock + 2 * (data >> 16))
        f.write(b"\0\0")


@pytest.mark.parametrize("repair", [[], ["-r", "leaks"], ["-r", "all"]],
                         ids=["report", "leaks", "all"])
@pytest.mark.parametrize("craft", [marked_sound, marked_with_refcount_corruption])
def test_corrupt_bit_after_check_like_qemu_img(tmp_path, craft, repair):
    orig = tmp_path / "orig.qcow2"
    craft(orig)
    assert corrupt_flag(orig) is True
    got = {}
    for name, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        img = tmp_path / f"{name}.qcow2"
        shutil.copy(orig, img)
        p = subprocess.run([tool, "check", *repair, str(img)], capture_output=True, text=True)
        got[name] = (p.returncode, corrupt_flag(img))
    assert got["sen"] == got["qemu"]
