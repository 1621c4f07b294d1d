"""Metadata-overlap protection (QEMU's overlap-check): a guest write that a corrupted L2
entry (or refcount) sends onto qcow2 metadata must fail with EIO and QEMU's message, leave
the metadata bytes intact and set the corrupt bit; with overlap-check=none the same write
goes through, which proves the check is what stopped it.

Images are made by qemu-img/qemu-io and then byte-patched here; the write is
`sen-img convert -n` of a raw file whose first cluster holds data."""
import json
import os
import struct
import subprocess

import pytest
from img_util import BUILD_DIR, QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()

CLUSTER = 65536
SIZE = "4M"
MSG = ("qcow2: Marking image as corrupt: Preventing invalid write on metadata (overlaps "
       "with {}); further corruption events will be suppressed")


def be64(data, off):
    return struct.unpack_from(">Q", data, off)[0]


def layout(path):
    """Offsets of the metadata that the tests aim at."""
    d = path.read_bytes()
    l1 = be64(d, 40)
    reft = be64(d, 48)
    snaps = be64(d, 64)
    out = {"l1": l1, "reftable": reft, "refblock": be64(d, reft) & ~511,
           "l2": be64(d, l1) & 0x00fffffffffffe00, "snaptable": snaps}
    if struct.unpack_from(">I", d, 60)[0]:
        sn_l1 = be64(d, snaps)
        out["snap_l1"] = sn_l1
        if sn_l1 + 8 <= len(d):
            out["snap_l2"] = be64(d, sn_l1) & 0x00fffffffffffe00
    return out


def patch(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def read(path, off, n=CLUSTER):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


@pytest.fixture
def src(tmp_path):
    """The raw data sen-img writes: one cluster of 0x5a at guest offset 0."""
    p = tmp_path / "src.raw"
    p.write_bytes(b"\x5a" * CLUSTER + bytes(4 * 1024 * 1024 - CLUSTER))
    return p


def make_image(path, snapshot):
    """A 4 MiB image whose guest cluster 0 is allocated (after a snapshot when asked, so
    that the active L2 table and data cluster are the image's own copies)."""
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, SIZE)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 64k", path)
    if snapshot:
        run(QEMU_IMG, "snapshot", "-c", "s1", path)
        run(QEMU_IO, "-f", "qcow2", "-c", "write -P 2 0 64k", path)


def aim_l2_entry(path, target):
    """Points the active L2 entry of guest cluster 0 at host offset target (COPIED)."""
    patch(path, layout(path)["l2"], struct.pack(">Q", target | 1 << 63))


def sen_write(src, img, mode=None):
    """convert -n src onto img; mode sets overlap-check."""
    if mode is None:
        return run(SEN_IMG, "convert", "-n", "-f", "raw", "-O", "qcow2", src, img, check=False)
    return run(SEN_IMG, "convert", "-n", "-f", "raw", "--target-image-opts", src,
               f"driver=qcow2,file.filename={img},overlap-check={mode}", check=False)


def assert_refused(src, img, target, what, mode=None):
    before = read(img, target)
    p = sen_write(src, img, mode)
    assert p.returncode != 0, p.stdout + p.stderr
    assert MSG.format(what) in p.stderr, p.stderr
    assert p.stderr.count("Marking image as corrupt") == 1, p.stderr
    assert "Input/output error" in p.stderr, p.stderr
    after = read(img, target)
    if target == 0:
        # The header changes in one place only: the corrupt bit of the incompatible
        # features (bytes 72..79).
        assert after[79] == before[79] | 2
        after, before = after[:72] + after[80:], before[:72] + before[80:]
    assert after == before, "metadata was overwritten"
    info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert info["format-specific"]["data"]["corrupt"] is True, info
    # From now on the image opens read-only only (until check -r repairs it).
    again = sen_write(src, img)
    assert again.returncode != 0 and "corrupt" in again.stderr, again.stderr


def assert_written_through(src, img, target, mode="none", exact=True):
    """exact: the cluster holds the data afterwards (not so for the L2 table the write
    itself updates: its write-back at close lands on top)."""
    before = read(img, target)
    p = sen_write(src, img, mode)
    assert "Marking image as corrupt" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr
    after = read(img, target)
    assert after != before, "the write did not reach the metadata"
    if exact:
        assert after == b"\x5a" * CLUSTER


TARGETS = [
    # (image needs a snapshot, layout key, what QEMU calls it)
    (False, "l1", "active L1 table"),
    (False, "reftable", "refcount table"),
    (False, "refblock", "refcount block"),
    (False, "l2", "active L2 table"),
    (True, "snaptable", "snapshot table"),
    (True, "snap_l1", "inactive L1 table"),
]


@pytest.mark.parametrize("snapshot,key,what", TARGETS, ids=[t[1] for t in TARGETS])
def test_write_onto_metadata_refused(tmp_path, src, snapshot, key, what):
    img = tmp_path / "t.qcow2"
    make_image(img, snapshot)
    target = layout(img)[key]
    aim_l2_entry(img, target)
    assert_refused(src, img, target, what)


