"""Hostile migration streams: the destination refuses them with a clear error, exits
with status 1 and never runs a partial guest (docs/migration-format.md).

Streams are a real one written by a source through file:, cut or with a byte flipped,
and hand-made ones (the format encoded here independently of the C code) that are
well-formed except for one field.
"""
import os
import struct
import time

import pytest

from migration_util import SEN, Vm, decode_stream

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")

MiB = 1 << 20
RAM = 64 * MiB


def crc32c(data, crc=0xFFFFFFFF):
    table = crc32c.table
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


crc32c.table = _table()


VERSION = 3  # docs/migration-format.md; 4 with multifd


def header(version=VERSION, page=4096, regions=((0, RAM),), total=None):
    total = sum(r[1] for r in regions) if total is None else total
    h = b"SENMIG\r\n" + struct.pack(">IIQI", version, page, total, len(regions))
    for gpa, size in regions:
        h += struct.pack(">QQ", gpa, size)
    return h


class RamRecord(bytes):
    """A RAM record; .covered is what of it the stream's CRC covers (all but the data)."""
    covered = b""


def ram_record(gpa, npages, data=None, flags=None, torn=()):
    """torn: indexes of pages whose data checksum is made wrong."""
    zero = data is None
    flags = (1 if zero else 0) if flags is None else flags
    head = struct.pack(">BBIQ", 1, flags, npages, gpa)
    if not zero:
        for i in range(npages):
            crc = (~crc32c(data[i * 4096:(i + 1) * 4096])) & 0xFFFFFFFF
            head += struct.pack(">I", crc ^ 0x0BAD if i in torn else crc)
    rec = RamRecord(head + (data or b""))
    rec.covered = head
    return rec


def covered(body):
    """The bytes of a main stream (header, records) its trailing CRC covers: everything
    but RAM records' page data."""
    nr = struct.unpack_from(">I", body, 24)[0] if len(body) >= 28 else 0
    pos = min(len(body), 28 + 16 * nr)
    out = [body[:pos]]
    while pos < len(body):
        kind, size, data = body[pos], len(body) - pos, 0
        if kind == 1 and pos + 14 <= len(body):
            flags, npages = struct.unpack_from(">BI", body, pos + 1)
            size = 14 if flags else 14 + 4 * npages
            data = 0 if flags else npages * 4096
        elif kind == 2 and pos + 5 <= len(body):
            size = 9 + struct.unpack_from(">I", body, pos + 1)[0]
        elif kind == 3:
            size = 13
        elif kind == 4:
            size = 9
        elif kind == 5:
            size = 1
        out.append(body[pos:pos + size])
        pos += size + data
    return b"".join(out)


def finish(body):
    body += b"\xff"
    return body + struct.pack(">I", (~crc32c(covered(body))) & 0xFFFFFFFF)


@pytest.fixture
def source_stream(tmp_path):
    """A real stream (64 MiB guest, 1 MiB of data at 4 MiB) written by Sen."""
    src = Vm(tmp_path, "src", [])
    try:
        src.connect()
        src.qtest.write(4 * MiB, os.urandom(MiB))
        path = tmp_path / "good.mig"
        src.cmd("migrate", uri=f"file:{path}")
        assert src.wait_migration()["status"] == "completed"
        return path.read_bytes()
    finally:
        src.close()


def load(tmp_path, data, mem="64M"):
    """Feeds data to a deferred destination; returns (exit status, stderr, events)."""
    path = tmp_path / "in.mig"
    path.write_bytes(data)
    dst = Vm(tmp_path, "dst", ["-incoming", "defer"], mem=mem)
    try:
        dst.connect()
        dst.cmd("migrate-incoming", uri=f"file:{path}")
        status = dst.wait_exit()
        # Whatever the monitor sent before the exit.
        try:
            while True:
                dst.qmp.events.append(dst.qmp.recv())
        except (OSError, EOFError, ValueError):
            pass
        return status, dst.stderr_text(), [e.get("event") for e in dst.qmp.events]
    finally:
        dst.close()


def refused(tmp_path, data, message, mem="64M"):
    status, err, events = load(tmp_path, data, mem)
    assert status == 1, err
    assert "load of migration failed" in err and message in err, err
    assert "RESUME" not in events  # the guest never ran


def test_the_real_stream_loads(tmp_path, source_stream):
    path = tmp_path / "ok.mig"
    path.write_bytes(source_stream)
    dst = Vm(tmp_path, "dst", ["-incoming", f"file:{path}"])
    try:
        dst.connect()
        assert dst.wait_migration()["status"] == "completed"
        assert dst.status() == "running"
    finally:
        dst.close()


