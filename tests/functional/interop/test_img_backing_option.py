"""QEMU's `backing` option of a qcow2 node in --image-opts: what the guest reads.

The overlay names base as its backing file; the option replaces it: `backing=` (null, in
the dotted form) reads the overlay alone (zeroes where it has no data), an inline
`backing.driver=qcow2,backing.file.filename=other.qcow2` reads through other.qcow2, and an
unknown node name fails with QEMU's words.  sen-img convert must produce the bytes
qemu-img convert produces for each, and fail where it fails."""
import subprocess

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

pytestmark = needs_tools()

VARIANTS = {
    "own-backing-file": "",
    "null": ",backing=",
    "inline": ",backing.driver=qcow2,backing.file.filename=other.qcow2",
    "unknown-node": ",backing=nosuch",
}


@pytest.fixture
def images(tmp_path):
    for name, pattern in (("base", 5), ("other", 7)):
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", tmp_path / f"{name}.qcow2", "1M")
        run(QEMU_IO, "-c", f"write -P {pattern} 0 1M", tmp_path / f"{name}.qcow2")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
        tmp_path / "ov.qcow2", cwd=tmp_path)
    run(QEMU_IO, "-c", "write -P 6 64k 64k", tmp_path / "ov.qcow2")
    return tmp_path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_backing_option_reads_like_qemu(images, variant):
    opts = "driver=qcow2,file.filename=ov.qcow2" + VARIANTS[variant]
    got = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        p = run(tool, "convert", "-O", "raw", "--image-opts", opts, f"{who}.raw",
                cwd=images, check=False)
        err = p.stderr.replace("qemu-img:", "sen-img:")
        # qemu-img 7.2 warns that "backing": "" is deprecated for null; sen-img does not.
        err = "\n".join(line for line in err.splitlines() if "is deprecated" not in line)
        got[who] = (p.returncode, err)
    assert got["sen"] == got["qemu"]
    if got["sen"][0] == 0:
        sen, qemu = ((images / f"{w}.raw").read_bytes() for w in ("sen", "qemu"))
        assert sen == qemu
        # Not vacuous: the option changed what reads at 0 (the overlay has data at 64k).
        want = {"own-backing-file": 5, "null": 0, "inline": 7}[variant]
        assert sen[:4] == bytes([want]) * 4 and sen[64 << 10] == 6
    else:
        assert variant == "unknown-node"
        assert "Cannot find device='nosuch' nor node-name='nosuch'" in got["sen"][1]
