"""Next-fire computation: the Almanac engine (zone, exclusions, DST rule) against bare
croniter ``get_next`` on the same expressions.

Run with ``.venv/bin/pytest tests/benchmarks --benchmark-only`` (the project's addopts
skip benchmarks by default). Two shapes per expression:

* ``next``: one next fire from a fixed instant, the schedule already built (what the
  operator does after each fire); for croniter, a ``croniter(expr, start)`` plus one
  ``get_next`` (croniter keeps its position in the object, so it must be rebuilt).
* ``iterate``: the next 100 fires; for croniter, 100 ``get_next`` calls on one object.

croniter runs in the same zone but knows nothing of exclusions; the engine carries the
Romanian bank holidays of 2027, weekends, and two annual dates, so its answer is what the
operator needs and croniter's is not.

Business days (issue 15): the next fire of ``0 18 LB * *`` (the last business day at
18:00) with ``onExcludedDay: PreviousBusinessDay`` and twenty holidays must stay within
3x the plain figure (``30 2 * * 1-5``, the same exclusions): ``test_almanac_next_business``
measures it beside the others (``make bench``; a ratio of timings is a figure to report,
not a test that a busy machine could fail).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from almanac.schedule.engine import Schedule
from almanac.schedule.exclusions import Exclusions, calendar_source

ZONE = "Europe/Bucharest"
AFTER = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)  # a week before the spring-forward
EXPRESSIONS = {
    "business-days": "30 2 * * 1-5",
    "every-15-min": "*/15 * * * *",
    "hourly": "@hourly",
    "month-end": "0 18 28-31 * *",
    "feb-29": "0 0 29 2 *",
}
EXCLUSIONS = Exclusions.parse(annual=["25.12", "01.01"], weekly=["Saturday", "Sunday"]) + (
    Exclusions.parse(
        source=calendar_source("ro-bank-holidays"),
        path="spec",
        holiday=[
            "01.01.2027", "02.01.2027", "06.01.2027", "07.01.2027", "24.01.2027",
            "30.04.2027", "01.05.2027", "02.05.2027", "03.05.2027", "01.06.2027",
            "20.06.2027", "21.06.2027", "15.08.2027", "30.11.2027", "01.12.2027",
            "25.12.2027", "26.12.2027",
        ],
    )
)  # fmt: skip


# Three more, for twenty holidays: the business-day case of issue 15.
TWENTY_HOLIDAYS = EXCLUSIONS + Exclusions.parse(
    source=calendar_source("company"),
    path="spec",
    holiday=["31.03.2027", "30.06.2027", "31.12.2027"],
)
BUSINESS = {
    "last-business-day": ("0 18 LB * *", "PreviousBusinessDay"),
    "last-day-shifted": ("0 18 L * *", "PreviousBusinessDay"),
}


def schedule(expression: str) -> Schedule:
    return Schedule.build(expression, time_zone=ZONE, exclusions=EXCLUSIONS)


def business_schedule(name: str) -> Schedule:
    expression, shift = BUSINESS[name]
    return Schedule.build(
        expression, time_zone=ZONE, exclusions=TWENTY_HOLIDAYS, on_excluded_day=shift
    )


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_almanac_next(benchmark: Callable[..., object], name: str) -> None:
    built = schedule(EXPRESSIONS[name])
    result = benchmark(built.next_fire, AFTER)
    assert isinstance(result, datetime)


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_croniter_next(benchmark: Callable[..., object], name: str) -> None:
    start = AFTER.astimezone(ZoneInfo(ZONE))

    def next_fire() -> datetime:
        value: datetime = croniter(EXPRESSIONS[name], start).get_next(datetime)
        return value

    assert isinstance(benchmark(next_fire), datetime)


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_almanac_iterate_100(benchmark: Callable[..., object], name: str) -> None:
    built = schedule(EXPRESSIONS[name])

    def hundred() -> list[datetime]:
        return list(itertools.islice(built.fires(AFTER), 100))

    assert len(benchmark(hundred)) == 100  # type: ignore[arg-type]


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_croniter_iterate_100(benchmark: Callable[..., object], name: str) -> None:
    start = AFTER.astimezone(ZoneInfo(ZONE))

    def hundred() -> list[datetime]:
        it = croniter(EXPRESSIONS[name], start)
        return [it.get_next(datetime) for _ in range(100)]

    assert len(benchmark(hundred)) == 100  # type: ignore[arg-type]


def test_almanac_build(benchmark: Callable[..., object]) -> None:
    """Building a schedule (parse, zone, exclusions, never-fires check): once per change."""
    assert benchmark(schedule, "30 2 * * 1-5").never_fires is None  # type: ignore[attr-defined]


def test_almanac_never_fires_answer(benchmark: Callable[..., object]) -> None:
    """Every weekday excluded: the answer is immediate."""
    built = Schedule.build(
        "0 9 * * *",
        exclusions=Exclusions.parse(weekly=["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    )
    assert benchmark(built.next_fire, AFTER).reason == "EveryDayExcluded"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", BUSINESS)
def test_almanac_next_business(benchmark: Callable[..., object], name: str) -> None:
    """LB (or L shifted back) with a Previous shift and twenty holidays: per month, cached."""
    built = business_schedule(name)
    result = benchmark(built.next_fire, AFTER)
    assert isinstance(result, datetime)


@pytest.mark.parametrize("name", BUSINESS)
def test_almanac_iterate_100_business(benchmark: Callable[..., object], name: str) -> None:
    built = business_schedule(name)

    def hundred() -> list[datetime]:
        return list(itertools.islice(built.fires(AFTER), 100))

    assert len(benchmark(hundred)) == 100  # type: ignore[arg-type]
