"""The schedule engine: when does a ScheduledJob fire?

Where it sits: pure, between :mod:`almanac.api.models` (which builds a :class:`Schedule` from a
validated spec and its Calendars) and the operator and the ``almanac next`` command (which
ask it for instants). It knows nothing of Kubernetes and never reads the clock: ``after``
is always an argument.

The rules are docs/api.md's "When a ScheduledJob fires"; docs/schedule.md explains them with
examples and records the choices made where the contract is silent::

    schedule = Schedule.build("30 2 * * 1-5", time_zone="Europe/Bucharest", exclusions=ex)
    schedule.next_fire(after)        # datetime (aware, UTC) | NeverFires
    schedule.fires(after)            # Iterator[datetime], in order, strictly after `after`
    schedule.timeline(after)         # Iterator[Fire | SkippedDay], for humans
    schedule.explain_day(day)        # Explanation: does it fire that local date, or why not
    schedule.explain_instant(t)      # Explanation: is t a fire, or why not
    schedule.never_fires             # NeverFires | None, what is certain without a start

How it works, and why it is fast and always terminates:

* Days, not minutes. Candidate local dates are found month by month; which days of a
  month match the cron day fields and survive the periodic exclusions depends only on the
  month, its length and the weekday it starts on, so that is computed once per shape
  (at most 12 x 2 x 7 shapes) and cached.
* Offsets, not time-zone arithmetic per minute. The zone's offset changes are found once
  per zone and year (sampling daily, then bisecting to the second; in all of tzdata no
  two changes of a zone since 1900 are less than 6.9 days apart) and cached. A day with no
  change within a day of it maps wall times to instants by one subtraction; a day near a
  change uses the exact piecewise mapping, which is where the DST rule is applied.
* A horizon that is certain. The Gregorian calendar repeats every 400 years (146,097
  days, a whole number of weeks), holidays are finite, and every zone follows one annual
  rule after its last listed change (tzdata lists changes up to 2087). So if nothing fires
  within 400 years after the latest of (the start, the last holiday, 2100), nothing ever
  will. The common impossible schedules (``0 0 30 2 *``, every weekday excluded, 29.02
  excluded) are recognised without scanning at all (:attr:`Schedule.never_fires`).
"""

from __future__ import annotations

import functools
import heapq
import re
import zoneinfo
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from almanac.errors import FieldError, InvalidSpec, quote
from almanac.schedule.exclusions import WEEKDAY_NAMES, ExclusionKind, ExclusionRule, Exclusions
from almanac.times import format_duration, format_instant

__all__ = [
    "CronExpression",
    "Explanation",
    "Fire",
    "NeverFires",
    "Schedule",
    "SkippedDay",
    "first_fires",
    "format_duration",
    "format_instant",
    "format_local",
    "parse_date_time",
    "parse_time_zone",
]

# --------------------------------------------------------------------------------------
# Cron expressions

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTH_NAMES),
    # 0 and 7 are both Sunday, as in Vixie cron.
    ("day-of-week", 0, 7, _DOW_NAMES),
)
_NUMBER = re.compile(r"[0-9]+")
_EXPECTED = "expected 5 fields (minute hour day-of-month month day-of-week) or one of " + ", ".join(
    _MACROS
)
_SYNTAX = "numbers, names, *, ranges a-b, steps /n and lists a,b"
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


