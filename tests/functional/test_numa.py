"""-numa end to end: the board puts the SRAT and SLIT the command line describes into the
guest's ACPI tables (direct boot: 0xe0000-0xf0000), read back through the qtest protocol
so no guest CPU is needed.  Field-level checks of the builder are in tests/unit/test-numa.c;
this proves the wiring from -numa through the board to guest memory.
"""
import base64
import os
import shutil
import socket
import struct
import subprocess
import tempfile

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
KERNEL = os.path.join(BUILD, "tests", "guest", "hello.elf")
GiB = 1 << 30

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.path.exists(KERNEL), reason=f"{KERNEL} is not built (guest kit)"),
]


def acpi_area(extra):
    """The 64 KiB at 0xe0000 of a qtest machine built with extra options."""
    tmp = tempfile.mkdtemp(prefix="numa", dir="/tmp")
    path = os.path.join(tmp, "q")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(15)
    proc = subprocess.Popen([SEN, "-qtest", f"unix:{path}", "-display", "none", "-nodefaults",
                             "-kernel", KERNEL] + extra,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            proc.kill()
            pytest.fail("sen did not connect: " + proc.communicate()[1].decode())
        f = conn.makefile("rwb", buffering=0)
        data = b""
        for off in range(0, 0x10000, 0x4000):
            f.write(f"b64read {0xe0000 + off:#x} 16384\n".encode())
            reply = f.readline().decode().split()
            assert reply[0] == "OK", reply
            data += base64.b64decode(reply[1])
        f.close()
        conn.close()
        proc.wait(timeout=15)
        return data
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def table(data, sig):
    off = data.find(sig)
    if off < 0:
        return None
    length = struct.unpack_from("<I", data, off + 4)[0]
    t = data[off:off + length]
    assert sum(t) % 256 == 0, f"{sig} checksum"
    return t


def test_srat_and_slit_reach_the_guest():
    data = acpi_area(["-smp", "4",
                      "-object", "memory-backend-ram,id=m0,size=1G",
                      "-object", "memory-backend-memfd,id=m1,size=1G",
                      "-numa", "node,nodeid=0,cpus=0,cpus=2,memdev=m0",
                      "-numa", "node,nodeid=1,cpus=1,cpus=3,memdev=m1",
                      "-numa", "dist,src=1,dst=0,val=32"])
    srat = table(data, b"SRAT")
    assert srat is not None
    cpus, mems = {}, []
    off = 48
    while off < len(srat):
        kind, length = srat[off], srat[off + 1]
        if kind == 0:
            cpus[srat[off + 3]] = srat[off + 2]
        elif kind == 1:
            node, base, size = struct.unpack_from("<I2xQQ", srat, off + 2)
            mems.append((base, size, node))
        off += length
    assert cpus == {0: 0, 1: 1, 2: 0, 3: 1}
    assert mems == [(0, GiB, 0), (GiB, GiB, 1)]
    slit = table(data, b"SLIT")
    assert slit is not None
    assert struct.unpack_from("<Q", slit, 36)[0] == 2
    assert slit[44:48] == bytes([10, 32, 32, 10])


def test_no_numa_no_srat():
    data = acpi_area(["-m", "256M"])
    assert table(data, b"RSDT") is not None or table(data, b"XSDT") is not None
    assert table(data, b"SRAT") is None
    assert table(data, b"SLIT") is None
