"""auto-read-only=on against QEMU 7.2 (docs/image-locking.md#auto-read-only): on a file
system mounted read-only, a file node with auto-read-only=on opens read-only, a
read-only qcow2 node on it works (libvirt's backing chains) and a writable one fails
with the host's answer; both VMMs give the same outcome.  Needs a private mount
namespace (root): skipped otherwise."""
import json
import os
import shutil
import subprocess

import pytest
from img_util import QEMU_IMG, needs_tools

BUILD_DIR = os.environ.get("SEN_BUILD_DIR", "")
SEN = os.path.join(BUILD_DIR, "sen")
QEMU_SYSTEM = shutil.which("qemu-system-x86_64")
UNSHARE = shutil.which("unshare")
pytestmark = needs_tools(qemu_io=False) + [
    pytest.mark.skipif(not QEMU_SYSTEM, reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(not UNSHARE, reason="unshare (util-linux) not installed")]

QMP_IN = ('{"execute":"qmp_capabilities"}\n{"execute":"query-named-block-nodes"}\n'
          '{"execute":"quit"}\n')


def in_ro_mount(tmp_path, blockdevs):
    """Runs Sen and QEMU with blockdevs on a qcow2 image of a read-only tmpfs (a mount
    namespace of its own); {"sen": (status, stderr, {node: ro}), "qemu": ...}."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    img = mnt / "x.qcow2"
    script = (f"mount -t tmpfs none {mnt} && {QEMU_IMG} create -q -f qcow2 {img} 1M && "
              f"mount -o remount,ro {mnt} || exit 99\n")
    for who, cmd in (("sen", f"{SEN} -M pc -m 64M -S"),
                     ("qemu", f"{QEMU_SYSTEM} -M pc -m 64M -accel tcg -S")):
        args = " ".join(f"-blockdev {b.format(img=img)}" for b in blockdevs)
        script += (f"printf '%s' '{QMP_IN}' | {cmd} -display none -nodefaults {args} "
                   f"-qmp stdio >{tmp_path}/{who}.out 2>{tmp_path}/{who}.err; "
                   f"echo $? >{tmp_path}/{who}.rc\n")
    p = subprocess.run([UNSHARE, "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=120)
    if p.returncode == 99 or "unshare failed" in p.stderr or "Operation not permitted" in \
            p.stderr:
        pytest.skip(f"no private read-only mount here: {p.stderr.strip()}")
    out = {}
    for who in ("sen", "qemu"):
        nodes = {}
        for line in (tmp_path / f"{who}.out").read_text().splitlines():
            msg = json.loads(line)
            if isinstance(msg.get("return"), list):
                nodes = {n["node-name"]: n["ro"] for n in msg["return"]}
        err = (tmp_path / f"{who}.err").read_text()
        err = err.split(": ", 1)[1] if ": " in err else err  # without the program name
        out[who] = (int((tmp_path / f"{who}.rc").read_text()), err, nodes)
    return out, img


def test_read_only_format_on_auto_read_only_file(tmp_path):
    out, _ = in_ro_mount(tmp_path, [
        "driver=file,filename={img},node-name=f,auto-read-only=on",
        "driver=qcow2,file=f,node-name=q,read-only=on"])
    assert out["sen"][0] == out["qemu"][0] == 0, out
    assert out["sen"][2]["q"] is True and out["qemu"][2]["q"] is True


def test_writable_format_on_auto_read_only_file_fails_as_qemu(tmp_path):
    out, img = in_ro_mount(tmp_path, [
        "driver=file,filename={img},node-name=f,auto-read-only=on",
        "driver=qcow2,file=f,node-name=q"])
    assert out["sen"][0] != 0 and out["qemu"][0] != 0
    assert out["sen"][1] == out["qemu"][1]
    assert out["sen"][1].endswith(f"Could not open '{img}': Read-only file system\n")


def test_without_auto_read_only_the_open_fails(tmp_path):
    out, img = in_ro_mount(tmp_path, [
        "driver=file,filename={img},node-name=f",
        "driver=qcow2,file=f,node-name=q,read-only=on"])
    assert out["sen"][0] != 0 and out["qemu"][0] != 0
    assert "Read-only file system" in out["sen"][1]
    assert "Read-only file system" in out["qemu"][1]
