"""A brute-force oracle for the schedule contract, written from docs/api.md alone.

It shares no code with ``almanac.schedule.engine`` and uses no cron library: it parses the cron
fields itself, and walks UTC minutes one by one, reading the wall clock in the zone at
each, to decide from the contract's words whether that minute fires:

* wall time matches the cron fields (Vixie day rule) on a non-excluded local date;
* fixed-time (minute and hour fields do not start with ``*``): a matching wall time fires
  the first time the wall clock shows it; matching wall times the clock jumped over (a
  gap) fire at the first minute after the jump;
* wildcard: fires every time the wall clock shows a matching wall time;
* inside ``[start, end]``, where a window end without offset is the first instant whose
  wall time is at or after it.

Slow by design (microseconds per minute walked): fine for ranges of days. For ranges of
years there is :func:`day_walk_fires`, which walks local dates in zones without DST, and
:func:`can_ever_match`, which checks the date rules against every (month, day, weekday)
that one 400-year Gregorian cycle contains.

Business days and shifts (docs/api.md "Business days and day tokens", "Shifting"), applied
literally, date by date (:meth:`OracleSchedule.fires_on`):

* a business day is a date no exclusion removes;
* ``L-n`` is the date n days before the month's last; ``nW`` the Monday-Friday date of the
  month nearest day n (by distance: no tie can occur); ``LW`` the latest Monday-Friday date
  of the month; ``nB``/``LB-n`` the n-th / n-th from the last of the month's business days,
  listed by walking the month; ``d#k`` a weekday d with exactly k-1 of them before it in
  the month; ``dL`` a weekday d with none after it in the month;
* a date fires when it is a business day and the cron fields match it, or when a matched,
  excluded date within ``maxShiftDays`` has it as the first business day met walking
  from that date in the shift's direction.

For schedules with tokens or a shift, whether anything ever fires is decided by walking
every date of 2001-2028 with the periodic lists alone (:meth:`can_ever_fire`): with those
lists, which dates of a year fire depends on its months and on the December before and
the January after (a shift reaches at most 31 days), all fixed by its kind (leap or not,
weekday of 1 January); every year of the 400-year cycle is of a kind that 2001-2028 holds
(``test_every_kind_of_year_is_in_2001_to_2028`` checks it by walking the cycle).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
# How far back the minute walk starts, to know which wall times were already shown: more
# than the longest fall-back among the zones tested (Antarctica/Casey's three hours).
HISTORY = timedelta(hours=12)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_WORDS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTHS = {n: i + 1 for i, n in enumerate(_MONTH_WORDS)}
_DOWS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_WEEKDAY_WORDS = {
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
    "sunday": 7,
}


def _number(token: str, names: dict[str, int]) -> int:
    return names[token.lower()] if token.lower() in names else int(token)


def _expand(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
            stepped = True
        else:
            stepped = False
        if part in ("*", "?"):
            a, b = low, high
        elif "-" in part:
            x, y = part.split("-")
            a, b = _number(x, names), _number(y, names)
        else:
            a = _number(part, names)
            b = high if stepped else a
        out.update(range(a, b + 1, step))
    return out


_WEEK = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # one week, Sunday to Saturday


def _weekdays(text: str) -> set[int]:
    """The day-of-week field read from docs/schedule.md's words, with the week as a list of
    days rather than a numeric range: ``0``-``6`` and the names are Sunday to Saturday and
    ``7`` is Sunday again; ``a-b`` are the days from a to b as written (so ``1-7`` ends on a
    Sunday); ``N/n`` is every n-th day from N to the end of the week, Saturday (as CronJob
    and croniter read it; ``7/n`` starts on Sunday); ``*`` is the whole week."""
    out: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", "?"):
            days = _WEEK
        elif "-" in span:
            a, b = (_number(x, _DOWS) for x in span.split("-"))
            days = (_WEEK * 2)[a : b + 1]
        elif step_text:
            days = _WEEK[_number(span, _DOWS) % 7 :]
        else:
            days = [_WEEK[_number(span, _DOWS) % 7]]
        out.update(_DOWS[day] for day in days[::step])
    return out


_DOM_TOKEN = re.compile(r"(L(-[0-9]+)?|[0-9]+W|LW|[0-9]+B|LB(-[0-9]+)?)", re.IGNORECASE)
_DOW_TOKEN = re.compile(r"([0-9]|[A-Za-z]{3})(#[0-9]|L)", re.IGNORECASE)


def _plain(text: str, token: re.Pattern[str]) -> tuple[str, list[str]]:
    """The plain list items of a field (``*`` if none) and its tokens, upper case."""
    items = text.split(",")
    tokens = [i.upper() for i in items if token.fullmatch(i)]
    plain = [i for i in items if not token.fullmatch(i)]
    return (",".join(plain) if plain else ""), tokens


#: [first, stop) of the years that hold every kind of year (see the module docstring).
EVERY_KIND_OF_YEAR = (date(2001, 1, 1), date(2029, 1, 1))


def _weekdays_of(day: date) -> list[date]:
    """The dates of ``day``'s month, in order."""
    return _month_dates(day.year, day.month)


