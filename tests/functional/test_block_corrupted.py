"""BLOCK_IMAGE_CORRUPTED, side by side with QEMU 7.2: a guest (tests/guest/blk-corrupt.c)
reads and writes one sector of a virtio-blk disk on a qcow2 image crafted to be corrupt
there, then reads a healthy sector, and both VMMs must send the same events (QEMU's
fields, message, offset, size and `fatal`, once per image, then the request's
BLOCK_IO_ERROR; device "" for a -blockdev node), give the guest the same statuses, show
the same query-block / query-named-block-nodes afterwards (a fatal corruption ejects
the node: every later request fails without an event), and leave the corrupt bit the
same way."""
import os
import select
import struct
import subprocess
import time

import pytest

from qmp import QMPClient, QMPError
from vs_qemu import BUILD, QEMU, QEMU_IMG, SEN, short_dir

GUEST = os.path.join(BUILD, "tests", "guest", "blk-corrupt.elf")
QEMU_IO = os.path.join(os.path.dirname(QEMU_IMG or "/usr/bin/qemu-img"), "qemu-io")
QBOOT = "/usr/share/qemu/qboot.rom"
COPIED = 1 << 63
L1_TABLE = 0x30000  # where qemu-img puts the L1 table of a new 64 KiB-cluster image
# What the guest reads and writes: the first cluster of L1 entry 1 (QEMU reads sector 0
# when it creates the device, before QMP clients could hear of corruption found there).
GUEST_OFF = 512 << 20
L1_INDEX = 1

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not QEMU or not QEMU_IMG or not os.access(QEMU_IO, os.X_OK),
                       reason="qemu-system-x86_64 / qemu-img / qemu-io (QEMU 7.2) not installed"),
    pytest.mark.skipif(not os.path.exists(QBOOT), reason=f"QEMU needs {QBOOT} here"),
]


@pytest.fixture
def d():
    yield from short_dir("bce")


