"""``almanac next`` as docs/api.md "Command line" fixes it, and the models that read manifests.

Each test calls ``main([...])`` and checks stdout, stderr and the exit code.
"""

from __future__ import annotations

import io
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from almanac.api.models import Calendar, ConcurrencyPolicy, ScheduledJob
from almanac.cli.main import main
from almanac.errors import InvalidSpec

JOB = """\
apiVersion: almanac.dev/v1alpha1
kind: ScheduledJob
metadata: {name: nightly-settlement, namespace: finance}
spec:
  schedule: "30 2 * * 1-5"
  timeZone: Europe/Bucharest
  exclusions:
    annual: ["25.12", "01.01"]
    weekly: ["Saturday", "Sun"]
  calendarRefs: [{name: ro-bank-holidays}]
  services:
  - name: extract
    mandatory: true
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: main, image: busybox}]
---
apiVersion: almanac.dev/v1alpha1
kind: Calendar
metadata: {name: ro-bank-holidays, namespace: finance}
spec:
  holiday: ["06.01.2027"]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["next", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def job(spec: str, *, extra: str = "") -> str:
    """A one-ScheduledJob manifest with ``spec`` (YAML, indented by two) and more documents."""
    head = "apiVersion: almanac.dev/v1alpha1\nkind: ScheduledJob\nmetadata: {name: j}\nspec:\n"
    if "services:" not in spec:
        spec += "\nservices: [{name: main, jobTemplate: {}}]"
    return head + textwrap.indent(textwrap.dedent(spec), "  ") + "\n" + extra


# --------------------------------------------------------------------------------------
# Exit 0: one UTC instant a line


def test_prints_the_next_instants_in_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, JOB)
    code, out, err = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z", "-n", "4")
    assert (code, err) == (0, "")
    # Fri 01.01 is excluded (annual); Sat, Sun (weekly); Wed 06.01 (the Calendar).
    assert out.splitlines() == [
        "2027-01-04T00:30:00Z",
        "2027-01-05T00:30:00Z",
        "2027-01-07T00:30:00Z",
        "2027-01-08T00:30:00Z",
    ]


def test_prints_ten_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-f", write(tmp_path, JOB), "--after", "2027-01-01T00:00:00Z")
    assert code == 0 and len(out.splitlines()) == 10


def test_after_defaults_to_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC)
    code, out, _ = run(capsys, "-f", write(tmp_path, job('schedule: "@hourly"')), "-n", "1")
    first = datetime.strptime(out.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert code == 0
    assert before < first <= before + timedelta(hours=1)


def test_after_with_an_offset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, job('schedule: "0 12 * * *"'))
    code, out, _ = run(capsys, "-f", manifest, "--after", "2027-01-01T15:00:00+02:00", "-n", "1")
    assert (code, out) == (0, "2027-01-02T12:00:00Z\n")  # 13:00Z is past today's noon UTC


# api.md: "`--after`: RFC 3339 with `Z` or an offset", read as a Backfill's from and to:
# RFC 3339 allows a fraction of a second and a lower-case t and z (section 5.6, NOTE).
AFTERS = [
    ("a fraction of a second", "2027-01-01T11:59:59.5Z", "2027-01-01T12:00:00Z"),
    ("a fraction with an offset", "2027-01-01T13:59:59.250+02:00", "2027-01-01T12:00:00Z"),
    ("lower-case t and z", "2027-01-01t11:59:59z", "2027-01-01T12:00:00Z"),
    ("a fraction past a fire: strictly after it", "2027-01-01T12:00:00.5Z", "2027-01-02T12:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(("after", "expected"), [r[1:] for r in AFTERS], ids=[r[0] for r in AFTERS])
def test_after_takes_any_rfc3339_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], after: str, expected: str
) -> None:
    manifest = write(tmp_path, job('schedule: "0 12 * * *"'))
    code, out, err = run(capsys, "-f", manifest, "--after", after, "-n", "1")
    assert (code, out, err) == (0, f"{expected}\n", "")


def test_fewer_lines_when_the_window_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, job('schedule: "@daily"\nendTime: "2027-01-03T00:00:00"'))
    code, out, err = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["2027-01-02T00:00:00Z", "2027-01-03T00:00:00Z"]


def test_default_timezone_applies_without_spec_timezone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, job('schedule: "0 9 * * *"'))
    argv = ["-f", manifest, "--after", "2027-01-01T00:00:00Z", "-n", "1"]
    assert run(capsys, *argv)[1] == "2027-01-01T09:00:00Z\n"
    code, out, _ = run(capsys, *argv, "--default-timezone", "Asia/Kolkata")
    assert (code, out) == (0, "2027-01-01T03:30:00Z\n")


def test_unquoted_timestamps_are_read_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # YAML would make a datetime of this; the API server keeps the string: so do we.
    manifest = write(
        tmp_path,
        job("schedule: '@daily'\ntimeZone: Europe/Bucharest\nstartTime: 2027-01-05T00:00:00"),
    )
    code, out, _ = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z", "-n", "1")
    assert (code, out) == (0, "2027-01-04T22:00:00Z\n")


def test_reads_standard_input(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(job('schedule: "@yearly"')))
    code, out, _ = run(capsys, "-f", "-", "--after", "2027-06-01T00:00:00Z", "-n", "1")
    assert (code, out) == (0, "2028-01-01T00:00:00Z\n")


def test_a_list_object_holds_the_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: almanac.dev/v1alpha1, kind: ScheduledJob, metadata: {name: j},
           spec: {schedule: "@daily", calendarRefs: [{name: c}],
                  services: [{name: main, jobTemplate: {}}]}}
        - {apiVersion: almanac.dev/v1alpha1, kind: Calendar, metadata: {name: c},
           spec: {weekly: [Sat, Sun]}}
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: ignored}}
        """,
    )
    code, out, _ = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z", "-n", "1")
    assert (code, out) == (0, "2027-01-04T00:00:00Z\n")  # Sat 2 and Sun 3 excluded


