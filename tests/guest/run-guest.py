#!/usr/bin/python3
"""Runs one guest-kit image under Sen or QEMU and judges it.

A run passes only when the VMM exits with status 33 (the guest wrote 0x10 to
isa-debug-exit), the output has the test's marker lines, a "PASS" line, and no
"FAIL:" line.  Exit codes: 0 pass, 1 fail, 77 skip (no usable /dev/kvm, no QEMU).

    run-guest.py --vmm sen|qemu [--smp N] [--timeout S] [--disk] TEST.elf

--net user gives the guest -netdev user with a UDP hostfwd to its port 7777 and sends
datagrams there, expecting each echoed back, then answers the guest's datagram from its
port 7778 (which must come from 127.0.0.1, not from the rule's port).

--disk creates a raw image for virtio-blk (pre-filled sectors the guest reads), passes it
as -drive ...,if=none,id=d0 -device virtio-blk-pci,drive=d0, and checks its contents
afterwards.  The virtio tests skip under Sen while `sen -device help` lacks their devices.

--disk-bitmaps OUT.json (with --disk) gives the guest that disk as a qcow2 image with
persistent dirty bitmaps (qemu-img bitmap --add) and writes their state afterwards,
QEMU's x-debug-block-dirty-bitmap-sha256 included, to OUT.json: the same guest under
Sen and under QEMU must leave the same bitmaps (tests/functional/test_bitmaps_guest.py).

--disk-datafile (with --disk, Sen only) gives the guest that disk as a qcow2 image whose
data lives in an external data file (made by sen-img convert -o data_file=); afterwards
qemu-img checks it and converts it back to raw for the same content checks.
"""

import argparse
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PASS_STATUS = (0x10 << 1) | 1
FAIL_STATUS = (0x11 << 1) | 1
SKIP = 77
RAM_MB = 64
TOKEN = "0x5e4"
KVM_GET_API_VERSION = 0xAE00
DISK_SECTORS = 16384  # 8 MiB; the guest reads disk_sectors= from the command line
DISK_SERIAL = "sen-guest-disk"
CONSOLE_GREETING = b"hello from virtio-console\n"
FW_CFG_STRING = "fw_cfg works"  # must match fw-cfg.c


