"""A country's or a financial market's holidays, from the ``holidays`` package.

Where it sits: pure, beside :mod:`almanac.schedule.exclusions` (whose :class:`DateSet`
protocol :class:`CountryHolidays` implements) and below :mod:`almanac.api.models`, which
checks each ``spec.holidays[i]`` of a Calendar with :func:`check` and builds the set
with :class:`CountryHolidays`. Of Almanac it imports only :mod:`almanac.errors` and
:mod:`almanac.schedule.exclusions`.

Why the ``holidays`` package: it is maintained (every country's rules, Easter and lunar
calendars, observed days, regions, markets such as NYSE), it computes any year offline,
and nobody has to type a list every year. What it says is what Almanac excludes: the
tests compare against it, not against a copy.

Cost, and why it is imported late: importing the package takes about 70 ms, and the
first year of a country about 80 ms more (its module and its translations); each further
year takes well under a millisecond. So the package is imported only when a Calendar
names a country, and each (country, subdivision, category, language, year) is computed
once per process (:func:`_year`), however many schedules are built from it.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from types import ModuleType
from typing import Any

from almanac.errors import quote
from almanac.schedule.exclusions import ExclusionKind

__all__ = ["DEFAULT_CATEGORY", "CountryHolidays", "HolidaysProblem", "check", "years_covered"]

DEFAULT_CATEGORY = "public"
"""The category used when ``categories`` is not given: the package's default too."""


class HolidaysProblem(ValueError):
    """One field of a ``spec.holidays[i]`` entry is wrong; ``field`` names it
    (``country``, ``market``, ``subdivision``, ``categories``, ``language``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _package() -> ModuleType:
    import holidays

    return holidays


@functools.cache
def _entities(market: bool) -> dict[str, tuple[str, ...]]:
    """Code -> subdivision codes, of the countries or of the markets the package knows."""
    h = _package()
    listed = h.list_supported_financial() if market else h.list_supported_countries()
    return {code: tuple(subdivisions) for code, subdivisions in listed.items()}


@functools.cache
def _names(market: bool) -> dict[str, str]:
    """Lower-case English name -> code ("romania" -> "RO"), for suggestions."""
    from holidays import registry

    table = registry.FINANCIAL if market else registry.COUNTRIES
    names: dict[str, str] = {}
    for module, (class_name, code, *_rest) in table.items():
        names[module.replace("_", " ")] = code
        names[class_name.lower()] = code
    return names


@functools.cache
def _entity(code: str, market: bool) -> Any:
    """The package's class for that code (a country's or a market's)."""
    h = _package()
    return h.financial_holidays(code) if market else h.country_holidays(code)


def _nearest(value: str, choices: list[str], names: Mapping[str, str] | None = None) -> list[str]:
    """Up to three valid codes close to ``value``: the same code in another case, a name
    ("Romania" -> RO), or codes that look alike (difflib)."""
    upper = value.strip().upper()
    found = [c for c in choices if c.upper() == upper]
    if names and value.strip().lower() in names:
        found.append(names[value.strip().lower()])
    if found:  # "ro" -> RO, "Romania" -> RO: nothing else is as near
        return list(dict.fromkeys(found))
    if names and len(value) > 3:  # a misspelt name ("Romnia"), not a code
        found += [names[n] for n in difflib.get_close_matches(value.lower(), names, n=2)]
        if found:
            return list(dict.fromkeys(found))
    # A code it begins ("en" -> en_US), then codes of the same length: "BZ" is nearer
    # BY than Bayern; two-letter codes sharing a letter score 0.5.
    found += [c for c in choices if c.upper().startswith(upper)]
    same = [c for c in choices if len(c) == len(upper)]
    found += difflib.get_close_matches(upper, same, n=3, cutoff=0.5)
    found += difflib.get_close_matches(upper, choices, n=3, cutoff=0.6)
    return list(dict.fromkeys(found))[:3]


def _did_you_mean(suggestions: list[str]) -> str:
    if not suggestions:
        return ""
    if len(suggestions) == 1:
        return f"; did you mean {suggestions[0]}?"
    return f"; did you mean {', '.join(suggestions[:-1])} or {suggestions[-1]}?"


