"""QCOW2 interoperability with Debian's qemu-img as the oracle.

Both ways: images sen-img writes pass `qemu-img check` with no errors or leaks and
`qemu-img compare` equal to the source data; images qemu-img/qemu-io write, sen-img reads
byte-identically (checked through `sen-img convert -O raw`) and finds clean.
"""
import json
import os
import random
import shutil
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()

MiB = 1024 * 1024


def sen(*args, check=True):
    return run(SEN_IMG, *args, check=check)


def make_raw(path, size, seed):
    """Random data in runs, with zero holes, so sparse detection and COW both matter."""
    rnd = random.Random(seed)
    data = bytearray(size)
    pos = 0
    while pos < size:
        n = rnd.randrange(1, 200 * 1024)
        kind = rnd.randrange(3)
        if kind == 0:
            data[pos:pos + n] = rnd.randbytes(min(n, size - pos))
        elif kind == 1:
            data[pos:pos + n] = bytes([rnd.randrange(256)]) * min(n, size - pos)
        pos += n
    path.write_bytes(bytes(data[:size]))


WRITE_MATRIX = [
    "cluster_size=512",
    "cluster_size=512,refcount_bits=1",
    "cluster_size=1024,refcount_bits=64",
    "cluster_size=4096,refcount_bits=2",
    "cluster_size=4096,refcount_bits=8",
    "cluster_size=65536",
    "cluster_size=65536,refcount_bits=32",
    "cluster_size=65536,extended_l2=on",
    "cluster_size=2M",
    "compat=0.10",
    "cluster_size=16384,lazy_refcounts=on",
]


@pytest.mark.parametrize("opts", WRITE_MATRIX)
def test_sen_writes_qemu_checks(tmp_path, opts):
    raw = tmp_path / "src.raw"
    img = tmp_path / "out.qcow2"
    make_raw(raw, 5 * MiB + 4096, seed=hash(opts) & 0xffff)
    sen("convert", "-f", "raw", "-O", "qcow2", "-o", opts, raw, img)
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", "-f", "raw", "-F", "qcow2", raw, img)
    # And our own checker agrees.
    assert sen("check", img, check=False).returncode == 0


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
@pytest.mark.parametrize("cs", ["4096", "65536", "2M"])
def test_sen_compressed(tmp_path, ctype, cs):
    raw = tmp_path / "src.raw"
    img = tmp_path / "out.qcow2"
    make_raw(raw, 4 * MiB, seed=7)
    sen("convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype},cluster_size={cs}",
        raw, img)
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", raw, img)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert info["format-specific"]["data"]["compression-type"] == ctype


def test_sen_compressed_threads_same_layout(tmp_path):
    """convert -c compresses on threads but writes in order: the image is byte-identical
    to a one-thread copy, also with a partial last cluster; -m outside 1..16 is refused."""
    raw = tmp_path / "src.raw"
    make_raw(raw, 3 * MiB + 12345, seed=11)
    outs = []
    for m in ("1", "8"):
        img = tmp_path / f"m{m}.qcow2"
        sen("convert", "-c", "-m", m, "-O", "qcow2", raw, img)
        qemu_check_clean(img)
        run(QEMU_IMG, "compare", raw, img)
        outs.append(img.read_bytes())
    assert outs[0] == outs[1]
    bad = sen("convert", "-c", "-m", "17", "-O", "qcow2", raw, tmp_path / "bad.qcow2",
              check=False)
    assert bad.returncode == 1 and "number of coroutines" in bad.stderr
    assert not (tmp_path / "bad.qcow2").exists()