SEABIOS = "/usr/share/seabios/bios-256k.bin"


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
    if test == "acpi-s3":
        return ["acpi-s3: entering S3", "acpi-s3: resumed at the waking vector, RAM kept, WAK_STS and the wake source"]
    if test == "reset":
        return ["reset: first boot", "reset: second boot, marker found", "reset ok"]
    if test == "virtio-blk":
        return ["ok: read sector 100: host pattern", "ok: read back sectors 10-17 in two",
                "ok: indirect read back of sectors 40-47", "ok: flush",
                "ok: sectors 300-301 read back as zeroes", "ok: discard sectors 512-519",
                "ok: read of sectors 10-17 on queue 1",
                "ok: read-only disk: sector 0 has the host pattern",
                "ok: read-only disk refuses a write", "virtio-blk ok"]
    if test == "virtio-rng":
        return ["ok: rng filled", "virtio-rng ok"]
    if test == "virtio-span":
        return ["ok: NUMA seam at", "ok: write of sectors 600-607 from a buffer across the seam",
                "ok: read back across the seam intact",
                "ok: read with the request header across the seam", "virtio-span ok"]
    if test == "fw-cfg":
        return ["ok: signature QEMU", "ok: DMA interface advertised",
                "ok: opt/sen/guest by port I/O", "ok: opt/sen/guest by DMA",
                "ok: etc/e820 has RAM 0x0+", "ok: DMA to an address outside RAM",
                "fw-cfg ok"]
    if test == "net-user":
        return ["ok: DHCP gives 10.0.2.15", "ok: ARP reply from 10.0.2.2",
                "ok: ICMP echo reply from 10.0.2.2", "ok: 3 UDP datagrams echoed",
                "ok: datagram from port 7778 sent", "ok: the host answered port 7778",
                "net-user ok"]
    if test == "virtio-console":
        return ["ok: echo came back", "virtio-console ok"]
    if test == "virtio-blk-smp":
        return ["ok: cpu 0: 64 requests on queue 0 ok", "ok: cpu 1: 64 requests on queue 1 ok",
                "ok: each CPU got its queue's interrupts", "virtio-blk-smp ok"]
    if test == "virtio-event-idx":
        return ["ok: NO_INTERRUPT: 3 completions, 0 interrupts",
                "ok: used_event 2: one interrupt for five completions", "virtio-event-idx ok"]
    if test in ("acpi", "acpi-fw-cfg"):
        loader = ["ok: table loader ran: "] if test == "acpi-fw-cfg" else []
        return loader + ["ok: RSDP checksum", "ok: FACP checksum", "ok: DSDT checksum",
                "ok: APIC checksum", "ok: the FADT points at the DSDT",
                "ok: MADT lists %d processors, -smp %d" % (smp, smp),
                "ok: DSDT has \\_S5_", "ok: PM timer runs at 3.579545 MHz", "acpi ok"]
    if test == "pci":
        return ["ok: 00.0 is a host bridge", "ok: absent slot", "ok: capability list:",
                "ok: memory decoding off hides the BAR", "ok: moving BAR", "pci ok"]
    if test == "probe":
        return ["ok: ports 0x4000-0x5fff read all-ones, before and after writes",
                "ok: unmapped MMIO reads nothing and keeps no write",
                "ok: absent PCI functions read all-ones after writes"]
    if test == "virtio-intx":
        return ["ok: INTx arrived on IOAPIC pin", "ok: reading ISR lowered the line",
                "ok: second completion", "virtio-intx ok"]
    if test == "virtio-hostile-blk":
        return ["hostile: read into a read-only buffer:", "hostile: read-only status byte:",
                "hostile: 8-byte request header:", "hostile: read of 100 bytes:",
                "hostile: write at sector 2^62:", "hostile: write across the end of the disk:",
                "ok: the read-only data buffer was not written",
                "ok: nothing written into the rings or buffers after the reset",
                "virtio-hostile-blk ok"]
    if test == "virtio-hostile":
        return ["hostile: looping chain:", "hostile: descriptor outside RAM:",
                "hostile: next beyond the queue size:", "hostile: avail index jump:",
                "hostile: read-only buffer:", "virtio-hostile ok"]
    return []


