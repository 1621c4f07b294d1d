"""Crash consistency: kill -9 a heavy sen-img writer at random points, 50 times.

After every kill `qemu-img check` must find no corruption (leaks are allowed: the write
order only ever leaks, see docs/qcow2.md), `sen-img check -r leaks` must leave the image
clean for qemu-img, and the next run continues on the repaired image.  Every write that a
flush acknowledged before the kill (the writer logs them with --flushed-log) must read back
through qemu-img convert with the run's pattern.
"""
import mmap
import random
import signal
import subprocess
import time

import pytest
from img_util import SEN_IMG, QEMU_IMG, needs_tools

pytestmark = needs_tools(qemu_io=False)


SIZE = 256 << 20
UNITS = {"512": 512, "4k": 4096, "12k": 12288, "64k": 65536, "70k": 71680, "1M": 1 << 20}


def flushed_ranges(err, offset, size, step):
    """The (offset, length) of each write acknowledged by the last logged flush, replaying
    sen-img bench's walk (qemu-img bench's: step on, modulo the last start that fits)."""
    done = 0
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("flushed "):
            done = int(line.split()[1])
    off = offset
    for _ in range(done):
        yield off, size
        off = (off + step) % (SIZE - size)


def check_flushed(tmp_path, img, ranges, pattern, kill):
    raw = tmp_path / "flushed.raw"
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", str(img), str(raw)], check=True)
    want = bytes([pattern])
    with open(raw, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        for off, n in ranges:
            assert m[off:off + n] == want * n, \
                f"kill {kill}: flushed write at {off}+{n} did not read back"
    raw.unlink()


@pytest.mark.parametrize("opts", ["cluster_size=512,refcount_bits=1",
                                  "cluster_size=65536,refcount_bits=16",
                                  "cluster_size=4096,refcount_bits=64,extended_l2=off",
                                  "cluster_size=4096,data_file=crash.data"])
def test_kill_during_writes(tmp_path, monkeypatch, opts):
    # qemu-img 7.2 resolves a relative data file name against its current directory.
    monkeypatch.chdir(tmp_path)
    img = tmp_path / "crash.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, str(img), "256M"],
                   check=True)
    rnd = random.Random(opts)
    kills = 50 if "512" in opts else 17
    flushed = 0
    for i in range(kills):
        step = rnd.choice(["4k", "12k", "70k", "1M"])
        size = rnd.choice(["512", "4k", "64k"])
        offset = rnd.randrange(0, 200) * 512 * 1024
        writer = subprocess.Popen(
            [SEN_IMG, "bench", "-q", "-w", "-c", "1000000", "-d", "16", "-s", size,
             "-S", step,
             "-o", str(offset), f"--pattern={i + 1}",
             "--flush-interval=16", "--flushed-log", str(img)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0.02, 0.4))
        writer.send_signal(signal.SIGKILL)
        _, err = writer.communicate()
        assert writer.returncode in (-signal.SIGKILL, 0), err
        q = subprocess.run([QEMU_IMG, "check", str(img)], capture_output=True, text=True)
        assert q.returncode in (0, 3), f"kill {i}: qemu-img check:\n{q.stdout}{q.stderr}"
        ranges = list(flushed_ranges(err, offset, UNITS[size], UNITS[step]))
        flushed += len(ranges)
        check_flushed(tmp_path, img, ranges, i + 1, i)
        r = subprocess.run([SEN_IMG, "check", "-r", "leaks", str(img)], capture_output=True,
                           text=True)
        assert r.returncode == 0, f"kill {i}: sen-img check -r leaks:\n{r.stdout}{r.stderr}"
        q = subprocess.run([QEMU_IMG, "check", str(img)], capture_output=True, text=True)
        assert q.returncode == 0, f"kill {i}: after repair:\n{q.stdout}{q.stderr}"
    # Not a vacuous pass: the writers got flushes acknowledged before most kills.
    assert flushed > 0
