"""sen-img amend against qemu-img amend: the same change (compat upgrade and downgrade,
lazy_refcounts, grow, shrink)
made by each to copies of one image gives the same `qemu-img info` and the same content,
and qemu-img check finds the amended image clean; refused amendments (creation-only
options, bad values, the backing file) fail in both and leave the image untouched."""
import json
import os
import shutil
import subprocess

import pytest
from img_util import SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools

pytestmark = needs_tools()


def make(path, create_opts):
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", create_opts, str(path),
                    "100M"], check=True)
    for cmd in ["write -P 9 0 64k", "write -P 8 60M 4k", "write -z 1M 64k"]:
        subprocess.run([QEMU_IO, "-f", "qcow2", "-c", cmd, str(path)], check=True,
                       stdout=subprocess.DEVNULL)


def info(path):
    out = subprocess.run([QEMU_IMG, "info", "--output=json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    d = json.loads(out)
    for k in ("filename", "actual-size", "dirty-flag"):
        d.pop(k, None)
    return d


@pytest.mark.parametrize("create_opts", ["compat=0.10,cluster_size=4k",
                                         "compat=0.10,cluster_size=512",
                                         "compat=1.1,cluster_size=64k"])
@pytest.mark.parametrize("amend", ["compat=1.1", "compat=v3", "size=200M", "size=61M",
                                   "compat=1.1,size=500M", "size=100M", "size=1G"])
def test_amend_like_qemu(tmp_path, create_opts, amend):
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    make(s, create_opts)
    shutil.copy(s, q)
    rs = subprocess.run([SEN_IMG, "amend", "-o", amend, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", amend, str(q)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 0, rs.stderr + rq.stderr
    assert info(s) == info(q)
    subprocess.run([QEMU_IMG, "check", "-q", str(s)], check=True)
    subprocess.run([QEMU_IMG, "compare", "-q", str(s), str(q)], check=True)
    # And the upgraded image is usable for writes by qemu afterwards.
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -z 0 4k", str(s)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([QEMU_IMG, "check", "-q", str(s)], check=True)


@pytest.mark.parametrize("amend", ["cluster_size=512", "compat=2.0", "size=abc",
                                   "backing_file=base.qcow2", "nonsense=1"])
def test_amend_refused(tmp_path, amend):
    s = tmp_path / "s.qcow2"
    make(s, "compat=0.10,cluster_size=4k")
    before = s.read_bytes()
    rs = subprocess.run([SEN_IMG, "amend", "-o", amend, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", amend, str(s)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 1, rs.stderr + rq.stderr
    assert rs.stderr.startswith("sen-img: ")
    assert s.read_bytes() == before


def test_amend_raw_refused(tmp_path):
    r = tmp_path / "r.raw"
    r.write_bytes(b"\0" * 65536)
    rs = subprocess.run([SEN_IMG, "amend", "-f", "raw", "-o", "size=1M", str(r)],
                        capture_output=True, text=True)
    assert rs.returncode == 1
    assert "does not support option amendment" in rs.stderr


def qemu_io(path, *cmds):
    for cmd in cmds:
        subprocess.run([QEMU_IO, "-f", "qcow2", "-c", cmd, str(path)], check=True,
                       stdout=subprocess.DEVNULL)


def refused_like_qemu(s, amend):
    """Both tools refuse `amend -o amend` on s with the same message and leave it intact."""
    before = s.read_bytes()
    rs = subprocess.run([SEN_IMG, "amend", "-o", amend, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", amend, str(s)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 1, rs.stderr + rq.stderr
    assert rs.stderr.replace("sen-img: ", "") == rq.stderr.replace("qemu-img: ", "")
    assert s.read_bytes() == before
    return rs


def snapshot_views(tmp_path, p):
    """{snapshot name: its guest-visible bytes} of the image at p."""
    views = {}
    for sn in info(p).get("snapshots", []):
        view = tmp_path / (p.name + "." + sn["name"] + ".raw")
        subprocess.run([QEMU_IMG, "convert", "-O", "raw", "-l", sn["name"], str(p),
                        str(view)], check=True)
        views[sn["name"]] = view.read_bytes()
    return views


def map_shape(p):
    """qemu-img map of p per 512-byte sector, without host offsets: (present, zero, data,
    depth).  Where a tool put a cluster differs, not what the guest and the map see."""
    out = []
    for e in json.loads(subprocess.run([QEMU_IMG, "map", "--output=json", str(p)],
                                       check=True, capture_output=True, text=True).stdout):
        out += [(e["present"], e["zero"], e["data"], e["depth"])] * (e["length"] // 512)
    return out


def same_as_qemu(tmp_path, s, q, snapshots=None):
    """info, content, map and check agree; so does every snapshot's content, or, given
    snapshots (their views before the change), sen's snapshots still read as those."""
    assert info(s) == info(q)
    subprocess.run([QEMU_IMG, "check", "-q", str(s)], check=True)
    subprocess.run([QEMU_IMG, "compare", "-q", str(s), str(q)], check=True)
    if snapshots is None:
        maps = [subprocess.run([QEMU_IMG, "map", "--output=json", str(p)], check=True,
                               capture_output=True, text=True).stdout for p in (s, q)]
        assert maps[0] == maps[1]
        assert snapshot_views(tmp_path, s) == snapshot_views(tmp_path, q)
    else:
        assert map_shape(s) == map_shape(q)
        views = snapshot_views(tmp_path, s)
        assert views.keys() == snapshots.keys()
        for name in views:
            assert views[name] == snapshots[name], name


# Zero clusters of both kinds (qemu-io `write -z` keeps an allocated cluster as a
# preallocated zero cluster, `-z -u` unmaps it), in the active image and in a snapshot,
# with and without a backing file.
@pytest.mark.parametrize("create_opts", ["cluster_size=4k", "cluster_size=512",
                                         "cluster_size=64k,lazy_refcounts=on",
                                         "compression_type=zstd,cluster_size=64k"])
@pytest.mark.parametrize("backed", [False, True])
def test_downgrade_like_qemu(tmp_path, create_opts, backed):
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    backing = []
    if backed:
        base = tmp_path / "base.qcow2"
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(base), "10M"], check=True)
        qemu_io(base, "write -P 5 0 10M")
        backing = ["-b", str(base), "-F", "qcow2"]
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", create_opts, *backing,
                    str(s), "10M"], check=True)
    qemu_io(s, "write -P 3 0 256k", "write -z 8k 8k", "write -z -u 1M 128k",
            "write -z 3M 8k")
    subprocess.run([QEMU_IMG, "snapshot", "-c", "s1", str(s)], check=True)
    qemu_io(s, "write -z 0 64k", "write -z -u 5M 64k", "write -P 4 2M 4k")
    shutil.copy(s, q)
    before = snapshot_views(tmp_path, s)
    rs = subprocess.run([SEN_IMG, "amend", "-o", "compat=0.10", str(s)], capture_output=True,
                        text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", "compat=0.10", str(q)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 0, rs.stderr + rq.stderr
    assert info(s)["format-specific"]["data"]["compat"] == "0.10"
    # `write -z 0 64k` after the snapshot left preallocated zero clusters whose host
    # clusters s1 still reads its data from: qemu-img 7.2 zeroes them in place and s1
    # loses that data; sen-img gives the active layer zeroed clusters of its own.  So the
    # snapshot must read as before the amend, not as qemu-img leaves it.
    same_as_qemu(tmp_path, s, q, snapshots=before)


@pytest.mark.parametrize("create_opts,io,amend", [
    ("refcount_bits=8", None, "compat=0.10"),
    ("extended_l2=on", None, "compat=0.10"),
    ("compression_type=zstd", "write -c 0 64k", "compat=0.10"),
    ("compat=0.10", None, "lazy_refcounts=on"),
    ("compat=1.1", None, "compat=0.10,lazy_refcounts=on"),
    ("compat=1.1", None, "lazy_refcounts=maybe"),
])
def test_downgrade_and_lazy_refused(tmp_path, create_opts, io, amend):
    s = tmp_path / "s.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", create_opts, str(s), "10M"],
                   check=True)
    qemu_io(s, "write -z 0 64k", *([io] if io else []))
    refused_like_qemu(s, amend)


@pytest.mark.parametrize("create_opts,amend", [
    ("compat=1.1", "lazy_refcounts=on"),
    ("compat=1.1,lazy_refcounts=on", "lazy_refcounts=off"),
    ("compat=0.10", "compat=1.1,lazy_refcounts=on"),
    ("compat=1.1,lazy_refcounts=on", "compat=0.10"),
])
def test_lazy_refcounts_like_qemu(tmp_path, create_opts, amend):
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    make(s, create_opts)
    shutil.copy(s, q)
    rs = subprocess.run([SEN_IMG, "amend", "-o", amend, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", amend, str(q)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 0, rs.stderr + rq.stderr
    same_as_qemu(tmp_path, s, q)


# ---- refcount_bits ----
WIDTHS = [1, 2, 4, 8, 16, 32, 64]


def snapshot_view(path, name, out):
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", "-l", name, str(path), str(out)],
                   check=True)
    return out.read_bytes()


def refcount_bits_of(path):
    return info(path)["format-specific"]["data"]["refcount-bits"]


def make_by_qemu(path, cluster_size):
    """Data, compressed clusters and snapshots, by qemu-img/qemu-io.  Each qemu-io run
    starts a fresh host cluster for compressed data, and everything the snapshot holds is
    overwritten afterwards, so every refcount is 1 and even refcount_bits=1 fits."""
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
                    f"cluster_size={cluster_size}", str(path), "16M"], check=True)
    qemu_io(path, "write -P 1 0 64k")
    qemu_io(path, f"write -c -P 7 1M {cluster_size}")
    subprocess.run([QEMU_IMG, "snapshot", "-c", "s1", str(path)], check=True)
    qemu_io(path, "write -P 2 0 64k")
    qemu_io(path, f"write -P 3 1M {cluster_size}")
    qemu_io(path, f"write -c -P 4 2M {cluster_size}")
    qemu_io(path, "write -z 3M 64k")


def make_by_sen(tmp_path, path):
    """Compressed by sen-img convert -c (packed, so refcounts above 1), then two snapshots
    by sen-img: shared clusters get refcount 3 and more, which narrow widths refuse."""
    raw = tmp_path / "src.raw"
    data = bytearray(8 << 20)
    for i in range(0, len(data), 65536):
        data[i:i + 4096] = bytes([(i >> 16) & 0xff]) * 2048 + os.urandom(2048)
    raw.write_bytes(bytes(data))
    subprocess.run([SEN_IMG, "convert", "-q", "-c", "-O", "qcow2", "-o", "cluster_size=4k",
                    str(raw), str(path)], check=True)
    for name in ("s1", "s2"):
        subprocess.run([SEN_IMG, "snapshot", "-c", name, str(path)], check=True)


def amend_both(tmp_path, src, bits):
    """Amends copies of src with sen-img and qemu-img; returns (sen copy, result, qemu
    result)."""
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    shutil.copy(src, s)
    shutil.copy(src, q)
    opt = f"refcount_bits={bits}"
    rs = subprocess.run([SEN_IMG, "amend", "-o", opt, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", opt, str(q)], capture_output=True,
                        text=True)
    return s, rs, rq


def check_amended(tmp_path, src, s, bits):
    """qemu-img finds the amended image clean, with the new width and the same content
    in the active image and in every snapshot."""
    r = subprocess.run([QEMU_IMG, "check", "--output=json", str(s)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    chk = json.loads(r.stdout)
    assert not chk.get("corruptions") and not chk.get("leaks"), chk
    assert refcount_bits_of(s) == bits
    subprocess.run([QEMU_IMG, "compare", "-q", str(src), str(s)], check=True)
    snaps = info(src).get("snapshots", [])
    assert [sn["name"] for sn in info(s).get("snapshots", [])] == [sn["name"] for sn in snaps]
    for sn in snaps:
        assert (snapshot_view(s, sn["name"], tmp_path / "a.raw") ==
                snapshot_view(src, sn["name"], tmp_path / "b.raw")), sn["name"]


@pytest.mark.parametrize("cluster_size", [512, 65536])
@pytest.mark.parametrize("bits", WIDTHS)
def test_refcount_bits_qemu_made(tmp_path, cluster_size, bits):
    src = tmp_path / "src.qcow2"
    make_by_qemu(src, cluster_size)
    s, rs, rq = amend_both(tmp_path, src, bits)
    assert rs.returncode == rq.returncode == 0, rs.stderr + rq.stderr
    check_amended(tmp_path, src, s, bits)
    # Sen's driver keeps working on the new width: a write, then qemu-img still agrees.
    raw = tmp_path / "new.raw"
    raw.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
    subprocess.run([SEN_IMG, "convert", "-q", "-n", "-O", "qcow2", str(raw), str(s)],
                   check=True)
    subprocess.run([QEMU_IMG, "check", "-q", str(s)], check=True)
    subprocess.run([QEMU_IMG, "compare", "-q", "-f", "raw", "-F", "qcow2", str(raw), str(s)],
                   check=True)


@pytest.mark.parametrize("bits", WIDTHS)
def test_refcount_bits_sen_made(tmp_path, bits):
    """Where qemu-img refuses (a refcount that does not fit), sen-img refuses with the
    same message and leaves the image byte-identical; otherwise both succeed."""
    src = tmp_path / "src.qcow2"
    make_by_sen(tmp_path, src)
    before = src.read_bytes()
    s, rs, rq = amend_both(tmp_path, src, bits)
    assert rs.returncode == rq.returncode, rs.stderr + rq.stderr
    if rq.returncode:
        assert bits < 8
        assert rs.stderr.replace("sen-img: ", "") == rq.stderr.replace("qemu-img: ", "")
        assert s.read_bytes() == before
    else:
        check_amended(tmp_path, src, s, bits)


def test_refcount_bits_1_with_snapshot_refused(tmp_path):
    s = tmp_path / "s.qcow2"
    make(s, "compat=1.1")
    subprocess.run([QEMU_IMG, "snapshot", "-c", "s1", str(s)], check=True)
    rs = refused_like_qemu(s, "refcount_bits=1")
    assert "Cannot decrease refcount entry width to 1 bits" in rs.stderr


@pytest.mark.parametrize("create_opts,amend", [
    ("compat=0.10", "refcount_bits=8"),
    ("compat=1.1", "compat=0.10,refcount_bits=8"),
    ("compat=1.1", "refcount_bits=3"),
    ("compat=1.1", "refcount_bits=128"),
    ("compat=1.1", "refcount_bits=0"),
    ("compat=1.1", "refcount_bits=x"),
])
def test_refcount_bits_refused(tmp_path, create_opts, amend):
    s = tmp_path / "s.qcow2"
    make(s, create_opts)
    refused_like_qemu(s, amend)


@pytest.mark.parametrize("amend", ["compat=1.1,refcount_bits=8",
                                   "compat=1.1,refcount_bits=64,lazy_refcounts=on",
                                   "compat=0.10,refcount_bits=16"])
def test_refcount_bits_with_compat_like_qemu(tmp_path, amend):
    """Upgrade before the width change, downgrade after it, as qemu-img orders them."""
    s, q = tmp_path / "s.qcow2", tmp_path / "q.qcow2"
    make(s, "compat=0.10" if "1.1" in amend else "compat=1.1,refcount_bits=8")
    shutil.copy(s, q)
    rs = subprocess.run([SEN_IMG, "amend", "-o", amend, str(s)], capture_output=True, text=True)
    rq = subprocess.run([QEMU_IMG, "amend", "-o", amend, str(q)], capture_output=True,
                        text=True)
    assert rs.returncode == rq.returncode == 0, rs.stderr + rq.stderr
    assert info(s)["format-specific"] == info(q)["format-specific"]
    subprocess.run([QEMU_IMG, "check", "-q", str(s)], check=True)
    subprocess.run([QEMU_IMG, "compare", "-q", str(s), str(q)], check=True)