def qemu_writes(img, size, seed):
    """Random qemu-io writes (data, zeroes, compressed, discards) into img."""
    rnd = random.Random(seed)
    cmds = []
    for _ in range(40):
        off = rnd.randrange(0, size - 300 * 1024) // 512 * 512
        ln = rnd.randrange(1, 600) * 512
        op = rnd.randrange(5)
        if op == 0:
            cmds.append(f"write -z {off} {ln}")
        elif op == 1:
            cmds.append(f"discard {off} {ln}")
        else:
            cmds.append(f"write -P {rnd.randrange(1, 256)} {off} {ln}")
    args = [QEMU_IO, "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    run(*args, img)


READ_MATRIX = [
    "cluster_size=512",
    "cluster_size=4096,refcount_bits=1",
    "cluster_size=65536",
    "cluster_size=65536,extended_l2=on",
    "cluster_size=32768,extended_l2=on,refcount_bits=64",
    "compat=0.10",
    "cluster_size=2M",
]


@pytest.mark.parametrize("opts", READ_MATRIX)
def test_qemu_writes_sen_reads(tmp_path, opts):
    img = tmp_path / "q.qcow2"
    size = 8 * MiB
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, img, size)
    qemu_writes(img, size, seed=len(opts))
    ref = tmp_path / "ref.raw"
    out = tmp_path / "out.raw"
    run(QEMU_IMG, "convert", "-O", "raw", img, ref)
    sen("convert", "-O", "raw", img, out)
    assert ref.read_bytes() == out.read_bytes()
    assert sen("check", img, check=False).returncode == 0


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_qemu_compressed_sen_reads(tmp_path, ctype):
    raw = tmp_path / "src.raw"
    img = tmp_path / "q.qcow2"
    out = tmp_path / "out.raw"
    make_raw(raw, 3 * MiB, seed=3)
    run(QEMU_IMG, "convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype}", raw, img)
    sen("convert", "-O", "raw", img, out)
    assert out.read_bytes() == raw.read_bytes()
    assert sen("check", img, check=False).returncode == 0
    # Overwriting compressed clusters with sen frees them cleanly.
    img2 = tmp_path / "q2.qcow2"
    shutil.copy(img, img2)
    sen("convert", "-n", "-O", "qcow2", raw, img2)
    qemu_check_clean(img2)
    run(QEMU_IMG, "compare", raw, img2)


def test_backing_chain_three_deep(tmp_path):
    base, mid, top = tmp_path / "base.qcow2", tmp_path / "mid.qcow2", tmp_path / "top.qcow2"
    size = 6 * MiB
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, size)
    run(QEMU_IO, "-c", "write -P 1 0 3M", base)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", mid)
    run(QEMU_IO, "-c", "write -P 2 1M 1536k", "-c", "write -z 2560k 100k", mid)
    # sen-img writes the top layer on qemu's chain.
    sen("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", mid.name, "-F", "qcow2",
        top)
    info = json.loads(sen("info", "--output=json", "--backing-chain", top).stdout)
    assert [i["filename"] for i in info] == [str(top), str(tmp_path / "mid.qcow2"),
                                             str(tmp_path / "base.qcow2")]
    ref = tmp_path / "ref.raw"
    run(QEMU_IMG, "convert", "-O", "raw", top, ref)
    out = tmp_path / "out.raw"
    sen("convert", "-O", "raw", top, out)
    assert out.read_bytes() == ref.read_bytes()
    # Overwrite part of it through sen: whole new content, then compare.
    new = tmp_path / "new.raw"
    make_raw(new, size, seed=11)
    sen("convert", "-n", "-f", "raw", "-O", "qcow2", new, top)
    qemu_check_clean(top)
    run(QEMU_IMG, "compare", "-f", "raw", "-F", "qcow2", new, top)
    qemu_check_clean(mid)


INFO_CASES = [
    ["-o", "cluster_size=4096,refcount_bits=1"],
    ["-o", "compat=0.10"],
    ["-o", "extended_l2=on,compression_type=zstd,lazy_refcounts=on"],
]


@pytest.mark.parametrize("args", INFO_CASES)
def test_info_json_matches_qemu(tmp_path, args):
    img = tmp_path / "i.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", *args, img, "64M")
    run(QEMU_IO, "-c", "write -P 9 1M 1M", img)
    ours = json.loads(sen("info", "--output=json", img).stdout)
    theirs = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert ours == theirs