def test_a_suspended_job_is_noted_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, job('schedule: "@daily"\nsuspend: true'))
    code, out, err = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z", "-n", "1")
    assert (code, out) == (0, "2027-01-02T00:00:00Z\n")
    assert "spec.suspend: true" in err


# --------------------------------------------------------------------------------------
# -o wide: for humans


def test_wide_output_shows_local_time_skips_and_dst(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, JOB)
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2027-01-05T12:00:00Z", "-n", "2", "-o", "wide"
    )
    assert code == 0
    assert out.splitlines() == [
        '# ScheduledJob nightly-settlement: "30 2 * * 1-5" (fixed-time) in Europe/Bucharest',
        "                      skipped Wed 2027-01-06: "
        'holiday "06.01.2027" (Calendar ro-bank-holidays, spec.holiday[0])',
        "2027-01-07T00:30:00Z  Thu 2027-01-07 02:30:00 EET (+02:00)",
        "2027-01-08T00:30:00Z  Fri 2027-01-08 02:30:00 EET (+02:00)",
    ]


def test_wide_output_notes_a_dst_gap_and_the_window_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        job('schedule: "30 2 * * *"\ntimeZone: America/New_York\nendTime: "2027-03-14T12:00:00"'),
    )
    code, out, _ = run(capsys, "-f", manifest, "--after", "2027-03-14T00:00:00Z", "-o", "wide")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "2027-03-14T07:00:00Z  Sun 2027-03-14 03:00:00 EDT (-04:00)"
    assert "02:30 does not exist (DST gap)" in lines[2]
    assert lines[3].strip() == "the window ends at 2027-03-14T16:00:00Z"


#: The last day of the month at 18:00 in Bucharest, moved back to the previous business
#: day (at most 2): the job of docs/schedule.md's "With day tokens and a shift".
SHIFTED_LAST_DAY = job(
    'schedule: "0 18 L * *"\n'
    "timeZone: Europe/Bucharest\n"
    'exclusions: {weekly: [Saturday, Sunday], holiday: ["30.07.2027"]}\n'
    "onExcludedDay: PreviousBusinessDay\n"
    "maxShiftDays: 2"
)