def _parse_value(token: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if _NUMBER.fullmatch(token):
        value = int(token)
        if not low <= value <= high:
            raise ValueError(f"{name} {value} is out of range {low}-{high}")
        return value
    if names and token.lower() in names:
        return names.index(token.lower()) + (1 if name == "month" else 0)
    if names:
        example = f"{names[0].upper()}-{names[-1].upper()}"
        raise ValueError(f"{quote(token)} is not a {name} ({low}-{high} or {example})")
    raise ValueError(f"{quote(token)} in the {name} field is not supported ({_SYNTAX})")


def _parse_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"the {name} field {quote(text)} has an empty list item")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                raise ValueError(f"step {quote(step_text)} in the {name} field is not a number > 0")
            step = int(step_text)
        if span in ("*", "?"):
            first, last = low, high
        else:
            a, dash, b = span.partition("-")
            first = _parse_value(a, name, low, high, names)
            if dash:
                last = _parse_value(b, name, low, high, names)
                if first > last:
                    raise ValueError(f"range {quote(span)} in the {name} field runs backwards")
            else:
                # "5/15" means 5-59/15, as in Kubernetes CronJob (robfig/cron) and croniter.
                last = high if slash else first
        values.update(range(first, last + 1, step))
    return values


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed 5-field cron expression (Vixie cron, with names and @macros)."""

    text: str
    """As written, e.g. ``"30 2 * * 1-5"`` or ``"@daily"``."""
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    """0 = Sunday ... 6 = Saturday (7 in the expression is folded into 0)."""
    dom_star: bool
    """The day-of-month field starts with ``*`` (or is ``?``)."""
    dow_star: bool
    """The day-of-week field starts with ``*`` (or is ``?``)."""
    fixed_time: bool
    """Neither the minute nor the hour field starts with ``*``: the DST rule for fixed
    times applies (a gap time fires at the end of the gap, a repeated time once)."""

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; a ``ValueError`` says what is wrong and what is expected."""
        return _parse_cron(text)

    def day_matches(self, day_of_month: int, day_of_week: int) -> bool:
        """The Vixie rule: if either day field starts with ``*`` both must match, else
        either may. ``day_of_week`` is 0 = Sunday."""
        dom = day_of_month in self.days_of_month
        dow = day_of_week in self.days_of_week
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)

    def matches_date(self, day: date) -> bool:
        """Whether the month and day fields match the local date ``day``."""
        return day.month in self.months and self.day_matches(day.day, day.toordinal() % 7)

    def why_not_date(self, day: date) -> str:
        """Which field rejects ``day`` ('' if none does)."""
        if day.month not in self.months:
            return "month"
        dom = day.day in self.days_of_month
        dow = day.toordinal() % 7 in self.days_of_week
        if self.dom_star or self.dow_star:
            return "" if dom and dow else ("day-of-month" if not dom else "day-of-week")
        return "" if dom or dow else "neither day-of-month nor day-of-week"


@functools.lru_cache(maxsize=1024)
def _parse_cron(text: str) -> CronExpression:
    fields = _MACROS.get(text.strip().lower(), text).split()
    if not fields:
        raise ValueError(f"{quote(text)} is empty; {_EXPECTED}")
    if fields[0].upper().startswith(("TZ=", "CRON_TZ=")):
        raise ValueError(
            f"{quote(text)}: a time zone in the schedule is not supported; set spec.timeZone"
        )
    if fields[0].startswith("@"):
        raise ValueError(f"{quote(text)} is not a known macro; {_EXPECTED}")
    if len(fields) != 5:
        raise ValueError(f"{quote(text)} has {len(fields)} fields; {_EXPECTED}")
    try:
        sets = [_parse_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    except ValueError as e:
        raise ValueError(f"{quote(text)} is not a valid cron expression: {e}") from None
    for i in (0, 1, 3):
        if "?" in fields[i]:
            raise ValueError(
                f"{quote(text)} is not a valid cron expression: "
                f"? is only allowed in the day-of-month and day-of-week fields"
            )
    dows = frozenset(d % 7 for d in sets[4])
    return CronExpression(
        text=text,
        minutes=tuple(sorted(sets[0])),
        hours=tuple(sorted(sets[1])),
        days_of_month=frozenset(sets[2]),
        months=frozenset(sets[3]),
        days_of_week=dows,
        dom_star=fields[2].startswith(("*", "?")),
        dow_star=fields[4].startswith(("*", "?")),
        fixed_time=not (fields[0].startswith("*") or fields[1].startswith("*")),
    )


# --------------------------------------------------------------------------------------
# Time zones and date-times

_SECOND = timedelta(seconds=1)
_DAY = 86400
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORD = date(1970, 1, 1).toordinal()
# Days whose instants stay inside datetime's range (an instant of local date D lies within
# 24 hours of D, as every UTC offset is less than a day).
_MIN_ORD = date(1, 1, 3).toordinal()
_MAX_ORD = date(9999, 12, 29).toordinal()
# The Gregorian calendar repeats every 400 years: 146,097 days, exactly 20,871 weeks.
_CYCLE_DAYS = 146097
# After this date every zone follows its annual rule (tzdata lists explicit changes up to
# 2087, Asia/Gaza's predictions); the 400-year horizon starts no earlier.
_ZONE_RULES_SETTLED_ORD = date(2100, 1, 1).toordinal()
# Offset changes are looked for once a day, then bisected to the second. In tzdata no two
# changes of a zone since 1900 are less than 6.9 days apart (America/Cambridge_Bay, 2000),
# so a daily look finds each; only a change undone within the same day could hide.
_SAMPLE_SECONDS = _DAY
_NEG = -(1 << 62)
_POS = 1 << 62

# RFC 3339 without fractions, offset optional: exactly what the CRD's pattern admits.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE_TIME_EXPECTED = (
    "expected YYYY-MM-DDTHH:MM:SS, optionally followed by Z or an offset like +02:00"
)


