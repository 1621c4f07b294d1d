"""sen-img's usage texts: `sen-img --help` and `sen-img CMD -h` print what the files
img_usage_help.txt / img_usage_cmd.txt hold (a change to them is a reviewed change of the
interface), and every command qemu-img 7.2 lists that sen-img has shows the same name."""
import json
import os

import pytest
from img_util import SEN_IMG, QEMU_IMG, needs_tools, run

pytestmark = needs_tools(qemu_io=False)

HERE = os.path.dirname(os.path.abspath(__file__))


def expected(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def pinned_cmd_lines():
    return expected("img_usage_cmd.txt").splitlines(keepends=True)


def test_help_is_pinned():
    for flag in ("--help", "-h"):
        p = run(SEN_IMG, flag)
        assert p.stdout == expected("img_usage_help.txt")
        assert p.stderr == ""


@pytest.mark.parametrize("line", pinned_cmd_lines(), ids=lambda l: l.split()[2])
def test_command_help_is_pinned(line):
    cmd = line.split()[2]
    # resize takes its size off the end before the options, as qemu-img: alone, -h would
    # be the size (both tools then fail with too few arguments).
    extra = ["x", "1M"] if cmd == "resize" else []
    for flag in ("-h", "--help"):
        p = run(SEN_IMG, cmd, flag, *extra)
        assert p.stdout == line, (cmd, flag)
        assert p.stderr == ""


def test_every_command_has_help():
    """The commands --help lists are those whose -h is pinned, and qemu-img has them."""
    listed = [l.split()[0] for l in expected("img_usage_help.txt").split(
        "Command syntax:\n", 1)[1].splitlines() if l.strip()]
    assert sorted(listed) == sorted(l.split()[2] for l in pinned_cmd_lines())
    qemu_help = run(QEMU_IMG, "--help").stdout
    for cmd in listed:
        assert f"  {cmd} " in qemu_help, cmd


def test_resize_h_alone_fails_like_qemu():
    s = run(SEN_IMG, "resize", "-h", check=False)
    q = run(QEMU_IMG, "resize", "-h", check=False)
    assert s.returncode == q.returncode == 1 and s.stdout == ""


def _same_dirs(tmp_path):
    """Two directories, one per tool, each with the same a.qcow2 (64M, snapshot s1)."""
    dirs = {}
    for who in ("sen", "qemu"):
        d = dirs[who] = tmp_path / who
        d.mkdir()
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", d / "a.qcow2", "64M")
        run(QEMU_IMG, "snapshot", "-c", "s1", d / "a.qcow2")
    return dirs


def _both(dirs, args):
    """(exit status, stdout, stderr) of each tool run with args in its own directory, the
    tool's name made alike."""
    out = {}
    for who, tool in (("sen", SEN_IMG), ("qemu", QEMU_IMG)):
        p = run(tool, *args, check=False, cwd=dirs[who])
        out[who] = (p.returncode, p.stdout, p.stderr.replace("qemu-img", "sen-img"))
    return out


# Wrong command lines: both tools say the same thing (getopt's order and qemu-img's words).
USAGE_ERRORS = [
    [],
    ["foo"],
    ["info", "-z", "a.qcow2"],
    ["info", "-Uz", "a.qcow2"],          # the group named as typed
    ["info", "-qz", "a.qcow2"],          # qemu-img names argv[optind - 1]: "info"
    ["info", "a.qcow2", "-f"],           # missing argument after the operand
    ["info", "--output", "a.qcow2"],     # --output takes the name: no name left
    ["info", "--fo=qcow2", "a.qcow2"],   # ambiguous abbreviation
    ["info", "a.qcow2", "--", "-U"],     # after "--" everything is an operand
    ["map", "a.qcow2", "--output=xml"],
    ["check", "a.qcow2", "--bogus"],
    ["snapshot", "-l"],
    ["compare", "a.qcow2"],              # exit 1 as qemu-img's usage errors, not 2
    ["compare", "-z", "a.qcow2", "a.qcow2"],
    ["compare", "a.qcow2", "a.qcow2", "-T", "bogus"],   # compare's own error: 2
    ["create", "-f", "raw", "n.raw", "-1G"],            # -1 read as an option
    ["create", "-f", "raw", "n.raw", "--", "-1G"],      # a negative size
    ["create", "-f", "raw", "--", "n.raw", "1M", "-q"],
    ["create", "-f", "raw", "n.raw", "1M", "x"],
    ["resize", "a.qcow2"],
    ["resize", "a.qcow2", "b", "1M"],
    ["resize", "a.qcow2", "-1G"],        # the size comes off the end before getopt
    ["resize", "a.qcow2", "--", "-1G"],
    ["bench", "a.qcow2", "-c"],
    ["amend", "a.qcow2"],
    ["amend", "a.qcow2", "-x"],
    ["dd", "if=a.qcow2", "-O"],
    ["measure", "a.qcow2", "-O", "raw", "--size", "1M"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a) or "(none)")
def test_usage_errors_as_qemu_img(tmp_path, args):
    out = _both(_same_dirs(tmp_path), args)
    assert out["sen"] == out["qemu"]
    assert out["sen"][0] != 0


# Options after the operands work as in qemu-img; same exit status and stderr, and the
# same effect where stdout differs between the tools.
def _json(d, *args):
    return json.loads(run(QEMU_IMG, *args, "--output=json", cwd=d).stdout)


def test_options_after_operands(tmp_path):
    dirs = _same_dirs(tmp_path)
    for args in (["create", "-f", "qcow2", "x.qcow2", "32M", "-q"],
                 ["create", "n.raw", "1M", "-f", "raw", "-q"],
                 ["info", "x.qcow2", "--output=json", "-U"],
                 ["map", "a.qcow2", "--output=json", "-f", "qcow2"],
                 ["check", "a.qcow2", "-q"],
                 ["snapshot", "-l", "a.qcow2", "-q"],
                 ["snapshot", "a.qcow2", "-c", "s2", "-q"],
                 ["compare", "a.qcow2", "x.qcow2", "-f", "qcow2", "-q"],
                 ["amend", "x.qcow2", "-o", "lazy_refcounts=on", "-q"],
                 ["measure", "x.qcow2", "-O", "qcow2", "--output=json"],
                 ["dd", "-U", "if=a.qcow2", "of=c.raw", "-O", "raw", "bs=1M", "count=2"],
                 ["convert", "a.qcow2", "d.raw", "-O", "raw", "-q"],
                 ["resize", "-f", "qcow2", "a.qcow2", "--shrink", "-1M"],
                 ["resize", "x.qcow2", "-q", "+1M"],
                 ["rebase", "x.qcow2", "-u", "-b", "", "-q"],
                 ["commit", "x.qcow2", "-q", "-d"],
                 ["bench", "a.qcow2", "-c", "2", "-q"]):
        out = _both(dirs, args)
        assert out["sen"][0] == out["qemu"][0] and out["sen"][2] == out["qemu"][2], (args, out)
        if args[0] not in ("info", "map", "snapshot", "measure", "bench"):
            assert out["sen"][1] == out["qemu"][1], (args, out)
    for name in ("a.qcow2", "x.qcow2"):
        s, q = (_json(dirs[w], "info", name) for w in ("sen", "qemu"))
        assert s["virtual-size"] == q["virtual-size"] and s["format"] == q["format"]
        assert (s["format-specific"]["data"]["lazy-refcounts"] ==
                q["format-specific"]["data"]["lazy-refcounts"])
    assert (dirs["sen"] / "c.raw").stat().st_size == 2 * 1024 * 1024
    for name in ("n.raw", "c.raw", "d.raw"):
        assert (dirs["sen"] / name).stat().st_size == (dirs["qemu"] / name).stat().st_size
    snaps = {w: [s["name"] for s in _json(dirs[w], "info", "a.qcow2")["snapshots"]]
             for w in dirs}
    assert snaps["sen"] == snaps["qemu"] == ["s1", "s2"]


def test_convert_operand_count(tmp_path):
    """No source: qemu-img's words.  Several sources are concatenated, the same image
    twice included: the same output as qemu-img's."""
    dirs = _same_dirs(tmp_path)
    for args in (["convert"], ["convert", "a.qcow2"], ["convert", "-O", "raw", "a.qcow2"],
                 ["convert", "-O", "raw", "a.qcow2", "a.qcow2", "o.raw"]):
        out = _both(dirs, args)
        assert out["sen"] == out["qemu"], args
    assert (dirs["sen"] / "o.raw").read_bytes() == (dirs["qemu"] / "o.raw").read_bytes()
