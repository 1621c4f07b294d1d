"""Helpers for the migration tests: Sen processes with a QMP socket and, for RAM tests
without a guest CPU, the qtest protocol (-accel qtest) to write and read guest memory."""
import base64
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
QEMU_IMG = shutil.which("qemu-img")
SEN = os.path.join(BUILD, "sen")
SOURCE = os.environ.get("SEN_SOURCE_DIR", ".")


MiB = 1 << 20


def pattern(seed, size):
    """Deterministic incompressible bytes (a test failure can be reproduced)."""
    return random.Random(seed).randbytes(size)


# Scattered over 64 MiB of RAM, crossing page boundaries, below and above 1 MiB.
CHUNKS = [(0x1000, 4096), (0x9f000, 8192), (0x100000 - 100, 300), (0x400000, MiB),
          (0x3fff000, 4096)]


def write_chunks(vm, seed):
    for i, (addr, size) in enumerate(CHUNKS):
        vm.qtest.write(addr, pattern(seed * 100 + i, size))


def check_chunks(vm, seed):
    for i, (addr, size) in enumerate(CHUNKS):
        assert vm.qtest.read(addr, size) == pattern(seed * 100 + i, size), hex(addr)


def have_device_state():
    """Whether this Sen migrates device and vCPU state: migration/migration.c compiles it
    in exactly when include/sen/vmstate.h exists (the [vmstate] contract)."""
    return os.path.exists(os.path.join(SOURCE, "include", "sen", "vmstate.h"))


def needs_kvm_guest(image, without_device_state):
    """A test decorator: skipped unless the guest-kit `image` is built, /dev/kvm is usable
    and this build migrates device state (`without_device_state` says what is lost
    without it)."""
    marks = [
        pytest.mark.skipif(not os.path.exists(image), reason=f"{image} is not built"),
        pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                           reason="/dev/kvm is not usable here"),
        pytest.mark.skipif(not have_device_state(), reason=without_device_state),
    ]

    def decorate(test):
        for mark in marks:
            test = mark(test)
        return test
    return decorate


