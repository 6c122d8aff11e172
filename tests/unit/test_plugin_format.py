"""The ``kubectl almanac`` plugin without a cluster: its tables and reports (pure functions
of API dicts and a fixed ``now``), its reading of the operator's answers, and its command
line. What it prints against the real control plane is tests/integration/test_plugin.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from almanac.cli.plugin import build_parser, main
from almanac.cli.plugin.errors import PluginError
from almanac.cli.plugin.fires import format_next
from almanac.cli.plugin.outcomes import rerun_outcome, run_now_outcome
from almanac.cli.plugin.views import format_run, format_runs, format_table, human_duration

NOW = datetime(2027, 1, 4, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_body(
    name: str,
    *,
    scheduled: str,
    created: str | None = None,
    trigger: str = "Schedule",
    parent: str | None = None,
    services: Sequence[str] = ("main",),
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scheduledJob": "nightly",
        "scheduledTime": scheduled,
        "trigger": trigger,
        "services": [{"name": s, "jobTemplate": {}} for s in services],
    }
    if parent:
        spec["parentRun"] = parent
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "finance",
            "creationTimestamp": created or scheduled,
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def event(
    reason: str, message: str, when: str, *, type_: str = "Normal", uid: str = "", rv: str = "1"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"x.{reason}", "uid": uid or reason, "resourceVersion": rv},
        "type": type_,
        "reason": reason,
        "message": message,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


# --------------------------------------------------------------------------------------
# Ages and tables


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        pytest.param(-5, "<invalid>", id="clock skew beyond a second"),
        pytest.param(-0.5, "0s", id="a moment in the future is now"),
        pytest.param(0, "0s", id="now"),
        pytest.param(119, "119s", id="seconds up to two minutes"),
        pytest.param(120, "2m", id="two minutes"),
        pytest.param(192, "3m12s", id="minutes and seconds under ten minutes"),
        pytest.param(11 * 60 + 5, "11m", id="minutes only from ten minutes"),
        pytest.param(179 * 60, "179m", id="minutes up to three hours"),
        pytest.param(5 * 3600 + 7 * 60, "5h7m", id="hours and minutes under eight hours"),
        pytest.param(30 * 3600, "30h", id="hours up to two days"),
        pytest.param(3 * 86400 + 4 * 3600, "3d4h", id="days and hours under eight days"),
        pytest.param(40 * 86400, "40d", id="days up to two years"),
        pytest.param(3 * 365 * 86400 + 86400, "3y1d", id="years and days under eight years"),
        pytest.param(9 * 365 * 86400, "9y", id="years"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: float, age: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == age


def test_a_table_aligns_columns_three_spaces_apart_without_trailing_blanks() -> None:
    assert format_table(["NAME", "PHASE"], [["a", "Succeeded"], ["longer-name", ""]]) == [
        "NAME          PHASE",
        "a             Succeeded",
        "longer-name",
    ]


# --------------------------------------------------------------------------------------
# runs


def test_runs_are_listed_newest_first_with_the_phase_of_each_service() -> None:
    runs = [
        run_body(
            "nightly-29000000",
            scheduled=ago(86400),
            status={
                "phase": "Failed",
                "services": [
                    {"name": "extract", "phase": "Succeeded"},
                    {"name": "load", "phase": "Failed"},
                ],
            },
            services=["extract", "load"],
        ),
        run_body(
            "nightly-29000000-r1",
            scheduled=ago(-30),
            created=ago(30),
            trigger="Rerun",
            parent="nightly-29000000",
            services=["load"],
        ),
        run_body(  # stored before RunNow: read as it
            "nightly-29001000-m05",
            scheduled=ago(300),
            trigger="Manual",
            status={"phase": "Succeeded", "services": [{"name": "main", "phase": "Succeeded"}]},
        ),
    ]
    assert format_runs(runs, NOW) == [
        "NAME                   SCHEDULED              TRIGGER    PHASE       PARENT             "
        "SERVICES                        AGE",
        "nightly-29000000-r1    2027-01-04T12:00:30Z   Rerun      Pending     nightly-29000000   "
        "load:Pending                    30s",
        "nightly-29001000-m05   2027-01-04T11:55:00Z   RunNow     Succeeded   <none>             "
        "main:Succeeded                  5m",
        "nightly-29000000       2027-01-03T12:00:00Z   Schedule   Failed      <none>             "
        "extract:Succeeded,load:Failed   24h",
    ]


def test_the_limit_keeps_the_newest_runs() -> None:
    runs = [run_body(f"nightly-{i}", scheduled=ago(3600 * i)) for i in range(1, 5)]
    lines = format_runs(runs, NOW, limit=2)
    assert [line.split()[0] for line in lines] == ["NAME", "nightly-1", "nightly-2"]


# --------------------------------------------------------------------------------------
# describe

FAILED_RUN = run_body(
    "nightly-29000000-m05",
    scheduled=ago(600),
    trigger="RunNow",
    services=["extract", "transform", "load"],
    status={
        "phase": "Failed",
        "startTime": ago(599),
        "completionTime": ago(528),
        "services": [
            {
                "name": "extract",
                "phase": "Succeeded",
                "jobName": "nightly-29000000-m05-extract",
            },
            {
                "name": "transform",
                "phase": "Failed",
                "jobName": "nightly-29000000-m05-transform",
                "message": "Job has reached the specified backoff limit",
            },
            {
                "name": "load",
                "phase": "Skipped",
                "message": "not started: mandatory service transform failed",
            },
        ],
        "notification": {"state": "Sent", "attempts": 1, "message": "sent to ops@example.com"},
    },
)
FAILED_RUN_EVENTS = [
    # Listed out of order: the report sorts by time, then by resourceVersion.
    event(
        "RunFailed",
        "run nightly-29000000-m05 failed: service(s) transform",
        ago(528),
        type_="Warning",
        rv="40",
    ),
    event("RunStarted", "run started", ago(599), rv="10"),
    event(
        "ServiceFailed",
        "service transform failed: Job has reached\nthe specified backoff limit",
        ago(528),
        type_="Warning",
        rv="39",
    ),
]


def test_describe_shows_the_run_its_services_events_and_what_to_do() -> None:
    assert format_run(FAILED_RUN, FAILED_RUN_EVENTS, "finance", NOW) == [
        "Name:         nightly-29000000-m05",
        "Namespace:    finance",
        "ScheduledJob: nightly",
        "Scheduled:    2027-01-04T11:50:00Z (10m ago)",
        "Date:         2027-01-04 (UTC)",
        "Trigger:      RunNow",
        "Parent:       <none>",
        "Rerun:        <none>",
        "Phase:        Failed",
        "Started:      2027-01-04T11:50:01Z (9m59s ago)",
        "Completed:    2027-01-04T11:51:12Z (8m48s ago)",
        "Duration:     1m11s",
        "Late:         no",
        "Notification: Sent after 1 attempt: sent to ops@example.com",
        "Late e-mail:  <none>",
        "Services:",
        "  NAME        PHASE       JOB                              MESSAGE",
        "  extract     Succeeded   nightly-29000000-m05-extract     <none>",
        "  transform   Failed      nightly-29000000-m05-transform   "
        "Job has reached the specified backoff limit",
        "  load        Skipped     <none>                           "
        "not started: mandatory service transform failed",
        "Events:",
        "  TYPE      REASON          AGE     MESSAGE",
        "  Normal    RunStarted      9m59s   run started",
        "  Warning   ServiceFailed   8m48s   "
        "service transform failed: Job has reached the specified backoff limit",
        "  Warning   RunFailed       8m48s   run nightly-29000000-m05 failed: service(s) transform",
        "What next:",
        "  kubectl -n finance logs job/nightly-29000000-m05-transform            "
        "# why transform failed",
        "  kubectl almanac -n finance rerun nightly-29000000-m05                 "
        "# a new run of every service",
        "  kubectl almanac -n finance rerun nightly-29000000-m05 --failed-only   "
        "# a new run of transform, load only",
    ]


def test_describe_of_a_running_run_counts_its_duration_so_far_and_says_to_wait() -> None:
    run = run_body(
        "nightly-29000000",
        scheduled=ago(65),
        status={
            "phase": "Running",
            "startTime": ago(65),
            "services": [{"name": "main", "phase": "Running", "jobName": "nightly-29000000-main"}],
        },
    )
    lines = format_run(run, [], "finance", NOW)
    assert "Duration:     1m05s (running)" in lines
    assert "Completed:    <none>" in lines
    assert lines[lines.index("Events:") + 1] == "  <none>"
    assert lines[-1] == "  kubectl -n finance get sjr nightly-29000000 -w   # wait for it to finish"


def test_describe_of_a_run_already_rerun_points_to_its_child_not_to_a_second_rerun() -> None:
    child = run_body(
        "nightly-29000000-r1",
        scheduled=ago(-40),
        trigger="Rerun",
        parent="nightly-29000000-m05",
        status={"phase": "Pending"},
    )
    lines = format_run(FAILED_RUN, [], "finance", NOW, child)
    assert "Rerun:        nightly-29000000-r1 (Pending)" in lines
    assert not any("almanac -n finance rerun" in line for line in lines)
    assert lines[-1].startswith("  kubectl almanac -n finance describe nightly-29000000-r1")
    assert lines[-1].endswith("# it was rerun as nightly-29000000-r1")


def test_describe_of_a_late_rerun_shows_the_date_it_stands_for_and_its_lateness() -> None:
    """The date is the parent's instant read in the run's zone (a local date a day after
    the UTC one, in Kolkata); lateness is the Late condition and its e-mail."""
    run = run_body(
        "nightly-29000000-r1",
        scheduled=ago(7200),
        trigger="Rerun",
        parent="nightly-29000000",
        status={
            "phase": "Running",
            "startTime": ago(7200),
            "conditions": [
                {
                    "type": "Late",
                    "status": "True",
                    "reason": "RunDeadlineExceeded",
                    "message": "not finished by 2027-01-04T11:00:00Z: runDeadline 1h after it "
                    "was due",
                    "lastTransitionTime": ago(3600),
                }
            ],
            "lateNotification": {"state": "Sent", "attempts": 1, "message": "Sent to ops."},
        },
    )
    run["spec"] |= {"originalScheduledTime": "2027-01-01T20:00:00Z", "timeZone": "Asia/Kolkata"}
    lines = format_run(run, [], "finance", NOW)
    assert (
        "Date:         2027-01-02 (Asia/Kolkata), of 2027-01-01T20:00:00Z (the run it reruns)"
        in lines
    )
    assert "Trigger:      Rerun" in lines
    assert (
        "Late:         yes, since 2027-01-04T11:00:00Z (60m ago): not finished by "
        "2027-01-04T11:00:00Z: runDeadline 1h after it was due"
    ) in lines
    assert "Late e-mail:  Sent after 1 attempt: Sent to ops." in lines


def test_describe_dates_an_old_run_without_a_zone_in_its_jobs_zone() -> None:
    run = run_body("nightly-29000000", scheduled="2027-01-04T02:00:00Z")
    job = {"metadata": {"name": "nightly"}, "spec": {"timeZone": "America/New_York"}}
    assert "Date:         2027-01-03 (America/New_York)" in format_run(
        run, [], "ns", NOW, None, job
    )


def test_describe_of_a_run_without_status_lists_its_services_as_pending() -> None:
    lines = format_run(run_body("x", scheduled=ago(0), services=["a", "b"]), [], "ns", NOW)
    assert "Phase:        Pending" in lines
    assert "Notification: <none>" in lines
    assert "  a      Pending   <none>   <none>" in lines


# --------------------------------------------------------------------------------------
# next

SERVICE = {
    "name": "main",
    "jobTemplate": {
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x"}]}
            }
        }
    },
}


def job_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "nightly", "namespace": "finance"},
        "spec": {"services": [SERVICE], **spec},
    }


def calendar_body(name: str, **lists: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "Calendar",
        "metadata": {"name": name, "namespace": "finance"},
        "spec": lists,
    }


def test_next_shows_fires_in_utc_and_local_time_and_the_days_skipped_and_why() -> None:
    job = job_body(
        schedule="30 2 * * *",
        timeZone="Europe/Bucharest",
        exclusions={"weekly": ["Sat"]},
        calendarRefs=[{"name": "ro-bank-holidays"}],
    )
    holidays = calendar_body("ro-bank-holidays", holiday=["06.01.2027"])
    assert format_next(job, [holidays], NOW, 3) == [
        'ScheduledJob nightly: "30 2 * * *" (fixed-time) in Europe/Bucharest, '
        "calendars ro-bank-holidays",
        "UTC                    LOCAL (Europe/Bucharest)               NOTE",
        "2027-01-05T00:30:00Z   Tue 2027-01-05 02:30:00 EET (+02:00)",
        "skipped                Wed 2027-01-06                         "
        'excluded by holiday "06.01.2027" (Calendar ro-bank-holidays, spec.holiday[0])',
        "2027-01-07T00:30:00Z   Thu 2027-01-07 02:30:00 EET (+02:00)",
        "2027-01-08T00:30:00Z   Fri 2027-01-08 02:30:00 EET (+02:00)",
    ]


def test_next_says_which_token_matched_and_where_a_fire_was_shifted_from() -> None:
    job = job_body(
        schedule="0 18 LB,L * *",
        timeZone="Europe/Bucharest",
        exclusions={"weekly": ["Saturday", "Sunday"]},
        calendarRefs=[{"name": "ro-bank-holidays"}],
        onExcludedDay="NextBusinessDay",
    )
    holidays = calendar_body("ro-bank-holidays", holiday=["31.05.2027"])
    lines = format_next(job, [holidays], datetime(2027, 4, 30, 16, tzinfo=UTC), 2)
    assert lines[0].endswith(", onExcludedDay NextBusinessDay (maxShiftDays 7)")
    assert lines[2:] == [
        "2027-05-28T15:00:00Z   Fri 2027-05-28 18:00:00 EEST (+03:00)   last business day of "
        "May 2027",
        "2027-06-01T15:00:00Z   Tue 2027-06-01 18:00:00 EEST (+03:00)   shifted from Mon "
        '2027-05-31, last day of May 2027 (holiday "31.05.2027", Calendar ro-bank-holidays, '
        "spec.holiday[0])",
    ]


def test_next_notes_daylight_saving_and_the_end_of_the_window() -> None:
    job = job_body(
        schedule="30 3 * * *",
        timeZone="Europe/Bucharest",
        startTime="2027-03-27T00:00:00",
        endTime="2027-03-28T23:59:59",
    )
    lines = format_next(job, [], NOW, 5)
    assert lines[0].endswith(", window [2027-03-26T22:00:00Z, 2027-03-28T20:59:59Z]")
    assert lines[2:] == [
        "2027-03-27T01:30:00Z   Sat 2027-03-27 03:30:00 EET (+02:00)",
        "2027-03-28T01:00:00Z   Sun 2027-03-28 04:00:00 EEST (+03:00)   03:30 does not exist "
        "(DST gap); fixed-time schedules fire at the end of the gap",
        "the window ends at 2027-03-28T20:59:59Z (spec.endTime): no fire after it",
    ]


def test_next_says_which_zone_it_assumed_when_the_job_names_none() -> None:
    job = job_body(schedule="0 6 * * *")
    lines = format_next(job, [], NOW, 1, default_time_zone="Asia/Tokyo")
    assert lines[0] == (
        'ScheduledJob nightly: "0 6 * * *" (fixed-time) in Asia/Tokyo '
        "(spec.timeZone not set: the default zone, see --default-timezone)"
    )
    assert lines[2].startswith("2027-01-04T21:00:00Z   Tue 2027-01-05 06:00:00 JST")


def test_next_notes_when_the_operator_reports_another_next_fire() -> None:
    job = job_body(schedule="0 6 * * *")
    job["status"] = {"nextScheduleTime": "2027-01-04T21:00:00Z"}
    lines = format_next(job, [], NOW, 1)
    assert lines[-1].startswith("note: the operator reports the next fire at 2027-01-04T21:00:00Z")
    job["status"] = {"nextScheduleTime": "2027-01-05T06:00:00Z"}
    assert not format_next(job, [], NOW, 1)[-1].startswith("note:")


@pytest.mark.parametrize(
    ("job", "calendars", "message"),
    [
        pytest.param(
            job_body(schedule="0 0 * * *", suspend=True),
            [],
            'scheduledjob "nightly" is suspended (spec.suspend: true): it does not fire until '
            "it is resumed: kubectl -n finance patch sj nightly --type=merge -p "
            """'{"spec":{"suspend":false}}'""",
            id="suspended",
        ),
        pytest.param(
            job_body(schedule="0 0 * *", exclusions={"annual": ["31.02"]}),
            [],
            'scheduledjob "nightly" is invalid:\n'
            '  spec.schedule: "0 0 * *" has 4 fields; expected 5 fields (minute hour '
            "day-of-month month day-of-week) or one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly\n"
            '  spec.exclusions.annual[0]: "31.02" is not a day of the year (dd.MM)',
            id="invalid fields, every one named",
        ),
        pytest.param(
            job_body(schedule="0 0 * * *", calendarRefs=[{"name": "gone"}]),
            [],
            'scheduledjob "nightly" is invalid:\n'
            '  spec.calendarRefs[0].name: Calendar "gone" not found',
            id="a missing Calendar",
        ),
        pytest.param(
            job_body(schedule="0 0 * * *", calendarRefs=[{"name": "bad"}]),
            [calendar_body("bad", weekly=["Caturday"])],
            'calendar "bad" is invalid:\n'
            '  spec.weekly[0]: "Caturday" is not a day of the week (Monday..Sunday or '
            "Mon..Sun, any case)",
            id="an invalid Calendar",
        ),
        pytest.param(
            job_body(schedule="0 0 30 2 *"),
            [],
            'scheduledjob "nightly" never fires: "0 0 30 2 *" matches no date: February has '
            "no day 30",
            id="never fires",
        ),
        pytest.param(
            job_body(schedule="0 0 * * *", endTime="2026-12-31T00:00:00Z"),
            [],
            'scheduledjob "nightly" never fires after 2027-01-04T12:00:00Z: the window ended '
            "at 2026-12-31T00:00:00Z (spec.endTime)",
            id="window over",
        ),
    ],
)
def test_next_refuses_what_does_not_fire_naming_why(
    job: dict[str, Any], calendars: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(PluginError) as raised:
        format_next(job, calendars, NOW, 5)
    assert str(raised.value) == message


# --------------------------------------------------------------------------------------
# The operator's answer to an annotation


def test_a_rerun_refusal_is_an_error_with_the_operators_message() -> None:
    refused = event("RerunRefused", "run x is Running: only a finished run can be rerun", ago(0))
    assert rerun_outcome("x", [refused], None, NOW) == (
        1,
        "rerun of x refused: run x is Running: only a finished run can be rerun",
    )


def test_a_new_child_run_is_reported_with_its_start() -> None:
    child = run_body("x-r1", scheduled=ago(-59), trigger="Rerun", parent="x")
    created = event("RerunCreated", "created rerun x-r1 of all services", ago(0))
    assert rerun_outcome("x", [created], child, NOW) == (
        0,
        "run x-r1 created from x, starts at 2027-01-04T12:00:59Z (in 59s)",
    )


def test_no_answer_yet_is_none() -> None:
    assert rerun_outcome("x", [event("ServiceStarted", "other news", ago(0))], None, NOW) is None
    assert run_now_outcome("j", {"j-1"}, [run_body("j-1", scheduled=ago(60))], []) is None


def test_run_now_reports_the_new_manual_run_only() -> None:
    runs = [
        run_body("j-1", scheduled=ago(60)),
        run_body("j-2-m01", scheduled=ago(1), trigger="Manual"),
        run_body("j-0-m30", scheduled=ago(3600), trigger="Manual"),
    ]
    assert run_now_outcome("j", {"j-1", "j-0-m30"}, runs, []) == (
        0,
        "run j-2-m01 created from scheduledjob j",
    )


RUN_NOW_ANSWERS = [
    # (id, the Event that appeared on the job, what the plugin says)
    ("refused by concurrencyPolicy forbid", "RunNowRefused",
     "not run: run j-1 is still active (concurrencyPolicy Forbid)",
     (1, "run-now of j refused: not run: run j-1 is still active (concurrencyPolicy Forbid)")),
    ("refused: the job is not ready", "RunNowRefused",
     "not run: the job is not Ready (CalendarNotFound): no such calendar",
     (1, "run-now of j refused: not run: the job is not Ready (CalendarNotFound): no such "
         "calendar")),
    ("the api server refused the run", "RunRefused", "forbidden: exceeded quota",
     (1, "run-now of j refused: forbidden: exceeded quota")),
    ("a scheduled fire missed meanwhile is not the answer", "MissedSchedule",
     "fire 2027-01-04T12:00:00Z not started: run j-1 is still active (concurrencyPolicy Forbid)",
     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "message", "answer"),
    [c[1:] for c in RUN_NOW_ANSWERS],
    ids=[c[0] for c in RUN_NOW_ANSWERS],
)
def test_a_refused_run_now_is_an_error(
    reason: str, message: str, answer: tuple[int, str] | None
) -> None:
    news = event(reason, message, ago(0), type_="Warning")
    runs = [run_body("j-1", scheduled=ago(60))]
    assert run_now_outcome("j", {"j-1"}, runs, [news]) == answer


# --------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["runs", "j"], {"namespace": None, "limit": 20}, id="defaults"),
        pytest.param(["-n", "a", "runs", "j"], {"namespace": "a"}, id="namespace before"),
        pytest.param(["runs", "j", "-n", "b"], {"namespace": "b"}, id="namespace after"),
        pytest.param(
            ["-n", "a", "--context", "c", "runs", "j"],
            {"namespace": "a", "context": "c"},
            id="options before the verb survive it",
        ),
        pytest.param(["next", "j", "--count", "3"], {"count": 3, "namespace": None}, id="count"),
        pytest.param(
            ["-n", "a", "next", "j", "--namespace", "b", "--count", "2"],
            {"count": 2, "namespace": "b"},
            id="next --namespace after -n",
        ),
        pytest.param(
            ["rerun", "r", "--failed-only"], {"failed_only": True, "wait": 10.0}, id="rerun"
        ),
        pytest.param(["run", "j", "--wait", "0"], {"wait": 0.0}, id="run without waiting"),
    ],
)
def test_options_are_read_like_kubectls(argv: list[str], expected: dict[str, Any]) -> None:
    args = vars(build_parser().parse_args(argv))
    assert {key: args[key] for key in expected} == expected


VERB_ARGS = {
    "runs": ["j"],
    "rerun": ["r"],
    "run": ["j"],
    "next": ["j"],
    "calendar": ["j"],
    "calendar-diff": ["-f", "cal.yaml"],
    "describe": ["r"],
    "backfill": ["j", "--from", "2027-01-01T00:00:00Z", "--to", "2027-01-02T00:00:00Z"],
}


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
@pytest.mark.parametrize("where", ["before the verb", "after the verb"])
def test_n_is_the_namespace_in_every_verb_as_in_kubectl(verb: str, where: str) -> None:
    argv = [verb, *VERB_ARGS[verb]]
    argv = ["-n", "finance", *argv] if where == "before the verb" else [*argv, "-n", "finance"]
    assert build_parser().parse_args(argv).namespace == "finance"


# Each table docs/plugin.md shows: its indent and its first two columns.
DOC_TABLES = [
    ("", "NAME", "SCHEDULED"),  # runs
    ("  ", "NAME", "PHASE"),  # describe: Services
    ("  ", "TYPE", "REASON"),  # describe: Events
    ("", "UTC", "LOCAL (Europe/Bucharest)"),  # next
    ("", "SCHEDULEDJOB", "CHANGE"),  # calendar-diff
    ("", "#", "UTC"),  # backfill --dry-run
]


@pytest.mark.parametrize(("indent", "first", "second"), DOC_TABLES, ids=lambda x: x.strip())
def test_the_tables_in_docs_plugin_md_are_aligned_as_the_plugin_prints_them(
    indent: str, first: str, second: str
) -> None:
    """Each table shown is what format_table makes of its cells: the runs table's header
    and the Services' MESSAGE column were one space off."""
    import re

    def cells(line: str) -> list[str]:
        return re.split(r" {2,}", line.strip())

    doc = (Path(__file__).resolve().parents[2] / "docs" / "plugin.md").read_text().splitlines()
    start = next(
        i
        for i, line in enumerate(doc)
        if line.startswith(indent + first) and cells(line)[:2] == [first, second]
    )
    table = []
    for line in doc[start:]:
        if not line.startswith(indent) or line[len(indent)] == " " or "   " not in line:
            break  # the end of the block, or a line after the table (a count, a label)
        table.append(line)
    width = len(cells(table[0]))
    rows = [row + [""] * (width - len(row)) for row in map(cells, table)]
    assert format_table(rows[0], rows[1:], indent) == table


