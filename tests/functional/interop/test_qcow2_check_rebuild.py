"""check -r all when a referenced cluster has no refcount at all (its refcount-table entry
lost): per-cluster repairs cannot fix that, so sen-img, like qemu-img, rebuilds the
refcount structure ("Rebuilding refcount structure") and then frees the old one.  qemu-img
is the oracle: the same report, a clean image with the same data afterwards; and with
-r leaks both refuse ("ERROR need to rebuild refcount structures") and change nothing."""
import json
import os
import subprocess
import struct

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, copies, needs_tools, qemu_check_clean, run

pytestmark = needs_tools()


def damaged_image(tmp_path, opts, snapshot):
    """An image whose refcount-table entry 1 (a range full of data) is zeroed."""
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, path, "8M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 3M", path)
    if snapshot:
        run(QEMU_IMG, "snapshot", "-c", "s1", path)
        run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 64k 128k", path)
    good = tmp_path / "good.raw"
    run(QEMU_IMG, "convert", "-O", "raw", path, good)
    with open(path, "r+b") as f:
        hdr = f.read(64)
        rt = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt + 8)
        assert struct.unpack(">Q", f.read(8))[0] != 0, "entry 1 covers nothing"
        f.seek(rt + 8)
        f.write(bytes(8))
    return path, good


def lines(text, prefix):
    return [l for l in text.splitlines() if l.startswith(prefix)]


@pytest.mark.parametrize("opts,snapshot", [("cluster_size=512", False),
                                           ("cluster_size=512", True),
                                           ("cluster_size=512,refcount_bits=64", True),
                                           ("cluster_size=1024,refcount_bits=4", False)])
def test_rebuild_like_qemu(tmp_path, opts, snapshot):
    path, good = damaged_image(tmp_path, opts, snapshot)
    imgs = copies(tmp_path, path)
    s = run(SEN_IMG, "check", "-r", "all", imgs["sen"], check=False)
    q = run(QEMU_IMG, "check", "-r", "all", imgs["qemu"], check=False)
    assert (s.returncode, q.returncode) == (0, 0), (s.stderr[-500:], q.stderr[-500:])
    for out in (s, q):
        assert "Rebuilding refcount structure" in out.stderr
    assert lines(s.stderr, "ERROR") == lines(q.stderr, "ERROR")
    assert lines(s.stderr, "ERROR"), "the damage was not found"
    # The repair summary and the double check, as qemu-img prints them (the image end may
    # differ with where the new structure went).
    assert lines(s.stdout, "    ") == lines(q.stdout, "    ")
    assert "No errors were found on the image." in s.stdout
    # The new table goes into the first free run, as qemu-img puts it: no larger file.
    assert imgs["sen"].stat().st_size <= imgs["qemu"].stat().st_size
    res = json.loads(run(QEMU_IMG, "check", "--output=json", imgs["sen"]).stdout)
    assert not res.get("corruptions") and not res.get("leaks"), res
    run(QEMU_IMG, "compare", "-F", "raw", imgs["sen"], good)
    if snapshot:
        run(QEMU_IMG, "compare", imgs["sen"], imgs["qemu"])
        # The snapshot's clusters are shared (refcount 2): writing the active image must
        # copy, not overwrite what the snapshot reads.
        run(QEMU_IO, "-f", "qcow2", "-c", "write -P 5 0 3M", imgs["sen"])
        run(QEMU_IMG, "snapshot", "-a", "s1", imgs["sen"])
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 0 64k", imgs["sen"])
        run(QEMU_IMG, "check", imgs["sen"])


def test_rebuild_needs_r_all(tmp_path):
    path, _ = damaged_image(tmp_path, "cluster_size=512", False)
    imgs = copies(tmp_path, path)
    before = path.read_bytes()
    s = run(SEN_IMG, "check", "-r", "leaks", imgs["sen"], check=False)
    q = run(QEMU_IMG, "check", "-r", "leaks", imgs["qemu"], check=False)
    assert s.returncode == q.returncode == 1
    for out in (s, q):
        assert "ERROR need to rebuild refcount structures" in out.stderr
    # The check could not complete: no results, only why, in qemu-img's words.
    assert s.stdout == q.stdout == ""
    assert s.stderr.replace("sen-img:", "qemu-img:") == q.stderr
    assert imgs["sen"].read_bytes() == before


