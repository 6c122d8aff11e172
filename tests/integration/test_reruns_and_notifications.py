"""Reruns, run-now and e-mail notifications: the real operator, the real control plane
and a real SMTP server on loopback (aiosmtpd), read back as an on-call person would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from tests.integration.conftest import Operator
from tests.integration.objects import first_rerun_of_a_run_now, scheduled_job, service
from tests.integration.test_operator import (
    finished_run,
    reasons,
    run_now,
    runs_of,
    service_phases,
    utc,
)
from tests.kube import Kubectl, wait_until
from tests.smtp_server import SmtpServer

PIPELINE = [service("extract"), service("transform", mandatory=True, exit_code=1), service("load")]


def test_a_rerun_is_a_child_run_one_minute_later_that_runs_once(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("nightly", services=PIPELINE))
    parent = finished_run(k, run_now(k, "nightly")["metadata"]["name"])
    name = parent["metadata"]["name"]
    assert parent["status"]["phase"] == "Failed"

    k.run("annotate", "sjr", name, "almanac.dev/rerun=now")
    child_name = first_rerun_of_a_run_now(name)
    child = wait_until("the child run", lambda: k.get("sjr", child_name))
    assert child["spec"]["parentRun"] == name
    assert child["spec"]["trigger"] == "Rerun"
    assert child["spec"]["services"] == parent["spec"]["services"]
    delay = utc(child["spec"]["scheduledTime"]) - utc(child["metadata"]["creationTimestamp"])
    assert timedelta(seconds=55) <= delay <= timedelta(seconds=61)
    wait_until(
        "the annotation consumed",
        lambda: (
            "almanac.dev/rerun" not in (k.get("sjr", name)["metadata"].get("annotations") or {})
        ),
    )
    # Asking again yields no second child: the event says where the first one is.
    k.run("annotate", "sjr", name, "almanac.dev/rerun=now")
    wait_until("the refusal", lambda: "RerunRefused" in reasons(k, name))
    assert [
        r["metadata"]["name"] for r in runs_of(k, "nightly") if r["spec"].get("parentRun") == name
    ] == [child_name]
    # It waits for its time, then runs the parent's services once.
    assert (k.get("sjr", child_name).get("status") or {}).get("phase") in (None, "Pending")
    done = finished_run(k, child_name, timeout=120)
    assert utc(done["status"]["startTime"]) >= utc(child["spec"]["scheduledTime"])
    jobs = k.items("jobs", "-l", f"almanac.dev/run={child_name}")
    assert sorted(j["metadata"]["labels"]["almanac.dev/service"] for j in jobs) == [
        "extract",
        "transform",
    ]
    table = k.run("get", "sjr", child_name).stdout
    assert "PARENT" in table and name in table
    # The job's status counts the rerun in its history like any run.
    wait_until(
        "the rerun as the job's last run",
        lambda: k.get("sj", "nightly")["status"].get("lastRun", {}).get("name") == child_name,
    )


def test_rerun_failed_runs_only_the_failed_and_skipped_services(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    start_operator(ALMANAC_RERUN_DELAY_SECONDS="2")
    k.apply(scheduled_job("partial", services=PIPELINE))
    parent = finished_run(k, run_now(k, "partial")["metadata"]["name"])
    name = parent["metadata"]["name"]
    k.run("annotate", "sjr", name, "almanac.dev/rerun=failed")
    child = finished_run(k, first_rerun_of_a_run_now(name))
    assert [s["name"] for s in child["spec"]["services"]] == ["transform", "load"]
    assert service_phases(child) == {"transform": "Failed", "load": "Skipped"}


def test_a_run_that_has_not_finished_is_not_rerun(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("busy", services=[service("slow", duration="60s")]))
    name = run_now(k, "busy")["metadata"]["name"]
    k.run("annotate", "sjr", name, "almanac.dev/rerun=now")
    wait_until("the refusal", lambda: "RerunRefused" in reasons(k, name))
    assert len(runs_of(k, "busy")) == 1


def test_run_now_fires_once_immediately_and_is_consumed(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("adhoc"))
    run = run_now(k, "adhoc")
    lateness = utc(run["metadata"]["creationTimestamp"]) - utc(run["spec"]["scheduledTime"])
    assert lateness < timedelta(seconds=5)
    wait_until(
        "the annotation consumed",
        lambda: (
            "almanac.dev/run-now" not in (k.get("sj", "adhoc")["metadata"].get("annotations") or {})
        ),
    )
    assert len(runs_of(k, "adhoc")) == 1
    assert finished_run(k, run["metadata"]["name"])["status"]["phase"] == "Succeeded"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def smtp_env(server: SmtpServer) -> dict[str, str]:
    return {
        "ALMANAC_SMTP_HOST": server.host,
        "ALMANAC_SMTP_PORT": str(server.port),
        "ALMANAC_SMTP_SECURITY": "none",
        "ALMANAC_SMTP_FROM": "almanac@example.com",
        "ALMANAC_SMTP_TO": "ops@example.com",
    }


def notification(k: Kubectl, run: str) -> dict[str, str]:
    return (k.get("sjr", run).get("status") or {}).get("notification") or {}


def test_a_failed_run_sends_one_actionable_email(
    k: Kubectl, start_operator: Callable[..., Operator], smtp: SmtpServer
) -> None:
    operator = start_operator(**smtp_env(smtp))
    k.apply(
        scheduled_job(
            "settle",
            services=PIPELINE,
            notifications={"onFailure": True, "to": ["oncall@example.com"]},
        )
    )
    run = finished_run(k, run_now(k, "settle")["metadata"]["name"])
    name, ns = run["metadata"]["name"], k.namespace
    [mail] = smtp.wait_for(1, timeout=30)
    assert mail.rcpt_tos == ("oncall@example.com",)
    subject = str(mail.message["Subject"])
    assert "FAILED" in subject and f"{ns}/settle" in subject and name in subject
    body = mail.message.get_content()
    for text in (
        "extract",
        "Succeeded",
        "transform",
        "Failed",
        "load",
        "Skipped",
        f"kubectl -n {ns} logs job/{name}-transform",
        f"kubectl -n {ns} annotate sjr {name} almanac.dev/rerun=now",
    ):
        assert text in body
    wait_until(
        "the notification recorded as Sent", lambda: notification(k, name).get("state") == "Sent"
    )
    # A restart does not send it again; the next failure is the next e-mail.
    operator.kill()
    operator.start()
    second = finished_run(k, run_now(k, "settle")["metadata"]["name"])
    mails = smtp.wait_for(2, timeout=30)
    assert [second["metadata"]["name"] in str(m.message["Subject"]) for m in mails] == [False, True]


def test_success_is_mailed_only_when_asked(
    k: Kubectl, start_operator: Callable[..., Operator], smtp: SmtpServer
) -> None:
    start_operator(**smtp_env(smtp))
    k.apply(
        scheduled_job("quiet", notifications={"onFailure": True}),
        scheduled_job("chatty", notifications={"onSuccess": True}),
    )
    quiet = finished_run(k, run_now(k, "quiet")["metadata"]["name"])
    wait_until(
        "NotRequested",
        lambda: notification(k, quiet["metadata"]["name"]).get("state") == "NotRequested",
    )
    chatty = finished_run(k, run_now(k, "chatty")["metadata"]["name"])
    [mail] = smtp.wait_for(1, timeout=30)
    assert chatty["metadata"]["name"] in str(mail.message["Subject"])
    assert "Succeeded" in str(mail.message["Subject"])
    assert mail.rcpt_tos == ("ops@example.com",)  # the operator's default recipients
    assert len(smtp.received) == 1


def test_an_email_due_while_smtp_is_down_arrives_once_when_it_is_back(
    k: Kubectl, start_operator: Callable[..., Operator], smtp: SmtpServer
) -> None:
    start_operator(**smtp_env(smtp))
    smtp.stop()
    k.apply(
        scheduled_job(
            "outage", services=[service("x", exit_code=1)], notifications={"onFailure": True}
        )
    )
    name = finished_run(k, run_now(k, "outage")["metadata"]["name"])["metadata"]["name"]
    pending = wait_until(
        "a failed attempt recorded",
        lambda: (
            (n := notification(k, name))
            and n.get("state") == "Pending"
            and int(n.get("attempts", 0)) >= 1
            and n
        ),
    )
    assert "NotificationRetrying" in reasons(k, name)
    assert pending["attempts"] >= 1
    smtp.start()
    [mail] = smtp.wait_for(1, timeout=60)
    assert name in str(mail.message["Subject"])
    wait_until("Sent", lambda: notification(k, name).get("state") == "Sent")
    assert len(smtp.received) == 1


def test_a_mail_to_a_domain_outside_the_allow_list_is_refused_and_never_sent(
    k: Kubectl, start_operator: Callable[..., Operator], smtp: SmtpServer
) -> None:
    """Issue 13, "an open mail relay". The webhook is off here, so the API server admits
    an address in another domain (only the operator knows its allow-list): the operator
    refuses it when the e-mail is due. Nobody is mailed, the state is Failed with the
    refused address, and the run gets a Warning Event. The forms the CRD refuses by
    itself (display name, address literal, line break) never get that far."""
    start_operator(**smtp_env(smtp), ALMANAC_MAIL_ALLOWED_DOMAINS="example.com")
    for bad in (
        "Forged <oncall@example.com>",
        "root@[169.254.169.254]",
        "a@example.com\r\nBcc: x@y.org",
    ):
        error = k.apply_expecting_error(
            scheduled_job("forged", notifications={"onFailure": True, "to": [bad]})
        )
        # The CEL rule's message, or `format: email`'s where Go's parser refuses it first.
        assert "spec.notifications.to[0]" in error
        assert "must be a bare e-mail address" in error or "email" in error
    k.apply(
        scheduled_job(
            "relay",
            services=[service("x", exit_code=1)],
            notifications={"onFailure": True, "to": ["oncall@example.com", "x@elsewhere.org"]},
        )
    )
    name = finished_run(k, run_now(k, "relay")["metadata"]["name"])["metadata"]["name"]
    failed = wait_until(
        "the notification Failed",
        lambda: (n := notification(k, name)).get("state") == "Failed" and n,
    )
    assert 'spec.notifications.to[1]: "x@elsewhere.org"' in failed["message"]
    wait_until("the Event", lambda: "NotificationRecipientRefused" in reasons(k, name))
    assert smtp.received == []