@functools.cache
def _zone_names() -> frozenset[str]:
    # available_timezones() lists what the system directory holds, which includes the
    # host's own "localtime" and the "posixrules" template: not names of zones.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}


def parse_time_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ``ValueError`` for anything else (``localtime``, paths...)."""
    if name in _zone_names():
        try:
            return ZoneInfo(name)
        except (ValueError, OSError):  # pragma: no cover - listed but unreadable
            pass
    raise ValueError(
        f"{quote(name)} is not an IANA time zone name (for example Europe/Bucharest or UTC)"
    )


def parse_date_time(text: str) -> datetime:
    """RFC 3339 ``2027-01-01T00:00:00`` with an optional ``Z``/offset; naive without one."""
    m = _DATE_TIME.fullmatch(text.strip())
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        suffix = m[7] or ""
        try:
            tz: timezone | None = None
            if suffix == "Z":
                tz = UTC
            elif suffix:
                minutes = int(suffix[1:3]) * 60 + int(suffix[4:6])
                if int(suffix[4:6]) >= 60:
                    raise ValueError(suffix)
                tz = timezone(timedelta(minutes=-minutes if suffix[0] == "-" else minutes))
            return datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            pass
    raise ValueError(f"{quote(text)} is not a date-time ({_DATE_TIME_EXPECTED})")


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


def _seconds(instant: datetime) -> int:
    """Whole seconds since the epoch, rounded down."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; pass an aware datetime (e.g. tzinfo=UTC)")
    return (instant - _UTC_EPOCH) // _SECOND


def _instant(seconds: int) -> datetime:
    return _UTC_EPOCH + timedelta(seconds=seconds)


def _wall(day_ordinal: int) -> int:
    """The wall-clock seconds of local midnight of a day, counted like epoch seconds."""
    return (day_ordinal - _EPOCH_ORD) * _DAY


def _offset_at(zone: ZoneInfo, seconds: int) -> int:
    try:
        local = datetime.fromtimestamp(seconds, zone)  # 3x faster than astimezone
    except (OverflowError, OSError, ValueError):  # pragma: no cover - platform range
        local = _instant(seconds).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return offset // _SECOND


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - _EPOCH_ORD) * _DAY