def test_info_and_check_raw(tmp_path):
    raw = tmp_path / "r.raw"
    make_raw(raw, MiB, seed=5)
    ours = json.loads(sen("info", "--output=json", raw).stdout)
    assert ours == json.loads(run(QEMU_IMG, "info", "--output=json", raw).stdout)
    assert sen("check", raw, check=False).returncode == 63


def test_info_backing_and_snapshots(tmp_path):
    base, top = tmp_path / "b.qcow2", tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "16M")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", top)
    run(QEMU_IMG, "snapshot", "-c", "first", top)
    run(QEMU_IO, "-c", "write -P 3 0 64k", top)
    run(QEMU_IMG, "snapshot", "-c", "second", top)
    ours = json.loads(sen("info", "--output=json", top).stdout)
    theirs = json.loads(run(QEMU_IMG, "info", "--output=json", top).stdout)
    assert ours == theirs
    # Snapshots hold references: our checker must account for them.
    assert sen("check", top, check=False).returncode == 0
    ours_h = sen("info", top).stdout
    assert "backing file: b.qcow2" in ours_h and "Snapshot list:" in ours_h


def test_info_snapshots_text_matches_qemu(tmp_path):
    """info --output=json with snapshots is qemu-img's text, key order included; a
    snapshot without an instruction count (QEMU's savevm stores -1) has no icount."""
    base, img = tmp_path / "b.qcow2", tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "16M")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", img)
    run(QEMU_IMG, "snapshot", "-c", "with-icount", img)
    run(QEMU_IMG, "snapshot", "-c", "savevm-like", img)
    with open(img, "r+b") as f:
        f.seek(64)
        table = struct.unpack(">Q", f.read(8))[0]
        f.seek(table)
        entry = f.read(40)
        id_len, name_len = struct.unpack(">HH", entry[12:16])
        extra = struct.unpack(">I", entry[36:40])[0]
        second = table + (40 + extra + id_len + name_len + 7) // 8 * 8
        f.seek(second + 40 + 16)  # the second entry's icount, in its extra data
        f.write(b"\xff" * 8)
    out = sen("info", "--output=json", img).stdout
    assert out == run(QEMU_IMG, "info", "--output=json", img).stdout
    assert out.count('"icount"') == 1


def refblock_poke(img, cluster, value):
    """Sets cluster's 16-bit refcount in the first refcount block of a 64k-cluster image."""
    with open(img, "r+b") as f:
        f.seek(48)
        rt_off = struct.unpack(">Q", f.read(8))[0]
        f.seek(rt_off)
        rb_off = struct.unpack(">Q", f.read(8))[0]
        f.seek(rb_off + 2 * cluster)
        f.write(struct.pack(">H", value))


def test_check_leak_and_repair(tmp_path):
    img = tmp_path / "l.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "16M")
    run(QEMU_IO, "-c", "write -P 5 0 128k", img)
    end = os.path.getsize(img) // 65536
    refblock_poke(img, end + 2, 1)
    with open(img, "ab") as f:
        f.truncate((end + 3) * 65536)
    assert run(QEMU_IMG, "check", img, check=False).returncode == 3
    p = sen("check", img, check=False)
    assert p.returncode == 3
    assert "1 leaked clusters were found on the image." in p.stdout
    js = json.loads(sen("check", "--output=json", img, check=False).stdout)
    assert js["leaks"] == 1 and js["check-errors"] == 0
    assert sen("check", "-r", "leaks", img, check=False).returncode == 0
    qemu_check_clean(img)


@pytest.mark.parametrize("where", ["past-eof", "partial-last-cluster", "both",
                                   "data-past-eof"])
