"""check of an L1 or L2 entry that points past the end of the file (a corrupt table).

qemu-img 7.2 reports such a reference ("counting reference for region exceeding the end of
the file ...") and counts it nowhere, and `check -r all` leaves the entry in place: the
cluster keeps refcount 0, so once the file grows that far a new allocation hands it out
again and two guest offsets share one host cluster (measured with qemu-img 7.2: after the
repair, a write elsewhere shows up at the corrupt guest offset).  sen-img reports the same
errors, and `-r all` repairs the entry instead: a data cluster past the end reads as zeros
(a zero cluster; version 2 has none, so there it becomes unallocated), an L2 table past the
end reads as an empty table (the L1 entry becomes unallocated).  What the guest reads does
not change, since past the end of the file reads as zeros; the repaired image passes
qemu-img check, and later writes never share a host cluster."""
import json
import resource
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, copies, needs_tools, run

pytestmark = needs_tools()

CLUSTER = 65536
OFFSET_MASK = 0x00fffffffffffe00
L2_SPAN = CLUSTER // 8 * CLUSTER  # guest bytes one L2 table maps (standard entries)


def be64(f, off):
    f.seek(off)
    return struct.unpack(">Q", f.read(8))[0]


def put64(f, off, val):
    f.seek(off)
    f.write(struct.pack(">Q", val))


def past_eof(path, clusters):
    """A cluster-aligned offset `clusters` clusters past the file's (rounded up) end."""
    size = path.stat().st_size
    return ((size + CLUSTER - 1) // CLUSTER + clusters) * CLUSTER


def snapshot_l1(f):
    """The L1 table offset of the image's first snapshot."""
    f.seek(60)
    nb = struct.unpack(">I", f.read(4))[0]
    assert nb == 1
    table = be64(f, 64)
    return be64(f, table)


def image_with_snapshot(tmp_path):
    """Guest data at 0..128k, snapshot s1, then guest 0..64k rewritten (copied away from
    the snapshot's clusters)."""
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "1G")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    run(QEMU_IMG, "snapshot", "-c", "s1", path)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 0 64k", path)
    return path


def damaged_image(tmp_path, what, clusters, opts):
    """An image with guest data at 0..128k (and at L2_SPAN) and one entry pointing
    `clusters` clusters past the end of the file: an active L2 entry (guest 64k), an
    active L1 entry (guest L2_SPAN), or a snapshot's L2 entry (guest 64k)."""
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, path, "1G")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    run(QEMU_IO, "-f", "qcow2", "-c", f"write -P 8 {L2_SPAN} 64k", path)
    if what == "snapshot-l2":
        run(QEMU_IMG, "snapshot", "-c", "s1", path)
        # The active image copies the shared L2 table: the snapshot keeps the old one.
        run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 128k 64k", path)
    target = past_eof(path, clusters)
    with open(path, "r+b") as f:
        l1 = be64(f, 40)
        if what == "snapshot-l2":
            l1 = snapshot_l1(f)
        if what == "l1":
            put64(f, l1 + 8, (1 << 63) | target)
        else:
            l2 = be64(f, l1) & OFFSET_MASK
            entry = l2 + (16 if "extended_l2=on" in opts else 8)
            old = be64(f, entry)
            put64(f, entry, (old & ~OFFSET_MASK) | target)
    return path


def errors(text):
    return [l for l in text.splitlines() if l.startswith("ERROR")]


def json_check(path):
    p = run(QEMU_IMG, "check", "--output=json", path, check=False)
    return json.loads(p.stdout)


CASES = [("l2", 3, "compat=1.1"), ("l2", 100000, "compat=1.1"), ("l2", 3, "compat=0.10"),
         ("l2", 3, "extended_l2=on,cluster_size=64k"), ("l1", 3, "compat=1.1"),
         ("l1", 100000, "compat=0.10"), ("snapshot-l2", 3, "compat=1.1")]


@pytest.mark.parametrize("what,clusters,opts", CASES)
def test_report_like_qemu(tmp_path, what, clusters, opts):
    imgs = copies(tmp_path, damaged_image(tmp_path, what, clusters, opts))
    s = run(SEN_IMG, "check", imgs["sen"], check=False)
    q = run(QEMU_IMG, "check", imgs["qemu"], check=False)
    assert s.returncode == q.returncode == 2, (s.stderr, q.stderr)
    assert errors(s.stderr) == errors(q.stderr)
    assert any("exceeding the end of the file" in l for l in errors(s.stderr))


