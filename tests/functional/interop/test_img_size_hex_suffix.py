"""Sizes in hexadecimal with a suffix ("0x10k"), which qemu-img 7.2 still takes with a
deprecation warning ("qemu-img: warning: Using a multiplier suffix on hex numbers is
deprecated: 0x10k") where it parses a size (qemu_strtosz): the create size, resize,
convert -S/-r, measure --size and -o cluster_size, map --start-offset/--max-length,
dd bs/count/skip, bench -s/-S/-o, commit -r, bitmap -g, amend -o size, --image-opts
sizes.  sen-img used to refuse them all.  Each command runs in both tools on copies of the
same images: the same warnings, errors and exit status, and the same result where the
command changes an image.  What qemu-img refuses stays refused, in its words: each option
names itself as qemu-img's cvtnum does ("Invalid bs specified. ...", "Must be between 1
and 2147483647."; sen-img used to say "Invalid image size" for all of them), resize as its
option lists do ("Parameter 'size' expects ..."), and bench -c/-d/--flush-interval and
convert -m are plain numbers there (no suffix, 0x hex allowed)."""
import json
import shutil

import pytest
from img_util import QEMU_IMG, SEN_IMG, needs_tools, run

pytestmark = needs_tools(qemu_io=False)

WARNING = "warning: Using a multiplier suffix on hex numbers is deprecated: "

# {v}: the size under test; images: a.qcow2 (1 MiB, read), b.qcow2 (over a.qcow2),
# r.qcow2 (1 MiB, changed); x.qcow2 and o.raw are created.
COMMANDS = [
    ["create", "-q", "-f", "qcow2", "x.qcow2", "{v}"],
    ["resize", "-q", "r.qcow2", "+{v}"],
    ["convert", "-S", "{v}", "-O", "raw", "a.qcow2", "o.raw"],
    ["convert", "-r", "{v}", "-O", "raw", "a.qcow2", "o.raw"],
    ["measure", "--size", "{v}", "-O", "qcow2"],
    ["measure", "-o", "cluster_size={v}", "--size", "1M", "-O", "qcow2"],
    ["map", "--start-offset={v}", "a.qcow2"],
    ["map", "--max-length={v}", "a.qcow2"],
    ["map", "-s", "{v}", "a.qcow2"],              # qemu-img 7.2's short forms
    ["map", "-l", "{v}", "a.qcow2"],
    ["dd", "if=a.qcow2", "of=o.raw", "bs={v}", "-O", "raw"],
    ["dd", "if=a.qcow2", "of=o.raw", "count={v}", "-O", "raw"],
    ["dd", "if=a.qcow2", "of=o.raw", "skip={v}", "-O", "raw"],
    ["bench", "-c", "1", "-s", "{v}", "a.qcow2"],
    ["bench", "-c", "1", "-S", "{v}", "a.qcow2"],
    ["bench", "-c", "1", "-o", "{v}", "a.qcow2"],
    ["commit", "-r", "{v}", "b.qcow2"],
    ["bitmap", "--add", "-g", "{v}", "r.qcow2", "bm"],
    ["amend", "-o", "size={v}", "r.qcow2"],
    ["info", "--output=json", "--image-opts", "driver=raw,size={v},file.filename=a.qcow2"],
    # -o lists: qemu-img reads them, then the format reads size/cluster_size once more
    # (two warnings), except convert's size, which the source's replaces (one).
    ["create", "-q", "-f", "qcow2", "-o", "size={v}", "x.qcow2"],
    ["create", "-q", "-f", "qcow2", "-o", "cluster_size={v}", "x.qcow2", "1M"],
    ["create", "-q", "-f", "raw", "-o", "size={v}", "x.qcow2"],
    ["convert", "-O", "qcow2", "-o", "cluster_size={v}", "a.qcow2", "o.raw"],
    ["convert", "-O", "raw", "-o", "size={v}", "a.qcow2", "o.raw"],
]
IDS = ["create", "resize", "convert-S", "convert-r", "measure-size", "measure-o",
       "map-start", "map-length", "map-s", "map-l", "dd-bs", "dd-count", "dd-skip", "bench-s", "bench-S",
       "bench-o", "commit-r", "bitmap-g", "amend-size", "image-opts-size", "create-o-size",
       "create-o-cluster", "create-raw-o-size", "convert-o-cluster", "convert-o-size"]


def workdir(tmp_path, who):
    d = tmp_path / who
    d.mkdir()
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", d / "a.qcow2", "1M")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2",
        d / "b.qcow2")
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", d / "r.qcow2", "1M")
    return d


