"""sen-img convert's parallel copy: -m chunks in flight, in-order writes unless -W, source
holes skipped through block status.  qemu-img is the oracle: every output must compare
equal to the source and check clean, whatever the worker count or write order."""
import json
import os
import random
import shutil
import subprocess
import time

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()

MiB = 1024 * 1024
# Past several 2 MiB copy chunks and not a multiple of a cluster: the last chunk and the
# last cluster are partial.
SIZE = 7 * MiB + 12345


def sen(*args, check=True):
    return run(SEN_IMG, *args, check=check)


def make_sparse_raw(path, seed):
    """Random data, zero-filled data and real holes (never written), in runs that start
    and end off cluster and chunk boundaries."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        pos = 0
        while pos < SIZE:
            n = min(rnd.randrange(1000, 700 * 1024), SIZE - pos)
            kind = rnd.randrange(3)
            if kind == 0:
                f.write(rnd.randbytes(n))
            elif kind == 1:
                f.write(bytes(n))
            else:
                f.seek(n, os.SEEK_CUR)
            pos += n
        f.truncate(SIZE)


@pytest.mark.parametrize("opts", [["-m", "1"], ["-m", "8"], ["-m", "16", "-W"],
                                  ["-S", "0"], ["-S", "64k"], ["-c", "-m", "3"]])
@pytest.mark.parametrize("out_fmt", ["qcow2", "raw"])
def test_convert_equals_source(tmp_path, opts, out_fmt):
    if "-c" in opts and out_fmt != "qcow2":
        pytest.skip("compression is qcow2 only")
    src = tmp_path / "src.raw"
    make_sparse_raw(src, seed=len(opts) * 7 + len(out_fmt))
    out = tmp_path / f"out.{out_fmt}"
    sen("convert", *opts, "-f", "raw", "-O", out_fmt, src, out)
    run(QEMU_IMG, "compare", "-f", "raw", "-F", out_fmt, src, out)
    if out_fmt == "qcow2":
        qemu_check_clean(out)
    if opts == ["-S", "0"] and out_fmt == "raw":
        # No sparse detection: every byte is written, holes of the source included.
        assert os.stat(out).st_blocks * 512 >= SIZE - 4096


def test_convert_in_order_layout_is_deterministic(tmp_path):
    """Without -W the writes follow guest order, so 1 and 16 workers give the same file."""
    src = tmp_path / "src.raw"
    make_sparse_raw(src, seed=5)
    outs = []
    for m in ("1", "16"):
        out = tmp_path / f"m{m}.qcow2"
        sen("convert", "-m", m, "-O", "qcow2", src, out)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_convert_onto_dirty_target_zeroes_holes(tmp_path):
    """-n onto an image full of other data: the source's holes and zero runs must be
    written as zeroes (the target does not read as zero), not skipped."""
    src = tmp_path / "src.raw"
    make_sparse_raw(src, seed=9)
    dirty = tmp_path / "dirty.raw"
    dirty.write_bytes(b"\xa5" * SIZE)
    for fmt in ("qcow2", "raw"):
        out = tmp_path / f"target.{fmt}"
        run(QEMU_IMG, "convert", "-f", "raw", "-O", fmt, dirty, out)
        sen("convert", "-n", "-m", "8", "-f", "raw", "-O", fmt, src, out)
        run(QEMU_IMG, "compare", "-f", "raw", "-F", fmt, src, out)


def test_convert_backing_chain_reads_through(tmp_path):
    """Clusters a qcow2 source leaves unallocated read from its backing file: block status
    says neither data nor zero there, so they must be read, not skipped."""
    base_raw = tmp_path / "base.raw"
    make_sparse_raw(base_raw, seed=13)
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", base_raw, base)
    top = tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
    run(QEMU_IO, "-c", "write -P 0x3c 1M 1536k", "-c", "write -z 4M 64k", top)
    ref = tmp_path / "ref.raw"
    run(QEMU_IMG, "convert", "-O", "raw", top, ref)
    out = tmp_path / "out.raw"
    sen("convert", "-m", "8", "-O", "raw", top, out)
    assert out.read_bytes() == ref.read_bytes()


def make_mixed_qcow2(tmp_path, create_opts):
    """A qcow2 image with every kind of cluster: data written in guest order (as
    qemu-img convert -S 0 lays it out) including zero-filled data, zero clusters,
    unallocated ones, a compressed one, and data clusters allocated out of order (at the
    end of the file) amid the in-order ones."""
    src_raw = tmp_path / "src.raw"
    make_sparse_raw(src_raw, seed=21)
    img = tmp_path / "mixed.qcow2"
    run(QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", "-S", "0", "-o", create_opts,
        src_raw, img)
    run(QEMU_IO, "-c", "write -z 1M 128k", "-c", "discard 2M 256k",
        "-c", "write -P 0x77 2113536 4096", "-c", "write -c -P 0x5a 2228224 128k",
        "-c", "write -P 0x3c 5M 8k", "-c", "write -z 6M 1536", img)
    return img


@pytest.mark.parametrize("create_opts", ["cluster_size=65536", "cluster_size=512",
                                         "extended_l2=on,cluster_size=131072"])
@pytest.mark.parametrize("opts", [[], ["-m", "1"], ["-U"], ["-S", "0"], ["-S", "64k"]])
def test_convert_qcow2_to_raw_equals_qemu_img(tmp_path, create_opts, opts):
    """qcow2 -> raw, where chunks whose data lies in order in the source file are written
    from a view of its page cache instead of being read: byte for byte what qemu-img
    writes, and no less sparse."""
    img = make_mixed_qcow2(tmp_path, create_opts)
    ref = tmp_path / "ref.raw"
    run(QEMU_IMG, "convert", *opts, "-f", "qcow2", "-O", "raw", img, ref)
    out = tmp_path / "out.raw"
    sen("convert", *opts, "-f", "qcow2", "-O", "raw", img, out)
    assert out.read_bytes() == ref.read_bytes()
    if "-S" not in opts:
        # No more allocated than qemu-img's output (which has 4 KiB more: its raw
        # create writes the first block to probe the alignment).
        assert os.stat(out).st_blocks <= os.stat(ref).st_blocks


def test_convert_qcow2_to_raw_data_not_read(tmp_path, eio_shim):
    """Data laid out in guest order is not read through pread at all (a read of it would
    fail here), unless -U: then another process may shrink the file under a view, so
    sen-img reads, and reports the error as qemu-img does."""
    src_raw = tmp_path / "src.raw"
    src_raw.write_bytes(random.Random(3).randbytes(5 * MiB))
    img = tmp_path / "inorder.qcow2"
    run(QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", "-S", "0", src_raw, img)
    mapping = json.loads(run(QEMU_IMG, "map", "--output=json", img).stdout)
    assert len(mapping) == 1 and mapping[0]["data"], mapping
    bad = mapping[0]["offset"] + 3 * MiB + 100
    env = dict(os.environ, LD_PRELOAD=str(eio_shim), SEN_TEST_EIO_OFFSET=str(bad))
    out = tmp_path / "out.raw"
    p = subprocess.run([str(SEN_IMG), "convert", "-O", "raw", str(img), str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == src_raw.read_bytes()
    out.unlink()
    p = subprocess.run([str(SEN_IMG), "convert", "-U", "-O", "raw", str(img), str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "error while reading" in p.stderr, p.stderr


SNAPSHOT_PARAMS = ["one", "1", "2", "snapshot.id=1", "snapshot.name=one",
                   "snapshot.id=1,snapshot.name=one", "snapshot.id=2,snapshot.name=one",
                   "snapshot.id=3", "nope", "snapshot.name=", "snapshot.foo=1",
                   "snapshot.id=1,foo=2"]


@pytest.fixture(scope="module")
def snap_image(tmp_path_factory):
    """4M with 3M of data in snapshot "one" (id 1), then grown to 8M, 512k rewritten and
    snapshot "2" taken with id 2 (its name is the other's id), then the active image
    changed again: each of the three reads differently and measures differently."""
    d = tmp_path_factory.mktemp("snap")
    img = d / "s.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "4M")
    run(QEMU_IO, "-c", "write -P 1 0 3M", img)
    run(QEMU_IMG, "snapshot", "-c", "one", img)
    run(QEMU_IMG, "resize", "-q", img, "8M")
    run(QEMU_IO, "-c", "write -P 2 0 512k", "-c", "write -P 3 6M 64k", img)
    run(QEMU_IMG, "snapshot", "-c", "2", img)
    run(QEMU_IO, "-c", "write -z 0 4M", "-c", "write -P 4 7M 64k", img)
    return img


@pytest.mark.parametrize("param", SNAPSHOT_PARAMS)
def test_snapshot_param_as_qemu(tmp_path, snap_image, param):
    """convert/measure -l: the same data (compared byte for byte), the same figures, the
    same errors ("Failed to load snapshot: Can't find snapshot"), no target on error."""
    outs = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        out = tmp_path / f"{who}.raw"
        c = run(tool, "convert", "-O", "raw", "-l", param, snap_image, out, check=False)
        m = run(tool, "measure", "-O", "qcow2", "--output=json", snap_image, "-l", param,
                check=False)
        outs[who] = [(p.returncode, p.stdout, p.stderr.replace("qemu-img", "sen-img"))
                     for p in (c, m)]
        outs[who].append(out.read_bytes() if out.exists() else None)
    assert outs["sen"] == outs["qemu"]


def test_snapshot_param_selects_the_snapshot(tmp_path, snap_image):
    """Not only the same as qemu-img: each snapshot is read, not the active image, and the
    image itself is untouched."""
    before = snap_image.read_bytes()
    data = {}
    for param in ("one", "2", "snapshot.name=2", None):
        out = tmp_path / "o.raw"
        sen("convert", "-O", "raw", *(["-l", param] if param else []), snap_image, out)
        data[param] = out.read_bytes()
    assert data["one"][:3 * MiB] == b"\1" * 3 * MiB and data["one"][3 * MiB:].count(0) == 5 * MiB
    assert data["2"] == data["snapshot.name=2"] and data["2"][:512 * 1024] == b"\2" * 512 * 1024
    assert data[None][:4 * MiB].count(0) == 4 * MiB and data[None] != data["2"]
    assert snap_image.read_bytes() == before
    qemu_check_clean(snap_image)


def test_snapshot_param_errors_as_qemu(tmp_path, snap_image):
    raw = tmp_path / "r.raw"
    run(QEMU_IMG, "create", "-q", "-f", "raw", raw, "1M")
    for args in (["convert", "-O", "raw", "-l", "one", raw, tmp_path / "o.raw"],
                 ["measure", "-O", "qcow2", "-l", "one", raw],
                 ["measure", "-O", "qcow2", "-l", "one", "--size", "1M"],
                 ["convert", "-O", "raw", "-r", "x", snap_image, tmp_path / "o.raw"]):
        s, q = (run(t, *args, check=False) for t in (SEN_IMG, QEMU_IMG))
        assert (s.returncode, s.stdout, s.stderr) == \
            (q.returncode, q.stdout, q.stderr.replace("qemu-img", "sen-img")), args
    assert not (tmp_path / "o.raw").exists()
    sen("convert", "-O", "raw", "-r", "10M", snap_image, tmp_path / "o.raw")


@pytest.mark.parametrize("workers", ["1", "8"])
def test_rate_limit_paces_the_copy(tmp_path, workers):
    """-r 4M limits what is written: 8 MiB of data takes about 1.5 s however many workers
    (qemu-img 7.2's throttle: ~1.4 s), and the copy is whole; 1 GiB of holes after it
    costs nothing (nothing is written there)."""
    src, out = tmp_path / "s.raw", tmp_path / "o.qcow2"
    src.write_bytes(os.urandom(8 * MiB))
    with open(src, "r+b") as f:
        f.truncate(1024 * MiB + 8 * MiB)
    t = time.monotonic()
    sen("convert", "-O", "qcow2", "-m", workers, "-r", "4M", src, out)
    assert 1.2 < time.monotonic() - t < 20
    run(QEMU_IMG, "compare", "-q", src, out)


@pytest.mark.parametrize("opts", [[], ["-m", "1"], ["-W"], ["-S", "0"], ["-c"]])
@pytest.mark.parametrize("out_fmt", ["raw", "qcow2"])
def test_concatenation_as_qemu(tmp_path, opts, out_fmt):
    """Several sources are copied one after the other, each taking whole sectors (a
    1000-byte raw file takes 1024, its tail reading as zeroes), formats probed one by
    one: the target qemu-img writes."""
    if "-c" in opts and out_fmt != "qcow2":
        pytest.skip("compression is qcow2 only")
    mixed = make_mixed_qcow2(tmp_path, "cluster_size=65536")
    odd, tail = tmp_path / "odd.raw", tmp_path / "tail.raw"
    odd.write_bytes(random.Random(3).randbytes(1000))
    make_sparse_raw(tail, seed=5)
    srcs = [odd, mixed, odd, tail]
    ref, out = tmp_path / f"ref.{out_fmt}", tmp_path / f"out.{out_fmt}"
    run(QEMU_IMG, "convert", *opts, "-O", out_fmt, *srcs, ref)
    sen("convert", *opts, "-O", out_fmt, *srcs, out)
    if out_fmt == "raw":
        assert out.read_bytes() == ref.read_bytes()
    else:
        run(QEMU_IMG, "compare", "-s", ref, out)
        qemu_check_clean(out)


@pytest.mark.parametrize("args", [
    ["-l", "one", "S", "S"],                       # a bare snapshot name, two sources
    ["--bitmaps", "-O", "qcow2", "S", "S"],
    ["-O", "qcow2", "-B", "B", "-F", "qcow2", "S", "S"],
    ["-O", "qcow2", "-o", "backing_file=B,backing_fmt=qcow2", "S", "S"],
    ["-O", "qcow2", "-B", "B", "S"],               # no backing format
    ["-O", "qcow2", "-o", "backing_file=B", "S"],
    ["--target-is-zero", "-O", "qcow2", "S"],      # without -n
    ["-n", "--target-is-zero", "-B", "B", "S"],
])
def test_source_and_backing_errors_as_qemu(tmp_path, snap_image, args):
    """Refusals about several sources, backing files and --target-is-zero: qemu-img's
    order and words, exit 1, no target written."""
    base = tmp_path / "b.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "8M")
    out = {}
    for tool in (SEN_IMG, QEMU_IMG):
        tgt = tmp_path / "t.img"
        tgt.unlink(missing_ok=True)
        if "-n" in args:
            run(QEMU_IMG, "create", "-q", "-f", "qcow2", tgt, "8M")
        before = tgt.read_bytes() if tgt.exists() else None
        argv = [str(snap_image) if a == "S" else str(base) if a == "B" else a for a in args]
        p = run(tool, "convert", *argv, tgt, check=False)
        out[tool] = (p.returncode, p.stdout, p.stderr.replace(str(tool), "x")
                     .replace("qemu-img", "x").replace("sen-img", "x"))
        assert (tgt.read_bytes() if tgt.exists() else None) == before, tool
    if "--target-is-zero" in args and "-B" in args:
        # qemu-img 7.2 prints this error and exits 0 (its ret is still 0 there); an
        # error is exit 1 in sen-img.
        assert out[QEMU_IMG][0] == 0
        out[QEMU_IMG] = (1,) + out[QEMU_IMG][1:]
    assert out[SEN_IMG] == out[QEMU_IMG] and out[SEN_IMG][0] == 1


def test_backing_from_create_options_keeps_zeroes(tmp_path):
    """-o backing_file= gives the target a backing file as -B does: zero runs of the source
    must then be written, or the target would show the backing file's data there (sen-img
    skipped them as on a blank target)."""
    base, src = tmp_path / "base.qcow2", tmp_path / "src.raw"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "4M")
    run(QEMU_IO, "-c", "write -P 7 0 4M", base)
    make_sparse_raw(src, seed=9)
    with open(src, "r+b") as f:
        f.truncate(4 * MiB)
    for i, opt in enumerate(["backing_file=%s,backing_fmt=qcow2" % base]):
        out = tmp_path / f"o{i}.qcow2"
        sen("convert", "-O", "qcow2", "-o", opt, src, out)
        run(QEMU_IMG, "compare", src, out)
        assert json.loads(run(QEMU_IMG, "info", "--output=json", out).stdout)[
            "backing-filename"] == str(base)


def test_target_is_zero_skips_zero_writes(tmp_path):
    """-n --target-is-zero: the user vouches the target reads as zeroes, so zero runs are
    not written: data already there stays, exactly as qemu-img leaves it."""
    src = tmp_path / "src.raw"
    make_sparse_raw(src, seed=11)
    got = {}
    for tool in (SEN_IMG, QEMU_IMG):
        tgt = tmp_path / "t.raw"
        tgt.write_bytes(b"\xee" * SIZE)
        run(tool, "convert", "-n", "--target-is-zero", "-O", "raw", src, tgt)
        got[tool] = tgt.read_bytes()
    # qemu-img also grows the file to its last sector's end (zeroes); sen-img leaves it.
    assert got[QEMU_IMG][SIZE:] == bytes(len(got[QEMU_IMG]) - SIZE)
    assert got[SEN_IMG] == got[QEMU_IMG][:SIZE] and got[SEN_IMG] != src.read_bytes()


@pytest.mark.parametrize("opts", [[], ["-q"], ["-m", "1", "-W"], ["-C"]])
def test_salvage_as_qemu(tmp_path, eio_shim, opts):
    """--salvage past a bad sector of the second of two sources: the target qemu-img
    writes (that sector zeroes, the rest copied), its warning naming the offset in that
    source; -q keeps it quiet; -C refused.  Without --salvage: an error, exit 1."""
    a, b = tmp_path / "a.raw", tmp_path / "b.raw"
    a.write_bytes(random.Random(1).randbytes(MiB + 512))
    b.write_bytes(random.Random(2).randbytes(3 * MiB))
    env = dict(os.environ, LD_PRELOAD=str(eio_shim), SEN_TEST_EIO_OFFSET=str(MiB + 1000))
    got = {}
    for tool in (SEN_IMG, QEMU_IMG):
        out = tmp_path / f"{os.path.basename(tool)}.raw"
        p = subprocess.run([str(tool), "convert", "--salvage", *opts, "-O", "raw", str(a),
                            str(b), str(out)], env=env, capture_output=True, text=True,
                           timeout=300)
        got[tool] = (p.returncode, p.stdout, p.stderr.replace(os.path.basename(tool), "x"),
                     out.read_bytes() if out.exists() else None)
    assert got[SEN_IMG] == got[QEMU_IMG]
    if "-C" in opts:
        assert got[SEN_IMG][0] == 1 and "salvaging" in got[SEN_IMG][2]
        return
    data = got[SEN_IMG][3]
    want = a.read_bytes() + b.read_bytes()
    bad = len(a.read_bytes()) + MiB + 512
    assert data[:bad] == want[:bad] and data[bad:bad + 512] == bytes(512)
    assert data[bad + 512:] == want[bad + 512:]
    assert ("warning: error while reading offset 1049088" in got[SEN_IMG][2]) == \
        ("-q" not in opts)
    # -U: reads through pread, as the shim needs (a raw source is otherwise written from
    # a view of its page cache, where a bad sector would end the run by SIGBUS).
    p = subprocess.run([str(SEN_IMG), "convert", "-U", "-O", "raw", str(a), str(b),
                        str(tmp_path / "n.raw")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1 and "error while reading" in p.stderr


@pytest.mark.parametrize("src_fmt", ["raw", "qcow2"])
@pytest.mark.parametrize("refused", [False, True])
def test_copy_offload_as_qemu(tmp_path, eio_shim, src_fmt, refused):
    """-C: data runs of a raw source, or of a qcow2 source laid out in guest order, go to
    a raw target by copy_file_range (strace counts them); where the kernel refuses
    (EXDEV from the shim), every chunk is copied the ordinary way.  Either way the target
    is byte for byte qemu-img -C's."""
    raw = tmp_path / "src.raw"
    make_sparse_raw(raw, seed=13)
    src = raw
    if src_fmt == "qcow2":
        src = tmp_path / "src.qcow2"
        run(QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", "-S", "0", raw, src)
    count = tmp_path / "cfr-calls"
    env = dict(os.environ, LD_PRELOAD=str(eio_shim))
    if refused:
        env.update(SEN_TEST_CFR_ERRNO="18", SEN_TEST_CFR_COUNT=str(count))
    out = {}
    for tool in (SEN_IMG, QEMU_IMG):
        o = tmp_path / f"{os.path.basename(tool)}.raw"
        argv = [str(tool), "convert", "-C", "-f", src_fmt, "-O", "raw", str(src), str(o)]
        if tool == SEN_IMG and not refused and shutil.which("strace"):
            argv = ["strace", "-f", "-c", "-e", "trace=copy_file_range", "-o",
                    str(tmp_path / "strace.txt")] + argv
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        out[tool] = o.read_bytes()
    want = raw.read_bytes()
    want += bytes(-len(want) % 512)  # whole sectors, as qemu-img
    assert out[SEN_IMG] == out[QEMU_IMG] == want
    if refused:
        # sen-img stops asking after the first refusal (qemu-img too).
        assert count.read_text().count("x") >= 1
    elif shutil.which("strace"):
        calls = [l.split() for l in (tmp_path / "strace.txt").read_text().splitlines()
                 if l.rstrip().endswith("copy_file_range")]
        assert calls and int(calls[0][3]) > 0 and len(calls[0]) == 5, calls  # no errors


def test_copy_offload_and_bitmaps_as_qemu(tmp_path):
    """-C (copy offloading: tried, the ordinary copy when not), --bitmaps and
    --skip-broken-bitmaps: qemu-img's refusals in its words, and the target's bitmaps
    (name, granularity, enabled or not) those qemu-img's convert makes, image clean."""
    src, raw = tmp_path / "bm.qcow2", tmp_path / "r.raw"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", src, "4M")
    run(QEMU_IMG, "bitmap", "--add", src, "b1")
    run(QEMU_IMG, "bitmap", "--add", "-g", "128k", "--disable", src, "b2")
    run(QEMU_IO, "-c", "write -P 5 0 64k", src)
    run(QEMU_IMG, "create", "-q", "-f", "raw", raw, "1M")
    for args in (["-C", "-c", "-O", "qcow2", src], ["-C", "-S", "0", "-O", "raw", src],
                 ["--bitmaps", "-O", "raw", src], ["--skip-broken-bitmaps", "-O", "qcow2", src],
                 ["--bitmaps", "-O", "qcow2", raw]):
        # sen-img refuses a raw target before creating it (qemu-img leaves one behind).
        s = run(SEN_IMG, "convert", *args, tmp_path / "o.img", check=False)
        assert s.returncode == 1 and not (tmp_path / "o.img").exists()
        q = run(QEMU_IMG, "convert", *args, tmp_path / "o.img", check=False)
        assert (s.returncode, s.stdout, s.stderr) == \
            (q.returncode, q.stdout, q.stderr.replace("qemu-img", "sen-img")), args
        (tmp_path / "o.img").unlink(missing_ok=True)
    bitmaps = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        out = tmp_path / f"{who}.qcow2"
        run(tool, "convert", "-C", "--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", src, out)
        qemu_check_clean(out)
        run(QEMU_IMG, "compare", src, out)
        info = json.loads(run(QEMU_IMG, "info", "--output=json", out).stdout)
        bitmaps[who] = info["format-specific"]["data"].get("bitmaps")
    assert bitmaps["sen"] == bitmaps["qemu"] and len(bitmaps["sen"]) == 2


def _bitmap_map(tmp_path, img, name):
    """qemu-img map of bitmap name in img, read through qemu-nbd's x-dirty-bitmap (dirty
    ranges show as "data": false)."""
    sock = tmp_path / "nbd.sock"
    nbd = subprocess.Popen(["qemu-nbd", "-r", "-f", "qcow2", "-B", name, "-k", str(sock),
                            "-t", str(img)])
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        return json.loads(run(QEMU_IMG, "map", "--output=json", "--image-opts",
                              f"driver=nbd,server.type=unix,server.path={sock},"
                              f"x-dirty-bitmap=qemu:dirty-bitmap:{name}").stdout)
    finally:
        nbd.terminate()
        nbd.wait(timeout=30)


@pytest.mark.skipif(not shutil.which("qemu-nbd"), reason="qemu-nbd (Debian qemu-utils) "
                    "not installed: no way to read a bitmap's bits from outside")
def test_bitmaps_contents_copied(tmp_path):
    """--bitmaps copies the bits too: each bitmap of the target has the source's dirty
    ranges (b1 recorded a write; b2, added disabled, none)."""
    src, out = tmp_path / "bm.qcow2", tmp_path / "out.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", src, "4M")
    run(QEMU_IMG, "bitmap", "--add", src, "b1")
    run(QEMU_IMG, "bitmap", "--add", "-g", "128k", "--disable", src, "b2")
    run(QEMU_IO, "-c", "write -P 5 64k 64k", "-c", "write -P 6 3M 4k", src)
    sen("convert", "--bitmaps", "-O", "qcow2", src, out)
    for name in ("b1", "b2"):
        theirs, ours = _bitmap_map(tmp_path, src, name), _bitmap_map(tmp_path, out, name)
        assert ours == theirs, name
    assert any(not e["data"] for e in _bitmap_map(tmp_path, out, "b1"))
