"""check of a refcount-table entry that points past the end of the file.  qemu-img reports
"ERROR refcount block N is outside image"; -r all grows the file over the block, finds the
clusters it should count without refcounts and rebuilds the structure.  sen-img only said
the reference exceeded the end of the file, and -r all left the image corrupt.  Both tools
run on copies of the same image: the same report, exit code, repairs and image end, then
a clean image with the same data."""
import json
import os
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, check_both, needs_tools, run

pytestmark = needs_tools()


def damaged(tmp_path, cluster_size):
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster_size}",
        path, "16M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(48)
        reftable = struct.unpack(">Q", f.read(8))[0]
        k = 0  # the first unused entry
        while True:
            f.seek(reftable + 8 * k)
            if struct.unpack(">Q", f.read(8))[0] == 0:
                break
            k += 1
        f.seek(reftable + 8 * k)
        f.write(struct.pack(">Q", ((size + cluster_size - 1) // cluster_size + 3) *
                            cluster_size))
    return path, k


@pytest.mark.parametrize("cluster_size", [512, 65536])
@pytest.mark.parametrize("args", [[], ["-r", "leaks"], ["--output=json"]],
                         ids=["report", "leaks", "json"])
def test_report_like_qemu(tmp_path, cluster_size, args):
    out = check_both(tmp_path, damaged(tmp_path, cluster_size)[0], args)
    assert out["sen"] == out["qemu"]
    assert out["sen"][0] == 2


@pytest.mark.parametrize("cluster_size", [512, 65536])
def test_repair_all_like_qemu(tmp_path, cluster_size):
    path, k = damaged(tmp_path, cluster_size)
    out = check_both(tmp_path, path, ["-r", "all"])
    assert f"Repairing refcount block {k} is outside image" in out["sen"][2]
    assert out["sen"][0] == out["qemu"][0] == 0, out
    assert out["sen"][2] == out["qemu"][2]
    # The new table goes into the first free run, as qemu-img puts it: the same image
    # end, and a file no larger.
    assert out["sen"][1] == out["qemu"][1]
    assert (tmp_path / "sen.qcow2").stat().st_size <= (tmp_path / "qemu.qcow2").stat().st_size
    res = json.loads(run(QEMU_IMG, "check", "--output=json", tmp_path / "sen.qcow2").stdout)
    assert not res.get("corruptions") and not res.get("leaks"), res
    run(QEMU_IMG, "compare", tmp_path / "sen.qcow2", tmp_path / "qemu.qcow2")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 1M 1M", tmp_path / "sen.qcow2")
    run(QEMU_IMG, "check", tmp_path / "sen.qcow2")
