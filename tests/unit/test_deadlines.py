"""Tables for runDeadline (issue 16, part 4): when a run becomes Late, what the decision
then writes and posts (once), the timer it sets instead of polling, the e-mail's first
state and text, the Forbid Event that names a late run, and the field's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.api import bounds
from almanac.api.models import ScheduledJob
from almanac.errors import InvalidSpec
from almanac.notifications.message import LateReport, RunReport, ServiceReport, compose_message
from almanac.notifications.smtp import SmtpSettings
from almanac.rules.deadlines import status_when_late
from almanac.rules.jobs import decide_job, run_body
from almanac.rules.runs import batch_job_body, decide_run
from almanac.times import DURATION_PATTERN, timestamp
from tests.integration.objects import scheduled_job, service
from tests.unit.test_models_crds import crd_schema

Body = dict[str, Any]

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
SMTP = SmtpSettings(host="127.0.0.1", sender="almanac@example.com", port=2525)
LATE = {
    "type": "Late",
    "status": "True",
    "reason": "RunDeadlineExceeded",
    "message": "not finished by 2027-01-04T10:00:00Z: runDeadline 1h after it was due",
    "lastTransitionTime": "2027-01-04T10:00:00Z",
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def job(deadline: str | None = "1h", **notifications: Any) -> Body:
    spec: dict[str, Any] = {"notifications": notifications} if notifications else {}
    if deadline is not None:
        spec["runDeadline"] = deadline
    body = scheduled_job("settle", services=[service("a")], **spec)
    body["metadata"].update(uid="uid-j", namespace="ns", generation=1)
    return body


def run(
    *,
    trigger: str = "Schedule",
    created: datetime = T0,
    phase: str = "Running",
    conditions: list[Body] | None = None,
) -> Body:
    body = run_body(job(), "settle-1", T0, trigger, job()["spec"]["services"])
    body["metadata"].update(uid="uid-r", creationTimestamp=timestamp(created))
    body["status"] = {
        "phase": phase,
        "startTime": timestamp(T0),
        "services": [
            {"name": "a", "phase": "Running", "jobName": "settle-1-a", "startTime": timestamp(T0)}
        ],
    }
    if conditions:
        body["status"]["conditions"] = conditions
    return body


def batch(completed: datetime | None = None) -> Body:
    """The service's Job: running, or complete at ``completed``."""
    body = batch_job_body(run(), job()["spec"]["services"][0])
    body["metadata"]["creationTimestamp"] = timestamp(T0)
    body["status"] = {"startTime": timestamp(T0), "active": 1}
    if completed is not None:
        body["status"] = {
            "startTime": timestamp(T0),
            "completionTime": timestamp(completed),
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    return body


@pytest.mark.parametrize(
    ("case", "the_run", "jobs", "job_body", "now", "late", "wake"),
    [
        ("running, before the deadline", run(), [batch()], job(), at(30), False, at(60)),
        ("running, at the deadline", run(), [batch()], job(), at(60), True, None),
        ("running, past it", run(), [batch()], job("90m"), at(200), True, None),
        ("no deadline", run(), [batch()], job(None), at(600), False, None),
        ("its job is gone", run(), [batch()], None, at(600), False, None),
        # A job stored before the webhook with a deadline the operator cannot read: no
        # deadline (the job itself reports InvalidSchedule and fires nothing).
        ("an unreadable deadline", run(), [batch()], job("2 hours"), at(600), False, None),
        ("already late: once", run(conditions=[LATE]), [batch()], job(), at(90), False, None),
        # The operator was down when it ended: its Job's end decides, not when it is seen.
        ("ended in time, seen late", run(), [batch(at(50))], job(), at(120), False, None),
        ("ended after the deadline", run(), [batch(at(70))], job(), at(120), True, None),
        # A backfilled run stands for an old instant: its clock starts at its creation.
        (
            "a backfill, created a day after its instant",
            run(trigger="Backfill", created=at(24 * 60)),
            [batch()],
            job(),
            at(24 * 60 + 30),
            False,
            at(24 * 60 + 60),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_when_a_run_is_late(
    case: str,
    the_run: Body,
    jobs: list[Body],
    job_body: Body | None,
    now: datetime,
    late: bool,
    wake: datetime | None,
) -> None:
    plan = decide_run(the_run, jobs, job_body, now)
    assert plan.late_now is late, case
    assert ("conditions" in plan.status) is late
    assert [e.reason for e in plan.events if e.reason == "RunLate"] == (["RunLate"] if late else [])
    if not plan.finished_now:
        assert plan.wake_at == wake, case


def test_a_late_run_gets_its_condition_an_event_on_its_job_and_no_e_mail_unless_asked() -> None:
    plan = decide_run(run(), [batch()], job("1h"), at(61))
    [condition] = plan.status["conditions"]
    assert condition == {
        "type": "Late",
        "status": "True",
        "reason": "RunDeadlineExceeded",
        "message": "not finished by 2027-01-04T10:00:00Z: runDeadline 1h after it was due",
        "lastTransitionTime": "2027-01-04T10:01:00Z",
    }
    [event] = plan.events
    assert (event.type, event.reason, event.on_job, event.key) == (
        "Warning",
        "RunLate",
        True,
        "settle-1",  # the Event's name follows from it: posted once per run
    )
    assert event.message == (
        "run settle-1 is late: not finished by 2027-01-04T10:00:00Z, runDeadline 1h after "
        "2027-01-04T09:00:00Z"
    )
    assert plan.status["lateNotification"] == {
        "state": "NotRequested",
        "attempts": 0,
        "lastAttemptTime": None,
        "message": "",
    }


@pytest.mark.parametrize(
    ("smtp", "state", "reasons"),
    [
        (SMTP, "Pending", ["RunLate"]),
        (None, "Failed", ["RunLate", "NotificationNotConfigured"]),
    ],
)
def test_on_late_writes_the_e_mails_first_state_with_the_condition(
    smtp: SmtpSettings | None, state: str, reasons: list[str]
) -> None:
    plan = decide_run(
        run(), [batch()], job("1h", onLate=True, to=["ops@example.com"]), at(61), smtp=smtp
    )
    assert plan.status["lateNotification"]["state"] == state
    assert [e.reason for e in plan.events] == reasons
    # The outcome's e-mail is not touched: it is written when the run ends.
    assert "notification" not in plan.status


def test_a_run_that_ends_late_carries_both_its_outcome_and_its_lateness() -> None:
    plan = decide_run(
        run(),
        [batch(at(70))],
        job("1h", onLate=True, onSuccess=True, to=["ops@example.com"]),
        at(71),
        smtp=SMTP,
    )
    assert plan.finished_now and plan.late_now
    assert plan.status["phase"] == "Succeeded"
    assert plan.status["notification"]["state"] == "Pending"
    assert plan.status["lateNotification"]["state"] == "Pending"


def forbid_job(deadline: str | None) -> Body:
    body = job(deadline, onLate=False)
    body["spec"].update(schedule="0 * * * *", concurrencyPolicy="Forbid")
    body["metadata"]["creationTimestamp"] = "2027-01-04T08:30:00Z"
    return body


@pytest.mark.parametrize(
    ("deadline", "conditions", "now", "says"),
    [
        (None, None, T0, ""),
        ("2h", None, T0, ""),  # active, not late
        (
            "30m",
            None,
            T0,
            "; late past its runDeadline 30m: settle-1 (due by 2027-01-04T09:00:00Z)",
        ),
        # The condition says so even when the job's deadline was removed since.
        (None, [LATE], T0, "; late: settle-1 (due by 2027-01-04T10:00:00Z)"),
    ],
)
def test_a_forbid_fire_skipped_for_a_late_run_says_so(
    deadline: str | None, conditions: list[Body] | None, now: datetime, says: str
) -> None:
    active = run(conditions=conditions)
    active["spec"]["scheduledTime"] = "2027-01-04T08:30:00Z"
    plan = decide_job(forbid_job(deadline), [active], {}, now)
    [missed] = [e for e in plan.events if e.reason == "MissedSchedule"]
    assert missed.message == (
        "fire 2027-01-04T09:00:00Z not started: run settle-1 is still active "
        f"(concurrencyPolicy Forbid){says}"
    )


def test_the_late_e_mail_tells_how_late_what_still_runs_and_where_to_look() -> None:
    report = RunReport(
        job="settle",
        namespace="finance",
        run="settle-1",
        run_uid="uid-r",
        scheduled_time=T0,
        trigger="Schedule",
        phase="Running",
        services=(
            ServiceReport("extract", "Succeeded", "settle-1-extract"),
            ServiceReport("load", "Running", "settle-1-load"),
        ),
        start_time=T0,
        time_zone="Asia/Kolkata",
        late=LateReport(at(60), LATE["message"], "1h"),
    )
    message = compose_message(report, sender="almanac@example.com", recipients=["ops@example.com"])
    assert message["Subject"] == (
        "[Almanac] LATE finance/settle run settle-1 (scheduled 2027-01-04 09:00 UTC)"
    )
    assert message["Message-ID"] == "<settle-1.finance.late.uid-r@example.com>"
    assert message["X-Almanac-Late"] == "true"
    body = message.get_content()
    for line in (
        "Run settle-1 of ScheduledJob finance/settle is LATE: not finished by "
        "2027-01-04T10:00:00Z: runDeadline 1h after it was due.",
        "  Scheduled:     2027-01-04 09:00:00 UTC  (2027-01-04 14:30:00 IST, Asia/Kolkata)",
        "  Deadline:      runDeadline 1h",
        "  Late since:    2027-01-04 10:00:00 UTC",
        "  Phase:         Running",
        "  Started:       2027-01-04 09:00:00 UTC  (running 1h00m00s)",
        "  load     Running    settle-1-load",
        "    kubectl -n finance logs job/settle-1-load",
        "Sent by Almanac because spec.notifications.onLate is true",
    ):
        assert line in body.splitlines(), line
    assert "settle-1-extract" not in body.split("What to do:")[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2 hours", 'spec.runDeadline: "2 hours" is not a duration: write whole hours'),
        ("1.5h", 'spec.runDeadline: "1.5h" is not a duration'),
        ("0s", 'spec.runDeadline: "0s" is not between 1s and 744h (31 days)'),
        ("745h", 'spec.runDeadline: "745h" is not between 1s and 744h (31 days)'),
        ("12345678901234567", "spec.runDeadline: is 17 characters long; at most 16"),
    ],
)
def test_a_bad_run_deadline_is_refused_naming_the_field(value: str, message: str) -> None:
    body = job(value)
    with pytest.raises(InvalidSpec) as refused:
        ScheduledJob.parse(body)
    assert message in str(refused.value)


@pytest.mark.parametrize("value", ["1s", "90m", "1h30m", "744h"])
def test_good_run_deadlines_are_read(value: str) -> None:
    model = ScheduledJob.parse(job(value, onLate=True))
    assert model.spec.deadline() is not None
    assert model.spec.notifications.on_late is True


def test_the_crd_reads_run_deadlines_as_the_operator_does() -> None:
    """The CRD's pattern is the operator's, and its CEL rule (generated by
    hack/crd-bounds.py, which `--check` keeps current) names the same bounds."""
    node = crd_schema("ScheduledJob")["properties"]["spec"]["properties"]["runDeadline"]
    assert node["pattern"] == DURATION_PATTERN
    [rule] = node["x-kubernetes-validations"]
    assert "duration('1s')" in rule["rule"] and "duration('744h')" in rule["rule"]
    assert node["maxLength"] == bounds.RUN_DEADLINE_MAX_LENGTH


def _item(name: str, phase: str, start: float | None = None, end: float | None = None) -> Body:
    times = {"startTime": timestamp(at(start)) if start is not None else None}
    times["completionTime"] = timestamp(at(end)) if end is not None else None
    job_name = {"jobName": f"r-{name}"} if start is not None else {}
    return {"name": name, "phase": phase, **job_name, **{k: v for k, v in times.items() if v}}


@pytest.mark.parametrize(
    ("services", "run_started", "phase", "then"),
    [
        # a (mandatory) failed after the deadline (60 min): b, skipped then, was Pending
        (
            [_item("a", "Failed", 1, 70), _item("b", "Skipped")],
            1,
            "Running",
            [("a", "Running"), ("b", "Pending")],
        ),
        # a failed before it: b was Skipped already; c, async, ran past the deadline
        (
            [_item("a", "Failed", 1, 30), _item("b", "Skipped"), _item("c", "Succeeded", 1, 90)],
            1,
            "Running",
            [("a", "Failed"), ("b", "Skipped"), ("c", "Running")],
        ),
        # nothing had started by the deadline: Pending, no Job, no start
        ([_item("a", "Succeeded", 65, 80)], 65, "Pending", [("a", "Pending")]),
    ],
    ids=["skipped-later", "skipped-before", "started-later"],
)
def test_a_late_run_is_told_as_it_stood_at_its_deadline(
    services: list[Body], run_started: float, phase: str, then: list[tuple[str, str]]
) -> None:
    r = run(phase="Failed")
    r["spec"]["services"] = [{"name": "a", "mandatory": True}, {"name": "b"}, {"name": "c"}]
    r["status"] |= {
        "startTime": timestamp(at(run_started)),
        "completionTime": timestamp(at(90)),
        "services": services,
        "conditions": [{**LATE, "lastTransitionTime": timestamp(at(95))}],
    }
    status = status_when_late(r)
    assert (status["phase"], "completionTime" in status) == (phase, False)
    assert [(s["name"], s["phase"]) for s in status["services"]] == then
    assert ("startTime" in status) == (run_started <= 60)
    assert all("jobName" not in s for s in status["services"] if s["phase"] == "Pending")
