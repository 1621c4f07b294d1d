"""Live migration between two Sen processes (docs/migration.md).

RAM tests run on -accel qtest: the test writes guest memory through the qtest protocol
(device-side writes, tracked by the device dirty log) while the source migrates, and
reads it back on the destination.  The guest test (a real vCPU dirtying memory at CPL3)
is in test_migration_guest.py.
"""
import os
import socket
import subprocess
import time

import pytest

from migration_util import (SEN, MiB, check_chunks, finish_precopy, migrate_again_unthrottled,
                            pattern, start_slow_precopy, start_throttled_migration,
                            write_chunks)
from migration_util import vms  # noqa: F401 (the pytest fixture)
from net_util import free_port
from qmp import QMPError

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")


def uri_for(kind, tmp_path):
    if kind == "tcp":
        port = free_port()
        return f"tcp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"
    if kind == "unix":
        return f"unix:{tmp_path}/mig.sock", f"unix:{tmp_path}/mig.sock"
    if kind == "exec":
        path = tmp_path / "mig.fifo"
        os.mkfifo(path)
        return f"exec:cat > {path}", f"exec:cat {path}"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["tcp", "unix", "exec"])
def test_ram_arrives_and_source_ends_postmigrate(vms, tmp_path, kind):
    out_uri, in_uri = uri_for(kind, tmp_path)
    src = vms("src")
    dst = vms("dst", "-incoming", in_uri)
    assert dst.status() == "inmigrate"
    write_chunks(src, 1)
    for vm in (src, dst):
        vm.cmd("migrate-set-capabilities",
               capabilities=[{"capability": "events", "state": True}])
    src.cmd("migrate", uri=out_uri)
    info = src.wait_migration()
    assert info["status"] == "completed", info
    assert src.status() == "postmigrate"
    assert info["ram"]["total"] == 64 * MiB
    assert info["ram"]["normal"] >= MiB // 4096
    assert info["ram"]["duplicate"] > 0  # zero pages went as a flag
    assert info["ram"]["remaining"] == 0
    assert "downtime" in info
    assert [e["data"]["status"] for e in src.qmp.events if e["event"] == "MIGRATION"] == \
        ["setup", "active", "completed"]
    assert dst.wait_migration()["status"] == "completed"
    dst.qmp.wait_event("RESUME")
    assert dst.status() == "running"
    check_chunks(dst, 1)
    # Untouched RAM stays zero on the destination.
    assert dst.qtest.read(0x800000, 16384) == bytes(16384)


def test_file_transport_and_destination_paused_with_S(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 2)
    src.cmd("migrate", uri=f"file:{tmp_path}/vm.mig")
    assert src.wait_migration()["status"] == "completed"
    dst = vms("dst", "-S", "-incoming", f"file:{tmp_path}/vm.mig")
    assert dst.wait_migration()["status"] == "completed"
    assert dst.status() == "paused"
    check_chunks(dst, 2)
    dst.cmd("cont")
    assert dst.status() == "running"


def test_incoming_defer(vms, tmp_path):
    src = vms("src")
    dst = vms("dst", "-incoming", "defer")
    assert dst.status() == "inmigrate"
    assert dst.cmd("query-migrate") == {}
    write_chunks(src, 3)
    dst.cmd("migrate-incoming", uri=f"unix:{tmp_path}/d.sock")
    with pytest.raises(QMPError):
        dst.cmd("migrate-incoming", uri=f"unix:{tmp_path}/d2.sock")
    src.cmd("migrate", uri=f"unix:{tmp_path}/d.sock")
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    check_chunks(dst, 3)


def test_pages_written_during_migration_are_sent_again(vms, tmp_path):
    """A slow link (4 MiB/s) keeps the source in pre-copy while the test rewrites
    memory; the destination must end with the last contents, not the first."""
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    start_slow_precopy(src, f"unix:{tmp_path}/m.sock", seed=7, size=8 * MiB)
    # Rewrite pages the first pass already sent or is about to send.
    for i in range(8):
        src.qtest.write(0x1000000 + i * MiB, pattern(100 + i, 4096))
        time.sleep(0.05)
    assert finish_precopy(src)["ram"]["dirty-sync-count"] >= 2
    final = bytearray(pattern(7, 8 * MiB))
    for i in range(8):
        final[i * MiB:i * MiB + 4096] = pattern(100 + i, 4096)
    assert dst.wait_migration()["status"] == "completed"
    assert dst.qtest.read(0x1000000, 8 * MiB) == bytes(final)


