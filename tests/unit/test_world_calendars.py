"""Calendars from the world (issue 17): ``spec.holidays`` and ``spec.ical``.

Country and market holidays are compared, day by day, with what the ``holidays`` package
itself says for those years (never with a copied list); iCalendar texts are small ones
written here, each case with the local dates docs/api.md says its events take; malformed
texts are refused with the line at fault.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import holidays
import pytest

from almanac.api import bounds
from almanac.api import resolve as resolve_module
from almanac.api.models import Calendar, ScheduledJob
from almanac.api.resolve import resolve
from almanac.controller.admission import review_calendar
from almanac.errors import InvalidSpec
from almanac.schedule.engine import Schedule
from almanac.schedule.exclusions import ExclusionKind
from almanac.schedule.explain import Fire, SkippedDay
from almanac.shared import Kept

YEARS = (2026, 2027, 2028)


def calendar(name: str = "world", **spec: Any) -> Calendar:
    return Calendar.parse({"metadata": {"name": name}, "spec": spec})


def job(
    schedule: str = "0 12 * * *", zone: str = "UTC", refs: tuple[str, ...] = ("world",)
) -> ScheduledJob:
    return ScheduledJob.parse(
        {
            "metadata": {"name": "j"},
            "spec": {
                "schedule": schedule,
                "timeZone": zone,
                "calendarRefs": [{"name": r} for r in refs],
                "services": [{"name": "a", "jobTemplate": {}}],
            },
        }
    )


def schedule_of(cal: Calendar, zone: str = "UTC", cron: str = "0 12 * * *") -> Schedule:
    return job(cron, zone, (cal.metadata.name,)).spec.build_schedule({cal.metadata.name: cal})


def days_of(year: int) -> Iterator[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


# --------------------------------------------------------------------------------------
# Country and market holidays, against the package's own data

COUNTRIES = [
    # (id, spec.holidays entry, how the package is asked)
    ("Romania", {"country": "RO"},
     lambda y: holidays.country_holidays("RO", years=y, language="ro")),
    ("United States", {"country": "US"}, lambda y: holidays.country_holidays("US", years=y)),
    ("Germany, Bavaria (a subdivision)", {"country": "DE", "subdivision": "BY"},
     lambda y: holidays.country_holidays("DE", subdiv="BY", years=y, language="de")),
    ("Japan", {"country": "JP"}, lambda y: holidays.country_holidays("JP", years=y, language="ja")),
    ("United Kingdom, Scotland", {"country": "GB", "subdivision": "SCT"},
     lambda y: holidays.country_holidays("GB", subdiv="SCT", years=y)),
    ("Brazil by its alpha-3 code", {"country": "BRA"},
     lambda y: holidays.country_holidays("BR", years=y, language="pt_BR")),
    ("Germany, public and catholic", {"country": "DE", "subdivision": "BY",
                                      "categories": ["public", "catholic"], "language": "en_US"},
     lambda y: holidays.country_holidays("DE", subdiv="BY", years=y,
                                         categories=("public", "catholic"), language="en_US")),
    ("NYSE (a market)", {"market": "NYSE"}, lambda y: holidays.financial_holidays("NYSE", years=y)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "package"), [row[1:] for row in COUNTRIES], ids=[row[0] for row in COUNTRIES]
)
def test_a_country_calendar_excludes_exactly_the_packages_holidays(
    entry: dict[str, Any], package: Any
) -> None:
    """Every day of 2026-2028: excluded if and only if the package lists it, and the
    explanation carries the package's name for it."""
    cal = calendar(holidays=[entry])
    exclusions = cal.exclusions()
    for year in YEARS:
        expected = package(year)
        assert len(expected) >= 5, "the package should list holidays for these years"
        for day in days_of(year):
            rules = exclusions.explain(day)
            assert exclusions.excludes(day) == (day in expected), day
            if day in expected:
                assert len(rules) == 1 and rules[0].kind is ExclusionKind.HOLIDAYS
                assert rules[0].path == "spec.holidays[0]" and rules[0].source == "Calendar world"
                for name in expected.get_list(day):
                    assert name in rules[0].label, (day, rules[0].label)
            else:
                assert rules == ()


