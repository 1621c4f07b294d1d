"""Image names as option strings, as qemu-img takes them: `json:{...}` pseudo-filenames
(on the command line and as backing file names stored in images) and, with
--image-opts, `driver=qcow2,file.filename=x`.  sen-img must print what qemu-img prints
for the same image and fail, naming the input, where qemu-img fails."""
import json
import subprocess

import pytest
from img_util import SEN_IMG, QEMU_IMG, QEMU_IO, needs_tools, run

pytestmark = needs_tools()


@pytest.fixture
def chain(tmp_path):
    """base.qcow2 with data, and top.qcow2 whose backing name is a json: string."""
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", base, "4M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 64k", "-c", "write -P 3 1M 4k", base)
    backing = json.dumps({"driver": "qcow2", "file": {"driver": "file",
                                                      "filename": str(base)}})
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "json:" + backing, "-F", "qcow2", top)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 9 2M 64k", top)
    return tmp_path, base, top


def json_name(path, fmt="qcow2"):
    return "json:" + json.dumps({"driver": fmt, "file": {"driver": "file",
                                                         "filename": str(path)}})


@pytest.mark.parametrize("output", ["human", "json"])
def test_info_json_filename_like_qemu(chain, output):
    _, base, _ = chain
    name = json_name(base)
    s = run(SEN_IMG, "info", "--output=" + output, name).stdout
    q = run(QEMU_IMG, "info", "--output=" + output, name).stdout
    assert s == q


def test_json_backing_name_reads_like_qemu(chain):
    d, base, top = chain
    s = run(SEN_IMG, "info", "--output=json", top).stdout
    q = run(QEMU_IMG, "info", "--output=json", top).stdout
    sj, qj = json.loads(s), json.loads(q)
    assert sj["backing-filename"] == qj["backing-filename"]
    assert sj["backing-filename"].startswith("json:")
    # The data of the whole chain, read through the json: backing name.
    run(SEN_IMG, "convert", "-O", "raw", top, d / "s.raw")
    run(QEMU_IMG, "convert", "-O", "raw", top, d / "q.raw")
    assert (d / "s.raw").read_bytes() == (d / "q.raw").read_bytes()
    assert (d / "s.raw").read_bytes()[:65536] == b"\x07" * 65536
    run(SEN_IMG, "compare", top, json_name(top))


@pytest.mark.parametrize("name,why", [
    ('json:{"driver":"qcow2","file":{"driver":"file","filename":"x"}', "JSON parse error"),
    ('json:["qcow2"]', "must be an object"),
    ('json:{"driver":"qcow2","file":{"driver":"file","filename":"{base}"},"bogus":1}',
     "invalid parameter 'bogus'"),
    ('json:{"driver":"qcow9","file":{"filename":"{base}"}}', "unknown format 'qcow9'"),
    ('json:{"driver":"qcow2","driver":"raw","file":{"filename":"{base}"}}',
     "duplicate object key"),
    ('json:{"driver":"qcow2","node-name":"#block001","file":{"filename":"{base}"}}',
     "Invalid node-name: '#block001'"),
    ('json:{"driver":"qcow2","file":{"driver":"file","filename":"{d}/none"}}',
     "No such file or directory"),
])
def test_bad_json_filename(chain, name, why):
    d, base, _ = chain
    name = name.replace("{base}", str(base)).replace("{d}", str(d))
    before = base.read_bytes()
    for args in (["info", name], ["check", name], ["map", name], ["resize", name, "8M"]):
        argv = [SEN_IMG] + args
        p = subprocess.run(argv, capture_output=True, text=True)
        assert p.returncode != 0, argv
        assert why in p.stderr and name in p.stderr, p.stderr
        q = subprocess.run([QEMU_IMG] + argv[1:], capture_output=True, text=True)
        assert q.returncode != 0, (argv, q.stdout)
    assert base.read_bytes() == before


@pytest.mark.parametrize("json_backing", [False, True])
def test_backing_loop_fails_cleanly(tmp_path, json_backing):
    """An image whose backing chain leads back to itself (an untrusted image can say so)
    fails to open with one clear message; it used to overflow sen-img's stack."""
    img = tmp_path / "loop.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M")
    backing = json_name(img) if json_backing else str(img)
    run(QEMU_IMG, "rebase", "-u", "-F", "qcow2", "-b", backing, img)
    for args in (["map", img], ["info", "--backing-chain", img], ["convert", img,
                                                                  tmp_path / "x.raw"]):
        p = run(SEN_IMG, *args, check=False, timeout=60)
        assert p.returncode == 1, (args, p.stderr)
        assert p.stderr.count("Could not open backing file: ") == 1, p.stderr
        assert "backing chain deeper than 512 images" in p.stderr, p.stderr
    run(SEN_IMG, "info", img)  # without its backing chain it opens


