"""preallocation=metadata|falloc|full (create and resize) against qemu-img.

The images sen-img creates or grows with preallocation pass `qemu-img check` clean, read
back as qemu-img's do (`qemu-img compare`), have the same file size as qemu-img's (so the
same clusters are mapped), the same allocation in the file system (du, within the
metadata clusters qemu-img leaves sparse) and the same `qemu-img map` (what is present,
data and zero; the host offsets too where the two layouts coincide: qemu-img places
falloc/full data after all metadata when it needs several L2 tables, sen-img per L2
range).  Bad modes and shrinking with preallocation are refused like qemu-img refuses
them, leaving the image untouched.
"""
import json
import os
import shutil

import pytest
from img_util import SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools, run

pytestmark = needs_tools()

MODES = ["metadata", "falloc", "full"]


def qemu_map(path, offsets):
    entries = json.loads(run(QEMU_IMG, "map", "--output=json", path).stdout)
    if offsets:
        return entries
    merged = []
    for e in entries:
        e.pop("offset", None)
        last = merged[-1] if merged else None
        if last and all(last[k] == e[k] for k in ("depth", "present", "zero", "data")) and \
                last["start"] + last["length"] == e["start"]:
            last["length"] += e["length"]
        else:
            merged.append(e)
    return merged


def allocated_kib(path):
    return os.stat(path).st_blocks // 2


def same_as_qemu(s, q, mode, offsets, exact_size=True):
    run(QEMU_IMG, "check", "-q", s)
    run(QEMU_IMG, "compare", "-q", s, q)
    if exact_size:
        assert os.path.getsize(s) == os.path.getsize(q)
    else:
        # Growing, qemu-img may leave a gap cluster or two before the new data; never less.
        assert os.path.getsize(s) <= os.path.getsize(q)
    assert qemu_map(s, offsets) == qemu_map(q, offsets)
    if mode != "metadata":
        # Everything mapped is really allocated; metadata clusters may differ in sparseness.
        assert abs(allocated_kib(s) - allocated_kib(q)) <= 5 * 64 + 64


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opts,size,offsets", [("cluster_size=65536", "20M", True),
                                               ("cluster_size=4096", "20M", False),
                                               ("cluster_size=65536,extended_l2=on", "20M", True),
                                               ("compat=0.10,cluster_size=16384", "20M", True),
                                               ("cluster_size=512,refcount_bits=2", "5M", False)])
def test_create_like_qemu(tmp_path, mode, opts, size, offsets):
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    o = f"preallocation={mode},{opts}"
    run(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", o, s, size)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", o, q, size)
    same_as_qemu(s, q, mode, offsets)
    # Writes land in the preallocated clusters: nothing new is allocated.
    size = os.path.getsize(s)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 6 1M 3M", s)
    assert os.path.getsize(s) == size
    run(QEMU_IMG, "check", "-q", s)


def test_create_with_backing(tmp_path):
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "4M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 3 0 4M", base)
    bad = run(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata",
              "-b", base, "-F", "qcow2", tmp_path / "x.qcow2", check=False)
    assert bad.returncode == 1
    assert "Backing file and preallocation" in bad.stderr
    # With extended L2 the subclusters stay unallocated: the backing data still shows.
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    for tool, img in ((SEN_IMG, s), (QEMU_IMG, q)):
        run(tool, "create", "-q", "-f", "qcow2", "-o",
            "preallocation=falloc,extended_l2=on", "-b", base, "-F", "qcow2", img)
    run(QEMU_IMG, "compare", "-q", s, base)
    same_as_qemu(s, q, "falloc", True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cs", ["65536", "4096"])
def test_resize_like_qemu(tmp_path, mode, cs):
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cs}", s, "1000k")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 1000k", s)
    shutil.copy(s, q)
    run(SEN_IMG, "resize", f"--preallocation={mode}", s, "+9M")
    run(QEMU_IMG, "resize", f"--preallocation={mode}", q, "+9M")
    same_as_qemu(s, q, mode, mode == "metadata" and cs == "65536", exact_size=False)


@pytest.mark.parametrize("fmt,args", [("qcow2", ["--preallocation=bogus", "4M"]),
                                      ("qcow2", ["--preallocation=full", "2M"]),
                                      ("qcow2", ["--preallocation=full", "--shrink", "1M"]),
                                      ("raw", ["--preallocation=metadata", "4M"])])
def test_resize_refused(tmp_path, fmt, args):
    img = tmp_path / "img"
    run(QEMU_IMG, "create", "-q", "-f", fmt, img, "2M")
    before = img.read_bytes()
    size_arg = args[-1]
    rs = run(SEN_IMG, "resize", "-f", fmt, *args[:-1], img, size_arg, check=False)
    rq = run(QEMU_IMG, "resize", "-f", fmt, *args[:-1], img, size_arg, check=False)
    assert rs.returncode == rq.returncode == 1, rs.stderr + rq.stderr
    assert rs.stderr.replace("sen-img: ", "") == rq.stderr.replace("qemu-img: ", "")
    assert img.read_bytes() == before


@pytest.mark.parametrize("mode", ["falloc", "full"])
def test_resize_raw(tmp_path, mode):
    s, q = tmp_path / "s.raw", tmp_path / "q.raw"
    for tool, img in ((SEN_IMG, s), (QEMU_IMG, q)):
        run(QEMU_IMG, "create", "-q", "-f", "raw", img, "1M")
        run(tool, "resize", "-f", "raw", f"--preallocation={mode}", img, "5M")
    assert s.read_bytes() == q.read_bytes() == bytes(5 << 20)
    assert allocated_kib(s) >= 4 * 1024
