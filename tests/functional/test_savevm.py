"""savevm / loadvm / delvm (docs/snapshots.md): VM snapshots inside qcow2 images.

The guest is the guest kit's dirtier (tests/guest/dirtier.c): it rewrites memory at CPL3
with a running checksum and prints "dirtier: slice S writes W" every few 10 ms slices.
A guest restored from a snapshot must go on counting from the saved point (never from
slice 0, never booting again) and, asked with 'v' on COM1, find every page consistent
with the checksum it kept in RAM and registers.  qemu-img is the oracle for the image.
"""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from migration_util import BUILD, SEN, hmp, image_check, needs_kvm_guest, qcow2
from migration_util import vms  # noqa: F401 (the pytest fixture)
from qmp import QMPError

DIRTIER = os.path.join(BUILD, "tests", "guest", "dirtier.elf")
QEMU_IMG = shutil.which("qemu-img")
GUEST_ARGS = "mb=8 rate=4000 wait=1 tick=10"

guest = needs_kvm_guest(DIRTIER, "no device state in this build: a guest cannot resume")
pytestmark = [
    pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built"),
    pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed"),
]


def dirtier_vm(vms, disk, name="a", *args):
    """A VM running the dirtier with disk as its virtio drive disk0."""
    return vms(name, "-drive", f"file={disk},if=virtio,id=disk0", *args, guest=DIRTIER,
               append=GUEST_ARGS)


def slices(vm):
    """The slice numbers the guest printed so far, in order."""
    return [int(m.group(1)) for m in
            (re.match(r"dirtier: slice (\d+) ", l) for l in list(vm.lines)) if m]