def guest_pattern(sector, i):
    """Byte i of a guest-written run starting at sector; must match pat() in virtio-blk.c."""
    return (sector * 7 + (i // 512) * 7 + (i % 512) * 13 + 0x21) & 0xFF


def ro_pattern():
    return bytes((i * 5 + 0x3C) & 0xFF for i in range(512))


def span_pattern():
    """What virtio-span.c writes to sectors 600-607 (must match its pat())."""
    return bytes((i * 11 + (i >> 9) * 3 + 0x42) & 0xFF for i in range(4096))


def make_disk(path):
    with open(path + ".ro", "wb") as f:
        f.write(ro_pattern() + bytes(512 * 2047))
    host = bytes((i * 3 + 0x5A) & 0xFF for i in range(512))
    with open(path, "wb") as f:
        f.truncate(DISK_SECTORS * 512)
        f.seek(100 * 512)
        f.write(host)
        f.seek(300 * 512)
        f.write(b"\xee" * 1024)


def check_disk(path, test):
    """Problems with the image after a virtio-blk run (what the guest wrote must be there)."""
    problems = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != DISK_SECTORS * 512:
        problems.append("disk image is %d bytes, want %d" % (len(data), DISK_SECTORS * 512))
        return problems
    if test == "virtio-blk-smp":
        for cpu in (0, 1):
            for k in range(32):
                sector = 2000 + 1000 * cpu + k
                want = bytes((cpu * 0x55 + sector * 3 + i * 7 + 1) & 0xFF for i in range(512))
                if data[sector * 512:(sector + 1) * 512] != want:
                    problems.append("disk sector %d lacks cpu %d's pattern" % (sector, cpu))
                    return problems
        return problems
    if test == "virtio-span":
        got = data[600 * 512:608 * 512]
        if got != span_pattern():
            problems.append("disk sectors 600-607 lack the pattern the guest wrote across "
                            "the NUMA seam")
        return problems
    if test != "virtio-blk":  # hostile: only what must not have changed
        if data[100 * 512:101 * 512] != bytes((i * 3 + 0x5A) & 0xFF for i in range(512)):
            problems.append("disk sector 100 (host pattern) changed")
        if data[1000 * 512:1001 * 512] != bytes((i ^ 0x96) & 0xFF for i in range(512)):
            problems.append("disk sector 1000 lacks what the recovered device wrote")
        return problems
    for first, count in ((0, 1), (10, 8), (40, 8)):
        got = data[first * 512:(first + count) * 512]
        want = bytes(guest_pattern(first, i) for i in range(count * 512))
        if got != want:
            bad = next(i for i in range(len(want)) if got[i] != want[i])
            problems.append("disk sectors %d-%d: byte %d is 0x%02x, want 0x%02x" %
                            (first, first + count - 1, bad, got[bad], want[bad]))
    if data[300 * 512:302 * 512] != bytes(1024):
        problems.append("disk sectors 300-301 are not zero after write-zeroes")
    if data[100 * 512:101 * 512] != bytes((i * 3 + 0x5A) & 0xFF for i in range(512)):
        problems.append("disk sector 100 (host pattern, only read) changed")
    with open(path + ".ro", "rb") as f:
        if f.read() != ro_pattern() + bytes(512 * 2047):
            problems.append("the read-only disk image changed")
    return problems


def sen_devices(sen):
    try:
        out = subprocess.run([sen, "-device", "help"], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=20).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {l.split('"')[1] for l in out.splitlines() if l.startswith('name "')}


def device_args(vmm, test, sen, disk, sock, net=None):
    """-drive/-device/-chardev arguments for the virtio tests (skips when sen lacks them)."""
    need = {"virtio-blk": ["virtio-blk-pci"], "virtio-rng": ["virtio-rng-pci"],
            "virtio-hostile": ["virtio-rng-pci"], "virtio-intx": ["virtio-rng-pci"],
            "pci": ["virtio-rng-pci"], "virtio-event-idx": ["virtio-rng-pci"],
            "virtio-console": ["virtio-serial-pci", "virtconsole"],
            "net-user": ["virtio-net-pci"]}.get(test)
    if disk and "virtio-blk-pci" not in (need or []):
        need = (need or []) + ["virtio-blk-pci"]
    if test == "fw-cfg":
        return ["-fw_cfg", "name=opt/sen/guest,string=" + FW_CFG_STRING]
    if test == "iommu":
        if vmm == "sen" and not {"intel-iommu", "edu"} <= sen_devices(sen):
            skip("sen has no intel-iommu or edu yet (not in `sen -device help`)")
        return ["-device", "intel-iommu,intremap=on", "-device", "edu"]
    if not need:
        return []
    modern = ",disable-legacy=on" if vmm == "qemu" else ""
    console = ["-device", "virtio-serial-pci" + modern, "-device", "virtconsole,chardev=c0"]
    if vmm == "sen":
        have = sen_devices(sen)
        if test == "virtio-console" and "virtio-console-pci" in have and "virtconsole" not in have:
            need = ["virtio-console-pci"]
            console = ["-device", "virtio-console-pci,chardev=c0"]
        missing = [d for d in need if d not in have]
        if missing:
            skip("sen has no %s yet (not in `sen -device help`)" % ", ".join(missing))
    args = []
    if disk:
        args += ["-drive", "file=%s,format=raw,if=none,id=d0" % disk,
                 "-device", "virtio-blk-pci,drive=d0,serial=%s,num-queues=2%s" %
                 (DISK_SERIAL, modern),
                 "-drive", "file=%s.ro,format=raw,if=none,id=d1,readonly=on" % disk,
                 "-device", "virtio-blk-pci,drive=d1,serial=sen-guest-ro%s" % modern]
    if test in ("virtio-rng", "virtio-hostile", "virtio-intx", "pci", "virtio-event-idx"):
        args += ["-device", "virtio-rng-pci" + modern]
    if test == "virtio-console":
        args += ["-chardev", "socket,id=c0,path=%s,server=on,wait=on" % sock] + console
    if net and net["kind"] == "user":
        args += ["-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:%d-:7777" % net["port"],
                 "-device", "virtio-net-pci,netdev=n0" + modern]
    return args


def console_echo(sock, deadline, log):
    """Connects to the VMM's console socket once it exists and echoes what arrives."""
    while time.monotonic() < deadline and not os.path.exists(sock):
        time.sleep(0.05)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(sock)
        c.settimeout(max(1, deadline - time.monotonic()))
        got = b""
        while CONSOLE_GREETING not in got:
            data = c.recv(4096)
            if not data:
                break
            got += data
            c.sendall(data)
        log.append(got)
    except OSError as e:
        log.append(("error", str(e)))
    finally:
        c.close()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def udp_echo_client(port, deadline, log, want=3):
    """Sends numbered datagrams to the hostfwd port until `want` came back unchanged, and
    answers the guest's datagram from another port (log: the echoes, then that datagram's
    source address or None)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    sent, echoed, n, own = set(), set(), 0, None
    try:
        while time.monotonic() < deadline and (len(echoed) < want or own is None):
            if len(echoed) < want:
                msg = b"sen-udp-echo-%d" % n
                n += 1
                s.sendto(msg, ("127.0.0.1", port))
                sent.add(msg)
            try:
                while True:
                    data, src = s.recvfrom(2048)
                    if data == b"sen-own-flow":
                        s.sendto(b"sen-own-reply", src)
                        own = src
                    elif data not in sent:
                        log.append(("error", "echo of something never sent: %r" % data))
                        return
                    else:
                        echoed.add(data)
            except socket.timeout:
                pass
    finally:
        s.close()
    log += [len(echoed), own]


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


def isolation_args(tmp):
    """-sandbox on; as root also drop to nobody in an empty root directory, after Sen
    opened the images and sockets in tmp (which nobody could not open itself)."""
    args = ["-sandbox", "on"]
    if os.geteuid() == 0:
        jail = os.path.join(tmp, "jail")
        os.mkdir(jail, 0o755)
        args += ["-runas", "nobody", "-chroot", jail]
    else:
        print("note: not root, so -sandbox on only (no -runas/-chroot)")
    return args


def vmm_command(vmm, image, smp, test, disk=None, sock=None, sen_args=(), net=None,
                machine_type="pc"):
    if test == "iommu":
        # VT-d lives on q35; interrupt remapping needs the IOAPIC outside KVM.
        machine_type = "q35,kernel-irqchip=split"
    append = "cpus=%d ram_mb=%d token=%s" % (smp, RAM_MB, TOKEN)
    if disk:
        append += " disk_sectors=%d" % DISK_SECTORS
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
        return [sen, "-M", machine_type, "-m", "%dM" % RAM_MB, "-smp", str(smp),
                "-kernel", image, "-append", append, "-device", "isa-debug-exit",
                "-nographic", "-nodefaults", "-serial", "stdio"] + reboot + \
            device_args(vmm, test, sen, disk, sock, net) + list(sen_args)
    qemu = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
    if not qemu:
        skip("%s is not installed (set QEMU= to point at one)" %
             (os.environ.get("QEMU") or "qemu-system-x86_64"))
    # qboot starts a -kernel image in ~0.1 s and still has RTC, i8042 and the IOAPIC;
    # SeaBIOS takes ~3 s under this host's emulated CPL0.  microvm has no RTC/i8042.
    machine = ["-M", machine_type]
    if test == "acpi-s3":
        # Resuming from S3 is the firmware's job under QEMU; qboot does not resume.
        if not os.path.exists(SEABIOS):
            skip("QEMU needs SeaBIOS (%s) to resume from S3" % SEABIOS)
        machine += ["-bios", SEABIOS]
    elif os.path.exists("/usr/share/qemu/qboot.rom"):
        machine += ["-bios", "/usr/share/qemu/qboot.rom"]
    return [qemu, "-enable-kvm", "-cpu", "host,-arch-capabilities"] + machine + [
        "-m", "%dM" % RAM_MB, "-smp", str(smp), "-kernel", image, "-append", append,
        "-device", "isa-debug-exit", "-display", "none", "-serial", "stdio",
        "-nodefaults"] + reboot + device_args(vmm, test, None, disk, sock, net)


def tools():
    build = os.environ.get("SEN_BUILD_DIR", "")
    sen_img = os.path.join(build, "tools", "img", "sen-img")
    qemu_img = shutil.which("qemu-img")
    if not build or not os.path.exists(sen_img):
        skip("no sen-img (SEN_BUILD_DIR unset or not built)")
    if not qemu_img:
        skip("qemu-img (Debian qemu-utils) is not installed: it checks the data-file image")
    return sen_img, qemu_img


def point_drive_at_qcow2(cmd, disk, qcow2, what):
    """Points the raw -drive of --disk in cmd at the qcow2 image made from it."""
    out = [a.replace("file=%s,format=raw," % disk, "file=%s,format=qcow2," % qcow2)
           for a in cmd]
    if out == cmd:
        print("FAIL: no -drive file=%s to replace by %s" % (disk, what))
        sys.exit(1)
    cmd[:] = out


def use_datafile_disk(cmd, disk):
    """Turns the raw --disk into a qcow2 image with an external data file and points the
    -drive at it.  Returns the qcow2 image's path."""
    sen_img, _ = tools()
    qcow2 = disk + ".qcow2"
    subprocess.run([sen_img, "convert", "-O", "qcow2", "-o", "data_file=disk.data", disk,
                    qcow2], check=True)
    point_drive_at_qcow2(cmd, disk, qcow2, "a data-file image")
    return qcow2


BITMAPS = (("b0", []), ("b1", ["-g", "512"]), ("b2", ["-g", "1M"]), ("b3", ["--disable"]))


def use_bitmaps_disk(cmd, disk):
    """Turns the raw --disk into a qcow2 image (qemu-img) with persistent dirty bitmaps
    of several granularities, one disabled, and points the -drive at it.  Returns the
    qcow2 image's path."""
    _, qemu_img = tools()
    qcow2 = disk + ".qcow2"
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", disk, qcow2], check=True)
    shutil.copy(disk, disk + ".before")
    for name, opts in BITMAPS:
        subprocess.run([qemu_img, "bitmap", "--add"] + opts + [qcow2, name], check=True)
    point_drive_at_qcow2(cmd, disk, qcow2, "a qcow2 image")
    return qcow2


def bitmaps_disk_back_to_raw(qcow2, disk, out_json):
    """qemu-img checks the image; QEMU (-M none, read-only) reports each bitmap's state
    and hash into out_json; the guest view goes back over the raw disk."""
    _, qemu_img = tools()
    r = subprocess.run([qemu_img, "check", qcow2], capture_output=True, text=True)
    if r.returncode:
        return ["qemu-img check of the bitmaps image failed: " + r.stdout + r.stderr]
    qemu = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
    cmds = [{"execute": "qmp_capabilities"}, {"execute": "query-named-block-nodes"}]
    cmds += [{"execute": "x-debug-block-dirty-bitmap-sha256",
              "arguments": {"node": "n0", "name": n}} for n, _ in BITMAPS]
    cmds.append({"execute": "quit"})
    r = subprocess.run([qemu, "-M", "none", "-nodefaults", "-display", "none", "-qmp",
                        "stdio", "-blockdev", "driver=qcow2,node-name=n0,read-only=on,"
                        "file.driver=file,file.filename=%s" % qcow2],
                       input="\n".join(json.dumps(c) for c in cmds) + "\n",
                       capture_output=True, text=True, timeout=60)
    replies = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    replies = [x for x in replies if "return" in x or "error" in x]
    if len(replies) != len(cmds):
        return ["QEMU could not read the bitmaps: " + r.stdout + r.stderr]
    state = {}
    for b in replies[1]["return"][0].get("dirty-bitmaps", []):
        state[b["name"]] = dict(b)
    for (name, _), x in zip(BITMAPS, replies[2:]):
        if name in state:
            state[name]["sha256"] = x.get("return", {}).get("sha256")
    subprocess.run([qemu_img, "convert", "-O", "raw", qcow2, disk], check=True)
    # The 512-byte sectors whose content changed, and the granules b1 (512 B) has dirty.
    with open(disk + ".before", "rb") as f:
        before = f.read()
    with open(disk, "rb") as f:
        after = f.read()
    state["changed-sectors"] = [i for i in range(len(after) // 512)
                                if before[i * 512:i * 512 + 512] != after[i * 512:i * 512 + 512]]
    state["b1-dirty-sectors"] = bitmap_bits(qcow2, "b1")
    with open(out_json, "w") as f:
        json.dump(state, f, sort_keys=True)
    return []


def bitmap_bits(path, name):
    """The dirty granules of bitmap `name`, read from the image itself (qcow2.txt's
    bitmap directory, table and data clusters: bit j of byte i is granule 8 i + j)."""
    with open(path, "rb") as f:
        data = f.read()
    cluster = 1 << struct.unpack(">I", data[20:24])[0]
    at = struct.unpack(">I", data[100:104])[0]
    while True:
        typ, ln = struct.unpack(">II", data[at:at + 8])
        if typ == 0:
            return None
        if typ == 0x23852875:
            nb, _, _, pos = struct.unpack(">IIQQ", data[at + 8:at + 32])
            break
        at += 8 + ((ln + 7) & ~7)
    for _ in range(nb):
        toff, tsize, flags, _, _, nsize, esize = struct.unpack(">QIIBBHI", data[pos:pos + 24])
        if data[pos + 24 + esize:pos + 24 + esize + nsize].decode() == name:
            out = []
            for i in range(tsize):
                e = struct.unpack(">Q", data[toff + 8 * i:toff + 8 * i + 8])[0]
                off = e & 0x00fffffffffffe00
                if not off:
                    continue
                for j, byte in enumerate(data[off:off + cluster]):
                    out += [(i * cluster + j) * 8 + k for k in range(8) if byte >> k & 1]
            return out
        pos += (24 + esize + nsize + 7) & ~7
    return None


def use_numa(cmd):
    """Guest RAM as two NUMA nodes' memdevs of RAM_MB/2 each, end to end: the VMM's RAM has
    a seam in the middle, which the guest is told as seam_mb= (virtio-span.c)."""
    half = RAM_MB // 2
    i = cmd.index("-append")
    cmd[i + 1] += " seam_mb=%d" % half
    cmd += ["-object", "memory-backend-ram,id=m0,size=%dM" % half,
            "-object", "memory-backend-ram,id=m1,size=%dM" % half,
            "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"]


def use_iothread(cmd):
    """Gives every virtio-blk-pci an I/O thread (-object iothread, iothread=), as Sen and
    QEMU both spell it."""
    out = [a + ",iothread=io0" if a.startswith("virtio-blk-pci,") else a for a in cmd]
    if out == cmd:
        print("FAIL: no -device virtio-blk-pci to give an iothread")
        sys.exit(1)
    cmd[:] = out + ["-object", "iothread,id=io0"]


def datafile_disk_back_to_raw(qcow2, disk):
    """qemu-img (the oracle) checks the image and writes its guest view over the raw disk."""
    _, qemu_img = tools()
    # qemu-img 7.2 resolves the data file name against its current directory.
    where = os.path.dirname(qcow2)
    r = subprocess.run([qemu_img, "check", qcow2], capture_output=True, text=True, cwd=where)
    if r.returncode:
        return ["qemu-img check of the data-file image failed: " + r.stdout + r.stderr]
    subprocess.run([qemu_img, "convert", "-O", "raw", qcow2, disk], check=True, cwd=where)
    return []


def pass_disks_as_fds(cmd, disk):
    """Rewrites the -drive file= of the disks to /dev/fdset/N and adds -add-fd for
    descriptors opened here: Sen then opens no image by path.  Returns the fds to pass."""
    rw = os.open(disk, os.O_RDWR)
    ro = os.open(disk + ".ro", os.O_RDONLY)
    out = []
    for a in cmd:
        a = a.replace("file=%s.ro," % disk, "file=/dev/fdset/2,")
        out.append(a.replace("file=%s," % disk, "file=/dev/fdset/1,"))
    if out == cmd:
        print("FAIL: no -drive file=%s to pass as a descriptor" % disk)
        sys.exit(1)
    cmd[:] = out + ["-add-fd", "fd=%d,set=1,opaque=rw" % rw,
                    "-add-fd", "fd=%d,set=2,opaque=ro" % ro]
    return [rw, ro]


def run(cmd, timeout, test, pass_fds=()):
    """Runs cmd; returns (status or None on timeout/abort, output lines, why aborted)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            pass_fds=pass_fds,
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
    ap.add_argument("--disk", action="store_true", help="attach a checked virtio-blk image")
    ap.add_argument("--isolate", action="store_true",
                    help="run sen under -sandbox on, and as root also -runas nobody and "
                         "-chroot into an empty directory (docs/security.md)")
    ap.add_argument("--fdpass", action="store_true",
                    help="pass the --disk images to sen as descriptors (-add-fd, /dev/fdset)")
    ap.add_argument("--disk-datafile", action="store_true",
                    help="give the --disk as qcow2 with an external data file (Sen only)")
    ap.add_argument("--disk-bitmaps", metavar="OUT.json",
                    help="give the --disk as qcow2 with persistent dirty bitmaps and write "
                         "their state afterwards (QEMU's hashes) to OUT.json")
    ap.add_argument("--net", choices=["user"], help="attach virtio-net on this backend")
    ap.add_argument("--iothread", action="store_true",
                    help="run the virtio-blk devices on an I/O thread (iothread=)")
    ap.add_argument("--numa", action="store_true",
                    help="guest RAM as two NUMA nodes' memory backends, end to end")
    ap.add_argument("--machine", default="pc",
                    help="-M value for both VMMs (e.g. q35,kernel-irqchip=split)")
    ap.add_argument("image")
    args = ap.parse_args()

    test = os.path.basename(args.image)
    if test.endswith(".elf"):
        test = test[:-4]
    if not os.path.exists(args.image):
        print("FAIL: no image %s" % args.image)
        return 1
    check_kvm()
    with tempfile.TemporaryDirectory(prefix="sen-guest-") as tmp:
        disk = os.path.join(tmp, "disk.raw") if args.disk else None
        sock = os.path.join(tmp, "console.sock")
        if disk:
            make_disk(disk)
        sen_args = isolation_args(tmp) if args.isolate and args.vmm == "sen" else ()
        net = {"kind": args.net, "port": free_udp_port()} if args.net else None
        cmd = vmm_command(args.vmm, args.image, args.smp, test, disk, sock, sen_args, net,
                          args.machine)
        fds = pass_disks_as_fds(cmd, disk) if args.fdpass and disk else []
        qcow2 = use_datafile_disk(cmd, disk) if args.disk_datafile and disk else None
        bitmaps = use_bitmaps_disk(cmd, disk) if args.disk_bitmaps and disk else None
        if args.iothread:
            use_iothread(cmd)
        if args.numa:
            use_numa(cmd)
        print("running: " + shlex.join(cmd), flush=True)
        echo_log = []
        echo = None
        if test == "virtio-console":
            echo = threading.Thread(target=console_echo, daemon=True,
                                    args=(sock, time.monotonic() + args.timeout, echo_log))
            echo.start()
        udp_log = []
        udp = None
        if net:
            udp = threading.Thread(target=udp_echo_client, daemon=True,
                                   args=(net["port"], time.monotonic() + args.timeout, udp_log))
            udp.start()
        start = time.monotonic()
        status, lines, abort = run(cmd, args.timeout, test, fds)
        for fd in fds:
            os.close(fd)
        elapsed = time.monotonic() - start
        problems = list(abort)
        if echo:
            echo.join(5)
            got = echo_log[0] if echo_log else b""
            if not isinstance(got, bytes) or CONSOLE_GREETING not in got:
                problems.append("the console socket did not receive %r (got %r)" %
                                (CONSOLE_GREETING, got))
        if udp:
            udp.join(5)
            got = udp_log[0] if udp_log else None
            if got != 3:
                problems.append("the host got %r UDP echoes back through hostfwd, want 3" %
                                (got,))
            own = udp_log[1] if len(udp_log) > 1 else None
            # From the host's loopback, and not from the rule's port: a socket of its own.
            if not (isinstance(own, tuple) and own[0] == "127.0.0.1" and
                    own[1] != net["port"]):
                problems.append("the guest's datagram from port 7778 came as %r, want from "
                                "127.0.0.1 and not port %d" % (own, net["port"]))
        if qcow2 and not abort:
            problems += datafile_disk_back_to_raw(qcow2, disk)
        if bitmaps and not abort:
            problems += bitmaps_disk_back_to_raw(bitmaps, disk, args.disk_bitmaps)
        if disk:
            problems += check_disk(disk, test)

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
