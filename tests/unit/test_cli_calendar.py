"""``almanac calendar`` (month grids) and ``almanac next`` offline with Calendars from the
world (issue 17, parts 7 and 8): what is drawn is what the engine and the ``holidays``
package say, and the heavy packages load only when a Calendar uses them."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import cast

import holidays
import pytest

from almanac.api.models import Calendar, ScheduledJob
from almanac.cli.main import main
from almanac.cli.monthgrid import month_marks, render_months

REPO = Path(__file__).resolve().parent.parent.parent

BANK = """\
apiVersion: almanac.dev/v1alpha1
kind: ScheduledJob
metadata: {name: settlement, namespace: finance}
spec:
  schedule: "SCHEDULE"
  timeZone: Europe/Bucharest
  exclusions:
    weekly: ["Saturday", "Sun"]
  calendarRefs: [{name: ro-banks}, {name: acme}]
  services:
  - name: settle
    jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: m}]}}}}
---
apiVersion: almanac.dev/v1alpha1
kind: Calendar
metadata: {name: ro-banks, namespace: finance}
spec:
  holidays: [{country: RO}]
---
apiVersion: almanac.dev/v1alpha1
kind: Calendar
metadata: {name: acme, namespace: finance}
spec:
  ical: |
    BEGIN:VCALENDAR
    VERSION:2.0
    PRODID:-//Acme//Company calendar//EN
    BEGIN:VEVENT
    UID:freeze-2026@acme.example
    SUMMARY:Year-end change freeze
    DTSTART;VALUE=DATE:20261228
    DTEND;VALUE=DATE:20261231
    END:VEVENT
    END:VCALENDAR
"""
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def manifest(tmp_path: Path, schedule: str = "30 2 * * *") -> str:
    path = tmp_path / "bank.yaml"
    path.write_text(BANK.replace("SCHEDULE", schedule))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cell(out: str, day: int) -> str:
    """The mark after day number ``day`` in a grid's text ('' when blank)."""
    found = re.search(rf"(?:^|\s){day} (\+\w+|-\w)?", out, re.MULTILINE)
    assert found, day
    return found[1] or ""


def test_the_grid_marks_fires_holidays_ical_days_and_weekends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "calendar", "-f", manifest(tmp_path), "--from", "2026-12", "--months", "1"
    )
    assert code == 0, err
    assert "\x1b[" not in out  # captured, not a terminal: plain
    grid = out.split("December 2026", 1)[1]
    lines = grid.splitlines()
    weeks = "\n".join(lines[2 : next(i for i, x in enumerate(lines) if " fires, " in x)])
    ro = holidays.country_holidays("RO", years=2026, language="ro")
    legend = dict(re.findall(r"^  -(\w) [\d, ]+: (.*)$", grid, re.MULTILINE))
    for day in range(1, 32):
        local = date(2026, 12, day)
        mark = cell(weeks, day)
        if local.weekday() >= 5:
            assert mark.startswith("-") and "weekly" in legend[mark[1]], (day, mark)
        elif local in ro:
            assert mark.startswith("-"), (day, mark)
            assert f"public holiday in RO: {ro[local]} (Calendar ro-banks" in legend[mark[1]]
        elif 28 <= day <= 30:
            assert legend[mark[1]] == (
                'iCalendar event "Year-end change freeze" (Calendar acme, spec.ical)'
            )
        else:
            assert mark == "+1", (day, mark)
    assert "December 2026" in out and "Mo     Tu     We" in out


def test_the_grid_counts_every_fire_of_a_day_dst_days_included() -> None:
    """``0 * * * *`` is a wildcard schedule: 23 fires on the short day, 25 on the long."""
    job = ScheduledJob.parse(
        {
            "metadata": {"name": "hourly"},
            "spec": {
                "schedule": "0 * * * *",
                "timeZone": "Europe/Bucharest",
                "services": [{"name": "a", "jobTemplate": {}}],
            },
        }
    )
    schedule = job.spec.build_schedule({})
    marks = month_marks(schedule, 2026, 3, 8)
    assert marks[date(2026, 3, 29)].fires == 23
    assert marks[date(2026, 10, 25)].fires == 25
    assert marks[date(2026, 6, 1)].fires == 24
    # the grid's count for a month is the engine's count of fires in it
    first = datetime(2026, 3, 1, tzinfo=schedule.zone)
    lines = render_months(schedule, "ScheduledJob hourly", 2026, 3, 1, now=first).lines
    end = datetime(2026, 4, 1, tzinfo=schedule.zone)
    total = 0
    for fire in schedule.fires(first - timedelta(microseconds=1)):
        if fire >= end:
            break
        total += 1
    assert total == 31 * 24 - 1
    assert f"  {total} fires, 0 days skipped" in lines