def test_wide_output_says_which_token_matched_and_where_a_fire_was_shifted_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        SHIFTED_LAST_DAY,
    )
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2027-06-29T00:00:00Z", "-n", "3", "-o", "wide"
    )
    assert code == 0
    assert out.splitlines() == [
        '# ScheduledJob j: "0 18 L * *" (fixed-time) in Europe/Bucharest, onExcludedDay '
        "PreviousBusinessDay (maxShiftDays 2)",
        "2027-06-30T15:00:00Z  Wed 2027-06-30 18:00:00 EEST (+03:00)  last day of June 2027",
        "2027-07-29T15:00:00Z  Thu 2027-07-29 18:00:00 EEST (+03:00)  shifted from Sat "
        '2027-07-31, last day of July 2027 (weekly "Saturday", spec.exclusions.weekly[0])',
        "2027-08-31T15:00:00Z  Tue 2027-08-31 18:00:00 EEST (+03:00)  last day of August 2027",
    ]


def test_wide_output_says_when_no_business_day_was_near_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        job(
            'schedule: "0 12 1 * *"\n'
            'exclusions: {weekly: [Saturday, Sunday], holiday: ["01.01.2027"]}\n'
            "onExcludedDay: NextBusinessDay\n"
            "maxShiftDays: 2"
        ),
    )
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2026-12-31T00:00:00Z", "-n", "1", "-o", "wide"
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        '                      skipped Fri 2027-01-01: holiday "01.01.2027" '
        "(spec.exclusions.holiday[0]); no fire: no business day within 2 days after Fri "
        "2027-01-01",
        "2027-02-01T12:00:00Z  Mon 2027-02-01 12:00:00 UTC (+00:00)",
    ]


# --------------------------------------------------------------------------------------
# Exit 1: never fires


NEVER = [
    ("no such date", 'schedule: "0 0 30 2 *"', "",
     'ScheduledJob j never fires: "0 0 30 2 *" matches no date: February has no day 30'),
    ("every weekday excluded by a calendar", 'schedule: "0 9 * * *"\ncalendarRefs: [{name: w}]',
     "---\napiVersion: almanac.dev/v1alpha1\nkind: Calendar\nmetadata: {name: w}\n"
     "spec: {weekly: [mon, tue, wed, thu, fri, sat, sun]}\n",
     'every date "0 0 * * *" matches is excluded'.replace("0 0", "0 9")),
    ("feb 29 excluded", 'schedule: "0 0 29 2 *"\nexclusions: {annual: ["29.02"]}', "",
     'by annual "29.02" (spec.exclusions.annual[0])'),
    ("no nearest weekday to the 31st of February", 'schedule: "0 0 31W 2 *"', "",
     'ScheduledJob j never fires: "0 0 31W 2 *" matches no date: February has no day 31W'),
    ("every matched day excluded, a shift too short",
     'schedule: "0 9 * * SAT"\nexclusions: {weekly: [Sat, Sun]}\n'
     "onExcludedDay: NextBusinessDay\nmaxShiftDays: 1", "",
     "none of them has a business day within 1 day after it"),
    ("window over", 'schedule: "@daily"\nendTime: "2026-12-31T23:59:59Z"', "",
     "ScheduledJob j never fires after 2027-01-01T00:00:00Z: the window ended at "
     "2026-12-31T23:59:59Z (spec.endTime)"),
]  # fmt: skip


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("spec", "extra", "message"), [row[1:] for row in NEVER], ids=[row[0] for row in NEVER]
)
def test_never_fires_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, extra: str, message: str
) -> None:
    manifest = write(tmp_path, job(spec, extra=extra))
    code, out, err = run(capsys, "-f", manifest, "--after", "2027-01-01T00:00:00Z")
    assert (code, out) == (1, "")
    assert message in err
    assert err.startswith("almanac next: ")


# --------------------------------------------------------------------------------------
# Exit 2: invalid manifest or command line, naming the field


