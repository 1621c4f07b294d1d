#!/usr/bin/python3
"""Runs one guest-kit image under Sen or QEMU and judges it.

A run passes only when the VMM exits with status 33 (the guest wrote 0x10 to
isa-debug-exit), the output has the test's marker lines, a "PASS" line, and no
"FAIL:" line.  Exit codes: 0 pass, 1 fail, 77 skip (no usable /dev/kvm, no QEMU).

    run-guest.py --vmm sen|qemu [--smp N] [--timeout S] TEST.elf
"""

import argparse
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

PASS_STATUS = (0x10 << 1) | 1
FAIL_STATUS = (0x11 << 1) | 1
SKIP = 77
RAM_MB = 64
TOKEN = "0x5e4"
KVM_GET_API_VERSION = 0xAE00


def expected_lines(test, smp):
    """Lines the guest must print, beyond PASS; they prove the check really ran."""
    if test == "hello":
        return ["Hello from the Sen guest kit", "boot protocol: ",
                "ok: command line token=0x5e4 arrived intact"]
    if test == "hello-pvh":
        return ["Hello from the Sen guest kit", "boot protocol: PVH",
                "ok: command line token=0x5e4 arrived intact"]
    if test == "smp":
        return ["cpu %d (apic id " % i for i in range(smp)] + ["smp ok: %d cpus" % smp]
    if test == "timer":
        return ["ok: one-shot fired exactly once", "ok: 10 periodic ticks", "timer ok"]
    if test == "serial-irq":
        return ["ok: IIR in the handler shows THRE", "ok: a transmitted byte raised THRE again",
                "serial irq ok"]
    if test == "reset":
        return ["reset: first boot", "reset: second boot, marker found", "reset ok"]
    return []


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def check_kvm():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        skip("/dev/kvm is not usable: %s" % e.strerror)
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        skip("/dev/kvm does not answer KVM_GET_API_VERSION: %s" % e.strerror)
    finally:
        os.close(fd)
    if version != 12:
        skip("/dev/kvm has KVM API version %d, not 12" % version)


def vmm_command(vmm, image, smp, test):
    append = "cpus=%d ram_mb=%d token=%s" % (smp, RAM_MB, TOKEN)
    reboot = [] if test == "reset" else ["-no-reboot"]
    if vmm == "sen":
        build = os.environ.get("SEN_BUILD_DIR")
        if not build:
            print("FAIL: SEN_BUILD_DIR is not set; cannot find sen")
            sys.exit(1)
        sen = os.path.join(build, "sen")
        if not os.access(sen, os.X_OK):
            print("FAIL: %s does not exist or is not executable" % sen)
            sys.exit(1)
        return [sen, "-M", "pc", "-m", "%dM" % RAM_MB, "-smp", str(smp),
                "-kernel", image, "-append", append, "-device", "isa-debug-exit",
                "-nographic", "-nodefaults", "-serial", "stdio"] + reboot
    qemu = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
    if not qemu:
        skip("%s is not installed (set QEMU= to point at one)" %
             (os.environ.get("QEMU") or "qemu-system-x86_64"))
    # qboot starts a -kernel image in ~0.1 s and still has RTC, i8042 and the IOAPIC;
    # SeaBIOS takes ~3 s under this host's emulated CPL0.  microvm has no RTC/i8042.
    machine = ["-M", "pc"]
    if os.path.exists("/usr/share/qemu/qboot.rom"):
        machine += ["-bios", "/usr/share/qemu/qboot.rom"]
    return [qemu, "-enable-kvm", "-cpu", "host,-arch-capabilities"] + machine + [
        "-m", "%dM" % RAM_MB, "-smp", str(smp), "-kernel", image, "-append", append,
        "-device", "isa-debug-exit", "-display", "none", "-serial", "stdio",
        "-nodefaults"] + reboot


def run(cmd, timeout, test):
    """Runs cmd; returns (status or None on timeout/abort, output lines, why aborted)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    abort = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", "")
            lines.append(line)
            print(line, flush=True)
            # A reset that loses CMOS would loop forever: stop at the second first boot.
            if test == "reset" and sum(l.startswith("reset: first boot") for l in lines) > 1:
                abort.append("the guest booted a second time without the CMOS marker")
                os.killpg(proc.pid, signal.SIGKILL)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        abort.append("timed out after %d s" % timeout)
        status = None
    t.join(5)
    if abort:
        status = None
    return status, lines, abort


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmm", choices=["sen", "qemu"], required=True)
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("image")
    args = ap.parse_args()

    test = os.path.basename(args.image)
    if test.endswith(".elf"):
        test = test[:-4]
    if not os.path.exists(args.image):
        print("FAIL: no image %s" % args.image)
        return 1
    check_kvm()
    cmd = vmm_command(args.vmm, args.image, args.smp, test)
    print("running: " + shlex.join(cmd), flush=True)
    start = time.monotonic()
    status, lines, abort = run(cmd, args.timeout, test)
    elapsed = time.monotonic() - start

    problems = list(abort)
    if status is not None and status != PASS_STATUS:
        what = {FAIL_STATUS: "the guest failed",
                0: "the VMM exited normally: the guest never reached isa-debug-exit"}
        problems.append("exit status %d (%s), want %d" %
                        (status, what.get(status, "unexpected"), PASS_STATUS))
    for want in expected_lines(test, args.smp) + ["PASS"]:
        if not any(l.startswith(want) for l in lines):
            problems.append("missing output line starting with %r" % want)
    for l in lines:
        if l.startswith("FAIL:"):
            problems.append("guest reported: " + l)
    if problems:
        for p in problems:
            print("FAIL: %s (%s under %s, %.1f s)" % (p, test, args.vmm, elapsed))
        return 1
    print("ok: %s passed under %s in %.1f s" % (test, args.vmm, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