def test_colour_on_request_and_never_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path)
    _, plain, _ = run(capsys, "calendar", "-f", path, "--from", "2026-12", "--color", "auto")
    _, coloured, _ = run(capsys, "calendar", "-f", path, "--from", "2026-12", "--color", "always")
    assert "\x1b[" not in plain
    assert "\x1b[32m" in coloured and "\x1b[31m" in coloured and "\x1b[33m" in coloured
    assert ESCAPE.sub("", coloured) == plain


def test_a_real_pipe_gets_plain_text(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "almanac"), "calendar", "-f", manifest(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout and "Mo     Tu" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--months", "0"], '"0" is not a number of months (1 to 24)'),
        (["--from", "2026-13"], '"2026-13" is not a month (YYYY-MM, e.g. 2027-01)'),
        # The years of docs/api.md "Bounds" (as --after): these crashed with a traceback.
        (["--from", "0001-01"], 'argument --from: year 1 is outside 1970-2200 (got "0001-01")'),
        (["--from", "9999-12"], 'argument --from: year 9999 is outside 1970-2200 (got "9999-12")'),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "calendar", "-f", manifest(tmp_path), *argv)
    assert code == 2 and message in err


def test_an_invalid_calendar_is_named_with_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        BANK.replace("{country: RO}", "{country: Romania}").replace("SCHEDULE", "@daily")
    )
    code, _, err = run(capsys, "calendar", "-f", str(path))
    assert code == 2
    assert 'spec.holidays[0].country: "Romania" is not a country code' in err
    assert "did you mean RO?" in err


# --------------------------------------------------------------------------------------
# almanac next, offline


def test_next_offline_skips_the_holiday_and_the_ical_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "next", "-f", manifest(tmp_path), "--after", "2026-12-24T00:00:00Z", "-n", "2"
    )
    assert code == 0, err
    # 24 Dec fires; 25 (Crăciunul), 26 (Saturday), 27 (Sunday), 28-30 (the freeze) do not
    assert out.splitlines() == ["2026-12-24T00:30:00Z", "2026-12-31T00:30:00Z"]


def test_next_wide_explains_the_skip_with_the_holidays_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "next",
        "-f",
        manifest(tmp_path),
        "--after",
        "2026-11-30T12:00:00Z",
        "-n",
        "1",
        "-o",
        "wide",
    )
    name = holidays.country_holidays("RO", years=2026, language="ro")[date(2026, 12, 1)]
    assert code == 0
    assert (
        f"skipped Tue 2026-12-01: public holiday in RO: {name} "
        f"(Calendar ro-banks, spec.holidays[0])"
    ) in out
    assert "public holiday in RO: Ziua Națională a României" in out


# --------------------------------------------------------------------------------------
# import cost: holidays and icalendar only when a Calendar names them

HEAVY = ("holidays", "icalendar", "recurring_ical_events")