@functools.cache
def _month_dates(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    out = []
    while first.month == month:
        out.append(first)
        first += timedelta(days=1)
    return out


@dataclass(frozen=True)
class OracleCron:
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]  # 0 = Sunday
    any_day: bool  # either day field starts with * (or ?): both must match
    fixed: bool
    dom_tokens: tuple[str, ...] = ()
    dow_tokens: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> OracleCron:
        fields = _MACROS.get(text.strip().lower(), text).split()
        assert len(fields) == 5, text
        dom_text, dom_tokens = _plain(fields[2], _DOM_TOKEN)
        dow_text, dow_tokens = _plain(fields[4], _DOW_TOKEN)
        dows = _weekdays(dow_text) if dow_text else set()
        return cls(
            minutes=frozenset(_expand(fields[0], 0, 59, {})),
            hours=frozenset(_expand(fields[1], 0, 23, {})),
            doms=frozenset(_expand(dom_text, 1, 31, {})) if dom_text else frozenset(),
            months=frozenset(_expand(fields[3], 1, 12, _MONTHS)),
            dows=frozenset(dows),
            any_day=fields[2][0] in "*?" or fields[4][0] in "*?",
            fixed=fields[0][0] != "*" and fields[1][0] != "*",
            dom_tokens=tuple(dom_tokens),
            dow_tokens=tuple(dow_tokens),
        )

    @property
    def plain(self) -> bool:
        return not self.dom_tokens and not self.dow_tokens

    def date_matches(self, month: int, dom: int, dow: int) -> bool:
        if month not in self.months:
            return False
        a, b = dom in self.doms, dow in self.dows
        return (a and b) if self.any_day else (a or b)

    def matches(self, day: date, business: Callable[[date], bool]) -> bool:
        """The month and day fields, tokens included, on the local date ``day``."""
        if day.month not in self.months:
            return False
        dow = day.isoweekday() % 7
        a = day.day in self.doms or any(self._dom_token(t, day, business) for t in self.dom_tokens)
        b = dow in self.dows or any(self._dow_token(t, day) for t in self.dow_tokens)
        return (a and b) if self.any_day else (a or b)

    @staticmethod
    def _dom_token(token: str, day: date, business: Callable[[date], bool]) -> bool:
        month = _weekdays_of(day)
        weekdays = [d for d in month if d.isoweekday() <= 5]
        if token == "LW":
            return day == weekdays[-1]
        if token.startswith("LB"):
            n = int(token[3:]) if "-" in token else 0
            open_days = [d for d in month if business(d)]
            return len(open_days) > n and open_days[-1 - n] == day
        if token.startswith("L"):
            n = int(token[2:]) if "-" in token else 0
            return len(month) - n == day.day
        if token.endswith("W"):
            n = int(token[:-1])
            if n > len(month):
                return False
            nearest = min(weekdays, key=lambda d: abs(d.day - n))
            return nearest == day
        n = int(token[:-1])  # nB
        open_days = [d for d in month if business(d)]
        return len(open_days) >= n and open_days[n - 1] == day

    @staticmethod
    def _dow_token(token: str, day: date) -> bool:
        d, mark = token[:-2] if "#" in token else token[:-1], token[-2:]
        weekday = _DOWS[d.lower()] if d.lower() in _DOWS else int(d) % 7
        if day.isoweekday() % 7 != weekday:
            return False
        same = [x for x in _weekdays_of(day) if x.isoweekday() % 7 == weekday]
        if mark.startswith("#"):
            return same.index(day) + 1 == int(mark[1])
        return same[-1] == day