def test_check_leaks_past_eof_like_qemu(tmp_path, where):
    """A refcount left past the end of the file is no leak to qemu-img (it compares only
    the file's clusters); one in a partial last cluster is; a data cluster cut off by a
    truncation is a corruption.  Output and exit code match for check, --output=json,
    -r leaks and -r all (each on its own copy), except that -r all repairs the cut-off
    cluster's entry, which qemu-img leaves in place (test_qcow2_check_past_eof.py)."""
    img = tmp_path / "e.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "16M")
    run(QEMU_IO, "-c", "write -P 5 0 128k", img)
    end = os.path.getsize(img) // 65536
    if where == "data-past-eof":
        with open(img, "ab") as f:
            f.truncate((end - 1) * 65536)
    if where in ("past-eof", "both"):
        refblock_poke(img, end + 3, 1)
    if where in ("partial-last-cluster", "both"):
        refblock_poke(img, end, 1)
        with open(img, "ab") as f:
            f.truncate(end * 65536 + 4096)
    for args in ([], ["--output=json"], ["-r", "leaks"], ["-r", "all"]):
        out = {}
        for name, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
            copy = tmp_path / ("%s.qcow2" % name)
            shutil.copyfile(img, copy)
            p = run(tool, "check", *args, copy, check=False)
            out[name] = (p.returncode, p.stdout.replace(str(copy), "IMG"),
                         p.stderr.replace(str(copy), "IMG"))
        if where == "data-past-eof" and args == ["-r", "all"]:
            assert (out["sen"][0], out["qemu"][0]) == (0, 2), out
            assert "No errors were found on the image." in out["sen"][1]
            continue
        assert out["sen"] == out["qemu"], args


def test_check_corruption_and_repair(tmp_path):
    img = tmp_path / "c.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "16M")
    run(QEMU_IO, "-c", "write -P 5 0 128k", img)
    with open(img, "rb") as f:
        f.seek(40)
        l1 = struct.unpack(">Q", f.read(8))[0]
    refblock_poke(img, l1 // 65536, 0)
    assert run(QEMU_IMG, "check", img, check=False).returncode == 2
    p = sen("check", img, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "errors were found on the image" in p.stdout
    # -r leaks does not fix corruptions; a cluster without any refcount needs the
    # refcount structure rebuilt, which -r leaks refuses (status 1, as qemu-img).
    copy = tmp_path / "q.qcow2"
    shutil.copyfile(img, copy)
    assert sen("check", "-r", "leaks", img, check=False).returncode == \
        run(QEMU_IMG, "check", "-r", "leaks", copy, check=False).returncode == 1
    p = sen("check", "-r", "all", img, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    qemu_check_clean(img)
    run(QEMU_IO, "-c", "read -P 5 0 128k", img)


def test_bad_inputs(tmp_path):
    p = sen("info", tmp_path / "missing.qcow2", check=False)
    assert p.returncode == 1 and "missing.qcow2" in p.stderr
    p = sen("create", "-f", "qcow2", "-o", "cluster_size=1000", tmp_path / "x.qcow2", "1M",
            check=False)
    assert p.returncode == 1 and "cluster_size" in p.stderr
    p = sen("create", "-f", "qcow2", "-o", "refcount_bits=3", tmp_path / "x.qcow2", "1M",
            check=False)
    assert p.returncode == 1 and "refcount_bits" in p.stderr
    p = sen("create", "-f", "qcow2", "-o", "bogus=1", tmp_path / "x.qcow2", "1M", check=False)
    assert p.returncode == 1 and "bogus" in p.stderr
    # An unknown incompatible feature bit is refused by name, and the image is untouched.
    img = tmp_path / "f.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M")
    with open(img, "r+b") as f:
        f.seek(72)
        f.write(struct.pack(">Q", 1 << 20))
    before = img.read_bytes()
    p = sen("check", "-r", "all", img, check=False)
    assert p.returncode == 1 and "Unknown incompatible feature: 20" in p.stderr
    assert img.read_bytes() == before
    # Garbage is not qcow2.
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"QFI\xfb" + os.urandom(4000))
    p = sen("info", "-f", "qcow2", junk, check=False)
    assert p.returncode == 1


def raw_variants(tmp_path, size, n):
    out = []
    for i in range(n):
        p = tmp_path / f"v{i}.raw"
        make_raw(p, size, seed=100 + i)
        out.append(p)
    return out


def test_snapshot_list_long_tag(tmp_path):
    """A tag of 17 characters or more shifts the row as in qemu-img 7.2 (its columns are
    "%-9s %-16s %8s%20s%13s%11s"), in snapshot -l and in info."""
    img = tmp_path / "s.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M")
    for tag in ("short", "a-tag-of-17-chars", "a-tag-much-longer-than-the-column"):
        run(QEMU_IMG, "snapshot", "-c", tag, img)
    assert sen("snapshot", "-l", img).stdout == run(QEMU_IMG, "snapshot", "-l", img).stdout
    assert sen("info", img).stdout.split("Snapshot list:")[1] == \
        run(QEMU_IMG, "info", img).stdout.split("Snapshot list:")[1]


