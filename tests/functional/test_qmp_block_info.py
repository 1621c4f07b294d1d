"""query-block and query-named-block-nodes against QEMU 7.2: the same qcow2 chain opened
by both as `-drive if=none`, and the image facts each reports compared, above all qcow2's
format-specific data (which must also equal `qemu-img info`'s).  Skips without
/dev/kvm (sen) or without qemu-system-x86_64 / qemu-img."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from vs_qemu import NEEDS_SEN_AND_QEMU, QEMU, QEMU_IMG, SEN, start_with_qmp

pytestmark = NEEDS_SEN_AND_QEMU


@pytest.fixture
def d():
    # unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="qbi", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(d, name, argv):
    return start_with_qmp(d, name, argv + ["-display", "none", "-nodefaults", "-S"])


def query_both(d, drive):
    """query-block and query-named-block-nodes of sen and of QEMU for one -drive."""
    out = {}
    for name, argv in (("sen", [SEN, "-M", "pc", "-m", "32M"]),
                       ("qemu", [QEMU, "-M", "none"])):
        proc, c = start(d, name, argv + ["-drive", drive])
        try:
            out[name] = (c.cmd("query-block"), c.cmd("query-named-block-nodes"),
                         c.cmd("query-named-block-nodes", flat=True),
                         [c.cmd("human-monitor-command", command_line=line)
                          for line in ("info block", "info block -v", "info block -v d0",
                                       "info block nosuch")])
        finally:
            proc.kill()
            proc.communicate()
    return out["sen"], out["qemu"]


def image_facts(image):
    """What both VMMs must agree on, down the backing chain."""
    keep = ("filename", "format", "virtual-size", "cluster-size", "dirty-flag",
            "format-specific", "actual-size", "backing-filename", "full-backing-filename",
            "backing-filename-format", "snapshots")
    facts = {k: image[k] for k in keep if k in image}
    if "backing-image" in image:
        facts["backing-image"] = image_facts(image["backing-image"])
    return facts


def node_facts(node):
    return (node["drv"], node["file"], node["ro"], node["backing_file_depth"],
            json.dumps(image_facts(node["image"]), sort_keys=True))


def qemu_img_specific(path):
    out = subprocess.run([QEMU_IMG, "info", "-U", "--output=json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["format-specific"]


@pytest.mark.parametrize("opts", ["compat=0.10",
                                  "compat=1.1,lazy_refcounts=on,refcount_bits=8",
                                  "compression_type=zstd,extended_l2=on,cluster_size=32k"])
def test_qcow2_chain_like_qemu(d, opts):
    base, top = os.path.join(d, "base.qcow2"), os.path.join(d, "top.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, base, "8M"],
                   check=True)
    subprocess.run([QEMU_IMG, "snapshot", "-c", "snap1", base], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2",
                    top], check=True)
    (sblk, snodes, sflat, shmp), (qblk, qnodes, qflat, qhmp) = query_both(
        d, f"file={top},if=none,id=d0")

    simage, qimage = sblk[0]["inserted"]["image"], qblk[0]["inserted"]["image"]
    assert simage["format-specific"] == qemu_img_specific(top)
    assert simage["backing-image"]["format-specific"] == qemu_img_specific(base)
    assert simage["backing-image"]["snapshots"][0]["name"] == "snap1"
    assert simage["backing-filename-format"] == "qcow2"
    assert image_facts(simage) == image_facts(qimage)
    assert sorted(map(node_facts, snodes)) == sorted(map(node_facts, qnodes))
    assert sorted(map(node_facts, sflat)) == sorted(map(node_facts, qflat))
    assert all("backing-image" not in n["image"] for n in sflat)
    assert {n["node-name"] for n in snodes} >= {sblk[0]["inserted"]["node-name"]}
    assert_hmp_like_qemu(shmp, qhmp)
    assert "Format specific information:\r\n    compat: " in shmp[1]


def hmp_comparable(text):
    """info block without what differs by design: node names and QEMU's removable-media
    line (Sen has no removable drives)."""
    lines = []
    for line in text.split("\r\n"):
        if line.startswith("d0 ("):
            line = "d0 " + line.split(": ", 1)[1]
        if not line.startswith("    Removable device:"):
            lines.append(line)
    return lines


def assert_hmp_like_qemu(shmp, qhmp):
    assert len(shmp) == len(qhmp) == 4
    for s, q in zip(shmp, qhmp):
        assert hmp_comparable(s) == hmp_comparable(q)
    assert shmp[1] == shmp[2] and shmp[3] == ""


def test_raw_has_no_format_specific(d):
    img = os.path.join(d, "d.raw")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    (sblk, snodes, _, shmp), (qblk, qnodes, _, qhmp) = query_both(
        d, f"file={img},format=raw,if=none,id=d0")
    assert "format-specific" not in sblk[0]["inserted"]["image"]
    assert image_facts(sblk[0]["inserted"]["image"]) == \
        image_facts(qblk[0]["inserted"]["image"])
    assert sorted(map(node_facts, snodes)) == sorted(map(node_facts, qnodes))
    assert_hmp_like_qemu(shmp, qhmp)


def test_json_filename_drive_like_qemu(d):
    """-drive file=json:{...} (commas doubled in the option string) opens the node the
    JSON describes; both VMMs then report the same nodes and images."""
    img = os.path.join(d, "j.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", img,
                    "4M"], check=True)
    name = "json:" + json.dumps({"driver": "qcow2", "file": {"driver": "file",
                                                             "filename": img}})
    (sblk, snodes, _, shmp), (qblk, qnodes, _, qhmp) = query_both(
        d, "file=" + name.replace(",", ",,") + ",if=none,id=d0")
    assert sblk[0]["inserted"]["image"]["format-specific"] == qemu_img_specific(img)
    assert sorted(map(node_facts, snodes)) == sorted(map(node_facts, qnodes))
    assert_hmp_like_qemu(shmp, qhmp)


def test_data_file_node_like_qemu(d):
    """An external data file is a node of its own in query-named-block-nodes, in both."""
    img, data = os.path.join(d, "i.qcow2"), os.path.join(d, "i.data")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", f"data_file={data}", img,
                    "4M"], check=True)
    (sblk, snodes, sflat, _), (qblk, qnodes, qflat, _) = query_both(
        d, f"file={img},if=none,id=d0")
    assert sblk[0]["inserted"]["image"]["format-specific"] == qemu_img_specific(img)
    assert data in [n["file"] for n in snodes]
    assert sorted(map(node_facts, snodes)) == sorted(map(node_facts, qnodes))
    assert sorted(map(node_facts, sflat)) == sorted(map(node_facts, qflat))