@pytest.mark.parametrize("what,clusters,opts", CASES)
def test_repair_all_never_shares_a_cluster(tmp_path, what, clusters, opts):
    path = damaged_image(tmp_path, what, clusters, opts)
    expected = tmp_path / "expected.raw"
    run(QEMU_IMG, "convert", "-O", "raw", path, expected)  # past the end reads as zeros
    img = copies(tmp_path, path)["sen"]
    p = run(SEN_IMG, "check", "-r", "all", img, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No errors were found on the image." in p.stdout
    assert any(l.startswith("Repairing") and "past the end of the file" in l
               for l in p.stderr.splitlines()), p.stderr
    res = json_check(img)
    assert not res.get("corruptions") and not res.get("leaks"), res
    # The guest reads what it read before the repair.
    run(QEMU_IMG, "compare", "-F", "raw", img, expected)
    # New allocations grow the file over the old bad offset (3 clusters past the end):
    # none of them may show up at the repaired guest offset.
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 5 4M 1M", img)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 0 64k", img)
    if what == "l1":
        run(QEMU_IO, "-f", "qcow2", "-c", f"read -P 0 {L2_SPAN} 64k", img)
    elif what == "l2":
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0 64k 64k", img)
    else:
        # Only the snapshot's entry was damaged: the active image keeps its data.
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 64k 64k", img)
    res = json_check(img)
    assert not res.get("corruptions") and not res.get("leaks"), res
    if what == "snapshot-l2":
        run(QEMU_IMG, "snapshot", "-a", "s1", img)
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0 64k 64k", img)
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 0 64k", img)


def test_repair_leaks_leaves_the_entry(tmp_path):
    """-r leaks repairs leaks only, as qemu-img: the corruption stays reported."""
    imgs = copies(tmp_path, damaged_image(tmp_path, "l2", 3, "compat=1.1"))
    s = run(SEN_IMG, "check", "-r", "leaks", imgs["sen"], check=False)
    q = run(QEMU_IMG, "check", "-r", "leaks", imgs["qemu"], check=False)
    assert s.returncode == q.returncode == 2, (s.stderr, q.stderr)
    assert errors(s.stderr) == errors(q.stderr)
    run(QEMU_IMG, "compare", imgs["sen"], imgs["qemu"])


def test_table_on_other_metadata_is_not_rewritten(tmp_path):
    """An L1 entry pointing at the refcount block: read as an L2 table, its refcounts
    look like entries past the end of the file.  Repairing them would overwrite the
    refcounts (the header's first): -r all reports them and leaves them."""
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "16M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    with open(path, "r+b") as f:
        refblock = be64(f, be64(f, 48))
        put64(f, be64(f, 40), (1 << 63) | refblock)
    p = run(SEN_IMG, "check", "-r", "all", path, check=False)
    assert "exceeding the end of the file" in p.stderr, p.stderr
    assert "Repairing L2 entry" not in p.stderr, p.stderr
    with open(path, "rb") as f:
        f.seek(refblock)
        assert struct.unpack(">H", f.read(2))[0] >= 1, "the header lost its refcount"


