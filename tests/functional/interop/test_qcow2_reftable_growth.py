"""Where a grown refcount table goes.  Guest writes past the end of the file grow it
ahead (block/qcow2-cluster.c, qcow2_prealloc_ahead); a refcount table that has to grow
meanwhile must land at the end of the allocated data, as qemu-img puts it, not after
the grown tail (which left a gap of free clusters and a file twice as long).  qemu-img
is the oracle: the same writes through `qemu-img bench` give an image at least as large,
the data compares equal, and `qemu-img check` finds nothing."""
import os
import struct

import pytest
from img_util import QEMU_IMG, SEN_IMG, needs_tools, qemu_check_clean, run

pytestmark = needs_tools(qemu_io=False)


def create(path, opts):
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, path, "256M")


def bench_write(tool, path, count, offset):
    """count 4 KiB sequential writes from offset, depth 8, as both tools spell it."""
    run(tool, "bench", "-w", "-c", str(count), "-s",
        "4k", "-S", "4k", "-d", "8", "-o", str(offset), "-f", "qcow2", path)


def reftable(path):
    with open(path, "rb") as f:
        hdr = f.read(60)
    return struct.unpack(">Q", hdr[48:56])[0], struct.unpack(">I", hdr[56:60])[0]


# One refcount-table cluster covers 8 MiB of file (512-byte clusters, 16-bit refcounts),
# 2 MiB (64-bit) or 16 MiB (1 KiB clusters, 64-bit): 16 MiB of writes grow the table
# (several times for the first two) while the file is grown 32 MiB ahead.
@pytest.mark.parametrize("opts", ["cluster_size=512", "cluster_size=512,refcount_bits=64",
                                  "cluster_size=1024,refcount_bits=64"])
@pytest.mark.parametrize("sessions", [1, 2])
def test_grown_reftable_sits_at_data_end(tmp_path, opts, sessions):
    images = {}
    for tool, name in ((SEN_IMG, "sen"), (QEMU_IMG, "qemu")):
        path = tmp_path / f"{name}.qcow2"
        create(path, opts)
        before = reftable(path)
        # A second session starts with data in the file: what it held before counts.
        per = 4096 // sessions
        for i in range(sessions):
            bench_write(tool, path, per, i * per * 4096)
        images[name] = path
        assert reftable(path) != before, "the writes did not grow the refcount table"
    sen, qemu = images["sen"], images["qemu"]
    res = qemu_check_clean(sen)
    run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "qcow2", sen, qemu)
    sen_len, qemu_len = os.path.getsize(sen), os.path.getsize(qemu)
    assert sen_len <= qemu_len, (sen_len, qemu_len, reftable(sen), reftable(qemu))
    # No gap of free clusters before the table: at most a few freed ones at the end (the
    # close trims to the highest cluster ever allocated), and the table inside the data.
    cluster = int(opts.split(",")[0].split("=")[1])
    assert sen_len - res["image-end-offset"] <= 4 * cluster, (sen_len, res)
    rt_off, rt_clusters = reftable(sen)
    assert rt_off + rt_clusters * cluster <= res["image-end-offset"]
