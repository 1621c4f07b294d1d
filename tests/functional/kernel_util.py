"""The small test kernel (docs/test-kernel.md) for the slow Linux tests: built and cached
by scripts/build-test-kernel.sh, shared as the `kernel` pytest fixture."""
import os
import subprocess
import time

import pytest

SOURCE = os.environ.get("SEN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_SCRIPT = os.path.join(SOURCE, "scripts", "build-test-kernel.sh")


@pytest.fixture(scope="module")
def kernel():
    """The test kernel's artifacts: the script's NAME=path lines, plus CMDLINE (the
    contents of CMDLINE_FILE)."""
    if not os.path.exists("/usr/src/linux-source-6.1.tar.xz"):
        pytest.skip("linux-source-6.1 is not installed: cannot build the test kernel")
    res = subprocess.run([BUILD_SCRIPT], capture_output=True, timeout=1800)
    if res.returncode != 0:
        pytest.fail("build-test-kernel.sh failed:\n" + res.stderr.decode()[-4000:])
    art = dict(line.split("=", 1) for line in res.stdout.decode().splitlines() if "=" in line)
    with open(art["CMDLINE_FILE"]) as f:
        art["CMDLINE"] = f.read().strip()
    return art


def wait_for(vm, pred, what, timeout):
    """Waits for a console line pred accepts; fails naming what, with the console tail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(pred(line) for line in list(vm.lines)):
            return
        if vm.proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{what}: not seen; console {vm.lines[-15:]}; stderr {vm.stderr_text()}")


def run(vm, command, marker, timeout=120):
    """Runs command in the demo shell and waits until it has finished."""
    vm.send_console(f"{command}; echo {marker}\n".encode())
    wait_for(vm, lambda line: line.strip() == marker, marker, timeout)