def weekday_number(text: str) -> int:
    """0 = Sunday, from an English day name or its first three letters."""
    t = text.strip().lower()
    for word, iso in _WEEKDAY_WORDS.items():
        if t in (word, word[:3]):
            return iso % 7
    raise ValueError(text)


@dataclass
class OracleExclusions:
    annual: set[tuple[int, int]] = field(default_factory=set)  # (day, month)
    monthly: set[int] = field(default_factory=set)
    weekly: set[int] = field(default_factory=set)  # 0 = Sunday
    holidays: set[date] = field(default_factory=set)

    @classmethod
    def from_lists(
        cls, annual: list[str], monthly: list[str], weekly: list[str], holiday: list[str]
    ) -> OracleExclusions:
        ex = cls()
        for a in annual:
            d, m = a.split(".")
            ex.annual.add((int(d), int(m)))
        ex.monthly.update(int(m) for m in monthly)
        ex.weekly.update(weekday_number(w) for w in weekly)
        for h in holiday:
            d, m, y = h.split(".")
            ex.holidays.add(date(int(y), int(m), int(d)))
        return ex

    def excludes(self, day: date) -> bool:
        return (
            (day.day, day.month) in self.annual
            or day.day in self.monthly
            or day.isoweekday() % 7 in self.weekly
            or day in self.holidays
        )

    def excludes_periodic(self, month: int, dom: int, dow: int) -> bool:
        return (dom, month) in self.annual or dom in self.monthly or dow in self.weekly


