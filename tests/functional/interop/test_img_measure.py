"""sen-img measure against qemu-img measure: same figures and output shapes (human and
--output=json) for --size and for images with data, zeroes, compressed clusters and
snapshots, across output cluster sizes, refcount widths, extended L2 and preallocation;
the same errors for bad arguments."""
import shutil
import subprocess

import pytest
from img_util import SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools

pytestmark = needs_tools()

TARGETS = [
    ["-O", "raw"],
    ["-O", "qcow2"],
    ["-O", "qcow2", "-o", "cluster_size=512,refcount_bits=1"],
    ["-O", "qcow2", "-o", "cluster_size=2M,refcount_bits=64"],
    ["-O", "qcow2", "-o", "cluster_size=128k,extended_l2=on"],
    ["-O", "qcow2", "-o", "compat=0.10,cluster_size=4k"],
    ["-O", "qcow2", "-o", "preallocation=full"],
    ["-O", "qcow2", "-o", "preallocation=metadata"],
]


def both(args):
    s = subprocess.run([SEN_IMG, "measure"] + args, capture_output=True, text=True)
    q = subprocess.run([QEMU_IMG, "measure"] + args, capture_output=True, text=True)
    return s, q


def assert_same(args):
    s, q = both(args)
    assert (s.returncode, s.stdout) == (q.returncode, q.stdout), \
        f"measure {args}:\nsen: {s.stdout}{s.stderr}\nqemu: {q.stdout}{q.stderr}"


@pytest.mark.parametrize("size", ["1", "64k", "1G", "100G", "3000000000"])
@pytest.mark.parametrize("output", ["human", "json"])
def test_measure_size(size, output):
    for target in TARGETS:
        assert_same([f"--output={output}", "--size", size] + target)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("measure")
    imgs = []
    for name, create, io in [
        ("plain.qcow2", ["-o", "cluster_size=4k"],
         ["write -P 1 0 12k", "write -P 2 1M 512", "write -z 64k 64k"]),
        ("small.qcow2", ["-o", "cluster_size=512,compat=0.10"],
         ["write -P 3 1536 100", "write -P 4 300k 5k"]),
        ("big.qcow2", [], ["write -P 5 0 1M", "write -P 6 70M 64k", "discard 0 64k"]),
    ]:
        p = d / name
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2"] + create + [str(p), "100M"],
                       check=True)
        for cmd in io:
            subprocess.run([QEMU_IO, "-f", "qcow2", "-c", cmd, str(p)], check=True,
                           stdout=subprocess.DEVNULL)
        imgs.append(p)
    raw = d / "data.raw"
    with open(raw, "wb") as f:
        f.truncate(5 << 20)
        f.seek(1 << 20)
        f.write(b"x" * 70000)
    imgs.append(raw)
    comp = d / "comp.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-c", "-O", "qcow2", str(raw), str(comp)], check=True)
    imgs.append(comp)
    snap = d / "snap.qcow2"
    shutil.copy(imgs[0], snap)
    subprocess.run([QEMU_IMG, "snapshot", "-c", "s1", str(snap)], check=True)
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -P 7 2M 8k", str(snap)], check=True,
                   stdout=subprocess.DEVNULL)
    imgs.append(snap)
    return imgs


@pytest.mark.parametrize("output", ["human", "json"])
def test_measure_image(images, output):
    for img in images:
        fmt = ["-f", "raw"] if img.suffix == ".raw" else []
        for target in TARGETS:
            assert_same([f"--output={output}"] + fmt + target + [str(img)])


@pytest.mark.parametrize("args", [[], ["--size", "1G", "x.img"], ["--output=yaml", "--size",
                                                                     "1G"],
                                  ["a", "b"]])
def test_measure_errors(args):
    s, q = both(args)
    assert s.returncode == q.returncode == 1, s.stderr
    assert s.stderr.replace("sen-img", "qemu-img") == q.stderr