def both(tmp_path, argv, value):
    """(exit status, stderr) of argv with value in each tool, each in its own directory;
    stdout too where it holds no timing (bench) or paths."""
    got = {}
    for who, tool in (("qemu", QEMU_IMG), ("sen", SEN_IMG)):
        d = workdir(tmp_path, who)
        p = run(tool, *[a.format(v=value) for a in argv], check=False, cwd=d)
        out = "" if argv[0] in ("bench", "info") else p.stdout
        got[who] = (p.returncode, p.stderr.replace("qemu-img:", "sen-img:"), out)
    return got


def image_state(d):
    """virtual sizes and bitmaps of what a command changed or created."""
    out = {}
    for name in ("r.qcow2", "x.qcow2"):
        if (d / name).exists():
            info = json.loads(run(QEMU_IMG, "info", "-U", "--output=json", d / name).stdout)
            bitmaps = info.get("format-specific", {}).get("data", {}).get("bitmaps", [])
            out[name] = (info["virtual-size"], bitmaps)
    return out
# Where qemu-img reads the value twice (its option list, then the format).
TWICE = [c for c, i in zip(COMMANDS, IDS) if i in ("create-o-size", "create-o-cluster",
                                                   "create-raw-o-size", "convert-o-cluster")]


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
@pytest.mark.parametrize("value", ["0x1k", "0X2K"])
def test_hex_with_suffix_taken_with_warning(tmp_path, argv, value):
    got = both(tmp_path, argv, value)
    rc, err, _ = got["qemu"]
    assert err.startswith(f"sen-img: {WARNING}{value}\n"), got["qemu"]
    assert err.count(WARNING) == (2 if argv in TWICE else 1), got["qemu"]
    if argv[0] != "commit":          # b.qcow2 has nothing to commit, but it is taken
        assert rc == 0, got["qemu"]
    assert got["sen"] == got["qemu"]
    assert image_state(tmp_path / "sen") == image_state(tmp_path / "qemu")


@pytest.mark.parametrize("value", ["0x10kk", "0x10.5k", "0xk", "00x10k", "0x10k ", "0x10"])
def test_create_size_hex(tmp_path, value):
    """The size operand of create: refused (with the warning only once a suffix was read,
    as qemu-img) or, plain hexadecimal, taken without one."""
    got = both(tmp_path, ["create", "-q", "-f", "qcow2", "x.qcow2", "{v}"], value)
    assert got["sen"] == got["qemu"]
    assert (got["qemu"][0] == 0) == (value == "0x10")
    assert (WARNING in got["qemu"][1]) == (value in ("0x10kk", "0x10k "))
    assert image_state(tmp_path / "sen") == image_state(tmp_path / "qemu")


@pytest.mark.parametrize("value", ["0x1000B", "0x1000e"])
def test_hex_digits_b_and_e_are_no_suffix(tmp_path, value):
    """B and E are hex digits: 0x1000B is 65547 bytes (rounded up to whole sectors), not
    0x1000 bytes, and without a warning."""
    got = both(tmp_path, ["create", "-q", "-f", "raw", "x.qcow2", "{v}"], value)
    assert got["sen"] == got["qemu"] == (0, "", "")
    assert image_state(tmp_path / "sen") == image_state(tmp_path / "qemu")
    assert image_state(tmp_path / "sen")["x.qcow2"][0] == (int(value, 16) + 511) // 512 * 512


# The commands whose size qemu-img refuses below, each for its own reason.
REFUSING = [c for c, i in zip(COMMANDS, IDS) if i not in ("image-opts-size", "commit-r")]
REFUSING_IDS = [i for i in IDS if i not in ("image-opts-size", "commit-r")]


@pytest.mark.parametrize("argv", REFUSING, ids=REFUSING_IDS)
@pytest.mark.parametrize("value", ["10kk", "16E", "0x10kk", "0x40000000000000k"])
def test_refused_as_qemu_img(tmp_path, argv, value):
    """Garbage and values out of range, decimal and hexadecimal (the warning first where
    a suffix was read, then the refusal): qemu-img's messages and exit status."""
    argv = ["resize", "r.qcow2", "{v}"] if argv[0] == "resize" else argv
    got = both(tmp_path, argv, value)
    assert got["qemu"][0] == 1, got["qemu"]
    assert (WARNING in got["qemu"][1]) == value.startswith("0x"), got["qemu"]
    assert got["sen"] == got["qemu"]
    # The format never read a value its option list refused: one warning at most, but
    # amend, which reads the list a second time as creation options.
    assert got["qemu"][1].count(WARNING) <= (2 if argv[0] == "amend" else 1)


