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

import re
from datetime import datetime, timedelta
from typing import Any

from almanac.api.names import CONDITION_LATE, TRIGGER_BACKFILL, trigger_of
from almanac.times import parse_duration, parse_time, timestamp

__all__ = [
    "deadline_of",
    "job_deadline",
    "late_condition",
    "late_since",
    "status_when_late",
]

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


_NOT_FINISHED_BY = "not finished by "


def late_condition(deadline: datetime, run_deadline: str, now: datetime) -> Body:
    """The run's ``Late`` condition, set at ``now`` for a deadline that passed;
    ``run_deadline`` as the job writes it (``2h``)."""
    return {
        "type": CONDITION_LATE,
        "status": "True",
        "reason": "RunDeadlineExceeded",
        "message": (
            f"{_NOT_FINISHED_BY}{timestamp(deadline)}: runDeadline {run_deadline} after it was due"
        ),
        "lastTransitionTime": timestamp(now),
    }


def status_when_late(run: Body) -> Body:
    """``status`` of ``run`` as it stood when it became late: what the e-mail and the
    webhooks about lateness tell, the same at every attempt (a resend is byte-identical,
    notifications.md) however the run went on meanwhile.

    The instant is the deadline its ``Late`` condition names, written once with it (the
    job's ``runDeadline`` may be edited since), or the condition's transition time for a
    condition that names none: a run found late after it ended (the operator was away at
    the deadline) was still going at its deadline. Then the run had no completionTime and
    was Running if a service had started, else Pending; a service that had not started
    was Pending (no Job yet), one started and not ended was Running, one ended has its
    outcome; a Skipped one was Skipped if a mandatory service had failed by then, else
    Pending. A service whose times were not recorded (its Job refused, or removed before
    its end was seen) is told as recorded. A service keeps its message only in the phase
    the message was written for."""
    status = run.get("status") or {}
    instant = _became_late_at(status)
    if instant is None:
        return status
    services = [_service_at(s, instant) for s in status.get("services") or []]
    mandatory = {
        s.get("name") for s in (run.get("spec") or {}).get("services") or [] if s.get("mandatory")
    }
    if not any(s["phase"] == "Failed" and s["name"] in mandatory for s in services):
        services = [_pending(s) if s["phase"] == "Skipped" else s for s in services]
    snapshot = {k: v for k, v in status.items() if k not in ("completionTime", "services")}
    started = parse_time(status.get("startTime"))
    if started is not None and started > instant:
        del snapshot["startTime"]
        started = None
    going = started is not None or any(s["phase"] != "Pending" for s in services)
    return {**snapshot, "phase": "Running" if going else "Pending", "services": services}


def _became_late_at(status: Body) -> datetime | None:
    """The deadline the run's Late condition names; its transition time if it names none;
    None when the run is not late."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == CONDITION_LATE and condition.get("status") == "True":
            named = re.match(
                rf"{_NOT_FINISHED_BY}(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ):",
                str(condition.get("message") or ""),
            )
            deadline = parse_time(named.group(1)) if named else None
            return deadline or parse_time(condition.get("lastTransitionTime"))
    return None


def _service_at(service: Body, instant: datetime) -> Body:
    """A ``status.services`` item as it stood at ``instant`` (see :func:`status_when_late`)."""
    phase = service.get("phase") or "Pending"
    started = parse_time(service.get("startTime"))
    ended = parse_time(service.get("completionTime"))
    if ended is not None and ended <= instant:
        return service
    if started is None:  # not started, or no times recorded (Skipped: by the caller)
        return service
    if started > instant:
        return _pending(service)
    running = {k: v for k, v in service.items() if k not in ("completionTime", "message")}
    if phase == "Running" and service.get("message"):
        running["message"] = service["message"]
    return {**running, "phase": "Running"}


def _pending(service: Body) -> Body:
    return {"name": service.get("name"), "phase": "Pending"}
