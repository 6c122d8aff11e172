"""Table tests of the schedule engine: one row per rule of docs/api.md "When a ScheduledJob
fires", with the ugly cases (DST gaps and overlaps north and south, 30- and 45-minute
offsets, Feb 29, the 31st, windows, exclusions from several sources, never-firing).

Instants are written in UTC; the comment on a row gives the local wall time.
"""

from __future__ import annotations

import calendar
import itertools
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import croniter
import pytest

from almanac.errors import InvalidSpec
from almanac.schedule import zones
from almanac.schedule.cron import CronExpression
from almanac.schedule.engine import NeverFires, Schedule
from almanac.schedule.exclusions import Exclusions, calendar_source
from almanac.schedule.explain import Fire, SkippedDay
from almanac.times import format_instant


def utc(text: str) -> datetime:
    """``"2027-03-14T07:00"`` -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build(
    expression: str,
    zone: str = "UTC",
    *,
    start: str | None = None,
    end: str | None = None,
    exclusions: Exclusions | None = None,
) -> Schedule:
    return Schedule.build(
        expression, time_zone=zone, start_time=start, end_time=end, exclusions=exclusions
    )


def first(schedule: Schedule, after: str, count: int) -> list[str]:
    return [format_instant(x)[:-4] for x in itertools.islice(schedule.fires(utc(after)), count)]


# --------------------------------------------------------------------------------------
# Fire instants: (id, expression, zone, after, expected instants in UTC, minutes precision)

FIRES = [
    # Daylight saving: America/New_York springs forward 2027-03-14 02:00 EST -> 03:00 EDT
    # (07:00Z) and falls back 2027-11-07 02:00 EDT -> 01:00 EST (06:00Z).
    ("new york: a fixed time in the spring-forward gap fires at the end of the gap",
     "30 2 * * *", "America/New_York", "2027-03-13T00:00",
     ["2027-03-13T07:30", "2027-03-14T07:00", "2027-03-15T06:30"]),
    ("new york: the first minute of the gap fires at the end of the gap",
     "0 2 * * *", "America/New_York", "2027-03-14T00:00", ["2027-03-14T07:00", "2027-03-15T06:00"]),
    ("new york: several fixed times in one gap collapse into one fire",
     "0,15,30,45 2 * * *", "America/New_York", "2027-03-14T00:00",
     ["2027-03-14T07:00", "2027-03-15T06:00", "2027-03-15T06:15"]),
    ("new york: a gap time and the time at the end of the gap fire once",
     "30 2,3 * * *", "America/New_York", "2027-03-14T00:00",
     ["2027-03-14T07:00", "2027-03-14T07:30", "2027-03-15T06:30"]),
    ("new york: a wildcard minute in the gap hour does not fire that day",
     "*/30 2 * * *", "America/New_York", "2027-03-14T00:00",
     ["2027-03-15T06:00", "2027-03-15T06:30"]),
    ("new york: @hourly skips the hour that does not exist",
     "@hourly", "America/New_York", "2027-03-14T05:00",
     ["2027-03-14T06:00", "2027-03-14T07:00", "2027-03-14T08:00"]),
    ("new york: a fixed time that occurs twice fires at the first occurrence only",
     "30 1 * * *", "America/New_York", "2027-11-06T12:00",
     ["2027-11-07T05:30", "2027-11-08T06:30"]),
    ("new york: a fixed hour range fires the repeated hour once",
     "0 0-3 * * *", "America/New_York", "2027-11-07T03:00",
     ["2027-11-07T04:00", "2027-11-07T05:00", "2027-11-07T07:00", "2027-11-07T08:00"]),
    ("new york: a wildcard minute in the repeated hour fires at both occurrences",
     "*/30 1 * * *", "America/New_York", "2027-11-07T00:00",
     ["2027-11-07T05:00", "2027-11-07T05:30", "2027-11-07T06:00", "2027-11-07T06:30",
      "2027-11-08T06:00"]),
    # Europe/Bucharest: 2027-03-28 03:00 EET -> 04:00 EEST (01:00Z); 2027-10-31 04:00 EEST
    # -> 03:00 EET (01:00Z).
    ("bucharest: 03:30 does not exist on the last Sunday of March, fires at 04:00 EEST",
     "30 3 * * *", "Europe/Bucharest", "2027-03-27T00:00",
     ["2027-03-27T01:30", "2027-03-28T01:00", "2027-03-29T00:30"]),
    ("bucharest: 03:30 occurs twice on the last Sunday of October, fires once (EEST)",
     "30 3 * * *", "Europe/Bucharest", "2027-10-30T00:00",
     ["2027-10-30T00:30", "2027-10-31T00:30", "2027-11-01T01:30"]),
    ("bucharest: a wildcard hour fires 03:15 twice on the long day",
     "15 * * * *", "Europe/Bucharest", "2027-10-31T00:00",
     ["2027-10-31T00:15", "2027-10-31T01:15", "2027-10-31T02:15"]),
    # Australia/Sydney (southern): 2027-04-04 03:00 AEDT -> 02:00 AEST (04-03T16:00Z);
    # 2027-10-03 02:00 AEST -> 03:00 AEDT (10-02T16:00Z).
    ("sydney: 02:30 does not exist on the first Sunday of October, fires at 03:00 AEDT",
     "30 2 * * *", "Australia/Sydney", "2027-10-02T00:00",
     ["2027-10-02T16:00", "2027-10-03T15:30"]),
    ("sydney: 02:30 occurs twice on the first Sunday of April, fires at the first (AEDT)",
     "30 2 * * *", "Australia/Sydney", "2027-04-03T00:00",
     ["2027-04-03T15:30", "2027-04-04T16:30"]),
    ("sydney: a wildcard minute fires both 02:30s in April",
     "*/30 2 * * *", "Australia/Sydney", "2027-04-03T14:00",
     ["2027-04-03T15:00", "2027-04-03T15:30", "2027-04-03T16:00", "2027-04-03T16:30",
      "2027-04-04T16:00"]),
    # Offsets that are not whole hours.
    ("kolkata: 09:00 IST is 03:30Z (+05:30)",
     "0 9 * * *", "Asia/Kolkata", "2027-01-01T00:00", ["2027-01-01T03:30", "2027-01-02T03:30"]),
    ("kathmandu: midnight is 18:15Z the day before (+05:45)",
     "@daily", "Asia/Kathmandu", "2027-01-01T00:00", ["2027-01-01T18:15", "2027-01-02T18:15"]),
    # Pacific/Chatham, +12:45/+13:45: 2027-09-26 02:45 -> 03:45 (09-25T14:00Z);
    # 2027-04-04 03:45 -> 02:45 (04-03T14:00Z).
    ("chatham: 03:00 inside the 45-minute-offset gap fires at 03:45 CHADT",
     "0 3 * * *", "Pacific/Chatham", "2027-09-25T00:00",
     ["2027-09-25T14:00", "2027-09-26T13:15"]),
    ("chatham: a wildcard minute fires 03:00 and 03:30 twice on the long day",
     "*/30 3 * * *", "Pacific/Chatham", "2027-04-03T12:00",
     ["2027-04-03T13:15", "2027-04-03T13:45", "2027-04-03T14:15", "2027-04-03T14:45"]),
    # Australia/Lord_Howe, 30-minute DST: 2027-10-03 02:00 -> 02:30 (10-02T15:30Z);
    # 2027-04-04 02:00 -> 01:30 (04-03T15:00Z).
    ("lord howe: 02:15 in the half-hour gap fires at 02:30",
     "15 2 * * *", "Australia/Lord_Howe", "2027-10-02T00:00",
     ["2027-10-02T15:30", "2027-10-03T15:15"]),
    ("lord howe: a fixed 01:45 in the repeated half hour fires once",
     "45 1 * * *", "Australia/Lord_Howe", "2027-04-03T00:00",
     ["2027-04-03T14:45", "2027-04-04T15:15"]),
    ("lord howe: a wildcard minute fires the repeated half hour twice",
     "*/15 1 * * *", "Australia/Lord_Howe", "2027-04-03T13:00",
     ["2027-04-03T14:00", "2027-04-03T14:15", "2027-04-03T14:30", "2027-04-03T14:45",
      "2027-04-03T15:00", "2027-04-03T15:15", "2027-04-04T14:30"]),
    # A day that does not exist: Pacific/Apia skipped 2011-12-30.
    ("apia: noon of the skipped day fires when the next day begins",
     "0 12 * * *", "Pacific/Apia", "2011-12-29T00:00",
     ["2011-12-29T22:00", "2011-12-30T10:00", "2011-12-30T22:00"]),
    # A fall-back across midnight: America/Goose_Bay 1998-10-25 00:01 -> 1998-10-24 23:01.
    # 23:30 ADT (Oct 24), 00:00 ADT (Oct 25), 23:30 AST (Oct 24 again), 00:00 AST, 00:30.
    ("goose bay: a fall-back across midnight interleaves two days, in time order",
     "*/30 * * * *", "America/Goose_Bay", "1998-10-25T02:00",
     ["1998-10-25T02:30", "1998-10-25T03:00", "1998-10-25T03:30", "1998-10-25T04:00",
      "1998-10-25T04:30"]),
    # Calendar corners.
    ("feb 29 fires in leap years only",
     "0 0 29 2 *", "UTC", "2027-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
    ("feb 29 or a monday in february: either day field may match",
     "0 0 29 2 1", "UTC", "2028-02-20T00:00",
     ["2028-02-21T00:00", "2028-02-28T00:00", "2028-02-29T00:00", "2029-02-05T00:00"]),
    ("feb 29 on a sunday (*/7 starts with *, so both fields must match)",
     "0 0 29 2 */7", "UTC", "2027-01-01T00:00", ["2032-02-29T00:00", "2060-02-29T00:00"]),
    ("the 31st skips the months without one",
     "0 12 31 * *", "UTC", "2027-01-01T00:00",
     ["2027-01-31T12:00", "2027-03-31T12:00", "2027-05-31T12:00", "2027-07-31T12:00",
      "2027-08-31T12:00"]),
    # Day-of-month and day-of-week: the Vixie rule.
    ("*/2 starts with *: odd days that are also mondays (croniter would OR them)",
     "0 0 */2 * 1", "UTC", "2027-01-01T00:00",
     ["2027-01-11T00:00", "2027-01-25T00:00", "2027-02-01T00:00", "2027-02-15T00:00"]),
    ("neither field starts with *: the 1st, the 15th, and every monday",
     "0 0 1,15 * 1", "UTC", "2027-01-01T00:00",
     ["2027-01-04T00:00", "2027-01-11T00:00", "2027-01-15T00:00", "2027-01-18T00:00"]),
    ("day-of-week */7 starts with *: the 1st only when it is a sunday",
     "0 0 1 * */7", "UTC", "2027-01-01T00:00", ["2027-08-01T00:00", "2028-10-01T00:00"]),
    ("? is like *: every monday",
     "0 0 ? * MON", "UTC", "2027-01-01T00:00", ["2027-01-04T00:00", "2027-01-11T00:00"]),
    ("7 is sunday, and a range may end on it",
     "0 0 * * 5-7", "UTC", "2027-01-01T00:00",
     ["2027-01-02T00:00", "2027-01-03T00:00", "2027-01-08T00:00"]),
    ("day-of-week 1/2 ends on saturday: monday, wednesday, friday, never sunday",
     "0 0 * * 1/2", "UTC", "2027-01-01T00:00",
     ["2027-01-04T00:00", "2027-01-06T00:00", "2027-01-08T00:00", "2027-01-11T00:00"]),
    # Names and macros.
    ("month and day names, any case",
     "0 6 * feb,Mar mon-wed", "UTC", "2027-01-01T00:00",
     ["2027-02-01T06:00", "2027-02-02T06:00", "2027-02-03T06:00", "2027-02-08T06:00"]),
    ("N/step means N through the end of the range",
     "5/20 0 1 1 *", "UTC", "2027-01-01T00:00",
     ["2027-01-01T00:05", "2027-01-01T00:25", "2027-01-01T00:45", "2028-01-01T00:05"]),
    ("@yearly", "@yearly", "UTC", "2027-01-01T00:00", ["2028-01-01T00:00", "2029-01-01T00:00"]),
    ("@annually", "@annually", "UTC", "2027-01-01T00:00", ["2028-01-01T00:00"]),
    ("@monthly", "@monthly", "UTC", "2027-01-15T00:00", ["2027-02-01T00:00", "2027-03-01T00:00"]),
    ("@weekly is sunday midnight",
     "@weekly", "UTC", "2027-01-01T00:00", ["2027-01-03T00:00", "2027-01-10T00:00"]),
    ("@daily", "@daily", "UTC", "2027-01-01T00:00", ["2027-01-02T00:00", "2027-01-03T00:00"]),
    ("@midnight", "@midnight", "UTC", "2027-01-01T00:00", ["2027-01-02T00:00"]),
    ("@hourly", "@HOURLY", "UTC", "2027-01-01T00:30", ["2027-01-01T01:00", "2027-01-01T02:00"]),
    ("strictly after: a fire at the after instant is not repeated",
     "0 9 * * *", "UTC", "2027-01-01T09:00", ["2027-01-02T09:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [row[1:] for row in FIRES],
    ids=[row[0] for row in FIRES],
)
def test_fires(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert first(build(expression, zone), after, len(expected)) == expected


def test_an_hourly_schedule_fires_25_times_on_the_fall_back_day() -> None:
    schedule = build("0 * * * *", "America/New_York")
    day = list(itertools.takewhile(lambda x: x < utc("2027-11-08T05:00"),
                                   schedule.fires(utc("2027-11-07T03:59"))))  # fmt: skip
    assert len(day) == 25
    assert [x.astimezone(schedule.zone).hour for x in day[:4]] == [0, 1, 1, 2]


def test_an_hourly_schedule_fires_23_times_on_the_spring_forward_day() -> None:
    schedule = build("0 * * * *", "America/New_York")
    day = list(itertools.takewhile(lambda x: x < utc("2027-03-15T04:00"),
                                   schedule.fires(utc("2027-03-14T04:59"))))  # fmt: skip
    assert len(day) == 23


def test_next_fire_is_the_first_of_fires() -> None:
    schedule = build("30 2 * * 1-5", "Europe/Bucharest")
    # Friday 2027-01-01 02:30 EET, then Monday 2027-01-04.
    assert schedule.next_fire(utc("2027-01-01T00:00")) == utc("2027-01-01T00:30")
    assert schedule.next_fire(utc("2027-01-01T00:30")) == utc("2027-01-04T00:30")


def test_a_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build("@daily").next_fire(datetime(2027, 1, 1))


# --------------------------------------------------------------------------------------
# Windows: (id, expression, zone, start, end, after, expected)

WINDOWS = [
    ("a local start cuts the series, inclusive",
     "0 9 * * *", "Europe/Bucharest", "2027-01-03T09:00:00", None, "2027-01-01T00:00",
     ["2027-01-03T07:00", "2027-01-04T07:00"]),
    ("a start with an offset is that instant",
     "0 9 * * *", "Europe/Bucharest", "2027-01-03T07:00:01Z", None, "2027-01-01T00:00",
     ["2027-01-04T07:00"]),
    ("an end with an offset is inclusive and ends the series",
     "0 9 * * *", "Europe/Bucharest", None, "2027-01-05T07:00:00Z", "2027-01-03T00:00",
     ["2027-01-03T07:00", "2027-01-04T07:00", "2027-01-05T07:00"]),
    ("a local end, one second before the fire, excludes it",
     "0 9 * * *", "Europe/Bucharest", None, "2027-01-05T08:59:59", "2027-01-03T00:00",
     ["2027-01-03T07:00", "2027-01-04T07:00"]),
    ("a local start inside the gap means the end of the gap",
     "*/30 * * * *", "America/New_York", "2027-03-14T02:30:00", None, "2027-03-14T00:00",
     ["2027-03-14T07:00", "2027-03-14T07:30"]),
    ("a local end that occurs twice means its first occurrence",
     "*/30 * * * *", "America/New_York", None, "2027-11-07T01:30:00", "2027-11-07T04:45",
     ["2027-11-07T05:00", "2027-11-07T05:30"]),
    ("an after before the window starts at the window",
     "@daily", "UTC", "2030-06-01T00:00:00Z", None, "2027-01-01T00:00", ["2030-06-01T00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "zone", "start", "end", "after", "expected"),
    [row[1:] for row in WINDOWS],
    ids=[row[0] for row in WINDOWS],
)
def test_windows(
    expression: str, zone: str, start: str | None, end: str | None, after: str, expected: list[str]
) -> None:
    schedule = build(expression, zone, start=start, end=end)
    assert first(schedule, after, 10 if end else len(expected)) == expected


# --------------------------------------------------------------------------------------
# Exclusions


def several_sources() -> Exclusions:
    own = Exclusions.parse(weekly=["Saturday", "sun"])
    bank = Exclusions.parse(source=calendar_source("bank"), path="spec", holiday=["05.01.2027"])
    office = Exclusions.parse(
        source=calendar_source("office"), path="spec", annual=["06.01"], monthly=["07"]
    )
    return own + bank + office


def test_exclusions_from_several_sources_add_up() -> None:
    schedule = build("0 8 * * *", exclusions=several_sources())
    assert first(schedule, "2027-01-01T12:00", 3) == [
        "2027-01-04T08:00",  # Mon; Sat 2 and Sun 3 are the job's own weekly
        "2027-01-08T08:00",  # Tue 5 bank holiday, Wed 6 office annual, Thu 7 office monthly
        "2027-01-11T08:00",
    ]


EXPLAIN_DAY = [
    ("own weekly list", date(2027, 1, 2), 'weekly "Saturday" (spec.exclusions.weekly[0])'),
    ("a calendar's holiday", date(2027, 1, 5),
     'holiday "05.01.2027" (Calendar bank, spec.holiday[0])'),
    ("a calendar's annual date", date(2027, 1, 6),
     'annual "06.01" (Calendar office, spec.annual[0])'),
    ("a calendar's monthly day", date(2027, 1, 7),
     'monthly "07" (Calendar office, spec.monthly[0])'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("day", "rule"), [row[1:] for row in EXPLAIN_DAY], ids=[row[0] for row in EXPLAIN_DAY]
)
def test_explain_day_names_the_rule_and_its_source(day: date, rule: str) -> None:
    explanation = build("0 8 * * *", exclusions=several_sources()).explain_day(day)
    assert not explanation.fires
    assert [str(r) for r in explanation.excluded_by] == [rule]
    assert rule in explanation.message


def test_a_day_excluded_twice_names_both_rules() -> None:
    exclusions = Exclusions.parse(weekly=["sun"]) + Exclusions.parse(
        source=calendar_source("bank"), path="spec", annual=["03.01"]
    )
    explanation = build("@daily", exclusions=exclusions).explain_day(date(2027, 1, 3))
    assert [r.origin for r in explanation.excluded_by] == [
        "spec.exclusions.weekly[0]",
        "Calendar bank, spec.annual[0]",
    ]


EXPLAIN_OTHER = [
    ("a firing day lists its times", "30 2 * * *", "America/New_York", date(2027, 1, 4), True,
     "Monday 2027-01-04 fires at 02:30 (2027-01-04T07:30:00Z)"),
    ("the day-of-week field rejects a saturday", "30 2 * * 1-5", "UTC", date(2027, 1, 2), False,
     '"30 2 * * 1-5" does not match Saturday 2027-01-02 (day-of-week)'),
    ("the month field rejects january", "0 0 * 2 *", "UTC", date(2027, 1, 2), False,
     "(month)"),
    ("a wildcard's gap-only day", "*/30 2 * * *", "America/New_York", date(2027, 3, 14), False,
     "falls in a daylight-saving gap"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "zone", "day", "fires", "message"),
    [row[1:] for row in EXPLAIN_OTHER],
    ids=[row[0] for row in EXPLAIN_OTHER],
)
def test_explain_day(expression: str, zone: str, day: date, fires: bool, message: str) -> None:
    explanation = build(expression, zone).explain_day(day)
    assert explanation.fires is fires
    assert message in explanation.message


EXPLAIN_INSTANT = [
    ("a fire", "30 1 * * *", "America/New_York", "2027-11-07T05:30", True,
     "fires, local Sunday 2027-11-07 01:30:00 EDT (-04:00)"),
    ("the second 01:30 of a fixed-time schedule", "30 1 * * *", "America/New_York",
     "2027-11-07T06:30", False,
     "occurs twice (DST overlap); a fixed-time schedule fires at the first occurrence only, "
     "2027-11-07T05:30:00Z"),
    ("a gap time moved to the end of the gap", "30 2 * * *", "America/New_York",
     "2027-03-14T07:00", True, "02:30 does not exist (DST gap)"),
    ("a minute the expression does not name", "30 2 * * *", "UTC", "2027-01-04T02:31", False,
     "local time 02:31 does not match the minute and hour fields"),
    ("an excluded day", "0 8 * * *", "UTC", "2027-01-09T08:00", False,
     'excluded by weekly "Saturday" (spec.exclusions.weekly[0])'),
    ("before the window", "0 8 * * *", "UTC", "2026-12-31T08:00", False, "outside the window"),
    ("after the window", "0 8 * * *", "UTC", "2028-01-03T08:00", False,
     "is outside the window [2027-01-01T00:00:00Z, 2027-12-31T00:00:00Z]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "zone", "instant", "fires", "message"),
    [row[1:] for row in EXPLAIN_INSTANT],
    ids=[row[0] for row in EXPLAIN_INSTANT],
)
def test_explain_instant(
    expression: str, zone: str, instant: str, fires: bool, message: str
) -> None:
    schedule = Schedule.build(
        expression,
        time_zone=zone,
        start_time="2027-01-01T00:00:00Z",
        end_time="2027-12-31T00:00:00Z",
        exclusions=Exclusions.parse(weekly=["Saturday"]),
    )
    explanation = schedule.explain_instant(utc(instant))
    assert explanation.fires is fires
    assert message in explanation.message


def test_timeline_puts_skipped_days_between_fires() -> None:
    items = list(itertools.islice(build("0 8 * * *", exclusions=several_sources()).timeline(
        utc("2027-01-04T12:00")), 6))  # fmt: skip
    assert [type(i).__name__ for i in items] == [
        "SkippedDay", "SkippedDay", "SkippedDay", "Fire", "SkippedDay", "SkippedDay"
    ]  # fmt: skip
    skipped = [i for i in items if isinstance(i, SkippedDay)]
    assert [s.day.day for s in skipped] == [5, 6, 7, 9, 10]
    assert [str(r) for r in skipped[0].excluded_by] == [
        'holiday "05.01.2027" (Calendar bank, spec.holiday[0])'
    ]
    fire = items[3]
    assert isinstance(fire, Fire) and fire.instant == utc("2027-01-08T08:00")


def test_timeline_notes_dst() -> None:
    fires = list(itertools.islice(build("0,30 2 * * *", "America/New_York").timeline(
        utc("2027-03-14T00:00")), 1))  # fmt: skip
    assert isinstance(fires[0], Fire)
    assert fires[0].notes == (
        "02:00 and 02:30 do not exist (DST gap); fixed-time schedules fire at the end of the gap",
    )
    assert fires[0].local.isoformat() == "2027-03-14T03:00:00-04:00"


# --------------------------------------------------------------------------------------
# Never fires: quick and certain, with the reason


NEVER = [
    ("february has no 30th", "0 0 30 2 *", {}, None, "NoSuchDate",
     '"0 0 30 2 *" matches no date: February has no day 30'),
    ("no 31st in april, june, september or november", "0 0 31 4,6,9,11 *", {}, None,
     "NoSuchDate", "April, June, September and November have no day 31"),
    ("every weekday excluded, from two sources", "0 9 * * *",
     {"weekly": ["Mon", "tuesday", "WED", "thu", "fri"]}, ["Sat", "Sunday"], "EveryDayExcluded",
     'weekly "Sunday" (Calendar weekend, spec.weekly[1])'),
    ("feb 29 excluded every year", "0 0 29 2 *", {"annual": ["29.02"]}, None, "EveryDayExcluded",
     'every date "0 0 29 2 *" matches is excluded, by annual "29.02" '
     "(spec.exclusions.annual[0])"),
    ("the 31st excluded every month", "0 0 31 * *", {"monthly": ["31"]}, None, "EveryDayExcluded",
     'monthly "31" (spec.exclusions.monthly[0])'),
]  # fmt: skip


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("expression", "own", "weekend", "reason", "message"),
    [row[1:] for row in NEVER],
    ids=[row[0] for row in NEVER],
)
def test_never_fires(
    expression: str, own: dict[str, Any], weekend: list[str] | None, reason: str, message: str
) -> None:
    exclusions = Exclusions.parse(**own)
    if weekend:
        exclusions += Exclusions.parse(
            source=calendar_source("weekend"), path="spec", weekly=weekend
        )
    schedule = build(expression, exclusions=exclusions)
    assert schedule.never_fires is not None
    result = schedule.next_fire(utc("2027-01-01T00:00"))
    assert isinstance(result, NeverFires)
    assert result.reason == reason
    assert message in result.message
    assert list(schedule.fires(utc("2027-01-01T00:00"))) == []


@pytest.mark.timeout(5)
def test_a_window_that_ended_never_fires() -> None:
    schedule = build("@daily", end="2027-12-31T23:59:59")
    assert schedule.never_fires is None
    result = schedule.next_fire(utc("2028-01-01T00:00"))
    assert result == NeverFires(
        "WindowEnded", "the window ended at 2027-12-31T23:59:59Z (spec.endTime)"
    )


@pytest.mark.timeout(5)
def test_no_matching_day_before_the_window_ends_never_fires() -> None:
    schedule = build("0 0 1 1 *", end="2027-06-01T00:00:00Z")
    result = schedule.next_fire(utc("2027-01-02T00:00"))
    assert isinstance(result, NeverFires) and result.reason == "NoFireInWindow"


@pytest.mark.timeout(5)
def test_a_wildcard_whose_every_time_is_in_a_dst_gap_never_fires() -> None:
    # 02:xx on the second Sunday of March: the New York gap, every year from 2007 on.
    schedule = build("* 2 8-14 3 */7", "America/New_York")
    result = schedule.next_fire(utc("2027-01-01T00:00"))
    assert isinstance(result, NeverFires) and result.reason == "EveryTimeInGap"
    assert "daylight-saving gap of America/New_York" in result.message
    # ... while the same fixed-time expression fires at the end of each gap.
    assert build("0 2 8-14 3 */7", "America/New_York").next_fire(utc("2027-01-01T00:00")) == utc(
        "2027-03-14T07:00"
    )


# 03:xx on the last Sunday of March (the only Sunday from the 25th on): the EU gap in
# Europe/Bucharest (03:00 EET -> 04:00 EEST) since 1997; before, the clock changed at 00:00.
LAST_SUNDAY_OF_MARCH = {"monthly": [f"{d:02d}" for d in range(1, 25)]}


def test_every_time_in_a_gap_is_proved_without_a_search_and_without_the_holidays() -> None:
    holidays = [f"{d:02d}.{m:02d}.{y}" for y in range(2027, 2201) for m in (1, 6) for d in (1, 2)]
    exclusions = Exclusions.parse(**LAST_SUNDAY_OF_MARCH, holiday=holidays)
    started = time.perf_counter()
    result = build("* 3 * 3 0", "Europe/Bucharest", exclusions=exclusions).next_fire(
        utc("2027-01-01T00:00")
    )
    assert time.perf_counter() - started < 0.5
    assert isinstance(result, NeverFires) and result.reason == "EveryTimeInGap"
    assert result.message == (
        'every time "* 3 * 3 0" names falls in a daylight-saving gap of Europe/Bucharest '
        "(the clock skips it), and a wildcard schedule does not fire in a gap (a fixed time "
        "fires at the end of the gap): it never fires"
    )
    assert (
        list(
            build("* 3 * 3 0", "Europe/Bucharest", exclusions=exclusions).timeline(
                utc("2027-01-01T00:00")
            )
        )
        == []
    )


def test_a_gap_schedule_fires_in_the_years_the_clock_changed_at_another_time() -> None:
    schedule = build(
        "* 3 * 3 0", "Europe/Bucharest", exclusions=Exclusions.parse(**LAST_SUNDAY_OF_MARCH)
    )
    assert schedule.next_fire(utc("1996-01-01T00:00")) == utc("1996-03-31T00:00")  # 03:00 EEST
    assert isinstance(schedule.next_fire(utc("1996-04-01T00:00")), NeverFires)


def test_holidays_that_remove_the_last_fires_before_2100_leave_the_gap_as_the_reason() -> None:
    # Without holidays it fires on the last Sunday of March 1990..1996 (03:xx existed).
    holidays = [
        d.strftime("%d.%m.%Y")
        for y in range(1990, 1997)
        for d in [date(y, 3, 31) - timedelta(days=(date(y, 3, 31).weekday() + 1) % 7)]
    ]
    exclusions = Exclusions.parse(**LAST_SUNDAY_OF_MARCH, holiday=holidays)
    result = build("* 3 * 3 0", "Europe/Bucharest", exclusions=exclusions).next_fire(
        utc("1990-01-01T00:00")
    )
    assert isinstance(result, NeverFires) and result.reason == "EveryTimeInGap"
    assert result.message.startswith(
        "no fire before 2100-01-01 (the dates it matches are excluded), and from then on "
        'every time "* 3 * 3 0" names falls in a daylight-saving gap of Europe/Bucharest'
    )


def test_a_gap_proof_stops_at_the_first_date_that_fires() -> None:
    # Wildcard, but most Sundays of March are not the day the clock changes.
    schedule = build("*/30 3 * 3 0", "Europe/Bucharest")
    assert schedule.next_fire(utc("2027-01-01T00:00")) == utc("2027-03-07T01:00")
    # Fixed times in the gap fire at its end: never "every time in a gap".
    fixed = build(
        "30 3 * 3 0", "Europe/Bucharest", exclusions=Exclusions.parse(**LAST_SUNDAY_OF_MARCH)
    )
    assert fixed.next_fire(utc("2027-01-01T00:00")) == utc("2027-03-28T01:00")


def test_a_window_start_in_year_1_is_the_first_date_handled() -> None:
    # The models refuse it (years 1970-2200); the engine itself does not fail on it.
    schedule = build("0 3 * * *", start="0001-01-01T00:00:00", end="0001-01-01T00:00:00")
    assert schedule.next_fire(utc("2027-01-01T00:00")).reason == "WindowEnded"  # type: ignore[union-attr]


@pytest.mark.timeout(5)
def test_a_rare_date_far_away_is_found() -> None:
    # Feb 29 on a Monday: 2084, then 2112 (2100 is not a leap year).
    not_monday = ["tue", "wed", "thu", "fri", "sat", "sun"]
    schedule = build("0 0 29 2 *", exclusions=Exclusions.parse(weekly=not_monday))
    assert schedule.next_fire(utc("2084-03-01T00:00")) == utc("2112-02-29T00:00")


@pytest.mark.timeout(5)
def test_holidays_only_postpone() -> None:
    holidays = [f"29.02.{y}" for y in range(2028, 2400, 4) if calendar.isleap(y)]
    schedule = build("0 0 29 2 *", exclusions=Exclusions.parse(holiday=holidays))
    assert schedule.next_fire(utc("2027-01-01T00:00")) == utc("2400-02-29T00:00")


# --------------------------------------------------------------------------------------
# Validation: the field is named and the expectation stated


INVALID = [
    ("four fields", {"schedule": "0 0 30 2"}, "spec.schedule",
     '"0 0 30 2" has 4 fields; expected 5 fields (minute hour day-of-month month '
     "day-of-week) or one of @yearly"),
    ("minute out of range", {"schedule": "61 * * * *"}, "spec.schedule",
     "minute 61 is out of range 0-59"),
    ("month 13", {"schedule": "0 0 1 13 *"}, "spec.schedule", "month 13 is out of range 1-12"),
    ("unknown day name", {"schedule": "0 0 * * MOO"}, "spec.schedule",
     '"MOO" is not a day-of-week (0-7 or SUN-SAT)'),
    ("a step of a token", {"schedule": "0 0 L/2 * *"}, "spec.schedule",
     '"L/2" in the day-of-month field is not supported: L, L-n, nW, LW, nB, LB or LB-n '
     "stand alone in a list item, without a step or a range"),
    ("a range of tokens", {"schedule": "0 0 1W-5W * *"}, "spec.schedule",
     '"1W-5W" in the day-of-month field is not supported'),
    ("a step of LB-n", {"schedule": "0 0 LB-1/2 * *"}, "spec.schedule",
     '"LB-1/2" in the day-of-month field is not supported'),
    ("0W", {"schedule": "0 0 0W * *"}, "spec.schedule",
     '"0W" in the day-of-month field: n in nW is 1-31'),
    ("32W", {"schedule": "0 0 32W * *"}, "spec.schedule",
     '"32W" in the day-of-month field: n in nW is 1-31'),
    ("L-31", {"schedule": "0 0 L-31 * *"}, "spec.schedule",
     '"L-31" in the day-of-month field: n in L-n is 1-30'),
    ("L-0", {"schedule": "0 0 L-0 * *"}, "spec.schedule", "n in L-n is 1-30"),
    ("LB-31", {"schedule": "0 0 LB-31 * *"}, "spec.schedule",
     '"LB-31" in the day-of-month field: n in LB-n is 1-30'),
    ("0B", {"schedule": "0 0 0B * *"}, "spec.schedule",
     '"0B" in the day-of-month field: n in nB is 1-31'),
    ("32B", {"schedule": "0 0 32B * *"}, "spec.schedule", "n in nB is 1-31"),
    ("MON#6", {"schedule": "0 0 * * MON#6"}, "spec.schedule",
     '"MON#6" in the day-of-week field: k in d#k is 1-5'),
    ("MON#0", {"schedule": "0 0 * * MON#0"}, "spec.schedule", "k in d#k is 1-5"),
    ("8#1", {"schedule": "0 0 * * 8#1"}, "spec.schedule",
     '"8#1" in the day-of-week field: d is 0-7 or SUN-SAT'),
    ("8L", {"schedule": "0 0 * * 8L"}, "spec.schedule", '"8L" in the day-of-week field: d is 0-7'),
    ("B in the day-of-week field", {"schedule": "0 0 * * B"}, "spec.schedule",
     '"B" is only allowed in the day-of-month field'),
    ("nB in the day-of-week field", {"schedule": "0 0 * * 1B"}, "spec.schedule",
     '"1B" is only allowed in the day-of-month field'),
    ("W in the day-of-week field", {"schedule": "0 0 * * 5W"}, "spec.schedule",
     '"5W" is only allowed in the day-of-month field'),
    ("a bare L in the day-of-week field", {"schedule": "0 0 * * L"}, "spec.schedule",
     '"L" in the day-of-week field is not supported'),
    ("# in the day-of-month field", {"schedule": "0 0 1#2 * *"}, "spec.schedule",
     '"1#2" in the day-of-month field: # is only allowed in the day-of-week field'),
    ("a range of d#k", {"schedule": "0 0 * * MON#1-FRI#1"}, "spec.schedule",
     '"MON#1-FRI#1" in the day-of-week field is not supported'),
    ("W in the hour field", {"schedule": "0 5W * * *"}, "spec.schedule",
     '"5W" in the hour field is not supported'),
    ("an unknown shift", {"on_excluded_day": "NextWorkingDay"}, "spec.onExcludedDay",
     '"NextWorkingDay" is not one of Skip, NextBusinessDay or PreviousBusinessDay'),
    ("a shift of 0 days", {"max_shift_days": 0}, "spec.maxShiftDays", "must be 1-31 days"),
    ("a shift of 32 days", {"max_shift_days": 32}, "spec.maxShiftDays", "must be 1-31 days"),
    ("step zero", {"schedule": "*/0 * * * *"}, "spec.schedule", 'step "0" in the minute field'),
    ("backwards range", {"schedule": "0 5-1 * * *"}, "spec.schedule", 'range "5-1" in the hour'),
    ("a time zone inside the schedule", {"schedule": "CRON_TZ=UTC 0 0 * * *"}, "spec.schedule",
     "set spec.timeZone"),
    ("@reboot", {"schedule": "@reboot"}, "spec.schedule", '"@reboot" is not a known macro'),
    ("? in the hour field", {"schedule": "0 ? * * *"}, "spec.schedule",
     "? is only allowed in the day-of-month and day-of-week fields"),
    ("empty", {"schedule": " "}, "spec.schedule", "is empty"),
    ("unknown zone", {"time_zone": "Europe/Atlantis"}, "spec.timeZone",
     '"Europe/Atlantis" is not an IANA time zone name'),
    ("not an IANA name", {"time_zone": "localtime"}, "spec.timeZone", "is not an IANA time zone"),
    ("bad default zone", {"time_zone": None, "default_time_zone": "Mars/Base"}, "spec.timeZone",
     'not set, and the default time zone "Mars/Base" is not an IANA time zone name'),
    ("a date without a time", {"start_time": "2027-01-01"}, "spec.startTime",
     '"2027-01-01" is not a date-time (expected YYYY-MM-DDTHH:MM:SS'),
    ("the 13th month", {"end_time": "2027-13-01T00:00:00"}, "spec.endTime",
     "is not a date-time"),
    ("a bad offset", {"end_time": "2027-01-01T00:00:00+25:00"}, "spec.endTime",
     "is not a date-time"),
    ("end before start", {"start_time": "2027-06-01T00:00:00", "end_time": "2027-01-01T00:00:00"},
     "spec.endTime", '"2027-01-01T00:00:00" is before spec.startTime "2027-06-01T00:00:00"'),
    ("end before start across offsets",  # 04:00 EEST is 01:00Z
     {"start_time": "2027-06-01T04:00:00", "end_time": "2027-06-01T00:30:00Z",
      "time_zone": "Europe/Bucharest"}, "spec.endTime", "is before spec.startTime"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "path", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_fields_are_named(fields: dict[str, Any], path: str, message: str) -> None:
    defaults: dict[str, Any] = {"schedule": "0 0 * * *", "time_zone": "UTC"}
    arguments = defaults | fields
    schedule = arguments.pop("schedule")
    assert schedule is not None
    with pytest.raises(InvalidSpec) as raised:
        Schedule.build(schedule, **arguments)  # type: ignore[arg-type]
    assert [e.path for e in raised.value.errors] == [path]
    assert message in raised.value.errors[0].message
    assert str(raised.value).startswith(f"{path}: ")


def test_every_invalid_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidSpec) as raised:
        Schedule.build("0 0 * *", time_zone="Nowhere", start_time="tomorrow")
    assert [e.path for e in raised.value.errors] == [
        "spec.schedule",
        "spec.timeZone",
        "spec.startTime",
    ]
    assert len(str(raised.value).splitlines()) == 3


# --------------------------------------------------------------------------------------
# Where croniter differs from the contract (why the engine does its own day and DST math)


def test_croniter_ors_a_starred_day_of_month_the_contract_ands_it() -> None:
    after = utc("2027-01-01T00:00")
    theirs = croniter.croniter("0 0 */2 * 1", after).get_next(datetime)
    assert theirs == utc("2027-01-03T00:00")  # a Sunday: croniter ORs the two fields
    assert build("0 0 */2 * 1").next_fire(after) == utc("2027-01-11T00:00")


def test_croniter_fires_a_repeated_fixed_time_twice_the_contract_once() -> None:
    schedule = build("30 1 * * *", "America/New_York")
    start = datetime(2027, 11, 6, 12, tzinfo=schedule.zone)
    theirs = croniter.croniter("30 1 * * *", start)
    assert [theirs.get_next(datetime).astimezone(UTC) for _ in range(2)] == [
        utc("2027-11-07T05:30"),
        utc("2027-11-07T06:30"),
    ]
    assert first(schedule, "2027-11-06T12:00", 2) == ["2027-11-07T05:30", "2027-11-08T06:30"]


# --------------------------------------------------------------------------------------
# The cron parser


def test_cron_expression_knows_fixed_time_from_wildcard() -> None:
    assert CronExpression.parse("0 0-23 * * *").fixed_time
    assert not CronExpression.parse("*/5 2 * * *").fixed_time
    assert not CronExpression.parse("0 */2 * * *").fixed_time
    assert not CronExpression.parse("@hourly").fixed_time
    assert CronExpression.parse("@daily").fixed_time


# docs/schedule.md: "`N/n` means `N` to the end of the range in steps of `n` (as Kubernetes
# CronJob and croniter read it)": the day-of-week range ends on Saturday (6), though 7
# also names Sunday; an explicit range such as 1-7 keeps its Sunday.
DAY_OF_WEEK_STEPS = [
    ("1/2 is monday, wednesday and friday, not sunday", "1/2", {1, 3, 5}),
    ("5/1 is friday and saturday, not sunday", "5/1", {5, 6}),
    ("MON/3 is monday and thursday, not sunday", "MON/3", {1, 4}),
    ("4/3 is thursday only", "4/3", {4}),
    ("7 is sunday, so 7/2 is SUN/2", "7/2", {0, 2, 4, 6}),
    ("*/2 is sunday, tuesday, thursday and saturday", "*/2", {0, 2, 4, 6}),
    ("an explicit range keeps its 7: 1-7/2 ends on sunday", "1-7/2", {1, 3, 5, 0}),
    ("an explicit range keeps its 7: 1-7/3 is monday, thursday and sunday", "1-7/3", {1, 4, 0}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [r[1:] for r in DAY_OF_WEEK_STEPS],
    ids=[r[0] for r in DAY_OF_WEEK_STEPS],
)
def test_day_of_week_steps_read_as_croniter_reads_them(field: str, weekdays: set[int]) -> None:
    expression = f"0 0 * * {field}"
    assert set(croniter.croniter(expression).expanded[4]) == weekdays  # the model cited
    assert CronExpression.parse(expression).days_of_week == weekdays


def test_cron_expression_folds_7_into_sunday() -> None:
    parsed = CronExpression.parse("0 0 * * 0,7")
    assert parsed.days_of_week == frozenset({0})


def test_window_property_gives_utc_instants() -> None:
    schedule = build("@daily", "Europe/Bucharest", start="2027-01-01T00:00:00")
    assert schedule.window == (utc("2026-12-31T22:00"), None)


def test_schedule_repr_is_readable() -> None:
    assert "Europe/Bucharest" in repr(build("@daily", "Europe/Bucharest"))


def test_iteration_is_lazy_for_every_minute_schedules() -> None:
    schedule = build("* * * * *")
    got = list(itertools.islice(schedule.fires(utc("2027-01-01T00:00")), 3))
    assert got == [utc("2027-01-01T00:00") + timedelta(minutes=m) for m in (1, 2, 3)]


def test_fires_continue_past_the_horizon_while_they_keep_coming() -> None:
    # Feb 29 on a weekday: 100 fires span about 540 years, past the 400-year horizon.
    weekend = Exclusions.parse(weekly=["sat", "sun"])
    schedule = build("0 0 29 2 *", exclusions=weekend)
    fires = list(itertools.islice(schedule.fires(utc("2027-01-01T00:00")), 100))
    assert len(fires) == 100 and fires[-1].year > 2427


@pytest.mark.parametrize(
    ("zone", "year"),
    [("America/New_York", 2027), ("Australia/Lord_Howe", 2027), ("Pacific/Apia", 2011),
     ("Antarctica/Casey", 2010), ("Europe/Bucharest", 2160)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_offset_changes_found_by_daily_sampling_are_all_of_them(zone: str, year: int) -> None:
    from almanac.schedule.zones import _year_offsets  # the one approximation worth pinning
    from tests.unit.oracle import transitions

    found = [datetime.fromtimestamp(t, UTC) for t in _year_offsets(ZoneInfo(zone), year)[1]]
    assert found == list(transitions(zone, year))


@pytest.mark.parametrize(
    "zone", ["Europe/Bucharest", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia"]
)
def test_offsets_near_a_day_are_those_of_the_yearly_scan(zone: str) -> None:
    tz = ZoneInfo(zone)
    for year in (1975, 2011, 2027, 2150):
        for day in range(0, 366, 3):
            w = zones.midnight_wall(date(year, 1, 1).toordinal() + day)
            lo, hi = w - zones.DAY_SECONDS, w + 2 * zones.DAY_SECONDS
            assert zones.offsets_near(tz, lo, hi) == zones.offsets_around(tz, lo, hi)
