"""QMP from the outside: a real sen with a spinning guest and the stdlib client qmp.py.

Covers the protocol (greeting, negotiation, id, errors, framing), every command with good
and bad arguments, the run-state events, several monitors and clients over time.
Skips when /dev/kvm is not usable.
"""
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pytest

from qmp import QMPClient, QMPError

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SOURCE = os.environ.get("SEN_SOURCE_DIR", ".")
SEN = os.path.join(BUILD, "sen")

pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]

# Every command the issue asks for: the schema must have them all.
COMMANDS = [
    "qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
    "query-status", "stop", "cont", "system_reset", "system_powerdown", "quit", "query-name",
    "query-uuid", "query-kvm", "query-cpus-fast", "query-machines", "query-target",
    "query-block", "query-blockstats", "block_resize", "blockdev-snapshot-internal-sync",
    "blockdev-snapshot-delete-internal-sync", "query-chardev", "human-monitor-command",
    "query-jobs", "job-dismiss", "snapshot-save", "snapshot-load", "snapshot-delete",
]
EVENTS = ["STOP", "RESUME", "RESET", "SHUTDOWN", "POWERDOWN", "BLOCK_IO_ERROR",
          "JOB_STATUS_CHANGE"]


def multiboot_image(path, code):
    """A multiboot v1 image (a.out kludge) loading `code` at 1 MiB + 32 and jumping there."""
    load, magic, flags = 0x100000, 0x1BADB002, 1 << 16
    header = struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF,
                         load, load, load + 32 + len(code), 0, load + 32)
    with open(path, "wb") as f:
        f.write(header + code)
    return path


