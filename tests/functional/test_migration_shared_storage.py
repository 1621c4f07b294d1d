"""Live migration with shared storage (docs/migration.md, "Shared storage"): both VMs
open the same qcow2 file.  The destination opens it inactive (writes nothing) and reads
its metadata again when the migration completes; the source flushes and lets go of it
when it stops for the final round, and takes it back if the migration fails.

The writes are savevm's (snapshot table, refcounts, L1/L2, VM-state clusters that grow
the file ahead of need): metadata a stale cache on either side would corrupt.  No guest
CPU is needed (-accel qtest).  qemu-img is the oracle for the image.
"""
import json
import os
import subprocess
import time

import pytest

from migration_util import SEN, MiB, pattern, start_throttled_migration
from migration_util import QEMU_IMG, qcow2, drive, hmp, image_check, snapshot_tags
from migration_util import vms  # noqa: F401 (the pytest fixture)

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed"),
]


def file_state(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_mtime_ns, st.st_size


def quit_vm(vm):
    vm.cmd("quit")
    assert vm.wait_exit() == 0, vm.stderr_text()


def test_destination_open_writes_nothing(vms, tmp_path):
    """A header and bitmap directory the writable open would rewrite (a persistent
    bitmap, marked in use by a writer): the destination leaves every byte and the
    mtime."""
    disk = qcow2(tmp_path)
    subprocess.run([QEMU_IMG, "bitmap", "--add", disk, "b0"], check=True)
    before = file_state(disk)
    time.sleep(0.02)
    dst = vms("dst", *drive(disk), "-incoming", "defer")
    assert dst.status() == "inmigrate"
    dst.cmd("query-block")
    assert file_state(disk) == before, "the inactive destination wrote the image"
    dst.close()
    assert file_state(disk) == before, "closing the inactive destination wrote the image"


def test_shared_qcow2_survives_migration(vms, tmp_path):
    """Source writes (savevm: new clusters, refcounts, snapshot table) after the
    destination has read the image; the destination, once migrated, writes more; the
    source quits last (its close must not flush or trim over the destination's clusters):
    the image checks clean and holds both snapshots."""
    disk = qcow2(tmp_path, "-o", "lazy_refcounts=on")
    uri = f"unix:{tmp_path}/mig.sock"
    src = vms("src", *drive(disk))
    dst = vms("dst", *drive(disk), "-incoming", uri)
    src.qtest.write(0x1000000, pattern(1, 2 * MiB))
    assert hmp(src, "savevm before") == ""
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    assert src.status() == "postmigrate"
    # The destination saw the source's snapshot (table re-read) and adds its own.
    assert "before" in hmp(dst, "info snapshots")
    dst.qtest.write(0x1000000, pattern(2, 4 * MiB))
    assert hmp(dst, "savevm after") == ""
    quit_vm(dst)
    quit_vm(src)
    image_check(disk)
    assert snapshot_tags(disk) == ["before", "after"]
    # Both VM states read back: each snapshot loads and holds its own RAM.
    for tag, seed, size in (("before", 1, 2 * MiB), ("after", 2, 4 * MiB)):
        vm = vms(f"load-{tag}", *drive(disk), "-loadvm", tag)
        assert vm.qtest.read(0x1000000, size) == pattern(seed, size), tag
        quit_vm(vm)
    image_check(disk)


def test_cancelled_migration_leaves_the_source_writing(vms, tmp_path):
    """Cancelled midway: the source keeps its image writable, and a second migration to a
    fresh destination still hands it over."""
    disk = qcow2(tmp_path)
    uri = f"unix:{tmp_path}/mig.sock"
    src = vms("src", *drive(disk))
    src.qtest.write(0x1000000, pattern(3, 8 * MiB))
    dst = start_throttled_migration(vms, src, uri, settle=0.5)
    src.cmd("migrate_cancel")
    assert src.wait_migration()["status"] == "cancelled"
    assert src.status() == "running"
    dst.close()
    assert hmp(src, "savevm mid") == ""
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    dst2 = vms("dst2", *drive(disk), "-incoming", uri)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst2.wait_migration()["status"] == "completed"
    assert hmp(dst2, "savevm end") == ""
    quit_vm(dst2)
    quit_vm(src)
    image_check(disk)
    assert snapshot_tags(disk) == ["mid", "end"]


def test_cont_after_migration_takes_the_images_back(vms, tmp_path):
    """The destination quit; `cont` on the postmigrate source reads the image again (the
    destination's snapshot included) and writes it."""
    disk = qcow2(tmp_path)
    uri = f"unix:{tmp_path}/mig.sock"
    src = vms("src", *drive(disk))
    dst = vms("dst", *drive(disk), "-incoming", uri)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    dst.qtest.write(0x1000000, pattern(4, 2 * MiB))
    assert hmp(dst, "savevm on-dst") == ""
    quit_vm(dst)
    src.cmd("cont")
    assert src.status() == "running"
    assert "on-dst" in hmp(src, "info snapshots")
    assert hmp(src, "savevm on-src") == ""
    quit_vm(src)
    image_check(disk)
    assert snapshot_tags(disk) == ["on-dst", "on-src"]


def bitmap_cmd(vm, command, **args):
    """A block-dirty-bitmap-* command (its "name" argument clashes with cmd()'s)."""
    resp = vm.qmp.execute(command, args)
    assert "error" not in resp, resp
    return resp["return"]


def dirty_bitmaps(vm):
    return sorted(vm.cmd("query-block")[0]["inserted"].get("dirty-bitmaps", []),
                  key=lambda b: b["name"])


def test_bitmaps_follow_the_image(vms, tmp_path):
    """Persistent dirty bitmaps with shared storage, as QEMU without the dirty-bitmaps
    capability: the source stores them when it lets go of the image, the destination
    loads them when it takes it (marking them in use), and the image holds them valid
    once the destination quits; one writer at a time."""
    disk = qcow2(tmp_path)
    subprocess.run([QEMU_IMG, "bitmap", "--add", disk, "b0"], check=True)
    subprocess.run([QEMU_IMG, "bitmap", "--add", "--disable", disk, "b1"], check=True)
    subprocess.run([QEMU_IMG.replace("qemu-img", "qemu-io"), "-f", "qcow2", "-c",
                    "write 0 1M", disk], check=True, stdout=subprocess.DEVNULL)
    uri = f"unix:{tmp_path}/mig.sock"
    src = vms("src", *drive(disk))
    dst = vms("dst", *drive(disk), "-incoming", uri)
    # Changes only the source's memory holds until it stores them.
    bitmap_cmd(src, "block-dirty-bitmap-add", node="disk0", name="n1", granularity=512,
               persistent=True)
    bitmap_cmd(src, "block-dirty-bitmap-merge", node="disk0", target="n1", bitmaps=["b0"])
    bitmap_cmd(src, "block-dirty-bitmap-clear", node="disk0", name="b0")
    bitmap_cmd(src, "block-dirty-bitmap-enable", node="disk0", name="b1")
    before = dirty_bitmaps(src)
    assert [b["name"] for b in before] == ["b0", "b1", "n1"]
    assert dirty_bitmaps(dst) == [], "the inactive destination loaded bitmaps"
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    assert dirty_bitmaps(dst) == before
    # The destination owns them now: in use on disk until it stores them.
    info = subprocess.run([QEMU_IMG, "info", "-U", "--output=json", disk],
                          capture_output=True, text=True, check=True).stdout
    flags = {b["name"]: b["flags"] for b in
             json.loads(info)["format-specific"]["data"]["bitmaps"]}
    assert flags == {"b0": ["in-use", "auto"], "b1": ["in-use", "auto"],
                     "n1": ["in-use", "auto"]}, flags
    quit_vm(src)  # inactive: writes nothing over the destination's
    quit_vm(dst)
    image_check(disk)
    info = subprocess.run([QEMU_IMG, "info", "--output=json", disk], capture_output=True,
                          text=True, check=True).stdout
    flags = {b["name"]: b["flags"] for b in
             json.loads(info)["format-specific"]["data"]["bitmaps"]}
    assert flags == {"b0": ["auto"], "b1": ["auto"], "n1": ["auto"]}, flags
    # And Sen reads back what was stored (counts as before the migration).
    again = vms("again", *drive(disk))
    assert dirty_bitmaps(again) == before
    quit_vm(again)
