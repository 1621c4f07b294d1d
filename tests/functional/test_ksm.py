"""KSM: two Sen VMs whose guest RAM holds the same pages get them merged by the host.

Guest RAM is written through the qtest protocol (`b64write`), so the test spends no guest
CPU time: 4096 pages, each different from the others (so merging inside one VM cannot
account for it) but identical between the two VMs.  With `-machine mem-merge=on` (the
default) and a private backend, /sys/kernel/mm/ksm/pages_sharing must grow by about that;
with mem-merge=off it must not move while KSM scans the same memory several times.

Needs root to switch KSM on (its settings are restored afterwards); skips with a message
where the host kernel has no KSM or the settings cannot be changed.
"""
import base64
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
KSM = "/sys/kernel/mm/ksm"
PAGES = 4096
BASE = 0x1000000  # guest-physical: 16 MiB, well inside RAM
CHUNK = 4  # pages per b64write

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.isdir(KSM), reason="the host kernel has no KSM "
                       "(/sys/kernel/mm/ksm missing)"),
]


def ksm_read(name):
    with open(os.path.join(KSM, name)) as f:
        return int(f.read())


def ksm_write(name, value):
    with open(os.path.join(KSM, name), "w") as f:
        f.write(str(value))


@pytest.fixture
def ksm_on():
    """KSM running and scanning fast for the test, then back as it was."""
    # smart_scan (Linux 6.7+) backs off exponentially from pages that did not merge in
    # earlier scans, so pages of the first VM, scanned before the second VM has its
    # copies, would wait for hundreds of scans: turn it off for the test.
    names = [n for n in ("run", "pages_to_scan", "sleep_millisecs", "smart_scan")
             if os.path.exists(os.path.join(KSM, n))]
    saved = {n: ksm_read(n) for n in names}
    try:
        ksm_write("pages_to_scan", 4000)
        ksm_write("sleep_millisecs", 10)
        if "smart_scan" in saved:
            ksm_write("smart_scan", 0)
        ksm_write("run", 1)
    except OSError as e:
        for n, v in saved.items():
            try:
                ksm_write(n, v)
            except OSError:
                pass
        pytest.skip(f"cannot switch KSM on here ({e}); needs root")
    yield
    for n in names:
        ksm_write(n, saved[n])


class QtestVm:
    def __init__(self, tmp, name, machine_opts):
        path = os.path.join(tmp, name)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(15)
        self.proc = subprocess.Popen(
            [SEN, "-qtest", f"unix:{path}", "-display", "none", "-nodefaults",
             "-object", "memory-backend-ram,id=ram,size=64M",
             "-machine", "pc,memory-backend=ram" + machine_opts],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.sock, _ = listener.accept()
        finally:
            listener.close()
        self.file = self.sock.makefile("rwb", buffering=0)

    def cmd(self, line):
        self.file.write(line.encode() + b"\n")
        reply = self.file.readline().decode()
        assert reply.startswith("OK"), f"{line[:40]}: {reply}"

    def fill(self, seed=0x5e11000000):
        """Page i holds a pattern of seed + i: unique inside the VM, the same in every VM
        filled with the same seed."""
        for first in range(0, PAGES, CHUNK):
            data = b"".join(struct.pack("<Q", seed + p) * 512
                            for p in range(first, first + CHUNK))
            b64 = base64.b64encode(data).decode()
            self.cmd(f"b64write {BASE + first * 4096:#x} {len(data)} {b64}")

    def close(self):
        self.file.close()  # qtest: closing the socket ends the VM
        self.sock.close()
        try:
            self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def run_pair(machine_opts, want_merged):
    tmp = tempfile.mkdtemp(prefix="ksm", dir="/tmp")
    vms = []
    # Counted before the VMs exist: KSM may merge while the second VM is being filled.
    base_sharing = ksm_read("pages_sharing")
    scans = ksm_read("full_scans")
    try:
        vms = [QtestVm(tmp, f"q{i}", machine_opts) for i in range(2)]
        for vm in vms:
            vm.fill()
        if not want_merged:
            # ksmd only scans while some process has mergeable memory: a witness VM with
            # KSM on (and pages of its own) keeps the scans, and so the evidence, coming.
            witness = QtestVm(tmp, "witness", "")
            witness.fill(seed=0x7a11000000)
            vms.append(witness)
        deadline = time.monotonic() + 60
        # Merging needs two full scans after the pages stop changing; not merging is
        # shown by four scans without growth.
        while time.monotonic() < deadline:
            grown = ksm_read("pages_sharing") - base_sharing
            if want_merged and grown >= PAGES * 0.9:
                break
            if not want_merged and ksm_read("full_scans") >= scans + 4:
                break
            time.sleep(0.1)
        return ksm_read("pages_sharing") - base_sharing, ksm_read("full_scans") - scans
    finally:
        for vm in vms:
            vm.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_identical_vms_are_merged(ksm_on):
    grown, scans = run_pair("", want_merged=True)
    print(f"pages_sharing grew by {grown} (of {PAGES} identical pages) in {scans} full scans")
    assert grown >= PAGES * 0.9


def test_mem_merge_off_keeps_pages_apart(ksm_on):
    grown, scans = run_pair(",mem-merge=off", want_merged=False)
    print(f"mem-merge=off: pages_sharing grew by {grown} in {scans} full scans")
    assert scans >= 4, "KSM did not finish four full scans within 60 s"
    # Other processes on the host may merge a little meanwhile, never our 4096 pages.
    assert grown < PAGES * 0.1