@pytest.mark.parametrize("snapshot,key,what", TARGETS, ids=[t[1] for t in TARGETS])
def test_overlap_check_none_writes_through(tmp_path, src, snapshot, key, what):
    img = tmp_path / "t.qcow2"
    make_image(img, snapshot)
    target = layout(img)[key]
    aim_l2_entry(img, target)
    assert_written_through(src, img, target, exact=key != "l2")


def test_inactive_l2_only_in_mode_all(tmp_path, src):
    """A snapshot's own L2 table is checked with overlap-check=all, not by default."""
    img = tmp_path / "t.qcow2"
    make_image(img, True)
    target = layout(img)["snap_l2"]
    aim_l2_entry(img, target)
    saved = img.read_bytes()
    assert_refused(src, img, target, "inactive L2 table", mode="all")
    img.write_bytes(saved)
    assert_written_through(src, img, target, mode="cached")


def test_header_via_free_refcount(tmp_path, src):
    """An L2 entry cannot name offset 0 (it means unallocated), but a refcount block that
    calls the header cluster free makes the allocator hand it out: the new L2 table for
    guest cluster 0 would overwrite the header."""
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, SIZE)
    patch(img, layout(img)["refblock"], b"\0\0")
    assert_refused(src, img, 0, "qcow2_header")


def test_header_check_can_be_turned_off(tmp_path, src):
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, SIZE)
    patch(img, layout(img)["refblock"], b"\0\0")
    run(SEN_IMG, "convert", "-n", "-f", "raw", "--target-image-opts", src,
        f"driver=qcow2,file.filename={img},overlap-check.main-header=off", check=False)
    assert read(img, 0, 4) != b"QFI\xfb", "the header survived: the check was not off"


@pytest.mark.parametrize("opt,msg", [
    ("overlap-check=sometimes",
     "Unsupported value 'sometimes' for qcow2 option 'overlap-check'. Allowed are any of "
     "the following: none, constant, cached, all"),
    ("overlap-check.template=x",   # QEMU names the option, not the spelling
     "Unsupported value 'x' for qcow2 option 'overlap-check'"),
    ("overlap-check=none,overlap-check.template=all",
     "Conflicting values for qcow2 options 'overlap-check' ('none') and "
     "'overlap-check.template' ('all')"),
    ("overlap-check.active-l2=maybe", "overlap-check.active-l2"),
])
def test_bad_overlap_options(tmp_path, src, opt, msg):
    img = tmp_path / "t.qcow2"
    make_image(img, False)
    before = img.read_bytes()
    p = run(SEN_IMG, "convert", "-n", "-f", "raw", "--target-image-opts", src,
            f"driver=qcow2,file.filename={img},{opt}", check=False)
    assert p.returncode != 0
    assert msg in p.stderr, p.stderr
    assert img.read_bytes() == before


def test_clean_image_all_modes_write(tmp_path, src):
    """No false positives: every mode writes a healthy image with snapshots cleanly."""
    for mode in ("none", "constant", "cached", "all"):
        img = tmp_path / f"{mode}.qcow2"
        make_image(img, True)
        p = sen_write(src, img, mode)
        assert p.returncode == 0, p.stderr
        run(QEMU_IMG, "check", img)
        run(QEMU_IMG, "compare", "-f", "raw", "-F", "qcow2", src, img)


@pytest.mark.parametrize("opt,msg", [
    (["-drive", "file={img},format=qcow2,if=none,id=d0,overlap-check=bogus"],
     "Unsupported value 'bogus' for qcow2 option 'overlap-check'"),
    (["-blockdev", "driver=qcow2,node-name=n0,file.driver=file,file.filename={img},"
      "overlap-check.template=all,overlap-check.inactive-l2=maybe"],
     "overlap-check.inactive-l2=maybe"),
])
def test_vmm_rejects_bad_overlap_options(tmp_path, opt, msg):
    """sen's -drive/-blockdev pass overlap-check to the qcow2 driver, which names the bad
    option."""
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, SIZE)
    sen = os.path.join(BUILD_DIR, "sen")
    p = run(sen, "-accel", "qtest", "-display", "none", "-nodefaults",
            *[a.format(img=img) for a in opt], check=False, timeout=60)
    assert p.returncode != 0
    assert msg in p.stderr, p.stderr


