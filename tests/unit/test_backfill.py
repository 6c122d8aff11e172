"""Table tests of a Backfill's plan: which instants get their runs next, given the runs
that exist, and what the status and Events say (almanac.rules.backfill); the webhook's
review of a new Backfill, and the plugin's dry run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.api.models import ScheduledJob
from almanac.api.names import LABEL_BACKFILL, run_name
from almanac.api.resolve import resolve
from almanac.cli.plugin.errors import PluginError
from almanac.cli.plugin.fires import backfill_body, format_backfill
from almanac.controller.admission import needs_jobs_permission, review_backfill
from almanac.controller.store import Kind, Store
from almanac.notifications.message import compose_message
from almanac.rules.backfill import TooManyInstants, decide_backfill, range_instants
from almanac.rules.jobs import run_body
from almanac.times import timestamp
from tests.integration.objects import scheduled_job, service
from tests.unit.test_notify import SENDER, body, failed_report

Body = dict[str, Any]

MONDAY = datetime(2027, 1, 4, tzinfo=UTC)
NOW = MONDAY + timedelta(days=30)
DAY = timedelta(days=1)


def job(schedule: str = "0 2 * * *", **spec: Any) -> Body:
    body = scheduled_job("settle", schedule, services=[service("a")], **spec)
    body["metadata"].update(uid="uid-settle", namespace="ns")
    return body


def backfill(
    start: datetime = MONDAY,
    end: datetime = MONDAY + 5 * DAY,
    *,
    parallelism: int = 1,
    order: str = "Oldest",
    status: Body | None = None,
    **spec: Any,
) -> Body:
    body: Body = {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": "bf", "namespace": "ns", "generation": 1, "uid": "uid-bf"},
        "spec": {
            "scheduledJob": "settle",
            "from": timestamp(start),
            "to": timestamp(end),
            "parallelism": parallelism,
            "order": order,
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def run(instant: datetime, phase: str | None = None) -> Body:
    body: Body = {"metadata": {"name": run_name("settle", instant)}, "spec": {}}
    if phase:
        body["status"] = {"phase": phase}
    return body


def at(day: int, hour: int = 2) -> datetime:
    return MONDAY + day * DAY + timedelta(hours=hour)


def names(plan: Any) -> list[str]:
    return [c.body["metadata"]["name"] for c in plan.creates]


def schedule_of(body: Body) -> Any:
    return resolve(ScheduledJob.parse(body), {})


# --- range_instants: the instants `almanac next` lists, cut to [from, to) ---------------


@pytest.mark.parametrize(
    ("case", "spec", "start", "end", "expected"),
    [
        ("a working week, daily", {}, MONDAY, MONDAY + 5 * DAY, [at(d) for d in range(5)]),
        ("from is inclusive", {}, at(1), at(3), [at(1), at(2)]),
        ("to is exclusive", {}, MONDAY, at(2), [at(0), at(1)]),
        ("an empty range", {}, at(0, 3), at(1), []),
        (
            "an excluded day is left out",
            {"exclusions": {"holiday": ["06.01.2027"]}},
            MONDAY,
            MONDAY + 5 * DAY,
            [at(0), at(1), at(3), at(4)],
        ),
        (
            "a shifted fire is in the range where it lands",
            {"exclusions": {"weekly": ["Sat", "Sun"]}, "onExcludedDay": "NextBusinessDay"},
            MONDAY + 5 * DAY,
            MONDAY + 8 * DAY,
            # Saturday's and Sunday's fires move to Monday, beside Monday's own: one instant
            [at(7)],
        ),
        (
            "the job's window cuts the range",
            {"startTime": "2027-01-06T00:00:00Z"},
            MONDAY,
            MONDAY + 5 * DAY,
            [at(2), at(3), at(4)],
        ),
    ],
)
def test_range_instants(
    case: str, spec: Body, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert range_instants(schedule_of(job(**spec)), start, end) == expected, case


def test_a_range_over_the_limit_is_refused_at_the_first_instant_past_it() -> None:
    every_minute = schedule_of(job("* * * * *"))
    with pytest.raises(TooManyInstants, match="more than 10,000 instants"):
        range_instants(every_minute, MONDAY, MONDAY + 7 * DAY)  # 10,080
    assert len(range_instants(every_minute, MONDAY, MONDAY + timedelta(minutes=10_000))) == 10_000


# --- decide_backfill: which runs next ---------------------------------------------------


@pytest.mark.parametrize(
    ("case", "parallelism", "order", "runs", "active", "expected"),
    [
        ("first decision, one at a time", 1, "Oldest", [], [], [at(0)]),
        ("first decision, two at a time", 2, "Oldest", [], [], [at(0), at(1)]),
        ("newest first", 2, "Newest", [], [], [at(4), at(3)]),
        (
            "a run already there (the schedule made it) is adopted, not doubled",
            2,
            "Oldest",
            [run(at(0), "Succeeded")],
            [],
            [at(1), at(2)],
        ),
        (
            "an unfinished adopted run takes a slot",
            2,
            "Oldest",
            [run(at(0), "Running")],
            [],
            [at(1)],
        ),
        (
            "a restart after the creates, before the status: nothing again",
            2,
            "Oldest",
            [run(at(0)), run(at(1))],
            [],
            [],
        ),
    ],
)
def test_first_decision(
    case: str,
    parallelism: int,
    order: str,
    runs: list[Body],
    active: list[str],
    expected: list[datetime],
) -> None:
    plan = decide_backfill(backfill(parallelism=parallelism, order=order), job(), runs, {}, NOW)
    assert names(plan) == [run_name("settle", t) for t in expected], case
    assert plan.status["phase"] == "Running"
    assert plan.status["total"] == 5
    assert len(plan.status["active"]) <= parallelism
    assert [e.reason for e in plan.events] == ["BackfillStarted"]


def test_each_run_is_a_backfill_run_of_its_instant() -> None:
    plan = decide_backfill(backfill(), job(), [], {}, NOW)
    [create] = plan.creates
    body = create.body
    assert body["spec"]["trigger"] == "Backfill"
    assert body["spec"]["scheduledTime"] == timestamp(at(0))
    assert body["spec"]["services"] == job()["spec"]["services"]
    assert body["metadata"]["labels"][LABEL_BACKFILL] == "bf"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-settle"
    assert create.event is not None and create.event.reason == "RunCreated"
    assert plan.status["nextInstant"] == timestamp(at(1))


def running(active: list[datetime], upcoming: datetime | None, **counts: int) -> Body:
    return {
        "phase": "Running",
        "startTime": timestamp(MONDAY),
        "active": [run_name("settle", t) for t in active],
        "nextInstant": timestamp(upcoming),
        "total": 5,
        "created": counts.get("created", 0),
        "succeeded": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
    }


@pytest.mark.parametrize(
    ("case", "status", "runs", "gone", "taken", "creates", "succeeded", "failed"),
    [
        (
            "the slots are full: nothing",
            running([at(0), at(1)], at(2), created=2),
            [run(at(0), "Running"), run(at(1))],
            {},
            [],
            [],
            0,
            0,
        ),
        (
            "one finished: the next instant",
            running([at(0), at(1)], at(2), created=2),
            [run(at(0), "Succeeded"), run(at(1), "Running")],
            {},
            [],
            [at(2)],
            1,
            0,
        ),
        (
            "both finished, one failed: two more",
            running([at(0), at(1)], at(2), created=2),
            [run(at(0), "Succeeded"), run(at(1), "Failed")],
            {},
            [],
            [at(2), at(3)],
            1,
            1,
        ),
        (
            "pruned by the job's history: counted from its last phase, never run again",
            running([at(0), at(1)], at(2), created=2),
            [run(at(1), "Running")],
            {run_name("settle", at(0)): "Succeeded"},
            [],
            [at(2)],
            1,
            0,
        ),
        (
            "deleted while unfinished: counted as failed",
            running([at(0), at(1)], at(2), created=2),
            [run(at(1), "Running")],
            {},
            [],
            [at(2)],
            0,
            1,
        ),
        (
            "an instant whose run name someone else took: failed, not run",
            running([], at(2), created=2, succeeded=2),
            [],
            {},
            [run_name("settle", at(2))],
            [at(3), at(4)],
            2,
            1,
        ),
    ],
)
def test_later_decision(
    case: str,
    status: Body,
    runs: list[Body],
    gone: dict[str, str],
    taken: list[str],
    creates: list[datetime],
    succeeded: int,
    failed: int,
) -> None:
    plan = decide_backfill(
        backfill(parallelism=2, status=status), job(), runs, {}, NOW, gone=gone, taken=taken
    )
    assert names(plan) == [run_name("settle", t) for t in creates], case
    merged = {**status, **plan.status}
    assert (merged["succeeded"], merged["failed"]) == (succeeded, failed), case
    assert len(merged["active"]) <= 2
    assert [e.reason for e in plan.events] == []


def test_the_last_run_finishing_ends_it_with_the_counts() -> None:
    status = running([at(4)], None, created=5, succeeded=3, failed=1)
    plan = decide_backfill(backfill(status=status), job(), [run(at(4), "Succeeded")], {}, NOW)
    assert plan.status["phase"] == "Failed"
    assert plan.status["message"] == "5/5 run(s) created, 4 succeeded, 1 failed"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "BackfillFailed")]
    assert plan.status["completionTime"] == timestamp(NOW)
    again = decide_backfill(backfill(status={**status, **plan.status}), job(), [], {}, NOW)
    assert again.status == {} and again.creates == () and again.events == ()


def test_an_empty_range_succeeds_at_once() -> None:
    plan = decide_backfill(backfill(at(0, 3), at(1)), job(), [], {}, NOW)
    assert plan.status["phase"] == "Succeeded" and plan.status["total"] == 0
    assert [e.reason for e in plan.events] == ["BackfillStarted", "BackfillSucceeded"]


@pytest.mark.parametrize(
    ("case", "start", "end", "expected"),
    [
        # docs/api.md: fires fall on whole seconds, so a fraction of a second in from or
        # to counts as if rounded down to the second.
        ("a fraction in from keeps that second's fire", "04T02:00:00.5", "06T00:00:00", [0, 1]),
        ("a fraction in to leaves that second's fire out", "04T00:00:00", "06T02:00:00.5", [0, 1]),
        ("both", "04T02:00:00.999999", "06T02:00:00.000001", [0, 1]),
    ],
)
def test_a_fraction_of_a_second_in_from_or_to_counts_as_rounded_down(
    case: str, start: str, end: str, expected: list[int]
) -> None:
    body = backfill(parallelism=10)
    body["spec"] |= {"from": f"2027-01-{start}Z", "to": f"2027-01-{end}Z"}
    plan = decide_backfill(body, job(), [], {}, NOW)
    assert names(plan) == [run_name("settle", at(day)) for day in expected], case


@pytest.mark.parametrize(
    ("case", "body", "the_job", "phase", "reason", "says"),
    [
        ("no such job", backfill(), None, "Pending", "ScheduledJobNotFound", "waiting for"),
        (
            "a job being deleted",
            backfill(),
            {
                **job(),
                "metadata": {**job()["metadata"], "deletionTimestamp": "2027-01-01T00:00:00Z"},
            },
            "Pending",
            "ScheduledJobDeleting",
            "is being deleted",
        ),
        (
            "an invalid job",
            backfill(),
            job("61 * * * *"),
            "Pending",
            "ScheduledJobInvalid",
            "spec.schedule",
        ),
        (
            "a range reaching into the future",
            backfill(MONDAY, NOW + DAY),
            job(),
            "Failed",
            "RangeInFuture",
            "later than now",
        ),
        (
            "more than 10,000 instants",
            backfill(MONDAY, MONDAY + 7 * DAY),
            job("* * * * *"),
            "Failed",
            "TooManyInstants",
            "split the range",
        ),
        (
            "an invalid spec",
            backfill(parallelism=0),
            job(),
            "Failed",
            "InvalidSpec",
            "spec.parallelism: must be at least 1",
        ),
    ],
)
def test_refused_or_waiting(
    case: str, body: Body, the_job: Body | None, phase: str, reason: str, says: str
) -> None:
    plan = decide_backfill(body, the_job, [], {}, NOW)
    assert plan.creates == (), case
    assert (plan.status["phase"], plan.status["reason"]) == (phase, reason), case
    assert says in plan.status["message"], case
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", reason)]
    # Said once: the next decision from the written status posts nothing again.
    body = {**body, "status": plan.status}
    assert decide_backfill(body, the_job, [], {}, NOW).events == ()


@pytest.mark.parametrize("order", ["Oldest", "Newest"])
@pytest.mark.parametrize("parallelism", [1, 3])
def test_to_the_end_every_instant_once_never_more_than_parallelism_unfinished(
    order: str, parallelism: int
) -> None:
    """Runs finish in random order; finished ones are pruned at random (then only their
    last phase is known); decisions are repeated without their status write (a restart)."""
    rng = random.Random(f"{order}{parallelism}")
    the_job = job(exclusions={"holiday": ["10.01.2027"]})
    start, end = MONDAY, MONDAY + 14 * DAY
    expected = range_instants(schedule_of(the_job), start, end)
    body = backfill(start, end, parallelism=parallelism, order=order)
    runs: dict[str, Body] = {}
    gone: dict[str, str] = {}
    created: list[str] = []
    for _ in range(200):
        plan = decide_backfill(body, the_job, list(runs.values()), {}, NOW, gone=gone)
        for create in plan.creates:
            created.append(create.body["metadata"]["name"])
            runs[create.body["metadata"]["name"]] = create.body
        unfinished = [n for n, r in runs.items() if (r.get("status") or {}).get("phase") is None]
        assert len(unfinished) <= parallelism
        if rng.random() < 0.2:
            continue  # the status write is lost: the same decision is made again
        body = {**body, "status": {**(body.get("status") or {}), **plan.status}}
        if body["status"]["phase"] != "Running":
            break
        for name in unfinished:
            if rng.random() < 0.5:
                runs[name] = {
                    **runs[name],
                    "status": {"phase": rng.choice(["Succeeded", "Failed"])},
                }
        for name in [n for n, r in runs.items() if r.get("status") and rng.random() < 0.3]:
            gone[name] = runs.pop(name)["status"]["phase"]
    status = body["status"]
    assert status["phase"] in ("Succeeded", "Failed")
    assert sorted(created) == sorted(run_name("settle", t) for t in expected)
    assert len(set(created)) == len(created)
    ordered = expected if order == "Oldest" else expected[::-1]
    assert created == [run_name("settle", t) for t in ordered]  # in order, even across restarts
    assert status["total"] == status["created"] == len(expected)
    assert status["succeeded"] + status["failed"] == len(expected)


# --- the webhook's review of a new Backfill ------------------------------------------------


@pytest.mark.parametrize(
    ("case", "body", "the_job", "errors", "warnings"),
    [
        ("a past range of a valid job", backfill(), job(), [], []),
        (
            "a range reaching past now",
            backfill(MONDAY, NOW + DAY),
            job(),
            ['spec.to: "2027-02-04T00:00:00Z" is later than now (2027-02-03T00:00:00Z)'],
            [],
        ),
        (
            "more than 10,000 instants",
            backfill(MONDAY, MONDAY + 7 * DAY),
            job("* * * * *"),
            ['spec: ScheduledJob "settle": the range holds more than 10,000 instants'],
            [],
        ),
        (
            "the job is not there yet",
            backfill(),
            None,
            [],
            ['spec.scheduledJob: ScheduledJob "settle" does not exist yet'],
        ),
        (
            "the job is invalid",
            backfill(),
            job("61 * * * *"),
            [],
            ['spec.scheduledJob: ScheduledJob "settle" is not valid (spec.schedule'],
        ),
        (
            "no instant in the range",
            backfill(at(0, 3), at(1)),
            job(),
            [],
            ['spec: ScheduledJob "settle" fires no instant in'],
        ),
        (
            "every bad field named",
            backfill(parallelism=101, order="Sideways", scheduledJob=""),
            job(),
            [
                "spec.scheduledJob: must not be empty",
                "spec.parallelism: must be at most 100 (got 101)",
                'spec.order: "Sideways" is not one of Oldest or Newest',
            ],
            [],
        ),
        (
            "from without an offset",
            backfill(**{"from": "2027-01-04T00:00:00"}),
            job(),
            ['spec.from: "2027-01-04T00:00:00" is not an RFC 3339 instant with an offset'],
            [],
        ),
        (
            "to before from",
            backfill(at(3), at(1)),
            job(),
            ['spec.to: "2027-01-05T02:00:00Z" must be later than from ("2027-01-07T02:00:00Z")'],
            [],
        ),
    ],
)
def test_review_backfill(
    case: str, body: Body, the_job: Body | None, errors: list[str], warnings: list[str]
) -> None:
    review = review_backfill(body, the_job, {}, default_time_zone="UTC", now=NOW)
    assert len(review.errors) == len(errors), (case, review.errors)
    for said, expected in zip(review.errors, errors, strict=True):
        assert said.startswith(expected), (case, said)
    assert len(review.warnings) == len(warnings), (case, review.warnings)
    for said, expected in zip(review.warnings, warnings, strict=True):
        assert said.startswith(expected), (case, said)


def test_creating_a_backfill_needs_the_jobs_permission_and_editing_it_does_not() -> None:
    assert needs_jobs_permission("Backfill", "CREATE", None, backfill())
    assert not needs_jobs_permission("Backfill", "UPDATE", backfill(), backfill())


# --- the plugin's dry run -------------------------------------------------------------------


def test_the_dry_run_lists_the_instants_in_order_and_the_runs_already_there() -> None:
    body = backfill_body(
        "settle", timestamp(MONDAY) or "", timestamp(MONDAY + 5 * DAY) or "", 2, "Newest"
    )
    assert body["metadata"]["name"] == "settle-202701040000-202701090000"
    the_job = job(timeZone="Europe/Bucharest", exclusions={"holiday": ["06.01.2027"]})
    expected = range_instants(schedule_of(the_job), MONDAY, MONDAY + 5 * DAY)[::-1]
    lines = format_backfill(the_job, [], body, [run(expected[-1], "Succeeded")], NOW)
    head, header, *rows = lines
    assert head.endswith(f"{len(expected)} instant(s), newest first, at most 2 run(s) at once")
    assert header.split() == ["#", "UTC", "LOCAL", "(Europe/Bucharest)", "RUN", "NOTE"]
    assert [r.split()[1] for r in rows] == [timestamp(t) for t in expected]
    assert [r.split()[6] for r in rows] == [run_name("settle", t) for t in expected]
    assert rows[-1].endswith("exists (Succeeded): not run again")
    assert rows[0].split()[2:6] == ["Fri", "2027-01-08", "02:00:00", "EET"]


@pytest.mark.parametrize(
    ("case", "start", "end", "message"),
    [
        ("a future end", timestamp(MONDAY), timestamp(NOW + DAY), "is later than now"),
        ("a date, not an instant", "2027-01-04", timestamp(MONDAY + DAY), "spec.from: "),
    ],
)
def test_the_dry_run_refuses_what_the_webhook_would(
    case: str, start: str, end: str, message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        format_backfill(
            job(), [], backfill_body("settle", start or "", end or "", 1, "Oldest"), [], NOW
        )


def test_the_e_mail_about_a_backfill_run_says_it_is_one() -> None:
    message = compose_message(
        failed_report(trigger="Backfill"), sender=SENDER, recipients=["ops@example.com"]
    )
    assert message["X-Almanac-Trigger"] == "Backfill"
    assert "  Trigger:       Backfill (a past instant of the schedule" in body(message)


def test_the_store_remembers_the_last_phase_of_a_backfills_deleted_runs_until_counted() -> None:
    store = Store()
    labelled = run_body(job(), "settle-1", at(0), "Backfill", [])
    labelled["metadata"]["labels"][LABEL_BACKFILL] = "bf"
    labelled["metadata"]["resourceVersion"] = "7"
    store.put(Kind.RUN, {**labelled, "status": {"phase": "Succeeded"}})
    plain = run_body(job(), "settle-2", at(1), "Schedule", [])
    store.put(Kind.RUN, plain)
    store.delete(Kind.RUN, ("ns", "settle-1"))
    store.delete(Kind.RUN, ("ns", "settle-2"))
    assert store.gone_runs_of(("ns", "bf")) == {"settle-1": "Succeeded"}
    store.forget_gone(("ns", "bf"), keep=["settle-1"])
    assert store.gone_runs_of(("ns", "bf")) == {"settle-1": "Succeeded"}
    store.forget_gone(("ns", "bf"), keep=[])
    assert store.gone_runs_of(("ns", "bf")) == {}
