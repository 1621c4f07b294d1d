"""QMP dirty bitmaps against QEMU 7.2: the same qcow2 image with persistent bitmaps (one
of them left in_use, as a crash leaves it) opened as `-drive if=none,id=d0` by Sen and by
QEMU, the same block-dirty-bitmap-add/-remove/-clear/-enable/-disable/-merge sequence
(errors included: class and text), the same "dirty-bitmaps" in query-block and
query-named-block-nodes, and after `quit` the same bitmaps in the images (QEMU's
x-debug-block-dirty-bitmap-sha256 of each)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from vs_qemu import COMMON, NEEDS_SEN_AND_QEMU, QEMU_IMG, VMMS, short_dir, start_with_qmp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "interop"))
import test_qcow2_bitmaps as tb  # noqa: E402

pytestmark = NEEDS_SEN_AND_QEMU + tb.pytestmark


@pytest.fixture
def d():
    yield from short_dir("qdb")


STEPS = [
    ("block-dirty-bitmap-add", {"node": "d0", "name": "n1", "granularity": 512,
                                "persistent": True}),
    ("block-dirty-bitmap-add", {"node": "d0", "name": "n2", "disabled": True}),
    ("block-dirty-bitmap-add", {"node": "d0", "name": "n1"}),
    ("block-dirty-bitmap-add", {"node": "d0", "name": "n3", "granularity": 1000}),
    ("block-dirty-bitmap-add", {"node": "nosuch", "name": "n3"}),
    ("block-dirty-bitmap-add", {"node": "d0", "name": ""}),
    ("block-dirty-bitmap-remove", {"node": "d0", "name": "nosuch"}),
    ("block-dirty-bitmap-remove", {"node": "nosuch", "name": "b0"}),
    ("block-dirty-bitmap-clear", {"node": "d0", "name": "b1"}),
    ("block-dirty-bitmap-enable", {"node": "d0", "name": "b1"}),
    ("block-dirty-bitmap-enable", {"node": "d0", "name": "b3"}),
    ("block-dirty-bitmap-disable", {"node": "d0", "name": "b0"}),
    ("block-dirty-bitmap-merge", {"node": "d0", "target": "n1",
                                  "bitmaps": ["b2", {"node": "d0", "name": "b3"}]}),
    ("block-dirty-bitmap-merge", {"node": "d0", "target": "n1", "bitmaps": ["nosuch"]}),
    ("block-dirty-bitmap-merge", {"node": "d0", "target": "b1", "bitmaps": ["b0"]}),
    ("block-dirty-bitmap-clear", {"node": "d0", "name": "b2"}),
    ("block-dirty-bitmap-remove", {"node": "d0", "name": "b0"}),
]


def bitmaps_of(nodes):
    out = {}
    for n in nodes:
        info = n.get("inserted", n)
        out[info.get("node-name", "?") if "inserted" not in n else n["device"]] = sorted(
            info.get("dirty-bitmaps", []), key=lambda b: b["name"])
    return out


def session(d, name, argv, image):
    proc, c = start_with_qmp(d, name, argv + COMMON + [
        "-drive", f"file={image},format=qcow2,if=none,id=d0"])
    out = []
    try:
        out.append(bitmaps_of(c.cmd("query-block")))
        for cmd, args in STEPS:
            resp = c.execute(cmd, args)  # (cmd() takes "name" itself)
            out.append((resp["error"]["class"], resp["error"]["desc"]) if "error" in resp
                       else ("ok", resp["return"]))
        out.append(bitmaps_of(c.cmd("query-block")))
        nodes = [n for n in c.cmd("query-named-block-nodes") if n["drv"] == "qcow2"]
        out.append([sorted(n.get("dirty-bitmaps", []), key=lambda b: b["name"])
                    for n in nodes])
        c.cmd("quit")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    return out


def test_bitmap_commands_as_qemu(d, tmp_path):
    src = tb.image(tmp_path)
    tb.set_in_use(src, "b1")
    images = {}
    results = {}
    for name, argv in VMMS:
        images[name] = os.path.join(d, f"{name}.qcow2")
        shutil.copy(src, images[name])
        results[name] = session(d, name, argv, images[name])
    for i, (s, q) in enumerate(zip(results["sen"], results["qemu"])):
        assert s == q, (["query"] + STEPS + ["query", "nodes"])[i]
    names = ("b1", "b2", "b3", "n1", "n2", "b0")
    saved = tb.BITMAPS
    tb.BITMAPS = names
    try:
        ours, theirs = tb.bitmap_state(images["sen"]), tb.bitmap_state(images["qemu"])
    finally:
        tb.BITMAPS = saved
    assert ours == theirs
    assert set(ours) == {"b1", "b2", "b3", "n1"}, ours  # n2 was not persistent
    tb.qemu_check_clean(images["sen"])


def test_remove_reaches_the_image_at_once_as_qemu(d, tmp_path):
    """block-dirty-bitmap-remove of a persistent bitmap rewrites the directory at once
    (QEMU's qcow2_co_remove_persistent_dirty_bitmap): a VMM killed right after it does
    not bring the bitmap back.  The others stay as they were (the enabled ones in use)."""
    src = tb.image(tmp_path)
    seen = {}
    for name, argv in VMMS:
        image = os.path.join(d, f"{name}.qcow2")
        shutil.copy(src, image)
        proc, c = start_with_qmp(d, name, argv + COMMON + [
            "-drive", f"file={image},format=qcow2,if=none,id=d0"])
        try:
            assert c.execute("block-dirty-bitmap-remove", {"node": "d0", "name": "b0"}) == {"return": {}}
            assert c.execute("block-dirty-bitmap-remove", {"node": "d0", "name": "b3"}) == {"return": {}}
            running = subprocess.run([QEMU_IMG, "info", "-U", "--output=json", image],
                                     capture_output=True, text=True, check=True).stdout
        finally:
            proc.kill()
            proc.communicate()
        data = json.loads(running)["format-specific"]["data"]
        seen[name] = ({b["name"]: b["flags"] for b in data.get("bitmaps", [])},
                      tb.info_flags(image))
        p = subprocess.run([QEMU_IMG, "check", image], capture_output=True, text=True)
        # No corruption; a killed QEMU may leave leaks (its refcount cache), Sen none.
        assert p.returncode == 0 or (name == "qemu" and p.returncode == 3), p.stdout + p.stderr
    assert seen["sen"] == seen["qemu"]
    assert set(seen["sen"][1]) == {"b1", "b2"}, seen
