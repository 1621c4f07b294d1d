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
