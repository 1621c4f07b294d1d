"""sen-img check (plain, -r leaks, -r all, --output=json) on a qcow2 image with an L2
entry whose host offset is not cluster aligned, side by side with qemu-img 7.2 on copies of
the same image: the same report, exit status and repair.

What qemu-img does there: a data cluster ("Data cluster is not properly aligned") is
reported and kept, and its cluster's worth of references counted from the unaligned
offset, so the two clusters it straddles (a refcount mismatch on the second, a rebuild
when that one lies past the end of the file, the "exceeding the end" error when a whole
cluster does); OFLAG_COPIED is checked on it too.  A preallocated zero cluster
("Preallocated cluster ...") is what -r all repairs: it becomes a plain zero cluster and
its host cluster a leak, also in an L2 table a snapshot shares (repaired once).  Sen used to print "Cluster is not properly aligned", count no
reference at all (so the data cluster was a leak, and -r freed it) and repair nothing."""
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, check_both, needs_tools, run

pytestmark = needs_tools()

L2E_OFFSET_MASK = 0x00fffffffffffe00
OFLAG_COPIED = 1 << 63
OFLAG_ZERO = 1


def l2_table_offset(f):
    """The offset of the image's first L2 table (L1 entry 0)."""
    f.seek(40)
    l1 = struct.unpack(">Q", f.read(8))[0]
    f.seek(l1)
    return struct.unpack(">Q", f.read(8))[0] & L2E_OFFSET_MASK


def make(path, variant):
    """A 64 MiB image, guest clusters 0 (0x11) and 1 (0x22) written (only 0 for "last"),
    whose first L2 entry is then made unaligned, one way per variant."""
    ext = variant.startswith("ext-")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
        f"extended_l2={'on' if ext else 'off'}", path, "64M")
    writes = ["-c", "write -P 0x11 0 64k"]
    if variant != "last":
        writes += ["-c", "write -P 0x22 64k 64k"]
    run(QEMU_IO, "-f", "qcow2", *writes, path)
    if variant.startswith("snap-"):     # the L2 table then belongs to a snapshot too
        run(QEMU_IMG, "snapshot", "-c", "s1", path)
    with open(path, "r+b") as f:
        l2 = l2_table_offset(f)
        f.seek(l2)
        entry = struct.unpack(">Q", f.read(8))[0]
        host = entry & L2E_OFFSET_MASK
        if variant in ("data", "last", "ext-data", "snap-data"):
            entry |= 0x200                       # 512 bytes into its own cluster
        elif variant == "into-next":
            entry = OFLAG_COPIED | (host + 0x10200)   # into guest cluster 1's host cluster
        elif variant == "past":
            entry = OFLAG_COPIED | 0x100200      # far past the end of the file
        elif variant in ("prealloc", "snap-prealloc"):
            entry |= 0x200 | OFLAG_ZERO          # a preallocated zero cluster
        f.seek(l2)
        if variant == "ext-prealloc":            # no subcluster allocated, all read zeros
            f.write(struct.pack(">QQ", entry | 0x200, 0xffffffff << 32))
        else:
            f.write(struct.pack(">Q", entry))


def state(img):
    """What a repair left: the first L2 table, how qemu-img checks the image afterwards,
    and what the guest reads in clusters 0 and 1 (qemu-io, read-only)."""
    with open(img, "rb") as f:
        f.seek(l2_table_offset(f))
        l2 = f.read(64 * 1024)
    check = run(QEMU_IMG, "check", img, check=False)
    reads = []
    for off in (0, 65536):
        p = run(QEMU_IO, "-r", "-f", "qcow2", "-c", f"read -v {off} 16", img, check=False)
        out = (p.stdout + p.stderr).replace(str(img), "IMG").splitlines()
        reads.append([line for line in out if "ops/sec" not in line])  # no timings
    return (l2, check.returncode, check.stdout.replace(str(img), "IMG"), reads)


VARIANTS = ["data", "last", "into-next", "past", "prealloc", "ext-data", "ext-prealloc",
            "snap-data", "snap-prealloc"]
MODES = [[], ["-r", "leaks"], ["-r", "all"], ["--output=json"]]


@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all", "json"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_check_unaligned_entry_as_qemu_img(tmp_path, variant, mode):
    orig = tmp_path / "orig.qcow2"
    make(orig, variant)
    got = check_both(tmp_path, orig, mode)
    assert got["sen"] == got["qemu"]
    rc, _, err = got["qemu"]
    prealloc = variant.endswith("prealloc")
    what = "Preallocated" if prealloc else "Data"
    repaired = prealloc and "all" in mode
    assert (f"{'Repairing' if repaired else 'ERROR'} offset=" in err and
            f"{what} cluster is not properly aligned; L2 entry corrupted." in err), err
    # Sen's old wording must not come back.
    assert "ERROR offset=50200: Cluster is not" not in got["sen"][2]
    assert rc == (0 if repaired else 1 if variant in ("last", "into-next") and
                  mode == ["-r", "leaks"] else 2), got["qemu"]

    # check_both left each tool's copy as that tool repaired it: the same result.
    assert state(tmp_path / "sen.qcow2") == state(tmp_path / "qemu.qcow2")


def test_data_kept_by_repair(tmp_path):
    """-r all on an unaligned data entry keeps it, and keeps the cluster it points into
    referenced: guest cluster 1 still reads its data (it used to be freed as a leak by
    sen-img, to be handed out again)."""
    img = tmp_path / "img.qcow2"
    make(img, "data")
    p = run(SEN_IMG, "check", "-r", "all", img, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Leaked cluster" not in p.stderr
    run(QEMU_IO, "-r", "-f", "qcow2", "-c", "read -P 0x22 64k 64k", img)
    with open(img, "rb") as f:
        f.seek(l2_table_offset(f))
        assert struct.unpack(">Q", f.read(8))[0] & L2E_OFFSET_MASK == 0x50200
