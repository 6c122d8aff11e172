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

Business days (docs/api.md "Business days and day tokens", "Shifting"). A schedule whose
day-of-month field counts business days (``nB``, ``LB``, ``LB-n``) or that shifts the
fires of excluded dates (``spec.onExcludedDay``) depends on the holidays of each month,
not on its shape alone. For those the dates are found month by month too, each month
once per schedule and cached (:meth:`CandidateDays._month`): its business days (the
shape's days that no periodic list excludes, minus that month's holidays), the dates the
cron fields match (the ``B`` tokens picked from those business days), and the dates that
fire: the matched business days, and the business days the matched, excluded dates
within ``maxShiftDays`` shift to. A shift looks at most ``maxShiftDays`` (31) days away,
day by day, each a look-up in a month's cached business days: never a walk of minutes.
Which shapes leave a date still tells when none ever fires, the shifts aside; with a
shift, the years 2001-2028 (every kind of year) are walked with the periodic lists once
per process (:func:`_fires_in_a_cycle`), only for a schedule whose every matched date
is excluded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from almanac.schedule.cron import CronExpression
from almanac.schedule.exclusions import ExclusionKind, ExclusionRule, Exclusions
from almanac.shared import Kept

__all__ = ["MAX_SHIFT_DAYS", "CandidateDays", "FireDay", "OnExcludedDay"]

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_LENGTHS = {m: ((28, 29) if m == 2 else (_DAYS_IN_MONTH[m],)) for m in range(1, 13)}
_LAST_DATE = date.max.toordinal()
# Years holding every kind of year (leap or not, starting on each weekday): 2001-2028.
# With the periodic lists alone, which dates of a year fire depends only on its kind (its
# months' lengths and weekdays, and those of the December before and the January after,
# which its kind fixes, are all that a 31-day shift can reach).
_EVERY_KIND_FIRST = date(2001, 1, 1).toordinal()
_EVERY_KIND_LAST = date(2028, 12, 31).toordinal()
#: The largest shift the engine handles (the bound of ``spec.maxShiftDays``): a shifted
#: date's business day is looked for at most this many days away, so each month's fires
#: depend on its neighbours' dates within two months at most.
MAX_SHIFT_DAYS = 31


class OnExcludedDay(StrEnum):
    """``spec.onExcludedDay``: what happens to the fires of a matched, excluded date."""

    SKIP = "Skip"
    """They do not happen (the default)."""
    NEXT = "NextBusinessDay"
    """They happen at the same local times on the first business day after it."""
    PREVIOUS = "PreviousBusinessDay"
    """They happen at the same local times on the last business day before it."""


@dataclass(frozen=True, slots=True)
class FireDay:
    """A local date that fires, and why: its own match, and the shifted dates."""

    day: int
    """The date's ordinal."""
    matched: bool
    """The cron fields match it (and it is a business day)."""
    shifted_from: tuple[int, ...] = ()
    """Ordinals of the matched, excluded dates whose fires moved to it."""


# A month's dates, as day numbers: (business days, matched days, fire days and the dates
# shifted to each, matched excluded days that fire nowhere).
_Month = tuple[tuple[int, ...], frozenset[int], dict[int, tuple[int, ...]], tuple[int, ...]]
# A month shape's dates: (matched by the cron fields, those no periodic list excludes,
# every day no periodic list excludes). ``B`` tokens are not in the first two (they
# depend on the holidays); see CandidateDays._month.
_Shape = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


#: How many :meth:`CandidateDays.shared` keeps (a cluster's distinct combinations of day
#: fields and Calendars are a few dozen; each keeps what it worked out of some months).
SHARED_KEPT = 256
_SHARED: Kept[tuple[object, ...], CandidateDays] = Kept(SHARED_KEPT)


