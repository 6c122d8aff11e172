"""Which local dates a schedule may fire on: its cron day and month fields, minus exclusions.

Where it sits: above :mod:`almanac.schedule.cron` and :mod:`almanac.schedule.exclusions`,
which it imports (and nothing else of Almanac), below :mod:`almanac.schedule.explain` and
:mod:`almanac.schedule.engine`, which ask it for the dates in a range. Dates are day
ordinals (``date.toordinal()``) in the schedule's zone; it knows nothing of zones, times
of day or windows.

Days, not minutes. Candidate local dates are found month by month; which days of a month
match the cron day fields and survive the periodic exclusions depends only on the month,
its length and the weekday it starts on, so that is computed once per shape (at most
12 x 2 x 7 shapes) and cached. The same shapes tell, without scanning any year, when no
date can ever fire (:meth:`CandidateDays.never_left`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from almanac.schedule.cron import CronExpression
from almanac.schedule.exclusions import ExclusionKind, ExclusionRule, Exclusions

__all__ = ["CandidateDays"]

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_LENGTHS = {m: ((28, 29) if m == 2 else (_DAYS_IN_MONTH[m],)) for m in range(1, 13)}


class CandidateDays:
    """The local dates a cron expression's month and day fields match and that no
    exclusion removes, month by month, with each month shape computed once."""

    __slots__ = ("_cron", "_exclusions", "_shapes")

    def __init__(self, cron: CronExpression, exclusions: Exclusions) -> None:
        self._cron = cron
        self._exclusions = exclusions
        self._shapes: dict[tuple[int, int, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def between(
        self, first: int, last: int, *, excluded: bool = False, holidays: bool = True
    ) -> Iterator[int]:
        """Ordinals in [first, last] of the local dates the cron day fields match and that
        are not excluded (with ``excluded``: that are excluded), in order. Without
        ``holidays``, holidays are not exclusions (only the periodic lists are)."""
        start = date.fromordinal(first)
        year, month = start.year, start.month
        months = self._cron.months
        while year <= 9999:
            month_start = date(year, month, 1).toordinal()
            if month_start > last:
                return
            if month in months:
                days = _month_days(year, month)
                matching, allowed = self._shape(month, days, month_start % 7)
                off = self._exclusions.holidays_in(year, month) if holidays else frozenset()
                if excluded:
                    for d in matching:
                        n = month_start + d - 1
                        if first <= n <= last and (d not in allowed or d in off):
                            yield n
                else:
                    for d in allowed:
                        n = month_start + d - 1
                        if n < first or d in off:
                            continue
                        if n > last:
                            return
                        yield n
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def never_left(self) -> tuple[bool, tuple[ExclusionRule, ...]] | None:
        """None if some month shape leaves a date; else (whether the cron day fields match
        any date at all, the periodic rules that exclude those they match, in the order
        they were written)."""
        any_match = False
        hit: set[tuple[ExclusionKind, object]] = set()
        for month in sorted(self._cron.months):
            for days in _MONTH_LENGTHS[month]:
                for first_dow in range(7):
                    matching, allowed = self._shape(month, days, first_dow)
                    if allowed:
                        return None
                    any_match = any_match or bool(matching)
                    for d in matching:
                        hit.add((ExclusionKind.ANNUAL, (month, d)))
                        hit.add((ExclusionKind.MONTHLY, d))
                        hit.add((ExclusionKind.WEEKLY, (first_dow + d - 1) % 7))
        # Each rule looked up once (thousands of rules, thousands of dates).
        rules = self._exclusions.rules
        return any_match, tuple(r for r in rules if (r.kind, r.value) in hit)

    def _shape(
        self, month: int, days: int, first_dow: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(days the cron day fields match, those not excluded every year) of a month of
        ``days`` days starting on weekday ``first_dow`` (0 = Sunday)."""
        key = (month, days, first_dow)
        shape = self._shapes.get(key)
        if shape is None:
            matching = tuple(
                d for d in range(1, days + 1) if self._cron.day_matches(d, (first_dow + d - 1) % 7)
            )
            ex = self._exclusions
            annual, monthly, weekly = ex.annual_days(month), ex.monthly_days, ex.weekly_days
            allowed = tuple(
                d
                for d in matching
                if d not in annual and d not in monthly and (first_dow + d - 1) % 7 not in weekly
            )
            shape = self._shapes[key] = (matching, allowed)
        return shape


def _month_days(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]