def test_pages_zeroed_after_they_were_sent_arrive_zero(vms, tmp_path):
    """Data first, zero later: the second record for those pages is a zero record, and
    the destination must clear what the first one wrote (it tracks which pages got
    data rather than reading RAM)."""
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    start_slow_precopy(src, f"unix:{tmp_path}/m.sock", seed=8, size=4 * MiB,
                       bandwidth=2 * MiB)
    # Wait until the first pass has sent the start of the data, then zero some of it.
    deadline = time.monotonic() + 20
    while src.cmd("query-migrate").get("ram", {}).get("normal", 0) < 128 and time.monotonic() < deadline:
        time.sleep(0.02)
    src.qtest.write(0x1000000, bytes(3 * 4096))
    src.qtest.write(0x1000000 + 64 * 1024 + 100, bytes(4096 - 100))
    finish_precopy(src)
    final = bytearray(pattern(8, 4 * MiB))
    final[0:3 * 4096] = bytes(3 * 4096)
    final[64 * 1024 + 100:68 * 1024] = bytes(4096 - 100)
    assert dst.wait_migration()["status"] == "completed"
    assert dst.qtest.read(0x1000000, 4 * MiB) == bytes(final)


def test_cancel_keeps_source_running_and_it_can_migrate_again(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 4)
    src.qtest.write(0x1000000, pattern(8, 4 * MiB))
    src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    dst1 = start_throttled_migration(vms, src, f"unix:{tmp_path}/a.sock", settle=0.3)
    src.cmd("migrate_cancel")
    info = src.wait_migration()
    assert info["status"] == "cancelled"
    assert src.status() == "running"
    statuses = [e["data"]["status"] for e in src.qmp.events if e["event"] == "MIGRATION"]
    assert statuses[-2:] == ["cancelling", "cancelled"]
    # The abandoned destination saw a truncated stream and exits with status 1.
    assert dst1.wait_exit() == 1
    assert "load of migration failed" in dst1.stderr_text()

    dst2 = migrate_again_unthrottled(vms, src, f"unix:{tmp_path}/b.sock")
    assert dst2.wait_migration()["status"] == "completed"
    check_chunks(dst2, 4)


def test_killed_destination_leaves_source_running(vms, tmp_path):
    src = vms("src")
    write_chunks(src, 5)
    src.qtest.write(0x1000000, pattern(9, 4 * MiB))
    dst1 = start_throttled_migration(vms, src, f"unix:{tmp_path}/a.sock", settle=0.3)
    dst1.kill()
    info = src.wait_migration()
    assert info["status"] == "failed"
    assert "write to the migration stream failed" in info["error-desc"]
    assert src.status() == "running"

    dst2 = migrate_again_unthrottled(vms, src, f"unix:{tmp_path}/b.sock")
    check_chunks(dst2, 5)


def test_connect_failure_is_a_failed_migration(vms, tmp_path):
    src = vms("src")
    src.cmd("migrate", uri=f"unix:{tmp_path}/nobody.sock")
    info = src.wait_migration()
    assert info["status"] == "failed"
    assert "cannot connect" in info["error-desc"]
    assert src.status() == "running"


def test_paused_source_stays_paused_after_failure(vms, tmp_path):
    src = vms("src")
    src.cmd("stop")
    src.cmd("migrate", uri=f"unix:{tmp_path}/nobody.sock")
    assert src.wait_migration()["status"] == "failed"
    assert src.status() == "paused"


def test_ram_size_mismatch_is_refused(vms, tmp_path):
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock", mem="128M")
    src.cmd("migrate", uri=f"unix:{tmp_path}/m.sock")
    src.wait_migration()
    assert dst.wait_exit() == 1
    assert "RAM size mismatch" in dst.stderr_text()
    assert src.status() in ("running", "postmigrate")


def test_qmp_errors(vms, tmp_path):
    src = vms("src")
    for uri, msg in [("foo:bar", "unknown migration protocol"),
                     ("tcp:localhost", "expected tcp:HOST:PORT"),
                     ("tcp:localhost:99999", "invalid port"),
                     ("fd:name", "has not been found"), ("fd:", "fd:N"), ("fd:999", "not open")]:
        with pytest.raises(QMPError) as e:
            src.cmd("migrate", uri=uri)
        assert msg in e.value.desc
    with pytest.raises(QMPError) as e:
        src.cmd("migrate", uri=f"unix:{tmp_path}/x", blk=True)
    assert "not supported" in e.value.desc
    with pytest.raises(QMPError) as e:
        src.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "xbzrle", "state": True}])
    assert "'xbzrle' is not supported" in e.value.desc
    with pytest.raises(QMPError) as e:
        src.cmd("migrate-set-parameters", **{"downtime-limit": 3000000})
    assert "downtime-limit" in e.value.desc
    with pytest.raises(QMPError):
        src.cmd("migrate-incoming", uri=f"unix:{tmp_path}/y")
    assert src.cmd("query-migrate") == {}
    src.cmd("migrate_cancel")  # nothing to cancel: not an error


def test_parameters_and_capabilities(vms):
    src = vms("src")
    p = src.cmd("query-migrate-parameters")
    assert p["max-bandwidth"] == 128 * MiB and p["downtime-limit"] == 300
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 5 * MiB, "downtime-limit": 20,
                                         "cpu-throttle-initial": 30})
    p = src.cmd("query-migrate-parameters")
    assert (p["max-bandwidth"], p["downtime-limit"], p["cpu-throttle-initial"]) == \
        (5 * MiB, 20, 30)
    caps = {c["capability"]: c["state"] for c in src.cmd("query-migrate-capabilities")}
    assert caps["events"] is False and "auto-converge" in caps and "multifd" in caps
    src.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "auto-converge", "state": True}])
    caps = {c["capability"]: c["state"] for c in src.cmd("query-migrate-capabilities")}
    assert caps["auto-converge"] is True