@pytest.mark.parametrize("cut", [0, 7, 30, 200, 4 * 4096, MiB // 2, -5, -1])
def test_truncated_stream(tmp_path, source_stream, cut):
    refused(tmp_path, source_stream[:cut] if cut else b"", "ended early")


@pytest.mark.parametrize("where", [0.5, -3])
def test_flipped_byte_is_a_checksum_error(tmp_path, source_stream, where):
    data = bytearray(source_stream)
    # 0.5: inside the page data; -3: inside the trailing checksum.
    i = int(len(data) * where) if where > 0 else len(data) + where
    data[i] ^= 0x10
    refused(tmp_path, bytes(data), "checksum")


def test_bad_magic(tmp_path):
    refused(tmp_path, b"QEVM" + bytes(100), "not a Sen migration stream")


def test_unknown_version(tmp_path):
    refused(tmp_path, finish(header(version=9)), "version 9 is not supported")


def test_ram_size_mismatch(tmp_path):
    refused(tmp_path, finish(header(regions=((0, 32 * MiB),))), "RAM size mismatch")


def test_ram_layout_mismatch(tmp_path):
    refused(tmp_path, finish(header(regions=((0x1000, RAM),))), "RAM layout mismatch")


@pytest.mark.parametrize("gpa,npages", [(RAM, 1), (RAM - 4096, 2), (0x123, 1),
                                        (0, 0), (0, 5000), (2**64 - 4096, 2)])
def test_ram_record_outside_ram(tmp_path, gpa, npages):
    refused(tmp_path, finish(header() + ram_record(gpa, npages)), "not inside guest RAM")


def test_unknown_ram_flags(tmp_path):
    refused(tmp_path, finish(header() + ram_record(0, 1, flags=0x80)), "unknown RAM flags")


def test_unknown_record_type(tmp_path):
    refused(tmp_path, finish(header() + b"\x42"), "unknown record type 0x42")


def device_record(blob):
    return struct.pack(">BII", 2, len(blob), (~crc32c(blob)) & 0xFFFFFFFF) + blob


def test_hand_made_stream_loads(tmp_path, source_stream):
    """The encoder above is right: the same shape with valid fields loads (the device
    section, when this Sen has one, is taken from a real stream of the same machine)."""
    page = bytes(range(256)) * 16
    _, blob = decode_stream(source_stream)
    body = header() + ram_record(0x5000, 1, page) + ram_record(0x6000, 3)
    if blob is not None:
        body += device_record(blob)
    path = tmp_path / "hand.mig"
    path.write_bytes(finish(body))
    dst = Vm(tmp_path, "dst", ["-S", "-incoming", f"file:{path}"])
    try:
        dst.connect()
        assert dst.wait_migration()["status"] == "completed"
        assert dst.qtest.read(0x5000, 4096) == page
    finally:
        dst.close()


def hand_made(tmp_path, source_stream, records):
    """A whole stream: header, records, the real stream's device section, END."""
    _, blob = decode_stream(source_stream)
    body = header() + records
    if blob is not None:
        body += device_record(blob)
    return finish(body)


# Torn pages (docs/migration-format.md): a data record whose data does not match its
# checksum is harmless when a later record for the same pages follows, corruption when
# none does.


def loads_with(tmp_path, data, expect):
    """data loads; expect maps guest addresses to the bytes found there."""
    path = tmp_path / "torn.mig"
    path.write_bytes(data)
    dst = Vm(tmp_path, "dst", ["-S", "-incoming", f"file:{path}"])
    try:
        dst.connect()
        assert dst.wait_migration()["status"] == "completed", dst.stderr_text()
        for gpa, want in expect.items():
            assert dst.qtest.read(gpa, len(want)) == want
    finally:
        dst.close()


def test_torn_page_not_sent_again_fails(tmp_path, source_stream):
    page = bytes(range(256)) * 16
    data = hand_made(tmp_path, source_stream,
                          ram_record(0x5000, 1, page, torn=[0]))
    refused(tmp_path, data, "did not match its checksum and was not sent again "
            "(the first at guest address 0x5000)")


def test_torn_pages_sent_again_load(tmp_path, source_stream):
    old, new = b"\x11" * 3 * 4096, b"\x22" * 4096
    records = (ram_record(0x5000, 3, old, torn=[0, 1]) + ram_record(0x5000, 1, new) +
               ram_record(0x6000, 1))  # the second page comes back as a zero page
    loads_with(tmp_path, hand_made(tmp_path, source_stream, records),
               {0x5000: new, 0x6000: bytes(4096), 0x7000: b"\x11" * 4096})


def test_torn_page_partly_sent_again_fails(tmp_path, source_stream):
    records = (ram_record(0x5000, 4, b"\x33" * 4 * 4096, torn=[0, 1, 3]) +
               ram_record(0x5000, 1, b"\x44" * 4096) + ram_record(0x8000, 1))
    refused(tmp_path, hand_made(tmp_path, source_stream, records),
            "the data of 1 page(s) did not match its checksum and was not sent again "
            "(the first at guest address 0x6000)")


def test_a_page_torn_after_a_good_copy_fails(tmp_path, source_stream):
    """Only the last record of a page counts: a good one before a torn one is no help."""
    records = (ram_record(0x5000, 1, b"\x55" * 4096) +
               ram_record(0x5000, 1, b"\x66" * 4096, torn=[0]))
    refused(tmp_path, hand_made(tmp_path, source_stream, records),
            "did not match its checksum")


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_sens_stream_is_refused(tmp_path, version):
    refused(tmp_path, finish(header(version=version)),
            f"version {version} is not supported (this Sen reads versions 3 and 4; "
            "versions 1 and 2 come from an older Sen")


def device_blob(stream):
    """The stream's device section; Sen always writes one, so a stream without it fails
    the test (a skip would pass the regression these tests are for)."""
    _, blob = decode_stream(stream)
    assert blob is not None, "the migration stream has no device state section"
    return blob


def test_device_section_checksum(tmp_path, source_stream):
    blob = device_blob(source_stream)
    bad = struct.pack(">BII", 2, len(blob), 0x12345678) + blob
    refused(tmp_path, finish(header() + bad), "device section's checksum")


def test_missing_device_section(tmp_path, source_stream):
    blob = device_blob(source_stream)
    refused(tmp_path, finish(header() + ram_record(0, 1)), "has no device state")


def test_device_state_of_another_machine(tmp_path, source_stream):
    """A valid device blob from a 64 MiB machine, in a stream for a 128 MiB one."""
    blob = device_blob(source_stream)
    refused(tmp_path, finish(header(regions=((0, 128 * MiB),)) + device_record(blob)),
            "device state", mem="128M")
