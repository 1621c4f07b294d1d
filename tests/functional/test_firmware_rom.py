"""Option ROMs (-option-rom): SeaBIOS finds the image in fw_cfg as genroms/<name> and runs
it, under Sen and under QEMU 7.2 with the same command line; bad ROMs are refused with an
error naming the file.  A PCI device's romfile= ROM runs the same way from the device's
expansion ROM BAR (and, with rombar=0, from fw_cfg).

The ROM is built here: 0x55 0xAA, its size in 512-byte blocks, then (offset 3) real-mode
code that prints a line on COM1 and writes 0x10 to isa-debug-exit (exit status 33), and a
last byte that makes the 512 bytes sum to 0.  SeaBIOS calls a ROM without a PnP header as
a boot connection vector just before booting, so one boot takes ~3-6 s on this host
(SeaBIOS runs emulated) and a few seconds less on hardware.
"""
import os
import shutil
import subprocess

import pytest

BUILD = os.environ.get("SEN_BUILD_DIR", "build")
SEN = os.path.join(BUILD, "sen")
SEABIOS = "/usr/share/seabios/bios-256k.bin"
QEMU = shutil.which(os.environ.get("QEMU") or "qemu-system-x86_64")
TIMEOUT = 90
MARK = b"option rom: init entry ran"
COM1, DEBUG_EXIT = 0x3F8, 0x501

needs_sen = pytest.mark.skipif(not os.access(SEN, os.X_OK), reason=f"{SEN} is not built")
needs_boot = [
    pytest.mark.skipif(not os.path.exists(SEABIOS),
                       reason=f"{SEABIOS} is missing (Debian package seabios)"),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="/dev/kvm is not usable here"),
]


def option_rom(blocks=1, checksum=True):
    """A legacy option ROM of `blocks` 512-byte blocks whose init entry prints MARK."""
    code = bytearray(b"\x55\xaa" + bytes([blocks]))
    code += bytes([0xBA]) + COM1.to_bytes(2, "little")            # mov dx, COM1
    # SeaBIOS's serial console (sercon) swallows the first byte into its screen copy.
    for c in b"\r\n" + MARK + b"\r\n":
        code += bytes([0xB0, c, 0xEE])                            # mov al, c; out dx, al
    code += bytes([0xB0, 0x10, 0xBA]) + DEBUG_EXIT.to_bytes(2, "little")
    code += bytes([0xEE, 0xCB])                                   # out dx, al; retf
    code += bytes(blocks * 512 - len(code))
    if checksum:
        code[-1] = (-sum(code)) & 0xFF
    assert sum(code) % 256 == 0 or not checksum
    return bytes(code)


def pci_option_rom(vendor, device):
    """A PCI expansion ROM for vendor:device: the same init code, reached by a short jump
    so that the header's PCI data structure pointer (offset 0x18) and "PCIR" fit."""
    body = bytearray(option_rom())[3:-1]       # the init code, without header and checksum
    code = bytearray(b"\x55\xaa\x01")
    code += bytes([0xEB, 0x40 - 5])            # jmp short 0x40
    code += bytes(0x18 - len(code))
    code += (0x1C).to_bytes(2, "little")       # where the PCI data structure is
    code += bytes(0x1C - len(code))
    code += (b"PCIR" + vendor.to_bytes(2, "little") + device.to_bytes(2, "little")
             + bytes(2) + (0x18).to_bytes(2, "little") + bytes([0])
             + bytes([0, 0, 0xFF])             # class code: unclassified device
             + (1).to_bytes(2, "little")       # image length: one 512-byte block
             + bytes(2) + bytes([0, 0x80]) + bytes(2))  # x86 code, last image
    code += bytes(0x40 - len(code))
    code += body[:512 - 0x40 - 1].rstrip(b"\0")
    code += bytes(511 - len(code))
    code.append((-sum(code)) & 0xFF)
    return bytes(code)


def vmm_cmd(vmm, extra):
    common = ["-m", "64M", "-nodefaults", "-nographic", "-serial", "stdio", "-no-reboot",
              "-device", "isa-debug-exit", *extra]
    if vmm == "sen":
        return [SEN, "-M", "pc"] + common
    if not QEMU:
        pytest.skip("qemu-system-x86_64 is not installed (set QEMU= to point at one)")
    return [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
            "-bios", SEABIOS] + common


def run(cmd):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


