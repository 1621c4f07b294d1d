"""Persistent dirty bitmaps stay valid through Sen (issue 4): an image with bitmaps that
qemu-img added is written by Sen (sen-img commit into it, sen-img resize), and afterwards
QEMU 7.2 finds every bitmap consistent, qemu-img check finds no leak, and each bitmap's
content (QMP x-debug-block-dirty-bitmap-sha256 in qemu-system-x86_64 -M none) is exactly
what it is when qemu-img does the same on a copy.  Before, Sen cleared the bitmaps'
autoclear bit and QEMU called them all inconsistent.  Also: disabled bitmaps and bitmaps
already in use are left alone, and a broken bitmap directory fails the open with QEMU's
message."""
import json
import shutil
import struct
import subprocess

import pytest

from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run

QEMU = shutil.which("qemu-system-x86_64")

pytestmark = needs_tools() + [
    pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 (QEMU 7.2) not installed: it "
                                        "reads the bitmaps' hashes"),
]

BITMAPS = ("b0", "b1", "b2", "b3")


def image(tmp_path, name="img.qcow2", size="64M"):
    """b0 (64 KiB granules), b1 (1 MiB), b2 (4 KiB) enabled, b3 disabled; each has some
    dirty data already."""
    path = tmp_path / name
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, size)
    run(QEMU_IMG, "bitmap", "--add", path, "b0")
    run(QEMU_IMG, "bitmap", "--add", "-g", "1M", path, "b1")
    run(QEMU_IMG, "bitmap", "--add", "-g", "4096", path, "b2")
    run(QEMU_IMG, "bitmap", "--add", "--disable", path, "b3")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 64k", "-c", "write 20M 4k", path)
    return path


def bitmap_state(path):
    """{name: (recording, count, sha256)} as QEMU 7.2 loads them (read-only)."""
    cmds = [{"execute": "qmp_capabilities"}, {"execute": "query-named-block-nodes"}]
    cmds += [{"execute": "x-debug-block-dirty-bitmap-sha256",
              "arguments": {"node": "n0", "name": n}} for n in BITMAPS]
    cmds += [{"execute": "quit"}]
    p = subprocess.run([QEMU, "-M", "none", "-nodefaults", "-display", "none", "-qmp",
                        "stdio", "-blockdev",
                        f"driver=qcow2,node-name=n0,read-only=on,file.driver=file,"
                        f"file.filename={path}"],
                       input="\n".join(json.dumps(c) for c in cmds) + "\n",
                       capture_output=True, text=True, timeout=60)
    replies = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    replies = [r for r in replies if "return" in r or "error" in r]
    assert len(replies) == len(cmds), p.stdout + p.stderr
    nodes = replies[1]["return"]
    bms = {b["name"]: b for b in nodes[0].get("dirty-bitmaps", [])}
    out = {}
    for name, r in zip(BITMAPS, replies[2:]):
        if name in bms:
            assert "return" in r, r
            out[name] = (bms[name]["recording"], bms[name]["count"],
                         bms[name].get("inconsistent", False), r["return"]["sha256"])
    return out


def info_flags(path):
    p = run(QEMU_IMG, "info", "--output=json", path)
    data = json.loads(p.stdout)["format-specific"]["data"]
    return {b["name"]: b["flags"] for b in data.get("bitmaps", [])}


def overlay(tmp_path, base, name):
    """A top image over base with writes the commit brings down: unaligned and whole
    clusters, across bitmap granules, and up to the end of the disk."""
    top = tmp_path / name
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", top)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 2 1M 64k", "-c", "write -P 3 10M 3M",
        "-c", "write 63M 1M", "-c", "write 30M 512", top)
    return top


def test_commit_keeps_bitmaps_valid_and_equal_to_qemus(tmp_path):
    sen = image(tmp_path, "sen.qcow2")
    qemu = tmp_path / "qemu.qcow2"
    shutil.copy(sen, qemu)
    before = bitmap_state(sen)
    top_s, top_q = overlay(tmp_path, sen, "top-s.qcow2"), overlay(tmp_path, qemu, "top-q.qcow2")
    run(SEN_IMG, "commit", top_s)
    run(QEMU_IMG, "commit", top_q)
    ours, theirs = bitmap_state(sen), bitmap_state(qemu)
    assert set(ours) == set(BITMAPS), ours
    assert ours == theirs
    assert not any(v[2] for v in ours.values()), "a bitmap is inconsistent"
    # The enabled bitmaps saw the writes; the disabled one did not change.
    for name in ("b0", "b1", "b2"):
        assert ours[name][1] > before[name][1], (name, before, ours)
    assert ours["b3"] == before["b3"]
    assert "in-use" not in str(info_flags(sen))
    qemu_check_clean(sen)
    run(QEMU_IMG, "compare", sen, qemu)


