"""Bad overlap-check values, side by side with QEMU 7.2.  QEMU words them two ways: where
the qcow2 driver parses the options (-drive, qemu-img --image-opts) "Unsupported value 'x'
for qcow2 option 'overlap-check'" whichever spelling was used (overlap-check=x or
overlap-check.template=x); where its QAPI visitor checks them first (-blockdev in both
forms, blockdev-add) "Parameter 'overlap-check' does not accept value 'x'" or "Parameter
'template' ...", a type error for a JSON value that is neither a mode nor an object, and
"Parameters 'overlap-check.*' used inconsistently" for both forms at once.  Sen must say
the same in each place."""
import os
import subprocess

import pytest

from vs_qemu import (BUILD, COMMON, NEEDS_SEN_AND_QEMU, QEMU_IMG, VMMS, run_steps, short_dir,
                     start_with_qmp)

pytestmark = NEEDS_SEN_AND_QEMU
SEN_IMG = os.path.join(BUILD, "tools", "img", "sen-img")


@pytest.fixture
def d():
    yield from short_dir("occ")


def image(d):
    img = os.path.join(d, "t.qcow2")
    if not os.path.exists(img):
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M"], check=True)
    return img


def startup_error(base, args):
    """The VMM's error for args, without its program name."""
    r = subprocess.run(base + COMMON + args, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stderr
    return r.stderr.strip().split(": ", 1)[1]


DOTTED = ["overlap-check=sometimes", "overlap-check.template=x",
          "overlap-check=none,overlap-check.template=all",
          "overlap-check=x,overlap-check.template=all"]
JSON = ['"sometimes"', '{"template": "x"}', "5", "true"]


@pytest.mark.parametrize("opt", DOTTED)
def test_drive_like_qemu(d, opt):
    args = ["-drive", f"file={image(d)},format=qcow2,if=none,{opt}"]
    got = {name: startup_error(base, args) for name, base in VMMS}
    assert got["sen"] == got["qemu"]


@pytest.mark.parametrize("opt", DOTTED + ["backing.driver=qcow2,backing.file.driver=file,"
                                          "backing.file.filename=IMG,backing.overlap-check=x"])
def test_blockdev_dotted_like_qemu(d, opt):
    img = image(d)
    args = ["-blockdev", f"driver=qcow2,node-name=n,file.driver=file,file.filename={img},"
            + opt.replace("IMG", img)]
    got = {name: startup_error(base, args) for name, base in VMMS}
    assert got["sen"] == got["qemu"]


@pytest.mark.parametrize("value", JSON)
def test_blockdev_json_like_qemu(d, value):
    args = ["-blockdev", '{"driver": "qcow2", "node-name": "n", "file": {"driver": "file", '
            f'"filename": "{image(d)}"}}, "overlap-check": {value}}}']
    got = {name: startup_error(base, args) for name, base in VMMS}
    assert got["sen"] == got["qemu"]


def test_blockdev_add_like_qemu(d):
    img = image(d)
    steps = [("blockdev-add", {"driver": "qcow2", "node-name": "n", "overlap-check": oc,
                               "file": {"driver": "file", "filename": img}})
             for oc in ("sometimes", {"template": "x"}, 5, {"template": "all"})]
    got = {}
    for name, base in VMMS:
        proc, c = start_with_qmp(d, name, base + COMMON)
        got[name] = run_steps(proc, c, steps)
    assert got["sen"] == got["qemu"]
    assert got["sen"][-1] == ("ok", {}), got["sen"]


@pytest.mark.parametrize("opt", DOTTED[:3])
def test_image_opts_like_qemu_img(d, opt):
    img = image(d)
    raw = os.path.join(d, "src.raw")
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
    spec = f"driver=qcow2,file.filename={img},{opt}"
    got = {}
    for tool in (SEN_IMG, QEMU_IMG):
        r = subprocess.run([tool, "convert", "-n", "-f", "raw", "--target-image-opts", raw,
                            spec], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, r.stderr
        got[tool] = r.stderr.strip().split(": ", 1)[1]
    assert got[SEN_IMG] == got[QEMU_IMG]
