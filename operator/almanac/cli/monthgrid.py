"""Month grids like ``cal``: the days a job fires, how often, and the days it skips and why.

Where it sits: pure, at the edge of the command lines: ``almanac calendar -f FILE`` and
``kubectl almanac calendar JOB`` build a :class:`~almanac.schedule.engine.Schedule` the
one way the operator does and pass it here with the first month and how many, and the
instant they count as now. It reads no clock and no file; it imports the engine's public
parts, :mod:`almanac.errors` and :mod:`almanac.times`.

Why grids: a list of the next ten fires does not show that a bank's job skips the three
days around Christmas, or that a Calendar edit moved a whole week; a month at a glance
does. Each day cell is its number and a mark::

     7 +1     fires once that local date (+2, +24, +1k for 1,440...)
     1 -a     skipped: the cron fields match it but an exclusion removes it; the
              legend under the month says why for each letter (weekly "Saturday",
              public holiday in RO: ..., iCalendar event "Offsite", with where it is
              written), and lists the days
     5        no fire: the cron fields do not match, or outside spec.startTime/endTime

Weeks start on Monday (ISO 8601). Days are local dates in the job's zone, as the
exclusions are. With colour (a terminal), fires are green, days skipped by a written
list yellow and those skipped by a holiday, an iCalendar event or a holiday date red;
without (a pipe, a file, ``NO_COLOR``), the same text without escape codes.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from almanac.errors import quote
from almanac.schedule.engine import NeverFires, Schedule
from almanac.schedule.exclusions import ExclusionKind, ExclusionRule
from almanac.times import format_instant

__all__ = ["DayMark", "MonthGrids", "month_marks", "render_months"]

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_COMPUTED = (ExclusionKind.HOLIDAY, ExclusionKind.HOLIDAYS, ExclusionKind.ICAL)
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WEEKDAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_CELL = 7  # "dd" + space + a 4-character mark


@dataclass(frozen=True, slots=True)
class DayMark:
    """What a local date holds: its fires, or the rules that skipped it."""

    fires: int = 0
    skipped_by: tuple[ExclusionRule, ...] = ()


def _months(year: int, month: int, count: int) -> Iterator[tuple[int, int]]:
    for i in range(count):
        y, m = divmod(month - 1 + i, 12)
        yield year + y, m + 1


def _local_midnight(schedule: Schedule, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=schedule.zone)


def month_marks(schedule: Schedule, year: int, month: int, count: int) -> dict[date, DayMark]:
    """The marked local dates of ``count`` months from ``year``-``month``: each date that
    fires (with how many fires) or that an exclusion skips (with the rules). A date on
    which the cron fields do not match, or outside the window, is absent."""
    first = date(year, month, 1)
    last_year, last_month = list(_months(year, month, count))[-1]
    last = date(last_year, last_month, calendar.monthrange(last_year, last_month)[1])
    fires: dict[date, int] = {}
    # Fires strictly after the instant just before the first local midnight: the UTC
    # instants of the local dates shown (an instant of date D is within a day of D).
    after = _local_midnight(schedule, first) - timedelta(days=1, microseconds=1)
    for instant in schedule.fires(after):
        day = instant.astimezone(schedule.zone).date()
        if day > last:
            break
        if day >= first:
            fires[day] = fires.get(day, 0) + 1
    marks = {day: DayMark(fires=n) for day, n in fires.items()}
    for n in schedule.days.between(first.toordinal(), last.toordinal(), excluded=True):
        entries = schedule.entries_on(n)[0]
        if any(schedule.in_window(x) for x, _, _ in entries):
            day = date.fromordinal(n)
            marks[day] = DayMark(skipped_by=schedule.exclusions.explain(day))
    return marks


def _count(n: int) -> str:
    return str(n) if n < 1000 else f"{n // 1000}k"


def _paint(text: str, colour: str, on: bool) -> str:
    return f"{colour}{text}{_RESET}" if on and colour else text


@dataclass(frozen=True, slots=True)
class MonthGrids:
    """The lines to print, and why the job never fires after now (None: it fires), which
    both command lines turn into exit code 1, as ``almanac next`` does."""

    lines: list[str]
    never: NeverFires | None


def render_months(
    schedule: Schedule,
    title: str,
    year: int,
    month: int,
    count: int,
    *,
    now: datetime,
    color: bool = False,
) -> MonthGrids:
    """``count`` month grids from ``year``-``month``, each with its legend, under a header
    naming the job, its schedule and its zone, and the key to the marks. When the job
    never fires after ``now`` (any reason :meth:`Schedule.next_fire` gives, not only those
    known without a start: a window that ended, every time in a DST gap), the header says
    why, and the grids are drawn all the same (past months may hold fires)."""
    marks = month_marks(schedule, year, month, count)
    kind = "fixed-time" if schedule.cron.fixed_time else "wildcard"
    lines = [
        f"{title}: {quote(schedule.cron.text)} ({kind}) in {schedule.zone.key}",
        "  " + _paint("+N", _GREEN, color) + " N fires that day   "
        + _paint("-a", _RED, color) + " skipped (why: under the month)   "
        + "blank: no match, or outside the window",
    ]  # fmt: skip
    upcoming = schedule.next_fire(now)
    never = upcoming if isinstance(upcoming, NeverFires) else None
    if never is not None:
        when = "" if schedule.never_fires else f" after {format_instant(now)}"
        lines.append(f"  never fires{when}: {never.message}")
    for y, m in _months(year, month, count):
        lines.append("")
        lines += _month(y, m, marks, color)
    return MonthGrids(lines, never)


def _month(year: int, month: int, marks: dict[date, DayMark], color: bool) -> list[str]:
    width = _CELL * 7
    head = f"{calendar.month_name[month]} {year}"
    lines = [_paint(head.center(width).rstrip(), _BOLD, color)]
    lines.append("".join(f"{d:<{_CELL}}" for d in _WEEKDAYS).rstrip())
    letters: dict[str, str] = {}  # reason -> letter
    days_of: dict[str, list[date]] = {}
    colour_of: dict[str, str] = {}
    fires = 0
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        cells: list[str] = []
        for day in week:
            if day.month != month:
                cells.append(" " * _CELL)
                continue
            mark = marks.get(day, DayMark())
            number, tag, colour = f"{day.day:>2}", "", ""
            if mark.fires:
                fires += mark.fires
                tag, colour = f"+{_count(mark.fires)}", _GREEN
            elif mark.skipped_by:
                reason = "; ".join(str(r) for r in mark.skipped_by)
                letter = letters.setdefault(reason, _LETTERS[len(letters) % len(_LETTERS)])
                days_of.setdefault(reason, []).append(day)
                computed = any(r.kind in _COMPUTED for r in mark.skipped_by)
                tag, colour = f"-{letter}", _RED if computed else _YELLOW
                colour_of[reason] = colour
            pad = " " * (_CELL - 3 - len(tag))  # outside the colour, so rstrip() works
            cells.append(f"{number} {_paint(tag, colour, color) if tag else ''}{pad}")
        lines.append("".join(cells).rstrip())
    skipped = sum(len(d) for d in days_of.values())
    lines.append(
        f"  {fires} fire{'' if fires == 1 else 's'}, "
        f"{skipped} day{'' if skipped == 1 else 's'} skipped"
    )
    for reason, letter in letters.items():
        days = ", ".join(str(d.day) for d in days_of[reason])
        lines.append(f"  {_paint('-' + letter, colour_of[reason], color)} {days}: {reason}")
    return lines
