"""Two replicas with --leader-elect: one acts, the other takes over when it dies."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from hack.ports import free_port
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_operator import finished_run, run_now, runs_of
from tests.integration.test_reruns_and_notifications import (
    notification,
    smtp,  # noqa: F401  (the fixture)
    smtp_env,
)
from tests.kube import Kubectl, wait_until
from tests.smtp_server import SmtpServer


def replica(k: Kubectl, log_dir: Path, *args: str, env: dict[str, str] | None = None) -> Operator:
    log_dir.mkdir()
    election = (
        "--leader-elect",
        "--leader-election-namespace",
        k.namespace or "",
        "--leader-election-id",
        "almanac-test",
    )
    return Operator(k.kubeconfig, k.namespace or "", log_dir, env=env, args=(*election, *args))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_only_the_lease_holder_acts_and_a_follower_takes_over(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
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


def test_a_frozen_leader_resumes_fenced_rewriting_nothing_and_mailing_nothing(
    k: Kubectl,
    crds: Kubectl,
    tmp_path: Path,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    """A leader paused (SIGSTOP) past its lease, while a follower took over and acted,
    must not write once resumed: finished runs and their notifications stay as the new
    leader left them, and no e-mail goes out twice."""
    first = replica(k, tmp_path / "a", env=smtp_env(smtp))
    second = replica(k, tmp_path / "b", env=smtp_env(smtp))
    try:
        first.start()
        second.start(until="waiting for leadership")
        k.apply(
            scheduled_job(
                "frozen",
                services=[service("x")],
                notifications={"onSuccess": True},
                successfulRunsHistoryLimit=5,
            )
        )
        before = finished_run(k, run_now(k, "frozen")["metadata"]["name"])["metadata"]["name"]
        smtp.wait_for(1, timeout=60)
        # Frozen only once the delivery is recorded: a leader frozen between the SMTP
        # server's acceptance and that record leaves the mail Pending, and the next
        # leader sends it again (at least once; the same Message-ID lets mail dedupe it).
        wait_until("its e-mail recorded", lambda: notification(k, before).get("state") == "Sent")
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        wait_until(
            "the follower to lead", lambda: "almanac operator serving" in second.log(), timeout=60
        )
        during = finished_run(k, run_now(k, "frozen")["metadata"]["name"])["metadata"]["name"]
        wait_until("its e-mail", lambda: notification(k, during).get("state") == "Sent", 60)
        snapshot = {name: k.get("sjr", name)["status"] for name in (before, during)}
        first.proc.send_signal(signal.SIGCONT)
        wait_until("the old leader to exit", lambda: first.proc.poll() is not None, timeout=60)
        assert first.proc.returncode == 1
        after = {name: k.get("sjr", name)["status"] for name in (before, during)}
        assert json.dumps(after, sort_keys=True) == json.dumps(snapshot, sort_keys=True)
        assert len(smtp.received) == 2
    except AssertionError:
        print(
            f"--- old leader log ---\n{first.log()[-5000:]}\n--- new leader log ---\n"
            f"{second.log()[-5000:]}"
        )
        raise
    finally:
        if first.proc is not None and first.proc.poll() is None:
            first.proc.send_signal(signal.SIGCONT)
        first.stop()
        second.stop()


def test_a_failover_in_the_middle_of_deliveries_sends_each_email_once(
    k: Kubectl,
    crds: Kubectl,
    tmp_path: Path,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    """The leader dies (SIGKILL) with three deliveries claimed and waiting on the SMTP
    server; the new leader sends those three once each and not the one already sent."""
    first = replica(k, tmp_path / "a", env=smtp_env(smtp))
    second = replica(k, tmp_path / "b", env=smtp_env(smtp))
    try:
        first.start()
        second.start(until="waiting for leadership")
        k.apply(
            scheduled_job(
                "failover",
                services=[service("x")],
                notifications={"onSuccess": True},
                successfulRunsHistoryLimit=10,
            )
        )
        sent = finished_run(k, run_now(k, "failover")["metadata"]["name"])["metadata"]["name"]
        wait_until("its e-mail", lambda: notification(k, sent).get("state") == "Sent", 60)
        smtp.hold()
        in_flight = [run_now(k, "failover")["metadata"]["name"] for _ in range(3)]
        smtp.wait_held(3, timeout=90)
        claims = {name: notification(k, name) for name in in_flight}
        assert all(c.get("state") == "Pending" and c.get("attempts") == 1 for c in claims.values())
        first.kill()
        smtp.release()
        wait_until(
            "the follower to lead", lambda: "almanac operator serving" in second.log(), timeout=60
        )
        for name in in_flight:
            wait_until(
                f"{name}'s e-mail", lambda n=name: notification(k, n).get("state") == "Sent", 90
            )
        ids = sorted(str(m.message["Message-ID"]) for m in smtp.received)
        assert len(ids) == 4 and len(set(ids)) == 4, ids
        for name in [sent, *in_flight]:
            assert sum(f"<{name}." in i for i in ids) == 1, (name, ids)
    except AssertionError:
        print(
            f"--- old leader log ---\n{first.log()[-5000:]}\n--- new leader log ---\n"
            f"{second.log()[-5000:]}"
        )
        raise
    finally:
        smtp.release()
        first.stop()
        second.stop()


def test_a_leader_whose_main_loop_dies_exits_non_zero_and_releases_the_lease_at_once(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    """A configuration error found once the replica leads (an SMTP port that is not a
    number) stops kopf's main loop: the process exits 1 with the message naming the
    variable, and gives the Lease up rather than letting it expire (a follower would
    otherwise wait out its 15 s while nobody serves)."""
    leader = replica(
        k, tmp_path / "a", env={"ALMANAC_SMTP_HOST": "127.0.0.1", "ALMANAC_SMTP_PORT": "smtp"}
    )
    leader.launch()
    assert leader.proc is not None
    try:
        leader.proc.wait(timeout=60)
        log = leader.log()
        assert "became the leader" in log
        assert "ALMANAC_SMTP_PORT: 'smtp' is not a number" in log
        assert leader.proc.returncode == 1
        spec = k.json("get", "lease", "almanac-test")["spec"]
        assert spec.get("holderIdentity") is None, spec  # released: an expired one keeps it
        assert spec["leaseDurationSeconds"] == 1
    except AssertionError:
        print(f"--- leader log ---\n{leader.log()[-5000:]}")
        raise
    finally:
        leader.stop()
