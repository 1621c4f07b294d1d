"""check when an L2 table cannot be read (EIO from the disk): qemu-img fails the whole check
("Check failed: Input/output error") and writes nothing, with or without -r.  sen-img did
count the table as one internal error and went on: -r leaks then freed the clusters only
that table referenced and -r all rebuilt them to refcount 0, so later writes would have
overwritten guest data.  The read error comes from eio_preload.c (LD_PRELOAD, built here
with the system C compiler), which fails every pread/preadv covering one byte offset."""
import os
import shutil
import struct
import subprocess

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()

def image_with_l2(tmp_path):
    """Data in two places, a snapshot, more data: returns (path, offset of the active L2)."""
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", path, "64M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x5a 0 4M", "-c", "write -P 0x33 32M 1M", path)
    run(QEMU_IMG, "snapshot", "-c", "s1", path)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x11 0 1M", path)
    with open(path, "rb") as f:
        hdr = f.read(48)
        f.seek(struct.unpack(">Q", hdr[40:48])[0])
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    assert l2, "L1 entry 0 maps no L2 table"
    return path, l2


@pytest.mark.parametrize("repair", [[], ["-r", "leaks"], ["-r", "all"]],
                         ids=["report", "leaks", "all"])
@pytest.mark.parametrize("tool", ["sen", "qemu"])
def test_unreadable_l2_fails_the_check_and_writes_nothing(tmp_path, eio_shim, tool, repair):
    orig, l2 = image_with_l2(tmp_path)
    path = tmp_path / "img.qcow2"
    shutil.copy(orig, path)
    env = dict(os.environ, LD_PRELOAD=str(eio_shim), SEN_TEST_EIO_OFFSET=str(l2))
    exe = SEN_IMG if tool == "sen" else QEMU_IMG
    p = subprocess.run([str(exe), "check", *repair, str(path)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Check failed: Input/output error" in p.stderr, p.stdout + p.stderr
    assert "Repairing" not in p.stdout + p.stderr
    with open(orig, "rb") as a, open(path, "rb") as b:
        assert a.read() == b.read(), "the check wrote to an image it could not read"
    # Readable again, the image is as good as before: nothing was lost.
    assert run(QEMU_IMG, "check", path).returncode == 0
