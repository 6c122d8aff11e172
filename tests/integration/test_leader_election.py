"""Two replicas with --leader-elect: one acts, the other takes over when it dies."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job
from tests.integration.test_operator import run_now, runs_of
from tests.kube import Kubectl, wait_until


def replica(k: Kubectl, log_dir: Path) -> Operator:
    log_dir.mkdir()
    return Operator(
        k.kubeconfig,
        k.namespace or "",
        log_dir,
        args=(
            "--leader-elect",
            "--leader-election-namespace",
            k.namespace or "",
            "--leader-election-id",
            "almanac-test",
        ),
    )


def test_only_the_lease_holder_acts_and_a_follower_takes_over(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    first, second = replica(k, tmp_path / "a"), replica(k, tmp_path / "b")
    try:
        first.start()
        second.start(until="waiting for leadership")
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
    finally:
        first.stop()
        second.stop()
