"""sen-img bench against qemu-img bench: the same walk, correct data at queue depth 32.

Several bench write runs (each its own pattern, request size, step, start and depth) go to
one image with sen-img and to another with qemu-img.  Requests of one run carry the same
bytes, so even overlapping requests in flight have one correct result: the two images must
compare equal, and the sen-img one must pass `qemu-img check` clean.  This covers the
requests that run in parallel in the qcow2 driver (in-place writes with the lock dropped,
allocations, copy-on-write of partial clusters) and that bench walks as qemu-img does.
"""
import json
import subprocess

import pytest
from img_util import SEN_IMG, QEMU_IMG, needs_tools

pytestmark = needs_tools(qemu_io=False)

# (size, step, start offset, depth, count): partial clusters, whole clusters, requests
# spanning clusters, depth 1 and 32.  No walk wraps: Debian's qemu-img 7.2 wraps modulo the
# image size (a request can then pass the end and fail), sen-img as qemu-img since 10.1
# modulo the last start that fits, so the two walks agree only before the end.
RUNS = [
    ("4k", "4k", "0", 32, 3000),
    ("512", "20k", "1536", 32, 2000),
    ("64k", "64k", "0", 32, 300),
    ("12k", "70k", "5120", 32, 600),
    ("4k", "36k", "0", 1, 1300),
    ("1M", "3M", "0", 32, 15),
]


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


# (create options, cache mode, fraction of each run's count): 512-byte clusters allocate
# eight clusters per 4 KiB request and qemu-img is slow at it, hence the fraction.
LAYOUTS = [
    ("cluster_size=65536", "writeback", 1),
    ("cluster_size=65536", "none", 1),
    ("cluster_size=512,refcount_bits=1", "writeback", 4),
    ("cluster_size=65536,extended_l2=on", "none", 2),
    ("compat=0.10,cluster_size=4096", "writeback", 1),
]


@pytest.mark.parametrize("opts,cache,fraction", LAYOUTS)
def test_bench_writes_match_qemu(tmp_path, opts, cache, fraction):
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "40M")
    run(QEMU_IMG, "bench", "-q", "-w", "-c", "200", "-s", "64k", "-S", "192k",
        "--pattern=1", base)
    images = {}
    for tool in (SEN_IMG, QEMU_IMG):
        img = tmp_path / ("sen.qcow2" if tool == SEN_IMG else "qemu.qcow2")
        # Half the images sit on a backing file, so copy-on-write reads the backing data.
        backing = ["-b", base, "-F", "qcow2"] if "512" in opts else []
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, *backing, img, "48M")
        for i, (size, step, start, depth, count) in enumerate(RUNS):
            out = run(tool, "bench", "-w", "-t", cache, "-d", depth, "-c", count // fraction,
                      "-s", size,
                      "-S", step, "-o", start, f"--pattern={i + 2}", img).stdout
            assert "Run completed" in out, out
        images[tool] = img
    c = subprocess.run([QEMU_IMG, "compare", images[SEN_IMG], images[QEMU_IMG]],
                       capture_output=True, text=True)
    assert c.returncode == 0, c.stdout + c.stderr
    chk = subprocess.run([QEMU_IMG, "check", "--output=json", images[SEN_IMG]],
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    res = json.loads(chk.stdout)
    assert not res.get("leaks") and not res.get("corruptions"), res


def test_bench_reads_in_parallel(tmp_path):
    img = tmp_path / "r.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "16M")
    run(QEMU_IMG, "bench", "-q", "-w", "-c", "128", "-s", "64k", "--pattern=9", img)
    out = run(SEN_IMG, "bench", "-d", "32", "-c", "5000", "-s", "4k", "-S", "28k",
              "-t", "none", img).stdout
    assert "32 in parallel" in out and "Run completed" in out, out
