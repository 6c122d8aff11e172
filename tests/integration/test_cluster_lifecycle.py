"""`hack/cluster.py up` then `down` in a state folder of its own, beside the session's.

What `make cluster-up` / `make cluster-down` promise: the fake node is Ready through the
written kubeconfig, and after `down` no process of ours is left (found by what it runs
and where, not only by the pids the script recorded) and the state is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import Kubectl

REPO = Path(__file__).resolve().parent.parent.parent


def cluster(state: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "hack" / "cluster.py"), command, "--state", str(state)],
        text=True,
        capture_output=True,
    )


def processes_in(state: Path) -> dict[int, str]:
    """Every live process whose command line or working folder is inside state."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(state) in cmdline or cwd.startswith(str(state)):
            found[int(proc.name)] = cmdline[:120]
    return found


def running(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by init) is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "cluster"
    yield folder
    if folder.exists():  # the test failed before `down`: don't leave processes behind
        cluster(folder, "down")


def test_cluster_up_gives_a_ready_node_and_down_leaves_no_process(state: Path) -> None:
    up = cluster(state, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    started = processes_in(state)
    assert len(started) >= 5, f"expected etcd, apiserver, KCM, scheduler and kwok: {started}"

    nodes = Kubectl(state / "kubeconfig").json("get", "nodes")["items"]
    ready = {
        node["metadata"]["name"]: condition["status"]
        for node in nodes
        for condition in node["status"]["conditions"]
        if condition["type"] == "Ready"
    }
    assert ready == {"kwok-node-0": "True"}

    down = cluster(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_in(state) == {}
    assert [pid for pid in started if running(pid)] == []
    assert not state.exists()
