"""check of an image with persistent dirty bitmaps (qemu-img bitmap --add).  While the
bitmaps extension's autoclear bit says they are valid, qemu-img check counts the bitmap
directory, each bitmap's table and the clusters the tables name; sen-img check does too,
so it no longer calls them leaks (measured before: 5 "Leaked cluster" lines on the image
below, where qemu-img finds none).  Once a program lacking bitmap support cleared the bit,
QEMU ignores the bitmaps and their clusters are leaks: check -r leaks frees them and
qemu-img then finds the image clean.  (Sen keeps the bit: test_qcow2_bitmaps.py.)"""
import struct

from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, check_both, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()


def image_with_bitmaps(tmp_path):
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 1M", path)
    run(QEMU_IMG, "bitmap", "--add", path, "bm0")
    run(QEMU_IMG, "bitmap", "--add", "-g", "65536", path, "bm1")
    # Dirties both bitmaps: their tables then name data clusters.
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 2 0 1M", "-c", "write -P 3 32M 64k", path)
    return path


def bitmap_clusters(path):
    """Cluster indexes of the bitmap directory, tables and data (64 KiB clusters)."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    at = struct.unpack(">I", data[100:104])[0]
    while at + 8 <= len(data):
        typ, ln = struct.unpack(">II", data[at:at + 8])
        if typ == 0:
            break
        if typ == 0x23852875:
            nb, _, size, off = struct.unpack(">IIQQ", data[at + 8:at + 32])
            out.append(off // 65536)
            pos = off
            for _ in range(nb):
                toff, tsize, _, _, _, nsize, esize = struct.unpack(
                    ">QIIBBHI", data[pos:pos + 24])
                out.append(toff // 65536)
                for i in range(tsize):
                    e = struct.unpack(">Q", data[toff + 8 * i:toff + 8 * i + 8])[0]
                    if e & 0x00fffffffffffe00:
                        out.append((e & 0x00fffffffffffe00) // 65536)
                pos += (24 + esize + nsize + 7) & ~7
        at += 8 + ((ln + 7) & ~7)
    return out


def errors(text):
    return [l for l in text.splitlines() if l.startswith(("ERROR", "Leaked"))]


def test_bitmap_clusters_are_in_use(tmp_path):
    path = image_with_bitmaps(tmp_path)
    assert len(bitmap_clusters(path)) >= 4, "the bitmaps name no data clusters"
    res = check_both(tmp_path, path, [])
    assert res["sen"][0] == res["qemu"][0] == 0, res
    assert "No errors were found" in res["sen"][1], res["sen"]
    assert errors(res["sen"][2]) == [], res["sen"][2]


def test_lost_refcount_of_a_bitmap_cluster_reported_as_qemu(tmp_path):
    """A bitmap data cluster whose refcount is 0: both tools see a corruption."""
    path = image_with_bitmaps(tmp_path)
    victim = bitmap_clusters(path)[-1]
    with open(path, "r+b") as f:
        f.seek(48)
        rt = struct.unpack(">Q", f.read(8))[0]
        f.seek(rt)
        rb = struct.unpack(">Q", f.read(8))[0]
        f.seek(rb + 2 * victim)
        f.write(bytes(2))
    res = check_both(tmp_path, path, [])
    assert res["sen"][0] == res["qemu"][0] == 2, res
    assert errors(res["sen"][2]) == errors(res["qemu"][2])
    assert f"ERROR cluster {victim} refcount=0 reference=1" in res["sen"][2]


def test_repair_after_a_program_invalidated_the_bitmaps(tmp_path):
    path = image_with_bitmaps(tmp_path)
    n = len(set(bitmap_clusters(path)))
    with open(path, "r+b") as f:  # the autoclear bit off, as a program lacking support
        f.seek(88)
        f.write(bytes(8))
    p = run(SEN_IMG, "check", "-r", "leaks", path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr.count("Repairing cluster") == n, p.stderr
    qemu_check_clean(path)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 2 0 1M", path)


def test_repair_keeps_valid_bitmaps(tmp_path):
    """A writable check of an image whose bitmaps are valid: nothing to repair, and the
    bitmaps stay valid (no in-use flag left)."""
    path = image_with_bitmaps(tmp_path)
    p = run(SEN_IMG, "check", "-r", "leaks", path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Repairing" not in p.stderr, p.stderr
    qemu_check_clean(path)
    info = run(QEMU_IMG, "info", path).stdout
    assert "bitmaps:" in info and "in-use" not in info, info