def wait_slice(vm, above, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = slices(vm)
        if s and s[-1] > above:
            return s[-1]
        if vm.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise TimeoutError(f"no slice above {above}: {vm.lines[-5:]} {vm.stderr_text()}")


def went_back(vm, n, later, timeout=10):
    """Slices printed from line n on that are below `later`: before the loadvm the count
    only grew (every line from n on is >= later), so these come from the restored guest
    (lines printed just before the VM stopped may still arrive after loadvm returned)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        back = [int(m.group(1)) for m in
                (re.match(r"dirtier: slice (\d+) ", l) for l in list(vm.lines)[n:])
                if m and int(m.group(1)) < later]
        if back:
            return back
        time.sleep(0.05)
    raise TimeoutError(f"the guest never went back below slice {later}: {vm.lines[n:]}")


def verify_and_exit(vm):
    """'v' makes the dirtier check every page against its checksum; 33 = pass."""
    vm.send_console(b"v")
    assert vm.wait_exit(timeout=60) == 33, (vm.lines[-6:], vm.stderr_text())
    assert vm.lines[-1] == "PASS"


def image_snapshots(path):
    out = subprocess.run([QEMU_IMG, "snapshot", "-l", path], capture_output=True,
                         text=True, check=True).stdout
    rows = {}
    for line in out.splitlines()[2:]:
        f = line.split()
        # ID TAG SIZE UNIT DATE TIME CLOCK
        rows[f[1]] = (float(f[2]), f[3])
    return rows


@guest
def test_savevm_quit_loadvm_continues(vms, tmp_path):
    disk = qcow2(tmp_path)
    a = dirtier_vm(vms, disk)
    before = wait_slice(a, 30)
    assert hmp(a, "savevm snap1") == ""
    assert a.status() == "running"
    # The guest in this process goes on after the save, too.
    after_a = wait_slice(a, before + 20)
    a.cmd("quit")
    a.wait_exit()
    image_check(disk)
    size, unit = image_snapshots(disk)["snap1"]
    assert unit == "MiB" and size >= 8, "the VM state (8 MiB of guest data) is in the image"

    b = dirtier_vm(vms, disk, "b", "-loadvm", "snap1")
    assert b.status() == "running"
    wait_slice(b, -1)
    first = slices(b)[0]
    # Carried on from the saved point: past what was seen before savevm, not past what
    # process a did after it, and the guest never started over.
    assert before < first <= after_a, (before, first, after_a)
    assert not any(l.startswith("dirtier: running") for l in b.lines), b.lines
    wait_slice(b, first + 20)
    verify_and_exit(b)
    image_check(disk)


@guest
def test_loadvm_at_runtime_goes_back(vms, tmp_path):
    disk = qcow2(tmp_path)
    vm = dirtier_vm(vms, disk)
    saved = wait_slice(vm, 20)
    assert hmp(vm, "savevm back") == ""
    # The guest rewrites thousands of pages before it is sent back.
    later = wait_slice(vm, saved + 60)
    n = len(vm.lines)
    assert hmp(vm, "loadvm back") == ""
    assert vm.status() == "running"
    back = went_back(vm, n, later)
    assert saved - 10 < back[0] < later, (saved, later, back)
    # Paused stays paused across loadvm, as in QEMU.
    vm.cmd("stop")
    assert hmp(vm, "loadvm back") == ""
    assert vm.status() == "paused"
    vm.cmd("cont")
    verify_and_exit(vm)
    image_check(disk)


@guest
def test_delvm_and_info_snapshots(vms, tmp_path):
    disk = qcow2(tmp_path)
    vm = dirtier_vm(vms, disk)
    wait_slice(vm, 5)
    assert "There is no snapshot available." in hmp(vm, "info snapshots")
    assert hmp(vm, "savevm one") == ""
    assert hmp(vm, "savevm two") == ""
    # savevm of an existing name replaces it (HMP, as QEMU).
    assert hmp(vm, "savevm one") == ""
    info = hmp(vm, "info snapshots")
    assert info.startswith("List of snapshots present on all disks:\r\n"), info
    assert "ID        TAG               VM SIZE                DATE     VM CLOCK" in info
    rows = [l for l in info.split("\r\n") if l.startswith("--")]
    assert [r.split()[1] for r in rows] == ["two", "one"], info
    assert all(r.endswith(" " * 11) for r in rows), info  # no ICOUNT: none recorded
    assert hmp(vm, "delvm two") == ""
    assert hmp(vm, "delvm one") == ""
    assert "There is no snapshot available." in hmp(vm, "info snapshots")
    # Deleting what is not there is no error (QEMU 7.2 prints nothing either).
    assert hmp(vm, "delvm one") == ""
    vm.cmd("quit")
    vm.wait_exit()
    image_check(disk)
    assert image_snapshots(disk) == {}


def test_bad_inputs_leave_the_vm_alone(vms, tmp_path):
    """Unknown names, a raw drive, a read-only qcow2 and no drive at all: an error naming
    the input, and the VM keeps its run state (qtest: no guest CPU needed)."""
    disk = qcow2(tmp_path)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0")
    assert hmp(vm, "loadvm nope") == \
        "Error: Snapshot 'nope' does not exist in one or more devices\r\n"
    assert hmp(vm, "delvm nope") == ""
    assert hmp(vm, "savevm two words") == \
        "Error: savevm: extraneous characters at the end of line\r\n"
    assert hmp(vm, "loadvm") == "Error: loadvm: missing snapshot name\r\n"
    assert hmp(vm, "delvm ") == "Error: delvm: missing snapshot name\r\n"
    # qcow2 keeps a name's length in 16 bits: a longer tag must not reach the table.
    for tag in ("n" * 256, "n" * 70000):
        assert hmp(vm, "savevm " + tag) == \
            f"Error: Snapshot name 'nnnnnnnnnnnnnnnn...' is {len(tag)} bytes long; " \
            "at most 255 are allowed\r\n"
    assert vm.status() == "running"

    raw = str(tmp_path / "disk.raw")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", raw, "16M"], check=True)
    # Images of their own: vm "a" still writes disk, and its image locks (QEMU's)
    # refuse a second VM on it.
    vm2 = vms("b", "-drive", f"file={qcow2(tmp_path, name='b.qcow2')},if=virtio,id=disk0",
              "-drive", f"file={raw},format=raw,if=virtio,id=rawdisk")
    assert hmp(vm2, "savevm s") == \
        "Error: Device 'rawdisk' is writable but does not support snapshots\r\n"
    assert vm2.status() == "running"

    vm3 = vms("c", "-drive",
              f"file={qcow2(tmp_path, name='c.qcow2')},if=virtio,id=disk0,readonly=on")
    assert hmp(vm3, "savevm s") == \
        "Error: No block device can accept snapshots (read-only: 'disk0')\r\n"
    assert hmp(vm3, "loadvm s") == \
        "Error: No block device can accept snapshots (read-only: 'disk0')\r\n"
    vm4 = vms("d")
    assert hmp(vm4, "savevm s") == "Error: No block device can accept snapshots\r\n"
    assert hmp(vm4, "info snapshots") == "no block device can store vmstate for snapshot\r\n"
    assert hmp(vm4, "delvm s") == ""
    for v in (vm, vm2, vm3, vm4):
        v.cmd("quit")
        v.wait_exit()
    image_check(disk)
    assert image_snapshots(disk) == {}


def test_info_snapshots_and_delete_with_a_writable_raw_drive(vms, tmp_path):
    """QEMU 7.2's behaviour, checked against it: the qcow2 drives' snapshots are listed,
    none is loadable (the raw drive cannot have it), and delvm refuses naming the raw
    drive; a snapshot-delete job of the qcow2 drive alone concludes, also for a tag no
    drive has (qtest: no guest CPU needed)."""
    disk = qcow2(tmp_path)
    other = qcow2(tmp_path, name="other.qcow2")
    for image, tag in ((disk, "s1"), (disk, "both"), (other, "both")):
        subprocess.run([QEMU_IMG, "snapshot", "-c", tag, image], check=True)
    raw = str(tmp_path / "disk.raw")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", raw, "16M"], check=True)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0",
             "-drive", f"file={raw},format=raw,if=virtio,id=rawdisk",
             "-drive", f"file={other},if=virtio,id=disk1")
    info = hmp(vm, "info snapshots")
    header = "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT"
    parts = info.split("\r\n\r\n")
    assert parts[0] == "List of snapshots present on all disks:\r\nNone", info
    assert len(parts) == 3, info
    for part, drive, tags in ((parts[1], "disk0", ["s1", "both"]),
                              (parts[2], "disk1", ["both"])):
        lines = part.rstrip("\r\n").split("\r\n")
        assert lines[0] == f"List of partial (non-loadable) snapshots on '{drive}':", info
        assert lines[1] == header, info
        assert [l.split()[1] for l in lines[2:]] == tags, info
    assert hmp(vm, "delvm s1") == \
        "Error: Device 'rawdisk' is writable but does not support snapshots\r\n"
    for job_id, tag in (("del-s1", "s1"), ("del-none", "none")):
        vm.cmd("snapshot-delete", job_id=job_id, tag=tag, devices=["disk0"])
        assert job_statuses(vm, job_id)[-1] == "concluded"
        assert "error" not in job_info(vm, job_id), job_info(vm, job_id)
    assert "s1" not in hmp(vm, "info snapshots")
    vm.cmd("quit")
    vm.wait_exit()
    image_check(disk)
    assert set(image_snapshots(disk)) == {"both"}


def test_failed_savevm_frees_the_state_it_wrote(vms, tmp_path):
    """A VM state that does not fit (the image's L1 table reaches its 32 MiB limit 2 MiB
    past the disk) fails savevm midway: the VM runs on, no snapshot is taken, and the
    part already written is freed rather than left in the active image (qtest: RAM is
    filled through the qtest protocol, no guest CPU needed)."""
    disk = str(tmp_path / "full.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                    disk, str(8 * 2**40 - 2 * 2**20)], check=True)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0")
    vm.qtest.write(0x100000, os.urandom(3 * 2**20))
    assert hmp(vm, "savevm s") == "Error: Error while writing VM state to 'disk0': " \
        "write to the migration stream failed: File too large\r\n"
    assert vm.status() == "running"
    vm.cmd("quit")
    vm.wait_exit()
    image_check(disk)
    assert image_snapshots(disk) == {}
    out = subprocess.run([QEMU_IMG, "check", "--output=json", disk], capture_output=True,
                         text=True).stdout
    # qemu-img counts every data cluster of the active L1, the vm-state area's too.
    assert json.loads(out).get("allocated-clusters", 0) == 0, out


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs: a write past it fails with ENOSPC, as on a full host disk."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root) for the full-disk fault: "
                    f"{r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_savevm_on_a_full_disk_rolls_back(vms, tmp_path, small_fs):
    """The host file system fills up halfway through the VM state (6 MiB of random RAM
    into an image on a 4 MiB tmpfs): savevm fails with ENOSPC, no snapshot is listed,
    the VM runs on, the image stays clean for qemu-img, and once the state is small
    again a savevm into the same image succeeds (qtest: no guest CPU needed)."""
    disk = qcow2(small_fs)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0")
    vm.qtest.write(0x100000, os.urandom(6 * 2**20))
    out = hmp(vm, "savevm s")
    assert out.startswith("Error: Error while writing VM state to 'disk0': "), out
    assert "No space left on device" in out, out
    assert vm.status() == "running"
    assert hmp(vm, "info snapshots") == "There is no snapshot available.\r\n"
    assert vm.qtest.read(0x100000, 16) != bytes(16)  # RAM untouched by the failure
    # The space the failed state took is free again inside the image: a small state fits.
    vm.qtest.write(0x100000, bytes(6 * 2**20))
    assert hmp(vm, "savevm t") == ""
    assert vm.status() == "running"
    vm.cmd("quit")
    vm.wait_exit()
    image_check(disk)
    assert set(image_snapshots(disk)) == {"t"}


def test_job_verbs_on_snapshot_jobs(vms, tmp_path):
    """job-cancel/-pause/-resume/-complete/-finalize as QEMU 7.2 answers them for snapshot
    jobs, which run in one go: a concluded job refuses every verb by QEMU's verb table
    and keeps what it did.  A cancel sent together with the job either finds it not yet
    started (it then concludes with "Operation canceled" and takes no snapshot) or finds
    it concluded; never half done (qtest: no guest CPU needed)."""
    disk = qcow2(tmp_path)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0")
    vm.cmd("snapshot-save", job_id="s", tag="kept", vmstate="disk0", devices=["disk0"])
    assert job_statuses(vm, "s")[-1] == "concluded"
    for verb in ("cancel", "pause", "complete", "finalize"):
        with pytest.raises(QMPError, match=f"Job 's' in state 'concluded' cannot accept "
                                           f"command verb '{verb}'"):
            vm.cmd(f"job-{verb}", id="s")
    with pytest.raises(QMPError, match="Can't resume a job that was not paused"):
        vm.cmd("job-resume", id="s")
    for verb in ("cancel", "pause", "resume", "complete", "finalize"):
        with pytest.raises(QMPError, match="Job not found"):
            vm.cmd(f"job-{verb}", id="nope")
    assert "error" not in job_info(vm, "s")
    vm.cmd("job-dismiss", id="s")

    # One write, two commands: the cancel races with the job's start.
    save = {"execute": "snapshot-save", "arguments": {
        "job-id": "r", "tag": "raced", "vmstate": "disk0", "devices": ["disk0"]}}
    cancel = {"execute": "job-cancel", "arguments": {"id": "r"}}
    vm.qmp.send_raw((json.dumps(save) + "\n" + json.dumps(cancel) + "\n").encode())
    assert vm.qmp.recv_response() == {"return": {}}
    answer = vm.qmp.recv_response()
    statuses = job_statuses(vm, "r")
    info = job_info(vm, "r")
    if "error" in answer:
        assert answer["error"]["desc"] == \
            "Job 'r' in state 'concluded' cannot accept command verb 'cancel'", answer
        assert statuses[-1] == "concluded" and "error" not in info, (statuses, info)
        want = {"kept", "raced"}
    else:
        assert statuses == ["created", "aborting", "concluded"], statuses
        assert info["error"] == "Operation canceled" and info["current-progress"] == 0
        want = {"kept"}
    assert vm.status() == "running"
    vm.cmd("quit")
    vm.wait_exit()
    image_check(disk)
    assert set(image_snapshots(disk)) == want


def test_savevm_failing_on_a_later_drive_takes_no_snapshot(vms, tmp_path):
    """The second drive cannot take internal snapshots (a qcow2 image with an external
    data file: qcow2 refuses them): the first drive's snapshot, VM state included, is
    rolled back, the failing drive is left without one, both images stay clean, and the
    VM runs on (qtest: no guest CPU needed)."""
    disk0 = qcow2(tmp_path)
    disk1 = str(tmp_path / "ext.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={tmp_path / 'ext.data'}", disk1, "16M"], check=True)
    vm = vms("a", "-drive", f"file={disk0},if=virtio,id=disk0",
             "-drive", f"file={disk1},if=virtio,id=disk1")
    vm.qtest.write(0x100000, os.urandom(2**20))
    assert hmp(vm, "savevm s1") == "Error: Error while creating snapshot on 'disk1': " \
        "Could not create snapshot 's1': -95 (Operation not supported)\r\n"
    assert vm.status() == "running"
    assert hmp(vm, "info snapshots") == "There is no snapshot available.\r\n"
    vm.cmd("quit")
    vm.wait_exit()
    for d in (disk0, disk1):
        image_check(d)
        assert image_snapshots(d) == {}
    out = subprocess.run([QEMU_IMG, "check", "--output=json", disk0], capture_output=True,
                         text=True).stdout
    # The VM state went with the rolled-back snapshot: nothing stays allocated.
    assert json.loads(out).get("allocated-clusters", 0) == 0, out


def test_loadvm_option_errors(tmp_path):
    disk = qcow2(tmp_path)
    base = [SEN, "-M", "pc", "-m", "64M", "-display", "none", "-nodefaults",
            "-accel", "qtest", "-qtest", "null"]
    r = subprocess.run(base + ["-drive", f"file={disk},if=virtio,id=disk0",
                               "-loadvm", "nope"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "-loadvm nope: Snapshot 'nope' does not exist in one or more devices" in r.stderr
    r = subprocess.run(base + ["-loadvm", ""], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "-loadvm : expected a snapshot name" in r.stderr, r.stderr
    image_check(disk)


def job_statuses(vm, job_id, until="concluded", timeout=30):
    """The JOB_STATUS_CHANGE statuses of job_id, up to and including `until`."""
    seen = []
    end = time.monotonic() + timeout
    while not seen or seen[-1] != until:
        ev = vm.qmp.wait_event("JOB_STATUS_CHANGE", timeout=max(0.1, end - time.monotonic()))
        if ev["data"]["id"] == job_id:
            seen.append(ev["data"]["status"])
    return seen


def job_info(vm, job_id):
    [info] = [j for j in vm.cmd("query-jobs") if j["id"] == job_id]
    return info


@guest
def test_qmp_snapshot_jobs(vms, tmp_path):
    disk0, disk1 = qcow2(tmp_path, name="d0.qcow2"), qcow2(tmp_path, name="d1.qcow2", size="16M")
    vm = vms("a", "-drive", f"file={disk0},if=virtio,id=disk0",
             "-drive", f"file={disk1},if=none,id=disk1", guest=DIRTIER, append=GUEST_ARGS)
    devices = ["disk0", "disk1"]
    saved = wait_slice(vm, 20)
    vm.cmd("snapshot-save", job_id="save0", tag="q1", vmstate="disk0", devices=devices)
    assert job_statuses(vm, "save0") == ["created", "running", "waiting", "pending",
                                         "concluded"]
    vm.qmp.wait_event("STOP")
    vm.qmp.wait_event("RESUME")
    assert job_info(vm, "save0") == {"id": "save0", "type": "snapshot-save",
                                     "status": "concluded", "current-progress": 1,
                                     "total-progress": 1}
    assert vm.status() == "running"
    # On both drives, so loadable; the VM state only on disk0.
    info = hmp(vm, "info snapshots")
    assert [l.split()[1] for l in info.split("\r\n") if l.startswith("--")] == ["q1"], info
    assert "partial" not in info, info

    # Job bookkeeping: ids are unique until dismissed, only concluded jobs go away.
    with pytest.raises(QMPError, match="Job ID 'save0' already in use"):
        vm.cmd("snapshot-save", job_id="save0", tag="q2", vmstate="disk0", devices=devices)
    with pytest.raises(QMPError, match="Invalid job ID '0bad'"):
        vm.cmd("snapshot-save", job_id="0bad", tag="q2", vmstate="disk0", devices=devices)
    with pytest.raises(QMPError, match="Job not found"):
        vm.cmd("job-dismiss", id="nope")
    vm.cmd("job-dismiss", id="save0")
    assert job_statuses(vm, "save0", until="null") == ["null"]
    assert vm.cmd("query-jobs") == []

    # Failures conclude with the reason in query-jobs and leave the VM running.
    for job_id, cmd, args, error in [
            ("again", "snapshot-save", {"tag": "q1", "vmstate": "disk0"},
             "Snapshot 'q1' already exists in one or more devices"),
            ("novm", "snapshot-save", {"tag": "q3", "vmstate": "disk9"},
             "vmstate device 'disk9' not found"),
            ("unknown", "snapshot-load", {"tag": "zz", "vmstate": "disk0"},
             "Snapshot 'zz' does not exist in one or more devices")]:
        vm.cmd(cmd, job_id=job_id, devices=devices, **args)
        assert job_statuses(vm, job_id) == ["created", "running", "aborting", "concluded"]
        assert job_info(vm, job_id)["error"] == error
        vm.cmd("job-dismiss", id=job_id)
    assert vm.status() == "running"

    later = wait_slice(vm, saved + 60)
    n = len(vm.lines)
    vm.cmd("snapshot-load", job_id="load0", tag="q1", vmstate="disk0", devices=devices)
    assert job_statuses(vm, "load0")[-1] == "concluded"
    assert "error" not in job_info(vm, "load0"), job_info(vm, "load0")
    back = went_back(vm, n, later)
    assert saved - 10 < back[0] < later, (saved, later, back)

    vm.cmd("snapshot-delete", job_id="del0", tag="q1", devices=devices)
    assert job_statuses(vm, "del0") == ["created", "running", "waiting", "pending",
                                        "concluded"]
    verify_and_exit(vm)
    for d in (disk0, disk1):
        image_check(d)
        assert image_snapshots(d) == {}


def test_snapshot_of_another_machine_is_refused_before_anything_changes(vms, tmp_path):
    """A snapshot saved with -m 64M does not fit a 128 MiB VM: loadvm says so and the VM
    runs on untouched (qtest: no guest CPU needed)."""
    disk = qcow2(tmp_path)
    a = vms("a", "-drive", f"file={disk},if=virtio,id=disk0")
    assert hmp(a, "savevm small") == ""
    a.cmd("quit")
    a.wait_exit()
    b = vms("b", "-drive", f"file={disk},if=virtio,id=disk0", mem="128M")
    r = hmp(b, "loadvm small")
    assert r.startswith("Error: Snapshot 'small' does not fit this VM (VM state on "
                        "'disk0'): RAM size mismatch"), r
    assert b.status() == "running"
    assert not [e for e in b.qmp.events if e["event"] in ("STOP", "RESUME")], b.qmp.events
    b.cmd("quit")
    b.wait_exit()
    r = subprocess.run([SEN, "-M", "pc", "-m", "128M", "-display", "none", "-nodefaults",
                        "-accel", "qtest", "-qtest", "null", "-drive",
                        f"file={disk},if=virtio,id=disk0", "-loadvm", "small"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "-loadvm small: Snapshot 'small' does not fit" in r.stderr
    image_check(disk)


QEMU = shutil.which("qemu-system-x86_64")
QBOOT = "/usr/share/qemu/qboot.rom"


@guest
@pytest.mark.skipif(QEMU is None or not os.path.exists(QBOOT),
                    reason="qemu-system-x86_64 (qemu-system-x86) or qboot.rom is missing")
def test_qemu_snapshot_is_listed_and_refused_cleanly(vms, tmp_path):
    """QEMU's VM state is QEMU's own stream: Sen lists a snapshot QEMU saved (same image
    layout) but refuses to load it, before touching the VM."""
    from qmp import QMPClient
    disk = qcow2(tmp_path)
    sock = str(tmp_path / "qemu.qmp")
    q = subprocess.Popen([QEMU, "-M", "pc", "-bios", QBOOT, "-cpu",
                          "host,-arch-capabilities", "-enable-kvm", "-m", "64M",
                          "-kernel", DIRTIER, "-append", GUEST_ARGS, "-device",
                          "isa-debug-exit", "-display", "none", "-nodefaults", "-serial",
                          "null", "-drive", f"file={disk},if=virtio,id=disk0",
                          "-qmp", f"unix:{sock},server=on,wait=off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        c = QMPClient.connect_unix(sock)
        c.negotiate()
        time.sleep(1)
        assert c.cmd("human-monitor-command", **{"command-line": "savevm fromqemu"}) == ""
        c.cmd("quit")
        q.wait(timeout=30)
    finally:
        if q.poll() is None:
            q.kill()
            q.wait()
    vm = dirtier_vm(vms, disk)
    wait_slice(vm, 5)
    info = hmp(vm, "info snapshots")
    assert [l.split()[1] for l in info.split("\r\n") if l.startswith("--")] == \
        ["fromqemu"], info
    r = hmp(vm, "loadvm fromqemu")
    assert "Snapshot 'fromqemu' does not fit this VM" in r and "bad magic" in r, r
    assert vm.status() == "running"
    # The guest was not touched: it carries on and its memory checks out.
    verify_and_exit(vm)
    image_check(disk)


def qemu_io(path, command):
    r = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path],
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("qemu-io") is None, reason="qemu-io (qemu-utils) missing")
def test_disks_go_back_with_the_vm(vms, tmp_path):
    """Every writable drive gets the snapshot and loadvm reverts each; a paused VM stays
    paused across savevm; drives with snapshots others lack are listed as partial."""
    d0, d1 = qcow2(tmp_path, name="d0.qcow2"), qcow2(tmp_path, name="d1.qcow2", size="16M")
    subprocess.run([QEMU_IMG, "snapshot", "-c", "lonely", d1], check=True)
    drives = ["-drive", f"file={d0},if=virtio,id=disk0",
              "-drive", f"file={d1},if=none,id=disk1"]
    a = vms("a", *drives)
    a.cmd("stop")
    assert hmp(a, "savevm clean") == ""
    assert a.status() == "paused"
    info = hmp(a, "info snapshots")
    assert "List of partial (non-loadable) snapshots on 'disk1':" in info, info
    assert re.search(r"\n1 +lonely +0 B ", info), info
    a.cmd("quit")
    a.wait_exit()
    # Written behind the snapshot's back: loadvm must take both drives back.
    for d in (d0, d1):
        assert qemu_io(d, "write -P 0xab 0 64k")[0] == 0
    b = vms("b", *drives, "-loadvm", "clean")
    assert b.status() == "running"
    b.cmd("quit")
    b.wait_exit()
    for d in (d0, d1):
        rc, out = qemu_io(d, "read -P 0 0 64k")
        assert rc == 0 and "Pattern verification failed" not in out, out
        image_check(d)
    assert set(image_snapshots(d1)) == {"lonely", "clean"}


def test_no_snapshots_during_a_migration(vms, tmp_path):
    disk = qcow2(tmp_path)
    vm = vms("a", "-drive", f"file={disk},if=virtio,id=disk0", "-incoming", "defer")
    assert hmp(vm, "savevm s") == "Error: savevm: a migration is in progress\r\n"
    assert vm.status() == "inmigrate"
    vm.cmd("quit")
    vm.wait_exit()
    assert image_snapshots(disk) == {}


def vm_state_host_offset(path, tag):
    """Host offset of the first cluster of snapshot tag's VM state, from the qcow2
    structures (docs/interop/qcow2.txt), to corrupt it behind Sen's back."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    cluster_bits, size = struct.unpack_from(">IQ", data, 20)
    nb, table = struct.unpack_from(">IQ", data, 60)
    cluster = 1 << cluster_bits
    span = cluster * (cluster // 8)
    pos = table
    for _ in range(nb):
        l1_off, l1_size, id_len, name_len = struct.unpack_from(">QIHH", data, pos)
        extra = struct.unpack_from(">I", data, pos + 36)[0]
        name = data[pos + 40 + extra + id_len:pos + 40 + extra + id_len + name_len].decode()
        if name == tag:
            l1i = (size + span - 1) // span
            l2 = struct.unpack_from(">Q", data, l1_off + 8 * l1i)[0] & 0x00FFFFFFFFFFFE00
            return struct.unpack_from(">Q", data, l2)[0] & 0x00FFFFFFFFFFFE00
        pos += (40 + extra + id_len + name_len + 7) & ~7
    raise KeyError(tag)


@guest
def test_corrupt_vm_state_leaves_the_vm_paused(vms, tmp_path):
    """The checksum catches a corrupt vm-state area after the disks were reverted: the
    VM stays paused with the reason, and loading a good snapshot brings it back."""
    disk = qcow2(tmp_path)
    drive = ["-drive", f"file={disk},if=virtio,id=disk0"]
    a = dirtier_vm(vms, disk)
    wait_slice(a, 10)
    assert hmp(a, "savevm good") == ""
    assert hmp(a, "savevm bad") == ""
    a.cmd("quit")
    a.wait_exit()
    off = vm_state_host_offset(disk, "bad") + 40000
    with open(disk, "r+b") as f:
        f.seek(off)
        byte = f.read(1)
        f.seek(off)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = subprocess.run([SEN, "-M", "pc", "-m", "64M", "-display", "none", "-nodefaults",
                        "-kernel", DIRTIER, "-append", GUEST_ARGS, "-device",
                        "isa-debug-exit", *drive, "-loadvm", "bad"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "-loadvm bad: Error while loading VM state of snapshot 'bad' from 'disk0'" \
        in r.stderr, r.stderr

    b = dirtier_vm(vms, disk, "b", "-loadvm", "good")
    first = wait_slice(b, -1)
    r = hmp(b, "loadvm bad")
    assert r.startswith("Error: Error while loading VM state of snapshot 'bad'"), r
    # Offset 40000 is page data, which carries its own checksum (docs/migration-format.md).
    assert "the migration stream is corrupt: the data of" in r and \
        "page(s) did not match its checksum" in r, r
    assert b.status() == "paused"
    assert hmp(b, "loadvm good") == ""
    assert b.status() == "paused"   # it was stopped by the failure: loadvm keeps that
    b.cmd("cont")
    wait_slice(b, first + 10)
    verify_and_exit(b)