def loaded_after(argv: list[str]) -> tuple[set[str], str]:
    probe = (
        "from almanac.cli.main import main\n"
        f"main({argv!r})\n"
        "import sys, json\nprint(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    *_, modules = result.stdout.splitlines()
    return set(json.loads(modules)), result.stdout


def test_a_job_without_world_calendars_loads_neither_package() -> None:
    sample = REPO / "manifests" / "samples" / "business-days.yaml"
    modules, _ = loaded_after(["next", "-f", str(sample), "-n", "1"])
    assert modules.isdisjoint(HEAVY)


def test_a_country_calendar_loads_holidays_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.yaml"
    path.write_text(textwrap.dedent(BANK.split("---")[0]).replace("SCHEDULE", "@daily")
                    .replace("calendarRefs: [{name: ro-banks}, {name: acme}]",
                             "calendarRefs: [{name: ro-banks}]")
                    + "---" + BANK.split("---")[1])  # fmt: skip
    modules, _ = loaded_after(["next", "-f", str(path), "-n", "1"])
    assert "holidays" in modules
    assert modules.isdisjoint({"icalendar", "recurring_ical_events"})


def test_the_calendar_model_checks_without_a_cluster() -> None:
    """Calendar.parse is what the webhook and the operator call: no client needed."""
    body = {"metadata": {"name": "x"}, "spec": {"holidays": [{"market": "NYSE"}]}}
    assert Calendar.parse(body).spec.holidays[0].market == "NYSE"


def test_the_plugin_draws_the_live_job_from_the_current_month_in_its_zone() -> None:
    """``kubectl almanac calendar JOB``: the same grids, from the month of ``now`` in the
    job's zone (31 Dec 23:30 UTC is already January in Bucharest)."""
    import yaml

    from almanac.cli.plugin import build_parser
    from almanac.cli.plugin.fires import format_calendar

    job, ro, acme = yaml.safe_load_all(BANK.replace("SCHEDULE", "30 2 * * *"))
    now = datetime.fromisoformat("2026-12-31T23:30:00+00:00")
    lines = format_calendar(job, [ro, acme], now, 2).lines
    assert lines[0] == 'ScheduledJob settlement: "30 2 * * *" (fixed-time) in Europe/Bucharest'
    months = [line.strip() for line in lines if line.strip() in ("January 2027", "February 2027")]
    assert months == ["January 2027", "February 2027"]
    suspended = {**job, "spec": {**job["spec"], "suspend": True}}
    assert "(suspended: " in format_calendar(suspended, [ro, acme], now, 1).lines[0]
    args = build_parser().parse_args(["calendar", "j", "--months", "6", "-n", "finance"])
    assert (args.job, args.months, args.namespace) == ("j", 6, "finance")


# api.md (`almanac calendar`): "Exit codes as `almanac next`: 0, 2 for an invalid manifest,
# and 1 when the schedule never fires (the grids are drawn all the same, with the reason)".
# `almanac next` says never for every reason, not only those known without a start;
# `kubectl almanac calendar JOB` draws and exits the same way.
NEVER = [
    ("no such date, known without a start (NoSuchDate)",
     {"schedule": "0 0 30 2 *"}, "February has no day 30"),
    ("the window ended (WindowEnded)",
     {"schedule": "0 12 * * *", "endTime": "2020-01-01T00:00:00Z"}, "window ended"),
    ("every time in a dst gap (EveryTimeInGap)",
     {"schedule": "* 2 8-14 3 */7", "timeZone": "America/New_York"}, "daylight-saving gap"),
]  # fmt: skip


def never_job(spec: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {**spec, "services": [{"name": "main", "jobTemplate": {}}]},
    }


@pytest.mark.parametrize(("spec", "reason"), [r[1:] for r in NEVER], ids=[r[0] for r in NEVER])
def test_calendar_exits_1_with_the_reason_whenever_almanac_next_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: dict[str, str], reason: str
) -> None:
    path = tmp_path / "never.yaml"
    path.write_text(json.dumps(never_job(spec)))
    assert run(capsys, "next", "-f", str(path))[0] == 1  # the model cited
    code, out, _ = run(capsys, "calendar", "-f", str(path), "--months", "1", "--from", "2027-03")
    assert code == 1
    assert "never fires" in out and reason in out
    assert "March 2027" in out  # drawn all the same


@pytest.mark.parametrize(("spec", "reason"), [r[1:] for r in NEVER], ids=[r[0] for r in NEVER])
def test_the_plugin_calendar_exits_1_with_the_reason_as_almanac_calendar_does(
    capsys: pytest.CaptureFixture[str], spec: dict[str, str], reason: str
) -> None:
    from almanac.cli.plugin import build_parser
    from almanac.cli.plugin.verbs import Context, calendar
    from almanac.kube import Kube
    from tests.unit.fake_kube import FakeKube

    kube = FakeKube()
    kube.put("scheduledjobs", never_job(spec))
    args = build_parser().parse_args(["calendar", "j", "--months", "1", "--color", "never"])
    code = asyncio.run(calendar(Context(cast(Kube, kube), "ns"), args))
    out, _ = capsys.readouterr()
    assert code == 1
    assert "never fires" in out and reason in out
    assert "Mo     Tu     We" in out  # drawn all the same


DOC = REPO / "docs" / "calendars.md"
SHOWN = re.compile(r"<!-- (almanac (?:calendar|next) [^>]*) -->\n```text\n(.*?)\n```", re.DOTALL)


def test_the_grids_in_the_docs_are_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/calendars.md shows grids (and an ``almanac next -o wide``) "as produced":
    each block is the output of the command in the comment above it (run from the
    repository's root)."""
    monkeypatch.chdir(REPO)
    blocks = SHOWN.findall(DOC.read_text())
    assert len(blocks) == 5
    for command, shown in blocks:
        code, out, err = run(capsys, *command.split()[1:])
        assert code == 0, err
        assert out.rstrip("\n") == shown, command
