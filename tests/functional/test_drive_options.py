"""-drive and -blockdev on the sen command line.

Bad options: sen exits 1 with one line "sen: <option as typed>: <why>" on stderr, writes
nothing to stdout, creates no file, and leaves the disk image byte for byte as it was.
Good options get past the block layer: the run then stops at the next bad piece (a
-bios image of a size no firmware has), which shows the drives were parsed and opened.
"""
import os
import subprocess

import pytest

BUILD_DIR = os.environ.get("SEN_BUILD_DIR", "")
SEN = os.path.join(BUILD_DIR, "sen")

# {img} is a 1 MiB raw image outside the scratch directory {d}.
BAD = [
    (["-drive", "file={img}"], "-drive file={img}: if=ide (the default) is not supported"),
    (["-drive", "file={img},if=scsi"], "if=scsi is not supported by Sen"),
    (["-drive", "if=none,id=d0"], "-drive if=none,id=d0: file= is required"),
    (["-drive", "file={d}/missing.img,if=none,format=raw"],
     "-drive file={d}/missing.img,if=none,format=raw: Could not open '{d}/missing.img': "
     "No such file or directory"),
    (["-drive", "file={d}/missing.img,if=none"], "Could not open '{d}/missing.img'"),
    (["-drive", "file={img},if=none,format=qcow9"], "format=qcow9: unknown format"),
    (["-drive", "file={img},if=none,cache=bogus"], "cache=bogus: invalid cache option"),
    (["-drive", "file={img},if=none,format=raw,aio=native"],
     "aio=native was specified, but it requires cache.direct=on"),
    (["-drive", "file={img},if=none,format=raw,cache=none,aio=io_uring"],
     "io_uring is not supported"),
    (["-drive", "file={img},if=none,aio=fast"], "aio=fast: expected 'threads' or 'native'"),
    (["-drive", "file={img},if=none,discard=maybe"], "discard=maybe: expected"),
    (["-drive", "file={img},if=none,detect-zeroes=sometimes"], "detect-zeroes=sometimes"),
    (["-drive", "file={img},if=none,detect-zeroes=unmap"],
     "detect-zeroes=unmap is not allowed without discard=unmap"),
    (["-drive", "file={img},if=none,readonly=maybe"], "readonly=maybe"),
    # QEMU's words; rerror has no enospc, neither has auto.
    (["-drive", "file={img},if=none,format=raw,werror=bogus"],
     "-drive file={img},if=none,format=raw,werror=bogus: 'bogus' invalid write error action"),
    (["-drive", "file={img},if=none,format=raw,werror=auto"],
     "'auto' invalid write error action"),
    (["-drive", "file={img},if=none,format=raw,rerror=enospc"],
     "'enospc' invalid read error action"),
    (["-drive", "file={img},if=none,media=cdrom"], "media=cdrom is not supported"),
    (["-drive", "file={img},if=none,id=0bad"], "id=0bad"),
    (["-drive", "file={img},if=none,id=d0,format=raw", "-drive", "file={img},if=none,id=d0"],
     "Duplicate ID 'd0' for drive"),
    (["-drive", "file={img},if=none,format=raw,foo=1"], "invalid parameter 'foo'"),
    (["-drive", "file={img},if=none,format=raw,offset=1G"],
     "offset (1073741824) is beyond the end of the file (1048576)"),
    (["-drive", "file={img},if=none,format=raw,size=1000"], "is not a multiple of 512"),
    (["-blockdev", "driver=file,filename={img}"], "node-name is required"),
    (["-blockdev", "node-name=n0"], "Parameter 'driver' is missing"),
    (["-blockdev", "driver=nbd,node-name=n0"], "driver=nbd: unknown block driver"),
    (["-blockdev", '{"driver": "raw",'], "JSON parse error"),
    (["-blockdev", '["raw"]'], "has no value"),  # only '{' starts JSON, as QEMU
    (["-blockdev", '{"driver": "raw", "node-name": "r0", "file": "nope"}'],
     "file=nope: no block node named 'nope'"),
    (["-blockdev", '{"driver": "file", "node-name": "f0", "filename": "{img}", "x": [1]}'],
     "'x': expected a string, number, boolean or object"),
    (["-blockdev", '{"driver": "file", "node-name": "f0", "filename": "{img}", "y": 1}'],
     "invalid parameter 'y'"),
    (["-drive", 'file=json:{"driver": "raw",,,if=none'], "JSON parse error"),
    (["-drive", 'file=json:{"driver": "raw",, "file": {"filename": "{img}"}},if=none,'
                'format=qcow2'], "driver=raw conflicts with format=qcow2"),
    (["-blockdev", "driver=file,node-name=f0,filename={d}/missing.img"],
     "Could not open '{d}/missing.img'"),
    (["-blockdev", "driver=file,node-name=f0,filename={img}",
      "-blockdev", "driver=file,node-name=f0,filename={img}"],
     "Duplicate nodes with node-name='f0'"),
    # Node names are unique whatever named them, and share a name space with drive ids.
    (["-blockdev", "driver=file,node-name=f0,filename={img}",
      "-drive", "file={img},if=none,format=raw,node-name=f0"],
     "Duplicate nodes with node-name='f0'"),
    (["-blockdev", "driver=file,node-name=f0,filename={img}",
      "-blockdev", "driver=raw,node-name=r0,file.driver=file,file.filename={img},"
      "file.node-name=f0"], "Duplicate nodes with node-name='f0'"),
    (["-drive", "file={img},if=none,format=raw,node-name=x,file.node-name=x"],
     "Duplicate nodes with node-name='x'"),
    (["-drive", "file={img},if=none,format=raw,id=x",
      "-blockdev", "driver=file,node-name=x,filename={img}"],
     "node-name=x is conflicting with a device id"),
    (["-blockdev", "driver=file,node-name=x,filename={img}",
      "-drive", "file={img},if=none,format=raw,id=x"],
     "Device name 'x' conflicts with an existing node name"),
    (["-drive", "file={img},if=none,format=raw,id=y,node-name=y"],
     "Device name 'y' conflicts with an existing node name"),
    (["-blockdev", "driver=raw,node-name=r0,file.driver=file,file.filename={img},"
      "file.aio=native"], "aio=native was specified, but it requires cache.direct=on"),
]

