"""Property tests: the engine agrees with the brute-force oracle (tests/unit/oracle.py).

Random cron expressions (names, steps, ranges, lists, ``?``, 7 for Sunday), zones with
every kind of offset change (DST north and south, 30- and 45-minute offsets, changes at
midnight, a fall-back across midnight, a skipped day), exclusions from several sources,
windows with and without offsets, and start points mostly next to an offset change.
Business days: expressions with the day tokens (``L``, ``L-n``, ``nW``, ``LW``, ``nB``,
``LB``, ``LB-n``, ``d#k``, ``dL``) among plain values, and shifts (``onExcludedDay``, with
``maxShiftDays`` mostly small so that it runs out), around offset changes and over years.

``ALMANAC_PROPERTY_EXAMPLES`` sets the number of examples per test (default 1500, which
keeps the unit suite near a minute on two cores); e.g. 20000 for a long run.
"""

from __future__ import annotations

import calendar
import itertools
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from almanac.errors import InvalidSpec
from almanac.schedule.engine import NeverFires, Schedule
from almanac.schedule.exclusions import Exclusions, calendar_source
from tests.unit.oracle import (
    EVERY_KIND_OF_YEAR,
    MINUTE,
    OracleCron,
    OracleExclusions,
    OracleSchedule,
    transitions,
)

EXAMPLES = int(os.environ.get("ALMANAC_PROPERTY_EXAMPLES", "1500"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

DST_ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Bucharest",
    "Europe/London",
    "Australia/Sydney",  # southern
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30, changes at 00:01 until 2011
    "America/Sao_Paulo",  # changes at midnight until 2019
    "America/Havana",  # changes at midnight / 01:00
    "America/Goose_Bay",  # fall-back from 00:01 to 23:01 the day before (until 2010)
    "Antarctica/Casey",  # +08 <-> +11: falls back three hours across midnight
    "Antarctica/Troll",  # +00 / +02
    "Pacific/Apia",  # skipped 2011-12-30 entirely
]
FIXED_ZONES = ["UTC", "Asia/Kolkata", "Asia/Tokyo", "Etc/GMT+5", "Asia/Kathmandu"]
WEEKDAY_SPELLINGS = [
    "Monday", "mon", "TUE", "tuesday", "Wed", "WEDNESDAY", "thu", "Thursday",
    "fri", "FRIDAY", "Sat", "saturday", "sun", "Sunday",
]  # fmt: skip


# --------------------------------------------------------------------------------------
# Strategies


@st.composite
def field(
    draw: st.DrawFn,
    low: int,
    high: int,
    *,
    star: bool | None = None,
    names: list[str] | None = None,
    likely: list[int] | None = None,
) -> str:
    """A cron field; ``star`` True: starts with ``*``, False: does not, None: either."""

    def number() -> int:
        if likely and draw(st.integers(0, 3)):
            return draw(st.sampled_from(likely))
        return draw(st.integers(low, high))

    def value(v: int) -> str:
        if names and draw(st.integers(0, 3)) == 0:
            name = names[v - 1] if low == 1 else names[v % 7]  # months 1-12, days 0-7
            return draw(st.sampled_from([name, name.lower(), name.capitalize()]))
        return str(v)

    def starred() -> str:
        if draw(st.booleans()):
            return "*"
        return f"*/{draw(st.integers(1, max(1, (high - low) // 2)))}"

    def plain() -> str:
        kind = draw(st.integers(0, 4))
        a = number()
        if kind <= 1:
            return value(a)
        b = draw(st.integers(a, min(high, a + draw(st.integers(0, high - low)))))
        if kind == 2:
            return f"{value(a)}-{value(b)}"
        if kind == 3:
            return f"{value(a)}-{value(b)}/{draw(st.integers(1, 10))}"
        return f"{value(a)}/{draw(st.integers(1, 20))}"

    if star is None:
        star = draw(st.booleans())
    items = [starred() if star else plain()]
    items += [draw(st.sampled_from([plain, starred]))() for _ in range(draw(st.integers(0, 2)))]
    return ",".join(items)


MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def cron(draw: st.DrawFn, *, dense: bool, hours: tuple[int, ...] = (0, 1, 2, 3, 4, 23)) -> str:
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from(["@yearly", "@annually", "@monthly", "@weekly", "@daily",
                                     "@midnight", "@hourly"]))  # fmt: skip
    # Fixed-time and wildcard expressions about equally often.
    minute_star, hour_star = draw(
        st.sampled_from(
            [(False, False), (False, False), (True, False), (False, True), (True, True)]
        )
    )
    minute = draw(field(0, 59, star=minute_star, likely=[0, 1, 15, 29, 30, 45, 59]))
    hour = draw(field(0, 23, star=hour_star, likely=list(hours)))
    p = 6 if dense else 2  # 1 in p: a restricted day field
    dom = "*" if draw(st.integers(1, p)) > 1 else draw(field(1, 31, likely=[1, 28, 29, 30, 31]))
    month = "*" if draw(st.integers(1, 2 * p)) > 1 else draw(field(1, 12, names=MONTH_NAMES))
    dow = "*" if draw(st.integers(1, p)) > 1 else draw(field(0, 7, names=DAY_NAMES))
    if dom == "*" and draw(st.integers(0, 5)) == 0:
        dom = "?"
    elif dow == "*" and draw(st.integers(0, 5)) == 0:
        dow = "?"
    return f"{minute} {hour} {dom} {month} {dow}"


