"""Crash consistency of `sen-img amend`: kill -9 it at every write it makes.

docs/qcow2.md's rule, "a crash at any point leaves only leaks", holds for amend too:
refcount_bits changes (new table and blocks written beside the old ones, one header write
switches), compat downgrades (zero clusters expanded before the header says version 2),
upgrades and lazy_refcounts.  A time-based kill rarely lands inside amend, which takes
milliseconds, so strace's fault injection kills it at the Nth write-like system call
(pwrite, fdatasync, ftruncate, ...), for every N the run makes (or an even sample of them
by default; SEN_AMEND_CRASH_ALL=1 takes them all).  After each kill:
  - `qemu-img check` finds no corruption (leaks allowed),
  - every guest-visible byte is unchanged (active layer and snapshots, by qemu-img),
  - the header holds the old value or the new one, nothing else,
  - `sen-img check -r leaks` leaves the image clean for qemu-img, and amend run again
    completes the change.
Skips without strace, qemu-img or qemu-io.
"""
import os
import shutil
import subprocess

import pytest
from img_util import QEMU_IMG, QEMU_IO, SEN_IMG, needs_tools, run

STRACE = shutil.which("strace")
pytestmark = needs_tools() + [
    pytest.mark.skipif(not STRACE, reason="strace not installed (scripts/install-deps.sh)")]

WRITES = "pwrite64,pwritev,pwritev2,write,writev,fsync,fdatasync,ftruncate,fallocate," \
         "io_submit,io_uring_enter,sync_file_range,rename,unlink"
SAMPLE = 8  # kill points per case unless SEN_AMEND_CRASH_ALL is set


def qemu_io(img, *cmds):
    run(QEMU_IO, *[a for c in cmds for a in ("-c", c)], img)


def snap(img, name):
    run(QEMU_IMG, "snapshot", "-c", name, img)


def build_refcount_small(d):
    img = d / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "4M")
    qemu_io(img, "write -P 7 0 1M", "write -P 8 2M 512k")
    return img, []


def build_refcount_snap(d):
    img = d / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "32M")
    qemu_io(img, "write -P 1 0 4M", "write -P 2 10M 3M")
    snap(img, "s1")
    qemu_io(img, "write -P 3 1M 2M", "write -z 12M 64k", "discard 10M 256k")
    snap(img, "s2")
    qemu_io(img, "write -P 4 20M 1M")
    return img, ["s1", "s2"]


def build_downgrade(d):
    """Zero clusters of both kinds over a backing file: the downgrade expands them."""
    back = d / "back.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", back, "8M")
    qemu_io(back, "write -P 5 0 8M")
    img = d / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", back.name,
        "-F", "qcow2", img)
    qemu_io(img, "write -P 6 0 1M", "write -z 256k 128k", "write -z 2M 512k",
            "write -P 9 4M 64k")
    snap(img, "s1")
    qemu_io(img, "write -z 4M 64k", "write -z 6M 32k")
    return img, ["s1"]


def build_v2(d):
    img = d / "base.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", img,
        "16M")
    qemu_io(img, "write -P 3 0 2M")
    snap(img, "s1")
    qemu_io(img, "write -P 4 1M 2M")
    return img, ["s1"]


# name: (image builder, amend options, the info field that changes: (old, new))
CASES = {
    "refcount-16-to-1": (build_refcount_small, "refcount_bits=1", ("refcount-bits", 16, 1)),
    "refcount-16-to-64-snapshots": (build_refcount_snap, "refcount_bits=64",
                                    ("refcount-bits", 16, 64)),
    "refcount-16-to-4-snapshots": (build_refcount_snap, "refcount_bits=4",
                                   ("refcount-bits", 16, 4)),
    "compat-downgrade-zeroes-backing": (build_downgrade, "compat=0.10", ("compat", "1.1", "0.10")),
    "compat-upgrade": (build_v2, "compat=1.1", ("compat", "0.10", "1.1")),
    "lazy-refcounts-on": (build_refcount_small, "lazy_refcounts=on",
                          ("lazy-refcounts", False, True)),
}


def info_field(img, field):
    import json
    out = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    specific = out["format-specific"]["data"]
    if field == "lazy-refcounts":
        return specific.get(field, False)
    return specific[field]


def contents(d, img, snapshots, tag):
    """Raw copies of what the guest sees: the active layer and each snapshot."""
    out = {}
    for sn in [None] + snapshots:
        raw = d / f"{tag}-{sn or 'active'}.raw"
        args = ["-l", f"snapshot.name={sn}"] if sn else []
        run(QEMU_IMG, "convert", "-O", "raw", *args, img, raw)
        out[sn] = raw
    return out


def same_contents(a, b):
    for sn in a:
        if run("cmp", "-s", a[sn], b[sn], check=False).returncode != 0:
            return sn or "active layer"
    return None


def write_count(img, opts):
    """The write-like system calls a whole amend makes (on a copy of img)."""
    log = img.parent / "count.strace"
    run(STRACE, "-f", "-qq", "-o", log, "-e", f"trace={WRITES}", SEN_IMG, "amend", "-o",
        opts, img)
    with open(log) as f:
        return sum(1 for line in f if "(" in line and "resumed>" not in line)


def kill_points(total):
    if os.environ.get("SEN_AMEND_CRASH_ALL") or total <= SAMPLE:
        return list(range(1, total + 1))
    step = (total - 1) / (SAMPLE - 1)
    return sorted({1 + round(i * step) for i in range(SAMPLE)})


@pytest.mark.parametrize("case", sorted(CASES))
def test_amend_killed_at_every_write(tmp_path, monkeypatch, case):
    # A relative backing file name resolves against the image's directory: stay in it.
    monkeypatch.chdir(tmp_path)
    build, opts, (field, old, new) = CASES[case]
    base, snapshots = build(tmp_path)
    assert info_field(base, field) == old
    want = contents(tmp_path, base, snapshots, "want")
    img = tmp_path / "crash.qcow2"
    shutil.copy(base, img)
    total = write_count(img, opts)
    assert total > 0 and info_field(img, field) == new  # the amend does write
    killed = 0
    for n in kill_points(total):
        shutil.copy(base, img)
        p = run(STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={WRITES}",
                "-e", f"inject={WRITES}:signal=KILL:when={n}",
                SEN_IMG, "amend", "-o", opts, img, check=False)
        what = f"{case}: killed at write {n} of {total}"
        assert p.returncode in (0, 128 + 9, -9), f"{what}: {p.returncode}\n{p.stderr}"
        killed += p.returncode != 0
        q = run(QEMU_IMG, "check", img, check=False)
        assert q.returncode in (0, 3), f"{what}: qemu-img check:\n{q.stdout}{q.stderr}"
        assert info_field(img, field) in (old, new), what
        diff = same_contents(want, contents(tmp_path, img, snapshots, "got"))
        assert diff is None, f"{what}: the {diff} changed"
        r = run(SEN_IMG, "check", "-r", "leaks", img, check=False)
        assert r.returncode == 0, f"{what}: sen-img check -r leaks:\n{r.stdout}{r.stderr}"
        run(QEMU_IMG, "check", img)
        run(SEN_IMG, "amend", "-o", opts, img)
        run(QEMU_IMG, "check", img)
        assert info_field(img, field) == new, what
        diff = same_contents(want, contents(tmp_path, img, snapshots, "got"))
        assert diff is None, f"{what}, amended again: the {diff} changed"
    # Not vacuous: the injected kills did land inside amend.
    assert killed > 0, case