def image_with_entry_just_past_the_end(tmp_path):
    """A version 2 image over a backing file, whose L2 entry for guest 64k points at the
    cluster just past the end of the file (-r all only reports it there: made
    unallocated it would show the backing file), and whose L2 table's refcount is lost
    (0), so that -r all rebuilds the structure; every cluster of the file is in use, so
    the rebuild grows the file."""
    base = tmp_path / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "4M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 3 0 1M", base)
    path = tmp_path / "orig.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", base,
        "-F", "qcow2", path)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 128k", path)
    cluster = 65536
    past_end = (path.stat().st_size + cluster - 1) // cluster * cluster
    with open(path, "r+b") as f:
        hdr = f.read(64)
        l1, rt = struct.unpack(">Q", hdr[40:48])[0], struct.unpack(">Q", hdr[48:56])[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2 + 8)
        old = struct.unpack(">Q", f.read(8))[0]
        f.seek(l2 + 8)
        f.write(struct.pack(">Q", (old & ~0x00fffffffffffe00) | past_end))
        f.seek(rt)
        refblock = struct.unpack(">Q", f.read(8))[0]
        f.seek(refblock + 2 * (l2 // cluster))
        f.write(bytes(2))
    return path, past_end


def test_rebuild_keeps_off_a_cluster_referenced_past_the_end(tmp_path):
    """The first free cluster of the grown file is the one the corrupt entry names:
    counted nowhere, qemu-img 7.2's rebuild puts its new refcount table there (measured:
    check -r all exits 2, a guest write at 64k then hits the overlap check and marks the
    image corrupt; on fuzzed images the same gives "rebuilt refcount structure is still
    broken").  sen-img's
    rebuild goes around it and gives it its refcount: the image is consistent, the
    guest reads what it read before, and later writes never land on that cluster."""
    path, past_end = image_with_entry_just_past_the_end(tmp_path)
    expected = tmp_path / "expected.raw"
    run(QEMU_IMG, "convert", "-O", "raw", path, expected)
    img = copies(tmp_path, path)["sen"]
    p = run(SEN_IMG, "check", "-r", "all", img, check=False)
    assert "Rebuilding refcount structure" in p.stderr, p.stderr
    assert "still broken" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stdout + p.stderr
    qemu_check_clean(img)
    run(QEMU_IMG, "compare", "-F", "raw", img, expected)
    # The entry's cluster holds nothing of the new refcount structure.
    with open(img, "rb") as f:
        f.seek(past_end)
        assert f.read(65536).strip(b"\0") == b"", "check wrote metadata on the cluster"
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 5 1M 1M", img)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0 64k 64k", img)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 0 64k", img)
    qemu_check_clean(img)


def test_failed_sync_after_the_header_write_leaves_a_recoverable_image(tmp_path, eio_shim):
    """The header write that switches to the rebuilt table succeeds but its flush fails
    (the shim fails the first fdatasync after a write covering byte 48): the check fails
    with the error, and the image, whichever table its header names now, has nothing
    worse than leaks for qemu-img and is repaired clean by a second check -r all, with
    the same data."""
    path, good = damaged_image(tmp_path, "cluster_size=512", True)
    env = dict(os.environ, LD_PRELOAD=str(eio_shim), SEN_TEST_SYNC_EIO_AFTER_WRITE="48")
    p = subprocess.run([SEN_IMG, "check", "-r", "all", str(path)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "ERROR setting the refcount table: Input/output error" in p.stderr, p.stderr
    q = run(QEMU_IMG, "check", "--output=json", path, check=False)
    assert q.returncode in (0, 3), q.stdout + q.stderr  # leaks at most
    assert not json.loads(q.stdout).get("corruptions"), q.stdout
    p = run(SEN_IMG, "check", "-r", "all", path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    qemu_check_clean(path)
    run(QEMU_IMG, "compare", "-F", "raw", path, good)