@pytest.mark.parametrize("opts", ["cluster_size=4096", "cluster_size=65536,refcount_bits=4",
                                  "cluster_size=65536,extended_l2=on"])
def test_sen_snapshots(tmp_path, opts):
    """sen-img snapshot -c/-a/-d on data sen writes; qemu-img checks and applies them."""
    a, b, c = raw_variants(tmp_path, 4 * MiB, 3)
    img = tmp_path / "s.qcow2"
    sen("create", "-q", "-f", "qcow2", "-o", opts, img, "4M")
    sen("convert", "-n", "-O", "qcow2", a, img)
    sen("snapshot", "-c", "s1", img)
    sen("convert", "-n", "-O", "qcow2", b, img)
    sen("snapshot", "-c", "s2", img)
    sen("convert", "-n", "-O", "qcow2", c, img)
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", c, img)
    listing = run(QEMU_IMG, "snapshot", "-l", img).stdout
    assert " s1 " in listing and " s2 " in listing
    assert sen("snapshot", "-l", img).stdout == listing
    q = tmp_path / "q.qcow2"
    shutil.copy(img, q)
    run(QEMU_IMG, "snapshot", "-a", "s1", q)
    run(QEMU_IMG, "compare", a, q)
    sen("snapshot", "-a", "s1", img)
    run(QEMU_IMG, "compare", a, img)
    qemu_check_clean(img)
    sen("snapshot", "-a", "2", img)  # by id
    run(QEMU_IMG, "compare", b, img)
    sen("snapshot", "-d", "s2", img)
    qemu_check_clean(img)
    sen("snapshot", "-d", "s1", img)
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", b, img)
    assert sen("snapshot", "-d", "nope", img, check=False).returncode == 1


def test_qemu_snapshots_sen_writes(tmp_path):
    """Writes through L2 tables shared with qemu-made snapshots copy them correctly."""
    a, b = raw_variants(tmp_path, 4 * MiB, 2)
    img = tmp_path / "q.qcow2"
    run(QEMU_IMG, "convert", "-O", "qcow2", a, img)
    run(QEMU_IMG, "snapshot", "-c", "base", img)
    sen("convert", "-n", "-O", "qcow2", b, img)
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", b, img)
    run(QEMU_IMG, "snapshot", "-a", "base", img)
    run(QEMU_IMG, "compare", a, img)


def test_map_matches_qemu(tmp_path):
    base, top = tmp_path / "b.qcow2", tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "8M")
    run(QEMU_IO, "-c", "write -P 1 0 1M", "-c", "write -P 2 3M 512k", base)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 3 512k 1M", "-c", "write -z 5M 1M", "-c",
        "write -c -P 4 7M 64k", top)
    for img in (base, top):
        ours = json.loads(sen("map", "--output=json", img).stdout)
        theirs = json.loads(run(QEMU_IMG, "map", "--output=json", img).stdout)
        assert ours == theirs
        ours, theirs = sen("map", img, check=False), run(QEMU_IMG, "map", img, check=False)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


