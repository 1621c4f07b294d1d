"""sen-img bitmap against qemu-img 7.2 bitmap: the same actions on copies of one image
give bitmaps of the same content (QEMU's x-debug-block-dirty-bitmap-sha256), the same
`info` (format-specific "bitmaps"), clean checks, and the same messages for wrong command
lines and failing actions; and bitmaps either tool adds the other sees."""
import json
import shutil

import pytest

from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, qemu_check_clean, run
import test_qcow2_bitmaps as tb

pytestmark = tb.pytestmark


def state(path, names):
    saved = tb.BITMAPS
    tb.BITMAPS = tuple(names)
    try:
        return tb.bitmap_state(path)
    finally:
        tb.BITMAPS = saved


def info_bitmaps(path):
    data = json.loads(run(QEMU_IMG, "info", "--output=json", path).stdout)
    return data["format-specific"]["data"].get("bitmaps")


def both(tmp_path, src, steps):
    """Runs each step (a list of bitmap arguments, FILE standing for the image) with
    sen-img on one copy of src and qemu-img on another; returns the two paths."""
    out = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        path = tmp_path / f"{who}.qcow2"
        shutil.copy(src, path)
        for step in steps:
            run(tool, "bitmap", *[str(path) if a == "FILE" else a for a in step])
        out[who] = path
    return out["sen"], out["qemu"]


NAMES = ("b0", "b1", "b2", "b3", "n1", "n2")


def test_actions_as_qemu_img(tmp_path):
    src = tb.image(tmp_path)
    other = tb.image(tmp_path, "other.qcow2")
    run(QEMU_IO, "-f", "qcow2", "-c", "write 40M 3M", other)
    sen, qemu = both(tmp_path, src, [
        ["--add", "-g", "512", "FILE", "n1"],
        ["--add", "--disable", "FILE", "n2"],
        ["--merge", "b1", "--merge", "b2", "FILE", "n2"],
        ["--clear", "FILE", "b0"],
        ["--enable", "FILE", "b3"],
        ["--disable", "FILE", "b1"],
        ["--merge", "b1", "-b", str(other), "-F", "qcow2", "FILE", "n1"],
        ["--remove", "FILE", "b2"],
    ])
    ours = state(sen, NAMES)
    assert ours == state(qemu, NAMES)
    assert set(ours) == {"b0", "b1", "b3", "n1", "n2"}
    assert ours["n1"][1] > 0 and ours["n2"][1] > 0 and ours["b0"][1] == 0
    assert info_bitmaps(sen) == info_bitmaps(qemu)
    qemu_check_clean(sen)
    # And the data still written after: only the enabled bitmaps see it.
    for p in (sen, qemu):
        run(QEMU_IO, "-f", "qcow2", "-c", "write 8M 64k", p)
    assert state(sen, NAMES) == state(qemu, NAMES)


def test_add_then_writes_through_sen(tmp_path):
    """A bitmap sen-img adds records what Sen writes later, as QEMU's does."""
    src = tmp_path / "src.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", src, "64M")
    sen, qemu = both(tmp_path, src, [["--add", "FILE", "n1"],
                                     ["--add", "-g", "1M", "FILE", "n2"]])
    assert info_bitmaps(sen) == info_bitmaps(qemu)
    top_s, top_q = tb.overlay(tmp_path, sen, "ts.qcow2"), tb.overlay(tmp_path, qemu, "tq.qcow2")
    run(SEN_IMG, "commit", top_s)
    run(QEMU_IMG, "commit", top_q)
    assert state(sen, ("n1", "n2")) == state(qemu, ("n1", "n2"))
    assert state(sen, ("n1",))["n1"][1] > 0


def test_remove_the_last_bitmap(tmp_path):
    src = tmp_path / "src.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", src, "64M")
    run(QEMU_IMG, "bitmap", "--add", src, "b0")
    sen, qemu = both(tmp_path, src, [["--remove", "FILE", "b0"]])
    assert info_bitmaps(sen) is None and info_bitmaps(qemu) is None
    qemu_check_clean(sen)
    with open(sen, "rb") as f:
        f.seek(88)
        assert f.read(8) == bytes(8)  # no autoclear bit left


def test_info_shows_bitmaps_as_qemu_img(tmp_path):
    path = tb.image(tmp_path)
    tb.set_in_use(path, "b1")
    for fmt in ("human", "json"):
        s = run(SEN_IMG, "info", f"--output={fmt}", path).stdout
        q = run(QEMU_IMG, "info", f"--output={fmt}", path).stdout
        if fmt == "json":
            s, q = json.loads(s), json.loads(q)
            assert s["format-specific"] == q["format-specific"]
        else:
            assert s[s.index("Format specific"):] == q[q.index("Format specific"):]


@pytest.mark.parametrize("args", [
    ["FILE", "x"],
    ["--add", "FILE"],
    ["--clear", "-g", "512", "FILE", "b0"],
    ["--add", "-F", "qcow2", "FILE", "zz"],
    ["--add", "-b", "FILE", "FILE", "zz"],
    ["--remove", "FILE", "nosuch"],
    ["--add", "FILE", "b0"],
    ["--add", "-g", "1000", "FILE", "n"],
    ["--merge", "nosuch", "FILE", "b0"],
    ["--clear", "FILE", "b1"],
    ["--enable", "FILE", "b1"],
    ["--merge", "b1", "FILE", "b0"],
    ["--add", "-g", "4G", "FILE", "big"],
])
def test_errors_as_qemu_img(tmp_path, args):
    path = tb.image(tmp_path)
    tb.set_in_use(path, "b1")
    res = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        p = tmp_path / f"{who}.qcow2"
        shutil.copy(path, p)
        r = run(tool, "bitmap", *[str(p) if a == "FILE" else a for a in args], check=False)
        res[who] = (r.returncode, r.stdout,
                    r.stderr.replace(str(p), "IMG").replace("qemu-img:", "sen-img:"))
    assert res["sen"] == res["qemu"]
    assert res["sen"][0] == 1
    qemu_check_clean(tmp_path / "sen.qcow2")