INVALID = [
    ("impossible annual date", 'schedule: "@daily"\nexclusions: {annual: ["25.12", "31.02"]}',
     'spec.exclusions.annual[1]: "31.02" is not a day of the year (dd.MM)'),
    ("impossible holiday", 'schedule: "@daily"\nexclusions: {holiday: ["30.02.2027"]}',
     'spec.exclusions.holiday[0]: "30.02.2027" is not a date (dd.MM.yyyy)'),
    ("month 13", 'schedule: "0 0 1 13 *"',
     'spec.schedule: "0 0 1 13 *" is not a valid cron expression: month 13 is out of range 1-12'),
    ("unknown day name", 'schedule: "@daily"\nexclusions: {weekly: ["Sonday"]}',
     'spec.exclusions.weekly[0]: "Sonday" is not a day of the week'),
    ("bad cron", 'schedule: "every day"',
     'spec.schedule: "every day" has 2 fields; expected 5 fields'),
    ("unknown zone", 'schedule: "@daily"\ntimeZone: Europe/Atlantis',
     'spec.timeZone: "Europe/Atlantis" is not an IANA time zone name'),
    ("bad time", 'schedule: "@daily"\nstartTime: "01.01.2027"',
     'spec.startTime: "01.01.2027" is not a date-time (expected YYYY-MM-DDTHH:MM:SS'),
    ("end before start",
     'schedule: "@daily"\nstartTime: "2027-02-01T00:00:00"\nendTime: "2027-01-01T00:00:00"',
     'spec.endTime: "2027-01-01T00:00:00" is before spec.startTime "2027-02-01T00:00:00"'),
    ("calendar not in the manifest", 'schedule: "@daily"\ncalendarRefs: [{name: ro-bank}]',
     'spec.calendarRefs[0].name: Calendar "ro-bank" not found'),
    ("schedule missing", "timeZone: UTC", "spec.schedule: is required"),
    ("misspelt field", 'schedule: "@daily"\ntimezone: UTC',
     "spec.timezone: is not a known field; did you mean timeZone?"),
    ("unquoted dd.MM", 'schedule: "@daily"\nexclusions: {annual: [25.12]}',
     "spec.exclusions.annual[0]: expected a string, got the number 25.12; quote it in YAML"),
    ("a word YAML reads as a boolean", 'schedule: "@daily"\nexclusions: {weekly: [on]}',
     "spec.exclusions.weekly[0]: expected a string, got the boolean true; quote it in YAML"),
    ("monthly day 32 as a number", 'schedule: "@daily"\nexclusions: {monthly: [1, 32]}',
     'spec.exclusions.monthly[1]: "32" is not a day of the month (dd, 01-31)'),
    ("monthly day 0 as a number", 'schedule: "@daily"\nexclusions: {monthly: [0]}',
     'spec.exclusions.monthly[0]: "0" is not a day of the month (dd, 01-31)'),
    ("one-digit 31.2", 'schedule: "@daily"\nexclusions: {annual: ["31.2"]}',
     'spec.exclusions.annual[0]: "31.2" is not a day of the year (dd.MM)'),
    ("bad concurrency policy", 'schedule: "@daily"\nconcurrencyPolicy: Never',
     'spec.concurrencyPolicy: "Never" is not one of Allow, Forbid or Replace'),
    ("negative history", 'schedule: "@daily"\nfailedRunsHistoryLimit: -1',
     "spec.failedRunsHistoryLimit: must be at least 0 (got -1)"),
    ("service without a template", 'schedule: "@daily"\nservices: [{name: a}]',
     "spec.services[0].jobTemplate: is required"),
    ("service name not a DNS label",
     'schedule: "@daily"\nservices: [{name: Load_1, jobTemplate: {}}]',
     'spec.services[0].name: "Load_1" is not a service name'),
    ("no services", 'schedule: "@daily"\nservices: []', "spec.services: needs at least 1 item"),
    ("empty calendar name", 'schedule: "@daily"\ncalendarRefs: [{name: ""}]',
     "spec.calendarRefs[0].name: must not be empty"),
    ("two services with one name",
     'schedule: "@daily"\nservices: [{name: a, jobTemplate: {}}, {name: a, jobTemplate: {}}]',
     'spec.services: services[1].name "a" is already the name of services[0]'),
    ("bad e-mail address", 'schedule: "@daily"\nnotifications: {to: ["ops"]}',
     'spec.notifications.to[0]: "ops" is not an e-mail address'),
    ("bad e-mail address with a name", 'schedule: "@daily"\nnotifications: {to: ["Ops <ops>"]}',
     'spec.notifications.to[0]: "Ops <ops>" is not an e-mail address'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_manifest_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    code, out, err = run(
        capsys, "-f", write(tmp_path, job(spec)), "--after", "2027-01-01T00:00:00Z"
    )
    assert (code, out) == (2, "")
    assert "ScheduledJob j:\n" in err
    assert f"  {message}" in err


def test_an_invalid_calendar_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, JOB.replace('holiday: ["06.01.2027"]', 'annual: ["32.01"]'))
    code, _, err = run(capsys, "-f", manifest)
    assert code == 2
    assert 'Calendar ro-bank-holidays:\n  spec.annual[0]: "32.01" is not a day of the year' in err


@pytest.mark.parametrize("kind", ["Calendar", "ClusterCalendar"])
def test_an_invalid_calendar_is_named_once_not_also_as_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """A referenced calendar that is in the manifest but invalid is reported with its
    field, as the operator reports it; it is not also "not found" (it is there)."""
    text = JOB.replace('holiday: ["06.01.2027"]', 'annual: ["25.12", "31.04"]')
    if kind == "ClusterCalendar":
        text = text.replace("[{name: ro-bank-holidays}]", "[{kind: ClusterCalendar, name: x}]")
        text = text.replace(
            "kind: Calendar\nmetadata: {name: ro-bank-holidays, namespace: finance}",
            "kind: ClusterCalendar\nmetadata: {name: x}",
        )
    code, _, err = run(capsys, "-f", write(tmp_path, text))
    assert code == 2
    assert f"{kind} {'x' if kind == 'ClusterCalendar' else 'ro-bank-holidays'}:\n" in err
    assert '  spec.annual[1]: "31.04" is not a day of the year (dd.MM)' in err
    assert "not found" not in err


def test_a_calendar_in_another_namespace_is_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        JOB.replace("namespace: finance}\nspec:\n  holiday", "namespace: hr}\nspec:\n  holiday"),
    )
    code, _, err = run(capsys, "-f", manifest)
    assert code == 2
    assert 'spec.calendarRefs[0].name: Calendar "ro-bank-holidays" not found' in err


