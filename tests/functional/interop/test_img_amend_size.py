"""amend -o refcount_bits=N: where the new refcount structures go.

qemu-img 7.2 allocates the new refcount table and blocks in clusters the old refcounts
call free (holes left by discards or by freed metadata, the free tail of the file) before
it grows the file.  sen-img did put them past the end of the file (and past any free tail),
so a changed width could grow the image by the whole new structure while qemu-img's did
not grow at all.  Here both tools amend copies of the same image: the result must check
clean with qemu-img, hold the same data, and sen-img's file must be no larger than
qemu-img's."""
import json
import shutil

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()


def make(path, cluster_size, bits, io):
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
        f"cluster_size={cluster_size},refcount_bits={bits}", path, "64M")
    for cmd in io:
        if cmd.startswith("snapshot "):
            run(QEMU_IMG, "snapshot", "-c", cmd.split()[1], path)
        else:
            run(QEMU_IO, "-f", "qcow2", "-c", cmd, path)


WRITES = ["write -P 7 0 8M", "write -P 3 32M 4M"]
DISCARDED_TAIL = ["write -P 7 0 8M", "discard 4M 4M"]
DISCARDED_MIDDLE = ["write -P 7 0 8M", "discard 1M 2M", "write -P 5 12M 1M"]
SNAPSHOT = ["write -P 7 0 4M", "write -c -P 6 8M 1M", "snapshot s1", "write -P 8 0 2M",
            "discard 2M 2M"]
CASES = [
    (512, 16, 64, WRITES), (512, 64, 16, WRITES), (512, 16, 1, WRITES),
    (65536, 16, 64, DISCARDED_TAIL), (512, 16, 64, DISCARDED_TAIL),
    (512, 64, 16, DISCARDED_TAIL), (4096, 16, 64, DISCARDED_MIDDLE),
    (512, 1, 64, DISCARDED_MIDDLE), (65536, 16, 8, WRITES),
    (512, 16, 64, SNAPSHOT), (65536, 16, 8, SNAPSHOT),
]


@pytest.mark.parametrize("cluster_size,old,new,io", CASES)
def test_amend_no_larger_than_qemu(tmp_path, cluster_size, old, new, io):
    src = tmp_path / "src.qcow2"
    make(src, cluster_size, old, io)
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    shutil.copy(src, s)
    shutil.copy(src, q)
    run(SEN_IMG, "amend", "-o", f"refcount_bits={new}", s)
    run(QEMU_IMG, "amend", "-o", f"refcount_bits={new}", q)
    qemu_check_clean(s)
    qemu_check_clean(q)
    run(QEMU_IMG, "compare", "-q", src, s)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", s).stdout)
    assert info["format-specific"]["data"]["refcount-bits"] == new
    assert s.stat().st_size <= q.stat().st_size, (s.stat().st_size, q.stat().st_size)
    if "snapshot s1" in io:  # the snapshot's clusters, shared or not, kept their data
        views = []
        for img in (src, s):
            out = tmp_path / f"{img.stem}-s1.raw"
            run(QEMU_IMG, "convert", "-O", "raw", "-l", "s1", img, out)
            views.append(out.read_bytes())
        assert views[0] == views[1]
    # The new structures work: sen-img writes through them and qemu-img agrees.
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 40M 2M", src)
    run(SEN_IMG, "convert", "-q", "-n", "-O", "qcow2", src, s)
    qemu_check_clean(s)
    run(QEMU_IMG, "compare", "-q", src, s)
