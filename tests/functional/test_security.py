"""Isolation from the outside (docs/security.md): -sandbox, -runas, -chroot, socket modes.

The sandbox tests make Sen issue a forbidden system call through the QMP command
x-debug-sandbox-probe (execve(NULL), a no-op without a filter) and expect death by
SIGSYS with a line naming the call.  -runas/-chroot need root; they skip otherwise.
"""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from qmp import QMPClient  # noqa: E402

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
HELLO = os.path.join(BUILD, "tests", "guest", "hello.elf")
HELLO_APPEND = "cpus=1 ram_mb=64 token=0x5e4"
PASS_STATUS = 33

KVM_OK = os.access("/dev/kvm", os.R_OK | os.W_OK)
needs_kvm = pytest.mark.skipif(not KVM_OK, reason="/dev/kvm is not usable here")
needs_guest = pytest.mark.skipif(not os.path.exists(HELLO), reason="guest kit not built")
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="-runas/-chroot need root to drop privileges")

pytestmark = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")


def no_core():
    """Death by SIGSYS dumps core by default: not in the test's directory."""
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def as_nobody():
    no_core()
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def start(tmp_path, *extra, kernel=HELLO, preexec=no_core):
    sock = tmp_path / "qmp.sock"
    cmd = [SEN, "-M", "pc", "-m", "64M", "-kernel", kernel, "-append", HELLO_APPEND,
           "-device", "isa-debug-exit", "-display", "none", "-nodefaults", "-S",
           "-qmp", f"unix:{sock},server=on,wait=off", *extra]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    try:
        qmp = QMPClient.connect_unix(sock, wait=20)
    except OSError:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"sen did not open its QMP socket: {err}")
    qmp.negotiate()
    return proc, qmp, sock


def finish(proc, qmp, status=0):
    """Quits through QMP and checks the exit status."""
    qmp.execute("quit")
    qmp.close()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == status, err
    return err


def proc_ids(pid):
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups", "Seccomp", "NoNewPrivs"):
                ids[key] = value.split()
    return ids


@needs_kvm
@needs_guest
def test_probe_is_harmless_without_sandbox(tmp_path):
    proc, qmp, _ = start(tmp_path)
    assert qmp.execute("x-debug-sandbox-probe") == {"return": {}}
    assert proc_ids(proc.pid)["Seccomp"] == ["0"]
    finish(proc, qmp)


@needs_kvm
@needs_guest
def test_forbidden_syscall_kills_under_sandbox(tmp_path):
    proc, qmp, _ = start(tmp_path, "-sandbox", "on")
    ids = proc_ids(proc.pid)
    assert ids["Seccomp"] == ["2"] and ids["NoNewPrivs"] == ["1"]
    for task in os.listdir(f"/proc/{proc.pid}/task"):  # every thread, vCPUs included
        with open(f"/proc/{proc.pid}/task/{task}/status") as f:
            assert "Seccomp:\t2\n" in f.read()
    # Allowed work goes on under the filter ...
    assert qmp.cmd("query-status")["status"] == "prelaunch"
    qmp.cmd("query-block")
    # ... a forbidden call ends the process, saying which call it was.
    qmp.send({"execute": "x-debug-sandbox-probe"})
    out, err = proc.communicate(timeout=20)
    qmp.close()
    assert proc.returncode == -signal.SIGSYS, err
    assert "sen: -sandbox on: system call 59 (execve) is not allowed; killing the process" \
        in err


@needs_kvm
@needs_guest
def test_spawn_allow_puts_execve_on_the_list(tmp_path):
    proc, qmp, _ = start(tmp_path, "-sandbox", "on,spawn=allow")
    assert proc_ids(proc.pid)["Seccomp"] == ["2"]
    assert qmp.execute("x-debug-sandbox-probe") == {"return": {}}
    finish(proc, qmp)


@needs_kvm
@needs_guest
def test_guest_runs_to_completion_under_sandbox(tmp_path):
    proc, qmp, _ = start(tmp_path, "-sandbox", "on", "-serial", "stdio")
    qmp.cmd("cont")
    out, err = proc.communicate(timeout=60)
    qmp.close()
    assert proc.returncode == PASS_STATUS, out + err
    assert "PASS" in out


@needs_kvm
@needs_guest
@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_qmp_and_chardev_sockets_are_0600(tmp_path, umask):
    chr_sock = tmp_path / "chr.sock"
    old = os.umask(umask)
    try:
        proc, qmp, sock = start(tmp_path, "-chardev",
                                f"socket,id=c0,path={chr_sock},server=on,wait=off")
    finally:
        os.umask(old)
    for path in (sock, chr_sock):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, f"{path}: {oct(st.st_mode)}"
    finish(proc, qmp)


