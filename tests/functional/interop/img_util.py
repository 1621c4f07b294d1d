"""What the qemu-img interop tests share: where sen-img is, the oracle tools, the marks that
skip (never pass) a file when one is missing, and a command runner that fails with the
command's output."""
import json
import os
import shutil
import subprocess

import pytest

BUILD_DIR = os.environ.get("SEN_BUILD_DIR", "")
SEN_IMG = os.path.join(BUILD_DIR, "tools", "img", "sen-img")
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")


def needs_tools(qemu_io=True):
    """pytestmark for a file that runs sen-img against qemu-img (and qemu-io)."""
    marks = [pytest.mark.skipif(not BUILD_DIR,
                                reason="SEN_BUILD_DIR is not set (run through meson test)")]
    if qemu_io:
        marks.append(pytest.mark.skipif(not QEMU_IMG or not QEMU_IO,
                                        reason="qemu-img/qemu-io (Debian qemu-utils) not "
                                               "installed"))
    else:
        marks.append(pytest.mark.skipif(not QEMU_IMG,
                                        reason="qemu-img (Debian qemu-utils) not installed"))
    return marks


def run(*args, check=True, cwd=None, timeout=300):
    """Runs a command (arguments may be paths); with check, a failure shows its output."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def copies(tmp_path, path):
    """{"sen": copy, "qemu": copy} of the image at path, one for each tool to work on."""
    out = {}
    for who in ("sen", "qemu"):
        out[who] = tmp_path / f"{who}.qcow2"
        shutil.copy(path, out[who])
    return out


def check_both(tmp_path, path, args):
    """{"sen": ..., "qemu": ...} (exit status, stdout, stderr) of `check ARGS` by each tool
    on its own copy of path, with the copy's name and the tool's name made alike."""
    out = {}
    for name, img in copies(tmp_path, path).items():
        tool = SEN_IMG if name == "sen" else QEMU_IMG
        p = run(tool, "check", *args, img, check=False)
        out[name] = (p.returncode, p.stdout.replace(str(img), "IMG"),
                     p.stderr.replace(str(img), "IMG").replace("qemu-img:", "sen-img:"))
    return out


def qemu_check_clean(path):
    """qemu-img check's JSON report of path, asserting no corruption and no leak."""
    p = run(QEMU_IMG, "check", "--output=json", path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert res.get("corruptions", 0) == 0 and res.get("leaks", 0) == 0, res
    return res