GOOD = [
    ["-drive", "file={img},if=none,id=d0,format=raw"],
    ["-drive", "file={img},if=none,format=raw,cache=none,aio=native,discard=unmap,"
               "detect-zeroes=unmap"],
    ["-drive", "file={img},if=none,format=raw,cache=writethrough,readonly=on"],
    ["-drive", "file={img},if=none,format=raw,cache=directsync,offset=4096,size=8192"],
    ["-drive", "file={img},if=none,format=raw,cache=unsafe,cache.writeback=off"],
    ["-drive", "file={img},if=none,id=d0,format=raw,werror=stop,rerror=ignore",
     "-device", "virtio-blk-pci,drive=d0,werror=auto,rerror=enospc"],
    ["-drive", "file={img},if=virtio,format=raw,werror=ignore,rerror=report"],
    ["-blockdev", "driver=file,node-name=f0,filename={img},cache.direct=on,aio=native",
     "-blockdev", "driver=raw,node-name=r0,file=f0"],
    ["-drive", 'file=json:{"driver": "raw",, "file": {"driver": "file",, '
               '"filename": "{img}"}},if=none,id=d0'],
    ["-blockdev", '{"driver": "raw", "node-name": "r0", "read-only": true, '
                  '"file": {"driver": "file", "filename": "{img}"}}'],
]


@pytest.fixture(scope="module")
def sen():
    if not BUILD_DIR:
        pytest.skip("SEN_BUILD_DIR is not set (run through meson test)")
    if not os.access(SEN, os.X_OK):
        pytest.skip(f"{SEN} is not built yet")
    return SEN


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    data = bytes((i * 7) & 0xFF for i in range(1024 * 1024))
    path.write_bytes(data)
    return str(path), data


def bad_bios(tmp_path):
    """-bios with an image no firmware has (firmware is whole 64 KiB units), so that a
    command line that opens its drives fine stops right after, instead of booting."""
    path = tmp_path / "bad-bios.bin"
    path.write_bytes(b"\0" * 1000)
    return ["-bios", str(path)]


def run(sen, argv, cwd):
    # -nodefaults: no serial chardev; drives are opened before the board needs a kernel.
    proc = subprocess.run([sen, "-nodefaults", "-display", "none"] + argv, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return proc, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("argv,expect", BAD, ids=[" ".join(c[0]) for c in BAD])
def test_bad_drive_option(sen, image, tmp_path, argv, expect):
    img, data = image
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def fill(s):
        return s.replace("{d}", str(scratch)).replace("{img}", img)

    proc, stdout, stderr = run(sen, [fill(a) for a in argv], scratch)
    lines = [l for l in stderr.splitlines() if "probing guessed raw" not in l]
    assert proc.returncode == 1, f"exit status {proc.returncode}, stderr: {stderr!r}"
    assert stdout == ""
    assert len(lines) == 1, f"stderr: {stderr!r}"
    assert lines[0].startswith("sen: -drive ") or lines[0].startswith("sen: -blockdev "), \
        lines[0]
    assert fill(expect) in lines[0], f"{fill(expect)!r} not in {lines[0]!r}"
    assert os.listdir(scratch) == [], "a rejected command line created files"
    with open(img, "rb") as f:
        assert f.read() == data, "the image was modified"


@pytest.mark.parametrize("argv", GOOD, ids=[" ".join(a) for a in GOOD])
def test_good_drive_options(sen, image, tmp_path, argv):
    img, data = image
    proc, stdout, stderr = run(sen, [a.replace("{img}", img) for a in argv] +
                               bad_bios(tmp_path), tmp_path)
    assert proc.returncode == 1, stderr
    assert "could not load PC BIOS" in stderr, f"drives not accepted: {stderr!r}"
    assert "-drive" not in stderr and "-blockdev" not in stderr, stderr
    with open(img, "rb") as f:
        assert f.read() == data


def test_probed_raw_warns(sen, image, tmp_path):
    img, _ = image
    proc, _, stderr = run(sen, ["-drive", f"file={img},if=none"] + bad_bios(tmp_path),
                          tmp_path)
    assert "probing guessed raw" in stderr
    assert "write operations on block 0 will be restricted" in stderr


def test_help_lists_drive(sen, tmp_path):
    proc = subprocess.run([sen, "-help"], capture_output=True, timeout=60)
    out = proc.stdout.decode()
    assert "-drive" in out and "-blockdev" in out
