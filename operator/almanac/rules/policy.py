"""CronJob's policies, as pure functions: missed fires, run history, what to prune.

These decide; the controller does. Times are arguments, never read from the clock.

Missed fires (``docs/api.md``, "Missed fires"): fires that were due while nothing could start
them (the operator was down) are found from the last fire the job's status records. At
most the latest is started, and only if it is no later than ``startingDeadlineSeconds``
(unset: no limit); every other one is recorded as missed. Fires that fell while the job
was suspended are never started on resume: all are recorded as missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from almanac.times import timestamp

TERMINAL = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class FireDecision:
    """What to do with the fires due since the last one recorded."""

    start: datetime | None  # the fire to start now, if any
    missed: list[datetime]  # fires that will never start, oldest first
    reason: str = ""  # why they were missed, for the Event and status


def decide(
    due: Sequence[datetime], now: datetime, deadline_seconds: int | None, *, resumed: bool = False
) -> FireDecision:
    """Which of the due fires (oldest first, all <= now) to start and which are missed."""
    if not due:
        return FireDecision(None, [])
    if resumed:
        return FireDecision(None, list(due), "the job was suspended")
    latest, earlier = due[-1], list(due[:-1])
    if deadline_seconds is not None and now - latest > timedelta(seconds=deadline_seconds):
        return FireDecision(
            None,
            [*earlier, latest],
            f"no operator ran to start it within startingDeadlineSeconds ({deadline_seconds}s)",
        )
    reason = "no operator ran to start it; only the latest missed fire starts" if earlier else ""
    return FireDecision(latest, earlier, reason)


@dataclass(frozen=True)
class RunSummary:
    """The part of a ScheduledJob's status that follows from its runs."""

    active: list[str]
    last_run: dict[str, str] | None
    last_successful_time: str | None

    def as_status(self) -> dict[str, Any]:
        return {
            "active": self.active or None,
            "lastRun": self.last_run,
            "lastSuccessfulTime": self.last_successful_time,
        }


def _scheduled(run: dict[str, Any]) -> str:
    # RFC 3339 UTC strings with a Z sort in time order.
    return str(run.get("spec", {}).get("scheduledTime", ""))


def _phase(run: dict[str, Any]) -> str:
    return str(run.get("status", {}).get("phase") or "Pending")


def _summary_phase(run: dict[str, Any], now: str) -> str:
    """A run as its ScheduledJob tells it: Pending before its scheduled time (a rerun a
    minute ahead), then Running until it ends. The run's own Pending -> Running step at
    a fire is not the job's news: it would cost the job a status write per fire for an
    instant's difference."""
    phase = _phase(run)
    if phase in TERMINAL:
        return phase
    return "Pending" if _scheduled(run) > now else "Running"


def summarize(runs: Iterable[dict[str, Any]], now: datetime) -> RunSummary:
    """Active runs, the latest run (phase as :func:`_summary_phase` tells it) and when
    the latest success was scheduled."""
    ordered = sorted(runs, key=lambda r: (_scheduled(r), r["metadata"]["name"]))
    active = [r["metadata"]["name"] for r in ordered if _phase(r) not in TERMINAL]
    last = ordered[-1] if ordered else None
    successes = [r for r in ordered if _phase(r) == "Succeeded"]
    return RunSummary(
        active,
        {"name": last["metadata"]["name"], "phase": _summary_phase(last, timestamp(now) or "")}
        if last
        else None,
        _scheduled(successes[-1]) if successes else None,
    )


def to_prune(runs: Iterable[dict[str, Any]], keep_succeeded: int, keep_failed: int) -> list[str]:
    """Names of finished runs beyond the history limits, oldest first (as CronJob)."""
    ordered = sorted(runs, key=lambda r: (_scheduled(r), r["metadata"]["name"]))
    prune: set[str] = set()
    for phase, keep in (("Succeeded", keep_succeeded), ("Failed", keep_failed)):
        finished = [r["metadata"]["name"] for r in ordered if _phase(r) == phase]
        prune.update(finished[: max(0, len(finished) - keep)])
    return [r["metadata"]["name"] for r in ordered if r["metadata"]["name"] in prune]
