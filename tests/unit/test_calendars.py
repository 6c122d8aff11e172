"""Table tests of the exclusion lists: parsing, validation messages, and explanations."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from almanac.schedule.exclusions import (
    ExclusionKind,
    Exclusions,
    FieldError,
    InvalidSpec,
    calendar_source,
    parse_annual,
    parse_holiday,
    parse_monthly,
    parse_weekly,
)

VALID = [
    ("annual dd.MM", parse_annual, "25.12", (12, 25)),
    ("annual 29.02 is a day of the year", parse_annual, "29.02", (2, 29)),
    ("monthly dd", parse_monthly, "31", 31),
    ("monthly with a leading zero", parse_monthly, "07", 7),
    ("weekly full name", parse_weekly, "Saturday", 6),
    ("weekly abbreviation", parse_weekly, "Sun", 0),
    ("weekly in upper case", parse_weekly, "MONDAY", 1),
    ("weekly in lower case abbreviation", parse_weekly, "wed", 3),
    ("holiday dd.MM.yyyy", parse_holiday, "14.04.2027", date(2027, 4, 14)),
    ("holiday on a leap day", parse_holiday, "29.02.2028", date(2028, 2, 29)),
    ("monthly on the first", parse_monthly, "01", 1),
    ("surrounding spaces are ignored", parse_annual, " 01.01 ", (1, 1)),
    ("annual with one-digit day and month", parse_annual, "5.1", (1, 5)),
    ("annual with a one-digit day", parse_annual, "1.12", (12, 1)),
    ("annual with a one-digit month", parse_annual, "25.1", (1, 25)),
    ("monthly with one digit", parse_monthly, "1", 1),
    ("monthly as a YAML integer", parse_monthly, 5, 5),
    ("monthly integer 31", parse_monthly, 31, 31),
    ("holiday with a one-digit day", parse_holiday, "1.05.2027", date(2027, 5, 1)),
    ("holiday with one-digit day and month", parse_holiday, "1.5.2027", date(2027, 5, 1)),
]


@pytest.mark.parametrize(
    ("parse", "text", "value"), [row[1:] for row in VALID], ids=[row[0] for row in VALID]
)
def test_valid_entries(parse: object, text: str, value: object) -> None:
    assert parse(text) == value  # type: ignore[operator]


INVALID = [
    ("31st of february", parse_annual, "31.02", '"31.02" is not a day of the year (dd.MM)'),
    ("30th of february", parse_annual, "30.02", '"30.02" is not a day of the year (dd.MM)'),
    ("31st of april", parse_annual, "31.04", '"31.04" is not a day of the year (dd.MM)'),
    ("month 13", parse_annual, "01.13", '"01.13" is not a day of the year (dd.MM)'),
    ("day zero", parse_annual, "00.01", '"00.01" is not a day of the year (dd.MM)'),
    ("annual with a year", parse_annual, "25.12.2027", "is not a day of the year (dd.MM)"),
    ("annual with a three-digit day", parse_annual, "123.1",
     '"123.1" is not a day of the year (dd.MM)'),
    ("annual day zero, one digit", parse_annual, "0.1", '"0.1" is not a day of the year'),
    ("annual with an empty day", parse_annual, ".12", '".12" is not a day of the year'),
    ("annual written as MM/dd", parse_annual, "12/25", '"12/25" is not a day of the year'),
    ("monthly 32", parse_monthly, "32", '"32" is not a day of the month (dd, 01-31)'),
    ("monthly 00", parse_monthly, "00", '"00" is not a day of the month (dd, 01-31)'),
    ("monthly 0", parse_monthly, "0", '"0" is not a day of the month (dd, 01-31)'),
    ("monthly integer 0", parse_monthly, 0, '"0" is not a day of the month (dd, 01-31)'),
    ("monthly integer 32", parse_monthly, 32, '"32" is not a day of the month (dd, 01-31)'),
    ("monthly negative", parse_monthly, -1, '"-1" is not a day of the month'),
    ("monthly a boolean", parse_monthly, True, '"True" is not a day of the month'),
    ("monthly three digits", parse_monthly, "007", '"007" is not a day of the month'),
    ("monthly word", parse_monthly, "last", '"last" is not a day of the month'),
    ("misspelt day", parse_weekly, "Sonday", '"Sonday" is not a day of the week '
     "(Monday..Sunday or Mon..Sun, any case)"),
    ("two-letter day", parse_weekly, "Mo", '"Mo" is not a day of the week'),
    ("weekday number", parse_weekly, "1", '"1" is not a day of the week'),
    ("30th of february 2027", parse_holiday, "30.02.2027",
     '"30.02.2027" is not a date (dd.MM.yyyy)'),
    ("29th of february in a common year", parse_holiday, "29.02.2027",
     '"29.02.2027" is not a date (dd.MM.yyyy)'),
    ("month 13 in a holiday", parse_holiday, "01.13.2027", "is not a date (dd.MM.yyyy)"),
    ("ISO date as a holiday", parse_holiday, "2027-04-14", '"2027-04-14" is not a date'),
    ("two-digit year", parse_holiday, "14.04.27", '"14.04.27" is not a date'),
    ("one-digit 29.2 in a common year", parse_holiday, "29.2.2027", '"29.2.2027" is not a date'),
    ("holiday day zero", parse_holiday, "0.5.2027", '"0.5.2027" is not a date'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("parse", "text", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_entries_say_what_is_expected(parse: object, text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse(text)  # type: ignore[operator]
    assert message in str(raised.value)


def test_every_bad_entry_is_named_by_its_path() -> None:
    with pytest.raises(InvalidSpec) as raised:
        Exclusions.parse(
            annual=["25.12", "31.02"], weekly=["Sat", "Sonday"], holiday=["30.02.2027"]
        )
    assert str(raised.value).splitlines() == [
        'spec.exclusions.annual[1]: "31.02" is not a day of the year (dd.MM)',
        'spec.exclusions.weekly[1]: "Sonday" is not a day of the week '
        "(Monday..Sunday or Mon..Sun, any case)",
        'spec.exclusions.holiday[0]: "30.02.2027" is not a date (dd.MM.yyyy)',
    ]


def test_a_calendars_paths_are_its_own() -> None:
    with pytest.raises(InvalidSpec) as raised:
        Exclusions.parse(source=calendar_source("bank"), path="spec", monthly=["32"])
    assert raised.value.errors == (
        FieldError("spec.monthly[0]", '"32" is not a day of the month (dd, 01-31)'),
    )


EXCLUDES = [
    ("annual matches every year", {"annual": ["25.12"]}, date(2031, 12, 25), True),
    ("annual 29.02 in a leap year", {"annual": ["29.02"]}, date(2028, 2, 29), True),
    ("annual 29.02 leaves 28.02 alone", {"annual": ["29.02"]}, date(2027, 2, 28), False),
    ("monthly matches every month", {"monthly": ["15"]}, date(2027, 7, 15), True),
    ("monthly 31 has nothing to do in april", {"monthly": ["31"]}, date(2027, 4, 30), False),
    ("monthly 01 is the first", {"monthly": ["01"]}, date(2027, 4, 1), True),
    ("weekly matches the day of the week", {"weekly": ["Friday"]}, date(2027, 1, 1), True),
    ("weekly leaves other days", {"weekly": ["Friday"]}, date(2027, 1, 2), False),
    ("holiday matches its date", {"holiday": ["14.04.2027"]}, date(2027, 4, 14), True),
    ("holiday does not repeat", {"holiday": ["14.04.2027"]}, date(2028, 4, 14), False),
    ("nothing excludes nothing", {}, date(2027, 4, 14), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lists", "day", "excluded"), [row[1:] for row in EXCLUDES], ids=[row[0] for row in EXCLUDES]
)
def test_excludes(lists: dict[str, Any], day: date, excluded: bool) -> None:
    exclusions = Exclusions.parse(**lists)
    assert exclusions.excludes(day) is excluded
    assert bool(exclusions.explain(day)) is excluded


def test_explain_names_every_rule_and_source_in_order() -> None:
    own = Exclusions.parse(weekly=["Sat"], annual=["25.12"])
    bank = Exclusions.parse(
        source=calendar_source("ro-bank-holidays"), path="spec", holiday=["25.12.2027"]
    )
    rules = (own + bank).explain(date(2027, 12, 25))  # a Saturday
    assert [str(r) for r in rules] == [
        'annual "25.12" (spec.exclusions.annual[0])',
        'weekly "Sat" (spec.exclusions.weekly[0])',
        'holiday "25.12.2027" (Calendar ro-bank-holidays, spec.holiday[0])',
    ]
    assert [r.kind for r in rules] == [
        ExclusionKind.ANNUAL,
        ExclusionKind.WEEKLY,
        ExclusionKind.HOLIDAY,
    ]
    assert rules[2].source == "Calendar ro-bank-holidays"


def test_engine_queries() -> None:
    ex = Exclusions.parse(
        annual=["25.12", "26.12"],
        monthly=["01"],
        weekly=["sun"],
        holiday=["01.05.2027", "01.05.2030"],
    )
    assert ex.annual_days(12) == {25, 26}
    assert ex.annual_days(1) == frozenset()
    assert ex.monthly_days == {1}
    assert ex.weekly_days == {0}
    assert ex.holidays_in(2027, 5) == {1}
    assert ex.last_holiday == date(2030, 5, 1)
    assert Exclusions().last_holiday is None
    assert not Exclusions() and ex


def test_invalid_spec_needs_an_error_and_prints_one_line_each() -> None:
    with pytest.raises(ValueError):
        InvalidSpec([])
    error = InvalidSpec([("spec.a", "bad"), FieldError("spec.b", "worse")])
    assert str(error) == "spec.a: bad\nspec.b: worse"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("lists", "shown"),
    [
        ({"annual": ["5.1"]}, 'annual "05.01" (spec.exclusions.annual[0])'),
        ({"annual": ["25.12"]}, 'annual "25.12" (spec.exclusions.annual[0])'),
        ({"monthly": ["1"]}, 'monthly "01" (spec.exclusions.monthly[0])'),
        ({"monthly": [7]}, 'monthly "07" (spec.exclusions.monthly[0])'),
        ({"holiday": ["1.5.2027"]}, 'holiday "01.05.2027" (spec.exclusions.holiday[0])'),
        ({"weekly": ["sat"]}, 'weekly "sat" (spec.exclusions.weekly[0])'),
    ],
)
def test_entries_are_shown_in_the_contracts_two_digit_form(
    lists: dict[str, Any], shown: str
) -> None:
    (rule,) = Exclusions.parse(**lists).rules
    assert str(rule) == shown


# -- calendarRefs: one reference per calendar, as the API server keeps them -------------


def _job_with_refs(refs: list[dict[str, str]]) -> dict[str, Any]:
    template = {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "b"}]}}}}
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "j", "namespace": "finance"},
        "spec": {
            "schedule": "0 9 * * *",
            "calendarRefs": refs,
            "services": [{"name": "a", "jobTemplate": template}],
        },
    }


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (
            [{"name": "bank"}, {"name": "bank"}],
            'spec.calendarRefs[1]: Calendar "bank" is already spec.calendarRefs[0]',
        ),
        (
            [{"name": "bank"}, {"name": "x"}, {"kind": "Calendar", "name": "bank"}],
            'spec.calendarRefs[2]: Calendar "bank" is already spec.calendarRefs[0]',
        ),
        (
            [{"kind": "ClusterCalendar", "name": "ro"}, {"kind": "ClusterCalendar", "name": "ro"}],
            'spec.calendarRefs[1]: ClusterCalendar "ro" is already spec.calendarRefs[0]',
        ),
    ],
    ids=["twice", "twice, once with its default kind written", "a ClusterCalendar twice"],
)
def test_a_calendar_referred_to_twice_is_refused_as_the_api_server_does(
    refs: list[dict[str, str]], message: str
) -> None:
    """The CRD keeps calendarRefs as a map keyed by (kind, name), so the API server
    refuses a second reference to one calendar; the webhook's model and `almanac next`
    refuse it too (with the field and the first reference), rather than admitting it and
    explaining each of its days twice."""
    from almanac.api.models import ScheduledJob

    with pytest.raises(InvalidSpec) as raised:
        ScheduledJob.parse(_job_with_refs(refs))
    assert str(raised.value) == message


def test_a_calendar_and_a_cluster_calendar_of_one_name_are_two_references() -> None:
    from almanac.api.models import ScheduledJob

    job = ScheduledJob.parse(
        _job_with_refs([{"name": "ro"}, {"kind": "ClusterCalendar", "name": "ro"}])
    )
    assert [ref.key() for ref in job.spec.calendar_refs] == ["ro", "ClusterCalendar/ro"]


@pytest.mark.parametrize(
    ("exclusions", "message"),
    [
        (
            {"holidays": [{"country": "RO"}]},
            "spec.exclusions.holidays: is not a known field; did you mean holiday?",
        ),
        ({"Weekly": ["Sat"]}, "spec.exclusions.Weekly: is not a known field; did you mean weekly?"),
    ],
    ids=["a Calendar's holidays in a job's exclusions", "a list name in the wrong case"],
)
def test_a_misspelt_exclusion_list_is_named_with_a_field_it_could_be(
    exclusions: dict[str, Any], message: str
) -> None:
    """A field this part has not is suggested the nearest one that is not itself: a job's
    exclusions have no ``holidays`` (a Calendar's spec has), so "did you mean holidays?"
    would send the user round in a circle."""
    from almanac.api.models import ScheduledJob

    body = _job_with_refs([])
    body["spec"]["exclusions"] = exclusions
    with pytest.raises(InvalidSpec) as raised:
        ScheduledJob.parse(body)
    assert str(raised.value) == message
