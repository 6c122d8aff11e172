"""The schedule engine: when does a ScheduledJob fire?

Where it sits: pure, between :mod:`almanac.api.models` (which builds a :class:`Schedule` from a
validated spec and its Calendars) and the operator and the ``almanac next`` command (which
ask it for instants). It knows nothing of Kubernetes and never reads the clock: ``after``
is always an argument. It is the top of :mod:`almanac.schedule` and may import every other
module of it: :mod:`~almanac.schedule.cron`, :mod:`~almanac.schedule.zones`,
:mod:`~almanac.schedule.days`, :mod:`~almanac.schedule.exclusions` and
:mod:`~almanac.schedule.explain` (its ``timeline`` and ``explain_*`` methods call the
functions there with the schedule itself); of Almanac outside the package,
:mod:`almanac.errors` and :mod:`almanac.times`.

The rules are docs/api.md's "When a ScheduledJob fires"; docs/schedule.md explains them with
examples and records the choices made where the contract is silent::

    schedule = Schedule.build("30 2 * * 1-5", time_zone="Europe/Bucharest", exclusions=ex)
    schedule = Schedule.build("0 18 L * *", exclusions=ex, on_excluded_day="PreviousBusinessDay")
    schedule.next_fire(after)        # datetime (aware, UTC) | NeverFires
    schedule.fires(after)            # Iterator[datetime], in order, strictly after `after`
    schedule.timeline(after)         # Iterator[Fire | SkippedDay], for humans
    schedule.explain_day(day)        # Explanation: does it fire that local date, or why not
    schedule.explain_instant(t)      # Explanation: is t a fire, or why not
    schedule.never_fires             # NeverFires | None, what is certain without a start

How it works, and why it is fast and always terminates:

* Days, not minutes: see :mod:`almanac.schedule.days`, which also finds the dates that
  business-day tokens pick and that shifts move fires to (docs/api.md "Shifting"): the
  search below reads dates from it and does not know whether a date was matched or
  shifted to; a shifted date's times are the expression's, with the DST rule of that
  date, and the window applies to the resulting instants as to any other.
* Offsets, not time-zone arithmetic per minute: see :mod:`almanac.schedule.zones`.
* A horizon that is certain. The Gregorian calendar repeats every 400 years (146,097
  days, a whole number of weeks), holidays are finite, and every zone follows one annual
  rule after its last listed change (tzdata lists changes up to 2087). So if nothing fires
  within 400 years after the latest of (the start, the last holiday, 2100), nothing ever
  will. The common impossible schedules (``0 0 30 2 *``, every weekday excluded, 29.02
  excluded) are recognised without scanning at all (:attr:`Schedule.never_fires`).
* A proof instead of a search for the one schedule that would reach that horizon: a
  wildcard expression whose every time falls in a daylight-saving gap (``* 3 * 3 0`` with
  days 1-24 excluded, in Europe/Bucharest: 03:xx on the last Sunday of March). It is
  checked on the dates the cron fields and the periodic lists leave, holidays aside (they
  only remove dates), one 400-year cycle after 2100; then from the search's start to
  2100. A date with no offset change near it ends the check at once, and only the
  dates next to a change are looked at closely (a few samples and a bisection each,
  :func:`~almanac.schedule.zones.offsets_near`): about 500 dates, some milliseconds.
"""

from __future__ import annotations

