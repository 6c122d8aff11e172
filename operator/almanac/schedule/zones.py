"""Time zones: which IANA zone, and how its wall clock maps to instants and back.

Where it sits: the bottom of :mod:`almanac.schedule`, beside :mod:`almanac.schedule.cron`.
It imports nothing of the package and of Almanac only :mod:`almanac.errors` (to quote what
was written); :mod:`almanac.schedule.engine` and :mod:`almanac.schedule.explain` use it.

Instants are whole seconds since the epoch (:func:`to_seconds`, :func:`to_instant`), wall
times are the same count read on a zone's clock (:func:`midnight_wall`), and local dates
are day ordinals (``date.toordinal()``); the engine works in these integers only.

Offsets, not time-zone arithmetic per minute. The zone's offset changes are found once per
zone and year (sampling daily, then bisecting to the second; in all of tzdata no two
changes of a zone since 1900 are less than 6.9 days apart) and cached
(:func:`offsets_around`). A day with no change within a day of it maps wall times to
instants by one subtraction; a day near a change uses the exact piecewise mapping
(:func:`offset_pieces`, :func:`wall_occurrences`, :func:`first_after`), which is where the
DST rule is applied.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from almanac.errors import quote

__all__ = [
    "AFTER_ALL",
    "DAY_SECONDS",
    "EPOCH_ORDINAL",
    "EXACT",
    "FIRST",
    "FIRST_ORDINAL",
    "GAP",
    "LAST_ORDINAL",
    "LATER",
    "ZONE_RULES_SETTLED_ORDINAL",
    "Entry",
    "Piece",
    "first_after",
    "midnight_wall",
    "offset_pieces",
    "offsets_around",
    "offsets_near",
    "parse_date_time",
    "parse_time_zone",
    "to_instant",
    "to_seconds",
    "wall_occurrences",
]

_SECOND = timedelta(seconds=1)
DAY_SECONDS = 86400
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Days whose instants stay inside datetime's range (an instant of local date D lies within
# 24 hours of D, as every UTC offset is less than a day).
FIRST_ORDINAL = date(1, 1, 3).toordinal()
LAST_ORDINAL = date(9999, 12, 29).toordinal()
# After this date every zone follows its annual rule (tzdata lists explicit changes up to
# 2087, Asia/Gaza's predictions); the 400-year horizon starts no earlier.
ZONE_RULES_SETTLED_ORDINAL = date(2100, 1, 1).toordinal()
# Offset changes are looked for once a day, then bisected to the second. In tzdata no two
# changes of a zone since 1900 are less than 6.9 days apart (America/Cambridge_Bay, 2000),
# so a daily look finds each; only a change undone within the same day could hide.
_SAMPLE_SECONDS = DAY_SECONDS
# Seconds before and after every instant handled: the open ends of the time line.
_BEFORE_ALL = -(1 << 62)
AFTER_ALL = 1 << 62

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


def to_seconds(instant: datetime) -> int:
    """Whole seconds since the epoch, rounded down."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; pass an aware datetime (e.g. tzinfo=UTC)")
    return (instant - _UTC_EPOCH) // _SECOND


def to_instant(seconds: int) -> datetime:
    """The instant (aware, UTC) ``seconds`` after the epoch."""
    return _UTC_EPOCH + timedelta(seconds=seconds)


def midnight_wall(day_ordinal: int) -> int:
    """The wall-clock seconds of local midnight of a day, counted like epoch seconds."""
    return (day_ordinal - EPOCH_ORDINAL) * DAY_SECONDS


def _offset_at(zone: ZoneInfo, seconds: int) -> int:
    try:
        local = datetime.fromtimestamp(seconds, zone)  # 3x faster than astimezone
    except (OverflowError, OSError, ValueError):  # pragma: no cover - platform range
        local = to_instant(seconds).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return offset // _SECOND


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY_SECONDS


@functools.lru_cache(maxsize=4096)
def _year_offsets(zone: ZoneInfo, year: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(offset at the start of ``year`` UTC, instants of changes in (start, end], offsets
    after them). Found by sampling and bisection; see _SAMPLE_SECONDS."""
    # Within a day of datetime's range ends, so that any local time is representable.
    start = max(_year_start(year), _year_start(1) + DAY_SECONDS)
    end = _year_start(year + 1) if year < 9999 else _year_start(9999) + 364 * DAY_SECONDS
    initial, changes, offsets = _scan(zone, start, end)
    return initial, tuple(changes), tuple(offsets)


def _scan(zone: ZoneInfo, start: int, end: int) -> tuple[int, list[int], list[int]]:
    """(offset at ``start``, instants of changes in (start, end], offsets after them)."""
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
    return initial, changes, offsets


def _year_of(seconds: int) -> int:
    return date.fromordinal(EPOCH_ORDINAL + seconds // DAY_SECONDS).year


def offsets_around(zone: ZoneInfo, lo: int, hi: int) -> tuple[int, list[tuple[int, int]]]:
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


def offsets_near(zone: ZoneInfo, lo: int, hi: int) -> tuple[int, list[tuple[int, int]]]:
    """What :func:`offsets_around` gives, found for (lo, hi] alone: a few samples, and a
    bisection per change, instead of a scan of the whole year (for spans of days, and
    days years apart, where a year's scan would be used once)."""
    initial, changes, offsets = _scan(zone, lo, hi)
    return initial, list(zip(changes, offsets, strict=True))


# A piece of the UTC time line with one offset: [start, end), offset.
Piece = tuple[int, int, int]


def offset_pieces(offset: int, changes: list[tuple[int, int]]) -> list[Piece]:
    """The time line cut at ``changes`` (as :func:`offsets_around` gives them)."""
    starts = [_BEFORE_ALL] + [t for t, _ in changes]
    ends = [t for t, _ in changes] + [AFTER_ALL]
    offsets = [offset] + [o for _, o in changes]
    return list(zip(starts, ends, offsets, strict=True))


def wall_occurrences(wall: int, pieces: list[Piece]) -> list[int]:
    """Every instant at which the wall clock reads ``wall``, in order."""
    return [wall - o for a, b, o in pieces if a <= wall - o < b]


def first_after(wall: int, pieces: list[Piece]) -> int:
    """The first instant at which the wall clock reads ``wall`` or later (for a wall time
    in a gap: the end of the gap)."""
    for a, b, o in pieces:
        if a + o >= wall:
            return a
        if wall - o < b:
            return wall - o
    raise AssertionError("unreachable: the last piece is unbounded")  # pragma: no cover


# How a wall time became an instant: it occurs once (EXACT); it occurs twice and this is
# the first (FIRST) or the second (LATER) occurrence; it does not exist and this is the end
# of the gap (GAP).
EXACT, FIRST, LATER, GAP = 0, 1, 2, 3
# A time of day on a local date, as the engine finds it: (instant, wall, how).
Entry = tuple[int, int, int]
