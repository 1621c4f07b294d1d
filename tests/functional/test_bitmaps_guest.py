"""Persistent dirty bitmaps through a running guest (issue 4): the guest kit's virtio-blk
test (tests/guest/virtio-blk.c: writes through several chain shapes, write-zeroes,
discard, flush) runs under Sen on a qcow2 disk with bitmaps of 512 B, 64 KiB and 1 MiB
granules and a disabled one (run-guest.py --disk-bitmaps).  Afterwards QEMU 7.2 reads
every bitmap as consistent, the 512-byte bitmap names every sector whose content changed
and little else, the coarser ones are exactly its granules rounded up, and the disabled
one stayed empty.  (QEMU itself cannot be the oracle here: its isa-debug-exit ends the
process without closing the disks, so it leaves its bitmaps in use.)"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
GUEST = os.path.join(BUILD, "tests", "guest", "virtio-blk.elf")
RUNNER = os.path.join(os.path.dirname(__file__), "..", "guest", "run-guest.py")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or not shutil.which("qemu-img"),
                       reason="qemu-system-x86_64 / qemu-img (QEMU 7.2) not installed: "
                              "they make the image and read the bitmaps"),
]


def test_guest_writes_land_in_the_bitmaps(tmp_path):
    out = tmp_path / "bitmaps.json"
    p = subprocess.run(["/usr/bin/python3", RUNNER, "--vmm", "sen", "--disk",
                        "--disk-bitmaps", str(out), GUEST], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, SEN_BUILD_DIR=BUILD))
    if p.returncode == 77:
        pytest.skip(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0, p.stdout + p.stderr
    state = json.loads(out.read_text())
    for name in ("b0", "b1", "b2", "b3"):
        assert name in state and not state[name].get("inconsistent"), state.get(name)
    changed, dirty = set(state["changed-sectors"]), set(state["b1-dirty-sectors"])
    assert changed, "the guest changed nothing"
    assert changed <= dirty, sorted(changed - dirty)
    assert len(dirty) <= 2 * len(changed) + 16, sorted(dirty)  # no wholesale marking
    assert state["b1"]["count"] == len(dirty) * 512
    for name, g in (("b0", 65536), ("b2", 1 << 20)):
        assert state[name]["count"] == len({s * 512 // g for s in dirty}) * g, name
    assert state["b3"]["count"] == 0 and not state["b3"]["recording"]


def test_killed_vmm_leaves_bitmaps_in_use(tmp_path):
    """A Sen killed with its image open leaves the enabled bitmap in use (QEMU then calls
    it inconsistent, the truth: writes may be missing) and the disabled one untouched;
    a clean quit leaves both consistent."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "interop"))
    import test_qcow2_bitmaps as tb
    from vs_qemu import SEN, start_with_qmp
    if not os.access(SEN, os.X_OK):
        pytest.skip(f"{SEN} is not built")
    d = tempfile.mkdtemp(prefix="bmk", dir="/tmp")
    try:
        img = os.path.join(d, "img.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
        subprocess.run(["qemu-img", "bitmap", "--add", img, "b0"], check=True)
        subprocess.run(["qemu-img", "bitmap", "--add", "--disable", img, "b3"], check=True)
        argv = [SEN, "-M", "pc", "-m", "32M", "-display", "none", "-nodefaults", "-S",
                "-drive", f"file={img},format=qcow2,if=none,id=d0"]
        for how in ("kill", "quit"):
            proc, c = start_with_qmp(d, how, argv)
            c.cmd("query-block")
            if how == "kill":
                proc.kill()
            else:
                c.cmd("quit")
            proc.wait(timeout=30)
            proc.communicate()
            saved, tb.BITMAPS = tb.BITMAPS, ("b0", "b3")
            try:
                state = tb.bitmap_state(img)
            finally:
                tb.BITMAPS = saved
            assert state["b0"][2] is (how == "kill"), (how, state)
            assert state["b3"][2] is False, (how, state)
            if how == "kill":  # only removing it helps now, as in QEMU
                subprocess.run(["qemu-img", "bitmap", "--remove", img, "b0"], check=True)
                subprocess.run(["qemu-img", "bitmap", "--add", img, "b0"], check=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