def test_sandbox_option_errors():
    for arg, msg in [("on,spawn=maybe", "invalid argument for spawn: 'maybe'"),
                     ("on,fork=deny", "-sandbox on,fork=deny: "),
                     ("spawn=deny", "Parameter 'enable' is missing")]:
        done = subprocess.run([SEN, "-sandbox", arg], capture_output=True, text=True,
                              timeout=20)
        assert done.returncode == 1
        assert msg in done.stderr, done.stderr


@needs_kvm
@needs_guest
@needs_root
def test_runas_nobody_keeps_what_was_opened_before(tmp_path):
    # An image only root may open: Sen opens it before the drop and keeps using it.
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    os.chmod(image, 0o600)
    proc, qmp, sock = start(tmp_path, "-runas", "nobody", "-sandbox", "on",
                            "-drive", f"file={image},format=raw,if=none,id=d0",
                            "-device", "virtio-blk-pci,drive=d0")
    ids = proc_ids(proc.pid)
    assert ids["Uid"] == ["65534"] * 4 and ids["Gid"] == ["65534"] * 4, ids
    assert ids["Groups"] == ["65534"], ids
    assert any(b["device"] == "d0" for b in qmp.cmd("query-block"))
    # Owned by root and 0600 still: the drop did not loosen the socket.
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    qmp.cmd("cont")
    qmp.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == PASS_STATUS, err


@needs_guest
@needs_root
def test_runas_by_uid_gid_and_chroot(tmp_path):
    root = tmp_path / "jail"
    root.mkdir()
    # -accel qtest: the jail is what is tested, not KVM.
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen([SEN, "-accel", "qtest", "-kernel", HELLO, "-display", "none",
                             "-nodefaults", "-S",
                             "-qmp", f"unix:{sock},server=on,wait=off",
                             "-chroot", str(root), "-runas", "65534:65534"],
                            stderr=subprocess.PIPE, text=True, preexec_fn=no_core)
    qmp = QMPClient.connect_unix(sock, wait=20)
    qmp.negotiate()
    assert os.readlink(f"/proc/{proc.pid}/root") == str(root)
    ids = proc_ids(proc.pid)
    assert ids["Uid"] == ["65534"] * 4 and ids["Groups"] == ["65534"], ids
    finish(proc, qmp)


