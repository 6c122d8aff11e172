"""The human side of a schedule: fires with local times and DST notes, skipped days, and
why a day or an instant fires or not.

Where it sits: it imports :mod:`almanac.schedule.cron`, :mod:`almanac.schedule.zones`,
:mod:`almanac.schedule.days` and :mod:`almanac.schedule.exclusions`, and of Almanac
outside the package :mod:`almanac.errors` and :mod:`almanac.times`. It does not import
:mod:`almanac.schedule.engine`, which imports it: ``Schedule.timeline``,
``Schedule.explain_day`` and ``Schedule.explain_instant`` are the entry points, and call
:func:`timeline`, :func:`explain_day` and :func:`explain_instant` here with the schedule
itself; what they read of it is :class:`FireSearch`.

What it gives (docs/schedule.md, "Explanations")::

    Fire           one fire: the instant, the local time in the zone, notes on DST, and
                   why its date fires when a day token or a shift decided it ("last
                   business day of April 2027", "shifted from Sat 2027-04-10 (...)")
    SkippedDay     a date the cron expression matches but an exclusion removes (with a
                   shift: whose fires no business day within maxShiftDays takes)
    Explanation    does it fire (that day, at that instant), and a sentence saying why (not)
    format_local   "Mon 2027-01-04 02:30:00 EET (+02:00)", as people in the zone read a fire
    first_fires    a timeline cut after its n-th fire

and the reasons a schedule never fires (``NeverFires.reason``, the Ready condition's
reason), each with the sentence :mod:`almanac.schedule.engine` writes for it:

    NoSuchDate           the day fields match no date ("0 0 30 2 *")
    EveryDayExcluded     every date they match is excluded by a periodic list
    EveryTimeInGap       every time they match falls in a daylight-saving gap, where a
                         wildcard schedule does not fire (proved without the holidays)
    WindowEnded          the window ended (spec.endTime) before the instant asked about
    NoFireInWindow       no fire between that instant and the end of the window
    NoFireWithinHorizon  no fire within 400 years of the last holiday (or before 9999)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from almanac.errors import quote
from almanac.schedule.cron import CronExpression
from almanac.schedule.days import CandidateDays, OnExcludedDay
from almanac.schedule.exclusions import WEEKDAY_NAMES, ExclusionRule, Exclusions
from almanac.schedule.zones import (
    DAY_SECONDS,
    EPOCH_ORDINAL,
    FIRST,
    GAP,
    LATER,
    Entry,
    midnight_wall,
    offset_pieces,
    offsets_around,
    to_instant,
    to_seconds,
    wall_occurrences,
)
from almanac.times import format_instant

__all__ = [
    "EVERY_DAY_EXCLUDED",
    "EVERY_TIME_IN_GAP",
    "NEVER_FIRES_REASONS",
    "NO_FIRE_IN_WINDOW",
    "NO_FIRE_WITHIN_HORIZON",
    "NO_SUCH_DATE",
    "WINDOW_ENDED",
    "Explanation",
    "Fire",
    "FireSearch",
    "SkippedDay",
    "day_reasons",
    "drop_note",
    "english_list",
    "explain_day",
    "explain_instant",
    "first_fires",
    "format_local",
    "timeline",
]


# Why a schedule never fires: NeverFires.reason (see the module docstring).
NO_SUCH_DATE = "NoSuchDate"
EVERY_DAY_EXCLUDED = "EveryDayExcluded"
EVERY_TIME_IN_GAP = "EveryTimeInGap"
WINDOW_ENDED = "WindowEnded"
NO_FIRE_IN_WINDOW = "NoFireInWindow"
NO_FIRE_WITHIN_HORIZON = "NoFireWithinHorizon"
NEVER_FIRES_REASONS = (
    NO_SUCH_DATE,
    EVERY_DAY_EXCLUDED,
    EVERY_TIME_IN_GAP,
    WINDOW_ENDED,
    NO_FIRE_IN_WINDOW,
    NO_FIRE_WITHIN_HORIZON,
)


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire, for humans: the instant, the local time, notes on DST."""

    instant: datetime
    """Aware, UTC."""
    local: datetime
    """The same instant in the schedule's zone."""
    notes: tuple[str, ...] = ()
    """How the DST rule placed it, when it did."""
    reasons: tuple[str, ...] = ()
    """Why its date fires, when more than a plain match decided it: the day tokens that
    matched (``last business day of April 2027``) and the dates shifted to it."""


