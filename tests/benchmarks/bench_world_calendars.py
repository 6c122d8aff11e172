"""A decision's schedule work with Calendars from the world (issue 17): parse the
Calendar, build the job's schedule, find the next fire, as the operator does at each
decision, for a Calendar that types Romania's 2027 holidays, one that names the country
(``holidays: [{country: RO}]``) and one with a small company iCalendar.

Run with ``.venv/bin/pytest tests/benchmarks/bench_world_calendars.py --benchmark-only``.
The first year of a country or a text is computed once per process (outside the timing:
the benchmark's warm-up round); what is timed is the steady state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.api.models import Calendar, ScheduledJob

AFTER = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "docs" / "examples"
TYPED = {
    "metadata": {"name": "ro-public-holidays"},
    "spec": {
        "holiday": [
            "01.01.2027", "02.01.2027", "06.01.2027", "07.01.2027", "24.01.2027",
            "30.04.2027", "01.05.2027", "02.05.2027", "03.05.2027", "01.06.2027",
            "20.06.2027", "21.06.2027", "15.08.2027", "30.11.2027", "01.12.2027",
            "25.12.2027", "26.12.2027",
        ]
    },
}  # fmt: skip


def example(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    calendar, job = yaml.safe_load_all((EXAMPLES / name).read_text())
    return calendar, job


CASES = {
    "typed-holiday-list": (TYPED, example("ro-bank.yaml")[1]),
    "holidays-country-RO": example("ro-bank.yaml"),
    "ical-company": example("company-ical.yaml"),
}


@pytest.mark.parametrize("case", CASES)
def test_decision_schedule(benchmark: Callable[..., object], case: str) -> None:
    calendar_body, job_body = CASES[case]
    job = ScheduledJob.parse(job_body)

    def decide() -> object:
        calendar = Calendar.parse(calendar_body)
        schedule = job.spec.build_schedule({calendar.metadata.name: calendar})
        return schedule.next_fire(AFTER)

    assert isinstance(benchmark(decide), datetime)
