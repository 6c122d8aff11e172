"""Cron expressions: the 5-field Vixie syntax, with names and @macros, parsed once.

Where it sits: the bottom of :mod:`almanac.schedule`, beside :mod:`almanac.schedule.zones`.
It imports nothing of the package and of Almanac only :mod:`almanac.errors` (to quote what
was written); :mod:`almanac.schedule.engine` and :mod:`almanac.schedule.explain` use it.

A :class:`CronExpression` says which minutes, hours, days and months match, and how the
day fields combine (the Vixie rule: if either day field starts with ``*`` both must match,
else either may). It knows nothing of time zones: the engine reads it in local wall time.
Errors are ``ValueError``s that say what is wrong and what is expected; the engine turns
them into :class:`almanac.errors.InvalidSpec` for ``spec.schedule``.

The day tokens of docs/api.md ("Business days and day tokens") are kept apart from the
plain value sets, because what they match depends on more than the day's number and
weekday:

- on the month's length: ``L``, ``L-n``, ``nW``, ``LW`` and ``dL`` (``d#k`` too, for
  uniformity); :meth:`CronExpression.day_matches` takes the length, so a month's shape
  (its month, length and first weekday) still decides them, as it decides plain values;
- on the job's calendar: ``nB``, ``LB`` and ``LB-n`` count business days, which only the
  caller knows (:mod:`almanac.schedule.days`); it passes the days they pick
  (:meth:`CronExpression.business_picks`) to :meth:`CronExpression.day_matches`.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date

from almanac.errors import quote

__all__ = ["CronExpression", "DayTokens"]

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
# Day tokens, read in any case: L, L-n, nW, LW, nB, LB, LB-n (day of month); d#k, dL (day
# of week, d a number or a three-letter name).
_LAST = re.compile(r"L(?:-([0-9]+))?", re.IGNORECASE)
_NEAREST = re.compile(r"([0-9]+)W", re.IGNORECASE)
_BUSINESS = re.compile(r"([0-9]+)B", re.IGNORECASE)
_LAST_BUSINESS = re.compile(r"LB(?:-([0-9]+))?", re.IGNORECASE)
_NTH = re.compile(r"([0-9]+|[A-Za-z]{3})#([0-9]+)")
_LAST_OF = re.compile(r"([0-9]+|[A-Za-z]{3})L", re.IGNORECASE)
_DOM_TOKENS = "L, L-n, nW, LW, nB, LB or LB-n"
_DOW_TOKENS = "d#k or dL"
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


def _step_end(name: str, high: int) -> int:
    """Where ``*``, ``*/n`` and ``N/n`` stop. The day-of-week range ends on Saturday (6), as
    robfig/cron (Kubernetes CronJob) and croniter end it: 7 is only another name for
    Sunday, and running on to it would add a Sunday, so ``1/2`` would fire on Sundays too.
    An explicit range keeps what was written: ``1-7/2`` is Monday, Wednesday, Friday and
    Sunday."""
    return 6 if name == "day-of-week" else high


def _step_start(name: str, first: int) -> int:
    """Where ``N/n`` starts: in the day-of-week field 7 is Sunday, so ``7/2`` is ``0/2``
    (``SUN/2``), as croniter reads it (robfig/cron refuses 7)."""
    return first % 7 if name == "day-of-week" else first


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
            first, last = low, _step_end(name, high)
        else:
            a, dash, b = span.partition("-")
            first = _parse_value(a, name, low, high, names)
            if dash:
                last = _parse_value(b, name, low, high, names)
                if first > last:
                    raise ValueError(f"range {quote(span)} in the {name} field runs backwards")
            elif slash:
                # "5/15" means 5-59/15, as in Kubernetes CronJob (robfig/cron) and croniter.
                first, last = _step_start(name, first), _step_end(name, high)
            else:
                last = first
        values.update(range(first, last + 1, step))
    return values


@dataclass(frozen=True, slots=True)
class DayTokens:
    """The day tokens of one expression, parsed (empty sets: none written)."""

    last: frozenset[int] = frozenset()
    """``L`` (0) and ``L-n`` (n): n days before the last day of the month."""
    nearest: frozenset[int] = frozenset()
    """``nW``: the weekday nearest day n, within the month."""
    last_weekday: bool = False
    """``LW``: the last Monday-Friday of the month."""
    business: frozenset[int] = frozenset()
    """``nB``: the n-th business day of the month."""
    last_business: frozenset[int] = frozenset()
    """``LB`` (0) and ``LB-n`` (n): the n-th business day before the last."""
    nth: frozenset[tuple[int, int]] = frozenset()
    """``d#k``: (weekday, k), the k-th such weekday of the month; 0 = Sunday."""
    last_of: frozenset[int] = frozenset()
    """``dL``: the last such weekday of the month; 0 = Sunday."""

    @property
    def counts_business_days(self) -> bool:
        """Whether a ``B`` token was written (what it matches depends on the calendar)."""
        return bool(self.business or self.last_business)

    def __bool__(self) -> bool:
        return bool(
            self.last
            or self.nearest
            or self.last_weekday
            or self.business
            or self.last_business
            or self.nth
            or self.last_of
        )


