"""Huge pages end to end: a guest-kit guest runs with its RAM on hugetlbfs
(memory-backend-memfd,hugetlb=on), the pages come from the host's pool while it runs, and
a pool too small is a clear start-up error, not a SIGBUS later.  Reserves 2 MiB pages for
the test and restores the pool; skips with a message where that is impossible.
"""
import fcntl
import os
import shutil
import subprocess
import tempfile

import pytest

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
GUEST = os.path.join(BUILD, "tests", "guest", "hello.elf")
POOL = "/proc/sys/vm/nr_hugepages"
FREE = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
PASS_STATUS = (0x10 << 1) | 1
GUEST_MIB = 64

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built (guest kit)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not os.path.exists(FREE), reason="no 2 MiB huge pages on this host"),
]


def read_int(path):
    with open(path) as f:
        return int(f.read())


def write_int(path, v):
    with open(path, "w") as f:
        f.write(f"{v}\n")


@pytest.fixture
def pool():
    """GUEST_MIB of 2 MiB pages added to the pool, then the pool as it was.  The lock keeps
    tests/unit/test-hostmem.c from resizing the pool meanwhile."""
    lock = open("/tmp/sen-test-hugepages.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield from reserved_pool()
    finally:
        lock.close()


def reserved_pool():
    before = read_int(POOL)
    want = GUEST_MIB // 2
    try:
        write_int(POOL, before + want)
    except OSError as e:
        pytest.skip(f"cannot reserve huge pages ({e}); needs root")
    if read_int(FREE) < want:
        write_int(POOL, before)
        pytest.skip("the kernel could not find enough contiguous memory for huge pages")
    yield want
    write_int(POOL, before)


def sen(backend_opts):
    return [SEN, "-M", "pc", "-m", f"{GUEST_MIB}M", "-kernel", GUEST,
            "-append", f"cpus=1 ram_mb={GUEST_MIB} token=0x5e4",
            "-object", f"memory-backend-memfd,id=ram,size={GUEST_MIB}M,hugetlb=on,"
                       f"hugetlbsize=2M{backend_opts}",
            "-machine", "memory-backend=ram", "-device", "isa-debug-exit",
            "-display", "none", "-nodefaults", "-serial", "stdio"]


def test_guest_runs_on_huge_pages(pool):
    free_before = read_int(FREE)
    tmp = tempfile.mkdtemp(prefix="huge", dir="/tmp")
    sock = os.path.join(tmp, "qmp")
    proc = subprocess.Popen(sen(",prealloc=on") + ["-S", "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        with QMPClient.connect_unix(sock) as qmp:
            qmp.negotiate()
            # Paused before the guest runs: preallocation took the whole RAM from the pool.
            assert free_before - read_int(FREE) == pool
            qmp.cmd("cont")
            out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    text = out.decode(errors="replace")
    assert proc.returncode == PASS_STATUS, text + err.decode(errors="replace")
    assert "Hello from the Sen guest kit" in text
    assert read_int(FREE) == free_before, "huge pages not given back at exit"


def test_pool_too_small_is_a_clear_error(pool):
    cmd = sen("").copy()
    cmd[cmd.index("-m") + 1] = f"{GUEST_MIB * 4}M"
    i = cmd.index("-object") + 1
    cmd[i] = cmd[i].replace(f"size={GUEST_MIB}M", f"size={GUEST_MIB * 4}M")
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "-object memory-backend-memfd,id=ram" in err and "huge pages" in err, err