def test_every_verb_is_in_the_table_above() -> None:
    verbs = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(verbs.choices) == set(VERB_ARGS)


def test_the_synopsis_of_docs_plugin_md_lists_every_verb() -> None:
    """The block at the top of docs/plugin.md is the plugin's usage at a glance: one line
    per verb, as ``kubectl almanac --help`` lists them (calendar-diff was missing)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "plugin.md").read_text()
    synopsis = doc.split("```")[1].splitlines()
    verb_lines = [line for line in synopsis if line.startswith("  ") and line[2] != " "]
    listed = {line.split()[0] for line in verb_lines}
    assert set(VERB_ARGS) <= listed


@pytest.mark.parametrize("count", ["0", "three", "-1"])
def test_a_bad_count_names_itself(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["next", "j", "--count", count]) == 2
    assert f'"{count}" is not a whole number of at least 1' in capsys.readouterr().err


@pytest.mark.parametrize("count", ["10001", "9" * 20])
def test_a_count_past_the_bound_names_it(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["next", "j", "--count", count]) == 2
    assert f'argument --count: "{count}" is more than 10000' in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rerun"]) == 2
    assert main(["runs", "j", "--limit", "-1"]) == 2
    assert main(["frobnicate"]) == 2


def test_a_missing_kubeconfig_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--kubeconfig", str(tmp_path / "nope"), "runs", "j"]) == 1
    assert capsys.readouterr().err == f'Error: kubeconfig "{tmp_path / "nope"}" does not exist\n'


def test_no_kubeconfig_at_all_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert main(["runs", "j"]) == 1
    assert capsys.readouterr().err == (
        f"Error: no kubeconfig ({tmp_path / 'absent'}); pass --kubeconfig or set KUBECONFIG, "
        "then check with: kubectl cluster-info\n"
    )
