"""Guest writes past the end of a qcow2 file grow it 32 MiB ahead (one fallocate instead of
one extending write per cluster); close gives the unused tail back; a writer killed with
the tail still there leaves an image with no corruption (at most leaks, which check -r leaks
repairs) that reads back what was written."""
import json
import os
import signal
import subprocess
import threading
import time

from img_util import SEN_IMG, QEMU_IMG, needs_tools, run

pytestmark = needs_tools(qemu_io=False)

STEP = 32 << 20  # QCOW2_PREALLOC_STEP in block/qcow2.h


def image_end(img, leaks_allowed=False):
    # qemu-img check exits 3 when the image only leaks clusters.
    r = subprocess.run([QEMU_IMG, "check", "--output=json", str(img)], capture_output=True,
                       text=True)
    assert r.returncode in ((0, 3) if leaks_allowed else (0,)), (r.returncode, r.stderr)
    out = json.loads(r.stdout)
    assert out.get("corruptions", 0) == 0 and out.get("check-errors", 0) == 0, out
    assert leaks_allowed or out.get("leaks", 0) == 0, out
    return out["image-end-offset"]


def test_close_trims_the_tail(tmp_path):
    img = tmp_path / "a.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "64M")
    run(SEN_IMG, "bench", "-q", "-f", "qcow2", "-t", "none", "-w", "-d", "8", "-s", "64k",
        "-c", "40", "--pattern=7", img)
    # 40 data clusters plus metadata: far below one step, and nothing past the last one.
    assert os.path.getsize(img) == image_end(img)
    assert os.path.getsize(img) < 4 << 20
    ref = tmp_path / "ref.raw"
    with open(ref, "wb") as f:
        f.write(bytes([7]) * (40 << 16))
        f.truncate(64 << 20)
    run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", img, ref)


def test_killed_writer_leaves_a_clean_image(tmp_path):
    img = tmp_path / "a.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "64M")
    # A run far longer than the wait: it is still writing when it is killed.
    p = subprocess.Popen([SEN_IMG, "bench", "-q", "-f", "qcow2", "-t", "writeback", "-w",
                          "-d", "4", "-s", "64k", "-c", "100000000", "--pattern=9",
                          "--flush-interval=64", "--flushed-log", str(img)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killer = threading.Timer(20, p.kill)
    killer.start()
    try:
        while os.path.getsize(img) < STEP and p.poll() is None:
            time.sleep(0.05)
        grown = os.path.getsize(img)
        # Killed only after a flush was acknowledged, so some data is sure to be mapped
        # (killed before the first one, an image with nothing mapped failed below).
        flushed = False
        for line in p.stderr:
            if line.startswith(b"flushed "):
                flushed = True
                break
        assert flushed, "the writer never acknowledged a flush"
    finally:
        killer.cancel()
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stderr.close()
    # Grown ahead in whole steps, past what the image uses.
    assert grown >= STEP and grown % STEP == 0, grown
    # A kill between a cache flush's refcount blocks and its L2 tables may leak clusters,
    # as in QEMU: leaks are allowed (and repaired), corruption is not.
    assert os.path.getsize(img) > image_end(img, leaks_allowed=True)
    run(SEN_IMG, "check", "-r", "leaks", img)
    image_end(img)
    run(SEN_IMG, "check", img)
    # Every cluster the writer had mapped holds its pattern; the rest reads as zeroes.
    out = json.loads(run(QEMU_IMG, "map", "--output=json", img).stdout)
    data = [e for e in out if e["data"]]
    assert data, out
    with open(img, "rb") as f:
        for e in data:
            f.seek(e["offset"])
            assert f.read(e["length"]) == bytes([9]) * e["length"], e
