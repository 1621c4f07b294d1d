"""A guest writes its disk across a live migration with shared storage
(tests/guest/blk-migrate.c): both VMs open one qcow2 file; the guest writes numbered
blocks on the source while it is migrated, more on the destination, then reads every
acknowledged block back there.  The image then checks clean and holds every block
(qemu-img is the oracle).  Over tcp and unix."""
import os
import shutil
import struct
import subprocess
import time

import pytest

from migration_util import BUILD, SEN, needs_kvm_guest
from migration_util import vms  # noqa: F401 (the pytest fixture)
from net_util import free_port

IMAGE = os.path.join(BUILD, "tests", "guest", "blk-migrate.elf")
QEMU_IMG = shutil.which("qemu-img")
MAGIC = 0x53454E424C4B4D47
pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed"),
]


def block_words(k):
    """What blk-migrate.c's word() puts in block k."""
    return [MAGIC, k] + [(k * 0x9E3779B97F4A7C15 + i) & (2**64 - 1) for i in range(2, 64)]


def written_ops(vm):
    stats = vm.cmd("query-blockstats")
    return sum(d["stats"]["wr_operations"] for d in stats)


@needs_kvm_guest(IMAGE, "device and vCPU state has not landed: the guest cannot resume")
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_guest_writes_its_disk_across_migration(vms, tmp_path, kind):
    disk = str(tmp_path / "shared.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
    drive = ("-drive", f"file={disk},if=virtio,id=disk0")
    uri = (f"tcp:127.0.0.1:{free_port()}" if kind == "tcp" else f"unix:{tmp_path}/m.sock")
    src = vms("src", *drive, guest=IMAGE)
    src.wait_line("blk-migrate: writing", timeout=60)
    dst = vms("dst", *drive, "-incoming", uri, guest=IMAGE)
    # The guest's 1 MiB of ballast at 1 MiB/s: pre-copy lasts about a second, while the
    # guest writes several blocks a second.
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
    before = written_ops(src)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert src.status() == "postmigrate"
    assert written_ops(src) > before, "the guest wrote nothing while it was migrated"
    assert dst.wait_migration()["status"] == "completed"
    dst.send_console(b"v")
    assert dst.wait_exit(timeout=60) == 33, dst.lines
    done = dst.wait_line("blk-migrate: ")
    assert "read back" in done, dst.lines
    acked = int(done.split(",")[1].split()[0])
    src.cmd("quit")
    assert src.wait_exit() == 0, src.stderr_text()

    out = subprocess.run([QEMU_IMG, "check", disk], capture_output=True, text=True)
    assert out.returncode == 0 and "No errors were found" in out.stdout, out.stdout
    raw = tmp_path / "disk.raw"
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", disk, str(raw)], check=True)
    data = raw.read_bytes()
    for k in range(acked):
        got = list(struct.unpack_from("<64Q", data, k * 8 * 512))
        assert got == block_words(k), f"block {k} of {acked}"
    assert data[acked * 8 * 512:(acked * 8 + 1) * 512] == bytes(512), "a block past the last"
