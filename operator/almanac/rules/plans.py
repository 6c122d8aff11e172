"""The shapes of a decision: what the executor is asked to do, and helpers to build it.

A plan is data. The executor (:mod:`almanac.controller.controller`) applies it in one
order (annotations consumed, deletes, creates, Events, then at most one status patch)
and never decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from almanac.api.bounds import CONDITION_MESSAGE_MAX_BYTES, truncate
from almanac.times import timestamp

Body = dict[str, Any]


@dataclass(frozen=True)
class PlannedEvent:
    """A core/v1 Event to post once.

    ``key`` says what makes two Events the same: the executor derives the Event's name
    from the object's UID, the reason and the key, so posting it again (a retry, a
    restart before the status was written) is refused as AlreadyExists instead of
    doubled. ``on_job`` posts it on the run's ScheduledJob instead of the run.
    """

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    key: str
    on_job: bool = False


def changed_fields(current: Body, desired: Body) -> Body:
    """The fields of ``desired`` that differ from ``current``: the merge patch to write
    (None removes a field; a field absent from ``desired`` is left alone)."""
    return {f: v for f, v in desired.items() if current.get(f) != v}


def ready_condition(
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    previous: list[Body],
    now: datetime,
) -> Body:
    """The Ready condition; its transition time moves only when its status does, and
    its message is cut to what a condition holds."""
    old = next((c for c in previous if c.get("type") == "Ready"), None)
    changed = old is None or old.get("status") != status
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": condition_message(message),
        "observedGeneration": generation,
        "lastTransitionTime": timestamp(now) if changed else (old or {}).get("lastTransitionTime"),
    }


def condition_message(message: str) -> str:
    """A message for a condition or a status field: at most 32 KiB, marked when cut."""
    return truncate(message, CONDITION_MESSAGE_MAX_BYTES)


@dataclass(frozen=True)
class Create:
    """An object to create and the Event that tells it, posted only once it exists."""

    body: Body
    event: PlannedEvent | None = None
