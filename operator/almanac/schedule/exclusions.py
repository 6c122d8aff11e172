"""Exclusion lists: the days on which a ScheduledJob does not fire.

Where it sits: pure, below :mod:`almanac.schedule.days` (which asks it which days of a
month are excluded), :mod:`almanac.schedule.explain` (which asks it "is this local date
excluded, and by what?"), :mod:`almanac.schedule.engine` and :mod:`almanac.api.models` (which
validates each list entry with the parsers here). It imports nothing of the package and of
Almanac only :mod:`almanac.errors`, and knows nothing of Kubernetes, time zones or the clock.

The four kinds of entry are those of docs/api.md ("ScheduledJob", ``spec.exclusions``; a
Calendar's ``spec`` has the same four lists)::

    annual   "25.12"       dd.MM, every year ("29.02" only in leap years)
    monthly  "31"          dd, every month that has that day
    weekly   "Saturday"    English day name or 3-letter abbreviation, any case
    holiday  "14.04.2027"  dd.MM.yyyy, one date

Days and months may be written with one digit (``"1"``, ``"5.1"``, ``"1.05.2027"``), and
a monthly day as a YAML integer (``1``), because that is what people write; each entry
is kept in the contract's two-digit form (``"01"``, ``"05.01"``), which is what status,
Events and ``almanac next -o wide`` show.

Every parsed entry is an :class:`ExclusionRule` that remembers where it was written (the
job's own ``spec.exclusions.<kind>[i]`` or ``Calendar <name>``), so status, Events and
the command line can say *why* a day was skipped (:meth:`Exclusions.explain`).

Besides these lists, a Calendar may name dates that are computed rather than written:
a country's or a market's holidays (``spec.holidays``, :mod:`almanac.schedule.countries`)
and the events of an iCalendar (``spec.ical``, :mod:`almanac.schedule.ical`). Those are
:class:`DateSet` objects: open-ended (every year), so :class:`Exclusions` asks each for one
year at a time, when the engine first reaches that year, and keeps the answer; each
excluded date comes back as an :class:`ExclusionRule` of kind ``holidays`` or ``ical``
with a label saying which holiday or event it is. Each date set ends (with the API's
years, 1970-2200, and a country's with the last year the package covers), which keeps
the engine's horizon finite, as ``holiday`` dates do (:attr:`Exclusions.last_holiday`).

Invalid entries raise :class:`almanac.errors.InvalidSpec`, naming the field.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from enum import StrEnum
from typing import Any, Protocol

from almanac.errors import FieldError, InvalidSpec, quote
from almanac.shared import Kept

__all__ = [
    "OWN_SOURCE",
    "WEEKDAY_NAMES",
    "DateSet",
    "ExclusionKind",
    "ExclusionRule",
    "Exclusions",
    "calendar_source",
    "canonical_entry",
    "parse_annual",
    "parse_holiday",
    "parse_monthly",
    "parse_weekly",
]


class ExclusionKind(StrEnum):
    """The four exclusion lists and the two computed date sets, named as the fields are."""

    ANNUAL = "annual"
    MONTHLY = "monthly"
    WEEKLY = "weekly"
    HOLIDAY = "holiday"
    HOLIDAYS = "holidays"
    """A country's or a market's holidays (Calendar ``spec.holidays[i]``)."""
    ICAL = "ical"
    """The events of an iCalendar (Calendar ``spec.ical``)."""


#: ``ExclusionRule.source`` of the job's own ``spec.exclusions``.
OWN_SOURCE = "spec.exclusions"


def calendar_source(name: str, kind: str = "Calendar") -> str:
    """``ExclusionRule.source`` of the entries of the Calendar (or ClusterCalendar) called
    ``name``."""
    return f"{kind} {name}"


#: Day-of-week numbers as in cron: 0 = Sunday ... 6 = Saturday.
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_WEEKDAY_NUMBERS = {name: i for i, name in enumerate(_WEEKDAYS)} | {
    name[:3]: i for i, name in enumerate(_WEEKDAYS)
}
WEEKDAY_NAMES = tuple(name.capitalize() for name in _WEEKDAYS)

# One or two digits for a day or a month, four for a year, as the CRD's validation rules
# allow: what the API server accepts, and nothing more, but for spaces around an entry,
# which are read past (an object stored before the CRD's rules refused them keeps
# working; `almanac next` on a local file admits them where kubectl apply would not).
_DAY_MONTH = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})")
_DAY = re.compile(r"[0-9]{1,2}")
_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")


def parse_annual(text: str) -> tuple[int, int]:
    """``"25.12"`` -> ``(12, 25)`` (month, day); ``"5.1"`` -> ``(1, 5)``. ``"29.02"`` is
    valid (leap years only)."""
    m = _DAY_MONTH.fullmatch(text.strip())
    if m:
        day, month = int(m[1]), int(m[2])
        # 2000 is a leap year: 29.02 is a day of the year, it just is not in every year.
        if 1 <= month <= 12 and 1 <= day <= calendar.monthrange(2000, month)[1]:
            return month, day
    raise ValueError(f"{quote(text)} is not a day of the year (dd.MM)")


def parse_monthly(text: str | int) -> int:
    """``"31"`` -> ``31`` (``"07"``, ``"7"`` and ``7`` -> ``7``). A month without that day
    has none excluded."""
    written = str(text).strip() if isinstance(text, int | str) and text is not True else ""
    if _DAY.fullmatch(written) and 1 <= int(written) <= 31:
        return int(written)
    raise ValueError(f"{quote(str(text))} is not a day of the month (dd, 01-31)")


def parse_weekly(text: str) -> int:
    """``"Sat"``/``"saturday"`` -> ``6``; cron numbering, 0 = Sunday."""
    number = _WEEKDAY_NUMBERS.get(text.strip().lower())
    if number is None:
        raise ValueError(
            f"{quote(text)} is not a day of the week (Monday..Sunday or Mon..Sun, any case)"
        )
    return number


def parse_holiday(text: str) -> date:
    """``"14.04.2027"`` -> ``date(2027, 4, 14)``; ``"1.5.2027"`` -> ``date(2027, 5, 1)``."""
    m = _DAY_MONTH_YEAR.fullmatch(text.strip())
    if m:
        try:
            return date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            pass
    raise ValueError(f"{quote(text)} is not a date (dd.MM.yyyy)")


def canonical_entry(kind: ExclusionKind, value: tuple[int, int] | int | date, written: str) -> str:
    """An entry in the contract's form: two-digit days and months (``"5.1"`` -> ``"05.01"``);
    a weekly entry stays as written."""
    match kind:
        case ExclusionKind.ANNUAL if isinstance(value, tuple):
            return f"{value[1]:02d}.{value[0]:02d}"
        case ExclusionKind.MONTHLY if isinstance(value, int):
            return f"{value:02d}"
        case ExclusionKind.HOLIDAY if isinstance(value, date):
            return f"{value.day:02d}.{value.month:02d}.{value.year:04d}"
        case _:
            return written


_PARSERS: dict[ExclusionKind, Callable[[Any], tuple[int, int] | int | date]] = {
    ExclusionKind.ANNUAL: parse_annual,
    ExclusionKind.MONTHLY: parse_monthly,
    ExclusionKind.WEEKLY: parse_weekly,
    ExclusionKind.HOLIDAY: parse_holiday,
}


@dataclass(frozen=True, slots=True)
class ExclusionRule:
    """One entry of one exclusion list, with where it was written."""

    kind: ExclusionKind
    entry: str
    """The entry in the contract's two-digit form, e.g. ``"25.12"`` (``"5.1"`` as written
    becomes ``"05.01"``, a monthly ``7`` becomes ``"07"``)."""
    value: tuple[int, int] | int | date
    """Parsed: (month, day) for annual, day for monthly, weekday (0 = Sunday), or a date."""
    source: str
    """``spec.exclusions`` (the job's own lists) or ``Calendar <name>``."""
    path: str
    """Field path inside the source's object, e.g. ``spec.exclusions.annual[0]``."""
    label: str = ""
    """For a computed date (kinds ``holidays`` and ``ical``), what it is, e.g. ``public
    holiday in RO: Ziua Națională a României``; empty for a written entry."""

    @property
    def origin(self) -> str:
        """Where to look: ``spec.exclusions.weekly[1]`` or ``Calendar x, spec.annual[0]``."""
        return self.path if self.source == OWN_SOURCE else f"{self.source}, {self.path}"

    def __str__(self) -> str:
        if self.label:
            return f"{self.label} ({self.origin})"
        return f"{self.kind} {quote(self.entry)} ({self.origin})"

    def matches(self, day: date) -> bool:
        """Whether this entry excludes the local date ``day``."""
        match self.kind:
            case ExclusionKind.ANNUAL:
                return (day.month, day.day) == self.value
            case ExclusionKind.MONTHLY:
                return day.day == self.value
            case ExclusionKind.WEEKLY:
                return day.toordinal() % 7 == self.value
            case _:
                return day == self.value


class DateSet(Protocol):
    """Dates computed, year by year, rather than written: a country's holidays, the
    events of an iCalendar. Implemented by :class:`almanac.schedule.countries.CountryHolidays`
    and :class:`almanac.schedule.ical.ICalendarDates`.

    ``dates_in`` is asked once per year per :class:`Exclusions` (which keeps the answer);
    an implementation caches what costs (a country's year, a parsed iCalendar) across
    instances, because the operator builds a schedule at each decision.
    """

    @property
    def kind(self) -> ExclusionKind:
        """``holidays`` or ``ical``."""
        ...

    @property
    def source(self) -> str:
        """``Calendar <name>``, as :attr:`ExclusionRule.source`."""
        ...

    @property
    def path(self) -> str:
        """The field, e.g. ``spec.holidays[0]``, as :attr:`ExclusionRule.path`."""
        ...

    @property
    def last_year(self) -> int:
        """No date after this year: the engine's horizon counts from its end."""
        ...

    def dates_in(self, year: int) -> Mapping[date, str]:
        """The local dates of ``year`` it excludes, each with its label (which holiday,
        which event: :attr:`ExclusionRule.label`)."""
        ...

    def in_zone(self, zone: tzinfo) -> DateSet:
        """The same set read in ``zone``, the job's (an iCalendar's timed events fall on
        the local date of that zone; a country's holidays are dates already)."""
        ...


#: How many unions :meth:`Exclusions.union` keeps: one per distinct combination of a
#: job's own lists and its Calendars, so a cluster's few hundred fit.
UNIONS_KEPT = 1024
_UNIONS: Kept[tuple[Exclusions, ...], Exclusions] = Kept(UNIONS_KEPT)


class Exclusions:
    """The union of exclusion lists and computed date sets from several sources;
    immutable (what it learns of a date set's years is kept, not changed).

    Build one per source with :meth:`parse` and add them: ``own + cal_a + cal_b``.
    """

    __slots__ = (
        "_annual",
        "_dated_days",
        "_dated_rules",
        "_hash",
        "_holidays",
        "_monthly",
        "_weekly",
        "_zoned",
        "dated",
        "rules",
    )

    rules: tuple[ExclusionRule, ...]
    dated: tuple[DateSet, ...]
    """The computed date sets, asked a year at a time (:meth:`holidays_in`)."""

    def __init__(self, rules: Iterable[ExclusionRule] = (), dated: Iterable[DateSet] = ()) -> None:
        self.rules = tuple(rules)
        self.dated = tuple(dated)
        # year -> (year, month) -> days, and date -> rules; filled by _dated_year.
        self._dated_days: dict[int, dict[int, frozenset[int]]] = {}
        self._dated_rules: dict[date, list[ExclusionRule]] = {}
        self._zoned: dict[tzinfo, Exclusions] = {}  # in_zone's answers
        self._hash: int | None = None
        annual: dict[int, set[int]] = {}
        holidays: dict[tuple[int, int], set[int]] = {}
        monthly: set[int] = set()
        weekly: set[int] = set()
        for rule in self.rules:
            v = rule.value
            if isinstance(v, tuple):
                annual.setdefault(v[0], set()).add(v[1])
            elif isinstance(v, date):
                holidays.setdefault((v.year, v.month), set()).add(v.day)
            elif rule.kind is ExclusionKind.MONTHLY:
                monthly.add(v)
            else:
                weekly.add(v)
        self._annual = {m: frozenset(d) for m, d in annual.items()}
        self._holidays = {ym: frozenset(d) for ym, d in holidays.items()}
        self._monthly = frozenset(monthly)
        self._weekly = frozenset(weekly)

    @classmethod
    def parse(
        cls,
        *,
        source: str = OWN_SOURCE,
        path: str = OWN_SOURCE,
        annual: Sequence[str] = (),
        monthly: Sequence[str | int] = (),
        weekly: Sequence[str] = (),
        holiday: Sequence[str] = (),
    ) -> Exclusions:
        """Parse the four lists of one source; ``path`` prefixes field paths in errors.

        For a Calendar: ``Exclusions.parse(source=calendar_source(name), path="spec", ...)``.
        Raises :class:`InvalidSpec` naming every bad entry.
        """
        rules: list[ExclusionRule] = []
        errors: list[FieldError] = []
        lists = {
            ExclusionKind.ANNUAL: annual,
            ExclusionKind.MONTHLY: monthly,
            ExclusionKind.WEEKLY: weekly,
            ExclusionKind.HOLIDAY: holiday,
        }
        for kind, entries in lists.items():
            for i, entry in enumerate(entries):
                where = f"{path}.{kind}[{i}]"
                try:
                    value = _PARSERS[kind](entry)
                except ValueError as e:
                    errors.append(FieldError(where, str(e)))
                else:
                    text = canonical_entry(kind, value, str(entry).strip())
                    rules.append(ExclusionRule(kind, text, value, source, where))
        if errors:
            raise InvalidSpec(errors)
        return cls(rules)

    def __add__(self, other: Exclusions) -> Exclusions:
        return Exclusions(self.rules + other.rules, self.dated + other.dated)

    @classmethod
    def union(cls, sources: Sequence[Exclusions]) -> Exclusions:
        """The exclusions of every source, in order, as one object shared by every
        caller that unites equal sources (the last :data:`UNIONS_KEPT`).

        Why shared: the operator builds a job's schedule at each decision, and the
        webhook and calendar-diff one per job; what an object learns (a country's
        holidays of a year, :meth:`in_zone`'s copies) is then learned once for all the
        jobs that refer to the same Calendars, not once per job and decision."""
        given = tuple(source for source in sources if source)
        if len(given) == 1:
            return given[0]
        return _UNIONS.get(
            given,
            lambda: cls(
                (rule for source in given for rule in source.rules),
                (dated for source in given for dated in source.dated),
            ),
        )

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Exclusions):
            return NotImplemented
        return self.rules == other.rules and self.dated == other.dated

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self.rules, self.dated))
        return self._hash

    def __bool__(self) -> bool:
        return bool(self.rules) or bool(self.dated)

    def __repr__(self) -> str:
        dated = [f"{d.kind} ({d.source}, {d.path})" for d in self.dated]
        return f"Exclusions({[str(r) for r in self.rules] + dated!r})"

    def in_zone(self, zone: tzinfo) -> Exclusions:
        """These exclusions with every date set read in ``zone`` (the job's): what a
        :class:`~almanac.schedule.engine.Schedule` holds."""
        if not self.dated:
            return self
        zoned = self._zoned.get(zone)
        if zoned is None:
            zoned = Exclusions(self.rules, (d.in_zone(zone) for d in self.dated))
            self._zoned[zone] = zoned
        return zoned

    def excludes(self, day: date) -> bool:
        """Whether nothing fires on the local date ``day``."""
        return (
            day.day in self._monthly
            or day.toordinal() % 7 in self._weekly
            or day.day in self._annual.get(day.month, ())
            or day.day in self.holidays_in(day.year, day.month)
        )

    def explain(self, day: date) -> tuple[ExclusionRule, ...]:
        """Every rule that excludes the local date ``day``, in the order they were given
        (the written lists first, then each date set's, in the order of the sets)."""
        written = tuple(rule for rule in self.rules if rule.matches(day))
        if not self.dated:
            return written
        self._dated_year(day.year)
        return written + tuple(self._dated_rules.get(day, ()))

    # The engine's fast queries (almanac.schedule.days caches per month shape).

    def annual_days(self, month: int) -> frozenset[int]:
        """Days of ``month`` excluded every year."""
        return self._annual.get(month, frozenset())

    @property
    def monthly_days(self) -> frozenset[int]:
        """Days of the month excluded every month."""
        return self._monthly

    @property
    def weekly_days(self) -> frozenset[int]:
        """Excluded days of the week, cron numbering (0 = Sunday)."""
        return self._weekly

    def holidays_in(self, year: int, month: int) -> frozenset[int]:
        """Days of that month excluded as holidays (written, or computed by a date set)."""
        written = self._holidays.get((year, month), frozenset())
        if not self.dated:
            return written
        computed = self._dated_year(year).get(month)
        if computed is None:
            return written
        return computed | written if written else computed

    @property
    def last_holiday(self) -> date | None:
        """The latest holiday (a date set counts as having one on the last day of its
        last year); after it the exclusions repeat every 400 years."""
        dates = [r.value for r in self.rules if isinstance(r.value, date)]
        dates += [date(d.last_year, 12, 31) for d in self.dated]
        return max(dates) if dates else None

    def _dated_year(self, year: int) -> dict[int, frozenset[int]]:
        """Month -> days the date sets exclude in ``year``, asking each set once per
        year (and recording, per date, the rules that say why)."""
        months = self._dated_days.get(year)
        if months is None:
            # Worked out aside and published last: a shared object (:meth:`union`) may be
            # asked the same year by the webhook's thread and the event loop at once.
            days: dict[int, set[int]] = {}
            rules: dict[date, list[ExclusionRule]] = {}
            for dated in self.dated:
                for day, label in sorted(dated.dates_in(year).items()):
                    if day.year != year:
                        continue
                    days.setdefault(day.month, set()).add(day.day)
                    entry = f"{day.day:02d}.{day.month:02d}.{day.year:04d}"
                    rule = ExclusionRule(dated.kind, entry, day, dated.source, dated.path, label)
                    rules.setdefault(day, []).append(rule)
            self._dated_rules.update(rules)
            months = self._dated_days[year] = {m: frozenset(d) for m, d in days.items()}
        return months
