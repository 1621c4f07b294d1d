"""Image locking against QEMU 7.2 (docs/image-locking.md): Sen locks the same bytes as
QEMU for the same use of an image, so each refuses what the other holds, in QEMU's
words, and -U / force-share / locking=off let a reader in on both sides."""
import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest
from img_util import SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools, run

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from migration_util import SEN, Vm  # noqa: E402
from qmp import QMPError  # noqa: E402

QEMU_SYSTEM = shutil.which("qemu-system-x86_64")
pytestmark = needs_tools()

F_OFD_GETLK = 36  # linux/fcntl.h; Python's fcntl module does not name it


def held_bytes(path):
    """The bytes of [90, 215) another open file description locks (what any process
    sees), as QEMU's lock tests find them."""
    out = []
    with open(path, "rb") as f:
        for off in range(90, 215):
            fl = struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, off, 1, 0)
            got = fcntl.fcntl(f.fileno(), F_OFD_GETLK, fl)
            if struct.unpack("hhxxxxqqixxxx", got)[0] != fcntl.F_UNLCK:
                out.append(off)
    return out


def wait_locked(path, proc, timeout=20):
    """The bytes the process holds once it holds some and they stopped changing (a
    device adds its own after the drive opened)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        held = held_bytes(path)
        if held:
            time.sleep(0.3)
            if held_bytes(path) == held:
                return held
            continue
        if proc.poll() is not None:
            raise AssertionError(f"holder exited ({proc.returncode}) without locking")
        time.sleep(0.05)
    raise AssertionError("no lock taken on " + str(path))


class Holder:
    """A process holding an image open until stop()."""

    def __init__(self, path, cmd):
        self.path = path
        self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.held = wait_locked(path, self.proc)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()


def qemu_io(path, *args):
    return Holder(path, [QEMU_IO, *args, path])


def qemu_vm(path, args):
    """QEMU with the block options args (a list, or one -drive's string)."""
    if not QEMU_SYSTEM:
        pytest.skip("qemu-system-x86_64 (Debian qemu-system-x86) not installed")
    if isinstance(args, str):
        args = ["-drive", args]
    return Holder(path, [QEMU_SYSTEM, "-M", "pc", "-accel", "tcg", "-display", "none",
                         "-nodefaults", "-S", *args])


@pytest.fixture
def sen_vm(tmp_path):
    made = []

    def make(path, *args):
        vm = Vm(tmp_path, f"vm{len(made)}", args)
        made.append(vm)
        vm.connect()
        vm.held = wait_locked(path, vm.proc)
        return vm
    yield make
    for vm in made:
        vm.close()


def image(tmp_path, name="disk.qcow2", fmt="qcow2", *opts):
    path = tmp_path / name
    run(QEMU_IMG, "create", "-q", "-f", fmt, *opts, path, "4M")
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def as_sen(text):
    return text.replace("qemu-img:", "sen-img:")


def test_sen_and_qemu_vms_lock_the_same_bytes(tmp_path, sen_vm):
    """A VM on a qcow2 (read-write, read-only, with a backing file) and on a raw image:
    Sen holds what QEMU holds, byte for byte."""
    base = image(tmp_path, "base.qcow2")
    top = image(tmp_path, "top.qcow2", "qcow2", "-b", "base.qcow2", "-F", "qcow2")
    raw = image(tmp_path, "disk.raw", "raw")
    dev = "-device virtio-blk-pci,drive=d0"
    cases = [(top, f"-drive file={top},if=virtio"),
             (top, f"-drive file={top},if=virtio,readonly=on"),
             (raw, f"-drive file={raw},format=raw,if=virtio"),
             (raw, f"-drive file={raw},format=raw,if=none,id=d0 {dev},share-rw=on"),
             (raw, f"-blockdev driver=file,filename={raw},node-name=f "
                   f"-blockdev driver=raw,file=f,node-name=d0 {dev}")]
    for path, args in cases:
        q = qemu_vm(path, args.split())
        want = (q.held, held_bytes(base))
        q.stop()
        vm = sen_vm(path, *args.split())
        assert (vm.held, held_bytes(base)) == want, args
        vm.close()
        if "share-rw" in args:
            assert want[0] == [100, 101]  # others may write too
        elif path == raw:
            assert want[0] == [100, 101, 201]  # read, write, nobody else writes


def test_qemu_holds_sen_img_refused(tmp_path):
    """qemu-io writes the image: sen-img's readers fail as qemu-img's do (unless -U),
    its writers fail on the "write" lock, and the image is left alone."""
    img = image(tmp_path)
    run(QEMU_IO, "-c", "write -P 7 0 64k", img)
    q = qemu_io(img)
    try:
        before = digest(img)
        want = run(QEMU_IMG, "info", img, check=False)
        got = run(SEN_IMG, "info", img, check=False)
        assert got.returncode == want.returncode == 1
        assert got.stderr == as_sen(want.stderr)
        assert got.stderr == (f"sen-img: Could not open '{img}': Failed to get shared "
                              f"\"write\" lock\nIs another process using the image "
                              f"[{img}]?\n")
        out = tmp_path / "out.raw"
        for args in (["info", "-U", img], ["check", "-U", img], ["map", "-U", img],
                     ["snapshot", "-U", "-l", img], ["compare", "-U", img, img],
                     ["measure", "-U", "-O", "qcow2", img],
                     ["convert", "-U", "-O", "raw", img, out], ["dd", "-U", f"if={img}",
                                                                f"of={out}"]):
            p = run(SEN_IMG, *args, check=False)
            assert p.returncode == 0, (args, p.stderr)
        for args in (["snapshot", "-c", "s", img], ["resize", img, "8M"], ["commit", img],
                     ["amend", "-o", "compat=0.10", img], ["check", "-r", "all", img],
                     ["rebase", "-u", "-b", "", img]):
            want = run(QEMU_IMG, *args, check=False)
            got = run(SEN_IMG, *args, check=False)
            assert got.returncode == want.returncode == 1, args
            assert got.stderr == as_sen(want.stderr), args
            assert "Failed to get \"write\" lock" in got.stderr, args
        # -U is for readers: a writer asking for it gets QEMU's refusal.
        want = run(QEMU_IMG, "snapshot", "-U", "-c", "s", img, check=False)
        got = run(SEN_IMG, "snapshot", "-U", "-c", "s", img, check=False)
        assert got.stderr == as_sen(want.stderr) != ""
        assert digest(img) == before
    finally:
        q.stop()
    # Once the holder is gone, the same commands work.
    run(SEN_IMG, "snapshot", "-c", "s", img)


def test_qemu_vm_holds_sen_vm_refused(tmp_path, sen_vm):
    img = image(tmp_path)
    q = qemu_vm(img, f"file={img},if=virtio")
    try:
        p = subprocess.run([SEN, "-M", "pc", "-accel", "qtest", "-display", "none",
                            "-nodefaults", "-drive", f"file={img},if=virtio"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert p.stderr == (f"sen: -drive file={img},if=virtio: Failed to get \"write\" "
                            f"lock\nIs another process using the image [{img}]?\n")
        # A read-only drive with file.locking=off opts out, as in QEMU.
        vm = Vm(tmp_path, "ro", ["-drive", f"file={img},if=virtio,readonly=on,"
                                 "file.locking=off"])
        vm.connect()
        vm.close()
    finally:
        q.stop()


def test_sen_holds_qemu_refused(tmp_path, sen_vm):
    """A Sen VM writes the image: qemu-img and qemu-io are refused, -U lets qemu-img
    read, and sen-img sees the same."""
    img = image(tmp_path)
    sen_vm(img, "-drive", f"file={img},if=virtio")
    p = run(QEMU_IMG, "info", img, check=False)
    assert p.returncode == 1
    assert p.stderr == (f"qemu-img: Could not open '{img}': Failed to get shared \"write\" "
                        f"lock\nIs another process using the image [{img}]?\n")
    run(QEMU_IMG, "info", "-U", img)
    p = run(QEMU_IO, "-c", "write 0 512", img, check=False)
    assert "Failed to get \"write\" lock" in p.stderr
    assert run(SEN_IMG, "info", img, check=False).returncode == 1
    run(SEN_IMG, "info", "-U", img)
    p = run(QEMU_IMG, "check", img, check=False)
    assert "Failed to get shared \"write\" lock" in p.stderr


def test_locking_off_opts_out(tmp_path, sen_vm):
    img = image(tmp_path)
    v = Vm(tmp_path, "off", ["-drive", f"file={img},if=virtio,file.locking=off"])
    try:
        v.connect()
        assert held_bytes(img) == []
        run(QEMU_IMG, "info", img)
    finally:
        v.close()
    q = qemu_io(img)
    try:
        run(SEN_IMG, "info", "--image-opts", f"driver=qcow2,file.filename={img},"
            "file.locking=off")
        p = run(SEN_IMG, "info", "--image-opts",
                f"driver=qcow2,file.filename={img},file.locking=maybe", check=False)
        assert p.returncode == 1 and "locking=maybe" in p.stderr
    finally:
        q.stop()


def test_blockdev_add_locking(tmp_path, sen_vm):
    """blockdev-add takes locking= (QAPI's OnOffAuto) and locks at once; blockdev-del
    drops the locks."""
    img = image(tmp_path)
    other = image(tmp_path, "other.qcow2")
    vm = sen_vm(other, "-drive", f"file={other},if=virtio")
    vm.cmd("blockdev-add", **{"driver": "qcow2", "node-name": "q",
                                      "file": {"driver": "file", "filename": str(img)}})
    assert held_bytes(img) == [100, 101, 103, 201, 203]
    assert run(QEMU_IMG, "info", img, check=False).returncode == 1
    vm.cmd("blockdev-del", **{"node-name": "q"})
    assert held_bytes(img) == []
    vm.cmd("blockdev-add", **{"driver": "qcow2", "node-name": "q2",
                                      "file": {"driver": "file", "filename": str(img),
                                               "locking": "off"}})
    assert held_bytes(img) == []
    with pytest.raises(QMPError, match="locking"):
        vm.cmd("blockdev-add", **{"driver": "file", "node-name": "f",
                                          "filename": str(img), "locking": "maybe"})


def test_sen_img_holds_qemu_refused(tmp_path):
    """A sen-img process writing the image (a long bench, stopped by the test) holds
    qemu-img's writer bytes: qemu-img is refused, -U reads."""
    img = image(tmp_path)
    h = Holder(img, [SEN_IMG, "bench", "-w", "-c", "1000000000", "-d", "1", "-s", "512",
                     img])
    try:
        assert h.held == [100, 101, 103, 201, 203]
        p = run(QEMU_IMG, "info", img, check=False)
        assert p.returncode == 1
        assert "Failed to get shared \"write\" lock" in p.stderr
        run(QEMU_IMG, "info", "-U", img)
        p = run(QEMU_IO, "-c", "write 0 512", img, check=False)
        assert "Failed to get \"write\" lock" in p.stderr
    finally:
        h.stop()


def commit_locks(tool, top, base):
    """The bytes base holds while `tool commit -r` (slowed down to 1 MiB/s) copies top
    into it, once it holds the commit's write byte; then the commit runs to its end."""
    p = subprocess.Popen([str(tool), "commit", "-q", "-r", "1M", str(top)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 20
        held = []
        while time.monotonic() < end and p.poll() is None:
            held = held_bytes(base)
            if 101 in held:
                break
            time.sleep(0.02)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return held


def test_commit_locks_raw_base_for_writing(tmp_path):
    """A raw base passes on only what its users ask, and the overlay only reads it:
    commit itself takes write (and resize when it grows the base) and shares all but
    resize, as qemu-img's commit job.  QEMU's also gives up consistent read (byte 100)
    above the base during the job, Sen's overlay keeps it."""
    got = {}
    for name, tool in (("qemu", QEMU_IMG), ("sen", SEN_IMG)):
        base = image(tmp_path, f"{name}-base.raw", "raw")
        top = tmp_path / f"{name}-top.qcow2"
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top, "8M")
        run(QEMU_IO, "-c", "write -P 5 0 4M", "-c", "write -P 6 4M 4M", top)
        got[name] = commit_locks(tool, top, base)
        run(QEMU_IMG, "compare", "-f", "raw", "-F", "raw", base,
            tmp_path / "qemu-base.raw")
    assert got["qemu"] == [101, 103, 203]
    assert got["sen"] == [100, 101, 103, 203]


def test_raw_base_in_use_refuses_commit(tmp_path):
    """A read-only VM's device refuses writers of its raw image: committing into it fails
    as qemu-img's does, before anything is written (without the commit's own claim the
    raw base took no write lock and the commit went through)."""
    base = image(tmp_path, "base.raw", "raw")
    tops = []
    for name in ("qemu", "sen"):
        top = tmp_path / f"{name}-top.qcow2"
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top, "4M")
        run(QEMU_IO, "-c", "write -P 5 0 64k", top)
        tops.append(top)
    q = qemu_vm(base, f"file={base},format=raw,if=virtio,readonly=on")
    try:
        assert q.held == [100, 201]
        before = digest(base), digest(tops[1])
        want = run(QEMU_IMG, "commit", tops[0], check=False)
        got = run(SEN_IMG, "commit", tops[1], check=False)
        assert got.returncode == want.returncode == 1
        assert got.stderr == as_sen(want.stderr)
        assert got.stderr == (f"sen-img: Failed to get \"write\" lock\nIs another process "
                              f"using the image [{base}]?\n")
        assert (digest(base), digest(tops[1])) == before
    finally:
        q.stop()
    run(SEN_IMG, "commit", "-q", tops[1])


def test_commit_rate_limit_option(tmp_path):
    """-r takes qemu-img's sizes and is refused in its words otherwise (a rate past
    INT64_MAX, or past 64 bits, is a range error there)."""
    base = image(tmp_path, "base.raw", "raw")
    top = tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top, "4M")
    for rate in ("foo", "-5", "8E", "9223372036854775808", "16E", "99999999999999999999"):
        want = run(QEMU_IMG, "commit", "-r", rate, top, check=False)
        got = run(SEN_IMG, "commit", "-r", rate, top, check=False)
        assert got.returncode == want.returncode == 1
        assert got.stderr == as_sen(want.stderr)
    # 2 MiB at 1 MiB/s: the copy takes about 2 s (QEMU's job, with its 100 ms slices, a
    # little less).
    run(QEMU_IO, "-c", "write -P 5 0 2M", top)
    t = time.monotonic()
    run(SEN_IMG, "commit", "-q", "-r", "1M", top)
    assert 1.5 < time.monotonic() - t < 10


def test_no_ofd_locks_fall_back_to_posix(tmp_path, no_ofd_shim):
    """On a host without OFD locks (no_ofd_preload.c makes F_OFD_* fail with EINVAL),
    locking=auto takes no lock, silently, and locking=on falls back to POSIX locks on the
    same bytes with QEMU's warning (QEMU 7.2 under the same shim)."""
    img = image(tmp_path)
    env = dict(os.environ, LD_PRELOAD=str(no_ofd_shim))

    def tool(*args):
        p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    on = f"driver=qcow2,file.filename={img},file.locking=on"
    want = tool(QEMU_IMG, "info", "--output=json", img)
    got = tool(SEN_IMG, "info", "--output=json", img)
    assert got[0] == want[0] == 0 and got[2] == want[2] == ""
    want = tool(QEMU_IMG, "info", "--output=json", "--image-opts", on)
    got = tool(SEN_IMG, "info", "--output=json", "--image-opts", on)
    assert got[0] == want[0] == 0
    assert got[2] == as_sen(want[2]) == (
        "sen-img: warning: File lock requested but OFD locking syscall is unavailable, "
        "falling back to POSIX file locks\n"
        "Due to the implementation, locks can be lost unexpectedly.\n")

    def holder(cmd, opts):
        p = subprocess.Popen([str(c) for c in cmd] + ["--image-opts", opts], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        return p

    bench = [SEN_IMG, "bench", "-w", "-c", "1000000000", "-d", "1", "-s", "512"]
    # auto: nothing held, a normal (OFD) writer gets in.
    for cmd in ([QEMU_IO], bench):
        p = holder(cmd, f"driver=qcow2,file.filename={img}")
        try:
            time.sleep(1)
            assert p.poll() is None and held_bytes(img) == []
            run(QEMU_IO, "-c", "write 0 512", img)
        finally:
            p.kill()
            p.wait()
    # on: the writer's bytes, as POSIX locks, which OFD users see and respect.
    got = {}
    for name, cmd in (("qemu", [QEMU_IO]), ("sen", bench)):
        p = holder(cmd, on)
        try:
            got[name] = wait_locked(img, p)
            r = run(QEMU_IMG, "info", img, check=False)
            assert "Failed to get shared \"write\" lock" in r.stderr, name
        finally:
            p.kill()
            p.wait()
    assert got["sen"] == got["qemu"] == [100, 101, 103, 201, 203]
