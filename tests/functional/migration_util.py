"""Helpers for the migration tests: Sen processes with a QMP socket and, for RAM tests
without a guest CPU, the qtest protocol (-accel qtest) to write and read guest memory."""
import base64
import os
import socket
import subprocess
import time

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
SOURCE = os.environ.get("SEN_SOURCE_DIR", ".")


def have_device_state():
    """Whether this Sen migrates device and vCPU state: migration/migration.c compiles it
    in exactly when include/sen/vmstate.h exists (the [vmstate] contract)."""
    return os.path.exists(os.path.join(SOURCE, "include", "sen", "vmstate.h"))


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

    def __init__(self, tmp, name, args, qtest=True, mem="64M"):
        self.tmp = tmp
        self.qmp_path = os.path.join(str(tmp), f"{name}.qmp")
        self.qtest = Qtest(os.path.join(str(tmp), f"{name}.qtest")) if qtest else None
        cmd = [SEN, "-M", "pc", "-m", mem, "-display", "none", "-nodefaults",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if qtest:
            cmd += ["-accel", "qtest", "-qtest", f"unix:{self.qtest.path()}"]
        self.stderr_path = os.path.join(str(tmp), f"{name}.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        self.qmp = None
        if qtest:
            self.qtest.accept()

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