def image_with_guest_cluster(path, opts="", entry=8):
    """A 1 GiB qcow2 image (-o opts; L2 entries of `entry` bytes) whose guest cluster at
    GUEST_OFF is allocated; returns its L2 table's offset, where the cluster's entry is the
    first."""
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2"] + (["-o", opts] if opts else [])
                   + [path, "1G"], check=True)
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", f"write -P 0x11 {GUEST_OFF} 64k", path],
                   check=True, stdout=subprocess.DEVNULL)
    l1_index = GUEST_OFF // (65536 * (65536 // entry))
    assert GUEST_OFF % (65536 * (65536 // entry)) == 0
    with open(path, "rb") as f:
        f.seek(36)
        l1_size, l1_off = struct.unpack(">IQ", f.read(12))
        assert l1_off == L1_TABLE and l1_size > l1_index
        f.seek(l1_off + 8 * l1_index)
        return struct.unpack(">Q", f.read(8))[0] & ~COPIED


def poke64(path, off, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(">Q", value))


def l2_entry_at_l1_table(path):
    """The guest's cluster maps (in place: COPIED) onto the active L1 table: a guest write
    there must be refused by the overlap check."""
    poke64(path, image_with_guest_cluster(path), L1_TABLE | COPIED)


def unaligned_l2_table(path):
    """The L1 entry names an L2 table 512 bytes into a cluster: any access to the guest's
    cluster finds it."""
    l2 = image_with_guest_cluster(path)
    poke64(path, L1_TABLE + 8 * L1_INDEX, (l2 + 512) | COPIED)


def zero_flag_in_v2(path):
    """A version 2 image whose L2 entry has the zero flag, which only version 3 has."""
    l2 = image_with_guest_cluster(path, "compat=0.10")
    with open(path, "rb") as f:
        f.seek(l2)
        entry = struct.unpack(">Q", f.read(8))[0]
    poke64(path, l2, entry | 1)


def invalid_subcluster_bitmap(path):
    """Extended L2 entries: subcluster 0 both allocated and zero."""
    l2 = image_with_guest_cluster(path, "extended_l2=on", entry=16)
    poke64(path, l2 + 8, (1 << 32) | 1)


def run_guest(d, name, argv):
    """Runs the guest under argv + QMP until it printed "blk-corrupt: done", then asks for
    the block state and the status (QMP sends the events that came before the answer
    first) and quits; returns every event but the run-state ones, without timestamps, the
    guest's lines, the VMM's stderr and the block state: whether query-block shows the
    drive "inserted", and query-named-block-nodes' answer ("ok" or the error)."""
    sock = os.path.join(d, name + ".sock")
    proc = subprocess.Popen(argv + ["-qmp", f"unix:{sock},server=on,wait=off", "-S"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    try:
        c = QMPClient.connect_unix(sock)
        c.negotiate()
        c.cmd("cont")
        out = b""
        end = time.monotonic() + 60
        while b"blk-corrupt: done" not in out:
            left = end - time.monotonic()
            assert left > 0, (name, out.decode(errors="replace"))
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, (name, "the VMM ended", out.decode(errors="replace"),
                               proc.stderr.read().decode(errors="replace"))
                out += chunk
        state = {"inserted": "inserted" in c.cmd("query-block")[0]}
        try:
            c.cmd("query-named-block-nodes")
            state["named-nodes"] = "ok"
        except QMPError as e:
            state["named-nodes"] = str(e)
        c.cmd("query-status")
        events = list(c.events)
        c.cmd("quit")
        proc.wait(timeout=30)
        err = proc.stderr.read().decode(errors="replace")
    finally:
        proc.kill()
        proc.wait()
    lines = [ln for ln in out.decode(errors="replace").splitlines() if "blk-corrupt:" in ln]
    ev = [(e["event"], e.get("data")) for e in events
          if e["event"] not in ("RESUME", "STOP", "SHUTDOWN")]
    return ev, lines, err, state


def vmm_argv(vmm, image, form):
    """The guest on image, a qcow2 node fmt0: under -drive id=disk0 (read-only with
    form drive-ro) or -blockdev."""
    modern = ",disable-legacy=on" if vmm == "qemu" else ""
    if form.startswith("drive"):
        ro = ",readonly=on" if form == "drive-ro" else ""
        drive = ["-drive", f"file={image},format=qcow2,if=none,id=disk0,node-name=fmt0{ro}",
                 "-device", "virtio-blk-pci,drive=disk0" + modern]
    else:
        drive = ["-blockdev", "driver=qcow2,node-name=fmt0,file.driver=file,"
                 f"file.filename={image}", "-device", "virtio-blk-pci,drive=fmt0" + modern]
    common = ["-m", "64M", "-kernel", GUEST, "-device", "isa-debug-exit", "-display", "none",
              "-nodefaults", "-serial", "stdio", "-no-reboot"] + drive
    if vmm == "sen":
        return [SEN, "-M", "pc"] + common
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
            "-bios", QBOOT] + common


def corrupt_bit(path):
    with open(path, "rb") as f:
        f.seek(72)
        return bool(struct.unpack(">Q", f.read(8))[0] & 2)


@pytest.mark.parametrize("form", ["drive", "blockdev"])
@pytest.mark.parametrize("craft", [l2_entry_at_l1_table, unaligned_l2_table, zero_flag_in_v2,
                                   invalid_subcluster_bitmap])
def test_corruption_events_match_qemu(d, craft, form):
    got = {}
    for vmm in ("sen", "qemu"):
        image = os.path.join(d, vmm + ".qcow2")
        craft(image)
        events, lines, err, state = run_guest(d, vmm, vmm_argv(vmm, image, form))
        assert len(lines) == 6, (vmm, lines, err)
        # The corruption, then the guest request that found it failing (QEMU's order),
        # and nothing more: the node is ejected, so every later request fails before it
        # reaches the node, without an event (docs/qcow2.md).
        assert [name for name, _ in events] == ["BLOCK_IMAGE_CORRUPTED", "BLOCK_IO_ERROR"], \
            (vmm, events)
        got[vmm] = (events, corrupt_bit(image), lines, state)
        # Both print QEMU's line on stderr.
        assert "qcow2: Marking image as corrupt: " + events[0][1]["msg"] in err, (vmm, err)
    assert got["sen"] == got["qemu"]
    (corrupt, _), marked, lines, state = got["sen"]
    # Even the healthy sector 0 fails after the corruption; the drive shows no medium.
    assert lines[4] == "blk-corrupt: read sector 0: status 1", lines
    assert state == {"inserted": False,
                     "named-nodes": "GenericError: Block device fmt0 is ejected"}, state
    # Version 2 has no corrupt bit: the image is only read-only until closed.
    assert corrupt[1]["fatal"] and marked == (craft is not zero_flag_in_v2)
    # QEMU's device: the drive id, "" for a -blockdev node (in both events).
    want = "disk0" if form == "drive" else ""
    assert corrupt[1]["device"] == want and corrupt[1]["node-name"] == "fmt0"


def test_read_only_corruption_is_not_fatal_like_qemu(d):
    """On a read-only drive nothing more can be damaged: the event says fatal false, the
    stderr line is QEMU's non-fatal one, and the corrupt bit stays clear."""
    got = {}
    for vmm in ("sen", "qemu"):
        image = os.path.join(d, vmm + ".qcow2")
        unaligned_l2_table(image)
        events, lines, err, state = run_guest(d, vmm, vmm_argv(vmm, image, "drive-ro"))
        assert len(lines) == 6, (vmm, lines, err)
        assert [name for name, _ in events].count("BLOCK_IMAGE_CORRUPTED") == 1, (vmm, events)
        first = events[:2]
        got[vmm] = (first, corrupt_bit(image), lines, state)
        assert "qcow2: Image is corrupt: " + first[0][1]["msg"] + "; further non-fatal " \
            "corruption events will be suppressed" in err, (vmm, err)
    assert got["sen"] == got["qemu"]
    (corrupt, io_error), marked, lines, state = got["sen"]
    assert corrupt == ("BLOCK_IMAGE_CORRUPTED", dict(corrupt[1], fatal=False)), corrupt
    assert io_error[0] == "BLOCK_IO_ERROR" and not marked
    # Not fatal: the node stays usable, the healthy sector reads.
    assert lines[4] == "blk-corrupt: read sector 0: status 0", lines
    assert state == {"inserted": True, "named-nodes": "ok"}, state
