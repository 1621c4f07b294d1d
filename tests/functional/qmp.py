"""A small QMP client (standard library only) for the functional tests.

    with QMPClient.connect_unix(path) as c:
        c.negotiate()
        c.cmd("query-status")               # the "return" value, or raises QMPError
        c.execute("stop")                   # the whole response
        c.wait_event("STOP")

Events that arrive while waiting for a response are kept in `events` in arrival order.
"""
import json
import socket
import time


_NO_ID = object()


class QMPError(Exception):
    def __init__(self, response):
        self.response = response
        err = response.get("error", {})
        self.cls = err.get("class")
        self.desc = err.get("desc")
        super().__init__(f"{self.cls}: {self.desc}")


class QMPClient:
    def __init__(self, sock, timeout=15.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = None
        self.next_id = 0

    @classmethod
    def connect_unix(cls, path, timeout=15.0, wait=10.0):
        end = time.monotonic() + wait
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        c = cls(s, timeout)
        c.greeting = c.recv()
        return c

    @classmethod
    def connect_tcp(cls, host, port, timeout=15.0, wait=10.0):
        end = time.monotonic() + wait
        while True:
            try:
                s = socket.create_connection((host, port))
                break
            except ConnectionRefusedError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        c = cls(s, timeout)
        c.greeting = c.recv()
        return c

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def recv(self):
        """The next message (response or event); raises EOFError when the peer closed."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def recv_response(self):
        while True:
            msg = self.recv()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def execute(self, name, args=None, id=_NO_ID, oob=False):
        msg = {"exec-oob" if oob else "execute": name}
        if args is not None:
            msg["arguments"] = args
        if id is not _NO_ID:
            msg["id"] = id
        self.send(msg)
        return self.recv_response()

    def cmd(self, name, **args):
        resp = self.execute(name, {k.replace("_", "-"): v for k, v in args.items()} or None)
        if "error" in resp:
            raise QMPError(resp)
        return resp["return"]

    def negotiate(self):
        return self.cmd("qmp_capabilities")

    def wait_event(self, name, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                msg = self.recv()
            except socket.timeout:
                raise TimeoutError(f"no {name} event within {timeout} s")
            finally:
                self.sock.settimeout(15.0)
            if "event" in msg:
                self.events.append(msg)