MAP_RANGES = [
    ["--start-offset=1000"],                       # inside a cluster: a partial entry
    ["--start-offset=1M", "--max-length=100k"],
    ["--max-length=70000"],
    ["--start-offset", "3M", "--max-length", "3000000"],  # across the backing data
    ["--start-offset=7M", "--max-length=1"],
    ["--start-offset=8M"],                         # at the end: qemu-img's empty entry
    ["--start-offset=9M", "--max-length=1M"],      # past the end
    ["--max-length=0"],
    ["--start-offset=-1"],
    ["--max-length=x"],
    ["--start-offset=9E"],
    ["--max-length=99999999999999999999"],
]


@pytest.mark.parametrize("opts", MAP_RANGES, ids=" ".join)
def test_map_range_matches_qemu(tmp_path, opts):
    """--start-offset/--max-length: the same entries (human and JSON), the same errors."""
    base, top = tmp_path / "b.qcow2", tmp_path / "t.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "8M")
    run(QEMU_IO, "-c", "write -P 1 0 1M", "-c", "write -P 2 3M 512k", base)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 3 512k 1M", "-c", "write -z 5M 1M", top)
    for out in ("human", "json"):
        args = ["map", f"--output={out}", *opts, top]
        ours, theirs = sen(*args, check=False), run(QEMU_IMG, *args, check=False)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr.replace("qemu-img", "sen-img"))


def test_map_max_length_saturates(tmp_path):
    """A start plus a length past INT64_MAX maps to the end (qemu-img's sum overflows and
    it maps nothing)."""
    img = tmp_path / "m.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M")
    run(QEMU_IO, "-c", "write -P 1 0 64k", img)
    out = json.loads(sen("map", "--output=json", "--start-offset=1000",
                         f"--max-length={2**63 - 1}", img).stdout)
    assert [(e["start"], e["length"], e["data"]) for e in out] == \
        [(1000, 65536 - 1000, True), (65536, 1024 * 1024 - 65536, False)]


@pytest.mark.parametrize("cs", ["512", "65536"])
def test_resize(tmp_path, cs):
    img = tmp_path / "r.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cs}", img, "1M")
    run(QEMU_IO, "-c", "write -P 7 0 1M", img)
    assert "Image resized." in sen("resize", img, "+99M").stdout
    qemu_check_clean(img)
    run(QEMU_IO, "-c", "read -P 7 0 1M", "-c", "read -P 0 1M 99M", img)
    p = sen("resize", img, "-99M", check=False)
    assert p.returncode == 1 and "--shrink" in p.stderr
    sen("resize", "--shrink", img, "-99.5M")
    qemu_check_clean(img)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert info["virtual-size"] == 512 * 1024
    sen("resize", img, "1M")
    run(QEMU_IO, "-c", "read -P 7 0 512k", "-c", "read -P 0 512k 512k", img)
    qemu_check_clean(img)


# qemu-img shrinks a big image of 512-byte clusters slowly: that one grows less.
@pytest.mark.parametrize("cs,big,far", [("512", 6 * MiB, 4 * MiB),
                                        ("65536", 3 << 30, 2 << 30)])
def test_resize_with_snapshots_like_qemu(tmp_path, cs, big, far):
    """Growing and shrinking keep every snapshot; applying one restores its size."""
    images = {}
    for tool in (SEN_IMG, QEMU_IMG):
        img = tmp_path / ("sen.qcow2" if tool == SEN_IMG else "qemu.qcow2")
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cs}", img, "1M")
        run(QEMU_IO, "-c", "write -P 1 0 1M", img)
        run(QEMU_IMG, "snapshot", "-c", "small", img)
        run(tool, "resize", img, big)
        run(QEMU_IO, "-c", "write -P 2 0 64k", "-c", f"write -P 3 {far} 1M", img)
        run(QEMU_IMG, "snapshot", "-c", "big", img)
        run(tool, "resize", "--shrink", img, "512k")
        run(QEMU_IO, "-c", "write -P 4 0 4k", img)
        qemu_check_clean(img)
        images[tool] = img
    s, q = images[SEN_IMG], images[QEMU_IMG]
    run(QEMU_IMG, "compare", "-q", s, q)
    for sn, size in (("big", big), ("small", MiB), ("big", big)):
        for tool, img in images.items():
            run(tool, "snapshot", "-a", sn, img)
            qemu_check_clean(img)
            info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
            assert info["virtual-size"] == size, (tool, sn)
        run(QEMU_IMG, "compare", "-q", s, q)
    run(QEMU_IO, "-c", "read -P 2 0 64k", "-c", f"read -P 3 {far} 1M", s)