@dataclass(frozen=True, slots=True)
class SkippedDay:
    """A local date the cron expression matches but an exclusion removes."""

    day: date
    excluded_by: tuple[ExclusionRule, ...]
    note: str = ""
    """With a shift: why its fires go nowhere (``no fire: no business day within 2 days
    after Fri 2027-01-01``)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Whether a day or an instant fires, and a sentence saying why (not)."""

    fires: bool
    message: str
    excluded_by: tuple[ExclusionRule, ...] = ()

    def __str__(self) -> str:
        return self.message


class FireSearch(Protocol):
    """What the explanations read of a Schedule (:mod:`almanac.schedule.engine`), which
    passes itself: its parts and its day-by-day search, in epoch seconds and day ordinals.
    """

    cron: CronExpression
    zone: ZoneInfo
    end: datetime | None
    exclusions: Exclusions
    days: CandidateDays

    @property
    def window(self) -> tuple[datetime | None, datetime | None]: ...
    def in_window(self, x: int) -> bool: ...
    def search_range(self, after_s: int) -> tuple[int, int, int]: ...
    def entries_on(self, n: int) -> tuple[list[Entry], int]: ...
    def entries_after(self, after_s: int) -> Iterator[Entry]: ...


def format_local(fire: Fire) -> str:
    """``Mon 2027-01-04 02:30:00 EET (+02:00)``: a fire as people in its zone read it."""
    local = fire.local
    offset = local.strftime("%z")
    return f"{local:%a %Y-%m-%d %H:%M:%S} {local.tzname()} ({offset[:3]}:{offset[3:5]})"


def first_fires(timeline: Iterator[Fire | SkippedDay], count: int) -> Iterator[Fire | SkippedDay]:
    """A timeline cut after its `count`-th fire (skipped days before it included)."""
    fires = 0
    for item in timeline:
        yield item
        if isinstance(item, Fire):
            fires += 1
            if fires == count:
                return


def timeline(schedule: FireSearch, after: datetime) -> Iterator[Fire | SkippedDay]:
    """Fires after ``after``, and before each the days an exclusion removed (days the
    cron expression matches, with a would-be fire after ``after`` in the window)."""
    after_s = to_seconds(after)
    _, first, last = schedule.search_range(after_s)
    # Skipped days are looked for between one fire and the next only: looking ahead
    # for "the next skipped day" would walk to the horizon when there is none.
    for group in _groups(schedule, after_s):
        day = EPOCH_ORDINAL + group[0][1] // DAY_SECONDS
        yield from _skipped_days(schedule, after_s, first, day - 1)
        yield _fire(schedule, group)
        first = day + 1
    if schedule.end is not None:  # a finite series: the skips after its last fire
        yield from _skipped_days(schedule, after_s, first, last)


def explain_day(schedule: FireSearch, day: date) -> Explanation:
    """Whether the schedule fires on the local date ``day``, or why not."""
    n = day.toordinal()
    fire_day = schedule.days.fire_day(n)
    if fire_day is None:
        field = schedule.days.why_not(n)
        rules = schedule.exclusions.explain(day)
        if field:
            message = f"{quote(schedule.cron.text)} does not match {_day_name(day)} ({field})"
            if rules and schedule.cron.tokens.counts_business_days:
                # B tokens count business days: the exclusion is why it was not picked.
                message += ", which is excluded by " + "; ".join(str(r) for r in rules)
            return Explanation(False, message, rules if schedule.days.business else ())
        message = f"{_day_name(day)} is excluded by " + "; ".join(str(r) for r in rules)
        shift = schedule.days.on_excluded
        if shift is not OnExcludedDay.SKIP:
            target = schedule.days.shift_target(n)
            if target is None:
                message += f"; {drop_note(schedule.days, n)}"
            else:
                message += (
                    f"; its fires move to {_short_day(date.fromordinal(target))} "
                    f"(spec.onExcludedDay {shift.value})"
                )
        return Explanation(False, message, rules)
    reasons = day_reasons(schedule, n)
    why = f"; {'; '.join(reasons)}" if reasons else ""
    entries = _day_entries(schedule, n)
    if not entries:
        return Explanation(
            False,
            f"every time {quote(schedule.cron.text)} matches on {_day_name(day)} falls in a "
            f"daylight-saving gap (wildcard schedules skip those)",
        )
    entries = [e for e in entries if schedule.in_window(e[0])]
    if not entries:
        return Explanation(False, f"{_day_name(day)} is outside the window{_window_text(schedule)}")
    times = [f"{_hhmm(w)} ({format_instant(to_instant(x))})" for x, w, _ in _dedupe(entries)]
    return Explanation(True, f"{_day_name(day)} fires at {english_list(times)}{why}")


