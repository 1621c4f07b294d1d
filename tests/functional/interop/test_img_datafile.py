"""qcow2 external data files (data_file=, data_file_raw=) with qemu-img as the oracle.

Images qemu-img makes with a data file read identically through sen-img; images sen-img
creates and writes pass `qemu-img check` and `qemu-img compare`; with data_file_raw the
data file itself equals the guest view; refused inputs (compression, internal snapshots,
a missing data file, data_file_raw without data_file, compat=0.10, raw with a backing
file) fail like qemu-img with a clear message and leave every file as it was."""
import json
import os
import shutil
import subprocess

import pytest
from img_util import BUILD_DIR, SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools

pytestmark = needs_tools()

SIZE = 4 * 1024 * 1024


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """qemu-img 7.2 resolves a relative data file name against the current directory,
    Sen (like later QEMU) against the image's: with both the same, the tools agree."""
    monkeypatch.chdir(tmp_path)


def run(*args, cwd=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def ok(*args, cwd=None):
    r = run(*args, cwd=cwd)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r.stdout


def qemu_io(img, *cmds, cwd=None):
    args = [QEMU_IO, "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    ok(*args, img, cwd=cwd)


def as_raw(tool, img, out):
    ok(tool, "convert", "-O", "raw", img, out)
    return out.read_bytes()


def info_json(tool, img):
    d = json.loads(ok(tool, "info", "--output=json", img))
    d.pop("actual-size", None)
    return d


def pattern_source(path):
    """A raw disk with data, zero runs and a partial cluster at the end."""
    data = bytearray(SIZE)
    for off, length, byte in [(0, 4096, 0x11), (65536 + 512, 70000, 0x22),
                              (1 << 20, 1 << 20, 0x33), (SIZE - 1000, 1000, 0x44)]:
        data[off:off + length] = bytes([byte]) * length
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("opts", ["cluster_size=65536", "cluster_size=4096",
                                  "cluster_size=65536,data_file_raw=on",
                                  "cluster_size=65536,extended_l2=on"])
def test_qemu_image_reads_identically(tmp_path, opts):
    img = tmp_path / "q.qcow2"
    ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"data_file=q.data,{opts}", img, SIZE)
    qemu_io(img, "write -P 0x5a 0 8k", "write -P 0x6b 100k 200k", "write -z 150k 64k",
            "write -P 0x7c 3M 1M", "discard 3M 64k")
    assert as_raw(SEN_IMG, img, tmp_path / "s.raw") == as_raw(QEMU_IMG, img, tmp_path / "q.raw")
    assert info_json(SEN_IMG, img) == info_json(QEMU_IMG, img)
    # check: data clusters are not refcounted, but they count as allocated/fragmented.
    for fmt in ("human", "json"):
        out = [ok(t, "check", f"--output={fmt}", img) for t in (SEN_IMG, QEMU_IMG)]
        assert out[0] == out[1]
    smap = json.loads(ok(SEN_IMG, "map", "--output=json", img))
    # Every data extent sen-img reports lies at the guest offset in the data file.
    assert any(e["data"] for e in smap)
    for e in smap:
        if e["data"]:
            assert e["offset"] == e["start"]


@pytest.mark.parametrize("opts", ["", ",cluster_size=4096", ",data_file_raw=on",
                                  ",cluster_size=512,refcount_bits=1"])
def test_sen_image_passes_qemu_check(tmp_path, opts):
    src = tmp_path / "src.raw"
    data = pattern_source(src)
    img = tmp_path / "s.qcow2"
    ok(SEN_IMG, "convert", "-O", "qcow2", "-o", f"data_file=s.data{opts}", src, img)
    assert (tmp_path / "s.data").exists()
    ok(QEMU_IMG, "check", img)
    ok(QEMU_IMG, "compare", "-f", "raw", "-F", "qcow2", src, img)
    # Random writes on top (bench's pattern), then qemu still agrees with sen-img.
    ok(SEN_IMG, "bench", "-w", "-c", "300", "-s", "4k", "-S", "13k", "--pattern=7", img)
    ok(QEMU_IMG, "check", img)
    assert as_raw(SEN_IMG, img, tmp_path / "a.raw") == as_raw(QEMU_IMG, img, tmp_path / "b.raw")
    assert as_raw(QEMU_IMG, img, tmp_path / "b.raw") != data
    if "data_file_raw" in opts:
        assert (tmp_path / "s.data").read_bytes() == (tmp_path / "b.raw").read_bytes()
    # qemu writes into the image sen-img made, and sen-img reads that back.
    qemu_io(img, "write -P 0x99 0 64k")
    assert as_raw(SEN_IMG, img, tmp_path / "a.raw") == as_raw(QEMU_IMG, img, tmp_path / "b.raw")
    ok(SEN_IMG, "check", img)


def test_raw_data_file_follows_zeroes(tmp_path):
    """Zero runs converted over existing data (write-zeroes) also zero the raw file."""
    img = tmp_path / "s.qcow2"
    ok(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=s.data,data_file_raw=on", img,
       SIZE)
    full = tmp_path / "full.raw"
    full.write_bytes(b"\xab" * SIZE)
    ok(SEN_IMG, "convert", "-n", "-O", "qcow2", full, img)
    assert (tmp_path / "s.data").read_bytes() == b"\xab" * SIZE
    src = tmp_path / "src.raw"
    data = pattern_source(src)
    ok(SEN_IMG, "convert", "-n", "-O", "qcow2", src, img)
    assert (tmp_path / "s.data").read_bytes() == data
    assert as_raw(QEMU_IMG, img, tmp_path / "q.raw") == data
    ok(QEMU_IMG, "check", img)


def test_data_file_resolves_against_image_dir(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    ok(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", sub / "s.qcow2", SIZE)
    assert (sub / "d.raw").exists() and not (tmp_path / "d.raw").exists()
    src = tmp_path / "src.raw"
    data = pattern_source(src)
    ok(SEN_IMG, "convert", "-n", "-O", "qcow2", src, "sub/s.qcow2", cwd=tmp_path)
    assert as_raw(SEN_IMG, sub / "s.qcow2", tmp_path / "a.raw") == data


def unchanged(paths):
    return {p: p.read_bytes() for p in paths}


def test_missing_data_file(tmp_path):
    img = tmp_path / "s.qcow2"
    ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=gone.raw", img, SIZE)
    (tmp_path / "gone.raw").unlink()
    before = unchanged([img])
    for cmd in (["convert", "-O", "raw", img, tmp_path / "x.raw"], ["check", img],
                ["bench", "-w", "-c", "1", img]):
        r = run(SEN_IMG, *cmd)
        assert r.returncode != 0
        assert r.stderr.startswith("sen-img: ") and "gone.raw" in r.stderr, r.stderr
    assert unchanged([img]) == before
    # info reads only metadata: it describes the image as qemu-img does.
    for fmt in ("human", "json"):
        out = [ok(t, "info", f"--output={fmt}", img) for t in (SEN_IMG, QEMU_IMG)]
        assert out[0] == out[1]
    assert unchanged([img]) == before


def test_data_file_name_not_utf8(tmp_path):
    """A data file name that is not UTF-8 is still reported, its bad byte as U+FFFD, as
    qemu-img does (it used to vanish from format-specific)."""
    img = tmp_path / "s.qcow2"
    ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=d\udcff.raw", img, SIZE)
    infos = [info_json(t, img) for t in (SEN_IMG, QEMU_IMG)]
    assert infos[0]["format-specific"]["data"]["data-file"] == "d\ufffd.raw"
    assert infos[0] == infos[1]


def test_compression_refused(tmp_path):
    src = tmp_path / "src.raw"
    pattern_source(src)
    rs = run(SEN_IMG, "convert", "-c", "-O", "qcow2", "-o", "data_file=s.data", src,
             tmp_path / "s.qcow2")
    rq = run(QEMU_IMG, "convert", "-c", "-O", "qcow2", "-o", "data_file=q.data", src,
             tmp_path / "q.qcow2")
    assert rs.returncode == rq.returncode == 1
    assert rs.stderr.replace("sen-img", "qemu-img") == rq.stderr


@pytest.mark.parametrize("action", [["-c", "s1"], ["-a", "s1"]])
def test_snapshots_refused(tmp_path, action):
    img = tmp_path / "s.qcow2"
    ok(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=s.data", img, SIZE)
    qemu_io(img, "write -P 1 0 64k")
    before = unchanged([img, tmp_path / "s.data"])
    rs = run(SEN_IMG, "snapshot", *action, img)
    rq = run(QEMU_IMG, "snapshot", *action, img)
    assert rs.returncode == rq.returncode == 1
    assert rs.stderr.replace("sen-img", "qemu-img") == rq.stderr
    assert unchanged([img, tmp_path / "s.data"]) == before
    ok(QEMU_IMG, "check", img)


@pytest.mark.parametrize("opts", ["data_file_raw=on", "data_file=d.raw,compat=0.10",
                                  "data_file=d.raw,data_file_raw=on,backing_file=b.qcow2,"
                                  "backing_fmt=qcow2",
                                  "data_file=nodir/d.raw"])
def test_create_refused(tmp_path, opts):
    ok(QEMU_IMG, "create", "-q", "-f", "qcow2", tmp_path / "b.qcow2", SIZE)
    rs = run(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", opts, "s.qcow2", SIZE, cwd=tmp_path)
    rq = run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, "q.qcow2", SIZE,
             cwd=tmp_path)
    assert rs.returncode == rq.returncode == 1
    assert rs.stderr.replace("sen-img", "qemu-img").replace("s.qcow2", "q.qcow2") == rq.stderr
    assert not (tmp_path / "s.qcow2").exists() and not (tmp_path / "d.raw").exists()


def each_tool_in_its_dir(tmp_path):
    """sen-img ("s") and qemu-img ("q"), each with a fresh directory of its own to make the
    same image in: (tool, name, dir)."""
    for tool, name in ((SEN_IMG, "s"), (QEMU_IMG, "q")):
        d = tmp_path / name
        d.mkdir()
        yield tool, name, d


def checked_map(d):
    """qemu-img's JSON map of d/i.qcow2, once qemu-img check finds it clean."""
    ok(QEMU_IMG, "check", "i.qcow2", cwd=d)
    return ok(QEMU_IMG, "map", "--output=json", "i.qcow2", cwd=d)


@pytest.mark.parametrize("create_opts", ["data_file=d.raw", "data_file=d.raw,data_file_raw=on",
                                         "cluster_size=4096"])
@pytest.mark.parametrize("amend", ["data_file_raw=off", "data_file_raw=on",
                                   "data_file=new.raw", "data_file=new.raw,data_file_raw=off",
                                   "compat=0.10", "size=8M", "refcount_bits=1"])
def test_amend_like_qemu(tmp_path, create_opts, amend):
    """Both tools accept or refuse the same amendment, with the same message and result."""
    results = {}
    for tool, name, d in each_tool_in_its_dir(tmp_path):
        ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", create_opts, "i.qcow2", SIZE, cwd=d)
        before = (d / "i.qcow2").read_bytes()
        r = run(tool, "amend", "-o", amend, "i.qcow2", cwd=d)
        if r.returncode:
            assert (d / "i.qcow2").read_bytes() == before
            results[name] = (r.returncode, r.stderr.replace(os.path.basename(tool), "TOOL"))
        else:
            results[name] = (0, run(QEMU_IMG, "info", "-U", "--output=json", "i.qcow2",
                                    cwd=d).stdout.replace(str(d), ""))
    assert results["s"] == results["q"]


def test_map_like_qemu(tmp_path):
    img = "q.qcow2"  # relative: both tools print the data file's name as they opened it
    ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=q.data", img, SIZE)
    qemu_io(img, "write -P 1 0 64k", "write -P 2 192k 64k", "write -P 3 1M 1M")
    assert ok(SEN_IMG, "map", img) == ok(QEMU_IMG, "map", img)
    norm = [{k: v for k, v in e.items()} for e in json.loads(ok(QEMU_IMG, "map",
                                                                "--output=json", img))]
    assert json.loads(ok(SEN_IMG, "map", "--output=json", img)) == norm


SEN = os.path.join(BUILD_DIR, "sen")


def sen_with(*drive_args):
    """Starts sen (qtest: no guest CPU) with the drive options, quits over QMP."""
    qmp = '{"execute":"qmp_capabilities"}{"execute":"quit"}\n'
    return subprocess.run([SEN, "-accel", "qtest", "-M", "pc", "-m", "64M", "-display", "none",
                           "-nodefaults", *drive_args, "-qmp", "stdio"], input=qmp,
                          capture_output=True, text=True, timeout=60)


def test_vmm_data_file_options(tmp_path):
    """-drive data-file.filename= and -blockdev data-file=NODE find a moved data file;
    a missing one and bad references are start-up errors naming them."""
    img = tmp_path / "s.qcow2"
    ok(SEN_IMG, "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", img, SIZE)
    shutil.move(tmp_path / "d.raw", tmp_path / "moved.raw")
    r = sen_with("-drive", f"file={img},if=none,id=d0")
    assert r.returncode == 1 and "Could not open data file" in r.stderr and "d.raw" in r.stderr
    r = sen_with("-drive", f"file={img},if=virtio,data-file.filename={tmp_path / 'moved.raw'}")
    assert r.returncode == 0 and '"SHUTDOWN"' in r.stdout, r.stderr
    r = sen_with("-blockdev", f"driver=file,node-name=df,filename={tmp_path / 'moved.raw'}",
                 "-blockdev", f"driver=qcow2,node-name=q0,file.filename={img},data-file=df",
                 "-device", "virtio-blk-pci,drive=q0")
    assert r.returncode == 0 and '"SHUTDOWN"' in r.stdout, r.stderr
    r = sen_with("-blockdev", f"driver=qcow2,node-name=q0,file.filename={img},data-file=nope")
    assert r.returncode == 1 and "data-file=nope: no block node named 'nope'" in r.stderr
    plain = tmp_path / "p.qcow2"
    ok(SEN_IMG, "create", "-q", "-f", "qcow2", plain, SIZE)
    moved = tmp_path / "moved.raw"
    r = sen_with("-drive", f"file={plain},if=none,id=d0,data-file.filename={moved}")
    assert r.returncode == 1 and "'data-file' can only be set" in r.stderr


@pytest.mark.parametrize("raw", ["off", "on"])
def test_resize_like_qemu(tmp_path, raw):
    """The data file follows the virtual size; a raw one stays mapped 1:1 when it grows."""
    maps = {}
    for tool, name, d in each_tool_in_its_dir(tmp_path):
        ok(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"data_file=d.raw,data_file_raw={raw}",
           "i.qcow2", SIZE, cwd=d)
        qemu_io("i.qcow2", "write -P 5 0 64k", cwd=d)
        ok(tool, "resize", "i.qcow2", 3 * SIZE, cwd=d)
        ok(tool, "resize", "--shrink", "i.qcow2", 2 * SIZE, cwd=d)
        assert (d / "d.raw").stat().st_size == 2 * SIZE
        maps[name] = checked_map(d)
    assert maps["s"] == maps["q"]


@pytest.mark.parametrize("prealloc", ["metadata", "falloc", "full"])
def test_preallocation_like_qemu(tmp_path, prealloc):
    """Preallocation maps each cluster at its guest offset in the data file, as qemu-img."""
    maps = {}
    for tool, name, d in each_tool_in_its_dir(tmp_path):
        ok(tool, "create", "-q", "-f", "qcow2", "-o", f"data_file=d.raw,preallocation={prealloc}",
           "i.qcow2", SIZE, cwd=d)
        assert (d / "d.raw").stat().st_size == SIZE
        maps[name] = checked_map(d)
    assert maps["s"] == maps["q"]
    if prealloc != "metadata":
        # The data file's blocks are really allocated (falloc) or written (full).
        assert (tmp_path / "s" / "d.raw").stat().st_blocks * 512 >= SIZE