@pytest.mark.parametrize("cs", ["512", "1024"])
def test_resize_grows_l1_beyond_one_refcount_block(tmp_path, cs):
    # Growing to 8G needs an L1 table of hundreds of contiguous clusters, more than one
    # refcount block covers with these cluster sizes: the refcount blocks for that run
    # must not be placed inside it.
    img = tmp_path / "big.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cs}", img, "100M")
    run(QEMU_IO, "-c", "write -P 9 50M 64k", img)
    for size in ("1G", "8G"):
        assert "Image resized." in sen("resize", img, size).stdout
        qemu_check_clean(img)
    run(QEMU_IO, "-c", "read -P 9 50M 64k", "-c", "read -P 0 7G 64k", img)
    run(QEMU_IO, "-c", "write -P 5 7G 64k", img)
    qemu_check_clean(img)


def test_compare_matches_qemu(tmp_path):
    a, b = raw_variants(tmp_path, 2 * MiB, 2)
    img = tmp_path / "a.qcow2"
    run(QEMU_IMG, "convert", "-O", "qcow2", a, img)
    for x, y in ((a, img), (a, b), (img, b)):
        ours, theirs = sen("compare", x, y, check=False), run(QEMU_IMG, "compare", x, y,
                                                              check=False)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    sen("resize", img, "+1M")
    assert sen("compare", a, img).returncode == 0
    assert sen("compare", "-s", a, img, check=False).returncode == 1
    assert sen("compare", a, tmp_path / "missing", check=False).returncode == 2


def test_rebase(tmp_path):
    b1, b2, top = tmp_path / "b1.qcow2", tmp_path / "b2.qcow2", tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", b1, "4M")
    run(QEMU_IO, "-c", "write -P 1 0 2M", b1)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", b2, "3M")
    run(QEMU_IO, "-c", "write -P 2 1M 2M", b2)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "b1.qcow2",
        "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 3 1536k 100k", top)
    before = tmp_path / "before.raw"
    run(QEMU_IMG, "convert", "-O", "raw", top, before)
    sen("rebase", "-b", "b2.qcow2", "-F", "qcow2", top)
    qemu_check_clean(top)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", top).stdout)
    assert info["backing-filename"] == "b2.qcow2"
    assert info["backing-filename-format"] == "qcow2"
    run(QEMU_IMG, "compare", "-f", "raw", before, top)
    # Unsafe mode only rewrites the header; "" removes the backing file.
    sen("rebase", "-u", "-b", "", top)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", top).stdout)
    assert "backing-filename" not in info
    qemu_check_clean(top)
    p = sen("rebase", "-b", "missing.qcow2", top, check=False)
    assert p.returncode == 1 and "missing.qcow2" in p.stderr


