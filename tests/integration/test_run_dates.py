"""Runs that know their date, and runs that are late (issue 16, parts 1 and 4): the real
operator, the real control plane, and a real SMTP server on loopback, read back as a
user would with kubectl."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hack.ports import free_port
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_metrics import scrape
from tests.integration.test_operator import finished_run, reasons, run_now, runs_of, utc
from tests.integration.test_reruns_and_notifications import smtp_env
from tests.kube import Kubectl, wait_until
from tests.smtp_server import SmtpServer

VARIABLES = (
    "ALMANAC_SCHEDULED_TIME",
    "ALMANAC_SCHEDULED_DATE",
    "ALMANAC_TIME_ZONE",
    "ALMANAC_SCHEDULED_JOB",
    "ALMANAC_RUN",
    "ALMANAC_SERVICE",
    "ALMANAC_TRIGGER",
    "ALMANAC_PARENT_RUN",
)


def told(container: dict[str, Any]) -> dict[str, str]:
    """The ALMANAC_* variables a container of a Job gets, by name."""
    return {
        e["name"]: e.get("value", "")
        for e in container.get("env") or []
        if e["name"].startswith("ALMANAC_")
    }


def jobs_of(k: Kubectl, run: str) -> dict[str, dict[str, Any]]:
    """The run's batch/v1 Jobs, by service."""
    return {
        j["metadata"]["labels"]["almanac.dev/service"]: j
        for j in k.items("jobs", "-l", f"almanac.dev/run={run}")
    }


