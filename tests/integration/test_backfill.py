"""Backfill on the real control plane: the runs `almanac next` predicts for a past range,
at most `parallelism` unfinished at once, through an operator restart, without a
duplicate; refusals said in the status and by the API server."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from almanac.api.models import ScheduledJob
from almanac.api.names import run_name
from almanac.api.resolve import resolve
from tests.integration.conftest import Admission, Operator
from tests.integration.objects import API_VERSION, calendar, scheduled_job, service
from tests.integration.test_operator import reasons, utc
from tests.integration.test_plugin import columns, plugin
from tests.integration.test_webhook import ALMANAC_EDIT, grant
from tests.kube import Kubectl, wait_until

ZONE = "Europe/Bucharest"
FINISHED = ("Succeeded", "Failed")


def backfill(name: str, job: str, start: datetime, end: datetime, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": {
            "scheduledJob": job,
            "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **spec,
        },
    }


def predicted(
    k: Kubectl, job: str, calendars: list[str], start: datetime, end: datetime
) -> list[datetime]:
    """What `almanac next` lists from just before ``start``, cut at ``end``: the same
    library call (resolve, then Schedule.fires) on the objects as the cluster holds them."""
    body = k.get("sj", job)
    assert body is not None
    bodies = {name: k.get("calendar", name) for name in calendars}
    schedule = resolve(ScheduledJob.parse(body), {n: b for n, b in bodies.items() if b})
    fires = schedule.fires(start - timedelta(seconds=1))
    return [t for t in itertools.takewhile(lambda t: t < end, fires) if t >= start]


def test_a_backfill_creates_the_predicted_runs_n_at_a_time_through_a_restart(
    k: Kubectl, operator: Operator
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=8), today - timedelta(days=1)
    # A holiday on the fourth local day of the range: its fire must not be backfilled.
    holiday = (start + timedelta(days=3)).astimezone(ZoneInfo(ZONE)).date()
    k.apply(calendar("closed", holiday=[holiday.strftime("%d.%m.%Y")]))
    k.apply(
        scheduled_job(
            "settle",
            "30 2 * * *",
            timeZone=ZONE,
            calendarRefs=[{"name": "closed"}],
            successfulRunsHistoryLimit=20,
            services=[service("main", duration="3s")],
        )
    )
    expected = predicted(k, "settle", ["closed"], start, end)
    assert len(expected) == 6  # seven days, one a holiday: the exclusion is in play
    assert all(t.astimezone(ZoneInfo(ZONE)).date() != holiday for t in expected)

    k.apply(backfill("catch-up", "settle", start, end, parallelism=2))
    most_unfinished = 0

    def progress(at_least: int) -> dict[str, Any] | None:
        """Polls the Backfill's runs (noting how many are unfinished at once) until
        ``at_least`` instants have their run and the status says so."""
        nonlocal most_unfinished
        runs = k.items("sjr", "-l", "almanac.dev/backfill=catch-up")
        unfinished = [r for r in runs if (r.get("status") or {}).get("phase") not in FINISHED]
        most_unfinished = max(most_unfinished, len(unfinished))
        status = (k.get("backfill", "catch-up") or {}).get("status") or {}
        return status if int(status.get("created") or 0) >= at_least else None

    wait_until("the first two runs", lambda: progress(2), timeout=60)
    operator.kill()  # midway: runs unfinished, instants left
    operator.start()
    wait_until(
        "the backfill to finish",
        lambda: (s := progress(len(expected))) and s.get("phase") in FINISHED and s,
        timeout=120,
    )
    status = k.get("backfill", "catch-up")["status"]
    assert status["phase"] == "Succeeded", status
    assert (status["total"], status["created"], status["succeeded"], status["failed"]) == (
        len(expected),
        len(expected),
        len(expected),
        0,
    )
    assert status.get("active", []) == [] and "nextInstant" not in status
    assert most_unfinished == 2  # parallelism used, never exceeded

    runs = k.items("sjr", "-l", "almanac.dev/backfill=catch-up")
    assert sorted(r["metadata"]["name"] for r in runs) == sorted(
        run_name("settle", t) for t in expected
    )
    assert sorted(utc(r["spec"]["scheduledTime"]) for r in runs) == expected
    assert {r["spec"]["trigger"] for r in runs} == {"Backfill"}
    # Each run made its one Job once, across the restart.
    for run in runs:
        name = run["metadata"]["name"]
        jobs = k.items("jobs", "-l", f"almanac.dev/run={name}")
        assert [j["metadata"]["name"] for j in jobs] == [f"{name}-main"]
    events = k.events("catch-up")
    created = [e["message"].split()[2] for e in events if e["reason"] == "RunCreated"]
    assert sorted(created) == sorted(run_name("settle", t) for t in expected)
    assert [r for r in reasons(k, "catch-up") if r.startswith("Backfill")] == [
        "BackfillStarted",
        "BackfillSucceeded",
    ]
    table = k.run("get", "bf", "catch-up").stdout
    assert "Succeeded" in table and "settle" in table


def test_newest_first_and_deleting_the_backfill_stops_it(k: Kubectl, operator: Operator) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=6), today - timedelta(days=1)
    k.apply(scheduled_job("newest", "0 3 * * *", services=[service("main", duration="30s")]))
    expected = predicted(k, "newest", [], start, end)
    k.apply(backfill("back", "newest", start, end, order="Newest"))
    first = run_name("newest", expected[-1])
    run = wait_until("the newest instant's run", lambda: k.get("sjr", first), timeout=30)
    assert run["spec"]["trigger"] == "Backfill"
    assert k.get("backfill", "back")["status"]["nextInstant"] == expected[-2].strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    k.run("delete", "backfill", "back")
    # The run it made finishes; no other instant gets a run.
    wait_until(
        "the created run to finish",
        lambda: (k.get("sjr", first) or {}).get("status", {}).get("phase") in FINISHED,
        timeout=90,
    )
    assert [r["metadata"]["name"] for r in k.items("sjr", "-l", "almanac.dev/backfill=back")] == [
        first
    ]


def test_more_than_10000_instants_is_refused_in_the_status(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("minutely", "* * * * *"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    k.apply(backfill("huge", "minutely", today - timedelta(days=8), today - timedelta(days=1)))
    status = wait_until(
        "the refusal",
        lambda: (
            (k.get("backfill", "huge") or {}).get("status", {}).get("phase")
            and (k.get("backfill", "huge")["status"])
        ),
        timeout=30,
    )
    assert (status["phase"], status["reason"]) == ("Failed", "TooManyInstants")
    assert "more than 10,000 instants" in status["message"]
    assert "TooManyInstants" in reasons(k, "huge")
    assert k.items("sjr", "-l", "almanac.dev/backfill=huge") == []


def test_the_crd_refuses_a_bad_backfill_with_the_field(k: Kubectl, crds: Kubectl) -> None:
    now = datetime.now(UTC)
    reversed_range = backfill("bad", "settle", now - timedelta(days=1), now - timedelta(days=2))
    assert "spec.to must be later than spec.from" in k.apply_expecting_error(reversed_range)
    zero = backfill("zero", "settle", now - timedelta(days=2), now, parallelism=0)
    assert "spec.parallelism" in k.apply_expecting_error(zero)
    sideways = backfill("side", "settle", now - timedelta(days=2), now, order="Sideways")
    assert 'Unsupported value: "Sideways"' in k.apply_expecting_error(sideways)


def test_the_plugin_lists_the_instants_then_creates_the_backfill(
    k: Kubectl, operator: Operator
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=7), today
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    holiday = (start + timedelta(days=2)).astimezone(ZoneInfo(ZONE)).date()
    k.apply(
        scheduled_job(
            "plug",
            "15 1 * * *",
            timeZone=ZONE,
            exclusions={"holiday": [holiday.strftime("%d.%m.%Y")]},
        )
    )
    expected = predicted(k, "plug", [], start, end)
    window = ["--from", start.strftime(stamp), "--to", end.strftime(stamp)]

    dry = plugin(k, "backfill", "plug", *window, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    head, header, *rows = dry.stdout.splitlines()
    assert f"{len(expected)} instant(s)" in head
    assert columns(header) == ["#", "UTC", f"LOCAL ({ZONE})", "RUN", "NOTE"]
    assert [columns(r)[1] for r in rows] == [t.strftime(stamp) for t in expected]
    assert [columns(r)[3] for r in rows] == [run_name("plug", t) for t in expected]
    assert k.items("backfill") == []  # a dry run creates nothing

    made = plugin(k, "backfill", "plug", *window, "--parallelism", "3", "--name", "plug-week")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "backfill.almanac.dev/plug-week created\n"
    spec = k.get("backfill", "plug-week")["spec"]
    assert (spec["parallelism"], spec["order"]) == (3, "Oldest")
    status = wait_until(
        "the backfill to finish",
        lambda: (
            (s := (k.get("backfill", "plug-week") or {}).get("status") or {}).get("phase")
            in FINISHED
            and s
        ),
        timeout=90,
    )
    assert status["phase"] == "Succeeded" and status["created"] == len(expected)

    future = plugin(
        k, "backfill", "plug", "--from", start.strftime(stamp), "--to", "2200-01-01T00:00:00Z"
    )
    assert future.returncode == 1
    assert "is later than now" in future.stderr


def test_the_webhook_refuses_a_range_past_now_or_over_10000_and_users_who_may_not_run_jobs(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    admission()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    week = (today - timedelta(days=8), today - timedelta(days=1))
    k.apply(scheduled_job("minutely", "* * * * *"), scheduled_job("daily", "0 4 * * *"))
    error = k.apply_expecting_error(backfill("huge", "minutely", *week))
    assert 'admission webhook "backfills.' in error
    assert "the range holds more than 10,000 instants of the schedule" in error
    error = k.apply_expecting_error(
        backfill("ahead", "daily", today - timedelta(days=1), today + timedelta(days=1))
    )
    assert "spec.to: " in error and "is later than now" in error
    result = k.apply(backfill("early", "later", *week))
    assert 'ScheduledJob "later" does not exist yet; the Backfill waits for it' in result.stderr
    grant(k, "alice", [{**ALMANAC_EDIT, "resources": ["backfills"]}])
    refused = k.run(
        "apply",
        "--as",
        "alice",
        "-f",
        "-",
        stdin=yaml.safe_dump(backfill("alices", "daily", *week)),
        check=False,
    )
    assert refused.returncode != 0
    assert 'alice may not create Jobs in namespace "' in refused.stderr, refused.stderr
    k.apply(backfill("fine", "daily", *week))
    status = wait_until(
        "the admitted backfill to finish",
        lambda: (
            (s := (k.get("bf", "fine") or {}).get("status") or {}).get("phase") in FINISHED and s
        ),
        timeout=90,
    )
    assert status["phase"] == "Succeeded"
    assert status["total"] == len(predicted(k, "daily", [], *week))


def test_runs_the_history_limits_prune_are_counted_and_never_run_again(
    k: Kubectl, operator: Operator
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=7), today - timedelta(days=1)
    k.apply(
        scheduled_job(
            "pruned",
            "0 5 * * *",
            successfulRunsHistoryLimit=0,
            failedRunsHistoryLimit=0,
            services=[service("main")],
        )
    )
    expected = predicted(k, "pruned", [], start, end)
    k.apply(backfill("gone", "pruned", start, end, parallelism=2))
    status = wait_until(
        "the backfill to finish",
        lambda: (
            (s := (k.get("bf", "gone") or {}).get("status") or {}).get("phase") in FINISHED and s
        ),
        timeout=120,
    )
    assert status["phase"] == "Succeeded", status
    assert (status["created"], status["succeeded"], status["failed"]) == (
        len(expected),
        len(expected),
        0,
    )
    created = [e["message"].split()[2] for e in k.events("gone") if e["reason"] == "RunCreated"]
    assert sorted(created) == sorted(run_name("pruned", t) for t in expected)  # once each
    wait_until(
        "every finished run pruned by the job's history limits",
        lambda: k.items("sjr", "-l", "almanac.dev/backfill=gone") == [],
        timeout=30,
    )