@pytest.mark.parametrize("cache,src_cache", [("none", "none"), ("writeback", "directsync")])
def test_rebase_cache_modes(tmp_path, cache, src_cache):
    """-t (the image) and -T (old and new backing, read in safe mode) are honoured: the
    O_DIRECT paths give the same result; a bad mode is refused naming it, image intact."""
    b1, b2, top = tmp_path / "b1.qcow2", tmp_path / "b2.qcow2", tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", b1, "4M")
    run(QEMU_IO, "-c", "write -P 1 0 3M", b1)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", b2, "4M")
    run(QEMU_IO, "-c", "write -P 2 1M 2M", b2)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "b1.qcow2",
        "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 3 1000k 3k", top)  # not sector aligned at the end
    before = tmp_path / "before.raw"
    run(QEMU_IMG, "convert", "-O", "raw", top, before)
    intact = top.read_bytes()
    for opt, what in (("-t", ""), ("-T", "source ")):
        p = sen("rebase", opt, "bogus", "-b", "b2.qcow2", "-F", "qcow2", top, check=False)
        assert p.returncode == 1 and f"Invalid {what}cache option: bogus" in p.stderr
        assert top.read_bytes() == intact
    sen("rebase", "-t", cache, "-T", src_cache, "-U", "-b", "b2.qcow2", "-F", "qcow2", top)
    qemu_check_clean(top)
    run(QEMU_IMG, "compare", "-f", "raw", before, top)


def test_shared_preamble(tmp_path):
    """commit/compare/rebase/snapshot parse -f, -h and the image names through args.c:
    -f is honoured (snapshot ignored it), compare's usage errors exit 1 as qemu-img's
    (its other errors 2), bad -t is refused."""
    img = tmp_path / "a.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M")
    p = sen("snapshot", "-f", "raw", "-c", "s1", img, check=False)
    assert p.returncode == 1 and "raw" in p.stderr
    sen("snapshot", "-f", "qcow2", "-c", "s1", img)
    assert "s1" in sen("snapshot", "-l", img).stdout
    p = sen("compare", img, check=False)
    assert p.returncode == 1 and "Expecting two image file names" in p.stderr
    p = sen("compare", "--output=json", img, img, check=False)
    assert p.returncode == 1 and "unrecognized option '--output=json'" in p.stderr
    p = sen("compare", "-T", "bogus", img, img, check=False)
    assert p.returncode == 2 and "Invalid source cache option: bogus" in p.stderr
    assert sen("compare", "-f", "qcow2", "-F", "qcow2", img, img).returncode == 0
    p = sen("commit", "-t", "bogus", img, check=False)
    assert p.returncode == 1 and "Invalid cache option: bogus" in p.stderr
    for cmd in ("commit", "rebase", "snapshot", "compare"):
        assert sen(cmd, "-h").stdout.startswith("usage: sen-img " + cmd)


def test_commit(tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "4M")
    run(QEMU_IO, "-c", "write -P 1 0 3M", base)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.qcow2",
        "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 3 1536k 100k", "-c", "write -z 2M 64k", "-c",
        "write -P 4 3M 1M", top)
    before = tmp_path / "before.raw"
    run(QEMU_IMG, "convert", "-O", "raw", top, before)
    assert "Image committed." in sen("commit", top).stdout
    qemu_check_clean(base)
    qemu_check_clean(top)
    run(QEMU_IMG, "compare", "-f", "raw", before, base)
    run(QEMU_IMG, "compare", "-f", "raw", before, top)
    theirs = json.loads(run(QEMU_IMG, "map", "--output=json", top).stdout)
    assert all(e["depth"] == 1 for e in theirs)  # the overlay is empty again
    p = sen("commit", base, check=False)
    assert p.returncode == 1 and "backing file" in p.stderr


def test_dd(tmp_path):
    raw = tmp_path / "in.raw"
    make_raw(raw, 3 * MiB, seed=9)
    img = tmp_path / "in.qcow2"
    run(QEMU_IMG, "convert", "-O", "qcow2", raw, img)
    for args in (["bs=4k", "skip=3", "count=100"], ["bs=1M"], ["bs=512", "skip=1000"]):
        ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
        for p in (ours, theirs):
            if p.exists():
                p.unlink()
        sen("dd", "-f", "qcow2", "-O", "qcow2", *args, f"if={img}", f"of={ours}")
        run(QEMU_IMG, "dd", "-f", "qcow2", "-O", "qcow2", *args, f"if={img}", f"of={theirs}")
        qemu_check_clean(ours)
        run(QEMU_IMG, "compare", "-s", ours, theirs)
