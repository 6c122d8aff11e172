"""Business days on the real control plane: an excluded date's fires, shifted to a business
day (docs/api.md "Shifting"), fire their Jobs at the shifted instant like any other fire.

The dates are chosen from the clock so that the shifted instant is a minute or two ahead:
one job matches yesterday (a holiday) and shifts to the next business day, today; the
other matches tomorrow (a holiday) and shifts to the previous business day, today. Waits
poll for a condition with a bound; none stands in for one with a sleep.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.kube import Kubectl, wait_until


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def holiday(day: date) -> str:
    return f"{day.day:02d}.{day.month:02d}.{day.year}"


def test_an_excluded_date_shifted_to_a_business_day_fires_its_job_at_the_shifted_instant(
    k: Kubectl, operator: Operator
) -> None:
    # Two minutes ahead, on a whole minute: time to apply both jobs before it.
    shifted = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    today = shifted.date()
    jobs = {
        # Matches yesterday only (a holiday): NextBusinessDay moves its fire to today.
        "from-yesterday": (today - timedelta(days=1), "NextBusinessDay"),
        # Matches tomorrow only (a holiday): PreviousBusinessDay moves its fire to today.
        "from-tomorrow": (today + timedelta(days=1), "PreviousBusinessDay"),
    }
    for name, (matched, direction) in jobs.items():
        expression = f"{shifted.minute} {shifted.hour} {matched.day} {matched.month} *"
        k.apply(
            scheduled_job(
                name,
                expression,
                services=[service("main")],
                timeZone="UTC",
                exclusions={"holiday": [holiday(matched)]},
                onExcludedDay=direction,
                maxShiftDays=1,
            )
        )
    for name, (matched, _) in jobs.items():
        expected = stamp(shifted)
        status = wait_until(
            f"{name}: nextScheduleTime at the shifted instant",
            lambda n=name: k.get("sj", n).get("status", {}).get("nextScheduleTime"),
        )
        assert status == expected, (name, status)
        # kubectl get sj shows the schedule as written.
        assert f"{matched.day} {matched.month} *" in k.run("get", "sj", name).stdout
    for name in jobs:
        run_name = f"{name}-{int(shifted.timestamp()) // 60}"
        run = wait_until(
            f"{name}: the run of the shifted fire", lambda r=run_name: k.get("sjr", r), 200
        )
        assert run["spec"]["scheduledTime"] == stamp(shifted)
        created = utc(run["metadata"]["creationTimestamp"])
        assert timedelta(0) <= created - shifted < timedelta(seconds=5), (name, created)
        job = wait_until(
            f"{name}: the Job of the shifted fire", lambda r=run_name: k.get("job", f"{r}-main")
        )
        assert job["metadata"]["labels"]["almanac.dev/scheduled-job"] == name
