"""Bad command lines: sen exits 1 with one line "sen: <option value>: <why>" on stderr.

Each case also checks that nothing was written to stdout and that no file appeared (the
process runs in an empty scratch directory, and every path a case names lies in it), so a
pidfile, a serial log or a socket is never created for a command line that is rejected.
"""
import os
import subprocess

import pytest

BUILD_DIR = os.environ.get("SEN_BUILD_DIR", "")
SEN = os.path.join(BUILD_DIR, "sen")

# (argv, text the single stderr line must contain).  {d} is the scratch directory,
# {f} an existing readable file outside it.
CASES = [
    (["-foo"], "-foo: invalid option"),
    (["--bar"], "--bar: invalid option"),
    (["disk.img"], "disk.img"),
    (["-drive", "file=x.img,if=ide"], "-drive file=x.img,if=ide: if=ide is not supported"),
    (["-net", "nic"], "-net: option not supported by Sen yet"),
    (["-m"], "-m: requires an argument"),
    (["-m", "12Q"], "-m 12Q: invalid size '12Q'"),
    (["-m", "-1"], "-m -1: invalid size"),
    (["-m", "0"], "-m 0: "),
    (["-m", "8P"], "-m 8P: "),
    (["-m", "99999999999999999999999"], "-m 99999999999999999999999: invalid size"),
    (["-m", "1G,maxmem=4G"], "-m 1G,maxmem=4G: memory hotplug is not supported yet"),
    (["-smp", "0"], "-smp 0: Invalid SMP CPUs 0"),
    (["-smp", "two"], "-smp two: cpus=two"),
    (["-smp", "4,sockets=3"], "-smp 4,sockets=3: Invalid CPU topology: product of the "
                              "hierarchy must match maxcpus"),
    (["-smp", "4,maxcpus=2"], "-smp 4,maxcpus=2: Invalid CPU topology"),
    (["-smp", "2000"], "-smp 2000: Invalid SMP CPUs 2000"),
    (["-smp", "2,bogus=1"], "-smp 2,bogus=1: invalid parameter 'bogus'"),
    (["-machine", "microvm"], "-machine microvm: unsupported machine type 'microvm'"),
    (["-M", "pc,usb=off"], "-M pc,usb=off: invalid parameter 'usb'"),
    (["-cpu", "pentium9"], "-cpu pentium9: unable to find CPU model 'pentium9'"),
    (["-cpu", "qemu64,+warp-drive"], "-cpu qemu64,+warp-drive: Property 'warp-drive' not found"),
    (["-global", "kvm-pit.lost_tick_policy=slew"], "-global kvm-pit.lost_tick_policy=slew: "),
    (["-global", "nodev.prop=1"], "-global nodev.prop=1: 'nodev' is not a valid device model"),
    (["-accel", "tcg"], "-accel tcg: accelerator 'tcg' is not supported"),
    (["-accel", "kvm,dirty-ring-size=3"],
     "-accel kvm,dirty-ring-size=3: dirty-ring-size must be a power of two."),
    (["-accel", "kvm,dirty-ring-size=-1"],
     "-accel kvm,dirty-ring-size=-1: Parameter 'dirty-ring-size' expects uint32_t"),
    (["-kernel", "/nonexistent/vmlinuz"],
     "-kernel /nonexistent/vmlinuz: could not load kernel '/nonexistent/vmlinuz': "
     "No such file or directory"),
    (["-kernel", "{f}", "-initrd", "{f} arg,/nonexistent/mod"], "'/nonexistent/mod'"),
    (["-initrd", "{f}"], "-initrd {f}: -initrd only allowed with -kernel option"),
    (["-append", "console=ttyS0"], "-append console=ttyS0: -append only allowed with -kernel"),
    (["-display", "gtk"], "-display gtk: Display 'gtk' is not available in Sen"),
    (["-serial", "vc"], "-serial vc: "),
    (["-serial", "chardev:nope"], "-serial chardev:nope: chardev 'nope' not found"),
    (["-chardev", "socket,id=s0"], "-chardev socket,id=s0: "),
    (["-chardev", "file,id=f0"], "-chardev file,id=f0: "),
    (["-chardev", "stdio"], "-chardev stdio: Parameter 'id' is missing"),
    (["-chardev", "pty,id=p0"], "-chardev pty,id=p0: "),
    (["-chardev", "null,id=a", "-chardev", "null,id=a"], "Duplicate ID 'a' for chardev"),
    (["-chardev", "stdio,id=c0", "-serial", "stdio"],
     "-serial stdio: cannot use stdio by multiple character devices"),
    (["-daemonize", "-nographic"], "-nographic cannot be used with -daemonize"),
    (["-daemonize", "-serial", "stdio"], "-serial stdio: cannot use stdio with -daemonize"),
    (["-device", "foo"], "-device foo: 'foo' is not a valid device model name"),
    (["-device", "iobase=0xf4"], "-device iobase=0xf4: "),
    # Rejected by the device registry when the machine is built; -nodefaults so that no
    # chardev exists yet either.
    (["-nodefaults", "-device", "isa-debug-exit,foo=1"],
     "-device isa-debug-exit,foo=1: "),
    (["-nodefaults", "-device", "isa-debug-exit,iobase=zz"],
     "-device isa-debug-exit,iobase=zz: "),
    (["-name", "guest=x,debug-threads=maybe"], "-name guest=x,debug-threads=maybe: "),
    (["-qtest-log", "{d}/qtest.log"], "-qtest-log"),
    # A valid option that would write a file, then a bad one: nothing may be written.
    (["-pidfile", "{d}/sen.pid", "-m", "12Q"], "-m 12Q: invalid size '12Q'"),
    (["-pidfile", "{d}/sen.pid", "-daemonize", "-foo"], "-foo: invalid option"),
    (["-serial", "file:{d}/com1.log", "-smp", "0"], "-smp 0: Invalid SMP CPUs 0"),
    (["-chardev", "socket,id=m,path={d}/m.sock,server=on,wait=off", "-bogus"],
     "-bogus: invalid option"),
    (["-qtest", "unix:{d}/q.sock", "-display", "sdl"], "-display sdl: "),
    (["-bios", "{d}/missing.bin"],
     "-bios {d}/missing.bin: could not load PC BIOS '{d}/missing.bin': No such file"),
    (["-bios", "no-such-bios.bin"], "could not load PC BIOS 'no-such-bios.bin'"),
    (["-bios", "{f}"], "-bios {f}: could not load PC BIOS '{f}': its size (512 bytes) must"),
    # -bios with -kernel: the firmware loads the kernel (docs/firmware.md), if it can.
    (["-bios", "bios-256k.bin", "-kernel", "{f}"],
     "could not load kernel '{f}': with -bios, Sen boots a Linux bzImage or a multiboot"),
    (["-boot", "order=x"], "-boot order=x: Invalid boot device 'x'"),
    (["-boot", "order=e"], "-boot order=e: Invalid boot device for PC: 'e'"),
    (["-boot", "cc"], "-boot cc: Boot device 'c' was given twice"),
    (["-boot", "order=cdna"], "-boot order=cdna: Too many boot devices for PC"),
    (["-boot", "order=c,menu=maybe"], "-boot order=c,menu=maybe: "),
    (["-boot", "reboot-timeout=70000"], "reboot-timeout=70000: must be a number of "
                                        "milliseconds from 0 to 65535"),
    (["-boot", "once=d"], "-boot once=d: once= is not supported by Sen yet"),
    (["-boot", "c,bogus=1"], "-boot c,bogus=1: invalid parameter 'bogus'"),
    (["-object", "iothread"], "-object iothread: Parameter 'id' is missing"),
    (["-object", "iothread,id=io0,poll-max-ns=0"],
     "-object iothread,id=io0,poll-max-ns=0: invalid parameter 'poll-max-ns'"),
    (["-object", "iothread,id=io0", "-object", "iothread,id=io0"],
     "-object iothread,id=io0: attempt to add duplicate property 'io0'"),
    (["-nodefaults", "-drive", "file={f},format=raw,if=none,id=a,readonly=on",
      "-device", "virtio-blk-pci,drive=a,iothread=nope"],
     "-device virtio-blk-pci,drive=a,iothread=nope: iothread=nope: no -object iothread "
     "with that id"),
    (["-nodefaults", "-device", "virtio-rng-pci,bootindex=1"],
     "-device virtio-rng-pci,bootindex=1: property 'bootindex' not found"),
    (["-nodefaults", "-drive", "file={f},format=raw,if=none,id=a,readonly=on",
      "-device", "virtio-blk-pci,drive=a,bootindex=x"],
     "-device virtio-blk-pci,drive=a,bootindex=x: property 'bootindex': 'x' is not a valid "
     "integer"),
    (["-nodefaults", "-drive", "file={f},format=raw,if=none,id=a,readonly=on",
      "-drive", "file={f},format=raw,if=none,id=b,readonly=on",
      "-device", "virtio-blk-pci,drive=a,bootindex=1",
      "-device", "virtio-blk-pci,drive=b,bootindex=1"],
     "-device virtio-blk-pci,drive=b,bootindex=1: The bootindex 1 has already been used"),
    (["-fw_cfg", "name=opt/x"], "-fw_cfg name=opt/x: name, plus exactly one of file, "
                                "string and gen_id, are needed"),
    (["-fw_cfg", "opt/x,string=a,file={f}"], "are needed"),
    (["-fw_cfg", "file={f}"], "-fw_cfg file={f}: name, plus exactly one of"),
    (["-fw_cfg", "opt/x,file={d}/missing"],
     "-fw_cfg opt/x,file={d}/missing: can't load {d}/missing: No such file or directory"),
    (["-fw_cfg", "opt/" + "x" * 52 + ",string=a"], "name too long (max. 55 char)"),
    (["-fw_cfg", "opt/x,string=a", "-fw_cfg", "opt/x,string=b"],
     "-fw_cfg opt/x,string=b: duplicate fw_cfg file name: opt/x"),
    (["-fw_cfg", "opt/x,string=a,bogus=1"], "-fw_cfg opt/x,string=a,bogus=1: invalid "
                                            "parameter 'bogus'"),
]