@needs_guest
def test_without_dev_kvm_access_fails_clearly(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to start Sen as a user without /dev/kvm access")
    if os.access("/dev/kvm", os.R_OK | os.W_OK, effective_ids=False) and \
            os.stat("/dev/kvm").st_mode & 0o006:
        pytest.skip("/dev/kvm is open to every user here")
    # Sen opens /dev/kvm before -runas drops privileges (as QEMU does), so the user that
    # starts Sen is the one that needs access: here, nobody, which has none.
    done = subprocess.run([SEN, "-M", "pc", "-m", "64M", "-kernel", HELLO, "-display", "none",
                           "-nodefaults"], capture_output=True, text=True, timeout=30,
                          preexec_fn=as_nobody)
    assert done.returncode == 1
    assert "/dev/kvm: Permission denied" in done.stderr, done.stderr


@needs_guest
def test_runas_needs_privileges():
    # Started unprivileged, Sen cannot become root: a clear error, not a half-dropped VM.
    preexec = as_nobody if os.geteuid() == 0 else no_core
    done = subprocess.run([SEN, "-accel", "qtest", "-kernel", HELLO, "-display", "none",
                           "-nodefaults", "-runas", "0:0"], capture_output=True, text=True,
                          timeout=30, preexec_fn=preexec)
    assert done.returncode == 1
    assert "-runas 0:0: cannot set the supplementary groups: Operation not permitted" \
        in done.stderr, done.stderr


@needs_kvm
@needs_guest
def test_add_fd_drive_and_chardev_file(tmp_path):
    # Sen opens neither file by path: both come in as descriptors.
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    log = tmp_path / "serial.log"
    log.write_text("stale text the chardev must truncate\n")
    disk_fd = os.open(image, os.O_RDWR)
    log_fd = os.open(log, os.O_WRONLY)
    sock = tmp_path / "qmp.sock"
    cmd = [SEN, "-M", "pc", "-m", "64M", "-kernel", HELLO, "-append", HELLO_APPEND,
           "-device", "isa-debug-exit", "-display", "none", "-nodefaults", "-S",
           "-qmp", f"unix:{sock},server=on,wait=off",
           "-add-fd", f"fd={disk_fd},set=1,opaque=disk",
           "-add-fd", f"fd={log_fd},set=3",
           "-drive", "file=/dev/fdset/1,format=raw,if=none,id=d0",
           "-device", "virtio-blk-pci,drive=d0",
           "-chardev", "file,id=c0,path=/dev/fdset/3", "-serial", "chardev:c0"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, pass_fds=(disk_fd, log_fd), preexec_fn=no_core)
    finally:
        os.close(disk_fd)
        os.close(log_fd)
    qmp = QMPClient.connect_unix(sock, wait=20)
    qmp.negotiate()
    sets = qmp.cmd("query-fdsets")
    assert sets == [{"fdset-id": 1, "fds": [{"fd": disk_fd, "opaque": "disk"}]},
                    {"fdset-id": 3, "fds": [{"fd": log_fd}]}], sets
    assert any(b["device"] == "d0" for b in qmp.cmd("query-block"))
    # The set goes; the descriptors already opened from it stay in use.
    assert qmp.execute("remove-fd", {"fdset-id": 3}) == {"return": {}}
    err = qmp.execute("remove-fd", {"fdset-id": 3})["error"]
    assert err == {"class": "GenericError",
                   "desc": "File descriptor named 'fdset-id:3' not found"}, err
    err = qmp.execute("remove-fd", {"fdset-id": 1, "fd": 1234})["error"]
    assert err["desc"] == "File descriptor named 'fdset-id:1, fd:1234' not found"
    assert qmp.cmd("query-fdsets") == [sets[0]]
    qmp.cmd("cont")
    qmp.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == PASS_STATUS, err
    text = log.read_text()
    assert "PASS" in text and "stale text" not in text


@needs_kvm
@needs_guest
@pytest.mark.parametrize("drive,flags,msg", [
    # A read-only descriptor cannot serve a read-write drive: no fd with that access mode.
    ("file=/dev/fdset/1,format=raw,if=none,id=d0", os.O_RDONLY, "Permission denied"),
    ("file=/dev/fdset/9,format=raw,if=none,id=d0", os.O_RDWR, "No such file or directory"),
])
def test_add_fd_open_errors(tmp_path, drive, flags, msg):
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    fd = os.open(image, flags)
    try:
        done = subprocess.run([SEN, "-M", "pc", "-m", "64M", "-kernel", HELLO, "-display",
                               "none", "-nodefaults", "-add-fd", f"fd={fd},set=1",
                               "-drive", drive], capture_output=True, text=True,
                              timeout=30, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert done.returncode == 1
    assert "/dev/fdset/" in done.stderr and msg in done.stderr, done.stderr


def test_add_fd_option_errors(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)  # an inherited descriptor (not close-on-exec)
    try:
        for arg, msg in [("fd=1,set=1", "fd cannot be a standard I/O stream"),
                         ("set=1", "fd option is required and must be non-negative"),
                         (f"fd={fd}", "set option is required and must be non-negative"),
                         ("fd=987,set=1", "fd is not valid or already in use"),
                         (f"fd={fd},set=1,mode=rw", "invalid parameter")]:
            done = subprocess.run([SEN, "-add-fd", arg], capture_output=True, text=True,
                                  timeout=20, pass_fds=(fd,))
            assert done.returncode == 1
            assert done.stderr.startswith(f"sen: -add-fd {arg}: ") and msg in done.stderr, \
                done.stderr
    finally:
        os.close(fd)


@needs_kvm
@needs_guest
@needs_root
def test_daemonize_with_chroot_runas_sandbox(tmp_path):
    # The daemon's stdio goes to /dev/null although the chroot has none, and it keeps
    # serving QMP as nobody under the filter.
    jail = tmp_path / "jail"
    jail.mkdir()
    sock = tmp_path / "qmp.sock"
    pidfile = tmp_path / "sen.pid"
    launcher = subprocess.run(
        [SEN, "-M", "pc", "-m", "64M", "-kernel", HELLO, "-display", "none", "-nodefaults",
         "-S", "-daemonize", "-pidfile", str(pidfile), "-qmp",
         f"unix:{sock},server=on,wait=off", "-chroot", str(jail), "-runas", "nobody",
         "-sandbox", "on"], capture_output=True, text=True, timeout=30, preexec_fn=no_core)
    assert launcher.returncode == 0, launcher.stderr
    pid = int(pidfile.read_text())
    try:
        assert os.readlink(f"/proc/{pid}/fd/1") == "/dev/null"
        assert proc_ids(pid)["Uid"] == ["65534"] * 4
        qmp = QMPClient.connect_unix(sock)
        qmp.negotiate()
        assert qmp.cmd("query-status")["status"] == "prelaunch"
        qmp.execute("quit")
        qmp.close()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@needs_kvm
@needs_guest
def test_chardev_socket_fd(tmp_path):
    import socket
    # A listening socket the caller made serves QMP; a connected one carries the serial
    # port.  Sen creates no socket file of its own.
    path = tmp_path / "made-by-caller.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    ours, theirs = socket.socketpair()
    cmd = [SEN, "-M", "pc", "-m", "64M", "-kernel", HELLO, "-append", HELLO_APPEND,
           "-device", "isa-debug-exit", "-display", "none", "-nodefaults", "-S",
           "-chardev", f"socket,id=mon,fd={listener.fileno()},server=on,wait=off",
           "-mon", "chardev=mon,mode=control",
           "-chardev", f"socket,id=ser,fd={theirs.fileno()}", "-serial", "chardev:ser"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            pass_fds=(listener.fileno(), theirs.fileno()), preexec_fn=no_core)
    listener.close()
    theirs.close()
    try:
        qmp = QMPClient.connect_unix(path, wait=20)
        qmp.negotiate()
        chardevs = {c["label"]: c["filename"] for c in qmp.cmd("query-chardev")}
        assert "mon" in chardevs and "ser" in chardevs, chardevs
        qmp.cmd("cont")
        ours.settimeout(30)
        got = b""
        while b"PASS" not in got:
            data = ours.recv(4096)
            assert data, got
            got += data
        qmp.close()
        proc.communicate(timeout=30)
        assert proc.returncode == PASS_STATUS, proc.stderr
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_chardev_socket_fd_errors(tmp_path):
    import socket
    f = open(tmp_path / "plain-file", "w")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "l.sock"))
    listener.listen(1)
    try:
        for arg, msg in [
                (f"socket,id=c,fd={f.fileno()}", f"fd={f.fileno()} is not a stream socket"),
                (f"socket,id=c,fd={listener.fileno()}",
                 f"fd={listener.fileno()} is a listening socket, but server=off"),
                (f"socket,id=c,fd={listener.fileno()},path=/x",
                 "socket takes either fd= or path= or host= and port="),
                ("socket,id=c,fd=999", "fd=999 is not an open descriptor")]:
            done = subprocess.run([SEN, "-chardev", arg], capture_output=True, text=True,
                                  timeout=20, pass_fds=(f.fileno(), listener.fileno()))
            assert done.returncode == 1
            assert f"-chardev {arg}: " in done.stderr and msg in done.stderr, done.stderr
    finally:
        f.close()
        listener.close()


