"""When a run is late: ``spec.runDeadline`` of its ScheduledJob after it was due.

A run unfinished that long after its scheduled time gets the condition ``Late`` (kept
once it has it, also after the run ends), one ``RunLate`` Warning Event, a count in
``almanac_runs_late_total`` and, if ``notifications.onLate`` asks, an e-mail. The
operator sets a timer for the deadline; it does not poll.

The clock starts at the run's ``spec.scheduledTime``: for a fire its scheduled instant,
for a run-now when it was asked for, for a rerun when it was scheduled to start (not its
parent's instant: a rerun of last week's run would be late at birth), and for a
backfilled run when it was created (the instant it stands for may be months old).

Pure: times are arguments.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from almanac.api.names import CONDITION_LATE, TRIGGER_BACKFILL, trigger_of
from almanac.times import parse_duration, parse_time, timestamp

__all__ = ["deadline_of", "job_deadline", "late_condition", "late_since"]

Body = dict[str, Any]


def job_deadline(job: Body | None) -> timedelta | None:
    """The job's ``spec.runDeadline``; None without one, or one the job's own decision
    reports as invalid (a job stored before the webhook): no deadline rather than a
    failed run."""
    text = ((job or {}).get("spec") or {}).get("runDeadline")
    if not isinstance(text, str):
        return None
    try:
        return parse_duration(text)
    except ValueError:
        return None


def deadline_of(run: Body, run_deadline: timedelta | None) -> datetime | None:
    """When ``run`` becomes late (see the module docstring for where the clock starts);
    None without a deadline or a start."""
    if run_deadline is None:
        return None
    spec = run.get("spec") or {}
    start = parse_time(spec.get("scheduledTime"))
    if trigger_of(spec) == TRIGGER_BACKFILL:
        start = parse_time(run["metadata"].get("creationTimestamp")) or start
    return None if start is None else start + run_deadline


def late_since(run: Body) -> datetime | None:
    """When the run was marked Late (its condition's transition time), or None."""
    for condition in (run.get("status") or {}).get("conditions") or []:
        if condition.get("type") == CONDITION_LATE and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def late_condition(deadline: datetime, run_deadline: str, now: datetime) -> Body:
    """The run's ``Late`` condition, set at ``now`` for a deadline that passed;
    ``run_deadline`` as the job writes it (``2h``)."""
    return {
        "type": CONDITION_LATE,
        "status": "True",
        "reason": "RunDeadlineExceeded",
        "message": (
            f"not finished by {timestamp(deadline)}: runDeadline {run_deadline} after it was due"
        ),
        "lastTransitionTime": timestamp(now),
    }