# --image-opts: the same option string given to both tools, run in the image directory.
OPTS = "driver=qcow2,file.driver=file,file.filename=top.qcow2"


def both(d, *args, check=True):
    s = run(SEN_IMG, *args, cwd=d, check=check)
    q = run(QEMU_IMG, *args, cwd=d, check=check)
    return s, q


@pytest.mark.parametrize("args", [
    ["info", "--image-opts", OPTS],
    ["info", "--output=json", "--image-opts", OPTS],
    ["info", "--backing-chain", "--image-opts", OPTS],
    ["check", "--image-opts", OPTS],
    ["check", "--output=json", "--image-opts", OPTS],
    ["map", "--output=json", "--image-opts", OPTS],
    ["map", "--image-opts", "file.filename=top.qcow2"],
    ["snapshot", "-l", "--image-opts", OPTS],
    ["measure", "-O", "qcow2", "--image-opts", OPTS],
    ["measure", "--output=json", "-O", "raw", "--image-opts", OPTS],
    ["compare", "--image-opts", OPTS, "driver=qcow2,file.filename=top.qcow2"],
    ["compare", "--image-opts", OPTS, "driver=raw,file.filename=base.qcow2"],
])
def test_image_opts_read_commands_like_qemu(chain, args):
    d, _, _ = chain
    s, q = both(d, *args, check=False)
    assert (s.returncode, s.stdout) == (q.returncode, q.stdout), s.stderr + q.stderr


def info_without_host(path):
    o = json.loads(run(QEMU_IMG, "info", "--output=json", path).stdout)
    for k in ("actual-size", "filename", "full-backing-filename"):
        o.pop(k, None)
    return o


@pytest.mark.parametrize("args", [
    ["resize", "--image-opts", OPTS, "+3M"],
    ["resize", "--shrink", "--image-opts", OPTS, "3M"],
    ["amend", "-o", "lazy_refcounts=on", "--image-opts", OPTS],
    ["rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", "--image-opts", OPTS],
    ["rebase", "-b", "", "--image-opts", OPTS],
    ["commit", "--image-opts", OPTS],
])
def test_image_opts_write_commands_like_qemu(tmp_path, chain, args):
    d, base, top = chain
    q = tmp_path / "q"
    q.mkdir()
    for f in (base, top):
        (q / f.name).write_bytes(f.read_bytes())
    # The json: backing name holds base's absolute path: point qemu's copy at its own.
    run(QEMU_IMG, "rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", q / "top.qcow2")
    run(QEMU_IMG, "rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", top)
    run(SEN_IMG, *args, cwd=d)
    run(QEMU_IMG, *args, cwd=q)
    for name in ("top.qcow2", "base.qcow2"):
        assert info_without_host(d / name) == info_without_host(q / name), name
        run(QEMU_IMG, "check", d / name)
        run(QEMU_IMG, "compare", d / name, q / name)


def test_image_opts_convert_dd_snapshot(chain):
    d, _, top = chain
    both_out = []
    for tool, out in ((SEN_IMG, "s"), (QEMU_IMG, "q")):
        run(tool, "convert", "--image-opts", "-O", "raw", OPTS, out + ".raw", cwd=d)
        run(tool, "dd", "--image-opts", "-O", "raw", "bs=64k", "count=40", "if=" + OPTS,
            "of=" + out + ".dd", cwd=d)
        both_out.append(((d / (out + ".raw")).read_bytes(), (d / (out + ".dd")).read_bytes()))
    assert both_out[0] == both_out[1]
    assert both_out[0][1] == both_out[0][0][:40 * 65536]
    run(SEN_IMG, "snapshot", "--image-opts", "-c", "one", OPTS, cwd=d)
    listed = run(QEMU_IMG, "snapshot", "-l", top).stdout
    assert " one " in listed
    run(SEN_IMG, "snapshot", "--image-opts", "-d", "one", OPTS, cwd=d)
    run(QEMU_IMG, "check", top)
    assert run(QEMU_IMG, "snapshot", "-l", top).stdout == ""


def test_image_opts_bench(chain):
    d, _, top = chain
    before = run(QEMU_IMG, "convert", "-O", "raw", top, d / "before.raw")
    out = run(SEN_IMG, "bench", "-c", "16", "-w", "--pattern=5", "--image-opts", OPTS,
              cwd=d).stdout
    assert "Sending 16 write requests" in out
    run(QEMU_IMG, "check", top)
    del before