@functools.lru_cache(maxsize=4096)
def _year_offsets(zone: ZoneInfo, year: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(offset at the start of ``year`` UTC, instants of changes in (start, end], offsets
    after them). Found by sampling and bisection; see _SAMPLE_SECONDS."""
    # Within a day of datetime's range ends, so that any local time is representable.
    start = max(_year_start(year), _year_start(1) + _DAY)
    end = _year_start(year + 1) if year < 9999 else _year_start(9999) + 364 * _DAY
    initial = offset = _offset_at(zone, start)
    changes: list[int] = []
    offsets: list[int] = []
    t = start
    while t < end:
        nt = min(t + _SAMPLE_SECONDS, end)
        n_offset = _offset_at(zone, nt)
        while n_offset != offset:  # one or more changes in (t, nt]: find the first
            a, b = t, nt
            while b - a > 1:
                mid = (a + b) // 2
                if _offset_at(zone, mid) == offset:
                    a = mid
                else:
                    b = mid
            t, offset = b, _offset_at(zone, b)
            changes.append(b)
            offsets.append(offset)
        t = nt
    return initial, tuple(changes), tuple(offsets)


def _year_of(seconds: int) -> int:
    return date.fromordinal(_EPOCH_ORD + seconds // _DAY).year


def _offsets_around(zone: ZoneInfo, lo: int, hi: int) -> tuple[int, list[tuple[int, int]]]:
    """(offset at ``lo``, [(instant, offset after)] for every change in (lo, hi])."""
    year = _year_of(lo)
    initial, changes, offsets = _year_offsets(zone, year)
    i = bisect_right(changes, lo)
    offset = offsets[i - 1] if i else initial
    found: list[tuple[int, int]] = []
    while True:
        for j in range(i, len(changes)):
            if changes[j] > hi:
                return offset, found
            found.append((changes[j], offsets[j]))
        year += 1
        if year > 9999 or _year_start(year) > hi:
            return offset, found
        _, changes, offsets = _year_offsets(zone, year)
        i = 0


# A piece of the UTC time line with one offset: [start, end), offset.
_Piece = tuple[int, int, int]


def _pieces(offset: int, changes: list[tuple[int, int]]) -> list[_Piece]:
    starts = [_NEG] + [t for t, _ in changes]
    ends = [t for t, _ in changes] + [_POS]
    offsets = [offset] + [o for _, o in changes]
    return list(zip(starts, ends, offsets, strict=True))


def _occurrences(wall: int, pieces: list[_Piece]) -> list[int]:
    """Every instant at which the wall clock reads ``wall``, in order."""
    return [wall - o for a, b, o in pieces if a <= wall - o < b]


def _first_after(wall: int, pieces: list[_Piece]) -> int:
    """The first instant at which the wall clock reads ``wall`` or later (for a wall time
    in a gap: the end of the gap)."""
    for a, b, o in pieces:
        if a + o >= wall:
            return a
        if wall - o < b:
            return wall - o
    raise AssertionError("unreachable: the last piece is unbounded")  # pragma: no cover


# How a wall time became an instant.
_EXACT, _FIRST, _LATER, _GAP = 0, 1, 2, 3
_Entry = tuple[int, int, int]  # (instant, wall, how)


# --------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class NeverFires:
    """The schedule has no fire (after a given instant), and why.

    ``reason`` is CamelCase for Events and the Ready condition: ``NoSuchDate``,
    ``EveryDayExcluded``, ``WindowEnded``, ``NoFireInWindow``, ``NoFireWithinHorizon``.
    """

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire, for humans: the instant, the local time, notes on DST."""

    instant: datetime
    """Aware, UTC."""
    local: datetime
    """The same instant in the schedule's zone."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SkippedDay:
    """A local date the cron expression matches but an exclusion removes."""

    day: date
    excluded_by: tuple[ExclusionRule, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Whether a day or an instant fires, and a sentence saying why (not)."""

    fires: bool
    message: str
    excluded_by: tuple[ExclusionRule, ...] = ()

    def __str__(self) -> str:
        return self.message


def _hhmm(wall: int) -> str:
    s = wall % _DAY
    text = f"{s // 3600:02d}:{s // 60 % 60:02d}"
    return text if s % 60 == 0 else f"{text}:{s % 60:02d}"


def _day_name(day: date) -> str:
    return f"{WEEKDAY_NAMES[day.toordinal() % 7]} {day.isoformat()}"


def _enumerate(items: list[str], limit: int = 8) -> str:
    if len(items) > limit:
        items = [*items[:limit], f"{len(items) - limit} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------
# The schedule


class Schedule:
    """A cron expression in a zone, within a window, minus exclusions. Immutable.

    Build one with :meth:`build` (from the strings of a spec, with field paths in errors)
    or with the constructor (from parsed values).
    """

    __slots__ = (
        "_end_s",
        "_hm",
        "_holiday_anchor",
        "_never",
        "_shapes",
        "_start_s",
        "cron",
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

    def __init__(
        self,
        cron: CronExpression,
        zone: ZoneInfo,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        exclusions: Exclusions | None = None,
    ) -> None:
        self.cron = cron
        self.zone = zone
        self.start = start
        self.end = end
        self.exclusions = exclusions if exclusions is not None else Exclusions()
        self._hm = tuple(h * 3600 + m * 60 for h in cron.hours for m in cron.minutes)
        last_holiday = self.exclusions.last_holiday
        self._holiday_anchor = last_holiday.toordinal() if last_holiday else 0
        self._shapes: dict[tuple[int, int, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._start_s = None if start is None else self._resolve(start, ceil=True)
        self._end_s = None if end is None else self._resolve(end, ceil=False)
        if self._start_s is not None and self._end_s is not None and self._end_s < self._start_s:
            raise InvalidSpec([("spec.endTime", "is before spec.startTime")])
        self._never = self._static_never()

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
    ) -> Schedule:
        """From the fields of a ScheduledJob spec; :class:`InvalidSpec` names each bad one.

        ``time_zone`` None means ``default_time_zone`` (the operator's, UTC out of the box).
        """
        errors: list[FieldError] = []
        cron = zone = start = end = None
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
            return cls(cron, zone, start=start, end=end, exclusions=exclusions)
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
        return (
            f"Schedule({self.cron.text!r}, {self.zone.key!r}, start={self.start!r}, "
            f"end={self.end!r}, exclusions={self.exclusions!r})"
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
            None if self._start_s is None else _instant(self._start_s),
            None if self._end_s is None else _instant(self._end_s),
        )

    def fires(self, after: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``after`` (aware), in order, UTC; ends when the
        window ends (or at the horizon, see the module docstring)."""
        last = None
        for x, _, _ in self._entries(_seconds(after)):
            if x != last:
                last = x
                yield _instant(x)

    def next_fire(self, after: datetime) -> datetime | NeverFires:
        """The first fire strictly after ``after``, or why there is none."""
        for x in self.fires(after):
            return x
        return self._why_none(_seconds(after))

    def timeline(self, after: datetime) -> Iterator[Fire | SkippedDay]:
        """Fires after ``after``, and before each the days an exclusion removed (days the
        cron expression matches, with a would-be fire after ``after`` in the window)."""
        after_s = _seconds(after)
        _, first, last = self._range(after_s)
        # Skipped days are looked for between one fire and the next only: looking ahead
        # for "the next skipped day" would walk to the horizon when there is none.
        for group in self._groups(after_s):
            day = _EPOCH_ORD + group[0][1] // _DAY
            yield from self._skipped_days(after_s, first, day - 1)
            yield self._fire(group)
            first = day + 1
        if self._end_s is not None:  # a finite series: the skips after its last fire
            yield from self._skipped_days(after_s, first, last)

    def explain_day(self, day: date) -> Explanation:
        """Whether the schedule fires on the local date ``day``, or why not."""
        field = self.cron.why_not_date(day)
        if field:
            return Explanation(
                False, f"{quote(self.cron.text)} does not match {_day_name(day)} ({field})"
            )
        rules = self.exclusions.explain(day)
        if rules:
            return Explanation(
                False,
                f"{_day_name(day)} is excluded by " + "; ".join(str(r) for r in rules),
                rules,
            )
        entries = self._day_entries(day.toordinal())
        if not entries:
            return Explanation(
                False,
                f"every time {quote(self.cron.text)} matches on {_day_name(day)} falls in a "
                f"daylight-saving gap (wildcard schedules skip those)",
            )
        entries = [e for e in entries if self._in_window(e[0])]
        if not entries:
            return Explanation(
                False, f"{_day_name(day)} is outside the window{self._window_text()}"
            )
        times = [f"{_hhmm(w)} ({format_instant(_instant(x))})" for x, w, _ in _dedupe(entries)]
        return Explanation(True, f"{_day_name(day)} fires at {_enumerate(times)}")

    def explain_instant(self, instant: datetime) -> Explanation:
        """Whether ``instant`` (aware) is a fire, or why not."""
        x = _seconds(instant)
        text = format_instant(instant)
        if not self._in_window(x):
            return Explanation(False, f"{text} is outside the window{self._window_text()}")
        local = instant.astimezone(self.zone)
        n = local.date().toordinal()
        hits = [(m, e) for m in (n - 1, n, n + 1) for e in self._day_entries(m) if e[0] == x]
        fires = [e for m, e in hits if self._is_candidate(m)]
        if fires:
            fire = self._fire(fires)
            note = f" ({'; '.join(fire.notes)})" if fire.notes else ""
            return Explanation(True, f"{text} fires, local {_local_text(fire.local)}{note}")
        if hits:
            day = self.explain_day(date.fromordinal(hits[0][0]))
            return Explanation(False, f"{text} does not fire: {day.message}", day.excluded_by)
        wall = _wall(n) + _time_seconds(local)
        if local.hour not in self.cron.hours or local.minute not in self.cron.minutes:
            why = f"local time {_hhmm(wall)} does not match the minute and hour fields"
        elif local.second or local.microsecond:
            why = f"local time {local.time().isoformat()} is not on a whole minute"
        else:
            # A matching wall time whose instant is not a fire: its second occurrence
            # under a fixed-time schedule.
            pieces = _pieces(*_offsets_around(self.zone, x - 2 * _DAY, x + 2 * _DAY))
            first = _occurrences(wall, pieces)[0]
            why = (
                f"local time {_hhmm(wall)} occurs twice (DST overlap); a fixed-time schedule "
                f"fires at the first occurrence only, {format_instant(_instant(first))}"
            )
        return Explanation(False, f"{text} does not fire: {why}")

    # -- the engine ---------------------------------------------------------------------

    def _resolve(self, moment: datetime, *, ceil: bool) -> int:
        """A window end as an instant: aware is itself; naive is a wall time, resolved as
        fixed-time cron times are (first occurrence; in a gap, the end of the gap)."""
        if moment.tzinfo is not None:
            x = _seconds(moment)
            return x + 1 if ceil and moment.microsecond else x
        wall = (moment.toordinal() - _EPOCH_ORD) * _DAY + (
            moment.hour * 3600 + moment.minute * 60 + moment.second
        )
        pieces = _pieces(*_offsets_around(self.zone, wall - _DAY, wall + _DAY))
        occurrences = _occurrences(wall, pieces)
        if not occurrences:
            return _first_after(wall, pieces)
        return occurrences[0] + (1 if ceil and moment.microsecond else 0)

    def _in_window(self, x: int) -> bool:
        return (self._start_s is None or x >= self._start_s) and (
            self._end_s is None or x <= self._end_s
        )

    def _window_text(self) -> str:
        start, end = self.window
        return (
            f" [{'-' if start is None else format_instant(start)}, "
            f"{'-' if end is None else format_instant(end)}]"
        )

    def _shape(
        self, month: int, days: int, first_dow: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(days the cron day fields match, those not excluded every year) of a month of
        ``days`` days starting on weekday ``first_dow`` (0 = Sunday)."""
        key = (month, days, first_dow)
        shape = self._shapes.get(key)
        if shape is None:
            matching = tuple(
                d for d in range(1, days + 1) if self.cron.day_matches(d, (first_dow + d - 1) % 7)
            )
            ex = self.exclusions
            annual, monthly, weekly = ex.annual_days(month), ex.monthly_days, ex.weekly_days
            allowed = tuple(
                d
                for d in matching
                if d not in annual and d not in monthly and (first_dow + d - 1) % 7 not in weekly
            )
            shape = self._shapes[key] = (matching, allowed)
        return shape

    def _days(self, first: int, last: int, *, excluded: bool = False) -> Iterator[int]:
        """Ordinals in [first, last] of the local dates the cron day fields match and that
        are not excluded (with ``excluded``: that are excluded), in order."""
        start = date.fromordinal(first)
        year, month = start.year, start.month
        months = self.cron.months
        while year <= 9999:
            month_start = date(year, month, 1).toordinal()
            if month_start > last:
                return
            if month in months:
                days = _month_days(year, month)
                matching, allowed = self._shape(month, days, month_start % 7)
                holidays = self.exclusions.holidays_in(year, month)
                if excluded:
                    for d in matching:
                        n = month_start + d - 1
                        if first <= n <= last and (d not in allowed or d in holidays):
                            yield n
                else:
                    for d in allowed:
                        n = month_start + d - 1
                        if n < first or d in holidays:
                            continue
                        if n > last:
                            return
                        yield n
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _horizon(self, day: int) -> int:
        """The last day to look at when nothing fired since ``day``: 400 years after the
        calendar and the zone's rules are periodic (see the module docstring)."""
        anchor = max(day, _ZONE_RULES_SETTLED_ORD, self._holiday_anchor)
        return min(_MAX_ORD, anchor + _CYCLE_DAYS + 1)

    def _range(self, after_s: int) -> tuple[int, int, int]:
        """(lowest instant excluded, first day, last day) to look at after ``after_s``;
        the last day is the window's, not the horizon."""
        low = after_s if self._start_s is None else max(after_s, self._start_s - 1)
        # An instant of local date D lies within a day of D's midnight (offsets < 24 h).
        first = max(_MIN_ORD, _EPOCH_ORD + low // _DAY - 1)
        last = _MAX_ORD
        if self._end_s is not None:
            last = min(last, _EPOCH_ORD + self._end_s // _DAY + 1)
        return low, first, last

    def _day_entries(self, n: int) -> list[_Entry]:
        """(instant, wall, how) of the times of day of local date ``n`` (ordinal), in
        order, whether or not the date matches or is excluded, in the window or not."""
        entries, _ = self._day(n)
        return sorted(entries)

    def _is_candidate(self, n: int) -> bool:
        day = date.fromordinal(n)
        return self.cron.matches_date(day) and not self.exclusions.excludes(day)

    def _day(self, n: int) -> tuple[list[_Entry], int]:
        """(entries of day ``n``, the first instant at which any later day begins)."""
        w = _wall(n)
        offset, changes = _offsets_around(self.zone, w - _DAY, w + 2 * _DAY)
        if not changes:
            base = w - offset
            return [(base + s, w + s, _EXACT) for s in self._hm], base + _DAY
        pieces = _pieces(offset, changes)
        entries: list[_Entry] = []
        fixed = self.cron.fixed_time
        for s in self._hm:
            wall = w + s
            occurrences = _occurrences(wall, pieces)
            if not occurrences:
                if fixed:
                    entries.append((_first_after(wall, pieces), wall, _GAP))
            elif fixed or len(occurrences) == 1:
                entries.append((occurrences[0], wall, _FIRST if len(occurrences) > 1 else _EXACT))
            else:
                entries.extend(
                    (x, wall, _FIRST if i == 0 else _LATER) for i, x in enumerate(occurrences)
                )
        return entries, _first_after(w + _DAY, pieces)

    def _entries(self, after_s: int) -> Iterator[_Entry]:
        """(instant, wall, how) of every fire after ``after_s`` in the window, ordered by
        instant; one instant may come several times in a row (gap times collapsing)."""
        if self._never is not None:
            return
        low, first, last = self._range(after_s)
        end = _POS if self._end_s is None else self._end_s
        horizon = self._horizon(first)
        heap: list[_Entry] = []
        hm = self._hm
        for n in self._days(first, last):
            if n > horizon:
                break
            w = _wall(n)
            offset, changes = _offsets_around(self.zone, w - _DAY, w + 2 * _DAY)
            if not changes and not heap:
                # The common case: one offset all day, nothing pending; emit in order.
                base = w - offset
                for i in range(bisect_right(hm, low - base), len(hm)):
                    x = base + hm[i]
                    if x > end:
                        return
                    horizon = self._horizon(n)
                    yield x, w + hm[i], _EXACT
                continue
            # Near an offset change instants of neighbouring days may interleave (a
            # fall-back across midnight): hold them until no later day can come first.
            entries, bound = self._day(n)
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
        cron = self.cron
        any_match = False
        hits: dict[ExclusionRule, None] = {}
        rules = self.exclusions.rules
        for month in sorted(cron.months):
            for days in _MONTH_LENGTHS[month]:
                for first_dow in range(7):
                    matching, allowed = self._shape(month, days, first_dow)
                    if allowed:
                        return None
                    any_match = any_match or bool(matching)
                    for d in matching:
                        dow = (first_dow + d - 1) % 7
                        hits.update(
                            dict.fromkeys(r for r in rules if _periodic_hit(r, month, d, dow))
                        )
        text = quote(cron.text)
        if not any_match:
            months = [_MONTH_TITLES[m - 1] for m in sorted(cron.months)]
            doms = [str(d) for d in sorted(cron.days_of_month)]
            verb = "has" if len(months) == 1 else "have"
            return NeverFires(
                "NoSuchDate",
                f"{text} matches no date: {_enumerate(months)} {verb} no day "
                f"{_enumerate(doms).replace(' and ', ' or ')}",
            )
        culprits = [str(r) for r in rules if r in hits]  # in the order they were written
        return NeverFires(
            "EveryDayExcluded", f"every date {text} matches is excluded, by {_enumerate(culprits)}"
        )

    def _why_none(self, after_s: int) -> NeverFires:
        if self._never is not None:
            return self._never
        if self._end_s is not None:
            end = format_instant(_instant(self._end_s))
            if self._end_s <= after_s:
                return NeverFires("WindowEnded", f"the window ended at {end} (spec.endTime)")
            return NeverFires(
                "NoFireInWindow",
                f"no fire between {format_instant(_instant(after_s))} and the end of the "
                f"window at {end} (spec.endTime)",
            )
        last = self._horizon(self._range(after_s)[1])
        if last == _MAX_ORD:
            return NeverFires(
                "NoFireWithinHorizon",
                f"no fire up to {date.fromordinal(last).isoformat()}, the last date handled",
            )
        horizon = date.fromordinal(last)
        return NeverFires(
            "NoFireWithinHorizon",
            f"no fire up to {horizon.isoformat()}; calendar and time-zone rules repeat every "
            f"400 years, so it never fires (are all its times in a daylight-saving gap?)",
        )

    # -- timeline helpers ---------------------------------------------------------------

    def _groups(self, after_s: int) -> Iterator[list[_Entry]]:
        group: list[_Entry] = []
        for entry in self._entries(after_s):
            if group and entry[0] != group[0][0]:
                yield group
                group = []
            group.append(entry)
        if group:
            yield group

    def _skipped_days(self, after_s: int, first: int, last: int) -> Iterator[SkippedDay]:
        """Excluded days in [first, last] that would otherwise have fired after after_s."""
        for n in self._days(first, last, excluded=True):
            if any(x > after_s and self._in_window(x) for x, _, _ in self._day(n)[0]):
                day = date.fromordinal(n)
                yield SkippedDay(day, self.exclusions.explain(day))

    def _fire(self, group: list[_Entry]) -> Fire:
        x = group[0][0]
        notes: list[str] = []
        gaps = [_hhmm(w) for _, w, how in group if how == _GAP]
        if gaps:
            verb = "does" if len(gaps) == 1 else "do"
            notes.append(
                f"{_enumerate(gaps)} {verb} not exist (DST gap); fixed-time schedules fire at "
                f"the end of the gap"
            )
        for _, w, how in group:
            if how == _FIRST and self.cron.fixed_time:
                notes.append(
                    f"{_hhmm(w)} occurs twice (DST overlap); fixed-time schedules fire at the "
                    f"first occurrence only"
                )
            elif how == _FIRST:
                notes.append(f"first of two {_hhmm(w)} (DST overlap)")
            elif how == _LATER:
                notes.append(f"second {_hhmm(w)} (DST overlap); wildcard schedules fire at both")
        return Fire(_instant(x), _instant(x).astimezone(self.zone), tuple(notes))


def _dedupe(entries: list[_Entry]) -> list[_Entry]:
    out: list[_Entry] = []
    for e in entries:
        if not out or out[-1][0] != e[0]:
            out.append(e)
    return out


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


_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_LENGTHS = {m: ((28, 29) if m == 2 else (_DAYS_IN_MONTH[m],)) for m in range(1, 13)}


def _month_days(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


def _periodic_hit(rule: ExclusionRule, month: int, day: int, dow: int) -> bool:
    """Whether an annual, monthly or weekly rule excludes that day of that month."""
    match rule.kind:
        case ExclusionKind.ANNUAL:
            return rule.value == (month, day)
        case ExclusionKind.MONTHLY:
            return rule.value == day
        case ExclusionKind.WEEKLY:
            return rule.value == dow
        case _:
            return False