class CandidateDays:
    """The local dates a cron expression's month and day fields match and that no
    exclusion removes, month by month, with each month shape computed once; with
    business-day tokens or a shift, the dates that fire, each month computed once."""

    __slots__ = (
        "_bases",
        "_business_mode",
        "_cron",
        "_exclusions",
        "_max_shift",
        "_months",
        "_on_excluded",
        "_shapes",
    )

    @classmethod
    def shared(
        cls,
        cron: CronExpression,
        exclusions: Exclusions,
        on_excluded: OnExcludedDay = OnExcludedDay.SKIP,
        max_shift: int = 7,
    ) -> CandidateDays:
        """The candidate days of every schedule with the same day fields, exclusions and
        shift (the last :data:`SHARED_KEPT`): what one works out about a month, every job
        that matches the same dates and obeys the same Calendars reuses, as the operator
        builds a schedule at each decision and the webhook one per referring job."""
        key = (cron.day_fields, exclusions, on_excluded, max_shift)
        return _SHARED.get(key, lambda: cls(cron, exclusions, on_excluded, max_shift))

    def __init__(
        self,
        cron: CronExpression,
        exclusions: Exclusions,
        on_excluded: OnExcludedDay = OnExcludedDay.SKIP,
        max_shift: int = 7,
    ) -> None:
        if not 1 <= max_shift <= MAX_SHIFT_DAYS:
            raise ValueError(f"max_shift {max_shift} is outside 1-{MAX_SHIFT_DAYS}")
        self._cron = cron
        self._exclusions = exclusions
        self._on_excluded = on_excluded
        self._max_shift = max_shift
        self._business_mode = (
            cron.tokens.counts_business_days or on_excluded is not OnExcludedDay.SKIP
        )
        self._shapes: dict[tuple[int, int, int], _Shape] = {}
        self._months: dict[tuple[int, int], _Month] = {}
        self._bases: dict[
            tuple[int, int], tuple[tuple[int, ...], frozenset[int], frozenset[int]]
        ] = {}

    @property
    def business(self) -> bool:
        """Whether holidays may move dates (``B`` tokens or a shift), not only remove them."""
        return self._business_mode

    @property
    def on_excluded(self) -> OnExcludedDay:
        return self._on_excluded

    @property
    def max_shift(self) -> int:
        return self._max_shift

    def between(
        self, first: int, last: int, *, excluded: bool = False, holidays: bool = True
    ) -> Iterator[int]:
        """Ordinals in [first, last] of the local dates that fire: that the cron day fields
        match and are not excluded, or that a shift moves fires to (with ``excluded``:
        the matched dates that are excluded and whose fires go nowhere), in order.
        Without ``holidays``, holidays are not exclusions (only the periodic lists are);
        only without business days, where holidays can only remove dates."""
        if self._business_mode:
            if not holidays:
                raise ValueError("holidays=False: holidays move business days and shifts")
            yield from self._business_between(first, last, excluded=excluded)
            return
        start = date.fromordinal(first)
        year, month = start.year, start.month
        months = self._cron.months
        while year <= 9999:
            month_start = date(year, month, 1).toordinal()
            if month_start > last:
                return
            if month in months:
                days = _month_days(year, month)
                matching, allowed, _ = self._shape(month, days, month_start % 7)
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
        """None if some month shape leaves a date (or a shift finds a business day for one
        they match); else (whether the cron day fields match any date at all, the periodic
        rules that exclude those they match, in the order they were written).

        Holidays are finite: after the last one every shape occurs with the periodic lists
        alone, so a shape that leaves a date fires some day. Holidays only take business
        days away, so where no shape leaves one with the periodic lists alone, none does
        with them (``B`` tokens pick among fewer business days, a shift finds its
        business day no nearer)."""
        any_match = False
        shifted = False
        hit: set[tuple[ExclusionKind, object]] = set()
        for month in sorted(self._cron.months):
            for days in _MONTH_LENGTHS[month]:
                for first_dow in range(7):
                    calendar_matching, allowed, open_days = self._shape(month, days, first_dow)
                    matching = calendar_matching
                    if self._cron.tokens.counts_business_days:
                        picks = self._picks(open_days, days, first_dow)
                        allowed = tuple(sorted({*allowed, *picks}))
                        matching = tuple(sorted({*matching, *picks}))
                    if allowed:
                        return None
                    any_match = any_match or bool(matching)
                    for d in matching:
                        hit.add((ExclusionKind.ANNUAL, (month, d)))
                        hit.add((ExclusionKind.MONTHLY, d))
                        hit.add((ExclusionKind.WEEKLY, (first_dow + d - 1) % 7))
        if any_match and self._on_excluded is not OnExcludedDay.SKIP:
            periodic = tuple(
                r for r in self._exclusions.rules if r.kind is not ExclusionKind.HOLIDAY
            )
            shifted = _fires_in_a_cycle(self._cron, periodic, self._on_excluded, self._max_shift)
        if shifted:
            return None
        # Each rule looked up once (thousands of rules, thousands of dates).
        rules = self._exclusions.rules
        return any_match, tuple(r for r in rules if (r.kind, r.value) in hit)

    def max_business_days(self) -> int:
        """The most business days a month has with the periodic lists alone."""
        return max(
            len(self._shape(m, days, dow)[2])
            for m in range(1, 13)
            for days in _MONTH_LENGTHS[m]
            for dow in range(7)
        )

    # -- one date, for the explanations ------------------------------------------------

    def fire_day(self, n: int) -> FireDay | None:
        """Whether the local date ``n`` fires, and why; None if it does not."""
        day = date.fromordinal(n)
        if not self._business_mode:
            matched = self._cron.matches_date(day) and not self._exclusions.excludes(day)
            return FireDay(n, True) if matched else None
        _, matched_days, fires, _ = self._month(day.year, day.month)
        sources = fires.get(day.day)
        if sources is None:
            return None
        return FireDay(n, day.day in matched_days and not self._excluded(n), sources)

    def matched(self, n: int) -> bool:
        """Whether the cron fields match the local date ``n`` (excluded or not)."""
        day = date.fromordinal(n)
        if not self._business_mode:
            return self._cron.matches_date(day)
        return day.day in self._month(day.year, day.month)[1]

    def why_not(self, n: int) -> str:
        """Which cron field rejects the local date ``n`` ('' if none does)."""
        day = date.fromordinal(n)
        return self._cron.why_not_date(day, self._picks_in(day.year, day.month))

    def labels(self, n: int) -> list[str]:
        """What the day tokens that match the local date ``n`` mean there."""
        if not self._cron.tokens:
            return []
        day = date.fromordinal(n)
        days = _month_days(day.year, day.month)
        business = self._business(day.year, day.month) if self._business_mode else ()
        return self._cron.token_labels(day, days, business)

    def shift_target(self, n: int) -> int | None:
        """Where the fires of the matched, excluded date ``n`` go (None: nowhere, or no
        shift)."""
        if self._on_excluded is OnExcludedDay.SKIP:
            return None
        return self._target(n)

    # -- business days: month by month -------------------------------------------------

    def _business_between(self, first: int, last: int, *, excluded: bool) -> Iterator[int]:
        start = date.fromordinal(first)
        year, month = start.year, start.month
        while year <= 9999:
            month_start = date(year, month, 1).toordinal()
            if month_start > last:
                return
            _, _, fires, dropped = self._month(year, month)
            for d in dropped if excluded else sorted(fires):
                n = month_start + d - 1
                if n > last:
                    return
                if n >= first:
                    yield n
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _month(self, year: int, month: int) -> _Month:
        """A month's business days, matched days, fire days (with the dates shifted to
        each) and matched excluded days whose fires go nowhere; cached."""
        key = (year, month)
        found = self._months.get(key)
        if found is not None:
            return found
        business, open_days, matched = self._base(year, month)
        fires: dict[int, list[int]] = {d: [] for d in matched if d in open_days}
        dropped = tuple(sorted(d for d in matched if d not in open_days))
        if self._on_excluded is not OnExcludedDay.SKIP:
            month_start = date(year, month, 1).toordinal()
            month_end = month_start + _month_days(year, month) - 1
            shift = self._max_shift
            # The dates whose fires may land in this month, and this month's own (whose
            # fires may go nowhere).
            if self._on_excluded is OnExcludedDay.NEXT:
                lo, hi = month_start - shift, month_end
            else:
                lo, hi = month_start, month_end + shift
            targets = self._targets(lo, hi)
            for source, target in targets.items():
                if target is not None and month_start <= target <= month_end:
                    fires.setdefault(target - month_start + 1, []).append(source)
            dropped = tuple(d for d in dropped if targets.get(month_start + d - 1) is None)
        if len(self._months) >= 4096:  # a search over centuries: keep memory bounded
            self._months.clear()
        found = self._months[key] = (
            business,
            matched,
            {d: tuple(sorted(s)) for d, s in fires.items()},
            dropped,
        )
        return found

    def _business(self, year: int, month: int) -> tuple[int, ...]:
        """The month's business days, in order: no exclusion (periodic or holiday)."""
        return self._base(year, month)[0]

    def _base(
        self, year: int, month: int
    ) -> tuple[tuple[int, ...], frozenset[int], frozenset[int]]:
        """(business days in order, the same as a set, matched days) of a month; cached
        (a shift looks at its neighbours' too)."""
        key = (year, month)
        base = self._bases.get(key)
        if base is None:
            days = _month_days(year, month)
            first_dow = date(year, month, 1).toordinal() % 7
            matching, _, open_days = self._shape(month, days, first_dow)
            off = self._exclusions.holidays_in(year, month)
            business = tuple(d for d in open_days if d not in off) if off else open_days
            matched: frozenset[int] = frozenset()
            if month in self._cron.months:
                matched = frozenset(matching)
                if self._cron.tokens.counts_business_days:
                    matched = matched.union(self._picks(business, days, first_dow))
            if len(self._bases) >= 4096:  # a search over centuries: keep memory bounded
                self._bases.clear()
            base = self._bases[key] = (business, frozenset(business), matched)
        return base

    def _picks_in(self, year: int, month: int) -> frozenset[int]:
        """The days the ``B`` tokens pick in that month (none without ``B`` tokens)."""
        if not self._cron.tokens.counts_business_days:
            return frozenset()
        return self._cron.business_picks(self._business(year, month))

    def _picks(self, business: tuple[int, ...], days: int, first_dow: int) -> frozenset[int]:
        """The days ``B`` tokens pick from ``business`` that the Vixie rule then matches
        (with a ``*`` field, the day-of-week field must match them too)."""
        picks = self._cron.business_picks(business)
        return frozenset(
            d for d in picks if self._cron.day_matches(d, (first_dow + d - 1) % 7, days, picks)
        )

    def _matched(self, year: int, month: int) -> frozenset[int]:
        """The days of the month the cron's month and day fields match (excluded or not)."""
        return self._base(year, month)[2]

    def _matched_excluded(self, lo: int, hi: int) -> Iterator[int]:
        """Ordinals in [lo, hi] of matched dates that are excluded."""
        lo, hi = max(lo, 1), min(hi, _LAST_DATE)
        if lo > hi:
            return
        start = date.fromordinal(lo)
        year, month = start.year, start.month
        while year <= 9999:
            month_start = date(year, month, 1).toordinal()
            if month_start > hi:
                return
            _, open_days, matched = self._base(year, month)
            if matched:
                for d in sorted(matched):
                    n = month_start + d - 1
                    if lo <= n <= hi and d not in open_days:
                        yield n
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _targets(self, lo: int, hi: int) -> dict[int, int | None]:
        """Where the fires of each matched, excluded date in [lo, hi] go (None: nowhere):
        one sweep over the business days around them, against the shift's direction,
        remembering the nearest business day met (not a walk per date)."""
        shift = self._max_shift
        sources = set(self._matched_excluded(lo, hi))
        if not sources:
            return {}
        a, b = max(1, lo - shift), min(_LAST_DATE, hi + shift)
        business = self._business_flags(a, b)
        forward = self._on_excluded is OnExcludedDay.NEXT
        targets: dict[int, int | None] = {}
        nearest: int | None = None
        for n in range(b, a - 1, -1) if forward else range(a, b + 1):
            if n in sources:
                near = nearest is not None and abs(nearest - n) <= shift
                targets[n] = nearest if near else None
            if business[n - a]:
                nearest = n
        return targets

    def _business_flags(self, a: int, b: int) -> list[bool]:
        """For each date of [a, b], whether it is a business day."""
        flags: list[bool] = []
        start = date.fromordinal(a)
        year, month = start.year, start.month
        n = date(year, month, 1).toordinal()
        while n <= b:
            open_days = self._base(year, month)[1]
            for d in range(1, _month_days(year, month) + 1):
                if a <= n <= b:
                    flags.append(d in open_days)
                n += 1
            month += 1
            if month == 13:
                year, month = year + 1, 1
        return flags

    def _excluded(self, n: int) -> bool:
        day = date.fromordinal(n)
        return day.day not in self._base(day.year, day.month)[1]

    def _target(self, n: int) -> int | None:
        """The first business day after (or the last before) ``n``, at most ``max_shift``
        days away, in the direction of ``on_excluded``; None if there is none."""
        step = 1 if self._on_excluded is OnExcludedDay.NEXT else -1
        for i in range(1, self._max_shift + 1):
            m = n + step * i
            if not 1 <= m <= _LAST_DATE:
                return None
            if not self._excluded(m):
                return m
        return None

    def _shape(self, month: int, days: int, first_dow: int) -> _Shape:
        """(days the cron day fields match, those not excluded every year, every day not
        excluded every year) of a month of ``days`` days starting on weekday
        ``first_dow`` (0 = Sunday). ``B`` tokens match nothing here (see _month)."""
        key = (month, days, first_dow)
        shape = self._shapes.get(key)
        if shape is None:
            matching = tuple(
                d
                for d in range(1, days + 1)
                if self._cron.day_matches(d, (first_dow + d - 1) % 7, days)
            )
            ex = self._exclusions
            annual, monthly, weekly = ex.annual_days(month), ex.monthly_days, ex.weekly_days
            open_days = tuple(
                d
                for d in range(1, days + 1)
                if d not in annual and d not in monthly and (first_dow + d - 1) % 7 not in weekly
            )
            allowed = tuple(d for d in matching if d in open_days)
            shape = self._shapes[key] = (matching, allowed, open_days)
        return shape


@functools.lru_cache(maxsize=256)
def _fires_in_a_cycle(
    cron: CronExpression,
    periodic: tuple[ExclusionRule, ...],
    on_excluded: OnExcludedDay,
    max_shift: int,
) -> bool:
    """Whether some date fires in some year with the periodic lists alone (then it fires
    after the last holiday too); once per process for each expression, lists and shift.
    Walks 2001-2028 only, stopping at the first date that fires: every kind of year is
    there (see _EVERY_KIND_FIRST), and every year is of one of those kinds."""
    days = CandidateDays(cron, Exclusions(periodic), on_excluded, max_shift)
    return next(days.between(_EVERY_KIND_FIRST, _EVERY_KIND_LAST), None) is not None


def _month_days(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]