def execute_with_fd(qmp, fd, name, args=None):
    """Sends one command with fd attached (SCM_RIGHTS), as libvirt does; its response."""
    import json
    import socket
    msg = {"execute": name}
    if args:
        msg["arguments"] = args
    socket.send_fds(qmp.sock, [json.dumps(msg).encode() + b"\n"], [fd])
    return qmp.recv_response()


@needs_kvm
@needs_guest
def test_qmp_getfd_closefd_add_fd(tmp_path):
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(1 << 16))
    proc, qmp, _ = start(tmp_path, "-sandbox", "on")
    fd = os.open(image, os.O_RDWR)
    try:
        # Nothing passed: a clear error, for both commands.
        err = qmp.execute("getfd", {"fdname": "mig"})["error"]
        assert err == {"class": "GenericError",
                       "desc": "No file descriptor supplied via SCM_RIGHTS"}, err
        assert "No file descriptor" in qmp.execute("add-fd")["error"]["desc"]
        err = execute_with_fd(qmp, fd, "getfd", {"fdname": "1x"})["error"]
        assert err["desc"] == "Parameter 'fdname' expects a name not starting with a digit"
        # getfd names it; closefd closes it, once.
        assert execute_with_fd(qmp, fd, "getfd", {"fdname": "mig"}) == {"return": {}}
        assert qmp.execute("closefd", {"fdname": "mig"}) == {"return": {}}
        err = qmp.execute("closefd", {"fdname": "mig"})["error"]
        assert err["desc"] == "File descriptor named 'mig' not found", err
        # add-fd: into a new set (the lowest free id), then into a chosen one.
        r = execute_with_fd(qmp, fd, "add-fd", {"opaque": "rw:disk"})["return"]
        assert r["fdset-id"] == 0
        assert os.readlink(f"/proc/{proc.pid}/fd/{r['fd']}") == str(image)
        r2 = execute_with_fd(qmp, fd, "add-fd", {"fdset-id": 7})["return"]
        assert r2["fdset-id"] == 7 and r2["fd"] != r["fd"]
        assert qmp.cmd("query-fdsets") == [
            {"fdset-id": 0, "fds": [{"fd": r["fd"], "opaque": "rw:disk"}]},
            {"fdset-id": 7, "fds": [{"fd": r2["fd"]}]}]
        err = execute_with_fd(qmp, fd, "add-fd", {"fdset-id": -1})["error"]
        assert err["desc"] == "Parameter 'fdset-id' expects a non-negative value"
    finally:
        os.close(fd)
    # All of it under the filter: still alive.
    finish(proc, qmp)