@pytest.mark.parametrize("argv,value", [
    (["dd", "if=a.qcow2", "of=o.raw", "bs={v}", "-O", "raw"], "0"),
    (["dd", "if=a.qcow2", "of=o.raw", "bs={v}", "-O", "raw"], "2G"),
    (["bench", "-c", "1", "-s", "{v}", "a.qcow2"], "2G"),
    (["bench", "-c", "1", "-S", "{v}", "a.qcow2"], "2G"),
    (["convert", "-S", "{v}", "-O", "raw", "a.qcow2", "o.raw"], "1000"),
    (["convert", "-S", "{v}", "-O", "raw", "a.qcow2", "o.raw"], "0x1000001"),
    (["convert", "-m", "{v}", "-O", "raw", "a.qcow2", "o.raw"], "1k"),
    (["convert", "-m", "{v}", "-O", "raw", "a.qcow2", "o.raw"], "-1"),
    (["convert", "-m", "{v}", "-O", "raw", "a.qcow2", "o.raw"], "0x2"),
    (["bench", "-c", "{v}", "-s", "512", "a.qcow2"], "1k"),
    (["bench", "-c", "{v}", "-s", "512", "a.qcow2"], "0x10"),
    (["bench", "-c", "{v}", "-s", "512", "a.qcow2"], "3000000000"),
    (["bench", "-c", "1", "-d", "{v}", "a.qcow2"], "abc"),
    (["bench", "-c", "1", "-w", "--flush-interval={v}", "a.qcow2"], "1k"),
], ids=["dd-bs-0", "dd-bs-2G", "bench-s-2G", "bench-S-2G", "convert-S-unaligned",
        "convert-S-big", "convert-m-suffix", "convert-m-negative", "convert-m-hex",
        "bench-c-suffix", "bench-c-hex", "bench-c-big", "bench-d-garbage",
        "bench-flush-suffix"])
def test_ranges_and_counts_as_qemu_img(tmp_path, argv, value):
    """Each option's range and kind of number, as qemu-img 7.2 has them."""
    got = both(tmp_path, argv, value)
    assert got["sen"] == got["qemu"]


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
@pytest.mark.parametrize("args", [
    ["512k"], ["1000"], ["0"], ["+1000"], ["--shrink", "1000"], ["--shrink", "0"],
    ["--shrink", "--", "-1M"], ["--shrink", "512k"], ["--preallocation=full", "512k"],
    ["0x2M"], ["--", "-0x1k"],
], ids=["shrink-without-flag", "shrink-unaligned", "zero", "grow-unaligned",
        "shrink-flag-unaligned", "shrink-flag-zero", "shrink-to-zero", "shrink-flag",
        "prealloc-shrink", "hex-grow", "hex-relative-shrink"])
def test_resize_sizes_as_qemu_img(tmp_path, fmt, args):
    """resize's size checks in qemu-img's order and words: positive, --shrink to shrink
    (with its warning), a multiple of 512 for qcow2; the image unchanged when refused."""
    got = {}
    for who, tool in (("qemu", QEMU_IMG), ("sen", SEN_IMG)):
        img = tmp_path / f"{who}.img"
        run(QEMU_IMG, "create", "-q", "-f", fmt, img, "1M")
        p = run(tool, "resize", "-f", fmt, img, *args, check=False)
        info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
        got[who] = (p.returncode, p.stdout, p.stderr.replace(str(img), "IMG")
                    .replace("qemu-img:", "sen-img:"), info["virtual-size"])
    assert got["sen"] == got["qemu"]


@pytest.mark.parametrize("args", [
    ["skip=2049"], ["skip=2048"], ["skip=100", "count=50"], ["skip=50", "count=100"],
    ["skip=36028797018963968"], ["skip=0x10k"],
], ids=["past-end", "at-end", "past-count", "before-count", "overflowing", "hex-suffix"])
def test_dd_skip_as_qemu_img(tmp_path, args):
    """dd skip= past the input (or past count): qemu-img's "cannot skip to specified
    offset" and an empty output, exit 0.  skip * bs overflowing 64 bits used to wrap to a
    small offset and copy the image."""
    got = {}
    for who, tool in (("qemu", QEMU_IMG), ("sen", SEN_IMG)):
        d = workdir(tmp_path, who)
        p = run(tool, "dd", "if=a.qcow2", "of=o.raw", "-O", "raw", *args, check=False, cwd=d)
        size = json.loads(run(QEMU_IMG, "info", "--output=json", d / "o.raw").stdout)
        got[who] = (p.returncode, p.stdout, p.stderr.replace("qemu-img:", "sen-img:"),
                    size["virtual-size"])
    assert got["sen"] == got["qemu"]