@pytest.fixture(scope="module")
def sen():
    if not BUILD_DIR:
        pytest.skip("SEN_BUILD_DIR is not set (run through meson test)")
    if not os.access(SEN, os.X_OK):
        pytest.skip(f"{SEN} is not built yet")
    return SEN


@pytest.fixture(scope="module")
def readable_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("input") / "kernel"
    path.write_bytes(b"\0" * 512)
    return str(path)


@pytest.mark.parametrize("argv,expect", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_command_line(sen, readable_file, tmp_path, argv, expect):
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def fill(s):
        return s.replace("{d}", str(scratch)).replace("{f}", readable_file)

    argv = [fill(a) for a in argv]
    expect = fill(expect)
    proc = subprocess.run([sen] + argv, cwd=scratch, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")

    assert proc.returncode == 1, f"exit status {proc.returncode}, stderr: {stderr!r}"
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and stderr.endswith("\n"), f"stderr: {stderr!r}"
    assert lines[0].startswith("sen: "), lines[0]
    assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"
    assert sorted(os.listdir(scratch)) == [], "a rejected command line created files"


def host_dirty_ring_max_entries():
    """What KVM_CHECK_EXTENSION(KVM_CAP_DIRTY_LOG_RING) reports, in 16-byte entries."""
    import fcntl
    try:
        with open("/dev/kvm", "rb") as kvm:
            return fcntl.ioctl(kvm.fileno(), 0xAE03, 192) // 16
    except OSError:
        return 0


@pytest.mark.parametrize("size,expect", [
    (16, "-accel kvm,dirty-ring-size=16: Enabling of KVM dirty ring failed: Invalid "
         "argument. Suggested minimum value is 1024."),
    ("twice-max", "too big (maximum is {max}).  Please use a smaller value."),
])
def test_dirty_ring_size_beyond_kvm_limits(sen, tmp_path, size, expect):
    """Sizes only KVM can judge: refused when the VM is created, with QEMU's message."""
    max_entries = host_dirty_ring_max_entries()
    if not max_entries:
        pytest.skip("no usable /dev/kvm with KVM_CAP_DIRTY_LOG_RING here")
    if size == "twice-max":
        size = 2 * max_entries
    proc = subprocess.run([sen, "-accel", f"kvm,dirty-ring-size={size}", "-display", "none",
                           "-nodefaults"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, stderr
    assert stderr.startswith(f"sen: -accel kvm,dirty-ring-size={size}: "), stderr
    assert expect.format(max=max_entries) in stderr, stderr
