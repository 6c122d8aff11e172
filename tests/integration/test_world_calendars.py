"""Calendars from the world on the real control plane (issue 17): a Calendar's
``holidays`` moves a job's ``nextScheduleTime`` past a public holiday, and the API
server (CRD) and the admission webhook take or refuse ``holidays`` and ``ical`` as the
models do.

The holiday is whichever Romanian public holiday comes next, from the ``holidays``
package, so the test needs no date written in it; waits poll with a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from tests.integration.conftest import Admission, Operator
from tests.integration.objects import calendar, scheduled_job
from tests.kube import Kubectl, wait_until

ZONE = ZoneInfo("Europe/Bucharest")


def next_holiday(after: date) -> date:
    """The first Romanian public holiday after ``after``."""
    ro = holidays.country_holidays("RO", years=[after.year, after.year + 1])
    return min(d for d in ro if d > after)


def first_working_day(day: date) -> date:
    """The first date from ``day`` on that is not a Romanian public holiday."""
    ro = holidays.country_holidays("RO", years=[day.year, day.year + 1])
    while day in ro:
        day += timedelta(days=1)
    return day


def noon_utc(day: date) -> str:
    """Local noon in Bucharest on ``day``, as the operator writes an instant."""
    instant = datetime(day.year, day.month, day.day, 12, tzinfo=ZONE).astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_country_calendar_moves_the_next_fire_past_a_public_holiday(
    k: Kubectl, operator: Operator
) -> None:
    # The window opens on the next public holiday, so without the holidays the job fires
    # on it; with them, on the first day after it that is not one.
    holiday = next_holiday(datetime.now(UTC).astimezone(ZONE).date() + timedelta(days=1))
    k.apply(
        calendar("ro-banks"),
        scheduled_job(
            "settlement",
            "0 12 * * *",
            timeZone="Europe/Bucharest",
            startTime=f"{holiday.isoformat()}T00:00:00",
            calendarRefs=[{"name": "ro-banks"}],
        ),
    )
    wait_until(
        f"nextScheduleTime on the holiday {holiday}",
        lambda: (
            k.get("sj", "settlement").get("status", {}).get("nextScheduleTime") == noon_utc(holiday)
        ),
    )
    k.apply(calendar("ro-banks", holidays=[{"country": "RO"}]))
    after = first_working_day(holiday)
    assert after > holiday
    wait_until(
        f"nextScheduleTime past the holiday, on {after}",
        lambda: k.get("sj", "settlement")["status"].get("nextScheduleTime") == noon_utc(after),
    )
    # The API server kept the fields (they are in the CRD's schema, not pruned).
    assert k.get("cal", "ro-banks")["spec"]["holidays"] == [{"country": "RO"}]


def test_the_crd_refuses_an_entry_with_both_a_country_and_a_market(k: Kubectl) -> None:
    error = k.apply_expecting_error(
        calendar("both", holidays=[{"country": "US", "market": "NYSE"}])
    )
    assert "give exactly one of country (for example RO) or market (for example NYSE)" in error


def test_the_webhook_refuses_unknown_codes_and_malformed_ical_with_the_line(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    admission()
    error = k.apply_expecting_error(calendar("typo", holidays=[{"country": "Romania"}]))
    assert 'admission webhook "calendars.' in error
    assert 'spec.holidays[0].country: "Romania" is not a country code' in error
    assert "did you mean RO?" in error
    bad = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\nUID:1\n"
        "DTSTART;VALUE=DATE:2027010\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    error = k.apply_expecting_error(calendar("broken", ical=bad))
    assert "spec.ical: not valid iCalendar (RFC 5545): line 6: DTSTART" in error
    good = bad.replace("2027010", "20270106")
    k.apply(calendar("company", ical=good))
    assert k.get("cal", "company")["spec"]["ical"] == good


def test_the_plugin_draws_the_live_job_with_its_country_calendar(k: Kubectl, crds: Kubectl) -> None:
    """``kubectl almanac calendar JOB``: the current month in the job's zone, the next
    public holiday skipped with its name (drawn as many months ahead as it takes)."""
    from tests.integration.test_plugin import plugin

    today = datetime.now(UTC).astimezone(ZONE).date()
    holiday = next_holiday(today)
    months = (holiday.year - today.year) * 12 + holiday.month - today.month + 1
    k.apply(
        calendar("ro-banks", holidays=[{"country": "RO"}]),
        scheduled_job(
            "settlement", "0 12 * * *", timeZone="Europe/Bucharest",
            calendarRefs=[{"name": "ro-banks"}],
        ),
    )  # fmt: skip
    result = plugin(k, "calendar", "settlement", "--months", str(months), "--color", "always")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith('ScheduledJob settlement: "0 12 * * *" (fixed-time) in Europe/Bucharest')
    first_month = datetime(today.year, today.month, 1).strftime("%B %Y")
    assert first_month in out
    name = holidays.country_holidays("RO", years=holiday.year, language="ro")[holiday]
    assert f"public holiday in RO: {name} (Calendar ro-banks, spec.holidays[0])" in out
    assert "\x1b[31m" in out  # asked for colour: the holiday's mark is red