MANIFESTS = [
    ("no ScheduledJob", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
     "holds 0 ScheduledJobs; expected exactly one"),
    ("two ScheduledJobs", job('schedule: "@daily"') + "---\n" + job('schedule: "@daily"'),
     "holds 2 ScheduledJobs; expected exactly one"),
    ("not YAML", "kind: [ScheduledJob\n", "is not valid YAML"),
    ("wrong apiVersion", job('schedule: "@daily"').replace("v1alpha1", "v1"),
     'apiVersion: "almanac.dev/v1" is not one of almanac.dev/v1alpha1'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"), [row[1:] for row in MANIFESTS], ids=[row[0] for row in MANIFESTS]
)
def test_unusable_manifest_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    code, out, err = run(capsys, "-f", write(tmp_path, text))
    assert (code, out) == (2, "")
    assert message in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-f", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "cannot read" in err and "nope.yaml" in err


COMMAND_LINES = [
    ("after without an offset", ["--after", "2027-01-01T00:00:00"], "has no offset"),
    ("after that is not an instant", ["--after", "tomorrow"],
     '"tomorrow" is not an RFC 3339 instant with an offset'),
    ("after with a space for the t", ["--after", "2027-01-01 00:00:00Z"],
     "is not an RFC 3339 instant with an offset"),
    # Years as a Backfill's from and to (docs/api.md "Bounds"): year 1 printed "1-01-31"
    # in local mean time, and year 9999 west of UTC crashed with a traceback.
    ("after before 1970", ["--after", "0001-01-01T00:00:00Z"],
     'argument --after: year 1 is outside 1970-2200 (got "0001-01-01T00:00:00Z")'),
    ("after past 2200", ["--after", "9999-12-31T23:59:59-01:00"],
     'argument --after: year 9999 is outside 1970-2200 (got "9999-12-31T23:59:59-01:00")'),
    ("count zero", ["-n", "0"], '"0" is not a whole number of at least 1'),
    # Past sys.maxsize islice raised a traceback; the bound is a Backfill's range's.
    ("count past the bound", ["-n", "10001"], '"10001" is more than 10000'),
    ("count past sys.maxsize", ["-n", "9" * 20], f'"{"9" * 20}" is more than 10000'),
    ("unknown default zone", ["--default-timezone", "Mars/Base"], "is not an IANA time zone"),
    ("unknown output", ["-o", "json"], "invalid choice"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"), [row[1:] for row in COMMAND_LINES], ids=[row[0] for row in COMMAND_LINES]
)
def test_bad_command_line_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "-f", write(tmp_path, JOB), *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["next", "--help"]) == 0
    assert "MANIFEST" in capsys.readouterr().out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The models behind the manifest


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "j", "namespace": "n", "labels": {"team": "ops"}},
        "spec": {"schedule": "@daily", "services": [{"name": "a", "jobTemplate": {}}], **spec},
    }


