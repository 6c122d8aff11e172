"""Cron expressions: the 5-field Vixie syntax, with names and @macros, parsed once.

Where it sits: the bottom of :mod:`almanac.schedule`, beside :mod:`almanac.schedule.zones`.
It imports nothing of the package and of Almanac only :mod:`almanac.errors` (to quote what
was written); :mod:`almanac.schedule.engine` and :mod:`almanac.schedule.explain` use it.

A :class:`CronExpression` says which minutes, hours, days and months match, and how the
day fields combine (the Vixie rule: if either day field starts with ``*`` both must match,
else either may). It knows nothing of time zones: the engine reads it in local wall time.
Errors are ``ValueError``s that say what is wrong and what is expected; the engine turns
them into :class:`almanac.errors.InvalidSpec` for ``spec.schedule``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

from almanac.errors import quote

__all__ = ["CronExpression"]

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