def explain_instant(schedule: FireSearch, instant: datetime) -> Explanation:
    """Whether ``instant`` (aware) is a fire, or why not."""
    x = to_seconds(instant)
    text = format_instant(instant)
    if not schedule.in_window(x):
        return Explanation(False, f"{text} is outside the window{_window_text(schedule)}")
    local = instant.astimezone(schedule.zone)
    n = local.date().toordinal()
    hits = [(m, e) for m in (n - 1, n, n + 1) for e in _day_entries(schedule, m) if e[0] == x]
    fires = [e for m, e in hits if schedule.days.fire_day(m) is not None]
    if fires:
        fire = _fire(schedule, fires)
        notes = fire.reasons + fire.notes
        note = f" ({'; '.join(notes)})" if notes else ""
        return Explanation(True, f"{text} fires, local {_local_text(fire.local)}{note}")
    if hits:
        day = explain_day(schedule, date.fromordinal(hits[0][0]))
        return Explanation(False, f"{text} does not fire: {day.message}", day.excluded_by)
    wall = midnight_wall(n) + _time_seconds(local)
    if local.hour not in schedule.cron.hours or local.minute not in schedule.cron.minutes:
        why = f"local time {_hhmm(wall)} does not match the minute and hour fields"
    elif local.second or local.microsecond:
        why = f"local time {local.time().isoformat()} is not on a whole minute"
    else:
        # A matching wall time whose instant is not a fire: its second occurrence
        # under a fixed-time schedule.
        pieces = offset_pieces(
            *offsets_around(schedule.zone, x - 2 * DAY_SECONDS, x + 2 * DAY_SECONDS)
        )
        first = wall_occurrences(wall, pieces)[0]
        why = (
            f"local time {_hhmm(wall)} occurs twice (DST overlap); a fixed-time schedule "
            f"fires at the first occurrence only, {format_instant(to_instant(first))}"
        )
    return Explanation(False, f"{text} does not fire: {why}")


def day_reasons(schedule: FireSearch, n: int) -> tuple[str, ...]:
    """Why the local date ``n`` fires, when more than a plain match decided it: the day
    tokens that match it, and each excluded date whose fires a shift moved to it, with
    the exclusions (``shifted from Sat 2027-04-10 (weekly "Saturday",
    spec.exclusions.weekly[0])``). Empty for a plain date."""
    days = schedule.days
    if not days.business and not schedule.cron.tokens:
        return ()  # a plain date: nothing to say (and nothing to look up per fire)
    fire_day = days.fire_day(n)
    if fire_day is None:
        return ()
    reasons = days.labels(n) if fire_day.matched else []
    for source in fire_day.shifted_from:
        source_day = date.fromordinal(source)
        rules = "; ".join(
            f"{r.kind} {quote(r.entry)}, {r.origin}"
            for r in schedule.exclusions.explain(source_day)
        )
        labels = "".join(f", {label}" for label in days.labels(source))
        reasons.append(f"shifted from {_short_day(source_day)}{labels} ({rules})")
    return tuple(reasons)


def drop_note(days: CandidateDays, n: int) -> str:
    """Why the fires of the matched, excluded date ``n`` go nowhere under a shift."""
    direction = "after" if days.on_excluded is OnExcludedDay.NEXT else "before"
    plural = "s" if days.max_shift > 1 else ""
    return (
        f"no fire: no business day within {days.max_shift} day{plural} {direction} "
        f"{_short_day(date.fromordinal(n))}"
    )