def test_defaults_follow_cronjob() -> None:
    spec = ScheduledJob.parse(body()).spec
    assert spec.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert (spec.successful_runs_history_limit, spec.failed_runs_history_limit) == (3, 1)
    assert spec.suspend is False and spec.starting_deadline_seconds is None
    assert (spec.notifications.on_success, spec.notifications.on_failure) == (False, False)
    assert spec.notifications.to is None and spec.time_zone is None


def test_aliases_round_trip_and_metadata_keeps_extra_fields() -> None:
    services = [{"name": "load", "async": True, "mandatory": True, "jobTemplate": {"spec": {}}}]
    job = ScheduledJob.parse(body(services=services, concurrencyPolicy="Forbid"))
    assert job.spec.services[0].async_ is True
    assert job.spec.concurrency_policy is ConcurrencyPolicy.FORBID
    dumped = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["spec"]["services"][0] == services[0]
    assert dumped["metadata"]["labels"] == {"team": "ops"}
    assert ScheduledJob.parse(dumped) == job


def test_every_field_has_a_description() -> None:
    schema = ScheduledJob.model_json_schema()["$defs"]
    for model in ("ScheduledJobSpec", "Service", "Notifications", "ExclusionLists"):
        for name, field in schema[model]["properties"].items():
            assert field.get("description"), f"{model}.{name}"


def test_status_is_lenient() -> None:
    job = ScheduledJob.parse(
        body() | {"status": {"conditions": [{"type": "Ready", "status": "False", "x": 1}],
                             "lastRun": {"name": "j-1", "phase": "Failed"}, "new": True}}
    )  # fmt: skip
    assert job.status is not None and job.status.conditions[0].type == "Ready"


def test_calendar_model_and_its_exclusions() -> None:
    calendar = Calendar.parse(
        {"apiVersion": "almanac.dev/v1alpha1", "kind": "Calendar", "metadata": {"name": "c"},
         "spec": {"description": "weekends", "weekly": ["sat"]}}
    )  # fmt: skip
    assert calendar.spec.description == "weekends"
    (rule,) = calendar.exclusions().rules
    assert str(rule) == 'weekly "sat" (Calendar c, spec.weekly[0])'


def test_recipients_may_carry_a_name() -> None:
    job = ScheduledJob.parse(body(notifications={"to": ["Ops <ops@example.com>", "a@b.c"]}))
    assert job.spec.notifications.to == ["Ops <ops@example.com>", "a@b.c"]


