"""Two replicas with --leader-elect: one acts, the other takes over when it dies."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job
from tests.integration.test_operator import run_now, runs_of
from tests.kube import Kubectl, wait_until


def replica(k: Kubectl, log_dir: Path, *args: str) -> Operator:
    log_dir.mkdir()
    election = (
        "--leader-elect",
        "--leader-election-namespace",
        k.namespace or "",
        "--leader-election-id",
        "almanac-test",
    )
    return Operator(k.kubeconfig, k.namespace or "", log_dir, args=(*election, *args))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_only_the_lease_holder_acts_and_a_follower_takes_over(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        liveness = f"http://127.0.0.1:{sock.getsockname()[1]}/healthz"
    first = replica(k, tmp_path / "a")
    second = replica(k, tmp_path / "b", "--liveness", liveness)
    try:
        first.start()
        second.start(until="waiting for leadership")
        # A healthy standby answers its liveness probe: it must not be restarted.
        wait_until("the standby's probe", lambda: healthy(liveness), timeout=10)
        lease = k.json("get", "lease", "almanac-test")
        assert lease["spec"]["holderIdentity"].endswith(str(first.proc.pid if first.proc else 0))
        k.apply(scheduled_job("once"))
        run_now(k, "once")
        assert "almanac operator serving" not in second.log()
        assert len(runs_of(k, "once")) == 1  # two acting replicas would make two
        first.kill()  # no release: the follower waits out the lease duration
        wait_until(
            "the follower to lead", lambda: "almanac operator serving" in second.log(), timeout=40
        )
        run_now(k, "once")
        assert len(runs_of(k, "once")) == 2
        wait_until("the leader's own probe on the same URL", lambda: healthy(liveness), 10)
    except AssertionError:
        print(
            f"--- leader log ---\n{first.log()[-4000:]}\n--- follower log ---\n"
            f"{second.log()[-6000:]}"
        )
        raise
    finally:
        first.stop()
        second.stop()
