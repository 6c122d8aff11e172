"""Table tests of business days (docs/api.md "Business days and day tokens", "Shifting"):
one row per token and per shift rule, with the ugly cases (month ends, leap years, 31W in
a 30-day month, a shift across a month end and across a DST change, shifted fires that
land on an instant that fires anyway, a shift beyond maxShiftDays, the window applied
after the shift), the never-fires proof, and the explanations.

Instants are written in UTC; the comment on a row gives the local dates. Calendars of
2027: 1 January is a Friday, 1 May a Saturday, 31 July a Saturday, 31 October a Sunday.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from almanac.rules.jobs import decide_job
from almanac.schedule.engine import NeverFires, Schedule
from almanac.schedule.exclusions import Exclusions, calendar_source
from almanac.schedule.explain import Fire, SkippedDay, first_fires
from almanac.times import format_instant
from tests.integration.objects import scheduled_job, service

WEEKEND = {"weekly": ["Saturday", "Sunday"]}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build(
    expression: str,
    zone: str = "UTC",
    lists: dict[str, list[str]] | None = None,
    shift: str = "Skip",
    max_shift: int = 7,
    **window: str,
) -> Schedule:
    return Schedule.build(
        expression,
        time_zone=zone,
        exclusions=Exclusions.parse(**(lists or {})),
        on_excluded_day=shift,
        max_shift_days=max_shift,
        start_time=window.get("start"),
        end_time=window.get("end"),
    )


def first(schedule: Schedule, after: str, count: int) -> list[str]:
    return [format_instant(x)[:-4] for x in itertools.islice(schedule.fires(utc(after)), count)]


# --------------------------------------------------------------------------------------
# The tokens: (id, expression, exclusions, after, expected instants)

TOKENS: list[tuple[str, str, dict[str, list[str]], str, list[str]]] = [
    ("L: the last day of each month",
     "0 12 L * *", {}, "2027-01-15T00:00",
     ["2027-01-31T12:00", "2027-02-28T12:00", "2027-03-31T12:00", "2027-04-30T12:00"]),
    ("L in February of a leap year is the 29th",
     "0 12 L 2 *", {}, "2027-03-01T00:00", ["2028-02-29T12:00", "2029-02-28T12:00"]),
    ("L-1: the day before the last (the 30th of January)",
     "0 12 L-1 * *", {}, "2027-01-01T00:00",
     ["2027-01-30T12:00", "2027-02-27T12:00", "2027-03-30T12:00"]),
    ("L-30 only in 31-day months (no day 0)",
     "0 12 L-30 * *", {}, "2027-01-02T00:00",
     ["2027-03-01T12:00", "2027-05-01T12:00", "2027-07-01T12:00"]),
    ("15W: Saturday the 15th moves to Friday, Sunday to Monday",  # May 15 Sat, Aug 15 Sun
     "0 12 15W * *", {}, "2027-05-01T00:00",
     ["2027-05-14T12:00", "2027-06-15T12:00", "2027-07-15T12:00", "2027-08-16T12:00"]),
    ("1W: Saturday the 1st moves to Monday the 3rd, never to the month before",
     "0 12 1W 5 *", {}, "2027-01-01T00:00", ["2027-05-03T12:00", "2028-05-01T12:00"]),
    ("31W: Sunday the 31st (the last day) moves to Friday the 29th",  # October 2027
     "0 12 31W 10,12 *", {}, "2027-10-01T00:00", ["2027-10-29T12:00", "2027-12-31T12:00"]),
    ("31W: nothing in a 30-day month; Saturday the 31st moves to Friday",
     "0 12 31W * *", {}, "2027-04-01T00:00",
     ["2027-05-31T12:00", "2027-07-30T12:00", "2027-08-31T12:00", "2027-10-29T12:00"]),
    ("W does not avoid an excluded day: 15W is a holiday and does not fire",
     "0 12 15W 5 *", {"holiday": ["14.05.2027"]}, "2027-01-01T00:00", ["2028-05-15T12:00"]),
    ("LW: the last Monday-Friday of the month",
     "0 12 LW * *", {}, "2027-07-01T00:00",
     ["2027-07-30T12:00", "2027-08-31T12:00", "2027-09-30T12:00", "2027-10-29T12:00"]),
    ("1B: the first business day after a holiday and a weekend",
     "0 12 1B * *", {**WEEKEND, "holiday": ["01.01.2027"]}, "2027-01-01T00:00",
     ["2027-01-04T12:00", "2027-02-01T12:00", "2027-03-01T12:00"]),
    ("3B: counts business days only (May 2027 starts on a weekend)",
     "0 12 3B 5 *", WEEKEND, "2027-01-01T00:00", ["2027-05-05T12:00", "2028-05-03T12:00"]),
    ("23B: only in months with 23 business days",
     "0 12 23B * *", WEEKEND, "2027-01-01T00:00", ["2027-03-31T12:00", "2027-12-31T12:00"]),
    ("LB: the last business day, before a holiday on the last Friday",
     "0 12 LB * *", {**WEEKEND, "holiday": ["30.04.2027"]}, "2027-04-01T00:00",
     ["2027-04-29T12:00", "2027-05-31T12:00", "2027-06-30T12:00", "2027-07-30T12:00"]),
    ("LB without exclusions is the last day",
     "0 12 LB 2 *", {}, "2027-01-01T00:00", ["2027-02-28T12:00", "2028-02-29T12:00"]),
    ("LB-1: the business day before the last",
     "0 12 LB-1 * *", WEEKEND, "2027-07-01T00:00", ["2027-07-29T12:00", "2027-08-30T12:00"]),
    ("2B and LB in one list",
     "0 12 2B,LB * *", WEEKEND, "2027-01-01T00:00",
     ["2027-01-04T12:00", "2027-01-29T12:00", "2027-02-02T12:00", "2027-02-26T12:00"]),
    ("MON#1: the first Monday",
     "0 12 * * MON#1", {}, "2027-01-01T00:00",
     ["2027-01-04T12:00", "2027-02-01T12:00", "2027-03-01T12:00"]),
    ("5#5: only months with five Fridays",
     "0 12 * * 5#5", {}, "2027-01-01T00:00",
     ["2027-01-29T12:00", "2027-04-30T12:00", "2027-07-30T12:00"]),
    ("MON#5 in February: a leap February that starts on a Monday (2044)",
     "0 12 * 2 MON#5", {}, "2027-01-01T00:00", ["2044-02-29T12:00"]),
    ("FRIL: the last Friday",
     "0 12 * * FRIL", {}, "2027-01-01T00:00",
     ["2027-01-29T12:00", "2027-02-26T12:00", "2027-03-26T12:00"]),
    ("7L: the last Sunday (7 is Sunday)",
     "0 12 * * 7L", {}, "2027-01-01T00:00",
     ["2027-01-31T12:00", "2027-02-28T12:00", "2027-03-28T12:00"]),
    ("# and L ignore the exclusions: a last Friday that is a holiday does not fire",
     "0 12 * 4 5L", {"holiday": ["30.04.2027"]}, "2027-01-01T00:00", ["2028-04-28T12:00"]),
    ("Vixie: neither field starts with *, so L or the first Monday",
     "0 12 L * MON#1", {}, "2027-01-01T00:00",
     ["2027-01-04T12:00", "2027-01-31T12:00", "2027-02-01T12:00", "2027-02-28T12:00"]),
    ("Vixie: L or every Friday",
     "0 12 L * 5", {}, "2027-01-25T00:00",
     ["2027-01-29T12:00", "2027-01-31T12:00", "2027-02-05T12:00"]),
    ("Vixie: LB with a * day-of-week field is every last business day",
     "0 12 LB * *", WEEKEND, "2027-01-01T00:00", ["2027-01-29T12:00", "2027-02-26T12:00"]),
    ("Vixie: LB with a starred day of week must also be a Friday",
     "0 12 LB * */7,5", WEEKEND, "2027-01-01T00:00",
     ["2027-01-29T12:00", "2027-02-26T12:00", "2027-04-30T12:00"]),
    ("tokens beside plain values and ranges",
     "0 12 1,15,L * *", {}, "2027-02-10T00:00",
     ["2027-02-15T12:00", "2027-02-28T12:00", "2027-03-01T12:00"]),
    ("any case",
     "0 12 lw * *", {}, "2027-07-01T00:00", ["2027-07-30T12:00"]),
    ("an excluded L is skipped by default",
     "0 12 L * *", WEEKEND, "2027-07-01T00:00",
     ["2027-08-31T12:00", "2027-09-30T12:00", "2027-11-30T12:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "lists", "after", "expected"),
    [row[1:] for row in TOKENS],
    ids=[row[0] for row in TOKENS],
)
def test_day_tokens(
    expression: str, lists: dict[str, list[str]], after: str, expected: list[str]
) -> None:
    schedule = build(expression, lists=lists)
    assert first(schedule, after, len(expected)) == expected
    for instant in expected:
        assert schedule.explain_instant(utc(instant)).fires, instant


# --------------------------------------------------------------------------------------
# Shifting: (id, expression, zone, exclusions, onExcludedDay, maxShiftDays, window, after,
# expected instants)

SHIFTS: list[
    tuple[str, str, str, dict[str, list[str]], str, int, dict[str, str], str, list[str]]
] = [
    ("next: Saturday the 31st moves to Monday the 2nd, across the month end",
     "0 12 L * *", "UTC", WEEKEND, "NextBusinessDay", 7, {}, "2027-07-01T00:00",
     ["2027-08-02T12:00", "2027-08-31T12:00", "2027-09-30T12:00", "2027-11-01T12:00"]),
    ("previous: Saturday the 31st moves to Friday the 30th",
     "0 12 L * *", "UTC", WEEKEND, "PreviousBusinessDay", 7, {}, "2027-07-01T00:00",
     ["2027-07-30T12:00", "2027-08-31T12:00", "2027-09-30T12:00", "2027-10-29T12:00"]),
    ("previous: Saturday the 1st moves to Friday the 30th, across the month start",
     "0 12 1 * *", "UTC", WEEKEND, "PreviousBusinessDay", 7, {}, "2027-04-15T00:00",
     ["2027-04-30T12:00", "2027-06-01T12:00", "2027-07-01T12:00", "2027-07-30T12:00"]),
    ("next: across the year end, past a holiday week",
     "0 12 25 12 *", "UTC", {**WEEKEND, "holiday": [f"{d}.12.2027" for d in range(27, 32)]},
     "NextBusinessDay", 9, {}, "2027-12-01T00:00", ["2028-01-03T12:00", "2028-12-25T12:00"]),
    ("next: a business day 9 days away is beyond maxShiftDays 7: dropped",
     "0 12 25 12 *", "UTC", {**WEEKEND, "holiday": [f"{d}.12.2027" for d in range(27, 32)]},
     "NextBusinessDay", 7, {}, "2027-12-01T00:00", ["2028-12-25T12:00"]),
    ("next: maxShiftDays 1 reaches Sunday's Monday but not Saturday's",
     "0 12 * * 6,0", "UTC", WEEKEND, "NextBusinessDay", 1, {}, "2027-01-01T00:00",
     ["2027-01-04T12:00", "2027-01-11T12:00"]),
    ("next: Saturday's and Sunday's fires land on Monday's, and fire once",
     "0 12 * * *", "UTC", WEEKEND, "NextBusinessDay", 7, {}, "2027-01-08T13:00",
     ["2027-01-11T12:00", "2027-01-12T12:00"]),
    ("previous: two matched weekend days land on one Friday, once",
     "0 12 * * 6,0", "UTC", WEEKEND, "PreviousBusinessDay", 7, {}, "2027-01-01T13:00",
     ["2027-01-08T12:00", "2027-01-15T12:00"]),
    ("every time of day of the excluded date moves, at the same local times",
     "0 9,17 10 4 *", "UTC", WEEKEND, "NextBusinessDay", 7, {}, "2027-01-01T00:00",
     ["2027-04-12T09:00", "2027-04-12T17:00", "2028-04-10T09:00"]),
    ("next, across a DST change: Saturday's 03:30 lands on Sunday 28 March, in the gap "
     "(fixed time: the end of the gap, 04:00 EEST)",
     "30 3 * * 6", "Europe/Bucharest", {"weekly": ["Saturday"]}, "NextBusinessDay", 7, {},
     "2027-03-20T00:00", ["2027-03-21T01:30", "2027-03-28T01:00", "2027-04-04T00:30"]),
    ("previous, across the fall-back: Monday's 03:30 lands on Sunday 31 October, where it "
     "occurs twice (fixed time: the first, EEST)",
     "30 3 * * 1", "Europe/Bucharest", {"weekly": ["Monday"]}, "PreviousBusinessDay", 7, {},
     "2027-10-26T00:00", ["2027-10-31T00:30", "2027-11-07T01:30"]),
    ("the window is applied after the shift: a fire shifted out of it does not fire",
     "0 12 L * *", "UTC", WEEKEND, "NextBusinessDay", 7, {"end": "2027-07-31T23:59:59Z"},
     "2027-07-01T00:00", []),
    ("the window is applied after the shift: a fire shifted into it fires",
     "0 12 1 8 *", "UTC", WEEKEND, "PreviousBusinessDay", 7, {"start": "2027-07-30T00:00:00Z"},
     "2027-01-01T00:00", ["2027-07-30T12:00", "2028-08-01T12:00"]),
    ("the window is applied after the shift: a fire shifted before its start does not fire",
     "0 12 1 8 *", "UTC", WEEKEND, "PreviousBusinessDay", 7, {"start": "2027-08-01T00:00:00Z"},
     "2027-01-01T00:00", ["2028-08-01T12:00"]),
    ("a shifted fire lands on a business day whatever the cron fields say of it",
     "0 12 L 7 *", "UTC", WEEKEND, "NextBusinessDay", 7, {}, "2027-01-01T00:00",
     ["2027-08-02T12:00", "2028-07-31T12:00"]),
    ("B tokens are business days: nothing to shift",
     "0 12 LB * *", "UTC", {**WEEKEND, "holiday": ["30.04.2027"]}, "PreviousBusinessDay", 7,
     {}, "2027-04-01T00:00", ["2027-04-29T12:00", "2027-05-31T12:00"]),
    ("a run of holidays is stepped over",
     "0 12 14 4 *", "UTC", {"holiday": ["14.04.2027", "15.04.2027"]}, "NextBusinessDay", 7,
     {}, "2027-01-01T00:00", ["2027-04-16T12:00", "2028-04-14T12:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "zone", "lists", "shift", "max_shift", "window", "after", "expected"),
    [row[1:] for row in SHIFTS],
    ids=[row[0] for row in SHIFTS],
)
def test_shifting(
    expression: str,
    zone: str,
    lists: dict[str, list[str]],
    shift: str,
    max_shift: int,
    window: dict[str, str],
    after: str,
    expected: list[str],
) -> None:
    schedule = build(expression, zone, lists, shift, max_shift, **window)
    got = first(schedule, after, len(expected) + 1)
    assert got[: len(expected)] == expected
    if not expected:
        assert got == []
        assert isinstance(schedule.next_fire(utc(after)), NeverFires)
    for instant in expected:
        assert schedule.explain_instant(utc(instant)).fires, instant


def test_skip_is_the_default_and_loses_the_excluded_dates_fires() -> None:
    skip = build("0 12 L * *", lists=WEEKEND)
    assert first(skip, "2027-07-01T00:00", 1) == ["2027-08-31T12:00"]


# --------------------------------------------------------------------------------------
# Never fires: the proof covers the tokens and shifting


NEVER = [
    ("31W in February", "0 0 31W 2 *", {}, "Skip", 7, "NoSuchDate",
     '"0 0 31W 2 *" matches no date: February has no day 31W'),
    ("30 and L-29 in February", "0 0 30,L-29 2 *", {}, "Skip", 7, "NoSuchDate",
     "February has no day 30 or L-29"),
    ("25B with weekends excluded", "0 0 25B * *", WEEKEND, "Skip", 7, "NoSuchDate",
     '"0 0 25B * *" matches no date: no month has a day 25B (business days counted with '
     "the exclusions that repeat: a month has at most 23)"),
    ("every business day excluded", "0 0 LB * *", {"weekly": ["Mon", "Tue", "Wed", "Thu",
     "Fri", "Sat", "Sun"]}, "NextBusinessDay", 31, "NoSuchDate", "a month has at most 0"),
    ("the only matched days are excluded, Skip", "0 12 * * 6", {"weekly": ["Saturday"]},
     "Skip", 7, "EveryDayExcluded",
     'every date "0 12 * * 6" matches is excluded, by weekly "Saturday" '
     "(spec.exclusions.weekly[0])"),
    ("a shift too short to reach a business day", "0 12 * * 6", WEEKEND, "NextBusinessDay",
     1, "EveryDayExcluded",
     'every date "0 12 * * 6" matches is excluded, by weekly "Saturday" '
     "(spec.exclusions.weekly[0]), and none of them has a business day within 1 day after "
     "it (spec.onExcludedDay NextBusinessDay, spec.maxShiftDays)"),
    ("a shift the wrong way round", "0 12 * * 1", {"weekly": ["Sun", "Mon"]},
     "PreviousBusinessDay", 1, "EveryDayExcluded", "within 1 day before it"),
    ("every day of a month excluded by monthly days", "0 12 15 * *",
     {"monthly": [str(d) for d in range(1, 32)]}, "NextBusinessDay", 31, "EveryDayExcluded",
     "none of them has a business day within 31 days after it"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "lists", "shift", "max_shift", "reason", "message"),
    [row[1:] for row in NEVER],
    ids=[row[0] for row in NEVER],
)
@pytest.mark.timeout(10)
def test_never_fires(
    expression: str,
    lists: dict[str, list[str]],
    shift: str,
    max_shift: int,
    reason: str,
    message: str,
) -> None:
    schedule = build(expression, lists=lists, shift=shift, max_shift=max_shift)
    never = schedule.never_fires
    assert never is not None
    assert never.reason == reason
    assert message in never.message
    assert schedule.next_fire(utc("2027-01-01T00:00")) == never


def test_a_shift_long_enough_makes_it_fire() -> None:
    assert (
        build("0 12 * * 6", lists=WEEKEND, shift="NextBusinessDay", max_shift=2).never_fires is None
    )


@pytest.mark.timeout(10)
def test_holidays_that_swallow_every_shift_for_years_are_searched_past_quickly() -> None:
    # Every day of 2027-2029 a holiday: the first fire is the last day of January 2030.
    days = [date.fromordinal(n) for n in range(date(2027, 1, 1).toordinal(),
                                                date(2030, 1, 1).toordinal())]  # fmt: skip
    holidays = [f"{d.day:02d}.{d.month:02d}.{d.year}" for d in days]
    schedule = build("0 18 LB * *", lists={"holiday": holidays}, shift="PreviousBusinessDay")
    started = time.perf_counter()
    assert schedule.next_fire(utc("2027-01-01T00:00")) == utc("2030-01-31T18:00")
    assert time.perf_counter() - started < 2


# --------------------------------------------------------------------------------------
# Explanations


def test_a_shifted_fire_says_from_which_date_and_which_exclusion() -> None:
    schedule = build("0 12 10 * *", lists=WEEKEND, shift="NextBusinessDay")
    fire = next(f for f in schedule.timeline(utc("2027-04-01T00:00")) if isinstance(f, Fire))
    assert fire.instant == utc("2027-04-12T12:00")
    assert fire.reasons == (
        'shifted from Sat 2027-04-10 (weekly "Saturday", spec.exclusions.weekly[0])',
    )
    assert schedule.explain_day(date(2027, 4, 10)).message == (
        'Saturday 2027-04-10 is excluded by weekly "Saturday" (spec.exclusions.weekly[0]); its '
        "fires move to Mon 2027-04-12 (spec.onExcludedDay NextBusinessDay)"
    )
    day = schedule.explain_day(date(2027, 4, 12))
    assert day.fires
    assert day.message == (
        "Monday 2027-04-12 fires at 12:00 (2027-04-12T12:00:00Z); shifted from Sat 2027-04-10 "
        '(weekly "Saturday", spec.exclusions.weekly[0])'
    )
    instant = schedule.explain_instant(utc("2027-04-12T12:00"))
    assert instant.fires and "shifted from Sat 2027-04-10" in instant.message


def test_a_shift_names_the_calendar_that_excluded_the_date() -> None:
    exclusions = Exclusions.parse(
        source=calendar_source("ro-bank-holidays"), path="spec", holiday=["01.05.2028"]
    )
    schedule = Schedule.build(
        "0 12 1 5 *", exclusions=exclusions, on_excluded_day="PreviousBusinessDay"
    )
    fire = next(f for f in schedule.timeline(utc("2028-01-01T00:00")) if isinstance(f, Fire))
    assert fire.reasons == (
        'shifted from Mon 2028-05-01 (holiday "01.05.2028", Calendar ro-bank-holidays, '
        "spec.holiday[0])",
    )


def test_a_token_match_says_what_the_token_picked() -> None:
    schedule = build("0 18 LB * *", "Europe/Bucharest", {**WEEKEND, "holiday": ["30.04.2027"]})
    fire = next(f for f in schedule.timeline(utc("2027-04-01T00:00")) if isinstance(f, Fire))
    assert fire.reasons == ("last business day of April 2027",)
    assert schedule.explain_day(date(2027, 4, 30)).message == (
        '"0 18 LB * *" does not match Friday 2027-04-30 (day-of-month), which is excluded by '
        'holiday "30.04.2027" (spec.exclusions.holiday[0])'
    )
    assert schedule.explain_day(date(2027, 4, 28)).message == (
        '"0 18 LB * *" does not match Wednesday 2027-04-28 (day-of-month)'
    )


LABELS = [
    ("0 12 L * *", "2027-01-31", "last day of January 2027"),
    ("0 12 L-2 * *", "2027-01-29", "2 days before the last day of January 2027"),
    ("0 12 L-1 * *", "2027-01-30", "1 day before the last day of January 2027"),
    ("0 12 15W * *", "2027-05-14", "weekday nearest day 15 of May 2027"),
    ("0 12 LW * *", "2027-07-30", "last weekday of July 2027"),
    ("0 12 2B * *", "2027-05-04", "2nd business day of May 2027"),
    ("0 12 LB-1 * *", "2027-07-29", "2nd-to-last business day of July 2027"),
    ("0 12 * * MON#2", "2027-04-12", "2nd Monday of April 2027"),
    ("0 12 * * FRIL", "2027-04-30", "last Friday of April 2027"),
]


@pytest.mark.parametrize(("expression", "day", "label"), LABELS)
def test_token_labels(expression: str, day: str, label: str) -> None:
    schedule = build(expression, lists=WEEKEND if "B" in expression else {})
    local = date.fromisoformat(day)
    fire = next(
        f
        for f in schedule.timeline(utc(f"{day}T00:00"))
        if isinstance(f, Fire) and f.local.date() == local
    )
    assert fire.reasons == (label,)


def test_a_dropped_shift_says_no_business_day_was_near_enough() -> None:
    lists = {**WEEKEND, "holiday": ["01.01.2027"]}
    schedule = build("0 12 1 * *", lists=lists, shift="NextBusinessDay", max_shift=2)
    items = list(itertools.islice(schedule.timeline(utc("2026-12-31T00:00")), 2))
    assert items[0] == SkippedDay(
        date(2027, 1, 1),
        schedule.exclusions.explain(date(2027, 1, 1)),
        "no fire: no business day within 2 days after Fri 2027-01-01",
    )
    assert isinstance(items[1], Fire) and items[1].instant == utc("2027-02-01T12:00")
    assert schedule.explain_day(date(2027, 1, 1)).message == (
        'Friday 2027-01-01 is excluded by holiday "01.01.2027" (spec.exclusions.holiday[0]); '
        "no fire: no business day within 2 days after Fri 2027-01-01"
    )


def test_plain_fires_have_no_reasons() -> None:
    schedule = build("30 2 * * 1-5", lists=WEEKEND)
    fire = next(f for f in schedule.timeline(utc("2027-01-01T00:00")) if isinstance(f, Fire))
    assert fire.reasons == ()


# --------------------------------------------------------------------------------------
# The engine stays fast: business days are counted per month and cached


def test_a_year_of_last_business_days_with_a_previous_shift_is_quick() -> None:
    holidays: dict[str, Any] = {
        **WEEKEND,
        "holiday": [f"{d:02d}.{m:02d}.2027" for m in range(1, 13) for d in (1, 28)][:20],
    }
    schedule = build("0 18 L,LB * *", "Europe/Bucharest", holidays, "PreviousBusinessDay")
    started = time.perf_counter()
    fires = list(itertools.islice(schedule.fires(utc("2027-01-01T00:00")), 12))
    assert len(fires) == 12
    assert time.perf_counter() - started < 0.5


# --------------------------------------------------------------------------------------
# The operator's decision fires shifted and token-matched instants like any other


def job_body(schedule: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("timeZone", "UTC")
    body = scheduled_job("biz", schedule, services=[service("main")], **spec)
    body["metadata"].update(
        namespace="team", uid="uid-1", generation=1, creationTimestamp="2027-04-01T00:00:00Z"
    )
    return body


def ready(status: dict[str, Any]) -> dict[str, Any]:
    [condition] = [c for c in status["conditions"] if c["type"] == "Ready"]
    return condition


def test_the_decision_schedules_and_starts_a_shifted_fire() -> None:
    body = job_body("0 12 10 4 *", exclusions=WEEKEND, onExcludedDay="NextBusinessDay")
    before = decide_job(body, [], {}, utc("2027-04-05T00:00"))
    assert before.status["nextScheduleTime"] == "2027-04-12T12:00:00Z"
    assert before.wake_at == utc("2027-04-12T12:00")
    due = decide_job(body, [], {}, utc("2027-04-12T12:00:01"))
    [create] = due.creates
    assert create.body["spec"]["scheduledTime"] == "2027-04-12T12:00:00Z"
    assert due.fired == utc("2027-04-12T12:00")


def test_a_never_firing_token_is_not_ready_with_the_reason() -> None:
    plan = decide_job(job_body("0 0 31W 2 *"), [], {}, utc("2027-04-05T00:00"))
    condition = ready(plan.status)
    assert (condition["status"], condition["reason"]) == ("False", "NoSuchDate")
    assert "February has no day 31W" in condition["message"]
    assert [e.reason for e in plan.events] == ["NeverFires"]


def test_a_shift_too_short_is_not_ready_with_the_reason() -> None:
    body = job_body(
        "0 12 * * 6", exclusions=WEEKEND, onExcludedDay="NextBusinessDay", maxShiftDays=1
    )
    condition = ready(decide_job(body, [], {}, utc("2027-04-05T00:00")).status)
    assert (condition["status"], condition["reason"]) == ("False", "EveryDayExcluded")
    assert "within 1 day after it" in condition["message"]


EDGES: list[tuple[str, dict[str, Any]]] = [
    ("0 0 31B * *", {}),
    ("0 0 LB-30 * *", {}),
    ("0 0 L-30 2 *", {}),
    ("0 0 * * 0#5,7L", {}),
    ("* * LB * *", {"onExcludedDay": "PreviousBusinessDay", "maxShiftDays": 31}),
    ("* * * * *", {"exclusions": {"monthly": [str(d) for d in range(1, 32)]},
                   "onExcludedDay": "NextBusinessDay", "maxShiftDays": 31}),
    ("0 0 1W,15W,LW,1B,LB,L * MON#1,FRIL", {"exclusions": {"weekly": ["Sat", "Sun"]},
                                             "onExcludedDay": "NextBusinessDay"}),
    ("0 0 29 2 *", {"exclusions": {"holiday": [f"01.03.{y}" for y in range(1970, 2201)]},
                    "onExcludedDay": "PreviousBusinessDay", "maxShiftDays": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "spec"), EDGES, ids=[e[0] for e in EDGES])
def test_extreme_business_day_jobs_are_decided_quickly(
    expression: str, spec: dict[str, Any]
) -> None:
    body = job_body(expression, **spec)
    started = time.perf_counter()
    plan = decide_job(body, [], {}, utc("2027-04-05T00:00"))
    assert time.perf_counter() - started < 1.0
    assert ready(plan.status)["status"] in ("True", "False")


def test_business_days_count_a_countrys_holidays_from_a_calendar() -> None:
    """With a Calendar of Romania's public holidays (issue 17): 30 April 2027 is Orthodox
    Good Friday and 30 November St Andrew's day, so the last business days are the 29th."""
    from almanac.api.models import Calendar, ScheduledJob

    cal = Calendar.parse(
        {"kind": "Calendar", "metadata": {"name": "ro"}, "spec": {"holidays": [{"country": "RO"}]}}
    )
    body = job_body(
        "0 18 L * *",
        timeZone="Europe/Bucharest",
        exclusions=WEEKEND,
        calendarRefs=[{"name": "ro"}],
        onExcludedDay="PreviousBusinessDay",
    )
    schedule = ScheduledJob.parse(body).spec.build_schedule({"ro": cal})
    after = "2027-04-01T00:00"
    fires = [f for f in first_fires(schedule.timeline(utc(after)), 8) if isinstance(f, Fire)]
    assert fires[0].instant == utc("2027-04-29T15:00")
    assert fires[0].reasons[0].startswith("shifted from Fri 2027-04-30, last day of April 2027 (")
    assert "Calendar ro, spec.holidays[0]" in fires[0].reasons[0]
    november = next(f for f in fires if f.local.month == 11)
    assert november.instant == utc("2027-11-29T16:00")
    body["spec"]["schedule"] = "0 18 LB * *"
    lb = ScheduledJob.parse(body).spec.build_schedule({"ro": cal})
    assert first(lb, after, 1) == ["2027-04-29T15:00"]