@pytest.mark.parametrize("args,why", [
    (["info", "--image-opts", OPTS + ",bogus=1"], "invalid parameter 'bogus'"),
    (["info", "--image-opts", "-f", "qcow2", OPTS], "--image-opts and --format are mutually"),
    (["info", "--image-opts", "driver=qcow2,file.filename"], "has no value"),
    (["info", "--image-opts", "driver=qcow2,file.filename=none.qcow2"],
     "No such file or directory"),
    (["info", "--image-opts", "driver=qcow9,file.filename=top.qcow2"], "unknown format"),
    (["check", "--image-opts", "driver=qcow2"], "file name"),
    (["resize", "--image-opts", OPTS + ",bogus=1", "+1M"], "invalid parameter 'bogus'"),
    (["amend", "-o", "lazy_refcounts=on", "--image-opts", OPTS + ",x=y"],
     "invalid parameter 'x'"),
    (["convert", "--image-opts", "-O", "raw", OPTS + ",x=y", "out.raw"],
     "invalid parameter 'x'"),
    (["commit", "--image-opts", "driver=raw,file.filename=top.qcow2,offset=x"], "offset"),
])
def test_image_opts_bad(chain, args, why):
    d, base, top = chain
    images = {p: p.read_bytes() for p in (base, top)}
    s, q = both(d, *args, check=False)
    assert s.returncode != 0 and q.returncode != 0, (s.stdout, q.stdout)
    assert why in s.stderr, s.stderr
    optstr = next(a for a in args if "=" in a and not a.startswith("-") and "lazy" not in a)
    assert optstr in s.stderr or "mutually exclusive" in s.stderr, s.stderr
    assert not (d / "out.raw").exists()
    assert {p: p.read_bytes() for p in images} == images


def test_sen_img_writes_json_backing_names(chain):
    """create -b json:... and rebase -b json:... store the name as given; qemu-img reads
    the chain through it, and a bad json: backing name fails without creating a file."""
    d, base, top = chain
    new = d / "new.qcow2"
    run(SEN_IMG, "create", "-f", "qcow2", "-b", json_name(base), "-F", "qcow2", new)
    q = json.loads(run(QEMU_IMG, "info", "--output=json", new).stdout)
    assert q["backing-filename"] == json_name(base)
    run(QEMU_IMG, "check", new)
    run(QEMU_IMG, "compare", new, base)
    # Safe rebase onto the json: name of top keeps what new reads (base's data).
    run(SEN_IMG, "rebase", "-b", json_name(top), "-F", "qcow2", new)
    assert json.loads(run(QEMU_IMG, "info", "--output=json", new).stdout)[
        "backing-filename"] == json_name(top)
    run(QEMU_IMG, "check", new)
    run(QEMU_IMG, "compare", new, base)
    bad = d / "bad.qcow2"
    p = subprocess.run([SEN_IMG, "create", "-f", "qcow2", "-b", 'json:{"driver":', "-F",
                        "qcow2", str(bad)], capture_output=True, text=True)
    assert p.returncode != 0 and "JSON parse error" in p.stderr and not bad.exists()


@pytest.mark.parametrize("args", [
    ["bench", "-w", "-c", "64", "-s", "4k", "-S", "12k"],  # partial clusters: COW reads
    ["snapshot", "-c", "s1"],
    ["check", "-r", "all"],
    ["amend", "-o", "lazy_refcounts=off"],
    ["resize", "{top}", "+1M"],
    ["map", "--output=json"],
])
def test_writable_json_backing_is_never_written(tmp_path, args):
    """A json: backing name with "read-only": false opens the backing file writable, as
    qemu-img 7.2 does (both open it O_RDWR), but no command on the overlay writes it:
    its bytes and its modification time stay as they were."""
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", base, "4M")
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 1M", base)
    backing = "json:" + json.dumps({"driver": "qcow2", "read-only": False,
                                    "file": {"driver": "file", "filename": str(base)}})
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "qcow2", top, "4M")
    before = (base.read_bytes(), base.stat().st_mtime_ns)
    argv = [a.replace("{top}", str(top)) for a in args]
    if "{top}" not in args:
        argv.append(str(top))
    run(SEN_IMG, *argv)
    assert (base.read_bytes(), base.stat().st_mtime_ns) == before
    run(QEMU_IMG, "check", top)
    if args[0] == "bench":
        # The overlay's partial clusters kept the backing's bytes around the writes.
        run(QEMU_IO, "-f", "qcow2", "-c", "read -P 7 4k 4k", top)