@pytest.mark.parametrize(
    ("entry", "package"), [row[1:] for row in COUNTRIES[:3]], ids=[row[0] for row in COUNTRIES[:3]]
)
def test_a_daily_job_fires_on_every_day_but_the_holidays(
    entry: dict[str, Any], package: Any
) -> None:
    """The engine, end to end: a daily job's fire dates over 2026-2028 are every date the
    package does not list."""
    schedule = schedule_of(calendar(holidays=[entry]))
    after = datetime(2025, 12, 31, 13, 0, tzinfo=UTC)
    until = datetime(2028, 12, 31, 12, 0, tzinfo=UTC)
    fired: set[date] = set()
    for fire in schedule.fires(after):
        if fire > until:
            break
        fired.add(fire.date())
    expected = {d for y in YEARS for d in days_of(y) if d not in package(y)}
    assert fired == expected


def test_the_wide_explanation_names_the_holiday_in_the_countrys_language() -> None:
    schedule = schedule_of(calendar("ro-banks", holidays=[{"country": "RO"}]), "Europe/Bucharest")
    explanation = schedule.explain_day(date(2026, 12, 1))
    name = holidays.country_holidays("RO", years=2026, language="ro")[date(2026, 12, 1)]
    assert name == "Ziua Națională a României"
    assert not explanation.fires
    assert explanation.message == (
        f"Tuesday 2026-12-01 is excluded by public holiday in RO: {name} "
        f"(Calendar ro-banks, spec.holidays[0])"
    )


def test_holidays_stop_after_the_last_year_the_package_covers() -> None:
    """Open-ended sets end (with the package's years, within the API's bounds), so the
    engine's horizon (and its proof that a schedule never fires) stays finite."""
    last = min(holidays.country_holidays("RO").end_year, bounds.YEAR_MAX)
    exclusions = calendar(holidays=[{"country": "RO"}]).exclusions()
    assert exclusions.excludes(date(last, 12, 25))
    assert not exclusions.excludes(date(last + 1, 12, 25))
    assert exclusions.last_holiday == date(last, 12, 31)


def test_a_job_whose_only_dates_are_holidays_fires_after_the_last_year() -> None:
    """``0 12 1 1 *`` with Romania: New Year's Day is a holiday every year the package
    covers; the first fire is the year after."""
    last = min(holidays.country_holidays("RO").end_year, bounds.YEAR_MAX)
    schedule = schedule_of(calendar(holidays=[{"country": "RO"}]), cron="0 12 1 1 *")
    assert schedule.never_fires is None
    nxt = schedule.next_fire(datetime(2026, 1, 2, tzinfo=UTC))
    assert nxt == datetime(last + 1, 1, 1, 12, 0, tzinfo=UTC)


def test_a_country_year_is_computed_once_per_process() -> None:
    """The engine asks for each year it reaches at every decision: the package is asked
    once per (country, year, ...), and the schedules built later from the same Calendar
    do not even ask the cache (they share the exclusions that learned the year)."""
    from almanac.schedule import countries

    countries._year.cache_clear()
    first = None
    for _ in range(3):
        schedule = schedule_of(calendar(holidays=[{"country": "FR"}]))
        list(zip(range(400), schedule.fires(datetime(2026, 1, 1, tzinfo=UTC)), strict=False))
        first = first or countries._year.cache_info().misses
    info = countries._year.cache_info()
    assert first == 3  # 2025 (the day before the search starts), 2026 and 2027
    assert info.misses == first and info.hits == 0


def test_jobs_that_match_the_same_dates_under_the_same_calendar_share_what_it_worked_out() -> None:
    """The operator builds a schedule at each decision, the webhook one per referring
    job: jobs whose day fields and Calendars are the same share one CandidateDays (and
    what it learned of each month), whatever their hours; any other job has its own,
    and sharing changes no fire."""
    from almanac.schedule import days as days_module
    from almanac.schedule import exclusions as exclusions_module

    bank = calendar(holidays=[{"country": "RO"}], weekly=["Saturday", "Sunday"])
    weekdays_at_2, weekdays_at_6 = (
        schedule_of(bank, cron="0 2 * * 1-5"),
        schedule_of(bank, cron="30 6 * * 1-5"),
    )
    firsts = schedule_of(bank, cron="0 2 1 * *")
    other_bank = schedule_of(calendar(holidays=[{"country": "FR"}]), cron="0 2 * * 1-5")
    assert weekdays_at_2.days is weekdays_at_6.days
    assert firsts.days is not weekdays_at_2.days
    assert other_bank.days is not weekdays_at_2.days

    since = datetime(2026, 12, 1, tzinfo=UTC)
    shared = list(zip(range(300), weekdays_at_6.fires(since), strict=False))
    days_module._SHARED.clear()
    exclusions_module._UNIONS.clear()
    alone = schedule_of(bank, cron="30 6 * * 1-5")
    assert alone.days is not weekdays_at_6.days
    assert list(zip(range(300), alone.fires(since), strict=False)) == shared


