"""Table tests of CronJob's policies (missed fires, history) and of the timer queue."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.controller.timers import TimerQueue
from almanac.rules.policy import decide, notifying, summarize, to_prune

T0 = datetime(2027, 1, 4, 0, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)


def at(minutes: int) -> datetime:
    return T0 + minutes * MIN


DECIDE_CASES = [
    # (id, due fires (minutes after T0), now (minutes), deadline s, resumed,
    #  started fire, missed fires)
    ("nothing due, nothing to do", [], 5, None, False, None, []),
    ("on time: the fire starts", [0], 0, 300, False, 0, []),
    (
        "down for three fires, no deadline: the latest starts, two are missed",
        [0, 1, 2],
        2,
        None,
        False,
        2,
        [0, 1],
    ),
    ("down, latest within the deadline: it starts late", [0], 4, 300, False, 0, []),
    ("down, latest past the deadline: every fire is missed", [0, 1], 7, 300, False, None, [0, 1]),
    ("deadline zero and exactly on time: it starts", [3], 3, 0, False, 3, []),
    (
        "resumed after suspension: nothing replays, all are missed",
        [0, 1],
        2,
        None,
        True,
        None,
        [0, 1],
    ),
]


@pytest.mark.parametrize(
    ("due", "now", "deadline", "resumed", "start", "missed"),
    [c[1:] for c in DECIDE_CASES],
    ids=[c[0] for c in DECIDE_CASES],
)
def test_decide(
    due: list[int],
    now: int,
    deadline: int | None,
    resumed: bool,
    start: int | None,
    missed: list[int],
) -> None:
    decision = decide([at(m) for m in due], at(now), deadline, resumed=resumed)
    assert decision.start == (None if start is None else at(start))
    assert decision.missed == [at(m) for m in missed]
    assert bool(decision.reason) == bool(missed)


CATCH_UP_CASES = [
    # (id, catchUp, concurrencyPolicy, busy, due, now, deadline s, serving since,
    #  started, missed, waiting)
    ("Latest: the latest starts, the rest are missed",
     "Latest", "Allow", False, [0, 1, 2], 2, None, None, [2], [0, 1], []),
    ("All: every missed fire starts, oldest first",
     "All", "Allow", False, [0, 1, 2], 2, None, None, [0, 1, 2], [], []),
    ("All: those past the deadline are missed, the rest start",
     "All", "Allow", False, [0, 1, 2, 3], 3, 90, None, [2, 3], [0, 1], []),
    ("All: everything past the deadline is missed",
     "All", "Allow", False, [0, 1], 9, 60, None, [], [0, 1], []),
    ("All with Forbid: the oldest starts, the others wait their turn",
     "All", "Forbid", False, [0, 1, 2], 2, None, None, [0], [], [1, 2]),
    ("All with Forbid while a run is active: every fire waits",
     "All", "Forbid", True, [0, 1, 2], 2, None, None, [], [], [0, 1, 2]),
    ("All with Forbid: a waiting fire past the deadline is missed",
     "All", "Forbid", True, [0, 1, 2], 4, 150, None, [], [0, 1], [2]),
    ("All with Replace: as Latest, each would replace the one before",
     "All", "Replace", False, [0, 1, 2], 2, None, None, [2], [0, 1], []),
    ("None: fires before the operator served are missed",
     "None", "Allow", False, [0, 1, 2], 2, None, 3, [], [0, 1, 2], []),
    ("None: a late fire after the operator began serving starts",
     "None", "Allow", False, [3], 4, None, 2, [3], [], []),
    ("None: before serving missed, the one after starts",
     "None", "Allow", False, [1, 2, 3], 3, None, 2, [3], [1, 2], []),
    ("None without a start instant: as Latest",
     "None", "Allow", False, [0, 1], 1, None, None, [1], [0], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("catch_up", "concurrency", "busy", "due", "now", "deadline", "since", "started", "missed",
     "waiting"),
    [c[1:] for c in CATCH_UP_CASES],
    ids=[c[0] for c in CATCH_UP_CASES],
)  # fmt: skip
def test_catch_up(
    catch_up: str,
    concurrency: str,
    busy: bool,
    due: list[int],
    now: int,
    deadline: int | None,
    since: int | None,
    started: list[int],
    missed: list[int],
    waiting: list[int],
) -> None:
    decision = decide(
        [at(m) for m in due],
        at(now),
        deadline,
        catch_up=catch_up,
        serving_since=None if since is None else at(since),
        concurrency=concurrency,
        busy=busy,
    )
    assert decision.starts == [at(m) for m in started]
    assert decision.missed == [at(m) for m in missed]
    assert decision.waiting == [at(m) for m in waiting]
    assert bool(decision.reason) == bool(missed)


def test_catch_up_all_starts_at_most_the_latest_thousand() -> None:
    due = [at(m) for m in range(1500)]
    decision = decide(due, due[-1], None, catch_up="All")
    assert decision.starts == due[500:]
    assert decision.missed == due[:500]
    assert "at most the latest 1000" in decision.reason


def run(name: str, minute: int, phase: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"scheduledTime": at(minute).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "status": {"phase": phase} if phase else {},
    }


def test_summary_lists_active_runs_the_latest_run_and_the_latest_success() -> None:
    runs = [
        run("r3", 3, "Running"),
        run("r1", 1, "Succeeded"),
        run("r2", 2, "Failed"),
        run("r4", 4, None),
    ]
    summary = summarize(runs, at(3))
    assert summary.active == ["r3", "r4"]
    r4 = "2027-01-04T00:34:00Z"
    assert summary.last_run == {"name": "r4", "phase": "Pending", "scheduledTime": r4}, (
        "scheduled after now"
    )
    # From its scheduled time an unfinished run is Running to its job, whatever its own
    # status says yet (the job's status is not written for the run's first step).
    assert summarize(runs, at(4)).last_run == {
        "name": "r4",
        "phase": "Running",
        "scheduledTime": r4,
    }
    assert summary.last_successful_time == "2027-01-04T00:31:00Z"


def test_summary_of_no_runs_clears_the_fields() -> None:
    assert summarize([], at(0)).as_status() == {
        "active": None,
        "lastRun": None,
        "lastSuccessfulTime": None,
    }


def last(name: str, minute: int, phase: str) -> dict[str, str]:
    return {"name": name, "phase": phase, "scheduledTime": _at(minute)}


def _at(minute: int) -> str:
    return at(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("runs", "recorded", "last_run", "last_success"),
    [
        # the run pruned by this decision is among the runs: it is the latest
        ([run("ok1", 1, "Succeeded"), run("ko2", 2, "Failed")], {}, last("ko2", 2, "Failed"), 1),
        # pruned by an earlier decision: what the status recorded stands
        (
            [run("ok1", 1, "Succeeded")],
            {"lastRun": last("ko2", 2, "Failed"), "lastSuccessfulTime": _at(1)},
            last("ko2", 2, "Failed"),
            1,
        ),
        (
            [],
            {"lastRun": last("ok2", 2, "Succeeded"), "lastSuccessfulTime": _at(2)},
            last("ok2", 2, "Succeeded"),
            2,
        ),
        # until a run scheduled after it exists
        (
            [run("ok1", 1, "Succeeded"), run("r3", 3, "Running")],
            {"lastRun": last("ko2", 2, "Failed")},
            last("r3", 3, "Running"),
            1,
        ),
        (
            [run("ok3", 3, "Succeeded")],
            {"lastRun": last("ok2", 2, "Succeeded"), "lastSuccessfulTime": _at(2)},
            last("ok3", 3, "Succeeded"),
            3,
        ),
        # one deleted unfinished, or recorded before lastRun had its scheduledTime:
        # told from the runs there are
        (
            [run("ok1", 1, "Succeeded")],
            {"lastRun": last("r2", 2, "Running")},
            last("ok1", 1, "Succeeded"),
            1,
        ),
        (
            [run("ok1", 1, "Succeeded")],
            {"lastRun": {"name": "ko2", "phase": "Failed"}},
            last("ok1", 1, "Succeeded"),
            1,
        ),
    ],
)
def test_the_summary_keeps_what_the_status_recorded_of_runs_no_longer_there(
    runs: list[dict[str, Any]],
    recorded: dict[str, Any],
    last_run: dict[str, str],
    last_success: int,
) -> None:
    """api.md "History limits": `lastRun` names the latest run even when its limit is 0;
    `lastSuccessfulTime` is never cleared by pruning (CronJob keeps it)."""
    summary = summarize(runs, at(4), recorded)
    assert (summary.last_run, summary.last_successful_time) == (last_run, _at(last_success))


def test_pruning_keeps_the_newest_runs_of_each_result_and_every_active_one() -> None:
    runs = [run(f"ok{i}", i, "Succeeded") for i in range(5)]
    runs += [run(f"ko{i}", 10 + i, "Failed") for i in range(3)]
    runs += [run("live", 0, "Running")]
    assert to_prune(runs, keep_succeeded=3, keep_failed=1) == ["ok0", "ok1", "ko0", "ko1"]


def test_pruning_with_limits_zero_removes_every_finished_run() -> None:
    runs = [run("a", 0, "Succeeded"), run("b", 1, "Failed"), run("c", 2, "Running")]
    assert to_prune(runs, 0, 0) == ["a", "b"]


@pytest.mark.parametrize(
    ("limits", "held", "pruned"),
    [
        ((0, 0), set(), ["a", "ko0", "b", "ko2"]),
        ((0, 0), {"b"}, ["a", "ko0", "ko2"]),
        ((0, 0), {"a", "b"}, ["ko0", "ko2"]),
        ((0, 1), set(), ["a", "ko0", "b"]),
        # a held run takes no place within the limit: the newest failure is kept beside it
        ((0, 1), {"ko0"}, ["a", "b"]),
    ],
)
def test_held_runs_are_never_pruned_and_take_no_place_within_the_limits(
    limits: tuple[int, int], held: set[str], pruned: list[str]
) -> None:
    runs = [
        run("a", 0, "Succeeded"),
        run("ko0", 1, "Failed"),
        run("b", 2, "Failed"),
        run("ko2", 3, "Failed"),
    ]
    assert to_prune(runs, *limits, held=held) == pruned


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        ({}, False),
        ({"notification": {"state": "Pending", "attempts": 3}}, True),
        ({"notification": {"state": "Sent"}, "lateNotification": {"state": "Pending"}}, True),
        ({"notification": {"state": "Failed"}, "lateNotification": {"state": "Sent"}}, False),
        ({"notification": {"state": "NotRequested"}}, False),
        ({"webhookNotifications": [{"state": "Sent"}, {"state": "Pending"}]}, True),
        ({"lateWebhookNotifications": [{"state": "Pending"}]}, True),
        ({"webhookNotifications": [{"state": "Failed"}, None]}, False),
    ],
)
def test_a_run_is_notifying_while_any_of_its_notifications_is_pending(
    status: dict[str, Any], pending: bool
) -> None:
    assert notifying({"metadata": {"name": "r"}, "status": status}) is pending


async def _wait_for_calls(queue: TimerQueue, keys: list[str], count: int) -> list[str]:
    calls: list[str] = []
    done = asyncio.Event()

    def callback(key: str) -> Any:
        async def call() -> None:
            calls.append(key)
            if len(calls) == count:
                done.set()

        return call

    now = datetime.now(UTC)
    for i, key in enumerate(keys):
        queue.set(key, now + timedelta(milliseconds=50 * (len(keys) - i)), callback(key))
    server = asyncio.create_task(queue.run())
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.cancel()
    return calls


def test_the_timer_queue_calls_in_time_order_whatever_the_order_of_setting() -> None:
    assert asyncio.run(_wait_for_calls(TimerQueue(), ["c", "b", "a"], 3)) == ["a", "b", "c"]


def test_setting_a_key_again_replaces_its_timer_and_cancel_removes_it() -> None:
    async def scenario() -> list[str]:
        queue = TimerQueue()
        calls: list[str] = []
        done = asyncio.Event()

        async def record(name: str) -> None:
            calls.append(name)
            done.set()

        soon = datetime.now(UTC) + timedelta(milliseconds=50)
        queue.set("job", soon, lambda: record("old"))
        queue.set("job", soon + timedelta(milliseconds=50), lambda: record("new"))
        queue.set("gone", soon, lambda: record("cancelled"))
        queue.cancel("gone")
        server = asyncio.create_task(queue.run())
        try:
            await asyncio.wait_for(done.wait(), 5)
        finally:
            server.cancel()
        assert len(queue) == 0
        return calls

    assert asyncio.run(scenario()) == ["new"]


def test_a_failed_callback_is_tried_again_unless_its_key_was_set_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("almanac.controller.timers.RETRY", timedelta(milliseconds=50))

    async def scenario() -> tuple[list[str], datetime | None]:
        queue = TimerQueue()
        calls: list[str] = []
        done = asyncio.Event()
        later = datetime.now(UTC) + timedelta(hours=1)

        async def flaky() -> None:  # fails once, as a fire does when the API is away
            calls.append("flaky")
            if calls.count("flaky") == 1:
                raise ConnectionError("API server unreachable")
            done.set()

        async def rescheduled_then_failed() -> None:
            calls.append("rescheduled")
            queue.set("other", later, rescheduled_then_failed)
            raise ConnectionError("after setting its next wake-up")

        soon = datetime.now(UTC) + timedelta(milliseconds=20)
        queue.set("job", soon, flaky)
        queue.set("other", soon, rescheduled_then_failed)
        server = asyncio.create_task(queue.run())
        try:
            await asyncio.wait_for(done.wait(), 5)
        finally:
            server.cancel()
        return calls, queue.when("other")

    calls, other = asyncio.run(scenario())
    assert calls.count("flaky") == 2
    assert calls.count("rescheduled") == 1
    assert other is not None and other > datetime.now(UTC) + timedelta(minutes=59)


def test_a_failing_timer_is_retried_soon_and_logged_ever_more_rarely(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("almanac.controller.timers.RETRY", timedelta(milliseconds=5))
    monkeypatch.setattr("almanac.controller.timers.MAX_RETRY", timedelta(milliseconds=20))

    async def scenario() -> list[datetime]:
        queue = TimerQueue()
        calls: list[datetime] = []
        done = asyncio.Event()

        async def failing_nine_times() -> None:
            calls.append(datetime.now(UTC))
            if len(calls) <= 9:
                raise ConnectionError("API server unreachable")
            done.set()

        queue.set("job", datetime.now(UTC), failing_nine_times)
        server = asyncio.create_task(queue.run())
        try:
            await asyncio.wait_for(done.wait(), 5)
        finally:
            server.cancel()
        return calls

    with caplog.at_level(logging.INFO, logger="almanac.controller.timers"):
        calls = asyncio.run(scenario())
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(calls)]
    assert len(gaps) == 9
    assert gaps[0] >= 0.005 and gaps[1] >= 0.01 and min(gaps[2:]) >= 0.02  # capped
    records = [(r.levelname, r.exc_info is not None) for r in caplog.records]
    assert records == [
        ("ERROR", True),  # the first failure, with its traceback
        ("WARNING", False),  # the 2nd
        ("WARNING", False),  # the 4th
        ("WARNING", False),  # the 8th
        ("INFO", False),  # and when it works again
    ]
    assert "failed again (8 times in a row)" in caplog.records[3].getMessage()


@pytest.mark.parametrize(("failures", "seconds"), [(1, 1), (2, 2), (3, 4), (4, 5), (100, 5)])
def test_timer_retry_delays_double_up_to_five_seconds(failures: int, seconds: float) -> None:
    assert TimerQueue().retry_delay(failures) == timedelta(seconds=seconds)


# --- due fires after a downtime (rules.jobs.due_fires) --------------------------------------


@pytest.mark.parametrize(
    ("expression", "away", "listed", "uncounted"),
    [
        ("* * * * *", timedelta(minutes=10), 10, False),
        ("* * * * *", timedelta(minutes=1000), 1000, False),
        # Past 1,000: the listed ones, then those of the last hour.
        ("* * * * *", timedelta(days=30), 1000 + 60, True),
        ("0 * * * *", timedelta(days=365), 1000 + 1, True),
        # Nothing in the last hour or day: the window that has some.
        ("0 3 1 * *", timedelta(days=365 * 100), 1000 + 1, True),
    ],
)
def test_due_fires_lists_at_most_a_thousand_then_the_latest(
    expression: str, away: timedelta, listed: int, uncounted: bool
) -> None:
    from almanac.api.models import ScheduledJob
    from almanac.api.resolve import resolve
    from almanac.rules.jobs import due_fires
    from tests.integration.objects import scheduled_job

    since = datetime(1990, 1, 1, tzinfo=UTC)
    now = since + away
    schedule = resolve(ScheduledJob.parse(scheduled_job("j", expression)), {}, "UTC")
    due, left_out = due_fires(schedule, since, now)
    assert (len(due), left_out) == (listed, uncounted)
    assert due == sorted(set(due))
    every = list(itertools.takewhile(lambda t: t <= now, schedule.fires(since)))
    assert due[-1] == every[-1]  # the latest is never left out


CATCH_UP_ALL_AFTER_AN_ABSENCE = [
    # (id, schedule, away, startingDeadlineSeconds, the missed fires' message)
    ("1,500 missed fires: the latest 1,000 start, the oldest 500 are missed",
     "* * * * *", timedelta(minutes=1500), None, "500 fire(s) not started"),
    ("a month away: the latest 1,000 start, the missed ones counted from below",
     "* * * * *", timedelta(days=30), None, "more than 1440 fire(s) not started"),
    ("hourly for a year: the latest 1,000 start, every other one is counted",
     "0 * * * *", timedelta(days=365), None, "7760 fire(s) not started"),
    ("a month away with an hour's deadline: the 61 fires within it start",
     "* * * * *", timedelta(days=30), 3600, "more than 2379 fire(s) not started"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "away", "deadline", "message"),
    [c[1:] for c in CATCH_UP_ALL_AFTER_AN_ABSENCE],
    ids=[c[0] for c in CATCH_UP_ALL_AFTER_AN_ABSENCE],
)
def test_catch_up_all_starts_the_latest_thousand_missed_fires(
    expression: str, away: timedelta, deadline: int | None, message: str
) -> None:
    """api.md "Missed fires", catchUp All: "every missed fire within
    startingDeadlineSeconds, each its own run, oldest first, at most 1,000 (the latest
    1,000)"; recorded as missed: "those past the deadline, and those beyond 1,000"."""
    from almanac.api.models import ScheduledJob
    from almanac.api.resolve import resolve
    from almanac.rules.jobs import decide_job
    from tests.integration.objects import scheduled_job

    created = datetime(2027, 1, 1, tzinfo=UTC)
    now = created + away
    spec: dict[str, Any] = {"catchUp": "All"}
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    body = scheduled_job("j", expression, **spec)
    body["metadata"].update(
        uid="u", namespace="ns", generation=1, creationTimestamp="2027-01-01T00:00:00Z"
    )
    plan = decide_job(body, [], {}, now)
    schedule = resolve(ScheduledJob.parse(body), {}, "UTC")
    every = list(itertools.takewhile(lambda t: t <= now, schedule.fires(created)))
    within = [t for t in every if deadline is None or now - t <= timedelta(seconds=deadline)]
    started = [c.body["spec"]["scheduledTime"] for c in plan.creates]
    assert started == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in within[-1000:]]
    assert plan.status["missedSchedules"]["message"].startswith(message)
    assert plan.status["missedSchedules"]["lastMissedTime"] == (
        every[-len(started) - 1].strftime("%Y-%m-%dT%H:%M:%SZ")
    )
