"""The multifd accept window under a flood of idle connections (docs/migration.md,
"Multiple channels (multifd)"): a real channel whose greeting comes a moment after its
connect must not be pushed out by the connections that come after it, and a channel
that arrives while the window is full of fresh strays gets in once their grace ends.
A hand-made source (tests/functional/test_migration_multifd.py's FakeSource) against a
real destination, -accel qtest."""
import os
import time

import pytest

from migration_util import SEN
from migration_util import vms  # noqa: F401 (the pytest fixture)
from test_migration_multifd import (REFUSED, FakeSource, check_two_channels,
                                    device_record, fake_dst, hello, pattern, ram_record,
                                    stray)
import struct

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")

FLOOD = 24  # more than the window's 16 places


def send_channel(src, ch, seed):
    """Channel ch's one page, SYNC 1 and END, after its greeting went out."""
    src.send(ch, ram_record(0x200000 + ch * 0x1000, 1, pattern(seed, 4096)))
    src.checksum(ch, struct.pack(">BQ", 4, 1))
    src.checksum(ch, b"\xff")


def test_a_flood_of_idle_connections_cannot_push_out_a_real_channel(vms, tmp_path):
    device = device_record(vms, tmp_path)
    dst = fake_dst(vms, tmp_path)
    path = str(tmp_path / "f.sock")
    src = FakeSource(path)
    time.sleep(0.2)  # the destination read the MULTIFD record: the window is open
    # Channel 0 connects, and its greeting is late: FLOOD silent connections come first.
    src.chan.append(src._connect())
    strays = []
    try:
        for _ in range(FLOOD):
            strays.append(stray(path))
        time.sleep(0.3)
        src.send(0, hello(0))
        send_channel(src, 0, 31)
        # Channel 1 comes behind the flood, while the window is full of fresh strays.
        src.open_channel(hello(1))
        send_channel(src, 1, 32)
        src.send("main", struct.pack(">BQ", 4, 1) + device)
        src.checksum("main", b"\xff")
        info = dst.wait_migration(timeout=20)
        assert info["status"] == "completed", dst.stderr_text()
        check_two_channels(dst)
        # Strays made room; none of them was waited for until its 5 s deadline.
        assert REFUSED + "too many connections without a greeting" in dst.stderr_text()
        assert "no greeting within" not in dst.stderr_text()
    finally:
        src.close()
        for s in strays:
            s.close()