def _token_number(token: str, text: str, low: int, high: int, what: str) -> int:
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{quote(token)} in the day-of-month field: {what} is {low}-{high}")
    return value


def _dom_token(item: str, found: dict[str, set[int]]) -> bool:
    """Record ``item`` if it is a day-of-month token; False if it is none (a plain item).
    A ``ValueError`` names a token out of range, or a token with a step or in a range."""
    if _LAST.fullmatch(item):
        m = _LAST.fullmatch(item)
        assert m is not None
        n = 0 if m[1] is None else _token_number(item, m[1], 1, 30, "n in L-n")
        found["last"].add(n)
    elif m := _NEAREST.fullmatch(item):
        found["nearest"].add(_token_number(item, m[1], 1, 31, "n in nW"))
    elif item.upper() == "LW":
        found["last_weekday"].add(1)
    elif m := _BUSINESS.fullmatch(item):
        found["business"].add(_token_number(item, m[1], 1, 31, "n in nB"))
    elif m := _LAST_BUSINESS.fullmatch(item):
        n = 0 if m[1] is None else _token_number(item, m[1], 1, 30, "n in LB-n")
        found["last_business"].add(n)
    elif re.search(r"[LWB]", item, re.IGNORECASE):
        raise ValueError(
            f"{quote(item)} in the day-of-month field is not supported: {_DOM_TOKENS} stand "
            f"alone in a list item, without a step or a range ({_SYNTAX} for plain values)"
        )
    elif "#" in item:
        raise ValueError(
            f"{quote(item)} in the day-of-month field: # is only allowed in the day-of-week "
            f"field (d#k, e.g. MON#1)"
        )
    else:
        return False
    return True


def _weekday(text: str, token: str) -> int:
    if _NUMBER.fullmatch(text):
        value = int(text)
        if not 0 <= value <= 7:
            raise ValueError(f"{quote(token)} in the day-of-week field: d is 0-7 or SUN-SAT")
        return value % 7
    if text.lower() in _DOW_NAMES:
        return _DOW_NAMES.index(text.lower())
    raise ValueError(f"{quote(token)} in the day-of-week field: d is 0-7 or SUN-SAT")


def _dow_token(item: str, nth: set[tuple[int, int]], last_of: set[int]) -> bool:
    """Record ``item`` if it is a day-of-week token; False if it is none (a plain item)."""
    if m := _NTH.fullmatch(item):
        k = int(m[2]) if _NUMBER.fullmatch(m[2]) else 0
        if not 1 <= k <= 5:
            raise ValueError(f"{quote(item)} in the day-of-week field: k in d#k is 1-5")
        nth.add((_weekday(m[1], item), k))
    elif m := _LAST_OF.fullmatch(item):
        last_of.add(_weekday(m[1], item))
    elif "#" in item or re.search(r"[0-9]L|[A-Za-z]{3}L|^L$", item, re.IGNORECASE):
        raise ValueError(
            f"{quote(item)} in the day-of-week field is not supported: {_DOW_TOKENS} stand "
            f"alone in a list item, without a step or a range (d 0-7 or SUN-SAT, k 1-5)"
        )
    elif re.search(r"[0-9][WB]$|^[WB]$|^L[WB]", item, re.IGNORECASE):
        raise ValueError(
            f"{quote(item)} is only allowed in the day-of-month field ({_DOM_TOKENS}); the "
            f"day-of-week field takes {_DOW_TOKENS}"
        )
    else:
        return False
    return True