def english_list(items: list[str], limit: int = 8, total: int | None = None) -> str:
    """``a``, ``a and b``, ``a, b and c``; past ``limit`` items, ``... and N more``.
    ``total``: how many items there are, when only the first ones are passed."""
    total = len(items) if total is None else total
    if total > limit:
        items = [*items[:limit], f"{total - limit} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------
# From the search's entries to fires and skipped days


def _groups(schedule: FireSearch, after_s: int) -> Iterator[list[Entry]]:
    """The entries after ``after_s``, one list per instant (gap times collapse)."""
    group: list[Entry] = []
    for entry in schedule.entries_after(after_s):
        if group and entry[0] != group[0][0]:
            yield group
            group = []
        group.append(entry)
    if group:
        yield group


def _skipped_days(
    schedule: FireSearch, after_s: int, first: int, last: int
) -> Iterator[SkippedDay]:
    """Excluded days in [first, last] that would otherwise have fired after after_s."""
    shift = schedule.days.on_excluded is not OnExcludedDay.SKIP
    for n in schedule.days.between(first, last, excluded=True):
        if any(x > after_s and schedule.in_window(x) for x, _, _ in schedule.entries_on(n)[0]):
            day = date.fromordinal(n)
            note = drop_note(schedule.days, n) if shift else ""
            yield SkippedDay(day, schedule.exclusions.explain(day), note)


def _fire(schedule: FireSearch, group: list[Entry]) -> Fire:
    """The fire at the instant of ``group``, with a note per wall time that is not exact."""
    x = group[0][0]
    notes: list[str] = []
    gaps = [_hhmm(w) for _, w, how in group if how == GAP]
    if gaps:
        verb = "does" if len(gaps) == 1 else "do"
        notes.append(
            f"{english_list(gaps)} {verb} not exist (DST gap); fixed-time schedules fire at "
            f"the end of the gap"
        )
    for _, w, how in group:
        if how == FIRST and schedule.cron.fixed_time:
            notes.append(
                f"{_hhmm(w)} occurs twice (DST overlap); fixed-time schedules fire at the "
                f"first occurrence only"
            )
        elif how == FIRST:
            notes.append(f"first of two {_hhmm(w)} (DST overlap)")
        elif how == LATER:
            notes.append(f"second {_hhmm(w)} (DST overlap); wildcard schedules fire at both")
    reasons: list[str] = []
    for n in sorted({EPOCH_ORDINAL + w // DAY_SECONDS for _, w, _ in group}):
        reasons += day_reasons(schedule, n)
    return Fire(
        to_instant(x), to_instant(x).astimezone(schedule.zone), tuple(notes), tuple(reasons)
    )


def _day_entries(schedule: FireSearch, n: int) -> list[Entry]:
    """(instant, wall, how) of the times of day of local date ``n`` (ordinal), in
    order, whether or not the date matches or is excluded, in the window or not."""
    entries, _ = schedule.entries_on(n)
    return sorted(entries)


def _dedupe(entries: list[Entry]) -> list[Entry]:
    out: list[Entry] = []
    for e in entries:
        if not out or out[-1][0] != e[0]:
            out.append(e)
    return out


# --------------------------------------------------------------------------------------
# Text


def _window_text(schedule: FireSearch) -> str:
    start, end = schedule.window
    return (
        f" [{'-' if start is None else format_instant(start)}, "
        f"{'-' if end is None else format_instant(end)}]"
    )


def _hhmm(wall: int) -> str:
    s = wall % DAY_SECONDS
    text = f"{s // 3600:02d}:{s // 60 % 60:02d}"
    return text if s % 60 == 0 else f"{text}:{s % 60:02d}"


def _day_name(day: date) -> str:
    return f"{WEEKDAY_NAMES[day.toordinal() % 7]} {day.isoformat()}"


def _short_day(day: date) -> str:
    """``Sat 2027-04-10``: how the shift explanations name a date (as ``almanac next -o
    wide`` names skipped days)."""
    return f"{day:%a} {day.isoformat()}"


def _time_seconds(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _local_text(local: datetime) -> str:
    clock = local.strftime("%H:%M:%S")
    return f"{_day_name(local.date())} {clock} {local.tzname()} ({_utc_offset(local)})"


def _utc_offset(local: datetime) -> str:
    offset = local.utcoffset()
    assert offset is not None
    minutes = offset // timedelta(minutes=1)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
