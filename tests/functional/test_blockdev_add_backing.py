"""blockdev-add of a qcow2 node with QEMU's `backing` option, against QEMU 7.2.

`backing` names the backing node (instead of the backing file the image names), describes
one inline (opened read-only), or is null for none.  An unknown node name fails with
QEMU's "Could not open backing file: Cannot find device='x' nor node-name='x'"; a node
used as a backing node cannot be deleted ("Node 'x' is busy: node is used as backing hd
of 'y'") until its user is; raw nodes take no `backing`.  The same QMP sequence runs in
both VMMs and every answer (return or error class + text, and each node's backing depth)
must match.  What the guest reads through the option is checked by
interop/test_img_backing_option.py.  Skips without /dev/kvm (sen) or QEMU 7.2."""
import os
import subprocess

import pytest

from vs_qemu import (COMMON, NEEDS_SEN_AND_QEMU, QEMU_IMG, VMMS, run_steps, short_dir,
                     start_with_qmp)

pytestmark = NEEDS_SEN_AND_QEMU



@pytest.fixture
def d():
    yield from short_dir("bab")


def images(d, name):
    """base, an overlay naming it, and another image, fresh for each VMM (QEMU locks the
    images it opens, so the VMMs must not share them)."""
    out = {}
    for img in ("base", "ov", "other"):
        out[img] = os.path.join(d, f"{name}-{img}.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", out["base"], "1M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", out["other"], "1M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", out["base"], "-F", "qcow2",
                    out["ov"]], check=True)
    return out


def fill(value, imgs):
    if isinstance(value, str):
        for k, v in imgs.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {k: fill(v, imgs) for k, v in value.items()}
    return value


def answers(d, name, base, steps):
    imgs = images(d, name)
    proc, c = start_with_qmp(d, name, base + COMMON)

    def shape(cmd, args, ret):
        if cmd == "query-named-block-nodes":
            return sorted((n["node-name"], n["backing_file_depth"]) for n in ret
                          if not n["node-name"].startswith("#"))
        return ret

    return run_steps(proc, c, [(cmd, fill(args, imgs)) for cmd, args in steps], shape)


def qcow2(name, file, **more):
    return ("blockdev-add", dict({"driver": "qcow2", "node-name": name,
                                  "file": {"driver": "file", "filename": file}}, **more))


def delete(name):
    return ("blockdev-del", {"node-name": name})


NODES = ("query-named-block-nodes", {})

SCENARIOS = {
    "by-node-name": [
        ("blockdev-add", {"driver": "file", "filename": "{base}", "node-name": "bf"}),
        ("blockdev-add", {"driver": "qcow2", "file": "bf", "node-name": "base"}),
        qcow2("ov", "{ov}", backing="nosuch"),
        qcow2("ov", "{ov}", backing="base"),
        NODES,
        delete("base"),              # ov uses it as its backing node
        delete("bf"),
        delete("ov"),
        delete("base"),              # free now
        delete("bf"),
        NODES,
    ],
    "null-and-inline": [
        qcow2("ov", "{ov}", backing=None),
        NODES,
        delete("ov"),
        qcow2("ov", "{ov}", backing={"driver": "qcow2",
                                     "file": {"driver": "file", "filename": "{other}"}}),
        NODES,
        delete("ov"),
        qcow2("ov", "{ov}"),         # the image's own backing file
        NODES,
    ],
    "refused": [
        ("blockdev-add", {"driver": "file", "filename": "{other}", "node-name": "of"}),
        ("blockdev-add", {"driver": "raw", "file": "of", "node-name": "r0",
                          "backing": None}),
        ("blockdev-add", {"driver": "file", "filename": "{base}", "node-name": "f0",
                          "backing": None}),
        qcow2("ov", "{ov}", backing={"driver": "qcow2",
                                     "file": {"driver": "file", "filename": "{d}/nosuch"}}),
        NODES,
    ],
    # QEMU's BlockdevRefOrNull: a number or a boolean is no node name.
    "wrong-type": [
        qcow2("ov", "{ov}", backing=5),
        qcow2("ov", "{ov}", backing=True),
        qcow2("ov", "{ov}", backing=[]),
        qcow2("ov", "{ov}", backing={"driver": "qcow2", "backing": 0,
                                     "file": {"driver": "file", "filename": "{other}"}}),
        qcow2("ov", "{ov}", backing=None),   # refused ones left nothing behind
        NODES,
    ],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_blockdev_add_backing_like_qemu(d, scenario):
    steps = SCENARIOS[scenario]
    got = {}
    for name, base in VMMS:
        got[name] = answers(d, name, base, [(c, fill(a, {"d": d})) for c, a in steps])
    for i, (s, q) in enumerate(zip(got["sen"], got["qemu"])):
        if isinstance(q[1], str):   # error texts name each VMM's own images
            q = (q[0], q[1].replace("/qemu-", "/sen-"))
        assert s == q, (i, steps[i], s, q)
    assert len(got["sen"]) == len(steps)
    assert any(kind == "ok" for kind, _ in got["sen"][:-1]), got["sen"]


@pytest.mark.parametrize("backing", ["5", "false", "[]", '{"driver": "qcow2", "backing": 1, '
                                     '"file": {"driver": "file", "filename": "IMG"}}'])
def test_blockdev_json_backing_type_like_qemu(d, backing):
    """-blockdev's JSON form: the same type error as QEMU's, naming the option."""
    img = os.path.join(d, "img.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M"], check=True)
    arg = ('{"driver": "qcow2", "node-name": "n", "file": {"driver": "file", "filename": '
           f'"{img}"}}, "backing": {backing.replace("IMG", img)}}}')
    errs = {}
    for name, base in VMMS:
        r = subprocess.run(base + COMMON + ["-blockdev", arg], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0, (name, r.stderr)
        errs[name] = r.stderr.strip().split(": ", 1)[1]
    assert errs["sen"] == errs["qemu"]
    assert errs["sen"].endswith("Invalid parameter type for 'backing', expected: "
                                "BlockdevRefOrNull"), errs
