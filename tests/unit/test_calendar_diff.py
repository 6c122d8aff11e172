"""What a Calendar edit moves (issue 17, part 6): the pure comparison, the offline
``almanac calendar-diff`` and the admission warning for an edit that stops a job.

The expected fires come from the schedule engine (``almanac next``'s answer for each
version of the Calendar), never typed by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.api.impact import FIRES_COMPARED, calendar_impact, never_fires_warnings
from almanac.api.models import ScheduledJob
from almanac.api.resolve import resolve
from almanac.cli.main import main
from almanac.controller.admission import review_calendar
from almanac.errors import InvalidSpec
from tests.integration.objects import calendar, scheduled_job

SINCE = datetime(2027, 12, 1, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=90)


def job(
    name: str, schedule: str = "30 2 * * *", refs: tuple[str, ...] = ("bank",)
) -> dict[str, Any]:
    body = scheduled_job(
        name, schedule, timeZone="Europe/Bucharest", calendarRefs=[{"name": r} for r in refs]
    )
    body["metadata"]["namespace"] = "finance"
    return body


def cal(name: str = "bank", **lists: Any) -> dict[str, Any]:
    body = calendar(name, **lists)
    body["metadata"]["namespace"] = "finance"
    return body


def fires(job_body: dict[str, Any], calendars: dict[str, Any]) -> set[datetime]:
    """``almanac next``'s fires over the period for one version of the Calendars."""
    schedule = resolve(ScheduledJob.parse(job_body), calendars)
    return set(itertools.takewhile(lambda t: t <= UNTIL, schedule.fires(SINCE)))


EDITS = [
    # (id, current Calendar lists, edited Calendar lists)
    ("a holiday added: its fire disappears", {}, {"holiday": ["24.12.2027"]}),
    ("a holiday removed: its fire appears", {"holiday": ["24.12.2027"]}, {}),
    ("an annual day moved", {"annual": ["25.12"]}, {"annual": ["26.12"]}),
    ("country holidays added", {}, {"holidays": [{"country": "RO"}]}),
    ("weekends added", {}, {"weekly": ["Saturday", "Sunday"]}),
    ("nothing that matters changed", {"annual": ["25.12"]}, {"annual": ["25.12"], "monthly": []}),
]