def _split_tokens(text: str, name: str) -> tuple[str, DayTokens | None]:
    """The plain items of a day field (as a field text, '' if none) and its tokens."""
    if name not in ("day-of-month", "day-of-week"):
        return text, None
    plain: list[str] = []
    dom: dict[str, set[int]] = {
        k: set() for k in ("last", "nearest", "last_weekday", "business", "last_business")
    }
    nth: set[tuple[int, int]] = set()
    last_of: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"the {name} field {quote(text)} has an empty list item")
        is_token = (
            _dom_token(item, dom) if name == "day-of-month" else _dow_token(item, nth, last_of)
        )
        if not is_token:
            plain.append(item)
    tokens = DayTokens(
        last=frozenset(dom["last"]),
        nearest=frozenset(dom["nearest"]),
        last_weekday=bool(dom["last_weekday"]),
        business=frozenset(dom["business"]),
        last_business=frozenset(dom["last_business"]),
        nth=frozenset(nth),
        last_of=frozenset(last_of),
    )
    return ",".join(plain), tokens


def _nearest_weekday(n: int, days: int, first_dow: int) -> int | None:
    """``nW`` in a month of ``days`` days starting on weekday ``first_dow`` (0 = Sunday)."""
    if n > days:
        return None
    dow = (first_dow + n - 1) % 7
    if dow == 6:  # Saturday: the Friday before, or Monday the 3rd from the 1st
        return 3 if n == 1 else n - 1
    if dow == 0:  # Sunday: the Monday after, or the Friday before from the last day
        return n - 2 if n == days else n + 1
    return n