def test_sen_img_check_repair_keeps_bitmaps(tmp_path):
    """A writable open (check -r) that writes nothing leaves the bitmaps as they were."""
    path = image(tmp_path)
    before = bitmap_state(path)
    run(SEN_IMG, "check", "-r", "all", path)
    assert bitmap_state(path) == before
    qemu_check_clean(path)


def set_in_use(path, name):
    """Sets in_use on the directory entry of bitmap `name`, as a crash of QEMU leaves it."""
    with open(path, "r+b") as f:
        data = f.read()
        at = struct.unpack(">I", data[100:104])[0]
        while True:
            typ, ln = struct.unpack(">II", data[at:at + 8])
            assert typ != 0, "no bitmaps extension"
            if typ == 0x23852875:
                nb, _, size, off = struct.unpack(">IIQQ", data[at + 8:at + 32])
                break
            at += 8 + ((ln + 7) & ~7)
        pos = off
        for _ in range(nb):
            _, _, flags, _, _, nsize, esize = struct.unpack(">QIIBBHI", data[pos:pos + 24])
            if data[pos + 24 + esize:pos + 24 + esize + nsize].decode() == name:
                f.seek(pos + 12)
                f.write(struct.pack(">I", flags | 1))
                return off
            pos += (24 + esize + nsize + 7) & ~7
    raise AssertionError(f"no bitmap {name}")


def test_inconsistent_bitmap_left_alone(tmp_path):
    sen = image(tmp_path, "sen.qcow2")
    set_in_use(sen, "b1")
    qemu = tmp_path / "qemu.qcow2"
    shutil.copy(sen, qemu)
    top_s, top_q = overlay(tmp_path, sen, "top-s.qcow2"), overlay(tmp_path, qemu, "top-q.qcow2")
    run(SEN_IMG, "commit", top_s)
    run(QEMU_IMG, "commit", top_q)
    ours, theirs = bitmap_state(sen), bitmap_state(qemu)
    assert ours == theirs
    assert ours["b1"][2] is True, ours
    assert info_flags(sen)["b1"] == ["in-use", "auto"]
    qemu_check_clean(sen)


def test_program_lacking_bitmap_support_stays_ignored(tmp_path):
    """Autoclear bit off: the bitmaps are inconsistent for both; Sen does not revive them."""
    path = image(tmp_path)
    with open(path, "r+b") as f:
        f.seek(88)
        f.write(struct.pack(">Q", 0))
    top = overlay(tmp_path, path, "top.qcow2")
    run(SEN_IMG, "commit", top)
    with open(path, "rb") as f:
        f.seek(88)
        assert struct.unpack(">Q", f.read(8))[0] & 1 == 0


def test_resize_grows_enabled_bitmaps(tmp_path):
    sen = tmp_path / "sen.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", sen, "64M")
    run(QEMU_IMG, "bitmap", "--add", "-g", "512", sen, "b0")
    run(QEMU_IO, "-f", "qcow2", "-c", "write 60M 1M", sen)
    qemu = tmp_path / "qemu.qcow2"
    shutil.copy(sen, qemu)
    run(SEN_IMG, "resize", sen, "300M")
    run(QEMU_IMG, "resize", qemu, "300M")
    assert bitmap_state(sen) == bitmap_state(qemu)
    qemu_check_clean(sen)
    # Shrinking too (the bits past the new end go).
    run(SEN_IMG, "resize", "--shrink", sen, "32M")
    run(QEMU_IMG, "resize", "--shrink", qemu, "32M")
    assert bitmap_state(sen) == bitmap_state(qemu)
    qemu_check_clean(sen)