class Qtest:
    """The test side of -qtest unix:PATH (Sen connects to us)."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self._path = str(path)
        self.sock = None
        self.buf = b""

    def path(self):
        return self._path

    def accept(self, timeout=15.0):
        self.listener.settimeout(timeout)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(timeout)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("qtest connection closed")
            self.buf += data
        reply, self.buf = self.buf.split(b"\n", 1)
        reply = reply.decode()
        if not reply.startswith("OK"):
            raise RuntimeError(f"qtest {line[:40]}: {reply}")
        return reply[3:]

    def write(self, addr, data):
        for off in range(0, len(data), 32768):
            chunk = data[off:off + 32768]
            self.cmd(f"b64write 0x{addr + off:x} {len(chunk)} "
                     f"{base64.b64encode(chunk).decode()}")

    def read(self, addr, size):
        out = b""
        for off in range(0, size, 16384):
            n = min(16384, size - off)
            out += base64.b64decode(self.cmd(f"b64read 0x{addr + off:x} {n}"))
        return out

    def close(self):
        if self.sock:
            self.sock.close()
        self.listener.close()


class Vm:
    """One Sen process: QMP on a unix socket, optionally qtest instead of a guest CPU."""

    def __init__(self, tmp, name, args, qtest=True, mem="64M", guest=None, append="",
                 wrap=()):
        """guest: a guest-kit image to run on KVM (COM1 on our pipes) instead of qtest.
        wrap: a command prefix (ip netns exec NS)."""
        self.tmp = tmp
        self.qmp_path = os.path.join(str(tmp), f"{name}.qmp")
        qtest = qtest and not guest
        self.qtest = Qtest(os.path.join(str(tmp), f"{name}.qtest")) if qtest else None
        cmd = [SEN, "-M", "pc", "-m", mem, "-display", "none", "-nodefaults",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if qtest:
            cmd += ["-accel", "qtest", "-qtest", f"unix:{self.qtest.path()}"]
        if guest:
            cmd += ["-kernel", guest, "-append", append, "-device", "isa-debug-exit",
                    "-serial", "stdio"]
        self.stderr_path = os.path.join(str(tmp), f"{name}.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.lines = []
        self.proc = subprocess.Popen(list(wrap) + cmd + list(args),
                                     stdin=subprocess.PIPE if guest else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if guest else subprocess.DEVNULL,
                                     stderr=self.stderr)
        if guest:
            threading.Thread(target=self._read_console, daemon=True).start()
        self.qmp = None
        if qtest:
            self.qtest.accept()

    def _read_console(self):
        for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\r\n"))

    def wait_line(self, prefix, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not any(
                    l.startswith(prefix) for l in self.lines):
                time.sleep(0.1)
                break
            time.sleep(0.02)
        raise TimeoutError(f"no console line {prefix!r}; got {self.lines}; "
                           f"stderr {self.stderr_text()}")

    def send_console(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def connect(self):
        self.qmp = QMPClient.connect_unix(self.qmp_path)
        self.qmp.negotiate()
        return self.qmp

    def cmd(self, name, **args):
        return self.qmp.cmd(name, **args)

    def status(self):
        return self.cmd("query-status")["status"]

    def wait_migration(self, want=("completed", "failed", "cancelled"), timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = self.cmd("query-migrate")
            if info.get("status") in want:
                return info
            time.sleep(0.02)
        raise TimeoutError(f"migration still {info.get('status')} after {timeout} s")

    def wait_exit(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stderr_text(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.qmp:
            try:
                self.qmp.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.qtest:
            self.qtest.close()
        self.stderr.close()


def decode_stream(data):
    """Guest RAM as a stream leaves it (each RAM record applied in order): a dict
    gpa -> bytearray per region, and the device section (or None).  Independent of the C
    reader: it is the oracle for what the source sent."""
    assert data[:8] == b"SENMIG\r\n", "bad magic"
    version, page, total, nr = struct.unpack_from(">IIQI", data, 8)
    assert version == 3 and page == 4096
    pos = 28
    regions = {}
    for _ in range(nr):
        gpa, size = struct.unpack_from(">QQ", data, pos)
        regions[gpa] = bytearray(size)
        pos += 16
    device = None
    while True:
        kind = data[pos]
        pos += 1
        if kind == 1:
            flags, npages, gpa = struct.unpack_from(">BIQ", data, pos)
            pos += 13 if flags & 1 else 13 + 4 * npages  # data: + a CRC-32C per page
            base = next(b for b in regions if b <= gpa < b + len(regions[b]))
            off, n = gpa - base, npages * 4096
            if flags & 1:
                regions[base][off:off + n] = bytes(n)
            else:
                regions[base][off:off + n] = data[pos:pos + n]
                pos += n
        elif kind == 2:
            length, _crc = struct.unpack_from(">II", data, pos)
            device = data[pos + 8:pos + 8 + length]
            pos += 8 + length
        elif kind == 5:
            pass  # HANDOVER: no payload (only seen on a socket)
        elif kind == 0xFF:
            assert len(data) == pos + 4, "bytes after the checksum"
            return regions, device
        else:
            raise AssertionError(f"unknown record 0x{kind:x} at {pos - 1}")


# The VMs of one test, closed at its end: `vms(name, *sen_args, **Vm_kwargs)`.
@pytest.fixture
def vms(tmp_path):
    made = []

    def make(name, *args, **kw):
        vm = Vm(tmp_path, name, args, **kw)
        made.append(vm)
        vm.connect()
        return vm
    yield make
    for vm in made:
        vm.close()


def start_throttled_migration(vms, src, uri, settle, prepare=lambda dst: None):
    """Migrates `src` at 1 MiB/s to a new destination "dst1" listening on `uri` and returns
    it `settle` seconds after the start: with a few MiB of RAM written the migration is
    still active then, for a test to cancel it or kill the destination midway.
    prepare(dst) runs before the migrate command (e.g. to set capabilities on both sides)."""
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 * MiB})
    dst = vms("dst1", "-incoming", uri)
    prepare(dst)
    src.cmd("migrate", uri=uri)
    time.sleep(settle)
    return dst


def migrate_again_unthrottled(vms, src, uri, prepare=lambda dst: None):
    """After a failed or cancelled migration: lifts the bandwidth limit, migrates `src` to a
    new destination "dst2" on `uri`, checks the source completed, and returns "dst2"."""
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    dst = vms("dst2", "-incoming", uri)
    prepare(dst)
    src.cmd("migrate", uri=uri)
    assert src.wait_migration()["status"] == "completed"
    return dst


def migrate_and_ask_to_verify(src, dst, uri):
    """Migrates the guest of `src` to `dst` (listening on `uri`): both ends complete, the
    source stays in postmigrate, and the destination's guest is sent 'v' on COM1 (the
    guest kit's "verify and exit")."""
    src.cmd("migrate", uri=uri)
    info = src.wait_migration()
    assert info["status"] == "completed", info
    assert src.status() == "postmigrate"
    assert dst.wait_migration()["status"] == "completed"
    dst.send_console(b"v")


def start_slow_precopy(src, uri, seed, size, bandwidth=4 * MiB):
    """Fills `size` bytes of RAM from 16 MiB with pattern(seed) and starts migrating `src`
    to `uri` at `bandwidth` bytes/s (50 ms downtime limit): pre-copy lasts long enough for
    the test to rewrite memory while it runs."""
    src.qtest.write(0x1000000, pattern(seed, size))
    src.cmd("migrate-set-parameters", **{"max-bandwidth": bandwidth, "downtime-limit": 50})
    src.cmd("migrate", uri=uri)


def finish_precopy(src):
    """Lifts the bandwidth limit of a migration still in pre-copy and waits until it has
    completed; returns the final query-migrate answer."""
    assert src.cmd("query-migrate")["status"] == "active"
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    info = src.wait_migration()
    assert info["status"] == "completed", info
    return info


# Disk helpers of the tests that migrate or snapshot a VM with a qcow2 drive.
def qcow2(tmp_path, *opts, name="disk.qcow2", size="64M"):
    """A new empty qcow2 image made by qemu-img (extra create options in opts)."""
    path = str(tmp_path / name)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", *opts, path, size],
                   check=True)
    return path


def drive(disk):
    return ("-drive", f"file={disk},if=virtio,id=disk0")


def hmp(vm, line):
    return vm.cmd("human-monitor-command", **{"command-line": line})


def image_check(path):
    out = subprocess.run([QEMU_IMG, "check", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No errors were found on the image." in out.stdout, out.stdout


def snapshot_tags(path):
    out = subprocess.run([QEMU_IMG, "snapshot", "-l", path], capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines()[2:]]
