"""sen-img commands on a qcow2 image whose L2 entry points inside a cluster (a corrupt
entry QEMU refuses wherever it looks the entry up: reads and block status alike), side by
side with qemu-img 7.2: each command fails the same way, with qemu-img's corruption report,
message and exit status.  map and measure used to succeed on it (map showing the bad
offset as data), compare failed with another status, dd and convert with other words
(convert read on past a failed block status)."""
import shutil
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()


def unaligned_entry(path):
    """A 64 MiB image whose first data cluster's L2 entry is moved 512 bytes into it."""
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x11 0 64k", path)
    with open(path, "r+b") as f:
        f.seek(40)
        l1 = struct.unpack(">Q", f.read(8))[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2)
        entry = struct.unpack(">Q", f.read(8))[0]
        f.seek(l2)
        f.write(struct.pack(">Q", entry | 0x200))


@pytest.mark.parametrize("args", [
    ["map", "{img}"],
    ["map", "--output=json", "{img}"],
    ["measure", "-O", "qcow2", "{img}"],
    ["compare", "{img}", "{img}"],
    ["dd", "if={img}", "of={out}", "-O", "raw"],
    ["convert", "-O", "raw", "{img}", "{out}"],
    ["convert", "-c", "-O", "qcow2", "{img}", "{out}"],
], ids=["map", "map-json", "measure", "compare", "dd", "convert", "convert-c"])
def test_corrupt_entry_fails_as_qemu_img(tmp_path, args):
    orig = tmp_path / "orig.qcow2"
    unaligned_entry(orig)
    got = {}
    for who, tool in (("qemu", QEMU_IMG), ("sen", SEN_IMG)):
        img = tmp_path / f"{who}.qcow2"
        shutil.copy(orig, img)
        argv = [a.format(img=img, out=tmp_path / f"{who}.raw") for a in args]
        p = run(tool, *argv, check=False)
        got[who] = (p.returncode, p.stdout.replace(str(img), "IMG"),
                    p.stderr.replace(str(img), "IMG").replace("qemu-img:", "sen-img:"))
    assert got["qemu"][0] != 0
    assert "Cluster allocation offset 0x50200 unaligned" in got["qemu"][2]
    assert got["sen"] == got["qemu"]