@dataclass
class OracleSchedule:
    cron: OracleCron
    zone: ZoneInfo
    exclusions: OracleExclusions
    start: datetime | None = None  # naive = wall time in zone
    end: datetime | None = None
    shift: str = "Skip"  # spec.onExcludedDay
    max_shift: int = 7
    _fires: dict[date, bool] = field(default_factory=dict)
    _matches: dict[date, bool] = field(default_factory=dict)

    def matched(self, day: date) -> bool:
        """The cron's month and day fields match ``day`` (excluded or not); remembered."""
        if day not in self._matches:
            self._matches[day] = self.cron.matches(day, self.business)
        return self._matches[day]

    def business(self, day: date) -> bool:
        return not self.exclusions.excludes(day)

    def fires_on(self, day: date) -> bool:
        """Whether the local date ``day`` fires: matched and a business day, or a shift's
        landing day (see the module docstring)."""
        if day not in self._fires:
            self._fires[day] = self._fires_on(day)
        return self._fires[day]

    def _fires_on(self, day: date) -> bool:
        if not self.business(day):
            return False
        if self.matched(day):
            return True
        if self.shift == "Skip":
            return False
        step = timedelta(days=1 if self.shift == "NextBusinessDay" else -1)
        for i in range(1, self.max_shift + 1):
            source = day - step * i
            if self.matched(source) and not self.business(source) and self.shift_of(source) == day:
                return True
        return False

    def shift_of(self, source: date) -> date | None:
        """The business day a matched, excluded date's fires move to, or None."""
        step = timedelta(days=1 if self.shift == "NextBusinessDay" else -1)
        for i in range(1, self.max_shift + 1):
            if self.business(source + step * i):
                return source + step * i
        return None

    def matches(self, wall: datetime) -> bool:
        c = self.cron
        return wall.minute in c.minutes and wall.hour in c.hours and self.fires_on(wall.date())

    def wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def window_instant(self, moment: datetime) -> datetime:
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        u = moment.replace(tzinfo=UTC) - timedelta(hours=16)
        while self.wall(u) < moment:
            u += MINUTE
        return u

    def fires_between(self, after: datetime, until: datetime) -> list[datetime]:
        """Fires in (after, until], by walking every UTC minute from HISTORY before."""
        lo = None if self.start is None else self.window_instant(self.start)
        hi = None if self.end is None else self.window_instant(self.end)
        start = after.astimezone(UTC).replace(second=0, microsecond=0) - HISTORY
        u, stop = int(start.timestamp()), until.timestamp()
        seen: set[datetime] = set()
        previous: datetime | None = None
        out: list[datetime] = []
        while u <= stop:
            wall = datetime.fromtimestamp(u, self.zone).replace(tzinfo=None)
            fire = False
            if self.cron.fixed and previous is not None and wall > previous + MINUTE:
                skipped = previous + MINUTE  # the clock jumped over [skipped, wall)
                while skipped < wall and not fire:
                    fire = self.matches(skipped)
                    skipped += MINUTE
            if self.matches(wall) and (not self.cron.fixed or wall not in seen):
                fire = True
            seen.add(wall)
            previous = wall
            if fire:
                instant = datetime.fromtimestamp(u, UTC)
                if (
                    instant > after
                    and (lo is None or instant >= lo)
                    and (hi is None or instant <= hi)
                ):
                    out.append(instant)
            u += 60
        return out

    def day_walk_fires(self, after: datetime, count: int, years: int) -> list[datetime]:
        """The first ``count`` fires after ``after`` within ``years``, walking local dates;
        only for zones whose offset never changes in that range."""
        lo = None if self.start is None else self.window_instant(self.start)
        hi = None if self.end is None else self.window_instant(self.end)
        day = self.wall(after).date() - timedelta(days=1)
        stop = day + timedelta(days=366 * years)
        out: list[datetime] = []
        times = sorted((h, m) for h in self.cron.hours for m in self.cron.minutes)
        while day <= stop and len(out) < count:
            midnight = datetime(day.year, day.month, day.day)
            offset = midnight.replace(tzinfo=self.zone).utcoffset()
            assert offset is not None
            if hi is not None and (midnight - offset).replace(tzinfo=UTC) > hi:
                break
            if self.fires_on(day):
                for h, m in times:
                    u = (midnight + timedelta(hours=h, minutes=m) - offset).replace(tzinfo=UTC)
                    if u > after and (lo is None or u >= lo) and (hi is None or u <= hi):
                        out.append(u)
                        if len(out) == count:
                            break
            day += timedelta(days=1)
        return out

    def can_ever_match(self) -> bool:
        """Some date of some 400-year cycle matches the date fields and escapes the
        annual/monthly/weekly exclusions (holidays are finite)."""
        if not self.cron.plain or self.shift != "Skip":
            return self.can_ever_fire()
        return any(
            self.cron.date_matches(m, d, w) and not self.exclusions.excludes_periodic(m, d, w)
            for m, d, w in _cycle_days()
        )

    def can_ever_fire(self) -> bool:
        """Some date of 2001-2028 fires with the periodic lists alone (holidays are
        finite; see the module docstring for why these years are enough)."""
        periodic = OracleExclusions(
            self.exclusions.annual, self.exclusions.monthly, self.exclusions.weekly, set()
        )
        walker = OracleSchedule(
            self.cron, self.zone, periodic, shift=self.shift, max_shift=self.max_shift
        )
        day, stop = EVERY_KIND_OF_YEAR
        while day < stop:
            if walker.fires_on(day):
                return True
            day += timedelta(days=1)
        return False


@functools.cache
def _cycle_days() -> frozenset[tuple[int, int, int]]:
    """Every (month, day, weekday) that occurs in one 400-year cycle, by walking it."""
    out: set[tuple[int, int, int]] = set()
    day, stop = date(2000, 1, 1), date(2400, 1, 1)
    while day < stop:
        out.add((day.month, day.day, day.isoweekday() % 7))
        day += timedelta(days=1)
    return frozenset(out)


@functools.cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """Instants (to the minute) where the zone's UTC offset changes during ``year``."""
    z = ZoneInfo(zone)
    out = []
    u = datetime(year, 1, 1, tzinfo=UTC)
    stop = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = u.astimezone(z).utcoffset()
    while u < stop:
        nxt = u + timedelta(hours=6)  # no zone changes offset twice within 6 hours
        if nxt.astimezone(z).utcoffset() != offset:
            m = u
            while m.astimezone(z).utcoffset() == offset:
                m += MINUTE
            out.append(m)
            offset = m.astimezone(z).utcoffset()
        u = nxt
    return tuple(out)
