"""10,000 malformed or hostile QMP messages, then the monitor must still answer.

Truncated messages, deep nesting, 10 MiB strings, invalid UTF-8, wrong types, stray bytes
and numbers out of range, sent as fast as the socket takes them while a thread drains the
replies (the monitor drops what a client does not read, it never waits for it).
"""
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from qmp import QMPClient

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]

MIB = 1024 * 1024


def hostile_messages(rng):
    """Yields 10,000 byte strings, each a hostile or malformed message."""
    valid = [b'{"execute": "query-status"}', b'{"execute": "stop"}',
             b'{"execute": "query-commands"}', b'{"execute": "query-chardev", "id": 1}']
    kinds = [
        # truncated, ended by a newline inside a string or by the 0xFF reset byte
        lambda: rng.choice(valid)[:rng.randrange(1, 20)] + b'"\n' if rng.random() < 0.5
        else rng.choice(valid)[:rng.randrange(1, 20)] + b"\xff",
        # deeply nested (over the 1024 limit, and just under it)
        lambda: b"[" * rng.choice([1025, 5000, 1023]) + b"]" * rng.choice([1025, 5000, 1023]),
        lambda: b'{"execute": "query-status", "arguments": ' + b'{"a":' * 2000 + b"1" +
        b"}" * 2001,
        # invalid UTF-8 in strings
        lambda: b'{"execute": "query-status", "id": "' + rng.choice(
            [b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xfe", b"\xf8\x88\x80\x80\x80"]) +
        b'"}',
        lambda: b'{"exe\xc3cute": "query-status"}',
        # wrong types, unknown members and commands
        lambda: rng.choice([
            b'{"execute": ["query-status"]}', b'{"execute": null}', b'{"execute": {}}',
            b'{"execute": "block_resize", "arguments": {"size": "big"}}',
            b'{"execute": "block_resize", "arguments": {"device": 1, "size": 1}}',
            b'{"execute": "human-monitor-command", "arguments": {"command-line": null}}',
            b'{"execute": "query-status", "arguments": [1]}',
            b'{"execute": "qmp_capabilities", "arguments": {"enable": ["x", 1]}}',
            b'{"execute": "query-blockstats", "arguments": {"query-nodes": 1}}',
            b'{"execute": "no-such-command"}', b'{"exec-oob": "quit"}',
            b'{"execute": "query-status", "execute": "quit"}',
            b'["execute", "quit"]', b'"quit"', b"quit", b"null", b"1e999999",
            b'{"execute": "query-status", "id": 123456789012345678901234567890}',
            b'{"execute": "query-status", "id": 1e999999}',
            b'{"execute": "query-status", "id": -}', b'{,}', b'{"a" "b"}', b"}}}]]]",
            b'{"execute": "query-status\\u0000"}', b'{"execute": "\\ud800"}',
        ]),
        # random bytes
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
        # a valid command with random bytes flipped
        lambda: bytes(b if rng.random() > 0.1 else rng.randrange(256)
                      for b in rng.choice(valid)),
    ]
    for i in range(10_000):
        if i in (100, 5000, 9000):
            # 10 MiB strings: in a message, and as a stray top-level value
            yield b'{"execute": "' + b"x" * (10 * MIB) + b'"}'
            continue
        if i == 7000:
            yield b'"' + b"y" * (10 * MIB) + b'"'
            continue
        yield rng.choice(kinds)()


def test_monitor_survives_hostile_input(tmp_path):
    d = tempfile.mkdtemp(prefix="qmph", dir="/tmp")
    sock = os.path.join(d, "qmp.sock")
    img = tmp_path / "spin.img"
    import struct
    load, magic, flags = 0x100000, 0x1BADB002, 1 << 16
    img.write_bytes(struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF, load,
                                load, load + 34, 0, load + 32) + bytes([0xEB, 0xFE]))
    proc = subprocess.Popen([SEN, "-M", "pc", "-m", "32M", "-kernel", str(img), "-display",
                             "none", "-nodefaults", "-qmp",
                             f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        c = QMPClient.connect_unix(sock, timeout=60)
        c.negotiate()
        replies = {"n": 0, "final": None}
        stop = threading.Event()

        def drain():
            buf = b""
            while not stop.is_set():
                try:
                    data = c.sock.recv(1 << 16)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    replies["n"] += 1
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue  # a reply cut short because we were slow
                    if msg.get("id") == "final":
                        replies["final"] = msg
                        return

        c.sock.settimeout(1)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        rng = random.Random(20261127)
        start = time.monotonic()
        for msg in hostile_messages(rng):
            c.sock.sendall(msg + b"\n")
        # Resynchronise (drop any partial message) and ask.
        c.sock.sendall(b'\xff\n{"execute": "query-status", "id": "final"}\n')
        t.join(timeout=120)
        stop.set()
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
        assert replies["final"] is not None, f"no answer after {replies['n']} replies"
        # The guest ran throughout, unless an intact "stop" among the flipped copies got in.
        assert replies["final"]["return"]["status"] in ("running", "paused")
        assert replies["n"] > 5000, "malformed messages must be answered with errors"
        assert time.monotonic() - start < 120
        # And a fresh client is served normally.
        c.close()
        c2 = QMPClient.connect_unix(sock)
        c2.negotiate()
        assert c2.cmd("query-status")["status"] in ("running", "paused")
        c2.cmd("quit")
        proc.wait(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        shutil.rmtree(d, ignore_errors=True)