def test_vmm_accepts_overlap_check_object(tmp_path):
    """-blockdev JSON with QEMU's object form of overlap-check opens the node; a firmware
    image no BIOS has (1000 bytes) stops sen right after the drives opened."""
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, SIZE)
    bios = tmp_path / "bad-bios.bin"
    bios.write_bytes(bytes(1000))
    for oc in ({"template": "all", "main-header": False}, "none"):
        node = {"driver": "qcow2", "node-name": "n0",
                "file": {"driver": "file", "filename": str(img)}, "overlap-check": oc}
        p = subprocess.run([os.path.join(BUILD_DIR, "sen"), "-nodefaults", "-display",
                            "none", "-blockdev", json.dumps(node), "-bios", str(bios)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        assert "could not load PC BIOS" in p.stderr, p.stderr
        assert "-blockdev" not in p.stderr, p.stderr


def free_l1_cluster(img):
    """Makes the refcount of the L1 table's cluster 0, so that the allocator hands it out
    as the next new cluster; returns the L1 offset."""
    lay = layout(img)
    patch(img, lay["refblock"] + 2 * (lay["l1"] // CLUSTER), b"\0\0")
    return lay["l1"]


def test_compressed_write_refused(tmp_path, src):
    """convert -c: the compressed run would be packed onto the L1 table."""
    img = tmp_path / "t.qcow2"
    make_image(img, False)
    l1 = free_l1_cluster(img)
    before = read(img, l1)
    p = run(SEN_IMG, "convert", "-n", "-c", "-f", "raw", "-O", "qcow2", src, img, check=False)
    assert p.returncode != 0
    assert MSG.format("active L1 table") in p.stderr, p.stderr
    assert read(img, l1) == before


def test_copy_on_write_refused(tmp_path):
    """A 4 KiB write into a cluster the backing file holds: the copied-up cluster would be
    allocated on the L1 table."""
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, SIZE)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 3 0 1M", base)
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", img)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 4 0 64k", img)  # the overlay's L2 table
    l1 = free_l1_cluster(img)
    before = read(img, l1)
    p = run(SEN_IMG, "bench", "-w", "-c", "1", "-s", "4k", "-o", str(CLUSTER), "-f", "qcow2",
            img, check=False)
    assert p.returncode != 0
    assert MSG.format("active L1 table") in p.stderr, p.stderr
    assert read(img, l1) == before
    # Without the check the copy-up lands on the L1 table.
    base_img = img.with_name("none.qcow2")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", base_img)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 4 0 64k", base_img)
    l1 = free_l1_cluster(base_img)
    before = read(base_img, l1)
    run(SEN_IMG, "bench", "-w", "-c", "1", "-s", "4k", "-o", str(CLUSTER), "--image-opts",
        f"driver=qcow2,file.filename={base_img},overlap-check=none", check=False)
    assert read(base_img, l1) != before


def test_amend_downgrade_zeroing_refused(tmp_path):
    """amend compat=0.10 zeroes a preallocated zero cluster in place; when a corrupt L2
    entry puts that cluster on the refcount block, the zeroing is refused (as in QEMU)."""
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "compat=1.1", img, SIZE)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 64k", "-c", "write -z 0 64k", img)
    lay = layout(img)
    entry = be64(read(img, lay["l2"], 8), 0)
    assert entry & 1 and entry & 0x00fffffffffffe00, hex(entry)  # zero, still allocated
    patch(img, lay["l2"], struct.pack(">Q", lay["refblock"] | 1 << 63 | 1))
    before = read(img, lay["refblock"])
    p = run(SEN_IMG, "amend", "-o", "compat=0.10", img, check=False)
    assert p.returncode != 0
    assert MSG.format("refcount block") in p.stderr, p.stderr
    assert read(img, lay["refblock"]) == before


def test_amend_snapshot_l2_in_mode_all(tmp_path):
    """amend compat=0.10 rewrites the zero clusters of an L2 table a snapshot shares:
    writing that table is no overlap, also in mode all (which protects inactive L2)."""
    img = tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "compat=1.1", img, SIZE)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 64k", "-c", "write -z 64k 64k", img)
    run(QEMU_IMG, "snapshot", "-c", "s1", img)
    p = run(SEN_IMG, "amend", "-o", "compat=0.10", "--image-opts",
            f"driver=qcow2,file.filename={img},overlap-check=all", check=False)
    assert "Marking image as corrupt" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr
    run(QEMU_IMG, "check", img)


def test_hostile_snapshot_l1_offset(tmp_path, src):
    """A snapshot L1 table said to lie at the very end of the 64-bit space (offset + size
    wraps): the index skips it; the write goes on normally instead of the index trying to
    hold 2^48 clusters."""
    img = tmp_path / "t.qcow2"
    make_image(img, True)
    sn = layout(img)["snaptable"]
    patch(img, sn, struct.pack(">QI", 0xffffffffffff0000, 0x10000))
    p = sen_write(src, img)
    assert p.returncode == 0, p.stderr
    assert read(img, layout(img)["l2"], 8) != bytes(8)


def bitmap_directory(path):
    """The bitmap directory's offset, from the bitmaps header extension."""
    d = path.read_bytes()
    off = struct.unpack_from(">I", d, 100)[0]
    while True:
        typ, length = struct.unpack_from(">II", d, off)
        assert typ != 0, "no bitmaps extension"
        if typ == 0x23852875:
            return be64(d, off + 8 + 16)
        off += 8 + ((length + 7) & ~7)


def test_bitmap_directory_refused(tmp_path, src):
    img = tmp_path / "t.qcow2"
    make_image(img, False)
    # Disabled: an enabled one gets its in_use flag written at open (qcow2-bitmap.c),
    # which would change the directory before the refused write.
    run(QEMU_IMG, "bitmap", "--add", "--disable", img, "b0")
    target = bitmap_directory(img)
    aim_l2_entry(img, target)
    saved = img.read_bytes()
    assert_refused(src, img, target, "bitmap directory")
    img.write_bytes(saved)
    assert_written_through(src, img, target, mode="none")
