"""Tables for the run's date in its Jobs (issue 16, part 1): what each container is told
(ALMANAC_* variables, the almanac.dev/scheduled-time annotation), in a zone with an
offset, for a fire, a run-now and a rerun; and how durations are read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.api.names import ANNOTATION_RERUN, ANNOTATION_SCHEDULED_TIME, trigger_of
from almanac.rules.jobs import decide_job, run_body
from almanac.rules.rundate import run_date, with_variables
from almanac.rules.runs import batch_job_body, decide_run
from almanac.times import parse_duration
from tests.integration.objects import scheduled_job, service

Body = dict[str, Any]

# 20:00 UTC is already the next day in Kolkata (+05:30) and still the same in New York.
EVENING = datetime(2027, 1, 4, 20, 0, tzinfo=UTC)


def job(**spec: Any) -> Body:
    body = scheduled_job("settle", "0 20 * * *", services=[service("a")], **spec)
    body["metadata"].update(
        uid="uid-j", namespace="ns", generation=1, creationTimestamp="2027-01-01T00:00:00Z"
    )
    return body


def variables(job_body: Body, run: Body) -> dict[str, str]:
    """The variables the first container of the run's first Job gets, by name."""
    run["metadata"].setdefault("uid", "uid-r")  # as the API server gives it
    batch = batch_job_body(run, run["spec"]["services"][0], run_date(run, job_body, "UTC"))
    [container] = batch["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def fired(job_body: Body, now: datetime, default_time_zone: str = "UTC") -> Body:
    plan = decide_job(job_body, [], {}, now, default_time_zone=default_time_zone)
    [create] = plan.creates
    return create.body


@pytest.mark.parametrize(
    ("zone", "default", "date", "recorded"),
    [
        ("Asia/Kolkata", "UTC", "2027-01-05", "Asia/Kolkata"),  # +05:30: the next day
        ("America/New_York", "UTC", "2027-01-04", "America/New_York"),  # -05:00
        (None, "Asia/Tokyo", "2027-01-05", "Asia/Tokyo"),  # the operator's default zone
        (None, "UTC", "2027-01-04", "UTC"),
    ],
)
def test_a_fire_tells_its_jobs_the_instant_and_its_local_date(
    zone: str | None, default: str, date: str, recorded: str
) -> None:
    spec = {"timeZone": zone} if zone else {}
    # The schedule is read in the zone: fire at its 20:00 local, whatever that is in UTC.
    body = job(**spec)
    body["spec"]["schedule"] = "* * * * *"
    run = fired(body, EVENING, default)
    assert run["spec"]["timeZone"] == recorded
    assert run["spec"]["trigger"] == "Schedule"
    env = variables(body, run)
    assert env == {
        "ALMANAC_SCHEDULED_TIME": "2027-01-04T20:00:00Z",
        "ALMANAC_SCHEDULED_DATE": date,
        "ALMANAC_TIME_ZONE": recorded,
        "ALMANAC_SCHEDULED_JOB": "settle",
        "ALMANAC_RUN": run["metadata"]["name"],
        "ALMANAC_SERVICE": "a",
        "ALMANAC_TRIGGER": "Schedule",
        "ALMANAC_PARENT_RUN": "",
    }


def test_the_job_carries_the_instant_as_an_annotation_beside_the_templates_own() -> None:
    body = job(timeZone="Asia/Kolkata")
    body["spec"]["services"][0]["jobTemplate"]["metadata"] = {"annotations": {"team": "fin"}}
    run = run_body(body, "settle-1", EVENING, "Schedule", body["spec"]["services"])
    run["metadata"]["uid"] = "uid-r"
    batch = batch_job_body(run, run["spec"]["services"][0], run_date(run, body, "UTC"))
    assert batch["metadata"]["annotations"] == {
        "team": "fin",
        ANNOTATION_SCHEDULED_TIME: "2027-01-04T20:00:00Z",
    }


def test_a_run_now_is_dated_by_the_instant_it_was_asked_for() -> None:
    body = job(timeZone="America/New_York")
    asked = datetime(2027, 1, 5, 3, 30, 12, 400_000, tzinfo=UTC)  # 22:30 the day before in NY
    body["metadata"].update(
        annotations={"almanac.dev/run-now": "now"}, creationTimestamp="2027-01-05T03:00:00Z"
    )
    run = fired(body, asked)
    assert run["spec"]["trigger"] == "RunNow"
    env = variables(body, run)
    assert env["ALMANAC_SCHEDULED_TIME"] == "2027-01-05T03:30:12Z"
    assert env["ALMANAC_SCHEDULED_DATE"] == "2027-01-04"
    assert env["ALMANAC_TRIGGER"] == "RunNow"


def test_a_rerun_keeps_its_parents_instant_date_and_zone_however_late_it_runs() -> None:
    body = job(timeZone="Asia/Kolkata")
    parent = run_body(
        body, "settle-1", EVENING, "Schedule", body["spec"]["services"], time_zone="Asia/Kolkata"
    )
    parent["metadata"].update(uid="uid-p", annotations={ANNOTATION_RERUN: "now"})
    parent["status"] = {"phase": "Failed"}
    # Three days later, and the job's zone has been edited meanwhile.
    body["spec"]["timeZone"] = "America/New_York"
    later = EVENING + timedelta(days=3)
    child = decide_run(parent, [], body, later).rerun
    assert child is not None
    assert child["spec"]["originalScheduledTime"] == "2027-01-04T20:00:00Z"
    assert child["spec"]["timeZone"] == "Asia/Kolkata"
    assert child["spec"]["scheduledTime"] == "2027-01-07T20:01:00Z"  # when it starts
    env = variables(body, child)
    assert env["ALMANAC_SCHEDULED_TIME"] == "2027-01-04T20:00:00Z"
    assert env["ALMANAC_SCHEDULED_DATE"] == "2027-01-05"
    assert env["ALMANAC_TIME_ZONE"] == "Asia/Kolkata"
    assert env["ALMANAC_TRIGGER"] == "Rerun"
    assert env["ALMANAC_PARENT_RUN"] == "settle-1"
    # A rerun of the rerun still stands for the first run's instant.
    child["metadata"].update(uid="uid-c", annotations={ANNOTATION_RERUN: "now"})
    child["status"] = {"phase": "Failed"}
    grandchild = decide_run(child, [], body, later + timedelta(hours=1)).rerun
    assert grandchild is not None
    assert grandchild["spec"]["originalScheduledTime"] == "2027-01-04T20:00:00Z"
    assert variables(body, grandchild)["ALMANAC_PARENT_RUN"] == "settle-1-r1"


def test_an_old_run_without_a_zone_is_dated_in_its_jobs_zone_then_the_default() -> None:
    body = job(timeZone="Asia/Kolkata")
    run = run_body(body, "settle-1", EVENING, "Manual", body["spec"]["services"])
    assert "timeZone" not in run["spec"]
    assert run_date(run, body, "UTC") is not None
    assert variables(body, run)["ALMANAC_SCHEDULED_DATE"] == "2027-01-05"
    assert variables(body, run)["ALMANAC_TRIGGER"] == "RunNow"  # stored as Manual
    when = run_date(run, None, "America/New_York")
    assert when is not None and (when.date, when.time_zone) == ("2027-01-04", "America/New_York")


def test_a_container_that_sets_a_variable_itself_keeps_its_value() -> None:
    pod = {
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [
            {"name": "main", "image": "x", "env": [{"name": "ALMANAC_RUN", "value": "replay"}]},
            {"name": "side", "image": "x"},
        ],
    }
    given = {"ALMANAC_RUN": "settle-1", "ALMANAC_SERVICE": "a"}
    spec = with_variables(pod, given)
    assert spec["initContainers"][0]["env"] == [
        {"name": "ALMANAC_RUN", "value": "settle-1"},
        {"name": "ALMANAC_SERVICE", "value": "a"},
    ]
    assert spec["containers"][0]["env"] == [
        {"name": "ALMANAC_RUN", "value": "replay"},
        {"name": "ALMANAC_SERVICE", "value": "a"},
    ]
    assert spec["containers"][1]["env"] == spec["initContainers"][0]["env"]
    assert "env" not in pod["containers"][1]  # the template itself is not changed


@pytest.mark.parametrize(
    ("trigger", "read"),
    [
        (None, "Schedule"),
        ("Schedule", "Schedule"),
        ("RunNow", "RunNow"),
        ("Manual", "RunNow"),
        ("Rerun", "Rerun"),
        ("Backfill", "Backfill"),
    ],
)
def test_triggers_are_read_with_the_legacy_manual_as_run_now(
    trigger: str | None, read: str
) -> None:
    assert trigger_of({"trigger": trigger} if trigger else {}) == read


def test_a_backfill_run_is_told_it_is_one() -> None:
    """The Backfill kind only sets the trigger and the instant: the rest follows."""
    body = job(timeZone="America/New_York")
    run = run_body(
        body,
        "settle-28000000",
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        "Backfill",
        body["spec"]["services"],
        time_zone="America/New_York",
    )
    env = variables(body, run)
    assert env["ALMANAC_TRIGGER"] == "Backfill"
    assert env["ALMANAC_SCHEDULED_DATE"] == "2026-03-08"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("1h0m1s", 3601),
        ("744h", 744 * 3600),
    ],
)
def test_durations_read(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "2 hours", "1.5h", "1d", "30m2h", "h", "-1h", " 2h"])
def test_durations_refused_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: write whole hours, minutes and"):
        parse_duration(text)