def check(
    *,
    country: str | None,
    market: str | None,
    subdivision: str | None,
    categories: tuple[str, ...],
    language: str | None,
) -> None:
    """Raise :class:`HolidaysProblem` naming the first wrong field of one entry, with the
    nearest valid codes; return when the package knows every value."""
    if (country is None) == (market is None):
        field = "country" if country is None else "market"
        raise HolidaysProblem(
            field,
            "give exactly one of country (e.g. RO) or market (e.g. NYSE)"
            if country is None
            else "give country or market, not both",
        )
    is_market = market is not None
    code = market if is_market else country
    assert code is not None
    field = "market" if is_market else "country"
    known = _entities(is_market)
    if code not in known:
        what = "financial market" if is_market else "country"
        raise HolidaysProblem(
            field,
            f"{quote(code)} is not a {what} code the holidays package knows"
            + _did_you_mean(_nearest(code, sorted(known), _names(is_market))),
        )
    entity = _entity(code, is_market)
    if subdivision is not None:
        aliases: dict[str, str] = dict(getattr(entity, "subdivisions_aliases", {}) or {})
        valid = list(entity.subdivisions)
        if subdivision not in valid and subdivision not in aliases:
            if not valid:
                raise HolidaysProblem("subdivision", f"{code} has no subdivisions; remove it")
            raise HolidaysProblem(
                "subdivision",
                f"{quote(subdivision)} is not a subdivision of {code}"
                + _did_you_mean(
                    _nearest(subdivision, valid, {k.lower(): v for k, v in aliases.items()})
                )
                + f" (valid: {', '.join(valid[:30])}{', ...' if len(valid) > 30 else ''})",
            )
    supported = list(entity.supported_categories)
    for category in categories:
        if category not in supported:
            raise HolidaysProblem(
                "categories",
                f"{quote(category)} is not a category of {code}"
                + _did_you_mean(_nearest(category, supported))
                + f" (valid: {', '.join(supported)})",
            )
    if language is not None:
        languages = list(entity.supported_languages)
        if language not in languages:
            raise HolidaysProblem(
                "language",
                f"{quote(language)} is not a language of {code}'s names"
                + _did_you_mean(_nearest(language, languages))
                + f" (valid: {', '.join(languages)})",
            )


def years_covered(*, country: str | None = None, market: str | None = None) -> tuple[int, int]:
    """The first and last year the package computes for that country or market (most
    end in 2100): a year outside has no holidays, so a set ends there."""
    code = market or country
    assert code is not None
    entity = _entity(code, market is not None)
    return int(entity.start_year), int(entity.end_year)


@functools.lru_cache(maxsize=4096)
def _year(
    code: str,
    market: bool,
    subdivision: str | None,
    category: str,
    language: str | None,
    year: int,
) -> tuple[tuple[date, str], ...]:
    """The package's (date, name) pairs of one year, category and language; once per
    process (the engine asks for each year it reaches, each decision)."""
    entity = _entity(code, market)
    h = _package()
    kwargs: dict[str, Any] = {
        "years": year,
        "subdiv": subdivision,
        "categories": (category,),
        # The country's own language unless told: the same names on every machine,
        # whatever its locale (the package would otherwise follow LANG).
        "language": language or entity.default_language,
    }
    found = h.financial_holidays(code, **kwargs) if market else h.country_holidays(code, **kwargs)
    return tuple(sorted(found.items()))


@dataclass(frozen=True, slots=True)
class CountryHolidays:
    """One ``spec.holidays[i]`` entry as a :class:`~almanac.schedule.exclusions.DateSet`:
    the holidays of a country (or subdivision) or of a market, in the categories given,
    in the years ``first_year`` to ``last_year`` (the API's bounds and the years the
    package covers, :func:`years_covered`: a set that ends keeps the engine's horizon
    finite)."""

    source: str
    """``Calendar <name>``."""
    path: str
    """``spec.holidays[i]``."""
    first_year: int
    last_year: int
    country: str | None = None
    market: str | None = None
    subdivision: str | None = None
    categories: tuple[str, ...] = (DEFAULT_CATEGORY,)
    language: str | None = None

    @property
    def kind(self) -> ExclusionKind:
        return ExclusionKind.HOLIDAYS

    @property
    def code(self) -> str:
        """The country or market code, with the subdivision: ``RO``, ``US-CA``, ``NYSE``."""
        code = self.market or self.country or ""
        return f"{code}-{self.subdivision}" if self.subdivision else code

    def dates_in(self, year: int) -> Mapping[date, str]:
        if not self.first_year <= year <= self.last_year:
            return {}
        code = self.market or self.country
        assert code is not None
        found: dict[date, list[str]] = {}
        for category in self.categories:
            for day, name in _year(
                code, self.market is not None, self.subdivision, category, self.language, year
            ):
                found.setdefault(day, []).append(self._label(category, name))
        return {day: "; ".join(labels) for day, labels in found.items()}

    def in_zone(self, zone: tzinfo) -> CountryHolidays:
        """Itself: a holiday is a date, taken as the job's local date (as ``holiday[]``)."""
        return self

    def _label(self, category: str, name: str) -> str:
        """``public holiday in RO: Ziua Națională a României``; ``NYSE market holiday:
        Good Friday``; ``NYSE half day: Christmas Eve`` for another category."""
        words = category.replace("_", " ")
        if self.market:
            kind = "market holiday" if category == DEFAULT_CATEGORY else words
            return f"{self.code} {kind}: {name}"
        return f"{words} holiday in {self.code}: {name}"
