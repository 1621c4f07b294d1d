"""-incoming together with a snapshot (docs/migration.md, "Snapshots and -incoming"): a
VM waiting for a migration has its images inactive (the source still owns them), so a
snapshot cannot be loaded into it.  QEMU 7.2 refuses -incoming with -loadvm at start-up
("'incoming' and 'loadvm' options are mutually exclusive"), and Sen says the same; a
loadvm through the monitor while the migration is awaited fails with a clear error and
the VM still takes the migration."""
import os
import shutil
import subprocess

import pytest

from migration_util import SEN, MiB, pattern
from migration_util import QEMU_IMG, qcow2, drive, hmp
from migration_util import vms  # noqa: F401 (the pytest fixture)

QEMU = shutil.which("qemu-system-x86_64")
EXCLUSIVE = "'incoming' and 'loadvm' options are mutually exclusive"
pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed"),
]


def with_snapshot(vms, tmp_path):
    disk = qcow2(tmp_path)
    vm = vms("saver", *drive(disk))
    vm.qtest.write(0x1000000, pattern(7, MiB))
    assert hmp(vm, "savevm s1") == ""
    vm.cmd("quit")
    assert vm.wait_exit() == 0
    return disk


def snapshot_file_state(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("order", ["incoming-first", "loadvm-first"])
def test_incoming_with_loadvm_is_refused(vms, tmp_path, order):
    disk = with_snapshot(vms, tmp_path)
    before = snapshot_file_state(disk)
    pair = [("-incoming", "defer"), ("-loadvm", "s1")]
    if order == "loadvm-first":
        pair.reverse()
    r = subprocess.run([SEN, "-M", "pc", "-m", "64M", "-display", "none", "-nodefaults",
                        "-accel", "qtest", *drive(disk), *pair[0], *pair[1]],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert EXCLUSIVE in r.stderr, r.stderr
    assert snapshot_file_state(disk) == before


@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 (QEMU 7.2) is not installed")
def test_qemu_refuses_the_same_way(tmp_path):
    """The reference: QEMU 7.2 exits 1 with the same message (checked on an image without
    snapshots: the refusal comes before any image is opened)."""
    disk = qcow2(tmp_path)
    r = subprocess.run([QEMU, "-M", "pc", "-m", "64M", "-display", "none", "-nodefaults",
                        *drive(disk), "-incoming", "defer", "-loadvm", "s1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert EXCLUSIVE in r.stderr, r.stderr


def test_loadvm_while_awaiting_a_migration_fails_clearly(vms, tmp_path):
    """HMP loadvm on an -incoming VM: an error naming the reason, the image untouched,
    and the migration still comes in."""
    disk = with_snapshot(vms, tmp_path)
    before = snapshot_file_state(disk)
    dst = vms("dst", *drive(disk), "-incoming", "defer")
    assert hmp(dst, "loadvm s1") == "Error: loadvm: a migration is in progress\r\n"
    assert dst.status() == "inmigrate"
    assert snapshot_file_state(disk) == before
    src = vms("src", *drive(disk))
    src.qtest.write(0x1000000, pattern(8, MiB))
    dst.cmd("migrate-incoming", uri=f"unix:{tmp_path}/m.sock")
    src.cmd("migrate", uri=f"unix:{tmp_path}/m.sock")
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    assert dst.qtest.read(0x1000000, MiB) == pattern(8, MiB)
    # Once migrated the images are the destination's: loadvm works again.
    assert hmp(dst, "loadvm s1") == ""
    assert dst.qtest.read(0x1000000, MiB) == pattern(7, MiB)