def test_table_reaching_past_the_end_stays_in_use(tmp_path):
    """A snapshot's L1 table whose tail lies past the end of the file: the region is
    reported, and its cluster inside the file still counts as in use.  Counted as free,
    -r leaks freed it (and -r all's rebuild could put its refcount structure there), so
    the next allocation took it (QEMU's overlap check then refuses the write and marks
    the image corrupt; an allocator without one overwrites the snapshot's L1 table)."""
    path = image_with_snapshot(tmp_path)
    with open(path, "r+b") as f:
        sn = be64(f, 64)  # the snapshot table: l1_table_offset, then l1_size
        f.seek(be64(f, sn))
        entries = f.read(16)
        moved = past_eof(path, 0)
        f.seek(moved)
        f.write(entries)  # the file now ends 16 bytes into this cluster
        put64(f, sn, moved)
        f.seek(sn + 8)
        f.write(struct.pack(">I", 2 * CLUSTER // 8))  # two clusters of L1 entries
        refblock = be64(f, be64(f, 48))
        f.seek(refblock + 2 * (moved // CLUSTER))
        f.write(struct.pack(">H", 1))  # the moved table's cluster is in use
    p = run(SEN_IMG, "check", "-r", "leaks", path, check=False)
    assert "exceeding the end of the file" in p.stderr, p.stderr
    assert f"cluster {moved // CLUSTER} " not in p.stderr, p.stderr
    with open(path, "rb") as f:
        f.seek(refblock + 2 * (moved // CLUSTER))
        assert struct.unpack(">H", f.read(2))[0] == 1, "the table's cluster was freed"
        f.seek(moved)
        assert f.read(16) == entries


def test_v2_with_backing_file_keeps_the_entry(tmp_path):
    """Version 2 has no zero flag: made unallocated, a data entry past the end would show
    the backing file instead of the zeros read there, so -r all only reports it."""
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "1G")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 3 0 1M", base)
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", base,
        "-F", "qcow2", path)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    with open(path, "r+b") as f:
        l2 = be64(f, be64(f, 40)) & OFFSET_MASK
        old = be64(f, l2 + 8)
        put64(f, l2 + 8, (old & ~OFFSET_MASK) | past_eof(path, 3))
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0 64k 64k", path)
    p = run(SEN_IMG, "check", "-r", "all", path, check=False)
    assert "exceeding the end of the file" in p.stderr, p.stderr
    assert "Repairing L2 entry" not in p.stderr, p.stderr
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0 64k 64k", path)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 0 64k", path)


def test_stale_entry_naming_guest_data_is_not_rewritten(tmp_path):
    """A snapshot's L1 entry naming a cluster that now holds active guest data (stale or
    corrupt): read as an L2 table, the data can look like entries past the end of the
    file.  That cluster is referenced twice (the guest's L2 entry and the stale L1 entry),
    so it is no table of its own: -r all reports the entries and leaves the guest's data
    as it was (rewriting them destroyed it)."""
    path = image_with_snapshot(tmp_path)
    with open(path, "r+b") as f:
        data = be64(f, be64(f, be64(f, 40)) & OFFSET_MASK) & OFFSET_MASK  # guest 0
        put64(f, data + 8, (1 << 63) | past_eof(path, 3))  # guest bytes 8..15
        put64(f, snapshot_l1(f), (1 << 63) | data)
        f.seek(data)
        before = f.read(CLUSTER)
    p = run(SEN_IMG, "check", "-r", "all", path, check=False)
    assert "exceeding the end of the file" in p.stderr, p.stderr
    assert "Repairing L2 entry" not in p.stderr, p.stderr
    with open(path, "rb") as f:
        f.seek(data)
        assert f.read(CLUSTER) == before, "check -r all rewrote guest data"


def test_table_on_a_snapshot_l1_table_is_not_rewritten(tmp_path):
    """An active L1 entry naming a snapshot's L1 table as its L2 table, whose entry 1
    points past the end: both as the snapshot's L1 entry and read as an L2 entry it is
    a reference past the end.  The cluster is the snapshot's L1 table (counted twice, and
    known as such metadata): -r all repairs neither entry nor the OFLAG_COPIED bits of
    the "L2 table" (before, that repair rewrote the snapshot's L1 table; with the
    overlap protection it failed the check and marked the image corrupt), the snapshot's
    table is left as it was; the errors are qemu-img check's (which only reports)."""
    path = image_with_snapshot(tmp_path)
    with open(path, "r+b") as f:
        sl1 = snapshot_l1(f)
        put64(f, sl1 + 8, (1 << 63) | past_eof(path, 3))
        put64(f, be64(f, 40) + 8, (1 << 63) | sl1)
        f.seek(sl1)
        before = f.read(CLUSTER)
    imgs = copies(tmp_path, path)
    q = run(QEMU_IMG, "check", imgs["qemu"], check=False)
    s = run(SEN_IMG, "check", imgs["sen"], check=False)
    assert s.returncode == q.returncode == 2, (s.stderr, q.stderr)
    assert errors(s.stderr) == errors(q.stderr)
    p = run(SEN_IMG, "check", "-r", "all", imgs["sen"], check=False)
    assert "exceeding the end of the file" in p.stderr, p.stderr
    assert p.returncode == 2, p.stdout + p.stderr  # errors left, check itself fine
    assert "Repairing L2 entry" not in p.stderr and "Repairing L1 entry" not in p.stderr
    assert "Repairing OFLAG_COPIED data" not in p.stderr, p.stderr
    assert "corrupt" not in p.stderr, p.stderr
    with open(imgs["sen"], "rb") as f:
        f.seek(sl1)
        assert f.read(CLUSTER) == before, "check -r all rewrote the snapshot's L1 table"


@pytest.mark.parametrize("field,value,message", [
    (8, struct.pack(">I", 0x80000000), "l1_size=0x80000000: L1 table is too large"),
    (0, struct.pack(">Q", 0x10200), "l1_offset=0x10200: L1 table is not cluster aligned")])
def test_corrupt_snapshot_l1_fields_are_reported_not_read(tmp_path, field, value, message):
    """A snapshot table entry claiming a 16 GiB or misaligned L1 table: reported in
    qemu-img check's words (qemu-img 7.2 itself refuses to open such an image), never
    read (the 16 GiB table once cost a fuzz input 16 GiB of memory)."""
    path = image_with_snapshot(tmp_path)
    with open(path, "r+b") as f:
        f.seek(be64(f, 64) + field)
        f.write(value)
    p = run(SEN_IMG, "check", path, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"ERROR snapshot 1 (s1) {message}; snapshot table entry corrupted" in p.stderr
    # The largest child so far (qemu-img and sen-img runs of this process), in KiB.
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 200 * 1024
