"""What the tests that run one QMP sequence in Sen and in QEMU 7.2 share: the binaries and
the skip marks for what either needs (a built sen and /dev/kvm; qemu-system-x86_64 and
qemu-img)."""
import os
import shutil
import subprocess
import tempfile

import pytest

from qmp import QMPClient, QMPError

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
QEMU = shutil.which("qemu-system-x86_64")
QEMU_IMG = shutil.which("qemu-img")

NEEDS_SEN_AND_QEMU = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(not QEMU or not QEMU_IMG,
                       reason="qemu-system-x86_64 / qemu-img (QEMU 7.2) not installed"),
]


def start_with_qmp(d, name, argv):
    """Starts argv (a VMM's whole command line but -qmp) with a QMP socket d/NAME.sock;
    returns (process, negotiated QMPClient).  d must be short: unix socket paths are
    limited to 108 bytes, which pytest's tmp_path can pass."""
    sock = os.path.join(d, name + ".sock")
    proc = subprocess.Popen(argv + ["-qmp", f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        c = QMPClient.connect_unix(sock)
        c.negotiate()
    except Exception:
        proc.kill()
        raise AssertionError(proc.communicate()[1].decode(errors="replace"))
    return proc, c


# The same PC machine, stopped, no display or default devices, in both VMMs (QEMU under TCG:
# its KVM needs -cpu host,-arch-capabilities here, and these tests run no guest code).
VMMS = (("sen", [SEN, "-M", "pc", "-m", "32M"]),
        ("qemu", [QEMU, "-M", "pc", "-m", "32M", "-accel", "tcg"]))
COMMON = ["-display", "none", "-nodefaults", "-S"]


def short_dir(prefix):
    """For a pytest fixture (`yield from short_dir("abc")`): a new directory under /tmp,
    removed afterwards; unix socket paths are limited to 108 bytes, and pytest's tmp_path
    can be longer."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_steps(proc, c, steps, shape=lambda cmd, args, ret: ret):
    """Sends each (command, arguments) of steps over c and kills proc afterwards; returns one
    answer per step: ("ok", shape(command, arguments, return value)) or (error class, text),
    the form the tests compare between Sen and QEMU."""
    out = []
    try:
        for cmd, args in steps:
            try:
                out.append(("ok", shape(cmd, args, c.cmd(cmd, **args))))
            except QMPError as e:
                out.append((e.cls, e.desc))
    finally:
        proc.kill()
        proc.communicate()
    return out