def dated_service() -> dict[str, Any]:
    """A service with an init container and a container that sets ALMANAC_RUN itself."""
    body = service("load")
    pod = body["jobTemplate"]["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "wait", "image": "busybox", "command": ["true"]}]
    pod["containers"][0]["env"] = [{"name": "ALMANAC_RUN", "value": "replay"}]
    return body


def test_a_fired_runs_jobs_know_its_instant_and_local_date_and_a_rerun_keeps_them(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    start_operator(ALMANAC_RERUN_DELAY_SECONDS="2")
    zone = "Asia/Kolkata"  # +05:30: from 18:30 UTC on, its date is the next day's
    k.apply(
        scheduled_job(
            "dated",
            "* * * * *",
            timeZone=zone,
            services=[service("extract", exit_code=1), dated_service()],
            failedRunsHistoryLimit=5,
        )
    )
    fired = wait_until(
        "a run of the schedule",
        lambda: next((r for r in runs_of(k, "dated") if r["spec"]["trigger"] == "Schedule"), None),
        timeout=90,
    )
    k.run("patch", "sj", "dated", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    name, instant = fired["metadata"]["name"], fired["spec"]["scheduledTime"]
    date = utc(instant).astimezone(ZoneInfo(zone)).date().isoformat()
    parent = finished_run(k, name)
    assert parent["status"]["phase"] == "Failed"  # extract fails; load is still started
    jobs = jobs_of(k, name)
    assert sorted(jobs) == ["extract", "load"]
    for service_name, job in jobs.items():
        assert job["metadata"]["annotations"]["almanac.dev/scheduled-time"] == instant
        pod = job["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            expected = {
                "ALMANAC_SCHEDULED_TIME": instant,
                "ALMANAC_SCHEDULED_DATE": date,
                "ALMANAC_TIME_ZONE": zone,
                "ALMANAC_SCHEDULED_JOB": "dated",
                "ALMANAC_RUN": name,
                "ALMANAC_SERVICE": service_name,
                "ALMANAC_TRIGGER": "Schedule",
                "ALMANAC_PARENT_RUN": "",
            }
            if container["name"] == "main" and service_name == "load":
                expected["ALMANAC_RUN"] = "replay"  # its own value is kept
            assert told(container) == expected
            assert [n for n in VARIABLES if n in told(container)] == list(VARIABLES)

    k.run("annotate", "sjr", name, "almanac.dev/rerun=now")
    child = finished_run(k, f"{name}-r1")
    assert child["spec"]["originalScheduledTime"] == instant
    assert child["spec"]["timeZone"] == zone
    assert utc(child["spec"]["scheduledTime"]) > utc(instant)  # it ran later...
    rerun_jobs = jobs_of(k, f"{name}-r1")
    assert sorted(rerun_jobs) == ["extract", "load"]
    for service_name, job in rerun_jobs.items():
        # ...and still stands for its parent's instant and date.
        assert job["metadata"]["annotations"]["almanac.dev/scheduled-time"] == instant
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert told(container) | {"ALMANAC_RUN": ""} == {
            "ALMANAC_SCHEDULED_TIME": instant,
            "ALMANAC_SCHEDULED_DATE": date,
            "ALMANAC_TIME_ZONE": zone,
            "ALMANAC_SCHEDULED_JOB": "dated",
            "ALMANAC_RUN": "",
            "ALMANAC_SERVICE": service_name,
            "ALMANAC_TRIGGER": "Rerun",
            "ALMANAC_PARENT_RUN": name,
        }
        expected_run = "replay" if service_name == "load" else f"{name}-r1"
        assert told(container)["ALMANAC_RUN"] == expected_run


def test_a_run_now_is_dated_by_when_it_was_asked_for(k: Kubectl, operator: Operator) -> None:
    zone = "America/New_York"
    k.apply(scheduled_job("adhoc", timeZone=zone))
    run = run_now(k, "adhoc")
    name, instant = run["metadata"]["name"], run["spec"]["scheduledTime"]
    job = wait_until("the run's Job", lambda: jobs_of(k, name).get("main"))
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = told(container)
    assert env["ALMANAC_SCHEDULED_TIME"] == instant
    assert (
        env["ALMANAC_SCHEDULED_DATE"] == utc(instant).astimezone(ZoneInfo(zone)).date().isoformat()
    )
    assert env["ALMANAC_TRIGGER"] == "RunNow"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def late_state(k: Kubectl, run: str) -> dict[str, Any]:
    return ((k.get("sjr", run) or {}).get("status") or {}).get("lateNotification") or {}


def test_a_run_that_outlives_its_deadline_is_late_once_with_its_event_metric_and_email(
    k: Kubectl, start_operator: Callable[..., Operator], smtp: SmtpServer
) -> None:
    port = free_port()
    operator = start_operator("--metrics-port", str(port), **smtp_env(smtp))
    k.apply(
        scheduled_job(
            "wedged",
            services=[service("slow", duration="300s")],
            runDeadline="5s",
            concurrencyPolicy="Forbid",
            notifications={"onLate": True, "onFailure": True, "to": ["oncall@example.com"]},
        )
    )
    run = run_now(k, "wedged")
    name = run["metadata"]["name"]
    late = wait_until(
        "the Late condition",
        lambda: next(
            (
                c
                for c in (k.get("sjr", name) or {}).get("status", {}).get("conditions") or []
                if c["type"] == "Late"
            ),
            None,
        ),
        timeout=30,
    )
    assert late["status"] == "True" and late["reason"] == "RunDeadlineExceeded"
    # A timer woke the operator at the deadline: no resync (5 minutes) was waited for.
    became = utc(late["lastTransitionTime"]) - utc(run["spec"]["scheduledTime"])
    assert 5 <= became.total_seconds() < 15
    assert (k.get("sjr", name) or {})["status"]["phase"] == "Running"
    wait_until("the RunLate Event on the job", lambda: "RunLate" in reasons(k, "wedged"))

    [mail] = smtp.wait_for(1, timeout=30)
    assert mail.rcpt_tos == ("oncall@example.com",)
    assert str(mail.message["Subject"]).startswith(
        f"[Almanac] LATE {k.namespace}/wedged run {name}"
    )
    body = mail.message.get_content()
    assert "runDeadline 5s" in body and f"kubectl -n {k.namespace} logs job/{name}-slow" in body
    wait_until("the e-mail recorded as Sent", lambda: late_state(k, name).get("state") == "Sent")

    def late_count() -> float | None:
        labels = (("namespace", k.namespace), ("scheduledjob", "wedged"))
        return scrape(port).get(("almanac_runs_late_total", labels))

    wait_until("almanac_runs_late_total", lambda: late_count() == 1.0)

    # A restarted operator neither marks it again nor mails again; a run-now that the
    # late run keeps out under Forbid says why (refused, not a missed fire).
    operator.kill()
    operator.start()
    k.run("annotate", "sj", "wedged", "almanac.dev/run-now=again", "--overwrite")
    [refused] = wait_until(
        "the run-now Forbid refused",
        lambda: [e for e in k.events("wedged") if e["reason"] == "RunNowRefused"],
    )
    assert f"run {name} is still active (concurrencyPolicy Forbid)" in refused["message"]
    assert f"late past its runDeadline 5s: {name} (due by " in refused["message"]
    assert "missedSchedules" not in k.get("sj", "wedged")["status"]
    assert [e["reason"] for e in k.events("wedged")].count("RunLate") == 1
    assert len(smtp.received) == 1
    assert [
        c["type"]
        for c in k.get("sjr", name)["status"]["conditions"]  # type: ignore[index]
    ] == ["Late"]


def test_a_run_that_ends_in_time_is_never_late(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("quick", runDeadline="10m"))
    run = finished_run(k, run_now(k, "quick")["metadata"]["name"])
    assert run["status"]["phase"] == "Succeeded"
    assert "conditions" not in run["status"] and "lateNotification" not in run["status"]
    assert "RunLate" not in reasons(k, "quick")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1.5h", "should match"),
        ("0s", '"0s": must be a duration from 1s to 744h (31 days)'),
        ("745h", '"745h": must be a duration from 1s to 744h (31 days)'),
    ],
)
def test_the_api_server_refuses_a_run_deadline_out_of_form_or_bounds(
    k: Kubectl, value: str, words: str
) -> None:
    """The CRD alone (no webhook here): the pattern, and the CEL rule's duration()."""
    error = k.apply_expecting_error(scheduled_job("bad", runDeadline=value))
    assert "spec.runDeadline" in error and words in error
