"""Worst-case schedules: how long one decision's schedule work takes (parse the spec,
build the schedule with its Calendars, find the next fire or prove there is none).

A script, not a pytest benchmark (it has no tests; pytest collects and skips it)::

    .venv/bin/python tests/benchmarks/bench_worst_case.py [--runs N]

It prints one row per case: what the engine answered and the median time, cold (the
engine's caches emptied before each run, as for the first job of a zone after a start)
and warm (the same schedule again). Each case is a ScheduledJob spec, so a value that
the models refuse (an out-of-bounds holiday) shows as "refused" with the field path;
anything else than an answer or a refusal is a failed decision ("CRASH").

The cases are the ones that used to make the engine search: every matching time in a
daylight-saving gap (it never fires, and the search ran to the horizon, 400 years past
the last holiday), the same with thousands of holidays (which moved that horizon), a
date that does not exist, a schedule whose only fire is on the last day of the bounds,
and the fuzz's edge values (tests/integration/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

AFTER = datetime(2026, 6, 1, tzinfo=UTC)


def _holidays(last: date, count: int, step_days: int) -> list[str]:
    """``count`` dates ending on ``last``, ``step_days`` apart (dd.MM.yyyy)."""
    days = (last - timedelta(days=i * step_days) for i in range(count))
    return [f"{d.day:02d}.{d.month:02d}.{d.year:04d}" for d in days]


def _leap_year() -> list[date]:
    return [date(2028, 1, 1) + timedelta(days=i) for i in range(366)]


# The last Sunday of March is the only Sunday in March on or after the 25th: with days
# 1-24 excluded, "* 3 * 3 0" matches only the EU spring-forward day, whose 03:xx does
# not exist in Europe/Bucharest (03:00 EET -> 04:00 EEST). A wildcard schedule skips
# gap times: it never fires.
_GAP = {
    "schedule": "* 3 * 3 0",
    "timeZone": "Europe/Bucharest",
    "exclusions": {"monthly": [f"{d:02d}" for d in range(1, 25)]},
}
# The same in New York: the second Sunday of March (days 8-14), 02:xx.
_GAP_US = {
    "schedule": "*/5 2 * 3 SUN",
    "timeZone": "America/New_York",
    "exclusions": {"monthly": [f"{d:02d}" for d in (*range(1, 8), *range(15, 32))]},
}

# Every day excluded, by the job and by 32 Calendars of full lists: 13,000 rules to name.
_FULL_LISTS = {
    "annual": [f"{d.day:02d}.{d.month:02d}" for d in _leap_year()],
    "monthly": [f"{d:02d}" for d in range(1, 32)],
    "weekly": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] * 2,
}

CASES: dict[str, dict[str, Any]] = {
    "DST gap, every time (Bucharest)": _GAP,
    "DST gap, every time (New York)": _GAP_US,
    "DST gap + 4000 holidays to 2200": {
        **_GAP,
        "exclusions": {
            **_GAP["exclusions"],
            "holiday": _holidays(date(2200, 12, 31), 4000, 16),
        },
    },
    "DST gap + 4000 holidays to 9999": {
        **_GAP,
        "exclusions": {
            **_GAP["exclusions"],
            "holiday": _holidays(date(9999, 12, 31), 4000, 16),
        },
    },
    "every day excluded, 32 full Calendars": {
        "schedule": "* * * * *",
        "exclusions": _FULL_LISTS,
        "calendarRefs": [{"name": f"cal-{i}"} for i in range(32)],
        "_calendars": {f"cal-{i}": _FULL_LISTS for i in range(32)},
    },
    "0 0 30 2 *": {"schedule": "0 0 30 2 *"},
    "0 0 30 2 * + 4000 holidays to 2200": {
        "schedule": "0 0 30 2 *",
        "exclusions": {"holiday": _holidays(date(2200, 12, 31), 4000, 16)},
    },
    "only fire 2200-12-31 (holidays)": {
        "schedule": "0 0 31 12 *",
        "endTime": "2200-12-31T23:59:59",
        "exclusions": {"holiday": [f"31.12.{y}" for y in range(2026, 2200)]},
    },
    "only fire 2200-12-31 (window)": {
        "schedule": "59 23 31 12 *",
        "startTime": "2200-12-31T00:00:00",
        "endTime": "2200-12-31T23:59:59",
    },
    "every minute from 2200-12-31T23:59": {
        "schedule": "* * * * *",
        "startTime": "2200-12-31T23:59:00",
    },
    "0 0 29 2 1": {"schedule": "0 0 29 2 1"},
    "Etc/GMT+12": {"schedule": "0 3 * * *", "timeZone": "Etc/GMT+12"},
    "annual 336 + holiday 384 (fuzz)": {
        "schedule": "0 3 * * *",
        "exclusions": {
            "annual": [f"{d:02d}.{m:02d}" for m in range(1, 13) for d in range(1, 29)],
            "holiday": [
                f"{d:02d}.{m:02d}.{y}"
                for y in range(2027, 2043)
                for m in range(1, 13)
                for d in (1, 15)
            ],
        },
    },
    "startTime 0001-01-01": {"schedule": "0 3 * * *", "startTime": "0001-01-01T00:00:00"},
    "startTime 9999-12-31": {"schedule": "0 3 * * *", "startTime": "9999-12-31T23:59:59"},
    "holiday 31.12.9999": {"schedule": "0 3 * * *", "exclusions": {"holiday": ["31.12.9999"]}},
}


def _body(spec: dict[str, Any]) -> dict[str, Any]:
    service = {"name": "main", "jobTemplate": {"spec": {"template": {"spec": {}}}}}
    fields = {k: v for k, v in spec.items() if not k.startswith("_")}
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "worst", "namespace": "bench"},
        "spec": {**fields, "services": [service]},
    }


def _calendars(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"kind": "Calendar", "metadata": {"name": name}, "spec": lists}
        for name, lists in spec.get("_calendars", {}).items()
    }


def _decide(spec: dict[str, Any]) -> str:
    """What one decision computes of the schedule; its answer, in one short line."""
    from almanac.api.models import ScheduledJob
    from almanac.api.resolve import resolve
    from almanac.errors import InvalidSpec
    from almanac.schedule.engine import NeverFires

    try:
        schedule = resolve(ScheduledJob.parse(_body(spec)), _calendars(spec))
    except InvalidSpec as e:
        return f"refused: {e.errors[0].path}"
    upcoming = schedule.next_fire(AFTER)
    if isinstance(upcoming, NeverFires):
        return f"never: {upcoming.reason}"
    return f"fires {upcoming:%Y-%m-%dT%H:%MZ}"


def _clear_caches() -> None:
    from almanac.schedule import cron, days, engine, exclusions, zones

    for module in (cron, engine, zones):
        for value in vars(module).values():
            clear: Callable[[], None] | None = getattr(value, "cache_clear", None)
            if clear is not None:
                clear()
    # What schedules share with the next schedule of the same days and Calendars.
    days._SHARED.clear()
    exclusions._UNIONS.clear()


def _median(run: Callable[[], object], runs: int, *, cold: bool) -> float:
    times = []
    for _ in range(runs):
        if cold:
            _clear_caches()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _format(seconds: float) -> str:
    return f"{seconds * 1000:9.1f} ms" if seconds < 10 else f"{seconds:9.1f} s "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median)")
    args = parser.parse_args()
    width = max(map(len, CASES))
    print(f"{'case':<{width}}  {'cold':>12}  {'warm':>12}  answer")
    for name, spec in CASES.items():
        try:
            answer = _decide(spec)
        except Exception as e:  # a failed decision: the thing the bounds prevent
            print(f"{name:<{width}}  {'-':>12}  {'-':>12}  CRASH {type(e).__name__}: {e}")
            continue
        cold = _median(lambda s=spec: _decide(s), args.runs, cold=True)  # type: ignore[misc]
        warm = _median(lambda s=spec: _decide(s), args.runs, cold=False)  # type: ignore[misc]
        print(f"{name:<{width}}  {_format(cold)}  {_format(warm)}  {answer}")


if __name__ == "__main__":
    main()