def _number_or_name(draw: st.DrawFn) -> str:
    d = draw(st.integers(0, 7))
    return DAY_NAMES[d % 7] if draw(st.booleans()) else str(d)


@st.composite
def dom_token(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 6))
    small = st.integers(1, 3) | st.integers(1, 31)
    if kind == 0:
        return "L"
    if kind == 1:
        return f"L-{draw(st.integers(1, 3) | st.integers(1, 30))}"
    if kind == 2:
        return f"{draw(st.sampled_from([1, 15, 28, 29, 30, 31]) | small)}W"
    if kind == 3:
        return draw(st.sampled_from(["LW", "lw"]))
    if kind == 4:
        return f"{draw(st.integers(1, 3) | st.integers(1, 31))}B"
    if kind == 5:
        return "LB"
    return f"LB-{draw(st.integers(1, 3) | st.integers(1, 30))}"


@st.composite
def dow_token(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return f"{_number_or_name(draw)}#{draw(st.integers(1, 5))}"
    return f"{_number_or_name(draw)}L"


@st.composite
def token_cron(draw: st.DrawFn, *, hours: tuple[int, ...] = (0, 1, 2, 3, 4, 23)) -> str:
    """An expression with day tokens in one or both day fields, among plain values."""
    plain = draw(cron(dense=True, hours=hours))
    if plain.startswith("@"):
        plain = "0 0 * * *"
    minute, hour, dom, month, dow = plain.split()
    where = draw(st.sampled_from(["dom", "dom", "dow", "both"]))
    if where in ("dom", "both"):
        items = draw(st.lists(dom_token(), min_size=1, max_size=3))
        if draw(st.integers(0, 3)) == 0 and dom not in ("*", "?"):
            items.append(dom)
        dom = ",".join(items)
    if where in ("dow", "both"):
        items = draw(st.lists(dow_token(), min_size=1, max_size=2))
        if draw(st.integers(0, 3)) == 0 and dow not in ("*", "?"):
            items.append(dow)
        dow = ",".join(items)
    if draw(st.integers(0, 3)) == 0:  # a * in the other field: the Vixie AND
        dom, dow = (dom, "*") if where == "dom" else ("*", dow) if where == "dow" else (dom, dow)
    return f"{minute} {hour} {dom} {month} {dow}"


@st.composite
def shift(draw: st.DrawFn) -> tuple[str, int]:
    """(onExcludedDay, maxShiftDays): Skip a third of the time; shifts mostly short."""
    on = draw(st.sampled_from(["Skip", "NextBusinessDay", "PreviousBusinessDay"]))
    return on, draw(st.integers(1, 3) | st.integers(1, 31))


@dataclass
class Case:
    expression: str
    zone: str
    after: datetime
    own: dict[str, Any]  # the four lists, as keyword arguments of Exclusions.parse
    calendars: list[dict[str, Any]]
    start: str | None
    end: str | None
    shift: tuple[str, int] = ("Skip", 7)  # onExcludedDay, maxShiftDays

    def engine(self) -> Schedule:
        exclusions = Exclusions.parse(**self.own)
        for i, lists in enumerate(self.calendars):
            exclusions += Exclusions.parse(
                source=calendar_source(f"c{i}"),
                path="spec",
                **lists,
            )
        try:
            return Schedule.build(
                self.expression,
                time_zone=self.zone,
                start_time=self.start,
                end_time=self.end,
                exclusions=exclusions,
                on_excluded_day=self.shift[0],
                max_shift_days=self.shift[1],
            )
        except InvalidSpec:
            assume(False)  # endTime before startTime: a validation case, not this one
            raise

    def oracle(self) -> OracleSchedule:
        merged: dict[str, list[str]] = {"annual": [], "monthly": [], "weekly": [], "holiday": []}
        for lists in [self.own, *self.calendars]:
            for kind, entries in lists.items():
                merged[kind] += entries
        return OracleSchedule(
            OracleCron.parse(self.expression),
            ZoneInfo(self.zone),
            OracleExclusions.from_lists(**merged),
            start=None if self.start is None else _moment(self.start),
            end=None if self.end is None else _moment(self.end),
            shift=self.shift[0],
            max_shift=self.shift[1],
        )


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@st.composite
def exclusion_lists(draw: st.DrawFn, around: datetime) -> dict[str, list[str]]:
    near = st.integers(-3, 3).map(lambda d: (around + timedelta(days=d)).date())

    def some(items: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(items, max_size=2)) if draw(st.integers(0, 2)) == 0 else []

    annual = [f"{d.day:02d}.{d.month:02d}" for d in some(near)] + [
        f"{d:02d}.{m:02d}" for d, m in some(st.tuples(st.integers(1, 28), st.integers(1, 12)))
    ]
    if draw(st.integers(0, 9)) == 0:
        annual.append("29.02")
    return {
        "annual": annual,
        "monthly": [f"{d:02d}" for d in some(st.integers(1, 31))],
        "weekly": some(st.sampled_from(WEEKDAY_SPELLINGS)),
        "holiday": [f"{d.day:02d}.{d.month:02d}.{d.year}" for d in some(near)],
    }


@st.composite
def window_end(draw: st.DrawFn, around: datetime, zone: str) -> str | None:
    if draw(st.integers(0, 3)):
        return None
    moment = around + timedelta(minutes=draw(st.integers(-36 * 60, 48 * 60)))
    if draw(st.booleans()):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")  # naive: local


@st.composite
def dst_cases(draw: st.DrawFn, *, tokens: bool = False) -> Case:
    zone = draw(st.sampled_from(DST_ZONES))
    year = draw(st.integers(1990, 2040))
    changes = transitions(zone, year)
    hours: tuple[int, ...] = (0, 1, 2, 3, 4, 23)
    near_a_change: bool = draw(st.integers(0, 9)) > 0
    if changes and near_a_change:
        change = draw(st.sampled_from(changes))
        # Mostly the local hours on both sides of the change: where gaps and overlaps are.
        hours = tuple({(change + d).astimezone(ZoneInfo(zone)).hour for d in (-MINUTE, MINUTE)})
        after = change + timedelta(minutes=draw(st.integers(-38 * 60, 2 * 60)))
    else:
        after = datetime(year, 1, 1, tzinfo=UTC) + timedelta(
            minutes=draw(st.integers(0, 365 * 24 * 60))
        )
    after += timedelta(seconds=draw(st.sampled_from([0, 0, 30])))
    calendars = draw(st.lists(exclusion_lists(after), max_size=2))
    if tokens:
        expression = draw(st.one_of(token_cron(hours=hours), cron(dense=True, hours=hours)))
    else:
        expression = draw(cron(dense=True, hours=hours))
    return Case(
        expression=expression,
        zone=zone,
        after=after,
        own=draw(exclusion_lists(after)),
        calendars=calendars,
        start=draw(window_end(after, zone)),
        end=draw(window_end(after, zone)),
        shift=draw(shift()) if tokens else ("Skip", 7),
    )


# --------------------------------------------------------------------------------------
# Properties


@SETTINGS
@given(case=dst_cases())
def test_fires_agree_with_the_oracle_around_offset_changes(case: Case) -> None:
    schedule = case.engine()
    until = case.after + timedelta(hours=40)
    expected = case.oracle().fires_between(case.after, until)
    got = list(itertools.takewhile(lambda x: x <= until, schedule.fires(case.after)))
    assert got == expected
    for x in expected[:3]:
        assert schedule.explain_instant(x).fires, x
    for x in got[:3]:
        if x - timedelta(minutes=1) > case.after and x - timedelta(minutes=1) not in expected:
            assert not schedule.explain_instant(x - timedelta(minutes=1)).fires


@st.composite
def long_cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(FIXED_ZONES))
    after = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 400 * 365 * 24 * 60))
    )
    own = draw(exclusion_lists(after))
    if draw(st.integers(0, 3)) == 0:  # many weekdays excluded, sometimes all
        own["weekly"] += draw(st.lists(st.sampled_from(WEEKDAY_SPELLINGS), min_size=4))
    end = None
    if draw(st.integers(0, 4)) == 0:
        end = (after + timedelta(days=draw(st.integers(-30, 3000)))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Case(
        expression=draw(cron(dense=False)),
        zone=zone,
        after=after,
        own=own,
        calendars=draw(st.lists(exclusion_lists(after), max_size=1)),
        start=None,
        end=end,
    )


YEARS = 30


@SETTINGS
@given(case=long_cases())
def test_sparse_schedules_and_never_firing_agree_with_the_oracle(case: Case) -> None:
    schedule = case.engine()
    oracle = case.oracle()
    got = list(itertools.islice(schedule.fires(case.after), 3))
    expected = oracle.day_walk_fires(case.after, 3, YEARS)
    assert got[: len(expected)] == expected
    if len(expected) < 3 and len(got) > len(expected):
        # Beyond the oracle's walk: only later than it looked.
        assert got[len(expected)] > case.after + timedelta(days=365 * YEARS)
    never = schedule.never_fires
    assert (never is None) == oracle.can_ever_match()
    if not got:
        assert isinstance(schedule.next_fire(case.after), NeverFires)


# --------------------------------------------------------------------------------------
# Business days and shifts (docs/api.md "Business days and day tokens", "Shifting")

BUSINESS_SETTINGS = settings(SETTINGS, max_examples=max(1, EXAMPLES // 2))


@BUSINESS_SETTINGS
@given(case=dst_cases(tokens=True))
def test_business_day_fires_agree_with_the_oracle_around_offset_changes(case: Case) -> None:
    """Tokens and shifts where the DST rule applies on the day a fire lands on."""
    schedule = case.engine()
    until = case.after + timedelta(hours=40)
    expected = case.oracle().fires_between(case.after, until)
    got = list(itertools.takewhile(lambda x: x <= until, schedule.fires(case.after)))
    assert got == expected
    for x in expected[:3]:
        assert schedule.explain_instant(x).fires, x


@st.composite
def business_cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(FIXED_ZONES))
    after = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 110 * 365 * 24 * 60))
    )
    own = draw(exclusion_lists(after))
    if draw(st.integers(0, 2)) == 0:  # a weekend, sometimes more
        own["weekly"] += ["Saturday", "Sunday"]
        own["weekly"] += draw(st.lists(st.sampled_from(WEEKDAY_SPELLINGS), max_size=5))
    if draw(st.integers(0, 2)) == 0:  # a run of holidays: shifts run out, B counts move
        first = after.date() + timedelta(days=draw(st.integers(-5, 40)))
        own["holiday"] += [
            f"{d.day:02d}.{d.month:02d}.{d.year}"
            for d in (first + timedelta(days=i) for i in range(draw(st.integers(1, 12))))
        ]
    end = None
    if draw(st.integers(0, 4)) == 0:
        end = (after + timedelta(days=draw(st.integers(-30, 900)))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Case(
        expression=draw(token_cron()),
        zone=zone,
        after=after,
        own=own,
        calendars=draw(st.lists(exclusion_lists(after), max_size=1)),
        start=None,
        end=end,
        shift=draw(shift()),
    )


BUSINESS_YEARS = 3


@settings(SETTINGS, max_examples=max(1, EXAMPLES // 3))
@given(case=business_cases())
def test_business_day_schedules_agree_with_a_walk_of_dates(case: Case) -> None:
    """Every token and both shift directions, over years: month ends, leap years, runs of
    holidays longer than the shift, windows; and the never-fires proof."""
    schedule = case.engine()
    oracle = case.oracle()
    got = list(itertools.islice(schedule.fires(case.after), 4))
    expected = oracle.day_walk_fires(case.after, 4, BUSINESS_YEARS)
    assert got[: len(expected)] == expected
    if len(expected) < 4 and len(got) > len(expected):
        assert got[len(expected)] > case.after + timedelta(days=365 * BUSINESS_YEARS)
    never = schedule.never_fires
    assert (never is None) == oracle.can_ever_fire()
    if not got:
        assert isinstance(schedule.next_fire(case.after), NeverFires)
    for x in got[:2]:
        assert schedule.explain_instant(x).fires, x


def test_every_kind_of_year_is_in_2001_to_2028() -> None:
    """What the never-fires walks of the oracle and the engine rest on: each year of the
    400-year cycle has the kind (leap or not, weekday of 1 January) of one of 2001-2028;
    the kind fixes its months and the December before and the January after."""

    def kind(year: int) -> tuple[bool, int]:
        return calendar.isleap(year), date(year, 1, 1).weekday()

    first, stop = EVERY_KIND_OF_YEAR
    kinds = {kind(y) for y in range(first.year, stop.year)}
    assert len(kinds) == 14
    assert {kind(y) for y in range(2001, 2401)} == kinds