@pytest.mark.parametrize(("old", "new"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_the_diff_is_the_difference_of_the_two_versions_fires(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    j = job("settlement")
    before, after = {"bank": cal(**old)}, {"bank": cal(**new)}
    [impact] = calendar_impact(cal(**new), [j], [cal(**old)], SINCE, UNTIL)
    assert impact.job == "settlement"
    assert {m.instant for m in impact.moved if m.appears} == fires(j, after) - fires(j, before)
    assert {m.instant for m in impact.moved if not m.appears} == fires(j, before) - fires(j, after)
    assert [m.instant for m in impact.moved] == sorted(m.instant for m in impact.moved)
    for moved in impact.moved:
        assert moved.local.utcoffset() == moved.instant.astimezone(moved.local.tzinfo).utcoffset()
        assert bool(moved.why) == (not moved.appears)  # a disappearing fire says why
    assert not impact.never_fires and not impact.error


def test_a_disappearing_fire_names_the_rule_that_removes_it() -> None:
    [impact] = calendar_impact(
        cal(holiday=["24.12.2027"]), [job("settlement")], [cal()], SINCE, UNTIL
    )
    [moved] = impact.moved
    assert moved.local.date().isoformat() == "2027-12-24"
    assert '"24.12.2027"' in moved.why and "Calendar bank" in moved.why


def test_only_the_jobs_that_refer_to_the_calendar_are_compared() -> None:
    jobs = [job("b-refers"), job("other", refs=("elsewhere",)), job("a-refers")]
    calendars = [cal(), cal("elsewhere")]
    impacts = calendar_impact(cal(holiday=["24.12.2027"]), jobs, calendars, SINCE, UNTIL)
    assert [i.job for i in impacts] == ["a-refers", "b-refers"]


def test_a_calendar_not_there_yet_fires_nothing_today_so_every_fire_appears() -> None:
    j = job("settlement")
    [impact] = calendar_impact(cal(), [j], [], SINCE, UNTIL)
    assert {m.instant for m in impact.moved} == fires(j, {"bank": cal()})
    assert all(m.appears for m in impact.moved)


def test_an_edit_that_stops_a_job_says_so() -> None:
    weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    j = job("weekly-report", "0 9 * * MON")
    [impact] = calendar_impact(cal(weekly=weekdays), [j], [cal()], SINCE, UNTIL)
    assert impact.never_fires
    assert impact.moved and not any(m.appears for m in impact.moved)


def test_an_invalid_job_is_reported_not_raised() -> None:
    broken = job("broken")
    broken["spec"]["timeZone"] = "Mars/Olympus"
    [impact] = calendar_impact(cal(), [broken], [cal()], SINCE, UNTIL)
    assert "timeZone" in impact.error and not impact.moved


def test_an_invalid_edit_raises_with_the_field() -> None:
    with pytest.raises(InvalidSpec, match="holiday"):
        calendar_impact(cal(holiday=["31.02.2027"]), [job("j")], [], SINCE, UNTIL)


def test_a_job_that_fires_every_minute_is_compared_up_to_a_bound() -> None:
    j = job("busy", "* * * * *")
    [impact] = calendar_impact(cal(holiday=["02.12.2027"]), [j], [cal()], SINCE, UNTIL)
    assert impact.compared_until is not None
    assert impact.compared_until < UNTIL
    # 1 December 2027 from 02:00 local is 1,320 minutes; the holiday follows within the bound.
    assert FIRES_COMPARED > 1440 + 1320
    assert len(impact.moved) == 1440 and not any(m.appears for m in impact.moved)


def test_the_admission_warning_names_the_job_that_would_stop() -> None:
    weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    jobs = [job("weekly-report", "0 9 * * MON"), job("daily"), job("unrelated", refs=("x",))]
    current = [cal(), cal("x")]
    edit = cal(weekly=weekdays)
    warnings = never_fires_warnings(edit, jobs, current, SINCE)
    assert len(warnings) == 1 and '"weekly-report"' in warnings[0]
    # A job that already never fires is not news, and an invalid edit is refused instead.
    assert never_fires_warnings(edit, jobs, [edit, cal("x")], SINCE) == []
    invalid = cal(holiday=["31.02.2027"])
    assert not review_calendar(invalid).allowed
    assert never_fires_warnings(invalid, jobs, current, SINCE) == []


@pytest.mark.parametrize(
    ("deadline", "named", "not_checked"),
    [
        (None, 5, ""),  # no deadline: every referring job
        (100, 5, ""),  # a deadline not reached
        (2, 2, "3 of the 5"),  # the clock reads 0, 1, 2: two jobs checked
        (0, 0, "5 of the 5"),  # already past: none checked, and said
    ],
)
def test_the_admission_warnings_stop_at_the_deadline_and_say_what_was_not_checked(
    deadline: int | None, named: int, not_checked: str
) -> None:
    """Each of the five Monday jobs would stop (the edit excludes every weekday); the
    clock moves one per reading, and the jobs are checked in name order."""
    weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    jobs = [job(f"weekly-{i}", "0 9 * * MON") for i in range(5)] + [job("x", refs=("x",))]
    readings = itertools.count()
    warnings = never_fires_warnings(
        cal(weekly=weekdays), jobs, [cal(), cal("x")], SINCE,
        deadline=deadline, clock=lambda: next(readings),
    )  # fmt: skip
    stopping = [w for w in warnings if "would never fire again" in w]
    assert [w.split('"')[1] for w in stopping] == [f"weekly-{i}" for i in range(named)]
    rest = [w for w in warnings if w not in stopping]
    if not_checked:
        assert len(rest) == 1 and rest[0].startswith(not_checked + " ScheduledJobs"), rest
        assert "kubectl almanac calendar-diff -f" in rest[0]
    else:
        assert rest == []


def test_almanac_calendar_diff_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump_all([job("settlement"), cal()]))
    edited = tmp_path / "bank.yaml"
    edited.write_text(yaml.safe_dump(cal(holiday=["24.12.2027"])))
    argv = ["calendar-diff", "-f", str(edited), "--jobs", str(jobs)]
    argv += ["--after", "2027-12-01T00:00:00Z"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Calendar bank: the fires this version moves, 2027-12-01T00:00:00Z")
    assert out[1].split() == ["SCHEDULEDJOB", "CHANGE", "FIRE", "(UTC)", "LOCAL", "WHY"]
    assert out[2].split()[:4] == ["settlement", "disappears", "2027-12-24T00:30:00Z", "Fri"]
    assert out[-1] == "1 ScheduledJob(s) refer to it: 0 fire(s) appear, 1 disappear."
    # An invalid edit names the field and exits 2; a file holding no Calendar too.
    edited.write_text(yaml.safe_dump(cal(holiday=["31.02.2027"])))
    assert main(argv) == 2
    assert "spec.holiday[0]" in capsys.readouterr().err
    edited.write_text(yaml.safe_dump(job("not-a-calendar")))
    assert main(argv) == 2
    assert "holds 0 Calendars and ClusterCalendars; expected exactly one" in (
        capsys.readouterr().err
    )


def cluster_cal(name: str = "ro-banks", **lists: Any) -> dict[str, Any]:
    return {**calendar(name, **lists), "kind": "ClusterCalendar"}


def refs(*refs: tuple[str, str]) -> tuple[dict[str, str], ...]:
    return tuple({"kind": kind, "name": name} for kind, name in refs)


def job_in(namespace: str, name: str, *calendar_refs: dict[str, str]) -> dict[str, Any]:
    body = scheduled_job(
        name, "30 2 * * *", timeZone="Europe/Bucharest", calendarRefs=list(calendar_refs)
    )
    body["metadata"]["namespace"] = namespace
    return body


def cal_in(namespace: str, name: str, **lists: Any) -> dict[str, Any]:
    body = calendar(name, **lists)
    body["metadata"]["namespace"] = namespace
    return body


CLUSTER_REF = {"kind": "ClusterCalendar", "name": "ro-banks"}
BANK_REF = {"kind": "Calendar", "name": "bank"}


def test_a_cluster_calendar_edit_compares_every_namespaces_jobs_with_their_own_calendars() -> None:
    """Each referring job, whatever its namespace, is compared with the Calendars of its
    own namespace beside the ClusterCalendar; a namespaced Calendar of the same name is
    another calendar, and its jobs are not compared."""
    jobs = [
        job_in("ops", "cleanup", CLUSTER_REF, BANK_REF),
        job_in("finance", "settlement", CLUSTER_REF, BANK_REF),
        job_in("hr", "payroll", {"kind": "Calendar", "name": "ro-banks"}),
    ]
    calendars = [
        cluster_cal(holiday=["24.12.2027"]),
        cal_in("finance", "bank", holiday=["25.12.2027"]),
        cal_in("ops", "bank", weekly=["Saturday", "Sunday"]),
        cal_in("hr", "ro-banks"),
    ]
    edit = cluster_cal(holiday=["24.12.2027", "31.12.2027"], annual=["01.01"])
    impacts = calendar_impact(edit, jobs, calendars, SINCE, UNTIL)
    assert [i.job for i in impacts] == ["finance/settlement", "ops/cleanup"]
    for impact, body in zip(impacts, [jobs[1], jobs[0]], strict=True):
        namespace = body["metadata"]["namespace"]
        own = {"bank": next(c for c in calendars[1:3] if c["metadata"]["namespace"] == namespace)}
        before = {**own, "ClusterCalendar/ro-banks": calendars[0]}
        after = {**own, "ClusterCalendar/ro-banks": edit}
        gone = fires(body, before) - fires(body, after)
        assert gone and {m.instant for m in impact.moved if not m.appears} == gone
        assert not any(m.appears for m in impact.moved) and not impact.error


def test_a_calendar_edit_evaluates_a_job_that_also_refers_to_a_cluster_calendar() -> None:
    j = job_in("finance", "settlement", BANK_REF, CLUSTER_REF)
    current = [cal_in("finance", "bank"), cluster_cal(holiday=["24.12.2027"])]
    edit = cal_in("finance", "bank", holiday=["31.12.2027"])
    [impact] = calendar_impact(edit, [j], current, SINCE, UNTIL)
    assert not impact.error
    assert [m.local.date().isoformat() for m in impact.moved] == ["2027-12-31"]


def test_almanac_calendar_diff_offline_for_a_cluster_calendar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = tmp_path / "jobs.yaml"
    manifest = [
        job_in("finance", "settlement", CLUSTER_REF),
        job_in("ops", "cleanup", CLUSTER_REF),
        cluster_cal(),
    ]
    jobs.write_text(yaml.safe_dump_all(manifest))
    edited = tmp_path / "ro-banks.yaml"
    edited.write_text(yaml.safe_dump(cluster_cal(holiday=["24.12.2027"])))
    argv = ["calendar-diff", "-f", str(edited), "--jobs", str(jobs)]
    assert main([*argv, "--after", "2027-12-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ClusterCalendar ro-banks: the fires this version moves")
    assert [line.split()[:2] for line in out[2:4]] == [
        ["finance/settlement", "disappears"],
        ["ops/cleanup", "disappears"],
    ]
    assert out[-1] == "2 ScheduledJob(s) refer to it: 0 fire(s) appear, 2 disappear."


def test_the_admission_warning_of_a_cluster_calendar_names_the_job_with_its_namespace() -> None:
    jobs = [
        job_in("finance", "new-year", CLUSTER_REF),
        job_in("ops", "new-year", CLUSTER_REF),
        job_in("hr", "new-year", {"kind": "Calendar", "name": "ro-banks"}),
    ]
    for body in jobs:
        body["spec"]["schedule"] = "0 0 1 1 *"
    edit = cluster_cal(annual=["01.01"])
    warnings = never_fires_warnings(edit, jobs, [cluster_cal()], SINCE)
    assert [w.split(" would")[0] for w in warnings] == [
        'ScheduledJob "finance/new-year"',
        'ScheduledJob "ops/new-year"',
    ]
    assert all("with this ClusterCalendar: " in w for w in warnings)


@pytest.mark.parametrize("days", ["10001", "99999999999"])
def test_days_past_the_bound_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    """``--days`` as ``--count``: at most 10,000 (a huge one overflowed, with a traceback)."""
    path = tmp_path / "any.yaml"
    path.write_text("")
    code = main(["calendar-diff", "-f", str(path), "--jobs", str(path), "--days", days])
    assert code == 2
    assert f'argument --days: "{days}" is more than 10000' in capsys.readouterr().err
