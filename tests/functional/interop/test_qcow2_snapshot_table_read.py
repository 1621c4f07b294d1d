"""Reading the snapshot table reads the table and nothing else.

sen-img read 132 KiB (the largest possible entry) at every entry, so a bad sector just
after the table (EIO from eio_preload.c, LD_PRELOAD) failed info, snapshot -l and check
of an image whose table itself was fine; qemu-img reads each entry's fields exactly and
does not notice.  The oracle runs under the same shim."""
import os
import struct
import subprocess

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()

def table_extent(path):
    """(offset, length) of the snapshot table: every entry, padded to 8 bytes."""
    with open(path, "rb") as f:
        hdr = f.read(72)
        nb = struct.unpack(">I", hdr[60:64])[0]
        off = struct.unpack(">Q", hdr[64:72])[0]
        pos = off
        for _ in range(nb):
            f.seek(pos)
            e = f.read(40)
            id_len, name_len = struct.unpack(">HH", e[12:16])
            extra = struct.unpack(">I", e[36:40])[0]
            pos += (40 + extra + id_len + name_len + 7) & ~7
    return off, pos - off


def image(tmp_path, snapshots, cluster_size):
    path = tmp_path / "img.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster_size}",
        path, "16M")
    for i, name in enumerate(snapshots):
        run(QEMU_IO, "-f", "qcow2", "-c", f"write -P {i + 1} {i}M 64k", path)
        run(QEMU_IMG, "snapshot", "-c", name, path)
    return path


def under_eio(tool, offset, *args):
    env = dict(os.environ, SEN_TEST_EIO_OFFSET=str(offset))
    env["LD_PRELOAD"] = env.pop("EIO_SHIM")
    return subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


CASES = [(["s1"], 65536), (["first", "a-longer-snapshot-name", "x"], 65536),
         (["s1", "s2"], 512)]


@pytest.mark.parametrize("snapshots,cluster_size", CASES)
@pytest.mark.parametrize("cmd", [["snapshot", "-l"], ["info"], ["check"]])
def test_bad_sector_after_the_table(tmp_path, eio_shim, snapshots, cluster_size, cmd):
    path = image(tmp_path, snapshots, cluster_size)
    off, length = table_extent(path)
    bad = off + length
    if bad % cluster_size == 0:
        pytest.skip("the table fills its last cluster: nothing after it in that cluster")
    os.environ["EIO_SHIM"] = str(eio_shim)
    try:
        s = under_eio(SEN_IMG, bad, *cmd, path)
        q = under_eio(QEMU_IMG, bad, *cmd, path)
    finally:
        del os.environ["EIO_SHIM"]
    assert q.returncode == 0, q.stderr  # the oracle reads around the bad byte
    assert s.returncode == 0, s.stderr
    if cmd[0] != "info":  # info differs in the tool's own name for the format lines
        assert s.stdout.replace(str(path), "IMG") == q.stdout.replace(str(path), "IMG")
    # The shim works: a bad byte inside the table (in the first entry) fails both.
    os.environ["EIO_SHIM"] = str(eio_shim)
    try:
        s = under_eio(SEN_IMG, off + 8, "snapshot", "-l", path)
        q = under_eio(QEMU_IMG, off + 8, "snapshot", "-l", path)
    finally:
        del os.environ["EIO_SHIM"]
    assert s.returncode != 0 and q.returncode != 0, (s.stdout, q.stdout)


def test_table_ending_at_the_end_of_the_file(tmp_path):
    """A file cut right after the table (the last cluster half written) still lists."""
    path = image(tmp_path, ["s1", "s2"], 65536)
    off, length = table_extent(path)
    if off + length < path.stat().st_size - 65536:
        pytest.skip("the table is not in the last cluster")
    with open(path, "r+b") as f:
        f.truncate(off + length)
    s = run(SEN_IMG, "snapshot", "-l", path, check=False)
    q = run(QEMU_IMG, "snapshot", "-l", path, check=False)
    assert (s.returncode, s.stdout) == (q.returncode, q.stdout), (s.stderr, q.stderr)
