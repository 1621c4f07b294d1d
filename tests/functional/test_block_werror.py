"""werror= actions, side by side with QEMU 7.2: a guest (tests/guest/blk-werror.c) writes
4 KiB to a virtio-blk disk whose raw image lies on a full tmpfs, so the write fails with
ENOSPC, then reads it back.  Per action both VMMs must send the same events and show the
same run state and io-status, and the guest must see the same: report (I/O error status),
ignore (success, nothing written), stop and enospc (the default: the VM stops in io-error
with the request held, query-block says nospace; once space is freed, cont retries it and
the guest reads its data back).  Mounting a tmpfs needs root: skipped otherwise."""
import os
import select
import subprocess
import time

import pytest

from qmp import QMPClient
from vs_qemu import BUILD, QEMU, SEN, short_dir

GUEST = os.path.join(BUILD, "tests", "guest", "blk-werror.elf")
QBOOT = "/usr/share/qemu/qboot.rom"

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(GUEST), reason=f"{GUEST} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root to mount a small tmpfs that fills up"),
]

ENOSPC_EVENT = {"device": "disk0", "node-name": "fmt0", "operation": "write",
                "nospace": True, "reason": "No space left on device"}


def fill(path):
    """Writes path until the filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(fd, b"\xff" * 4096) == 4096:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def fs():
    """A 256 KiB tmpfs holding the 8 MiB sparse image disk.raw and a file filling the
    rest; yields (image path, filler path)."""
    for d in short_dir("bwe"):
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], check=True)
        try:
            image = os.path.join(mnt, "disk.raw")
            with open(image, "wb") as f:
                f.truncate(8 << 20)
            filler = os.path.join(mnt, "filler")
            fill(filler)
            yield image, filler
        finally:
            subprocess.run(["umount", "-l", mnt], check=False)


def vmm_argv(vmm, image, drive_opts, dev_opts=""):
    modern = ",disable-legacy=on" if vmm == "qemu" else ""
    drive = ["-drive", f"file={image},format=raw,if=none,id=disk0,node-name=fmt0{drive_opts}",
             "-device", f"virtio-blk-pci,drive=disk0{dev_opts}{modern}"]
    common = ["-m", "64M", "-kernel", GUEST, "-device", "isa-debug-exit", "-display", "none",
              "-nodefaults", "-serial", "stdio", "-no-reboot", "-S"] + drive
    if vmm == "sen":
        return [SEN, "-M", "pc"] + common
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
            "-bios", QBOOT] + common


class Run:
    """A VMM with the guest, stopped (-S), with a QMP client and its serial output."""

    def __init__(self, d, name, argv):
        sock = os.path.join(d, name + ".sock")
        self.proc = subprocess.Popen(argv + ["-qmp", f"unix:{sock},server=on,wait=off"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""
        try:
            self.c = QMPClient.connect_unix(sock)
            self.c.negotiate()
        except Exception:
            self.proc.kill()
            raise AssertionError(self.proc.communicate()[1].decode(errors="replace"))

    def read_until(self, text, timeout=60):
        end = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = end - time.monotonic()
            assert left > 0, self.out.decode(errors="replace")
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, ("the VMM ended", self.out.decode(errors="replace"),
                               self.proc.stderr.read().decode(errors="replace"))
                self.out += chunk

    def lines(self):
        return [ln.strip() for ln in self.out.decode(errors="replace").splitlines()
                if "blk-werror:" in ln]

    def events(self):
        """Every event so far (the answer to query-status comes after those sent before
        it), without timestamps."""
        self.c.cmd("query-status")
        ev = [(e["event"], e.get("data")) for e in self.c.events]
        self.c.events.clear()
        return ev

    def io_status(self):
        return [b.get("io-status") for b in self.c.cmd("query-block")]

    def close(self):
        try:
            self.c.cmd("quit")
            self.proc.wait(timeout=30)
        finally:
            self.proc.kill()
            self.proc.communicate()


def run_action(d, vmm, image, filler, stops, drive_opts, dev_opts="", extra=()):
    """The guest under one werror setting (stops: the write stops the VM); returns what
    the guest saw and what QMP said, in the order it said it."""
    r = Run(d, vmm, vmm_argv(vmm, image, drive_opts, dev_opts) + list(extra))
    seen = {}
    try:
        seen["io-status before"] = r.io_status()
        r.c.cmd("cont")
        if not stops:
            r.read_until("blk-werror: done")
            seen["events"] = r.events()
        else:
            # wait_event takes STOP out of the list; nothing came after it yet.
            r.c.events.append(r.c.wait_event("STOP", timeout=60))
            seen["status stopped"] = r.c.cmd("query-status")
            seen["io-status stopped"] = r.io_status()
            # HMP: QEMU's line (its other lines differ: Sen has no "Attached to").
            info = r.c.cmd("human-monitor-command", command_line="info block")
            seen["hmp io-status"] = [ln.strip() for ln in info.splitlines()
                                     if "I/O status" in ln]
            seen["hmp status"] = r.c.cmd("human-monitor-command",
                                         command_line="info status").strip()
            # Held: after a while the guest has still heard nothing of its write.
            time.sleep(0.3)
            while select.select([r.proc.stdout], [], [], 0)[0]:
                chunk = os.read(r.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                r.out += chunk
            seen["held"] = not any("write status" in ln for ln in r.lines())
            os.unlink(filler)
            r.c.cmd("cont")
            r.read_until("blk-werror: done")
            seen["io-status after"] = r.io_status()
            seen["status after"] = r.c.cmd("query-status")
            seen["events"] = r.events()
        seen["lines"] = r.lines()
    finally:
        r.close()
    return seen


RETRIED = ["blk-werror: write status 0", "blk-werror: read status 0, data written",
           "blk-werror: done"]
EXPECT = {
    # werror=: (stops, guest lines, BLOCK_IO_ERROR action)
    "report": (False, ["blk-werror: write status 1", "blk-werror: read status 0, data "
                       "not written", "blk-werror: done"], "report"),
    "ignore": (False, ["blk-werror: write status 0", "blk-werror: read status 0, data "
                       "not written", "blk-werror: done"], "ignore"),
    "stop": (True, RETRIED, "stop"),
    "enospc": (True, RETRIED, "stop"),
    "": (True, RETRIED, "stop"),  # the default: enospc
}


def check(seen, werror):
    stops, lines, action = EXPECT[werror]
    assert seen["lines"] == lines, seen
    io_error = ("BLOCK_IO_ERROR", dict(ENOSPC_EVENT, action=action))
    if not stops:
        # QEMU's rule: a drive whose errors cannot stop the VM has no io-status, and its
        # events no "nospace".
        del io_error[1]["nospace"]
        assert seen["io-status before"] == [None]
        assert seen["events"] == [("RESUME", None), io_error], seen
        return
    assert seen["events"] == [("RESUME", None), io_error, ("STOP", None), ("RESUME", None)], \
        seen
    assert seen["io-status before"] == ["ok"]
    assert seen["status stopped"] == {"running": False, "singlestep": False, "status": "io-error"}
    assert seen["io-status stopped"] == ["nospace"]
    assert seen["hmp io-status"] == ["I/O status:       nospace"]
    assert seen["hmp status"] == "VM status: paused (io-error)"
    assert seen["held"], seen
    assert seen["io-status after"] == ["ok"]
    assert seen["status after"] == {"running": True, "singlestep": False, "status": "running"}


@pytest.mark.parametrize("werror", ["report", "ignore", "stop", "enospc", ""])
def test_werror_sen(fs, werror):
    image, filler = fs
    opt = f",werror={werror}" if werror else ""
    check(run_action(os.path.dirname(os.path.dirname(image)), "sen", image, filler,
                     EXPECT[werror][0], opt), werror)


@pytest.mark.parametrize("werror", ["report", "stop"])
def test_werror_device_property_sen(fs, werror):
    """The device's werror= replaces the drive's (here the opposite one)."""
    image, filler = fs
    other = "stop" if werror == "report" else "report"
    check(run_action(os.path.dirname(os.path.dirname(image)), "sen", image, filler,
                     EXPECT[werror][0], f",werror={other}", f",werror={werror}"), werror)


def test_werror_stop_iothread_sen(fs):
    """Completions on an I/O thread: the stop still happens on the main loop, after the
    event, and cont retries the request."""
    image, filler = fs
    check(run_action(os.path.dirname(os.path.dirname(image)), "sen", image, filler, True,
                     ",werror=stop", ",iothread=io0", ["-object", "iothread,id=io0"]),
          "stop")


@pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 (QEMU 7.2) not installed")
@pytest.mark.skipif(not os.path.exists(QBOOT), reason=f"QEMU needs {QBOOT} here")
@pytest.mark.parametrize("werror", ["report", "ignore", "stop", ""])
def test_werror_matches_qemu(fs, werror):
    """Same guest, same image situation: QEMU 7.2 gives the same events, states and guest
    view (the test's own expectations hold for both)."""
    image, filler = fs
    d = os.path.dirname(os.path.dirname(image))
    got = {}
    for vmm in ("qemu", "sen"):
        # A fresh full filesystem for each: the image empty again, then the filler.
        with open(image, "r+b") as f:
            f.truncate(0)
            f.truncate(8 << 20)
        fill(filler)
        got[vmm] = run_action(d, vmm, image, filler, EXPECT[werror][0],
                              f",werror={werror}" if werror else "")
        check(got[vmm], werror)
    assert got["sen"] == got["qemu"]


def wait_migration(c, timeout=60):
    end = time.monotonic() + timeout
    while True:
        info = c.cmd("query-migrate")
        if info.get("status") in ("failed", "completed"):
            return info
        assert time.monotonic() < end, info
        time.sleep(0.05)


def test_migration_takes_the_held_request_sen(fs):
    """Migrated while a write is held (as QEMU, the held request travels in the
    virtio-blk state): the destination holds it, and once space is freed and it is
    continued, it retries the write and the guest carries on there."""
    image, filler = fs
    d = os.path.dirname(os.path.dirname(image))
    uri = "unix:" + os.path.join(d, "mig.sock")
    src = Run(d, "src", vmm_argv("sen", image, ",werror=stop"))
    dst = None
    try:
        src.c.cmd("cont")
        src.c.wait_event("STOP", timeout=60)
        dst = Run(d, "dst", vmm_argv("sen", image, ",werror=stop") + ["-incoming", uri])
        src.c.cmd("migrate", uri=uri)
        assert wait_migration(src.c)["status"] == "completed"
        assert wait_migration(dst.c)["status"] == "completed"
        assert dst.c.cmd("query-status") == {"running": False, "singlestep": False, "status": "paused"}
        assert dst.lines() == []
        os.unlink(filler)
        dst.c.cmd("cont")
        dst.read_until("blk-werror: done")
        assert dst.lines() == RETRIED
        assert src.c.cmd("query-status")["status"] == "postmigrate"
    finally:
        src.close()
        if dst:
            dst.close()


def test_system_reset_while_held_leaves_io_error_sen(fs):
    """system_reset drops the held request (the driver forgets it): the VM is no longer
    stopped by an I/O error, so it leaves io-error and waits for cont as paused, like a
    VM reset after a shutdown or a panic (QEMU 7.2 goes to prelaunch)."""
    image, filler = fs
    d = os.path.dirname(os.path.dirname(image))
    argv = [a for a in vmm_argv("sen", image, ",werror=stop") if a != "-no-reboot"]
    r = Run(d, "sen", argv)
    try:
        r.c.cmd("cont")
        r.c.wait_event("STOP", timeout=60)
        assert r.c.cmd("query-status")["status"] == "io-error"
        r.c.cmd("system_reset")
        r.c.wait_event("RESET", timeout=30)
        assert r.c.cmd("query-status") == {"running": False, "singlestep": False, "status": "paused"}
        os.unlink(filler)
        r.c.cmd("cont")
        r.read_until("blk-werror: done")
    finally:
        r.close()


CORRUPT_GUEST = os.path.join(BUILD, "tests", "guest", "blk-corrupt.elf")


@pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 (QEMU 7.2) not installed")
@pytest.mark.skipif(not os.path.exists(QBOOT), reason=f"QEMU needs {QBOOT} here")
@pytest.mark.skipif(not os.path.exists(CORRUPT_GUEST), reason=f"{CORRUPT_GUEST} is not built")
def test_rerror_stop_fails_again_matches_qemu():
    """rerror=stop on a read that can never work (tests/guest/blk-corrupt.c reads a qcow2
    cluster whose L2 table is misaligned): held, the VM stops; cont retries it, it fails
    again and stops the VM again.  The same events as QEMU 7.2."""
    from test_block_corrupted import unaligned_l2_table, QEMU_IO
    if not os.access(QEMU_IO, os.X_OK):
        pytest.skip("qemu-io (QEMU 7.2) not installed")
    got = {}
    for d in short_dir("bwr"):
        for vmm in ("sen", "qemu"):
            image = os.path.join(d, vmm + ".qcow2")
            unaligned_l2_table(image)
            modern = ",disable-legacy=on" if vmm == "qemu" else ""
            argv = ["-m", "64M", "-kernel", CORRUPT_GUEST, "-device", "isa-debug-exit",
                    "-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot",
                    "-S", "-drive", f"file={image},format=qcow2,if=none,id=disk0,"
                    "node-name=fmt0,readonly=on,rerror=stop",
                    "-device", "virtio-blk-pci,drive=disk0" + modern]
            argv = ([SEN, "-M", "pc"] if vmm == "sen" else
                    [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
                     "-bios", QBOOT]) + argv
            r = Run(d, vmm, argv)
            try:
                r.c.cmd("cont")
                r.c.events.append(r.c.wait_event("STOP", timeout=60))
                first = r.events()
                io1 = r.io_status()
                r.c.cmd("cont")
                r.c.events.append(r.c.wait_event("STOP", timeout=60))
                second = r.events()
                got[vmm] = (first, io1, second, r.io_status(),
                            r.c.cmd("query-status")["status"])
            finally:
                r.close()
    sen = got["sen"]
    names = [e for e, _ in sen[0]]
    assert names == ["RESUME", "BLOCK_IMAGE_CORRUPTED", "BLOCK_IO_ERROR", "STOP"], sen
    assert sen[0][2][1] == {"device": "disk0", "node-name": "fmt0", "operation": "read",
                            "action": "stop", "nospace": False,
                            "reason": "Input/output error"}, sen
    assert sen[1] == ["failed"]
    assert [e for e, _ in sen[2]] == ["RESUME", "BLOCK_IO_ERROR", "STOP"], sen
    assert sen[3] == ["failed"] and sen[4] == "io-error"
    assert got["sen"] == got["qemu"]