def test_a_calendar_is_parsed_once_per_content_for_every_job_that_refers_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every decision of every referring job resolves its schedule: a Calendar is parsed
    and worked out once per content. An edit is seen at once, even one that carries the
    stored version's UID and resourceVersion (an edit under admission review, or a file
    saved from the cluster and edited, as calendar-diff reads)."""
    parsed: list[list[str]] = []
    parse = Calendar.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Calendar], body: dict[str, Any]) -> Calendar:
        parsed.append(body["spec"].get("holiday", []))
        return parse(cls, body)  # type: ignore[no-any-return]

    monkeypatch.setattr(Calendar, "parse", classmethod(counting))
    monkeypatch.setattr(resolve_module, "_PARSED", Kept(resolve_module.PARSED_KEPT))
    spec = {"weekly": ["Saturday", "Sunday"], "holidays": [{"country": "RO"}]}
    stored = {"metadata": {"name": "bank", "uid": "u-1", "resourceVersion": "7"}, "spec": spec}
    jobs = [job("0 9 * * *", refs=("bank",)) for _ in range(3)]
    christmas_eve = datetime(2027, 12, 23, 12, tzinfo=UTC)  # a Thursday
    fires = [resolve(j, {"bank": stored}).next_fire(christmas_eve) for j in jobs]
    assert parsed == [[]]
    assert fires == [datetime(2027, 12, 24, 9, tzinfo=UTC)] * 3
    # The edit, with the stored version's metadata: 24 December added.
    edited = {**stored, "spec": {**spec, "holiday": ["24.12.2027"]}}
    after = [resolve(j, {"bank": edited}).next_fire(christmas_eve) for j in jobs]
    assert parsed == [[], ["24.12.2027"]]
    assert after == [datetime(2027, 12, 27, 9, tzinfo=UTC)] * 3  # 25 and 26 are holidays
    # The stored version again, as a new LIST decodes it: not parsed again.
    again = copy.deepcopy(stored)
    assert resolve(jobs[0], {"bank": again}).next_fire(christmas_eve) == fires[0]
    assert parsed == [[], ["24.12.2027"]]
    # A YAML file's body that JSON cannot hold is parsed, and refused, as before.
    odd = {"metadata": {"name": "bank", "creationTimestamp": christmas_eve}, "spec": {1: 2}}
    with pytest.raises(InvalidSpec, match=r"spec\[1\]"):
        resolve(jobs[0], {"bank": odd})


UNKNOWN = [
    ("a country by its name", {"country": "Romania"},
     'spec.holidays[0].country: "Romania" is not a country code the holidays package knows; '
     "did you mean RO?"),
    ("a country in lower case", {"country": "ro"}, "did you mean RO?"),
    ("a typo in a 3-letter code", {"country": "RUO"}, "ROU"),
    ("a misspelt name", {"country": "Romnia"}, "did you mean RO"),
    ("a market", {"market": "NYSX"},
     'spec.holidays[0].market: "NYSX" is not a financial market code the holidays package knows; '
     "did you mean"),
    ("a subdivision", {"country": "DE", "subdivision": "BZ"},
     'spec.holidays[0].subdivision: "BZ" is not a subdivision of DE; did you mean'),
    ("a subdivision by a misspelt name", {"country": "DE", "subdivision": "Bayren"},
     "did you mean BY"),
    ("a subdivision of a country without", {"country": "RO", "subdivision": "B"},
     "spec.holidays[0].subdivision: RO has no subdivisions; remove it"),
    ("a category", {"country": "RO", "categories": ["bank"]},
     'spec.holidays[0].categories: "bank" is not a category of RO (valid: public)'),
    ("a language", {"country": "RO", "language": "en"},
     'spec.holidays[0].language: "en" is not a language of RO\'s names; did you mean'),
    ("neither country nor market", {"subdivision": "BY"},
     "spec.holidays[0].country: give exactly one of country (e.g. RO) or market (e.g. NYSE)"),
    ("both", {"country": "US", "market": "NYSE"},
     "spec.holidays[0].market: give country or market, not both"),
    ("a misspelt field", {"contry": "RO"},
     "spec.holidays[0].contry: is not a known field; did you mean country?"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "message"), [row[1:] for row in UNKNOWN], ids=[row[0] for row in UNKNOWN]
)
def test_an_unknown_code_names_the_field_and_the_nearest_codes(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSpec) as raised:
        calendar(holidays=[entry])
    assert message in str(raised.value)


def test_at_most_so_many_holiday_entries() -> None:
    entry = {"country": "RO"}
    calendar(holidays=[entry] * bounds.HOLIDAYS_MAX_ITEMS)
    with pytest.raises(InvalidSpec, match=r"spec.holidays: has 17 items; at most 16"):
        calendar(holidays=[entry] * (bounds.HOLIDAYS_MAX_ITEMS + 1))


# --------------------------------------------------------------------------------------
# iCalendar


def ics(*events: str) -> str:
    body = "".join("BEGIN:VEVENT\n" + textwrap.dedent(e).strip() + "\nEND:VEVENT\n" for e in events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//almanac//tests//EN\n{body}END:VCALENDAR\n"


def d(text: str) -> date:
    return date.fromisoformat(text)


ICAL = [
    # (id, events, job zone, the year looked at, the local dates excluded)
    ("an all-day event", ["UID:1\nSUMMARY:Party\nDTSTART;VALUE=DATE:20261224"],
     "UTC", 2026, {d("2026-12-24")}),
    ("a multi-day event, DTEND not included",
     ["UID:1\nSUMMARY:Offsite\nDTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20261227"],
     "Europe/Bucharest", 2026, {d("2026-12-24"), d("2026-12-25"), d("2026-12-26")}),
    ("a multi-day event across the new year, seen in its second year",
     ["UID:1\nSUMMARY:Freeze\nDTSTART;VALUE=DATE:20261230\nDTEND;VALUE=DATE:20270103"],
     "UTC", 2027, {d("2027-01-01"), d("2027-01-02")}),
    ("a weekly RRULE with COUNT, minus an EXDATE",
     ["UID:1\nSUMMARY:Release\nDTSTART;VALUE=DATE:20260105\nRRULE:FREQ=WEEKLY;COUNT=4\n"
      "EXDATE;VALUE=DATE:20260112"],
     "UTC", 2026, {d("2026-01-05"), d("2026-01-19"), d("2026-01-26")}),
    ("a monthly RRULE with BYDAY and UNTIL (first Monday)",
     ["UID:1\nSUMMARY:Board\nDTSTART;TZID=Europe/Bucharest:20260105T100000\n"
      "DTEND;TZID=Europe/Bucharest:20260105T110000\n"
      "RRULE:FREQ=MONTHLY;BYDAY=1MO;UNTIL=20260430T000000Z"],
     "Europe/Bucharest", 2026,
     {d("2026-01-05"), d("2026-02-02"), d("2026-03-02"), d("2026-04-06")}),
    ("a yearly RRULE without an end, far ahead",
     ["UID:1\nSUMMARY:Founding day\nDTSTART;VALUE=DATE:20200317\nRRULE:FREQ=YEARLY"],
     "UTC", 2150, {d("2150-03-17")}),
    ("a yearly RRULE without an end stops after the last year in bounds",
     ["UID:1\nSUMMARY:Founding day\nDTSTART;VALUE=DATE:20200317\nRRULE:FREQ=YEARLY"],
     "UTC", bounds.YEAR_MAX + 1, set()),
    ("a timed UTC event, in Bucharest: the next local day",
     ["UID:1\nSUMMARY:Maintenance\nDTSTART:20260310T230000Z\nDURATION:PT2H"],
     "Europe/Bucharest", 2026, {d("2026-03-11")}),
    ("the same event in New York: the same day",
     ["UID:1\nSUMMARY:Maintenance\nDTSTART:20260310T230000Z\nDURATION:PT2H"],
     "America/New_York", 2026, {d("2026-03-10")}),
    ("the same event in UTC: both days it overlaps",
     ["UID:1\nSUMMARY:Maintenance\nDTSTART:20260310T230000Z\nDURATION:PT2H"],
     "UTC", 2026, {d("2026-03-10"), d("2026-03-11")}),
    ("a Tokyo evening is the same morning in London",
     ["UID:1\nSUMMARY:Tokyo close\nDTSTART;TZID=Asia/Tokyo:20260601T233000\n"
      "DTEND;TZID=Asia/Tokyo:20260601T235900"],
     "Europe/London", 2026, {d("2026-06-01")}),
    ("and the next day in Auckland",
     ["UID:1\nSUMMARY:Tokyo close\nDTSTART;TZID=Asia/Tokyo:20260601T233000\n"
      "DTEND;TZID=Asia/Tokyo:20260601T235900"],
     "Pacific/Auckland", 2026, {d("2026-06-02")}),
    ("an event ending at local midnight takes no more",
     ["UID:1\nSUMMARY:Evening\nDTSTART;TZID=Europe/Paris:20260701T200000\n"
      "DTEND;TZID=Europe/Paris:20260702T000000"],
     "Europe/Paris", 2026, {d("2026-07-01")}),
    ("a floating time is read in the job's zone",
     ["UID:1\nSUMMARY:Local\nDTSTART:20260701T233000\nDTEND:20260701T234500"],
     "America/Los_Angeles", 2026, {d("2026-07-01")}),
    ("a weekly timed RRULE across a DST change keeps its local day",
     ["UID:1\nSUMMARY:Late run\nDTSTART;TZID=America/New_York:20260301T230000\n"
      "DTEND;TZID=America/New_York:20260301T233000\nRRULE:FREQ=WEEKLY;COUNT=3"],
     "America/New_York", 2026, {d("2026-03-01"), d("2026-03-08"), d("2026-03-15")}),
    ("a Windows zone name (Outlook) is read as its IANA zone",
     ["UID:1\nSUMMARY:Early\nDTSTART;TZID=W. Europe Standard Time:20260102T003000\n"
      "DTEND;TZID=W. Europe Standard Time:20260102T004500"],
     "America/New_York", 2026, {d("2026-01-01")}),
    ("a cancelled event excludes nothing",
     ["UID:1\nSUMMARY:Off\nSTATUS:CANCELLED\nDTSTART;VALUE=DATE:20260601"],
     "UTC", 2026, set()),
    ("a moved occurrence (RECURRENCE-ID) takes its new day",
     ["UID:1\nSUMMARY:Sync\nDTSTART;VALUE=DATE:20260106\nRRULE:FREQ=WEEKLY;COUNT=2",
      "UID:1\nSUMMARY:Sync\nRECURRENCE-ID;VALUE=DATE:20260113\nDTSTART;VALUE=DATE:20260115"],
     "UTC", 2026, {d("2026-01-06"), d("2026-01-15")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sizes", "held"),
    [
        ([40, 40], [40, 40]),
        ([40, 40, 40], [40, 40]),  # past the budget: the least recently used goes
        ([10, 10, 10, 10], [10, 10, 10]),  # past the entries
        ([101], []),  # heavier than the whole budget: computed, never kept
    ],
)
def test_the_parse_cache_is_bounded_by_what_it_holds(sizes: list[int], held: list[int]) -> None:
    """A count of entries alone let 64 texts of a megabyte keep their parse (20-30 bytes
    a character): the cache is bounded by the weight of its texts too."""
    cache: Kept[str, str] = Kept(3, 100, lambda text, _: len(text))
    texts = [chr(ord("a") + i) * size for i, size in enumerate(sizes)]
    made = [cache.get(text, text.upper) for text in texts]
    assert made == [text.upper() for text in texts]

    def missing() -> str:
        raise LookupError  # a probe that inserts nothing

    def kept(text: str) -> bool:
        try:
            return cache.get(text, missing) == text.upper()
        except LookupError:
            return False

    assert [len(text) for text in texts if kept(text)] == held


@pytest.mark.parametrize(
    ("events", "zone", "year", "expected"),
    [row[1:] for row in ICAL],
    ids=[row[0] for row in ICAL],
)
def test_ical_events_exclude_their_local_dates(
    events: list[str], zone: str, year: int, expected: set[date]
) -> None:
    cal = calendar("acme", ical=ics(*events))
    schedule = schedule_of(cal, zone)
    excluded = {day for day in days_of(year) if schedule.exclusions.excludes(day)}
    assert excluded == expected
    for day in expected:
        explanation = schedule.explain_day(day)
        assert not explanation.fires
        assert "iCalendar event" in explanation.message
        assert "(Calendar acme, spec.ical)" in explanation.message


def test_the_timeline_skips_an_ical_day_with_the_events_name() -> None:
    cal = calendar("acme", ical=ics("UID:1\nSUMMARY:Offsite\nDTSTART;VALUE=DATE:20270106"))
    schedule = schedule_of(cal, "Europe/Bucharest", "30 2 * * 1-5")
    items = []
    for item in schedule.timeline(datetime(2027, 1, 5, 12, 0, tzinfo=UTC)):
        items.append(item)
        if isinstance(item, Fire):
            break
    skipped, fire = items
    assert isinstance(skipped, SkippedDay) and skipped.day == date(2027, 1, 6)
    assert str(skipped.excluded_by[0]) == 'iCalendar event "Offsite" (Calendar acme, spec.ical)'
    assert isinstance(fire, Fire) and fire.local.date() == date(2027, 1, 7)


def test_holidays_ical_and_lists_add_up_with_every_reason() -> None:
    cal = calendar(
        "mix",
        weekly=["Sat"],
        holidays=[{"country": "RO"}],
        ical=ics("UID:1\nSUMMARY:Party\nDTSTART;VALUE=DATE:20261201"),
    )
    rules = cal.exclusions().explain(date(2026, 12, 1))
    assert [r.kind for r in rules] == [ExclusionKind.HOLIDAYS, ExclusionKind.ICAL]


MALFORMED = [
    # (id, text, line, words of the reason)
    ("not iCalendar at all", "hello\n", 1, "HELLO outside BEGIN:VCALENDAR ... END:VCALENDAR"),
    ("a broken line inside", ics("UID:1\nDTSTART;VALUE=DATE:20260101\nX-;;:broken"), 7,
     "Content line could not be parsed"),
    ("a bad DTSTART", ics("UID:1\nDTSTART;VALUE=DATE:2026122"), 6, "DTSTART"),
    ("a bad RRULE", ics("UID:1\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=SOMETIMES"), 7, "RRULE"),
    ("an RRULE part out of range",
     ics("UID:1\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=YEARLY;BYMONTH=13"), 7,
     "RRULE: BYMONTH=13 is outside 1 to 12 (RFC 5545)"),
    ("a negative RRULE part out of range",
     ics("UID:1\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-32"), 7,
     "RRULE: BYMONTHDAY=-32 is outside -31 to -1, 1 to 31 (RFC 5545)"),
    ("a rule repeating within a day",
     ics("UID:1\nDTSTART:20260101T090000Z\nRRULE:FREQ=HOURLY;COUNT=3"), 7,
     "RRULE: FREQ=HOURLY repeats the event within a day; Almanac excludes whole days"),
    ("a rule with several hours",
     ics("UID:1\nDTSTART:20260101T090000Z\nRRULE:FREQ=DAILY;BYHOUR=9,17"), 7,
     "RRULE: BYHOUR with 2 values repeats the event within a day"),
    ("a zone nobody defines",
     ics("UID:1\nDTSTART;TZID=Custom/Nowhere:20260101T090000"), 6,
     'DTSTART: TZID "Custom/Nowhere" is neither an IANA zone nor a VTIMEZONE of this calendar'),
    ("a line without a colon", ics("UID:1\nSUMMARY Party\nDTSTART;VALUE=DATE:20260101"), 6,
     "Content line could not be parsed"),
    ("an END that closes the wrong BEGIN",
     "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nEND:VTODO\nEND:VCALENDAR\n", 4,
     "END:VTODO closes BEGIN:VEVENT of line 2"),
    ("a BEGIN never closed", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\n", 2,
     "BEGIN:VEVENT is never closed"),
    ("an event without DTSTART", ics("UID:1\nSUMMARY:When?"), 4, "VEVENT has no DTSTART"),
    ("an end before the start",
     ics("UID:1\nDTSTART;VALUE=DATE:20260105\nDTEND;VALUE=DATE:20260101"), 7,
     "DTEND is before DTSTART"),
    ("a second calendar",
     ics("UID:1\nDTSTART;VALUE=DATE:20260105") + "BEGIN:VCALENDAR\nEND:VCALENDAR\n",
     9, "a second top-level component"),
    ("text before the calendar", "SUMMARY:x\n" + ics("UID:1\nDTSTART;VALUE=DATE:20260105"), 1,
     "outside BEGIN:VCALENDAR"),
    ("a line number after folded lines",
     ics("UID:1\nDESCRIPTION:a long\n  description folded\n  on three lines\nDTSTART:2026"), 9,
     "DTSTART"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "words"), [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_malformed_ical_is_refused_with_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        calendar(ical=text)
    message = str(raised.value)
    assert message.startswith(f"spec.ical: not valid iCalendar (RFC 5545): line {line}: "), message
    assert words in message
    # and the admission webhook refuses it with the same words
    review = review_calendar({"metadata": {"name": "c"}, "spec": {"ical": text}})
    assert not review.allowed
    assert any(f"line {line}: " in e and words in e for e in review.errors)


def test_ical_bounds() -> None:
    many = ics(
        *[f"UID:{i}\nDTSTART;VALUE=DATE:20260101" for i in range(bounds.ICAL_MAX_EVENTS + 1)]
    )
    with pytest.raises(InvalidSpec, match=r"spec.ical: has 2001 events \(VEVENT\); at most 2000"):
        calendar(ical=many)
    weekly = "\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=WEEKLY"
    limit = bounds.ICAL_MAX_RECURRING_EVENTS
    calendar(ical=ics(*[f"UID:{i}{weekly}" for i in range(limit)]))
    with pytest.raises(
        InvalidSpec, match=rf"spec.ical: has {limit + 1} recurring events \(RRULE or RDATE\)"
    ):
        calendar(ical=ics(*[f"UID:{i}{weekly}" for i in range(limit + 1)]))
    # Components of any kind, counted before the text is parsed (only events are read).
    todos = "BEGIN:VTODO\nEND:VTODO\n" * bounds.ICAL_MAX_COMPONENTS
    with pytest.raises(
        InvalidSpec,
        match=rf"spec.ical: has {bounds.ICAL_MAX_COMPONENTS + 1} components \(BEGIN lines\); "
        rf"at most {bounds.ICAL_MAX_COMPONENTS} are allowed: the events \(VEVENT\)",
    ):
        calendar(ical=ics().replace("END:VCALENDAR", todos + "END:VCALENDAR"))
    calendar(ical=ics().replace("END:VCALENDAR", todos[22:] + "END:VCALENDAR"))
    huge = ics("UID:1\nDTSTART;VALUE=DATE:20260101\nDESCRIPTION:" + "x" * bounds.ICAL_MAX_LENGTH)
    with pytest.raises(InvalidSpec, match=r"spec.ical: is \d+ characters long; at most 262144"):
        calendar(ical=huge)


@pytest.mark.parametrize(
    ("events", "zone", "year", "expected"),
    [row[1:] for row in ICAL],
    ids=[row[0] for row in ICAL],
)
def test_the_fast_expansion_agrees_with_the_public_one(
    events: list[str], zone: str, year: int, expected: set[date]
) -> None:
    """Occurrences are read without a copy of the event each (a private part of
    recurring-ical-events, with ``between`` as the fallback): both give the same dates."""
    from zoneinfo import ZoneInfo

    from almanac.schedule import ical

    text = ics(*events)
    query = ical._query(text)
    begin, finish = date(year, 1, 1) - timedelta(days=2), date(year + 1, 1, 1) + timedelta(days=2)

    def dates(found: list[tuple[Any, Any, Any]]) -> set[date]:
        return {
            day
            for start, end, event in found
            if str(event.get("STATUS", "")).upper() != "CANCELLED"
            for day in ical.local_dates(start, end, ZoneInfo(zone), year)
        }

    fast = ical._occurrences(query, begin, finish)
    public = [(e.start, e.end, e) for e in query.between(begin, finish)]
    assert dates(fast) == dates(public)
    if year <= bounds.YEAR_MAX:  # beyond, the date set (not local_dates) stops
        assert dates(fast) == expected


def test_an_event_over_centuries_costs_one_year_at_a_time() -> None:
    """A multi-day event from 1970 to 2200 takes every day, and a year asks only for its
    own 365 (not 84,000 dates per year)."""
    cal = calendar(ical=ics("UID:1\nSUMMARY:Always\nDTSTART;VALUE=DATE:19700101\n"
                            "DTEND;VALUE=DATE:22010101"))  # fmt: skip
    schedule = schedule_of(cal)
    assert len(schedule.exclusions.dated[0].dates_in(2150)) == 365
    assert schedule.never_fires is None
    nxt = schedule.next_fire(datetime(2026, 1, 1, tzinfo=UTC))
    assert nxt == datetime(2201, 1, 1, 12, 0, tzinfo=UTC)