def test_hmp_info_migrate(vms, tmp_path):
    src = vms("src")
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    write_chunks(src, 6)
    out = src.cmd("human-monitor-command", **{"command-line": f"migrate unix:{tmp_path}/m.sock"})
    assert out == ""
    src.wait_migration()
    out = src.cmd("human-monitor-command", **{"command-line": "info migrate"})
    assert "Migration status: completed" in out
    assert "transferred ram:" in out and "downtime:" in out
    check_chunks(dst, 6)


def test_incoming_bad_uri_is_a_startup_error(tmp_path):
    r = subprocess.run([SEN, "-M", "pc", "-m", "16M", "-display", "none", "-nodefaults",
                        "-accel", "qtest", "-incoming", "tcp:localhost:notaport"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "-incoming tcp:localhost:notaport" in r.stderr and "invalid port" in r.stderr


def test_destination_quits_while_the_source_stalls(vms, tmp_path):
    """A source that connects and stops sending mid-header must not keep the
    destination from quitting."""
    dst = vms("dst", "-incoming", f"unix:{tmp_path}/m.sock")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(tmp_path / "m.sock"))
    s.sendall(b"SENMIG\r\n\x00\x00")
    end = time.monotonic() + 10
    while dst.cmd("query-migrate").get("status") != "active":
        assert time.monotonic() < end
        time.sleep(0.02)
    dst.cmd("quit")
    assert dst.wait_exit(timeout=10) in (0, 1)
    s.close()


def test_exec_under_sandbox_is_refused_not_fatal(vms, tmp_path):
    src = vms("src", "-sandbox", "on")
    with pytest.raises(QMPError) as e:
        src.cmd("migrate", uri=f"exec:cat > {tmp_path}/x")
    assert "spawn=allow" in e.value.desc
    assert src.status() == "running"
    src.cmd("migrate", uri=f"unix:{tmp_path}/nobody.sock")  # sockets are allowed
    assert src.wait_migration()["status"] == "failed"
    assert src.proc.poll() is None


def send_fd(vm, fdname, fd):
    """QMP getfd with fd attached (SCM_RIGHTS), as libvirt passes migration sockets."""
    import json
    msg = {"execute": "getfd", "arguments": {"fdname": fdname}}
    socket.send_fds(vm.qmp.sock, [json.dumps(msg).encode() + b"\n"], [fd])
    assert vm.qmp.recv_response() == {"return": {}}


def test_fd_name_from_getfd(vms, tmp_path):
    """fd:NAME on both sides: one socketpair, each end passed with getfd (QEMU's shape);
    the name is used up by the migration."""
    src = vms("src")
    dst = vms("dst", "-incoming", "defer")
    write_chunks(src, 5)
    a, b = socket.socketpair()
    try:
        send_fd(src, "migout", a.fileno())
        send_fd(dst, "migin", b.fileno())
    finally:
        a.close()
        b.close()
    dst.cmd("migrate-incoming", uri="fd:migin")
    src.cmd("migrate", uri="fd:migout")
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    check_chunks(dst, 5)
    # The descriptor went with the migration: the name is gone.
    with pytest.raises(QMPError) as e:
        src.cmd("migrate", uri="fd:migout")
    assert "File descriptor named 'migout' has not been found" in e.value.desc


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_sparse_guest_stays_thin_on_the_destination(vms, tmp_path):
    """A sparse guest costs the destination about its data, not its -m: the loader
    allocates only what records with data fill (anything that faults RAM in ahead of the
    stream must give back what got no data)."""
    mem = "1024M"
    spots = [i * 64 * MiB + 4096 for i in range(16)]
    src = vms("src", mem=mem)
    for i, addr in enumerate(spots):
        src.qtest.write(addr, pattern(700 + i, 8192))
    port = free_port()
    dst = vms("dst", "-incoming", f"tcp:127.0.0.1:{port}", mem=mem)
    before = rss_kib(dst.proc.pid)
    # Slow, as a destination that had time to run ahead of the stream.
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 2 * MiB})
    src.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    assert src.wait_migration()["status"] == "completed"
    assert dst.wait_migration()["status"] == "completed"
    for i, addr in enumerate(spots):
        assert dst.qtest.read(addr, 8192) == pattern(700 + i, 8192), hex(addr)
    # 16 runs of data: a 2 MiB huge page each (plus slack for the process's own
    # allocations).  A prefault thread running 8 MiB ahead that kept what it faulted
    # in (branch migspeed2-prefault without its discard) grew it by 64 MiB.
    grown = (rss_kib(dst.proc.pid) - before) // 1024
    assert grown <= 16 * 2 + 12, f"the destination grew by {grown} MiB for 128 KiB of data"