import functools
import heapq
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from almanac.errors import FieldError, InvalidSpec, quote
from almanac.schedule import explain
from almanac.schedule.cron import CronExpression
from almanac.schedule.days import MAX_SHIFT_DAYS, CandidateDays, OnExcludedDay
from almanac.schedule.exclusions import ExclusionKind, ExclusionRule, Exclusions
from almanac.schedule.explain import (
    EVERY_DAY_EXCLUDED,
    EVERY_TIME_IN_GAP,
    NO_FIRE_IN_WINDOW,
    NO_FIRE_WITHIN_HORIZON,
    NO_SUCH_DATE,
    WINDOW_ENDED,
    Explanation,
    Fire,
    SkippedDay,
    english_list,
)
from almanac.schedule.zones import (
    AFTER_ALL,
    DAY_SECONDS,
    EPOCH_ORDINAL,
    EXACT,
    FIRST,
    FIRST_ORDINAL,
    GAP,
    LAST_ORDINAL,
    LATER,
    ZONE_RULES_SETTLED_ORDINAL,
    Entry,
    first_after,
    midnight_wall,
    offset_pieces,
    offsets_around,
    offsets_near,
    parse_date_time,
    parse_time_zone,
    to_instant,
    to_seconds,
    wall_occurrences,
)
from almanac.times import format_instant

__all__ = ["NeverFires", "OnExcludedDay", "Schedule"]

HOLIDAY = ExclusionKind.HOLIDAY
# The Gregorian calendar repeats every 400 years: 146,097 days, exactly 20,871 weeks.
_CYCLE_DAYS = 146097
_MONTH_TITLES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True, slots=True)
class NeverFires:
    """The schedule has no fire (after a given instant), and why.

    ``reason`` is CamelCase for Events and the Ready condition: ``NoSuchDate``,
    ``EveryDayExcluded``, ``EveryTimeInGap``, ``WindowEnded``, ``NoFireInWindow``,
    ``NoFireWithinHorizon`` (:data:`almanac.schedule.explain.NEVER_FIRES_REASONS`).
    """

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