def test_resize_keeps_disabled_bitmaps_valid(tmp_path):
    """A disabled bitmap's table must cover the new size too: Sen rewrites it as QEMU."""
    sen = image(tmp_path, "sen.qcow2")
    qemu = tmp_path / "qemu.qcow2"
    shutil.copy(sen, qemu)
    run(SEN_IMG, "resize", sen, "3G")
    run(QEMU_IMG, "resize", qemu, "3G")
    ours = bitmap_state(sen)
    assert set(ours) == set(BITMAPS) and ours == bitmap_state(qemu)
    assert info_flags(sen)["b3"] == []
    qemu_check_clean(sen)


def test_resize_with_an_inconsistent_bitmap_refused(tmp_path):
    path = image(tmp_path)
    set_in_use(path, "b1")
    before = path.read_bytes()
    p = run(SEN_IMG, "resize", path, "128M", check=False)
    q = run(QEMU_IMG, "resize", path, "128M", check=False)
    assert p.returncode == q.returncode == 1
    assert "Bitmap 'b1' is inconsistent and cannot be used" in p.stderr, p.stderr
    assert "Bitmap 'b1' is inconsistent and cannot be used" in q.stderr, q.stderr
    assert path.read_bytes()[:1 << 20] and bitmap_state(path)["b1"][2] is True
    assert len(before) <= path.stat().st_size


@pytest.mark.parametrize("field,value,message", [
    ("ext_reserved", 1, "bitmaps_ext: Reserved field is not zero"),
    ("ext_nb", 0, "found bitmaps extension with zero bitmaps"),
    ("ext_nb", 5, "Less bitmaps found than specified in header extension"),
    ("ext_nb", 1, "More bitmaps found than specified in header extension"),
    ("ext_dir_offset", 0x10200, "bitmaps_ext: invalid bitmap directory offset"),
    ("granularity", 8, "Bitmap 'b0' doesn't satisfy the constraints"),
    ("granularity", 32, "Bitmap 'b0' doesn't satisfy the constraints"),
    ("flags", 4, "Bitmap 'b0' doesn't satisfy the constraints"),
    ("type", 2, "Bitmap 'b0' doesn't satisfy the constraints"),
    ("table_offset", 0x10001, "Bitmap 'b0' doesn't satisfy the constraints"),
    ("extra", 8, "Bitmap extra data is not supported"),
])
def test_broken_directory_fails_open_as_in_qemu(tmp_path, field, value, message):
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M")
    run(QEMU_IMG, "bitmap", "--add", path, "b0")
    run(QEMU_IMG, "bitmap", "--add", path, "b1")
    with open(path, "r+b") as f:
        data = f.read()
        at = struct.unpack(">I", data[100:104])[0]
        while struct.unpack(">I", data[at:at + 4])[0] != 0x23852875:
            at += 8 + ((struct.unpack(">I", data[at + 4:at + 8])[0] + 7) & ~7)
        off = struct.unpack(">Q", data[at + 24:at + 32])[0]
        where = {"ext_nb": (at + 8, ">I"), "ext_reserved": (at + 12, ">I"),
                 "ext_dir_offset": (at + 24, ">Q"), "table_offset": (off, ">Q"),
                 "flags": (off + 12, ">I"), "type": (off + 16, ">B"),
                 "granularity": (off + 17, ">B"), "extra": (off + 20, ">I")}[field]
        f.seek(where[0])
        f.write(struct.pack(where[1], value))
    q = run(QEMU_IMG, "info", path, check=False)
    assert q.returncode == 1 and message in q.stderr, q.stderr
    for args in (["info", path], ["resize", path, "128M"]):
        p = run(SEN_IMG, *args, check=False)
        assert p.returncode == 1, p.stdout
        assert message in p.stderr, p.stderr


