"""Table tests of the admission review: what the webhook refuses, what it only warns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from almanac.controller.admission import (
    jobs_permission_refusal,
    needs_jobs_permission,
    review_calendar,
    review_scheduled_job,
)
from almanac.notifications.recipients import AllowList

NOW = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
SERVICE = {
    "name": "main",
    "jobTemplate": {
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "busybox"}],
                }
            }
        }
    },
}
HOLIDAYS = {"metadata": {"name": "holidays"}, "spec": {"holiday": ["25.12.2027"]}}
BROKEN = {"metadata": {"name": "broken"}, "spec": {"weekly": ["Funday"]}}


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {"schedule": "0 3 * * *", "services": [SERVICE], **spec},
    }


CASES = [
    ("a valid job is admitted quietly", job(), [], []),
    (
        "a bad cron expression is refused naming spec.schedule",
        job(schedule="61 * * * *"),
        ["spec.schedule"],
        [],
    ),
    (
        "an unknown time zone is refused naming spec.timeZone",
        job(timeZone="Mars/Olympus_Mons"),
        ["spec.timeZone"],
        [],
    ),
    (
        "an impossible exclusion date is refused naming its index",
        job(exclusions={"annual": ["25.12", "31.02"]}),
        ['spec.exclusions.annual[1]: "31.02"'],
        [],
    ),
    (
        "a window that ends before it starts is refused",
        job(startTime="2027-06-01T00:00:00", endTime="2027-01-01T00:00:00"),
        ["spec.endTime"],
        [],
    ),
    (
        "a Calendar that does not exist yet is only a warning",
        job(calendarRefs=[{"name": "later"}]),
        [],
        ['Calendar "later" does not exist yet'],
    ),
    (
        "an invalid Calendar is a warning naming it and its field; the job is still checked",
        job(
            startTime="2027-06-01T00:00:00",
            endTime="2027-01-01T00:00:00",
            calendarRefs=[{"name": "broken"}],
        ),
        ["spec.endTime"],
        ["Calendar broken: spec.weekly[0]"],
    ),
    ("an existing Calendar is used quietly", job(calendarRefs=[{"name": "holidays"}]), [], []),
    (
        "a schedule that can never fire is admitted with a warning",
        job(schedule="0 0 30 2 *"),
        [],
        ["can never fire"],
    ),
    (
        "day tokens and a shift are admitted quietly",
        job(
            schedule="0 18 LB,L-1,15W,LW,2B,LB-2 * MON#1,FRIL",
            exclusions={"weekly": ["Saturday", "Sunday"]},
            onExcludedDay="PreviousBusinessDay",
            maxShiftDays=3,
        ),
        [],
        [],
    ),
    (
        "a token out of range is refused naming spec.schedule and the token",
        job(schedule="0 0 32W * *"),
        ['spec.schedule: "0 0 32W * *" is not a valid cron expression: "32W"'],
        [],
    ),
    (
        "a step of a token is refused naming spec.schedule and the token",
        job(schedule="0 0 L/2 * *"),
        ['spec.schedule: "0 0 L/2 * *" is not a valid cron expression: "L/2"'],
        [],
    ),
    (
        "MON#6 is refused naming spec.schedule and the token",
        job(schedule="0 0 * * MON#6"),
        ['"MON#6" in the day-of-week field: k in d#k is 1-5'],
        [],
    ),
    (
        "an unknown onExcludedDay is refused naming the field and the choices",
        job(onExcludedDay="Next"),
        ['spec.onExcludedDay: "Next" is not one of Skip, NextBusinessDay or PreviousBusinessDay'],
        [],
    ),
    (
        "a run deadline that is no duration is refused naming the field and the form",
        job(runDeadline="2 hours"),
        ['spec.runDeadline: "2 hours" is not a duration: write whole hours, minutes and'],
        [],
    ),
    (
        "a run deadline beyond 744h is refused with the bounds",
        job(runDeadline="800h"),
        ['spec.runDeadline: "800h" is not between 1s and 744h (31 days)'],
        [],
    ),
    (
        "onLate without a run deadline is admitted with a warning",
        job(notifications={"onLate": True}),
        [],
        ["spec.notifications.onLate: true has no effect without spec.runDeadline"],
    ),
    (
        "a run deadline with onLate is admitted",
        job(runDeadline="1h30m", notifications={"onLate": True}),
        [],
        [],
    ),
    (
        "a nearest weekday to the 31st of February is admitted with a warning",
        job(schedule="0 0 31W 2 *"),
        [],
        ['can never fire: "0 0 31W 2 *" matches no date: February has no day 31W'],
    ),
    (
        "a shift too short to reach a business day is admitted with a warning",
        job(
            schedule="0 0 * * SAT",
            exclusions={"weekly": ["Saturday", "Sunday"]},
            onExcludedDay="NextBusinessDay",
            maxShiftDays=1,
        ),
        [],
        ["none of them has a business day within 1 day after it"],
    ),
]


@pytest.mark.parametrize(
    ("body", "errors", "warnings"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_review_scheduled_job(body: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    review = review_scheduled_job(
        body, {"holidays": HOLIDAYS, "broken": BROKEN}, default_time_zone="UTC", now=NOW
    )
    assert len(review.errors) == len(errors)
    for expected, got in zip(errors, review.errors, strict=True):
        assert expected in got
    assert len(review.warnings) == len(warnings)
    for expected, got in zip(warnings, review.warnings, strict=True):
        assert expected in got
    assert review.allowed == (not errors)


def test_a_calendar_with_an_impossible_holiday_is_refused() -> None:
    review = review_calendar({"metadata": {"name": "c"}, "spec": {"holiday": ["30.02.2027"]}})
    assert review.errors and review.errors[0].startswith('spec.holiday[0]: "30.02.2027"')


RUN_NOW = {"almanac.dev/run-now": "now"}


def annotated(body: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "annotations": annotations}}


@pytest.mark.parametrize(
    ("kind", "operation", "old", "new", "needed"),
    [
        ("ScheduledJob", "CREATE", None, job(), True),
        ("ScheduledJob", "UPDATE", job(), job(schedule="0 4 * * *"), True),  # spec changed
        ("ScheduledJob", "UPDATE", job(), annotated(job(), RUN_NOW), True),  # run-now asked
        ("ScheduledJob", "UPDATE", job(), annotated(job(), {"team": "a"}), False),  # metadata
        ("ScheduledJob", "UPDATE", annotated(job(), RUN_NOW), job(), False),  # consumed
        ("ScheduledJobRun", "UPDATE", job(), annotated(job(), {"almanac.dev/rerun": "now"}), True),
        ("ScheduledJobRun", "UPDATE", job(), annotated(job(), {"team": "a"}), False),
    ],
)
def test_which_requests_need_the_permission_to_create_jobs(
    kind: str,
    operation: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    needed: bool,
) -> None:
    assert needs_jobs_permission(kind, operation, old, new) is needed


def test_the_refusal_names_the_user_the_namespace_and_how_to_check() -> None:
    message = jobs_permission_refusal({"username": "alice"}, "team-a")
    assert 'alice may not create Jobs in namespace "team-a"' in message
    assert "kubectl auth can-i create jobs.batch -n team-a --as alice" in message


# -- spec.notifications.to: the form, and the operator's allow-list of domains ---------------

MAIL_DOMAINS = AllowList.parse("example.com, .example.com")

RECIPIENT_CASES = [
    ("a bare address in an allowed domain", ["ops@example.com", "db@eng.example.com"], []),
    (
        "a display name is refused naming the field and the bare address",
        ["ops@example.com", "Ops <ops@example.com>"],
        ["spec.notifications.to[1]: ", "write the bare address, ops@example.com"],
    ),
    (
        "an address literal is refused",
        ["root@[169.254.169.254]"],
        ["spec.notifications.to[0]: ", "address literal"],
    ),
    (
        "a header injection is refused",
        ["ops@example.com\r\nBcc: victim@elsewhere.org"],
        ["spec.notifications.to[0]: ", "line break"],
    ),
    (
        "a domain outside the allow-list is refused with what is allowed",
        ["x@elsewhere.org"],
        ["spec.notifications.to[0]: ", "allowed: example.com, subdomains of example.com"],
    ),
]


@pytest.mark.parametrize(
    ("to", "words"), [c[1:] for c in RECIPIENT_CASES], ids=[c[0] for c in RECIPIENT_CASES]
)
def test_recipients_at_admission(to: list[str], words: list[str]) -> None:
    review = review_scheduled_job(
        job(notifications={"onFailure": True, "to": to}),
        {},
        default_time_zone="UTC",
        now=NOW,
        mail_domains=MAIL_DOMAINS,
    )
    assert review.allowed == (not words)
    if words:
        [error] = review.errors
        assert all(w in error for w in words), error


def test_recipient_errors_come_with_the_schedules() -> None:
    review = review_scheduled_job(
        job(schedule="61 * * * *", notifications={"to": ["x@elsewhere.org"]}),
        {},
        default_time_zone="UTC",
        now=NOW,
        mail_domains=MAIL_DOMAINS,
    )
    assert [e.split(":")[0] for e in review.errors] == ["spec.notifications.to[0]", "spec.schedule"]


def test_without_an_allow_list_only_the_form_is_refused() -> None:
    to = ["x@elsewhere.org", "Ops <ops@example.com>"]
    review = review_scheduled_job(
        job(notifications={"to": to}), {}, default_time_zone="UTC", now=NOW
    )
    assert [e.split(":")[0] for e in review.errors] == ["spec.notifications.to[1]"]


def test_an_update_is_not_refused_for_recipients_the_object_already_had() -> None:
    """The allow-list narrowed after the job was stored: editing it (or the operator
    consuming run-now) still works; a newly added recipient is checked."""
    stored = job(notifications={"to": ["x@elsewhere.org"]})
    edited = job(suspend=True, notifications={"to": ["x@elsewhere.org", "y@elsewhere.org"]})
    review = review_scheduled_job(
        edited, {}, default_time_zone="UTC", now=NOW, mail_domains=MAIL_DOMAINS, old=stored
    )
    assert [e.split(":")[0] for e in review.errors] == ["spec.notifications.to[1]"]
    same = review_scheduled_job(
        stored, {}, default_time_zone="UTC", now=NOW, mail_domains=MAIL_DOMAINS, old=stored
    )
    assert same.allowed


@pytest.mark.parametrize(
    ("kind", "ref", "expected"),
    [
        (
            "Calendar",
            {"configMapKeyRef": {"name": "days", "key": "ics", "namespace": "ops"}},
            "spec.source.configMapKeyRef.namespace: is not allowed in a Calendar",
        ),
        (
            "ClusterCalendar",
            {"configMapKeyRef": {"name": "days", "key": "ics"}},
            "spec.source.configMapKeyRef.namespace: is required in a ClusterCalendar",
        ),
        (
            "ClusterCalendar",
            {
                "url": "https://calendar.example.com/a.ics",
                "caBundleSecretRef": {"name": "ca", "key": "ca.crt"},
            },
            "spec.source.caBundleSecretRef.namespace: is required in a ClusterCalendar",
        ),
    ],
)
def test_a_calendar_reference_out_of_its_scope_is_refused_naming_the_field(
    kind: str, ref: dict[str, Any], expected: str
) -> None:
    body = {"kind": kind, "metadata": {"name": "days"}, "spec": {"source": ref}}
    [error] = review_calendar(body).errors
    assert error.startswith(expected), error
