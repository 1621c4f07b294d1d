"""Fixtures the interop tests share."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def eio_shim(tmp_path_factory):
    """eio_preload.c built as an LD_PRELOAD library (fails reads at one offset)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the EIO shim")
    out = tmp_path_factory.mktemp("eio") / "eio.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out),
                    os.path.join(HERE, "eio_preload.c"), "-ldl"], check=True)
    return out


@pytest.fixture(scope="module")
def no_ofd_shim(tmp_path_factory):
    """no_ofd_preload.c built as an LD_PRELOAD library (a host without OFD locks)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the no-OFD shim")
    out = tmp_path_factory.mktemp("noofd") / "noofd.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out),
                    os.path.join(HERE, "no_ofd_preload.c"), "-ldl"], check=True)
    return out