def _last_weekday(days: int, first_dow: int) -> int:
    dow = (first_dow + days - 1) % 7
    return days - 1 if dow == 6 else days - 2 if dow == 0 else days


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
    tokens: DayTokens = DayTokens()
    """The day tokens (``L``, ``15W``, ``LB``, ``MON#1``...), beside the plain values above."""
    day_of_month_text: str = "*"
    """The day-of-month field as written (for messages)."""
    month_end_tokens: bool = False
    """``L``, ``L-n``, ``nW`` or ``LW`` was written (checked per day: kept as a flag)."""
    week_tokens: bool = False
    """``d#k`` or ``dL`` was written."""

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; a ``ValueError`` says what is wrong and what is expected."""
        return _parse_cron(text)

    @property
    def day_fields(self) -> tuple[object, ...]:
        """Everything that says which dates match (not the minutes and hours): equal for
        two expressions that match the same dates, e.g. ``0 2 * * 1-5`` and ``30 6 * * 1-5``."""
        return (
            self.days_of_month,
            self.months,
            self.days_of_week,
            self.dom_star,
            self.dow_star,
            self.tokens,
            self.day_of_month_text,
            self.month_end_tokens,
            self.week_tokens,
        )

    def day_matches(
        self,
        day_of_month: int,
        day_of_week: int,
        days_in_month: int,
        business: frozenset[int] = frozenset(),
    ) -> bool:
        """The Vixie rule: if either day field starts with ``*`` both must match, else
        either may. ``day_of_week`` is 0 = Sunday; ``business``: the days the ``B`` tokens
        pick in this month (:meth:`business_picks`)."""
        dom, dow = self._fields_match(day_of_month, day_of_week, days_in_month, business)
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)

    def _fields_match(
        self, d: int, dow: int, days: int, business: frozenset[int]
    ) -> tuple[bool, bool]:
        t = self.tokens
        dom = d in self.days_of_month or d in business
        if not dom and self.month_end_tokens:
            first_dow = (dow - d + 1) % 7
            dom = (
                (days - d) in t.last
                or (t.last_weekday and d == _last_weekday(days, first_dow))
                or any(_nearest_weekday(n, days, first_dow) == d for n in t.nearest)
            )
        week = dow in self.days_of_week
        if not week and self.week_tokens:
            week = (dow, (d - 1) // 7 + 1) in t.nth or (dow in t.last_of and d + 7 > days)
        return dom, week

    def business_picks(self, business: tuple[int, ...]) -> frozenset[int]:
        """The days of a month the ``B`` tokens match, given its business days in order."""
        t = self.tokens
        count = len(business)
        picks = {business[n - 1] for n in t.business if n <= count}
        picks.update(business[-1 - n] for n in t.last_business if n < count)
        return frozenset(picks)

    def token_labels(
        self, day: date, days_in_month: int, business: tuple[int, ...] = ()
    ) -> list[str]:
        """What each token that matches ``day`` means there, for people: ``last business
        day of April 2027``, ``2nd Monday of April 2027`` (none for plain values)."""
        t = self.tokens
        if not t:
            return []
        d, dow, days = day.day, day.toordinal() % 7, days_in_month
        first_dow = (dow - d + 1) % 7
        of = f"of {day:%B %Y}"
        labels: list[str] = []
        for n in sorted(t.business):
            if n <= len(business) and business[n - 1] == d:
                labels.append(f"{_ordinal(n)} business day {of}")
        for n in sorted(t.last_business):
            if n < len(business) and business[-1 - n] == d:
                labels.append(
                    f"{_ordinal(n + 1)}-to-last business day {of}"
                    if n
                    else f"last business day {of}"
                )
        for n in sorted(t.last):
            if days - n == d:
                labels.append(f"{_days(n)} before the last day {of}" if n else f"last day {of}")
        for n in sorted(t.nearest):
            if _nearest_weekday(n, days, first_dow) == d:
                labels.append(f"weekday nearest day {n} {of}")
        if t.last_weekday and _last_weekday(days, first_dow) == d:
            labels.append(f"last weekday {of}")
        name = _WEEKDAY_TITLES[dow]
        k = (d - 1) // 7 + 1
        if (dow, k) in t.nth:
            labels.append(f"{_ordinal(k)} {name} {of}")
        if dow in t.last_of and d + 7 > days:
            labels.append(f"last {name} {of}")
        return labels

    def matches_date(self, day: date, business: frozenset[int] = frozenset()) -> bool:
        """Whether the month and day fields match the local date ``day`` (``business``:
        the days the ``B`` tokens pick in its month)."""
        return day.month in self.months and self.day_matches(
            day.day, day.toordinal() % 7, _days_in(day), business
        )

    def why_not_date(self, day: date, business: frozenset[int] = frozenset()) -> str:
        """Which field rejects ``day`` ('' if none does)."""
        if day.month not in self.months:
            return "month"
        dom, dow = self._fields_match(day.day, day.toordinal() % 7, _days_in(day), business)
        if self.dom_star or self.dow_star:
            return "" if dom and dow else ("day-of-month" if not dom else "day-of-week")
        return "" if dom or dow else "neither day-of-month nor day-of-week"


_WEEKDAY_TITLES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _days_in(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


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
        split = [_split_tokens(f, spec[0]) for f, spec in zip(fields, _FIELDS, strict=True)]
        sets = [
            _parse_field(plain, *spec) if plain else set()
            for (plain, _), spec in zip(split, _FIELDS, strict=True)
        ]
    except ValueError as e:
        raise ValueError(f"{quote(text)} is not a valid cron expression: {e}") from None
    dom_tokens, dow_tokens = split[2][1], split[4][1]
    assert dom_tokens is not None and dow_tokens is not None
    tokens = DayTokens(
        last=dom_tokens.last,
        nearest=dom_tokens.nearest,
        last_weekday=dom_tokens.last_weekday,
        business=dom_tokens.business,
        last_business=dom_tokens.last_business,
        nth=dow_tokens.nth,
        last_of=dow_tokens.last_of,
    )
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
        tokens=tokens,
        day_of_month_text=fields[2],
        month_end_tokens=bool(tokens.last or tokens.nearest or tokens.last_weekday),
        week_tokens=bool(tokens.nth or tokens.last_of),
    )
