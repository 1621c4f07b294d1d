"""A node named in a snapshot job is free again when the job ends, against QEMU 7.2.

snapshot-save / -load / -delete find their nodes by node name and hold them only while the
job runs: afterwards blockdev-del deletes a blockdev-add node the jobs used, as QEMU allows
(Sen once gave such a node a device's backend for good, and blockdev-del then answered
"Node q0 is in use").  The same QMP sequence runs in both VMMs; every answer (return or
error class + text, and each job's final status and error) must match.  Skips without
/dev/kvm (sen) or QEMU 7.2."""
import os
import subprocess
import time

import pytest

from vs_qemu import (COMMON, NEEDS_SEN_AND_QEMU, QEMU_IMG, VMMS, run_steps, short_dir,
                     start_with_qmp)

pytestmark = NEEDS_SEN_AND_QEMU



@pytest.fixture
def d():
    yield from short_dir("bsl")


def add_nodes():
    # {img}: each VMM works on an image of its own.
    return [("blockdev-add", {"driver": "file", "filename": "{img}",
                              "node-name": "qf"}),
            ("blockdev-add", {"driver": "qcow2", "file": "qf", "node-name": "q0"})]


def job(verb, job_id, tag, **more):
    return (verb, dict({"job-id": job_id, "tag": tag, "devices": ["q0"]}, **more))


def delete(name):
    return ("blockdev-del", {"node-name": name})


def wait_concluded(c, job_id, timeout=30):
    """The job's final (status, error), once it concluded; then dismisses it."""
    end = time.monotonic() + timeout
    while True:
        [info] = [j for j in c.cmd("query-jobs") if j["id"] == job_id]
        if info["status"] == "concluded":
            c.cmd("job-dismiss", id=job_id)
            return info["status"], info.get("error")
        assert time.monotonic() < end, info
        time.sleep(0.05)


def answers(d, name, base, steps):
    img = os.path.join(d, name + ".qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", img, "1M"], check=True)
    proc, c = start_with_qmp(d, name, base + COMMON)

    def shape(cmd, args, ret):
        if cmd.startswith("snapshot-"):
            return wait_concluded(c, args["job-id"])
        if cmd == "query-named-block-nodes":
            return sorted(n["node-name"] for n in ret if not n["node-name"].startswith("#"))
        return ret

    return run_steps(proc, c, [(cmd, {k: v.replace("{img}", img) if isinstance(v, str) else v
                                      for k, v in args.items()})
                               for cmd, args in steps], shape)


def scenarios():
    nodes = ("query-named-block-nodes", {})
    return {
        # The failing case of old: save, then delete the nodes.
        "save-then-del": add_nodes() + [
            job("snapshot-save", "s1", "t1", vmstate="q0"),
            delete("q0"), delete("qf"), nodes,
            add_nodes()[0],           # the name is free again
        ],
        # Every job verb, and a job that fails (no such tag), leave the node free too.
        "all-jobs-then-del": add_nodes() + [
            job("snapshot-save", "s1", "t1", vmstate="q0"),
            job("snapshot-load", "l1", "t1", vmstate="q0"),
            job("snapshot-load", "l2", "nosuch", vmstate="q0"),
            job("snapshot-delete", "x1", "t1"),
            delete("q0"), delete("qf"), nodes,
        ],
        # HMP savevm/loadvm take every writable root node, one no device uses included
        # (QEMU's bdrv_next); the file node below it takes no part.
        "hmp-savevm-then-del": add_nodes() + [
            ("human-monitor-command", {"command-line": "savevm s9"}),
            ("human-monitor-command", {"command-line": "loadvm s9"}),
            job("snapshot-load", "l9", "s9", vmstate="q0"),
            delete("q0"), delete("qf"), nodes,
        ],
        # A job naming the file node below: it cannot take snapshots; still free after.
        "failed-job-then-del": add_nodes() + [
            ("snapshot-save", {"job-id": "s2", "tag": "t2", "vmstate": "qf",
                               "devices": ["qf"]}),
            ("snapshot-save", {"job-id": "s3", "tag": "t3", "vmstate": "nosuch",
                               "devices": ["nosuch"]}),
            delete("q0"), delete("qf"), nodes,
        ],
    }


@pytest.mark.parametrize("scenario", ["save-then-del", "all-jobs-then-del",
                                      "failed-job-then-del", "hmp-savevm-then-del"])
def test_snapshot_job_leaves_node_free_like_qemu(d, scenario):
    steps = scenarios()[scenario]
    got = {name: answers(d, name, base, steps) for name, base in VMMS}
    for i, (s, q) in enumerate(zip(got["sen"], got["qemu"])):
        assert s == q, (i, steps[i], s, q)
    assert len(got["sen"]) == len(steps)
    # The point of the test: the deletes after the jobs succeeded.
    dels = [r for (cmd, _), r in zip(steps, got["sen"]) if cmd == "blockdev-del"]
    assert dels and all(r == ("ok", {}) for r in dels), got["sen"]
