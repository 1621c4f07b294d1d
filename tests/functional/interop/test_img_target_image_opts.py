"""sen-img convert --target-image-opts: the target is an existing image named by a node
option string ("driver=qcow2,file.filename=t.qcow2"), as in qemu-img 7.2.  It needs -n and
takes no -O or -o; sen-img must fail where qemu-img fails, with qemu-img's words, and leave
the target untouched."""
import json

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()

SIZE = "4M"


@pytest.fixture
def images(tmp_path):
    """src.qcow2 with data and holes; empty targets t-sen.qcow2 / t-qemu.qcow2."""
    src = tmp_path / "src.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", src, SIZE)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 64k", "-c", "write -P 3 1M 4k",
        "-c", "write -P 9 3M 100k", src)
    for who in ("sen", "qemu"):
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", tmp_path / f"t-{who}.qcow2", SIZE)
    return tmp_path, src


def both(cwd, *args):
    """Runs `convert args` with sen-img and qemu-img; {who} in an argument is the tool's
    own target suffix."""
    out = []
    for tool, who in ((SEN_IMG, "sen"), (QEMU_IMG, "qemu")):
        out.append(run(tool, "convert", *[a.replace("{who}", who) for a in args],
                       cwd=cwd, check=False))
    return out


@pytest.mark.parametrize("extra", [[], ["-c"], ["-W", "-m", "4"], ["--image-opts"]])
def test_convert_into_target_opts_like_qemu(images, extra):
    d, src = images
    name = "driver=qcow2,file.filename=src.qcow2" if "--image-opts" in extra else "src.qcow2"
    s, q = both(d, "-n", "--target-image-opts", *extra, name,
                "driver=qcow2,file.filename=t-{who}.qcow2")
    assert q.returncode == 0, q.stderr
    assert s.returncode == 0, s.stderr
    for who in ("sen", "qemu"):
        run(QEMU_IMG, "compare", src, d / f"t-{who}.qcow2")
        qemu_check_clean(d / f"t-{who}.qcow2")
    if "-c" in extra:
        info = json.loads(run(QEMU_IMG, "check", "--output=json", d / "t-sen.qcow2").stdout)
        assert info["compressed-clusters"] > 0, info


def test_convert_target_opts_raw_and_probe(images):
    """A raw target by option string, and one whose format is probed (no driver=)."""
    d, src = images
    run(QEMU_IMG, "create", "-q", "-f", "raw", d / "t.raw", SIZE)
    run(SEN_IMG, "convert", "-n", "--target-image-opts", src, "driver=raw,file.filename=t.raw",
        cwd=d)
    run(QEMU_IMG, "compare", "-F", "raw", src, d / "t.raw")
    run(SEN_IMG, "convert", "-n", "--target-image-opts", src, "file.filename=t-sen.qcow2",
        cwd=d)
    run(QEMU_IMG, "compare", src, d / "t-sen.qcow2")
    qemu_check_clean(d / "t-sen.qcow2")


OPEN_ERRORS = ("No such file or directory", "bogus")


@pytest.mark.parametrize("args,why", [
    (["--target-image-opts", "src.qcow2", "driver=qcow2,file.filename=t-{who}.qcow2"],
     "--target-image-opts requires use of -n flag"),
    (["-n", "--target-image-opts", "-O", "qcow2", "src.qcow2",
      "driver=qcow2,file.filename=t-{who}.qcow2"],
     "--image-opts and --format are mutually exclusive"),
    (["-n", "--target-image-opts", "-o", "cluster_size=4k", "src.qcow2",
      "driver=qcow2,file.filename=t-{who}.qcow2"],
     "-o has no effect when skipping image creation"),
    (["-n", "-O", "qcow2", "-o", "cluster_size=4k", "src.qcow2", "t-{who}.qcow2"],
     "-o has no effect when skipping image creation"),
    (["-n", "--target-image-opts", "-c", "src.qcow2", "driver=raw,file.filename=small.raw"],
     "Compression not supported for this file format"),
    (["-n", "--target-image-opts", "src.qcow2", "driver=raw,file.filename=small.raw"],
     "output file is smaller than input file"),
    (["-n", "--target-image-opts", "src.qcow2",
      "driver=qcow2,file.filename=none-{who}.qcow2"], "No such file or directory"),
    (["-n", "--target-image-opts", "src.qcow2",
      "driver=qcow2,file.filename=t-{who}.qcow2,bogus=1"], "bogus"),
])
def test_convert_target_opts_bad(images, args, why):
    d, src = images
    run(QEMU_IMG, "create", "-q", "-f", "raw", d / "small.raw", "64k")
    files = [src, d / "small.raw", d / "t-sen.qcow2", d / "t-qemu.qcow2"]
    before = {p: p.read_bytes() for p in files}
    s, q = both(d, *args)
    assert q.returncode != 0 and why in q.stderr, q.stderr
    assert s.returncode != 0, s.stdout
    assert why in s.stderr, s.stderr
    if why in OPEN_ERRORS:
        # An error opening the target names the option string, as qemu-img's does.
        assert args[-1].replace("{who}", "sen") in s.stderr, s.stderr
    assert {p: p.read_bytes() for p in files} == before
    assert not (d / "none-sen.qcow2").exists()


def test_convert_target_opts_plain_name_fails(images):
    """A plain file name is not an option string: both tools refuse it (qemu-img looks it
    up as a device name, sen-img as an option string with no value)."""
    d, _ = images
    s, q = both(d, "-n", "--target-image-opts", "src.qcow2", "t-{who}.qcow2")
    assert q.returncode != 0 and s.returncode != 0
    assert "t-sen.qcow2" in s.stderr, s.stderr