@pytest.fixture
def tmpdir_short():
    # unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="qmp", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Sen:
    def __init__(self, tmpdir, *extra, code=bytes([0xEB, 0xFE]), monitors=1):
        self.dir = tmpdir
        self.image = multiboot_image(os.path.join(tmpdir, "guest.img"), code)
        self.socks = [os.path.join(tmpdir, f"qmp{i}.sock") for i in range(monitors)]
        qmp = []
        for s in self.socks:
            qmp += ["-qmp", f"unix:{s},server=on,wait=off"]
        self.proc = subprocess.Popen(
            [SEN, "-M", "pc", "-m", "32M", "-kernel", self.image, "-display", "none",
             "-nodefaults", *qmp, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def client(self, i=0, negotiate=True):
        c = QMPClient.connect_unix(self.socks[i])
        if negotiate:
            c.negotiate()
        return c

    def wait(self, timeout=15):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def vm(tmpdir_short):
    vms = []

    def start(*extra, **kw):
        v = Sen(tmpdir_short, *extra, **kw)
        vms.append(v)
        return v
    yield start
    for v in vms:
        v.kill()


def test_full_session(vm):
    v = vm()
    c = v.client(negotiate=False)
    g = c.greeting["QMP"]
    assert set(g["version"]["qemu"]) == {"major", "minor", "micro"}
    assert g["capabilities"] == ["oob"]
    # Before negotiation everything else is refused.
    with pytest.raises(QMPError) as e:
        c.cmd("query-status")
    assert e.value.cls == "CommandNotFound"
    assert "qmp_capabilities" in e.value.desc
    assert c.cmd("qmp_capabilities") == {}
    assert c.cmd("query-status") == {"running": True, "singlestep": False, "status": "running"}
    assert c.cmd("stop") == {}
    ev = c.wait_event("STOP")
    assert set(ev["timestamp"]) == {"seconds", "microseconds"}
    assert abs(ev["timestamp"]["seconds"] - time.time()) < 60
    assert c.cmd("query-status") == {"running": False, "singlestep": False, "status": "paused"}
    assert c.cmd("stop") == {}  # stopping a stopped VM is fine and emits nothing
    assert c.cmd("cont") == {}
    c.wait_event("RESUME")
    assert not [e for e in c.events if e["event"] == "STOP"]
    assert c.cmd("query-status")["status"] == "running"
    assert c.cmd("quit") == {}
    ev = c.wait_event("SHUTDOWN")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}
    rc, err = v.wait()
    assert rc == 0, err
    assert not os.path.exists(v.socks[0]), "the socket file must be removed at exit"


def test_prelaunch_with_S(vm):
    v = vm("-S")
    c = v.client()
    assert c.cmd("query-status") == {"running": False, "singlestep": False, "status": "prelaunch"}
    assert c.cmd("stop") == {}
    assert c.cmd("query-status")["status"] == "prelaunch"
    c.cmd("cont")
    c.wait_event("RESUME")
    assert c.cmd("query-status") == {"running": True, "singlestep": False, "status": "running"}


def test_socket_is_private(vm):
    v = vm("-S")
    v.client().close()
    assert stat.S_IMODE(os.stat(v.socks[0]).st_mode) == 0o600


@pytest.mark.parametrize("id_", [1, "abc", None, 1.5, True, [1, {"a": [None]}],
                                 {"nested": {"x": "y"}}, "x" * 1000])
def test_id_is_echoed_verbatim(vm, id_):
    v = vm("-S")
    c = v.client()
    assert c.execute("query-status", id=id_)["id"] == id_
    resp = c.execute("no-such-command", id=id_)
    assert resp["id"] == id_ and resp["error"]["class"] == "CommandNotFound"


def test_negotiation_rules(vm):
    v = vm("-S")
    c = v.client(negotiate=False)
    r = c.execute("qmp_capabilities", {"enable": ["bogus"]})
    assert r["error"]["class"] == "GenericError"
    assert "bogus" in r["error"]["desc"]
    r = c.execute("qmp_capabilities", {"enable": "oob"})
    assert "expected: array" in r["error"]["desc"]
    assert c.cmd("qmp_capabilities", enable=["oob"]) == {}
    r = c.execute("qmp_capabilities")
    assert r["error"]["class"] == "CommandNotFound"
    assert "already complete" in r["error"]["desc"]
    # oob enabled: exec-oob is understood, but these commands are not OOB-capable.
    r = c.execute("query-status", oob=True)
    assert r["error"]["desc"] == "The command query-status does not support OOB"
    c.close()
    # A new client starts over, without oob.
    c = v.client(negotiate=False)
    assert "error" in c.execute("query-status")
    c.negotiate()
    r = c.execute("query-status", oob=True)
    assert r["error"]["desc"] == "QMP input member 'exec-oob' is unexpected"


@pytest.mark.parametrize("raw, desc", [
    (b'[1, 2]', "QMP input must be a JSON object"),
    (b'{"arguments": {}}', "QMP input lacks member 'execute'"),
    (b'{"execute": 1}', "QMP input member 'execute' must be a string"),
    (b'{"execute": "query-status", "arguments": []}',
     "QMP input member 'arguments' must be an object"),
    (b'{"execute": "query-status", "extra": 1}', "QMP input member 'extra' is unexpected"),
    (b'{"execute": "stop", "exec-oob": "stop"}',
     "QMP input must not contain both 'execute' and 'exec-oob'"),
    (b'{"execute": "frobnicate"}', "The command frobnicate has not been found"),
    (b'{"execute": }', "JSON parse error"),
    (b'42', "QMP input must be a JSON object"),
    # Duplicate keys are refused, as QEMU does: the last one must not silently win.
    (b'{"execute": "query-status", "execute": "quit"}', "duplicate"),
    (b'{"execute": "query-status", "arguments": {"x": 1}}', "Parameter 'x' is unexpected"),
])
def test_envelope_errors(vm, raw, desc):
    v = vm("-S")
    c = v.client()
    c.send_raw(raw + b"\n")
    r = c.recv_response()
    assert desc in r["error"]["desc"]
    assert r["error"]["class"] in ("GenericError", "CommandNotFound")
    assert c.cmd("query-status")["status"] == "prelaunch"


def test_framing(vm):
    v = vm("-S")
    c = v.client()
    # Split byte by byte, and three commands in one write, with braces in strings.
    for b in b'{"execute": "query-status", "id": "a}{\\"]"}':
        c.send_raw(bytes([b]))
    assert c.recv_response()["id"] == 'a}{"]'
    c.send_raw(b'{"execute":"query-name","id":1}{"execute":"query-uuid","id":2}'
               b'  \r\n\t{"execute":"query-target","id":3}')
    assert [c.recv_response()["id"] for _ in range(3)] == [1, 2, 3]
    # A truncated message is ended by a raw newline inside its string...
    c.send_raw(b'{"execute": "query-sta\n')
    assert "control character" in c.recv_response()["error"]["desc"]
    # ... and 0xFF drops a truncated one outside strings.
    c.send_raw(b'{"execute": "query-status", \xff')
    assert c.execute("query-status", id="after")["id"] == "after"


GOOD = {
    "query-version": ({}, lambda r: r["package"] == "Sen" and "major" in r["qemu"]),
    "query-commands": ({}, lambda r: {"name": "query-status"} in r),
    "query-qmp-schema": ({}, lambda r: any(i["name"] == "query-status" for i in r)),
    "query-status": ({}, lambda r: r == {"running": False, "singlestep": False, "status": "prelaunch"}),
    "query-name": ({}, lambda r: r == {"name": "vm-under-test"}),
    "query-uuid": ({}, lambda r: r == {"UUID": "00000000-0000-0000-0000-000000000000"}),
    "query-kvm": ({}, lambda r: r == {"enabled": True, "present": True}),
    "query-cpus-fast": ({}, lambda r: [c["cpu-index"] for c in r] == [0, 1] and
                        all(c["target"] == "x86_64" and c["thread-id"] > 0 for c in r) and
                        r[1]["props"]["core-id"] == 1),
    "query-machines": ({}, lambda r: any(m["name"] == "pc" and m["is-default"] for m in r)),
    "query-target": ({}, lambda r: r == {"arch": "x86_64"}),
    "query-block": ({}, lambda r: r == []),
    "query-blockstats": ({"query-nodes": True}, lambda r: r == []),
    "query-chardev": ({}, lambda r: {"label": "compat_monitor0", "frontend-open": True,
                                     "filename": r[0]["filename"]} in r and
                      r[0]["filename"].startswith("unix:")),
    "human-monitor-command": ({"command-line": "info status"},
                              lambda r: r == "VM status: paused (prelaunch)\r\n"),
    "query-jobs": ({}, lambda r: r == []),
}

BAD = {
    # (arguments, error class, text in desc)
    "query-blockstats": ({"query-nodes": "yes"}, "GenericError",
                         "Invalid parameter type for 'query-nodes', expected: boolean"),
    "block_resize": ({"device": "disk0"}, "GenericError", "Parameter 'size' is missing"),
    "blockdev-snapshot-internal-sync": ({"device": "disk0"}, "GenericError",
                                        "Parameter 'name' is missing"),
    "blockdev-snapshot-delete-internal-sync": ({"device": 7}, "GenericError",
                                               "Invalid parameter type for 'device'"),
    "human-monitor-command": ({"command-line": ["info"]}, "GenericError",
                              "expected: string"),
    "qmp_capabilities": ({"enable": [1]}, "GenericError", "expected: string"),
    "job-dismiss": ({"id": "nope"}, "GenericError", "Job not found"),
    "snapshot-save": ({"job-id": "j", "tag": "t", "vmstate": "disk0", "devices": "disk0"},
                      "GenericError", "Invalid parameter type for 'devices'"),
    "snapshot-load": ({"job-id": "j", "tag": "t", "devices": ["disk0"]}, "GenericError",
                      "Parameter 'vmstate' is missing"),
    "snapshot-delete": ({"job-id": "1j", "tag": "t", "devices": ["disk0"]}, "GenericError",
                        "Invalid job ID '1j'"),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_good_and_bad_arguments(vm, name):
    v = vm("-S", "-name", "vm-under-test", "-smp", "2")
    c = v.client()
    # An argument no command has is refused by the generated checks, before running.
    r = c.execute(name, {"no-such-argument": 1})
    if name == "qmp_capabilities":
        assert r["error"]["class"] == "CommandNotFound"  # already negotiated
    else:
        assert r["error"] == {"class": "GenericError",
                              "desc": "Parameter 'no-such-argument' is unexpected"}
    if name in BAD:
        args, cls, text = BAD[name]
        r = c.execute(name, args)
        if name != "qmp_capabilities":
            assert r["error"]["class"] == cls and text in r["error"]["desc"], r
    if name in GOOD:
        args, check = GOOD[name]
        r = c.execute(name, args)
        assert "return" in r, r
        assert check(r["return"]), r
    assert c.cmd("query-status")["status"] == "prelaunch" or name in ("cont", "quit")


def test_schema_and_query_commands_agree(vm):
    v = vm("-S")
    c = v.client()
    names = {x["name"] for x in c.cmd("query-commands")}
    assert set(COMMANDS) <= names
    schema = c.cmd("query-qmp-schema")
    by_name = {i["name"]: i for i in schema}
    assert {i["name"] for i in schema if i["meta-type"] == "command"} == names
    assert set(EVENTS) <= {i["name"] for i in schema if i["meta-type"] == "event"}
    # Every type a command or event names is itself in the schema.
    for i in schema:
        for key in ("arg-type", "ret-type", "element-type"):
            if key in i:
                assert i[key] in by_name, (i["name"], key)
        for m in i.get("members", []):
            if "type" in m:
                assert m["type"] in by_name
    status = by_name[by_name["query-status"]["ret-type"]]
    assert [m["name"] for m in status["members"]] == ["running", "singlestep", "status"]
    shutdown = by_name[by_name["SHUTDOWN"]["arg-type"]]
    assert {m["name"] for m in shutdown["members"]} == {"guest", "reason"}


def test_block_commands_until_block_devices_exist(vm):
    v = vm("-S")
    c = v.client()
    for name, args in [("block_resize", {"device": "disk0", "size": 1 << 30}),
                       ("blockdev-snapshot-internal-sync", {"device": "disk0", "name": "s"}),
                       ("blockdev-snapshot-delete-internal-sync",
                        {"device": "disk0", "name": "s"})]:
        r = c.execute(name, args)
        assert r["error"]["class"] == "DeviceNotFound", r
        assert "disk0" in r["error"]["desc"]
    r = c.execute("block_resize", {"size": 1})
    assert r["error"]["class"] == "GenericError"


def test_block_queries_with_a_drive(vm, tmpdir_short):
    img = os.path.join(tmpdir_short, "d0.img")
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    v = vm("-S", "-drive", f"file={img},format=raw,if=none,id=d0")
    c = v.client()
    [blk] = c.cmd("query-block")
    assert blk["device"] == "d0" and blk["removable"] is False
    ins = blk["inserted"]
    assert ins["file"] == img and ins["drv"] == "raw" and ins["ro"] is False
    assert ins["image"]["virtual-size"] == 8 << 20
    assert ins["cache"]["writeback"] is True
    [st] = c.cmd("query-blockstats")
    assert st["device"] == "d0" and st["node-name"] == ins["node-name"]
    assert st["stats"]["rd_bytes"] == 0 and st["stats"]["timed_stats"] == []
    [st] = c.cmd("query-blockstats", query_nodes=True)
    assert "device" not in st and st["node-name"] == ins["node-name"]
    info = c.cmd("human-monitor-command", command_line="info block")
    assert info.startswith(f"d0 ({ins['node-name']}): {img} (raw)\r\n")
    r = c.execute("blockdev-snapshot-internal-sync", {"device": "d1", "name": "s"})
    assert r["error"]["class"] == "DeviceNotFound"


def test_host_paths_that_are_not_utf8(vm, tmpdir_short):
    """File names are bytes on Linux: a drive and a chardev file whose paths are not UTF-8
    still appear in query-block / query-chardev, with U+FFFD for the bad bytes (QEMU's JSON
    writer does the same), instead of the entry or the whole answer going missing."""
    img = os.fsencode(tmpdir_short) + b"/d\xff.img"
    log = os.fsencode(tmpdir_short) + b"/c\xfe.log"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    v = vm("-S", b"-drive", b"file=" + img + b",format=raw,if=none,id=d0",
           "-chardev", b"file,id=c0,path=" + log)
    c = v.client()
    [blk] = c.cmd("query-block")
    assert blk["inserted"]["file"] == tmpdir_short + "/d\ufffd.img"
    assert blk["inserted"]["image"]["filename"] == tmpdir_short + "/d\ufffd.img"
    chardevs = {ch["label"]: ch["filename"] for ch in c.cmd("query-chardev")}
    assert "c0" in chardevs and "\ufffd" in chardevs["c0"]
    info = c.cmd("human-monitor-command", command_line="info block")
    assert "d\ufffd.img" in info


def qemu_img_info(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def qemu_img_snapshots(path):
    out = subprocess.run(["qemu-img", "snapshot", "-U", "-l", path], check=True,
                         capture_output=True, text=True).stdout
    # "ID  TAG  VM SIZE  DATE  VM CLOCK  ICOUNT" rows after two header lines.
    return [line.split()[1] for line in out.splitlines()[2:] if line.strip()]


def virtual_size(c, device):
    for b in c.cmd("query-block"):
        if b["device"] == device:
            return b["inserted"]["image"]["virtual-size"]
    raise AssertionError(device)


def test_block_resize_raw(vm, tmpdir_short):
    img = os.path.join(tmpdir_short, "d0.img")
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    # With a virtio-blk device on the drive so its capacity update runs too.
    v = vm("-drive", f"file={img},format=raw,if=none,id=d0",
           "-device", "virtio-blk-pci,drive=d0")
    c = v.client()
    assert c.cmd("block_resize", device="d0", size=16 << 20) == {}
    assert os.path.getsize(img) == 16 << 20
    assert virtual_size(c, "d0") == 16 << 20
    node = c.cmd("query-block")[0]["inserted"]["node-name"]
    # raw may shrink, as in QEMU; by node-name too.
    assert c.execute("block_resize", {"node-name": node, "size": 4 << 20}) == {"return": {}}
    assert os.path.getsize(img) == 4 << 20
    assert virtual_size(c, "d0") == 4 << 20
    for args, cls, text in [
            ({"device": "nope", "size": 1 << 20}, "DeviceNotFound", "nope"),
            ({"size": 1 << 20}, "GenericError", "device"),
            ({"device": "d0", "size": -1}, "GenericError", "size"),
            ({"device": "d0", "size": "big"}, "GenericError", "size"),
            ({"device": "d0", "size": 1, "bogus": 1}, "GenericError", "bogus")]:
        r = c.execute("block_resize", args)
        assert r["error"]["class"] == cls and text in r["error"]["desc"], (args, r)
    assert c.cmd("query-status")["status"] == "running"


def test_block_resize_read_only(vm, tmpdir_short):
    img = os.path.join(tmpdir_short, "ro.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    v = vm("-S", "-drive", f"file={img},format=raw,if=none,id=d0,readonly=on")
    c = v.client()
    r = c.execute("block_resize", {"device": "d0", "size": 2 << 20})
    assert "read only" in r["error"]["desc"], r
    assert os.path.getsize(img) == 1 << 20


@pytest.fixture
def qcow2_image(tmpdir_short):
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img is not installed")
    img = os.path.join(tmpdir_short, "d.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "8M"], check=True)
    return img


def test_block_resize_qcow2(vm, qcow2_image):
    v = vm("-drive", f"file={qcow2_image},format=qcow2,if=none,id=d0",
           "-device", "virtio-blk-pci,drive=d0")
    c = v.client()
    assert c.cmd("block_resize", device="d0", size=1 << 30) == {}
    assert virtual_size(c, "d0") == 1 << 30
    assert qemu_img_info(qcow2_image)["virtual-size"] == 1 << 30
    r = c.execute("block_resize", {"device": "d0", "size": 4 << 20})
    assert r["error"]["class"] == "GenericError" and "shrink" in r["error"]["desc"], r
    assert qemu_img_info(qcow2_image)["virtual-size"] == 1 << 30
    c.cmd("quit")
    v.wait()
    subprocess.run(["qemu-img", "check", "-q", qcow2_image], check=True)


def ok(c, command, **args):
    # QMPClient.cmd takes the command as `name`, which these commands also use.
    r = c.execute(command, args)
    assert "return" in r, r
    return r["return"]


def test_internal_snapshots(vm, qcow2_image, tmpdir_short):
    raw = os.path.join(tmpdir_short, "r.img")
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
    v = vm("-S", "-drive", f"file={qcow2_image},format=qcow2,if=none,id=d0",
           "-drive", f"file={raw},format=raw,if=none,id=r0")
    c = v.client()
    assert ok(c, "blockdev-snapshot-internal-sync", device="d0", name="s1") == {}
    assert ok(c, "blockdev-snapshot-internal-sync", device="d0", name="s2") == {}
    assert qemu_img_snapshots(qcow2_image) == ["s1", "s2"]
    r = c.execute("blockdev-snapshot-internal-sync", {"device": "d0", "name": "s1"})
    assert r["error"]["desc"] == "Snapshot with name 's1' already exists on device 'd0'"
    r = c.execute("blockdev-snapshot-internal-sync", {"device": "d0", "name": ""})
    assert r["error"]["desc"] == "Name is empty"
    r = c.execute("blockdev-snapshot-internal-sync", {"device": "r0", "name": "s"})
    assert r["error"] == {"class": "GenericError",
                          "desc": "Block format 'raw' used by device 'r0' does not "
                                  "support internal snapshots"}
    r = c.execute("blockdev-snapshot-internal-sync", {"device": "x", "name": "s"})
    assert r["error"]["class"] == "DeviceNotFound" and "'x'" in r["error"]["desc"]
    # A qcow2 image with snapshots grows like any other (as in QEMU 7.2); they stay.
    assert ok(c, "block_resize", device="d0", size=16 << 20) == {}
    assert qemu_img_info(qcow2_image)["virtual-size"] == 16 << 20
    assert qemu_img_snapshots(qcow2_image) == ["s1", "s2"]

    sn = ok(c, "blockdev-snapshot-delete-internal-sync", device="d0", name="s1")
    assert sn["name"] == "s1" and sn["id"]
    assert {"vm-state-size", "date-sec", "date-nsec", "vm-clock-sec",
            "vm-clock-nsec"} <= set(sn)
    assert abs(sn["date-sec"] - time.time()) < 600
    assert qemu_img_snapshots(qcow2_image) == ["s2"]
    r = c.execute("blockdev-snapshot-delete-internal-sync", {"device": "d0", "name": "s1"})
    assert r["error"]["desc"] == ("Snapshot with id '(null)' and name 's1' does not exist "
                                  "on device 'd0'")
    r = c.execute("blockdev-snapshot-delete-internal-sync", {"device": "d0"})
    assert r["error"]["desc"] == "Name or id must be provided"
    [s2] = [s for s in qemu_img_info(qcow2_image)["snapshots"] if s["name"] == "s2"]
    r = c.execute("blockdev-snapshot-delete-internal-sync",
                  {"device": "d0", "id": s2["id"], "name": "other"})
    assert "does not exist" in r["error"]["desc"]
    sn = ok(c, "blockdev-snapshot-delete-internal-sync", device="d0", id=s2["id"])
    assert sn["name"] == "s2" and sn["id"] == s2["id"]
    assert qemu_img_snapshots(qcow2_image) == []
    r = c.execute("blockdev-snapshot-delete-internal-sync", {"device": "r0", "name": "s"})
    assert "does not support internal snapshots" in r["error"]["desc"]
    c.cmd("quit")
    v.wait()
    subprocess.run(["qemu-img", "check", "-q", qcow2_image], check=True)


def test_system_reset_and_powerdown(vm):
    v = vm()
    c = v.client()
    assert c.cmd("system_reset") == {}
    ev = c.wait_event("RESET")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert c.cmd("query-status")["status"] == "running"
    # The guest here ignores the button: the event comes, the VM keeps running.
    assert c.cmd("system_powerdown") == {}
    c.wait_event("POWERDOWN")
    assert c.cmd("query-status")["status"] == "running"


def test_guest_reset_event(vm):
    # mov al, 0xfe; out 0x64, al (i8042 pulse reset); jmp $
    v = vm(code=bytes([0xB0, 0xFE, 0xE6, 0x64, 0xEB, 0xFE]))
    c = v.client()
    ev = c.wait_event("RESET")
    assert ev["data"] == {"guest": True, "reason": "guest-reset"}


def test_signal_sends_shutdown_event(vm):
    v = vm()
    c = v.client()
    v.proc.terminate()
    ev = c.wait_event("SHUTDOWN")
    assert ev["data"] == {"guest": False, "reason": "host-signal"}
    assert v.wait()[0] == 0


def test_internal_error_waits_for_the_monitor(vm):
    # popcnt at CPL0: kvm_pvm cannot emulate it.  With a monitor the VM stays stopped.
    v = vm("-device", "isa-debug-exit",
           code=bytes([0xF3, 0x0F, 0xB8, 0xC0, 0x66, 0xBA, 0x01, 0x05, 0xB0, 0x10, 0xEE,
                       0xF4]))
    c = v.client()
    end = time.monotonic() + 10
    while v.proc.poll() is None and time.monotonic() < end:
        try:
            status = c.cmd("query-status")
        except (EOFError, OSError):
            break
        if status["status"] == "internal-error":
            break
        time.sleep(0.05)
    if v.proc.poll() == 33:
        pytest.skip("this host's KVM runs popcnt at CPL0: no emulation failure to provoke")
    assert status == {"running": False, "singlestep": False, "status": "internal-error"}
    regs = c.cmd("human-monitor-command", command_line="info registers")
    assert "RIP" in regs.upper()
    with pytest.raises(QMPError) as e:
        c.cmd("cont")
    assert "Resetting" in e.value.desc
    c.cmd("system_reset")
    c.wait_event("RESET")
    assert c.cmd("query-status")["status"] == "paused"


def test_two_clients_at_once(vm):
    v = vm(monitors=2)
    a, b = v.client(0), v.client(1)
    a.cmd("stop")
    assert a.wait_event("STOP") and b.wait_event("STOP")
    assert b.cmd("query-status")["status"] == "paused"
    b.cmd("cont")
    assert a.wait_event("RESUME") and b.wait_event("RESUME")
    # A client that stops reading must not hold up the other.
    a.send_raw(b'{"execute": "query-qmp-schema"}' * 200)
    for _ in range(20):
        assert b.cmd("query-status")["status"] == "running"


def test_clients_over_time(vm):
    v = vm("-S")
    for i in range(5):
        c = v.client(negotiate=False)
        assert "QMP" in c.greeting
        # Each client negotiates again.
        assert c.execute("query-status")["error"]["class"] == "CommandNotFound"
        c.negotiate()
        assert c.cmd("query-status")["status"] == "prelaunch"
        if i % 2:
            c.send_raw(b'{"execute": "query-st')  # vanish mid-message
        c.close()


def test_mon_with_chardev_and_pretty(vm, tmpdir_short):
    path = os.path.join(tmpdir_short, "mon.sock")
    v = vm("-S", "-chardev", f"socket,id=mon0,path={path},server=on,wait=off",
           "-mon", "chardev=mon0,mode=control,pretty=on", monitors=0)
    s = socket.socket(socket.AF_UNIX)
    for _ in range(200):
        try:
            s.connect(path)
            break
        except OSError:
            time.sleep(0.02)
    s.settimeout(10)
    buf = b""
    while b"\r\n}" not in buf and not buf.rstrip().endswith(b"}"):
        buf += s.recv(4096)
    assert b"\n    " in buf, "pretty output is indented"
    assert "QMP" in json.loads(buf)
    s.close()


def test_tcp_and_qmp_pretty(vm):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    v = vm("-S", "-qmp", f"tcp:127.0.0.1:{port},server=on,wait=off", monitors=0)
    c = QMPClient.connect_tcp("127.0.0.1", port)
    c.negotiate()
    assert c.cmd("query-status")["status"] == "prelaunch"
    assert {"label": "compat_monitor0", "filename": f"tcp:127.0.0.1:{port},server=on",
            "frontend-open": True} in c.cmd("query-chardev")


@pytest.mark.parametrize("args, msg", [
    (["-mon", "chardev=nope,mode=control"], "chardev 'nope' not found"),
    (["-mon", "chardev=c,mode=readline", "-chardev", "null,id=c"], "mode=readline"),
    (["-qmp", "bogus:x"], "not supported"),
    (["-chardev", "null,id=c", "-mon", "chardev=c,mode=control", "-mon",
      "chardev=c,mode=control"], "already in use"),
])
def test_monitor_option_errors(args, msg):
    proc = subprocess.run([SEN, "-display", "none", "-nodefaults", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert msg in proc.stderr


def test_hmp_subset(vm):
    v = vm()
    c = v.client()
    hmp = lambda line: c.cmd("human-monitor-command", command_line=line)
    assert hmp("info status") == "VM status: running\r\n"
    assert hmp("info cpus").startswith("* CPU #0: thread_id=")
    assert hmp("info block") == ""
    assert "snapshot" in hmp("info snapshots")
    assert "RAX=" in hmp("info registers")
    assert hmp("stop") == ""
    c.wait_event("STOP")
    assert hmp("info status") == "VM status: paused\r\n"
    assert hmp("cont") == ""
    c.wait_event("RESUME")
    assert hmp("system_reset") == ""
    c.wait_event("RESET")
    assert hmp("frobnicate") == "unknown command: 'frobnicate'\r\n"
    assert "info registers" in hmp("help")
    r = c.execute("human-monitor-command", {"command-line": "info status", "cpu-index": 9})
    assert r["error"]["class"] == "GenericError"
    assert hmp("quit") == ""
    c.wait_event("SHUTDOWN")
    assert v.wait()[0] == 0


def test_system_reset_with_no_reboot_shuts_down(vm):
    v = vm("-no-reboot")
    c = v.client()
    c.cmd("system_reset")
    ev = c.wait_event("SHUTDOWN")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert v.wait()[0] == 0


def test_qmp_on_stdio(tmpdir_short):
    image = multiboot_image(os.path.join(tmpdir_short, "spin.img"), bytes([0xEB, 0xFE]))
    proc = subprocess.run(
        [SEN, "-M", "pc", "-m", "32M", "-kernel", image, "-display", "none", "-nodefaults",
         "-S", "-qmp", "stdio"],
        input=b'{"execute": "qmp_capabilities"}\n{"execute": "query-status", "id": 5}\n'
              b'{"execute": "quit"}\n',
        capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert "QMP" in msgs[0]
    assert {"return": {"running": False, "singlestep": False, "status": "prelaunch"}, "id": 5} in msgs
    assert any(m.get("event") == "SHUTDOWN" for m in msgs)