def test_all_errors_of_a_body_at_once() -> None:
    with pytest.raises(InvalidSpec) as raised:
        ScheduledJob.parse(body(schedule="x", timeZone="y", suspend="maybe"))
    assert [e.path for e in raised.value.errors] == [
        "spec.schedule",
        "spec.timeZone",
        "spec.suspend",
    ]


@pytest.mark.parametrize(
    "exclusions",
    [
        '{monthly: [1, 2], holiday: ["3.1.2027"]}',
        '{monthly: ["1", "02"], annual: ["3.1"]}',
        '{monthly: ["01", 2], holiday: ["03.01.2027"]}',
    ],
)
def test_one_digit_days_and_numbers_exclude_like_two_digit_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exclusions: str
) -> None:
    manifest = write(tmp_path, job(f'schedule: "@daily"\nexclusions: {exclusions}'))
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2026-12-31T12:00:00Z", "-n", "1", "-o", "wide"
    )
    assert code == 0
    lines = out.splitlines()
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines if "skipped" in line] == [
        'monthly "01"',
        'monthly "02"',
        'holiday "03.01.2027"' if "holiday" in exclusions else 'annual "03.01"',
    ]
    assert lines[-1].startswith("2027-01-04T00:00:00Z")


def test_wide_output_counts_long_runs_of_skipped_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = ", ".join(f'"{d:02d}"' for d in range(2, 32))
    manifest = write(tmp_path, job(f'schedule: "@daily"\nexclusions: {{monthly: [{days}]}}'))
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2027-01-01T12:00:00Z", "-n", "1", "-o", "wide"
    )
    lines = out.splitlines()
    assert code == 0
    assert len([line for line in lines if "skipped" in line]) == 11
    assert lines[-2].strip() == "... and 20 more skipped days"
    assert lines[-1].startswith("2027-02-01T00:00:00Z")


def test_wide_output_of_a_never_firing_schedule_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, job('schedule: "0 0 30 2 *"\nendTime: "2099-01-01T00:00:00Z"'))
    code, out, err = run(capsys, "-f", manifest, "-o", "wide")
    assert code == 1
    assert out.startswith("# ScheduledJob j:") and "February has no day 30" in err


def test_the_readme_shows_what_almanac_next_prints_for_the_month_end_sample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's "last business day at 18:00 in Europe/Bucharest" output is current."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines()
    command = next(line for line in readme if "samples/month-end-close.yaml -n" in line)
    block = readme[readme.index(command) + 2 :]
    shown = block[1 : block.index("```", 1)]
    argv = command.split()[2:]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert out.splitlines() == shown


def test_a_reader_that_goes_away_ends_it_quietly(tmp_path: Path) -> None:
    """`almanac next ... | head -1`: as any Unix tool, it stops with exit 0 and no
    traceback when the reader of its output is gone (it printed a BrokenPipeError)."""
    import os
    import subprocess
    import sys

    manifest = write(tmp_path, job('schedule: "* * * * *"'))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "almanac", "next", "-f", manifest, "-n", "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().endswith(b"Z\n")
    process.stdout.close()  # the reader goes away with 10,000 lines still to come
    error = process.stderr.read().decode()
    assert process.wait(timeout=30) == 0, error
    assert "Traceback" not in error and "BrokenPipe" not in error


def test_schedule_md_shows_what_wide_output_prints_for_the_jobs_it_describes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/schedule.md "Explanations": the block of day tokens and shifts is this
    command's output, and the text under it names the job's exclusions, 30 July 2027
    among them (without it, Sat 31 July shifted to Thursday 29 read as a mistake: the
    page's own table shifts it to Friday 30)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "schedule.md").read_text()
    block = doc.split("With day tokens and a shift", 1)[1].split("```\n", 2)
    shown, after = block[1].splitlines(), block[2][:400]
    manifest = write(
        tmp_path,
        SHIFTED_LAST_DAY,
    )
    code, out, _ = run(
        capsys, "-f", manifest, "--after", "2027-06-29T00:00:00Z", "-n", "2", "-o", "wide"
    )
    assert code == 0
    assert shown[:3] == out.splitlines()
    assert "`0 18 L * *`" in after and "30 July 2027" in after