class Schedule:
    """A cron expression in a zone, within a window, minus exclusions. Immutable.

    Build one with :meth:`build` (from the strings of a spec, with field paths in errors)
    or with the constructor (from parsed values).
    """

    __slots__ = (
        "_end_s",
        "_gap_from",
        "_gap_settled",
        "_gap_settled_from",
        "_hm",
        "_holiday_anchor",
        "_never",
        "_start_s",
        "cron",
        "days",
        "end",
        "exclusions",
        "start",
        "zone",
    )

    cron: CronExpression
    zone: ZoneInfo
    start: datetime | None
    """Window start as given: aware = that instant, naive = wall time in ``zone``."""
    end: datetime | None
    exclusions: Exclusions
    days: CandidateDays
    """The local dates the cron day fields match and no exclusion removes."""

    def __init__(
        self,
        cron: CronExpression,
        zone: ZoneInfo,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        exclusions: Exclusions | None = None,
        on_excluded_day: OnExcludedDay = OnExcludedDay.SKIP,
        max_shift_days: int = 7,
    ) -> None:
        self.cron = cron
        self.zone = zone
        self.start = start
        self.end = end
        # Date sets (an iCalendar's timed events) fall on local dates of the job's zone.
        self.exclusions = (exclusions if exclusions is not None else Exclusions()).in_zone(zone)
        self._hm = tuple(h * 3600 + m * 60 for h in cron.hours for m in cron.minutes)
        self.days = CandidateDays.shared(cron, self.exclusions, on_excluded_day, max_shift_days)
        last_holiday = self.exclusions.last_holiday
        self._holiday_anchor = last_holiday.toordinal() if last_holiday else 0
        if self.days.business and last_holiday:
            # A holiday moves business days of its month and shifts up to 31 days away:
            # the dates repeat every 400 years only from two months after it.
            self._holiday_anchor += 2 * MAX_SHIFT_DAYS
        # Where the gap proof's 400-year cycle starts (see _in_gap_once_settled).
        self._gap_settled_from = ZONE_RULES_SETTLED_ORDINAL
        if self.days.business:
            self._gap_settled_from = max(ZONE_RULES_SETTLED_ORDINAL, self._holiday_anchor + 1)
        self._start_s = None if start is None else self._resolve(start, ceil=True)
        self._end_s = None if end is None else self._resolve(end, ceil=False)
        if self._start_s is not None and self._end_s is not None and self._end_s < self._start_s:
            raise InvalidSpec([("spec.endTime", "is before spec.startTime")])
        self._never = self._static_never()
        self._gap_settled: bool | None = None  # see _in_gap_once_settled
        self._gap_from: tuple[int, bool] | None = None  # see _in_gap_from

    @classmethod
    def build(
        cls,
        schedule: str,
        *,
        time_zone: str | None = None,
        default_time_zone: str = "UTC",
        start_time: str | None = None,
        end_time: str | None = None,
        exclusions: Exclusions | None = None,
        on_excluded_day: str = OnExcludedDay.SKIP,
        max_shift_days: int = 7,
    ) -> Schedule:
        """From the fields of a ScheduledJob spec; :class:`InvalidSpec` names each bad one.

        ``time_zone`` None means ``default_time_zone`` (the operator's, UTC out of the box).
        """
        errors: list[FieldError] = []
        cron = zone = start = end = None
        shift = OnExcludedDay.SKIP
        try:
            shift = OnExcludedDay(on_excluded_day)
        except ValueError:
            expected = english_list([o.value for o in OnExcludedDay]).replace(" and ", " or ")
            errors.append(
                FieldError(
                    "spec.onExcludedDay", f"{quote(on_excluded_day)} is not one of {expected}"
                )
            )
        if isinstance(max_shift_days, bool) or not 1 <= max_shift_days <= MAX_SHIFT_DAYS:
            errors.append(
                FieldError(
                    "spec.maxShiftDays",
                    f"must be 1-{MAX_SHIFT_DAYS} days (got {quote(str(max_shift_days))})",
                )
            )
        try:
            cron = CronExpression.parse(schedule)
        except ValueError as e:
            errors.append(FieldError("spec.schedule", str(e)))
        try:
            zone = parse_time_zone(default_time_zone if time_zone is None else time_zone)
        except ValueError as e:
            default = "" if time_zone is not None else "not set, and the default time zone "
            errors.append(FieldError("spec.timeZone", f"{default}{e}"))
        for path, text in (("spec.startTime", start_time), ("spec.endTime", end_time)):
            try:
                moment = None if text is None else parse_date_time(text)
            except ValueError as e:
                errors.append(FieldError(path, str(e)))
            else:
                start, end = (moment, end) if path == "spec.startTime" else (start, moment)
        if errors:
            raise InvalidSpec(errors)
        assert cron is not None and zone is not None
        try:
            return cls(
                cron,
                zone,
                start=start,
                end=end,
                exclusions=exclusions,
                on_excluded_day=shift,
                max_shift_days=max_shift_days,
            )
        except InvalidSpec:
            raise InvalidSpec(
                [
                    (
                        "spec.endTime",
                        f"{quote(end_time)} is before spec.startTime {quote(start_time)}",
                    )
                ]
            ) from None

    def __repr__(self) -> str:
        shift = ""
        if self.days.on_excluded is not OnExcludedDay.SKIP:
            shift = f", {self.days.on_excluded.value} within {self.days.max_shift} days"
        return (
            f"Schedule({self.cron.text!r}, {self.zone.key!r}, start={self.start!r}, "
            f"end={self.end!r}, exclusions={self.exclusions!r}{shift})"
        )

    # -- public API ---------------------------------------------------------------------

    @property
    def never_fires(self) -> NeverFires | None:
        """Known without a start instant: no date matches, or every one is excluded."""
        return self._never

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """The window's ends as instants (UTC), inclusive; None when open."""
        return (
            None if self._start_s is None else to_instant(self._start_s),
            None if self._end_s is None else to_instant(self._end_s),
        )

    def fires(self, after: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``after`` (aware), in order, UTC; ends when the
        window ends (or at the horizon, see the module docstring)."""
        last = None
        for x, _, _ in self.entries_after(to_seconds(after)):
            if x != last:
                last = x
                yield to_instant(x)

    def next_fire(self, after: datetime) -> datetime | NeverFires:
        """The first fire strictly after ``after``, or why there is none."""
        for x in self.fires(after):
            return x
        return self._why_none(to_seconds(after))

    def timeline(self, after: datetime) -> Iterator[Fire | SkippedDay]:
        """Fires after ``after``, and before each the days an exclusion removed (days the
        cron expression matches, with a would-be fire after ``after`` in the window)."""
        return explain.timeline(self, after)

    def explain_day(self, day: date) -> Explanation:
        """Whether the schedule fires on the local date ``day``, or why not."""
        return explain.explain_day(self, day)

    def explain_instant(self, instant: datetime) -> Explanation:
        """Whether ``instant`` (aware) is a fire, or why not."""
        return explain.explain_instant(self, instant)

    # -- the search, in epoch seconds and day ordinals (explain.FireSearch reads it) -----

    def _resolve(self, moment: datetime, *, ceil: bool) -> int:
        """A window end as an instant: aware is itself; naive is a wall time, resolved as
        fixed-time cron times are (first occurrence; in a gap, the end of the gap). A
        wall time before the first date handled (year 1) is taken as that date."""
        if moment.tzinfo is not None:
            x = to_seconds(moment)
            return x + 1 if ceil and moment.microsecond else x
        wall = (moment.toordinal() - EPOCH_ORDINAL) * DAY_SECONDS + (
            moment.hour * 3600 + moment.minute * 60 + moment.second
        )
        wall = max(wall, midnight_wall(FIRST_ORDINAL))
        pieces = offset_pieces(*offsets_around(self.zone, wall - DAY_SECONDS, wall + DAY_SECONDS))
        occurrences = wall_occurrences(wall, pieces)
        if not occurrences:
            return first_after(wall, pieces)
        return occurrences[0] + (1 if ceil and moment.microsecond else 0)

    def in_window(self, x: int) -> bool:
        """Whether the instant ``x`` lies in the window (both ends included)."""
        return (self._start_s is None or x >= self._start_s) and (
            self._end_s is None or x <= self._end_s
        )

    def _horizon(self, day: int) -> int:
        """The last day to look at when nothing fired since ``day``: 400 years after the
        calendar and the zone's rules are periodic (see the module docstring); the day
        before the rules settle when every time falls in a gap from then on."""
        if self._in_gap_once_settled():
            return self._gap_settled_from - 1
        anchor = max(day, ZONE_RULES_SETTLED_ORDINAL, self._holiday_anchor)
        return min(LAST_ORDINAL, anchor + _CYCLE_DAYS + 1)

    def _in_gap_once_settled(self) -> bool:
        """Whether the schedule never fires once every zone follows its last rule: every
        time it names falls in a gap, on every date of one 400-year cycle after that
        (the calendar and the zone repeat with it; holidays only remove dates)."""
        if self._gap_settled is None:
            if self._never is not None:
                self._gap_settled = False
            elif self.days.business:
                # Holidays move dates here, so the proof reads the real ones, from after
                # the last holiday's reach (then the dates repeat every 400 years).
                first = self._gap_settled_from
                self._gap_settled = _in_gap(
                    self.cron, self.zone, self.days, first, first + _CYCLE_DAYS - 1
                )
            else:
                periodic = tuple(r for r in self.exclusions.rules if r.kind is not HOLIDAY)
                self._gap_settled = _in_gap_once_settled(self.cron, self.zone, periodic)
        return self._gap_settled

    def _in_gap_from(self, first: int) -> bool:
        """Whether the schedule never fires on or after the date ``first``, all its times
        falling in gaps (proved without holidays)."""
        if not self._in_gap_once_settled():
            return False
        if self._gap_from is None or self._gap_from[0] != first:
            last = self._gap_settled_from - 1
            self._gap_from = (first, _in_gap(self.cron, self.zone, self.days, first, last))
        return self._gap_from[1]

    def search_range(self, after_s: int) -> tuple[int, int, int]:
        """(lowest instant excluded, first day, last day) to look at after ``after_s``;
        the last day is the window's, not the horizon."""
        low = after_s if self._start_s is None else max(after_s, self._start_s - 1)
        # An instant of local date D lies within a day of D's midnight (offsets < 24 h).
        first = max(FIRST_ORDINAL, EPOCH_ORDINAL + low // DAY_SECONDS - 1)
        last = LAST_ORDINAL
        if self._end_s is not None:
            last = min(last, EPOCH_ORDINAL + self._end_s // DAY_SECONDS + 1)
        return low, first, last

    def entries_on(self, n: int) -> tuple[list[Entry], int]:
        """(entries of day ``n``, the first instant at which any later day begins)."""
        w = midnight_wall(n)
        offset, changes = offsets_around(self.zone, w - DAY_SECONDS, w + 2 * DAY_SECONDS)
        if not changes:
            base = w - offset
            return [(base + s, w + s, EXACT) for s in self._hm], base + DAY_SECONDS
        pieces = offset_pieces(offset, changes)
        entries: list[Entry] = []
        fixed = self.cron.fixed_time
        for s in self._hm:
            wall = w + s
            occurrences = wall_occurrences(wall, pieces)
            if not occurrences:
                if fixed:
                    entries.append((first_after(wall, pieces), wall, GAP))
            elif fixed or len(occurrences) == 1:
                entries.append((occurrences[0], wall, FIRST if len(occurrences) > 1 else EXACT))
            else:
                entries.extend(
                    (x, wall, FIRST if i == 0 else LATER) for i, x in enumerate(occurrences)
                )
        return entries, first_after(w + DAY_SECONDS, pieces)

    def entries_after(self, after_s: int) -> Iterator[Entry]:
        """(instant, wall, how) of every fire after ``after_s`` in the window, ordered by
        instant; one instant may come several times in a row (gap times collapsing)."""
        if self._never is not None:
            return
        low, first, last = self.search_range(after_s)
        if self._in_gap_from(first):
            return
        end = AFTER_ALL if self._end_s is None else self._end_s
        horizon = self._horizon(first)
        heap: list[Entry] = []
        hm = self._hm
        for n in self.days.between(first, last):
            if n > horizon:
                break
            w = midnight_wall(n)
            offset, changes = offsets_around(self.zone, w - DAY_SECONDS, w + 2 * DAY_SECONDS)
            if not changes and not heap:
                # The common case: one offset all day, nothing pending; emit in order.
                base = w - offset
                for i in range(bisect_right(hm, low - base), len(hm)):
                    x = base + hm[i]
                    if x > end:
                        return
                    horizon = self._horizon(n)
                    yield x, w + hm[i], EXACT
                continue
            # Near an offset change instants of neighbouring days may interleave (a
            # fall-back across midnight): hold them until no later day can come first.
            entries, bound = self.entries_on(n)
            for entry in entries:
                if entry[0] > low:
                    heapq.heappush(heap, entry)
            while heap and heap[0][0] <= bound:
                entry = heapq.heappop(heap)
                if entry[0] > end:
                    return
                horizon = self._horizon(n)
                yield entry
        while heap:
            entry = heapq.heappop(heap)
            if entry[0] > end:
                return
            yield entry

    # -- never -------------------------------------------------------------------------

    def _static_never(self) -> NeverFires | None:
        left = self.days.never_left()
        if left is None:
            return None
        any_match, culprits = left
        cron = self.cron
        text = quote(cron.text)
        if not any_match:
            months = [_MONTH_TITLES[m - 1] for m in sorted(cron.months)]
            verb = "has" if len(months) == 1 else "have"
            where = f"{english_list(months)} {verb} no"
            if len(months) == 12:
                where = "no month has a"
            if cron.dow_star or not cron.dom_star:
                days = english_list(cron.day_of_month_text.split(",")).replace(" and ", " or ")
                what = f"{where} day {days}"
            else:
                what = f"{where} day the day-of-week field matches"
            if cron.tokens.counts_business_days:
                what += (
                    f" (business days counted with the exclusions that repeat: a month "
                    f"has at most {self.days.max_business_days()})"
                )
            return NeverFires(NO_SUCH_DATE, f"{text} matches no date: {what}")
        shift = ""
        if self.days.on_excluded is not OnExcludedDay.SKIP:
            direction = "after" if self.days.on_excluded is OnExcludedDay.NEXT else "before"
            shift = (
                f", and none of them has a business day within {self.days.max_shift} "
                f"day{'s' if self.days.max_shift > 1 else ''} {direction} it "
                f"(spec.onExcludedDay {self.days.on_excluded.value}, spec.maxShiftDays)"
            )
        return NeverFires(
            EVERY_DAY_EXCLUDED,
            f"every date {text} matches is excluded, by "
            f"{english_list([str(r) for r in culprits[:9]], total=len(culprits))}{shift}",
        )

    def _why_none(self, after_s: int) -> NeverFires:
        if self._never is not None:
            return self._never
        end = None if self._end_s is None else format_instant(to_instant(self._end_s))
        if self._end_s is not None and self._end_s <= after_s:
            return NeverFires(WINDOW_ENDED, f"the window ended at {end} (spec.endTime)")
        first = self.search_range(after_s)[1]
        gap = (
            f"every time {quote(self.cron.text)} names falls in a daylight-saving gap of "
            f"{self.zone.key} (the clock skips it), and a wildcard schedule does not fire "
            f"in a gap (a fixed time fires at the end of the gap)"
        )
        if self._in_gap_from(first):
            return NeverFires(EVERY_TIME_IN_GAP, f"{gap}: it never fires")
        if end is not None:
            return NeverFires(
                NO_FIRE_IN_WINDOW,
                f"no fire between {format_instant(to_instant(after_s))} and the end of the "
                f"window at {end} (spec.endTime)",
            )
        if self._in_gap_once_settled():
            settled = date.fromordinal(self._gap_settled_from).isoformat()
            return NeverFires(
                EVERY_TIME_IN_GAP,
                f"no fire before {settled} (the dates it matches are excluded), and from "
                f"then on {gap}",
            )
        last = self._horizon(first)
        if last == LAST_ORDINAL:
            return NeverFires(
                NO_FIRE_WITHIN_HORIZON,
                f"no fire up to {date.fromordinal(last).isoformat()}, the last date handled",
            )
        horizon = date.fromordinal(last)
        return NeverFires(
            NO_FIRE_WITHIN_HORIZON,
            f"no fire up to {horizon.isoformat()}; calendar and time-zone rules repeat every "
            f"400 years, so it never fires",
        )


def _in_gap(
    cron: CronExpression, zone: ZoneInfo, days: CandidateDays, first: int, last: int
) -> bool:
    """Whether no time of any date in [first, last] that ``days`` leaves (holidays aside)
    exists on the zone's clock: each falls in a daylight-saving gap, where a wildcard
    schedule does not fire. Stops at the first date without an offset change near it."""
    if cron.fixed_time:
        return False  # a fixed time in a gap fires at its end
    hm = [h * 3600 + m * 60 for h in cron.hours for m in cron.minutes]
    # Holidays aside where they only remove dates; where they move them (business days,
    # shifts), the real dates.
    for n in days.between(first, last, holidays=days.business):
        w = midnight_wall(n)
        offset, changes = offsets_near(zone, w - DAY_SECONDS, w + 2 * DAY_SECONDS)
        if not changes:
            return False
        pieces = offset_pieces(offset, changes)
        if any(wall_occurrences(w + s, pieces) for s in hm):
            return False
    return True


@functools.lru_cache(maxsize=1024)
def _in_gap_once_settled(
    cron: CronExpression, zone: ZoneInfo, periodic: tuple[ExclusionRule, ...]
) -> bool:
    """:func:`_in_gap` on one 400-year cycle from 2100, once per process for each
    expression, zone and periodic lists (holidays play no part)."""
    days = CandidateDays(cron, Exclusions(periodic))
    first = ZONE_RULES_SETTLED_ORDINAL
    return _in_gap(cron, zone, days, first, first + _CYCLE_DAYS - 1)