def test_compressed_convert_into_the_image_marks_the_bitmaps(tmp_path):
    """sen-img convert -n -c writes compressed clusters by a path of its own: those
    writes set the bits too, as qemu-img's do (before, the bitmaps stayed as they were and
    the next incremental backup missed the new data)."""
    src = tmp_path / "src.raw"
    run(QEMU_IMG, "create", "-q", "-f", "raw", src, "64M")
    run(QEMU_IO, "-f", "raw", "-c", "write -P 7 1M 2M", "-c", "write -P 9 40M 64k", src)
    sen = image(tmp_path, "sen.qcow2")
    qemu = tmp_path / "qemu.qcow2"
    shutil.copy(sen, qemu)
    before = bitmap_state(sen)
    run(SEN_IMG, "convert", "-n", "-c", "-f", "raw", "-O", "qcow2", src, sen)
    run(QEMU_IMG, "convert", "-n", "-c", "-f", "raw", "-O", "qcow2", src, qemu)
    ours = bitmap_state(sen)
    for name in ("b0", "b1", "b2"):
        assert ours[name][1] > before[name][1], (name, before, ours)
    assert ours == bitmap_state(qemu)
    assert ours["b3"] == before["b3"]
    qemu_check_clean(sen)
    run(QEMU_IMG, "compare", sen, qemu)


def many_bitmaps_image(path, count, size="64G"):
    """An image (64 GiB) whose directory holds `count` consistent `auto` bitmaps of
    512-byte granules (16 MiB of bits each) that all share one table of all-ones entries:
    a few KiB on disk, count * 16 MiB in memory for whoever loads them."""
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, size)
    run(QEMU_IMG, "bitmap", "--add", "-g", "512", path, "b0")
    with open(path, "r+b") as f:
        data = f.read()
        at = struct.unpack(">I", data[100:104])[0]
        while struct.unpack(">I", data[at:at + 4])[0] != 0x23852875:
            at += 8 + ((struct.unpack(">I", data[at + 4:at + 8])[0] + 7) & ~7)
        off = struct.unpack(">Q", data[at + 24:at + 32])[0]
        table, size, flags, typ, gbits, _, _ = struct.unpack(">QIIBBHI", data[off:off + 24])
        assert count * 32 <= 65536
        f.seek(table)
        f.write(struct.pack(">Q", 1) * size)  # every entry "all ones", no data cluster
        f.seek(off)
        for i in range(count):
            name = b"b%04d" % i
            f.write(struct.pack(">QIIBBHI", table, size, flags, typ, gbits, len(name), 0) +
                    name + b"\0" * 3)
        f.seek(at + 8)
        f.write(struct.pack(">IIQ", count, 0, count * 32))


def test_many_bitmaps_fail_the_open_before_any_big_allocation(tmp_path):
    """65535 bitmaps of up to 512 MiB each pass QEMU 7.2's limits, which do not bound
    their sum: a writable open refuses bitmaps needing more than 2 GiB together, before
    allocating them (run under a 1 GiB address-space limit; without the check it runs out of
    memory, here after about 60 bitmaps, on a real host after tens of GiB)."""
    import resource

    path = tmp_path / "many.qcow2"
    many_bitmaps_image(path, 1024)
    # (qemu-img info, which loads them read-only, takes 16 GiB and over a minute here.)
    before = path.read_bytes()

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    for args in (["bitmap", "--clear", path, "b0000"], ["resize", path, "+1M"]):
        p = subprocess.run([SEN_IMG, *map(str, args)], capture_output=True, text=True,
                           preexec_fn=limit, timeout=120)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert ("The bitmaps to load need 16384 MiB of memory, more than the 2048 MiB "
                "allowed for one image") in p.stderr, p.stderr
    assert path.read_bytes() == before
    # Read-only opens load no bits: info works.
    p = run(SEN_IMG, "info", path)
    assert "b1023" in p.stdout


def test_bitmaps_within_the_memory_limit_still_load(tmp_path):
    """The limit is on their memory, not their number: 1024 bitmaps of 256 KiB each (a
    1 GiB disk) still open read-write, and QEMU finds the 64 of them it reads valid."""
    path = tmp_path / "some.qcow2"
    many_bitmaps_image(path, 1024, "1G")
    run(SEN_IMG, "bitmap", "--disable", path, "b0007")
    flags = json.loads(run(SEN_IMG, "info", "--output=json", path).stdout)[
        "format-specific"]["data"]["bitmaps"]
    assert len(flags) == 1024
    path = tmp_path / "few.qcow2"
    many_bitmaps_image(path, 64, "1G")
    run(SEN_IMG, "bitmap", "--disable", path, "b0007")
    flags = info_flags(path)
    assert flags["b0007"] == [] and flags["b0008"] == ["auto"] and len(flags) == 64