@needs_sen
@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_seabios_runs_option_rom(tmp_path, vmm):
    for m in needs_boot:
        if m.args[0]:
            pytest.skip(m.kwargs["reason"])
    rom = tmp_path / "hello.rom"
    rom.write_bytes(option_rom())
    status, out, err = run(vmm_cmd(vmm, ["-option-rom", f"{rom},bootindex=1"]))
    assert b"SeaBIOS (version" in out, out
    assert MARK in out, f"the ROM did not run; output {out!r}; stderr {err}"
    assert status == 33, f"exit status {status} (want 33: the ROM's exit); stderr {err}"


@needs_sen
@pytest.mark.parametrize("rombar", ["1", "0"])
@pytest.mark.parametrize("vmm", ["sen", "qemu"])
def test_seabios_runs_pci_device_rom(tmp_path, vmm, rombar):
    """romfile= on pci-testdev (1b36:0005 in both): SeaBIOS maps the ROM BAR, finds the
    PCI data structure for the device and runs the init entry; rombar=0 hands the same
    image over through fw_cfg."""
    for m in needs_boot:
        if m.args[0]:
            pytest.skip(m.kwargs["reason"])
    rom = tmp_path / "testdev.rom"
    rom.write_bytes(pci_option_rom(0x1B36, 0x0005))
    status, out, err = run(vmm_cmd(vmm, ["-device",
                                         f"pci-testdev,romfile={rom},rombar={rombar}"]))
    assert MARK in out, f"the ROM did not run; output {out!r}; stderr {err}"
    assert status == 33, f"exit status {status} (want 33: the ROM's exit); stderr {err}"


def sen_error(args):
    """Sen must refuse at start-up (qtest: no firmware runs) with one line on stderr."""
    p = subprocess.run([SEN, "-M", "pc", "-accel", "qtest", "-display", "none"] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert p.returncode == 1, f"{args}: exit {p.returncode}, stderr {p.stderr!r}"
    return p.stderr.decode()


@needs_sen
def test_bad_option_roms(tmp_path):
    good = tmp_path / "good.rom"
    good.write_bytes(option_rom())
    big = tmp_path / "big.rom"
    big.write_bytes(option_rom(blocks=255) + bytes(128 * 1024))
    unsigned = tmp_path / "plain.bin"
    unsigned.write_bytes(b"\0" * 512)
    empty = tmp_path / "empty.rom"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.rom"

    err = sen_error(["-option-rom", str(missing)])
    assert (f"-option-rom {missing}: Could not open option rom '{missing}': "
            "No such file or directory") in err
    err = sen_error(["-option-rom", str(big)])
    assert (f"-option-rom {big}: Could not open option rom '{big}': too large "
            f"({big.stat().st_size} bytes, at most 131072)") in err
    # A device has no size: read no further than the limit, then refuse.
    err = sen_error(["-option-rom", "/dev/zero"])
    assert ("-option-rom /dev/zero: Could not open option rom '/dev/zero': too large "
            "(more than 131072 bytes)") in err
    for bad in (unsigned, empty):
        err = sen_error(["-option-rom", str(bad)])
        assert f"option rom '{bad}' is not an option ROM" in err
    err = sen_error(["-option-rom", f"{good},bootindex=x"])
    assert "Parameter 'bootindex' expects a number" in err
    err = sen_error(["-option-rom", f"romfile={good},foo=1"])
    assert "foo" in err
    err = sen_error(["-option-rom", "bootindex=1"])
    assert "Option ROM file is not specified" in err
    # Two ROMs with the same name would be the same fw_cfg file.
    other = tmp_path / "sub"
    other.mkdir()
    (other / "good.rom").write_bytes(option_rom())
    err = sen_error(["-option-rom", str(good), "-option-rom", str(other / "good.rom")])
    assert "duplicate fw_cfg file name: genroms/good.rom" in err
    unsigned.with_name("r0.rom").write_bytes(option_rom())
    err = sen_error(["-option-rom", f"{good},bootindex=2",
                     "-option-rom", f"{unsigned.with_name('r0.rom')},bootindex=2"])
    assert "The bootindex 2 has already been used" in err
    many = []
    for i in range(17):
        r = tmp_path / f"r{i}.rom"
        r.write_bytes(option_rom())
        many += ["-option-rom", str(r)]
    assert "Too many option ROMs (at most 16)" in sen_error(many)
