"""sen-img's usage texts: `sen-img --help` and `sen-img CMD -h` print what the files
img_usage_help.txt / img_usage_cmd.txt hold (a change to them is a reviewed change of the
interface), and every command qemu-img 7.2 lists that sen-img has shows the same name."""
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
